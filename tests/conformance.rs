//! The conformance suite, run in-process against a live sessiond over loopback: every case
//! of both levels must pass.

mod common;
use common::*;
use sessiond_conformance::{
    LevelFilter, Options, default_cases_dir, default_specs_dir, report::Format,
};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_against_sessiond() {
    let srv = Server::start().await;
    let opts = Options {
        target: srv.base.clone(),
        admin_token: ADMIN.into(),
        admin_prefix: "/admin/v1".into(),
        cases_dir: default_cases_dir(),
        specs_dir: default_specs_dir(),
        level: LevelFilter::All,
        shapes: Vec::new(),
        case_filter: Vec::new(),
        expect_fail: None,
        format: Format::Human,
        junit: None,
        list: false,
        concurrency: 8,
        case_timeout: Duration::from_secs(60),
    };
    let mut out = Vec::new();
    let code = sessiond_conformance::run(opts, &mut out).await;
    let text = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
}
