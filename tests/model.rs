//! Guarantee 4 of ARCHITECTURE.md ("exactly the contract, nothing more"): a model-based
//! property test, in the manner of sled's own model tests. proptest generates random
//! sequences of operations — create application / account / session, refresh (with the
//! current token, a rotated-away one, another application's), each revoke-all shape, a
//! single-session revocation, remembered devices, time passing on a clock the test controls,
//! close-and-reopen of the store, a cycle of the expiry sweeper — and runs each against the
//! real service over a real sled store and against a plain in-memory model of who is alive
//! (and of what the sweeper may remove). After every step every session's state, every token
//! it was given, the (account, application) index, the counts a revoke-all reports, what a
//! sweep removed and `Store::check` must agree with the model.
//!
//! `cargo test --test model` runs a bounded number of cases; `SESSIOND_SLOW_TESTS=1` runs
//! many more and longer ones (1,000 cases of up to 300 steps). A failure it finds is shrunk
//! by proptest to a minimal sequence, which becomes a named test at the end of this file
//! beside the fix (none has been found so far; the seed file is off on purpose).

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use sessiond::domain::{
    Clock, Config, NewAccount, NewApp, NewSession, Refreshed, SessionState, Sessiond, TokenCheck,
};
use sessiond::model::*;
use sessiond::store::{Durability, Store, StoreError, StoreOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Time that moves only when the test says so.
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

const START: Millis = 1_800_000_000_000;
const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;

/// The steps the clock can take: each crosses a different expiry (access tokens 1 h,
/// identity-provider sessions 12 h, OAuth grants 30 d, app logins 90 d by default and 1 d
/// in the second application).
const ADVANCES: [Millis; 6] = [MINUTE, 59 * MINUTE, 2 * HOUR, 13 * HOUR, 31 * DAY, 91 * DAY];

#[derive(Debug, Clone, Copy)]
enum RefreshWith {
    /// The session's current refresh token.
    Current,
    /// A refresh token rotated away earlier (reuse: the family dies if it was alive).
    Consumed(usize),
    /// The current token, presented to another application.
    OtherApp,
}

#[derive(Debug, Clone)]
enum Op {
    CreateApp,
    CreateAccount,
    Issue {
        account: usize,
        app: usize,
        kind: u8,
    },
    Refresh {
        session: usize,
        with: RefreshWith,
    },
    Rownd {
        account: usize,
        app: usize,
    },
    Connect {
        account: usize,
        app: usize,
    },
    Flashback {
        account: usize,
        app: usize,
    },
    /// `current`: an index among the pair's login sessions, or `None` (a personal access
    /// token was presented).
    RocketChat {
        account: usize,
        app: usize,
        current: Option<usize>,
    },
    Okta {
        account: usize,
        oauth_tokens: bool,
        forget_devices: bool,
    },
    RevokeOne {
        session: usize,
    },
    AddDevice {
        account: usize,
    },
    Advance(usize),
    Reopen,
    /// A whole cycle of the expiry sweeper, now.
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    let ix = || 0usize..64;
    prop_oneof![
        1 => Just(Op::CreateApp),
        1 => Just(Op::CreateAccount),
        8 => (ix(), ix(), 0u8..4).prop_map(|(account, app, kind)| Op::Issue { account, app, kind }),
        5 => (ix(), prop_oneof![
                4 => Just(RefreshWith::Current),
                1 => ix().prop_map(RefreshWith::Consumed),
                1 => Just(RefreshWith::OtherApp),
            ]).prop_map(|(session, with)| Op::Refresh { session, with }),
        1 => (ix(), ix()).prop_map(|(account, app)| Op::Rownd { account, app }),
        1 => (ix(), ix()).prop_map(|(account, app)| Op::Connect { account, app }),
        1 => (ix(), ix()).prop_map(|(account, app)| Op::Flashback { account, app }),
        2 => (ix(), ix(), proptest::option::weighted(0.8, ix()))
            .prop_map(|(account, app, current)| Op::RocketChat { account, app, current }),
        1 => (ix(), any::<bool>(), any::<bool>())
            .prop_map(|(account, oauth_tokens, forget_devices)| Op::Okta { account, oauth_tokens, forget_devices }),
        1 => ix().prop_map(|session| Op::RevokeOne { session }),
        1 => ix().prop_map(|account| Op::AddDevice { account }),
        2 => (0..ADVANCES.len()).prop_map(Op::Advance),
        1 => Just(Op::Reopen),
        1 => Just(Op::Sweep),
    ]
}

// ---- the model --------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct MApp {
    key: AppKey,
    /// Rocket.Chat login expiration.
    login_days: u32,
}

/// The scope of a watermark: one application's, the identity provider's, or every
/// application's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MScope {
    App(usize),
    NoApp,
    AllApps,
}

/// How long the service under test keeps dead sessions and expired tokens. One of the
/// clock's steps (`ADVANCES`) lands exactly on it.
const RETENTION: Millis = 2 * HOUR;

const ALL_KINDS: [TokenKind; 5] = [
    TokenKind::Access,
    TokenKind::Refresh,
    TokenKind::Login,
    TokenKind::Pat,
    TokenKind::HubJwt,
];

#[derive(Debug, Clone)]
struct MSession {
    id: SessionId,
    account: usize,
    app: Option<usize>,
    kind: SessionKind,
    expires: Millis,
    revoked: bool,
    /// (token, expires)
    access: Vec<(String, Millis)>,
    refresh: Option<String>,
    consumed: Vec<String>,
    login: Option<String>,
    pat: Option<String>,
    /// When its own tombstone was written.
    tombstoned: Option<Millis>,
    /// The watermark scopes that cover it (of its kind).
    covered: Vec<MScope>,
    /// Removed by the sweeper.
    swept: bool,
    /// Replaced access tokens the sweeper removed (past their expiry for the retention).
    swept_tokens: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum MState {
    Active,
    Expired,
    Revoked,
}

impl MSession {
    fn state(&self, now: Millis) -> MState {
        if self.revoked {
            MState::Revoked
        } else if now >= self.expires {
            MState::Expired
        } else {
            MState::Active
        }
    }
}

#[derive(Default)]
struct Model {
    apps: Vec<MApp>,
    accounts: Vec<AccountId>,
    devices: Vec<usize>,
    sessions: Vec<MSession>,
    /// When each (account, scope, kind)'s watermark was last written.
    markers: std::collections::HashMap<(usize, MScope, SessionKind), Millis>,
    now: Millis,
}

impl Model {
    /// Kills every session of `account` matching `scope` and `kinds`, except `except`;
    /// returns (sessions that were alive, of which with a refresh token).
    fn revoke(
        &mut self,
        account: usize,
        app: Option<Option<usize>>,
        kinds: &[SessionKind],
        except: Option<SessionId>,
    ) -> (usize, usize) {
        let now = self.now;
        let scope = match app {
            Some(Some(p)) => MScope::App(p),
            Some(None) => MScope::NoApp,
            None => MScope::AllApps,
        };
        for kind in kinds {
            self.markers.insert((account, scope, *kind), now);
        }
        let (mut n, mut refresh) = (0, 0);
        for s in &mut self.sessions {
            let in_scope = match app {
                Some(a) => s.app == a,
                None => s.app.is_some(),
            };
            if s.account == account && in_scope && kinds.contains(&s.kind) && Some(s.id) != except {
                if s.state(now) == MState::Active {
                    n += 1;
                    refresh += usize::from(s.refresh.is_some());
                }
                // A watermark covers expired sessions too: they read as revoked from now on.
                s.revoked = true;
                if !s.covered.contains(&scope) {
                    s.covered.push(scope);
                }
            }
        }
        (n, refresh)
    }

    /// When a session died: its tombstone, the watermarks covering it as they are now
    /// (a later revoke-all of the same scope and kind rewrites the time), its expiry.
    fn dead_since(&self, s: &MSession) -> Option<Millis> {
        let marks = s
            .covered
            .iter()
            .filter_map(|sc| self.markers.get(&(s.account, *sc, s.kind)).copied());
        let expiry = (s.expires <= self.now).then_some(s.expires);
        s.tombstoned.into_iter().chain(marks).chain(expiry).min()
    }

    /// A sweep at `now`: what had been dead for the retention goes. Returns the sessions
    /// removed.
    fn sweep(&mut self) -> u64 {
        let now = self.now;
        let mut n = 0;
        for i in 0..self.sessions.len() {
            if self.sessions[i].swept {
                continue;
            }
            if self
                .dead_since(&self.sessions[i])
                .is_some_and(|t| t + RETENTION <= now)
            {
                self.sessions[i].swept = true;
                n += 1;
                continue;
            }
            // Replaced access tokens (all but the newest) past their expiry for long enough.
            let s = &mut self.sessions[i];
            let current = s.access.pop();
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut s.access)
                .into_iter()
                .partition(|(_, exp)| exp + RETENTION <= now);
            s.access = kept;
            s.access.extend(current);
            s.swept_tokens.extend(gone.into_iter().map(|(t, _)| t));
        }
        n
    }
}

// ---- the system under test --------------------------------------------------------------

struct Sut {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    s: Option<Sessiond>,
    rt: tokio::runtime::Runtime,
}

fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Sessiond {
    let opts = StoreOptions {
        cache_bytes: 4 << 20,
        // Close-and-reopen, not power loss, is what this test exercises.
        durability: Durability::Flush,
    };
    // sled releases its directory lock when the last handle of its file goes, and some go
    // with deferred (epoch-based) frees a little after the store is dropped: a reopen in the
    // same process may find the lock still held for a moment. A second process never does.
    let mut tries = 0;
    let store = loop {
        match Store::open(dir, &opts) {
            Err(StoreError::Locked(..)) if tries < 500 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.expect("open store"),
        }
    };
    let config = Config {
        tombstone_retention_ms: RETENTION,
        // Small passes, so that a cycle resumes from its cursors many times.
        sweep_batch: 3,
        ..Config::default()
    };
    Sessiond::new(store, config, clock).expect("service")
}

impl Sut {
    fn new() -> Sut {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock(AtomicI64::new(START)));
        let s = Some(open(dir.path(), clock.clone()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Sut { dir, clock, s, rt }
    }
    fn s(&self) -> &Sessiond {
        self.s.as_ref().expect("open")
    }
    fn reopen(&mut self) {
        drop(self.s.take());
        self.s = Some(open(self.dir.path(), self.clock.clone()));
    }
}

/// Counts, for the closing report of a run.
static STEPS: AtomicU64 = AtomicU64::new(0);
static CHECKS: AtomicU64 = AtomicU64::new(0);
static SWEPT: AtomicU64 = AtomicU64::new(0);

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

/// The audit log's newest entry of `account` counts what the model says died.
fn audit_counted(
    sut: &Sut,
    account: &AccountId,
    sessions: usize,
    refresh: usize,
) -> Result<(), TestCaseError> {
    let fail = |e: sessiond::domain::Error| TestCaseError::fail(e.to_string());
    sut.s().count_pending_audit().map_err(fail)?;
    let newest = sut.s().audit_log(Some(account), None, 1).map_err(fail)?;
    let Some(e) = newest.first() else {
        return Err(TestCaseError::fail("no audit entry"));
    };
    let got = e.killed.unwrap_or_default();
    check!(
        e.killed.is_some()
            && got.sessions == sessions as u64
            && got.refresh_tokens == refresh as u64,
        "audit entry {} ({}) counted {:?}, model ({sessions}, {refresh})",
        e.seq,
        e.operation,
        e.killed
    );
    Ok(())
}

fn pick<T>(v: &[T], i: usize) -> Option<usize> {
    (!v.is_empty()).then(|| i % v.len())
}

/// Runs one sequence; `Err` names the first step where the service and the model disagree.
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut sut = Sut::new();
    let mut m = Model {
        now: START,
        ..Model::default()
    };
    // Two applications and two accounts to start with, so early steps do something.
    for op in [
        Op::CreateApp,
        Op::CreateApp,
        Op::CreateAccount,
        Op::CreateAccount,
    ]
    .iter()
    .chain(ops)
    {
        step(&mut sut, &mut m, op).map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))?;
        verify(&sut, &m).map_err(|e| TestCaseError::fail(format!("after {op:?}: {e}")))?;
        STEPS.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn step(sut: &mut Sut, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::CreateApp => {
            let n = m.apps.len();
            // Every second application logs Rocket.Chat clients out after one day.
            let login_days = if n % 2 == 1 { 1 } else { 90 };
            let created = sut
                .rt
                .block_on(sut.s().create_app(NewApp {
                    id: Some(format!("app-{n}")),
                    name: format!("App {n}"),
                    login_expiration_days: Some(login_days),
                    ..NewApp::default()
                }))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            m.apps.push(MApp {
                key: created.app.key,
                login_days,
            });
        }
        Op::CreateAccount => {
            let n = m.accounts.len();
            let a = sut
                .rt
                .block_on(sut.s().create_account(NewAccount {
                    login: format!("user{n}"),
                    email: None,
                    name: None,
                    password: None,
                }))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            m.accounts.push(a.id);
            m.devices.push(0);
        }
        Op::Issue { account, app, kind } => {
            let (Some(account), Some(app)) = (pick(&m.accounts, account), pick(&m.apps, app))
            else {
                return Ok(());
            };
            let kind = [
                SessionKind::Idp,
                SessionKind::Login,
                SessionKind::Oauth,
                SessionKind::Pat,
            ][kind as usize];
            let app = (kind != SessionKind::Idp).then_some(app);
            let issued = sut
                .rt
                .block_on(sut.s().issue(NewSession {
                    account: m.accounts[account],
                    app: app.map(|a| m.apps[a].key),
                    kind,
                    device: DeviceInfo::default(),
                    method: "model".into(),
                }))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let expires = match kind {
                SessionKind::Idp => m.now + 12 * HOUR,
                SessionKind::Login => m.now + m.apps[app.expect("app")].login_days as Millis * DAY,
                SessionKind::Oauth => m.now + 30 * DAY,
                SessionKind::Pat => NEVER,
            };
            check!(
                issued.session.expires == expires,
                "expires {} ≠ model {expires}",
                issued.session.expires
            );
            let access = issued
                .access_token
                .map(|t| (t, (m.now + HOUR).min(expires)));
            m.sessions.push(MSession {
                id: issued.session.id,
                account,
                app,
                kind,
                expires,
                revoked: false,
                access: access.into_iter().collect(),
                refresh: issued.refresh_token,
                consumed: Vec::new(),
                login: issued.login_token,
                pat: issued.personal_access_token,
                tombstoned: None,
                covered: Vec::new(),
                swept: false,
                swept_tokens: Vec::new(),
            });
        }
        Op::Refresh { session, with } => {
            let Some(i) = pick(&m.sessions, session) else {
                return Ok(());
            };
            let s = m.sessions[i].clone();
            let (Some(app), Some(current)) = (s.app, s.refresh.clone()) else {
                return Ok(());
            };
            let (token, app_key, reuse) = match with {
                RefreshWith::Current => (current, m.apps[app].key, false),
                RefreshWith::Consumed(k) => match pick(&s.consumed, k) {
                    Some(k) => (s.consumed[k].clone(), m.apps[app].key, true),
                    None => return Ok(()),
                },
                RefreshWith::OtherApp => {
                    let other = (app + 1) % m.apps.len();
                    if other == app {
                        return Ok(());
                    }
                    (current, m.apps[other].key, false)
                }
            };
            let got = sut
                .rt
                .block_on(
                    sut.s()
                        .refresh(Some(app_key), &token, "model.refresh_reuse"),
                )
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let state = s.state(m.now);
            match (got, with, state) {
                (Refreshed::NotFound, RefreshWith::OtherApp, _) => {}
                (Refreshed::NotFound, _, _) if s.swept => {}
                (Refreshed::Revoked(_), _, MState::Revoked) => {}
                (Refreshed::Expired, _, MState::Expired) => {}
                (Refreshed::Reused, _, MState::Active) if reuse => {
                    m.sessions[i].revoked = true;
                    m.sessions[i].tombstoned = Some(m.now);
                }
                (Refreshed::Rotated(r), RefreshWith::Current, MState::Active) => {
                    let s = &mut m.sessions[i];
                    s.consumed.push(token);
                    s.refresh = Some(r.refresh_token);
                    check!(
                        r.access_expires == (m.now + HOUR).min(s.expires),
                        "access expiry"
                    );
                    s.access.push((r.access_token, r.access_expires));
                }
                (got, with, state) => {
                    return Err(TestCaseError::fail(format!(
                        "refresh with {with:?} of a session the model sees {state:?}: {got:?}"
                    )));
                }
            }
        }
        Op::Rownd { account, app }
        | Op::Connect { account, app }
        | Op::Flashback { account, app } => {
            let (Some(a), Some(p)) = (pick(&m.accounts, account), pick(&m.apps, app)) else {
                return Ok(());
            };
            let (id, key) = (m.accounts[a], m.apps[p].key);
            let s = sut.s();
            // Connect answers a count; the others count nothing (their cost must not grow
            // with the pair), which the per-step state check below covers instead.
            let (got, kinds): (_, &[SessionKind]) = match op {
                Op::Rownd { .. } => (
                    sut.rt
                        .block_on(s.rownd_sign_out_all(key, &id, Credential::Admin))
                        .map(|r| r.counted),
                    &[SessionKind::Login, SessionKind::Oauth, SessionKind::Pat],
                ),
                Op::Connect { .. } => (
                    sut.rt
                        .block_on(s.connect_revoke_all(key, &id, Credential::Admin))
                        .map(Some),
                    &[SessionKind::Login, SessionKind::Oauth],
                ),
                _ => (
                    sut.rt
                        .block_on(s.flashback_revoke_all(key, &id, Credential::Admin))
                        .map(|r| r.counted),
                    &[SessionKind::Login, SessionKind::Oauth, SessionKind::Pat],
                ),
            };
            let got = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (n, refresh) = m.revoke(a, Some(Some(p)), kinds, None);
            audit_counted(sut, &id, n, refresh)?;
            match (got, op) {
                (Some(c), Op::Connect { .. }) => {
                    check!(
                        c.sessions == n,
                        "revoked {} sessions, model {n}",
                        c.sessions
                    );
                    check!(
                        c.refresh_tokens == refresh,
                        "revokedCount {}, model {refresh}",
                        c.refresh_tokens
                    );
                }
                (None, Op::Rownd { .. } | Op::Flashback { .. }) => {}
                (got, _) => check!(false, "{op:?} counted {got:?}"),
            }
        }
        Op::RocketChat {
            account,
            app,
            current,
        } => {
            let (Some(a), Some(p)) = (pick(&m.accounts, account), pick(&m.apps, app)) else {
                return Ok(());
            };
            let logins: Vec<usize> = (0..m.sessions.len())
                .filter(|&i| {
                    let s = &m.sessions[i];
                    s.account == a && s.app == Some(p) && s.kind == SessionKind::Login
                })
                .collect();
            let keep = match current {
                Some(c) => match pick(&logins, c) {
                    Some(c) => Some(logins[c]),
                    None => return Ok(()),
                },
                None => None,
            };
            let keep_id = keep.map(|i| m.sessions[i].id);
            let got = sut.rt.block_on(sut.s().rocketchat_logout_others(
                m.apps[p].key,
                &m.accounts[a],
                keep_id,
                Credential::Admin,
            ));
            let keeper_alive = keep.is_none_or(|i| m.sessions[i].state(m.now) == MState::Active);
            match got {
                Ok(r) if keeper_alive => {
                    let (n, refresh) = m.revoke(a, Some(Some(p)), &[SessionKind::Login], keep_id);
                    audit_counted(sut, &m.accounts[a], n, refresh)?;
                    check!(r.counted.is_none(), "Rocket.Chat counted {:?}", r.counted);
                }
                Err(sessiond::domain::Error::CallerRevoked) if !keeper_alive => {}
                other => {
                    return Err(TestCaseError::fail(format!(
                        "Rocket.Chat with the caller {}: {other:?}",
                        if keeper_alive { "alive" } else { "dead" }
                    )));
                }
            }
        }
        Op::Okta {
            account,
            oauth_tokens,
            forget_devices,
        } => {
            let Some(a) = pick(&m.accounts, account) else {
                return Ok(());
            };
            let got = sut
                .rt
                .block_on(sut.s().okta_revoke_user_sessions(
                    &m.accounts[a],
                    oauth_tokens,
                    forget_devices,
                    Credential::Admin,
                ))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (mut n, mut refresh) = m.revoke(a, Some(None), &[SessionKind::Idp], None);
            if oauth_tokens {
                let (n2, refresh2) = m.revoke(a, None, &[SessionKind::Oauth], None);
                n += n2;
                refresh += refresh2;
            }
            audit_counted(sut, &m.accounts[a], n, refresh)?;
            check!(got.counted.is_none(), "Okta counted {:?}", got.counted);
            let forgotten = if forget_devices {
                std::mem::take(&mut m.devices[a])
            } else {
                0
            };
            check!(
                got.devices_forgotten == forgotten,
                "forgot {} devices, model {forgotten}",
                got.devices_forgotten
            );
        }
        Op::RevokeOne { session } => {
            let Some(i) = pick(&m.sessions, session) else {
                return Ok(());
            };
            let alive = m.sessions[i].state(m.now) == MState::Active;
            let got = sut.rt.block_on(sut.s().revoke_session(
                &m.sessions[i].id,
                "model.revoke_one",
                "test",
                Credential::Admin,
            ));
            if m.sessions[i].swept {
                check!(
                    matches!(got, Err(sessiond::domain::Error::NotFound("session"))),
                    "revoking a swept session: {got:?}"
                );
                return Ok(());
            }
            let killed = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
            check!(
                killed == alive,
                "revoke_session said {killed}, model alive = {alive}"
            );
            let had_refresh = m.sessions[i].refresh.is_some();
            if alive {
                m.sessions[i].revoked = true;
                m.sessions[i].tombstoned = Some(m.now);
            }
            let account = m.accounts[m.sessions[i].account];
            audit_counted(
                sut,
                &account,
                usize::from(alive),
                usize::from(alive && had_refresh),
            )?;
        }
        Op::AddDevice { account } => {
            let Some(a) = pick(&m.accounts, account) else {
                return Ok(());
            };
            sut.rt
                .block_on(sut.s().add_device(&m.accounts[a], "phone", "push"))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            m.devices[a] += 1;
        }
        Op::Advance(k) => {
            m.now += ADVANCES[k];
            sut.clock.0.store(m.now, Ordering::SeqCst);
        }
        Op::Reopen => sut.reopen(),
        Op::Sweep => {
            let got = sut
                .s()
                .sweep_now()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want = m.sweep();
            SWEPT.fetch_add(want, Ordering::Relaxed);
            check!(
                got.swept.sessions == want,
                "swept {} sessions, model {want}",
                got.swept.sessions
            );
        }
    }
    Ok(())
}

/// The service agrees with the model about every session, token, index entry and device.
fn verify(sut: &Sut, m: &Model) -> Result<(), TestCaseError> {
    let s = sut.s();
    let now = m.now;
    let err = |e: sessiond::domain::Error| TestCaseError::fail(e.to_string());
    for ms in &m.sessions {
        if ms.swept {
            check!(
                s.session(&ms.id).map_err(err)?.is_none(),
                "session {} was swept, yet is there",
                ms.id
            );
            let tokens = ms.access.iter().map(|(t, _)| t);
            let tokens = tokens
                .chain(&ms.refresh)
                .chain(&ms.consumed)
                .chain(&ms.login)
                .chain(&ms.pat)
                .chain(&ms.swept_tokens);
            for token in tokens {
                let got = s.check_token(token, None, &ALL_KINDS).map_err(err)?;
                check!(
                    matches!(got, TokenCheck::Unknown),
                    "a token of swept session {}: {got:?}",
                    ms.id
                );
            }
            continue;
        }
        for token in &ms.swept_tokens {
            let got = s.check_token(token, None, &ALL_KINDS).map_err(err)?;
            check!(
                matches!(got, TokenCheck::Unknown),
                "a swept access token of session {}: {got:?}",
                ms.id
            );
        }
        let want = ms.state(now);
        let (_, got) = s
            .session(&ms.id)
            .map_err(err)?
            .ok_or_else(|| TestCaseError::fail(format!("session {} lost", ms.id)))?;
        let got = match got {
            SessionState::Active => MState::Active,
            SessionState::Expired => MState::Expired,
            SessionState::Revoked(_) => MState::Revoked,
        };
        check!(
            got == want,
            "session {} ({:?}) is {got:?}, model {want:?}",
            ms.id,
            ms.kind
        );
        let app = ms.app.map(|a| m.apps[a].key);
        // (token, kind, expires, consumed)
        let mut tokens: Vec<(&str, TokenKind, Millis, bool)> = Vec::new();
        tokens.extend(
            ms.access
                .iter()
                .map(|(t, e)| (t.as_str(), TokenKind::Access, *e, false)),
        );
        tokens.extend(
            ms.refresh
                .iter()
                .map(|t| (t.as_str(), TokenKind::Refresh, ms.expires, false)),
        );
        tokens.extend(
            ms.consumed
                .iter()
                .map(|t| (t.as_str(), TokenKind::Refresh, ms.expires, true)),
        );
        tokens.extend(
            ms.login
                .iter()
                .map(|t| (t.as_str(), TokenKind::Login, ms.expires, false)),
        );
        tokens.extend(
            ms.pat
                .iter()
                .map(|t| (t.as_str(), TokenKind::Pat, NEVER, false)),
        );
        for (token, kind, expires, consumed) in tokens {
            let got = s.check_token(token, app, &[kind]).map_err(err)?;
            CHECKS.fetch_add(1, Ordering::Relaxed);
            let ok = match (&got, want) {
                (TokenCheck::Revoked(..), MState::Revoked) => true,
                (TokenCheck::Expired(_), MState::Expired) => true,
                (TokenCheck::Consumed(_), MState::Active) => consumed,
                (TokenCheck::Expired(_), MState::Active) => !consumed && now >= expires,
                (TokenCheck::Active(_), MState::Active) => !consumed && now < expires,
                _ => false,
            };
            check!(
                ok,
                "{kind:?} token of session {} ({:?}, model {want:?}, consumed {consumed}): {got:?}",
                ms.id,
                ms.kind
            );
            // Presented to another application, a token is unknown there.
            if let Some(other) = ms
                .app
                .map(|a| (a + 1) % m.apps.len())
                .filter(|o| Some(*o) != ms.app)
            {
                let got = s
                    .check_token(token, Some(m.apps[other].key), &[kind])
                    .map_err(err)?;
                check!(
                    matches!(got, TokenCheck::Unknown),
                    "a token of app {:?} works in app {other}: {got:?}",
                    ms.app
                );
            }
        }
    }
    // The (account, application) index holds exactly the pair's sessions, in creation order.
    for (a, id) in m.accounts.iter().enumerate() {
        for p in (0..m.apps.len()).map(Some).chain([None]) {
            let got: Vec<SessionId> = s
                .sessions_of(id, Some(p.map(|p| m.apps[p].key)))
                .map_err(err)?
                .into_iter()
                .map(|(s, _)| s.id)
                .collect();
            let want: Vec<SessionId> = m
                .sessions
                .iter()
                .filter(|s| s.account == a && s.app == p && !s.swept)
                .map(|s| s.id)
                .collect();
            check!(
                got == want,
                "index of account {a} × app {p:?}: {got:?}, model {want:?}"
            );
        }
        let devices = s.devices(id).map_err(err)?.len();
        check!(
            devices == m.devices[a],
            "account {a} has {devices} devices, model {}",
            m.devices[a]
        );
    }
    let report = s
        .store()
        .check()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    check!(report.is_clean(), "store check: {:?}", report.problems);
    Ok(())
}

fn slow() -> bool {
    std::env::var("SESSIOND_SLOW_TESTS").is_ok_and(|v| v == "1")
}

#[test]
fn the_service_agrees_with_the_model() {
    let (cases, max_len) = if slow() { (1000, 300) } else { (48, 80) };
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        // Regressions are kept as named tests below, not in a seed file.
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let strategy = proptest::collection::vec(op(), 1..max_len);
    let result = runner.run(&strategy, |ops| run(&ops));
    eprintln!(
        "model: {cases} cases, {} steps, {} token checks, {} sessions swept",
        STEPS.load(Ordering::Relaxed),
        CHECKS.load(Ordering::Relaxed),
        SWEPT.load(Ordering::Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
