//! A flood guard per credential: a fixed window of one calendar minute, counting requests
//! by the SHA-256 of the credential headers a request carries. Transport protection only
//! (like the connection cap): it knows no account, application or revocation rule. Okta's
//! documented per-token limits (with their `X-Rate-Limit-*` headers) are the domain's; the
//! admin API is the operator's and is not throttled.

use crate::model::Millis;
use http::HeaderMap;
use sha2::{Digest, Sha256};
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

/// Counters per row of the sketch. Two rows of 2^14 `u32`s: 128 KiB, whatever the traffic.
const SLOTS: usize = 1 << 14;

/// What the guard decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit; retry after this many seconds (the rest of the minute).
    Refused {
        retry_after_s: u64,
    },
}

/// Counts per credential in a count-min sketch: each credential hash picks one counter in
/// each of two rows, its count is the smaller of the two, and only the counters at that
/// minimum are incremented (conservative update). Memory is fixed, so a flood of distinct
/// credentials can neither grow it nor switch counting off; it can only raise the counters
/// it shares with others by its own share (a spray of 100,000 one-off credentials a minute
/// adds about 6 to each counter), and an attacker cannot aim at a victim's counters without
/// the victim's credential. A count can only be overestimated, never under.
pub struct Throttle {
    /// (window start in epoch minutes, the two rows).
    window: Mutex<(i64, Box<[[u32; SLOTS]; 2]>)>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            window: Mutex::new((i64::MIN, Box::new([[0; SLOTS]; 2]))),
        }
    }
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
        let slot = |i: usize| {
            let b: [u8; 8] = key[i * 8..i * 8 + 8].try_into().expect("8 bytes");
            (u64::from_le_bytes(b) as usize) % SLOTS
        };
        let (a, b) = (slot(0), slot(1));
        let minute = now.div_euclid(60_000);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.0 != minute {
            w.0 = minute;
            *w.1 = [[0; SLOTS]; 2];
        }
        let rows = &mut w.1;
        let count = rows[0][a].min(rows[1][b]);
        if count >= per_minute {
            let left_ms = (minute + 1) * 60_000 - now;
            return Verdict::Refused {
                retry_after_s: (left_ms.max(0) as u64).div_ceil(1000).max(1),
            };
        }
        for (row, i) in [(0, a), (1, b)] {
            if rows[row][i] == count {
                rows[row][i] = count + 1;
            }
        }
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

    #[test]
    fn a_spray_of_credentials_neither_switches_counting_off_nor_locks_others_out() {
        let t = Throttle::default();
        let flooder = headers(&[("authorization", "Bearer flood")]);
        let innocent = headers(&[("authorization", "Bearer innocent")]);
        assert_eq!(t.check(&flooder, 50, 0), Verdict::Allowed);
        for n in 0..100_000u32 {
            let mut h = HeaderMap::new();
            h.insert(
                "authorization",
                http::HeaderValue::from_str(&format!("Bearer spray-{n}")).expect("value"),
            );
            let _ = t.check(&h, 50, 1);
        }
        for _ in 0..49 {
            let _ = t.check(&flooder, 50, 2);
        }
        assert!(matches!(t.check(&flooder, 50, 3), Verdict::Refused { .. }));
        assert_eq!(t.check(&innocent, 50, 3), Verdict::Allowed);
    }
}
