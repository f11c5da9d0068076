//! Fixed-window request limits per key (Okta API tokens): a count per calendar minute,
//! reported the way Okta's `X-Rate-Limit-*` headers report it.

use crate::model::Millis;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// When the window resets, in UTC epoch seconds.
    pub reset: i64,
}

#[derive(Default)]
pub(super) struct RateLimiter {
    /// key → (window start in epoch seconds, requests counted in it). One entry per API
    /// token that has been used: bounded by the tokens in the store.
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimiter {
    pub(super) fn check(&self, key: &str, limit: u32, now: Millis) -> RateDecision {
        let window = now.div_euclid(60_000) * 60;
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let entry = w.entry(key.to_owned()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        let allowed = entry.1 < limit;
        if allowed {
            entry.1 += 1;
        }
        RateDecision {
            allowed,
            limit,
            remaining: limit - entry.1,
            reset: window + 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_and_resets_each_minute() {
        let l = RateLimiter::default();
        let t0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;
        let a = l.check("k", 2, t0);
        assert_eq!((a.allowed, a.remaining, a.reset), (true, 1, t0 / 1000 + 60));
        assert!(l.check("k", 2, t0 + 1).allowed);
        let c = l.check("k", 2, t0 + 2);
        assert_eq!((c.allowed, c.remaining), (false, 0));
        assert!(l.check("other", 2, t0).allowed);
        assert!(l.check("k", 2, t0 + 60_000).allowed);
    }
}
