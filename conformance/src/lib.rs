//! The conformance harness: replays the documented request/response contracts of the five
//! revoke-all shapes against any implementation at a base URL. It speaks HTTP only and
//! imports nothing of `sessiond`.
//!
//! `case` is the contract format (data files under `cases/`), `provision` the provisioning
//! protocol (PROVISIONING.md), `runner` the one place that sends contract requests,
//! `report` the output formats.

pub mod case;
pub mod provision;
pub mod report;
pub mod runner;
pub mod spec;

use case::{Case, Level};
use report::Format;
use runner::{CaseResult, Outcome, Target};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Replays the documented contracts of the five revoke-all shapes against an implementation.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "sessiond-conformance", version)]
pub struct Args {
    /// Base URL of the implementation under test.
    #[arg(long, env = "CONFORMANCE_TARGET")]
    pub target: String,
    /// Bearer token of the provisioning API (sessiond: its admin token).
    #[arg(long, env = "CONFORMANCE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// Path of the provisioning API under the target.
    #[arg(long, default_value = "/admin/v1")]
    pub admin_prefix: String,
    /// `documented` runs only what the public documents say; `all` adds sessiond's readings.
    #[arg(long, value_enum, default_value = "all")]
    pub level: LevelFilter,
    /// Only these shapes (repeatable): rownd, connect, flashback, rocketchat, okta.
    #[arg(long)]
    pub shape: Vec<String>,
    /// Only cases whose id contains this text (repeatable).
    #[arg(long)]
    pub case: Vec<String>,
    /// A file of case ids that are known divergences (one per line, `#` comments).
    #[arg(long)]
    pub expect_fail: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// List the selected cases and exit.
    #[arg(long)]
    pub list: bool,
    /// Where the case files are.
    #[arg(long)]
    pub cases: Option<PathBuf>,
    /// Where the OpenAPI specs every answer is validated against are.
    #[arg(long)]
    pub specs: Option<PathBuf>,
    /// Cases run at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

impl Args {
    pub fn into_options(self) -> Options {
        Options {
            target: self.target,
            admin_token: self.admin_token,
            admin_prefix: self.admin_prefix,
            cases_dir: self.cases.unwrap_or_else(default_cases_dir),
            specs_dir: self.specs.unwrap_or_else(default_specs_dir),
            level: self.level,
            shapes: self.shape,
            case_filter: self.case,
            expect_fail: self.expect_fail,
            format: self.format,
            junit: self.junit,
            list: self.list,
            concurrency: self.concurrency,
            case_timeout: Duration::from_secs(120),
        }
    }
}

/// What to run and how to report it.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: String,
    pub admin_token: String,
    pub admin_prefix: String,
    pub cases_dir: PathBuf,
    pub specs_dir: PathBuf,
    pub level: LevelFilter,
    pub shapes: Vec<String>,
    pub case_filter: Vec<String>,
    pub expect_fail: Option<PathBuf>,
    pub format: report::Format,
    pub junit: Option<PathBuf>,
    pub list: bool,
    pub concurrency: usize,
    pub case_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelFilter {
    Documented,
    All,
}

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURES: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_UNREACHABLE: i32 = 3;

/// The default cases directory, beside this crate's manifest.
pub fn default_cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cases")
}

/// The default OpenAPI specs directory, beside this crate's manifest.
pub fn default_specs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("specs")
}

const KEY_A_PRIVATE: &str = include_str!("../keys/a.pem");
const KEY_A_PUBLIC: &str = include_str!("../keys/a.pub.pem");
const KEY_B_PRIVATE: &str = include_str!("../keys/b.pem");
const COVERAGE: &str = include_str!("../coverage.json");

/// RSASSA-PKCS1-v1_5 with SHA-256 over `msg`.
pub fn sign_rs256(private_pem: &str, msg: &[u8]) -> anyhow::Result<Vec<u8>> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_pem.trim())?;
    Ok(rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
        .sign(msg)
        .to_vec())
}

/// One documented status or rule the suite should exercise.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct CoverageItem {
    pub id: String,
    pub shape: String,
    pub level: Level,
    pub what: String,
}

pub fn coverage_items() -> Vec<CoverageItem> {
    serde_json::from_str(COVERAGE).expect("coverage.json is valid; a test checks it")
}

/// Selects the cases to run; an error names a filter that matches nothing.
pub fn select(cases: Vec<Case>, opts: &Options) -> Result<Vec<Case>, String> {
    for s in &opts.shapes {
        if !cases.iter().any(|c| &c.shape == s) {
            return Err(format!("--shape {s}: no such shape"));
        }
    }
    let chosen: Vec<Case> = cases
        .into_iter()
        .filter(|c| opts.level == LevelFilter::All || c.level == Level::Documented)
        .filter(|c| opts.shapes.is_empty() || opts.shapes.contains(&c.shape))
        .filter(|c| {
            opts.case_filter.is_empty()
                || opts.case_filter.iter().any(|f| c.id.contains(f.as_str()))
        })
        .collect();
    if chosen.is_empty() {
        return Err("no case matches the filters".into());
    }
    Ok(chosen)
}

/// Reads a divergence file: one case id per line, `#` comments.
pub fn read_expect_fail(path: &std::path::Path) -> std::io::Result<BTreeSet<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

/// Runs the suite; returns the process exit code. Output goes to `out`.
pub async fn run(opts: Options, out: &mut dyn std::io::Write) -> i32 {
    let cases = match case::load(&opts.cases_dir) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(
                out,
                "error: loading cases from {}: {e:#}",
                opts.cases_dir.display()
            );
            return EXIT_USAGE;
        }
    };
    let cases = match select(cases, &opts) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            return EXIT_USAGE;
        }
    };
    if opts.list {
        for c in &cases {
            let _ = writeln!(out, "{}  [{:?}]  {}", c.id, c.level, c.title);
        }
        return EXIT_OK;
    }
    let expect_fail = match &opts.expect_fail {
        Some(p) => match read_expect_fail(p) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(out, "error: --expect-fail {}: {e}", p.display());
                return EXIT_USAGE;
            }
        },
        None => BTreeSet::new(),
    };
    let specs = match spec::Specs::load(&opts.specs_dir) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(
                out,
                "error: loading specs from {}: {e:#}",
                opts.specs_dir.display()
            );
            return EXIT_USAGE;
        }
    };
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            return EXIT_USAGE;
        }
    };
    let base = opts.target.trim_end_matches('/').to_owned();
    if reqwest::Url::parse(&base).is_err() {
        let _ = writeln!(out, "error: --target {base:?} is not a URL");
        return EXIT_USAGE;
    }
    let run_id = format!(
        "{:06x}",
        std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()))
                & 0xff_ffff
    );
    let target = Arc::new(Target {
        base: base.clone(),
        specs,
        documented_only: opts.level == LevelFilter::Documented,
        http: http.clone(),
        provisioner: provision::Provisioner {
            http,
            base,
            prefix: opts.admin_prefix.clone(),
            token: opts.admin_token.clone(),
        },
        run_id,
        key_a_private: KEY_A_PRIVATE.into(),
        key_a_public: KEY_A_PUBLIC.into(),
        key_b_private: KEY_B_PRIVATE.into(),
        timeout: opts.case_timeout,
    });
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, c) in cases.iter().cloned().enumerate() {
        let target = target.clone();
        let limit = limit.clone();
        set.spawn(async move {
            let _permit = limit
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            (i, target.run(&c, i).await)
        });
    }
    let mut results: Vec<Option<CaseResult>> = vec![None; cases.len()];
    while let Some(done) = set.join_next().await {
        match done {
            Ok((i, r)) => results[i] = Some(r),
            Err(e) => {
                let _ = writeln!(out, "error: a case task failed: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let results: Vec<(Case, CaseResult)> = cases
        .into_iter()
        .zip(results.into_iter().map(|r| r.expect("every case ran")))
        .collect();
    // Under `--level documented`, coverage counts only what the documents state.
    let items: Vec<CoverageItem> = coverage_items()
        .into_iter()
        .filter(|i| opts.level == LevelFilter::All || i.level == Level::Documented)
        .collect();
    let summary = report::Summary::of(&results, &expect_fail, &items);
    report::write(opts.format, &results, &expect_fail, &summary, out);
    if let Some(path) = &opts.junit
        && let Err(e) = std::fs::write(path, report::junit(&results, &expect_fail))
    {
        let _ = writeln!(out, "error: writing {}: {e}", path.display());
        return EXIT_USAGE;
    }
    if results
        .iter()
        .any(|(_, r)| matches!(r.outcome, Outcome::Error(_)))
    {
        EXIT_UNREACHABLE
    } else if summary.failed > 0 {
        EXIT_FAILURES
    } else {
        EXIT_OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_loads_and_covers_only_known_items() {
        let items: BTreeSet<String> = coverage_items().into_iter().map(|i| i.id).collect();
        let cases = case::load(&default_cases_dir()).expect("the shipped cases load and validate");
        assert!(cases.len() >= 50, "{} cases", cases.len());
        for c in &cases {
            for id in &c.covers {
                assert!(items.contains(id), "{} covers unknown item {id}", c.id);
            }
        }
        let covered: BTreeSet<&String> = cases.iter().flat_map(|c| &c.covers).collect();
        for id in &items {
            assert!(covered.contains(id), "no case covers {id}");
        }
    }

    #[test]
    fn the_shipped_specs_load() {
        spec::Specs::load(&default_specs_dir()).expect("specs load");
    }

    #[test]
    fn the_signing_keys_sign() {
        assert_eq!(sign_rs256(KEY_A_PRIVATE, b"x").expect("sign").len(), 256);
        assert_eq!(sign_rs256(KEY_B_PRIVATE, b"x").expect("sign").len(), 256);
    }
}
