//! Guarantee 3 of ARCHITECTURE.md, its second half: a corrupt or truncated record gives a
//! clear error naming its key — from `sessiond check`, and as a 500 in the shape's own format
//! from the server — never a panic, never a silently skipped record, never a half-applied
//! revocation. The records are damaged with sled directly, as a disk or a bug would.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::path::Path;

/// Rewrites the value of `key` in `tree` of the stopped store in `dir`.
fn damage(dir: &Path, tree: &str, key: &[u8], f: impl Fn(&[u8]) -> Vec<u8>) {
    let db = sled::open(dir.join("store")).expect("open sled");
    let t = db.open_tree(tree).expect("tree");
    let old = t.get(key).expect("get").expect("the record exists");
    t.insert(key, f(&old)).expect("insert");
    db.flush().expect("flush");
}

fn sessiond_check(dir: &Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .arg("check")
        .arg("--data")
        .arg(dir)
        .output()
        .expect("run sessiond check");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn a_truncated_session_is_named_and_refused_never_skipped() {
    let mut srv = Server::start().await;
    let app = srv.app("app-a").await;
    let ann = srv.account("ann").await;
    let bob = srv.account("bob").await;
    let ann_id = s(&ann, "id").to_owned();
    let mut ann_sessions = Vec::new();
    for _ in 0..3 {
        ann_sessions.push(srv.session(&ann_id, Some("app-a"), "login").await);
    }
    let bobs = srv.session(s(&bob, "id"), Some("app-a"), "login").await;
    srv.shutdown().await;

    let (code, out) = sessiond_check(srv.data_dir());
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: "), "{out}");

    // Cut the second session's record in half.
    let victim = s(&ann_sessions[1], "id").to_owned();
    let key = sessiond::model::hex_decode(&victim).expect("hex id");
    damage(srv.data_dir(), "sessions", &key, |v| {
        v[..v.len() / 2].to_vec()
    });

    let (code, out) = sessiond_check(srv.data_dir());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("problem: sessions [{victim}]: does not decode")),
        "{out}"
    );
    assert!(out.contains("INCONSISTENT"), "{out}");

    srv.boot().await;
    // Connect's revokedCount cannot be exact without the damaged record: a 500 in Connect's
    // format, and nothing revoked (not a count of 2 with one session skipped).
    let body = json!({"subject": s(&ann_sessions[0], "subject")}).to_string();
    let jwt = client_jwt(
        s(&app, "connect_private_key_pem"),
        "app-a",
        "sudomimus-connect",
        body.as_bytes(),
        now_s(),
        30,
        &unique_jti(),
    );
    let auth = format!("SudomimusClientJWT {jwt}");
    let a = srv
        .send(
            Method::POST,
            "/revoke-all",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Some(body.as_bytes()),
        )
        .await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.text());
    assert_eq!(a.json(), json!({"reason": "InternalError"}));
    for v in [&ann_sessions[0], &ann_sessions[2], &bobs] {
        assert_eq!(srv.session_state(s(v, "id")).await, "active");
    }

    // Flashback lists the pair's sessions: a 500 in its format, not a list of two.
    let auth = format!("Bearer {}", s(&ann_sessions[0], "access_token"));
    let a = srv
        .send(
            Method::GET,
            "/apps/app-a/sessions",
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.text());
    assert_eq!(a.json()["success"], json!(false));

    // The damaged session's own token: a 500 from the admin API, not "inactive".
    let a = srv
        .admin(
            Method::POST,
            "/admin/v1/introspect",
            Some(json!({"token": s(&ann_sessions[1], "access_token")})),
        )
        .await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.text());
    assert_eq!(a.json()["error"], json!("internal_error"));

    // Bob, who shares nothing with the damaged record, is served as usual.
    let auth = format!("Bearer {}", s(&bobs, "access_token"));
    let a = srv
        .send(
            Method::GET,
            "/apps/app-a/sessions",
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    srv.shutdown().await;
}

#[tokio::test]
async fn an_unknown_format_version_and_a_dangling_index_are_named() {
    let mut srv = Server::start().await;
    srv.app("app-a").await;
    let ann = srv.account("ann").await;
    let sess = srv.session(s(&ann, "id"), Some("app-a"), "oauth").await;
    srv.shutdown().await;

    let id = s(&sess, "id").to_owned();
    let key = sessiond::model::hex_decode(&id).expect("hex id");
    // A record written by a future format, and the account it belongs to removed.
    damage(srv.data_dir(), "sessions", &key, |v| {
        let mut v = v.to_vec();
        v[0] = 9;
        v
    });
    {
        let db = sled::open(srv.data_dir().join("store")).expect("open sled");
        let accounts = db.open_tree("accounts").expect("tree");
        accounts.remove(s(&ann, "id").as_bytes()).expect("remove");
        db.flush().expect("flush");
    }
    let (code, out) = sessiond_check(srv.data_dir());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "sessions [{id}]: does not decode: corrupt record in tree `sessions` at key {id}: unknown record format version 9"
        )),
        "{out}"
    );
    assert!(
        out.contains("account_logins [ann]: points at missing account"),
        "{out}"
    );
    assert!(out.contains("belongs to missing account"), "{out}");
}
