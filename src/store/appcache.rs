//! Applications and their Rownd keys in memory: every request of every shape resolves its
//! application (and Rownd's its key), while they change only through the admin API. Each
//! was two or three sled reads per request (a sixth of a revoke-all's CPU in a profile);
//! here it is a hash lookup after the first read.
//!
//! Only records found in the store are kept, so the cache holds at most what the store
//! does. Every write to the application trees goes through `Store`, which calls
//! [`AppCache::invalidate`] after the write: a read that raced with it cannot put back the
//! value from before, because it fills the cache only if no invalidation happened since
//! it started reading ([`AppCache::get_or_load`]).

use super::Result;
use crate::model::{AppKey, Application, RowndKey};
use std::collections::HashMap;
use std::sync::RwLock;

/// What is kept: each record by the key a request looks it up with.
#[derive(Default)]
pub(super) struct Maps {
    pub apps: HashMap<AppKey, Application>,
    pub anchors: HashMap<String, AppKey>,
    pub rownd_keys: HashMap<String, RowndKey>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every invalidation.
    generation: u64,
    maps: Maps,
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

    /// Drops everything: called after every write to the application trees.
    pub(super) fn invalidate(&self) {
        let mut c = self.write();
        c.generation += 1;
        c.maps = Maps::default();
    }

    /// What `cached` finds; else what `load` reads from the store, kept by `keep` unless
    /// the trees were written (the cache invalidated) since the load began. `None` from
    /// the store is returned and not kept.
    pub(super) fn get_or_load<T>(
        &self,
        cached: impl FnOnce(&Maps) -> Option<T>,
        load: impl FnOnce() -> Result<Option<T>>,
        keep: impl FnOnce(&mut Maps, &T),
    ) -> Result<Option<T>> {
        let since = {
            let c = self.read();
            if let Some(found) = cached(&c.maps) {
                return Ok(Some(found));
            }
            c.generation
        };
        let loaded = load()?;
        if let Some(found) = &loaded {
            let mut c = self.write();
            if c.generation == since {
                keep(&mut c.maps, found);
            }
        }
        Ok(loaded)
    }
}
