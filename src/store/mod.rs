//! The embedded store: the only code that names sled. It owns the trees, the key layout
//! (`keys`), the record encoding (`codec`), multi-tree atomicity and durability (group
//! commit). It knows nothing of HTTP, JSON or revocation rules: it stores sessions, tokens
//! and watermarks, and `domain` decides what they mean.
//!
//! Trees (key → value):
//! - `meta`: name → bytes (admin token hash, schema version)
//! - `apps`: app key → Application; `app_anchors`: anchor → app key
//! - `rownd_keys`: publishable key → RowndKey
//! - `accounts`: account id → Account; `account_logins` / `account_emails`: lowercase → id
//! - `subjects`: account ‖ sector → subject; `subject_owners`: sector ‖ subject → account id
//! - `sessions`: session id → Session (with the hashes of its current tokens)
//! - `by_account`: account ‖ app ‖ seq ‖ session → () (by account, by (account, app))
//! - `tokens`: SHA-256(token) → TokenRecord: tokens a rotation replaced, and every token of
//!   a store written before sessions kept their own
//! - `by_expiry`: expires ‖ session → () (sessions in expiry order; `check` keeps it exact,
//!   the sweeper reads `sessions` itself, as revoked sessions are due before they expire)
//! - `markers`: account ‖ scope → MarkerRecord (revoke-all watermarks, one per kind, and
//!   the audit entry of the revoke-all that wrote the record last). Not a sled tree: the
//!   revocation log (`revlog.rs`) keeps them in memory, logged and snapshotted; sled's tree
//!   of that name is where stores before it kept them, imported at the first open
//! - `devices`: account ‖ device id → RememberedDevice
//! - `api_tokens`: SHA-256(token) → ApiToken
//! - `jtis`: app ‖ jti → expiry (client-JWT replay detection)
//! - `audit`: account ‖ seq → AuditEntry (every revocation; a revoke-all's once counted
//!   or once its watermark record is written again, held by that record until then)

mod appcache;
mod backup;
mod check;
pub mod codec;
mod commit;
pub mod keys;
mod marker_codec;
mod presence;
mod revlog;
mod sweep;

use crate::model::*;
use marker_codec::{decode as dec_markers, encode as enc_markers};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, abort};
use sled::{Transactional, Tree};
use std::path::{Path, PathBuf};

pub use backup::BackupStats;
pub use check::{Problem, Report as CheckReport};
pub use commit::Durability;
pub use sweep::{Cursor, Page, ReadToken};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(#[from] sled::Error),
    #[error("corrupt record in tree `{tree}` at key {key}: {detail}")]
    Corrupt {
        tree: &'static str,
        key: String,
        detail: String,
    },
    #[error("cannot encode a record for tree `{tree}`: {detail}")]
    Encode { tree: &'static str, detail: String },
    #[error("{0} is already taken")]
    Taken(&'static str),
    #[error("making writes durable: {0}")]
    Io(#[from] std::io::Error),
    #[error("the data directory {0} is in use by another process (or unreadable): {1}")]
    Locked(PathBuf, String),
    #[error("not a usable sessiond backup: {0}")]
    Backup(String),
    #[error("{0} already holds a store: restore into a new directory")]
    Occupied(PathBuf),
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Engine(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache. Set explicitly: the 1 GiB default is too much for a small
    /// service, and resident memory can be a multiple of it.
    pub cache_bytes: u64,
    /// What an acknowledged write has been through; see [`Durability`].
    pub durability: Durability,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 64 << 20,
            durability: Durability::Fsync,
        }
    }
}

struct Trees {
    meta: Tree,
    apps: Tree,
    app_anchors: Tree,
    rownd_keys: Tree,
    accounts: Tree,
    account_logins: Tree,
    account_emails: Tree,
    subjects: Tree,
    subject_owners: Tree,
    sessions: Tree,
    by_account: Tree,
    tokens: Tree,
    by_expiry: Tree,
    markers: Tree,
    devices: Tree,
    api_tokens: Tree,
    jtis: Tree,
    audit: Tree,
}

/// `meta` key recording that the `markers` tree has the `ScopeMarkers` layout (written after
/// the one-time migration at open, and at the first open of a new store).
const MARKERS_LAYOUT_META: &str = "markers_layout";
const MARKERS_LAYOUT: &[u8] = b"scope";
/// `meta` key that `Store::ready` writes: the time of the last readiness probe.
const READY_PROBE_META: &str = "ready_probe";

/// A pairwise subject to record with new sessions, unless the account has one in the
/// sector already.
pub struct NewSubject<'a> {
    pub account: &'a AccountId,
    pub sector: SectorId,
    pub subject: &'a str,
}

/// What a revoke-all replaces, read by [`Store::revocation_base`] under the account's lock
/// and handed back to [`Store::apply_revocation`] under the same lock: the records of the
/// scopes it writes, and the remembered devices it forgets.
#[derive(Debug)]
pub struct RevocationBase {
    /// The watermarks of each scope to write, as they are before it (empty where there are
    /// none), in the order asked: the caller need not read them a second time.
    pub previous: Vec<(Scope, ScopeMarkers)>,
    /// The audit entries those records hold, in the same order.
    held: Vec<Option<AuditEntry>>,
    /// The remembered devices to forget, as read (removed only if still these bytes).
    device_keys: Vec<(sled::IVec, sled::IVec)>,
}

impl RevocationBase {
    /// How many remembered devices the revocation removes.
    pub fn devices(&self) -> usize {
        self.device_keys.len()
    }
}

/// A `markers` record: the watermarks of one (account, scope), and the audit entry of the
/// revoke-all that wrote it last, held here so that a revoke-all is one write. The entry
/// goes to the `audit` tree when its count is written, or when a later revoke-all rewrites
/// the record, whichever comes first; until then the audit reads find it here. An entry in
/// both places is one revocation, and the `audit` tree's copy is the newer. Its bytes:
/// `marker_codec`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct MarkerRecord {
    markers: ScopeMarkers,
    held: Option<AuditEntry>,
}

/// An audit entry in a heap ordered by seq alone (the seq comes first in the heap's tuples,
/// and no two entries share one).
struct HeldEntry(AuditEntry);

impl PartialEq for HeldEntry {
    fn eq(&self, other: &Self) -> bool {
        self.0.seq == other.0.seq
    }
}
impl Eq for HeldEntry {}
impl PartialOrd for HeldEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeldEntry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.seq.cmp(&other.0.seq)
    }
}

/// A `markers` record's bytes as its watermarks and the entry it holds (the fuzz targets
/// and tests reach the layout through this and [`encode_markers_record`]).
pub fn decode_markers_record(bytes: &[u8]) -> Result<(ScopeMarkers, Option<AuditEntry>)> {
    dec_markers(b"", bytes).map(|r| (r.markers, r.held))
}

/// The bytes of a `markers` record (of no key: the held entry keeps its account).
pub fn encode_markers_record(markers: &ScopeMarkers, held: Option<&AuditEntry>) -> Result<Vec<u8>> {
    enc_markers(
        b"",
        &MarkerRecord {
            markers: markers.clone(),
            held: held.cloned(),
        },
    )
}

pub struct Store {
    db: sled::Db,
    t: Trees,
    dir: PathBuf,
    commit: commit::GroupCommit,
    /// Every write holds its shared side for the write's duration; a snapshot holds the
    /// exclusive side, so it sees no write half done (`backup.rs`).
    writes: std::sync::RwLock<()>,
    /// Applications and Rownd keys as last read (`appcache.rs`).
    apps: appcache::AppCache,
    /// The accounts (`presence.rs`): a revoke-all learns that its account exists without
    /// a read.
    known_accounts: presence::Accounts,
    /// The watermark records, in memory, with their own log and group commit (`revlog.rs`).
    revlog: revlog::RevLog,
}

impl Drop for Store {
    /// Writes out what sled still buffers before its handle goes, so that a clean close
    /// leaves nothing to replay and sled's background writes are done before the data
    /// directory can be opened again in this process. Best effort: an acknowledged write
    /// was made durable long before.
    fn drop(&mut self) {
        self.revlog.close();
        if let Err(e) = self.db.flush() {
            tracing::warn!(error = %e, "flushing the store at close failed");
        }
    }
}

fn enc<T: Serialize>(tree: &'static str, v: &T) -> Result<Vec<u8>> {
    codec::encode(v).map_err(|detail| StoreError::Encode { tree, detail })
}

fn dec<T: DeserializeOwned>(tree: &'static str, key: &[u8], bytes: &[u8]) -> Result<T> {
    codec::decode(bytes).map_err(corruption(tree, key))
}

/// The error for a record of `tree` at `key` that does not decode, from what is wrong.
fn corruption<'a>(tree: &'static str, key: &'a [u8]) -> impl Fn(String) -> StoreError + Copy + 'a {
    move |detail| StoreError::Corrupt {
        tree,
        key: hex_encode(key),
        detail,
    }
}

/// A session record as versions before `Session::tokens` wrote it (version byte 1). Read
/// only, as a session with no tokens of its own: its tokens are in the `tokens` tree.
#[derive(serde::Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct SessionV1 {
    id: SessionId,
    account: AccountId,
    app: Option<AppKey>,
    kind: SessionKind,
    seq: u64,
    device: DeviceInfo,
    method: String,
    created: Millis,
    last_used: Millis,
    expires: Millis,
    has_refresh: bool,
    revoked: Option<Revocation>,
}

fn enc_session(s: &Session) -> Result<Vec<u8>> {
    codec::encode_as(codec::SESSION_WITH_TOKENS, s).map_err(|detail| StoreError::Encode {
        tree: "sessions",
        detail,
    })
}

/// Decodes a session record of this layout or of the one before, by its version byte.
fn dec_session(key: &[u8], bytes: &[u8]) -> Result<Session> {
    let corrupt = corruption("sessions", key);
    let (version, body) = codec::split_version(bytes).map_err(corrupt)?;
    match version {
        codec::SESSION_WITH_TOKENS => codec::decode_body(body).map_err(corrupt),
        _ => {
            // Version 1, or an unknown one, which `decode` names.
            let old: SessionV1 = codec::decode(bytes).map_err(corrupt)?;
            Ok(Session {
                id: old.id,
                account: old.account,
                app: old.app,
                kind: old.kind,
                seq: old.seq,
                device: old.device,
                method: old.method,
                created: old.created,
                last_used: old.last_used,
                expires: old.expires,
                has_refresh: old.has_refresh,
                revoked: old.revoked,
                tokens: Vec::new(),
            })
        }
    }
}

fn get<T: DeserializeOwned>(tree: &Tree, name: &'static str, key: &[u8]) -> Result<Option<T>> {
    match tree.get(key)? {
        Some(v) => Ok(Some(dec(name, key, &v)?)),
        None => Ok(None),
    }
}

/// What sessiond keeps in a data directory: sled's directory and the hub signing key.
pub(crate) const DATA_DIR_ENTRIES: [&str; 4] = [
    "store",
    crate::domain::jwt::HUB_KEY_FILE,
    crate::http::tls::SELF_SIGNED_CERT,
    crate::http::tls::SELF_SIGNED_KEY,
];

/// Creates `dir` if missing and leaves it to its owner alone (0700 on Unix): it holds token
/// hashes and the hub signing key. A directory that already existed with a looser mode (made
/// by `mkdir` under the usual umask, or by an older sessiond) is tightened, not trusted —
/// when it is sessiond's: new, or holding nothing but sessiond's own entries. Any other
/// directory (`--data ~` by mistake, a shared folder) is left as it is, with a warning:
/// changing the mode of a directory sessiond does not own would be a surprise.
fn private_dir(dir: &Path, always_ours: bool) -> Result<()> {
    let ours = always_ours
        || !dir.exists()
        || std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .all(|e| DATA_DIR_ENTRIES.iter().any(|own| e.file_name() == *own))
        });
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 && !ours {
            tracing::warn!(
                dir = %dir.display(),
                "the data directory is readable by others and holds files that are not \
                 sessiond's; leaving its mode alone (sessiond's own files in it are private)"
            );
        } else if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700)).map_err(
                |e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("restricting {} to its owner (0700): {e}", dir.display()),
                    )
                },
            )?;
        }
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the store in the data directory `dir` (sled's files live in
    /// `dir/store`). A second process on the same directory gets [`StoreError::Locked`]
    /// instead of waiting.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store> {
        let sled_dir = dir.join("store");
        private_dir(dir, false)?;
        // sled's own directory is sessiond's whatever it holds.
        private_dir(&sled_dir, true)?;
        let db = sled::Config::new()
            .path(&sled_dir)
            .cache_capacity(opts.cache_bytes)
            // sled's background flusher is the only part of sled that calls a real fsync;
            // this bounds the window in `Durability::Flush` mode.
            .flush_every_ms(Some(200))
            // Every log write ends in fdatasync, blobs synced before the log points at
            // them (vendor/sled/PATCHES.md): sled's own `flush()` is then durable.
            .sync_data(opts.durability == Durability::Fsync)
            .open()
            .map_err(|e| match e {
                // sled reports a held lock as an `Other` I/O error naming the lock.
                sled::Error::Io(io) if io.to_string().contains("lock") => {
                    StoreError::Locked(dir.to_owned(), io.to_string())
                }
                other => StoreError::Engine(other),
            })?;
        let open = |name: &str| db.open_tree(name);
        let t = Trees {
            meta: open("meta")?,
            apps: open("apps")?,
            app_anchors: open("app_anchors")?,
            rownd_keys: open("rownd_keys")?,
            accounts: open("accounts")?,
            account_logins: open("account_logins")?,
            account_emails: open("account_emails")?,
            subjects: open("subjects")?,
            subject_owners: open("subject_owners")?,
            sessions: open("sessions")?,
            by_account: open("by_account")?,
            tokens: open("tokens")?,
            by_expiry: open("by_expiry")?,
            markers: open("markers")?,
            devices: open("devices")?,
            api_tokens: open("api_tokens")?,
            jtis: open("jtis")?,
            audit: open("audit")?,
        };
        let commit = commit::GroupCommit::for_sled(&sled_dir, opts.durability, &db)?;
        // Once per store: the scan reads every watermark, which start-up need not repeat.
        let layout = t.meta.get(MARKERS_LAYOUT_META)?;
        if layout.as_deref() != Some(MARKERS_LAYOUT) {
            migrate_markers(&t)?;
            t.meta.insert(MARKERS_LAYOUT_META, MARKERS_LAYOUT)?;
            commit.flush_now()?;
        }
        let revlog = revlog::RevLog::open(
            &sled_dir,
            opts.durability,
            &t,
            &db,
            commit.flush_seconds.clone(),
        )?;
        let store = Store {
            db,
            t,
            dir: dir.to_owned(),
            commit,
            writes: std::sync::RwLock::new(()),
            apps: appcache::AppCache::default(),
            known_accounts: Default::default(),
            revlog,
        };
        store.load_presence()?;
        Ok(store)
    }

    /// Fills [`Store::known_accounts`] from the keys of its tree: one pass, no value
    /// decoded.
    pub(super) fn load_presence(&self) -> Result<()> {
        self.known_accounts.extend(self.t.accounts.iter().keys())?;
        Ok(())
    }
}

/// Rewrites watermarks of the layout before `ScopeMarkers` (one key per account, scope and
/// kind) into one key per account and scope, in one transaction, in sled's `markers` tree
/// (which the revocation log imports next). Returns how many old entries there were.
fn migrate_markers(t: &Trees) -> Result<usize> {
    let mut old = Vec::new();
    let mut merged: std::collections::BTreeMap<Vec<u8>, MarkerRecord> = Default::default();
    for kv in t.markers.iter() {
        let (k, v) = kv?;
        if k.len() != keys::OLD_MARKER_KEY_LEN {
            continue;
        }
        let code = k[keys::MARKER_KEY_LEN];
        let Some(kind) = SessionKind::ALL.into_iter().find(|k| k.code() == code) else {
            return Err(StoreError::Corrupt {
                tree: "markers",
                key: hex_encode(&k),
                detail: "an old-layout key with an unknown session kind".into(),
            });
        };
        let m: Marker = dec("markers", &k, &v)?;
        let new_key = k[..keys::MARKER_KEY_LEN].to_vec();
        let entry = match merged.entry(new_key) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let current = match t.markers.get(e.key())? {
                    Some(v) => dec_markers(e.key(), &v)?,
                    None => MarkerRecord::default(),
                };
                e.insert(current)
            }
        };
        entry.markers.set(kind, m);
        old.push(k);
    }
    if old.is_empty() {
        return Ok(0);
    }
    let encoded: Vec<(Vec<u8>, Vec<u8>)> = merged
        .iter()
        .map(|(k, v)| Ok((k.clone(), enc_markers(k, v)?)))
        .collect::<Result<_>>()?;
    t.markers.transaction(|mk| {
        for k in &old {
            mk.remove(k)?;
        }
        for (k, v) in &encoded {
            mk.insert(k.as_slice(), v.clone())?;
        }
        Ok::<(), ConflictableTransactionError<StoreError>>(())
    })?;
    tracing::info!(
        entries = old.len(),
        "migrated revoke-all watermarks to one key per scope"
    );
    Ok(old.len())
}

impl Store {
    /// Held across one write: a snapshot waits for it, and it waits for a snapshot.
    fn writing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.writes.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The data directory (sessiond's own files sit beside sled's `store/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The next value of the store's global, monotonic sequence (it survives restarts).
    pub fn next_seq(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }

    /// Makes every write done before this call durable, sharing the work with concurrent
    /// callers (group commit). Call it before acknowledging a write.
    ///
    /// The revocation log first: a write to sled may rest on a watermark read from it (the
    /// sweeper's removals, the audit's counts), and must not outlive it in a crash.
    pub async fn sync(&self) -> Result<()> {
        if self.revlog.unsynced() {
            self.revlog.sync().await?;
        }
        self.commit.sync().await
    }

    /// Makes every revoke-all applied before this call durable: its watermark records, with
    /// the sled writes they carry ([`Store::apply_revocation`]), are in the revocation log,
    /// so only that log is synced (its own group commit).
    pub async fn sync_revocations(&self) -> Result<()> {
        self.revlog.sync().await
    }

    /// The blocking form of [`Store::sync`], for the CLI and benches.
    pub fn sync_blocking(&self) -> Result<()> {
        self.revlog.sync_now()?;
        self.commit.flush_now()
    }

    /// Whether the store can acknowledge a write now: no earlier flush failed, and a small
    /// write to `meta` goes through a durable flush (`GET /readyz`).
    pub async fn ready(&self, now: Millis) -> Result<()> {
        if let Some(why) = self.commit.failure().or(self.revlog.failure()) {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "an earlier flush failed ({why})"
            ))));
        }
        {
            let _w = self.writing();
            self.t.meta.insert(READY_PROBE_META, &now.to_be_bytes())?;
        }
        self.sync().await
    }

    /// The histogram of durable flushes (of sled's log and of the revocation log), for
    /// `GET /metrics`.
    pub fn flush_histogram(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.commit.flush_seconds.clone()
    }

    /// Counts what the store holds. Reads every session record (to count its tokens): a
    /// second or so per million sessions, so `/metrics` caches it.
    pub fn stats(&self) -> Result<crate::metrics::StoreStats> {
        let mut sessions = 0u64;
        let mut tokens = self.t.tokens.len() as u64;
        for entry in self.t.sessions.iter() {
            let (k, v) = entry?;
            sessions += 1;
            tokens += dec_session(&k, &v)?.tokens.len() as u64;
        }
        Ok(crate::metrics::StoreStats {
            accounts: self.t.accounts.len() as u64,
            applications: self.t.apps.len() as u64,
            sessions,
            tokens,
            disk_bytes: self.db.size_on_disk()? + self.revlog.disk_bytes(),
        })
    }

    /// No application, account or API token yet: a new store (`--seed` applies only then).
    pub fn has_no_records(&self) -> Result<bool> {
        Ok(self.t.apps.is_empty() && self.t.accounts.is_empty() && self.t.api_tokens.is_empty())
    }

    // ---- meta -------------------------------------------------------------------------

    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.t.meta.get(name)?.map(|v| v.to_vec()))
    }

    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        let _w = self.writing();
        self.t.meta.insert(name, value)?;
        Ok(())
    }

    // ---- applications -----------------------------------------------------------------

    /// Creates an application with its first Rownd key. Fails with `Taken` if the anchor
    /// is in use.
    pub fn create_app(&self, app: &Application, key: &RowndKey) -> Result<()> {
        let value = enc("apps", app)?;
        let kvalue = enc("rownd_keys", key)?;
        self.write_apps(|| {
            (&self.t.apps, &self.t.app_anchors, &self.t.rownd_keys).transaction(
                |(apps, anchors, rkeys)| {
                    if anchors.get(app.anchor.as_str())?.is_some() {
                        return abort(StoreError::Taken("application id"));
                    }
                    anchors.insert(app.anchor.as_str(), &keys::app(app.key))?;
                    apps.insert(&keys::app(app.key), value.clone())?;
                    rkeys.insert(key.key.as_bytes(), kvalue.clone())?;
                    Ok(())
                },
            )?;
            Ok(())
        })
    }

    pub fn put_app(&self, app: &Application) -> Result<()> {
        let value = enc("apps", app)?;
        self.write_apps(|| {
            self.t.apps.insert(keys::app(app.key), value)?;
            Ok(())
        })
    }

    /// Every write to the application trees (`apps`, `app_anchors`, `rownd_keys`) goes
    /// through here: the cache of them (`appcache.rs`) is dropped once it is done, failed
    /// or not.
    fn write_apps(&self, write: impl FnOnce() -> Result<()>) -> Result<()> {
        let _w = self.writing();
        let written = write();
        self.apps.invalidate();
        written
    }

    pub fn app(&self, key: AppKey) -> Result<Option<Application>> {
        self.apps.get_or_load(
            |c| c.apps.get(&key).cloned(),
            || get(&self.t.apps, "apps", &keys::app(key)),
            |c, app| {
                c.apps.insert(key, app.clone());
            },
        )
    }

    pub fn app_by_anchor(&self, anchor: &str) -> Result<Option<Application>> {
        let key = self.apps.get_or_load(
            |c| c.anchors.get(anchor).copied(),
            || match self.t.app_anchors.get(anchor)? {
                Some(k) => {
                    let k: [u8; 8] = k.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                        tree: "app_anchors",
                        key: anchor.to_owned(),
                        detail: "application key is not 8 bytes".into(),
                    })?;
                    Ok(Some(AppKey(u64::from_be_bytes(k))))
                }
                None => Ok(None),
            },
            |c, key| {
                c.anchors.insert(anchor.to_owned(), *key);
            },
        )?;
        match key {
            Some(key) => self.app(key),
            None => Ok(None),
        }
    }

    /// Every application, in creation order.
    pub fn apps(&self) -> Result<Vec<Application>> {
        self.t
            .apps
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                dec("apps", &k, &v)
            })
            .collect()
    }

    pub fn put_rownd_key(&self, key: &RowndKey) -> Result<()> {
        let value = enc("rownd_keys", key)?;
        self.write_apps(|| {
            self.t.rownd_keys.insert(key.key.as_bytes(), value)?;
            Ok(())
        })
    }

    pub fn rownd_key(&self, key: &str) -> Result<Option<RowndKey>> {
        self.apps.get_or_load(
            |c| c.rownd_keys.get(key).cloned(),
            || get(&self.t.rownd_keys, "rownd_keys", key.as_bytes()),
            |c, k| {
                c.rownd_keys.insert(key.to_owned(), k.clone());
            },
        )
    }

    // ---- accounts ---------------------------------------------------------------------

    /// Creates an account and its login / email indexes. Fails with `Taken` if the login
    /// or email (compared lowercase) belongs to someone else.
    pub fn create_account(&self, account: &Account) -> Result<()> {
        let _w = self.writing();
        let value = enc("accounts", account)?;
        let login = account.login.to_lowercase();
        let email = account.email.as_ref().map(|e| e.to_lowercase());
        (
            &self.t.accounts,
            &self.t.account_logins,
            &self.t.account_emails,
        )
            .transaction(|(accounts, logins, emails)| {
                if logins.get(login.as_bytes())?.is_some() {
                    return abort(StoreError::Taken("login"));
                }
                if let Some(email) = &email {
                    if emails.get(email.as_bytes())?.is_some() {
                        return abort(StoreError::Taken("email"));
                    }
                    emails.insert(email.as_bytes(), &account.id.0)?;
                }
                logins.insert(login.as_bytes(), &account.id.0)?;
                accounts.insert(&account.id.0, value.clone())?;
                Ok(())
            })?;
        self.known_accounts.insert(account.id);
        Ok(())
    }

    pub fn account(&self, id: &AccountId) -> Result<Option<Account>> {
        get(&self.t.accounts, "accounts", &id.0)
    }

    /// Whether the account exists, known without a read (`presence.rs`), for the paths that
    /// need nothing else of it (every revoke-all checks it under the lock).
    pub fn has_account(&self, id: &AccountId) -> bool {
        self.known_accounts.contains(id)
    }

    fn account_via(
        &self,
        index: &Tree,
        name: &'static str,
        value: &str,
    ) -> Result<Option<Account>> {
        match index.get(value.to_lowercase().as_bytes())? {
            Some(id) => {
                let id = std::str::from_utf8(&id)
                    .ok()
                    .and_then(AccountId::parse)
                    .ok_or_else(|| StoreError::Corrupt {
                        tree: name,
                        key: value.to_owned(),
                        detail: "not an account id".into(),
                    })?;
                self.account(&id)
            }
            None => Ok(None),
        }
    }

    pub fn account_by_login(&self, login: &str) -> Result<Option<Account>> {
        self.account_via(&self.t.account_logins, "account_logins", login)
    }

    pub fn account_by_email(&self, email: &str) -> Result<Option<Account>> {
        self.account_via(&self.t.account_emails, "account_emails", email)
    }

    /// The account's subject in `sector`, if one was issued.
    pub fn subject(&self, account: &AccountId, sector: SectorId) -> Result<Option<String>> {
        Ok(self
            .t
            .subjects
            .get(keys::subject(account, sector))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Records `subject` as the account's subject in `sector` unless one exists already;
    /// returns the one that is stored.
    pub fn put_subject_if_absent(
        &self,
        account: &AccountId,
        sector: SectorId,
        subject: &str,
    ) -> Result<String> {
        let _w = self.writing();
        let fwd = keys::subject(account, sector);
        let rev = keys::subject_owner(sector, subject);
        let stored = (&self.t.subjects, &self.t.subject_owners).transaction(|(subs, owners)| {
            if let Some(existing) = subs.get(&fwd)? {
                return Ok(String::from_utf8_lossy(&existing).into_owned());
            }
            subs.insert(fwd.as_slice(), subject.as_bytes())?;
            owners.insert(rev.as_slice(), &account.0)?;
            Ok(subject.to_owned())
        })?;
        Ok(stored)
    }

    pub fn subject_owner(&self, sector: SectorId, subject: &str) -> Result<Option<AccountId>> {
        match self
            .t
            .subject_owners
            .get(keys::subject_owner(sector, subject))?
        {
            Some(v) => Ok(Some(
                std::str::from_utf8(&v)
                    .ok()
                    .and_then(AccountId::parse)
                    .ok_or_else(|| StoreError::Corrupt {
                        tree: "subject_owners",
                        key: subject.to_owned(),
                        detail: "not an account id".into(),
                    })?,
            )),
            None => Ok(None),
        }
    }

    // ---- sessions and tokens ----------------------------------------------------------

    /// Writes a new session (its tokens are in it) and its index entries in one transaction.
    pub fn insert_session(&self, s: &Session) -> Result<()> {
        self.insert_sessions(&[], &[s])
    }

    /// Writes new sessions (with their tokens) and their index entries, and the pairwise subjects
    /// they need (each unless its account has one in that sector already), all in one
    /// transaction: one commit for a whole batch, since every sled transaction seals the
    /// log's buffer.
    pub fn insert_sessions(
        &self,
        subjects: &[NewSubject<'_>],
        sessions: &[&Session],
    ) -> Result<()> {
        let _w = self.writing();
        struct Encoded {
            id: [u8; 16],
            value: Vec<u8>,
            idx: Vec<u8>,
            exp: Option<Vec<u8>>,
        }
        let encoded: Vec<Encoded> = sessions
            .iter()
            .map(|s| {
                Ok(Encoded {
                    id: s.id.0,
                    value: enc_session(s)?,
                    idx: keys::by_account(&s.account, s.app, s.seq, &s.id),
                    exp: (s.expires != NEVER).then(|| keys::by_expiry(s.expires, &s.id)),
                })
            })
            .collect::<Result<_>>()?;
        let subjects: Vec<(Vec<u8>, Vec<u8>, &NewSubject<'_>)> = subjects
            .iter()
            .map(|n| {
                (
                    keys::subject(n.account, n.sector),
                    keys::subject_owner(n.sector, n.subject),
                    n,
                )
            })
            .collect();
        (
            &self.t.sessions,
            &self.t.by_account,
            &self.t.by_expiry,
            &self.t.subjects,
            &self.t.subject_owners,
        )
            .transaction(|(sessions, by_account, by_expiry, subs, owners)| {
                for (fwd, rev, n) in &subjects {
                    if subs.get(fwd.as_slice())?.is_none() {
                        subs.insert(fwd.as_slice(), n.subject.as_bytes())?;
                        owners.insert(rev.as_slice(), &n.account.0)?;
                    }
                }
                for e in &encoded {
                    sessions.insert(&e.id, e.value.clone())?;
                    by_account.insert(e.idx.as_slice(), &[])?;
                    if let Some(exp) = &e.exp {
                        by_expiry.insert(exp.as_slice(), &[])?;
                    }
                }
                Ok(())
            })?;
        Ok(())
    }

    pub fn session(&self, id: &SessionId) -> Result<Option<Session>> {
        match self.t.sessions.get(id.0)? {
            Some(v) => Ok(Some(dec_session(&id.0, &v)?)),
            None => Ok(None),
        }
    }

    /// Rewrites a session record (a tombstone, a new last-used time); its indexes do not
    /// change because account, app, seq and expiry never do.
    pub fn put_session(&self, s: &Session) -> Result<()> {
        let _w = self.writing();
        self.t.sessions.insert(s.id.0, enc_session(s)?)?;
        Ok(())
    }

    /// The sessions of an account: all of them (`None`), those of no application
    /// (`Some(None)`), or those of one application (`Some(Some(app))`), in creation order.
    /// A prefix scan of the pair's index: it never reads other accounts' or pairs' entries.
    pub fn sessions_of(
        &self,
        account: &AccountId,
        app: Option<Option<AppKey>>,
    ) -> Result<Vec<Session>> {
        let mut out = Vec::new();
        for kv in self
            .t
            .by_account
            .scan_prefix(keys::by_account_prefix(account, app))
        {
            let (k, _) = kv?;
            let id = keys::session_of_by_account(&k).ok_or_else(|| StoreError::Corrupt {
                tree: "by_account",
                key: hex_encode(&k),
                detail: "key too short".into(),
            })?;
            // A session and its index entries go in one transaction (the sweeper): one
            // missing here was removed after the index was read. `check` verifies the index.
            if let Some(s) = self.session(&id)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    pub fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        get(&self.t.tokens, "tokens", &hash.0)
    }

    /// A token record in the `tokens` tree (a replaced token, or one of an older store).
    pub fn put_token(&self, hash: &TokenHash, t: &TokenRecord) -> Result<()> {
        let _w = self.writing();
        self.t.tokens.insert(hash.0, enc("tokens", t)?)?;
        Ok(())
    }

    /// Refresh-token rotation as ordered single-key writes, not a transaction: in sled 0.34
    /// a transaction takes a store-wide write lock, which stalls every other read and write
    /// while it waits for them, and it seals the log buffer (a `pwrite` and its sync). The
    /// order keeps every crash state safe, because sled recovers a
    /// prefix of its log:
    /// 1. `replaced`: the session's tokens this rotation replaces, copied to the `tokens`
    ///    tree (the refresh token consumed). Until step 2 the session record still holds
    ///    them as current, and a check reads the session first, so nothing changes yet.
    /// 2. `session`: the record with its new tokens and without the replaced ones. This one
    ///    write is the rotation.
    /// 3. `legacy`: the presented token marked consumed, when it was not the session's (a
    ///    token of an older store, in the `tokens` tree only). A crash before this leaves it
    ///    valid, so the client's retry rotates again; the new tokens of the lost attempt
    ///    were never handed out.
    pub fn rotate(
        &self,
        replaced: &[(TokenHash, TokenRecord)],
        session: &Session,
        legacy: Option<&(TokenHash, TokenRecord)>,
    ) -> Result<()> {
        let _w = self.writing();
        let replaced_v: Vec<(&TokenHash, Vec<u8>)> = replaced
            .iter()
            .map(|(h, t)| Ok((h, enc("tokens", t)?)))
            .collect::<Result<_>>()?;
        let s_v = enc_session(session)?;
        let legacy_v = legacy
            .map(|(h, t)| Ok::<_, StoreError>((h, enc("tokens", t)?)))
            .transpose()?;
        for (h, v) in replaced_v {
            self.t.tokens.insert(h.0, v)?;
        }
        self.t.sessions.insert(session.id.0, s_v)?;
        if let Some((h, v)) = legacy_v {
            self.t.tokens.insert(h.0, v)?;
        }
        Ok(())
    }

    // ---- revoke-all watermarks --------------------------------------------------------

    /// The record of one (account, scope), if it has one.
    fn marker_record(&self, account: &AccountId, scope: Scope) -> Result<Option<MarkerRecord>> {
        let key = keys::marker(account, scope);
        match self.revlog.get(&key) {
            Some(v) => Ok(Some(dec_markers(&key, &v)?)),
            None => Ok(None),
        }
    }

    /// Every record of an account, by scope.
    fn marker_records_of(&self, account: &AccountId) -> Result<Vec<(Scope, MarkerRecord)>> {
        let mut out = Vec::new();
        for (k, v) in self.revlog.with_prefix(&account.0) {
            if let Some(scope) = keys::scope_of_marker(&k) {
                out.push((scope, dec_markers(&k, &v)?));
            }
        }
        Ok(out)
    }

    pub fn marker(
        &self,
        account: &AccountId,
        scope: Scope,
        kind: SessionKind,
    ) -> Result<Option<Marker>> {
        Ok(self
            .marker_record(account, scope)?
            .and_then(|r| r.markers.get(kind).cloned()))
    }

    /// The watermarks of one (account, scope).
    pub fn scope_markers(&self, account: &AccountId, scope: Scope) -> Result<Option<ScopeMarkers>> {
        Ok(self.marker_record(account, scope)?.map(|r| r.markers))
    }

    /// Every watermark of an account, by scope (what a revoke-all's count needs).
    pub fn markers_of(&self, account: &AccountId) -> Result<Vec<(Scope, ScopeMarkers)>> {
        Ok(self
            .marker_records_of(account)?
            .into_iter()
            .map(|(scope, r)| (scope, r.markers))
            .collect())
    }

    /// Reads what a revoke-all of `scopes` replaces: their records, and, if asked, the
    /// account's remembered devices. The caller holds the account's lock until
    /// [`Store::apply_revocation`] has written over it, so nothing else writes them between.
    pub fn revocation_base(
        &self,
        account: &AccountId,
        scopes: impl IntoIterator<Item = Scope>,
        forget_devices: bool,
    ) -> Result<RevocationBase> {
        let mut previous: Vec<(Scope, ScopeMarkers)> = Vec::new();
        let mut held = Vec::new();
        for scope in scopes {
            if !previous.iter().any(|(s, _)| *s == scope) {
                let r = self.marker_record(account, scope)?.unwrap_or_default();
                previous.push((scope, r.markers));
                held.push(r.held);
            }
        }
        let device_keys = if forget_devices {
            self.t
                .devices
                .scan_prefix(account.0)
                .collect::<std::result::Result<_, _>>()?
        } else {
            Vec::new()
        };
        Ok(RevocationBase {
            previous,
            held,
            device_keys,
        })
    }

    /// Writes a revoke-all over `base`: its watermarks, the removal of the devices `base`
    /// found, and its audit entry, held in the record of the first scope of `base`, as one
    /// record of the revocation log (atomic: a crash keeps all of it or none). The caller
    /// makes it durable with [`Store::sync_revocations`].
    ///
    /// The entries the rewritten records held go to the `audit` tree at once, unless their
    /// count put them there already: none is lost, and a crash that keeps that write and
    /// not the record leaves at worst an entry in both places (read as one). Devices are
    /// removed only once the record is durable (a sync of the log here: only Okta's
    /// `forgetDevices` asks for it), so a crash never forgets them for a revocation it
    /// lost.
    pub fn apply_revocation(
        &self,
        account: &AccountId,
        base: RevocationBase,
        markers: &[(Scope, SessionKind, Marker)],
        entry: AuditEntry,
    ) -> Result<()> {
        let _w = self.writing();
        let mut records: Vec<(Scope, MarkerRecord)> = base
            .previous
            .into_iter()
            .map(|(scope, markers)| {
                (
                    scope,
                    MarkerRecord {
                        markers,
                        held: None,
                    },
                )
            })
            .collect();
        for (scope, kind, m) in markers {
            let Some((_, record)) = records.iter_mut().find(|(s, _)| s == scope) else {
                return Err(StoreError::Encode {
                    tree: "markers",
                    detail: format!("a watermark of {scope:?}, whose record was not read"),
                });
            };
            record.markers.set(*kind, m.clone());
        }
        let Some((_, first)) = records.first_mut() else {
            return Err(StoreError::Encode {
                tree: "markers",
                detail: "a revoke-all of no scope".into(),
            });
        };
        first.held = Some(entry);
        let mut ops = Vec::with_capacity(records.len() + base.held.len());
        for (scope, r) in &records {
            let key = keys::marker(account, *scope);
            let value = enc_markers(&key, r)?;
            ops.push(revlog::Op::Put {
                key: revlog::key_of(account, *scope),
                value,
            });
        }
        for held in base.held.iter().flatten() {
            let op = revlog::Op::AuditIfAbsent {
                key: keys::audit(&held.account, held.seq),
                value: enc("audit", held)?,
            };
            revlog::apply_to_sled(&self.t, &op)?;
            ops.push(op);
        }
        let forget: Vec<revlog::Op> = base
            .device_keys
            .into_iter()
            .map(|(key, value)| revlog::Op::ForgetDevice {
                key: key.to_vec(),
                value: value.to_vec(),
            })
            .collect();
        ops.extend(forget.iter().cloned());
        // With devices to forget, no checkpoint may end the record's log before they are
        // gone from sled: its flush is what makes their removal durable.
        let _gate = (!forget.is_empty()).then(|| self.revlog.hold());
        self.revlog.append(&ops);
        if !forget.is_empty() {
            // The devices go only once the record that says so is durable: a crash before
            // leaves both, after it the log's replay removes them if sled had not.
            self.revlog.sync_now()?;
            for op in &forget {
                revlog::apply_to_sled(&self.t, op)?;
            }
        }
        Ok(())
    }

    /// Once a revoke-all's entry is counted and its counted copy written to the `audit`
    /// tree, the watermark record holding it need not any more: it is rewritten without
    /// it, so that the records kept in memory stay small (the entry was over half of a
    /// Rownd record's bytes). The caller holds the account's lock. The log record carries
    /// the counted copy as well, so no crash keeps the smaller record and loses the copy.
    /// Returns whether a record held it.
    pub fn release_held(&self, counted: &AuditEntry) -> Result<bool> {
        let _w = self.writing();
        for (scope, mut r) in self.marker_records_of(&counted.account)? {
            if r.held.as_ref().is_none_or(|h| h.seq != counted.seq) {
                continue;
            }
            r.held = None;
            let key = keys::marker(&counted.account, scope);
            let value = enc_markers(&key, &r)?;
            self.revlog.append(&[
                revlog::Op::AuditIfAbsent {
                    key: keys::audit(&counted.account, counted.seq),
                    value: enc("audit", counted)?,
                },
                revlog::Op::Put {
                    key: revlog::key_of(&counted.account, scope),
                    value,
                },
            ]);
            return Ok(true);
        }
        Ok(false)
    }

    // ---- audit log ----------------------------------------------------------------------

    /// Records a revocation, or rewrites its entry once counted: one single-key write (made
    /// durable by the caller's sync, with the revocation it records).
    pub fn put_audit(&self, e: &AuditEntry) -> Result<()> {
        let _w = self.writing();
        self.t
            .audit
            .insert(keys::audit(&e.account, e.seq), enc("audit", e)?)?;
        Ok(())
    }

    /// One entry, from the `audit` tree or, not yet there, held by a watermark record of
    /// its account.
    pub fn audit_entry(&self, account: &AccountId, seq: u64) -> Result<Option<AuditEntry>> {
        if let Some(e) = get(&self.t.audit, "audit", &keys::audit(account, seq))? {
            return Ok(Some(e));
        }
        Ok(self.held_of(account)?.into_iter().find(|e| e.seq == seq))
    }

    /// The entries `account`'s watermark records hold. Some may be in the `audit` tree too
    /// (counted since): the callers read the tree first and keep its copy.
    fn held_of(&self, account: &AccountId) -> Result<Vec<AuditEntry>> {
        Ok(self
            .marker_records_of(account)?
            .into_iter()
            .filter_map(|(_, r)| r.held)
            .collect())
    }

    /// Every entry held by a watermark record, in key order (the audit tree not consulted).
    fn all_held(&self) -> impl Iterator<Item = Result<AuditEntry>> + '_ {
        self.revlog
            .pages(4096)
            .flatten()
            .filter_map(|(k, v)| dec_markers(&k, &v).map(|r| r.held).transpose())
    }

    /// Entries whose count is not done (after a restart: those the last run left). Reads
    /// the whole log and every watermark record: the background task runs it once, at start.
    pub fn pending_audit(&self) -> Result<Vec<(AccountId, u64)>> {
        let mut out = Vec::new();
        for kv in self.t.audit.iter() {
            let (k, v) = kv?;
            let e: AuditEntry = dec("audit", &k, &v)?;
            if e.pending.is_some() {
                out.push((e.account, e.seq));
            }
        }
        for e in self.all_held() {
            let e = e?;
            if e.pending.is_some() && !self.t.audit.contains_key(keys::audit(&e.account, e.seq))? {
                out.push((e.account, e.seq));
            }
        }
        Ok(out)
    }

    /// Up to `limit` entries, newest first, older than `before` (a seq) if given. Of one
    /// account: a backwards range scan, and the entries its watermark records hold. Of all:
    /// a pass over the whole log keeping the newest `limit`, as entries are ordered by
    /// account first, and one over every watermark record.
    pub fn audit_page(
        &self,
        account: Option<&AccountId>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let upper = before.unwrap_or(u64::MAX);
        // The newest `limit` of the tree, and the newest `limit` held (an entry in both is
        // found twice, and the tree's copy kept): the newest `limit` of all are among them.
        let mut out: Vec<AuditEntry> = Vec::new();
        let held = match account {
            Some(a) => {
                let range = keys::audit(a, 0)..keys::audit(a, upper);
                for kv in self.t.audit.range(range).rev().take(limit) {
                    let (k, v) = kv?;
                    out.push(dec("audit", &k, &v)?);
                }
                self.held_of(a)?
            }
            None => {
                // The `limit` newest seqs below `upper`, as a min-heap.
                let mut newest: BinaryHeap<Reverse<(u64, Vec<u8>)>> = BinaryHeap::new();
                for k in self.t.audit.iter().keys() {
                    let k = k?;
                    let Some(seq) = keys::seq_of_audit(&k) else {
                        continue;
                    };
                    if seq >= upper {
                        continue;
                    }
                    newest.push(Reverse((seq, k.to_vec())));
                    if newest.len() > limit {
                        newest.pop();
                    }
                }
                for Reverse((_, k)) in newest.into_sorted_vec() {
                    if let Some(e) = get(&self.t.audit, "audit", &k)? {
                        out.push(e);
                    }
                }
                let mut newest_held: BinaryHeap<Reverse<(u64, HeldEntry)>> = BinaryHeap::new();
                for e in self.all_held() {
                    let e = e?;
                    if e.seq >= upper {
                        continue;
                    }
                    newest_held.push(Reverse((e.seq, HeldEntry(e))));
                    if newest_held.len() > limit {
                        newest_held.pop();
                    }
                }
                newest_held
                    .into_iter()
                    .map(|Reverse((_, HeldEntry(e)))| e)
                    .collect()
            }
        };
        for e in held {
            if e.seq < upper && !out.iter().any(|o| o.seq == e.seq) {
                out.push(e);
            }
        }
        out.sort_by_key(|e| Reverse(e.seq));
        out.truncate(limit);
        Ok(out)
    }

    // ---- remembered devices -----------------------------------------------------------

    pub fn add_device(&self, account: &AccountId, d: &RememberedDevice) -> Result<()> {
        let _w = self.writing();
        self.t
            .devices
            .insert(keys::device(account, &d.id), enc("devices", d)?)?;
        Ok(())
    }

    pub fn devices(&self, account: &AccountId) -> Result<Vec<RememberedDevice>> {
        self.t
            .devices
            .scan_prefix(account.0)
            .map(|kv| {
                let (k, v) = kv?;
                dec("devices", &k, &v)
            })
            .collect()
    }

    // ---- API tokens and client-JWT replay --------------------------------------------

    pub fn put_api_token(&self, hash: &TokenHash, t: &ApiToken) -> Result<()> {
        let _w = self.writing();
        self.t.api_tokens.insert(hash.0, enc("api_tokens", t)?)?;
        Ok(())
    }

    pub fn api_token(&self, hash: &TokenHash) -> Result<Option<ApiToken>> {
        get(&self.t.api_tokens, "api_tokens", &hash.0)
    }

    /// Records a client JWT's `jti` for `app`; `false` if it was seen before. Atomic:
    /// of two concurrent claims of one `jti`, exactly one wins.
    pub fn claim_jti(&self, app: AppKey, jti: &str, expires: Millis) -> Result<bool> {
        let _w = self.writing();
        let won = self
            .t
            .jtis
            .compare_and_swap(
                keys::jti(app, jti),
                None as Option<&[u8]>,
                Some(&expires.to_be_bytes()[..]),
            )?
            .is_ok();
        Ok(won)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(dir.path(), &StoreOptions::default()).expect("open");
        (dir, s)
    }

    #[test]
    fn application_reads_see_every_write_through_the_cache() {
        let (_d, s) = store();
        let mut app = Application {
            key: AppKey(3),
            anchor: Anchor::parse("cached").expect("anchor"),
            name: "Cached".into(),
            enabled: true,
            sector: SectorId(1),
            connect_public_key_pem: None,
            login_expiration_days: 90,
            created: 1,
        };
        let mut key = RowndKey {
            app: app.key,
            key: "key_cached".into(),
            secret_hash: TokenHash([5; 32]),
            created: 1,
            revoked_at: None,
        };
        // Misses are not remembered: the application is found once created.
        assert_eq!(s.app_by_anchor("cached").expect("read"), None);
        assert_eq!(s.rownd_key("key_cached").expect("read"), None);
        s.create_app(&app, &key).expect("create");
        // Twice each: the first read fills the cache, the second reads it.
        for _ in 0..2 {
            assert_eq!(
                s.app_by_anchor("cached").expect("read").as_ref(),
                Some(&app)
            );
            assert_eq!(s.app(app.key).expect("read").as_ref(), Some(&app));
            assert_eq!(
                s.rownd_key("key_cached").expect("read").as_ref(),
                Some(&key)
            );
        }
        app.enabled = false;
        s.put_app(&app).expect("disable");
        assert_eq!(
            s.app_by_anchor("cached").expect("read").as_ref(),
            Some(&app)
        );
        assert_eq!(s.app(app.key).expect("read").as_ref(), Some(&app));
        key.revoked_at = Some(2);
        s.put_rownd_key(&key).expect("revoke key");
        assert_eq!(
            s.rownd_key("key_cached").expect("read").as_ref(),
            Some(&key)
        );
        // A read that started before a write does not put back what it read: the write
        // lands between this load's read and its fill.
        let stale = app.clone();
        app.enabled = true;
        let read = s
            .apps
            .get_or_load(
                |_| None,
                || {
                    s.put_app(&app)?;
                    Ok(Some(stale.clone()))
                },
                |c, a| {
                    c.apps.insert(a.key, a.clone());
                },
            )
            .expect("load");
        assert_eq!(read.as_ref(), Some(&stale));
        assert_eq!(s.app(app.key).expect("read").as_ref(), Some(&app));
    }

    #[test]
    fn sessions_of_the_layout_before_their_tokens_still_read() {
        // What a store of the version before `Session::tokens` holds.
        let (_d, s) = store();
        let old = SessionV1 {
            id: SessionId([2; 16]),
            account: AccountId::from_random([3; 17]),
            app: Some(AppKey(4)),
            kind: SessionKind::Login,
            seq: 9,
            device: DeviceInfo::default(),
            method: "password".into(),
            created: 1,
            last_used: 2,
            expires: 3,
            has_refresh: true,
            revoked: None,
        };
        s.t.sessions
            .insert(old.id.0, codec::encode(&old).expect("encode"))
            .expect("insert");
        let read = s.session(&old.id).expect("decodes").expect("present");
        assert_eq!(
            (read.id, read.seq, read.kind, read.method.as_str()),
            (old.id, 9, SessionKind::Login, "password")
        );
        assert!(read.tokens.is_empty());
        // Written back, it is today's layout, and reads the same.
        s.put_session(&read).expect("put");
        assert_eq!(s.session(&old.id).expect("decodes"), Some(read.clone()));
        // A record of either layout with bytes missing is damage, never the other layout.
        let today = enc_session(&s.session(&old.id).unwrap().unwrap()).unwrap();
        let before = codec::encode(&old).unwrap();
        for record in [&today, &before] {
            for cut in 0..record.len() {
                assert!(dec_session(b"k", &record[..cut]).is_err(), "cut at {cut}");
            }
        }
        // Today's session without tokens is not yesterday's record either.
        let mut tokenless = read.clone();
        tokenless.tokens.clear();
        let bytes = enc_session(&tokenless).unwrap();
        assert_eq!(bytes[0], codec::SESSION_WITH_TOKENS);
        assert_eq!(dec_session(b"k", &bytes).unwrap(), tokenless);
    }

    #[test]
    fn corrupt_records_name_their_key() {
        let (_d, s) = store();
        s.t.sessions
            .insert([1u8; 16], &[1, 2, 3][..])
            .expect("insert");
        let err = s.session(&SessionId([1; 16])).expect_err("corrupt");
        let text = err.to_string();
        assert!(text.contains("sessions"), "{text}");
        assert!(text.contains(&"01".repeat(16)), "{text}");
    }

    /// Writes a watermark record's bytes as they are, behind the codec's back.
    fn put_record(s: &Store, key: &[u8], bytes: Vec<u8>) {
        s.revlog.append(&[revlog::Op::Put {
            key: key.try_into().expect("key length"),
            value: bytes,
        }]);
    }

    /// A revoke-all of `markers` as the domain writes one, with an audit entry of its own.
    pub(super) fn revoke(s: &Store, a: &AccountId, markers: &[(Scope, SessionKind, Marker)]) {
        let base = s
            .revocation_base(a, markers.iter().map(|(scope, _, _)| *scope), false)
            .expect("read");
        let seq = markers.first().map_or(0, |(_, _, m)| m.upto);
        s.apply_revocation(a, base, markers, entry(a, seq))
            .expect("revoke");
    }

    pub(super) fn entry(a: &AccountId, seq: u64) -> AuditEntry {
        AuditEntry {
            seq,
            at: 1,
            operation: "test.revoke_all".into(),
            credential: Credential::Admin,
            account: *a,
            app: None,
            scope: "app".into(),
            session: None,
            devices_forgotten: 0,
            killed: None,
            pending: None,
        }
    }

    fn watermark(upto: u64, by: &str) -> Marker {
        Marker {
            upto,
            except: None,
            revocation: Revocation {
                at: 1,
                by: by.into(),
                reason: "test".into(),
            },
        }
    }

    #[test]
    fn one_scope_is_one_key_and_its_kinds_keep_each_other() {
        let (_d, s) = store();
        let a = AccountId::from_random([3; 17]);
        let p = Scope::App(AppKey(7));
        let both = [
            (p, SessionKind::Login, watermark(5, "first")),
            (p, SessionKind::Pat, watermark(5, "first")),
        ];
        revoke(&s, &a, &both);
        // A later revoke of one kind of the same scope leaves the other kind's watermark.
        revoke(&s, &a, &[(p, SessionKind::Login, watermark(9, "second"))]);
        assert_eq!(s.revlog.with_prefix(&a.0).len(), 1);
        let get = |scope, kind| s.marker(&a, scope, kind).expect("read");
        assert_eq!(get(p, SessionKind::Login), Some(watermark(9, "second")));
        assert_eq!(get(p, SessionKind::Pat), Some(watermark(5, "first")));
        assert_eq!(get(p, SessionKind::Oauth), None);
        assert_eq!(get(Scope::AllApps, SessionKind::Login), None);
        // Two scopes: both written (one transaction).
        revoke(
            &s,
            &a,
            &[
                (Scope::NoApp, SessionKind::Idp, watermark(11, "okta")),
                (Scope::AllApps, SessionKind::Oauth, watermark(11, "okta")),
            ],
        );
        assert_eq!(s.revlog.with_prefix(&a.0).len(), 3);
        assert_eq!(
            get(Scope::NoApp, SessionKind::Idp),
            Some(watermark(11, "okta"))
        );
        assert_eq!(
            get(Scope::AllApps, SessionKind::Oauth),
            Some(watermark(11, "okta"))
        );
    }

    #[test]
    fn a_revoke_all_s_entry_is_held_by_its_record_until_counted_or_replaced() {
        let (_d, s) = store();
        let a = AccountId::from_random([6; 17]);
        let p = Scope::App(AppKey(7));
        let pending = |seq| AuditEntry {
            pending: Some(PendingCount {
                targets: vec![(p, SessionKind::Login)],
                upto: seq,
                except: None,
                before: Vec::new(),
            }),
            ..entry(&a, seq)
        };
        let write = |seq: u64, e: AuditEntry| {
            let base = s.revocation_base(&a, [p], false).expect("read");
            s.apply_revocation(&a, base, &[(p, SessionKind::Login, watermark(seq, "w"))], e)
                .expect("revoke");
        };
        // One write: the watermark record, holding the entry; nothing in `audit` yet.
        write(5, pending(5));
        assert_eq!(s.t.audit.len(), 0);
        assert_eq!(s.audit_entry(&a, 5).expect("read"), Some(pending(5)));
        assert_eq!(s.pending_audit().expect("read"), vec![(a, 5)]);
        let seqs = |page: Vec<AuditEntry>| page.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(s.audit_page(Some(&a), None, 10).expect("page")), [5]);
        assert_eq!(seqs(s.audit_page(None, None, 10).expect("page")), [5]);
        // The next revoke-all of the scope moves it to `audit`, pending still, and is held.
        write(8, pending(8));
        assert_eq!(s.t.audit.len(), 1);
        assert_eq!(s.audit_entry(&a, 5).expect("read"), Some(pending(5)));
        let mut all_pending = s.pending_audit().expect("read");
        all_pending.sort_by_key(|(_, seq)| *seq);
        assert_eq!(all_pending, vec![(a, 5), (a, 8)]);
        for account in [Some(&a), None] {
            assert_eq!(seqs(s.audit_page(account, None, 10).expect("page")), [8, 5]);
            assert_eq!(seqs(s.audit_page(account, None, 1).expect("page")), [8]);
            assert_eq!(seqs(s.audit_page(account, Some(8), 10).expect("page")), [5]);
        }
        // Counted, the held entry is written to `audit`: that copy is the one read, once.
        let counted = AuditEntry {
            killed: Some(AuditCount {
                sessions: 2,
                refresh_tokens: 1,
            }),
            ..entry(&a, 8)
        };
        s.put_audit(&counted).expect("count");
        assert_eq!(s.audit_entry(&a, 8).expect("read"), Some(counted.clone()));
        assert_eq!(s.pending_audit().expect("read"), vec![(a, 5)]);
        for account in [Some(&a), None] {
            let page = s.audit_page(account, None, 10).expect("page");
            assert_eq!(seqs(page.clone()), [8, 5]);
            assert_eq!(page[0], counted);
        }
        // Replacing a record whose entry was counted keeps the counted copy.
        write(9, entry(&a, 9));
        assert_eq!(s.audit_entry(&a, 8).expect("read"), Some(counted.clone()));
        assert_eq!(seqs(s.audit_page(None, None, 10).expect("page")), [9, 8, 5]);
        // Released once counted: the record is rewritten without it, and reads the same.
        let held = |s: &Store| s.marker_record(&a, p).expect("read").expect("record").held;
        let nine = AuditEntry {
            killed: Some(AuditCount {
                sessions: 1,
                refresh_tokens: 0,
            }),
            ..entry(&a, 9)
        };
        assert!(
            !s.release_held(&counted).expect("release"),
            "no longer held"
        );
        s.put_audit(&nine).expect("count");
        let before = s.marker_record(&a, p).expect("read").expect("record");
        assert!(s.release_held(&nine).expect("release"));
        assert_eq!(held(&s), None);
        assert_eq!(
            s.marker_record(&a, p).expect("read").map(|r| r.markers),
            Some(before.markers)
        );
        assert_eq!(s.audit_entry(&a, 9).expect("read"), Some(nine.clone()));
        assert_eq!(seqs(s.audit_page(None, None, 10).expect("page")), [9, 8, 5]);
    }

    #[test]
    fn a_record_names_each_revocation_once_and_the_layout_before_still_reads() {
        let (_d, s) = store();
        let a = AccountId::from_random([7; 17]);
        let p = Scope::App(AppKey(7));
        let kinds = [SessionKind::Login, SessionKind::Oauth, SessionKind::Pat];
        let all: Vec<_> = kinds
            .iter()
            .map(|k| (p, *k, watermark(4, "rownd")))
            .collect();
        revoke(&s, &a, &all);
        let key = keys::marker(&a, p);
        let bytes = s.revlog.get(&key).expect("present");
        let record = dec_markers(&key, &bytes).expect("decodes");
        // The same revocation for three kinds: stored once.
        let one = ScopeMarkers {
            by_kind: kinds.iter().map(|k| (*k, watermark(4, "rownd"))).collect(),
        };
        assert_eq!(record.markers, one);
        let without_entry = enc_markers(
            &key,
            &MarkerRecord {
                markers: one.clone(),
                held: None,
            },
        )
        .expect("encode");
        let before = codec::encode(&one).expect("encode");
        assert!(
            without_entry.len() * 3 < before.len() * 2,
            "{} bytes against {}",
            without_entry.len(),
            before.len()
        );
        // A record of the layout before reads as watermarks holding no entry.
        put_record(&s, &key, before);
        assert_eq!(s.scope_markers(&a, p).expect("read"), Some(one));
        assert_eq!(s.audit_entry(&a, 4).expect("read"), None);
        // A watermark naming a revocation the record lacks is damage, named with its key.
        let disk = marker_codec::MarkersDisk::<Revocation, AuditEntry> {
            kinds: vec![(SessionKind::Login, 4, None, 3)],
            revocations: vec![watermark(4, "x").revocation],
            held: None,
        };
        let bad = codec::encode_as(codec::MARKERS_WITH_AUDIT, &disk).expect("encode");
        put_record(&s, &key, bad);
        let err = s.scope_markers(&a, p).expect_err("corrupt").to_string();
        assert!(
            err.contains("markers") && err.contains("names revocation 3"),
            "{err}"
        );
    }

    #[test]
    fn watermarks_are_read_after_a_write_and_after_a_reopen_and_absent_ones_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marked = AccountId::from_random([4; 17]);
        let other = AccountId::from_random([5; 17]);
        let app = Scope::App(AppKey(7));
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).expect("open");
            // The other account has watermarks, only not of every application.
            revoke(
                &s,
                &other,
                &[(app, SessionKind::Login, watermark(3, "app"))],
            );
            assert_eq!(s.scope_markers(&other, Scope::AllApps).expect("read"), None);
            assert_eq!(
                s.scope_markers(&marked, Scope::AllApps).expect("read"),
                None
            );
            revoke(
                &s,
                &marked,
                &[(Scope::AllApps, SessionKind::Oauth, watermark(8, "okta"))],
            );
            assert!(
                s.scope_markers(&marked, Scope::AllApps)
                    .expect("read")
                    .is_some()
            );
            assert_eq!(
                s.marker(&marked, Scope::AllApps, SessionKind::Oauth)
                    .expect("read"),
                Some(watermark(8, "okta"))
            );
            s.sync_blocking().expect("sync");
        }
        // A reopen learns them from the keys.
        let s = Store::open(dir.path(), &StoreOptions::default()).expect("reopen");
        assert!(
            s.scope_markers(&marked, Scope::AllApps)
                .expect("read")
                .is_some()
        );
        assert_eq!(s.scope_markers(&other, Scope::AllApps).expect("read"), None);
        assert_eq!(
            s.scope_markers(&marked, Scope::AllApps)
                .expect("read")
                .and_then(|m| m.get(SessionKind::Oauth).cloned()),
            Some(watermark(8, "okta"))
        );
        assert_eq!(
            s.marker(&other, app, SessionKind::Login).expect("read"),
            Some(watermark(3, "app"))
        );
        // Every scope without a record is answered without a read, of every account.
        assert!(s.scope_markers(&other, app).expect("read").is_some());
        assert_eq!(s.scope_markers(&other, Scope::NoApp).expect("read"), None);
        assert_eq!(s.scope_markers(&marked, app).expect("read"), None);
        assert_eq!(
            s.marker(&marked, app, SessionKind::Login).expect("read"),
            None
        );
    }

    #[test]
    fn watermarks_of_the_old_layouts_are_migrated_and_imported_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = AccountId::from_random([4; 17]);
        let p = Scope::App(AppKey(7));
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).expect("open");
            // A store of a version before `ScopeMarkers` has no layout record (nor the
            // revocation log's)...
            s.t.meta.remove(MARKERS_LAYOUT_META).expect("remove");
            s.t.meta.remove(revlog::SNAPSHOT_META).expect("remove");
            // ...and its watermarks in sled, as it wrote them: account ‖ scope ‖ kind →
            // Marker, next to a new-layout key of the same scope.
            for (kind, m) in [
                (SessionKind::Login, watermark(3, "old-login")),
                (SessionKind::Oauth, watermark(4, "old-oauth")),
            ] {
                let mut k = keys::marker(&a, p);
                k.push(kind.code());
                s.t.markers
                    .insert(k, enc("markers", &m).expect("enc"))
                    .expect("insert");
            }
            let key = keys::marker(&a, p);
            let mut pat = ScopeMarkers::default();
            pat.set(SessionKind::Pat, watermark(2, "new-pat"));
            let record = MarkerRecord {
                markers: pat,
                held: None,
            };
            s.t.markers
                .insert(&key, enc_markers(&key, &record).expect("enc"))
                .expect("insert");
            // A key of no watermark, which `sessiond check` names: kept.
            s.t.markers.insert(b"junk", b"junk").expect("insert");
            s.sync_blocking().expect("flush");
        }
        // ...and no revocation log.
        for e in std::fs::read_dir(dir.path().join("store")).expect("dir") {
            let e = e.expect("entry");
            if e.file_name().to_string_lossy().starts_with("revocations.") {
                std::fs::remove_file(e.path()).expect("remove");
            }
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).expect("reopen");
        let left: Vec<_> = s.t.markers.iter().keys().map(|k| k.expect("key")).collect();
        assert_eq!(
            left,
            [sled::IVec::from(b"junk")],
            "imported, then removed from sled"
        );
        assert_eq!(
            s.revlog.with_prefix(&a.0).len(),
            1,
            "the old keys are merged"
        );
        let get = |kind| s.marker(&a, p, kind).expect("read");
        assert_eq!(get(SessionKind::Login), Some(watermark(3, "old-login")));
        assert_eq!(get(SessionKind::Oauth), Some(watermark(4, "old-oauth")));
        assert_eq!(get(SessionKind::Pat), Some(watermark(2, "new-pat")));
        assert_eq!(
            s.meta(MARKERS_LAYOUT_META).expect("meta").as_deref(),
            Some(MARKERS_LAYOUT),
            "the migration is recorded, so later opens skip the scan"
        );
        drop(s);
        // The snapshot holds them from now on.
        let s = Store::open(dir.path(), &StoreOptions::default()).expect("reopen");
        assert_eq!(
            s.marker(&a, p, SessionKind::Oauth).expect("read"),
            Some(watermark(4, "old-oauth"))
        );
    }

    fn revlog_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("store"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("revocations."))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn watermarks_survive_a_reopen_from_the_log_and_from_the_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = AccountId::from_random([8; 17]);
        let p = Scope::App(AppKey(3));
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).expect("open");
            revoke(&s, &a, &[(p, SessionKind::Login, watermark(3, "one"))]);
            s.sync_blocking().expect("sync");
            // In the log only: the snapshot of the open is empty.
            assert_eq!(
                revlog_files(dir.path()),
                ["revocations.1.log", "revocations.snapshot"]
            );
        }
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).expect("reopen");
            assert_eq!(
                s.marker(&a, p, SessionKind::Login).expect("read"),
                Some(watermark(3, "one"))
            );
            revoke(&s, &a, &[(p, SessionKind::Login, watermark(5, "two"))]);
            s.revlog.checkpoint(&s.db).expect("checkpoint");
            revoke(&s, &a, &[(p, SessionKind::Pat, watermark(6, "three"))]);
            s.sync_blocking().expect("sync");
            assert_eq!(
                revlog_files(dir.path()),
                ["revocations.3.log", "revocations.snapshot"],
                "the log checkpointed is gone"
            );
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).expect("reopen");
        let get = |kind| s.marker(&a, p, kind).expect("read");
        assert_eq!(get(SessionKind::Login), Some(watermark(5, "two")));
        assert_eq!(get(SessionKind::Pat), Some(watermark(6, "three")));
    }

    #[test]
    fn a_log_cut_short_is_replayed_up_to_the_cut_and_an_old_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = AccountId::from_random([9; 17]);
        let p = Scope::App(AppKey(3));
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).expect("open");
            revoke(&s, &a, &[(p, SessionKind::Login, watermark(3, "kept"))]);
            s.sync_blocking().expect("sync");
        }
        let log = dir.path().join("store").join("revocations.1.log");
        let whole = std::fs::read(&log).expect("read");
        // A second record, cut short, as a crash in its write leaves it.
        let mut torn = whole.clone();
        torn.extend_from_slice(&whole[..whole.len() / 2]);
        std::fs::write(&log, &torn).expect("write");
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).expect("reopen");
            assert_eq!(
                s.marker(&a, p, SessionKind::Login).expect("read"),
                Some(watermark(3, "kept"))
            );
            // A record in the log after it.
            revoke(&s, &a, &[(p, SessionKind::Pat, watermark(4, "later"))]);
            s.sync_blocking().expect("sync");
        }
        // A snapshot gone from a store that wrote one is damage, not an older store.
        let snapshot = dir.path().join("store").join("revocations.snapshot");
        let kept = std::fs::read(&snapshot).expect("read");
        std::fs::remove_file(&snapshot).expect("remove");
        let err = Store::open(dir.path(), &StoreOptions::default())
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("revocations.snapshot") && err.contains("missing"),
            "{err}"
        );
        std::fs::write(&snapshot, kept).expect("write");
        // The same cut in a log that a later log's records follow is not a crash's: refused.
        std::fs::write(&log, &torn).expect("write");
        let err = Store::open(dir.path(), &StoreOptions::default())
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("revocations.1.log"), "{err}");
    }

    /// Puts `value` under the raw record key `k`, straight into the revocation log.
    fn put_raw(s: &Store, k: u8, value: &[u8]) {
        s.revlog.append(&[revlog::Op::Put {
            key: [k; keys::MARKER_KEY_LEN],
            value: value.to_vec(),
        }]);
    }

    fn raw(s: &Store, k: u8) -> Option<Vec<u8>> {
        s.revlog.get(&[k; keys::MARKER_KEY_LEN])
    }

    /// Twenty records of 64 KiB under keys `first..first + 20`: enough log for its file to
    /// be kept as the spare, and for a new store to make one of zeros.
    fn fill_log(s: &Store, first: u8) {
        for i in 0..20u8 {
            put_raw(s, first + i, &[i; 64 << 10]);
        }
    }

    /// Not `Fsync`: no spare of zeros is made while a test switches logs itself.
    fn without_fill() -> StoreOptions {
        StoreOptions {
            durability: Durability::Flush,
            ..StoreOptions::default()
        }
    }

    #[test]
    fn a_log_made_from_an_ended_one_does_not_replay_its_old_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_dir = dir.path().join("store");
        let opts = without_fill();
        {
            let s = Store::open(dir.path(), &opts).expect("open");
            // Log 1: two records of the same size, the second stale once the file is
            // reused, then enough for the file to be kept as the spare.
            put_raw(&s, 1, b"first");
            put_raw(&s, 1, b"stale");
            fill_log(&s, 100);
            s.sync_blocking().expect("sync");
            s.revlog.checkpoint(&s.db).expect("checkpoint");
            assert!(store_dir.join("revocations.spare").exists());
            // The next switch makes log 3 from it.
            s.revlog.checkpoint(&s.db).expect("checkpoint");
            assert_eq!(
                revlog_files(dir.path()),
                ["revocations.3.log", "revocations.snapshot"]
            );
            assert!(
                std::fs::metadata(store_dir.join("revocations.3.log"))
                    .expect("log")
                    .len()
                    > 1 << 20
            );
            // Exactly where log 1's first record was: its second follows, sealed for log 1.
            put_raw(&s, 1, b"third");
            s.sync_blocking().expect("sync");
        }
        let s = Store::open(dir.path(), &opts).expect("reopen");
        assert_eq!(raw(&s, 1).as_deref(), Some(b"third".as_slice()));
        assert_eq!(raw(&s, 119).map(|v| v.len()), Some(64 << 10));
        assert_eq!(
            revlog_files(dir.path()),
            [
                "revocations.4.log",
                "revocations.snapshot",
                "revocations.spare"
            ],
            "log 3 is the spare again"
        );
        put_raw(&s, 2, b"in log 4");
        s.sync_blocking().expect("sync");
        drop(s);
        // A header that does not name its log, with records behind it, is damage.
        let log = store_dir.join("revocations.4.log");
        let mut bytes = std::fs::read(&log).expect("read");
        bytes[16] ^= 1;
        std::fs::write(&log, &bytes).expect("write");
        let err = Store::open(dir.path(), &opts)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("revocations.4.log") && err.contains("header"),
            "{err}"
        );
        bytes[16] ^= 1;
        std::fs::write(&log, &bytes).expect("write");
        let s = Store::open(dir.path(), &opts).expect("reopen");
        assert_eq!(raw(&s, 2).as_deref(), Some(b"in log 4".as_slice()));
    }

    #[test]
    fn a_switch_cut_short_after_the_next_log_is_made_loses_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_dir = dir.path().join("store");
        let opts = without_fill();
        {
            let s = Store::open(dir.path(), &opts).expect("open");
            fill_log(&s, 100);
            s.sync_blocking().expect("sync");
            s.revlog.checkpoint(&s.db).expect("checkpoint");
            put_raw(&s, 1, b"in log 2");
            s.sync_blocking().expect("sync");
        }
        // As a crash leaves it once the next log is made from the spare, before log 2 got
        // its end record: log 3 has its header, then log 1's old records.
        let mut next = std::fs::read(store_dir.join("revocations.spare")).expect("spare");
        next[..revlog::log_header(3).len()].copy_from_slice(&revlog::log_header(3));
        std::fs::write(store_dir.join("revocations.3.log"), &next).expect("write");
        std::fs::remove_file(store_dir.join("revocations.spare")).expect("remove");
        let s = Store::open(dir.path(), &opts).expect("reopen");
        assert_eq!(raw(&s, 1).as_deref(), Some(b"in log 2".as_slice()));
        assert_eq!(raw(&s, 119).map(|v| v.len()), Some(64 << 10));
        assert_eq!(
            revlog_files(dir.path()),
            [
                "revocations.4.log",
                "revocations.snapshot",
                "revocations.spare"
            ]
        );
    }

    #[test]
    fn a_new_store_switches_to_a_spare_of_zeros_once_its_log_grows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_dir = dir.path().join("store");
        let s = Store::open(dir.path(), &StoreOptions::default()).expect("open");
        fill_log(&s, 0);
        s.sync_blocking().expect("sync");
        // The background thread writes the spare and switches to it (log 2); log 1 is kept
        // as the next spare.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while revlog_files(dir.path())
            != [
                "revocations.2.log",
                "revocations.snapshot",
                "revocations.spare",
            ]
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                revlog_files(dir.path())
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let log = std::fs::metadata(store_dir.join("revocations.2.log")).expect("log");
        assert!(log.len() >= 64 << 20, "{}", log.len());
        put_raw(&s, 1, b"after the switch");
        s.sync_blocking().expect("sync");
        // Bytes written over zeros: the file kept its size.
        assert_eq!(
            std::fs::metadata(store_dir.join("revocations.2.log"))
                .expect("log")
                .len(),
            log.len()
        );
        drop(s);
        let s = Store::open(dir.path(), &StoreOptions::default()).expect("reopen");
        assert_eq!(raw(&s, 1).as_deref(), Some(b"after the switch".as_slice()));
        assert_eq!(raw(&s, 19).map(|v| v.len()), Some(64 << 10));
    }

    #[test]
    fn records_no_commit_waits_for_are_written_out_but_not_counted_durable() {
        let (_d, s) = store();
        // Written out unsynced, as the background thread does: still owed a sync.
        put_raw(&s, 1, b"first");
        s.revlog.write_out_unsynced().expect("write out");
        assert_eq!(s.revlog.buffered(), 0);
        assert!(s.revlog.unsynced());
        s.sync_blocking().expect("sync");
        assert!(!s.revlog.unsynced());
        // More than the buffer may hold (1 MiB), and no commit: the background thread
        // writes it out.
        fill_log(&s, 10);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while s.revlog.buffered() >= 1 << 20 {
            assert!(std::time::Instant::now() < deadline, "still buffered");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        s.sync_blocking().expect("sync");
        assert!(!s.revlog.unsynced());
        assert_eq!(raw(&s, 29).map(|v| v.len()), Some(64 << 10));
    }

    #[test]
    fn forgotten_devices_go_with_the_watermarks() {
        let (_d, s) = store();
        let a = AccountId::from_random([10; 17]);
        let device = |id: &str| RememberedDevice {
            id: id.into(),
            label: "phone".into(),
            factor: "push".into(),
            created: 1,
        };
        s.add_device(&a, &device("d1")).expect("add");
        s.add_device(&a, &device("d2")).expect("add");
        let base = s.revocation_base(&a, [Scope::NoApp], true).expect("read");
        assert_eq!(base.devices(), 2);
        let m = [(Scope::NoApp, SessionKind::Idp, watermark(4, "okta"))];
        s.apply_revocation(&a, base, &m, entry(&a, 4))
            .expect("revoke");
        assert!(s.devices(&a).expect("read").is_empty());
        assert_eq!(
            s.marker(&a, Scope::NoApp, SessionKind::Idp).expect("read"),
            Some(watermark(4, "okta"))
        );
        // A device remembered again after the revocation is not the one forgotten: a
        // replay of the record (at the next open) leaves it.
        let mut again = device("d1");
        again.created = 2;
        s.add_device(&a, &again).expect("add");
        let op = revlog::Op::ForgetDevice {
            key: keys::device(&a, "d1"),
            value: enc("devices", &device("d1")).expect("enc"),
        };
        revlog::apply_to_sled(&s.t, &op).expect("replay");
        assert_eq!(s.devices(&a).expect("read"), [again]);
    }

    #[test]
    fn a_jti_is_claimed_once() {
        let (_d, s) = store();
        assert!(s.claim_jti(AppKey(1), "j", 5).expect("claim"));
        assert!(!s.claim_jti(AppKey(1), "j", 5).expect("claim"));
        assert!(s.claim_jti(AppKey(2), "j", 5).expect("claim"));
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let (d, _s) = store();
        match Store::open(d.path(), &StoreOptions::default()) {
            Err(StoreError::Locked(..)) => {}
            Err(other) => panic!("expected Locked, got {other}"),
            Ok(_) => panic!("a second open succeeded"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_that_is_not_sessiond_s_keeps_its_mode_on_every_start() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tempdir");
        let home = d.path().join("home");
        std::fs::create_dir(&home).expect("mkdir");
        std::fs::write(home.join("notes.txt"), "mine").expect("write");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        for _ in 0..2 {
            drop(Store::open(&home, &StoreOptions::default()).expect("open"));
            assert_eq!(
                mode(&home),
                0o755,
                "a directory sessiond does not own was changed"
            );
            assert_eq!(mode(&home.join("store")), 0o700);
        }
    }
}
