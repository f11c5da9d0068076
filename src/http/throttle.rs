//! A flood guard per credential: a fixed window of one calendar minute, counting requests
//! by the SHA-256 of the credential headers a request carries. Transport protection only
//! (like the connection cap): it knows no account, application or revocation rule. Okta's
//! documented per-token limits (with their `X-Rate-Limit-*` headers) are the domain's; the
//! admin API is the operator's and is not throttled.

use crate::model::Millis;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// The headers that carry a credential in one of the shapes: a bearer or client JWT,
/// Rocket.Chat's token and user id, Rownd's key and secret. The values are hashed together,
/// so one Rownd key with many guessed secrets is many credentials (a publishable key must
/// not let anyone lock its application out), and the raw values are never kept.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "x-auth-token",
    "x-user-id",
    "x-rownd-app-key",
    "x-rownd-app-secret",
];

/// Keys counted in one window at most. Counts are dropped when the minute turns, so the
/// map is bounded by the requests of one minute; past this many distinct credentials in a
/// minute, new ones are not counted (fail open rather than grow without bound).
const MAX_KEYS: usize = 100_000;

/// What the guard decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit; retry after this many seconds (the rest of the minute).
    Refused {
        retry_after_s: u64,
    },
}

#[derive(Default)]
pub struct Throttle {
    /// (window start in epoch minutes, count per credential hash in that window).
    window: Mutex<(i64, HashMap<[u8; 32], u32>)>,
}

impl Throttle {
    /// Counts a request carrying `headers` at `now` against `per_minute`. Requests with no
    /// credential header are not counted (they fail authentication, or are logins, which
    /// cost an argon2 hash each and are the domain's to limit). `per_minute == 0`: off.
    pub fn check(&self, headers: &HeaderMap, per_minute: u32, now: Millis) -> Verdict {
        if per_minute == 0 {
            return Verdict::Allowed;
        }
        let mut h = Sha256::new();
        let mut any = false;
        for name in CREDENTIAL_HEADERS {
            for v in headers.get_all(name) {
                any = true;
                h.update(name.as_bytes());
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
        }
        if !any {
            return Verdict::Allowed;
        }
        let key: [u8; 32] = h.finalize().into();
        let minute = now.div_euclid(60_000);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.0 != minute {
            *w = (minute, HashMap::new());
        }
        if w.1.len() >= MAX_KEYS && !w.1.contains_key(&key) {
            return Verdict::Allowed;
        }
        let count = w.1.entry(key).or_insert(0);
        if *count >= per_minute {
            let left_ms = (minute + 1) * 60_000 - now;
            return Verdict::Refused {
                retry_after_s: (left_ms.max(0) as u64).div_ceil(1000).max(1),
            };
        }
        *count += 1;
        Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn counts_per_credential_per_minute() {
        let t = Throttle::default();
        let t0: i64 = 28_333_334 * 60_000; // the start of a minute
        let a = headers(&[("authorization", "Bearer a")]);
        let b = headers(&[("authorization", "Bearer b")]);
        assert_eq!(t.check(&a, 2, t0), Verdict::Allowed);
        assert_eq!(t.check(&a, 2, t0 + 1), Verdict::Allowed);
        assert_eq!(
            t.check(&a, 2, t0 + 30_000),
            Verdict::Refused { retry_after_s: 30 }
        );
        assert_eq!(t.check(&b, 2, t0 + 30_000), Verdict::Allowed);
        assert_eq!(t.check(&a, 2, t0 + 60_000), Verdict::Allowed);
        // No credential: not counted; a limit of 0: off.
        for _ in 0..5 {
            assert_eq!(t.check(&HeaderMap::new(), 1, t0), Verdict::Allowed);
            assert_eq!(t.check(&a, 0, t0), Verdict::Allowed);
        }
    }

    #[test]
    fn a_rownd_key_with_other_secrets_is_another_credential() {
        let t = Throttle::default();
        let one = headers(&[("x-rownd-app-key", "k"), ("x-rownd-app-secret", "s1")]);
        let two = headers(&[("x-rownd-app-key", "k"), ("x-rownd-app-secret", "s2")]);
        assert_eq!(t.check(&one, 1, 0), Verdict::Allowed);
        assert!(matches!(t.check(&one, 1, 0), Verdict::Refused { .. }));
        assert_eq!(t.check(&two, 1, 0), Verdict::Allowed);
    }
}
