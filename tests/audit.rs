//! The audit log against a live server: every revocation is recorded with its shape,
//! credential, account, application and what it killed (a revoke-all's count arrives just
//! after its answer); `GET /admin/v1/audit` lists entries newest first, by account or all,
//! page by page; entries left uncounted by a stop are counted at the next start.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sessiond::domain::{Config, Sessiond};
use sessiond::model::{AccountId, Credential};
use sessiond::store::{Durability, Store, StoreOptions};
use std::sync::Arc;

/// The audit page at `query`, once every entry on it is counted (bounded wait).
async fn audit(srv: &Server, query: &str) -> Value {
    for _ in 0..500 {
        let a = srv
            .admin(Method::GET, &format!("/admin/v1/audit{query}"), None)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{query}: {}", a.text());
        let v = a.json();
        let entries = v["entries"].as_array().expect("entries");
        if entries.iter().all(|e| e["counted"] == true) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("audit entries at {query} were not counted within 5 s");
}

#[tokio::test]
async fn every_revocation_is_recorded_with_who_what_and_how_many() {
    let srv = Server::start().await;
    let app = srv
        .app_with(json!({"id": "audit-app", "name": "a", "generate_connect_key": false}))
        .await;
    let alice = srv.account("audit-alice").await;
    let bob = srv.account("audit-bob").await;
    let (alice_id, bob_id) = (s(&alice, "id"), s(&bob, "id"));
    let mut logins = Vec::new();
    for _ in 0..3 {
        logins.push(srv.session(alice_id, Some("audit-app"), "login").await);
    }
    let oauth = srv.session(alice_id, Some("audit-app"), "oauth").await;
    srv.session(alice_id, None, "idp").await;
    srv.session(bob_id, Some("audit-app"), "login").await;

    // 1. The administrator revokes one login session.
    let one = s(&logins[0], "id");
    let del = srv
        .admin(Method::DELETE, &format!("/admin/v1/sessions/{one}"), None)
        .await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.text());
    // 2. Rownd signs alice out of the app: two logins and the OAuth grant die.
    let key = s(&app, "rownd_app_key");
    let signout = srv
        .send(
            Method::POST,
            &format!("/applications/audit-app/users/{alice_id}/signout"),
            &[
                ("x-rownd-app-key", key),
                ("x-rownd-app-secret", s(&app, "rownd_app_secret")),
            ],
            None,
        )
        .await;
    assert_eq!(signout.status, StatusCode::NO_CONTENT, "{}", signout.text());
    // 3. Okta revokes her identity-provider session and (already dead) OAuth grants.
    let token = srv
        .api_token(&["okta.users.manage", "okta.sessions.manage"], None)
        .await;
    let okta = srv
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{alice_id}/sessions?oauthTokens=true"),
            &[("authorization", &format!("SSWS {token}"))],
            None,
        )
        .await;
    assert_eq!(okta.status, StatusCode::NO_CONTENT, "{}", okta.text());

    let v = audit(&srv, &format!("?account={alice_id}")).await;
    let entries = v["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 3, "{v:#}");
    assert_eq!(v["next"], Value::Null);
    // Newest first.
    let (okta_e, rownd_e, admin_e) = (&entries[0], &entries[1], &entries[2]);
    assert_eq!(okta_e["shape"], "okta", "{okta_e}");
    assert_eq!(okta_e["operation"], "okta.revoke_user_sessions");
    assert_eq!(okta_e["credential"]["type"], "api_token");
    assert!(okta_e["credential"]["id"].is_string());
    assert_eq!(okta_e["scope"], "idp_and_all_apps");
    assert_eq!(okta_e["application"], Value::Null);
    assert_eq!(okta_e["sessions_revoked"], 1, "{okta_e}");
    assert_eq!(okta_e["refresh_tokens_revoked"], 0, "{okta_e}");
    assert_eq!(okta_e["devices_forgotten"], 0);

    assert_eq!(rownd_e["shape"], "rownd", "{rownd_e}");
    assert_eq!(rownd_e["operation"], "rownd.signout");
    assert_eq!(rownd_e["credential"], json!({"type": "app_key", "id": key}));
    assert_eq!(rownd_e["application"], "audit-app");
    assert_eq!(rownd_e["scope"], "app");
    assert_eq!(rownd_e["account"], alice_id);
    assert_eq!(rownd_e["sessions_revoked"], 3, "{rownd_e}");
    // Each login and the OAuth grant carry a refresh token.
    assert_eq!(rownd_e["refresh_tokens_revoked"], 3, "{rownd_e}");

    assert_eq!(admin_e["shape"], "admin", "{admin_e}");
    assert_eq!(admin_e["credential"], json!({"type": "admin", "id": null}));
    assert_eq!(admin_e["scope"], "session");
    assert_eq!(admin_e["session"], one);
    assert_eq!(admin_e["sessions_revoked"], 1);
    assert!(
        okta_e["at"].as_str() >= rownd_e["at"].as_str(),
        "{okta_e} {rownd_e}"
    );
    // The OAuth grant among them is dead: the count says what really happened.
    assert_eq!(srv.session_state(s(&oauth, "id")).await, "revoked");

    // Pages of one, by the cursor.
    let p1 = audit(&srv, &format!("?account={alice_id}&limit=1")).await;
    assert_eq!(p1["entries"][0]["id"], okta_e["id"]);
    let cursor = p1["next"].as_str().expect("a next cursor").to_owned();
    let p2 = audit(
        &srv,
        &format!("?account={alice_id}&limit=1&before={cursor}"),
    )
    .await;
    assert_eq!(p2["entries"][0]["id"], rownd_e["id"]);
    let p3 = audit(
        &srv,
        &format!(
            "?account={alice_id}&limit=2&before={}",
            p2["next"].as_str().expect("next")
        ),
    )
    .await;
    assert_eq!(p3["entries"].as_array().map(Vec::len), Some(1));
    assert_eq!(p3["entries"][0]["id"], admin_e["id"]);
    assert_eq!(p3["next"], Value::Null);

    // Bob's log is his own; the whole log has everyone's.
    let b = audit(&srv, &format!("?account={bob_id}")).await;
    assert_eq!(b["entries"], json!([]));
    let all = audit(&srv, "").await;
    assert_eq!(all["entries"].as_array().map(Vec::len), Some(3));

    // The metrics carry the same counts.
    let m = srv.send(Method::GET, "/metrics", &[], None).await.text();
    assert!(
        m.contains("sessiond_sessions_revoked_total{shape=\"rownd\"} 3\n"),
        "{m}"
    );
    assert!(
        m.contains("sessiond_refresh_tokens_revoked_total{shape=\"rownd\"} 3\n"),
        "{m}"
    );
    assert!(
        m.contains("sessiond_sessions_revoked_total{shape=\"okta\"} 1\n"),
        "{m}"
    );

    // Bad requests.
    for (q, status) in [
        ("?account=nobody", StatusCode::NOT_FOUND),
        ("?limit=0", StatusCode::BAD_REQUEST),
        ("?limit=1001", StatusCode::BAD_REQUEST),
        ("?limit=x", StatusCode::BAD_REQUEST),
        ("?before=-1", StatusCode::BAD_REQUEST),
    ] {
        let a = srv
            .admin(Method::GET, &format!("/admin/v1/audit{q}"), None)
            .await;
        assert_eq!(a.status, status, "{q}: {}", a.text());
        assert!(a.json()["error"].is_string(), "{q}: {}", a.text());
    }
    let anon = srv.send(Method::GET, "/admin/v1/audit", &[], None).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_count_left_pending_by_a_stop_is_done_at_the_next_start() {
    let mut srv = Server::start().await;
    srv.app_with(json!({"id": "pending-app", "name": "p", "generate_connect_key": false}))
        .await;
    let carol = srv.account("audit-carol").await;
    let carol_id = s(&carol, "id").to_owned();
    for _ in 0..2 {
        srv.session(&carol_id, Some("pending-app"), "login").await;
    }
    srv.shutdown().await;
    // Revoke with the store opened outside `serve`: no background task counts it.
    {
        let opts = StoreOptions {
            cache_bytes: 16 << 20,
            durability: Durability::Fsync,
        };
        // `shutdown` returned once the store was closed (`wait_until_closed`).
        let store = Store::open(srv.data_dir(), &opts).expect("open store");
        assert!(store.check().expect("check").is_clean());
        let state = Sessiond::new(
            store,
            Config::default(),
            Arc::new(sessiond::domain::SystemClock),
        )
        .expect("state");
        let app = state
            .app_by_anchor("pending-app")
            .expect("read")
            .expect("app");
        let id = AccountId::parse(&carol_id).expect("id");
        state
            .rownd_sign_out_all(app.key, &id, Credential::Admin)
            .await
            .expect("revoke");
        let log = state.audit_log(Some(&id), None, 10).expect("log");
        assert_eq!(log.len(), 1);
        assert!(log[0].killed.is_none(), "counted without a task: {log:?}");
        assert!(log[0].pending.is_some());
        assert!(state.store().check().expect("check").is_clean());
    }
    srv.boot().await;
    let v = audit(&srv, &format!("?account={carol_id}")).await;
    assert_eq!(v["entries"][0]["sessions_revoked"], 2, "{v:#}");
    assert_eq!(v["entries"][0]["credential"]["type"], "admin");
}
