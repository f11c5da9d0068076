//! Backups: one file holding every tree of the store, the store's id counter and the files
//! sessiond keeps beside sled (the hub signing key), taken while no write is under way.
//!
//! Format (version 1), all integers big-endian:
//!
//! ```text
//! "sessiond backup\n"                      16 bytes
//! version: u32 = 1
//! next_id: u64                              every id the store handed out is below it
//! files:   u32 count, then per file: u16 name length, name, u32 length, bytes
//! trees:   per tree: 0x01, u16 name length, name,
//!                    per entry: 0x01, u32 key length, key, u32 value length, value
//!                    0x00 (end of the tree)
//!          0x00 (end of the trees)
//! SHA-256 of every byte above               32 bytes
//! ```
//!
//! Records are copied as stored (their own version bytes included), so a backup restores
//! into the same layout it was taken from, and the open after a restore migrates it like
//! any older store.

use super::{Result, Store, StoreError, StoreOptions};
use sha2::{Digest, Sha256};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 16] = b"sessiond backup\n";
const VERSION: u32 = 1;
/// Entries per batch when restoring: one sled batch each.
const BATCH: usize = 10_000;

/// What a backup or a restore moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackupStats {
    pub trees: u64,
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
}

/// A writer that hashes what it writes and counts it.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn put_bytes(w: &mut impl Write, len_bytes: usize, b: &[u8]) -> std::io::Result<()> {
    match len_bytes {
        2 => w.write_all(&(b.len() as u16).to_be_bytes())?,
        _ => w.write_all(&(b.len() as u32).to_be_bytes())?,
    }
    w.write_all(b)
}

fn bad(detail: impl Into<String>) -> StoreError {
    StoreError::Backup(detail.into())
}

impl Store {
    /// Writes a consistent snapshot of the store, and `files` (name, contents), to `out`.
    /// Writes wait while it runs (each store write takes the barrier's shared side, this
    /// its exclusive side); reads go on. Returns what it wrote; the caller syncs the file.
    /// `progress` is told the number of entries written so far, now and then.
    pub fn snapshot(
        &self,
        out: impl Write,
        files: &[(&str, Vec<u8>)],
        progress: &dyn Fn(u64),
    ) -> Result<BackupStats> {
        let _quiet = self.writes.write().unwrap_or_else(|p| p.into_inner());
        let mut w = Hashing {
            inner: BufWriter::with_capacity(1 << 20, out),
            hash: Sha256::new(),
            bytes: 0,
        };
        let mut stats = BackupStats {
            files: files.len() as u64,
            ..Default::default()
        };
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_be_bytes())?;
        // An id handed out now is above every id any record holds.
        w.write_all(&self.db.generate_id()?.to_be_bytes())?;
        w.write_all(&(files.len() as u32).to_be_bytes())?;
        for (name, bytes) in files {
            put_bytes(&mut w, 2, name.as_bytes())?;
            put_bytes(&mut w, 4, bytes)?;
        }
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name)?;
            w.write_all(&[1])?;
            put_bytes(&mut w, 2, &name)?;
            stats.trees += 1;
            let mut entry = |k: &[u8], v: &[u8]| -> Result<()> {
                w.write_all(&[1])?;
                put_bytes(&mut w, 4, k)?;
                put_bytes(&mut w, 4, v)?;
                stats.entries += 1;
                if stats.entries.is_multiple_of(BATCH as u64) {
                    progress(stats.entries);
                }
                Ok(())
            };
            for kv in tree.iter() {
                let (k, v) = kv?;
                entry(&k, &v)?;
            }
            if name == "markers" {
                // The watermark records live in the revocation log; the backup keeps them
                // under the tree's name, as before it (writes wait, so the pages agree).
                for (k, v) in self.revlog.pages(BATCH).flatten() {
                    entry(&k, &v)?;
                }
            }
            w.write_all(&[0])?;
        }
        w.write_all(&[0])?;
        let digest = w.hash.clone().finalize();
        w.inner.write_all(&digest)?;
        w.inner.flush()?;
        stats.bytes = w.bytes + digest.len() as u64;
        Ok(stats)
    }

    /// Writes a backup of the store and its files (the hub signing key) to a new file at
    /// `out` (owner-only; an existing file is never overwritten), durably: the file and
    /// its directory are synced before this returns.
    pub fn backup_to(&self, out: &Path, progress: &dyn Fn(u64)) -> Result<BackupStats> {
        let mut files = Vec::new();
        for name in super::DATA_DIR_ENTRIES.iter().filter(|e| **e != "store") {
            match std::fs::read(self.dir.join(name)) {
                Ok(bytes) => files.push((*name, bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        let file = crate::files::create(out, crate::files::PRIVATE, false)?;
        let written = self.snapshot(&file, &files, progress).and_then(|stats| {
            file.sync_all()?;
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(stats)
        });
        if written.is_err() {
            let _ = std::fs::remove_file(out);
        }
        written
    }

    /// Restores the backup at `path` into the data directory `dir`, which must not hold a
    /// store yet: checks the whole file's checksum first, then loads it, advances the id
    /// counter past every id in it, writes the files beside the store (owner-only), makes
    /// it all durable and verifies the result like `sessiond check`. On any failure the
    /// half-restored store is removed.
    ///
    /// `progress` is told how many bytes of the file were loaded so far, now and then.
    pub fn restore(
        path: &Path,
        dir: &Path,
        opts: &StoreOptions,
        progress: &dyn Fn(u64),
    ) -> Result<BackupStats> {
        if dir.join("store").exists() {
            return Err(StoreError::Occupied(dir.to_owned()));
        }
        verify_checksum(path)?;
        let existed: Vec<bool> = super::DATA_DIR_ENTRIES
            .iter()
            .map(|e| dir.join(e).exists())
            .collect();
        let restored = (|| {
            let store = Store::open(dir, opts)?;
            let stats = store.load(path, dir, progress)?;
            // The accounts and watermarks came in behind the store's back: learn them as an
            // open does.
            store.load_presence()?;
            store.sync_blocking()?;
            let report = store.check()?;
            if !report.is_clean() {
                return Err(bad(format!(
                    "the restored store does not check clean: {:?}",
                    report.problems.first()
                )));
            }
            Ok(stats)
        })();
        if restored.is_err() {
            for (entry, existed) in super::DATA_DIR_ENTRIES.iter().zip(existed) {
                let p = dir.join(entry);
                if !existed && p.is_dir() {
                    let _ = std::fs::remove_dir_all(p);
                } else if !existed {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        restored
    }

    fn load(&self, path: &Path, dir: &Path, progress: &dyn Fn(u64)) -> Result<BackupStats> {
        let file = std::fs::File::open(path)?;
        let body_len = file.metadata()?.len().saturating_sub(32);
        let mut r = BufReader::with_capacity(
            1 << 20,
            Counting {
                inner: file.take(body_len),
                read: 0,
            },
        );
        let mut stats = BackupStats {
            bytes: body_len + 32,
            ..Default::default()
        };
        let mut magic = [0u8; 16];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(bad("it does not start like one"));
        }
        let version = u32::from_be_bytes(read_n(&mut r)?);
        if version != VERSION {
            return Err(bad(format!(
                "format version {version}, this sessiond reads {VERSION}"
            )));
        }
        let next_id = u64::from_be_bytes(read_n(&mut r)?);
        let files = u32::from_be_bytes(read_n(&mut r)?);
        for _ in 0..files {
            let name = String::from_utf8(read_bytes(&mut r, 2)?)
                .map_err(|_| bad("a file name is not UTF-8"))?;
            // Only the files a backup takes: never a path, never the store's own directory.
            if name == "store" || !super::DATA_DIR_ENTRIES.contains(&name.as_str()) {
                return Err(bad(format!("a file named {name:?}")));
            }
            let bytes = read_bytes(&mut r, 4)?;
            crate::files::write(&dir.join(&name), &bytes, crate::files::PRIVATE, false)?;
            stats.files += 1;
        }
        while read_n::<1>(&mut r)? == [1] {
            let name = read_bytes(&mut r, 2)?;
            let tree = self.db.open_tree(&name)?;
            stats.trees += 1;
            let mut batch = sled::Batch::default();
            let mut n = 0;
            let is_markers = name == b"markers";
            let mut records = Vec::new();
            while read_n::<1>(&mut r)? == [1] {
                let k = read_bytes(&mut r, 4)?;
                let v = read_bytes(&mut r, 4)?;
                if is_markers && let Ok(key) = super::revlog::Key::try_from(k.as_slice()) {
                    // A watermark record: the revocation log's, one of its records a batch.
                    records.push(super::revlog::Op::Put { key, value: v });
                    if records.len() == BATCH {
                        self.revlog.append(&std::mem::take(&mut records));
                    }
                    stats.entries += 1;
                    continue;
                }
                batch.insert(k, v);
                n += 1;
                stats.entries += 1;
                if n == BATCH {
                    tree.apply_batch(std::mem::take(&mut batch))?;
                    n = 0;
                    progress(r.get_ref().read);
                }
            }
            tree.apply_batch(batch)?;
            if !records.is_empty() {
                self.revlog.append(&records);
            }
        }
        let mut rest = [0u8; 1];
        if r.read(&mut rest)? != 0 {
            return Err(bad("bytes after the last tree"));
        }
        // sled's counter can only be advanced one id at a time (cheap: a memory increment,
        // persisted every so often).
        while self.db.generate_id()? < next_id {}
        Ok(stats)
    }
}

/// A reader that counts what it read (for progress).
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

fn read_n<const N: usize>(r: &mut impl Read) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b).map_err(|_| bad("it ends too early"))?;
    Ok(b)
}

fn read_bytes(r: &mut impl Read, len_bytes: usize) -> Result<Vec<u8>> {
    let len = match len_bytes {
        2 => u16::from_be_bytes(read_n(r)?) as usize,
        _ => u32::from_be_bytes(read_n(r)?) as usize,
    };
    let mut b = Vec::new();
    r.take(len as u64).read_to_end(&mut b)?;
    if b.len() != len {
        return Err(bad("it ends too early"));
    }
    Ok(b)
}

/// Reads the file once and compares its last 32 bytes with the SHA-256 of the rest.
fn verify_checksum(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len < (MAGIC.len() + 4 + 8 + 4 + 1 + 32) as u64 {
        return Err(bad("it is too short"));
    }
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut hash = Sha256::new();
    std::io::copy(&mut (&mut r).take(len - 32), &mut HashSink(&mut hash))?;
    let mut kept = [0u8; 32];
    r.read_exact(&mut kept)?;
    if hash.finalize().as_slice() != kept {
        return Err(bad("its checksum does not match (truncated or altered)"));
    }
    Ok(())
}

struct HashSink<'a>(&'a mut Sha256);

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
