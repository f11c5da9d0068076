//! What `GET /metrics` reports, in one place: every metric sessiond exports is declared
//! here, with its help text. The HTTP layer counts requests, the domain counts what
//! revocations did, the store times its flushes; the gauges of what is stored are read
//! from the store when scraped (at most once per [`STORE_STATS_MAX_AGE`]: counting reads
//! every session record).
//!
//! The format is OpenMetrics text (`application/openmetrics-text; version=1.0.0`), the
//! standardised form of Prometheus' text format, which Prometheus scrapes natively.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How old the stored-records gauges may be when scraped.
pub const STORE_STATS_MAX_AGE: Duration = Duration::from_secs(30);

/// Which API an answer belongs to, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ShapeLabel {
    rownd,
    connect,
    flashback,
    rocketchat,
    okta,
    admin,
    other,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    shape: ShapeLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShapeLabels {
    shape: ShapeLabel,
}

/// What the expiry sweeper removes, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum SweptLabel {
    sessions,
    tokens,
    jtis,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SweptLabels {
    what: SweptLabel,
}

/// Latency buckets from 50 µs to about 3.3 s, doubling.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(50e-6, 2.0, 17))
}

/// What the store holds, read when scraped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub accounts: u64,
    pub applications: u64,
    /// Session records, alive or dead (dead ones until the sweeper removes them).
    pub sessions: u64,
    /// Token hashes kept: each session's current tokens, and tokens replaced by rotation.
    pub tokens: u64,
    /// The store's size on disk, as sled reports it.
    pub disk_bytes: u64,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ShapeLabels, Histogram, fn() -> Histogram>,
    rate_limited: Family<ShapeLabels, Counter>,
    revocations: Family<ShapeLabels, Counter>,
    sessions_revoked: Family<ShapeLabels, Counter>,
    refresh_tokens_revoked: Family<ShapeLabels, Counter>,
    stored: StoredGauges,
    last_stats: Mutex<Option<Instant>>,
    swept: Family<SweptLabels, Counter>,
    sweep_passes: Histogram,
    sweep_cycles: Counter,
}

struct StoredGauges {
    accounts: Gauge,
    applications: Gauge,
    sessions: Gauge,
    tokens: Gauge,
    disk_bytes: Gauge,
}

impl Metrics {
    /// A registry with every metric, `flush_seconds` being the store's own histogram of its
    /// durable flushes.
    pub fn new(flush_seconds: Histogram) -> Metrics {
        let mut registry = Registry::with_prefix("sessiond");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by API shape and status",
            requests.clone(),
        );
        let latency = Family::<ShapeLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_buckets,
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from the request's arrival to its answer, by API shape",
            Unit::Seconds,
            latency.clone(),
        );
        let rate_limited = Family::<ShapeLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429 by a rate limit (Okta's per-token limits, the other shapes' per-credential flood guard)",
            rate_limited.clone(),
        );
        let revocations = Family::<ShapeLabels, Counter>::default();
        registry.register(
            "revocations",
            "Acknowledged revoke-alls, by API shape",
            revocations.clone(),
        );
        let sessions_revoked = Family::<ShapeLabels, Counter>::default();
        registry.register(
            "sessions_revoked",
            "Live sessions killed by revocations, by API shape (a revoke-all's are counted in the background, once revocations pause for 200 ms)",
            sessions_revoked.clone(),
        );
        let refresh_tokens_revoked = Family::<ShapeLabels, Counter>::default();
        registry.register(
            "refresh_tokens_revoked",
            "Live refresh tokens killed by revocations, by API shape",
            refresh_tokens_revoked.clone(),
        );
        registry.register_with_unit(
            "store_flush_duration",
            "Durable flushes of the store (sled flush, its log writes ending in fdatasync in the default mode); one flush covers every write that arrived before it",
            Unit::Seconds,
            flush_seconds,
        );
        let stored = StoredGauges {
            accounts: Gauge::default(),
            applications: Gauge::default(),
            sessions: Gauge::default(),
            tokens: Gauge::default(),
            disk_bytes: Gauge::default(),
        };
        for (name, help, gauge) in [
            ("accounts_stored", "Accounts in the store", &stored.accounts),
            (
                "applications_stored",
                "Applications in the store",
                &stored.applications,
            ),
            (
                "sessions_stored",
                "Session records in the store, alive or dead but not yet swept",
                &stored.sessions,
            ),
            (
                "tokens_stored",
                "Token hashes in the store: current tokens of every session, and tokens replaced by refresh rotation",
                &stored.tokens,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        registry.register_with_unit(
            "store_disk",
            "The store's size on disk",
            Unit::Bytes,
            stored.disk_bytes.clone(),
        );
        let swept = Family::<SweptLabels, Counter>::default();
        registry.register(
            "swept",
            "Records the expiry sweeper removed: sessions dead (revoked or expired) for longer than the tombstone retention, token records past their expiry or of such sessions, expired client-JWT ids",
            swept.clone(),
        );
        let sweep_passes = latency_buckets();
        registry.register_with_unit(
            "sweep_pass_duration",
            "One pass of the expiry sweeper (at most --sweep-batch records read)",
            Unit::Seconds,
            sweep_passes.clone(),
        );
        let sweep_cycles = Counter::default();
        registry.register(
            "sweep_cycles",
            "Complete cycles of the expiry sweeper over tokens, sessions and client-JWT ids",
            sweep_cycles.clone(),
        );
        Metrics {
            registry,
            swept,
            sweep_passes,
            sweep_cycles,
            requests,
            latency,
            rate_limited,
            revocations,
            sessions_revoked,
            refresh_tokens_revoked,
            stored,
            last_stats: Mutex::new(None),
        }
    }

    /// One answered request.
    pub fn request(&self, shape: ShapeLabel, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { shape, status })
            .inc();
        self.latency
            .get_or_create(&ShapeLabels { shape })
            .observe(elapsed.as_secs_f64());
        if status == 429 {
            self.rate_limited
                .get_or_create(&ShapeLabels { shape })
                .inc();
        }
    }

    /// One acknowledged revoke-all.
    pub fn revoked(&self, shape: ShapeLabel) {
        self.revocations.get_or_create(&ShapeLabels { shape }).inc();
    }

    /// What an acknowledged revocation killed.
    pub fn killed(&self, shape: ShapeLabel, sessions: u64, refresh_tokens: u64) {
        let l = ShapeLabels { shape };
        self.sessions_revoked.get_or_create(&l).inc_by(sessions);
        self.refresh_tokens_revoked
            .get_or_create(&l)
            .inc_by(refresh_tokens);
    }

    /// Records the sweeper removed.
    pub fn swept(&self, what: SweptLabel, n: u64) {
        self.swept.get_or_create(&SweptLabels { what }).inc_by(n);
    }

    /// One sweep pass, and whether it ended a cycle.
    pub fn sweep_pass(&self, elapsed: Duration, cycle_done: bool) {
        self.sweep_passes.observe(elapsed.as_secs_f64());
        if cycle_done {
            self.sweep_cycles.inc();
        }
    }

    /// Whether the stored-records gauges are older than [`STORE_STATS_MAX_AGE`] (or were
    /// never read). Claims the refresh: a second caller within the window gets `false`.
    pub fn claim_store_stats_refresh(&self) -> bool {
        let mut last = self.last_stats.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some(t) if t.elapsed() < STORE_STATS_MAX_AGE => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }

    pub fn set_store_stats(&self, s: &StoreStats) {
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.stored.accounts.set(g(s.accounts));
        self.stored.applications.set(g(s.applications));
        self.stored.sessions.set(g(s.sessions));
        self.stored.tokens.set(g(s.tokens));
        self.stored.disk_bytes.set(g(s.disk_bytes));
    }

    /// Every metric, in OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A histogram for the store's flushes, with the same buckets as request latency.
pub fn flush_histogram() -> Histogram {
    latency_buckets()
}
