//! The admin API and the HTTP layer's generic answers: auth, validation, conflicts, unknown
//! paths, wrong methods, oversized bodies, the `/apps/{anchor}` prefix rules.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn assert_admin_error(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    assert_eq!(a.json()["error"], code, "{}", a.text());
    assert!(a.json()["message"].is_string());
}

#[tokio::test]
async fn admin_requires_its_token_and_is_never_under_a_prefix() {
    let srv = Server::start().await;
    srv.app("chat").await;
    for auth in [None, Some("Bearer wrong"), Some("Basic x")] {
        let h: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let a = srv
            .send(Method::GET, "/admin/v1/applications", &h, None)
            .await;
        assert_admin_error(&a, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let a = srv
        .send(
            Method::GET,
            "/apps/chat/admin/v1/applications",
            &[("authorization", &format!("Bearer {ADMIN}"))],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn provisioning_validates_its_input() {
    let srv = Server::start().await;
    let app = srv.app("chat").await;
    assert_eq!(app["id"], "chat");
    assert!(s(&app, "rownd_app_secret").starts_with("ras_"));
    assert!(s(&app, "connect_private_key_pem").contains("PRIVATE KEY"));
    // The same anchor twice, a bad anchor, an unknown field, a missing field.
    let cases = [
        (
            json!({"id": "chat", "name": "again"}),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            json!({"id": "Not Kebab", "name": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"name": "x", "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"id": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"name": "x", "connect_public_key_pem": "nope"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"name": "x", "sector": "no-such-app"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        let a = srv
            .admin(Method::POST, "/admin/v1/applications", Some(body.clone()))
            .await;
        assert_admin_error(&a, status, code);
    }
    let a = srv
        .send(
            Method::POST,
            "/admin/v1/applications",
            &[("authorization", &format!("Bearer {ADMIN}"))],
            Some(b"{not json"),
        )
        .await;
    assert_admin_error(&a, StatusCode::BAD_REQUEST, "invalid_request");

    let u = srv.account("alice").await;
    assert_eq!(s(&u, "id").len(), 20);
    let a = srv
        .admin(
            Method::POST,
            "/admin/v1/accounts",
            Some(json!({"login": "ALICE"})),
        )
        .await;
    assert_admin_error(&a, StatusCode::CONFLICT, "conflict");
    let a = srv
        .admin(
            Method::POST,
            "/admin/v1/accounts",
            Some(json!({"login": "carol", "email": "alice@example.com"})),
        )
        .await;
    assert_admin_error(&a, StatusCode::CONFLICT, "conflict");

    // Sessions: an idp session has no application; the others need one.
    let id = s(&u, "id");
    for (body, status) in [
        (
            json!({"account": id, "kind": "idp", "application": "chat"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"account": id, "kind": "login"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"account": id, "kind": "weird", "application": "chat"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"account": "00uunknownunknown123", "kind": "idp"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"account": id, "kind": "login", "application": "nope"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let a = srv
            .admin(Method::POST, "/admin/v1/sessions", Some(body.clone()))
            .await;
        assert_eq!(a.status, status, "{body}: {}", a.text());
    }
    let login = srv.session(id, Some("chat"), "login").await;
    for t in ["access_token", "refresh_token", "login_token", "hub_jwt"] {
        assert!(login[t].is_string(), "{t} in {login}");
    }
    assert!(login["subject"].is_string());
    assert_eq!(login["state"], "active");
    let pat = srv.session(id, Some("chat"), "pat").await;
    assert!(pat["personal_access_token"].is_string());
    assert!(pat["expires_at"].is_null());
    let idp = srv.session(id, None, "idp").await;
    assert!(idp["application"].is_null());
    assert!(idp["access_token"].is_null());
}

#[tokio::test]
async fn introspection_and_single_revocation_say_who_revoked_what() {
    let srv = Server::start().await;
    srv.app("chat").await;
    let u = srv.account("alice").await;
    let sess = srv.session(s(&u, "id"), Some("chat"), "oauth").await;
    let v = srv.introspect(s(&sess, "refresh_token")).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["kind"], "refresh");
    assert_eq!(v["application"], "chat");
    let a = srv
        .admin(
            Method::DELETE,
            &format!("/admin/v1/sessions/{}", s(&sess, "id")),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["revoked_now"], true);
    for t in ["access_token", "refresh_token", "hub_jwt"] {
        let v = srv.introspect(s(&sess, t)).await;
        assert_eq!(v["active"], false, "{t}");
        assert_eq!(v["state"], "revoked", "{t}");
        assert_eq!(v["revoked_by"], "admin.revoke_session", "{t}");
        assert!(v["revoked_at"].is_string());
    }
    assert_eq!(
        srv.introspect("no-such-token").await,
        json!({"active": false})
    );
    let a = srv
        .admin(
            Method::DELETE,
            &format!("/admin/v1/sessions/{}", s(&sess, "id")),
            None,
        )
        .await;
    assert_eq!(a.json()["revoked_now"], false);
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_huge_bodies() {
    let srv = Server::start().await;
    srv.app("chat").await;
    let a = srv.send(Method::GET, "/no/such/path", &[], None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.json().is_object());
    // Each shape answers a wrong method with 405 + Allow, in its own format.
    for (path, allow, field) in [
        ("/revoke-all", "POST", "reason"),
        ("/sessions/revoke-all", "POST", "success"),
        ("/api/v1/users.logoutOtherClients", "POST", "success"),
        ("/applications/chat/users/x/signout", "POST", "statusCode"),
    ] {
        let a = srv.send(Method::GET, path, &[], None).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(a.header("allow"), Some(allow), "{path}");
        assert!(a.json().get(field).is_some(), "{path}: {}", a.text());
    }
    // Over the body cap: 413 before anything is read or revoked.
    let big = vec![b'x'; 200 * 1024];
    for path in [
        "/revoke-all",
        "/sessions/revoke-all",
        "/api/v1/users.logoutOtherClients",
        "/admin/v1/accounts",
    ] {
        let a = srv
            .send(
                Method::POST,
                path,
                &[("content-type", "application/json")],
                Some(&big),
            )
            .await;
        assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    // An unknown application prefix.
    let a = srv
        .send(Method::POST, "/apps/nope/sessions/revoke-all", &[], None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = srv.send(Method::GET, "/healthz", &[], None).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn a_second_server_on_the_same_directory_is_refused() {
    let srv = Server::start().await;
    let err = sessiond::store::Store::open(srv.data_dir(), &Default::default())
        .err()
        .expect("the directory is locked");
    assert!(err.to_string().contains("in use"), "{err}");
}

#[tokio::test]
async fn a_session_batch_is_all_or_nothing_and_answers_in_order() {
    let srv = Server::start().await;
    srv.app("chat").await;
    srv.app("mail").await;
    let alice = s(&srv.account("alice").await, "id").to_owned();
    let bob = s(&srv.account("bob").await, "id").to_owned();
    let sessions_of = |id: String| {
        let srv = &srv;
        async move {
            let a = srv
                .admin(
                    Method::GET,
                    &format!("/admin/v1/accounts/{id}/sessions"),
                    None,
                )
                .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text());
            a.json()["sessions"].as_array().expect("sessions").len()
        }
    };
    // A bad entry anywhere in the batch: the documented error, and nothing created.
    for (bad, status) in [
        (
            json!({"account": "00uunknownunknown123", "kind": "idp"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"account": bob, "kind": "login", "application": "nope"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"account": bob, "kind": "login"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"account": bob, "kind": "weird"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let body = json!({"sessions": [
            {"account": alice, "kind": "login", "application": "chat"},
            bad,
        ]});
        let a = srv
            .admin(Method::POST, "/admin/v1/sessions/batch", Some(body))
            .await;
        assert_eq!(a.status, status, "{bad}: {}", a.text());
        assert!(a.json()["message"].is_string(), "{}", a.text());
    }
    assert_eq!(sessions_of(alice.clone()).await, 0);
    assert_eq!(sessions_of(bob.clone()).await, 0);
    for n in [0, 501] {
        let entry = json!({"account": alice, "kind": "idp"});
        let body = json!({"sessions": vec![entry; n]});
        let a = srv
            .admin(Method::POST, "/admin/v1/sessions/batch", Some(body))
            .await;
        assert_admin_error(&a, StatusCode::BAD_REQUEST, "invalid_request");
    }

    let asked = [
        (&alice, Some("chat"), "login"),
        (&bob, Some("mail"), "oauth"),
        (&alice, None, "idp"),
        (&bob, Some("chat"), "pat"),
        (&alice, Some("chat"), "login"),
    ];
    let body = json!({"sessions": asked.iter().map(|(account, app, kind)| {
        let mut e = json!({"account": account, "kind": kind});
        if let Some(app) = app {
            e["application"] = json!(app);
        }
        e
    }).collect::<Vec<_>>()});
    let a = srv
        .admin(Method::POST, "/admin/v1/sessions/batch", Some(body))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let answers = a.json()["sessions"].as_array().expect("sessions").clone();
    assert_eq!(answers.len(), asked.len());
    for ((account, app, kind), v) in asked.iter().zip(&answers) {
        assert_eq!(v["account"], json!(account), "{v}");
        assert_eq!(v["application"], json!(app), "{v}");
        assert_eq!(v["kind"], json!(kind), "{v}");
        assert_eq!(v["state"], "active");
        // What a single `POST /sessions` answers for the kind, and it works.
        match *kind {
            "login" => {
                for t in ["access_token", "refresh_token", "login_token", "hub_jwt"] {
                    assert!(v[t].is_string(), "{t} in {v}");
                }
                assert!(srv.is_active(s(v, "refresh_token")).await);
                assert!(srv.is_active(s(v, "login_token")).await);
            }
            "oauth" => assert!(srv.is_active(s(v, "access_token")).await),
            "pat" => assert!(srv.is_active(s(v, "personal_access_token")).await),
            _ => assert_eq!(srv.session_state(s(v, "id")).await, "active"),
        }
    }
    // One pairwise subject per (account, sector), shared by the batch and later sessions.
    assert_eq!(answers[0]["subject"], answers[4]["subject"]);
    assert!(answers[0]["subject"].is_string());
    let later = srv.session(&alice, Some("chat"), "oauth").await;
    assert_eq!(later["subject"], answers[0]["subject"]);
    assert_eq!(sessions_of(alice.clone()).await, 4);
    assert_eq!(sessions_of(bob.clone()).await, 2);
}
