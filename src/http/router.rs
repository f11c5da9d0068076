//! Routing: the raw path is split on `/` before any decoding, an `/apps/{anchor}` prefix
//! selects the application, and the first entry of `ROUTES` whose segments match picks the
//! endpoint and its methods (CORS preflights are answered here too). The body is read here,
//! within the limits, so every handler sees a complete request.

use super::cors::Cors;
use super::server::Limits;
use super::throttle::{Throttle, Verdict};
use super::wire::{self, Req, Resp};
use super::{admin, connect, flashback, okta, rocketchat, rownd};
use crate::domain::Sessiond;
use crate::metrics::ShapeLabel;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument;

/// Which public document an endpoint belongs to: it decides the error format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Rownd,
    Connect,
    Flashback,
    RocketChat,
    Okta,
    Admin,
    Other,
}

impl Shape {
    fn label(self) -> ShapeLabel {
        match self {
            Shape::Rownd => ShapeLabel::rownd,
            Shape::Connect => ShapeLabel::connect,
            Shape::Flashback => ShapeLabel::flashback,
            Shape::RocketChat => ShapeLabel::rocketchat,
            Shape::Okta => ShapeLabel::okta,
            Shape::Admin => ShapeLabel::admin,
            Shape::Other => ShapeLabel::other,
        }
    }

    /// The five public documents, which browser SDKs may call (CORS).
    fn is_public(self) -> bool {
        !matches!(self, Shape::Admin | Shape::Other)
    }

    /// An error in this shape's own format, for failures found before a handler runs.
    pub fn error(self, status: StatusCode, message: &str) -> Resp {
        match self {
            Shape::Rownd => rownd::error(status, message),
            Shape::Connect => connect::error(status, message),
            Shape::Flashback => flashback::error(status, message),
            Shape::RocketChat => rocketchat::error(status, message),
            Shape::Okta => okta::transport_error(status, message),
            Shape::Admin | Shape::Other => admin::error(status, message),
        }
    }
}

/// One endpoint: its path as segments (`{name}` stands for any one segment), the document
/// it belongs to, and the methods it allows. `docs/openapi.json` describes exactly these
/// (a test holds the two together).
pub struct Route {
    pub path: &'static [&'static str],
    pub shape: Shape,
    pub methods: &'static [Method],
}

const fn r(path: &'static [&'static str], shape: Shape, methods: &'static [Method]) -> Route {
    Route {
        path,
        shape,
        methods,
    }
}

const GET: &[Method] = &[Method::GET];
const POST: &[Method] = &[Method::POST];
const GET_DELETE: &[Method] = &[Method::GET, Method::DELETE];

/// Every endpoint sessiond serves, relative to an application's base path (the admin API
/// and the operator's endpoints have none). The first entry whose segments match wins, so
/// a literal segment is listed before a `{name}` in the same place.
pub const ROUTES: &[Route] = &[
    r(
        &["applications", "{app}", "users", "{user}", "signout"],
        Shape::Rownd,
        POST,
    ),
    r(&["hub", "auth", "token"], Shape::Rownd, POST),
    r(&["hub", "auth", "keys"], Shape::Rownd, GET),
    r(&["revoke-all"], Shape::Connect, POST),
    r(&["refresh"], Shape::Connect, POST),
    r(&["introspect"], Shape::Connect, POST),
    r(&["logout"], Shape::Connect, POST),
    r(&["sessions", "revoke-all"], Shape::Flashback, POST),
    r(&["sessions", "{id}", "revoke"], Shape::Flashback, POST),
    r(&["sessions"], Shape::Flashback, GET),
    r(&["user", "login"], Shape::Flashback, POST),
    r(&["user", "refresh"], Shape::Flashback, POST),
    r(
        &["api", "v1", "users.logoutOtherClients"],
        Shape::RocketChat,
        POST,
    ),
    r(&["api", "v1", "login"], Shape::RocketChat, POST),
    r(&["api", "v1", "me"], Shape::RocketChat, GET),
    r(
        &["api", "v1", "users", "{userId}", "sessions"],
        Shape::Okta,
        &[Method::DELETE],
    ),
    r(
        &["api", "v1", "sessions", "{sessionId}"],
        Shape::Okta,
        GET_DELETE,
    ),
    r(
        &["admin", "v1", "applications"],
        Shape::Admin,
        &[Method::GET, Method::POST],
    ),
    r(
        &["admin", "v1", "applications", "{id}"],
        Shape::Admin,
        &[Method::GET, Method::PATCH],
    ),
    r(
        &["admin", "v1", "applications", "{id}", "keys"],
        Shape::Admin,
        POST,
    ),
    r(
        &["admin", "v1", "applications", "{id}", "keys", "{key}"],
        Shape::Admin,
        &[Method::DELETE],
    ),
    r(&["admin", "v1", "accounts"], Shape::Admin, POST),
    r(&["admin", "v1", "accounts", "{id}"], Shape::Admin, GET),
    r(
        &["admin", "v1", "accounts", "{id}", "sessions"],
        Shape::Admin,
        GET,
    ),
    r(
        &["admin", "v1", "accounts", "{id}", "devices"],
        Shape::Admin,
        &[Method::GET, Method::POST],
    ),
    r(&["admin", "v1", "sessions"], Shape::Admin, POST),
    r(&["admin", "v1", "sessions", "batch"], Shape::Admin, POST),
    r(
        &["admin", "v1", "sessions", "{id}"],
        Shape::Admin,
        GET_DELETE,
    ),
    r(&["admin", "v1", "api-tokens"], Shape::Admin, POST),
    r(&["admin", "v1", "introspect"], Shape::Admin, POST),
    r(&["admin", "v1", "audit"], Shape::Admin, GET),
    r(&["admin", "v1", "backup"], Shape::Admin, POST),
    r(&["admin", "v1", "sweep"], Shape::Admin, POST),
    r(&["healthz"], Shape::Other, GET),
    r(&["readyz"], Shape::Other, GET),
    r(&["metrics"], Shape::Other, GET),
    r(&["openapi.json"], Shape::Other, GET),
];

impl Route {
    /// The path as OpenAPI writes it: `/api/v1/users/{userId}/sessions`.
    pub fn template(&self) -> String {
        self.path.iter().map(|s| format!("/{s}")).collect()
    }

    fn matches(&self, segs: &[&str]) -> bool {
        self.path.len() == segs.len()
            && self
                .path
                .iter()
                .zip(segs)
                .all(|(p, s)| p.starts_with('{') || p == s)
    }
}

fn route(segs: &[&str]) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.matches(segs))
}

/// The whole HTTP layer as one value: the service, the limits, and the per-credential flood
/// guard. `server.rs` feeds it hyper's requests; anything else (the `http` fuzz target) can
/// feed it a request with an in-memory body.
pub struct Router {
    state: Sessiond,
    limits: Limits,
    throttle: Throttle,
    cors: Cors,
}

impl Router {
    pub fn new(state: Sessiond, limits: Limits) -> Router {
        Router {
            state,
            limits,
            throttle: Throttle::default(),
            cors: Cors::Off,
        }
    }

    /// Answers browsers of these origins on the five shapes (`cors.rs`).
    pub fn with_cors(mut self, cors: Cors) -> Router {
        self.cors = cors;
        self
    }

    /// Answers one request. Never panics on any input; every answer is in the reached
    /// shape's error format, or the admin API's for paths that reach no shape. Each request
    /// runs in a span carrying its id (Okta's answers carry the same id in
    /// `X-Okta-Request-Id`) and ends with one log line and its metrics. The path is logged
    /// without its query; no header or body is.
    pub async fn handle<B>(&self, req: Request<B>) -> Resp
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = std::time::Instant::now();
        let id = request_id();
        let (parts, body) = req.into_parts();
        let origin = parts.headers.get(header::ORIGIN).cloned();
        let preflight = parts.method == Method::OPTIONS;
        let span = tracing::info_span!(
            "request",
            id = %id,
            method = %parts.method,
            path = %parts.uri.path(),
            shape = tracing::field::Empty,
        );
        let (shape, mut resp) = self
            .dispatch(parts, body, &id)
            .instrument(span.clone())
            .await;
        if shape.is_public() && !preflight {
            self.cors.decorate(origin.as_ref(), &mut resp);
        }
        let elapsed = started.elapsed();
        let status = resp.status().as_u16();
        self.state.metrics().request(shape.label(), status, elapsed);
        span.in_scope(|| {
            tracing::info!(status, latency_us = elapsed.as_micros() as u64, "answered");
        });
        resp
    }

    /// The checks in the order ARCHITECTURE.md ("Limits") lists them: head size, path,
    /// method, flood guard, body; then one shape module.
    async fn dispatch<B>(&self, parts: http::request::Parts, body: B, id: &str) -> (Shape, Resp)
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let state = &self.state;
        let limits = &self.limits;
        // Split the raw path first, then decode each segment: `%2F` stays inside its id.
        // Leading empty segments (`//api/v1/...` from a base URL ending in `/`) are dropped.
        let raw: Vec<&str> = parts.uri.path().split('/').skip(1).collect();
        let Some(decoded) = raw
            .iter()
            .map(|s| wire::percent_decode(s))
            .collect::<Option<Vec<_>>>()
        else {
            return (
                Shape::Other,
                Shape::Other.error(StatusCode::NOT_FOUND, "no such endpoint"),
            );
        };
        let mut segs: &[String] = &decoded;
        fn skip_empty(mut s: &[String]) -> &[String] {
            while s.len() > 1 && s[0].is_empty() {
                s = &s[1..];
            }
            s
        }
        segs = skip_empty(segs);
        let mut app_prefix = None;
        if segs.len() > 2 && segs[0] == "apps" {
            app_prefix = Some(segs[1].clone());
            segs = skip_empty(&segs[2..]);
        }
        let seg_refs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let routed = route(&seg_refs);
        if head_len(&parts) > limits.max_head_bytes {
            let shape = routed.map_or(Shape::Other, |r| r.shape);
            let r = shape.error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request header fields too large",
            );
            return (shape, shape_headers(shape, state, &parts.headers, id, r));
        }
        let Some(&Route { shape, methods, .. }) = routed else {
            return (
                Shape::Other,
                Shape::Other.error(StatusCode::NOT_FOUND, "no such endpoint"),
            );
        };
        tracing::Span::current().record("shape", tracing::field::debug(shape.label()));
        if shape == Shape::Admin && app_prefix.is_some() {
            return (
                Shape::Other,
                Shape::Other.error(
                    StatusCode::NOT_FOUND,
                    "the admin API is not served under /apps/",
                ),
            );
        }
        if shape.is_public()
            && let Some(r) = self.cors.preflight(&parts.method, &parts.headers, methods)
        {
            return (shape, r);
        }
        if !methods.contains(&parts.method) {
            let mut r = shape.error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            let allow = methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            if let Ok(v) = allow.parse() {
                r.headers_mut().insert(header::ALLOW, v);
            }
            return (shape, shape_headers(shape, state, &parts.headers, id, r));
        }
        // Okta counts its own (documented, per API token, with headers); the admin API is the
        // operator's.
        if !matches!(shape, Shape::Okta | Shape::Admin | Shape::Other) {
            let verdict = self.throttle.check(
                &parts.headers,
                limits.per_credential_per_minute,
                state.now(),
            );
            if let Verdict::Refused { retry_after_s } = verdict {
                let mut r = shape.error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
                return (shape, r);
            }
        }
        let body = match read_body(body, &parts.headers, limits).await {
            Ok(b) => b,
            Err((status, msg)) => {
                let r = shape.error(status, msg);
                return (shape, shape_headers(shape, state, &parts.headers, id, r));
            }
        };
        let req = Req {
            method: parts.method,
            headers: parts.headers,
            query: parts.uri.query().map(str::to_owned),
            segments: segs.to_vec(),
            app_prefix,
            body,
            request_id: id.to_owned(),
        };
        let resp = match shape {
            Shape::Rownd => rownd::handle(state, &req).await,
            Shape::Connect => connect::handle(state, &req).await,
            Shape::Flashback => flashback::handle(state, &req).await,
            Shape::RocketChat => rocketchat::handle(state, &req).await,
            Shape::Okta => okta::handle(state, &req).await,
            Shape::Admin => admin::handle(state, &req).await,
            Shape::Other => operations(state, &req).await,
        };
        (shape, resp)
    }
}

/// The API description served at `GET /openapi.json`: `docs/openapi.json`, built from the
/// five shapes' contracts in `conformance/specs/` and `docs/openapi-sessiond.json`.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// The operator's endpoints: `GET /healthz` (the process answers), `GET /readyz` (the store
/// takes a durable write: 200, else 503 with the reason), `GET /metrics` (OpenMetrics text),
/// `GET /openapi.json`.
async fn operations(state: &Sessiond, req: &Req) -> Resp {
    match req.segments.first().map(String::as_str) {
        Some("openapi.json") => {
            let mut r = http::Response::new(http_body_util::Full::new(Bytes::from_static(
                OPENAPI.as_bytes(),
            )));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Some("readyz") => match state.ready().await {
            Ok(()) => wire::json(StatusCode::OK, &serde_json::json!({"status": "ready"})),
            Err(e) => {
                tracing::error!(error = %e, "readyz: the store cannot take a durable write");
                wire::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "not ready", "error": e.to_string()}),
                )
            }
        },
        Some("metrics") => match state.render_metrics().await {
            Ok(text) => {
                let mut r = http::Response::new(http_body_util::Full::new(Bytes::from(text)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
                );
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "metrics: reading the store failed");
                admin::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "reading the store failed",
                )
            }
        },
        _ => wire::json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
    }
}

/// A request id unique in this process: a random prefix drawn at start, then a counter.
fn request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix =
        PREFIX.get_or_init(|| crate::model::hex_encode(&crate::domain::secrets::random::<4>()));
    format!("{prefix}{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The size of the request head as sent: request line and header lines with their CRLFs.
fn head_len(parts: &http::request::Parts) -> usize {
    let target = parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let line = parts.method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum::<usize>()
        + line
        + 2
}

/// Okta stamps its headers on every answer, also those the router gives.
fn shape_headers(
    shape: Shape,
    state: &Sessiond,
    headers: &http::HeaderMap,
    id: &str,
    r: Resp,
) -> Resp {
    if shape == Shape::Okta {
        okta::stamp(state, headers, id, r)
    } else {
        r
    }
}

async fn read_body<B>(
    body: B,
    headers: &http::HeaderMap,
    limits: &Limits,
) -> Result<Bytes, (StatusCode, &'static str)>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = (StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(too_large);
    }
    let limited = Limited::new(body, limits.max_body_bytes);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time",
        )),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large)
        }
        Ok(Err(_)) => Err((StatusCode::BAD_REQUEST, "malformed request body")),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}
