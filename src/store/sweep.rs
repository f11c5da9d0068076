//! What the expiry sweeper (`domain::sweep`) needs of the store: pages of a tree read from a
//! cursor, and removals that cannot take away a record that changed since it was read. The
//! store decides nothing here: which records are dead is the domain's judgement.

use super::{Result, Store, StoreError, dec, dec_markers, dec_session, keys};
use crate::model::*;
use sled::IVec;
use sled::Transactional;
use std::ops::Bound;

/// Where a pass over a tree resumes: after this key (`None`: at the start).
pub type Cursor = Option<Vec<u8>>;

/// A page of records and the cursor after it (`None` when the tree is done).
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Cursor,
}

/// Up to `limit` entries of `tree` after `cursor`, and the cursor after them (`None` once
/// the tree is done: a page shorter than `limit`).
fn page(tree: &sled::Tree, cursor: &Cursor, limit: usize) -> Result<(Vec<(IVec, IVec)>, Cursor)> {
    let from = match cursor {
        Some(k) => Bound::Excluded(k.clone()),
        None => Bound::Unbounded,
    };
    let entries: Vec<(IVec, IVec)> = tree
        .range((from, Bound::Unbounded))
        .take(limit)
        .collect::<std::result::Result<_, _>>()?;
    let next = match entries.last() {
        Some((k, _)) if entries.len() == limit => Some(k.to_vec()),
        _ => None,
    };
    Ok((entries, next))
}

/// A record of the `tokens` tree as read, with its bytes: removed only if still these.
pub struct ReadToken {
    pub hash: TokenHash,
    pub record: TokenRecord,
    raw: IVec,
}

impl Store {
    /// Up to `limit` records of the `tokens` tree after `cursor`.
    pub fn tokens_page(&self, cursor: &Cursor, limit: usize) -> Result<Page<ReadToken>> {
        let (entries, next) = page(&self.t.tokens, cursor, limit)?;
        let mut items = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let Ok(hash) = <[u8; 32]>::try_from(k.as_ref()) else {
                // Not a token record (`sessiond check` names it); never the sweeper's to remove.
                continue;
            };
            items.push(ReadToken {
                hash: TokenHash(hash),
                record: dec("tokens", &k, &v)?,
                raw: v,
            });
        }
        Ok(Page { items, next })
    }

    /// Removes token records, each only if it is still the record that was read. Returns
    /// how many went.
    pub fn remove_tokens(&self, read: &[&ReadToken]) -> Result<u64> {
        let _w = self.writing();
        let mut removed = 0;
        for t in read {
            let gone =
                self.t
                    .tokens
                    .compare_and_swap(t.hash.0, Some(&t.raw), None as Option<&[u8]>)?;
            removed += u64::from(gone.is_ok());
        }
        Ok(removed)
    }

    /// Up to `limit` watermark records after `cursor`, with the (account, scope) each
    /// belongs to. Keys of no watermark (`sessiond check` names them) are passed over.
    pub fn markers_page(
        &self,
        cursor: &Cursor,
        limit: usize,
    ) -> Result<Page<(AccountId, Scope, ScopeMarkers)>> {
        let entries = self.revlog.page(cursor.as_deref(), limit);
        let next = match entries.last() {
            Some((k, _)) if entries.len() == limit => Some(k.to_vec()),
            _ => None,
        };
        let mut items = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let Some(scope) = keys::scope_of_marker(&k) else {
                continue;
            };
            let mut account = [0; AccountId::LEN];
            account.copy_from_slice(&k[..AccountId::LEN]);
            items.push((AccountId(account), scope, dec_markers(&k, &v)?.markers));
        }
        Ok(Page { items, next })
    }

    /// Up to `limit` sessions after `cursor`, in id order.
    pub fn sessions_page(&self, cursor: &Cursor, limit: usize) -> Result<Page<Session>> {
        let (entries, next) = page(&self.t.sessions, cursor, limit)?;
        let items = entries
            .iter()
            .map(|(k, v)| dec_session(k, v))
            .collect::<Result<_>>()?;
        Ok(Page { items, next })
    }

    /// Removes sessions, with their `by_account` and `by_expiry` entries, in one
    /// transaction. The caller holds the locks of their accounts, so no session changed
    /// since it was read; one that is gone already is skipped.
    pub fn remove_sessions(&self, sessions: &[Session]) -> Result<u64> {
        if sessions.is_empty() {
            return Ok(0);
        }
        let _w = self.writing();
        // Each session's key, its `by_account` key and its `by_expiry` key if it has one.
        type Keys = ([u8; 16], Vec<u8>, Option<Vec<u8>>);
        let keyed: Vec<Keys> = sessions
            .iter()
            .map(|s| {
                (
                    s.id.0,
                    keys::by_account(&s.account, s.app, s.seq, &s.id),
                    (s.expires != NEVER).then(|| keys::by_expiry(s.expires, &s.id)),
                )
            })
            .collect();
        let removed = (&self.t.sessions, &self.t.by_account, &self.t.by_expiry).transaction(
            |(sessions, by_account, by_expiry)| {
                let mut n = 0u64;
                for (id, idx, exp) in &keyed {
                    if sessions.remove(&id[..])?.is_none() {
                        continue;
                    }
                    by_account.remove(idx.as_slice())?;
                    if let Some(exp) = exp {
                        by_expiry.remove(exp.as_slice())?;
                    }
                    n += 1;
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<StoreError>>(n)
            },
        )?;
        Ok(removed)
    }

    /// Removes client-JWT `jti` entries whose JWT expired at or before `expired_by` (a
    /// replay of such a JWT is refused for its `exp` already), examining up to `limit`
    /// entries after `cursor`. Returns the removed count and where to resume.
    pub fn sweep_jtis(
        &self,
        cursor: &Cursor,
        limit: usize,
        expired_by: Millis,
    ) -> Result<(u64, Cursor)> {
        let (entries, next) = page(&self.t.jtis, cursor, limit)?;
        let _w = self.writing();
        let mut removed = 0;
        for (k, v) in entries {
            let Ok(exp) = <[u8; 8]>::try_from(v.as_ref()) else {
                continue;
            };
            if i64::from_be_bytes(exp) <= expired_by {
                let gone = self
                    .t
                    .jtis
                    .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)?;
                removed += u64::from(gone.is_ok());
            }
        }
        Ok((removed, next))
    }
}
