//! The revocation log: every watermark record (one per account and scope, the `markers` of
//! the store's layout) kept in memory whole, made durable by a log of its writes, and folded
//! now and then into a snapshot so that the log stays short.
//!
//! Why not a sled tree: a revoke-all is one write of one small record, and in sled 0.34
//! that write copies the leaf it changes, splits leaves as the tree grows by a key per
//! first revoke of a pair, and lands in sled's log, whose segments grow the directory under
//! churn. Here a write is an update of a map in memory and a few hundred bytes written to
//! a file; a group of them becomes durable with one `fdatasync` (the group commit of
//! `commit.rs`, a group of its own beside sled's).
//!
//! Files, in sled's directory (`store/`):
//! - `revocations.snapshot`: every record as of some moment, written to a temporary file,
//!   synced, then renamed over the last one;
//! - `revocations.N.log`: a header naming N, then the records written since, in the order
//!   they were written, and, once a newer log has taken its place, an end record;
//! - `revocations.spare`: a file kept to be the next log. Its records are written over the
//!   bytes the file already has, which is cheaper to make durable than growing a file: no
//!   change of its size or extents to journal with each `fdatasync` (137–178 µs against
//!   80–130 µs on this machine kind, `benches/fsync-growth.py`). An ended log becomes the
//!   spare; for a store's first log, which is a new file, the background thread writes a
//!   spare of zeros (`revocations.spare.tmp` while it does), then a checkpoint switches to
//!   it.
//!
//! A log record is `len (u32) ‖ crc32 (u32) ‖ ops`, and lists what one write did: a
//! watermark record's new bytes, and the two writes to sled a revoke-all makes with it (the
//! audit entry its record held, copied to the `audit` tree where absent; a remembered
//! device removed if unchanged). Those sled writes are done at once as well; the log makes
//! them durable, and replays them if sled lost them. Replaying them twice changes nothing.
//! The checksum covers the log's number and the ops: the records a reused file still holds
//! from the log it was, or its zeros, end the replay like a write cut short.
//!
//! The order that makes it safe: a record is applied to the map *before* it is buffered for
//! the log, and a checkpoint first makes the next log ready, then ends the current one (its
//! buffer written, its end record, synced) and switches, then makes sled's copies durable,
//! then writes the snapshot from the map, then retires the old logs (the newest of them
//! kept as the spare, the others deleted). Every record of an old log is therefore in the
//! snapshot, or overwritten by a newer record that is in it or in a newer log. At open, the
//! snapshot is loaded and the logs replayed in order. A log stops at its end record, or at
//! its first record that is cut short or fails its checksum: a write never acknowledged,
//! which only a log that no later log's records follow can hold (a switch can leave the
//! next log made and holding no record); anywhere else it is damage, and the store refuses to
//! open. Logs of the first format (no header, written before the spare) replay to the end
//! of their file. An older sessiond does not read this format: no downgrade.

use super::commit::{Durability, Flusher, GroupCommit};
use super::{Result, StoreError, Trees, keys};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, Write};
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
/// The payload of the record that ends a log: written when a newer log takes its place,
/// so that a log which is not the newest must end in it.
const END: u8 = 4;

/// A log starts with `LOG_MAGIC ‖ number (u64) ‖ crc32 of both (u32)`. Logs written before
/// the header (the first format) start with a record, and end at the end of their file.
const LOG_MAGIC: &[u8; 16] = b"sessiond-revlog2";
const LOG_HEADER_LEN: u64 = 28;
/// A log file kept for reuse as the next log: an ended log, or zeros. Writing over bytes the
/// file already has is cheaper to make durable than growing it (`benches/fsync-growth.py`:
/// no change of the file's size or extents to journal with each `fdatasync`). Its old
/// records do not replay: a record's checksum covers its log's number.
const SPARE: &str = "revocations.spare";
const SPARE_TMP: &str = "revocations.spare.tmp";
/// Once the current log has grown its file by this much, the background thread makes a
/// spare by writing zeros (in `Fsync` mode, the only one whose commits wait on the disk),
/// in pieces of `FILL_PIECE`, a few each round, each made durable before the next.
const FILL_AFTER: u64 = 1 << 20;
const FILL_PIECE: usize = 1 << 20;
const FILL_PIECES_PER_ROUND: usize = 8;

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
/// In `Fsync` mode, what the log buffers is written out by the next commit, so writes that
/// wait for none (the audit counter's releases of counted entries, between runs of
/// revocations) would pile up in memory until one comes: once the buffer holds this much,
/// the background thread writes it out, unsynced (the next commit syncs it).
const BUFFER_BYTES: usize = 1 << 20;

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
    /// Whether bytes were written since the last sync.
    unsynced: bool,
}

struct Shared {
    dir: PathBuf,
    mode: Durability,
    table: RwLock<BTreeMap<Key, Value>>,
    /// Encoded records not yet written to the file.
    buf: Mutex<Vec<u8>>,
    /// Records appended so far, and of those, as durable as the mode asks (in `Fsync`
    /// mode: synced).
    appended: AtomicU64,
    durable: AtomicU64,
    /// Bytes appended to the current log (written or buffered), for the checkpoint's
    /// trigger; and the size of the last snapshot.
    log_bytes: AtomicU64,
    snapshot_bytes: AtomicU64,
    /// The size of the current log's file when it became the log (a spare's, or the
    /// header's: writes below it overwrite, writes above it grow the file), and the size of
    /// the spare (0: none).
    log_capacity: AtomicU64,
    spare_bytes: AtomicU64,
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
    /// Held by a checkpoint, and by the spare's making when it puts the spare in place:
    /// one at a time switches logs and moves the spare.
    checkpointing: Mutex<()>,
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
        self.drain_and_end(f, sync, false)
    }

    /// [`Shared::drain`], and if `end`, the log's end record after what the buffer held.
    fn drain_and_end(&self, f: &mut LogFile, sync: bool, end: bool) -> Result<()> {
        let (mut bytes, upto) = {
            let mut b = lock(&self.buf);
            (
                std::mem::take(&mut *b),
                self.appended.load(Ordering::Acquire),
            )
        };
        if end {
            encode_payload(&[END], &mut bytes);
        }
        if !bytes.is_empty() {
            seal(f.number, &mut bytes);
            f.file.write_all(&bytes)?;
            f.unsynced = true;
        }
        if sync && f.unsynced {
            f.file.sync_data()?;
            f.unsynced = false;
        }
        // Unsynced bytes are durable as the mode asks in `Flush` and `None` mode only.
        if sync || self.mode != Durability::Fsync {
            self.durable.fetch_max(upto, Ordering::AcqRel);
        }
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

    /// Makes the next log ready for records, from the spare if there is one (the
    /// checkpoint's lock held: the current log's number is the last one). Writes go on
    /// meanwhile; a failure leaves the current log in use, perhaps with a next log that
    /// holds no record beside it (which `open` allows), and the checkpoint is tried again
    /// later.
    fn next_log(&self) -> Result<(u64, File, u64)> {
        let next = lock(&self.file).number + 1;
        // Taken now: whatever happens next, it is no longer the spare.
        let from_spare = self.spare_bytes.swap(0, Ordering::AcqRel) > 0;
        let (file, capacity) = make_log(&self.dir, next, from_spare)?;
        Ok((next, file, capacity))
    }

    /// Ends the current log: what it buffers is written, then its end record, and synced;
    /// later records go to `next` (from [`Shared::next_log`]). Returns the number of the
    /// log ended.
    fn switch_to(&self, (next, file, capacity): (u64, File, u64)) -> Result<u64> {
        let mut f = lock(&self.file);
        self.guarded(|| self.drain_and_end(&mut f, true, true))?;
        let ended = f.number;
        *f = LogFile {
            file,
            number: next,
            unsynced: false,
        };
        self.log_capacity.store(capacity, Ordering::Release);
        self.log_bytes.store(0, Ordering::Release);
        Ok(ended)
    }

    /// Removes ended logs (every record of theirs is in the snapshot); the newest of them
    /// becomes the spare if there is none and it is not small. (The checkpoint's lock held,
    /// or at open.)
    fn retire(&self, ended: &[(u64, PathBuf)]) -> Result<()> {
        for (i, (_, path)) in ended.iter().enumerate() {
            let size = std::fs::metadata(path)?.len();
            if i + 1 == ended.len()
                && size >= FILL_AFTER
                && self.spare_bytes.load(Ordering::Acquire) == 0
            {
                std::fs::rename(path, self.dir.join(SPARE))?;
                self.spare_bytes.store(size, Ordering::Release);
            } else {
                std::fs::remove_file(path)?;
            }
        }
        sync_dir(&self.dir)
    }

    /// The size a log reaches before a checkpoint folds it into a snapshot.
    fn checkpoint_bytes(&self) -> u64 {
        CHECKPOINT_BYTES.max(2 * self.snapshot_bytes.load(Ordering::Acquire))
    }

    /// Whether the current log is a new file, which grows with every write (no spare was
    /// there when it was made).
    fn log_is_new_file(&self) -> bool {
        self.log_capacity.load(Ordering::Acquire) <= LOG_HEADER_LEN
    }

    /// One round of making a spare of zeros (see [`FILL_AFTER`]): up to
    /// [`FILL_PIECES_PER_ROUND`] pieces, each synced; once it is as long as a log grows
    /// before its checkpoint, it becomes the spare.
    fn fill_spare(&self) -> Result<()> {
        let tmp = self.dir.join(SPARE_TMP);
        let mut file = OpenOptions::new().append(true).create(true).open(&tmp)?;
        let mut len = file.metadata()?.len();
        let target = self.checkpoint_bytes();
        let zeros = vec![0u8; FILL_PIECE];
        for _ in 0..FILL_PIECES_PER_ROUND {
            if len >= target {
                break;
            }
            file.write_all(&zeros)?;
            file.sync_data()?;
            len += zeros.len() as u64;
        }
        if len >= target {
            let _one = lock(&self.checkpointing);
            if self.spare_bytes.load(Ordering::Acquire) > 0 {
                // A checkpoint kept an ended log meanwhile.
                std::fs::remove_file(&tmp)?;
            } else {
                std::fs::rename(&tmp, self.dir.join(SPARE))?;
                sync_dir(&self.dir)?;
                self.spare_bytes.store(len, Ordering::Release);
            }
        }
        Ok(())
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
        let _one = lock(&self.checkpointing);
        let next = self.next_log()?;
        let ended = {
            // No revoke-all is between its record and the sled writes that follow it.
            let _quiet = self.gate.write().unwrap_or_else(|p| p.into_inner());
            self.switch_to(next)?
        };
        // The audit entries and device removals the ended logs carry, durable in sled.
        db.flush()?;
        // The snapshot reads the map as it is now, newer than the ended logs: before it
        // takes their place, the log after them is made durable up to what it saw.
        self.write_snapshot(|| self.write_out(true))?;
        let mut old = logs(&self.dir)?;
        old.retain(|(number, _)| *number <= ended);
        self.retire(&old)
    }

    fn wants_checkpoint(&self) -> bool {
        self.log_bytes.load(Ordering::Acquire) >= self.checkpoint_bytes()
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

/// A log's header: see [`LOG_MAGIC`].
pub(super) fn log_header(number: u64) -> Vec<u8> {
    let mut h = LOG_MAGIC.to_vec();
    h.extend_from_slice(&number.to_le_bytes());
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// The number in a log header at the start of `bytes`, if there is a whole one.
fn read_header(bytes: &[u8]) -> Option<u64> {
    let h = bytes.get(..LOG_HEADER_LEN as usize)?;
    let number = u64::from_le_bytes(h[16..24].try_into().ok()?);
    (h.starts_with(LOG_MAGIC) && h == log_header(number).as_slice()).then_some(number)
}

/// Makes log `number` in `dir`, ready for its first record: the spare renamed, if
/// `from_spare` and there is one (its size kept: writes overwrite its old bytes), or else a
/// new file. Its header is durable before it takes the log's name (a spare's old header
/// never stands under it), and its name before it is returned, with its size.
fn make_log(dir: &Path, number: u64, from_spare: bool) -> Result<(File, u64)> {
    let path = dir.join(log_name(number));
    let spare = if from_spare {
        match OpenOptions::new().write(true).open(dir.join(SPARE)) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let recycled = spare.is_some();
    let mut file = match spare {
        Some(f) => f,
        // Truncated if there: only a failed switch to it can have left it, with no record.
        None => OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?,
    };
    file.write_all(&log_header(number))?;
    file.sync_data()?;
    if recycled {
        std::fs::rename(dir.join(SPARE), &path)?;
    }
    sync_dir(dir)?;
    let capacity = file.metadata()?.len();
    file.seek(std::io::SeekFrom::Start(LOG_HEADER_LEN))?;
    Ok((file, capacity))
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

/// Appends a record of `payload` to `out`, its checksum left for [`seal`].
fn encode_payload(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(payload);
}

/// A record's checksum: over its log's number and its payload (`None`: a log of the first
/// format, over the payload alone).
fn record_crc(number: Option<u64>, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    if let Some(n) = number {
        h.update(&n.to_le_bytes());
    }
    h.update(payload);
    h.finalize()
}

/// Fills in the checksums of the records in `bytes` for log `number`, where they are
/// written: until then, a record does not know which log it goes to.
fn seal(number: u64, bytes: &mut [u8]) {
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = record_crc(Some(number), &bytes[at + 8..at + 8 + len]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at += 8 + len;
    }
}

/// Encodes one log record of `ops`, appended to `out`, its checksum left for [`seal`].
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
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
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

/// The records of log `number`, in order, and, if it does not end cleanly (at its end
/// record, or at the end of a file of the first format), the byte where it stops: a
/// record cut short or failing its checksum (a write never acknowledged, an old record of
/// the spare it was made from, or damage).
fn read_log(bytes: &[u8], number: u64) -> (Vec<Vec<Op>>, Option<u64>) {
    let mut records = Vec::new();
    let (seed, mut rest) = if bytes.starts_with(LOG_MAGIC) {
        match read_header(bytes) {
            Some(n) if n == number => (Some(n), &bytes[LOG_HEADER_LEN as usize..]),
            _ => return (records, Some(0)),
        }
    } else {
        (None, bytes)
    };
    loop {
        let at = (bytes.len() - rest.len()) as u64;
        if rest.is_empty() && seed.is_none() {
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
        // No writer makes a record of nothing: zeros (of a spare, or a file's end after a
        // crash) stop the log.
        if payload.is_empty() || record_crc(seed, payload) != crc {
            return (records, Some(at));
        }
        if seed.is_some() && payload == [END] {
            return (records, None);
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
        let mut replayed = Vec::with_capacity(found.len());
        for (number, path) in &found {
            let bytes = std::fs::read(path)?;
            // A log's header is durable before the log has its name, and nothing follows a
            // header before it is: a file past its header that does not name it is damage.
            if bytes.starts_with(LOG_MAGIC)
                && bytes.len() as u64 > LOG_HEADER_LEN
                && read_header(&bytes) != Some(*number)
            {
                return Err(corrupt(
                    &log_name(*number),
                    0,
                    "its header is damaged or names another log",
                ));
            }
            let (records, stops) = read_log(&bytes, *number);
            replayed.push((*number, records, stops, bytes.len() as u64));
        }
        // A log may stop short of its end only if no later log holds a record: it was the
        // newest when a write was cut short (a later one can have been made, empty, by a
        // switch of logs or an open that did not finish). Otherwise it is damage.
        let mut later_records = false;
        for (number, records, stops, _) in replayed.iter().rev() {
            if let Some(at) = stops
                && later_records
            {
                return Err(corrupt(
                    &log_name(*number),
                    *at,
                    "a record is cut short or fails its checksum in a log that is not the newest",
                ));
            }
            later_records |= !records.is_empty();
        }
        for (number, records, stops, size) in replayed {
            if let Some(at) = stops
                && at > LOG_HEADER_LEN
            {
                tracing::warn!(
                    log = %log_name(number),
                    at,
                    size,
                    "the revocation log stops at a write that was never acknowledged; replaying up to it"
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
        // A spare half made when the last run stopped is zeros, and goes; a spare's header
        // names the last log it was, so the next log's number is above it too.
        match std::fs::remove_file(dir.join(SPARE_TMP)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let (spare_bytes, spare_number) = match File::open(dir.join(SPARE)) {
            Ok(f) => {
                let mut header = Vec::new();
                let mut f = f.take(LOG_HEADER_LEN);
                f.read_to_end(&mut header)?;
                (
                    f.get_ref().metadata()?.len(),
                    read_header(&header).unwrap_or(0),
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, 0),
            Err(e) => return Err(e.into()),
        };
        let newest = found.last().map_or(0, |(n, _)| *n);
        let number = newest.max(spare_number) + 1;
        let (file, capacity) = make_log(dir, number, spare_bytes > 0)?;
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            mode,
            table: RwLock::new(table),
            buf: Mutex::new(Vec::new()),
            appended: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            log_bytes: AtomicU64::new(0),
            snapshot_bytes: AtomicU64::new(0),
            log_capacity: AtomicU64::new(capacity),
            spare_bytes: AtomicU64::new(0),
            file: Mutex::new(LogFile {
                file,
                number,
                unsynced: false,
            }),
            failed: std::sync::OnceLock::new(),
            gate: RwLock::new(()),
            checkpointing: Mutex::new(()),
        });
        // The logs replayed are in the snapshot now; the new log is empty.
        shared.write_snapshot(|| Ok(()))?;
        shared.retire(&found)?;
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
        if ops.is_empty() {
            return;
        }
        // Both under the map's lock: whatever a reader (a snapshot's page) sees of the map
        // is in the buffer or the file by then, in the order it was applied.
        let (before, after) = {
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
            (before, b.len())
        };
        self.shared
            .log_bytes
            .fetch_add((after - before) as u64, Ordering::AcqRel);
        if self.shared.wants_checkpoint() || (before < BUFFER_BYTES && after >= BUFFER_BYTES) {
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

    /// Bytes of the snapshot, the current log's file and the spare.
    pub(super) fn disk_bytes(&self) -> u64 {
        self.shared.snapshot_bytes.load(Ordering::Acquire)
            + (self.shared.log_capacity.load(Ordering::Acquire))
                .max(LOG_HEADER_LEN + self.shared.log_bytes.load(Ordering::Acquire))
            + self.shared.spare_bytes.load(Ordering::Acquire)
    }

    /// Bytes the log buffers, not yet written to its file (tests).
    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        lock(&self.shared.buf).len()
    }

    /// Writes out what the log buffers, unsynced, as the background thread does (tests).
    #[cfg(test)]
    pub(super) fn write_out_unsynced(&self) -> Result<()> {
        self.shared.write_out(false)
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
/// (synced in `Flush` mode, as sled's background flush is; in `Fsync` mode only once it
/// holds [`BUFFER_BYTES`], and unsynced, as the next commit syncs it); makes a spare of zeros for a
/// log that is a new file, and switches to it; checkpoints when the log is long; stops
/// when told.
fn background(shared: &Shared, wake: &(Mutex<bool>, Condvar), db: &sled::Db) {
    // After a failed checkpoint, the next try waits a while; the logs stay meanwhile.
    let mut retry_at: Option<std::time::Instant> = None;
    let mut fill_retry_at: Option<std::time::Instant> = None;
    let mut filling = false;
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
        let write_out = shared.mode != Durability::Fsync || lock(&shared.buf).len() >= BUFFER_BYTES;
        if write_out && let Err(e) = shared.write_out(shared.mode == Durability::Flush) {
            tracing::error!(error = %e, "writing out the revocation log failed");
        }
        // A store's first log is a new file, which grows with every write: a spare of zeros
        // is made for it, and a checkpoint then switches to it.
        let new_file = shared.mode == Durability::Fsync
            && shared.log_is_new_file()
            && shared.log_bytes.load(Ordering::Acquire) >= FILL_AFTER;
        let spare = shared.spare_bytes.load(Ordering::Acquire) > 0;
        if filling && (!new_file || spare) {
            // Switched to another log meanwhile: the zeros are not needed.
            filling = false;
            let _ = std::fs::remove_file(shared.dir.join(SPARE_TMP));
        }
        if new_file && !spare && fill_retry_at.is_none_or(|at| at <= std::time::Instant::now()) {
            fill_retry_at = None;
            filling = true;
            if let Err(e) = shared.fill_spare() {
                tracing::error!(error = %e, "making a spare revocation log failed; trying again in 30 s");
                fill_retry_at =
                    Some(std::time::Instant::now() + std::time::Duration::from_secs(30));
            }
        }
        if (shared.wants_checkpoint() || (new_file && spare))
            && retry_at.is_none_or(|at| at <= std::time::Instant::now())
        {
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

    fn sample() -> Vec<Op> {
        vec![
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
        ]
    }

    /// Log `number`: its header, then `records` sealed for `sealed_for`.
    fn log_of(number: u64, sealed_for: u64, records: &[&[Op]]) -> Vec<u8> {
        let mut body = Vec::new();
        for ops in records {
            encode_record(ops, &mut body);
        }
        seal(sealed_for, &mut body);
        let mut bytes = log_header(number);
        bytes.extend_from_slice(&body);
        bytes
    }

    #[test]
    fn records_round_trip_and_a_log_ends_only_at_its_end_record() {
        let ops = sample();
        let mut bytes = log_of(7, 7, &[&ops, &ops[..1]]);
        let first = LOG_HEADER_LEN as usize + {
            let mut one = Vec::new();
            encode_record(&ops, &mut one);
            one.len()
        };
        let records_end = bytes.len();
        // Without its end record, the log stops where the file does.
        assert_eq!(
            read_log(&bytes, 7),
            (
                vec![ops.clone(), ops[..1].to_vec()],
                Some(records_end as u64)
            )
        );
        let mut end = Vec::new();
        encode_payload(&[END], &mut end);
        seal(7, &mut end);
        bytes.extend_from_slice(&end);
        assert_eq!(
            read_log(&bytes, 7),
            (vec![ops.clone(), ops[..1].to_vec()], None)
        );
        for cut in 0..bytes.len() {
            let (records, stops) = read_log(&bytes[..cut], 7);
            let whole = usize::from(cut >= first) + usize::from(cut >= records_end);
            assert_eq!(records.len(), whole, "cut at {cut}");
            // An empty file is an empty log of the first format.
            assert_eq!(stops.is_none(), cut == 0, "cut at {cut}");
        }
        // Under the name of another log, nothing of it replays.
        assert_eq!(read_log(&bytes, 8), (vec![], Some(0)));
        let mut flipped = bytes.clone();
        flipped[first - 1] ^= 1;
        assert_eq!(read_log(&flipped, 7), (vec![], Some(LOG_HEADER_LEN)));
    }

    #[test]
    fn a_log_made_from_a_spare_stops_at_the_old_records_or_the_zeros() {
        let ops = sample();
        // Log 9 made from the file of log 4: its records, then log 4's left over.
        let mut bytes = log_of(9, 9, &[&ops[..1]]);
        let ours = bytes.len() as u64;
        let old = log_of(4, 4, &[&ops, &ops, &ops]);
        bytes.extend_from_slice(&old[LOG_HEADER_LEN as usize..]);
        assert_eq!(read_log(&bytes, 9), (vec![ops[..1].to_vec()], Some(ours)));
        // Made from a spare of zeros.
        let mut bytes = log_of(9, 9, &[&ops]);
        let ours = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 4096]);
        assert_eq!(read_log(&bytes, 9), (vec![ops.clone()], Some(ours)));
        // Zeros where the header should be: nothing to replay.
        assert_eq!(read_log(&[0; 4096], 9), (vec![], Some(0)));
    }

    #[test]
    fn a_log_of_the_first_format_still_replays() {
        let ops = sample();
        // No header; checksums over the payload alone; clean at the end of the file.
        let mut bytes = Vec::new();
        for _ in 0..2 {
            let at = bytes.len();
            encode_record(&ops, &mut bytes);
            let crc = record_crc(None, &bytes[at + 8..]);
            bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        }
        assert_eq!(read_log(&bytes, 3), (vec![ops.clone(), ops.clone()], None));
        let cut = bytes.len() - 1;
        assert_eq!(read_log(&bytes[..cut], 3).0, vec![ops]);
        assert!(read_log(&bytes[..cut], 3).1.is_some());
    }
}
