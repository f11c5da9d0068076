//! Backup and restore, with the real binary: a backup of a running server taken through
//! the admin API while sessions are being created restores into a store that checks clean
//! and answers exactly as the server did at the backup (live tokens live, revoked ones
//! revoked, later writes absent, new sessions after it alive); a stopped store backs up
//! with `--data`; a damaged file restores nothing.

mod common;
use common::bin::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::Path;

impl AdminApi {
    fn session(&self, account: &str) -> Value {
        self.create(
            "/sessions",
            json!({"account": account, "application": "chat", "kind": "oauth"}),
        )
    }

    /// Rownd's revoke-all of `account` in `chat`: a watermark, not a visit per session.
    fn rownd_signout(&self, app: &Value, account: &str) {
        let r = self
            .http
            .post(format!(
                "{}/applications/chat/users/{account}/signout",
                self.base
            ))
            .header(
                "x-rownd-app-key",
                app["rownd_app_key"].as_str().expect("key"),
            )
            .header(
                "x-rownd-app-secret",
                app["rownd_app_secret"].as_str().expect("secret"),
            )
            .json(&json!({}))
            .send()
            .expect("signout");
        assert_eq!(r.status().as_u16(), 204);
    }
}

fn token(s: &Value) -> &str {
    s["refresh_token"].as_str().expect("refresh token")
}

fn sessiond(args: &[&OsStr]) -> (i32, String, String) {
    let out = run(args);
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sessiond restore --from FILE --data DIR`.
fn restore(file: &Path, dir: &Path) -> (i32, String, String) {
    sessiond(&[
        OsStr::new("restore"),
        OsStr::new("--from"),
        file.as_os_str(),
        OsStr::new("--data"),
        dir.as_os_str(),
    ])
}

/// `sessiond backup --data DIR --out FILE`.
fn backup(dir: &Path, file: &Path) -> (i32, String, String) {
    sessiond(&[
        OsStr::new("backup"),
        OsStr::new("--data"),
        dir.as_os_str(),
        OsStr::new("--out"),
        file.as_os_str(),
    ])
}

#[test]
fn a_backup_taken_while_serving_restores_exactly_what_was_acknowledged_before_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, restored, file) = (
        tmp.path().join("data"),
        tmp.path().join("restored"),
        tmp.path().join("backup.sessiond"),
    );
    let (server, base) = serve(&data, &[]);
    let api = AdminApi::new(&base);
    let app = api.create("/applications", json!({"id": "chat", "name": "Chat"}));
    let alice = api.create("/accounts", json!({"login": "alice"}))["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let bob = api.create("/accounts", json!({"login": "bob"}))["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let killed = api.session(&alice);
    api.rownd_signout(&app, &alice);
    let alive = api.session(&alice);
    let bobs = api.session(&bob);
    let (status, one) = api.admin(
        reqwest::Method::DELETE,
        &format!("/sessions/{}", bobs["id"].as_str().expect("id")),
        None,
    );
    assert_eq!(status, 200, "{one}");

    // Sessions are being created while the backup is taken: whatever it holds must be
    // whole (the restored store checks clean).
    let writer = {
        let base = base.clone();
        let bob = bob.clone();
        std::thread::spawn(move || {
            let api = AdminApi::new(&base);
            for _ in 0..100 {
                api.session(&bob);
            }
        })
    };
    let (status, v) = api.admin(
        reqwest::Method::POST,
        "/backup",
        Some(json!({ "path": file })),
    );
    assert_eq!(status, 201, "{v}");
    assert!(v["entries"].as_u64().expect("entries") > 0, "{v}");
    assert_eq!(v["files"], 1, "the hub signing key is in it: {v}");
    writer.join().expect("writer");
    let after = api.session(&alice);

    // The same path again is refused, and so is a relative one.
    let (status, v) = api.admin(
        reqwest::Method::POST,
        "/backup",
        Some(json!({ "path": file })),
    );
    assert_eq!(status, 409, "{v}");
    let (status, v) = api.admin(
        reqwest::Method::POST,
        "/backup",
        Some(json!({"path": "relative.backup"})),
    );
    assert_eq!(status, 400, "{v}");
    drop(server);

    let (code, out, err) = restore(&file, &restored);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("checks clean"), "{out}");
    assert!(err.is_empty(), "no progress bar in a pipe: {err:?}");
    // Restoring over a store is refused.
    let (code, _, err) = restore(&file, &restored);
    assert_ne!(code, 0);
    assert!(err.contains("already holds a store"), "{err}");

    let (_server, base) = serve(&restored, &[]);
    let api = AdminApi::new(&base);
    assert_eq!(api.introspect(token(&alive))["active"], true);
    let k = api.introspect(token(&killed));
    assert_eq!(
        (k["active"].clone(), k["state"].clone()),
        (json!(false), json!("revoked"))
    );
    assert_eq!(api.introspect(token(&bobs))["state"], "revoked");
    assert_eq!(
        api.introspect(token(&after)),
        json!({"active": false}),
        "a session created after the backup is not in it"
    );
    // The audit log came along.
    let (status, audit) = api.admin(
        reqwest::Method::GET,
        &format!("/audit?account={alice}"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(audit["entries"][0]["operation"], "rownd.signout", "{audit}");
    // The id counter came along too: a session made now is newer than alice's revoke-all
    // watermark, so it is alive (were the counter reset, the watermark would cover it).
    let fresh = api.session(&alice);
    assert_eq!(api.introspect(token(&fresh))["active"], true);
    // The hub signing key came along: a hub JWT issued before the backup still verifies.
    let hub = alive["hub_jwt"].as_str().expect("hub jwt");
    assert_eq!(api.introspect(hub)["active"], true);
}

#[test]
fn a_stopped_store_backs_up_from_its_directory_and_a_damaged_backup_restores_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, file) = (tmp.path().join("data"), tmp.path().join("b.sessiond"));
    let live = {
        let (_server, base) = serve(&data, &[]);
        let api = AdminApi::new(&base);
        api.create("/applications", json!({"id": "chat", "name": "Chat"}));
        let a = api.create("/accounts", json!({"login": "alice"}))["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let s = api.session(&a);
        // While the server runs, a backup from the directory is refused with the way out.
        let (code, _, err) = backup(&data, &file);
        assert_ne!(code, 0);
        assert!(err.contains("--server"), "{err}");
        assert!(!file.exists());
        s
    };
    let (code, out, err) = backup(&data, &file);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.is_empty(), "no progress bar in a pipe: {err:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the backup is its owner's only: {mode:o}");
    }

    // One flipped byte, or a truncated file: refused, and nothing is left behind.
    let good = std::fs::read(&file).expect("read");
    for (what, bytes) in [
        ("a flipped byte", {
            let mut b = good.clone();
            let mid = b.len() / 2;
            b[mid] ^= 0x40;
            b
        }),
        ("a truncated file", good[..good.len() - 100].to_vec()),
    ] {
        let bad = tmp.path().join("bad.sessiond");
        std::fs::write(&bad, &bytes).expect("write");
        let target = tmp.path().join("target");
        let (code, _, err) = restore(&bad, &target);
        assert_ne!(code, 0, "{what}");
        assert!(
            err.contains("not a usable sessiond backup"),
            "{what}: {err}"
        );
        assert!(
            !target.join("store").exists() && !target.join("hub-signing-key.pem").exists(),
            "{what}: nothing restored"
        );
    }

    let target = tmp.path().join("target");
    let (code, out, err) = restore(&file, &target);
    assert_eq!(code, 0, "{out}{err}");
    let (_server, base) = serve(&target, &[]);
    assert_eq!(
        AdminApi::new(&base).introspect(token(&live))["active"],
        true
    );
}
