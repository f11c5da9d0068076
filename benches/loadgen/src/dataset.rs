//! The data set under test, created on the target through the provisioning protocol
//! (`conformance/PROVISIONING.md`): applications, accounts without passwords, and
//! `sessions_per_pair` login (or OAuth) sessions for every (account, application) pair.
//! Also puts back, untimed, what a run revoked, so every timed revoke hits live tokens.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use sessiond_conformance::provision::Provisioner;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// An application of the data set, as the provisioning answer described it.
#[derive(Debug, Clone)]
pub struct App {
    pub id: String,
    /// Where its shapes are served, relative to the target (sessiond: `/apps/{id}`).
    pub base_path: String,
    pub rownd_key: String,
    pub rownd_secret: String,
}

/// The tokens of the first session of a pair: what a revoke, a check or a refresh presents.
#[derive(Debug, Clone, Default)]
pub struct PairTokens {
    pub access: Option<String>,
    pub login: Option<String>,
    pub refresh: Option<String>,
}

#[derive(Debug)]
pub struct Dataset {
    pub apps: Vec<App>,
    /// Account ids on the wire, by account index.
    pub accounts: Vec<String>,
    /// Indexed by `pair(account, app)`.
    pub pairs: Vec<PairTokens>,
    pub sessions_per_pair: usize,
    /// `login` or `oauth`: what the sessions are.
    pub kind: &'static str,
}

impl Dataset {
    pub fn pair(&self, account: usize, app: usize) -> usize {
        account * self.apps.len() + app
    }

    pub fn sessions(&self) -> usize {
        self.pairs.len() * self.sessions_per_pair
    }
}

/// A progress bar on a terminal (stderr), nothing in a pipe or a log.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>18} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta})",
        )
        .expect("the template is valid"),
    );
    pb.set_message(what.to_owned());
    pb
}

/// Runs `f` over `0..n` with at most `parallel` calls in flight; fails on the first error.
/// Call `i` advances the progress bar by `weight(i)`.
async fn for_each<T, F, Fut>(
    n: usize,
    parallel: usize,
    pb: &ProgressBar,
    weight: impl Fn(usize) -> u64,
    f: F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let mut set = JoinSet::new();
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await.expect("never closed");
        let fut = f(i);
        set.spawn(async move {
            let r = fut.await;
            drop(permit);
            (i, r)
        });
        while let Some(done) = set.try_join_next() {
            let (i, r) = done.context("a provisioning task panicked")?;
            out[i] = Some(r?);
            pb.inc(weight(i));
        }
    }
    while let Some(done) = set.join_next().await {
        let (i, r) = done.context("a provisioning task panicked")?;
        out[i] = Some(r?);
        pb.inc(weight(i));
    }
    pb.finish_and_clear();
    Ok(out
        .into_iter()
        .map(|o| o.expect("every index was joined"))
        .collect())
}

/// A provisioning call, tried up to three times: a keep-alive connection the target closed
/// while idle fails the next request sent on it, which is not the target refusing. (A
/// session created twice is harmless: a pair with one more live session.)
async fn retried<T, F, Fut>(f: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut last = None;
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
        }
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("three attempts were made"))
}

fn field(v: &Value, name: &str) -> Option<String> {
    v[name].as_str().map(str::to_owned)
}

fn tokens_of(v: &Value) -> PairTokens {
    PairTokens {
        access: field(v, "access_token"),
        login: field(v, "login_token"),
        refresh: field(v, "refresh_token"),
    }
}

/// Sessions per `POST /sessions/batch` (sessiond takes up to 500).
const BATCH: usize = 250;
/// Batches in flight at once: each is a large write on the target, so a few suffice.
const BATCH_PARALLEL: usize = 4;

fn batch_len(total: usize, i: usize) -> usize {
    BATCH.min(total - i * BATCH)
}

/// Batch `i` of the calls, in one request: the tokens of each session it created, in
/// order; `None` if the target lacks the batch call.
async fn batch(
    prov: &Provisioner,
    calls: &[(String, String)],
    i: usize,
    kind: &str,
) -> anyhow::Result<Option<Vec<PairTokens>>> {
    let chunk = &calls[i * BATCH..i * BATCH + batch_len(calls.len(), i)];
    let entries: Vec<(&str, Option<&str>, &str)> = chunk
        .iter()
        .map(|(account, app)| (account.as_str(), Some(app.as_str()), kind))
        .collect();
    // Only the tokens are kept: a million whole answers held until seeding ends took
    // gigabytes of the load generator's memory.
    Ok(retried(|| prov.create_sessions(&entries))
        .await?
        .map(|answers| answers.iter().map(tokens_of).collect()))
}

/// What sessions to create, where.
struct Sessions<'a> {
    apps: &'a [App],
    accounts: &'a [String],
    sessions_per_pair: usize,
    kind: &'static str,
    parallel: usize,
}

/// Creates `sessions_per_pair` sessions of `kind` for each pair; returns the first one's
/// tokens of each.
async fn create_sessions(
    prov: &Arc<Provisioner>,
    how: Sessions<'_>,
    units: &[usize],
    what: &str,
) -> anyhow::Result<Vec<PairTokens>> {
    let Sessions {
        apps,
        accounts,
        sessions_per_pair,
        kind,
        parallel,
    } = how;
    let calls: Arc<Vec<(String, String)>> = Arc::new(
        units
            .iter()
            .flat_map(|&p| {
                let (account, app) = (p / apps.len(), p % apps.len());
                (0..sessions_per_pair)
                    .map(move |_| (accounts[account].clone(), apps[app].id.clone()))
            })
            .collect(),
    );
    let pb = progress(calls.len() as u64, what);
    let batches = (calls.len() > 1).then(|| calls.len().div_ceil(BATCH));
    let batched = match batches {
        Some(n) => {
            // The first batch says whether the target has the batch call at all.
            let first = batch(prov, &calls, 0, kind).await?;
            match first {
                Some(first) => {
                    pb.inc(first.len() as u64);
                    let rest = for_each(
                        n - 1,
                        parallel.clamp(1, BATCH_PARALLEL),
                        &pb,
                        |i| batch_len(calls.len(), i + 1) as u64,
                        |i| {
                            let prov = prov.clone();
                            let calls = calls.clone();
                            async move {
                                batch(&prov, &calls, i + 1, kind)
                                    .await?
                                    .context("the batch call went away")
                            }
                        },
                    )
                    .await?;
                    Some(std::iter::once(first).chain(rest).flatten().collect())
                }
                None => None,
            }
        }
        None => None,
    };
    let answers: Vec<PairTokens> = match batched {
        Some(a) => a,
        None => {
            for_each(
                calls.len(),
                parallel,
                &pb,
                |_| 1,
                |i| {
                    let prov = prov.clone();
                    let calls = calls.clone();
                    async move {
                        let (account, app) = &calls[i];
                        retried(|| prov.create_session(account, Some(app), kind))
                            .await
                            .map(|answer| tokens_of(&answer))
                    }
                },
            )
            .await?
        }
    };
    let mut out = Vec::with_capacity(units.len());
    for t in answers.into_iter().step_by(sessions_per_pair.max(1)) {
        if t.access.is_none() && t.login.is_none() {
            bail!("a `{kind}` session answer carries no access_token or login_token");
        }
        out.push(t);
    }
    Ok(out)
}

pub struct Spec {
    pub accounts: usize,
    pub apps: usize,
    pub sessions_per_pair: usize,
    pub kind: &'static str,
    pub parallel: usize,
    /// Unique per run, so a data set never collides with an earlier one on the target.
    pub run_id: String,
}

/// Creates the whole data set on the target.
pub async fn seed(prov: &Arc<Provisioner>, spec: &Spec) -> anyhow::Result<Dataset> {
    let mut apps = Vec::with_capacity(spec.apps);
    for i in 0..spec.apps {
        let id = format!("lg{}-app{i}", spec.run_id);
        let v = prov
            .create_app(&id, crate::CONNECT_PUBLIC_KEY, None, None)
            .await?;
        apps.push(App {
            base_path: field(&v, "base_path").unwrap_or_default(),
            rownd_key: field(&v, "rownd_app_key").context("no rownd_app_key")?,
            rownd_secret: field(&v, "rownd_app_secret").context("no rownd_app_secret")?,
            id: field(&v, "id").unwrap_or(id),
        });
    }
    let pb = progress(spec.accounts as u64, "accounts");
    let run_id = spec.run_id.clone();
    let accounts = for_each(
        spec.accounts,
        spec.parallel,
        &pb,
        |_| 1,
        |i| {
            let prov = prov.clone();
            let login = format!("lg{run_id}-user{i}");
            async move {
                let v = retried(|| prov.create_account_without_password(&login)).await?;
                field(&v, "id").context("account answer has no `id`")
            }
        },
    )
    .await?;
    eprintln!(
        "created {} accounts in {:.1} s",
        accounts.len(),
        pb.elapsed().as_secs_f64()
    );
    let units: Vec<usize> = (0..spec.accounts * spec.apps).collect();
    let how = Sessions {
        apps: &apps,
        accounts: &accounts,
        sessions_per_pair: spec.sessions_per_pair,
        kind: spec.kind,
        parallel: spec.parallel,
    };
    let pairs = create_sessions(prov, how, &units, "sessions").await?;
    Ok(Dataset {
        apps,
        accounts,
        pairs,
        sessions_per_pair: spec.sessions_per_pair,
        kind: spec.kind,
    })
}

/// Gives the pairs a run revoked new live sessions (and their tokens), untimed.
pub async fn restore(
    prov: &Arc<Provisioner>,
    ds: &mut Dataset,
    pairs: &[usize],
    parallel: usize,
) -> anyhow::Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let how = Sessions {
        apps: &ds.apps,
        accounts: &ds.accounts,
        sessions_per_pair: ds.sessions_per_pair,
        kind: ds.kind,
        parallel,
    };
    let fresh = create_sessions(prov, how, pairs, "restoring").await?;
    for (&p, t) in pairs.iter().zip(fresh) {
        ds.pairs[p] = t;
    }
    Ok(())
}
