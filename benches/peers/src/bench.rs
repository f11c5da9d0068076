//! The driver shared by both peers: load, then closed-loop runs interleaved across
//! concurrencies, each run's deletions put back untimed, and the report `sessiond bench`
//! writes.

use crate::{Common, pg, rd};
use anyhow::Context;
use sessiond_loadgen::load::{Measured, Tally};
use sessiond_loadgen::{report, shapes::Shape};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The data set's size: `accounts × apps` pairs of `tokens_per_pair` tokens.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub accounts: usize,
    pub apps: usize,
    pub tokens_per_pair: usize,
}

impl Spec {
    pub fn pairs(&self) -> usize {
        self.accounts * self.apps
    }

    pub fn tokens(&self) -> usize {
        self.pairs() * self.tokens_per_pair
    }

    /// Pair index → (account, app), numbered as the load generator numbers them.
    pub fn pair(&self, unit: usize) -> (i64, i32) {
        (
            i64::try_from(unit / self.apps).expect("account ids fit i64"),
            i32::try_from(unit % self.apps).expect("app ids fit i32"),
        )
    }
}

/// The token hash of the `i`-th token of (account, app): SHA-256 of the three numbers,
/// big-endian, which is what PostgreSQL's `sha256(int8send(a) || int4send(p) || int4send(i))`
/// computes when it loads the table.
pub fn token_hash(account: i64, app: i32, i: i32) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(account.to_be_bytes());
    h.update(app.to_be_bytes());
    h.update(i.to_be_bytes());
    h.finalize().into()
}

pub use sessiond_loadgen::permutation;

pub enum System {
    Postgres(String),
    Redis { url: String, flushdb: bool },
}

/// A connected peer: what setting up, loading and restoring go through.
enum Server {
    Postgres(pg::Pg),
    Redis(rd::Rd),
}

/// One worker's own connection.
pub enum Conn {
    Postgres(pg::Conn),
    Redis(rd::Conn),
}

impl Conn {
    /// Revokes one pair; the number of tokens deleted, or an error's short name.
    async fn revoke(&mut self, account: i64, app: i32) -> Result<usize, String> {
        match self {
            Conn::Postgres(c) => c.revoke(account, app).await,
            Conn::Redis(c) => c.revoke(account, app).await,
        }
    }

    /// The trivial round trip of the ceiling runs.
    async fn ping(&mut self) -> Result<(), String> {
        match self {
            Conn::Postgres(c) => c.ping().await,
            Conn::Redis(c) => c.ping().await,
        }
    }
}

impl Server {
    async fn connect(&self) -> anyhow::Result<Conn> {
        Ok(match self {
            Server::Postgres(s) => Conn::Postgres(s.connect().await?),
            Server::Redis(s) => Conn::Redis(s.connect().await?),
        })
    }

    async fn load(&mut self, spec: Spec) -> anyhow::Result<()> {
        match self {
            Server::Postgres(s) => s.load(spec).await,
            Server::Redis(s) => s.load(spec).await,
        }
    }

    async fn restore(&mut self, spec: Spec, pairs: &[(i64, i32)]) -> anyhow::Result<()> {
        match self {
            Server::Postgres(s) => s.restore(spec, pairs).await,
            Server::Redis(s) => s.restore(spec, pairs).await,
        }
    }
}

enum Job {
    /// Revoke the pairs of `order`, from a cursor shared by the run's workers.
    Revoke {
        spec: Spec,
        order: Arc<Vec<usize>>,
        cursor: Arc<AtomicUsize>,
    },
    Ceiling,
}

/// Consecutive failures after which a worker gives up (the server is gone).
const MAX_CONSECUTIVE_FAILURES: u32 = 50;

async fn worker(mut conn: Conn, job: Arc<Job>, start: Instant, deadline: Instant) -> Tally {
    let mut tally = Tally::new();
    let mut failures = 0;
    tokio::time::sleep_until(start).await;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let answer = match &*job {
            Job::Revoke {
                spec,
                order,
                cursor,
            } => {
                let Some(&unit) = order.get(cursor.fetch_add(1, Ordering::Relaxed)) else {
                    tally.ran_dry = true;
                    break;
                };
                let (account, app) = spec.pair(unit);
                match conn.revoke(account, app).await {
                    Ok(n) if n == spec.tokens_per_pair => Ok(()),
                    // A live pair that lost tokens, or none: the server answered, wrongly.
                    Ok(n) => Err((format!("rows={n}"), false)),
                    Err(e) => Err((e, true)),
                }
            }
            Job::Ceiling => conn.ping().await.map_err(|e| (e, true)),
        };
        let took = t0.elapsed();
        match answer {
            Ok(()) => {
                failures = 0;
                tally.ok += 1;
                let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                tally.hist.saturating_record(us);
            }
            Err((what, transport)) => {
                *tally.errors.entry(what).or_default() += 1;
                if transport {
                    failures += 1;
                    if failures >= MAX_CONSECUTIVE_FAILURES {
                        break;
                    }
                }
            }
        }
    }
    tally
}

/// `c` workers, each on its own connection opened before the clock starts, for `duration`.
async fn timed(
    server: &Server,
    c: usize,
    job: Job,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let mut conns = Vec::with_capacity(c);
    for _ in 0..c {
        conns.push(server.connect().await?);
    }
    let job = Arc::new(job);
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + duration;
    let mut set = JoinSet::new();
    for conn in conns {
        set.spawn(worker(conn, job.clone(), start, deadline));
    }
    let mut tally = Tally::new();
    while let Some(t) = set.join_next().await {
        tally.merge(&t?);
    }
    Ok(Measured {
        groups: vec![tally],
        elapsed: Instant::now().saturating_duration_since(start),
    })
}

/// Runs the benchmark and prints the table. `Ok(false)` when some revoke went wrong.
pub async fn run(system: System, args: Common) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.accounts > 0 && args.apps > 0 && args.tokens_per_pair > 0,
        "--accounts, --apps and --tokens-per-pair must be at least 1"
    );
    let sched = &args.schedule;
    sched.check()?;
    let spec = Spec {
        accounts: args.accounts,
        apps: args.apps,
        tokens_per_pair: args.tokens_per_pair,
    };
    let (mut server, target) = match system {
        System::Postgres(url) => (Server::Postgres(pg::Pg::open(&url).await?), url),
        System::Redis { url, flushdb } => (Server::Redis(rd::Rd::open(&url, flushdb).await?), url),
    };
    // The durability the figures were taken under, as the server reports it.
    let (name, settings) = match &server {
        Server::Postgres(s) => s.describe().await?,
        Server::Redis(s) => s.describe().await?,
    };
    let label = format!("{} ({settings})", args.label.as_deref().unwrap_or(&name));
    eprintln!("{label}");
    let before = sched.probe().await;

    let t0 = std::time::Instant::now();
    server.load(spec).await.context("loading")?;
    let loaded_per_sec = spec.tokens() as f64 / t0.elapsed().as_secs_f64();
    eprintln!(
        "loaded {} tokens in {:.1} s",
        spec.tokens(),
        t0.elapsed().as_secs_f64()
    );

    let units = spec.pairs();
    let order = permutation(units, sched.seed);
    let duration = sched.duration();
    let mut runs = Vec::new();
    let mut pos = 0usize;
    for rep in 1..=sched.repeat {
        for &c in &sched.concurrency {
            if args.ceiling {
                let m = timed(&server, c, Job::Ceiling, duration).await?;
                runs.push(report::Run::new("ceiling", c, c, rep, &m.groups[0], &m));
            }
            // From where the last run stopped, around to where it started: every pair a run
            // revoked was restored since.
            let rotated: Arc<Vec<usize>> =
                Arc::new(order[pos..].iter().chain(&order[..pos]).copied().collect());
            let cursor = Arc::new(AtomicUsize::new(0));
            let job = Job::Revoke {
                spec,
                order: rotated.clone(),
                cursor: cursor.clone(),
            };
            let m = timed(&server, c, job, duration).await?;
            let run = report::Run::new("revoke", c, c, rep, &m.groups[0], &m);
            eprintln!(
                "{c} connections, repetition {rep}: {} revokes/s",
                report::thousands(run.per_sec)
            );
            runs.push(run);
            let consumed = cursor.load(Ordering::Relaxed).min(rotated.len());
            let pairs: Vec<(i64, i32)> =
                rotated[..consumed].iter().map(|&u| spec.pair(u)).collect();
            server.restore(spec, &pairs).await.context("restoring")?;
            pos = (pos + consumed) % units;
        }
    }
    let after = sched.probe().await;

    let rep = report::Report {
        label,
        target,
        // Rownd's signout is the per-app revoke-all: every token of one (account,
        // application) pair, which is what both peers time.
        shape: Shape::Rownd,
        dataset: report::Dataset {
            accounts: spec.accounts,
            applications: spec.apps,
            sessions_per_pair: spec.tokens_per_pair,
            sessions: spec.tokens(),
            session_kind: "refresh-token".into(),
            seeded_per_sec: loaded_per_sec,
        },
        seconds_per_run: sched.seconds,
        repetitions: sched.repeat,
        fsync_probe_before: before,
        fsync_probe_after: after,
        rows: report::rows(&runs, &sched.concurrency),
        runs,
    };
    println!("{}", report::table(&rep));
    sched.write(&rep)?;
    Ok(rep
        .runs
        .iter()
        .filter(|r| r.what == "revoke")
        .all(|r| r.errors.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_has_no_repeats() {
        for (n, seed) in [(0, 1), (1, 1), (2, 7), (1000, 1), (50_000, 42)] {
            let mut p = permutation(n, seed);
            assert_eq!(p.len(), n);
            p.sort_unstable();
            assert!(p.iter().copied().eq(0..n), "n={n} seed={seed}");
        }
    }

    #[test]
    fn permutation_follows_the_seed() {
        assert_eq!(permutation(1000, 3), permutation(1000, 3));
        assert_ne!(permutation(1000, 3), permutation(1000, 4));
        assert_ne!(permutation(1000, 3), (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn pairs_are_numbered_account_major() {
        let s = Spec {
            accounts: 10,
            apps: 5,
            tokens_per_pair: 2,
        };
        assert_eq!(s.pair(0), (0, 0));
        assert_eq!(s.pair(7), (1, 2));
        assert_eq!(s.pair(49), (9, 4));
        assert_eq!(s.tokens(), 100);
    }

    #[test]
    fn token_hashes_differ_per_token() {
        let a = token_hash(1, 2, 0);
        assert_ne!(a, token_hash(1, 2, 1));
        assert_ne!(a, token_hash(2, 1, 0));
        assert_eq!(a, token_hash(1, 2, 0));
    }
}
