//! The load generator behind `sessiond bench`: revoke-all throughput and latency of any
//! implementation that speaks a shape and the provisioning protocol of the conformance suite
//! (`conformance/PROVISIONING.md`). It speaks HTTP only and imports nothing of `sessiond`.
//!
//! `dataset` seeds (and restores) the data set, `shapes` says what each worker sends,
//! `load` drives closed-loop connections, `probe` measures the disk's fsync rate, `report`
//! prints the table and writes JSON and SVG.
//!
//! The method follows `peer-baselines.md`: targets drawn without repetition from a
//! pseudo-random permutation, so every timed revoke hits live tokens; what a run revoked is
//! put back, untimed, before the next; repetitions interleaved across concurrencies; the
//! trivial-endpoint ceiling measured at each concurrency in the same sitting; an fsync probe
//! before and after.

pub mod dataset;
pub mod load;
pub mod probe;
pub mod report;
pub mod shapes;

use anyhow::Context;
use sessiond_conformance::provision::Provisioner;
use shapes::Shape;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

/// The public key registered as each application's Connect client-auth key (the
/// provisioning protocol asks for one; the load generator never signs with it).
pub const CONNECT_PUBLIC_KEY: &str = include_str!("../../../conformance/keys/a.pub.pem");

/// Drives revoke-all of one shape against an implementation at a base URL, at chosen
/// concurrencies, and reports throughput and latency percentiles.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "sessiond-bench", version)]
pub struct Args {
    /// Base URL of the implementation under test (http://host:port).
    #[arg(long, env = "SESSIOND_BENCH_TARGET")]
    pub target: String,
    /// Bearer token of the provisioning API (sessiond: its admin token).
    #[arg(long, env = "SESSIOND_BENCH_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// Path of the provisioning API under the target.
    #[arg(long, default_value = "/admin/v1")]
    pub admin_prefix: String,
    /// The revoke-all to drive. rownd, flashback and rocketchat revoke one (account,
    /// application) pair; okta one account in all its applications.
    #[arg(long, value_enum, default_value = "rownd")]
    pub shape: Shape,
    /// Accounts in the data set.
    #[arg(long, default_value_t = 100_000)]
    pub accounts: usize,
    /// Applications in the data set; every account has sessions in each.
    #[arg(long, default_value_t = 5)]
    pub apps: usize,
    /// Sessions of each (account, application) pair.
    #[arg(long, default_value_t = 2)]
    pub sessions_per_pair: usize,
    /// A trivial endpoint measured over the same connections before each revoke run: the
    /// load generator's own ceiling on this machine. Empty to skip.
    #[arg(long, default_value = "/healthz")]
    pub ceiling_path: String,
    /// Extra connections checking tokens (the provisioning protocol's `POST /introspect`)
    /// while the revocations run.
    #[arg(long, default_value_t = 0)]
    pub check_connections: usize,
    /// Extra connections refreshing tokens (Rownd's `POST /hub/auth/token`, with rotation)
    /// while the revocations run, over accounts no revoke touches.
    #[arg(long, default_value_t = 0)]
    pub refresh_connections: usize,
    /// After each run's revocations are put back, `POST` this path of the provisioning API
    /// (under `--admin-prefix`) and wait for its answer, untimed. For sessiond, `/sweep`
    /// with the server's `--tombstone-retention 0s` removes what the run revoked: the
    /// counterpart of the `VACUUM` the peers run between theirs. Empty: nothing.
    #[arg(long, default_value = "")]
    pub between_runs_post: String,
    /// Parallel provisioning calls while seeding and restoring.
    #[arg(long, default_value_t = 64)]
    pub seed_connections: usize,
    /// Name of the system under test in the report (e.g. "sessiond fsync").
    #[arg(long, default_value = "target")]
    pub label: String,
    #[command(flatten)]
    pub schedule: Schedule,
}

/// When and how often to measure, and where the results go: the same for `sessiond bench`
/// and `sessiond-peers`, so their reports line up.
#[derive(clap::Args, Debug, Clone)]
pub struct Schedule {
    /// Connections of the revoking workers, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 32])]
    pub concurrency: Vec<usize>,
    /// Length of each timed run, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Repetitions of each concurrency (interleaved: 1, 8, 32, 1, 8, 32, ...).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Seed of the permutation the targets are drawn from.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw throughput and p99 against concurrency as SVG here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Directory for the fsync probe: on the disk the target writes to (default: the
    /// system's temporary directory).
    #[arg(long)]
    pub fsync_probe_dir: Option<PathBuf>,
    /// Skip the fsync probe.
    #[arg(long)]
    pub no_fsync_probe: bool,
}

impl Schedule {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.concurrency.is_empty() && self.concurrency.iter().all(|&c| c > 0),
            "--concurrency takes positive numbers"
        );
        anyhow::ensure!(
            self.seconds > 0.0 && self.seconds.is_finite(),
            "--seconds must be positive"
        );
        anyhow::ensure!(self.repeat > 0, "--repeat must be at least 1");
        Ok(())
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    /// The fsync probe, unless `--no-fsync-probe`.
    pub async fn probe(&self) -> Option<probe::Probe> {
        if self.no_fsync_probe {
            return None;
        }
        probe::fsync_probe_in(self.fsync_probe_dir.clone()).await
    }

    /// Writes the report where `--json` and `--svg` say.
    pub fn write(&self, rep: &report::Report) -> anyhow::Result<()> {
        if let Some(p) = &self.json {
            std::fs::write(p, serde_json::to_string_pretty(rep)?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        if let Some(p) = &self.svg {
            report::svg(rep, p).with_context(|| format!("drawing {}", p.display()))?;
        }
        Ok(())
    }
}

/// The order a run draws its targets in: every unit once. splitmix64 drives a Fisher–Yates
/// shuffle, reproducible from `--seed` (`sessiond-peers` draws the same order).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..n).rev() {
        let j = usize::try_from(next() % (i as u64 + 1)).expect("below n");
        v.swap(i, j);
    }
    v
}

/// Runs the benchmark; prints the table to `out`. `Ok(false)` when some request got an
/// unexpected answer (the figures are printed anyway).
pub async fn run(args: Args, out: &mut dyn std::io::Write) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.accounts > 0 && args.apps > 0 && args.sessions_per_pair > 0,
        "--accounts, --apps and --sessions-per-pair must be at least 1"
    );
    let sched = &args.schedule;
    sched.check()?;
    let target = load::Target::parse(&args.target).context("--target")?;
    let prov = Arc::new(Provisioner {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(args.seed_connections)
            .build()?,
        base: args.target.trim_end_matches('/').to_owned(),
        prefix: args.admin_prefix.clone(),
        token: args.admin_token.clone(),
    });
    let before = sched.probe().await;

    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let spec = dataset::Spec {
        accounts: args.accounts,
        apps: args.apps,
        sessions_per_pair: args.sessions_per_pair,
        kind: args.shape.session_kind(),
        parallel: args.seed_connections,
        run_id,
    };
    let t0 = Instant::now();
    let ds = dataset::seed(&prov, &spec).await.context("seeding")?;
    let seeded_per_sec = ds.sessions() as f64 / t0.elapsed().as_secs_f64();
    eprintln!(
        "seeded {} sessions in {:.1} s",
        ds.sessions(),
        t0.elapsed().as_secs_f64()
    );
    let mut ds = Arc::new(ds);

    // Accounts reserved for refresh traffic: never a revoke target.
    let reserved = if args.refresh_connections > 0 {
        (args.refresh_connections * 64).min(args.accounts / 2)
    } else {
        0
    };
    let first_reserved = args.accounts - reserved;
    let units = if args.shape.per_account() {
        first_reserved
    } else {
        first_reserved * args.apps
    };
    anyhow::ensure!(units > 0, "no account left to revoke");
    let order = permutation(units, sched.seed);
    let api_token = if args.shape == Shape::Okta {
        Some(
            prov.create_api_token(&["okta.users.manage".to_owned()], Some(1_000_000_000))
                .await?,
        )
    } else {
        None
    };
    // Refresh workers share out the reserved pairs' refresh tokens; each keeps its own
    // across runs (a rotated-away token presented again would revoke its family).
    let mut refresh_tokens: Vec<Vec<(String, String)>> = vec![Vec::new(); args.refresh_connections];
    for (i, account) in (first_reserved..args.accounts).enumerate() {
        for app in 0..args.apps {
            let p = ds.pair(account, app);
            if let Some(t) = &ds.pairs[p].refresh {
                let w = (i * args.apps + app) % args.refresh_connections.max(1);
                refresh_tokens[w].push((ds.apps[app].base_path.clone(), t.clone()));
            }
        }
    }

    let refresh_tokens: Vec<shapes::Tokens> = refresh_tokens
        .into_iter()
        .map(|t| Arc::new(std::sync::Mutex::new(t)))
        .collect();
    let duration = sched.duration();
    let mut runs = Vec::new();
    let mut pos = 0usize;
    let mut rng = sched.seed | 1;
    for rep in 1..=sched.repeat {
        for &c in &sched.concurrency {
            if !args.ceiling_path.is_empty() {
                let sources: Vec<Box<dyn load::Source>> = (0..c)
                    .map(|_| {
                        Box::new(shapes::Ceiling {
                            path: args.ceiling_path.clone(),
                        }) as Box<dyn load::Source>
                    })
                    .collect();
                let m = load::run(&target, vec![sources], duration).await?;
                runs.push(report::Run::new("ceiling", c, c, rep, &m.groups[0], &m));
            }
            // This run's targets: the permutation from where the last run stopped, around
            // to where it started (every unit a run revoked was restored since).
            let rotated: Arc<Vec<usize>> =
                Arc::new(order[pos..].iter().chain(&order[..pos]).copied().collect());
            let cursor = Arc::new(AtomicUsize::new(0));
            let revokers: Vec<Box<dyn load::Source>> = (0..c)
                .map(|_| {
                    Box::new(shapes::Revoke {
                        shape: args.shape,
                        ds: ds.clone(),
                        order: rotated.clone(),
                        cursor: cursor.clone(),
                        api_token: api_token.clone(),
                    }) as Box<dyn load::Source>
                })
                .collect();
            let checkers: Vec<Box<dyn load::Source>> = (0..args.check_connections)
                .map(|_| {
                    rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    Box::new(shapes::Check {
                        ds: ds.clone(),
                        admin_prefix: args.admin_prefix.clone(),
                        admin_token: args.admin_token.clone(),
                        rng: rng | 1,
                    }) as Box<dyn load::Source>
                })
                .collect();
            let refreshers: Vec<Box<dyn load::Source>> = refresh_tokens
                .iter()
                .map(|t| {
                    Box::new(shapes::Refresh {
                        tokens: t.clone(),
                        at: 0,
                    }) as Box<dyn load::Source>
                })
                .collect();
            let refresh_workers = refreshers.len();
            let m = load::run(&target, vec![revokers, checkers, refreshers], duration).await?;
            let consumed = cursor
                .load(std::sync::atomic::Ordering::Relaxed)
                .min(rotated.len());
            runs.push(report::Run::new("revoke", c, c, rep, &m.groups[0], &m));
            if args.check_connections > 0 {
                runs.push(report::Run::new(
                    "check",
                    c,
                    args.check_connections,
                    rep,
                    &m.groups[1],
                    &m,
                ));
            }
            if refresh_workers > 0 {
                runs.push(report::Run::new(
                    "refresh",
                    c,
                    refresh_workers,
                    rep,
                    &m.groups[2],
                    &m,
                ));
            }
            eprintln!(
                "{} connections, repetition {rep}: {} revokes/s",
                c,
                report::thousands(
                    runs.iter()
                        .rev()
                        .find(|r| r.what == "revoke")
                        .map_or(0.0, |r| r.per_sec)
                )
            );
            // Put back what the run revoked (untimed).
            let ds_mut = Arc::get_mut(&mut ds).context("a worker still holds the data set")?;
            let pairs: Vec<usize> = rotated[..consumed]
                .iter()
                .flat_map(|&u| {
                    if args.shape.per_account() {
                        (0..args.apps)
                            .map(|a| u * args.apps + a)
                            .collect::<Vec<_>>()
                    } else {
                        vec![u]
                    }
                })
                .collect();
            dataset::restore(&prov, ds_mut, &pairs, args.seed_connections).await?;
            if !args.between_runs_post.is_empty() {
                let answer = prov
                    .post(&args.between_runs_post)
                    .await
                    .context("--between-runs-post")?;
                eprintln!("between runs: POST {} → {answer}", args.between_runs_post);
            }
            pos = (pos + consumed) % units;
        }
    }
    let after = sched.probe().await;

    let rows = report::rows(&runs, &sched.concurrency);
    let rep = report::Report {
        label: args.label.clone(),
        target: args.target.clone(),
        shape: args.shape,
        dataset: report::Dataset {
            accounts: args.accounts,
            applications: args.apps,
            sessions_per_pair: args.sessions_per_pair,
            sessions: ds.sessions(),
            session_kind: ds.kind.to_owned(),
            seeded_per_sec,
        },
        seconds_per_run: sched.seconds,
        repetitions: sched.repeat,
        fsync_probe_before: before,
        fsync_probe_after: after,
        rows,
        runs,
    };
    writeln!(out, "{}", report::table(&rep))?;
    sched.write(&rep)?;
    let clean = rep
        .runs
        .iter()
        .filter(|r| r.what != "ceiling")
        .all(|r| r.errors.is_empty());
    Ok(clean)
}
