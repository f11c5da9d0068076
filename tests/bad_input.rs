//! Bad input against a live server: malformed JSON, wrong types, missing and unknown fields,
//! bodies over the cap, oversized and too many headers, invalid UTF-8 in paths, headers and
//! bodies, encoded slashes and dot segments in path ids, unknown methods and paths, slow
//! clients, idle connections over the cap, and a flood from one credential. Each answer is
//! checked for its exact status and body in the reached shape's own error format (the
//! generic ones are in ARCHITECTURE.md, "Limits"), and after each rejected request every
//! session of the target account is still alive: nothing is half-applied.
//!
//! reqwest sends what it can; the rest (bytes that are not UTF-8, `..` that a URL parser
//! would fold, odd methods, huge heads, slow or idle sockets) goes over a raw `TcpStream`.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sessiond::http::Limits;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const APP: &str = "app1";

/// One account with a session of every kind, and the credentials each shape takes.
struct World {
    srv: Server,
    alice: String,
    /// Every session of alice: all must stay alive through a rejected request.
    sessions: Vec<String>,
    /// An Okta identity-provider session of alice.
    idp: String,
    /// A login session of alice in `APP`: its id and tokens.
    login_id: String,
    access: String,
    login_token: String,
    subject: String,
    private_pem: String,
    rownd_key: String,
    rownd_secret: String,
    /// An Okta API token with `okta.users.manage` and `okta.sessions.read`.
    okta: String,
}

async fn world_with(limits: Limits) -> World {
    let srv = Server::start_with(Default::default(), limits).await;
    let app = srv.app(APP).await;
    let alice = s(&srv.account("alice").await, "id").to_owned();
    let idp = srv.session(&alice, None, "idp").await;
    let login = srv.session(&alice, Some(APP), "login").await;
    let login2 = srv.session(&alice, Some(APP), "login").await;
    let oauth = srv.session(&alice, Some(APP), "oauth").await;
    let pat = srv.session(&alice, Some(APP), "pat").await;
    let okta = srv
        .api_token(&["okta.users.manage", "okta.sessions.read"], None)
        .await;
    World {
        alice,
        sessions: [&idp, &login, &login2, &oauth, &pat]
            .iter()
            .map(|v| s(v, "id").to_owned())
            .collect(),
        idp: s(&idp, "id").to_owned(),
        login_id: s(&login, "id").to_owned(),
        access: s(&login, "access_token").to_owned(),
        login_token: s(&login, "login_token").to_owned(),
        subject: s(&login, "subject").to_owned(),
        private_pem: s(&app, "connect_private_key_pem").to_owned(),
        rownd_key: s(&app, "rownd_app_key").to_owned(),
        rownd_secret: s(&app, "rownd_app_secret").to_owned(),
        okta,
        srv,
    }
}

async fn world() -> World {
    world_with(Limits::default()).await
}

impl World {
    /// Nothing of alice was revoked.
    async fn all_alive(&self, after: &str) {
        for id in &self.sessions {
            assert_eq!(
                self.srv.session_state(id).await,
                "active",
                "session {id} died after {after}"
            );
        }
    }

    fn addr(&self) -> &str {
        self.srv.base.trim_start_matches("http://")
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.access)
    }

    fn ssws(&self) -> String {
        format!("SSWS {}", self.okta)
    }

    /// `Authorization` for Connect, signed over `body`.
    fn client_jwt(&self, body: &[u8]) -> String {
        let jwt = client_jwt(
            &self.private_pem,
            APP,
            "sudomimus-connect",
            body,
            now_s(),
            30,
            &unique_jti(),
        );
        format!("SudomimusClientJWT {jwt}")
    }

    fn okta_path(&self) -> String {
        format!("/api/v1/users/{}/sessions", self.alice)
    }

    fn rownd_path(&self) -> String {
        format!("/applications/{APP}/users/{}/signout", self.alice)
    }

    fn rownd_creds(&self) -> [(&str, &str); 2] {
        [
            ("x-rownd-app-key", self.rownd_key.as_str()),
            ("x-rownd-app-secret", self.rownd_secret.as_str()),
        ]
    }

    fn rc_creds(&self) -> [(&str, &str); 2] {
        [
            ("x-auth-token", self.login_token.as_str()),
            ("x-user-id", self.alice.as_str()),
        ]
    }
}

/// The body as JSON, with Okta's random `errorId` checked and taken out.
fn body(a: &Answer) -> Value {
    let mut v = a.json();
    if let Some(id) = v.get("errorId") {
        let id = id.as_str().expect("errorId is a string");
        assert!(id.starts_with("oae") && id.len() > 10, "errorId {id}");
        v.as_object_mut().expect("object").remove("errorId");
    }
    v
}

fn okta_error(code: &str, summary: &str) -> Value {
    json!({"errorCode": code, "errorSummary": summary, "errorLink": code, "errorCauses": []})
}

fn rownd_error(status: u16, reason: &str, message: &str) -> Value {
    json!({"statusCode": status, "error": reason, "message": message})
}

fn flashback_error(message: &str) -> Value {
    json!({"success": false, "error": message})
}

fn admin_error(code: &str, message: &str) -> Value {
    json!({"error": code, "message": message})
}

/// Okta stamps its rate-limit and request-id headers on every answer, errors included.
fn assert_okta_headers(a: &Answer) {
    for h in [
        "x-rate-limit-limit",
        "x-rate-limit-remaining",
        "x-rate-limit-reset",
        "x-okta-request-id",
    ] {
        assert!(a.header(h).is_some(), "no {h} in {:?}", a.headers);
    }
}

fn assert_answer(a: &Answer, status: u16, expected: &Value, what: &str) {
    assert_eq!(a.status.as_u16(), status, "{what}: {}", a.text());
    assert_eq!(&body(a), expected, "{what}");
}

// ---- raw HTTP/1.1 over TCP ---------------------------------------------------------------

/// An answer read off a raw socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        let mut v: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body))
        });
        if let Some(o) = v.as_object_mut() {
            o.remove("errorId");
        }
        v
    }
}

/// Reads until the peer closes (or 3 s pass), returning every byte.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server neither answered nor closed in 3 s: {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

fn parse_raw(bytes: &[u8]) -> Raw {
    let text = String::from_utf8_lossy(bytes);
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        panic!("no complete response head: {text:?}");
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = bytes[end + 4..].to_vec();
    if let Some(n) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(n);
    }
    Raw {
        status,
        headers,
        body,
    }
}

/// Sends `request` as given (it should say `Connection: close`) and reads the answer.
async fn raw(addr: &str, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before it has read everything (a 413, a 431): a
    // failed write is not the test's concern, the answer is.
    let _ = stream.write_all(request).await;
    parse_raw(&read_to_close(&mut stream).await)
}

/// Header lines for `request`: names and raw value bytes.
type Headers<'a> = Vec<(&'a str, &'a [u8])>;

/// A request head with `Connection: close`, the given extra header lines, and `body`.
fn request(method: &str, path: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(method.as_bytes());
    r.push(b' ');
    r.extend_from_slice(path);
    r.extend_from_slice(b" HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (k, v) in headers {
        r.extend_from_slice(k.as_bytes());
        r.extend_from_slice(b": ");
        r.extend_from_slice(v);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    r.extend_from_slice(body);
    r
}

// ---- malformed JSON, wrong types, missing and unknown fields -----------------------------

#[tokio::test]
async fn malformed_json_is_a_400_in_every_shape() {
    let w = world().await;
    let srv = &w.srv;
    let bad = br#"{"subject": "#;

    // Connect: authentication over the raw body first, then the body.
    let a = srv
        .send(
            Method::POST,
            "/revoke-all",
            &[
                ("authorization", &w.client_jwt(bad)),
                ("content-type", "application/json"),
            ],
            Some(bad),
        )
        .await;
    assert_answer(&a, 400, &json!({"reason": "InvalidBody"}), "connect");
    // Without valid authentication the same body is a 401: auth is checked first.
    let a = srv
        .send(
            Method::POST,
            "/revoke-all",
            &[("content-type", "application/json")],
            Some(bad),
        )
        .await;
    assert_answer(
        &a,
        401,
        &json!({"reason": "ClientJwtInvalid"}),
        "connect, no auth",
    );

    let a = srv
        .send(
            Method::POST,
            "/sessions/revoke-all",
            &[("authorization", &w.bearer())],
            Some(bad),
        )
        .await;
    assert_answer(&a, 400, &flashback_error("Invalid JSON body"), "flashback");

    let a = srv
        .send(
            Method::POST,
            "/api/v1/users.logoutOtherClients",
            &w.rc_creds(),
            Some(bad),
        )
        .await;
    assert_answer(
        &a,
        400,
        &flashback_error("Invalid JSON body"),
        "rocket.chat",
    );

    let a = srv
        .send(Method::POST, &w.rownd_path(), &w.rownd_creds(), Some(bad))
        .await;
    let rownd_400 = rownd_error(
        400,
        "Bad Request",
        "body must be {\"sign_out_all\": boolean}",
    );
    assert_answer(&a, 400, &rownd_400, "rownd");

    let a = srv
        .send(
            Method::POST,
            "/admin/v1/sessions",
            &[("authorization", &format!("Bearer {ADMIN}"))],
            Some(bad),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    let v = a.json();
    assert_eq!(v["error"], "invalid_request");
    assert!(s(&v, "message").starts_with("invalid JSON body: "), "{v}");

    // Okta's DELETE takes no body (none is defined), so a body is not "malformed": it is
    // not read as JSON at all. Its bad input is the query.
    let a = srv
        .send(
            Method::DELETE,
            &format!("{}?oauthTokens=maybe", w.okta_path()),
            &[("authorization", &w.ssws())],
            None,
        )
        .await;
    let mut expected = okta_error("E0000001", "Api validation failed: oauthTokens");
    expected["errorCauses"] = json!([{"errorSummary": "oauthTokens: must be true or false"}]);
    assert_answer(&a, 400, &expected, "okta");
    assert_okta_headers(&a);

    w.all_alive("malformed JSON").await;
}

/// Whitespace alone is a body and not JSON (Express's `body-parser`, strict, answers it with
/// a 400), unlike an empty body, which the shapes that allow no body read as none. Found by
/// schemathesis: `-d ' '` to logoutOtherClients was a 200 and revoked.
#[tokio::test]
async fn a_body_of_only_whitespace_is_malformed_json() {
    let w = world().await;
    let srv = &w.srv;
    for ws in [&b" "[..], b"\r\n\t "] {
        let json = [("content-type", "application/json")];
        let a = srv
            .send(
                Method::POST,
                "/api/v1/users.logoutOtherClients",
                &[w.rc_creds()[0], w.rc_creds()[1], json[0]],
                Some(ws),
            )
            .await;
        assert_answer(
            &a,
            400,
            &flashback_error("Invalid JSON body"),
            "rocket.chat",
        );
        let a = srv
            .send(
                Method::POST,
                "/sessions/revoke-all",
                &[("authorization", &w.bearer()), json[0]],
                Some(ws),
            )
            .await;
        assert_answer(&a, 400, &flashback_error("Invalid JSON body"), "flashback");
        let a = srv
            .send(
                Method::POST,
                &w.rownd_path(),
                &[w.rownd_creds()[0], w.rownd_creds()[1], json[0]],
                Some(ws),
            )
            .await;
        let rownd_400 = rownd_error(
            400,
            "Bad Request",
            "body must be {\"sign_out_all\": boolean}",
        );
        assert_answer(&a, 400, &rownd_400, "rownd");
    }
    w.all_alive("a whitespace body").await;

    // An empty body is no body: the call goes through.
    let a = srv
        .send(
            Method::POST,
            "/api/v1/users.logoutOtherClients",
            &w.rc_creds(),
            Some(b""),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(body(&a)["success"], json!(true));
}

#[tokio::test]
async fn wrong_types_missing_and_unknown_fields_are_400() {
    let w = world().await;
    let srv = &w.srv;
    // Connect's body is exactly `{"subject": string}` (strict: an unknown field is refused).
    for b in [
        json!({"subject": 5}),
        json!({}),
        json!({"subject": w.subject, "extra": 1}),
        json!([w.subject]),
        json!(null),
        json!(w.subject),
    ] {
        let bytes = b.to_string();
        let a = srv
            .send(
                Method::POST,
                "/revoke-all",
                &[
                    ("authorization", &w.client_jwt(bytes.as_bytes())),
                    ("content-type", "application/json"),
                ],
                Some(bytes.as_bytes()),
            )
            .await;
        assert_answer(&a, 400, &json!({"reason": "InvalidBody"}), &bytes);
    }

    // Rownd: `sign_out_all` must be a boolean, and the body an object.
    let rownd_400 = rownd_error(
        400,
        "Bad Request",
        "body must be {\"sign_out_all\": boolean}",
    );
    for b in [
        json!({"sign_out_all": "yes"}),
        json!({"sign_out_all": 1}),
        json!([true]),
        json!(true),
    ] {
        let mut h = w.rownd_creds().to_vec();
        h.push(("content-type", "application/json"));
        let a = srv
            .send(
                Method::POST,
                &w.rownd_path(),
                &h,
                Some(b.to_string().as_bytes()),
            )
            .await;
        assert_answer(&a, 400, &rownd_400, &b.to_string());
    }

    // Rocket.Chat's body parser takes JSON objects only (our reading: its endpoints are
    // objects-in); a JSON array or scalar is a 400 before authentication.
    for b in ["[1]", "\"x\"", "7"] {
        let a = srv
            .send(
                Method::POST,
                "/api/v1/users.logoutOtherClients",
                &w.rc_creds(),
                Some(b.as_bytes()),
            )
            .await;
        assert_answer(&a, 400, &flashback_error("Invalid JSON body"), b);
    }

    // The admin API is strict: wrong types, missing and unknown fields are 400s.
    let admin = format!("Bearer {ADMIN}");
    for (b, fragment) in [
        (json!({"account": 5, "kind": "login"}), "invalid type"),
        (json!({"kind": "login"}), "missing field `account`"),
        (
            json!({"account": w.alice, "kind": "idp", "extra": true}),
            "unknown field `extra`",
        ),
        (
            json!({"account": w.alice, "kind": "nope"}),
            "unknown variant",
        ),
    ] {
        let a = srv
            .send_json(
                Method::POST,
                "/admin/v1/sessions",
                &[("authorization", &admin)],
                &b,
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{b}: {}", a.text());
        let v = a.json();
        assert_eq!(v["error"], "invalid_request", "{b}");
        assert!(s(&v, "message").contains(fragment), "{b}: {v}");
    }

    // Okta's flags take exactly true/false (any case).
    for q in ["forgetDevices=1", "forgetDevices=", "forgetDevices=yes"] {
        let a = srv
            .send(
                Method::DELETE,
                &format!("{}?{q}", w.okta_path()),
                &[("authorization", &w.ssws())],
                None,
            )
            .await;
        let mut expected = okta_error("E0000001", "Api validation failed: forgetDevices");
        expected["errorCauses"] = json!([{"errorSummary": "forgetDevices: must be true or false"}]);
        assert_answer(&a, 400, &expected, q);
    }

    w.all_alive("wrong types").await;
}

/// Flashback documents no body for its revoke-all; the samples send `{}`. Any JSON is
/// ignored (contracts.md: "an empty body, `{}`, or any ignored JSON"), so a JSON array or
/// a scalar is not an error: the call succeeds.
#[tokio::test]
async fn flashback_ignores_any_json_body() {
    let w = world().await;
    let a = w
        .srv
        .send(
            Method::POST,
            "/sessions/revoke-all",
            &[("authorization", &w.bearer())],
            Some(b"[1, \"x\"]"),
        )
        .await;
    assert_answer(
        &a,
        200,
        &json!({"success": true, "message": "All sessions revoked successfully"}),
        "array body",
    );
    assert_eq!(w.srv.session_state(&w.login_id).await, "revoked");
}

// ---- bodies over the cap -------------------------------------------------------------------

#[tokio::test]
async fn bodies_over_the_cap_are_413_in_every_shape() {
    let w = world_with(Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    })
    .await;
    let srv = &w.srv;
    let big = format!("{{\"subject\": \"{}\"}}", "x".repeat(2048));
    let big = big.as_bytes();
    let msg = "request body too large";

    let a = srv
        .send(
            Method::POST,
            "/revoke-all",
            &[("authorization", &w.client_jwt(big))],
            Some(big),
        )
        .await;
    assert_answer(&a, 413, &json!({"reason": "BodyTooLarge"}), "connect");

    let a = srv
        .send(
            Method::POST,
            "/sessions/revoke-all",
            &[("authorization", &w.bearer())],
            Some(big),
        )
        .await;
    assert_answer(&a, 413, &flashback_error(msg), "flashback");

    let a = srv
        .send(
            Method::POST,
            "/api/v1/users.logoutOtherClients",
            &w.rc_creds(),
            Some(big),
        )
        .await;
    assert_answer(&a, 413, &flashback_error(msg), "rocket.chat");

    let a = srv
        .send(Method::POST, &w.rownd_path(), &w.rownd_creds(), Some(big))
        .await;
    assert_answer(
        &a,
        413,
        &rownd_error(413, "Payload Too Large", msg),
        "rownd",
    );

    let a = srv
        .send(
            Method::DELETE,
            &w.okta_path(),
            &[("authorization", &w.ssws())],
            Some(big),
        )
        .await;
    assert_answer(&a, 413, &okta_error("E0000001", msg), "okta");
    assert_okta_headers(&a);

    let a = srv
        .send(
            Method::POST,
            "/admin/v1/sessions",
            &[("authorization", &format!("Bearer {ADMIN}"))],
            Some(big),
        )
        .await;
    assert_answer(&a, 413, &admin_error("payload_too_large", msg), "admin");

    // Chunked, with no Content-Length to refuse up front: cut off at the cap while read.
    let mut req = format!(
        "POST /sessions/revoke-all HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
         authorization: {}\r\ntransfer-encoding: chunked\r\n\r\n",
        w.bearer()
    )
    .into_bytes();
    for _ in 0..4 {
        req.extend_from_slice(format!("200\r\n{}\r\n", "y".repeat(512)).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = raw(w.addr(), &req).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json(), flashback_error(msg));

    // A declared length over the cap is refused before any of the body is sent.
    let r = raw(
        w.addr(),
        format!(
            "POST /sessions/revoke-all HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
             authorization: {}\r\ncontent-length: 1000000000\r\n\r\n",
            w.bearer()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json(), flashback_error(msg));

    w.all_alive("bodies over the cap").await;
}

#[tokio::test]
async fn a_body_sent_too_slowly_is_408() {
    let w = world_with(Limits {
        body_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    for (path, headers, expected) in [
        (
            "/sessions/revoke-all".to_owned(),
            vec![("authorization".to_owned(), w.bearer())],
            flashback_error("request body not received in time"),
        ),
        (
            "/revoke-all".to_owned(),
            vec![("authorization".to_owned(), w.client_jwt(b"{}"))],
            json!({"reason": "RequestTimeout"}),
        ),
        (
            w.rownd_path(),
            w.rownd_creds()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            rownd_error(408, "Request Timeout", "request body not received in time"),
        ),
    ] {
        let mut stream = TcpStream::connect(w.addr()).await.expect("connect");
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: 100\r\n"
        );
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n{\"sign_out_all\"");
        stream.write_all(head.as_bytes()).await.expect("write");
        let started = Instant::now();
        let r = parse_raw(&read_to_close(&mut stream).await);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(r.status, 408, "{path}");
        assert_eq!(r.json(), expected, "{path}");
    }
    w.all_alive("a slow body").await;
}

// ---- headers --------------------------------------------------------------------------------

/// A head over `Limits::max_head_bytes` (16 KiB) is a 431 in the shape's format. hyper
/// stops buffering a head at that size too, but only between reads: a head far over it (or
/// with more than 100 headers) never reaches the router, and hyper answers the 431 itself
/// with an empty body (no shape is known yet) and closes the connection.
#[tokio::test]
async fn oversized_or_too_many_headers_are_431() {
    let w = world().await;
    let auth = w.bearer();
    let ssws = w.ssws();
    let connect_auth = w.client_jwt(b"");
    let okta_path = w.okta_path();
    let big = "a".repeat(20 * 1024);
    let too_large = "request header fields too large";
    let cases: Vec<(&str, &[u8], &[u8], Value)> = vec![
        (
            "POST",
            b"/sessions/revoke-all",
            auth.as_bytes(),
            flashback_error(too_large),
        ),
        (
            "POST",
            b"/revoke-all",
            connect_auth.as_bytes(),
            json!({"reason": "HeadersTooLarge"}),
        ),
        (
            "DELETE",
            okta_path.as_bytes(),
            ssws.as_bytes(),
            okta_error("E0000001", too_large),
        ),
        (
            "GET",
            b"/admin/v1/applications",
            b"Bearer test-admin-token",
            admin_error("headers_too_large", too_large),
        ),
        (
            "GET",
            b"/nope",
            auth.as_bytes(),
            admin_error("headers_too_large", too_large),
        ),
    ];
    for (method, path, authorization, expected) in cases {
        let r = raw(
            w.addr(),
            &request(
                method,
                path,
                &[("authorization", authorization), ("x-big", big.as_bytes())],
                b"",
            ),
        )
        .await;
        let what = String::from_utf8_lossy(path);
        assert_eq!(r.status, 431, "{what}");
        assert_eq!(r.json(), expected, "{what}");
    }

    let huge = "a".repeat(256 * 1024);
    let r = raw(
        w.addr(),
        &request(
            "POST",
            b"/sessions/revoke-all",
            &[
                ("authorization", auth.as_bytes()),
                ("x-big", huge.as_bytes()),
            ],
            b"",
        ),
    )
    .await;
    assert_eq!(r.status, 431);
    assert!(r.body.is_empty(), "{:?}", r.body);

    let names: Vec<String> = (0..150).map(|i| format!("x-h{i}")).collect();
    let mut headers: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"v"[..])).collect();
    headers.push(("authorization", auth.as_bytes()));
    let r = raw(
        w.addr(),
        &request("POST", b"/sessions/revoke-all", &headers, b""),
    )
    .await;
    assert_eq!(r.status, 431);
    assert!(r.body.is_empty());

    // Under both limits a request goes through to its handler.
    let names: Vec<String> = (0..90).map(|i| format!("x-h{i}")).collect();
    let mut headers: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"v"[..])).collect();
    let fits = "a".repeat(12 * 1024);
    headers.push(("x-big", fits.as_bytes()));
    let r = raw(w.addr(), &request("GET", b"/healthz", &headers, b"")).await;
    assert_eq!(r.status, 200);
    w.all_alive("oversized headers").await;
}

// ---- invalid UTF-8 ----------------------------------------------------------------------------

#[tokio::test]
async fn invalid_utf8_in_paths_headers_and_bodies() {
    let w = world().await;
    let addr = w.addr();

    // Raw bytes over 0x7f in the request target: not a valid URI, refused by hyper with an
    // empty 400 before routing.
    let mut path = b"/api/v1/users/".to_vec();
    path.extend_from_slice(&[0xff, 0xfe]);
    path.extend_from_slice(b"/sessions");
    let r = raw(
        addr,
        &request(
            "DELETE",
            &path,
            &[("authorization", w.ssws().as_bytes())],
            b"",
        ),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.is_empty());

    // Percent-encoded bytes that do not decode to UTF-8: the path names no endpoint (ids
    // are decoded before routing, so this is the generic 404).
    let r = raw(
        addr,
        &request(
            "DELETE",
            b"/api/v1/users/%ff%fe/sessions",
            &[("authorization", w.ssws().as_bytes())],
            b"",
        ),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), admin_error("not_found", "no such endpoint"));

    // Header values that are not UTF-8 are no credential: each shape's 401.
    let bad: &[u8] = b"\xff\xfe\xfd";
    let mut bearer_bad = b"Bearer ".to_vec();
    bearer_bad.extend_from_slice(bad);
    let mut ssws_bad = b"SSWS ".to_vec();
    ssws_bad.extend_from_slice(bad);
    let mut jwt_bad = b"SudomimusClientJWT ".to_vec();
    jwt_bad.extend_from_slice(bad);
    let okta_path = w.okta_path();
    let rownd_path = w.rownd_path();
    let cases: Vec<(&str, &[u8], Headers, Value)> = vec![
        (
            "POST",
            b"/sessions/revoke-all",
            vec![("authorization", &bearer_bad)],
            flashback_error("Unauthorized"),
        ),
        (
            "POST",
            b"/api/v1/users.logoutOtherClients",
            vec![("x-auth-token", bad), ("x-user-id", w.alice.as_bytes())],
            json!({"success": false, "error": "You must be logged in to do this.",
                   "status": "error", "message": "You must be logged in to do this."}),
        ),
        (
            "DELETE",
            okta_path.as_bytes(),
            vec![("authorization", &ssws_bad)],
            okta_error("E0000011", "Invalid token provided"),
        ),
        (
            "POST",
            b"/revoke-all",
            vec![("authorization", &jwt_bad)],
            json!({"reason": "ClientJwtInvalid"}),
        ),
        (
            "POST",
            rownd_path.as_bytes(),
            vec![
                ("x-rownd-app-key", w.rownd_key.as_bytes()),
                ("x-rownd-app-secret", bad),
            ],
            rownd_error(
                401,
                "Unauthorized",
                "missing credentials: app key and secret, or a bearer token",
            ),
        ),
        (
            "GET",
            b"/admin/v1/applications",
            vec![("authorization", &bearer_bad)],
            admin_error("unauthorized", "a valid admin bearer token is required"),
        ),
    ];
    for (method, path, headers, expected) in cases {
        let r = raw(addr, &request(method, path, &headers, b"")).await;
        let what = String::from_utf8_lossy(path);
        assert_eq!(r.status, 401, "{what}");
        assert_eq!(r.json(), expected, "{what}");
    }

    // Bodies that are not UTF-8: each shape's 400 (authentication passes).
    let body: &[u8] = b"{\"subject\": \"\xff\xfe\"}";
    let connect_auth = w.client_jwt(body);
    let bearer = w.bearer();
    let admin = format!("Bearer {ADMIN}");
    let cases: Vec<(&[u8], Headers, Value)> = vec![
        (
            b"/revoke-all",
            vec![("authorization", connect_auth.as_bytes())],
            json!({"reason": "InvalidBody"}),
        ),
        (
            b"/sessions/revoke-all",
            vec![("authorization", bearer.as_bytes())],
            flashback_error("Invalid JSON body"),
        ),
        (
            b"/api/v1/users.logoutOtherClients",
            vec![
                ("x-auth-token", w.login_token.as_bytes()),
                ("x-user-id", w.alice.as_bytes()),
            ],
            flashback_error("Invalid JSON body"),
        ),
        (
            rownd_path.as_bytes(),
            vec![
                ("x-rownd-app-key", w.rownd_key.as_bytes()),
                ("x-rownd-app-secret", w.rownd_secret.as_bytes()),
            ],
            rownd_error(
                400,
                "Bad Request",
                "body must be {\"sign_out_all\": boolean}",
            ),
        ),
    ];
    for (path, headers, expected) in cases {
        let r = raw(addr, &request("POST", path, &headers, body)).await;
        let what = String::from_utf8_lossy(path);
        assert_eq!(r.status, 400, "{what}");
        assert_eq!(r.json(), expected, "{what}");
    }
    let r = raw(
        addr,
        &request(
            "POST",
            b"/admin/v1/introspect",
            &[("authorization", admin.as_bytes())],
            b"{\"token\": \"\xff\"}",
        ),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_request");

    w.all_alive("invalid UTF-8").await;
}

// ---- path ids ----------------------------------------------------------------------------------

/// The raw path is split on `/` before decoding and never normalised: `%2F` stays inside
/// its id, and `..` is an id like any other (which no id parser accepts), so no path can be
/// folded into another endpoint or another account.
#[tokio::test]
async fn encoded_slashes_and_dot_segments_in_path_ids() {
    let w = world().await;
    let addr = w.addr();
    let a = &w.alice;
    let ssws = w.ssws();
    let okta_auth: Vec<(&str, &[u8])> = vec![("authorization", ssws.as_bytes())];
    for (user, shown) in [
        (format!("{a}%2F"), format!("{a}/")),
        ("..".to_owned(), "..".to_owned()),
        ("%2E%2E".to_owned(), "..".to_owned()),
        (format!("..%2F{a}"), format!("../{a}")),
        (format!("x%2F..%2F{a}"), format!("x/../{a}")),
    ] {
        let path = format!("/api/v1/users/{user}/sessions");
        let r = raw(addr, &request("DELETE", path.as_bytes(), &okta_auth, b"")).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(
            r.json(),
            okta_error(
                "E0000007",
                &format!("Not found: Resource not found: {shown} (User)")
            ),
            "{path}"
        );
    }
    // Dot segments are not resolved: this is not alice's sessions endpoint.
    for path in [
        format!("/api/v1/users/{a}/../{a}/sessions"),
        format!("/api/v1/users/x/../{a}/sessions"),
        format!("/api/v1/users/{a}/sessions/.."),
    ] {
        let r = raw(addr, &request("DELETE", path.as_bytes(), &okta_auth, b"")).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(
            r.json(),
            admin_error("not_found", "no such endpoint"),
            "{path}"
        );
    }

    let creds: Vec<(&str, &[u8])> = w
        .rownd_creds()
        .iter()
        .map(|(k, v)| (*k, v.as_bytes()))
        .collect();
    for (path, message) in [
        (
            format!("/applications/{APP}%2F..%2Fother/users/{a}/signout"),
            "application not found",
        ),
        (
            format!("/applications/%2E%2E/users/{a}/signout"),
            "application not found",
        ),
        (
            format!("/applications/{APP}/users/{a}%2F/signout"),
            "user not found",
        ),
        (
            format!("/applications/{APP}/users/../signout"),
            "user not found",
        ),
    ] {
        let r = raw(addr, &request("POST", path.as_bytes(), &creds, b"")).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json(), rownd_error(404, "Not Found", message), "{path}");
    }

    let bearer = w.bearer();
    let id = &w.login_id;
    for path in [
        format!("/sessions/..%2F{id}/revoke"),
        "/sessions/%2E%2E/revoke".to_owned(),
        format!("/sessions/{id}%2F/revoke"),
    ] {
        let r = raw(
            addr,
            &request(
                "POST",
                path.as_bytes(),
                &[("authorization", bearer.as_bytes())],
                b"",
            ),
        )
        .await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json(), flashback_error("Session not found"), "{path}");
    }

    let admin = format!("Bearer {ADMIN}");
    let admin_auth: Vec<(&str, &[u8])> = vec![("authorization", admin.as_bytes())];
    for (path, message) in [
        (format!("/admin/v1/sessions/..%2F{id}"), "session not found"),
        (format!("/admin/v1/sessions/{id}%2F"), "session not found"),
        (
            format!("/admin/v1/sessions/x/..%2F{id}"),
            "no such endpoint",
        ),
    ] {
        let r = raw(addr, &request("DELETE", path.as_bytes(), &admin_auth, b"")).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json(), admin_error("not_found", message), "{path}");
    }

    // Connect's endpoints have no ids; an encoded slash makes another (unknown) path.
    let r = raw(addr, &request("POST", b"/revoke-all%2F", &[], b"")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), admin_error("not_found", "no such endpoint"));

    w.all_alive("encoded path ids").await;
}

// ---- methods and paths -------------------------------------------------------------------------

#[tokio::test]
async fn unknown_methods_are_405_with_allow_in_each_shape() {
    let w = world().await;
    let addr = w.addr();
    let mna = "method not allowed";
    let okta_path = w.okta_path();
    let rownd_path = w.rownd_path();
    let idp_path = format!("/api/v1/sessions/{}", w.idp);
    let cases: Vec<(&str, &str, &str, Value)> = vec![
        (
            "GET",
            "/revoke-all",
            "POST",
            json!({"reason": "MethodNotAllowed"}),
        ),
        ("PUT", "/sessions/revoke-all", "POST", flashback_error(mna)),
        ("FOO", "/sessions/revoke-all", "POST", flashback_error(mna)),
        (
            "DELETE",
            "/api/v1/users.logoutOtherClients",
            "POST",
            flashback_error(mna),
        ),
        (
            "GET",
            &rownd_path,
            "POST",
            rownd_error(405, "Method Not Allowed", mna),
        ),
        ("POST", &okta_path, "DELETE", okta_error("E0000022", mna)),
        ("BREW", &okta_path, "DELETE", okta_error("E0000022", mna)),
        ("PUT", &idp_path, "GET, DELETE", okta_error("E0000022", mna)),
        (
            "PUT",
            "/admin/v1/applications",
            "GET, POST",
            admin_error("method_not_allowed", mna),
        ),
        (
            "OPTIONS",
            "/healthz",
            "GET",
            admin_error("method_not_allowed", mna),
        ),
    ];
    let auth = w.bearer();
    let ssws = w.ssws();
    for (method, path, allow, expected) in cases {
        // Valid credentials of each kind ride along: a 405 must not run the handler.
        let headers: Vec<(&str, &[u8])> = vec![
            (
                "authorization",
                if path.starts_with("/api/v1/users/") || path.starts_with("/api/v1/sessions/") {
                    ssws.as_bytes()
                } else {
                    auth.as_bytes()
                },
            ),
            ("x-auth-token", w.login_token.as_bytes()),
            ("x-user-id", w.alice.as_bytes()),
            ("x-rownd-app-key", w.rownd_key.as_bytes()),
            ("x-rownd-app-secret", w.rownd_secret.as_bytes()),
        ];
        let r = raw(addr, &request(method, path.as_bytes(), &headers, b"")).await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        assert_eq!(r.json(), expected, "{method} {path}");
        if path.starts_with("/api/v1/") && !path.contains('.') {
            assert!(r.header("x-rate-limit-remaining").is_some(), "{path}");
        }
    }
    w.all_alive("unknown methods").await;
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let w = world().await;
    let srv = &w.srv;
    let nse = admin_error("not_found", "no such endpoint");
    for path in [
        "/",
        "/nope",
        "/revoke-all/extra",
        "/api/v2/users/x/sessions",
        "/api/v1/users/x/sessions/extra",
        "/applications/app1/users/x/signout/now",
        "/apps/app1",
        "/apps/app1/nope",
    ] {
        for m in [Method::GET, Method::POST, Method::DELETE] {
            let a = srv
                .send(m.clone(), path, &[("authorization", &w.bearer())], None)
                .await;
            assert_answer(&a, 404, &nse, &format!("{m} {path}"));
        }
    }
    let a = srv
        .admin(Method::GET, "/apps/app1/admin/v1/applications", None)
        .await;
    assert_answer(
        &a,
        404,
        &admin_error("not_found", "the admin API is not served under /apps/"),
        "admin under a prefix",
    );
    let a = srv.admin(Method::GET, "/admin/v1/nope", None).await;
    assert_answer(
        &a,
        404,
        &admin_error("not_found", "no such endpoint"),
        "unknown admin path",
    );
    // The routes are public (GET /openapi.json lists them): without the admin token an
    // unknown admin path is the same 404, and a known one a 401.
    let a = srv.send(Method::GET, "/admin/v1/nope", &[], None).await;
    assert_answer(
        &a,
        404,
        &admin_error("not_found", "no such endpoint"),
        "unknown admin path, no token",
    );
    let a = srv.send(Method::GET, "/admin/v1/audit", &[], None).await;
    assert_answer(
        &a,
        401,
        &admin_error("unauthorized", "a valid admin bearer token is required"),
        "known admin path, no token",
    );
    w.all_alive("unknown paths").await;
}

// ---- slow and idle clients -------------------------------------------------------------------

/// A head not complete within the header timeout: hyper closes the connection without an
/// answer (it has no request to answer yet; there is no 408 for a head). Our reading of
/// "must close or answer within a bound": closed within the timeout plus a margin.
#[tokio::test]
async fn slow_clients_are_cut_off_by_the_header_timeout() {
    let timeout = Duration::from_millis(400);
    let w = world_with(Limits {
        header_timeout: timeout,
        ..Limits::default()
    })
    .await;
    let mut stream = TcpStream::connect(w.addr()).await.expect("connect");
    let started = Instant::now();
    let head = format!(
        "POST /sessions/revoke-all HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\n",
        w.bearer()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // Trickle one header byte every 100 ms: each byte arrives in time, the head never does.
    let mut closed_at = None;
    for b in b"x-slow: ".iter().cycle().take(40) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if stream.write_all(&[*b]).await.is_err() {
            closed_at = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::ZERO, stream.read(&mut buf)).await {
            assert_eq!(n, 0, "an answer to an incomplete head");
            closed_at = Some(started.elapsed());
            break;
        }
    }
    let closed_at = closed_at.expect("the slow connection was never closed");
    assert!(
        closed_at >= timeout && closed_at < timeout + Duration::from_millis(1500),
        "closed after {closed_at:?}"
    );

    // An idle connection that sends nothing is closed after the same timeout.
    let mut idle = TcpStream::connect(w.addr()).await.expect("connect");
    let started = Instant::now();
    assert!(read_to_close(&mut idle).await.is_empty());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout - Duration::from_millis(50) && elapsed < timeout * 3,
        "idle connection closed after {elapsed:?}"
    );
    w.all_alive("a slow head").await;
}

/// Sends a health check on a fresh connection: `Some(status)`, or `None` if the
/// connection was closed without an answer.
async fn health(addr: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let bytes = read_to_close(&mut s).await;
    (!bytes.is_empty()).then(|| parse_raw(&bytes).status)
}

/// Polls `health` every 50 ms for up to `within`.
async fn serves_again(addr: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if health(addr).await == Some(200) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn idle_connections_over_the_cap_are_refused_and_the_server_recovers() {
    let cap = 3;
    let header_timeout = Duration::from_millis(800);
    let w = world_with(Limits {
        max_connections: cap,
        header_timeout,
        ..Limits::default()
    })
    .await;
    let addr = w.addr().to_owned();
    // Let the setup's connections finish on the server side.
    assert!(serves_again(&addr, Duration::from_secs(1)).await);

    let mut idle = Vec::new();
    for _ in 0..cap {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Over the cap: closed at once, without an answer (the kernel accepts, sessiond drops).
    for _ in 0..2 {
        let mut extra = TcpStream::connect(&addr).await.expect("connect");
        let started = Instant::now();
        assert!(read_to_close(&mut extra).await.is_empty());
        assert!(
            started.elapsed() < header_timeout / 2,
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(health(&addr).await, None, "served over the cap");

    // The idle ones go away: their slots come back.
    idle.clear();
    assert!(
        serves_again(&addr, Duration::from_secs(1)).await,
        "no service after the idle connections closed"
    );

    // Idle connections that stay are closed by the header timeout, and service resumes.
    for _ in 0..cap {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(health(&addr).await, None, "served over the cap");
    assert!(
        serves_again(&addr, header_timeout * 2).await,
        "no service after the idle connections timed out"
    );
    for mut s in idle {
        assert!(read_to_close(&mut s).await.is_empty());
    }
    w.all_alive("idle connections").await;
}

// ---- floods ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_flood_from_one_okta_token_is_429() {
    let w = world().await;
    let srv = &w.srv;
    srv.clock.to_start_of_minute();
    let token = srv
        .api_token(&["okta.users.manage", "okta.sessions.read"], Some(2))
        .await;
    let auth = format!("SSWS {token}");
    let probe = format!("/api/v1/sessions/{}", w.idp);
    for left in ["1", "0"] {
        let a = srv
            .send(Method::GET, &probe, &[("authorization", &auth)], None)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_eq!(a.header("x-rate-limit-remaining"), Some(left));
    }
    let a = srv
        .send(
            Method::DELETE,
            &w.okta_path(),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_answer(
        &a,
        429,
        &okta_error(
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
        ),
        "okta flood",
    );
    assert_eq!(a.header("x-rate-limit-limit"), Some("2"));
    assert_eq!(a.header("x-rate-limit-remaining"), Some("0"));
    // Another token is counted on its own.
    let a = srv
        .send(Method::GET, &probe, &[("authorization", &w.ssws())], None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    w.all_alive("an Okta flood").await;
}

/// The other four shapes document no limit; sessiond's flood guard counts per credential
/// per minute (`Limits::per_credential_per_minute`) and answers 429 with `Retry-After` in
/// the shape's format.
#[tokio::test]
async fn a_flood_from_one_credential_is_429_in_each_shape() {
    let w = world_with(Limits {
        per_credential_per_minute: 3,
        ..Limits::default()
    })
    .await;
    let srv = &w.srv;
    srv.clock.to_start_of_minute();
    let too_many = "too many requests";

    // Flashback: three reads, then the revoke-all is refused.
    for _ in 0..3 {
        let a = srv
            .send(
                Method::GET,
                "/sessions",
                &[("authorization", &w.bearer())],
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    }
    let a = srv
        .send(
            Method::POST,
            "/sessions/revoke-all",
            &[("authorization", &w.bearer())],
            None,
        )
        .await;
    assert_answer(&a, 429, &flashback_error(too_many), "flashback");
    let retry: u64 = a
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");

    // Rocket.Chat.
    for _ in 0..3 {
        let a = srv
            .send(Method::GET, "/api/v1/me", &w.rc_creds(), None)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    }
    let a = srv
        .send(
            Method::POST,
            "/api/v1/users.logoutOtherClients",
            &w.rc_creds(),
            None,
        )
        .await;
    assert_answer(&a, 429, &flashback_error(too_many), "rocket.chat");
    assert!(a.header("retry-after").is_some());

    // Rownd: three refused bodies count too.
    for _ in 0..3 {
        let a = srv
            .send(Method::POST, &w.rownd_path(), &w.rownd_creds(), Some(b"x"))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
    }
    let a = srv
        .send(Method::POST, &w.rownd_path(), &w.rownd_creds(), None)
        .await;
    assert_answer(
        &a,
        429,
        &rownd_error(429, "Too Many Requests", too_many),
        "rownd",
    );
    // The same publishable key with another secret is another credential (a guess is
    // counted on its own and cannot lock the application out).
    let a = srv
        .send(
            Method::POST,
            &w.rownd_path(),
            &[
                ("x-rownd-app-key", &w.rownd_key),
                ("x-rownd-app-secret", "wrong"),
            ],
            None,
        )
        .await;
    assert_answer(
        &a,
        401,
        &rownd_error(401, "Unauthorized", "invalid app credentials"),
        "rownd, other secret",
    );

    // Connect: one client JWT replayed.
    let auth = w.client_jwt(b"{}");
    for _ in 0..3 {
        srv.send(
            Method::POST,
            "/revoke-all",
            &[("authorization", &auth)],
            Some(b"{}"),
        )
        .await;
    }
    let a = srv
        .send(
            Method::POST,
            "/revoke-all",
            &[("authorization", &auth)],
            Some(b"{}"),
        )
        .await;
    assert_answer(&a, 429, &json!({"reason": "TooManyRequests"}), "connect");

    // The admin API is not throttled.
    for _ in 0..5 {
        let a = srv.admin(Method::GET, "/admin/v1/applications", None).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    w.all_alive("a flood").await;
}
