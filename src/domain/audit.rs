//! The audit log: every revocation is recorded with the revocation itself (the same sync
//! makes both durable), newest first through the admin API.
//!
//! A revoke-all writes watermarks and never visits the sessions it kills, so its cost does
//! not grow with their number. What it killed is counted afterwards, off the request path,
//! by one background task of low priority (see `start_background`): the sessions its
//! watermarks cover that were alive just before it, judged against the watermarks that could
//! cover them as they were then (kept in the entry until the count is done). Entries left uncounted by a stop are counted at the next start.
//! Single-session revocations, and Connect's revoke-all (whose answer is the count), are
//! recorded already counted.

use super::revoke::{covers, pairs_of};
use super::{Result, Sessiond};
use crate::metrics::ShapeLabel;
use crate::model::*;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use tokio::sync::{Notify, mpsc};

/// The background count runs once no revocation has come for this long...
const QUIET: std::time::Duration = std::time::Duration::from_millis(200);
/// ...or once this many wait (each waiting count holds 28 bytes).
const MAX_BACKLOG: usize = 1 << 20;
/// A count in progress looks for new revocations after this many entries, and if some
/// came, leaves the rest for the next quiet moment (unless `MAX_BACKLOG` would then wait).
const YIELD_EVERY: usize = 256;

/// The background count's queue, and how much of it is outstanding.
#[derive(Default)]
pub(super) struct AuditQueue {
    tx: OnceLock<mpsc::UnboundedSender<(AccountId, u64)>>,
    outstanding: AtomicU64,
    /// Counts ever queued: a count in progress sees from it that revocations came.
    queued: AtomicU64,
    /// Counts finished (the leftovers' job included), in the order they were queued.
    finished: AtomicU64,
    /// Woken whenever counts finish.
    progress: Notify,
    /// Explicit sweeps waiting for the counts queued before them: the background task
    /// shares it, and while it is not zero counts neither wait for a quiet moment nor stop
    /// for revocations.
    urgent: Arc<Urgent>,
    idle: Notify,
    /// Accounts with a revoke-all of this process not counted yet, and how many: written
    /// under the account's lock with the entry, so the sweeper, under the same lock, never
    /// removes a session a count is still to read.
    uncounted: std::sync::Mutex<std::collections::HashMap<AccountId, u32>>,
    /// Set once the entries a previous run left pending are counted.
    leftovers_counted: std::sync::atomic::AtomicBool,
    leftovers: Notify,
}

/// How many explicit sweeps wait for counts, and the background task's wake-up when one
/// starts to.
#[derive(Default)]
struct Urgent {
    sweeps: AtomicUsize,
    wake: Notify,
}

impl Urgent {
    fn now(&self) -> bool {
        self.sweeps.load(Ordering::SeqCst) > 0
    }
}

/// One explicit sweep's wait, undone when it ends or is dropped (its request went away).
struct UrgentWait<'a>(&'a Urgent);

impl<'a> UrgentWait<'a> {
    fn new(u: &'a Urgent) -> Self {
        u.sweeps.fetch_add(1, Ordering::SeqCst);
        u.wake.notify_one();
        UrgentWait(u)
    }
}

impl Drop for UrgentWait<'_> {
    fn drop(&mut self) {
        self.0.sweeps.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The API an operation name belongs to (`okta.revoke_session` → `okta`).
pub fn shape_of(operation: &str) -> &str {
    operation.split('.').next().unwrap_or(operation)
}

/// The metrics label of the API an operation belongs to.
pub(super) fn label(operation: &str) -> ShapeLabel {
    match shape_of(operation) {
        "rownd" => ShapeLabel::rownd,
        "connect" => ShapeLabel::connect,
        "flashback" => ShapeLabel::flashback,
        "rocketchat" => ShapeLabel::rocketchat,
        "okta" => ShapeLabel::okta,
        "admin" => ShapeLabel::admin,
        _ => ShapeLabel::other,
    }
}

/// How an entry names what a revoke-all covered.
fn scope_name(targets: &[(Scope, SessionKind)]) -> (&'static str, Option<AppKey>) {
    let no_app = targets.iter().any(|(s, _)| *s == Scope::NoApp);
    let all_apps = targets.iter().any(|(s, _)| *s == Scope::AllApps);
    let app = targets.iter().find_map(|(s, _)| match s {
        Scope::App(a) => Some(*a),
        _ => None,
    });
    let name = match (no_app, all_apps) {
        (true, true) => "idp_and_all_apps",
        (true, false) => "idp",
        (false, true) => "all_apps",
        (false, false) => "app",
    };
    (name, app)
}

/// What a revoke-all killed: counted under its lock (Connect), or to count later against
/// the watermarks as they were just before it.
pub(super) enum Count {
    Known(AuditCount),
    Later(Vec<Watermark>),
}

/// What the revoke-all of `revoke.rs` hands over to be recorded.
pub(super) struct RevokeAllRecord<'a> {
    pub seq: u64,
    pub at: Millis,
    pub operation: &'a str,
    pub credential: Credential,
    pub account: &'a AccountId,
    pub targets: &'a [(Scope, SessionKind)],
    pub except: Option<SessionId>,
    pub devices_forgotten: usize,
    pub count: Count,
}

impl Sessiond {
    /// Builds the entry of a revoke-all and has `write` write it with the revocation (under
    /// the account's lock, before the sync that acknowledges the revocation).
    pub(super) fn record_revoke_all(
        &self,
        r: RevokeAllRecord<'_>,
        write: impl FnOnce(AuditEntry) -> Result<()>,
    ) -> Result<()> {
        let (scope, app) = scope_name(r.targets);
        let uncounted = matches!(r.count, Count::Later(_));
        let (killed, pending) = match r.count {
            Count::Known(c) => (Some(c), None),
            Count::Later(before) => (
                None,
                Some(PendingCount {
                    targets: r.targets.to_vec(),
                    upto: r.seq,
                    except: r.except,
                    before,
                }),
            ),
        };
        // Before the entry is written: the count of a previous run's leftovers reads the
        // whole log and may count this entry as soon as it is there.
        if uncounted {
            *self.uncounted().entry(*r.account).or_default() += 1;
        }
        let written = write(AuditEntry {
            seq: r.seq,
            at: r.at,
            operation: r.operation.to_owned(),
            credential: r.credential,
            account: *r.account,
            app,
            scope: scope.into(),
            session: None,
            devices_forgotten: r.devices_forgotten as u64,
            killed,
            pending,
        });
        if written.is_err() && uncounted {
            self.counted(r.account);
        }
        written?;
        Ok(())
    }

    /// Writes the entry of a single-session revocation (under the account's lock).
    pub(super) fn record_session_revocation(
        &self,
        s: &Session,
        operation: &str,
        credential: Credential,
        killed: bool,
    ) -> Result<AuditCount> {
        let seq = self.store().next_seq()?;
        let count = AuditCount {
            sessions: u64::from(killed),
            refresh_tokens: u64::from(killed && s.has_refresh),
        };
        self.store().put_audit(&AuditEntry {
            seq,
            at: self.now(),
            operation: operation.to_owned(),
            credential,
            account: s.account,
            app: s.app,
            scope: "session".into(),
            session: Some(s.id),
            devices_forgotten: 0,
            killed: Some(count),
            pending: None,
        })?;
        Ok(count)
    }

    /// After a revocation whose count is known was acknowledged: the metrics.
    pub(super) fn killed_now(&self, operation: &str, c: AuditCount) {
        self.metrics()
            .killed(label(operation), c.sessions, c.refresh_tokens);
    }

    /// After a revoke-all whose count is to do was acknowledged: hands it to the
    /// background task.
    pub(super) fn enqueue_count(&self, account: &AccountId, seq: u64) {
        let q = &self.inner.audit;
        if let Some(tx) = q.tx.get() {
            q.outstanding.fetch_add(1, Ordering::SeqCst);
            q.queued.fetch_add(1, Ordering::SeqCst);
            if tx.send((*account, seq)).is_err() {
                self.counts_done(1);
            }
        }
        // Without the task (a store used outside `serve`), the entry stays pending in the
        // store and is counted at the next start.
    }

    fn uncounted(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<AccountId, u32>> {
        // A panic while held leaves at worst a count too high: sessions kept longer.
        self.inner
            .audit
            .uncounted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// One of `account`'s revoke-alls is counted (or its entry was never written).
    fn counted(&self, account: &AccountId) {
        let mut uncounted = self.uncounted();
        // Absent for an entry a previous run left.
        if let Some(n) = uncounted.get_mut(account) {
            *n -= 1;
            if *n == 0 {
                uncounted.remove(account);
            }
        }
    }

    /// Whether a revoke-all of `account` made by this process waits for its count (the
    /// caller holds the account's lock).
    pub(super) fn has_uncounted(&self, account: &AccountId) -> bool {
        self.uncounted().contains_key(account)
    }

    /// Waits until the entries a previous run left pending are counted (at once without the
    /// background task: nothing counts them then).
    pub(super) async fn leftovers_counted(&self) {
        let q = &self.inner.audit;
        if q.tx.get().is_none() {
            return;
        }
        loop {
            let notified = q.leftovers.notified();
            if q.leftovers_counted.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Waits until every count queued before the call is finished (`POST /admin/v1/sweep`,
    /// which would otherwise keep those revoke-alls' sessions). Meanwhile the background
    /// task counts without waiting for a quiet moment and without stopping for new
    /// revocations, so the wait ends under sustained load too; what comes in during it is
    /// counted as it comes but not waited for. At once without the background task.
    pub(super) async fn counts_queued_so_far_done(&self) {
        let q = &self.inner.audit;
        if q.tx.get().is_none() {
            return;
        }
        // The leftovers' job is the first to finish, then the queued counts in order.
        let target = q.queued.load(Ordering::SeqCst) + 1;
        let _urgent = UrgentWait::new(&q.urgent);
        loop {
            let notified = q.progress.notified();
            if q.finished.load(Ordering::SeqCst) >= target {
                return;
            }
            notified.await;
        }
    }

    fn counts_done(&self, n: u64) {
        let q = &self.inner.audit;
        q.finished.fetch_add(n, Ordering::SeqCst);
        q.progress.notify_waiters();
        if q.outstanding.fetch_sub(n, Ordering::SeqCst) == n {
            q.idle.notify_waiters();
        }
    }

    /// Starts the background work (once; `serve` calls it): the audit count and the expiry
    /// sweeper. The count's first job counts the entries a previous run left pending; then
    /// it counts each revoke-all handed to it, in order. It holds the service weakly: it
    /// ends when the last handle goes.
    pub fn start_background(&self) -> Result<()> {
        let q = &self.inner.audit;
        let (tx, mut rx) = mpsc::unbounded_channel::<(AccountId, u64)>();
        if q.tx.set(tx).is_err() {
            return Ok(());
        }
        q.outstanding.fetch_add(1, Ordering::SeqCst);
        // The expiry sweeper (`sweep.rs`) waits for this first count before its first pass.
        self.start_sweeper();
        let weak: Weak<super::Inner> = std::sync::Arc::downgrade(&self.inner);
        let urgent = q.urgent.clone();
        tokio::spawn(async move {
            if let Some(inner) = weak.upgrade() {
                let this = Sessiond { inner };
                let worker = this.clone();
                match tokio::task::spawn_blocking(move || worker.count_pending_audit()).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => {
                        tracing::info!(entries = n, "audit: counted what the last run left")
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "audit: counting what the last run left failed")
                    }
                    Err(e) => tracing::error!(error = %e, "audit: the count task failed"),
                }
                let q = &this.inner.audit;
                q.leftovers_counted.store(true, Ordering::SeqCst);
                q.leftovers.notify_waiters();
                this.counts_done(1);
            }
            // Counting is background work of low priority, like a vacuum: it waits for a
            // quiet moment (no revocation for `QUIET`), then counts what came in, in one
            // blocking job, until revocations come again: it then stops, and what it left
            // waits for the next quiet moment, before what came after it. Under sustained
            // load the counts wait; each costs about what the revocation did, and the
            // request path must not pay it (a backlog of a million is counted at once).
            // An explicit sweep waiting for them (`counts_queued_so_far_done`) makes them
            // urgent: no quiet moment is waited for, and no count stops.
            let mut batch: Vec<(AccountId, u64)> = Vec::new();
            loop {
                if batch.is_empty() {
                    if rx.recv_many(&mut batch, MAX_BACKLOG).await == 0 {
                        break;
                    }
                    continue;
                }
                if batch.len() < MAX_BACKLOG && !urgent.now() {
                    tokio::select! {
                        got = tokio::time::timeout(QUIET, rx.recv()) => {
                            if let Ok(Some(job)) = got {
                                batch.push(job);
                                continue;
                            }
                        }
                        () = urgent.wake.notified() => {}
                    }
                }
                let Some(inner) = weak.upgrade() else { break };
                let this = Sessiond { inner };
                let worker = this.clone();
                let jobs = std::mem::take(&mut batch);
                let n = jobs.len();
                let since = this.inner.audit.queued.load(Ordering::SeqCst);
                let done =
                    tokio::task::spawn_blocking(move || worker.count_until_busy(jobs, since)).await;
                match done {
                    Ok(left) => {
                        this.counts_done((n - left.len()) as u64);
                        batch = left;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "audit: the count task failed");
                        this.counts_done(n as u64);
                    }
                }
            }
        });
        Ok(())
    }

    /// Waits until every queued count is written (`serve` calls it before its last flush,
    /// and tests before they read the log).
    pub async fn audit_idle(&self) {
        let q = &self.inner.audit;
        loop {
            let notified = q.idle.notified();
            if q.outstanding.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Counts `jobs` in order, until revocations have come since `queued` was `since`
    /// (looked at every `YIELD_EVERY` entries), the backlog stays under `MAX_BACKLOG` and no
    /// explicit sweep waits: returns the jobs it left. A failed count is logged; its entry
    /// stays pending until the next start.
    fn count_until_busy(&self, jobs: Vec<(AccountId, u64)>, since: u64) -> Vec<(AccountId, u64)> {
        let queued = &self.inner.audit.queued;
        let mut jobs = jobs.into_iter();
        let mut done = 0usize;
        while let Some((account, seq)) = jobs.next() {
            if let Err(e) = self.count_entry(&account, seq) {
                tracing::error!(error = %e, seq, "audit: counting a revocation failed; it stays pending until the next start");
            }
            done += 1;
            if done.is_multiple_of(YIELD_EVERY) {
                let came = queued.load(Ordering::SeqCst) - since;
                if came > 0
                    && jobs.len() + (came as usize) < MAX_BACKLOG
                    && !self.inner.audit.urgent.now()
                {
                    return jobs.collect();
                }
            }
        }
        Vec::new()
    }

    /// Counts every pending entry now, on this thread (the background task's first job;
    /// a store used without `serve`; tests). Reads the whole log. Returns how many there
    /// were.
    pub fn count_pending_audit(&self) -> Result<usize> {
        let pending = self.store().pending_audit()?;
        for (account, seq) in &pending {
            self.count_entry(account, *seq)?;
        }
        Ok(pending.len())
    }

    /// Counts one pending entry and writes it back counted (one write).
    fn count_entry(&self, account: &AccountId, seq: u64) -> Result<()> {
        let store = self.store();
        let Some(mut e) = store.audit_entry(account, seq)? else {
            return Ok(());
        };
        let Some(p) = e.pending.take() else {
            return Ok(());
        };
        let killed = self.count_killed(&e, &p)?;
        e.killed = Some(killed);
        store.put_audit(&e)?;
        {
            let _g = self.lock(account);
            store.release_held(&e)?;
        }
        self.counted(account);
        self.metrics()
            .killed(label(&e.operation), killed.sessions, killed.refresh_tokens);
        Ok(())
    }

    /// The sessions a revoke-all's watermarks cover that were alive just before it: not
    /// tombstoned, not expired, and not covered by a watermark of the account as it was.
    fn count_killed(&self, e: &AuditEntry, p: &PendingCount) -> Result<AuditCount> {
        let dead_before = |s: &Session| {
            p.before
                .iter()
                .any(|w| covers(w.scope, w.kind, s) && s.seq <= w.upto && w.except != Some(s.id))
        };
        let mut out = AuditCount::default();
        for pair in pairs_of(&p.targets) {
            for s in self.store().sessions_of(&e.account, pair)? {
                let targeted = p.targets.iter().any(|(sc, k)| covers(*sc, *k, &s));
                if !targeted || s.seq > p.upto || p.except == Some(s.id) {
                    continue;
                }
                let tombstoned = s.revoked.as_ref().is_some_and(|r| r.at <= e.at);
                if tombstoned || s.expires <= e.at || dead_before(&s) {
                    continue;
                }
                out.sessions += 1;
                out.refresh_tokens += u64::from(s.has_refresh);
            }
        }
        Ok(out)
    }

    /// `GET /admin/v1/audit`: up to `limit` entries, newest first, older than `before`.
    pub fn audit_log(
        &self,
        account: Option<&AccountId>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        Ok(self.store().audit_page(account, before, limit)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Config, Credential, NewAccount, NewApp, Sessiond, SystemClock};
    use crate::store::{Store, StoreOptions};

    #[test]
    fn a_count_leaves_the_rest_when_revocations_come_while_it_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
        let s = Sessiond::new(store, Config::default(), std::sync::Arc::new(SystemClock))
            .expect("service");
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
                ..NewAccount::default()
            }))
            .expect("account")
            .id;
        // No background task: every revoke-all's count stays pending.
        let total = YIELD_EVERY + 40;
        for _ in 0..total {
            rt.block_on(s.rownd_sign_out_all(app, &account, Credential::Admin))
                .expect("sign out");
        }
        let mut jobs = s.store().pending_audit().expect("pending");
        jobs.sort_by_key(|(_, seq)| *seq);
        assert_eq!(jobs.len(), total);
        // A revocation came after the batch was formed: the count stops at the first look.
        let queued = &s.inner.audit.queued;
        let since = queued.fetch_add(1, Ordering::SeqCst);
        let left = s.count_until_busy(jobs.clone(), since);
        assert_eq!(left, jobs[YIELD_EVERY..]);
        assert_eq!(
            s.store().pending_audit().expect("pending").len(),
            left.len()
        );
        // None since: it counts everything.
        let left = s.count_until_busy(left, queued.load(Ordering::SeqCst));
        assert!(left.is_empty());
        assert!(s.store().pending_audit().expect("pending").is_empty());
    }
}
