//! Rownd `POST /applications/{app}/users/{user}/signout` against a live server: app
//! credentials (any header case) and hub JWTs (`sign_out_all` true / absent / false), the
//! survival matrix, every error status with its JSON body, idempotency, the probes
//! (`/hub/auth/token`, admin introspection), the JWKS, and persistence across a restart.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A Rownd application without a Connect key pair (faster to create).
async fn rownd_app(srv: &Server, id: &str) -> Value {
    srv.app_with(json!({"id": id, "name": id, "generate_connect_key": false}))
        .await
}

fn creds(app: &Value) -> [(&'static str, &str); 2] {
    [
        ("x-rownd-app-key", s(app, "rownd_app_key")),
        ("x-rownd-app-secret", s(app, "rownd_app_secret")),
    ]
}

fn signout_path(app: &str, user: &str) -> String {
    format!("/applications/{app}/users/{user}/signout")
}

async fn signout(
    srv: &Server,
    app: &str,
    user: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Answer {
    let mut h = headers.to_vec();
    if body.is_some() {
        h.push(("content-type", "application/json"));
    }
    srv.send(Method::POST, &signout_path(app, user), &h, body)
        .await
}

fn assert_204(a: &Answer) {
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    assert!(a.body.is_empty(), "{:?}", a.text());
    assert!(a.header("content-type").is_none(), "{:?}", a.headers);
}

fn assert_rownd_error(a: &Answer, status: StatusCode, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.text());
    assert!(
        a.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{what}: {:?}",
        a.headers
    );
    let v = a.json();
    assert!(v.is_object(), "{what}: {v}");
    assert_eq!(v["statusCode"], status.as_u16(), "{what}: {v}");
    assert_eq!(
        v["error"],
        status.canonical_reason().expect("a reason phrase"),
        "{what}: {v}"
    );
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
}

fn bearer(jwt: &str) -> String {
    format!("Bearer {jwt}")
}

/// A login or OAuth session with the refresh token and hub JWT it currently holds.
struct Grant {
    v: Value,
    refresh: String,
    /// Every hub JWT it was issued (the first, and one per refresh).
    jwts: Vec<String>,
}

impl Grant {
    async fn new(srv: &Server, account: &str, app: &str, kind: &str) -> Grant {
        let v = srv.session(account, Some(app), kind).await;
        Grant {
            refresh: s(&v, "refresh_token").to_owned(),
            jwts: vec![s(&v, "hub_jwt").to_owned()],
            v,
        }
    }
    fn jwt(&self) -> &str {
        self.jwts.last().expect("a hub JWT")
    }
}

async fn hub_token(srv: &Server, body: &Value) -> Answer {
    srv.send_json(Method::POST, "/hub/auth/token", &[], body)
        .await
}

/// Alive: `/hub/auth/token` refreshes it (200 with a new hub JWT and refresh token) and
/// the administrator sees its tokens active.
async fn assert_alive(srv: &Server, g: &mut Grant, what: &str) {
    let a = hub_token(srv, &json!({"refresh_token": g.refresh})).await;
    assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.text());
    let v = a.json();
    let access = s(&v, "access_token").to_owned();
    assert_eq!(access.matches('.').count(), 2, "{what}: a hub JWT: {v}");
    g.refresh = s(&v, "refresh_token").to_owned();
    g.jwts.push(access);
    for t in &g.jwts {
        assert!(srv.is_active(t).await, "{what}: hub JWT");
    }
    assert!(srv.is_active(&g.refresh).await, "{what}: refresh token");
    assert!(
        srv.is_active(s(&g.v, "access_token")).await,
        "{what}: access"
    );
}

/// Dead: `/hub/auth/token` is 400, and none of its tokens is active.
async fn assert_dead(srv: &Server, g: &Grant, what: &str) {
    let a = hub_token(srv, &json!({"refresh_token": g.refresh})).await;
    assert_rownd_error(&a, StatusCode::BAD_REQUEST, what);
    for t in &g.jwts {
        assert!(!srv.is_active(t).await, "{what}: hub JWT still active");
    }
    for t in ["access_token", "login_token"] {
        if let Some(tok) = g.v[t].as_str() {
            assert!(!srv.is_active(tok).await, "{what}: {t} still active");
        }
    }
    assert!(!srv.is_active(&g.refresh).await, "{what}: refresh");
    assert_eq!(srv.session_state(s(&g.v, "id")).await, "revoked", "{what}");
}

/// Read-only: the administrator sees the grant's current tokens active.
async fn assert_untouched(srv: &Server, g: &Grant, what: &str) {
    assert!(srv.is_active(&g.refresh).await, "{what}: refresh");
    assert!(srv.is_active(g.jwt()).await, "{what}: hub JWT");
    assert_eq!(srv.session_state(s(&g.v, "id")).await, "active", "{what}");
}

/// Alice in r-a (login, OAuth, PAT) and r-b (login); an identity-provider session; Bob
/// in r-a.
struct World {
    a: Value,
    b: Value,
    alice: String,
    bob: String,
    login_a: Grant,
    oauth_a: Grant,
    pat_a: Value,
    idp: String,
    login_b: Grant,
    bob_a: Grant,
}

async fn world(srv: &Server) -> World {
    let a = rownd_app(srv, "r-a").await;
    let b = rownd_app(srv, "r-b").await;
    let alice = s(&srv.account("alice").await, "id").to_owned();
    let bob = s(&srv.account("bob").await, "id").to_owned();
    World {
        login_a: Grant::new(srv, &alice, "r-a", "login").await,
        oauth_a: Grant::new(srv, &alice, "r-a", "oauth").await,
        pat_a: srv.session(&alice, Some("r-a"), "pat").await,
        idp: s(&srv.session(&alice, None, "idp").await, "id").to_owned(),
        login_b: Grant::new(srv, &alice, "r-b", "login").await,
        bob_a: Grant::new(srv, &bob, "r-a", "oauth").await,
        alice,
        bob,
        a,
        b,
    }
}

fn pat(w: &World) -> &str {
    s(&w.pat_a, "personal_access_token")
}

async fn assert_world_untouched(srv: &Server, w: &World, what: &str) {
    for (g, name) in [
        (&w.login_a, "login_a"),
        (&w.oauth_a, "oauth_a"),
        (&w.login_b, "login_b"),
        (&w.bob_a, "bob_a"),
    ] {
        assert_untouched(srv, g, &format!("{what}: {name}")).await;
    }
    assert!(srv.is_active(pat(w)).await, "{what}: pat");
    assert_eq!(srv.session_state(&w.idp).await, "active", "{what}: idp");
}

/// The user's sessions in r-a are dead; r-b, the identity-provider session and Bob live.
async fn assert_signed_out_of_a(srv: &Server, w: &mut World, what: &str) {
    assert_dead(srv, &w.login_a, &format!("{what}: login_a")).await;
    assert_dead(srv, &w.oauth_a, &format!("{what}: oauth_a")).await;
    assert!(!srv.is_active(pat(w)).await, "{what}: pat");
    assert_eq!(
        srv.session_state(s(&w.pat_a, "id")).await,
        "revoked",
        "{what}"
    );
    assert_alive(srv, &mut w.login_b, &format!("{what}: login_b")).await;
    assert_alive(srv, &mut w.bob_a, &format!("{what}: bob_a")).await;
    assert_eq!(srv.session_state(&w.idp).await, "active", "{what}: idp");
}

async fn probe_all_alive(srv: &Server, w: &mut World) {
    for (g, name) in [
        (&mut w.login_a, "login_a"),
        (&mut w.oauth_a, "oauth_a"),
        (&mut w.login_b, "login_b"),
        (&mut w.bob_a, "bob_a"),
    ] {
        assert_alive(srv, g, name).await;
    }
    assert!(srv.is_active(pat(w)).await);
}

/// A request written by hand, so header names go out in exactly the given case.
async fn raw_post(srv: &Server, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = srv.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await
    .expect("an answer in time")
    .expect("read");
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[tokio::test]
async fn app_credentials_sign_the_user_out_of_every_session_in_the_app() {
    let srv = Server::start().await;
    let mut w = world(&srv).await;
    probe_all_alive(&srv, &mut w).await;
    // No body at all, as the spec allows.
    let a = signout(&srv, "r-a", &w.alice, &creds(&w.a), None).await;
    assert_204(&a);
    assert_signed_out_of_a(&srv, &mut w, "no body").await;
}

#[tokio::test]
async fn app_credentials_ignore_sign_out_all_and_accept_any_header_case() {
    for body in [
        &br#"{"sign_out_all": false}"#[..],
        br#"{"sign_out_all": true}"#,
        b"{}",
        br#"{"sign_out_all": null}"#,
        b"",
    ] {
        let srv = Server::start().await;
        let mut w = world(&srv).await;
        let shown = String::from_utf8_lossy(body).into_owned();
        let a = signout(&srv, "r-a", &w.alice, &creds(&w.a), Some(body)).await;
        assert_204(&a);
        assert_signed_out_of_a(&srv, &mut w, &shown).await;
    }
    // Header names in the documentation's case and in upper case, on the wire as written.
    let srv = Server::start().await;
    let mut w = world(&srv).await;
    for (key_name, secret_name) in [
        ("X-Rownd-App-Key", "X-Rownd-App-Secret"),
        ("X-ROWND-APP-KEY", "x-ROWND-app-SECRET"),
    ] {
        let fresh = Grant::new(&srv, &w.alice, "r-a", "oauth").await;
        let status = raw_post(
            &srv,
            &signout_path("r-a", &w.alice),
            &[
                (key_name, s(&w.a, "rownd_app_key")),
                (secret_name, s(&w.a, "rownd_app_secret")),
                ("Content-Type", "application/json"),
            ],
            br#"{"sign_out_all": true}"#,
        )
        .await;
        assert_eq!(status, 204, "{key_name}");
        assert_dead(&srv, &fresh, key_name).await;
    }
    assert_signed_out_of_a(&srv, &mut w, "mixed case").await;
}

#[tokio::test]
async fn a_hub_jwt_signs_out_everything_or_only_its_own_session() {
    let srv = Server::start().await;
    let mut w = world(&srv).await;
    // `false`: only the presenting session dies.
    let a = signout(
        &srv,
        "r-a",
        &w.alice,
        &[("authorization", &bearer(w.login_a.jwt()))],
        Some(br#"{"sign_out_all": false}"#),
    )
    .await;
    assert_204(&a);
    assert_dead(&srv, &w.login_a, "login_a").await;
    assert_alive(&srv, &mut w.oauth_a, "oauth_a").await;
    assert!(srv.is_active(pat(&w)).await);
    // Absent (no body): everything of the user in r-a dies, the presenting one included.
    // The hub JWT presented is the one a refresh gave.
    let a = signout(
        &srv,
        "r-a",
        &w.alice,
        &[("authorization", &bearer(w.oauth_a.jwt()))],
        None,
    )
    .await;
    assert_204(&a);
    assert_signed_out_of_a(&srv, &mut w, "absent").await;

    // `true`, and a lower-case scheme.
    let mut fresh = Grant::new(&srv, &w.alice, "r-a", "login").await;
    let other = Grant::new(&srv, &w.alice, "r-a", "oauth").await;
    let fresh_pat = srv.session(&w.alice, Some("r-a"), "pat").await;
    assert_alive(&srv, &mut fresh, "fresh").await;
    let a = signout(
        &srv,
        "r-a",
        &w.alice,
        &[("authorization", &format!("bearer {}", fresh.jwt()))],
        Some(br#"{"sign_out_all": true}"#),
    )
    .await;
    assert_204(&a);
    assert_dead(&srv, &fresh, "fresh").await;
    assert_dead(&srv, &other, "other").await;
    assert!(!srv.is_active(s(&fresh_pat, "personal_access_token")).await);
    assert_alive(&srv, &mut w.login_b, "login_b").await;
    assert_alive(&srv, &mut w.bob_a, "bob_a").await;
    assert_eq!(srv.session_state(&w.idp).await, "active");
}

/// (what, app, user, headers)
type ForbiddenCase<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, &'a str)>);

#[tokio::test]
async fn errors_have_their_statuses_and_a_json_body_and_revoke_nothing() {
    let srv = Server::start().await;
    let w = world(&srv).await;
    let key = s(&w.a, "rownd_app_key");
    let secret = s(&w.a, "rownd_app_secret");
    // A second key of r-a, revoked.
    let k = srv
        .admin(Method::POST, "/admin/v1/applications/r-a/keys", None)
        .await;
    assert_eq!(k.status, StatusCode::CREATED, "{}", k.text());
    let k = k.json();
    let (key2, secret2) = (s(&k, "rownd_app_key"), s(&k, "rownd_app_secret"));
    let r = srv
        .admin(
            Method::DELETE,
            &format!("/admin/v1/applications/r-a/keys/{key2}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // A hub JWT of a revoked session, and a tampered one.
    let dead = Grant::new(&srv, &w.alice, "r-a", "oauth").await;
    let d = srv
        .admin(
            Method::DELETE,
            &format!("/admin/v1/sessions/{}", s(&dead.v, "id")),
            None,
        )
        .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text());
    let tampered = {
        let mut t = w.login_a.jwt().to_owned();
        let last = t.pop().expect("non-empty");
        t.push(if last == 'A' { 'B' } else { 'A' });
        t
    };
    let alice = w.alice.as_str();
    let unauthorized: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no credentials", vec![]),
        ("key without secret", vec![("x-rownd-app-key", key.into())]),
        (
            "secret without key",
            vec![("x-rownd-app-secret", secret.into())],
        ),
        (
            "wrong secret",
            vec![
                ("x-rownd-app-key", key.into()),
                ("x-rownd-app-secret", format!("{secret}x")),
            ],
        ),
        (
            "another app's secret",
            vec![
                ("x-rownd-app-key", key.into()),
                ("x-rownd-app-secret", s(&w.b, "rownd_app_secret").into()),
            ],
        ),
        (
            "unknown key",
            vec![
                ("x-rownd-app-key", "key_000000000000000000000000".into()),
                ("x-rownd-app-secret", secret.into()),
            ],
        ),
        (
            "revoked key",
            vec![
                ("x-rownd-app-key", key2.into()),
                ("x-rownd-app-secret", secret2.into()),
            ],
        ),
        ("garbage JWT", vec![("authorization", bearer("not.a.jwt"))]),
        ("tampered JWT", vec![("authorization", bearer(&tampered))]),
        (
            "JWT of a revoked session",
            vec![("authorization", bearer(dead.jwt()))],
        ),
        (
            "an opaque access token as bearer",
            vec![("authorization", bearer(s(&w.login_a.v, "access_token")))],
        ),
        (
            "Basic scheme",
            vec![("authorization", format!("Basic {key}:{secret}"))],
        ),
        (
            "app secret as bearer",
            vec![("authorization", bearer(secret))],
        ),
    ];
    for (what, headers) in &unauthorized {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = signout(&srv, "r-a", alice, &h, Some(br#"{"sign_out_all": true}"#)).await;
        assert_rownd_error(&a, StatusCode::UNAUTHORIZED, what);
    }

    let (jwt_b, jwt_bob, jwt_alice) = (
        bearer(w.login_b.jwt()),
        bearer(w.bob_a.jwt()),
        bearer(w.login_a.jwt()),
    );
    let forbidden: Vec<ForbiddenCase> = vec![
        ("r-b's key on r-a", "r-a", alice, creds(&w.b).to_vec()),
        ("r-a's key on r-b", "r-b", alice, creds(&w.a).to_vec()),
        (
            "a JWT of r-b on r-a",
            "r-a",
            alice,
            vec![("authorization", &jwt_b)],
        ),
        (
            "a JWT of another user",
            "r-a",
            alice,
            vec![("authorization", &jwt_bob)],
        ),
        (
            "Alice's JWT on Bob",
            "r-a",
            &w.bob,
            vec![("authorization", &jwt_alice)],
        ),
    ];
    for (what, app, user, headers) in &forbidden {
        let a = signout(&srv, app, user, headers, Some(b"{}")).await;
        assert_rownd_error(&a, StatusCode::FORBIDDEN, what);
    }

    for (what, app, user) in [
        ("unknown app", "no-such-app", alice),
        ("unknown user", "r-a", "00uAAAAAAAAAAAAAAAAA"),
        ("malformed user id", "r-a", "not-a-user"),
        ("a login instead of an id", "r-a", "alice"),
    ] {
        let a = signout(&srv, app, user, &creds(&w.a), Some(b"{}")).await;
        assert_rownd_error(&a, StatusCode::NOT_FOUND, what);
    }

    for (what, body) in [
        ("not JSON", &b"sign_out_all=true"[..]),
        ("truncated JSON", br#"{"sign_out_all": "#),
        ("a string", br#"{"sign_out_all": "true"}"#),
        ("a number", br#"{"sign_out_all": 1}"#),
        ("an object", br#"{"sign_out_all": {}}"#),
        ("a JSON array", b"[true]"),
        ("a JSON string", b"\"sign_out_all\""),
        ("a JSON number", b"42"),
    ] {
        let a = signout(&srv, "r-a", alice, &creds(&w.a), Some(body)).await;
        assert_rownd_error(&a, StatusCode::BAD_REQUEST, what);
        let a = signout(
            &srv,
            "r-a",
            alice,
            &[("authorization", &bearer(w.login_a.jwt()))],
            Some(body),
        )
        .await;
        assert_rownd_error(&a, StatusCode::BAD_REQUEST, &format!("{what} (JWT)"));
    }

    assert_world_untouched(&srv, &w, "after the errors").await;
    // The unrevoked key still works.
    let a = signout(&srv, "r-a", alice, &creds(&w.a), None).await;
    assert_204(&a);
    assert!(!srv.is_active(w.oauth_a.jwt()).await);
}

#[tokio::test]
async fn refresh_tokens_are_single_use() {
    let srv = Server::start().await;
    let mut w = world(&srv).await;
    let r0 = w.oauth_a.refresh.clone();
    assert_alive(&srv, &mut w.oauth_a, "first refresh").await;
    let a = hub_token(&srv, &json!({"refresh_token": r0})).await;
    assert_rownd_error(&a, StatusCode::BAD_REQUEST, "reused refresh token");
    // Reuse revokes the family.
    assert_dead(&srv, &w.oauth_a, "family").await;
    assert_alive(&srv, &mut w.login_a, "login_a").await;
    for body in [
        json!({}),
        json!({"refresh_token": "nope"}),
        json!({"refresh_token": 5}),
    ] {
        let a = hub_token(&srv, &body).await;
        assert_rownd_error(&a, StatusCode::BAD_REQUEST, &body.to_string());
    }
}

async fn jwks(srv: &Server) -> Value {
    let a = srv.send(Method::GET, "/hub/auth/keys", &[], None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(
        a.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json")
    );
    a.json()
}

/// Verifies a hub JWT against the JWKS: EdDSA over `header.claims` with the key of its
/// `kid`; returns the claims.
fn verify_with_jwks(jwks: &Value, jwt: &str) -> Value {
    use base64::Engine;
    use ed25519_dalek::Verifier;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let header: Value =
        serde_json::from_slice(&b64.decode(parts[0]).expect("b64")).expect("header");
    assert_eq!(header["alg"], "EdDSA", "{header}");
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("no key {} in {jwks}", header["kid"]));
    let x: [u8; 32] = b64
        .decode(s(key, "x"))
        .expect("x")
        .try_into()
        .expect("32 bytes");
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&x).expect("a point");
    let sig = ed25519_dalek::Signature::from_slice(&b64.decode(parts[2]).expect("sig"))
        .expect("64 bytes");
    vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the signature verifies");
    serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("claims")
}

#[tokio::test]
async fn idempotent_and_durable_across_a_restart_with_a_stable_jwks() {
    let mut srv = Server::start().await;
    let mut w = world(&srv).await;
    let keys = jwks(&srv).await;
    let list = keys["keys"].as_array().expect("keys");
    assert!(!list.is_empty(), "{keys}");
    let k = &list[0];
    assert_eq!(k["kty"], "OKP");
    assert_eq!(k["crv"], "Ed25519");
    assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    assert!(k.get("d").is_none(), "no private part: {k}");
    let claims = verify_with_jwks(&keys, w.login_a.jwt());
    assert_eq!(
        claims["https://auth.rownd.io/app_user_id"],
        w.alice.as_str()
    );
    assert!(
        claims["aud"]
            .as_array()
            .expect("aud")
            .contains(&json!("app:r-a")),
        "{claims}"
    );

    assert_204(&signout(&srv, "r-a", &w.alice, &creds(&w.a), None).await);
    assert_204(&signout(&srv, "r-a", &w.alice, &creds(&w.a), None).await);
    // Sessions issued after the signout are alive, through the restart.
    let mut fresh = Grant::new(&srv, &w.alice, "r-a", "login").await;
    let fresh2 = Grant::new(&srv, &w.alice, "r-a", "oauth").await;
    srv.restart().await;

    assert_eq!(jwks(&srv).await, keys, "the hub key survives a restart");
    verify_with_jwks(&keys, fresh.jwt());
    assert_signed_out_of_a(&srv, &mut w, "after restart").await;
    assert_alive(&srv, &mut fresh, "fresh").await;
    // A hub JWT issued before the restart still authenticates.
    let a = signout(
        &srv,
        "r-a",
        &w.alice,
        &[("authorization", &bearer(fresh2.jwt()))],
        Some(br#"{"sign_out_all": false}"#),
    )
    .await;
    assert_204(&a);
    assert_dead(&srv, &fresh2, "fresh2").await;
    assert_alive(&srv, &mut fresh, "fresh").await;
    // The app credentials survived too.
    assert_204(&signout(&srv, "r-a", &w.alice, &creds(&w.a), None).await);
    assert_dead(&srv, &fresh, "fresh").await;
    assert_alive(&srv, &mut w.bob_a, "bob_a").await;
}

#[tokio::test]
async fn an_expired_hub_jwt_is_401_and_a_refreshed_one_works() {
    let srv = Server::start().await;
    let mut w = world(&srv).await;
    let old = w.login_a.jwt().to_owned();
    // Past the hub JWT's hour; the login session itself lives on.
    srv.clock.advance(2 * 3_600_000);
    let a = signout(
        &srv,
        "r-a",
        &w.alice,
        &[("authorization", &bearer(&old))],
        None,
    )
    .await;
    assert_rownd_error(&a, StatusCode::UNAUTHORIZED, "expired hub JWT");
    assert_eq!(srv.session_state(s(&w.login_a.v, "id")).await, "active");
    assert_eq!(srv.session_state(s(&w.oauth_a.v, "id")).await, "active");
    // The refresh token still works and gives a new, valid hub JWT.
    let a = hub_token(&srv, &json!({"refresh_token": w.login_a.refresh})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    w.login_a.refresh = s(&v, "refresh_token").to_owned();
    w.login_a.jwts = vec![s(&v, "access_token").to_owned()];
    assert!(srv.is_active(w.login_a.jwt()).await);
    let a = signout(
        &srv,
        "r-a",
        &w.alice,
        &[("authorization", &bearer(w.login_a.jwt()))],
        Some(br#"{"sign_out_all": false}"#),
    )
    .await;
    assert_204(&a);
    assert_dead(&srv, &w.login_a, "login_a").await;
    assert_eq!(srv.session_state(s(&w.oauth_a.v, "id")).await, "active");
}
