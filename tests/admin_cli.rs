//! `sessiond admin …` and `sessiond backup --server` against a running server, over http
//! and over https with `--ca-cert`: every subcommand is one admin API call whose answer is
//! printed as JSON; a refused call exits 1 with the server's message.

mod common;
use common::bin::*;
use serde_json::Value;
use std::ffi::OsStr;

/// `sessiond admin <args>` against `base`: the exit code and the parsed answer (or stderr).
fn admin(base: &str, extra: &[&OsStr], args: &[&str]) -> Result<Value, (i32, String)> {
    let mut all: Vec<&OsStr> = vec![
        OsStr::new("admin"),
        OsStr::new("--server"),
        OsStr::new(base),
        OsStr::new("--admin-token"),
        OsStr::new("cli-admin"),
    ];
    all.extend_from_slice(extra);
    all.extend(args.iter().map(OsStr::new));
    let out = run(&all);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("the answer is JSON"))
    } else {
        Err((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

fn s(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_owned()
}

#[test]
fn the_admin_commands_provision_list_revoke_and_audit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, base) = serve(&tmp.path().join("data"), &[]);
    let ok = |args: &[&str]| admin(&base, &[], args).unwrap_or_else(|e| panic!("{args:?}: {e:?}"));

    let app = ok(&["apps", "create", "--name", "Chat", "--id", "chat"]);
    assert!(app["rownd_app_secret"].is_string(), "{app}");
    assert_eq!(ok(&["apps", "list"])["applications"][0]["id"], "chat");
    assert_eq!(
        ok(&["apps", "enable", "chat", "--enabled", "false"])["enabled"],
        false
    );
    assert_eq!(ok(&["apps", "enable", "chat"])["enabled"], true);
    let alice = s(
        &ok(&["accounts", "create", "--login", "alice", "--password", "pw"]),
        "id",
    );
    assert_eq!(ok(&["accounts", "get", &alice])["login"], "alice");
    ok(&["accounts", "add-device", &alice, "--label", "phone"]);
    assert_eq!(
        ok(&["accounts", "devices", &alice])["devices"][0]["label"],
        "phone"
    );
    let session = ok(&[
        "sessions",
        "create",
        "--account",
        &alice,
        "--application",
        "chat",
        "--kind",
        "oauth",
    ]);
    let (sid, refresh) = (s(&session, "id"), s(&session, "refresh_token"));
    let listed = ok(&[
        "sessions",
        "list",
        "--account",
        &alice,
        "--application",
        "chat",
    ]);
    assert_eq!(listed["sessions"][0]["id"], sid.as_str(), "{listed}");
    assert_eq!(ok(&["introspect", &refresh])["active"], true);
    assert_eq!(ok(&["sessions", "revoke", &sid])["revoked_now"], true);
    assert_eq!(ok(&["sessions", "get", &sid])["state"], "revoked");
    assert_eq!(ok(&["introspect", &refresh])["active"], false);
    // A token may begin with `-` (one in 64 does): it is the argument, not a flag.
    assert_eq!(ok(&["introspect", "-yUtJGdjM5JS_tsvZwl"])["active"], false);
    let audit = ok(&["audit", "--account", &alice, "--limit", "5"]);
    assert_eq!(
        audit["entries"][0]["operation"], "admin.revoke_session",
        "{audit}"
    );
    let token = ok(&[
        "api-tokens",
        "create",
        "--name",
        "ci",
        "--scope",
        "okta.users.manage",
    ]);
    assert_eq!(token["scopes"][0], "okta.users.manage");

    // Refusals carry the server's status and message, and exit 1.
    let (code, err) = admin(&base, &[], &["sessions", "get", "nope"]).expect_err("404");
    assert_eq!(code, 1);
    assert!(
        err.contains("404") && err.contains("session not found"),
        "{err}"
    );
    let out = run(&[
        OsStr::new("admin"),
        OsStr::new("--server"),
        OsStr::new(&base),
        OsStr::new("--admin-token"),
        OsStr::new("wrong"),
        OsStr::new("apps"),
        OsStr::new("list"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[test]
fn over_https_the_given_certificate_is_trusted_and_backups_go_through_the_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let (_server, base) = serve(&data, &["--tls-self-signed"]);
    let ca = data.join("tls-self-signed-cert.pem");
    let trusted = [OsStr::new("--ca-cert"), ca.as_os_str()];
    let app = admin(&base, &trusted, &["apps", "create", "--name", "Chat"]).expect("https");
    assert!(app["id"].is_string());
    // Without the certificate the client refuses the server.
    let (code, err) = admin(&base, &[], &["apps", "list"]).expect_err("untrusted");
    assert_eq!(code, 1, "{err}");

    let file = tmp.path().join("live.backup");
    let out = run(&[
        OsStr::new("backup"),
        OsStr::new("--server"),
        OsStr::new(&base),
        OsStr::new("--admin-token"),
        OsStr::new("cli-admin"),
        OsStr::new("--ca-cert"),
        ca.as_os_str(),
        OsStr::new("--out"),
        file.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup written"));
    assert!(file.exists());
}
