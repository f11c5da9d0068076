//! The revocation log: every watermark record (one per account and scope, the `markers` of
//! the store's layout) kept in memory whole, made durable by a log of its writes, and folded
//! now and then into a snapshot so that the log stays short.
//!
//! Why not a sled tree: a revoke-all is one write of one small record, and in sled 0.34
//! that write copies the leaf it changes, splits leaves as the tree grows by a key per
//! first revoke of a pair, and lands in sled's log, whose segments grow the directory under
//! churn. Here a write is an update of a map in memory and a few hundred bytes appended to
//! a file; a group of them becomes durable with one `fdatasync` (the group commit of
//! `commit.rs`, a group of its own beside sled's).
//!
//! Files, in sled's directory (`store/`):
//! - `revocations.snapshot`: every record as of some moment, written to a temporary file,
//!   synced, then renamed over the last one;
//! - `revocations.N.log`: the records written since, in the order they were written. A log
//!   is never written into again once a newer one exists.
//!
//! A log record is `len (u32) ‖ crc32 (u32) ‖ ops`, and lists what one write did: a
//! watermark record's new bytes, and the two writes to sled a revoke-all makes with it (the
//! audit entry its record held, copied to the `audit` tree where absent; a remembered
//! device removed if unchanged). Those sled writes are done at once as well; the log makes
//! them durable, and replays them if sled lost them. Replaying them twice changes nothing.
//!
//! The order that makes it safe: a record is applied to the map *before* it is appended to
//! the log, and a checkpoint first switches to a new log (syncing the old one), then makes
//! sled's copies durable, then writes the snapshot from the map, then deletes the old logs.
//! Every record of an old log is therefore in the snapshot, or overwritten by a newer
//! record that is in it or in a newer log. At open, the snapshot is loaded and the logs
//! replayed in order; a log ends at its first record that is cut short or fails its
//! checksum (a write that was never acknowledged), and only the newest log may end so.

use super::commit::{Durability, Flusher, GroupCommit};
use super::{Result, StoreError, Trees, keys};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

/// A record's bytes as the map keeps them: a boxed slice, no reference count (500,000
/// records at a million sessions; a read copies its few dozen bytes out).
type Value = Box<[u8]>;

/// A watermark record's key: account ‖ scope (`keys::marker`).
pub(super) type Key = [u8; keys::MARKER_KEY_LEN];

/// The key of the record of (`account`, `scope`), as `keys::marker` lays it out.
pub(super) fn key_of(account: &crate::model::AccountId, scope: crate::model::Scope) -> Key {
    let mut k = [0u8; keys::MARKER_KEY_LEN];
    k.copy_from_slice(&keys::marker(account, scope));
    k
}

/// One write a log record carries. The writes of one record are applied together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Op {
    /// A watermark record's new bytes.
    Put { key: Key, value: Vec<u8> },
    /// An audit entry for the `audit` tree, written there only where it is absent.
    AuditIfAbsent { key: Vec<u8>, value: Vec<u8> },
    /// A remembered device to remove from `devices`, only if its bytes are still these.
    ForgetDevice { key: Vec<u8>, value: Vec<u8> },
}

const PUT: u8 = 1;
const AUDIT_IF_ABSENT: u8 = 2;
const FORGET_DEVICE: u8 = 3;

const SNAPSHOT: &str = "revocations.snapshot";
const SNAPSHOT_TMP: &str = "revocations.snapshot.tmp";
const SNAPSHOT_MAGIC: &[u8; 16] = b"sessiond-revsnap";
const SNAPSHOT_VERSION: u32 = 1;
/// `meta` key set once a store has written its first snapshot: from then on, a missing
/// snapshot is damage, not a store of the layout before.
pub(super) const SNAPSHOT_META: &str = "revocations_snapshot";

/// A checkpoint starts once the current log holds this much, or twice the last snapshot if
/// that is more: the log's replay at open stays short, and a snapshot is written at most
/// once for every snapshot's worth of log.
const CHECKPOINT_BYTES: u64 = 64 << 20;
/// How often the background thread writes out (and, in `Flush` mode, syncs) what the
/// log buffers when no request waits for it: sled's own background flush interval.
const BACKGROUND_MS: u64 = 200;

fn log_name(number: u64) -> String {
    format!("revocations.{number}.log")
}

fn log_number(name: &str) -> Option<u64> {
    name.strip_prefix("revocations.")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

fn corrupt(file: &str, at: u64, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        tree: "markers",
        key: format!("{file} at byte {at}"),
        detail: detail.into(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section below leaves its data whole before it can panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct LogFile {
    file: File,
    number: u64,
    /// Bytes in the file.
    len: u64,
    /// Whether bytes were written since the last sync.
    unsynced: bool,
}

struct Shared {
    dir: PathBuf,
    mode: Durability,
    table: RwLock<BTreeMap<Key, Value>>,
    /// Encoded records not yet written to the file.
    buf: Mutex<Vec<u8>>,
    /// Records appended so far, and of those, written out as the mode asks.
    appended: AtomicU64,
    durable: AtomicU64,
    /// Bytes appended to the current log (written or buffered), for the checkpoint's
    /// trigger; and the size of the last snapshot.
    log_bytes: AtomicU64,
    snapshot_bytes: AtomicU64,
    file: Mutex<LogFile>,
    /// Set by the first failed write or sync of the log, never cleared: after it, the file
    /// may end in part of a record, and nothing more is written behind it (the group commit
    /// refuses to acknowledge anything, as after a failed flush of sled).
    failed: std::sync::OnceLock<String>,
    /// Held (shared) by a write from before its record is appended until the sled writes
    /// that must follow the record are done ([`RevLog::hold`]); a checkpoint switches logs
    /// under its exclusive side, so every record of a log it ends has its sled writes
    /// done, and made durable by the sled flush that follows.
    gate: RwLock<()>,
}

/// The revocation log of one store: the map, the current log, its group commit, and the
/// thread that writes out in the background and runs checkpoints.
pub(super) struct RevLog {
    shared: Arc<Shared>,
    commit: GroupCommit,
    wake: Arc<(Mutex<bool>, Condvar)>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Shared {
    fn read_table(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Key, Value>> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes out what the buffer holds; syncs if `sync` (and anything was written since
    /// the last sync).
    fn write_out(&self, sync: bool) -> Result<()> {
        let mut f = lock(&self.file);
        self.guarded(|| self.drain(&mut f, sync))
    }

    /// Runs a write of the log, unless one failed before; a failure is kept.
    fn guarded(&self, write: impl FnOnce() -> Result<()>) -> Result<()> {
        if let Some(why) = self.failed.get() {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "an earlier write of the revocation log failed ({why})"
            ))));
        }
        write().inspect_err(|e| {
            let _ = self.failed.set(e.to_string());
        })
    }

    /// Writes what the buffer holds to `f` (the current log, its lock held), syncs if
    /// `sync`, and counts it durable.
    fn drain(&self, f: &mut LogFile, sync: bool) -> Result<()> {
        let (bytes, upto) = {
            let mut b = lock(&self.buf);
            (
                std::mem::take(&mut *b),
                self.appended.load(Ordering::Acquire),
            )
        };
        if !bytes.is_empty() {
            f.file.write_all(&bytes)?;
            f.len += bytes.len() as u64;
            f.unsynced = true;
        }
        if sync && f.unsynced {
            f.file.sync_data()?;
            f.unsynced = false;
        }
        self.durable.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// What a group commit's flush does in `mode`.
    fn flush(&self) -> Result<()> {
        match self.mode {
            Durability::Fsync => self.write_out(true),
            Durability::Flush => self.write_out(false),
            Durability::None => Ok(()),
        }
    }

    /// Ends the current log: what it buffers is written and synced, and later records go
    /// to a new log. Returns the number of the log ended.
    fn rotate(&self) -> Result<u64> {
        let mut f = lock(&self.file);
        self.guarded(|| self.drain(&mut f, true))?;
        let ended = f.number;
        // A failure here leaves the current log in use, whole and synced: the checkpoint
        // fails and is tried again later, and writes go on.
        let file = create_log(&self.dir, ended + 1)?;
        *f = LogFile {
            file,
            number: ended + 1,
            len: 0,
            unsynced: false,
        };
        self.log_bytes.store(0, Ordering::Release);
        Ok(ended)
    }

    /// Writes the map to a new snapshot, in pages (writers wait only while a page is
    /// copied), and puts it in place of the last one.
    fn write_snapshot(&self, before_rename: impl FnOnce() -> Result<()>) -> Result<u64> {
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut w = Crc {
            inner: BufWriter::with_capacity(1 << 20, &file),
            crc: crc32fast::Hasher::new(),
            bytes: 0,
        };
        w.write_all(SNAPSHOT_MAGIC)?;
        w.write_all(&SNAPSHOT_VERSION.to_le_bytes())?;
        let mut count = 0u64;
        for page in self.pages(4096) {
            for (k, v) in &page {
                w.write_all(k)?;
                w.write_all(&(v.len() as u32).to_le_bytes())?;
                w.write_all(v)?;
            }
            count += page.len() as u64;
        }
        w.write_all(&count.to_le_bytes())?;
        let crc = w.crc.clone().finalize();
        w.inner.write_all(&crc.to_le_bytes())?;
        w.inner.flush()?;
        let bytes = w.bytes + 4;
        drop(w);
        file.sync_all()?;
        before_rename()?;
        std::fs::rename(&tmp, self.dir.join(SNAPSHOT))?;
        sync_dir(&self.dir)?;
        self.snapshot_bytes.store(bytes, Ordering::Release);
        Ok(bytes)
    }

    /// See [`RevLog::pages`].
    fn pages(&self, size: usize) -> impl Iterator<Item = Vec<(Key, Vec<u8>)>> + '_ {
        let mut after: Option<Key> = None;
        std::iter::from_fn(move || {
            let t = self.read_table();
            let from = match &after {
                Some(k) => Bound::Excluded(*k),
                None => Bound::Unbounded,
            };
            let page: Vec<(Key, Vec<u8>)> = t
                .range((from, Bound::Unbounded))
                .take(size)
                .map(|(k, v)| (*k, v.to_vec()))
                .collect();
            after = Some(page.last()?.0);
            Some(page)
        })
    }

    /// Folds the logs into a snapshot: see the module's documentation for the order.
    fn checkpoint(&self, db: &sled::Db) -> Result<()> {
        let ended = {
            // No revoke-all is between its record and the sled writes that follow it.
            let _quiet = self.gate.write().unwrap_or_else(|p| p.into_inner());
            self.rotate()?
        };
        // The audit entries and device removals the ended logs carry, durable in sled.
        db.flush()?;
        // The snapshot reads the map as it is now, newer than the ended logs: before it
        // takes their place, the log after them is made durable up to what it saw.
        self.write_snapshot(|| self.write_out(true))?;
        for (number, path) in logs(&self.dir)? {
            if number <= ended {
                std::fs::remove_file(path)?;
            }
        }
        sync_dir(&self.dir)?;
        Ok(())
    }

    fn wants_checkpoint(&self) -> bool {
        let log = self.log_bytes.load(Ordering::Acquire);
        log >= CHECKPOINT_BYTES.max(2 * self.snapshot_bytes.load(Ordering::Acquire))
    }
}

/// A writer that keeps the CRC-32 and the count of what it wrote.
struct Crc<W> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn create_log(dir: &Path, number: u64) -> Result<File> {
    // Truncated if there: only a failed switch to it can have left it, before any write.
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join(log_name(number)))?;
    sync_dir(dir)?;
    Ok(file)
}

/// The logs in `dir`, oldest first.
fn logs(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if let Some(n) = e.file_name().to_str().and_then(log_number) {
            out.push((n, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Encodes one log record of `ops`, appended to `out`.
fn encode_record(ops: &[Op], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    for op in ops {
        let (tag, key, value): (u8, &[u8], &[u8]) = match op {
            Op::Put { key, value } => (PUT, key, value),
            Op::AuditIfAbsent { key, value } => (AUDIT_IF_ABSENT, key, value),
            Op::ForgetDevice { key, value } => (FORGET_DEVICE, key, value),
        };
        out.push(tag);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    let len = (out.len() - start - 8) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Splits `bytes` at the front: `n` bytes, or `None` if there are fewer.
fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Some(head)
}

fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(take(bytes, 4)?.try_into().ok()?))
}

/// The ops of one record's payload (checksum verified), or `None` if they do not parse.
fn decode_ops(mut p: &[u8]) -> Option<Vec<Op>> {
    let mut ops = Vec::new();
    while !p.is_empty() {
        let tag = take(&mut p, 1)?[0];
        let klen = take_u32(&mut p)? as usize;
        let key = take(&mut p, klen)?;
        let vlen = take_u32(&mut p)? as usize;
        let value = take(&mut p, vlen)?.to_vec();
        ops.push(match tag {
            PUT => Op::Put {
                key: key.try_into().ok()?,
                value,
            },
            AUDIT_IF_ABSENT => Op::AuditIfAbsent {
                key: key.to_vec(),
                value,
            },
            FORGET_DEVICE => Op::ForgetDevice {
                key: key.to_vec(),
                value,
            },
            _ => return None,
        });
    }
    Some(ops)
}

/// The records of one log, in order, and whether it ended cleanly (not at a record cut
/// short or failing its checksum).
fn read_log(bytes: &[u8]) -> (Vec<Vec<Op>>, Option<u64>) {
    let mut records = Vec::new();
    let mut rest = bytes;
    loop {
        let at = (bytes.len() - rest.len()) as u64;
        if rest.is_empty() {
            return (records, None);
        }
        let mut p = rest;
        let Some(len) = take_u32(&mut p) else {
            return (records, Some(at));
        };
        let Some(crc) = take_u32(&mut p) else {
            return (records, Some(at));
        };
        let Some(payload) = take(&mut p, len as usize) else {
            return (records, Some(at));
        };
        if crc32fast::hash(payload) != crc {
            return (records, Some(at));
        }
        let Some(ops) = decode_ops(payload) else {
            return (records, Some(at));
        };
        records.push(ops);
        rest = p;
    }
}

fn load_snapshot(path: &Path) -> Result<Option<BTreeMap<Key, Value>>> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => f.read_to_end(&mut bytes)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bad = |at: usize, d: &str| corrupt(SNAPSHOT, at as u64, d);
    if bytes.len() < SNAPSHOT_MAGIC.len() + 4 + 8 + 4 {
        return Err(bad(0, "shorter than a snapshot"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(bad(body.len(), "the checksum does not match"));
    }
    let (body, count) = body.split_at(body.len() - 8);
    let count = u64::from_le_bytes(count.try_into().expect("8 bytes"));
    let mut p = body;
    if take(&mut p, 16) != Some(SNAPSHOT_MAGIC.as_slice()) {
        return Err(bad(0, "it does not start like a snapshot"));
    }
    if take_u32(&mut p) != Some(SNAPSHOT_VERSION) {
        return Err(bad(16, "a format version this sessiond does not read"));
    }
    let mut table = BTreeMap::new();
    while !p.is_empty() {
        let at = body.len() - p.len();
        let entry = (|| {
            let key: Key = take(&mut p, keys::MARKER_KEY_LEN)?.try_into().ok()?;
            let len = take_u32(&mut p)? as usize;
            Some((key, Value::from(take(&mut p, len)?)))
        })();
        let Some((k, v)) = entry else {
            return Err(bad(at, "an entry is cut short"));
        };
        table.insert(k, v);
    }
    if table.len() as u64 != count {
        return Err(bad(body.len(), "the count does not match the entries"));
    }
    Ok(Some(table))
}

/// Applies the sled writes of `op` (none for a watermark record).
pub(super) fn apply_to_sled(t: &Trees, op: &Op) -> Result<()> {
    match op {
        Op::Put { .. } => {}
        Op::AuditIfAbsent { key, value } => {
            // A copy there is the count's, and newer.
            let _ = t
                .audit
                .compare_and_swap(key, None as Option<&[u8]>, Some(value.as_slice()))?;
        }
        Op::ForgetDevice { key, value } => {
            // A device remembered again since has other bytes (its creation time).
            let _ =
                t.devices
                    .compare_and_swap(key, Some(value.as_slice()), None as Option<&[u8]>)?;
        }
    }
    Ok(())
}

impl RevLog {
    /// Opens the revocation log in `dir` (sled's directory): loads the snapshot (or, on the
    /// first open of a store that kept its watermarks in sled, the `markers` tree), replays
    /// the logs, and checkpoints, so that it starts with one snapshot and an empty log.
    ///
    /// Its flushes are timed into `flush_seconds` (sled's, so `GET /metrics` shows one
    /// histogram of durable flushes).
    pub(super) fn open(
        dir: &Path,
        mode: Durability,
        t: &Trees,
        db: &sled::Db,
        flush_seconds: prometheus_client::metrics::histogram::Histogram,
    ) -> Result<RevLog> {
        let snapshot = load_snapshot(&dir.join(SNAPSHOT))?;
        let wrote_one = t.meta.get(SNAPSHOT_META)?.is_some();
        let mut table = match snapshot {
            Some(table) => table,
            None if wrote_one => {
                // Importing again would find nothing, and every watermark would be lost.
                return Err(corrupt(
                    SNAPSHOT,
                    0,
                    "missing, though this store has written one: restore from a backup",
                ));
            }
            None => {
                // The layout before this log: the records are sled's `markers` tree.
                let mut table = BTreeMap::new();
                for kv in t.markers.iter() {
                    let (k, v) = kv?;
                    if let Ok(key) = Key::try_from(k.as_ref()) {
                        table.insert(key, Value::from(v.as_ref()));
                    }
                }
                table
            }
        };
        let found = logs(dir)?;
        let newest = found.last().map_or(0, |(n, _)| *n);
        for (number, path) in &found {
            let bytes = std::fs::read(path)?;
            let (records, torn) = read_log(&bytes);
            if let Some(at) = torn
                && *number != newest
            {
                return Err(corrupt(
                    &log_name(*number),
                    at,
                    "a record is cut short or fails its checksum in a log that is not the newest",
                ));
            }
            if let Some(at) = torn {
                // Cut off, so that the log is whole once a newer one exists.
                let f = OpenOptions::new().write(true).open(path)?;
                f.set_len(at)?;
                f.sync_all()?;
                tracing::warn!(
                    log = %log_name(*number),
                    at,
                    dropped = bytes.len() as u64 - at,
                    "the revocation log ends in a write that was never acknowledged; replaying up to it"
                );
            }
            for ops in records {
                for op in &ops {
                    if let Op::Put { key, value } = op {
                        table.insert(*key, Value::from(value.as_slice()));
                    }
                    apply_to_sled(t, op)?;
                }
            }
        }
        db.flush()?;
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            mode,
            table: RwLock::new(table),
            buf: Mutex::new(Vec::new()),
            appended: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            log_bytes: AtomicU64::new(0),
            snapshot_bytes: AtomicU64::new(0),
            file: Mutex::new(LogFile {
                file: create_log(dir, newest + 1)?,
                number: newest + 1,
                len: 0,
                unsynced: false,
            }),
            failed: std::sync::OnceLock::new(),
            gate: RwLock::new(()),
        });
        // The logs replayed are in the snapshot now; the new log is empty.
        shared.write_snapshot(|| Ok(()))?;
        for (_, path) in &found {
            std::fs::remove_file(path)?;
        }
        sync_dir(dir)?;
        // The snapshot holds every record now. sled's copies of the layout before go (also
        // those a crash during an import left), keys of no watermark stay for `sessiond
        // check` to name; then the snapshot is recorded as this store's.
        let mut gone = sled::Batch::default();
        for k in t.markers.iter().keys() {
            let k = k?;
            if k.len() == keys::MARKER_KEY_LEN {
                gone.remove(k);
            }
        }
        t.markers.apply_batch(gone)?;
        if !wrote_one {
            t.meta.insert(SNAPSHOT_META, &[1])?;
        }
        db.flush()?;
        let flusher: Flusher = {
            let shared = shared.clone();
            Arc::new(move || shared.flush())
        };
        let mut commit = GroupCommit::new(dir, mode, flusher)?;
        commit.flush_seconds = flush_seconds;
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let worker = {
            let shared = shared.clone();
            let wake = wake.clone();
            let db = db.clone();
            std::thread::Builder::new()
                .name("sessiond-revlog".into())
                .spawn(move || background(&shared, &wake, &db))?
        };
        Ok(RevLog {
            shared,
            commit,
            wake,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// The record of `key`, if it has one.
    pub(super) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let key = Key::try_from(key).ok()?;
        self.shared.read_table().get(&key).map(|v| v.to_vec())
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub(super) fn with_prefix(&self, prefix: &[u8]) -> Vec<(Key, Vec<u8>)> {
        let mut from = [0u8; keys::MARKER_KEY_LEN];
        let n = prefix.len().min(from.len());
        from[..n].copy_from_slice(&prefix[..n]);
        self.shared
            .read_table()
            .range(from..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (*k, v.to_vec()))
            .collect()
    }

    /// Up to `limit` records after `after` (from the first if `None`), in key order.
    pub(super) fn page(&self, after: Option<&[u8]>, limit: usize) -> Vec<(Key, Vec<u8>)> {
        let t = self.shared.read_table();
        let from = match after.map(Key::try_from) {
            Some(Ok(k)) => Bound::Excluded(k),
            // A cursor of no record's length: resume at the first key above it.
            Some(Err(_)) => {
                let after = after.unwrap_or_default();
                let mut k = [0u8; keys::MARKER_KEY_LEN];
                let n = after.len().min(k.len());
                k[..n].copy_from_slice(&after[..n]);
                if after.len() > k.len() {
                    Bound::Excluded(k)
                } else {
                    Bound::Included(k)
                }
            }
            None => Bound::Unbounded,
        };
        t.range((from, Bound::Unbounded))
            .take(limit)
            .map(|(k, v)| (*k, v.to_vec()))
            .collect()
    }

    /// Applies `ops` to the map, then appends them to the log as one record. Their sled
    /// writes are the caller's to do (before or after: replaying them is harmless). The
    /// caller serialises writes of one key (the account's lock), and makes them durable
    /// with [`RevLog::sync`].
    pub(super) fn append(&self, ops: &[Op]) {
        // Both under the map's lock: whatever a reader (a snapshot's page) sees of the map
        // is in the buffer or the file by then, in the order it was applied.
        let grown = {
            let mut t = self.shared.table.write().unwrap_or_else(|p| p.into_inner());
            for op in ops {
                if let Op::Put { key, value } = op {
                    t.insert(*key, Value::from(value.as_slice()));
                }
            }
            let mut b = lock(&self.shared.buf);
            let before = b.len();
            encode_record(ops, &mut b);
            self.shared.appended.fetch_add(1, Ordering::AcqRel);
            (b.len() - before) as u64
        };
        self.shared.log_bytes.fetch_add(grown, Ordering::AcqRel);
        if self.shared.wants_checkpoint() {
            self.wake_worker(false);
        }
    }

    /// Holds off a checkpoint's switch of logs: for a write whose sled writes must follow
    /// its record's durability (forgotten devices), held from before the append until they
    /// are done.
    pub(super) fn hold(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.shared.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Every record in key order, a page of `size` at a time (the map's lock is held only
    /// while a page is copied: records written meanwhile may or may not be seen).
    pub(super) fn pages(&self, size: usize) -> impl Iterator<Item = Vec<(Key, Vec<u8>)>> + '_ {
        self.shared.pages(size)
    }

    /// Whether some appended record is not yet as durable as the mode asks.
    pub(super) fn unsynced(&self) -> bool {
        self.shared.mode != Durability::None
            && self.shared.appended.load(Ordering::Acquire)
                > self.shared.durable.load(Ordering::Acquire)
    }

    /// Makes every record appended before this call durable (group commit).
    pub(super) async fn sync(&self) -> Result<()> {
        self.commit.sync().await
    }

    /// The blocking form of [`RevLog::sync`].
    pub(super) fn sync_now(&self) -> Result<()> {
        self.commit.flush_now()
    }

    /// The reason no write can be acknowledged any more, if a flush of the log failed.
    pub(super) fn failure(&self) -> Option<&str> {
        self.commit.failure()
    }

    /// Bytes of the snapshot and the current log.
    pub(super) fn disk_bytes(&self) -> u64 {
        self.shared.snapshot_bytes.load(Ordering::Acquire)
            + self.shared.log_bytes.load(Ordering::Acquire)
    }

    /// Folds the logs into a new snapshot now (tests).
    #[cfg(test)]
    pub(super) fn checkpoint(&self, db: &sled::Db) -> Result<()> {
        self.shared.checkpoint(db)
    }

    fn wake_worker(&self, stop: bool) {
        let (m, cv) = &*self.wake;
        let mut s = lock(m);
        *s |= stop;
        cv.notify_one();
    }

    /// Stops the background thread and writes out and syncs what the log still buffers.
    pub(super) fn close(&self) {
        self.wake_worker(true);
        if let Some(h) = lock(&self.worker).take() {
            let _ = h.join();
        }
        if let Err(e) = self.shared.write_out(self.shared.mode != Durability::None) {
            tracing::warn!(error = %e, "writing out the revocation log at close failed");
        }
    }
}

/// The background thread: every [`BACKGROUND_MS`], writes out what the log buffers
/// (synced in `Flush` mode, as sled's background flush is); checkpoints when the log is
/// long; stops when told.
fn background(shared: &Shared, wake: &(Mutex<bool>, Condvar), db: &sled::Db) {
    // After a failed checkpoint, the next try waits a while; the logs stay meanwhile.
    let mut retry_at: Option<std::time::Instant> = None;
    loop {
        let stop = {
            let (m, cv) = wake;
            let guard = lock(m);
            let (guard, _) = cv
                .wait_timeout(guard, std::time::Duration::from_millis(BACKGROUND_MS))
                .unwrap_or_else(|p| p.into_inner());
            *guard
        };
        if stop {
            return;
        }
        if shared.mode != Durability::Fsync
            && let Err(e) = shared.write_out(shared.mode == Durability::Flush)
        {
            tracing::error!(error = %e, "writing out the revocation log failed");
        }
        if shared.wants_checkpoint() && retry_at.is_none_or(|at| at <= std::time::Instant::now()) {
            let started = std::time::Instant::now();
            match shared.checkpoint(db) {
                Ok(()) => {
                    retry_at = None;
                    tracing::debug!(
                        took_ms = started.elapsed().as_millis() as u64,
                        records = shared.read_table().len(),
                        "revocation log checkpointed"
                    );
                }
                Err(e) => {
                    // The logs stay, and replay at the next open; writes go on.
                    tracing::error!(error = %e, "checkpointing the revocation log failed; trying again in 30 s");
                    retry_at = Some(std::time::Instant::now() + std::time::Duration::from_secs(30));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        [n; keys::MARKER_KEY_LEN]
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_ends_the_log() {
        let ops = vec![
            Op::Put {
                key: key(1),
                value: b"record".to_vec(),
            },
            Op::AuditIfAbsent {
                key: b"audit-key".to_vec(),
                value: b"entry".to_vec(),
            },
            Op::ForgetDevice {
                key: b"device".to_vec(),
                value: vec![],
            },
        ];
        let mut bytes = Vec::new();
        encode_record(&ops, &mut bytes);
        let first = bytes.len();
        encode_record(&ops[..1], &mut bytes);
        let (records, torn) = read_log(&bytes);
        assert_eq!(records, vec![ops.clone(), ops[..1].to_vec()]);
        assert_eq!(torn, None);
        let whole = bytes.len();
        for cut in 1..whole {
            let (records, torn) = read_log(&bytes[..cut]);
            // Cut at the end of a record, the log ends there cleanly.
            assert_eq!(records.len(), usize::from(cut >= first), "cut at {cut}");
            assert_eq!(torn.is_none(), cut == first, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        *flipped.last_mut().expect("bytes") ^= 1;
        let (records, torn) = read_log(&flipped);
        assert_eq!(records.len(), 1);
        assert!(torn.is_some());
    }
}
