//! `sessiond-conformance`: run the suite against a base URL.

use clap::Parser;
use sessiond_conformance::{LevelFilter, Options, default_cases_dir, report::Format};
use std::path::PathBuf;
use std::time::Duration;

/// Replays the documented contracts of the five revoke-all shapes against an implementation.
#[derive(Parser, Debug)]
#[command(name = "sessiond-conformance", version)]
struct Args {
    /// Base URL of the implementation under test.
    #[arg(long, env = "CONFORMANCE_TARGET")]
    target: String,
    /// Bearer token of the provisioning API (sessiond: its admin token).
    #[arg(long, env = "CONFORMANCE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// Path of the provisioning API under the target.
    #[arg(long, default_value = "/admin/v1")]
    admin_prefix: String,
    /// `documented` runs only what the public documents say; `all` adds sessiond's readings.
    #[arg(long, value_enum, default_value = "all")]
    level: LevelFilter,
    /// Only these shapes (repeatable): rownd, connect, flashback, rocketchat, okta.
    #[arg(long)]
    shape: Vec<String>,
    /// Only cases whose id contains this text (repeatable).
    #[arg(long)]
    case: Vec<String>,
    /// A file of case ids that are known divergences (one per line, `#` comments).
    #[arg(long)]
    expect_fail: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// List the selected cases and exit.
    #[arg(long)]
    list: bool,
    /// Where the case files are.
    #[arg(long)]
    cases: Option<PathBuf>,
    /// Cases run at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[tokio::main]
async fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let opts = Options {
        target: args.target,
        admin_token: args.admin_token,
        admin_prefix: args.admin_prefix,
        cases_dir: args.cases.unwrap_or_else(default_cases_dir),
        level: args.level,
        shapes: args.shape,
        case_filter: args.case,
        expect_fail: args.expect_fail,
        format: args.format,
        junit: args.junit,
        list: args.list,
        concurrency: args.concurrency,
        case_timeout: Duration::from_secs(120),
    };
    let mut out = std::io::stdout();
    let code = sessiond_conformance::run(opts, &mut out).await;
    std::process::exit(code);
}
