//! Applications and their Rownd keys in memory: every request of every shape resolves its
//! application (and Rownd's its key), while they change only through the admin API. Each
//! was two or three sled reads per request (a sixth of a revoke-all's CPU in a profile);
//! here it is a hash lookup after the first read.
//!
//! Only records found in the store are kept, so the cache holds at most what the store
//! does. Every write to the application trees goes through `Store`, which calls
//! [`AppCache::invalidate`] after the write: a read that raced with it cannot put back the
//! value from before, because it fills the cache only if no invalidation happened since
//! it started reading ([`AppCache::generation`]).

use crate::model::{AppKey, Application, RowndKey};
use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Default)]
struct Inner {
    generation: u64,
    apps: HashMap<AppKey, Application>,
    anchors: HashMap<String, AppKey>,
    rownd_keys: HashMap<String, RowndKey>,
}

#[derive(Default)]
pub(super) struct AppCache(RwLock<Inner>);

impl AppCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // Maps filled by single inserts: a panic elsewhere leaves them consistent.
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Taken before reading the store on a miss, handed back to the `fill_*` call.
    pub(super) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Drops everything: called after every write to the application trees.
    pub(super) fn invalidate(&self) {
        let mut c = self.write();
        c.generation += 1;
        c.apps.clear();
        c.anchors.clear();
        c.rownd_keys.clear();
    }

    pub(super) fn app(&self, key: AppKey) -> Option<Application> {
        self.read().apps.get(&key).cloned()
    }

    pub(super) fn anchor(&self, anchor: &str) -> Option<AppKey> {
        self.read().anchors.get(anchor).copied()
    }

    pub(super) fn rownd_key(&self, key: &str) -> Option<RowndKey> {
        self.read().rownd_keys.get(key).cloned()
    }

    pub(super) fn fill_app(&self, since: u64, app: &Application) {
        let mut c = self.write();
        if c.generation == since {
            c.apps.insert(app.key, app.clone());
        }
    }

    pub(super) fn fill_anchor(&self, since: u64, anchor: &str, key: AppKey) {
        let mut c = self.write();
        if c.generation == since {
            c.anchors.insert(anchor.to_owned(), key);
        }
    }

    pub(super) fn fill_rownd_key(&self, since: u64, key: &RowndKey) {
        let mut c = self.write();
        if c.generation == since {
            c.rownd_keys.insert(key.key.clone(), key.clone());
        }
    }
}
