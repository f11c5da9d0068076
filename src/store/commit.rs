//! Group commit: every acknowledged write is durable, and concurrent writers share one
//! flush. A caller takes a ticket after its write is applied; a flush that starts after
//! the ticket was taken covers it. One caller at a time leads a flush; the others wait for
//! a flush that started after their ticket. Two logs commit this way, each with its own
//! group: sled's (its `flush()`) and the revocation log's (`revlog.rs`).

use super::{Result, StoreError};
use std::fs::File;
use std::path::Path;
use std::sync::Mutex;
use tokio::sync::watch;

/// What an acknowledged write has been through before its response is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// sled's `flush()`, with every log write ending in `fdatasync` (and every blob file
    /// synced with its directory before the log points at it): the device's write cache
    /// is flushed too, which is what PostgreSQL and Redis mean by durable. Upstream sled
    /// stops at `sync_file_range`; `vendor/sled/PATCHES.md` says what we changed. The
    /// default.
    Fsync,
    /// sled's `flush()` only: survives a process crash; a power loss may lose up to sled's
    /// background fsync interval (200 ms).
    Flush,
    /// Nothing before the response: sled's background flush every 200 ms. For benchmarks of
    /// the non-durable mode only.
    None,
}

#[derive(Default)]
struct State {
    /// The highest ticket handed out.
    requested: u64,
    /// Whether some caller is leading a flush now.
    running: bool,
}

/// What a flush does: write out what the log buffers, and wait until it is as durable as
/// the mode asks. Run on the blocking pool.
pub(super) type Flusher = std::sync::Arc<dyn Fn() -> Result<()> + Send + Sync>;

pub(super) struct GroupCommit {
    mode: Durability,
    flusher: Flusher,
    state: Mutex<State>,
    /// The highest ticket known durable. Also bumped (to the same value) when a flush
    /// fails, so waiters wake up and see it.
    done: watch::Sender<u64>,
    /// Set by the first failed flush, never cleared. After a failed `fsync` the kernel may
    /// have dropped the dirty pages and a second `fsync` can succeed without writing them
    /// (PostgreSQL's "fsyncgate"), so no write is acknowledged again until a restart
    /// recovers from what is really on disk.
    failed: std::sync::OnceLock<String>,
    /// How long each flush took (`GET /metrics`).
    pub(super) flush_seconds: prometheus_client::metrics::histogram::Histogram,
    /// A failure the next flush reports instead of flushing: a stand-in for a disk that
    /// fails an `fdatasync`.
    #[cfg(test)]
    fail_next: Mutex<Option<std::io::Error>>,
}

fn poisoned(why: &str) -> StoreError {
    StoreError::Io(std::io::Error::other(format!(
        "an earlier flush failed ({why}); no write can be acknowledged until sessiond restarts"
    )))
}

impl GroupCommit {
    /// The group commit of sled's log: a flush is sled's `flush()` ([`flush`]).
    pub(super) fn for_sled(dir: &Path, mode: Durability, db: &sled::Db) -> Result<GroupCommit> {
        let db = db.clone();
        Self::new(dir, mode, std::sync::Arc::new(move || flush(&db, mode)))
    }

    pub(super) fn new(dir: &Path, mode: Durability, flusher: Flusher) -> Result<GroupCommit> {
        if mode == Durability::Fsync {
            // The files sled created on a first open (its log, `blobs/`) are durable only
            // once the directories that name them are: sync both, once.
            #[cfg(unix)]
            for d in [Some(dir), dir.parent()].into_iter().flatten() {
                File::open(d)?.sync_all()?;
            }
        }
        Ok(GroupCommit {
            mode,
            flusher,
            state: Mutex::new(State::default()),
            done: watch::channel(0).0,
            failed: std::sync::OnceLock::new(),
            flush_seconds: crate::metrics::flush_histogram(),
            #[cfg(test)]
            fail_next: Mutex::new(None),
        })
    }

    /// A failure a test injected, which the next flush reports instead of flushing.
    fn injected(&self) -> Result<()> {
        #[cfg(test)]
        if let Some(e) = self
            .fail_next
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(StoreError::Io(e));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two integers updated in single statements: a panic elsewhere
        // cannot leave it half-written, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Flushes synchronously, outside the group (CLI, shutdown, benches).
    pub(super) fn flush_now(&self) -> Result<()> {
        if let Some(why) = self.failed.get() {
            return Err(poisoned(why));
        }
        let started = std::time::Instant::now();
        let out = self
            .injected()
            .and_then(|()| {
                if self.mode == Durability::None {
                    Ok(())
                } else {
                    (self.flusher)()
                }
            })
            .inspect_err(|e| self.poison(e));
        self.flush_seconds.observe(started.elapsed().as_secs_f64());
        out
    }

    /// The reason no write can be acknowledged any more, if a flush failed.
    pub(super) fn failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    fn poison(&self, e: &StoreError) {
        if self.failed.set(e.to_string()).is_ok() {
            tracing::error!(error = %e, "flush failed: refusing to acknowledge any write until restarted");
        }
    }

    pub(super) async fn sync(&self) -> Result<()> {
        if self.mode == Durability::None {
            return Ok(());
        }
        let mut rx = self.done.subscribe();
        let ticket = {
            let mut s = self.lock();
            s.requested += 1;
            s.requested
        };
        loop {
            // Covered by a flush that succeeded: durable, even if a later one failed.
            if *rx.borrow_and_update() >= ticket {
                return Ok(());
            }
            if let Some(why) = self.failed.get() {
                return Err(poisoned(why));
            }
            let lead = {
                let mut s = self.lock();
                if s.running {
                    None
                } else {
                    s.running = true;
                    Some(s.requested)
                }
            };
            match lead {
                Some(target) => {
                    let flusher = self.flusher.clone();
                    let timer = self.flush_seconds.clone();
                    let result = match self.injected() {
                        Err(e) => Err(e),
                        Ok(()) => tokio::task::spawn_blocking(move || {
                            let started = std::time::Instant::now();
                            let out = flusher();
                            timer.observe(started.elapsed().as_secs_f64());
                            out
                        })
                        .await
                        .unwrap_or_else(|e| {
                            Err(StoreError::Io(std::io::Error::other(format!(
                                "flush task failed: {e}"
                            ))))
                        }),
                    };
                    self.lock().running = false;
                    match result {
                        Ok(()) => {
                            self.done.send_modify(|d| *d = (*d).max(target));
                            return Ok(());
                        }
                        Err(e) => {
                            self.poison(&e);
                            // Wake the waiters: each sees the failure.
                            self.done.send_modify(|_| {});
                            return Err(e);
                        }
                    }
                }
                None => {
                    if rx.changed().await.is_err() {
                        return Err(StoreError::Io(std::io::Error::other("store closed")));
                    }
                }
            }
        }
    }
}

/// The flush itself: sled's `flush()` writes its log buffer out and waits for it, synced
/// as the store was opened for `mode` (`Store::open_with`: in `Fsync` mode each log write
/// ends in `fdatasync`, and a blob file is synced with its directory when written).
fn flush(db: &sled::Db, mode: Durability) -> Result<()> {
    if mode == Durability::None {
        return Ok(());
    }
    db.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fsync_db(dir: &Path) -> sled::Db {
        sled::Config::new()
            .path(dir)
            .sync_data(true)
            .open()
            .expect("open sled")
    }

    #[test]
    fn a_page_written_as_a_blob_survives_a_reopen_with_synced_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = fsync_db(dir.path());
            let gc =
                GroupCommit::for_sled(dir.path(), Durability::Fsync, &db).expect("group commit");
            db.insert("small", &[1u8; 64][..]).expect("insert");
            gc.flush_now().expect("flush");
            // Over a quarter of the 512 KiB segment: sled writes it as a blob file, which
            // the patched sled syncs with its directory before the log points at it.
            db.insert("large", vec![7u8; 200 * 1024]).expect("insert");
            gc.flush_now().expect("flush");
            let blobs = std::fs::read_dir(dir.path().join("blobs"))
                .expect("blobs dir")
                .count();
            assert!(blobs > 0, "no blob file was written");
        }
        let db = fsync_db(dir.path());
        assert_eq!(
            db.get("large").expect("read").as_deref(),
            Some(&vec![7u8; 200 * 1024][..])
        );
        assert_eq!(
            db.get("small").expect("read").as_deref(),
            Some(&[1u8; 64][..])
        );
    }

    #[test]
    fn after_a_failed_flush_nothing_is_acknowledged_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = fsync_db(dir.path());
        let gc = GroupCommit::for_sled(dir.path(), Durability::Fsync, &db).expect("group commit");
        db.insert("k", "v").expect("insert");
        *gc.fail_next.lock().expect("lock") = Some(std::io::Error::other("EIO"));
        let first = gc.flush_now().expect_err("the flush fails");
        assert!(!first.to_string().contains("earlier flush"), "{first}");
        // The disk "recovers"; sessiond does not pretend it did.
        let again = gc.flush_now().expect_err("still refused");
        assert!(
            again.to_string().contains("an earlier flush failed"),
            "{again}"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let asynced = rt.block_on(gc.sync()).expect_err("sync refused too");
        assert!(
            asynced.to_string().contains("an earlier flush failed"),
            "{asynced}"
        );
    }

    #[test]
    fn a_failure_in_the_group_path_is_reported_and_poisons() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = fsync_db(dir.path());
        let gc = GroupCommit::for_sled(dir.path(), Durability::Fsync, &db).expect("group commit");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime");
        db.insert("k", "v").expect("insert");
        rt.block_on(gc.sync()).expect("a healthy flush");
        *gc.fail_next.lock().expect("lock") = Some(std::io::Error::other("EIO"));
        let e = rt.block_on(gc.sync()).expect_err("the flush fails");
        assert!(e.to_string().contains("EIO"), "{e}");
        assert!(gc.failure().is_some());
    }
}
