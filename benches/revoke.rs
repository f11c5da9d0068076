//! Revocation benches (criterion): the domain API (`Sessiond`) over a real sled store in a
//! temporary directory, built only through the public API. No HTTP: these are engine
//! figures, to be compared with the sled rows of `peer-baselines.md`, not with its
//! PostgreSQL or Redis rows (which include a client and a loopback round trip).
//!
//! Groups:
//! - `ops` (`Durability::None`): issue a login session, refresh with rotation, check an
//!   access token (Connect's introspect) of a live and of a revoked session.
//! - `revoke_all` (`Durability::None`): one revoke-all per shape, with k sessions in the
//!   revoked pair, k in {1, 10, 100, 1000, 10,000}.
//! - `durability`: issue, refresh and a k = 10 revoke-all on two fresh stores, one with
//!   `Durability::None` and one with `Durability::Fsync`, side by side. One caller at a time:
//!   every fsync op pays its own group commit (`db.flush()` + `fdatasync`); concurrent
//!   callers would share flushes. An fsync probe runs before and after this group because
//!   this machine's fsync rate is bimodal (see `peer-baselines.md`, "Noise").
//! - `sweep` (`Durability::None`, tombstone retention 0): one whole cycle of the expiry
//!   sweeper over the store of N live sessions with nothing due (`idle_cycle`: what a cycle
//!   costs in the background, throughput per session read), and one that also removes the
//!   1,000 sessions of an account revoked just before (`remove_1000`); the difference is
//!   the removal.
//!
//! Every store also holds N sessions of other accounts (10 per account, every kind, two
//! applications): N = 10,000 by default, 1,000,000 with `SESSIOND_BENCH_FULL=1` (in `ops`
//! and `revoke_all`; `durability` keeps N = 10,000 so that its two stores load in seconds
//! and stay comparable).
//!
//! What a repeated revoke measures. Each pair is revoked once, untimed, and every one of
//! its k sessions must be dead after it (the current one alive for Rocket.Chat), with the
//! exact `revokedCount` for Connect; the timed iterations then revoke the same pair again.
//! For watermarks that is a fair repetition: the write is the same O(1) transaction (one to
//! three markers, overwritten with a new sequence number) whether or not anything is still
//! alive, and Rownd, Rocket.Chat and Okta read none of the pair's sessions (Rocket.Chat
//! only the caller's), so their cost must stay flat from k = 1 to k = 10,000. Connect is the exception, by contract: its
//! `revokedCount` is an exact count, read from every session of the pair under the
//! account's lock, so its cost grows with k.
//!
//! Smoke form for CI: `cargo bench --bench revoke -- --test` (each bench once) or
//! `-- --quick`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sessiond::domain::{
    Config, Counted, Issued, NewAccount, NewApp, NewSession, Refreshed, Revoked, SessionState,
    Sessiond, SystemClock, TokenCheck,
};
use sessiond::model::{
    AccountId, AppKey, Credential, DeviceInfo, SessionId, SessionKind, TokenKind,
};
use sessiond::store::{Durability, Store, StoreOptions};
use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// `SESSIOND_BENCH_FULL=1`: the 1,000,000-session store.
fn full() -> bool {
    std::env::var("SESSIOND_BENCH_FULL").is_ok_and(|v| v == "1")
}

/// Sessions of other accounts in the `ops` and `revoke_all` store.
fn background() -> usize {
    if full() { 1_000_000 } else { 10_000 }
}

/// Sessions of other accounts in each `durability` store.
const DURABILITY_BACKGROUND: usize = 10_000;

/// Sessions in the revoked pair.
fn ks() -> Vec<usize> {
    vec![1, 10, 100, 1000, 10_000]
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A service over a fresh store with two applications, P and Q. Field order matters: the
/// service (and its sled handle) drops before the directory is removed.
struct Env {
    s: Sessiond,
    p: AppKey,
    q: AppKey,
    _dir: tempfile::TempDir,
}

async fn issue(s: &Sessiond, account: AccountId, app: Option<AppKey>, kind: SessionKind) -> Issued {
    s.issue(NewSession {
        account,
        app,
        kind,
        device: DeviceInfo {
            label: Some("bench".into()),
            ip: Some("127.0.0.1".into()),
            user_agent: Some("criterion".into()),
        },
        method: "password".into(),
    })
    .await
    .expect("issue")
}

async fn account(s: &Sessiond, login: &str) -> AccountId {
    s.create_account(NewAccount {
        login: login.into(),
        ..NewAccount::default()
    })
    .await
    .expect("create account")
    .id
}

impl Env {
    async fn open(durability: Durability, background: usize) -> Env {
        Env::open_with(durability, background, Config::default()).await
    }

    async fn open_with(durability: Durability, background: usize, config: Config) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("sessiond-bench-")
            .tempdir()
            .expect("tempdir");
        let opts = StoreOptions {
            durability,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), &opts).expect("open store");
        let s = Sessiond::new(store, config, Arc::new(SystemClock)).expect("sessiond");
        let app = |id: &str| NewApp {
            id: Some(id.into()),
            name: id.into(),
            ..NewApp::default()
        };
        let p = s.create_app(app("bench-p")).await.expect("app P").app.key;
        let q = s.create_app(app("bench-q")).await.expect("app Q").app.key;
        let env = Env { s, p, q, _dir: dir };
        let start = Instant::now();
        env.load_background(background).await;
        eprintln!(
            "[revoke bench] {durability:?} store: {background} background sessions loaded in {:.1?}",
            start.elapsed()
        );
        env
    }

    /// `n` sessions of other accounts, 10 per account and every kind in both applications.
    /// Accounts load 64 at a time, so that with `Durability::Fsync` the group commit shares
    /// the flushes (one account's issues are serialised by its lock anyway).
    async fn load_background(&self, n: usize) {
        const PER_ACCOUNT: usize = 10;
        const IN_FLIGHT: usize = 64;
        let accounts = n.div_ceil(PER_ACCOUNT);
        let mut tasks = JoinSet::new();
        let mut next = 0;
        while next < accounts || !tasks.is_empty() {
            while next < accounts && tasks.len() < IN_FLIGHT {
                let (s, p, q) = (self.s.clone(), self.p, self.q);
                let sessions = PER_ACCOUNT.min(n - next * PER_ACCOUNT);
                let login = format!("bg-{next}");
                tasks.spawn(async move {
                    let a = account(&s, &login).await;
                    for i in 0..sessions {
                        let (app, kind) = match i % 5 {
                            0 => (Some(p), SessionKind::Login),
                            1 => (Some(p), SessionKind::Oauth),
                            2 => (Some(q), SessionKind::Oauth),
                            3 => (None, SessionKind::Idp),
                            _ => (Some(q), SessionKind::Pat),
                        };
                        issue(&s, a, app, kind).await;
                    }
                });
                next += 1;
            }
            if let Some(done) = tasks.join_next().await {
                done.expect("load task");
            }
        }
    }
}

/// The revoke-all shapes measured, each with the pair layout it kills entirely.
#[derive(Clone, Copy)]
enum Shape {
    /// Connect `revoke-all`: k login sessions in P; `refresh_tokens` is `revokedCount`.
    Connect,
    /// Rownd `signout` (all): k login sessions in P.
    Rownd,
    /// Rocket.Chat `logoutOtherClients`: k login sessions in P, the first one current.
    RocketChat,
    /// Okta `DELETE /users/{id}/sessions?oauthTokens=true`: k sessions of the account,
    /// alternating OAuth in P, OAuth in Q and identity-provider sessions.
    Okta,
}

/// A pair to revoke.
struct Target {
    account: AccountId,
    current: Option<SessionId>,
    sessions: Vec<SessionId>,
}

impl Shape {
    const ALL: [Shape; 4] = [Shape::Connect, Shape::Rownd, Shape::RocketChat, Shape::Okta];

    fn name(self) -> &'static str {
        match self {
            Shape::Connect => "connect_revoke_all",
            Shape::Rownd => "rownd_sign_out_all",
            Shape::RocketChat => "rocketchat_logout_others",
            Shape::Okta => "okta_revoke_user_sessions",
        }
    }

    /// A fresh account with k sessions for this shape to kill.
    async fn setup(self, env: &Env, k: usize) -> Target {
        let account = account(&env.s, &format!("{}-{k}", self.name())).await;
        let mut first = None;
        let mut sessions = Vec::with_capacity(k);
        for i in 0..k {
            let (app, kind) = match (self, i % 3) {
                (Shape::Okta, 0) => (Some(env.p), SessionKind::Oauth),
                (Shape::Okta, 1) => (Some(env.q), SessionKind::Oauth),
                (Shape::Okta, _) => (None, SessionKind::Idp),
                _ => (Some(env.p), SessionKind::Login),
            };
            let issued = issue(&env.s, account, app, kind).await;
            first.get_or_insert(issued.session.id);
            sessions.push(issued.session.id);
        }
        Target {
            account,
            sessions,
            current: match self {
                Shape::RocketChat => first,
                _ => None,
            },
        }
    }

    async fn revoke(self, env: &Env, t: &Target) -> Revoked {
        let s = &env.s;
        match self {
            Shape::Connect => s
                .connect_revoke_all(env.p, &t.account, Credential::Admin)
                .await
                .map(|c| Revoked {
                    counted: Some(c),
                    devices_forgotten: 0,
                }),
            Shape::Rownd => {
                s.rownd_sign_out_all(env.p, &t.account, Credential::Admin)
                    .await
            }
            Shape::RocketChat => {
                s.rocketchat_logout_others(env.p, &t.account, t.current, Credential::Admin)
                    .await
            }
            Shape::Okta => {
                s.okta_revoke_user_sessions(&t.account, true, false, Credential::Admin)
                    .await
            }
        }
        .expect("revoke-all")
    }

    /// Sets a pair up, revokes it once checking that exactly its sessions died (and, for
    /// Connect, the exact `revokedCount`), then once more checking that nothing is left:
    /// the timed iterations repeat that second call.
    async fn prepared(self, env: &Env, k: usize) -> Target {
        let t = self.setup(env, k).await;
        let first = self.revoke(env, &t).await;
        for id in &t.sessions {
            let (_, state) = env.s.session(id).expect("read").expect("session exists");
            let survives = t.current == Some(*id);
            assert_eq!(
                matches!(state, SessionState::Active),
                survives,
                "{} k={k}: {state:?}",
                self.name()
            );
        }
        let counted = |sessions, refresh_tokens| match self {
            Shape::Connect => Some(Counted {
                sessions,
                refresh_tokens,
            }),
            _ => None,
        };
        assert_eq!(first.counted, counted(k, k), "{} k={k}", self.name());
        let again = Revoked {
            counted: counted(0, 0),
            devices_forgotten: 0,
        };
        assert_eq!(self.revoke(env, &t).await, again);
        t
    }
}

/// One login session in P for a fresh account: (its access token, its refresh token).
async fn login(env: &Env, login_name: &str) -> (AccountId, Issued) {
    let a = account(&env.s, login_name).await;
    let issued = issue(&env.s, a, Some(env.p), SessionKind::Login).await;
    (a, issued)
}

fn bench_issue(b: &mut criterion::Bencher<'_>, rt: &Runtime, env: &Env, account: AccountId) {
    b.to_async(rt)
        .iter(|| issue(&env.s, account, Some(env.p), SessionKind::Login));
}

/// Strict rotation: each iteration consumes the current refresh token and keeps the new one
/// (in `token`, which outlives the many calls criterion makes of a routine).
fn bench_refresh(b: &mut criterion::Bencher<'_>, rt: &Runtime, env: &Env, token: &mut String) {
    b.iter(|| {
        match rt
            .block_on(env.s.refresh(Some(env.p), token, "bench"))
            .expect("refresh")
        {
            Refreshed::Rotated(r) => *token = r.refresh_token,
            other => panic!("refresh did not rotate: {other:?}"),
        }
    });
}

fn ops_and_revoke_all(c: &mut Criterion) {
    let rt = runtime();
    let env = rt.block_on(Env::open(Durability::None, background()));

    let mut g = c.benchmark_group("ops");
    let issuer = rt.block_on(account(&env.s, "issuer"));
    g.bench_function("issue_login", |b| bench_issue(b, &rt, &env, issuer));

    let (_, refresher) = rt.block_on(login(&env, "refresher"));
    let mut token = refresher
        .refresh_token
        .expect("login sessions have a refresh token");
    g.bench_function("refresh_rotate", |b| {
        bench_refresh(b, &rt, &env, &mut token)
    });

    let (_, live) = rt.block_on(login(&env, "introspected-live"));
    let live = live.access_token.expect("access token");
    let (dead_account, dead) = rt.block_on(login(&env, "introspected-revoked"));
    let dead = dead.access_token.expect("access token");
    rt.block_on(
        env.s
            .connect_revoke_all(env.p, &dead_account, Credential::Admin),
    )
    .expect("revoke");
    for (name, token, want_active) in [("active", &live, true), ("revoked", &dead, false)] {
        let check = || {
            env.s
                .check_token(black_box(token), Some(env.p), &[TokenKind::Access])
                .expect("check_token")
        };
        match check() {
            TokenCheck::Active(_) => assert!(want_active, "{name}"),
            TokenCheck::Revoked(..) => assert!(!want_active, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        g.bench_function(BenchmarkId::new("check_token", name), |b| b.iter(check));
    }
    g.finish();

    let mut g = c.benchmark_group("revoke_all");
    for shape in Shape::ALL {
        for k in ks() {
            let target = rt.block_on(shape.prepared(&env, k));
            g.sample_size(if k >= 10_000 { 10 } else { 100 });
            g.bench_with_input(BenchmarkId::new(shape.name(), k), &target, |b, t| {
                b.to_async(&rt).iter(|| shape.revoke(&env, t))
            });
        }
    }
    g.finish();
}

/// fdatasync rate of 4 KiB writes in `dir`: the physical limit for one-at-a-time durable ops.
fn fsync_probe(dir: &std::path::Path, when: &str) {
    const ROUNDS: u32 = 100;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).expect("probe file");
    let page = [0x5a_u8; 4096];
    let start = Instant::now();
    for _ in 0..ROUNDS {
        f.write_all(&page).expect("probe write");
        f.sync_data().expect("probe fdatasync");
    }
    let per = start.elapsed() / ROUNDS;
    eprintln!(
        "[revoke bench] fsync probe {when}: {:.0} fdatasync/s ({per:.1?} each)",
        1.0 / per.as_secs_f64()
    );
    drop(f);
    let _ = std::fs::remove_file(path);
}

fn durability(c: &mut Criterion) {
    let rt = runtime();
    let envs: Vec<(&str, Env)> = [("none", Durability::None), ("fsync", Durability::Fsync)]
        .into_iter()
        .map(|(name, d)| (name, rt.block_on(Env::open(d, DURABILITY_BACKGROUND))))
        .collect();
    let probe_dir = envs[1].1._dir.path().to_owned();
    fsync_probe(&probe_dir, "before");

    let mut g = c.benchmark_group("durability");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, env) in &envs {
        let issuer = rt.block_on(account(&env.s, "issuer"));
        g.bench_function(BenchmarkId::new("issue_login", name), |b| {
            bench_issue(b, &rt, env, issuer)
        });
    }
    for (name, env) in &envs {
        let (_, issued) = rt.block_on(login(env, "refresher"));
        let mut token = issued.refresh_token.expect("refresh token");
        g.bench_function(BenchmarkId::new("refresh_rotate", name), |b| {
            bench_refresh(b, &rt, env, &mut token)
        });
    }
    for (name, env) in &envs {
        let target = rt.block_on(Shape::Connect.prepared(env, 10));
        g.bench_function(BenchmarkId::new("connect_revoke_all_k10", name), |b| {
            b.to_async(&rt).iter(|| Shape::Connect.revoke(env, &target))
        });
    }
    g.finish();
    fsync_probe(&probe_dir, "after");
}

fn sweep(c: &mut Criterion) {
    let rt = runtime();
    let n = background();
    let config = Config {
        tombstone_retention_ms: 0,
        ..Config::default()
    };
    let env = rt.block_on(Env::open_with(Durability::None, n, config));
    let mut g = c.benchmark_group("sweep");
    g.sample_size(10);
    g.throughput(criterion::Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::new("idle_cycle", n), |b| {
        b.iter(|| {
            let cycle = env.s.sweep_now().expect("sweep");
            assert_eq!(cycle.swept.sessions, 0, "nothing is due");
        })
    });
    const REVOKED: usize = 1000;
    let mut round = 0;
    g.bench_function(BenchmarkId::new("remove_1000", n), |b| {
        b.iter_batched(
            || {
                round += 1;
                rt.block_on(async {
                    let a = account(&env.s, &format!("swept-{round}")).await;
                    for _ in 0..REVOKED {
                        issue(&env.s, a, Some(env.p), SessionKind::Oauth).await;
                    }
                    env.s
                        .rownd_sign_out_all(env.p, &a, Credential::Admin)
                        .await
                        .expect("revoke");
                });
                // Counted first: the sweeper keeps what a pending count is still to read.
                env.s.count_pending_audit().expect("count");
            },
            |()| {
                let cycle = env.s.sweep_now().expect("sweep");
                assert_eq!(cycle.swept.sessions, REVOKED as u64);
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, ops_and_revoke_all, durability, sweep);
criterion_main!(benches);
