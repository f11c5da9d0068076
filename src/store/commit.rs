//! Group commit: every acknowledged write is durable, and concurrent writers share one
//! flush. A caller takes a ticket after its write is applied; a flush that starts after
//! the ticket was taken covers it. One caller at a time leads a flush; the others wait for
//! a flush that started after their ticket.

use super::{Result, StoreError};
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What an acknowledged write has been through before its response is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
    /// sled 0.34 keeps its log in the file `db`; fsync acts on the inode, so a handle of our
    /// own is enough to flush what `sync_file_range` left in the device cache.
    data_file: Option<Arc<File>>,
    state: Mutex<State>,
    /// The highest ticket known durable. Also bumped (to the same value) when a flush
    /// fails, so waiters wake up and try themselves.
    done: watch::Sender<u64>,
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
                Some(Arc::new(File::open(dir.join("db"))?))
            }
            _ => None,
        };
        Ok(GroupCommit {
            mode,
            data_file,
            state: Mutex::new(State::default()),
            done: watch::channel(0).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two integers updated in single statements: a panic elsewhere
        // cannot leave it half-written, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Flushes synchronously, outside the group (CLI, shutdown, benches).
    pub(super) fn flush_now(&self, db: &sled::Db) -> Result<()> {
        flush(db, self.data_file.as_deref(), self.mode)
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
            if *rx.borrow_and_update() >= ticket {
                return Ok(());
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
                    let result =
                        tokio::task::spawn_blocking(move || flush(&db, file.as_deref(), mode))
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
                            // Wake the waiters: each retries (and reports) on its own.
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

fn flush(db: &sled::Db, data_file: Option<&File>, mode: Durability) -> Result<()> {
    if mode == Durability::None {
        return Ok(());
    }
    db.flush()?;
    if let Some(f) = data_file {
        f.sync_data()?;
    }
    Ok(())
}
