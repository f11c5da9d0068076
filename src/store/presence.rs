//! What exists, known without a read of sled: the accounts, and the (account, scope) pairs
//! that may have a `markers` record. Every revoke-all asks both (does the account exist?
//! what watermarks does the pair have?), and every token check asks the second. Each read
//! of sled is a descent from the root (8.5% and 13.3% of the server's CPU in a profile of
//! revoke-alls at a million sessions), and for most pairs the answer to the second is
//! "none".
//!
//! Both are built at open from the keys of their trees, and neither is ever removed from,
//! as accounts and watermark records never are. A restore, which writes the trees behind
//! the store's back, builds them again.
//!
//! **Accounts** are kept exactly (20 bytes each): a revoke-all of an account that does not
//! exist must say so, and one of an account that does must not. An account is added once
//! its creation is committed; a revoke-all racing the creation may still answer "no such
//! account", as it would have a moment before.
//!
//! **Marked pairs** are kept as 64-bit fingerprints of their `markers` keys, added to
//! *before* a record is written, so a reader that can see the record cannot skip its read.
//! A key whose fingerprint is absent surely has no record; one whose fingerprint is present
//! may have one (two keys can share a fingerprint), and is read. Fingerprints are keyed
//! with a random key drawn per store, so nobody can choose keys that collide; a collision
//! costs one read, never a wrong answer. 9–18 bytes per pair with a record (a `u64` and
//! hashbrown's control byte, times the table's spare capacity).

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::RwLock;

use crate::model::AccountId;

/// The set's own hasher: fingerprints are already uniform, so they are their own hash.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed here; anything else is folded in, not dropped.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

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

/// The pairs that may have a watermark record, as fingerprints of their keys.
#[derive(Default)]
pub(super) struct MarkedPairs {
    key: RandomState,
    set: Growing<u64, BuildHasherDefault<Identity>>,
}

impl MarkedPairs {
    fn fingerprint(&self, marker_key: &[u8]) -> u64 {
        self.key.hash_one(marker_key)
    }

    /// Notes that `marker_key` has (or is about to have) a record. Called before the write,
    /// so a reader that can see the record cannot skip its read.
    pub fn insert(&self, marker_key: &[u8]) {
        self.set.insert(self.fingerprint(marker_key));
    }

    /// Whether `marker_key` surely has no record.
    pub fn surely_absent(&self, marker_key: &[u8]) -> bool {
        !self.set.contains(&self.fingerprint(marker_key))
    }

    /// Adds every key of `keys` (the `markers` keys).
    pub fn extend<K: AsRef<[u8]>, E>(
        &self,
        keys: impl IntoIterator<Item = std::result::Result<K, E>>,
    ) -> std::result::Result<usize, E> {
        self.set.extend(keys, |k| Some(self.fingerprint(k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_absent_until_inserted_and_present_for_good() {
        let m = MarkedPairs::default();
        assert!(m.surely_absent(b"a"));
        m.insert(b"a");
        m.insert(b"a");
        assert!(!m.surely_absent(b"a"));
        assert!(m.surely_absent(b"b"));
        let n = m
            .extend([b"b".as_slice(), b"c"].map(Ok::<_, ()>))
            .expect("extend");
        assert_eq!(n, 2);
        for k in [b"a", b"b", b"c"] {
            assert!(!m.surely_absent(k));
        }
        assert!(m.surely_absent(b"d"));
    }

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

    #[test]
    fn two_stores_fingerprint_differently() {
        // A per-store key: the same bytes do not map to the same fingerprint everywhere.
        let fps: HashSet<u64> = (0..8)
            .map(|_| MarkedPairs::default().fingerprint(b"account-scope"))
            .collect();
        assert!(fps.len() > 1, "{fps:?}");
    }
}
