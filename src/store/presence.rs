//! What exists, known without a read of sled: the accounts. Every revoke-all asks whether
//! its account exists, and each read of sled is a descent from the root (8.5% of the
//! server's CPU in a profile of revoke-alls at a million sessions). (Which pairs have
//! watermarks needs no such set: the watermark records are in memory, `revlog.rs`.)
//!
//! The set is built at open from the keys of the `accounts` tree, and never removed from,
//! as accounts never are. A restore, which writes the tree behind the store's back, builds
//! it again.
//!
//! Accounts are kept exactly (20 bytes each): a revoke-all of an account that does not
//! exist must say so, and one of an account that does must not. An account is added once
//! its creation is committed; a revoke-all racing the creation may still answer "no such
//! account", as it would have a moment before.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::RwLock;

use crate::model::AccountId;

/// A set that only grows, read by many. Every change is one insert or one extend, so a
/// panic elsewhere cannot leave it half-written, and a poisoned lock is still consistent.
struct Growing<T, S = RandomState>(RwLock<HashSet<T, S>>);

impl<T, S: Default> Default for Growing<T, S> {
    fn default() -> Self {
        Growing(RwLock::new(HashSet::default()))
    }
}

impl<T: Eq + Hash, S: BuildHasher + Default> Growing<T, S> {
    fn insert(&self, v: T) {
        if !self.contains(&v) {
            self.0.write().unwrap_or_else(|p| p.into_inner()).insert(v);
        }
    }

    fn contains(&self, v: &T) -> bool {
        self.0.read().unwrap_or_else(|p| p.into_inner()).contains(v)
    }

    /// Adds what `of` makes of each key (an open, or a restore, reading a tree's keys),
    /// under the lock once; returns how many distinct values that was.
    fn extend<K: AsRef<[u8]>, E>(
        &self,
        keys: impl IntoIterator<Item = std::result::Result<K, E>>,
        of: impl Fn(&[u8]) -> Option<T>,
    ) -> std::result::Result<usize, E> {
        let mut fresh = HashSet::<T, S>::default();
        for k in keys {
            fresh.extend(of(k?.as_ref()));
        }
        let n = fresh.len();
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(fresh);
        Ok(n)
    }
}

/// The accounts, exactly.
#[derive(Default)]
pub(super) struct Accounts(Growing<AccountId>);

impl Accounts {
    /// Notes an account whose creation is committed.
    pub fn insert(&self, id: AccountId) {
        self.0.insert(id);
    }

    pub fn contains(&self, id: &AccountId) -> bool {
        self.0.contains(id)
    }

    /// Adds every id of `ids` (the `accounts` keys); a key that is not an account id is
    /// left out (and `sessiond check` names it).
    pub fn extend<K: AsRef<[u8]>, E>(
        &self,
        ids: impl IntoIterator<Item = std::result::Result<K, E>>,
    ) -> std::result::Result<usize, E> {
        self.0.extend(ids, |k| {
            <[u8; AccountId::LEN]>::try_from(k).ok().map(AccountId)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_known_once_inserted_or_loaded() {
        let accounts = Accounts::default();
        let a = AccountId::from_random([1; 17]);
        let b = AccountId::from_random([2; 17]);
        assert!(!accounts.contains(&a));
        accounts.insert(a);
        assert!(accounts.contains(&a) && !accounts.contains(&b));
        let n = accounts
            .extend([b.0.as_slice(), b"not an id".as_slice()].map(Ok::<_, ()>))
            .expect("extend");
        assert_eq!(n, 1);
        assert!(accounts.contains(&b));
    }
}
