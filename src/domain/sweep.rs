//! The expiry sweeper: removes what can no longer matter, in the background, a bounded
//! batch of records at a time.
//!
//! What goes, once it has been dead for the tombstone retention (`Config`,
//! `--tombstone-retention`, a day by default):
//! - a session revoked (its own tombstone, or a watermark covering it) or expired, with its
//!   index entries — until then it answers "revoked" or "expired", after it "unknown";
//! - a token record of the `tokens` tree (a token a rotation replaced) whose own expiry
//!   passed, or whose session goes;
//! - a client JWT's `jti`, as soon as the JWT expired (a replay is refused for its `exp`).
//!
//! A sweep is a cycle of passes over four trees in turn — `markers`, `tokens`, `sessions`,
//! `jtis` — each pass reading at most `Config::sweep_batch` records from a cursor; between
//! passes the sweeper yields to the request path. The pass over `markers` notes the
//! (account, scope) pairs holding a watermark that had been dead for the retention at the
//! cycle's start: only a session of such a pair can be due because of a watermark, so the
//! others are judged on their own record (tombstone, expiry) without a read of their
//! watermarks, which was most of a cycle's cost.
//!
//! Every judgement in a cycle is made against the time the cycle started (`t0`), so the
//! cycle removes no session whose token records the pass over `tokens` kept: a session dead long enough at `t0` cannot rotate, and a death
//! written later is stamped later than `t0 - retention` (but see the race below). So no
//! token record points at a missing session, and `Store::check` stays clean between passes.
//!
//! Two rules keep every other answer exact:
//! - a session is removed under its account's lock, re-read and judged again there, so no
//!   revocation or rotation of it can interleave;
//! - a session whose revoke-all is not counted in the audit log yet is kept, whatever its
//!   age: the count (`audit.rs`) reads the sessions it covers. Sweeping starts once the
//!   counts a previous run left are done.
//!
//! One race is healed rather than prevented: a death stamped at or before `t0 - retention`
//! but written after the pass over `tokens` read the session (possible only with a
//! retention of zero, or the wall clock stepping back) lets the session go while a token
//! record of it stays. Such a record answers as unknown, `sessiond check` names it, and the
//! next cycle removes it.

use super::{Result, Sessiond};
use crate::metrics::SweptLabel;
use crate::model::*;
use crate::store::Cursor;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

/// The pause between two passes of one cycle: the request path gets the store meanwhile.
const PASS_PAUSE: Duration = Duration::from_millis(10);
/// The most (account, scope) pairs a cycle notes as holding an old watermark (a 64-bit
/// hash each); past it, the cycle reads the watermarks of every session instead.
const MAX_AGED: usize = 1 << 20;
/// Sessions removed per transaction (and account locks held at once).
const REMOVE_CHUNK: usize = 128;

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    pub sessions: u64,
    pub tokens: u64,
    pub jtis: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Markers,
    Tokens,
    Sessions,
    Jtis,
    Done,
}

/// One cycle's progress: the tree being passed over, and where.
#[derive(Debug)]
pub struct Sweep {
    t0: Millis,
    phase: Phase,
    cursor: Cursor,
    /// The (account, scope) pairs with a watermark old enough at `t0` to make a session
    /// due (the pass over `markers` fills it). A watermark written later is younger, or
    /// it is caught by the next cycle: this only ever keeps a session longer. `None` once
    /// more than [`MAX_AGED`] were found: every session's watermarks are read then.
    ///
    /// Held as 64-bit hashes (`hasher`, keyed at random per cycle), not as the pairs (40
    /// bytes each): at a million sessions a cycle can note half a million pairs, in a table
    /// that doubles as it grows. A hash two pairs share only has the session's watermarks
    /// read, which decide exactly.
    aged: Option<HashSet<u64>>,
    hasher: RandomState,
    /// What the cycle removed so far.
    pub swept: Swept,
    /// Passes run so far.
    pub passes: u64,
}

impl Sweep {
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }
}

impl Sessiond {
    /// When `s` died, as seen at `at`: the earliest of its tombstone, the watermarks
    /// covering it and its expiry (if passed at `at`); `None` while it is alive.
    pub fn dead_since(&self, s: &Session, at: Millis) -> Result<Option<Millis>> {
        let watermarks = self.covering_watermarks(s)?;
        Ok(dead_since_given(s, at, watermarks.iter().flatten()))
    }

    /// Whether `s` had been dead for the retention at `t0`.
    fn due(&self, s: &Session, t0: Millis) -> Result<bool> {
        Ok(self.aged_by(self.dead_since(s, t0)?, t0))
    }

    /// Whether a death at `since` is at least the retention old at `t0`.
    fn aged_by(&self, since: Option<Millis>, t0: Millis) -> bool {
        let retention = self.config().tombstone_retention_ms;
        since.is_some_and(|at| at.saturating_add(retention) <= t0)
    }

    /// [`Sessiond::due`] within a cycle: the watermarks of `s` are read only if one of the
    /// pairs that can hold a watermark covering it is in `sweep.aged`; otherwise no
    /// watermark can make it due, and its own record decides. Never due where `due` is not.
    fn due_in_cycle(&self, s: &Session, sweep: &Sweep) -> Result<bool> {
        let scopes = super::scopes_reaching(s);
        let may_be_covered = match &sweep.aged {
            Some(aged) => scopes
                .into_iter()
                .flatten()
                .any(|scope| aged.contains(&sweep.hasher.hash_one((s.account, scope)))),
            None => true,
        };
        if may_be_covered {
            self.due(s, sweep.t0)
        } else {
            Ok(self.aged_by(dead_since_given(s, sweep.t0, []), sweep.t0))
        }
    }

    /// Whether a revoke-all that may cover `s` still waits for its audit count: one of
    /// this process on its account (any: a later revoke-all of the same scope may have
    /// rewritten the watermark), or one whose watermark covers it (a watermark's `upto` is
    /// its audit entry's seq; for entries a previous run left). The caller holds the
    /// account's lock.
    fn count_pending(&self, s: &Session) -> Result<bool> {
        if self.has_uncounted(&s.account) {
            return Ok(true);
        }
        for m in self.covering_watermarks(s)?.into_iter().flatten() {
            if self
                .store()
                .audit_entry(&s.account, m.upto)?
                .is_some_and(|e| e.pending.is_some())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A new cycle, judged against now.
    pub fn sweep_start(&self) -> Sweep {
        Sweep {
            t0: self.now(),
            phase: Phase::Markers,
            cursor: None,
            aged: Some(HashSet::new()),
            hasher: RandomState::new(),
            swept: Swept::default(),
            passes: 0,
        }
    }

    /// One bounded pass of a cycle: reads at most `sweep_batch` records of the tree the
    /// cycle is at, removes what is due, and moves on. Blocking (store reads and writes).
    pub fn sweep_pass(&self, sweep: &mut Sweep) -> Result<()> {
        let started = Instant::now();
        let batch = self.config().sweep_batch.max(1);
        let store = self.store();
        let t0 = sweep.t0;
        let next = match sweep.phase {
            Phase::Markers => {
                let page = store.markers_page(&sweep.cursor, batch)?;
                for (account, scope, markers) in page.items {
                    let oldest = markers.by_kind.iter().map(|(_, m)| m.revocation.at).min();
                    if self.aged_by(oldest, t0)
                        && let Some(aged) = &mut sweep.aged
                    {
                        aged.insert(sweep.hasher.hash_one((account, scope)));
                        if aged.len() > MAX_AGED {
                            sweep.aged = None;
                        }
                    }
                }
                page.next
            }
            Phase::Tokens => {
                let page = store.tokens_page(&sweep.cursor, batch)?;
                let retention = self.config().tombstone_retention_ms;
                let mut dead = Vec::new();
                for t in &page.items {
                    let expired = t.record.expires.saturating_add(retention) <= t0;
                    let session_goes = match store.session(&t.record.session)? {
                        Some(s) => self.due_in_cycle(&s, sweep)?,
                        // Its session went without it: in a previous cycle, when a death
                        // stamped before that cycle's start was written only after its pass
                        // over `tokens` read the session (a retention of zero, or the wall
                        // clock stepping back). It answers as unknown; it goes now.
                        None => true,
                    };
                    if expired || session_goes {
                        dead.push(t);
                    }
                }
                let n = store.remove_tokens(&dead)?;
                sweep.swept.tokens += n;
                self.metrics().swept(SweptLabel::tokens, n);
                page.next
            }
            Phase::Sessions => {
                let page = store.sessions_page(&sweep.cursor, batch)?;
                let mut due = Vec::new();
                for s in page.items {
                    if self.due_in_cycle(&s, sweep)? {
                        due.push(s);
                    }
                }
                for chunk in due.chunks(REMOVE_CHUNK) {
                    let n = self.remove_due(chunk, t0)?;
                    sweep.swept.sessions += n;
                    self.metrics().swept(SweptLabel::sessions, n);
                }
                page.next
            }
            Phase::Jtis => {
                let (n, next) = store.sweep_jtis(&sweep.cursor, batch, t0)?;
                sweep.swept.jtis += n;
                self.metrics().swept(SweptLabel::jtis, n);
                next
            }
            Phase::Done => return Ok(()),
        };
        sweep.passes += 1;
        match next {
            Some(k) => sweep.cursor = Some(k),
            None => {
                sweep.cursor = None;
                sweep.phase = match sweep.phase {
                    Phase::Markers => Phase::Tokens,
                    Phase::Tokens => Phase::Sessions,
                    Phase::Sessions => Phase::Jtis,
                    Phase::Jtis | Phase::Done => Phase::Done,
                };
            }
        }
        self.metrics()
            .sweep_pass(started.elapsed(), sweep.is_done());
        Ok(())
    }

    /// Removes the sessions of `candidates` still due under their accounts' locks.
    fn remove_due(&self, candidates: &[Session], t0: Millis) -> Result<u64> {
        let store = self.store();
        let _g = self.lock_all(candidates.iter().map(|s| &s.account));
        let mut confirmed = Vec::with_capacity(candidates.len());
        for c in candidates {
            if let Some(s) = store.session(&c.id)?
                && self.due(&s, t0)?
                && !self.count_pending(&s)?
            {
                confirmed.push(s);
            }
        }
        Ok(store.remove_sessions(&confirmed)?)
    }

    /// A whole cycle now, on this thread (`POST /admin/v1/sweep`, tests).
    pub fn sweep_now(&self) -> Result<Sweep> {
        let mut sweep = self.sweep_start();
        while !sweep.is_done() {
            self.sweep_pass(&mut sweep)?;
        }
        Ok(sweep)
    }

    /// `POST /admin/v1/sweep`: a whole cycle now, once what a previous run left uncounted
    /// and every count queued before the call are done (it has them counted at once, even
    /// under sustained revocations: `counts_queued_so_far_done`). Counts queued while it
    /// waits or runs keep their accounts' sessions this cycle.
    pub async fn sweep(&self) -> Result<Sweep> {
        self.leftovers_counted().await;
        self.counts_queued_so_far_done().await;
        self.blocking(|s| s.sweep_now()).await
    }

    /// Starts the background sweeper (`start_background` calls it): a cycle every
    /// `sweep_interval`, each pass run once the audit count is idle, a short pause between
    /// passes. It holds the service weakly between passes and ends when the last handle
    /// goes.
    pub(super) fn start_sweeper(&self) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        let interval = self.config().sweep_interval;
        tokio::spawn(async move {
            'cycles: loop {
                tokio::time::sleep(interval).await;
                let mut sweep = match weak.upgrade() {
                    Some(inner) => Sessiond { inner }.sweep_start(),
                    None => return,
                };
                let began = Instant::now();
                while !sweep.is_done() {
                    let Some(inner) = weak.upgrade() else { return };
                    let this = Sessiond { inner };
                    // Counts of this run's revoke-alls need no wait: their accounts' sessions
                    // are kept (`count_pending`), and under sustained revocations the count
                    // never idles.
                    this.leftovers_counted().await;
                    let worker = this.clone();
                    let ran = tokio::task::spawn_blocking(move || {
                        let r = worker.sweep_pass(&mut sweep);
                        (sweep, r)
                    })
                    .await;
                    drop(this);
                    sweep = match ran {
                        Ok((s, Ok(()))) => s,
                        Ok((_, Err(e))) => {
                            tracing::error!(error = %e, "sweep: a pass failed; the next cycle starts over");
                            continue 'cycles;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "sweep: the pass task failed; the next cycle starts over");
                            continue 'cycles;
                        }
                    };
                    tokio::time::sleep(PASS_PAUSE).await;
                }
                let s = sweep.swept;
                if s != Swept::default() {
                    tracing::info!(
                        sessions = s.sessions,
                        tokens = s.tokens,
                        jtis = s.jtis,
                        passes = sweep.passes,
                        ms = began.elapsed().as_millis() as u64,
                        "sweep: removed what had been dead for the retention"
                    );
                }
            }
        });
    }
}

/// When `s` died as seen at `at`, given the watermarks that cover it: the earliest of its
/// tombstone, those watermarks and its expiry (if passed at `at`); `None` while alive.
fn dead_since_given<'a>(
    s: &Session,
    at: Millis,
    watermarks: impl IntoIterator<Item = &'a Marker>,
) -> Option<Millis> {
    let mut since = s.revoked.as_ref().map(|r| r.at);
    for m in watermarks {
        since = Some(since.map_or(m.revocation.at, |t| t.min(m.revocation.at)));
    }
    if s.expires <= at {
        since = Some(since.map_or(s.expires, |t| t.min(s.expires)));
    }
    since
}
