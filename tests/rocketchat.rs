//! Rocket.Chat `POST /api/v1/users.logoutOtherClients` against a live server: the exact
//! success body (the presented token, `tokenExpires`, a boolean `success`), the one 401 body
//! for every authentication failure, the bodies the real clients send, the survival matrix
//! probed through `GET /api/v1/me` and admin introspection, idempotency, tenant isolation
//! under `/apps/{anchor}`, and durability across a restart.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sessiond::domain::Clock;

/// Rocket.Chat's `unauthorized()` body in non-breaking-change mode, byte for byte.
const NOT_LOGGED_IN: &str = r#"{"success":false,"error":"You must be logged in to do this.","status":"error","message":"You must be logged in to do this."}"#;
const DAY_MS: i64 = 86_400_000;

fn path(app: &str, endpoint: &str) -> String {
    format!("/apps/{app}/api/v1/{endpoint}")
}

/// An application without a Connect key pair (key generation is slow and unused here).
async fn new_app(srv: &Server, id: &str, login_expiration_days: Option<u32>) {
    let mut b = json!({"id": id, "name": id, "generate_connect_key": false});
    if let Some(d) = login_expiration_days {
        b["login_expiration_days"] = json!(d);
    }
    srv.app_with(b).await;
}

/// Creates an account; returns its id (Rocket.Chat's `userId`).
async fn user(srv: &Server, login: &str) -> String {
    s(&srv.account(login).await, "id").to_owned()
}

async fn login(srv: &Server, app: &str, body: &Value) -> Answer {
    srv.send_json(Method::POST, &path(app, "login"), &[], body)
        .await
}

/// Logs `login` in through `POST /api/v1/login`; returns the login token.
async fn log_in(srv: &Server, app: &str, login_name: &str) -> String {
    let a = login(
        srv,
        app,
        &json!({"user": login_name, "password": format!("pw-{login_name}")}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    s(&a.json()["data"], "authToken").to_owned()
}

/// The call as `rocketchat-api` sends it: `{}` under a JSON Content-Type.
async fn logout_others(srv: &Server, app: &str, token: &str, user: &str) -> Answer {
    srv.send_json(
        Method::POST,
        &path(app, "users.logoutOtherClients"),
        &[("x-auth-token", token), ("x-user-id", user)],
        &json!({}),
    )
    .await
}

/// `GET /api/v1/me`: 200 with the user while the token lives, else the 401 body.
async fn me(srv: &Server, app: &str, token: &str, user: &str) -> StatusCode {
    let a = srv
        .send(
            Method::GET,
            &path(app, "me"),
            &[("x-auth-token", token), ("x-user-id", user)],
            None,
        )
        .await;
    match a.status {
        StatusCode::OK => {
            let v = a.json();
            assert_eq!(v["_id"], user, "{v}");
            assert_eq!(v["success"], json!(true), "{v}");
        }
        _ => assert_not_logged_in(&a),
    }
    a.status
}

/// `@rocket.chat/sdk` parses a body as JSON only when the Content-Type, spaces removed and
/// case ignored, is exactly `application/json` or `application/json;charset=utf-8`.
fn assert_sdk_json(a: &Answer) {
    let ct = a
        .header("content-type")
        .unwrap_or_default()
        .replace(' ', "")
        .to_ascii_lowercase();
    assert!(
        ct == "application/json" || ct == "application/json;charset=utf-8",
        "Content-Type {ct:?}"
    );
}

fn assert_not_logged_in(a: &Answer) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text());
    assert_sdk_json(a);
    assert_eq!(a.text(), NOT_LOGGED_IN);
}

fn assert_success(a: &Answer, token: &str, token_expires: &str) {
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_sdk_json(a);
    // Exact bytes: key order token, tokenExpires, success; `success` the boolean.
    let expected = format!(
        r#"{{"token":{},"tokenExpires":{},"success":true}}"#,
        json!(token),
        json!(token_expires)
    );
    assert_eq!(a.text(), expected);
}

/// ISO-8601 UTC with milliseconds, as Rocket.Chat prints a `Date`.
fn iso_ms(ms: i64) -> String {
    let t = jiff::Timestamp::from_millisecond(ms).expect("a time in range");
    let out = t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let b = out.as_bytes();
    assert!(out.len() == 24 && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z');
    out
}

fn parse_ms(iso: &str) -> i64 {
    iso.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{iso}: {e}"))
        .as_millisecond()
}

/// When the token's session was created (the login token's `when`), from the admin API.
async fn login_time_ms(srv: &Server, token: &str) -> i64 {
    let i = srv.introspect(token).await;
    let sid = s(&i, "session");
    let a = srv
        .admin(Method::GET, &format!("/admin/v1/sessions/{sid}"), None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    parse_ms(s(&a.json(), "created_at"))
}

#[tokio::test]
async fn success_echoes_the_token_with_its_expiry_and_a_boolean_success() {
    let srv = Server::start().await;
    new_app(&srv, "chat", None).await;
    new_app(&srv, "short", Some(7)).await;
    let alice = user(&srv, "alice").await;
    for (app, days) in [("chat", 90), ("short", 7)] {
        let before = srv.clock.now();
        let token = log_in(&srv, app, "alice").await;
        let after = srv.clock.now();
        let when = login_time_ms(&srv, &token).await;
        assert!(before <= when && when <= after, "{before} {when} {after}");
        let a = logout_others(&srv, app, &token, &alice).await;
        // tokenExpires = when + the app's login expiration in days (default 90).
        assert_success(&a, &token, &iso_ms(when + days * DAY_MS));
        let v = a.json();
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["token", "tokenExpires", "success"]);
        assert_eq!(v["success"], json!(true));
        assert_eq!(me(&srv, app, &token, &alice).await, StatusCode::OK);
    }
    // The login token of an administrator-created login session answers the same way.
    let sess = srv.session(&alice, Some("chat"), "login").await;
    let token = s(&sess, "login_token");
    let when = parse_ms(s(&sess, "created_at"));
    let a = logout_others(&srv, "chat", token, &alice).await;
    assert_success(&a, token, &iso_ms(when + 90 * DAY_MS));
}

#[tokio::test]
async fn a_personal_access_token_gets_an_empty_token_expires_and_every_pat_survives() {
    let srv = Server::start().await;
    new_app(&srv, "chat", None).await;
    let alice = user(&srv, "alice").await;
    let a_tok = log_in(&srv, "chat", "alice").await;
    let b_tok = log_in(&srv, "chat", "alice").await;
    let p1 = srv.session(&alice, Some("chat"), "pat").await;
    let p2 = srv.session(&alice, Some("chat"), "pat").await;
    let p1 = s(&p1, "personal_access_token");
    let p2 = s(&p2, "personal_access_token");
    let a = logout_others(&srv, "chat", p1, &alice).await;
    // A personal access token has no `when`: tokenExpires is "".
    assert_success(&a, p1, "");
    // Every login token died (none was presented); personal access tokens survive.
    assert_eq!(
        me(&srv, "chat", &a_tok, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me(&srv, "chat", &b_tok, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&srv, "chat", p1, &alice).await, StatusCode::OK);
    assert_eq!(me(&srv, "chat", p2, &alice).await, StatusCode::OK);
    assert!(srv.is_active(p2).await);
}

#[tokio::test]
async fn every_authentication_failure_is_the_same_401_and_revokes_nothing() {
    let srv = Server::start().await;
    new_app(&srv, "chat", None).await;
    new_app(&srv, "team", None).await;
    let alice = user(&srv, "alice").await;
    let bob = user(&srv, "bob").await;
    let a_tok = log_in(&srv, "chat", "alice").await;
    let b_tok = log_in(&srv, "chat", "alice").await;
    let team_tok = log_in(&srv, "team", "alice").await;
    let bob_tok = log_in(&srv, "chat", "bob").await;
    let adm = srv.session(&alice, Some("chat"), "login").await;
    // A token that was removed: its session revoked by an administrator.
    let gone = log_in(&srv, "chat", "alice").await;
    let gone_sid = s(&srv.introspect(&gone).await, "session").to_owned();
    let d = srv
        .admin(
            Method::DELETE,
            &format!("/admin/v1/sessions/{gone_sid}"),
            None,
        )
        .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text());

    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no X-Auth-Token", vec![("x-user-id", &alice)]),
        ("no X-User-Id", vec![("x-auth-token", &a_tok)]),
        ("neither header", vec![]),
        (
            "an empty X-Auth-Token",
            vec![("x-auth-token", ""), ("x-user-id", &alice)],
        ),
        (
            "an unknown token",
            vec![("x-auth-token", "not-a-token"), ("x-user-id", &alice)],
        ),
        (
            "a revoked token",
            vec![("x-auth-token", &gone), ("x-user-id", &alice)],
        ),
        (
            "another user's token",
            vec![("x-auth-token", &bob_tok), ("x-user-id", &alice)],
        ),
        (
            "X-User-Id of another user",
            vec![("x-auth-token", &a_tok), ("x-user-id", &bob)],
        ),
        (
            "an unknown X-User-Id",
            vec![("x-auth-token", &a_tok), ("x-user-id", "nobody")],
        ),
        (
            "a token of another application",
            vec![("x-auth-token", &team_tok), ("x-user-id", &alice)],
        ),
        (
            "an access token is no login token",
            vec![
                ("x-auth-token", s(&adm, "access_token")),
                ("x-user-id", &alice),
            ],
        ),
        (
            "a refresh token is no login token",
            vec![
                ("x-auth-token", s(&adm, "refresh_token")),
                ("x-user-id", &alice),
            ],
        ),
    ];
    for (what, headers) in &cases {
        let mut with_json = headers.clone();
        with_json.push(("content-type", "application/json"));
        for (body, h) in [(None, headers), (Some(&b"{}"[..]), &with_json)] {
            let a = srv
                .send(
                    Method::POST,
                    &path("chat", "users.logoutOtherClients"),
                    h,
                    body,
                )
                .await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}: {}", a.text());
            assert_not_logged_in(&a);
        }
        let a = srv
            .send(Method::GET, &path("chat", "me"), headers, None)
            .await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "/me, {what}: {}",
            a.text()
        );
        assert_not_logged_in(&a);
    }

    // Wrong method: 405 with Allow, in Rocket.Chat's `{success: false, error}` form.
    for (method, endpoint, allow) in [
        (Method::GET, "users.logoutOtherClients", "POST"),
        (Method::PUT, "users.logoutOtherClients", "POST"),
        (Method::DELETE, "users.logoutOtherClients", "POST"),
        (Method::POST, "me", "GET"),
        (Method::GET, "login", "POST"),
    ] {
        let a = srv
            .send(
                method.clone(),
                &path("chat", endpoint),
                &[("x-auth-token", &a_tok), ("x-user-id", &alice)],
                None,
            )
            .await;
        assert_eq!(
            a.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {endpoint}"
        );
        assert_eq!(a.header("allow"), Some(allow), "{method} {endpoint}");
        assert_eq!(a.json()["success"], json!(false));
    }
    // An application that does not exist.
    let a = logout_others(&srv, "nope", &a_tok, &alice).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    assert_eq!(a.json()["success"], json!(false));

    // None of that revoked anything.
    assert_eq!(me(&srv, "chat", &a_tok, &alice).await, StatusCode::OK);
    assert_eq!(me(&srv, "chat", &b_tok, &alice).await, StatusCode::OK);
    assert_eq!(me(&srv, "team", &team_tok, &alice).await, StatusCode::OK);
    assert_eq!(me(&srv, "chat", &bob_tok, &bob).await, StatusCode::OK);
    let adm_login = s(&adm, "login_token");
    assert_eq!(me(&srv, "chat", adm_login, &alice).await, StatusCode::OK);
    assert!(srv.is_active(s(&adm, "refresh_token")).await);
}

/// What a client sends: a description, its headers, its body.
type BodyVariant<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a [u8]>);

#[tokio::test]
async fn accepts_an_empty_json_body_an_empty_object_and_no_body() {
    let srv = Server::start().await;
    new_app(&srv, "chat", None).await;
    let alice = user(&srv, "alice").await;
    let token = log_in(&srv, "chat", "alice").await;
    let when = login_time_ms(&srv, &token).await;
    let expires = iso_ms(when + 90 * DAY_MS);
    let auth = [("x-auth-token", token.as_str()), ("x-user-id", &alice)];
    let json_ct = [auth[0], auth[1], ("content-type", "application/json")];
    let variants: [BodyVariant; 4] = [
        // @rocket.chat/api-client: Content-Length 0 under a JSON Content-Type.
        ("an empty body under application/json", &json_ct, Some(b"")),
        // rocketchat-api and @rocket.chat/sdk: `{}`.
        ("{} under application/json", &json_ct, Some(b"{}")),
        ("no body and no Content-Type", &auth, None),
        ("an empty body and no Content-Type", &auth, Some(b"")),
    ];
    for (what, headers, body) in variants {
        let victim = log_in(&srv, "chat", "alice").await;
        let a = srv
            .send(
                Method::POST,
                &path("chat", "users.logoutOtherClients"),
                headers,
                body,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.text());
        assert_success(&a, &token, &expires);
        assert_eq!(
            me(&srv, "chat", &victim, &alice).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
    // Malformed JSON is rejected before anything is revoked.
    let victim = log_in(&srv, "chat", "alice").await;
    let a = srv
        .send(
            Method::POST,
            &path("chat", "users.logoutOtherClients"),
            &json_ct,
            Some(b"{"),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert_eq!(a.json()["success"], json!(false));
    assert_eq!(me(&srv, "chat", &victim, &alice).await, StatusCode::OK);
    assert_eq!(me(&srv, "chat", &token, &alice).await, StatusCode::OK);
}

#[tokio::test]
async fn login_accepts_the_clients_forms_and_rejects_bad_credentials() {
    use sha2::Digest;
    let srv = Server::start().await;
    new_app(&srv, "chat", None).await;
    let alice = user(&srv, "alice").await;
    let bob = user(&srv, "bob").await;
    let digest = sessiond::model::hex_encode(&sha2::Sha256::digest(b"pw-alice"));
    let forms = [
        json!({"user": "alice", "password": "pw-alice"}),
        json!({"username": "alice", "password": "pw-alice"}),
        json!({"user": "alice@example.com", "password": "pw-alice"}),
        json!({"email": "alice@example.com", "password": "pw-alice"}),
        json!({"user": {"username": "alice"}, "password": "pw-alice"}),
        json!({"user": {"email": "alice@example.com"}, "password": "pw-alice"}),
        json!({"user": "alice", "password": {"digest": digest, "algorithm": "sha-256"}}),
    ];
    let mut tokens = Vec::new();
    for body in &forms {
        let a = login(&srv, "chat", body).await;
        assert_eq!(a.status, StatusCode::OK, "{body}: {}", a.text());
        let v = a.json();
        assert_eq!(v["status"], "success", "{v}");
        assert_eq!(v["success"], json!(true), "{v}");
        assert_eq!(v["data"]["userId"], alice.as_str(), "{v}");
        assert_eq!(v["data"]["me"]["_id"], alice.as_str(), "{v}");
        assert_eq!(v["data"]["me"]["username"], "alice", "{v}");
        let token = s(&v["data"], "authToken").to_owned();
        assert!(!token.is_empty());
        assert_eq!(
            me(&srv, "chat", &token, &alice).await,
            StatusCode::OK,
            "{body}"
        );
        tokens.push(token);
    }
    // Each login is a new token (a new session).
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), tokens.len());

    for body in [
        json!({"user": "alice", "password": "wrong"}),
        json!({"username": "alice", "password": "pw-bob"}),
        json!({"user": "alice@example.com", "password": "wrong"}),
        json!({"user": "nobody", "password": "pw-alice"}),
        json!({"user": "nobody@example.com", "password": "pw-alice"}),
    ] {
        let a = login(&srv, "chat", &body).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{body}: {}", a.text());
        let v = a.json();
        assert_eq!(v["success"], json!(false), "{v}");
        assert_eq!(v["status"], "error", "{v}");
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
        assert!(v.get("data").is_none(), "{v}");
    }
    // Bob's account works with his own password only.
    let a = login(&srv, "chat", &json!({"user": "bob", "password": "pw-bob"})).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["data"]["userId"], bob.as_str());
    // Failed logins created no sessions: alice has exactly one per successful login.
    let a = srv
        .admin(
            Method::GET,
            &format!("/admin/v1/accounts/{alice}/sessions"),
            None,
        )
        .await;
    assert_eq!(
        a.json()["sessions"].as_array().expect("sessions").len(),
        forms.len()
    );
}

#[tokio::test]
async fn only_the_users_other_login_tokens_in_this_application_die() {
    let srv = Server::start().await;
    new_app(&srv, "chat", None).await;
    new_app(&srv, "team", None).await;
    let alice = user(&srv, "alice").await;
    let bob = user(&srv, "bob").await;
    let a_tok = log_in(&srv, "chat", "alice").await;
    let b_tok = log_in(&srv, "chat", "alice").await;
    let c_tok = log_in(&srv, "chat", "alice").await;
    let pat = srv.session(&alice, Some("chat"), "pat").await;
    let pat = s(&pat, "personal_access_token");
    let adm_login = srv.session(&alice, Some("chat"), "login").await;
    let adm_oauth = srv.session(&alice, Some("chat"), "oauth").await;
    let team_1 = log_in(&srv, "team", "alice").await;
    let team_2 = log_in(&srv, "team", "alice").await;
    let bob_1 = log_in(&srv, "chat", "bob").await;
    let bob_2 = log_in(&srv, "chat", "bob").await;
    let b_sid = s(&srv.introspect(&b_tok).await, "session").to_owned();

    let when = login_time_ms(&srv, &a_tok).await;
    let a = logout_others(&srv, "chat", &a_tok, &alice).await;
    assert_success(&a, &a_tok, &iso_ms(when + 90 * DAY_MS));

    // The presented token and the personal access token survive; the other logins die.
    assert_eq!(me(&srv, "chat", &a_tok, &alice).await, StatusCode::OK);
    assert_eq!(
        me(&srv, "chat", &b_tok, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me(&srv, "chat", &c_tok, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&srv, "chat", pat, &alice).await, StatusCode::OK);
    let adm_login_token = s(&adm_login, "login_token");
    assert_eq!(
        me(&srv, "chat", adm_login_token, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    // A dead login session is dead whole: its other credentials too.
    for t in ["login_token", "access_token", "refresh_token", "hub_jwt"] {
        assert!(!srv.is_active(s(&adm_login, t)).await, "{t}");
    }
    assert_eq!(srv.session_state(&b_sid).await, "revoked");
    // An OAuth grant is no login token: it survives.
    assert!(srv.is_active(s(&adm_oauth, "refresh_token")).await);
    // The same user's logins in another application survive.
    assert_eq!(me(&srv, "team", &team_1, &alice).await, StatusCode::OK);
    assert_eq!(me(&srv, "team", &team_2, &alice).await, StatusCode::OK);
    // Another user's logins survive.
    assert_eq!(me(&srv, "chat", &bob_1, &bob).await, StatusCode::OK);
    assert_eq!(me(&srv, "chat", &bob_2, &bob).await, StatusCode::OK);
    // A dead token cannot call it.
    assert_not_logged_in(&logout_others(&srv, "chat", &b_tok, &alice).await);
    assert_eq!(me(&srv, "chat", &a_tok, &alice).await, StatusCode::OK);
}

#[tokio::test]
async fn a_second_call_with_the_same_token_succeeds_again() {
    let srv = Server::start().await;
    new_app(&srv, "chat", None).await;
    let alice = user(&srv, "alice").await;
    let a_tok = log_in(&srv, "chat", "alice").await;
    let b_tok = log_in(&srv, "chat", "alice").await;
    let expires = iso_ms(login_time_ms(&srv, &a_tok).await + 90 * DAY_MS);
    let first = logout_others(&srv, "chat", &a_tok, &alice).await;
    assert_success(&first, &a_tok, &expires);
    let second = logout_others(&srv, "chat", &a_tok, &alice).await;
    assert_success(&second, &a_tok, &expires);
    assert_eq!(me(&srv, "chat", &a_tok, &alice).await, StatusCode::OK);
    assert_eq!(
        me(&srv, "chat", &b_tok, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    // A login made after the call lives until the next call.
    let fresh = log_in(&srv, "chat", "alice").await;
    assert_eq!(me(&srv, "chat", &fresh, &alice).await, StatusCode::OK);
    assert_success(
        &logout_others(&srv, "chat", &a_tok, &alice).await,
        &a_tok,
        &expires,
    );
    assert_eq!(
        me(&srv, "chat", &fresh, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&srv, "chat", &a_tok, &alice).await, StatusCode::OK);
}

#[tokio::test]
async fn applications_are_isolated_and_no_prefix_means_the_first_application() {
    let srv = Server::start().await;
    new_app(&srv, "chat", None).await;
    // Created second but sorting first: "first" means first created.
    new_app(&srv, "aux", None).await;
    let alice = user(&srv, "alice").await;
    let chat_1 = log_in(&srv, "chat", "alice").await;
    let chat_2 = log_in(&srv, "chat", "alice").await;
    let aux_1 = log_in(&srv, "aux", "alice").await;
    let aux_2 = log_in(&srv, "aux", "alice").await;

    // A token never works under another application's prefix.
    assert_eq!(
        me(&srv, "aux", &chat_1, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me(&srv, "chat", &aux_1, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_not_logged_in(&logout_others(&srv, "aux", &chat_1, &alice).await);
    assert_not_logged_in(&logout_others(&srv, "chat", &aux_1, &alice).await);

    // Revoking in chat never touches aux.
    let a = logout_others(&srv, "chat", &chat_1, &alice).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        me(&srv, "chat", &chat_2, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&srv, "aux", &aux_1, &alice).await, StatusCode::OK);
    assert_eq!(me(&srv, "aux", &aux_2, &alice).await, StatusCode::OK);
    // And the other way round.
    let a = logout_others(&srv, "aux", &aux_1, &alice).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        me(&srv, "aux", &aux_2, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&srv, "chat", &chat_1, &alice).await, StatusCode::OK);

    // Without a prefix, requests go to the first application created (chat, although "aux" sorts first).
    let plain = srv
        .send(
            Method::GET,
            "/api/v1/me",
            &[("x-auth-token", &chat_1), ("x-user-id", &alice)],
            None,
        )
        .await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text());
    let plain = srv
        .send(
            Method::GET,
            "/api/v1/me",
            &[("x-auth-token", &aux_1), ("x-user-id", &alice)],
            None,
        )
        .await;
    assert_not_logged_in(&plain);
    let a = srv
        .send_json(
            Method::POST,
            "/api/v1/login",
            &[],
            &json!({"user": "alice", "password": "pw-alice"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let plain_tok = s(&a.json()["data"], "authToken").to_owned();
    assert_eq!(me(&srv, "chat", &plain_tok, &alice).await, StatusCode::OK);
    assert_eq!(
        me(&srv, "aux", &plain_tok, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    let a = srv
        .send_json(
            Method::POST,
            "/api/v1/users.logoutOtherClients",
            &[("x-auth-token", &plain_tok), ("x-user-id", &alice)],
            &json!({}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        me(&srv, "chat", &chat_1, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&srv, "aux", &aux_1, &alice).await, StatusCode::OK);
}

#[tokio::test]
async fn revocations_and_survivors_persist_across_a_restart() {
    let mut srv = Server::start().await;
    new_app(&srv, "chat", None).await;
    new_app(&srv, "team", None).await;
    let alice = user(&srv, "alice").await;
    let bob = user(&srv, "bob").await;
    let a_tok = log_in(&srv, "chat", "alice").await;
    let b_tok = log_in(&srv, "chat", "alice").await;
    let c_tok = log_in(&srv, "chat", "alice").await;
    let pat = srv.session(&alice, Some("chat"), "pat").await;
    let pat = s(&pat, "personal_access_token").to_owned();
    let team_tok = log_in(&srv, "team", "alice").await;
    let bob_tok = log_in(&srv, "chat", "bob").await;
    let expires = iso_ms(login_time_ms(&srv, &a_tok).await + 90 * DAY_MS);
    assert_success(
        &logout_others(&srv, "chat", &a_tok, &alice).await,
        &a_tok,
        &expires,
    );

    srv.restart().await;

    assert_eq!(me(&srv, "chat", &a_tok, &alice).await, StatusCode::OK);
    assert_eq!(
        me(&srv, "chat", &b_tok, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me(&srv, "chat", &c_tok, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&srv, "chat", &pat, &alice).await, StatusCode::OK);
    assert_eq!(me(&srv, "team", &team_tok, &alice).await, StatusCode::OK);
    assert_eq!(me(&srv, "chat", &bob_tok, &bob).await, StatusCode::OK);
    // The default application is still the first created.
    let a = srv
        .send(
            Method::GET,
            "/api/v1/me",
            &[("x-auth-token", &a_tok), ("x-user-id", &alice)],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    // The same call still answers the same, and a new login works and can be revoked.
    assert_success(
        &logout_others(&srv, "chat", &a_tok, &alice).await,
        &a_tok,
        &expires,
    );
    let fresh = log_in(&srv, "chat", "alice").await;
    assert_eq!(me(&srv, "chat", &fresh, &alice).await, StatusCode::OK);
    assert_success(
        &logout_others(&srv, "chat", &a_tok, &alice).await,
        &a_tok,
        &expires,
    );
    assert_eq!(
        me(&srv, "chat", &fresh, &alice).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_login_token_stops_working_at_its_token_expires() {
    let srv = Server::start().await;
    new_app(&srv, "short", Some(7)).await;
    let alice = user(&srv, "alice").await;
    let token = log_in(&srv, "short", "alice").await;
    let pat = srv.session(&alice, Some("short"), "pat").await;
    let pat = s(&pat, "personal_access_token");
    let a = logout_others(&srv, "short", &token, &alice).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let expires = parse_ms(s(&a.json(), "tokenExpires"));
    // A minute before tokenExpires the token still works; a second after, it is gone.
    srv.clock.advance(expires - srv.clock.now() - 60_000);
    assert_eq!(me(&srv, "short", &token, &alice).await, StatusCode::OK);
    srv.clock.advance(61_000);
    assert_eq!(
        me(&srv, "short", &token, &alice).await,
        StatusCode::UNAUTHORIZED
    );
    assert_not_logged_in(&logout_others(&srv, "short", &token, &alice).await);
    // A personal access token does not expire.
    assert_success(&logout_others(&srv, "short", pat, &alice).await, pat, "");
}

/// Two clients of one user call it at the same moment. Whatever the interleaving, a token
/// that an acknowledged call revoked must stay revoked: if both calls answer 200, each
/// removed the other's token (as Rocket.Chat's two `$pull`s do), so neither works after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_never_bring_a_revoked_token_back() {
    let srv = Server::start().await;
    new_app(&srv, "chat", None).await;
    let alice = user(&srv, "alice").await;
    let mut both_ok = 0;
    let mut revived = 0;
    for _ in 0..100 {
        let a = srv.session(&alice, Some("chat"), "login").await;
        let b = srv.session(&alice, Some("chat"), "login").await;
        let (ta, tb) = (s(&a, "login_token"), s(&b, "login_token"));
        let (ra, rb) = tokio::join!(
            logout_others(&srv, "chat", ta, &alice),
            logout_others(&srv, "chat", tb, &alice)
        );
        let (ma, mb) = (
            me(&srv, "chat", ta, &alice).await,
            me(&srv, "chat", tb, &alice).await,
        );
        match (ra.status, rb.status) {
            (StatusCode::OK, StatusCode::OK) => {
                both_ok += 1;
                if ma == StatusCode::OK || mb == StatusCode::OK {
                    revived += 1;
                }
            }
            (StatusCode::OK, _) => {
                assert_not_logged_in(&rb);
                assert_eq!((ma, mb), (StatusCode::OK, StatusCode::UNAUTHORIZED));
            }
            (_, StatusCode::OK) => {
                assert_not_logged_in(&ra);
                assert_eq!((ma, mb), (StatusCode::UNAUTHORIZED, StatusCode::OK));
            }
            other => panic!("neither call succeeded: {other:?}"),
        }
    }
    assert_eq!(
        revived, 0,
        "in {revived} of {both_ok} races where both calls answered 200, the token the \
         first call revoked worked again"
    );
}
