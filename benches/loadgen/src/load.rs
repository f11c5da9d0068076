//! Closed-loop load, as wrk does it: each worker owns one HTTP/1.1 keep-alive connection,
//! sends a request, reads the whole answer, records its latency in an HDR histogram, and
//! sends the next, until the deadline. Every connection is open before the clock starts.

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Where requests go: the target URL's authority and path prefix.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// The `Host` header.
    pub host: HeaderValue,
    /// The target URL's path, without a trailing `/` (usually empty).
    pub prefix: String,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: http::Uri = url.parse()?;
        if uri.scheme_str() != Some("http") {
            anyhow::bail!("the target must be an http:// URL (the load generator speaks no TLS)");
        }
        let auth = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("the target URL has no host"))?;
        let port = auth.port_u16().unwrap_or(80);
        Ok(Target {
            addr: format!("{}:{port}", auth.host().trim_matches(['[', ']'])),
            host: HeaderValue::from_str(auth.as_str())?,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// One request, relative to the target.
pub struct Req {
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Sent as `application/json` when not empty.
    pub body: Bytes,
}

/// What one kind of worker sends, and what it accepts as an answer.
pub trait Source: Send + 'static {
    /// The next request; `None` when there is nothing left to send.
    fn next(&mut self) -> Option<Req>;
    /// Whether the answer is a success (it may read the body: a refresh keeps its new token).
    fn answer(&mut self, status: StatusCode, body: &Bytes) -> bool;
}

/// What a group of workers did.
#[derive(Debug, Clone)]
pub struct Tally {
    pub ok: u64,
    /// Unexpected answers by status, and `connection` for transport failures.
    pub errors: BTreeMap<String, u64>,
    /// Latency of the successful requests, in microseconds.
    pub hist: Histogram<u64>,
    /// Whether some worker stopped early because its source ran dry.
    pub ran_dry: bool,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally::new()
    }
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            ok: 0,
            errors: BTreeMap::new(),
            hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
            ran_dry: false,
        }
    }

    pub fn merge(&mut self, o: &Tally) {
        self.ok += o.ok;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.hist.add(&o.hist).expect("same bounds");
        self.ran_dry |= o.ran_dry;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

async fn connect(t: &Target) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(&t.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; either is the worker's news.
        let _ = conn.await;
    });
    Ok(sender)
}

fn build(t: &Target, r: Req) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut b = Request::builder()
        .method(r.method)
        .uri(format!("{}{}", t.prefix, r.path))
        .header(HOST, t.host.clone());
    if !r.body.is_empty() {
        b = b.header(CONTENT_TYPE, "application/json");
    }
    for (k, v) in r.headers {
        b = b.header(k, v);
    }
    Ok(b.body(Full::new(r.body))?)
}

/// Consecutive transport failures after which a worker gives up (the target is gone).
const MAX_CONSECUTIVE_FAILURES: u32 = 50;

async fn worker(
    t: Arc<Target>,
    mut conn: Option<SendRequest<Full<Bytes>>>,
    mut src: Box<dyn Source>,
    start: Instant,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::new();
    let mut failures = 0;
    tokio::time::sleep_until(start).await;
    while Instant::now() < deadline {
        let Some(req) = src.next() else {
            tally.ran_dry = true;
            break;
        };
        let sent = async {
            if conn.is_none() {
                conn = Some(connect(&t).await?);
            }
            let c = conn.as_mut().expect("just connected");
            c.ready().await?;
            let t0 = Instant::now();
            let resp = c.send_request(build(&t, req)?).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body, t0.elapsed()))
        }
        .await;
        match sent {
            Ok((status, body, took)) => {
                failures = 0;
                if src.answer(status, &body) {
                    tally.ok += 1;
                    let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                    tally.hist.saturating_record(us);
                } else {
                    *tally.errors.entry(status.as_u16().to_string()).or_default() += 1;
                }
            }
            Err(_) => {
                conn = None;
                *tally.errors.entry("connection".into()).or_default() += 1;
                failures += 1;
                if failures >= MAX_CONSECUTIVE_FAILURES {
                    break;
                }
            }
        }
    }
    tally
}

/// What one timed run measured: a tally per group, and the run's wall time.
pub struct Measured {
    pub groups: Vec<Tally>,
    pub elapsed: Duration,
}

/// Runs the groups of workers side by side for `duration`, each worker on its own
/// connection, all opened before the clock starts.
pub async fn run(
    t: &Target,
    groups: Vec<Vec<Box<dyn Source>>>,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let t = Arc::new(t.clone());
    let mut tallies: Vec<Tally> = groups.iter().map(|_| Tally::new()).collect();
    let mut conns = Vec::new();
    for g in &groups {
        let mut cs = Vec::with_capacity(g.len());
        for _ in g {
            cs.push(connect(&t).await?);
        }
        conns.push(cs);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + duration;
    let mut set = JoinSet::new();
    for (gi, (g, cs)) in groups.into_iter().zip(conns).enumerate() {
        for (src, c) in g.into_iter().zip(cs) {
            let t = t.clone();
            set.spawn(async move { (gi, worker(t, Some(c), src, start, deadline).await) });
        }
    }
    while let Some(r) = set.join_next().await {
        let (gi, tally) = r?;
        tallies[gi].merge(&tally);
    }
    Ok(Measured {
        groups: tallies,
        elapsed: Instant::now().saturating_duration_since(start),
    })
}
