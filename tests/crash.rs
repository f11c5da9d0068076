//! Guarantee 1 of ARCHITECTURE.md ("acknowledged means durable") and guarantee 3 ("the store
//! is always consistent"), tested the way storage engines test theirs: a crash loop.
//!
//! The real binary serves a store in a temporary directory while workers drive concurrent
//! traffic (sessions issued through the admin API, Flashback refreshes, Flashback and
//! Rocket.Chat revoke-alls). It is killed with SIGKILL at a random moment; `sessiond check`
//! must then find the store consistent; the binary restarts on the same directory, and every
//! session is checked against a ledger of what was acknowledged before the kill:
//!
//! - a session whose creation was acknowledged before an acknowledged revoke-all of its
//!   scope was sent is revoked, and every token it ever had is dead;
//! - a session whose creation was acknowledged and that no revoke-all could have reached
//!   (none sent after it started, acknowledged or not) is alive;
//! - no refresh sent after a revoke-all was acknowledged succeeded for a session it killed.
//!
//! Every fourth stop is a SIGTERM instead, mid-traffic: the server must drain, flush and exit
//! 0, and the same checks hold (the graceful-shutdown test).
//!
//! `cargo test --test crash` runs a few stops; `SESSIOND_SLOW_TESTS=1` runs 80 (60 of them SIGKILLs). The seed is
//! printed; `SESSIOND_CRASH_SEED=N` replays one.

mod common;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ADMIN: &str = "crash-admin-token";
const APP: &str = "crash";
/// Accounts that revoke-alls are sent for; one more, the bystander, only gets sessions:
/// every one of them must be alive after every restart.
const ACCOUNTS: usize = 4;
const WORKERS: usize = 8;

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The real binary, serving `dir` on a free loopback port.
struct Sessiond {
    child: Option<Child>,
    base: String,
}

/// A failing assertion must not leave the server running (it would also hold the test's
/// output pipe open).
impl Drop for Sessiond {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Sessiond {
    fn start(dir: &Path) -> Sessiond {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-token", ADMIN])
            .arg("--data")
            .arg(dir)
            .env("SESSIOND_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sessiond");
        let base = common::bin::listening_base(&mut child);
        Sessiond {
            child: Some(child),
            base,
        }
    }

    fn kill(mut self) {
        let mut c = self.child.take().expect("running");
        c.kill().expect("SIGKILL");
        c.wait().expect("reap");
    }

    /// SIGTERM: it must drain, flush and exit 0 within the drain timeout (10 s) and a margin.
    fn terminate(mut self) {
        let mut c = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM");
        for _ in 0..300 {
            if let Some(status) = c.try_wait().expect("wait") {
                assert!(status.success(), "sessiond exited with {status} on SIGTERM");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        panic!("sessiond did not stop within 15 s of SIGTERM");
    }
}

/// `sessiond check` on a stopped store.
fn check_store(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .arg("check")
        .arg("--data")
        .arg(dir)
        .output()
        .expect("run sessiond check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("ok: "),
        "sessiond check after a kill: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Debug, Clone)]
struct Sess {
    id: String,
    account: usize,
    /// Ticks before the create request was sent and after its 201 arrived.
    issued: (u64, u64),
    access: String,
    refresh: String,
    login_token: String,
    /// Every token the session was ever given.
    tokens: Vec<String>,
    /// A request on it is in flight (never two at once: a concurrent refresh with the same
    /// token would be reuse, which kills the family by design).
    busy: bool,
    /// A refresh was in flight at a kill: which refresh token is current is unknown until
    /// the restart presents the old one again (`retry_unanswered_refreshes`).
    frozen: bool,
    /// That retry found the old token consumed: presenting it was reuse, which revoked the
    /// session (its family) by design.
    reused: bool,
    /// Its death was checked token by token already.
    tokens_checked: bool,
}

impl Sess {
    /// Takes the tokens of a refresh's answer (Flashback's `{accessToken, refreshToken}`)
    /// as the session's current ones.
    fn rotated(&mut self, body: &Value) {
        let text = |k: &str| body[k].as_str().expect(k).to_owned();
        self.access = text("accessToken");
        self.refresh = text("refreshToken");
        self.tokens.push(self.access.clone());
        self.tokens.push(self.refresh.clone());
    }
}

#[derive(Debug, Clone)]
struct Revoke {
    account: usize,
    start: u64,
    /// `None`: no answer (in flight at the kill, or a transport error): it may have applied.
    end: Option<u64>,
    /// Rocket.Chat keeps the caller's session.
    except: Option<String>,
    shape: &'static str,
    /// Answered 401 (its caller was revoked concurrently): nothing applied.
    refused: bool,
    /// Unanswered at a kill: it applied before that tick or never.
    killed_at: Option<u64>,
}

impl Revoke {
    fn kills(&self, s: &Sess) -> bool {
        !self.refused
            && self.account == s.account
            && self.except.as_deref() != Some(s.id.as_str())
            && self.end.is_some()
            && s.issued.1 < self.start
    }
    fn may_kill(&self, s: &Sess) -> bool {
        !self.refused
            && self.account == s.account
            && self.except.as_deref() != Some(s.id.as_str())
            && self.end.or(self.killed_at).unwrap_or(u64::MAX) > s.issued.0
    }
}

#[derive(Default)]
struct Ledger {
    sessions: Vec<Sess>,
    revokes: Vec<Revoke>,
    violations: Vec<String>,
    refreshes_ok: u64,
    /// Unanswered refreshes retried after a restart with the old token: rotated then
    /// (the unanswered one had not consumed it), or refused as reuse (it had).
    retried_rotated: u64,
    retried_reuse: u64,
}

impl Ledger {
    fn maybe_dead(&self, s: &Sess) -> bool {
        s.reused || self.revokes.iter().any(|r| r.may_kill(s))
    }
    /// A random idle session believed alive, marked busy.
    fn take_live(
        &mut self,
        rng: &mut Rng,
        account: Option<usize>,
        refreshable: bool,
    ) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| {
                let s = &self.sessions[i];
                !s.busy
                    && (!refreshable || !s.frozen)
                    && account.is_none_or(|a| s.account == a)
                    && !self.maybe_dead(s)
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = candidates[rng.below(candidates.len() as u64) as usize];
        self.sessions[i].busy = true;
        Some(i)
    }
}

struct World {
    http: Client,
    base: String,
    accounts: Vec<String>,
    tick: AtomicU64,
    ledger: Mutex<Ledger>,
    stop: AtomicBool,
}

impl World {
    fn tick(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::SeqCst)
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

async fn admin(
    http: &Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http
        .request(method, format!("{base}/admin/v1{path}"))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("admin request");
    let status = resp.status();
    let bytes = resp.bytes().await.expect("admin body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The admin API's view of one session (`GET /admin/v1/sessions/{id}`).
async fn session_of(http: &Client, base: &str, id: &str) -> (StatusCode, Value) {
    admin(
        http,
        base,
        reqwest::Method::GET,
        &format!("/sessions/{id}"),
        None,
    )
    .await
}

/// One worker: random operations until told to stop (or the server dies under it).
async fn worker(w: Arc<World>, seed: u64) {
    let mut rng = Rng(seed | 1);
    while !w.stop.load(Ordering::SeqCst) {
        match rng.below(10) {
            0..=4 => issue(&w, &mut rng).await,
            5..=7 => refresh(&w, &mut rng).await,
            8 => flashback_revoke(&w, &mut rng).await,
            _ => rocketchat_revoke(&w, &mut rng).await,
        }
    }
}

async fn issue(w: &World, rng: &mut Rng) {
    let account = rng.below(ACCOUNTS as u64 + 1) as usize;
    let start = w.tick();
    let sent = w
        .http
        .post(w.url("/admin/v1/sessions"))
        .bearer_auth(ADMIN)
        .json(&json!({"account": w.accounts[account], "application": APP, "kind": "login"}))
        .send()
        .await;
    let Ok(resp) = sent else { return };
    if resp.status() != StatusCode::CREATED {
        return;
    }
    let Ok(body) = resp.json::<Value>().await else {
        return;
    };
    let end = w.tick();
    let text = |k: &str| body[k].as_str().expect(k).to_owned();
    let s = Sess {
        id: text("id"),
        account,
        issued: (start, end),
        access: text("access_token"),
        refresh: text("refresh_token"),
        login_token: text("login_token"),
        tokens: vec![
            text("access_token"),
            text("refresh_token"),
            text("login_token"),
        ],
        busy: false,
        frozen: false,
        reused: false,
        tokens_checked: false,
    };
    w.ledger.lock().expect("ledger").sessions.push(s);
}

async fn refresh(w: &World, rng: &mut Rng) {
    let (i, token) = {
        let mut l = w.ledger.lock().expect("ledger");
        let Some(i) = l.take_live(rng, None, true) else {
            return;
        };
        (i, l.sessions[i].refresh.clone())
    };
    let start = w.tick();
    let sent = w
        .http
        .post(w.url(&format!("/apps/{APP}/user/refresh")))
        .json(&json!({"refreshToken": token}))
        .send()
        .await;
    let answer = match sent {
        Ok(r) => {
            let status = r.status();
            r.json::<Value>().await.ok().map(|b| (status, b))
        }
        Err(_) => None,
    };
    let mut l = w.ledger.lock().expect("ledger");
    match answer {
        Some((StatusCode::OK, body)) => {
            l.refreshes_ok += 1;
            let s = l.sessions[i].clone();
            // Linearizability: a refresh sent after a revoke-all that killed this session
            // was acknowledged must not succeed.
            if let Some(r) = l
                .revokes
                .iter()
                .find(|r| r.kills(&s) && r.end.is_some_and(|e| e < start))
            {
                let msg = format!(
                    "refresh of {} succeeded after {:?} was acknowledged",
                    s.id, r
                );
                l.violations.push(msg);
            }
            let s = &mut l.sessions[i];
            s.rotated(&body);
            s.busy = false;
        }
        // Refused: the session was revoked under us (checked at the next restart).
        Some(_) => l.sessions[i].busy = false,
        // No answer: the rotation may have happened.
        None => {
            l.sessions[i].frozen = true;
            l.sessions[i].busy = false;
        }
    }
}

/// Records a revoke-all about to be sent; returns its index.
fn begin_revoke(w: &World, account: usize, except: Option<String>, shape: &'static str) -> usize {
    let mut l = w.ledger.lock().expect("ledger");
    l.revokes.push(Revoke {
        account,
        start: w.tick(),
        end: None,
        except,
        shape,
        refused: false,
        killed_at: None,
    });
    l.revokes.len() - 1
}

fn end_revoke(w: &World, caller: usize, r: usize, status: Option<StatusCode>) {
    let mut l = w.ledger.lock().expect("ledger");
    l.sessions[caller].busy = false;
    match status {
        Some(StatusCode::OK) => l.revokes[r].end = Some(w.tick()),
        // A definite refusal (the caller was revoked concurrently): nothing applied.
        Some(StatusCode::UNAUTHORIZED) => l.revokes[r].refused = true,
        Some(other) => l.violations.push(format!("revoke-all answered {other}")),
        None => {}
    }
}

async fn flashback_revoke(w: &World, rng: &mut Rng) {
    let account = rng.below(ACCOUNTS as u64) as usize;
    let (caller, access) = {
        let mut l = w.ledger.lock().expect("ledger");
        let Some(i) = l.take_live(rng, Some(account), false) else {
            return;
        };
        (i, l.sessions[i].access.clone())
    };
    let r = begin_revoke(w, account, None, "flashback");
    let status = w
        .http
        .post(w.url(&format!("/apps/{APP}/sessions/revoke-all")))
        .bearer_auth(access)
        .send()
        .await
        .ok()
        .map(|r| r.status());
    end_revoke(w, caller, r, status);
}

async fn rocketchat_revoke(w: &World, rng: &mut Rng) {
    let account = rng.below(ACCOUNTS as u64) as usize;
    let (caller, token, id) = {
        let mut l = w.ledger.lock().expect("ledger");
        let Some(i) = l.take_live(rng, Some(account), false) else {
            return;
        };
        let s = &l.sessions[i];
        (i, s.login_token.clone(), s.id.clone())
    };
    let r = begin_revoke(w, account, Some(id), "rocketchat");
    let status = w
        .http
        .post(w.url(&format!("/apps/{APP}/api/v1/users.logoutOtherClients")))
        .header("X-Auth-Token", token)
        .header("X-User-Id", &w.accounts[account])
        .send()
        .await
        .ok()
        .map(|r| r.status());
    end_revoke(w, caller, r, status);
}

/// Checks every session of the ledger against the restarted server, in parallel. Returns
/// how many sessions were checked dead and alive.
async fn verify(http: &Client, base: &str, ledger: &mut Ledger) -> (u64, u64) {
    // (index, session, must die, the revocations that killed it)
    let mut work: Vec<(usize, Sess, bool, String)> = Vec::new();
    for (i, s) in ledger.sessions.iter().enumerate() {
        let by: Vec<&Revoke> = ledger.revokes.iter().filter(|r| r.kills(s)).collect();
        if !by.is_empty() {
            work.push((i, s.clone(), true, format!("{by:?}")));
        } else if s.reused {
            work.push((i, s.clone(), true, "refresh-token reuse".into()));
        } else if !ledger.maybe_dead(s) {
            work.push((i, s.clone(), false, String::new()));
        }
    }
    let dead = work.iter().filter(|w| w.2).count() as u64;
    let alive = work.len() as u64 - dead;
    let chunk = work.len().div_ceil(WORKERS).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for part in work.chunks(chunk) {
        let part = part.to_vec();
        let (http, base) = (http.clone(), base.to_owned());
        tasks.spawn(async move {
            let mut tokens_checked = Vec::new();
            for (i, s, must_die, by) in part {
                if verify_one(&http, &base, &s, must_die, &by).await {
                    tokens_checked.push(i);
                }
            }
            tokens_checked
        });
    }
    while let Some(done) = tasks.join_next().await {
        for i in done.expect("a session failed its check") {
            ledger.sessions[i].tokens_checked = true;
        }
    }
    (dead, alive)
}

/// A refresh unanswered at a stop left its session frozen: the client never learnt whether
/// its old refresh token was consumed. After the restart it presents that token again, as
/// a real client would. Either the rotation had not consumed it (it rotates now, and the
/// new tokens are the session's) or it had (presenting it is reuse: 401, and the session is
/// revoked from then on). Nothing else is allowed: no error, and no consumed token without
/// the session's family dying with it.
async fn retry_unanswered_refreshes(http: &Client, base: &str, ledger: &mut Ledger) {
    for i in 0..ledger.sessions.len() {
        let s = ledger.sessions[i].clone();
        if !s.frozen || ledger.maybe_dead(&s) {
            continue;
        }
        let r = http
            .post(format!("{base}/apps/{APP}/user/refresh"))
            .json(&json!({"refreshToken": s.refresh}))
            .send()
            .await
            .expect("refresh retry");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let s = &mut ledger.sessions[i];
        match status {
            StatusCode::OK => {
                s.rotated(&body);
                s.frozen = false;
                ledger.retried_rotated += 1;
            }
            StatusCode::UNAUTHORIZED => {
                let (_, state) = session_of(http, base, &s.id).await;
                assert_eq!(
                    state["state"], "revoked",
                    "session {}: its old refresh token was refused after a restart, but the \
                     session lives on: {body} {state}",
                    s.id
                );
                s.reused = true;
                ledger.retried_reuse += 1;
            }
            other => panic!("retry of an unanswered refresh of {}: {other} {body}", s.id),
        }
    }
}

/// Checks one session; returns whether its tokens were checked one by one (once per
/// session: a revoked session's tokens are checked after the first restart that follows).
async fn verify_one(http: &Client, base: &str, s: &Sess, must_die: bool, by: &str) -> bool {
    let (status, body) = session_of(http, base, &s.id).await;
    assert_eq!(status, StatusCode::OK, "session {} lost: {body}", s.id);
    let state = body["state"].as_str().unwrap_or_default();
    if !must_die {
        assert_eq!(
            state, "active",
            "session {} was lost or revoked by nothing acknowledged: {body}",
            s.id
        );
        return false;
    }
    assert_eq!(
        state, "revoked",
        "session {} came back after a crash; acknowledged revocations: {by}",
        s.id
    );
    if s.tokens_checked {
        return false;
    }
    for t in &s.tokens {
        let (_, b) = admin(
            http,
            base,
            reqwest::Method::POST,
            "/introspect",
            Some(json!({"token": t})),
        )
        .await;
        assert_eq!(
            b["active"],
            json!(false),
            "a token of revoked session {} is alive: {b}",
            s.id
        );
    }
    let r = http
        .post(format!("{base}/apps/{APP}/user/refresh"))
        .json(&json!({"refreshToken": s.refresh}))
        .send()
        .await
        .expect("refresh");
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "revoked session {} refreshed",
        s.id
    );
    true
}

async fn crash_loop(kills: usize) {
    let seed = std::env::var("SESSIOND_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        });
    eprintln!("crash loop: {kills} stops, SESSIOND_CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let http = Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("client");

    let mut server = Sessiond::start(dir.path());
    let (status, _) = admin(
        &http,
        &server.base,
        reqwest::Method::POST,
        "/applications",
        Some(json!({"id": APP, "name": "Crash", "generate_connect_key": false})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut accounts = Vec::new();
    for n in 0..=ACCOUNTS {
        let (status, body) = admin(
            &http,
            &server.base,
            reqwest::Method::POST,
            "/accounts",
            Some(json!({"login": format!("user{n}")})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        accounts.push(body["id"].as_str().expect("id").to_owned());
    }

    let mut ledger = Ledger::default();
    let mut tick = 0;
    let (mut checked_dead, mut checked_alive) = (0u64, 0u64);
    let mut terms = 0;
    for round in 0..kills {
        let world = Arc::new(World {
            http: http.clone(),
            base: server.base.clone(),
            accounts: accounts.clone(),
            tick: AtomicU64::new(tick),
            ledger: Mutex::new(std::mem::take(&mut ledger)),
            stop: AtomicBool::new(false),
        });
        let tasks: Vec<_> = (0..WORKERS)
            .map(|_| tokio::spawn(worker(world.clone(), rng.next())))
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + rng.below(400))).await;
        // Every fourth stop is graceful (SIGTERM mid-traffic): the same ledger must hold,
        // and the process must exit 0.
        if round % 4 == 3 {
            tokio::task::block_in_place(|| server.terminate());
            terms += 1;
        } else {
            server.kill();
        }
        world.stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.expect("worker");
        }
        let world = Arc::into_inner(world).expect("workers are done");
        tick = world.tick.load(Ordering::SeqCst);
        ledger = world.ledger.into_inner().expect("ledger");
        // Whatever was in flight is unanswered now: it applied before the kill or never.
        for s in &mut ledger.sessions {
            assert!(!s.busy, "a worker left a session busy");
        }
        for r in ledger.revokes.iter_mut().filter(|r| r.end.is_none()) {
            r.killed_at.get_or_insert(tick);
        }
        assert!(
            ledger.violations.is_empty(),
            "round {round}: {:#?}",
            ledger.violations
        );

        check_store(dir.path());
        server = Sessiond::start(dir.path());
        let (d, a) = verify(&http, &server.base, &mut ledger).await;
        checked_dead += d;
        checked_alive += a;
        retry_unanswered_refreshes(&http, &server.base, &mut ledger).await;
    }
    server.kill();
    check_store(dir.path());

    let acked = ledger.revokes.iter().filter(|r| r.end.is_some()).count();
    let by_shape = |shape| {
        ledger
            .revokes
            .iter()
            .filter(|r| r.end.is_some() && r.shape == shape)
            .count()
    };
    eprintln!(
        "crash loop: {} SIGKILLs and {terms} SIGTERMs survived; {} sessions issued, {} refreshes and {acked} revoke-alls \
         acknowledged ({} Flashback, {} Rocket.Chat); {checked_dead} dead and {checked_alive} alive \
         session checks after restarts; {} unanswered refreshes retried with the old token after a \
         restart ({} rotated, {} refused as reuse)",
        kills - terms,
        ledger.sessions.len(),
        ledger.refreshes_ok,
        by_shape("flashback"),
        by_shape("rocketchat"),
        ledger.retried_rotated + ledger.retried_reuse,
        ledger.retried_rotated,
        ledger.retried_reuse,
    );
    // The loop must have exercised what it claims to check.
    assert!(
        acked > 0 && checked_dead > 0 && checked_alive > 0,
        "too little traffic to check anything"
    );
}

fn slow() -> bool {
    std::env::var("SESSIOND_SLOW_TESTS").is_ok_and(|v| v == "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_revocations_survive_sigkill() {
    crash_loop(if slow() { 80 } else { 4 }).await;
}
