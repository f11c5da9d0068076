//! Flashback `POST /sessions/revoke-all` against a live server: the exact success body, 401
//! for every bad bearer with nothing revoked, the bodies the samples send, the survival
//! matrix (nothing of the user in the application survives, the caller's own session
//! included) probed through `GET /sessions`, `POST /user/refresh` and admin introspection,
//! the 401 on a second call, tenant isolation under `/apps/{anchor}`, durability across a
//! restart, and the companions: login, refresh rotation with reuse detection, revoke-one.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sessiond::domain::Clock;

const REVOKED_ALL: &str = r#"{"success":true,"message":"All sessions revoked successfully"}"#;
const REVOKED_ONE: &str = r#"{"success":true,"message":"Session revoked successfully"}"#;
const NOT_FOUND: &str = r#"{"success":false,"error":"Session not found"}"#;
/// Flashback documents access tokens that expire after one hour.
const HOUR_MS: i64 = 3_600_000;

fn path(app: &str, rest: &str) -> String {
    format!("/apps/{app}/{rest}")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An application without a Connect key pair (key generation is slow and unused here).
async fn new_app(srv: &Server, id: &str) {
    srv.app_with(json!({"id": id, "name": id, "generate_connect_key": false}))
        .await;
}

async fn user(srv: &Server, login: &str) -> String {
    s(&srv.account(login).await, "id").to_owned()
}

/// What `POST /user/login` hands out.
#[derive(Debug, Clone)]
struct Login {
    access: String,
    refresh: String,
    /// `tokenId`: the session's id.
    id: String,
}

async fn login(srv: &Server, app: &str, email: &str, password: &str) -> Answer {
    srv.send_json(
        Method::POST,
        &path(app, "user/login"),
        &[],
        &json!({"email": email, "password": password}),
    )
    .await
}

async fn log_in(srv: &Server, app: &str, login_name: &str) -> Login {
    let a = login(
        srv,
        app,
        &format!("{login_name}@example.com"),
        &format!("pw-{login_name}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    Login {
        access: s(&v, "accessToken").to_owned(),
        refresh: s(&v, "refreshToken").to_owned(),
        id: s(&v, "tokenId").to_owned(),
    }
}

/// The call as the documented Python sample sends it: no body at all.
async fn revoke_all(srv: &Server, app: &str, access: &str) -> Answer {
    srv.send(
        Method::POST,
        &path(app, "sessions/revoke-all"),
        &[
            ("authorization", &bearer(access)),
            ("accept", "application/json"),
        ],
        None,
    )
    .await
}

async fn list(srv: &Server, app: &str, access: &str) -> Answer {
    srv.send(
        Method::GET,
        &path(app, "sessions"),
        &[("authorization", &bearer(access))],
        None,
    )
    .await
}

/// The ids `GET /sessions` lists (asserting it answers 200).
async fn listed(srv: &Server, app: &str, access: &str) -> Vec<String> {
    let a = list(srv, app, access).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(v["success"], json!(true));
    let mut ids: Vec<String> = v["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|x| s(x, "id").to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

async fn refresh(srv: &Server, app: &str, refresh_token: &str) -> Answer {
    srv.send_json(
        Method::POST,
        &path(app, "user/refresh"),
        &[],
        &json!({"refreshToken": refresh_token}),
    )
    .await
}

async fn revoke_one(srv: &Server, app: &str, access: &str, id: &str) -> Answer {
    srv.send(
        Method::POST,
        &path(app, &format!("sessions/{id}/revoke")),
        &[("authorization", &bearer(access))],
        None,
    )
    .await
}

fn assert_unauthorized(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}: {}", a.text());
    assert!(
        a.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{what}"
    );
    assert_eq!(a.json()["success"], json!(false), "{what}");
}

fn assert_body(a: &Answer, status: StatusCode, body: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    assert!(
        a.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json")
    );
    assert_eq!(a.text(), body);
}

/// A session that is fully alive: its access token lists sessions and its refresh token is
/// active (checked without rotating it).
async fn assert_alive(srv: &Server, app: &str, l: &Login, what: &str) {
    let a = list(srv, app, &l.access).await;
    assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.text());
    assert!(srv.is_active(&l.refresh).await, "{what}: refresh token");
    assert_eq!(srv.session_state(&l.id).await, "active", "{what}");
}

/// A session that is dead: neither its access token nor its refresh token works.
async fn assert_dead(srv: &Server, app: &str, l: &Login, what: &str) {
    assert_unauthorized(&list(srv, app, &l.access).await, what);
    assert_unauthorized(&refresh(srv, app, &l.refresh).await, what);
    assert_eq!(srv.session_state(&l.id).await, "revoked", "{what}");
}

#[tokio::test]
async fn revoke_all_is_the_documented_200_and_kills_the_callers_own_session() {
    let srv = Server::start().await;
    new_app(&srv, "fb").await;
    user(&srv, "alice").await;
    let one = log_in(&srv, "fb", "alice").await;
    let two = log_in(&srv, "fb", "alice").await;
    // Before: a second login's session appears in the list.
    assert_eq!(
        listed(&srv, "fb", &one.access).await,
        sorted(&[&one.id, &two.id])
    );
    let a = list(&srv, "fb", &two.access).await;
    for item in a.json()["sessions"].as_array().expect("sessions") {
        for field in ["id", "deviceName", "ipAddress", "location", "loginMethod"] {
            assert!(item[field].is_string(), "{field} in {item}");
        }
        for field in ["startedAt", "lastActivity", "expiresAt"] {
            let t = s(item, field);
            t.parse::<jiff::Timestamp>()
                .unwrap_or_else(|e| panic!("{field} {t}: {e}"));
        }
    }

    let a = revoke_all(&srv, "fb", &one.access).await;
    assert_body(&a, StatusCode::OK, REVOKED_ALL);
    let v = a.json();
    assert_eq!(v["success"], json!(true));
    // Everything died, the caller's own session included.
    assert_dead(&srv, "fb", &one, "the caller").await;
    assert_dead(&srv, "fb", &two, "the other login").await;
}

#[tokio::test]
async fn login_answers_the_documented_fields_and_error_codes() {
    let srv = Server::start().await;
    new_app(&srv, "fb").await;
    let alice = user(&srv, "alice").await;
    let before = srv.clock.now();
    let a = login(&srv, "fb", "alice@example.com", "pw-alice").await;
    let after = srv.clock.now();
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(v["success"], json!(true), "{v}");
    let access = s(&v, "accessToken");
    let refresh_token = s(&v, "refreshToken");
    assert!(!access.is_empty() && !refresh_token.is_empty() && access != refresh_token);
    let token_id = s(&v, "tokenId");
    // expiresAt: an integer timestamp (milliseconds), one hour after the login.
    let expires = v["expiresAt"].as_i64().expect("integer expiresAt");
    assert!(
        (before + HOUR_MS..=after + HOUR_MS).contains(&expires),
        "{before} {expires} {after}"
    );
    assert_eq!(v["user"]["id"], alice.as_str(), "{v}");
    assert_eq!(v["user"]["email"], "alice@example.com", "{v}");
    assert!(
        v["user"]["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{v}"
    );
    assert!(
        v["user"]["orgId"].as_str().is_some_and(|n| !n.is_empty()),
        "{v}"
    );
    // tokenId names the session the tokens belong to.
    let i = srv.introspect(access).await;
    assert_eq!(i["session"], token_id);
    assert_eq!(i["account"], alice.as_str());
    assert_eq!(i["application"], "fb");
    assert_eq!(srv.introspect(refresh_token).await["session"], token_id);
    assert_eq!(listed(&srv, "fb", access).await, sorted(&[token_id]));

    for (email, password, code) in [
        ("nobody@example.com", "pw-alice", "USER_NOT_FOUND"),
        ("alice@example.com", "wrong", "INVALID_PASSWORD"),
        ("alice@example.com", "", "INVALID_PASSWORD"),
    ] {
        let a = login(&srv, "fb", email, password).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{email}: {}", a.text());
        assert_eq!(a.json(), json!({"success": false, "error_code": code}));
    }
    // A body without both fields is rejected.
    for body in [json!({}), json!({"email": "alice@example.com"})] {
        let a = srv
            .send_json(Method::POST, &path("fb", "user/login"), &[], &body)
            .await;
        assert!(a.status.is_client_error(), "{body}: {}", a.status);
        assert_eq!(a.json()["success"], json!(false));
    }
    // Failed logins created no sessions.
    let a = srv
        .admin(
            Method::GET,
            &format!("/admin/v1/accounts/{alice}/sessions"),
            None,
        )
        .await;
    assert_eq!(a.json()["sessions"].as_array().expect("sessions").len(), 1);
}

#[tokio::test]
async fn every_bad_bearer_is_401_and_revokes_nothing() {
    let srv = Server::start().await;
    new_app(&srv, "fb").await;
    new_app(&srv, "other").await;
    let alice = user(&srv, "alice").await;
    let one = log_in(&srv, "fb", "alice").await;
    let two = log_in(&srv, "fb", "alice").await;
    let elsewhere = log_in(&srv, "other", "alice").await;
    let adm = srv.session(&alice, Some("fb"), "login").await;
    // A revoked access token: its session revoked through the API.
    let gone = log_in(&srv, "fb", "alice").await;
    assert_body(
        &revoke_one(&srv, "fb", &one.access, &gone.id).await,
        StatusCode::OK,
        REVOKED_ONE,
    );

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization", None),
        ("an empty bearer", Some("Bearer ".into())),
        ("a bare scheme", Some("Bearer".into())),
        ("another scheme", Some(format!("Basic {}", one.access))),
        ("no scheme", Some(one.access.clone())),
        ("an unknown token", Some(bearer("not-a-token"))),
        (
            "a token with a suffix",
            Some(bearer(&format!("{}x", one.access))),
        ),
        ("a revoked token", Some(bearer(&gone.access))),
        (
            "another application's token",
            Some(bearer(&elsewhere.access)),
        ),
        ("a refresh token", Some(bearer(&one.refresh))),
        ("a login token", Some(bearer(s(&adm, "login_token")))),
        ("a hub JWT", Some(bearer(s(&adm, "hub_jwt")))),
    ];
    for (what, auth) in &cases {
        let mut h: Vec<(&str, &str)> = vec![("accept", "application/json")];
        if let Some(v) = auth {
            h.push(("authorization", v));
        }
        let a = srv
            .send(Method::POST, &path("fb", "sessions/revoke-all"), &h, None)
            .await;
        assert_unauthorized(&a, what);
        h.push(("content-type", "application/json"));
        let a = srv
            .send(
                Method::POST,
                &path("fb", "sessions/revoke-all"),
                &h,
                Some(b"{}"),
            )
            .await;
        assert_unauthorized(&a, what);
        let a = srv
            .send(Method::GET, &path("fb", "sessions"), &h, None)
            .await;
        assert_unauthorized(&a, what);
        let a = srv
            .send(
                Method::POST,
                &path("fb", &format!("sessions/{}/revoke", two.id)),
                &h,
                None,
            )
            .await;
        assert_unauthorized(&a, what);
    }

    // Wrong method: 405 with Allow, in Flashback's envelope.
    for (method, rest, allow) in [
        (Method::GET, "sessions/revoke-all", "POST"),
        (Method::PUT, "sessions/revoke-all", "POST"),
        (Method::DELETE, "sessions/revoke-all", "POST"),
        (Method::DELETE, "sessions", "GET"),
        (Method::GET, "user/login", "POST"),
        (Method::GET, "user/refresh", "POST"),
    ] {
        let a = srv
            .send(
                method.clone(),
                &path("fb", rest),
                &[("authorization", &bearer(&one.access))],
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {rest}");
        assert_eq!(a.header("allow"), Some(allow), "{method} {rest}");
        assert_eq!(a.json()["success"], json!(false));
    }
    // An application that does not exist.
    let a = revoke_all(&srv, "nope", &one.access).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    assert_eq!(a.json()["success"], json!(false));

    // None of that revoked anything.
    assert_alive(&srv, "fb", &one, "one").await;
    assert_alive(&srv, "fb", &two, "two").await;
    assert_alive(&srv, "other", &elsewhere, "the other app").await;
    assert!(srv.is_active(s(&adm, "login_token")).await);
    assert!(srv.is_active(s(&adm, "access_token")).await);
    assert_eq!(
        listed(&srv, "fb", &one.access).await,
        sorted(&[&one.id, &two.id, s(&adm, "id")])
    );
}

/// What a client sends: a description, its Content-Type header if any, its body.
type BodyVariant<'a> = (&'a str, Option<(&'a str, &'a str)>, Option<&'a [u8]>);

#[tokio::test]
async fn accepts_no_body_an_empty_body_and_an_empty_object() {
    let srv = Server::start().await;
    new_app(&srv, "fb").await;
    user(&srv, "alice").await;
    let json_ct = ("content-type", "application/json");
    let variants: [BodyVariant; 5] = [
        ("no body (curl, Python)", None, None),
        ("an empty body", None, Some(b"")),
        (
            "an empty body under application/json",
            Some(json_ct),
            Some(b""),
        ),
        ("{} (PHP)", Some(json_ct), Some(b"{}")),
        (
            "an ignored JSON object",
            Some(json_ct),
            Some(br#"{"all":true}"#),
        ),
    ];
    for (what, ct, body) in variants {
        let caller = log_in(&srv, "fb", "alice").await;
        let other = log_in(&srv, "fb", "alice").await;
        let auth = bearer(&caller.access);
        let mut h = vec![
            ("authorization", auth.as_str()),
            ("accept", "application/json"),
        ];
        h.extend(ct);
        let a = srv
            .send(Method::POST, &path("fb", "sessions/revoke-all"), &h, body)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.text());
        assert_body(&a, StatusCode::OK, REVOKED_ALL);
        assert_dead(&srv, "fb", &caller, what).await;
        assert_dead(&srv, "fb", &other, what).await;
    }
}

#[tokio::test]
async fn nothing_of_the_user_in_the_application_survives_and_nothing_else_dies() {
    let srv = Server::start().await;
    new_app(&srv, "fb").await;
    new_app(&srv, "other").await;
    let alice = user(&srv, "alice").await;
    let bob = user(&srv, "bob").await;
    let one = log_in(&srv, "fb", "alice").await;
    let two = log_in(&srv, "fb", "alice").await;
    let oauth = srv.session(&alice, Some("fb"), "oauth").await;
    let pat = srv.session(&alice, Some("fb"), "pat").await;
    let adm_login = srv.session(&alice, Some("fb"), "login").await;
    let idp = srv.session(&alice, None, "idp").await;
    let elsewhere = log_in(&srv, "other", "alice").await;
    let elsewhere_2 = log_in(&srv, "other", "alice").await;
    let bob_1 = log_in(&srv, "fb", "bob").await;
    let bob_2 = log_in(&srv, "fb", "bob").await;
    let bob_pat = srv.session(&bob, Some("fb"), "pat").await;

    // GET /sessions lists the user's sessions in this application, and only those
    // (personal access tokens are no Flashback sessions: they have no expiry to show).
    assert_eq!(
        listed(&srv, "fb", &two.access).await,
        sorted(&[&one.id, &two.id, s(&oauth, "id"), s(&adm_login, "id")])
    );
    assert_eq!(
        listed(&srv, "other", &elsewhere.access).await,
        sorted(&[&elsewhere.id, &elsewhere_2.id])
    );

    assert_body(
        &revoke_all(&srv, "fb", &one.access).await,
        StatusCode::OK,
        REVOKED_ALL,
    );

    // Dead: every session of alice in fb, the caller's own included.
    assert_dead(&srv, "fb", &one, "the caller").await;
    assert_dead(&srv, "fb", &two, "the second login").await;
    for (sess, tokens) in [
        (&oauth, &["access_token", "refresh_token", "hub_jwt"][..]),
        (&pat, &["personal_access_token"][..]),
        (
            &adm_login,
            &["access_token", "refresh_token", "login_token", "hub_jwt"][..],
        ),
    ] {
        assert_eq!(srv.session_state(s(sess, "id")).await, "revoked");
        for t in tokens {
            assert!(!srv.is_active(s(sess, t)).await, "{t}");
        }
    }
    assert_unauthorized(
        &list(&srv, "fb", s(&oauth, "access_token")).await,
        "the OAuth grant's access token",
    );
    // Alive: alice elsewhere (and her identity-provider session), bob everywhere.
    assert_alive(&srv, "other", &elsewhere, "alice in other").await;
    assert_alive(&srv, "other", &elsewhere_2, "alice's second in other").await;
    assert_eq!(srv.session_state(s(&idp, "id")).await, "active");
    assert_alive(&srv, "fb", &bob_1, "bob").await;
    assert_alive(&srv, "fb", &bob_2, "bob's second").await;
    assert!(srv.is_active(s(&bob_pat, "personal_access_token")).await);
    assert_eq!(
        listed(&srv, "fb", &bob_1.access).await,
        sorted(&[&bob_1.id, &bob_2.id])
    );
    let r = refresh(&srv, "other", &elsewhere.refresh).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // A login made after the revocation is alive and sees only itself.
    let fresh = log_in(&srv, "fb", "alice").await;
    assert_eq!(
        listed(&srv, "fb", &fresh.access).await,
        sorted(&[&fresh.id])
    );
}

#[tokio::test]
async fn a_second_call_with_the_now_dead_token_is_401() {
    let srv = Server::start().await;
    new_app(&srv, "fb").await;
    user(&srv, "alice").await;
    let one = log_in(&srv, "fb", "alice").await;
    let two = log_in(&srv, "fb", "alice").await;
    assert_body(
        &revoke_all(&srv, "fb", &one.access).await,
        StatusCode::OK,
        REVOKED_ALL,
    );
    // Our documented reading: the caller's own token died with the first call.
    assert_unauthorized(&revoke_all(&srv, "fb", &one.access).await, "second call");
    assert_unauthorized(&revoke_all(&srv, "fb", &two.access).await, "other token");
    // A new login can call it again.
    let three = log_in(&srv, "fb", "alice").await;
    assert_body(
        &revoke_all(&srv, "fb", &three.access).await,
        StatusCode::OK,
        REVOKED_ALL,
    );
    assert_dead(&srv, "fb", &three, "the third login").await;
}

#[tokio::test]
async fn applications_are_isolated_and_no_prefix_means_the_first_application() {
    let srv = Server::start().await;
    new_app(&srv, "fb").await;
    // Created second but sorting first: "first" means first created.
    new_app(&srv, "aux").await;
    user(&srv, "alice").await;
    let here = log_in(&srv, "fb", "alice").await;
    let here_2 = log_in(&srv, "fb", "alice").await;
    let there = log_in(&srv, "aux", "alice").await;
    let there_2 = log_in(&srv, "aux", "alice").await;

    // fb's tokens never work under /apps/aux.
    assert_unauthorized(&revoke_all(&srv, "aux", &here.access).await, "revoke-all");
    assert_unauthorized(&list(&srv, "aux", &here.access).await, "list");
    assert_unauthorized(
        &revoke_one(&srv, "aux", &here.access, &there.id).await,
        "revoke-one",
    );
    assert_unauthorized(&refresh(&srv, "aux", &here.refresh).await, "refresh");
    // ... and aux's tokens cannot revoke fb's sessions by id.
    let a = revoke_one(&srv, "aux", &there.access, &here.id).await;
    assert_body(&a, StatusCode::NOT_FOUND, NOT_FOUND);
    assert_alive(&srv, "fb", &here, "after the cross-app attempts").await;
    // The cross-app refresh attempt consumed nothing: the token still rotates in fb.
    let r = refresh(&srv, "fb", &here.refresh).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let here = Login {
        access: s(&r.json(), "accessToken").to_owned(),
        refresh: s(&r.json(), "refreshToken").to_owned(),
        id: here.id,
    };

    // Revoking in fb never touches aux.
    assert_body(
        &revoke_all(&srv, "fb", &here.access).await,
        StatusCode::OK,
        REVOKED_ALL,
    );
    assert_dead(&srv, "fb", &here, "fb").await;
    assert_dead(&srv, "fb", &here_2, "fb second").await;
    assert_alive(&srv, "aux", &there, "aux").await;
    assert_alive(&srv, "aux", &there_2, "aux second").await;
    assert_eq!(
        listed(&srv, "aux", &there.access).await,
        sorted(&[&there.id, &there_2.id])
    );

    // Without a prefix, requests go to the first application created (fb, although "aux" sorts first).
    let a = srv
        .send_json(
            Method::POST,
            "/user/login",
            &[],
            &json!({"email": "alice@example.com", "password": "pw-alice"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let plain_access = s(&a.json(), "accessToken").to_owned();
    assert_eq!(srv.introspect(&plain_access).await["application"], "fb");
    let a = srv
        .send(
            Method::GET,
            "/sessions",
            &[("authorization", &bearer(&there.access))],
            None,
        )
        .await;
    assert_unauthorized(&a, "aux's token without a prefix");
    let a = srv
        .send(
            Method::POST,
            "/sessions/revoke-all",
            &[("authorization", &bearer(&plain_access))],
            None,
        )
        .await;
    assert_body(&a, StatusCode::OK, REVOKED_ALL);
    assert!(!srv.is_active(&plain_access).await);
    assert_alive(&srv, "aux", &there, "aux after the unprefixed call").await;
}

#[tokio::test]
async fn revocations_and_survivors_persist_across_a_restart() {
    let mut srv = Server::start().await;
    new_app(&srv, "fb").await;
    new_app(&srv, "other").await;
    user(&srv, "alice").await;
    user(&srv, "bob").await;
    let one = log_in(&srv, "fb", "alice").await;
    let two = log_in(&srv, "fb", "alice").await;
    let elsewhere = log_in(&srv, "other", "alice").await;
    let bob = log_in(&srv, "fb", "bob").await;
    assert_body(
        &revoke_all(&srv, "fb", &one.access).await,
        StatusCode::OK,
        REVOKED_ALL,
    );

    srv.restart().await;

    assert_dead(&srv, "fb", &one, "the caller").await;
    assert_dead(&srv, "fb", &two, "the second login").await;
    assert_alive(&srv, "other", &elsewhere, "alice in other").await;
    assert_alive(&srv, "fb", &bob, "bob").await;
    assert_unauthorized(&revoke_all(&srv, "fb", &one.access).await, "after restart");
    let fresh = log_in(&srv, "fb", "alice").await;
    assert_eq!(
        listed(&srv, "fb", &fresh.access).await,
        sorted(&[&fresh.id])
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_session() {
    let srv = Server::start().await;
    new_app(&srv, "fb").await;
    user(&srv, "alice").await;
    let one = log_in(&srv, "fb", "alice").await;
    let two = log_in(&srv, "fb", "alice").await;

    let before = srv.clock.now();
    let a = refresh(&srv, "fb", &one.refresh).await;
    let after = srv.clock.now();
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(v["success"], json!(true), "{v}");
    assert_eq!(v["tokenId"], one.id.as_str(), "{v}");
    let expires = v["expiresAt"].as_i64().expect("integer expiresAt");
    assert!((before + HOUR_MS..=after + HOUR_MS).contains(&expires));
    let second = Login {
        access: s(&v, "accessToken").to_owned(),
        refresh: s(&v, "refreshToken").to_owned(),
        id: one.id.clone(),
    };
    assert_ne!(second.access, one.access);
    assert_ne!(second.refresh, one.refresh);
    assert_eq!(
        listed(&srv, "fb", &second.access).await,
        sorted(&[&one.id, &two.id])
    );
    // The rotated token rotates again.
    let a = refresh(&srv, "fb", &second.refresh).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let third = Login {
        access: s(&a.json(), "accessToken").to_owned(),
        refresh: s(&a.json(), "refreshToken").to_owned(),
        id: one.id.clone(),
    };
    assert_alive(&srv, "fb", &third, "after two rotations").await;

    // Reusing a rotated-away refresh token is refused and kills the whole family.
    assert_unauthorized(&refresh(&srv, "fb", &one.refresh).await, "reuse");
    assert_dead(&srv, "fb", &third, "the family after reuse").await;
    assert_unauthorized(&list(&srv, "fb", &second.access).await, "older access");
    assert_unauthorized(&refresh(&srv, "fb", &second.refresh).await, "older refresh");
    // The user's other session is untouched.
    assert_alive(&srv, "fb", &two, "the other session").await;

    // Unknown or missing refresh tokens.
    assert_unauthorized(&refresh(&srv, "fb", "not-a-token").await, "unknown");
    assert_unauthorized(&refresh(&srv, "fb", &two.access).await, "an access token");
    let a = srv
        .send_json(Method::POST, &path("fb", "user/refresh"), &[], &json!({}))
        .await;
    assert!(a.status.is_client_error(), "{}", a.status);
    assert_eq!(a.json()["success"], json!(false));
    assert_alive(&srv, "fb", &two, "after the failed refreshes").await;
}

#[tokio::test]
async fn revoke_one_revokes_exactly_that_session_of_the_caller() {
    let srv = Server::start().await;
    new_app(&srv, "fb").await;
    new_app(&srv, "other").await;
    user(&srv, "alice").await;
    user(&srv, "bob").await;
    let one = log_in(&srv, "fb", "alice").await;
    let two = log_in(&srv, "fb", "alice").await;
    let three = log_in(&srv, "fb", "alice").await;
    let elsewhere = log_in(&srv, "other", "alice").await;
    let bob = log_in(&srv, "fb", "bob").await;

    let a = revoke_one(&srv, "fb", &one.access, &two.id).await;
    assert_body(&a, StatusCode::OK, REVOKED_ONE);
    assert_dead(&srv, "fb", &two, "the revoked session").await;
    assert_alive(&srv, "fb", &one, "the caller").await;
    assert_alive(&srv, "fb", &three, "the third").await;
    assert_eq!(
        listed(&srv, "fb", &one.access).await,
        sorted(&[&one.id, &three.id])
    );

    // Already revoked, unknown, malformed, another user's, another application's: 404.
    let unknown = unique_jti();
    for (what, id) in [
        ("already revoked", two.id.as_str()),
        ("unknown", unknown.as_str()),
        ("malformed", "not-an-id"),
        ("another user's", bob.id.as_str()),
        ("in another application", elsewhere.id.as_str()),
    ] {
        let a = revoke_one(&srv, "fb", &one.access, id).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{what}: {}", a.text());
        assert_body(&a, StatusCode::NOT_FOUND, NOT_FOUND);
    }
    assert_alive(&srv, "fb", &bob, "bob").await;
    assert_alive(&srv, "other", &elsewhere, "alice in other").await;
    // A revoked session's token cannot revoke anything.
    assert_unauthorized(
        &revoke_one(&srv, "fb", &two.access, &three.id).await,
        "dead caller",
    );
    assert_alive(&srv, "fb", &three, "the third").await;
    // The caller may revoke its own session.
    let a = revoke_one(&srv, "fb", &three.access, &three.id).await;
    assert_body(&a, StatusCode::OK, REVOKED_ONE);
    assert_dead(&srv, "fb", &three, "the self-revoked").await;
    assert_alive(&srv, "fb", &one, "the caller").await;
}

#[tokio::test]
async fn an_expired_access_token_is_401_and_a_refreshed_one_revokes_all() {
    let srv = Server::start().await;
    new_app(&srv, "fb").await;
    user(&srv, "alice").await;
    let one = log_in(&srv, "fb", "alice").await;
    let two = log_in(&srv, "fb", "alice").await;
    // Access tokens live one hour.
    srv.clock.advance(HOUR_MS + 1_000);
    assert_unauthorized(&revoke_all(&srv, "fb", &one.access).await, "expired");
    assert_unauthorized(&list(&srv, "fb", &one.access).await, "expired");
    assert_eq!(srv.session_state(&one.id).await, "active");
    let a = refresh(&srv, "fb", &one.refresh).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let renewed = Login {
        access: s(&a.json(), "accessToken").to_owned(),
        refresh: s(&a.json(), "refreshToken").to_owned(),
        id: one.id.clone(),
    };
    assert_body(
        &revoke_all(&srv, "fb", &renewed.access).await,
        StatusCode::OK,
        REVOKED_ALL,
    );
    assert_dead(&srv, "fb", &renewed, "the renewed caller").await;
    assert_dead(&srv, "fb", &two, "the other login").await;
}
