//! Group commit: every acknowledged write is durable, and concurrent writers share one
//! flush. A caller takes a ticket after its write is applied; a flush that starts after
//! the ticket was taken covers it. One caller at a time leads a flush; the others wait for
//! a flush that started after their ticket.

use super::{Result, StoreError};
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What an acknowledged write has been through before its response is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// sled's `flush()` (which stops at `sync_file_range`), then `fdatasync` of sled's data
    /// file, so the device's write cache is flushed too: what PostgreSQL and Redis mean by
    /// durable. The default.
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

pub(super) struct GroupCommit {
    mode: Durability,
    /// What `fdatasync` must reach in `Fsync` mode.
    data_file: Option<Arc<DataFiles>>,
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
}

fn poisoned(why: &str) -> StoreError {
    StoreError::Io(std::io::Error::other(format!(
        "an earlier flush failed ({why}); no write can be acknowledged until sessiond restarts"
    )))
}

impl GroupCommit {
    pub(super) fn new(dir: &Path, mode: Durability) -> Result<GroupCommit> {
        let data_file = match mode {
            Durability::Fsync => {
                // The files sled created on a first open are durable only once the
                // directories that name them are: sync both, once.
                #[cfg(unix)]
                for d in [Some(dir), dir.parent()].into_iter().flatten() {
                    File::open(d)?.sync_all()?;
                }
                Some(Arc::new(DataFiles {
                    log: File::open(dir.join("db"))?,
                    blobs: dir.join("blobs"),
                    synced_blobs: Mutex::new(HashSet::new()),
                }))
            }
            _ => None,
        };
        Ok(GroupCommit {
            mode,
            data_file,
            state: Mutex::new(State::default()),
            done: watch::channel(0).0,
            failed: std::sync::OnceLock::new(),
            flush_seconds: crate::metrics::flush_histogram(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two integers updated in single statements: a panic elsewhere
        // cannot leave it half-written, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Flushes synchronously, outside the group (CLI, shutdown, benches).
    pub(super) fn flush_now(&self, db: &sled::Db) -> Result<()> {
        if let Some(why) = self.failed.get() {
            return Err(poisoned(why));
        }
        let started = std::time::Instant::now();
        let out = flush(db, self.data_file.as_deref(), self.mode).inspect_err(|e| self.poison(e));
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

    pub(super) async fn sync(&self, db: &sled::Db) -> Result<()> {
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
                    let db = db.clone();
                    let file = self.data_file.clone();
                    let mode = self.mode;
                    let timer = self.flush_seconds.clone();
                    let result = tokio::task::spawn_blocking(move || {
                        let started = std::time::Instant::now();
                        let out = flush(&db, file.as_deref(), mode);
                        timer.observe(started.elapsed().as_secs_f64());
                        out
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(StoreError::Io(std::io::Error::other(format!(
                            "flush task failed: {e}"
                        ))))
                    });
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

fn flush(db: &sled::Db, data_file: Option<&DataFiles>, mode: Durability) -> Result<()> {
    if mode == Durability::None {
        return Ok(());
    }
    db.flush()?;
    if let Some(f) = data_file {
        f.sync()?;
    }
    Ok(())
}

/// sled 0.34's files that hold acknowledged writes. Its log is the file `db`: `fdatasync`
/// acts on the inode, so a handle of our own flushes what sled's `sync_file_range` left in
/// the device cache. A page too large for the log (over a quarter of a 512 KiB segment: a
/// leaf of 17 records carrying long device labels, say) goes to a file of its own under
/// `blobs/`, which sled writes without any sync: each new one is synced here, with the
/// directory that names it, before the log that points at it.
struct DataFiles {
    log: File,
    blobs: PathBuf,
    /// Blob files already synced (sled names them by log position and never reuses one).
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl DataFiles {
    fn sync(&self) -> std::io::Result<()> {
        self.sync_blobs()?;
        self.log.sync_data()
    }

    fn sync_blobs(&self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut present = HashSet::new();
        let mut new = false;
        for entry in entries {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match File::open(self.blobs.join(&name)) {
                    Ok(f) => f.sync_data()?,
                    // Removed by sled since the listing: an obsolete blob.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                new = true;
            }
            present.insert(name);
        }
        if new {
            File::open(&self.blobs)?.sync_all()?;
        }
        *synced = present;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_written_as_a_blob_is_synced_before_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new()
            .path(dir.path())
            .open()
            .expect("open sled");
        let gc = GroupCommit::new(dir.path(), Durability::Fsync).expect("group commit");
        let files = gc.data_file.clone().expect("fsync mode has data files");
        db.insert("small", &[1u8; 64][..]).expect("insert");
        gc.flush_now(&db).expect("flush");
        let blobs_before = files.synced_blobs.lock().expect("lock").len();
        // Over a quarter of the 512 KiB segment: sled writes it as a blob file.
        db.insert("large", vec![7u8; 200 * 1024]).expect("insert");
        gc.flush_now(&db).expect("flush");
        let synced = files.synced_blobs.lock().expect("lock").clone();
        assert_eq!(blobs_before, 0);
        assert!(!synced.is_empty(), "the blob file was not seen");
        let on_disk: HashSet<OsString> = std::fs::read_dir(dir.path().join("blobs"))
            .expect("blobs dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert!(
            synced.is_subset(&on_disk) && on_disk.is_subset(&synced),
            "{synced:?} vs {on_disk:?}"
        );
    }

    #[test]
    fn after_a_failed_flush_nothing_is_acknowledged_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new()
            .path(dir.path())
            .open()
            .expect("open sled");
        let mut gc = GroupCommit::new(dir.path(), Durability::Fsync).expect("group commit");
        // fdatasync of a pipe fails (EINVAL): a stand-in for a disk that fails a flush.
        let (pipe, _writer) = std::io::pipe().expect("pipe");
        gc.data_file = Some(Arc::new(DataFiles {
            log: File::from(std::os::fd::OwnedFd::from(pipe)),
            blobs: dir.path().join("blobs"),
            synced_blobs: Mutex::new(HashSet::new()),
        }));
        db.insert("k", "v").expect("insert");
        let first = gc.flush_now(&db).expect_err("the flush fails");
        assert!(!first.to_string().contains("earlier flush"), "{first}");
        // The disk "recovers"; sessiond does not pretend it did.
        gc.data_file = None;
        let again = gc.flush_now(&db).expect_err("still refused");
        assert!(
            again.to_string().contains("an earlier flush failed"),
            "{again}"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let asynced = rt.block_on(gc.sync(&db)).expect_err("sync refused too");
        assert!(
            asynced.to_string().contains("an earlier flush failed"),
            "{asynced}"
        );
    }
}
