//! Okta `DELETE /api/v1/users/{userId}/sessions` against a live server: success, every
//! documented error, the survival matrix (`oauthTokens` × `forgetDevices`), idempotency,
//! rate limits, the probes, and persistence across a restart.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const MANAGE: &[&str] = &[
    "okta.users.manage",
    "okta.sessions.manage",
    "okta.sessions.read",
];

fn ssws(token: &str) -> String {
    format!("SSWS {token}")
}

async fn revoke(srv: &Server, user: &str, query: &str, auth: &str) -> Answer {
    srv.send(
        Method::DELETE,
        &format!("/api/v1/users/{user}/sessions{query}"),
        &[("authorization", auth), ("accept", "application/json")],
        None,
    )
    .await
}

fn assert_okta_error(a: &Answer, status: StatusCode, code: &str, summary: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    assert!(
        a.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json")
    );
    let v = a.json();
    assert_eq!(v["errorCode"], code);
    assert_eq!(v["errorSummary"], summary);
    assert_eq!(v["errorLink"], code);
    assert!(v["errorId"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert_eq!(v["errorCauses"], json!([]));
}

fn assert_okta_headers(a: &Answer) {
    for h in [
        "x-rate-limit-limit",
        "x-rate-limit-remaining",
        "x-rate-limit-reset",
        "x-okta-request-id",
        "date",
    ] {
        assert!(a.header(h).is_some(), "missing {h} on {:?}", a.headers);
    }
    let reset: i64 = a
        .header("x-rate-limit-reset")
        .and_then(|v| v.parse().ok())
        .expect("epoch seconds");
    assert!(
        reset > now_s() - 5 && reset <= now_s() + 61,
        "reset {reset}"
    );
}

/// Everything one user can hold, in two applications, plus a second user.
struct World {
    user: String,
    other_user: String,
    idp: Vec<String>,
    oauth_a: serde_json::Value,
    oauth_b: serde_json::Value,
    login_a: serde_json::Value,
    pat_a: serde_json::Value,
    other_idp: String,
    other_oauth: serde_json::Value,
}

async fn world(srv: &Server) -> World {
    srv.app("app-a").await;
    srv.app("app-b").await;
    let u = srv.account("alice").await;
    let v = srv.account("bob").await;
    let user = s(&u, "id").to_owned();
    let other_user = s(&v, "id").to_owned();
    let mut idp = Vec::new();
    for _ in 0..2 {
        idp.push(s(&srv.session(&user, None, "idp").await, "id").to_owned());
    }
    World {
        oauth_a: srv.session(&user, Some("app-a"), "oauth").await,
        oauth_b: srv.session(&user, Some("app-b"), "oauth").await,
        login_a: srv.session(&user, Some("app-a"), "login").await,
        pat_a: srv.session(&user, Some("app-a"), "pat").await,
        other_idp: s(&srv.session(&other_user, None, "idp").await, "id").to_owned(),
        other_oauth: srv.session(&other_user, Some("app-a"), "oauth").await,
        idp,
        user,
        other_user,
    }
}

async fn device_count(srv: &Server, user: &str) -> usize {
    let a = srv
        .admin(
            Method::GET,
            &format!("/admin/v1/accounts/{user}/devices"),
            None,
        )
        .await;
    a.json()["devices"].as_array().expect("devices").len()
}

async fn add_device(srv: &Server, user: &str) {
    let a = srv
        .admin(
            Method::POST,
            &format!("/admin/v1/accounts/{user}/devices"),
            Some(json!({"label": "laptop"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
}

#[tokio::test]
async fn revoke_is_a_bare_204_and_kills_only_idp_sessions_by_default() {
    let srv = Server::start().await;
    let w = world(&srv).await;
    add_device(&srv, &w.user).await;
    let token = srv.api_token(MANAGE, None).await;
    let a = revoke(&srv, &w.user, "", &ssws(&token)).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(a.body.is_empty());
    assert!(
        a.header("content-type").is_none(),
        "a 204 must carry no Content-Type"
    );
    assert_okta_headers(&a);
    for id in &w.idp {
        assert_eq!(srv.session_state(id).await, "revoked");
    }
    // oauthTokens defaults to false: OAuth grants survive; app login sessions and PATs
    // are never touched; forgetDevices defaults to true.
    assert!(srv.is_active(s(&w.oauth_a, "refresh_token")).await);
    assert!(srv.is_active(s(&w.oauth_a, "access_token")).await);
    assert!(srv.is_active(s(&w.oauth_b, "refresh_token")).await);
    assert!(srv.is_active(s(&w.login_a, "login_token")).await);
    assert!(srv.is_active(s(&w.pat_a, "personal_access_token")).await);
    assert_eq!(device_count(&srv, &w.user).await, 0);
    // The other user is untouched.
    assert_eq!(srv.session_state(&w.other_idp).await, "active");
    assert!(srv.is_active(s(&w.other_oauth, "refresh_token")).await);
}

#[tokio::test]
async fn survival_matrix_of_oauth_tokens_and_forget_devices() {
    for (oauth, forget) in [(false, false), (false, true), (true, false), (true, true)] {
        let srv = Server::start().await;
        let w = world(&srv).await;
        add_device(&srv, &w.user).await;
        add_device(&srv, &w.other_user).await;
        let token = srv.api_token(MANAGE, None).await;
        let q = format!("?oauthTokens={oauth}&forgetDevices={forget}");
        let a = revoke(&srv, &w.user, &q, &ssws(&token)).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{q}");
        for id in &w.idp {
            assert_eq!(srv.session_state(id).await, "revoked", "{q}");
        }
        for grant in [&w.oauth_a, &w.oauth_b] {
            for t in ["access_token", "refresh_token", "hub_jwt"] {
                assert_eq!(srv.is_active(s(grant, t)).await, !oauth, "{q} {t}");
            }
        }
        assert!(srv.is_active(s(&w.login_a, "login_token")).await, "{q}");
        assert!(srv.is_active(s(&w.login_a, "refresh_token")).await, "{q}");
        assert!(
            srv.is_active(s(&w.pat_a, "personal_access_token")).await,
            "{q}"
        );
        assert_eq!(
            device_count(&srv, &w.user).await,
            if forget { 0 } else { 1 },
            "{q}"
        );
        assert_eq!(device_count(&srv, &w.other_user).await, 1, "{q}");
        assert_eq!(srv.session_state(&w.other_idp).await, "active", "{q}");
        assert!(
            srv.is_active(s(&w.other_oauth, "refresh_token")).await,
            "{q}"
        );
    }
}

#[tokio::test]
async fn accepts_ssws_without_a_space_and_bearer() {
    let srv = Server::start().await;
    let w = world(&srv).await;
    let token = srv.api_token(MANAGE, None).await;
    // The Python SDK sends `SSWS<token>`.
    let a = revoke(&srv, &w.user, "", &format!("SSWS{token}")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    let a = revoke(&srv, &w.user, "", &format!("Bearer {token}")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    // A trailing-slash base URL gives `//api/v1/...`.
    let a = srv
        .send(
            Method::DELETE,
            &format!("//api/v1/users/{}/sessions", w.user),
            &[("authorization", &ssws(&token))],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    // A prefix is accepted and ignored: Okta is organisation-wide.
    let a = revoke(&srv, &w.user, "", &ssws(&token)).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = srv
        .send(
            Method::DELETE,
            &format!("/apps/app-b/api/v1/users/{}/sessions", w.user),
            &[("authorization", &ssws(&token))],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
}

#[tokio::test]
async fn documented_errors_and_nothing_revoked_on_error() {
    let srv = Server::start().await;
    let w = world(&srv).await;
    let token = srv.api_token(MANAGE, None).await;
    let read_only = srv.api_token(&["okta.users.read"], None).await;

    for auth in [
        "",
        "SSWS not-a-token",
        "Basic abc",
        "Bearer ",
        &format!("SSWS {token}x"),
    ] {
        let a = revoke(&srv, &w.user, "", auth).await;
        assert_okta_error(
            &a,
            StatusCode::UNAUTHORIZED,
            "E0000011",
            "Invalid token provided",
        );
        assert_okta_headers(&a);
    }
    let a = revoke(&srv, &w.user, "", &ssws(&read_only)).await;
    assert_okta_error(
        &a,
        StatusCode::FORBIDDEN,
        "E0000006",
        "You do not have permission to perform the requested action",
    );
    // `%2F` must not split the id.
    for unknown in ["00uunknownunknown123", "alice@example.com", "a%2Fb"] {
        let a = revoke(&srv, unknown, "", &ssws(&token)).await;
        let shown = unknown.replace("%2F", "/");
        assert_okta_error(
            &a,
            StatusCode::NOT_FOUND,
            "E0000007",
            &format!("Not found: Resource not found: {shown} (User)"),
        );
    }
    let a = revoke(&srv, &w.user, "?oauthTokens=yes", &ssws(&token)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["errorCode"], "E0000001");
    // Wrong method: 405 with Allow, still in Okta's format and with its headers.
    let a = srv
        .send(
            Method::POST,
            &format!("/api/v1/users/{}/sessions", w.user),
            &[("authorization", &ssws(&token))],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.header("allow"), Some("DELETE"));
    assert!(a.json()["errorCode"].is_string());
    assert_okta_headers(&a);
    // None of that revoked anything.
    for id in &w.idp {
        assert_eq!(srv.session_state(id).await, "active");
    }
    assert!(srv.is_active(s(&w.oauth_a, "refresh_token")).await);
}

#[tokio::test]
async fn a_token_over_its_limit_gets_429_with_the_headers_the_sdks_need() {
    let srv = Server::start().await;
    let w = world(&srv).await;
    let token = srv.api_token(MANAGE, Some(2)).await;
    let other = srv.api_token(MANAGE, Some(2)).await;
    let first = revoke(&srv, &w.user, "", &ssws(&token)).await;
    assert_eq!(first.status, StatusCode::NO_CONTENT);
    assert_eq!(first.header("x-rate-limit-limit"), Some("2"));
    assert_eq!(first.header("x-rate-limit-remaining"), Some("1"));
    // The window may roll over between requests; retry the pair until both land in one.
    let mut limited = None;
    for _ in 0..3 {
        let _ = revoke(&srv, &w.user, "", &ssws(&token)).await;
        let a = revoke(&srv, &w.user, "", &ssws(&token)).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(a);
            break;
        }
    }
    let a = limited.expect("the third request within a minute is limited");
    assert_okta_error(
        &a,
        StatusCode::TOO_MANY_REQUESTS,
        "E0000047",
        "API call exceeded rate limit due to too many requests.",
    );
    assert_eq!(a.header("x-rate-limit-remaining"), Some("0"));
    assert_okta_headers(&a);
    assert_eq!(a.headers.get_all("x-rate-limit-reset").iter().count(), 1);
    // Limits are per token.
    let b = revoke(&srv, &w.user, "", &ssws(&other)).await;
    assert_eq!(b.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn idempotent_and_durable_across_a_restart() {
    let mut srv = Server::start().await;
    let w = world(&srv).await;
    let token = srv.api_token(MANAGE, None).await;
    let q = "?oauthTokens=true";
    assert_eq!(
        revoke(&srv, &w.user, q, &ssws(&token)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        revoke(&srv, &w.user, q, &ssws(&token)).await.status,
        StatusCode::NO_CONTENT
    );
    // A session created after the revocation is alive.
    let fresh = s(&srv.session(&w.user, None, "idp").await, "id").to_owned();
    srv.restart().await;
    for id in &w.idp {
        assert_eq!(srv.session_state(id).await, "revoked");
    }
    assert!(!srv.is_active(s(&w.oauth_a, "refresh_token")).await);
    assert_eq!(srv.session_state(&fresh).await, "active");
    assert!(srv.is_active(s(&w.login_a, "login_token")).await);
    // The API token survived the restart too, and the restarted server knows which
    // accounts exist and which do not.
    assert_eq!(
        revoke(&srv, &w.user, "", &ssws(&token)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(srv.session_state(&fresh).await, "revoked");
    assert_eq!(
        revoke(&srv, "00uunknownunknown123", "", &ssws(&token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn session_probes_get_and_delete() {
    let srv = Server::start().await;
    let w = world(&srv).await;
    let token = srv.api_token(MANAGE, None).await;
    let auth = ssws(&token);
    let id = &w.idp[0];
    let a = srv
        .send(
            Method::GET,
            &format!("/api/v1/sessions/{id}"),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["userId"], w.user.as_str());
    assert_eq!(v["status"], "ACTIVE");
    assert_eq!(v["login"], "alice");
    // An OAuth grant's id is no Okta session.
    let grant = s(&w.oauth_a, "id");
    let a = srv
        .send(
            Method::GET,
            &format!("/api/v1/sessions/{grant}"),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_okta_error(
        &a,
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {grant} (Session)"),
    );
    let a = srv
        .send(
            Method::DELETE,
            &format!("/api/v1/sessions/{id}"),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(a.header("content-type").is_none());
    let a = srv
        .send(
            Method::GET,
            &format!("/api/v1/sessions/{id}"),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // The other IdP session is still there.
    let a = srv
        .send(
            Method::GET,
            &format!("/api/v1/sessions/{}", w.idp[1]),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
}
