//! Sudomimus Connect `POST /revoke-all` against a live server: the exact `revokedCount`
//! (and `{"revoked": true}` for the later Session API audience), the survival matrix
//! (same sector, other sectors, other users, PATs, identity-provider sessions), body
//! validation after authentication, disabled applications,
//! prefixes, unknown subjects, idempotency, the companions `/refresh`, `/introspect` and
//! `/logout`, and persistence (revocations and consumed `jti`s) across a restart. The
//! complete table of client-JWT rejections, their accepted edges and replay are in
//! `tests/security.rs`.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CONNECT: &str = "sudomimus-connect";
const SESSION: &str = "sudomimus-session";

fn private_pem(app: &Value) -> &str {
    s(app, "connect_private_key_pem")
}

fn scheme(jwt: &str) -> String {
    format!("SudomimusClientJWT {jwt}")
}

fn subject_body(subject: &str) -> Vec<u8> {
    json!({"subject": subject}).to_string().into_bytes()
}

/// A client JWT as the SDKs sign it, for `app`, `aud` and `body`, with a fresh `jti`.
fn sign(app: &Value, aud: &str, body: &[u8]) -> String {
    client_jwt(
        private_pem(app),
        s(app, "id"),
        aud,
        body,
        now_s(),
        30,
        &unique_jti(),
    )
}

async fn post(srv: &Server, path: &str, auth: Option<&str>, body: &[u8]) -> Answer {
    let mut h = vec![("content-type", "application/json")];
    if let Some(a) = auth {
        h.push(("authorization", a));
    }
    srv.send(Method::POST, path, &h, Some(body)).await
}

/// A correctly signed `POST /revoke-all` for `subject` from `app`.
async fn revoke_all(srv: &Server, app: &Value, aud: &str, subject: &str) -> Answer {
    let body = subject_body(subject);
    let jwt = sign(app, aud, &body);
    post(srv, "/revoke-all", Some(&scheme(&jwt)), &body).await
}

fn assert_json(a: &Answer, status: StatusCode, expected: Value) {
    assert_eq!(a.status, status, "{}", a.text());
    assert!(
        a.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{:?}",
        a.headers
    );
    assert_eq!(a.json(), expected);
}

fn assert_count(a: &Answer, n: u64) {
    assert_json(a, StatusCode::OK, json!({"revokedCount": n}));
}

fn assert_reason(a: &Answer, status: StatusCode, reason: &str) {
    assert_json(a, status, json!({"reason": reason}));
}

/// A login or OAuth session, with the refresh and access tokens it currently holds.
struct Grant {
    v: Value,
    refresh: String,
    /// Every access token it was issued (the first, and one per rotation).
    access: Vec<String>,
}

impl Grant {
    async fn new(srv: &Server, account: &str, app: &str, kind: &str) -> Grant {
        let v = srv.session(account, Some(app), kind).await;
        Grant {
            refresh: s(&v, "refresh_token").to_owned(),
            access: vec![s(&v, "access_token").to_owned()],
            v,
        }
    }
    fn subject(&self) -> &str {
        s(&self.v, "subject")
    }
}

async fn refresh(srv: &Server, token: &str) -> Answer {
    srv.send_json(
        Method::POST,
        "/refresh",
        &[],
        &json!({"refreshToken": token}),
    )
    .await
}

async fn introspect_status(srv: &Server, access: &str) -> String {
    let a = srv
        .send_json(
            Method::POST,
            "/introspect",
            &[],
            &json!({"accessToken": access}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert!(v["recommendedRecheckSeconds"].is_i64(), "{v}");
    s(&v, "status").to_owned()
}

/// The grant is alive: `/refresh` rotates it (200), and `/introspect` says "active" for
/// all its access tokens.
async fn assert_alive(srv: &Server, g: &mut Grant, what: &str) {
    let a = refresh(srv, &g.refresh).await;
    assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.text());
    let v = a.json();
    assert_eq!(v["claims"]["subject"], g.subject(), "{what}: {v}");
    g.refresh = s(&v, "refreshToken").to_owned();
    g.access.push(s(&v, "accessToken").to_owned());
    for t in &g.access {
        assert_eq!(introspect_status(srv, t).await, "active", "{what}");
    }
}

/// The grant is dead: `/refresh` is 401 `RefreshTokenRevoked`, `/introspect` says
/// "revoked", and the administrator sees none of its tokens active.
async fn assert_dead(srv: &Server, g: &Grant, what: &str) {
    let a = refresh(srv, &g.refresh).await;
    assert_reason(&a, StatusCode::UNAUTHORIZED, "RefreshTokenRevoked");
    for t in &g.access {
        assert_eq!(introspect_status(srv, t).await, "revoked", "{what}");
    }
    for t in ["access_token", "refresh_token", "login_token", "hub_jwt"] {
        if let Some(tok) = g.v[t].as_str() {
            assert!(!srv.is_active(tok).await, "{what}: {t} still active");
        }
    }
    assert_eq!(srv.session_state(s(&g.v, "id")).await, "revoked", "{what}");
}

/// Without consuming anything: the administrator sees the current refresh token active.
async fn assert_untouched(srv: &Server, g: &Grant, what: &str) {
    assert!(srv.is_active(&g.refresh).await, "{what}: refresh token");
    assert!(
        srv.is_active(g.access.last().expect("an access token"))
            .await,
        "{what}: access token"
    );
}

/// Alice in app-a (3 refresh tokens, a PAT) and app-a2 (same sector) and app-b (another
/// sector); an identity-provider session; Bob in app-a.
struct World {
    a: Value,
    a2: Value,
    b: Value,
    alice: String,
    subject: String,
    login_a: Grant,
    oauth_a1: Grant,
    oauth_a2: Grant,
    pat_a: Value,
    idp: String,
    login_a2: Grant,
    oauth_b: Grant,
    bob_a: Grant,
}

async fn world(srv: &Server) -> World {
    let a = srv.app("app-a").await;
    let a2 = srv
        .app_with(json!({"id": "app-a2", "name": "app-a2", "sector": "app-a"}))
        .await;
    let b = srv.app("app-b").await;
    assert_eq!(a["sector"], a2["sector"]);
    assert_ne!(a["sector"], b["sector"]);
    let alice = s(&srv.account("alice").await, "id").to_owned();
    let bob = s(&srv.account("bob").await, "id").to_owned();
    let login_a = Grant::new(srv, &alice, "app-a", "login").await;
    let subject = login_a.subject().to_owned();
    let w = World {
        oauth_a1: Grant::new(srv, &alice, "app-a", "oauth").await,
        oauth_a2: Grant::new(srv, &alice, "app-a", "oauth").await,
        pat_a: srv.session(&alice, Some("app-a"), "pat").await,
        idp: s(&srv.session(&alice, None, "idp").await, "id").to_owned(),
        login_a2: Grant::new(srv, &alice, "app-a2", "login").await,
        oauth_b: Grant::new(srv, &alice, "app-b", "oauth").await,
        bob_a: Grant::new(srv, &bob, "app-a", "oauth").await,
        login_a,
        subject,
        alice,
        a,
        a2,
        b,
    };
    // Pairwise subjects: one per sector, so app-a2 sees the same one, app-b another.
    assert_eq!(w.oauth_a1.subject(), w.subject);
    assert_eq!(w.pat_a["subject"], w.subject.as_str());
    assert_eq!(w.login_a2.subject(), w.subject);
    assert_ne!(w.oauth_b.subject(), w.subject);
    assert_ne!(w.bob_a.subject(), w.subject);
    w
}

/// Nothing of the world was revoked (read-only checks).
async fn assert_world_untouched(srv: &Server, w: &World, what: &str) {
    for (g, name) in [
        (&w.login_a, "login_a"),
        (&w.oauth_a1, "oauth_a1"),
        (&w.oauth_a2, "oauth_a2"),
        (&w.login_a2, "login_a2"),
        (&w.oauth_b, "oauth_b"),
        (&w.bob_a, "bob_a"),
    ] {
        assert_untouched(srv, g, &format!("{what}: {name}")).await;
    }
    assert!(
        srv.is_active(s(&w.pat_a, "personal_access_token")).await,
        "{what}: pat"
    );
    assert_eq!(srv.session_state(&w.idp).await, "active", "{what}: idp");
}

#[tokio::test]
async fn revoke_all_counts_live_refresh_tokens_and_kills_only_the_calling_apps_sessions() {
    let srv = Server::start().await;
    let mut w = world(&srv).await;
    // A fourth OAuth session, logged out before: it is no live refresh token.
    let gone = Grant::new(&srv, &w.alice, "app-a", "oauth").await;
    let a = post_logout(&srv, &gone.refresh).await;
    assert_json(&a, StatusCode::OK, json!({"revoked": true}));
    // Everything is alive before (each probe rotates its refresh token once).
    for (g, name) in [
        (&mut w.login_a, "login_a"),
        (&mut w.oauth_a1, "oauth_a1"),
        (&mut w.oauth_a2, "oauth_a2"),
        (&mut w.login_a2, "login_a2"),
        (&mut w.oauth_b, "oauth_b"),
        (&mut w.bob_a, "bob_a"),
    ] {
        assert_alive(&srv, g, name).await;
    }

    let a = revoke_all(&srv, &w.a, CONNECT, &w.subject).await;
    assert_count(&a, 3);

    assert_dead(&srv, &w.login_a, "login_a").await;
    assert_dead(&srv, &w.oauth_a1, "oauth_a1").await;
    assert_dead(&srv, &w.oauth_a2, "oauth_a2").await;
    assert_dead(&srv, &gone, "logged out before").await;
    // The same account in another application of the same sector (same subject), in
    // another sector, and another user of the same application all survive.
    assert_alive(&srv, &mut w.login_a2, "login_a2 (same sector)").await;
    assert_alive(&srv, &mut w.oauth_b, "oauth_b (other sector)").await;
    assert_alive(&srv, &mut w.bob_a, "bob_a (other user)").await;
    assert!(srv.is_active(s(&w.login_a2.v, "login_token")).await);
    // A personal access token and an identity-provider session are no refresh tokens.
    assert!(srv.is_active(s(&w.pat_a, "personal_access_token")).await);
    assert_eq!(srv.session_state(&w.idp).await, "active");
}

#[tokio::test]
async fn same_sector_app_revokes_only_its_own_sessions() {
    let srv = Server::start().await;
    let mut w = world(&srv).await;
    // app-a2 sees the same subject as app-a, but revokes only what it was issued.
    let a = revoke_all(&srv, &w.a2, CONNECT, &w.subject).await;
    assert_count(&a, 1);
    assert_dead(&srv, &w.login_a2, "login_a2").await;
    assert_alive(&srv, &mut w.login_a, "login_a").await;
    assert_alive(&srv, &mut w.oauth_a1, "oauth_a1").await;
    assert_alive(&srv, &mut w.oauth_a2, "oauth_a2").await;
    assert_alive(&srv, &mut w.oauth_b, "oauth_b").await;
    assert_alive(&srv, &mut w.bob_a, "bob_a").await;
}

#[tokio::test]
async fn session_audience_answers_revoked_true() {
    let srv = Server::start().await;
    let mut w = world(&srv).await;
    let a = revoke_all(&srv, &w.a, SESSION, &w.subject).await;
    assert_json(&a, StatusCode::OK, json!({"revoked": true}));
    assert_dead(&srv, &w.login_a, "login_a").await;
    assert_dead(&srv, &w.oauth_a1, "oauth_a1").await;
    assert_dead(&srv, &w.oauth_a2, "oauth_a2").await;
    assert_alive(&srv, &mut w.login_a2, "login_a2").await;
    assert_alive(&srv, &mut w.bob_a, "bob_a").await;
    // Nothing left to revoke, and a subject never issued: still `{"revoked": true}`.
    let a = revoke_all(&srv, &w.a, SESSION, &w.subject).await;
    assert_json(&a, StatusCode::OK, json!({"revoked": true}));
    let a = revoke_all(&srv, &w.a, SESSION, "sub_never_issued").await;
    assert_json(&a, StatusCode::OK, json!({"revoked": true}));
    assert_alive(&srv, &mut w.bob_a, "bob_a").await;
}

#[tokio::test]
async fn invalid_bodies_are_400_invalid_body_after_authentication() {
    let srv = Server::start().await;
    let w = world(&srv).await;
    let subject = w.subject.clone();
    let array = json!([subject]).to_string();
    let wrapped = json!({"subject": [subject]}).to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("{}", b"{}".to_vec()),
        ("a number", br#"{"subject": 5}"#.to_vec()),
        ("null", br#"{"subject": null}"#.to_vec()),
        ("an array subject", wrapped.into_bytes()),
        ("not JSON", b"not json".to_vec()),
        ("truncated JSON", br#"{"subject": ""#.to_vec()),
        ("empty body", Vec::new()),
        ("JSON null", b"null".to_vec()),
        ("a JSON string", format!("\"{subject}\"").into_bytes()),
        ("a JSON array holding the subject", array.into_bytes()),
    ];
    for (what, body) in &cases {
        let jwt = sign(&w.a, CONNECT, body);
        let a = post(&srv, "/revoke-all", Some(&scheme(&jwt)), body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", a.text());
        assert_reason(&a, StatusCode::BAD_REQUEST, "InvalidBody");
    }
    assert_world_untouched(&srv, &w, "after the invalid bodies").await;
    assert_count(&revoke_all(&srv, &w.a, CONNECT, &w.subject).await, 3);
}

#[tokio::test]
async fn a_disabled_application_is_403_and_revokes_nothing() {
    let srv = Server::start().await;
    let w = world(&srv).await;
    let patch = |enabled: bool| {
        srv.admin(
            Method::PATCH,
            "/admin/v1/applications/app-a",
            Some(json!({"enabled": enabled})),
        )
    };
    let a = patch(false).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["enabled"], false);
    let a = revoke_all(&srv, &w.a, CONNECT, &w.subject).await;
    assert_reason(&a, StatusCode::FORBIDDEN, "ApplicationDisabled");
    assert_world_untouched(&srv, &w, "disabled").await;
    // Other applications keep working.
    assert_count(
        &revoke_all(&srv, &w.b, CONNECT, w.oauth_b.subject()).await,
        1,
    );
    let a = patch(true).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_count(&revoke_all(&srv, &w.a, CONNECT, &w.subject).await, 3);
}

#[tokio::test]
async fn a_prefix_naming_another_application_is_403() {
    let srv = Server::start().await;
    let w = world(&srv).await;
    let body = subject_body(&w.subject);
    for path in ["/apps/app-b/revoke-all", "/apps/app-a2/revoke-all"] {
        let jwt = sign(&w.a, CONNECT, &body);
        let a = post(&srv, path, Some(&scheme(&jwt)), &body).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}: {}", a.text());
        assert!(a.json()["reason"].is_string(), "{}", a.text());
    }
    assert_world_untouched(&srv, &w, "after the prefix mismatch").await;
    let jwt = sign(&w.a, CONNECT, &body);
    let a = post(&srv, "/apps/app-a/revoke-all", Some(&scheme(&jwt)), &body).await;
    assert_count(&a, 3);
}

#[tokio::test]
async fn unknown_and_foreign_subjects_revoke_nothing_and_repeats_count_zero() {
    let srv = Server::start().await;
    let mut w = world(&srv).await;
    let bob_b = Grant::new(&srv, s(&w.bob_a.v, "account"), "app-b", "oauth").await;
    for subject in [
        "sub_never_issued",
        "",
        w.oauth_b.subject(), // Alice's subject in another sector
        bob_b.subject(),     // Bob's subject in another sector
        &w.alice,            // the internal account id is no subject
    ] {
        let a = revoke_all(&srv, &w.a, CONNECT, subject).await;
        assert_count(&a, 0);
    }
    assert_world_untouched(&srv, &w, "after unknown subjects").await;
    assert_untouched(&srv, &bob_b, "bob_b").await;

    assert_count(&revoke_all(&srv, &w.a, CONNECT, &w.subject).await, 3);
    assert_count(&revoke_all(&srv, &w.a, CONNECT, &w.subject).await, 0);
    // A session issued after the revocation is alive, and the next call counts it.
    let mut fresh = Grant::new(&srv, &w.alice, "app-a", "login").await;
    assert_alive(&srv, &mut fresh, "fresh").await;
    assert_count(&revoke_all(&srv, &w.a, CONNECT, &w.subject).await, 1);
    assert_dead(&srv, &fresh, "fresh").await;
    assert_alive(&srv, &mut w.bob_a, "bob_a").await;
    // Bob's own subject in app-a revokes only Bob.
    assert_count(&revoke_all(&srv, &w.a, CONNECT, w.bob_a.subject()).await, 1);
    assert_dead(&srv, &w.bob_a, "bob_a").await;
    assert_alive(&srv, &mut w.login_a2, "login_a2").await;
}

async fn post_logout(srv: &Server, token: &str) -> Answer {
    srv.send_json(
        Method::POST,
        "/logout",
        &[],
        &json!({"refreshToken": token}),
    )
    .await
}

#[tokio::test]
async fn refresh_rotation_is_strict_and_reuse_revokes_the_family() {
    let srv = Server::start().await;
    let mut w = world(&srv).await;
    let r0 = w.oauth_a1.refresh.clone();
    let a0 = w.oauth_a1.access[0].clone();
    let a = refresh(&srv, &r0).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    let r1 = s(&v, "refreshToken").to_owned();
    let a1 = s(&v, "accessToken").to_owned();
    assert_ne!(r1, r0);
    assert_ne!(a1, a0);
    assert_eq!(v["claims"]["subject"], w.subject.as_str());
    let a = refresh(&srv, &r1).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let r2 = s(&a.json(), "refreshToken").to_owned();
    // Re-presenting a consumed token: the family is compromised and revoked.
    let a = refresh(&srv, &r0).await;
    assert_reason(
        &a,
        StatusCode::UNAUTHORIZED,
        "RefreshTokenFamilyCompromised",
    );
    let a = refresh(&srv, &r2).await;
    assert_reason(&a, StatusCode::UNAUTHORIZED, "RefreshTokenRevoked");
    for t in [&a0, &a1] {
        assert_eq!(introspect_status(&srv, t).await, "revoked");
    }
    assert_eq!(srv.session_state(s(&w.oauth_a1.v, "id")).await, "revoked");
    // Other sessions of the account are not part of that family.
    assert_alive(&srv, &mut w.oauth_a2, "oauth_a2").await;
    assert_alive(&srv, &mut w.login_a, "login_a").await;
    // Unknown tokens.
    let a = refresh(&srv, "no-such-refresh-token").await;
    assert_reason(&a, StatusCode::UNAUTHORIZED, "RefreshTokenNotFound");
    assert_eq!(
        introspect_status(&srv, "no-such-access-token").await,
        "not_found"
    );
    // The family is dead: revoke-all counts only the two live ones.
    assert_count(&revoke_all(&srv, &w.a, CONNECT, &w.subject).await, 2);
}

#[tokio::test]
async fn logout_is_idempotent() {
    let srv = Server::start().await;
    let mut w = world(&srv).await;
    let g = &w.oauth_a1;
    let a = post_logout(&srv, &g.refresh).await;
    assert_json(&a, StatusCode::OK, json!({"revoked": true}));
    let a = post_logout(&srv, &g.refresh).await;
    assert_json(&a, StatusCode::OK, json!({"revoked": true}));
    assert_dead(&srv, &w.oauth_a1, "logged out").await;
    let a = post_logout(&srv, "no-such-refresh-token").await;
    assert_json(&a, StatusCode::OK, json!({"revoked": false}));
    // An access token is no refresh token.
    let a = post_logout(&srv, &w.oauth_a2.access[0]).await;
    assert_json(&a, StatusCode::OK, json!({"revoked": false}));
    assert_alive(&srv, &mut w.oauth_a2, "oauth_a2").await;
    assert_alive(&srv, &mut w.login_a, "login_a").await;
    // After a revoke-all, logging out is still `true`.
    assert_count(&revoke_all(&srv, &w.a, CONNECT, &w.subject).await, 2);
    let a = post_logout(&srv, &w.login_a.refresh).await;
    assert_json(&a, StatusCode::OK, json!({"revoked": true}));
}

#[tokio::test]
async fn revocations_and_consumed_jtis_survive_a_restart() {
    let mut srv = Server::start().await;
    let mut w = world(&srv).await;
    let body = subject_body(&w.subject);
    let jwt = sign(&w.a, CONNECT, &body);
    assert_count(
        &post(&srv, "/revoke-all", Some(&scheme(&jwt)), &body).await,
        3,
    );
    // A zero-count call consumes its jti too.
    let body0 = subject_body("sub_nobody");
    let jwt0 = sign(&w.a, CONNECT, &body0);
    assert_count(
        &post(&srv, "/revoke-all", Some(&scheme(&jwt0)), &body0).await,
        0,
    );
    let mut fresh = Grant::new(&srv, &w.alice, "app-a", "oauth").await;
    srv.restart().await;

    assert_dead(&srv, &w.login_a, "login_a").await;
    assert_dead(&srv, &w.oauth_a1, "oauth_a1").await;
    assert_dead(&srv, &w.oauth_a2, "oauth_a2").await;
    assert_alive(&srv, &mut fresh, "fresh").await;
    assert_alive(&srv, &mut w.login_a2, "login_a2").await;
    assert_alive(&srv, &mut w.bob_a, "bob_a").await;
    for (jwt, body) in [(&jwt, &body), (&jwt0, &body0)] {
        let a = post(&srv, "/revoke-all", Some(&scheme(jwt)), body).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text());
        assert!(a.body.is_empty(), "{}", a.text());
    }
    assert_alive(&srv, &mut fresh, "fresh after the replays").await;
    // The application's key survived too.
    assert_count(&revoke_all(&srv, &w.a, CONNECT, &w.subject).await, 1);
    assert_dead(&srv, &fresh, "fresh").await;
}

#[tokio::test]
async fn introspect_reports_the_session_past_the_access_tokens_own_exp() {
    let srv = Server::start().await;
    let w = world(&srv).await;
    let access = w.oauth_a1.access[0].clone();
    // Two hours on: the access token's hour is over, the OAuth session is not.
    srv.clock.advance(2 * 3_600_000);
    assert_eq!(introspect_status(&srv, &access).await, "active");
    let body = subject_body(&w.subject);
    let jwt = client_jwt(
        private_pem(&w.a),
        "app-a",
        CONNECT,
        &body,
        now_s() + 7200,
        30,
        &unique_jti(),
    );
    assert_count(
        &post(&srv, "/revoke-all", Some(&scheme(&jwt)), &body).await,
        3,
    );
    assert_eq!(introspect_status(&srv, &access).await, "revoked");
}

#[tokio::test]
async fn wrong_method_is_405_in_connects_format() {
    let srv = Server::start().await;
    let a = srv.send(Method::GET, "/revoke-all", &[], None).await;
    assert_reason(&a, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    assert_eq!(a.header("allow"), Some("POST"));
}
