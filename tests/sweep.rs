//! The expiry sweeper in a running server, over HTTP: with a retention of zero, the
//! background sweeper removes a revoked session and one killed by a revoke-all — after the
//! audit log has counted it — and nothing alive; the metrics say so and the stopped store
//! checks clean. With the default retention, a tombstone stays and keeps answering
//! "revoked"; `sessiond admin sweep` runs a cycle on demand and reports it.
//!
//! Through the library, on a clock the test moves (`mod library`): a revoke-all whose audit
//! count is pending keeps its sessions until it is counted, and a cycle interleaved with
//! revocations, rotations, new sessions and time passing removes only what was due when it
//! began, with `Store::check` clean after every pass; the one race that can leave a token
//! record behind (a death stamped at the cycle's start, retention zero) answers as unknown
//! and is healed by the next cycle. Which records a full cycle removes across the states a
//! session reaches (tokens replaced by rotation, expiry, each revoke-all shape, restarts;
//! with every count done, as the model counts at once) is the model test's `Sweep` step
//! (`tests/model.rs`).

mod common;
use common::bin::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::time::{Duration, Instant};

impl AdminApi {
    fn session(&self, account: &str) -> Value {
        self.create(
            "/sessions",
            json!({"account": account, "application": "chat", "kind": "oauth"}),
        )
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.admin(reqwest::Method::GET, path, None)
    }

    /// A value of `GET /metrics` (0 when the series is not there yet).
    fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .expect("metrics")
            .text()
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

fn setup(api: &AdminApi) -> (Value, String, String) {
    let app = api.create("/applications", json!({"id": "chat", "name": "Chat"}));
    let alice = s(&api.create("/accounts", json!({"login": "alice"})), "id").to_owned();
    let bob = s(&api.create("/accounts", json!({"login": "bob"})), "id").to_owned();
    (app, alice, bob)
}

#[test]
fn the_background_sweeper_removes_the_dead_after_their_count_and_nothing_alive() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let (mut server, base) = serve(
        &data,
        &[
            "--tombstone-retention",
            "0s",
            "--sweep-interval",
            "200ms",
            "--sweep-batch",
            "2",
        ],
    );
    let api = AdminApi::new(&base);
    let (app, alice, bob) = setup(&api);
    let revoked = api.session(&alice);
    let alive = api.session(&alice);
    let killed_by_all = api.session(&bob);
    let (status, v) = api.admin(
        reqwest::Method::DELETE,
        &format!("/sessions/{}", s(&revoked, "id")),
        None,
    );
    assert_eq!(status, 200, "{v}");
    // Bob's revoke-all through Rownd: counted in the background, then swept.
    sign_out(&api, &app, &bob);

    let swept = r#"sessiond_swept_total{what="sessions"}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.metric(swept) < 2.0 {
        assert!(
            Instant::now() < deadline,
            "the sweeper removed {} sessions in 30 s, not 2",
            api.metric(swept)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(api.metric("sessiond_sweep_cycles_total") >= 1.0);
    assert!(api.metric("sessiond_sweep_pass_duration_seconds_count") >= 3.0);

    for dead in [&revoked, &killed_by_all] {
        let (status, v) = api.get(&format!("/sessions/{}", s(dead, "id")));
        assert_eq!(status, 404, "a swept session is still there: {v}");
        let token = s(dead, "access_token");
        let v = api.introspect(token);
        // Unknown now: no kind, no state (a revoked token would say both).
        assert_eq!(
            (
                v["active"].as_bool(),
                v["kind"].as_str(),
                v["state"].as_str()
            ),
            (Some(false), None, None),
            "{v}"
        );
    }
    let (status, v) = api.get(&format!("/sessions/{}", s(&alive, "id")));
    assert_eq!((status, v["state"].as_str()), (200, Some("active")), "{v}");
    assert_eq!(api.introspect(s(&alive, "access_token"))["active"], true);
    let (_, listed) = api.get(&format!("/accounts/{alice}/sessions"));
    let ids: Vec<&str> = listed["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|v| s(v, "id"))
        .collect();
    assert_eq!(ids, [s(&alive, "id")]);
    // The revoke-all was counted before its session went: its entry says what it killed.
    assert_last_revoke_all_counted(&api, &bob, 1);

    drop(server.0.kill());
    let _ = server.0.wait();
    let out = run(&[OsStr::new("check"), OsStr::new("--data"), data.as_os_str()]);
    assert!(
        out.status.success(),
        "check after sweeping: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tombstones_stay_for_the_retention_and_admin_sweep_runs_a_cycle_on_demand() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, base) = serve(&tmp.path().join("data"), &[]);
    let api = AdminApi::new(&base);
    let (_app, alice, _bob) = setup(&api);
    let revoked = api.session(&alice);
    let id = s(&revoked, "id");
    let (status, _) = api.admin(reqwest::Method::DELETE, &format!("/sessions/{id}"), None);
    assert_eq!(status, 200);

    let out = run(&[
        OsStr::new("admin"),
        OsStr::new("--server"),
        OsStr::new(&base),
        OsStr::new("--admin-token"),
        OsStr::new(ADMIN_TOKEN),
        OsStr::new("sweep"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (report["sessions"].as_u64(), report["tokens"].as_u64()),
        (Some(0), Some(0)),
        "{report}"
    );
    assert!(report["passes"].as_u64() >= Some(3), "{report}");
    // Within the day's retention the tombstone answers as it did.
    let (status, v) = api.get(&format!("/sessions/{id}"));
    assert_eq!((status, v["state"].as_str()), (200, Some("revoked")), "{v}");
    let v = api.introspect(s(&revoked, "access_token"));
    assert_eq!(
        (v["active"].as_bool(), v["state"].as_str()),
        (Some(false), Some("revoked")),
        "{v}"
    );
}

/// The newest audit entry of `account` is counted, with `sessions` revoked.
fn assert_last_revoke_all_counted(api: &AdminApi, account: &str, sessions: u64) {
    let (_, audit) = api.get(&format!("/audit?account={account}"));
    let entry = &audit["entries"][0];
    assert_eq!(
        (
            entry["counted"].as_bool(),
            entry["sessions_revoked"].as_u64()
        ),
        (Some(true), Some(sessions)),
        "{audit}"
    );
}

/// Rownd's revoke-all of `user` in "chat" (`app` is the created application).
fn sign_out(api: &AdminApi, app: &Value, user: &str) {
    let r = api
        .http
        .post(format!(
            "{}/applications/chat/users/{user}/signout",
            api.base
        ))
        .header("x-rownd-app-key", s(app, "rownd_app_key"))
        .header("x-rownd-app-secret", s(app, "rownd_app_secret"))
        .json(&json!({}))
        .send()
        .expect("signout");
    assert_eq!(r.status().as_u16(), 204);
}

#[test]
fn an_admin_sweep_has_the_counts_before_it_done_even_while_revocations_go_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, base) = serve(
        &tmp.path().join("data"),
        &["--tombstone-retention", "0s", "--sweep-interval", "24h"],
    );
    let api = AdminApi::new(&base);
    let (app, alice, bob) = setup(&api);
    let killed: Vec<Value> = (0..3).map(|_| api.session(&bob)).collect();
    let alive = api.session(&alice);
    // Bob's revoke-all: its count waits for a quiet moment, which the revocations below,
    // 20 ms apart, never leave.
    sign_out(&api, &app, &bob);
    let carol = s(&api.create("/accounts", json!({"login": "carol"})), "id").to_owned();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let revoker = std::thread::spawn({
        let (base, stop, app, carol) = (base.clone(), stop.clone(), app.clone(), carol.clone());
        move || {
            let api = AdminApi::new(&base);
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                api.session(&carol);
                sign_out(&api, &app, &carol);
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            // Whether the sweep answered before this loop gave up.
            (n, stop.load(std::sync::atomic::Ordering::SeqCst))
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, report) = api.admin(reqwest::Method::POST, "/sweep", None);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (revocations, answered_first) = revoker.join().expect("revoker");
    assert_eq!(status, 200, "{report}");
    assert!(
        answered_first,
        "the sweep answered only after {revocations} revocations stopped coming: {report}"
    );
    // Bob's three sessions went (carol's, counted or not, may have too).
    assert!(report["sessions"].as_u64() >= Some(3), "{report}");
    for dead in &killed {
        let (status, v) = api.get(&format!("/sessions/{}", s(dead, "id")));
        assert_eq!(
            status, 404,
            "a session of the counted revoke-all is still there: {v}"
        );
    }
    let (status, v) = api.get(&format!("/sessions/{}", s(&alive, "id")));
    assert_eq!((status, v["state"].as_str()), (200, Some("active")), "{v}");
    assert_last_revoke_all_counted(&api, &bob, 3);
}

#[test]
fn sweep_settings_are_checked_at_start() {
    for (flag, value, says) in [
        ("--sweep-interval", "0s", "longer than zero"),
        ("--tombstone-retention", "a while", "not a duration"),
        ("--sweep-batch", "0", "--sweep-batch"),
    ] {
        let out = run(&[
            OsStr::new("serve"),
            OsStr::new("--ephemeral"),
            OsStr::new(flag),
            OsStr::new(value),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
}

// ---- the sweeper's rules, through the library, on a clock the test moves -----------------

mod library {
    use sessiond::domain::{
        Clock, Config, NewAccount, NewApp, NewSession, Refreshed, SessionState, Sessiond,
        TokenCheck,
    };
    use sessiond::model::*;
    use sessiond::store::{Store, StoreOptions};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    struct ManualClock(AtomicI64);

    impl Clock for ManualClock {
        fn now(&self) -> Millis {
            self.0.load(Ordering::SeqCst)
        }
    }

    const HOUR: Millis = 3_600_000;

    struct World {
        _dir: tempfile::TempDir,
        clock: Arc<ManualClock>,
        s: Sessiond,
        rt: tokio::runtime::Runtime,
        app: AppKey,
        account: AccountId,
    }

    fn world(retention: Millis, batch: usize) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock(AtomicI64::new(1_800_000_000_000)));
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
        let config = Config {
            tombstone_retention_ms: retention,
            sweep_batch: batch,
            ..Config::default()
        };
        let s = Sessiond::new(store, config, clock.clone()).expect("service");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let app = rt
            .block_on(s.create_app(NewApp {
                id: Some("chat".into()),
                name: "Chat".into(),
                ..NewApp::default()
            }))
            .expect("app")
            .app
            .key;
        let account = rt
            .block_on(s.create_account(NewAccount {
                login: "alice".into(),
                email: None,
                name: None,
                password: None,
            }))
            .expect("account")
            .id;
        World {
            _dir: dir,
            clock,
            s,
            rt,
            app,
            account,
        }
    }

    impl World {
        fn issue(&self) -> sessiond::domain::Issued {
            self.rt
                .block_on(self.s.issue(NewSession {
                    account: self.account,
                    app: Some(self.app),
                    kind: SessionKind::Oauth,
                    device: DeviceInfo::default(),
                    method: "test".into(),
                }))
                .expect("issue")
        }
        fn refresh(&self, token: &str) -> String {
            match self
                .rt
                .block_on(self.s.refresh(Some(self.app), token, "test"))
                .expect("refresh")
            {
                Refreshed::Rotated(r) => r.refresh_token,
                other => panic!("refresh: {other:?}"),
            }
        }
        fn revoke(&self, id: &SessionId) {
            let killed = self
                .rt
                .block_on(self.s.revoke_session(id, "test", "test", Credential::Admin))
                .expect("revoke");
            assert!(killed);
        }
        fn advance(&self, ms: Millis) {
            self.clock.0.fetch_add(ms, Ordering::SeqCst);
        }
        fn exists(&self, id: &SessionId) -> bool {
            self.s.session(id).expect("read").is_some()
        }
        fn clean(&self) {
            let report = self.s.store().check().expect("check");
            assert!(report.is_clean(), "{:?}", report.problems);
        }
    }

    #[test]
    fn a_revoke_all_not_yet_counted_keeps_its_sessions_until_it_is() {
        let w = world(0, 1000);
        let a = w.issue();
        // No background task here: the revoke-all's count stays pending in the store.
        w.rt.block_on(w.s.rownd_sign_out_all(w.app, &w.account, Credential::Admin))
            .expect("sign out");
        // Connect's revoke-all of the same pair is counted at once, and rewrites the
        // watermark Rownd's uncounted one wrote: the session must still wait for Rownd's.
        w.advance(1);
        w.rt.block_on(w.s.connect_revoke_all(w.app, &w.account, Credential::Admin))
            .expect("revoke all");
        w.advance(1);
        assert!(matches!(
            w.s.session(&a.session.id).expect("read"),
            Some((_, SessionState::Revoked(_)))
        ));
        let first = w.s.sweep_now().expect("sweep");
        assert_eq!(first.swept.sessions, 0, "swept before its count");
        assert!(w.exists(&a.session.id));
        assert_eq!(w.s.count_pending_audit().expect("count"), 1);
        let second = w.s.sweep_now().expect("sweep");
        assert_eq!(second.swept.sessions, 1);
        assert!(!w.exists(&a.session.id));
        let log = w.s.audit_log(Some(&w.account), None, 2).expect("audit");
        let killed: Vec<_> = log.iter().map(|e| e.killed.map(|k| k.sessions)).collect();
        assert_eq!(killed, [Some(0), Some(1)], "Connect's, then Rownd's");
        w.clean();
    }

    #[test]
    fn a_token_record_left_by_a_death_stamped_at_the_cycle_start_is_unknown_then_healed() {
        let w = world(0, 1000);
        let a = w.issue();
        let first = a.refresh_token.clone().expect("refresh token");
        w.refresh(&first);
        let mut sweep = w.s.sweep_start();
        // The passes over `markers` and `tokens` (a page each here) see the session alive
        // and keep its record...
        w.s.sweep_pass(&mut sweep).expect("pass");
        w.s.sweep_pass(&mut sweep).expect("pass");
        // ...then it is revoked in the same millisecond the cycle started: due at once.
        w.revoke(&a.session.id);
        while !sweep.is_done() {
            w.s.sweep_pass(&mut sweep).expect("pass");
        }
        assert_eq!(sweep.swept.sessions, 1);
        let report = w.s.store().check().expect("check");
        // The records the rotation replaced (access, hub JWT, refresh) are left.
        assert!(report.problem_count >= 1);
        assert!(
            report
                .problems
                .iter()
                .all(|p| p.tree == "tokens" && p.detail.contains("missing session")),
            "{:?}",
            report.problems
        );
        // The left record answers as unknown, not as an error...
        let got =
            w.s.check_token(&first, Some(w.app), &[TokenKind::Refresh])
                .expect("a left record is no error");
        assert!(matches!(got, TokenCheck::Unknown), "{got:?}");
        // ...and the next cycle removes it.
        assert_eq!(
            w.s.sweep_now().expect("sweep").swept.tokens,
            report.problem_count
        );
        w.clean();
    }

    #[test]
    fn a_watermark_the_pass_over_markers_did_not_see_aged_keeps_its_sessions_for_the_cycle() {
        let w = world(HOUR, 2);
        let covered: Vec<_> = (0..3).map(|_| w.issue()).collect();
        let mut sweep = w.s.sweep_start();
        // The pass over `markers` finds no watermark of the pair...
        w.s.sweep_pass(&mut sweep).expect("pass");
        // ...then the wall clock steps back two hours and a revoke-all is stamped there:
        // dead for the retention at the cycle's start, yet written after the pass.
        w.advance(-2 * HOUR);
        w.rt.block_on(w.s.rownd_sign_out_all(w.app, &w.account, Credential::Admin))
            .expect("sign out");
        assert_eq!(w.s.count_pending_audit().expect("count"), 1);
        w.advance(2 * HOUR);
        while !sweep.is_done() {
            w.s.sweep_pass(&mut sweep).expect("pass");
        }
        // The cycle reads no watermark of a pair it did not note: they are kept, which is
        // never wrong (a sweep may only come late)...
        assert_eq!(sweep.swept.sessions, 0);
        for i in &covered {
            assert!(w.exists(&i.session.id));
        }
        w.clean();
        // ...and the next cycle notes the pair and takes them.
        assert_eq!(w.s.sweep_now().expect("sweep").swept.sessions, 3);
        for i in &covered {
            assert!(!w.exists(&i.session.id));
        }
        w.clean();
    }

    #[test]
    fn a_cycle_interleaved_with_writes_removes_only_what_was_due_when_it_began() {
        let w = world(HOUR, 2);
        // Sessions with token records of their own in the `tokens` tree (rotated twice).
        let issued: Vec<_> = (0..6).map(|_| w.issue()).collect();
        let mut refresh: Vec<String> = issued
            .iter()
            .map(|i| i.refresh_token.clone().expect("refresh token"))
            .collect();
        for r in refresh.iter_mut() {
            *r = w.refresh(r);
            *r = w.refresh(r);
        }
        let id = |i: usize| issued[i].session.id;
        // 0 and 1 die now and are due in an hour; the others live.
        w.revoke(&id(0));
        w.revoke(&id(1));
        w.advance(HOUR);
        let mut sweep = w.s.sweep_start();
        w.s.sweep_pass(&mut sweep).expect("pass");
        w.clean();
        // Meanwhile: 2 dies (not due at the cycle's start), 3 rotates again, 6 is born, and
        // an hour passes — 2 is due now, but the cycle judges by its start.
        w.revoke(&id(2));
        refresh[3] = w.refresh(&refresh[3]);
        let born = w.issue();
        w.advance(HOUR);
        while !sweep.is_done() {
            w.s.sweep_pass(&mut sweep).expect("pass");
            w.clean();
        }
        assert_eq!(sweep.swept.sessions, 2);
        assert!(sweep.passes > 3, "{} passes", sweep.passes);
        assert!(!w.exists(&id(0)) && !w.exists(&id(1)));
        for i in 2..6 {
            assert!(w.exists(&id(i)), "session {i} was swept");
        }
        assert!(w.exists(&born.session.id));
        // Session 2's tombstone still answers; 3's newest refresh token still rotates;
        // the tokens of 0 are unknown now, not revoked.
        let check = |t: &str| {
            w.s.check_token(t, Some(w.app), &[TokenKind::Refresh])
                .expect("check")
        };
        assert!(matches!(check(&refresh[2]), TokenCheck::Revoked(..)));
        assert!(matches!(check(&refresh[3]), TokenCheck::Active(_)));
        assert!(matches!(check(&refresh[0]), TokenCheck::Unknown));
        let first_refresh = issued[4].refresh_token.as_deref().expect("refresh");
        assert!(
            matches!(check(first_refresh), TokenCheck::Consumed(_)),
            "a consumed token of a live session must stay, to catch its reuse"
        );
        // The next cycle takes 2 as well.
        assert_eq!(w.s.sweep_now().expect("sweep").swept.sessions, 1);
        assert!(!w.exists(&id(2)));
        w.clean();
    }
}
