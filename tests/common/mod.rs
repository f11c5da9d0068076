//! The test harness: a real sessiond (the library's own `serve`) on a loopback port over
//! a real sled store in a temporary directory, driven over real HTTP with reqwest.
#![allow(dead_code)] // each test binary uses a different part of the harness

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sessiond::domain::{Clock, Config, Sessiond};
use sessiond::http::{Limits, serve};
use sessiond::store::{Durability, Store, StoreOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod bin;

pub const ADMIN: &str = "test-admin-token";

/// Waits until the store in the data directory `dir` is closed: its sled lock is free.
/// `serve` returns after the last flush, but a connection's task or a background job may
/// still hold a handle of the service for a moment, and sled lets the lock go only when the
/// last handle of its file goes (some with deferred frees). A new process never sees this;
/// a reopen in the same one (a restart, a test that edits the store) would find the store
/// locked.
pub async fn wait_until_closed(dir: &std::path::Path) {
    let db = dir.join("store").join("db");
    let file = std::fs::File::open(&db).expect("sled's file");
    for _ in 0..1000 {
        match file.try_lock() {
            Ok(()) => {
                file.unlock().expect("unlock");
                return;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            Err(std::fs::TryLockError::Error(e)) => panic!("lock {}: {e}", db.display()),
        }
    }
    panic!(
        "the store in {} is still open 10 s after serve returned",
        dir.display()
    );
}

/// The wall clock plus an offset the test moves forward (for expiry).
#[derive(Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
}

impl TestClock {
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Moves to one second past the start of a calendar minute, so a test of per-minute
    /// windows (rate limits, the flood guard) cannot straddle two of them.
    pub fn to_start_of_minute(&self) {
        let into = self.now().rem_euclid(60_000);
        self.advance(60_000 - into + 1_000);
    }
}

impl Clock for TestClock {
    fn now(&self) -> i64 {
        sessiond::domain::SystemClock.now() + self.offset_ms.load(Ordering::SeqCst)
    }
}

pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Arc<TestClock>,
    pub config: Config,
    pub limits: Limits,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(Config::default(), Limits::default()).await
    }

    pub async fn start_with(config: Config, limits: Limits) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Server {
            base: String::new(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
            clock: Arc::new(TestClock::default()),
            config,
            limits,
            dir,
            stop: None,
            task: None,
        };
        s.boot().await;
        s
    }

    /// Starts the server on its data directory (again, after `shutdown`).
    pub async fn boot(&mut self) {
        let store = Store::open(
            self.dir.path(),
            &StoreOptions {
                cache_bytes: 16 << 20,
                durability: Durability::Fsync,
            },
        )
        .expect("open store");
        let state = Sessiond::new(store, self.config.clone(), self.clock.clone()).expect("state");
        state
            .ensure_admin_token(Some(ADMIN))
            .await
            .expect("admin token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        self.base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let limits = self.limits.clone();
        self.task = Some(tokio::spawn(serve(listener, state, limits, async move {
            let _ = rx.await;
        })));
        self.stop = Some(tx);
    }

    /// Stops the server gracefully and starts it again on the same data directory (on a
    /// new port).
    pub async fn restart(&mut self) {
        self.shutdown().await;
        self.boot().await;
    }

    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
            wait_until_closed(self.dir.path()).await;
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Sends a request; `body` is sent as raw bytes.
    pub async fn send(
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

    /// Sends JSON with `Content-Type: application/json`.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Answer {
        let mut h = headers.to_vec();
        h.push(("content-type", "application/json"));
        self.send(method, path, &h, Some(body.to_string().as_bytes()))
            .await
    }

    // ---- admin API ----------------------------------------------------------------------

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let auth = format!("Bearer {ADMIN}");
        match body {
            Some(b) => {
                self.send_json(method, path, &[("authorization", &auth)], &b)
                    .await
            }
            None => {
                self.send(method, path, &[("authorization", &auth)], None)
                    .await
            }
        }
    }

    async fn admin_create(&self, path: &str, body: Value) -> Value {
        let a = self.admin(Method::POST, path, Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::CREATED, "{path} {body}: {}", a.text());
        a.json()
    }

    /// Creates an application (with a generated Connect key pair).
    pub async fn app(&self, id: &str) -> Value {
        self.admin_create("/admin/v1/applications", json!({"id": id, "name": id}))
            .await
    }

    pub async fn app_with(&self, body: Value) -> Value {
        self.admin_create("/admin/v1/applications", body).await
    }

    /// Creates an account with a password of "pw-<login>".
    pub async fn account(&self, login: &str) -> Value {
        self.admin_create(
            "/admin/v1/accounts",
            json!({"login": login, "email": format!("{login}@example.com"), "password": format!("pw-{login}")}),
        )
        .await
    }

    /// Creates a session of `kind` ("idp" | "login" | "oauth" | "pat") for an account id.
    pub async fn session(&self, account: &str, app: Option<&str>, kind: &str) -> Value {
        let mut b = json!({"account": account, "kind": kind});
        if let Some(a) = app {
            b["application"] = json!(a);
        }
        self.admin_create("/admin/v1/sessions", b).await
    }

    pub async fn api_token(&self, scopes: &[&str], limit: Option<u32>) -> String {
        let mut b = json!({"name": "test", "scopes": scopes});
        if let Some(l) = limit {
            b["rate_limit_per_minute"] = json!(l);
        }
        self.admin_create("/admin/v1/api-tokens", b).await["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// The administrator's view of any token: `{"active", "state", ...}`.
    pub async fn introspect(&self, token: &str) -> Value {
        let a = self
            .admin(
                Method::POST,
                "/admin/v1/introspect",
                Some(json!({"token": token})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        a.json()
    }

    pub async fn is_active(&self, token: &str) -> bool {
        self.introspect(token).await["active"] == json!(true)
    }

    /// The state of a session by id: "active" | "revoked" | "expired".
    pub async fn session_state(&self, id: &str) -> String {
        let a = self
            .admin(Method::GET, &format!("/admin/v1/sessions/{id}"), None)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        a.json()["state"].as_str().expect("state").to_owned()
    }
}

/// A string field of a JSON value.
pub fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{field}` in {v}"))
}

/// A Connect client JWT as the published SDKs sign it (header `{}`), for `body`.
pub fn client_jwt(
    private_pem: &str,
    iss: &str,
    aud: &str,
    body: &[u8],
    now_s: i64,
    lifetime: i64,
    jti: &str,
) -> String {
    use base64::Engine;
    use sha2::Digest;
    let claims = json!({
        "iss": iss, "aud": aud, "iat": now_s, "exp": now_s + lifetime, "jti": jti,
        "body_sha256": base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body)),
    });
    sessiond::domain::jwt::sign_client_jwt(private_pem, &claims).expect("sign")
}

pub fn now_s() -> i64 {
    sessiond::domain::SystemClock.now() / 1000
}

pub fn unique_jti() -> String {
    sessiond::model::hex_encode(&sessiond::domain::secrets::random::<16>())
}
