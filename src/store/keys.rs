//! Key layout of every tree. Integers are big-endian so that sled's byte order is numeric
//! order, and composite keys are fixed-width so that a prefix scan over (account) or
//! (account, application) returns exactly that account's or pair's entries.

use crate::model::{AccountId, AppKey, Scope, SectorId, SessionId};

/// The application part of a key for an optional application: 0 = none (identity provider).
/// So application key 0 is reserved, as is `u64::MAX` (every application, in
/// [`marker`]): keys come from the store's sequence, whose first value (0) always goes to
/// something else first (a new application's sector is drawn before its key), and which
/// never reaches `u64::MAX`. The `keys` fuzz target checks the layout with both.
pub fn app_part(app: Option<AppKey>) -> [u8; 8] {
    app.map_or(0, |a| a.0).to_be_bytes()
}

pub fn app(app: AppKey) -> [u8; 8] {
    app.0.to_be_bytes()
}

/// `by_account`: account ‖ app (0 = none) ‖ seq ‖ session.
pub fn by_account(account: &AccountId, app: Option<AppKey>, seq: u64, id: &SessionId) -> Vec<u8> {
    let mut k = Vec::with_capacity(20 + 8 + 8 + 16);
    k.extend_from_slice(&account.0);
    k.extend_from_slice(&app_part(app));
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(&id.0);
    k
}

/// Prefix of `by_account` for one account, or one (account, app) pair.
pub fn by_account_prefix(account: &AccountId, app: Option<Option<AppKey>>) -> Vec<u8> {
    let mut k = account.0.to_vec();
    if let Some(app) = app {
        k.extend_from_slice(&app_part(app));
    }
    k
}

/// The session id at the end of a `by_account` key.
pub fn session_of_by_account(key: &[u8]) -> Option<SessionId> {
    let tail: [u8; 16] = key.get(key.len().checked_sub(16)?..)?.try_into().ok()?;
    Some(SessionId(tail))
}

/// `by_expiry`: expires (ms, clamped at 0) ‖ session.
pub fn by_expiry(expires: i64, id: &SessionId) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(&(expires.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&id.0);
    k
}

/// `markers`: account ‖ scope (0 no application, `u64::MAX` all, else the app key); the
/// value holds that scope's watermark of each session kind (`ScopeMarkers`).
pub fn marker(account: &AccountId, scope: Scope) -> Vec<u8> {
    let scope = match scope {
        Scope::NoApp => 0,
        Scope::App(a) => a.0,
        Scope::AllApps => u64::MAX,
    };
    let mut k = Vec::with_capacity(MARKER_KEY_LEN);
    k.extend_from_slice(&account.0);
    k.extend_from_slice(&scope.to_be_bytes());
    k
}

/// The length of a `markers` key.
pub const MARKER_KEY_LEN: usize = AccountId::LEN + 8;

/// The length of a `markers` key of the layout before `ScopeMarkers` (account ‖ scope ‖
/// kind, a `Marker` each), which `Store::open` migrates.
pub const OLD_MARKER_KEY_LEN: usize = MARKER_KEY_LEN + 1;

/// `subject_owners`: sector ‖ subject text.
pub fn subject_owner(sector: SectorId, subject: &str) -> Vec<u8> {
    let mut k = sector.0.to_be_bytes().to_vec();
    k.extend_from_slice(subject.as_bytes());
    k
}

/// `subjects`: account ‖ sector.
pub fn subject(account: &AccountId, sector: SectorId) -> Vec<u8> {
    let mut k = account.0.to_vec();
    k.extend_from_slice(&sector.0.to_be_bytes());
    k
}

/// `devices`: account ‖ device id.
pub fn device(account: &AccountId, id: &str) -> Vec<u8> {
    let mut k = account.0.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// `jtis`: app ‖ jti.
pub fn jti(app: AppKey, jti: &str) -> Vec<u8> {
    let mut k = app.0.to_be_bytes().to_vec();
    k.extend_from_slice(jti.as_bytes());
    k
}

/// The scope at the end of a `markers` key (see [`marker`]).
pub fn scope_of_marker(key: &[u8]) -> Option<Scope> {
    let tail: [u8; 8] = key.get(AccountId::LEN..MARKER_KEY_LEN)?.try_into().ok()?;
    (key.len() == MARKER_KEY_LEN).then_some(match u64::from_be_bytes(tail) {
        0 => Scope::NoApp,
        u64::MAX => Scope::AllApps,
        a => Scope::App(AppKey(a)),
    })
}

/// `audit`: account ‖ seq.
pub fn audit(account: &AccountId, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(AccountId::LEN + 8);
    k.extend_from_slice(&account.0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The seq at the end of an `audit` key.
pub fn seq_of_audit(key: &[u8]) -> Option<u64> {
    (key.len() == AccountId::LEN + 8)
        .then(|| {
            key[AccountId::LEN..]
                .try_into()
                .ok()
                .map(u64::from_be_bytes)
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_prefix_selects_exactly_the_pair() {
        let a = AccountId::from_random([1; 17]);
        let s = SessionId([9; 16]);
        let k = by_account(&a, Some(AppKey(2)), 77, &s);
        assert!(k.starts_with(&by_account_prefix(&a, None)));
        assert!(k.starts_with(&by_account_prefix(&a, Some(Some(AppKey(2))))));
        assert!(!k.starts_with(&by_account_prefix(&a, Some(Some(AppKey(3))))));
        assert!(!k.starts_with(&by_account_prefix(&a, Some(None))));
        assert_eq!(session_of_by_account(&k), Some(s));
    }

    #[test]
    fn big_endian_sorts_numerically() {
        let s = SessionId([0; 16]);
        assert!(by_expiry(255, &s) < by_expiry(256, &s));
        assert!(by_expiry(-5, &s) <= by_expiry(0, &s));
    }
}
