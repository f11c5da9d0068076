//! The store's directory against what its records weigh.
//!
//! sled writes every change to the end of its log and reclaims a segment of the log by
//! rewriting the pages still live in it elsewhere. sled 0.34.7 as published stopped each
//! round of that cleaning at the first segment it finished, so under steady writes most of
//! the log waited to be cleaned and the file grew to four to eight times the records
//! (vendor/sled/PATCHES.md, patch 5). This test writes sessions through the service, as
//! seeding does, holds the log to a bound the unpatched cleaner missed by far, and reads
//! every record back after a restart.

use sessiond::domain::{Config, NewAccount, NewApp, NewSession, Sessiond, SystemClock};
use sessiond::model::{DeviceInfo, SessionKind};
use sessiond::store::{Store, StoreOptions};
use std::sync::Arc;

/// Sessions written, in batches as the admin API's seeding writes them.
const SESSIONS: usize = 120_000;
const BATCH: usize = 500;
const ACCOUNTS: usize = 12_000;

#[test]
fn the_log_stays_near_what_the_records_weigh_while_sessions_are_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
    let s = Sessiond::new(store, Config::default(), Arc::new(SystemClock)).expect("service");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let app = s
            .create_app(NewApp {
                id: Some("chat".into()),
                name: "Chat".into(),
                ..NewApp::default()
            })
            .await
            .expect("app")
            .app
            .key;
        let mut accounts = Vec::with_capacity(ACCOUNTS);
        for i in 0..ACCOUNTS {
            let account = s
                .create_account(NewAccount {
                    login: format!("user{i}"),
                    email: None,
                    name: None,
                    password: None,
                })
                .await
                .expect("account");
            accounts.push(account.id);
        }
        for batch in 0..SESSIONS / BATCH {
            let new = (0..BATCH)
                .map(|i| NewSession {
                    account: accounts[(batch * BATCH + i) % ACCOUNTS],
                    app: Some(app),
                    kind: SessionKind::Oauth,
                    device: DeviceInfo::default(),
                    method: "seed".into(),
                })
                .collect();
            s.create_sessions(new).await.expect("sessions");
        }
    });
    s.store().sync_blocking().expect("sync");

    let report = s.store().check().expect("check");
    assert!(report.is_clean(), "{:?}", report.problems);
    let records = report.total_bytes();
    let log = std::fs::metadata(dir.path().join("store").join("db"))
        .expect("sled's log")
        .len();
    let ratio = log as f64 / records as f64;
    eprintln!("{SESSIONS} sessions: records {records} bytes, log {log} bytes, {ratio:.2}×");
    // This test measured 4.17× without the patch, 1.55–1.64× with it.
    assert!(
        ratio <= 2.5,
        "sled's log is {ratio:.2}× the records ({log} bytes for {records})"
    );

    // The pages the cleaner moved are read back from their new place after a restart.
    drop(s);
    drop(rt);
    let store = Store::open(dir.path(), &StoreOptions::default()).expect("reopen");
    let report = store.check().expect("check after reopening");
    assert!(report.is_clean(), "{:?}", report.problems);
    let sessions = report.entries.iter().find(|t| t.tree == "sessions");
    assert_eq!(sessions.map(|t| t.entries), Some(SESSIONS as u64));
    assert_eq!(report.total_bytes(), records);
}
