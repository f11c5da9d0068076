//! Security properties, each checked against a live server (or the real binary) and each
//! able to fail:
//! - only hashes of tokens and secrets are at rest (the raw sled files are searched for
//!   every issued credential in every encoding; a known plaintext field is the control);
//! - passwords are argon2id PHC strings; secrets are compared in constant time;
//! - tenant isolation: every credential of application A against every endpoint of
//!   application B is refused, and nothing of B dies;
//! - the complete table of Connect client-JWT rejections, and replay;
//! - Okta scopes and per-token rate limits (beyond `tests/okta.rs`);
//! - the admin API refuses every route without its token; the data directory is 0700
//!   and key files 0600;
//! - the logs of the real binary at `trace` never hold a token, secret or password.

mod common;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;
use std::path::{Path, PathBuf};

const CONNECT: &str = "sudomimus-connect";
const USERS_MANAGE: &str = "okta.users.manage";
const NOT_LOGGED_IN: &str = "You must be logged in to do this.";

fn hex(bytes: &[u8]) -> String {
    sessiond::model::hex_encode(bytes)
}

fn sha256_hex(s: &str) -> String {
    hex(&sha2::Sha256::digest(s.as_bytes()))
}

/// A fresh random string for secrets the test makes up (passwords, bogus tokens).
fn random_text(prefix: &str) -> String {
    format!("{prefix}-{}", unique_jti())
}

// ---- talking to a server, in-process or the binary -------------------------------------

/// A client of any running sessiond: the in-process harness or the real binary.
struct Api {
    base: String,
    http: reqwest::Client,
    admin: String,
}

impl Api {
    fn new(base: &str, admin: &str) -> Api {
        Api {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
            admin: admin.to_owned(),
        }
    }

    fn of(srv: &Server) -> Api {
        Api::new(&srv.base, ADMIN)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Answer {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b.to_vec());
        }
        let r = rb.send().await.expect("request reaches the server");
        Answer {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.bytes().await.expect("body").to_vec(),
        }
    }

    async fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Answer {
        let mut h = headers.to_vec();
        h.push(("content-type", "application/json"));
        self.send(Method::POST, path, &h, Some(body.to_string().as_bytes()))
            .await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let auth = format!("Bearer {}", self.admin);
        let mut h = vec![("authorization", auth.as_str())];
        match body {
            Some(b) => {
                h.push(("content-type", "application/json"));
                self.send(method, path, &h, Some(b.to_string().as_bytes()))
                    .await
            }
            None => self.send(method, path, &h, None).await,
        }
    }

    async fn created(&self, path: &str, body: Value) -> Value {
        let a = self.admin(Method::POST, path, Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::CREATED, "{path} {body}: {}", a.text());
        a.json()
    }
}

fn expect_status(a: &Answer, status: StatusCode, what: &str) -> Value {
    assert_eq!(a.status, status, "{what}: {}", a.text());
    if a.body.is_empty() {
        Value::Null
    } else {
        a.json()
    }
}

// ---- secrets and where they must not be -------------------------------------------------

/// Every credential the test saw, each in every form it could be written in.
#[derive(Default)]
struct Secrets {
    /// (what it is, the bytes to look for)
    needles: Vec<(String, Vec<u8>)>,
    /// The tokens and secrets sessiond issued, as it issued them.
    issued: Vec<(String, String)>,
}

impl Secrets {
    fn push(&mut self, what: String, needle: Vec<u8>) {
        assert!(
            needle.len() >= 12,
            "{what}: a needle of {} bytes would match by chance",
            needle.len()
        );
        self.needles.push((what, needle));
    }

    /// A token or secret: as sent, hex and base64 of it, and, for the 256-bit random value
    /// behind it (after a prefix such as `00`, `ras_`, `sdadm_`), the raw bytes in binary,
    /// hex and base64.
    fn token(&mut self, what: &str, t: &str) {
        self.push(format!("{what} (as sent)"), t.as_bytes().to_vec());
        self.push(format!("{what} (hex)"), hex(t.as_bytes()).into_bytes());
        self.push(
            format!("{what} (base64)"),
            STANDARD_NO_PAD.encode(t).into_bytes(),
        );
        for prefix in ["", "00", "ras_", "sdadm_"] {
            let Some(rest) = t.strip_prefix(prefix) else {
                continue;
            };
            if let Ok(raw) = URL_SAFE_NO_PAD.decode(rest)
                && raw.len() >= 16
            {
                self.push(format!("{what} (raw bytes)"), raw.clone());
                self.push(format!("{what} (raw bytes, hex)"), hex(&raw).into_bytes());
                self.push(
                    format!("{what} (raw bytes, base64)"),
                    STANDARD_NO_PAD.encode(&raw).into_bytes(),
                );
                break;
            }
        }
    }

    /// A token or secret that sessiond issued.
    fn issued(&mut self, what: &str, t: &str) {
        self.token(what, t);
        self.issued.push((what.to_owned(), t.to_owned()));
    }

    /// A password: as typed, its SHA-256 hex digest (which Rocket.Chat clients may send
    /// instead, so it is as good as the password), hex and base64.
    fn password(&mut self, what: &str, p: &str) {
        self.push(format!("{what} (as typed)"), p.as_bytes().to_vec());
        let digest = sha256_hex(p);
        self.push(
            format!("{what} (sha-256 digest)"),
            digest.clone().into_bytes(),
        );
        self.push(
            format!("{what} (sha-256 digest, upper case)"),
            digest.to_uppercase().into_bytes(),
        );
        self.push(format!("{what} (hex)"), hex(p.as_bytes()).into_bytes());
        self.push(
            format!("{what} (base64)"),
            STANDARD_NO_PAD.encode(p).into_bytes(),
        );
    }

    /// A JWT: whole, its claims and signature segments, and (for sessiond's own hub JWTs,
    /// whose `jti` is a stored token) its `jti` as a token. A client JWT's `jti` is a public
    /// nonce, kept as such for replay detection.
    fn jwt(&mut self, what: &str, jwt: &str) {
        self.push(format!("{what} (whole)"), jwt.as_bytes().to_vec());
        let segs: Vec<&str> = jwt.split('.').collect();
        assert_eq!(segs.len(), 3, "{what} is a compact JWT");
        self.push(format!("{what} (claims)"), segs[1].as_bytes().to_vec());
        self.push(format!("{what} (signature)"), segs[2].as_bytes().to_vec());
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segs[1]).expect("b64url claims"))
                .expect("JSON claims");
        if let Some(jti) = claims["jti"].as_str()
            && claims["aud"].is_array()
        {
            self.issued(&format!("{what}'s jti"), jti);
        }
    }

    /// A private key in PEM: each line of its base64 body, and the DER bytes.
    fn pem(&mut self, what: &str, pem: &str) {
        let body: Vec<&str> = pem
            .lines()
            .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
            .collect();
        for (i, line) in body.iter().enumerate() {
            if line.len() >= 16 {
                self.push(format!("{what} (PEM line {i})"), line.as_bytes().to_vec());
            }
        }
        let der = STANDARD.decode(body.concat()).expect("PEM body is base64");
        self.push(format!("{what} (DER)"), der);
    }

    /// The names of the needles found in `hay`.
    fn found_in(&self, hay: &[u8]) -> Vec<String> {
        self.needles
            .iter()
            .filter(|(_, n)| contains(hay, n))
            .map(|(w, _)| w.clone())
            .collect()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)
        {
            None => return false,
            Some(p) => {
                if &hay[i + p..i + p + needle.len()] == needle {
                    return true;
                }
                i += p + 1;
            }
        }
    }
    false
}

/// Every regular file under `dir`, recursively, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).expect("read a data file");
                out.push((path, bytes));
            }
        }
    }
    out
}

/// What `drive_every_secret` made: the secrets, and plaintext that is meant to be kept (the
/// positive controls of a search).
struct Driven {
    secrets: Secrets,
    /// An account login: stored as such.
    login: String,
    /// A Rownd app key: publishable, stored as such.
    rownd_key: String,
    /// Plaintext passwords of the accounts created, by account id.
    passwords: Vec<(String, String)>,
}

/// Issues every kind of credential through every shape, uses each (also wrongly: failed
/// logins, bogus tokens, a wrong Rownd secret, a rejected client JWT, a wrong admin token),
/// and returns them all.
async fn drive_every_secret(api: &Api) -> Driven {
    let mut sec = Secrets::default();
    sec.token("the admin token", &api.admin);

    // Applications: Rownd secrets, a generated Connect key pair; b shares a's sector.
    let app_a = api
        .created(
            "/admin/v1/applications",
            json!({"id": "vault-a", "name": "vault-a"}),
        )
        .await;
    let app_b = api
        .created(
            "/admin/v1/applications",
            json!({"id": "vault-b", "name": "vault-b", "sector": "vault-a"}),
        )
        .await;
    for (name, app) in [("vault-a", &app_a), ("vault-b", &app_b)] {
        sec.issued(
            &format!("{name}'s Rownd secret"),
            s(app, "rownd_app_secret"),
        );
        sec.pem(
            &format!("{name}'s Connect private key"),
            s(app, "connect_private_key_pem"),
        );
    }
    let more = api
        .created("/admin/v1/applications/vault-a/keys", json!({}))
        .await;
    sec.issued("a second Rownd secret", s(&more, "rownd_app_secret"));

    // Accounts with passwords.
    let login = format!("plaintext-control-{}", &unique_jti()[..8]);
    let email = format!("{login}@example.com");
    let pw = random_text("Pw");
    let alice = api
        .created(
            "/admin/v1/accounts",
            json!({"login": login, "email": email, "password": pw}),
        )
        .await;
    let alice_id = s(&alice, "id").to_owned();
    sec.password("alice's password", &pw);
    let bob_pw = random_text("Bob-pw");
    let bob = api
        .created(
            "/admin/v1/accounts",
            json!({"login": format!("bob-{login}"), "password": bob_pw}),
        )
        .await;
    let bob_id = s(&bob, "id").to_owned();
    sec.password("bob's password", &bob_pw);

    // Sessions of every kind through the admin API.
    let mut issued = Vec::new();
    for app in ["vault-a", "vault-b"] {
        for kind in ["login", "oauth", "pat"] {
            let v = api
                .created(
                    "/admin/v1/sessions",
                    json!({"account": alice_id, "application": app, "kind": kind}),
                )
                .await;
            for field in [
                "access_token",
                "refresh_token",
                "login_token",
                "personal_access_token",
            ] {
                if let Some(t) = v[field].as_str() {
                    sec.issued(&format!("admin-issued {app} {kind} {field}"), t);
                }
            }
            if let Some(j) = v["hub_jwt"].as_str() {
                sec.jwt(&format!("admin-issued {app} {kind} hub JWT"), j);
            }
            issued.push(v);
        }
    }
    api.created(
        "/admin/v1/sessions",
        json!({"account": alice_id, "kind": "idp"}),
    )
    .await;
    let issued_of = |app: &str, kind: &str| {
        issued
            .iter()
            .find(|v| v["application"] == app && v["kind"] == kind)
            .expect("issued above")
            .clone()
    };

    // Rocket.Chat: logins with the password and with its digest, failed logins, probes.
    let rc = |ep: &str| format!("/apps/vault-a/api/v1/{ep}");
    let mut rc_tokens = Vec::new();
    for password in [
        json!(pw),
        json!({"digest": sha256_hex(&pw), "algorithm": "sha-256"}),
    ] {
        let a = api
            .post_json(
                &rc("login"),
                &[],
                &json!({"user": login, "password": password}),
            )
            .await;
        let v = expect_status(&a, StatusCode::OK, "Rocket.Chat login");
        let t = v["data"]["authToken"]
            .as_str()
            .expect("authToken")
            .to_owned();
        sec.issued("a Rocket.Chat login token", &t);
        rc_tokens.push(t);
    }
    let wrong_pw = random_text("Wrong-password");
    sec.password("a wrong password", &wrong_pw);
    let wrong_digest_of = random_text("Wrong-digest-of");
    sec.password("a wrong password sent as a digest", &wrong_digest_of);
    for password in [
        json!(wrong_pw),
        json!({"digest": sha256_hex(&wrong_digest_of), "algorithm": "sha-256"}),
    ] {
        let a = api
            .post_json(
                &rc("login"),
                &[],
                &json!({"user": login, "password": password}),
            )
            .await;
        expect_status(&a, StatusCode::UNAUTHORIZED, "Rocket.Chat wrong password");
    }
    let a = api
        .send(
            Method::GET,
            &rc("me"),
            &[("x-auth-token", &rc_tokens[0]), ("x-user-id", &alice_id)],
            None,
        )
        .await;
    expect_status(&a, StatusCode::OK, "Rocket.Chat me");
    let bogus_rc = random_text("bogus-rocket-chat-token");
    sec.token("a bogus Rocket.Chat token", &bogus_rc);
    let a = api
        .send(
            Method::GET,
            &rc("me"),
            &[("x-auth-token", &bogus_rc), ("x-user-id", &alice_id)],
            None,
        )
        .await;
    expect_status(&a, StatusCode::UNAUTHORIZED, "Rocket.Chat bogus token");
    let pat = issued_of("vault-a", "pat");
    let a = api
        .send(
            Method::POST,
            &rc("users.logoutOtherClients"),
            &[
                ("x-auth-token", s(&pat, "personal_access_token")),
                ("x-user-id", &alice_id),
            ],
            None,
        )
        .await;
    expect_status(
        &a,
        StatusCode::OK,
        "Rocket.Chat logoutOtherClients with a PAT",
    );

    // Flashback: login, failed login, refresh, list, a bogus bearer.
    let fb = |ep: &str| format!("/apps/vault-a/{ep}");
    let a = api
        .post_json(
            &fb("user/login"),
            &[],
            &json!({"email": email, "password": pw}),
        )
        .await;
    let v = expect_status(&a, StatusCode::OK, "Flashback login");
    sec.issued("a Flashback access token", s(&v, "accessToken"));
    sec.issued("a Flashback refresh token", s(&v, "refreshToken"));
    let a = api
        .post_json(
            &fb("user/login"),
            &[],
            &json!({"email": email, "password": wrong_pw}),
        )
        .await;
    expect_status(&a, StatusCode::UNAUTHORIZED, "Flashback wrong password");
    let a = api
        .post_json(
            &fb("user/refresh"),
            &[],
            &json!({"refreshToken": s(&v, "refreshToken")}),
        )
        .await;
    let r = expect_status(&a, StatusCode::OK, "Flashback refresh");
    sec.issued("a rotated Flashback access token", s(&r, "accessToken"));
    sec.issued("a rotated Flashback refresh token", s(&r, "refreshToken"));
    let bearer = format!("Bearer {}", s(&r, "accessToken"));
    let a = api
        .send(
            Method::GET,
            &fb("sessions"),
            &[("authorization", &bearer)],
            None,
        )
        .await;
    expect_status(&a, StatusCode::OK, "Flashback sessions");
    let bogus_fb = random_text("bogus-flashback-bearer");
    sec.token("a bogus Flashback bearer", &bogus_fb);
    let a = api
        .send(
            Method::POST,
            &fb("sessions/revoke-all"),
            &[("authorization", &format!("Bearer {bogus_fb}"))],
            None,
        )
        .await;
    expect_status(&a, StatusCode::UNAUTHORIZED, "Flashback bogus bearer");

    // Connect: refresh, introspect, logout, revoke-all with a good and a bad client JWT.
    let oauth_a = issued_of("vault-a", "oauth");
    let a = api
        .post_json(
            "/apps/vault-a/refresh",
            &[],
            &json!({"refreshToken": s(&oauth_a, "refresh_token")}),
        )
        .await;
    let r = expect_status(&a, StatusCode::OK, "Connect refresh");
    sec.issued("a rotated Connect access token", s(&r, "accessToken"));
    sec.issued("a rotated Connect refresh token", s(&r, "refreshToken"));
    let a = api
        .post_json(
            "/apps/vault-a/introspect",
            &[],
            &json!({"accessToken": s(&r, "accessToken")}),
        )
        .await;
    assert_eq!(
        expect_status(&a, StatusCode::OK, "introspect")["status"],
        "active"
    );
    let bogus_refresh = random_text("bogus-connect-refresh");
    sec.token("a bogus Connect refresh token", &bogus_refresh);
    let a = api
        .post_json(
            "/apps/vault-a/logout",
            &[],
            &json!({"refreshToken": bogus_refresh}),
        )
        .await;
    expect_status(&a, StatusCode::OK, "Connect logout of a bogus token");
    let body = json!({"subject": "sub_nobody"}).to_string();
    let good = client_jwt(
        s(&app_a, "connect_private_key_pem"),
        "vault-a",
        CONNECT,
        body.as_bytes(),
        now_s(),
        30,
        &unique_jti(),
    );
    let bad = client_jwt(
        s(&app_b, "connect_private_key_pem"),
        "vault-a",
        CONNECT,
        body.as_bytes(),
        now_s(),
        30,
        &unique_jti(),
    );
    for (what, jwt, status) in [
        ("a client JWT", &good, StatusCode::OK),
        (
            "a client JWT signed with the wrong key",
            &bad,
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        sec.jwt(what, jwt);
        let a = api
            .send(
                Method::POST,
                "/revoke-all",
                &[
                    ("content-type", "application/json"),
                    ("authorization", &format!("SudomimusClientJWT {jwt}")),
                ],
                Some(body.as_bytes()),
            )
            .await;
        expect_status(&a, status, what);
    }

    // Rownd: refresh through the hub, sign out with key + secret, a wrong secret, a JWT.
    let oauth_b = issued_of("vault-b", "oauth");
    let a = api
        .post_json(
            "/apps/vault-b/hub/auth/token",
            &[],
            &json!({"refresh_token": s(&oauth_b, "refresh_token")}),
        )
        .await;
    let r = expect_status(&a, StatusCode::OK, "Rownd refresh");
    sec.jwt("a refreshed hub JWT", s(&r, "access_token"));
    sec.issued("a rotated Rownd refresh token", s(&r, "refresh_token"));
    let signout = |user: &str| format!("/applications/vault-b/users/{user}/signout");
    let a = api
        .post_json(
            &signout(&bob_id),
            &[
                ("x-rownd-app-key", s(&app_b, "rownd_app_key")),
                ("x-rownd-app-secret", s(&app_b, "rownd_app_secret")),
            ],
            &json!({"sign_out_all": true}),
        )
        .await;
    expect_status(
        &a,
        StatusCode::NO_CONTENT,
        "Rownd sign-out with key + secret",
    );
    let wrong_secret = format!("ras_{}", URL_SAFE_NO_PAD.encode(unique_jti()));
    sec.token("a wrong Rownd secret", &wrong_secret);
    let a = api
        .post_json(
            &signout(&bob_id),
            &[
                ("x-rownd-app-key", s(&app_b, "rownd_app_key")),
                ("x-rownd-app-secret", &wrong_secret),
            ],
            &json!({}),
        )
        .await;
    expect_status(&a, StatusCode::UNAUTHORIZED, "Rownd wrong secret");
    let login_b = issued_of("vault-b", "login");
    let a = api
        .post_json(
            &signout(&alice_id),
            &[(
                "authorization",
                &format!("Bearer {}", s(&login_b, "hub_jwt")),
            )],
            &json!({"sign_out_all": false}),
        )
        .await;
    expect_status(&a, StatusCode::NO_CONTENT, "Rownd sign-out with a hub JWT");

    // Okta: API tokens, a revoke, a probe, a bogus token.
    let okta = api
        .created(
            "/admin/v1/api-tokens",
            json!({"name": "ops", "scopes": [USERS_MANAGE, "okta.sessions.read"]}),
        )
        .await;
    let okta_token = s(&okta, "token").to_owned();
    sec.issued("an Okta API token", &okta_token);
    let a = api
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{alice_id}/sessions?oauthTokens=false"),
            &[("authorization", &format!("SSWS {okta_token}"))],
            None,
        )
        .await;
    expect_status(&a, StatusCode::NO_CONTENT, "Okta revoke");
    let bogus_okta = format!("00{}", URL_SAFE_NO_PAD.encode(unique_jti()));
    sec.token("a bogus Okta API token", &bogus_okta);
    let a = api
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{alice_id}/sessions"),
            &[("authorization", &format!("SSWS {bogus_okta}"))],
            None,
        )
        .await;
    expect_status(&a, StatusCode::UNAUTHORIZED, "Okta bogus token");

    // Admin: introspection of a token, and a wrong admin token.
    let a = api
        .admin(
            Method::POST,
            "/admin/v1/introspect",
            Some(json!({"token": rc_tokens[0]})),
        )
        .await;
    expect_status(&a, StatusCode::OK, "admin introspect");
    let wrong_admin = random_text("wrong-admin-token");
    sec.token("a wrong admin token", &wrong_admin);
    let a = api
        .send(
            Method::GET,
            "/admin/v1/applications",
            &[("authorization", &format!("Bearer {wrong_admin}"))],
            None,
        )
        .await;
    expect_status(&a, StatusCode::UNAUTHORIZED, "wrong admin token");

    Driven {
        secrets: sec,
        login,
        rownd_key: s(&app_a, "rownd_app_key").to_owned(),
        passwords: vec![(alice_id, pw), (bob_id, bob_pw)],
    }
}

// ---- only hashes at rest ----------------------------------------------------------------

fn open_store(dir: &Path) -> sessiond::store::Store {
    sessiond::store::Store::open(dir, &sessiond::store::StoreOptions::default())
        .expect("reopen the store")
}

#[tokio::test]
async fn no_token_secret_or_password_is_at_rest_in_plaintext() {
    let mut srv = Server::start().await;
    let driven = drive_every_secret(&Api::of(&srv)).await;
    srv.shutdown().await;

    // Every token and secret sessiond issued is a distinct 256-bit value (base64url, after
    // its prefix).
    let issued = &driven.secrets.issued;
    assert!(issued.len() >= 30, "{} issued", issued.len());
    for (what, t) in issued {
        let is_256_bits = ["", "00", "ras_"]
            .iter()
            .filter_map(|p| t.strip_prefix(p))
            .filter_map(|rest| URL_SAFE_NO_PAD.decode(rest).ok())
            .any(|raw| raw.len() == 32);
        assert!(is_256_bits, "{what}: {t}");
    }
    let distinct: std::collections::HashSet<&String> = issued.iter().map(|(_, t)| t).collect();
    assert_eq!(distinct.len(), issued.len(), "issued tokens are distinct");

    let files = files_under(srv.data_dir());
    assert!(
        files
            .iter()
            .any(|(p, _)| p.starts_with(srv.data_dir().join("store"))),
        "sled's files are under store/: {:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    // Positive controls: what is meant to be stored as plaintext is found by the same search,
    // so a miss below means "not there", not "not looked at".
    let mut controls = Secrets::default();
    controls.push("an account login".into(), driven.login.clone().into_bytes());
    controls.push(
        "a Rownd app key".into(),
        driven.rownd_key.clone().into_bytes(),
    );
    controls.push("an argon2id PHC prefix".into(), b"$argon2id$v=19$".to_vec());
    let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    assert_eq!(
        controls.found_in(&all).len(),
        3,
        "the controls are on disk: {:?}",
        controls.found_in(&all)
    );

    let mut leaks = Vec::new();
    for (path, bytes) in &files {
        for what in driven.secrets.found_in(bytes) {
            leaks.push(format!("{what} in {}", path.display()));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} of {} secret forms found at rest:\n{}",
        leaks.len(),
        driven.secrets.needles.len(),
        leaks.join("\n")
    );

    // The admin token is there as its SHA-256 only.
    let store = open_store(srv.data_dir());
    assert_eq!(
        store.meta("admin_token_sha256").expect("meta"),
        Some(sha2::Sha256::digest(ADMIN.as_bytes()).to_vec()),
        "the admin token's hash is what is kept"
    );
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_phc_strings() {
    let mut srv = Server::start().await;
    let driven = drive_every_secret(&Api::of(&srv)).await;
    srv.shutdown().await;
    let store = open_store(srv.data_dir());
    for (id, password) in &driven.passwords {
        let account = store
            .account(&sessiond::model::AccountId::parse(id).expect("account id"))
            .expect("read")
            .expect("the account exists");
        let phc = account.password_hash.expect("a password hash");
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        // At least the OWASP minimum (argon2's defaults): 19 MiB, 2 passes.
        let params = phc.split('$').nth(3).expect("params");
        let param = |k: &str| -> u32 {
            params
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {phc}"))
        };
        assert!(param("m") >= 19_456 && param("t") >= 2, "{phc}");
        assert!(!phc.contains(password.as_str()));
        assert!(sessiond::domain::secrets::verify_password(password, &phc));
        assert!(!sessiond::domain::secrets::verify_password(
            &format!("{password}x"),
            &phc
        ));
    }
    // Each password gets its own salt: the same password twice hashes differently.
    let a = sessiond::domain::secrets::hash_password("same password");
    let b = sessiond::domain::secrets::hash_password("same password");
    assert_ne!(a, b);
}

// ---- constant-time comparison -----------------------------------------------------------

fn source(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text of `fn name`'s body (from its signature to the matching closing brace).
fn fn_body<'a>(src: &'a str, name: &str) -> &'a str {
    let start = src
        .find(&format!("fn {name}("))
        .unwrap_or_else(|| panic!("no fn {name}"));
    let open = start + src[start..].find('{').expect("a body");
    let mut depth = 0;
    for (i, c) in src[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &src[start..=open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces in fn {name}")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn secrets_are_compared_in_constant_time() {
    use sessiond::domain::secrets::ct_eq;
    // What it computes.
    let a = [7u8; 32];
    let mut first = a;
    first[0] ^= 1;
    let mut last = a;
    last[31] ^= 0x80;
    assert!(ct_eq(&a, &a));
    assert!(ct_eq(b"", b""));
    assert!(!ct_eq(&a, &first));
    assert!(!ct_eq(&a, &last));
    assert!(!ct_eq(&a, &a[..31]), "a prefix is not equal");
    assert!(!ct_eq(&a[..31], &a));

    // How: `subtle`'s ConstantTimeEq, with no early-exit comparison beside it.
    let secrets = source("src/domain/secrets.rs");
    assert!(secrets.contains("use subtle::ConstantTimeEq;"));
    let body = fn_body(&secrets, "ct_eq");
    assert!(body.contains(".ct_eq(b)") && !body.contains("=="), "{body}");

    // Every path that checks a presented secret against a stored one goes through it.
    let admin = source("src/domain/admin.rs");
    for f in ["rownd_credentials", "is_admin_token"] {
        let body = fn_body(&admin, f);
        assert!(body.contains("secrets::ct_eq("), "{f}: {body}");
        assert!(!body.contains("==") && !body.contains("!="), "{f}: {body}");
    }
    let client = source("src/domain/clientjwt.rs");
    let body = fn_body(&client, "client_auth");
    assert!(
        body.contains("secrets::ct_eq(claimed"),
        "body_sha256: {body}"
    );
    // Passwords: argon2's verifier (which compares in constant time itself).
    assert!(fn_body(&secrets, "verify_digest").contains(".verify_password("));

    // And nowhere in the source is secret material compared with `==` / `!=`.
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let secretish = [
        "secret",
        "password",
        "digest",
        "_hash",
        "admin_token",
        "claimed",
        "signature",
    ];
    let mut offenders = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            // The algorithm name of a digest login is public.
            let code = code.replace("algorithm == \"sha-256\"", "");
            if (code.contains("==") || code.contains("!="))
                && secretish.iter().any(|w| code.to_lowercase().contains(w))
            {
                offenders.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "non-constant-time comparisons of secrets:\n{}",
        offenders.join("\n")
    );
}

// ---- tenant isolation -------------------------------------------------------------------

/// A credential of application A.
#[derive(Clone)]
enum Cred {
    /// A Rownd key and a secret; `paired` when the secret is the key's own.
    RowndKey {
        key: String,
        secret: String,
        paired: bool,
    },
    /// A Connect client JWT, signed per request with `pem`, claiming `iss`.
    ClientJwt { iss: String, pem: String },
    /// A Rownd hub JWT.
    HubJwt(String),
    /// Any opaque token (access, refresh, login, personal access).
    Token(String),
}

/// Every endpoint that reads a credential, aimed at application B (and its users).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ep {
    RowndSignout,
    RowndSignoutPrefixed,
    RowndHubToken,
    ConnectRevokeAll,
    ConnectRefresh,
    ConnectIntrospect,
    ConnectLogout,
    FlashbackRevokeAll,
    FlashbackList,
    FlashbackRevokeOne,
    FlashbackRefresh,
    RcLogoutOthers,
    RcMe,
    OktaRevoke,
    OktaGetSession,
    OktaDeleteSession,
}

const ENDPOINTS: [Ep; 16] = [
    Ep::RowndSignout,
    Ep::RowndSignoutPrefixed,
    Ep::RowndHubToken,
    Ep::ConnectRevokeAll,
    Ep::ConnectRefresh,
    Ep::ConnectIntrospect,
    Ep::ConnectLogout,
    Ep::FlashbackRevokeAll,
    Ep::FlashbackList,
    Ep::FlashbackRevokeOne,
    Ep::FlashbackRefresh,
    Ep::RcLogoutOthers,
    Ep::RcMe,
    Ep::OktaRevoke,
    Ep::OktaGetSession,
    Ep::OktaDeleteSession,
];

/// What B's endpoints are about: a user with sessions in both applications.
struct Target {
    user: String,
    subject: String,
    b_login_session: String,
    idp_session: String,
}

/// A documented refusal.
enum Want {
    Json(StatusCode, Value),
    /// Rownd's `{statusCode, error, message}` with this status.
    Rownd(StatusCode),
    Okta(StatusCode, &'static str),
    /// Any of these.
    OneOf(Vec<Want>),
}

fn matches(a: &Answer, want: &Want) -> bool {
    let body = || serde_json::from_slice::<Value>(&a.body).ok();
    match want {
        Want::Json(st, v) => a.status == *st && body().as_ref() == Some(v),
        Want::Rownd(st) => {
            a.status == *st
                && body().is_some_and(|v| {
                    v["statusCode"] == st.as_u16()
                        && v["error"] == st.canonical_reason().unwrap_or_default()
                        && v["message"].is_string()
                })
        }
        Want::Okta(st, code) => {
            a.status == *st
                && body().is_some_and(|v| v["errorCode"] == *code && v["errorLink"] == *code)
        }
        Want::OneOf(all) => all.iter().any(|w| matches(a, w)),
    }
}

fn slot(cred: &Cred, body: &[u8]) -> String {
    match cred {
        Cred::RowndKey { secret, .. } => secret.clone(),
        Cred::ClientJwt { iss, pem } => {
            client_jwt(pem, iss, CONNECT, body, now_s(), 30, &unique_jti())
        }
        Cred::HubJwt(t) | Cred::Token(t) => t.clone(),
    }
}

/// Presents `cred` to `ep` the way that endpoint reads credentials.
async fn present(srv: &Server, ep: Ep, cred: &Cred, t: &Target) -> Answer {
    let u = &t.user;
    let (method, path, body): (Method, String, Option<Value>) = match ep {
        Ep::RowndSignout => (
            Method::POST,
            format!("/applications/app-b/users/{u}/signout"),
            Some(json!({"sign_out_all": true})),
        ),
        Ep::RowndSignoutPrefixed => (
            Method::POST,
            format!("/apps/app-b/applications/app-b/users/{u}/signout"),
            Some(json!({"sign_out_all": true})),
        ),
        Ep::RowndHubToken => (
            Method::POST,
            "/apps/app-b/hub/auth/token".into(),
            Some(json!({"refresh_token": slot(cred, b"")})),
        ),
        Ep::ConnectRevokeAll => (
            Method::POST,
            "/apps/app-b/revoke-all".into(),
            Some(json!({"subject": t.subject})),
        ),
        Ep::ConnectRefresh => (
            Method::POST,
            "/apps/app-b/refresh".into(),
            Some(json!({"refreshToken": slot(cred, b"")})),
        ),
        Ep::ConnectIntrospect => (
            Method::POST,
            "/apps/app-b/introspect".into(),
            Some(json!({"accessToken": slot(cred, b"")})),
        ),
        Ep::ConnectLogout => (
            Method::POST,
            "/apps/app-b/logout".into(),
            Some(json!({"refreshToken": slot(cred, b"")})),
        ),
        Ep::FlashbackRevokeAll => (Method::POST, "/apps/app-b/sessions/revoke-all".into(), None),
        Ep::FlashbackList => (Method::GET, "/apps/app-b/sessions".into(), None),
        Ep::FlashbackRevokeOne => (
            Method::POST,
            format!("/apps/app-b/sessions/{}/revoke", t.b_login_session),
            None,
        ),
        Ep::FlashbackRefresh => (
            Method::POST,
            "/apps/app-b/user/refresh".into(),
            Some(json!({"refreshToken": slot(cred, b"")})),
        ),
        Ep::RcLogoutOthers => (
            Method::POST,
            "/apps/app-b/api/v1/users.logoutOtherClients".into(),
            None,
        ),
        Ep::RcMe => (Method::GET, "/apps/app-b/api/v1/me".into(), None),
        Ep::OktaRevoke => (
            Method::DELETE,
            format!("/apps/app-b/api/v1/users/{u}/sessions?oauthTokens=true&forgetDevices=true"),
            None,
        ),
        Ep::OktaGetSession => (
            Method::GET,
            format!("/api/v1/sessions/{}", t.idp_session),
            None,
        ),
        Ep::OktaDeleteSession => (
            Method::DELETE,
            format!("/api/v1/sessions/{}", t.idp_session),
            None,
        ),
    };
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let value = slot(cred, &body);
    let mut h: Vec<(String, String)> = vec![("content-type".into(), "application/json".into())];
    if let Cred::RowndKey { key, secret, .. } = cred {
        h.push(("x-rownd-app-key".into(), key.clone()));
        h.push(("x-rownd-app-secret".into(), secret.clone()));
    }
    match ep {
        Ep::RowndSignout | Ep::RowndSignoutPrefixed => {
            if !matches!(cred, Cred::RowndKey { .. }) {
                h.push(("authorization".into(), format!("Bearer {value}")));
            }
        }
        Ep::ConnectRevokeAll => {
            h.push((
                "authorization".into(),
                format!("SudomimusClientJWT {value}"),
            ));
        }
        Ep::FlashbackRevokeAll | Ep::FlashbackList | Ep::FlashbackRevokeOne => {
            h.push(("authorization".into(), format!("Bearer {value}")));
        }
        Ep::RcLogoutOthers | Ep::RcMe => {
            h.push(("x-auth-token".into(), value));
            h.push(("x-user-id".into(), t.user.clone()));
        }
        Ep::OktaRevoke | Ep::OktaGetSession | Ep::OktaDeleteSession => {
            h.push(("authorization".into(), format!("SSWS {value}")));
        }
        Ep::RowndHubToken | Ep::ConnectRefresh | Ep::ConnectIntrospect | Ep::ConnectLogout => {}
        Ep::FlashbackRefresh => {}
    }
    let hr: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let body = (!body.is_empty()).then_some(body.as_slice());
    srv.send(method, &path, &hr, body).await
}

/// The documented refusal of `ep` for a credential of another application.
fn refusal(ep: Ep, cred: &Cred) -> Want {
    let rc_401 = json!({
        "success": false, "error": NOT_LOGGED_IN, "status": "error", "message": NOT_LOGGED_IN,
    });
    match ep {
        Ep::RowndSignout | Ep::RowndSignoutPrefixed => match cred {
            // Valid credentials, of another application (or a token for another audience).
            Cred::RowndKey { paired: true, .. } | Cred::HubJwt(_) => {
                Want::Rownd(StatusCode::FORBIDDEN)
            }
            _ => Want::Rownd(StatusCode::UNAUTHORIZED),
        },
        Ep::RowndHubToken => Want::Rownd(StatusCode::BAD_REQUEST),
        Ep::ConnectRevokeAll => match cred {
            Cred::ClientJwt { iss, .. } if iss == "app-a" => Want::Json(
                StatusCode::FORBIDDEN,
                json!({"reason": "ApplicationMismatch"}),
            ),
            _ => Want::Json(
                StatusCode::UNAUTHORIZED,
                json!({"reason": "ClientJwtInvalid"}),
            ),
        },
        Ep::ConnectRefresh => Want::Json(
            StatusCode::UNAUTHORIZED,
            json!({"reason": "RefreshTokenNotFound"}),
        ),
        // "not_found also covers a session of another application"; a token too long to be
        // one of ours may be refused as malformed.
        Ep::ConnectIntrospect => Want::OneOf(vec![
            Want::Json(
                StatusCode::OK,
                json!({"status": "not_found", "recommendedRecheckSeconds": 60}),
            ),
            Want::Json(
                StatusCode::UNAUTHORIZED,
                json!({"reason": "AccessTokenInvalid"}),
            ),
        ]),
        Ep::ConnectLogout => Want::Json(StatusCode::OK, json!({"revoked": false})),
        Ep::FlashbackRevokeAll | Ep::FlashbackList | Ep::FlashbackRevokeOne => Want::Json(
            StatusCode::UNAUTHORIZED,
            json!({"success": false, "error": "Unauthorized"}),
        ),
        Ep::FlashbackRefresh => Want::Json(
            StatusCode::UNAUTHORIZED,
            json!({"success": false, "error": "Invalid refresh token"}),
        ),
        Ep::RcLogoutOthers | Ep::RcMe => Want::Json(StatusCode::UNAUTHORIZED, rc_401),
        Ep::OktaRevoke | Ep::OktaGetSession | Ep::OktaDeleteSession => {
            Want::Okta(StatusCode::UNAUTHORIZED, "E0000011")
        }
    }
}

fn token_fields(v: &Value) -> Vec<String> {
    [
        "access_token",
        "refresh_token",
        "login_token",
        "personal_access_token",
        "hub_jwt",
    ]
    .iter()
    .filter_map(|f| v[*f].as_str().map(str::to_owned))
    .collect()
}

#[tokio::test]
async fn no_credential_of_one_application_touches_another() {
    let srv = Server::start().await;
    let a = srv.app("app-a").await;
    // Same sector: B's users have the same subject in A, the hardest case for Connect.
    let b = srv
        .app_with(json!({"id": "app-b", "name": "app-b", "sector": "app-a"}))
        .await;
    let u = s(&srv.account("ulla").await, "id").to_owned();
    let w = s(&srv.account("walt").await, "id").to_owned();
    // A's credentials: all of U's, in A.
    let a_login = srv.session(&u, Some("app-a"), "login").await;
    let a_oauth = srv.session(&u, Some("app-a"), "oauth").await;
    let a_pat = srv.session(&u, Some("app-a"), "pat").await;
    // B's sessions: U's of every kind, W's, and U's identity-provider session.
    let b_login = srv.session(&u, Some("app-b"), "login").await;
    let b_oauth = srv.session(&u, Some("app-b"), "oauth").await;
    let b_pat = srv.session(&u, Some("app-b"), "pat").await;
    let w_login = srv.session(&w, Some("app-b"), "login").await;
    let idp = srv.session(&u, None, "idp").await;
    assert_eq!(b_login["subject"], a_login["subject"], "one sector");

    let b_tokens: Vec<(String, String)> = [
        ("U's login in B", &b_login),
        ("U's oauth in B", &b_oauth),
        ("U's PAT in B", &b_pat),
        ("W's login in B", &w_login),
    ]
    .iter()
    .flat_map(|(what, v)| {
        token_fields(v)
            .into_iter()
            .map(move |t| (what.to_string(), t))
    })
    .collect();
    let b_sessions: Vec<String> = [&b_login, &b_oauth, &b_pat, &w_login, &idp]
        .iter()
        .map(|v| s(v, "id").to_owned())
        .collect();
    let assert_b_alive = |what: String| {
        let srv = &srv;
        let b_tokens = &b_tokens;
        let b_sessions = &b_sessions;
        async move {
            for (whose, t) in b_tokens {
                assert!(srv.is_active(t).await, "{what}: a token of {whose} died");
            }
            for id in b_sessions {
                assert_eq!(
                    srv.session_state(id).await,
                    "active",
                    "{what}: session {id}"
                );
            }
        }
    };

    let creds: Vec<(&str, Cred)> = vec![
        (
            "A's Rownd key and secret",
            Cred::RowndKey {
                key: s(&a, "rownd_app_key").into(),
                secret: s(&a, "rownd_app_secret").into(),
                paired: true,
            },
        ),
        (
            "B's publishable key with A's secret",
            Cred::RowndKey {
                key: s(&b, "rownd_app_key").into(),
                secret: s(&a, "rownd_app_secret").into(),
                paired: false,
            },
        ),
        (
            "A's client JWT",
            Cred::ClientJwt {
                iss: "app-a".into(),
                pem: s(&a, "connect_private_key_pem").into(),
            },
        ),
        (
            "a client JWT claiming B, signed with A's key",
            Cred::ClientJwt {
                iss: "app-b".into(),
                pem: s(&a, "connect_private_key_pem").into(),
            },
        ),
        (
            "U's hub JWT in A",
            Cred::HubJwt(s(&a_login, "hub_jwt").into()),
        ),
        (
            "U's access token in A",
            Cred::Token(s(&a_login, "access_token").into()),
        ),
        (
            "U's refresh token in A",
            Cred::Token(s(&a_oauth, "refresh_token").into()),
        ),
        (
            "U's Rocket.Chat login token in A",
            Cred::Token(s(&a_login, "login_token").into()),
        ),
        (
            "U's personal access token in A",
            Cred::Token(s(&a_pat, "personal_access_token").into()),
        ),
    ];
    let target = Target {
        user: u.clone(),
        subject: s(&b_login, "subject").into(),
        b_login_session: s(&b_login, "id").into(),
        idp_session: s(&idp, "id").into(),
    };
    let mut wrong = Vec::new();
    for ep in ENDPOINTS {
        for (what, cred) in &creds {
            let answer = present(&srv, ep, cred, &target).await;
            if !matches(&answer, &refusal(ep, cred)) {
                wrong.push(format!(
                    "{ep:?} with {what}: {} {}",
                    answer.status,
                    answer.text()
                ));
            }
        }
        assert_b_alive(format!("after {ep:?}")).await;
    }
    assert!(
        wrong.is_empty(),
        "not refused as documented:\n{}",
        wrong.join("\n")
    );

    // Without a prefix, A's client JWT names A: with W's subject (W has sessions in B only,
    // and the same subject in A's sector) it revokes nothing.
    let body = json!({"subject": s(&w_login, "subject")}).to_string();
    let jwt = client_jwt(
        s(&a, "connect_private_key_pem"),
        "app-a",
        CONNECT,
        body.as_bytes(),
        now_s(),
        30,
        &unique_jti(),
    );
    let answer = srv
        .send(
            Method::POST,
            "/revoke-all",
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("SudomimusClientJWT {jwt}")),
            ],
            Some(body.as_bytes()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json(), json!({"revokedCount": 0}));
    assert_b_alive("after A's revoke-all of W".into()).await;

    // Controls: A's credentials are live (they work on A), and B's own credentials are
    // accepted where A's were refused; so the refusals above were about the application.
    let rc = |tok: &str| {
        vec![
            ("x-auth-token".to_owned(), tok.to_owned()),
            ("x-user-id".to_owned(), u.clone()),
        ]
    };
    for (path, headers) in [
        ("/apps/app-a/api/v1/me", rc(s(&a_login, "login_token"))),
        (
            "/apps/app-a/api/v1/me",
            rc(s(&a_pat, "personal_access_token")),
        ),
        ("/apps/app-b/api/v1/me", rc(s(&b_login, "login_token"))),
        (
            "/apps/app-a/sessions",
            vec![(
                "authorization".to_owned(),
                format!("Bearer {}", s(&a_login, "access_token")),
            )],
        ),
        (
            "/apps/app-b/sessions",
            vec![(
                "authorization".to_owned(),
                format!("Bearer {}", s(&b_login, "access_token")),
            )],
        ),
    ] {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let answer = srv.send(Method::GET, path, &h, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
    }
    // B's Rownd key signs U out of B (and only B); A's sessions live on.
    let answer = srv
        .send_json(
            Method::POST,
            &format!("/applications/app-b/users/{u}/signout"),
            &[
                ("x-rownd-app-key", s(&b, "rownd_app_key")),
                ("x-rownd-app-secret", s(&b, "rownd_app_secret")),
            ],
            &json!({}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    assert!(!srv.is_active(s(&b_oauth, "refresh_token")).await);
    for t in token_fields(&a_login) {
        assert!(
            srv.is_active(&t).await,
            "A's session died with B's sign-out"
        );
    }
}

// ---- Connect client JWTs: the complete table --------------------------------------------

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn body_hash(body: &[u8]) -> String {
    STANDARD.encode(sha2::Sha256::digest(body))
}

/// The claims the SDKs put in a client JWT.
fn claims(iss: &str, aud: &str, body: &[u8], iat: i64, lifetime: i64) -> Value {
    json!({
        "iss": iss, "aud": aud, "iat": iat, "exp": iat + lifetime, "jti": unique_jti(),
        "body_sha256": body_hash(body),
    })
}

/// A JWT with any header, signed RS256 with `pem` over `header.claims`.
fn rs256(pem: &str, header: &Value, claims: &Value) -> String {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("a PKCS#8 private key");
    let signed = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key).sign(signed.as_bytes());
    format!("{signed}.{}", b64url(&sig.to_bytes()))
}

/// HMAC-SHA256, for the classic "HS256 keyed with the RSA public key" forgery.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha2::Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = sha2::Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

fn client_scheme(jwt: &str) -> String {
    format!("SudomimusClientJWT {jwt}")
}

async fn connect_post(srv: &Server, path: &str, auth: Option<&str>, body: &[u8]) -> Answer {
    let mut h = vec![("content-type", "application/json")];
    if let Some(a) = auth {
        h.push(("authorization", a));
    }
    srv.send(Method::POST, path, &h, Some(body)).await
}

fn assert_answer(a: &Answer, status: StatusCode, expected: Value, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.text());
    assert!(
        a.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{what}: {:?}",
        a.headers
    );
    assert_eq!(a.json(), expected, "{what}");
}

/// app-a with Alice's three refresh-token sessions (subject `subject`), app-b (another key).
struct ConnectWorld {
    a: Value,
    b: Value,
    alice: String,
    subject: String,
    refresh: Vec<String>,
}

async fn connect_world(srv: &Server) -> ConnectWorld {
    let a = srv.app("app-a").await;
    let b = srv.app("app-b").await;
    let alice = s(&srv.account("alice").await, "id").to_owned();
    let mut refresh = Vec::new();
    let mut subject = String::new();
    for kind in ["login", "oauth", "oauth"] {
        let v = srv.session(&alice, Some("app-a"), kind).await;
        refresh.push(s(&v, "refresh_token").to_owned());
        subject = s(&v, "subject").to_owned();
    }
    ConnectWorld {
        a,
        b,
        alice,
        subject,
        refresh,
    }
}

impl ConnectWorld {
    async fn assert_untouched(&self, srv: &Server, what: &str) {
        for t in &self.refresh {
            assert!(srv.is_active(t).await, "{what}: a refresh token died");
        }
    }
}

#[tokio::test]
async fn every_bad_client_jwt_is_401_client_jwt_invalid_and_revokes_nothing() {
    let srv = Server::start().await;
    let w = connect_world(&srv).await;
    let pem = s(&w.a, "connect_private_key_pem");
    let other_pem = s(&w.b, "connect_private_key_pem");
    let public_pem = s(&w.a, "connect_public_key_pem");
    let body = json!({"subject": w.subject}).to_string().into_bytes();
    let now = now_s();
    let ok = |iat: i64, lifetime: i64| claims("app-a", CONNECT, &body, iat, lifetime);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = ok(now, 30);
        change(&mut c);
        c
    };
    let sdk = |c: &Value| client_scheme(&rs256(pem, &json!({}), c));
    let valid = || {
        client_scheme(&client_jwt(
            pem,
            "app-a",
            CONNECT,
            &body,
            now_s(),
            30,
            &unique_jti(),
        ))
    };

    let hs256_header = json!({"alg": "HS256", "typ": "JWT"});
    let hs256_forged = {
        let signed = format!(
            "{}.{}",
            b64url(hs256_header.to_string().as_bytes()),
            b64url(ok(now, 30).to_string().as_bytes())
        );
        let mac = hmac_sha256(public_pem.as_bytes(), signed.as_bytes());
        format!("{signed}.{}", b64url(&mac))
    };
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            b64url(json!({"alg": alg}).to_string().as_bytes()),
            b64url(ok(now, 30).to_string().as_bytes())
        )
    };
    // A valid token whose claims are swapped for others after signing.
    let altered = {
        let t = rs256(pem, &json!({}), &ok(now, 30));
        let parts: Vec<&str> = t.split('.').collect();
        let forged_claims = claims("app-a", CONNECT, b"{\"subject\":\"someone\"}", now, 30);
        format!(
            "{}.{}.{}",
            parts[0],
            b64url(forged_claims.to_string().as_bytes()),
            parts[2]
        )
    };
    let raw_digest = sha2::Sha256::digest(&body);

    let cases: Vec<(&str, Option<String>)> = vec![
        // The header and the scheme.
        ("no authorization header", None),
        (
            "Bearer scheme",
            Some(valid().replacen("SudomimusClientJWT", "Bearer", 1)),
        ),
        ("scheme without a token", Some("SudomimusClientJWT".into())),
        (
            "scheme and a space only",
            Some("SudomimusClientJWT ".into()),
        ),
        ("garbage", Some(client_scheme("not-a-jwt"))),
        ("three garbage segments", Some(client_scheme("a.b.c"))),
        ("four segments", Some(format!("{}.e30", valid()))),
        // The signature and the algorithm.
        (
            "truncated signature",
            Some({
                let mut t = valid();
                t.truncate(t.len() - 4);
                t
            }),
        ),
        (
            "claims altered after signing",
            Some(client_scheme(&altered)),
        ),
        (
            "signed with another application's key",
            Some(client_scheme(&client_jwt(
                other_pem,
                "app-a",
                CONNECT,
                &body,
                now,
                30,
                &unique_jti(),
            ))),
        ),
        (
            "alg HS256 with a valid RS256 signature",
            Some(client_scheme(&rs256(pem, &hs256_header, &ok(now, 30)))),
        ),
        (
            "alg HS256 keyed with the public key",
            Some(client_scheme(&hs256_forged)),
        ),
        (
            "alg RS512 with a valid RS256 signature",
            Some(client_scheme(&rs256(
                pem,
                &json!({"alg": "RS512"}),
                &ok(now, 30),
            ))),
        ),
        (
            "alg PS256 with a valid RS256 signature",
            Some(client_scheme(&rs256(
                pem,
                &json!({"alg": "PS256"}),
                &ok(now, 30),
            ))),
        ),
        (
            "alg rs256 in lower case",
            Some(client_scheme(&rs256(
                pem,
                &json!({"alg": "rs256"}),
                &ok(now, 30),
            ))),
        ),
        (
            "alg null",
            Some(client_scheme(&rs256(
                pem,
                &json!({"alg": null}),
                &ok(now, 30),
            ))),
        ),
        (
            "alg none with a valid RS256 signature",
            Some(client_scheme(&rs256(
                pem,
                &json!({"alg": "none"}),
                &ok(now, 30),
            ))),
        ),
        ("alg none, unsigned", Some(client_scheme(&unsigned("none")))),
        (
            "no alg, unsigned",
            Some(client_scheme(&format!(
                "e30.{}.",
                b64url(ok(now, 30).to_string().as_bytes())
            ))),
        ),
        // Time.
        ("expired", Some(sdk(&ok(now - 120, 30)))),
        ("expired a second ago", Some(sdk(&ok(now - 31, 30)))),
        ("lifetime of 61 s", Some(sdk(&ok(now, 61)))),
        ("lifetime of an hour", Some(sdk(&ok(now, 3600)))),
        ("iat 45 s in the future", Some(sdk(&ok(now + 45, 30)))),
        ("iat a day in the future", Some(sdk(&ok(now + 86_400, 30)))),
        (
            "exp before iat",
            Some(sdk(&with(&|c| {
                c["iat"] = json!(now + 10);
                c["exp"] = json!(now + 5);
            }))),
        ),
        (
            "exp at i64::MAX",
            Some(sdk(&with(&|c| c["exp"] = json!(i64::MAX)))),
        ),
        (
            "iat at i64::MIN",
            Some(sdk(&with(&|c| c["iat"] = json!(i64::MIN)))),
        ),
        (
            "exp as a string",
            Some(sdk(&with(&|c| c["exp"] = json!((now + 30).to_string())))),
        ),
        (
            "no iat",
            Some(sdk(&with(&|c| {
                c.as_object_mut().expect("object").remove("iat");
            }))),
        ),
        // Audience and issuer.
        (
            "wrong aud",
            Some(sdk(&with(&|c| c["aud"] = json!("sudomimus-establish")))),
        ),
        (
            "aud in upper case",
            Some(sdk(&with(&|c| c["aud"] = json!("SUDOMIMUS-CONNECT")))),
        ),
        (
            "no aud",
            Some(sdk(&with(&|c| {
                c.as_object_mut().expect("object").remove("aud");
            }))),
        ),
        (
            "unknown iss",
            Some(sdk(&with(&|c| c["iss"] = json!("no-such-app")))),
        ),
        (
            "iss of another application",
            Some(sdk(&with(&|c| c["iss"] = json!("app-b")))),
        ),
        (
            "no iss",
            Some(sdk(&with(&|c| {
                c.as_object_mut().expect("object").remove("iss");
            }))),
        ),
        // Binding to the body and to one use.
        (
            "body_sha256 of another body",
            Some(sdk(&with(&|c| {
                c["body_sha256"] = json!(body_hash(b"{\"subject\":\"someone-else\"}"))
            }))),
        ),
        (
            "body_sha256 of the body plus a newline",
            Some(sdk(&with(&|c| {
                let mut more = body.clone();
                more.push(b'\n');
                c["body_sha256"] = json!(body_hash(&more));
            }))),
        ),
        (
            "body_sha256 in base64url",
            Some(sdk(&with(&|c| {
                c["body_sha256"] = json!(b64url(&raw_digest))
            }))),
        ),
        (
            "body_sha256 in hex",
            Some(sdk(&with(&|c| c["body_sha256"] = json!(hex(&raw_digest))))),
        ),
        (
            "no body_sha256",
            Some(sdk(&with(&|c| {
                c.as_object_mut().expect("object").remove("body_sha256");
            }))),
        ),
        (
            "no jti",
            Some(sdk(&with(&|c| {
                c.as_object_mut().expect("object").remove("jti");
            }))),
        ),
        ("empty jti", Some(sdk(&with(&|c| c["jti"] = json!(""))))),
        (
            "jti of 257 characters",
            Some(sdk(&with(&|c| c["jti"] = json!("j".repeat(257))))),
        ),
    ];
    for (what, auth) in &cases {
        let a = connect_post(&srv, "/revoke-all", auth.as_deref(), &body).await;
        assert_answer(
            &a,
            StatusCode::UNAUTHORIZED,
            json!({"reason": "ClientJwtInvalid"}),
            what,
        );
    }
    // Bad authentication and a bad body: authentication is checked first.
    for bad in [&b"not json"[..], b"{}", b"", br#"{"subject": 5}"#] {
        let a = connect_post(&srv, "/revoke-all", Some(&client_scheme("garbage")), bad).await;
        assert_answer(
            &a,
            StatusCode::UNAUTHORIZED,
            json!({"reason": "ClientJwtInvalid"}),
            "garbage, bad body",
        );
        let wrong_key = client_jwt(other_pem, "app-a", CONNECT, bad, now_s(), 30, &unique_jti());
        let a = connect_post(&srv, "/revoke-all", Some(&client_scheme(&wrong_key)), bad).await;
        assert_answer(
            &a,
            StatusCode::UNAUTHORIZED,
            json!({"reason": "ClientJwtInvalid"}),
            "wrong key, bad body",
        );
    }
    w.assert_untouched(&srv, "after the rejected requests")
        .await;
    // The same body, correctly signed, revokes all three: the table was not vacuous.
    let a = connect_post(&srv, "/revoke-all", Some(&valid()), &body).await;
    assert_answer(&a, StatusCode::OK, json!({"revokedCount": 3}), "valid");
}

#[tokio::test]
async fn client_jwts_at_the_edges_of_the_rules_are_accepted() {
    let srv = Server::start().await;
    let w = connect_world(&srv).await;
    let pem = s(&w.a, "connect_private_key_pem");
    let body = json!({"subject": "sub_nobody"}).to_string().into_bytes();
    let c = |iat: i64, lifetime: i64| claims("app-a", CONNECT, &body, iat, lifetime);
    let cases: Vec<(&str, String)> = vec![
        (
            "explicit RS256 header",
            client_scheme(&rs256(
                pem,
                &json!({"alg": "RS256", "typ": "JWT"}),
                &c(now_s(), 30),
            )),
        ),
        (
            "lifetime of exactly 60 s",
            client_scheme(&rs256(pem, &json!({}), &c(now_s(), 60))),
        ),
        (
            "iat 20 s in the future",
            client_scheme(&rs256(pem, &json!({}), &c(now_s() + 20, 30))),
        ),
        (
            "issued 40 s ago, still valid",
            client_scheme(&rs256(pem, &json!({}), &c(now_s() - 40, 60))),
        ),
        (
            "the scheme in lower case",
            format!(
                "sudomimusclientjwt {}",
                rs256(pem, &json!({}), &c(now_s(), 30))
            ),
        ),
    ];
    for (what, auth) in cases {
        let a = connect_post(&srv, "/revoke-all", Some(&auth), &body).await;
        assert_answer(&a, StatusCode::OK, json!({"revokedCount": 0}), what);
    }
    // The prefix of the calling application itself is fine.
    let body = json!({"subject": w.subject}).to_string().into_bytes();
    let jwt = client_jwt(pem, "app-a", CONNECT, &body, now_s(), 30, &unique_jti());
    let a = connect_post(
        &srv,
        "/apps/app-a/revoke-all",
        Some(&client_scheme(&jwt)),
        &body,
    )
    .await;
    assert_answer(&a, StatusCode::OK, json!({"revokedCount": 3}), "own prefix");
}

#[tokio::test]
async fn a_replayed_jti_is_401_with_a_zero_byte_body() {
    let srv = Server::start().await;
    let w = connect_world(&srv).await;
    let pem = s(&w.a, "connect_private_key_pem");
    let body = json!({"subject": w.subject}).to_string().into_bytes();
    let jti = unique_jti();
    let jwt = client_jwt(pem, "app-a", CONNECT, &body, now_s(), 30, &jti);
    let a = connect_post(&srv, "/revoke-all", Some(&client_scheme(&jwt)), &body).await;
    assert_answer(&a, StatusCode::OK, json!({"revokedCount": 3}), "first use");
    // A session issued after the first call must not die by a replay.
    let fresh = srv.session(&w.alice, Some("app-a"), "oauth").await;
    let fresh_refresh = s(&fresh, "refresh_token");
    let assert_private_401 = |a: &Answer, what: &str| {
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}: {}", a.text());
        assert!(
            a.body.is_empty(),
            "{what}: a PRIVATE reason: {:?}",
            a.text()
        );
    };
    for _ in 0..2 {
        let a = connect_post(&srv, "/revoke-all", Some(&client_scheme(&jwt)), &body).await;
        assert_private_401(&a, "the same JWT again");
    }
    // The same jti in a freshly signed JWT (another body, other times) is a replay too.
    let body2 = json!({"subject": "sub_nobody"}).to_string().into_bytes();
    let again = client_jwt(pem, "app-a", CONNECT, &body2, now_s() - 1, 40, &jti);
    let a = connect_post(&srv, "/revoke-all", Some(&client_scheme(&again)), &body2).await;
    assert_private_401(&a, "the jti re-signed");
    assert!(srv.is_active(fresh_refresh).await, "fresh after replays");
    // A call that revoked nothing consumed its jti all the same.
    let jwt0 = client_jwt(pem, "app-a", CONNECT, &body2, now_s(), 30, &unique_jti());
    let a = connect_post(&srv, "/revoke-all", Some(&client_scheme(&jwt0)), &body2).await;
    assert_answer(
        &a,
        StatusCode::OK,
        json!({"revokedCount": 0}),
        "nothing to revoke",
    );
    let a = connect_post(&srv, "/revoke-all", Some(&client_scheme(&jwt0)), &body2).await;
    assert_private_401(&a, "replay of a call that revoked nothing");
    // A new jti works, and kills the fresh session.
    let jwt = client_jwt(pem, "app-a", CONNECT, &body, now_s(), 30, &unique_jti());
    let a = connect_post(&srv, "/revoke-all", Some(&client_scheme(&jwt)), &body).await;
    assert_answer(&a, StatusCode::OK, json!({"revokedCount": 1}), "a new jti");
    assert!(!srv.is_active(fresh_refresh).await);
}

// ---- Okta: scopes and per-token limits (beyond tests/okta.rs) ---------------------------

async fn okta(srv: &Server, method: Method, path: &str, auth: &str) -> Answer {
    srv.send(
        method,
        path,
        &[("authorization", auth), ("accept", "application/json")],
        None,
    )
    .await
}

fn assert_okta(a: &Answer, status: StatusCode, code: &str, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.text());
    let v = a.json();
    assert_eq!(v["errorCode"], code, "{what}: {v}");
    for h in [
        "x-rate-limit-limit",
        "x-rate-limit-remaining",
        "x-rate-limit-reset",
    ] {
        assert!(a.header(h).is_some(), "{what}: no {h}");
    }
}

/// `tests/okta.rs` has the 403 of a read-only token and the 429 of one token (with another
/// token still served). Here: every scheme and near-miss scope is refused on every endpoint
/// that needs a scope, and neither a flood of bad tokens nor one token's flood limits
/// another token, whose remaining count is its own.
#[tokio::test]
async fn okta_scopes_are_exact_and_rate_limits_are_per_token() {
    let srv = Server::start_with(
        sessiond::domain::Config {
            default_rate_limit_per_minute: 3,
            ..sessiond::domain::Config::default()
        },
        sessiond::http::Limits::default(),
    )
    .await;
    srv.clock.to_start_of_minute();
    let user = s(&srv.account("olga").await, "id").to_owned();
    let idp = s(&srv.session(&user, None, "idp").await, "id").to_owned();
    let revoke = format!("/api/v1/users/{user}/sessions?oauthTokens=true");
    let session = format!("/api/v1/sessions/{idp}");

    let near_misses = [
        vec![],
        vec!["okta.users.read"],
        vec!["okta.sessions.manage", "okta.sessions.read"],
        vec!["OKTA.USERS.MANAGE"],
        vec!["okta.users.manage "],
        vec!["okta.users.manage.all"],
        vec!["okta.users"],
    ];
    for scopes in &near_misses {
        let t = srv.api_token(scopes, Some(100)).await;
        for auth in [format!("SSWS {t}"), format!("Bearer {t}")] {
            let a = okta(&srv, Method::DELETE, &revoke, &auth).await;
            assert_okta(
                &a,
                StatusCode::FORBIDDEN,
                "E0000006",
                &format!("{scopes:?}"),
            );
        }
    }
    // The probes need their own scopes; okta.users.manage alone is not one of them.
    let manage_only = srv.api_token(&[USERS_MANAGE], Some(100)).await;
    for method in [Method::GET, Method::DELETE] {
        let a = okta(
            &srv,
            method.clone(),
            &session,
            &format!("SSWS {manage_only}"),
        )
        .await;
        assert_okta(
            &a,
            StatusCode::FORBIDDEN,
            "E0000006",
            &format!("{method} session"),
        );
    }
    let read_only = srv.api_token(&["okta.sessions.read"], Some(100)).await;
    let a = okta(&srv, Method::DELETE, &session, &format!("SSWS {read_only}")).await;
    assert_okta(
        &a,
        StatusCode::FORBIDDEN,
        "E0000006",
        "DELETE session, read scope",
    );
    assert_eq!(
        srv.session_state(&idp).await,
        "active",
        "nothing was revoked"
    );

    // A flood of bad tokens shares the unauthenticated bucket (limit 3 here)...
    let mut flooded = None;
    for _ in 0..2 {
        for i in 0..4 {
            let a = okta(&srv, Method::DELETE, &revoke, &format!("SSWS bogus-{i}")).await;
            if a.status == StatusCode::TOO_MANY_REQUESTS {
                flooded = Some(a);
            }
        }
        if flooded.is_some() {
            break;
        }
    }
    let a = flooded.expect("the fourth bad token within a minute is limited");
    assert_okta(
        &a,
        StatusCode::TOO_MANY_REQUESTS,
        "E0000047",
        "bad-token flood",
    );
    assert_eq!(a.header("x-rate-limit-remaining"), Some("0"));
    // ...and limits no real token.
    let a = okta(&srv, Method::GET, &session, &format!("SSWS {read_only}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());

    // One token's flood: limited, with the headers; another token's count is its own.
    let x = srv.api_token(&[USERS_MANAGE], Some(2)).await;
    let y = srv.api_token(&[USERS_MANAGE], Some(5)).await;
    let mut limited = None;
    for _ in 0..3 {
        for _ in 0..3 {
            let a = okta(&srv, Method::DELETE, &revoke, &format!("SSWS {x}")).await;
            if a.status == StatusCode::TOO_MANY_REQUESTS {
                limited = Some(a);
            }
        }
        if limited.is_some() {
            break;
        }
    }
    let a = limited.expect("x is limited");
    assert_okta(&a, StatusCode::TOO_MANY_REQUESTS, "E0000047", "x flooded");
    assert_eq!(a.header("x-rate-limit-limit"), Some("2"));
    assert_eq!(a.header("x-rate-limit-remaining"), Some("0"));
    let a = okta(&srv, Method::DELETE, &revoke, &format!("Bearer {y}")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    assert_eq!(a.header("x-rate-limit-limit"), Some("5"));
    assert_eq!(
        a.header("x-rate-limit-remaining"),
        Some("4"),
        "y's count is its own"
    );
}

// ---- the admin API refuses without its token ---------------------------------------------

#[tokio::test]
async fn every_admin_route_refuses_without_its_token() {
    let srv = Server::start().await;
    let app = srv.app("app-a").await;
    let acct = s(&srv.account("adam").await, "id").to_owned();
    let session = srv.session(&acct, Some("app-a"), "login").await;
    let sid = s(&session, "id").to_owned();
    let key = s(&app, "rownd_app_key").to_owned();
    let okta_token = srv.api_token(&[USERS_MANAGE], None).await;

    let backups = tempfile::tempdir().expect("tempdir");
    let backup = backups.path().join("stolen.backup");
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/admin/v1/backup".into(),
            Some(json!({ "path": backup })),
        ),
        (Method::POST, "/admin/v1/sweep".into(), None),
        (
            Method::POST,
            "/admin/v1/applications".into(),
            Some(json!({"id": "evil", "name": "evil"})),
        ),
        (Method::GET, "/admin/v1/applications".into(), None),
        (Method::GET, "/admin/v1/applications/app-a".into(), None),
        (
            Method::PATCH,
            "/admin/v1/applications/app-a".into(),
            Some(json!({"enabled": false})),
        ),
        (
            Method::POST,
            "/admin/v1/applications/app-a/keys".into(),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/admin/v1/applications/app-a/keys/{key}"),
            None,
        ),
        (
            Method::POST,
            "/admin/v1/accounts".into(),
            Some(json!({"login": "mallory", "password": "mallory-pw"})),
        ),
        (Method::GET, format!("/admin/v1/accounts/{acct}"), None),
        (
            Method::GET,
            format!("/admin/v1/accounts/{acct}/sessions"),
            None,
        ),
        (
            Method::POST,
            format!("/admin/v1/accounts/{acct}/devices"),
            Some(json!({"label": "evil"})),
        ),
        (
            Method::GET,
            format!("/admin/v1/accounts/{acct}/devices"),
            None,
        ),
        (
            Method::POST,
            "/admin/v1/sessions".into(),
            Some(json!({"account": acct, "application": "app-a", "kind": "login"})),
        ),
        (
            Method::POST,
            "/admin/v1/sessions/batch".into(),
            Some(json!({"sessions": [{"account": acct, "application": "app-a", "kind": "login"}]})),
        ),
        (Method::GET, format!("/admin/v1/sessions/{sid}"), None),
        (Method::DELETE, format!("/admin/v1/sessions/{sid}"), None),
        (
            Method::POST,
            "/admin/v1/api-tokens".into(),
            Some(json!({"name": "evil", "scopes": [USERS_MANAGE]})),
        ),
        (
            Method::POST,
            "/admin/v1/introspect".into(),
            Some(json!({"token": s(&session, "access_token")})),
        ),
        (Method::GET, "/admin/v1/audit".into(), None),
        (Method::GET, "//admin/v1/applications".into(), None),
        (
            Method::GET,
            format!("/admin/v1/applications?access_token={ADMIN}"),
            None,
        ),
    ];
    // Every admin route the router knows is in the list, with each of its methods.
    for r in sessiond::http::ROUTES
        .iter()
        .filter(|r| r.shape == sessiond::http::Shape::Admin)
    {
        for m in r.methods {
            let listed = routes.iter().any(|(method, path, _)| {
                let path = path.split('?').next().unwrap_or_default();
                let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
                method.as_str() == m.as_str()
                    && segs.len() == r.path.len()
                    && r.path
                        .iter()
                        .zip(&segs)
                        .all(|(t, s)| t.starts_with('{') || t == s)
            });
            assert!(listed, "{m} {} is not in this test's list", r.template());
        }
    }
    let basic = format!("Basic {}", STANDARD.encode(format!("admin:{ADMIN}")));
    let auths: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no token", vec![]),
        (
            "a wrong token",
            vec![("authorization", "Bearer wrong".into())],
        ),
        (
            "the token plus a byte",
            vec![("authorization", format!("Bearer {ADMIN}x"))],
        ),
        (
            "the token less a byte",
            vec![(
                "authorization",
                format!("Bearer {}", &ADMIN[..ADMIN.len() - 1]),
            )],
        ),
        (
            "the token in upper case",
            vec![("authorization", format!("Bearer {}", ADMIN.to_uppercase()))],
        ),
        (
            "Basic with the token as password",
            vec![("authorization", basic)],
        ),
        (
            "SSWS scheme",
            vec![("authorization", format!("SSWS {ADMIN}"))],
        ),
        (
            "Token scheme",
            vec![("authorization", format!("Token {ADMIN}"))],
        ),
        ("no scheme", vec![("authorization", ADMIN.into())]),
        (
            "Bearer with no token",
            vec![("authorization", "Bearer ".into())],
        ),
        ("another header", vec![("x-admin-token", ADMIN.into())]),
        (
            "an Okta API token",
            vec![("authorization", format!("Bearer {okta_token}"))],
        ),
        (
            "a session's access token",
            vec![(
                "authorization",
                format!("Bearer {}", s(&session, "access_token")),
            )],
        ),
        (
            "a Rownd secret",
            vec![(
                "authorization",
                format!("Bearer {}", s(&app, "rownd_app_secret")),
            )],
        ),
    ];
    for (method, path, body) in &routes {
        for (what, headers) in &auths {
            let mut h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let bytes = body.as_ref().map(|b| b.to_string().into_bytes());
            if bytes.is_some() {
                h.push(("content-type", "application/json"));
            }
            let a = srv.send(method.clone(), path, &h, bytes.as_deref()).await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {what}: {}",
                a.text()
            );
            let v = a.json();
            assert_eq!(
                v["error"], "unauthorized",
                "{method} {path} with {what}: {v}"
            );
            assert!(v["message"].is_string());
        }
    }
    // Nothing happened: no backup was written, no application, account or device was made,
    // nothing was changed or revoked.
    assert!(!backup.exists(), "a backup was written without the token");
    let apps = srv
        .admin(Method::GET, "/admin/v1/applications", None)
        .await
        .json();
    assert_eq!(
        apps["applications"].as_array().map(Vec::len),
        Some(1),
        "{apps}"
    );
    assert_eq!(apps["applications"][0]["enabled"], true);
    let a = srv
        .send_json(
            Method::POST,
            "/applications/app-a/users/nobody/signout",
            &[
                ("x-rownd-app-key", &key),
                ("x-rownd-app-secret", s(&app, "rownd_app_secret")),
            ],
            &json!({}),
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "the Rownd key still works: {}",
        a.text()
    );
    let devices = srv
        .admin(
            Method::GET,
            &format!("/admin/v1/accounts/{acct}/devices"),
            None,
        )
        .await;
    assert_eq!(devices.json()["devices"], json!([]));
    assert_eq!(srv.session_state(&sid).await, "active");
    let sessions = srv
        .admin(
            Method::GET,
            &format!("/admin/v1/accounts/{acct}/sessions"),
            None,
        )
        .await;
    assert_eq!(
        sessions.json()["sessions"].as_array().map(Vec::len),
        Some(1)
    );
    srv.account("mallory").await; // 201, not 409: it was not created before
    // Control: with the token, every listed route is served (not a 401).
    for (method, path, body) in &routes {
        if path.contains("no-such-route") {
            continue;
        }
        let a = srv.admin(method.clone(), path, body.clone()).await;
        assert_ne!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            a.text()
        );
        assert!(
            a.status.is_success() || a.status == StatusCode::CONFLICT,
            "{method} {path}: {} {}",
            a.status,
            a.text()
        );
    }
}

// ---- file permissions ---------------------------------------------------------------------

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
fn set_mode(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
}

/// The data directory, sled's directory in it, and every key file in it, are the owner's.
#[cfg(unix)]
fn assert_private(data: &Path, what: &str) {
    let octal = |p: &Path| format!("{:o}", mode(p));
    assert_eq!(octal(data), "700", "{what}: the data directory");
    assert_eq!(octal(&data.join("store")), "700", "{what}: store/");
    let mut keys = 0;
    for entry in std::fs::read_dir(data).expect("read_dir") {
        let p = entry.expect("entry").path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if p.is_file() && (name.ends_with(".pem") || name.contains("key")) {
            keys += 1;
            assert_eq!(octal(&p), "600", "{what}: {name}");
        }
    }
    assert!(
        keys >= 1,
        "{what}: the hub signing key is in the data directory"
    );
}

#[cfg(unix)]
fn open_service(dir: &Path) -> sessiond::domain::Sessiond {
    let store = open_store(dir);
    sessiond::domain::Sessiond::new(
        store,
        sessiond::domain::Config::default(),
        std::sync::Arc::new(sessiond::domain::SystemClock),
    )
    .expect("the service opens")
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_0700_and_key_files_0600() {
    let root = tempfile::tempdir().expect("tempdir");
    // Created by sessiond (parents too).
    let fresh = root.path().join("fresh").join("data");
    let kid = {
        let svc = open_service(&fresh);
        svc.hub().jwks()["keys"][0]["kid"].clone()
    };
    assert_private(&fresh, "a fresh directory");

    // Made by the user (`mkdir` under a usual umask), and loosened after a first start
    // (a restore from a backup, a `chmod -R`): tightened at the next start.
    let made = root.path().join("made");
    std::fs::create_dir(&made).expect("mkdir");
    set_mode(&made, 0o755);
    drop(open_service(&made));
    assert_private(&made, "a directory made with 0755");
    set_mode(&made, 0o777);
    set_mode(&made.join("store"), 0o755);
    set_mode(&made.join("hub-signing-key.pem"), 0o644);
    drop(open_service(&made));
    assert_private(&made, "a loosened directory and key");

    // The same key is kept across those starts.
    set_mode(&fresh.join("hub-signing-key.pem"), 0o640);
    let svc = open_service(&fresh);
    assert_eq!(svc.hub().jwks()["keys"][0]["kid"], kid);
    drop(svc);
    assert_private(&fresh, "a reopened directory");
}

// ---- logs ---------------------------------------------------------------------------------

/// The real binary, its stdout and stderr captured whole.
struct Binary {
    child: std::process::Child,
    base: String,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

/// A failing assertion must not leave the server running.
impl Drop for Binary {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Binary {
    fn start(data: &Path, admin: &str) -> Binary {
        use std::io::{BufRead, Read};
        use std::process::{Command, Stdio};
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessiond"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(data)
            .env("SESSIOND_LOG", "trace")
            .env("SESSIOND_ADMIN_TOKEN", admin)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("SESSIOND_") && k != "SESSIOND_LOG" && k != "SESSIOND_ADMIN_TOKEN" {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().expect("start the sessiond binary");
        let out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let stdout = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut reader = std::io::BufReader::new(out);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let _ = tx.send(line.clone());
                all.extend_from_slice(line.as_bytes());
                line.clear();
            }
            all
        });
        let stderr = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = err.read_to_end(&mut all);
            all
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let base = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|e| {
                let _ = child.kill();
                panic!("sessiond did not say where it listens: {e}")
            });
            if let Some(rest) = line.trim().strip_prefix("sessiond listening on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .expect("an address")
                    .to_owned();
            }
        };
        Binary {
            child,
            base,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    /// Stops it with SIGTERM (graceful), or kills it after 20 s; returns (stdout, stderr).
    fn stop(mut self) -> (Vec<u8>, Vec<u8>, bool) {
        let pid = self.child.id().to_string();
        let termed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut graceful = false;
        loop {
            match self.child.try_wait().expect("wait") {
                Some(status) => {
                    graceful = termed && status.success();
                    if !graceful {
                        eprintln!("sessiond ended with {status} (SIGTERM sent: {termed})");
                    }
                    break;
                }
                None if std::time::Instant::now() > deadline => {
                    eprintln!("sessiond still running 20 s after SIGTERM (sent: {termed}); killed");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                None => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        let out = self
            .stdout
            .take()
            .expect("once")
            .join()
            .expect("stdout reader");
        let err = self
            .stderr
            .take()
            .expect("once")
            .join()
            .expect("stderr reader");
        (out, err, graceful)
    }
}

/// The text without ANSI colour sequences (`ESC [ ... letter`).
fn strip_ansi(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x1b && bytes.get(i + 1) == Some(&b'[') {
            i += 2;
            while i < bytes.len() && !bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[tokio::test]
async fn logs_never_hold_a_token_secret_or_password() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let admin = format!(
        "sdadm_{}",
        URL_SAFE_NO_PAD.encode(sessiond::domain::secrets::random::<32>())
    );
    let bin = Binary::start(&data, &admin);
    let api = Api::new(&bin.base, &admin);
    // A run in which every kind of credential is issued and presented, rightly and wrongly.
    let driven = drive_every_secret(&api).await;
    // The binary also secures the directory it creates.
    #[cfg(unix)]
    assert_private(&data, "the binary's data directory");
    let (stdout, stderr, graceful) = bin.stop();
    let stderr_plain = strip_ansi(&stderr);
    let log = String::from_utf8_lossy(&stderr_plain).into_owned();

    // Controls: the trace log is there and says what happened, so a clean search is not an
    // empty one.
    for expected in [
        "/api/v1/login",
        "/user/login",
        "/revoke-all",
        "/hub/auth/token",
        "/admin/v1/introspect",
        "status=401",
        "status=204",
        "client JWT rejected",
    ] {
        assert!(
            log.contains(expected),
            "the log mentions {expected:?}:\n{log}"
        );
    }
    assert!(
        graceful,
        "sessiond stops cleanly on SIGTERM; stdout:\n{}\n--- stderr ---\n{log}",
        String::from_utf8_lossy(&stdout)
    );
    assert!(log.contains("stopped; store flushed"), "{log}");
    let mut leaks = Vec::new();
    for (stream, bytes) in [
        ("stderr", &stderr),
        ("stderr without colours", &stderr_plain),
        ("stdout", &stdout),
    ] {
        for what in driven.secrets.found_in(bytes) {
            leaks.push(format!("{what} on {stream}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets in the output of sessiond serve:\n{}\n--- stderr ---\n{log}",
        leaks.join("\n")
    );
}
