//! Routing: the raw path is split on `/` before any decoding, an `/apps/{anchor}` prefix
//! selects the application, and a plain `match` on the segments picks the endpoint. The
//! body is read here, within the limits, so every handler sees a complete request.

use super::server::Limits;
use super::wire::{self, Req, Resp};
use super::{admin, connect, flashback, okta, rocketchat, rownd};
use crate::domain::Sessiond;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

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

/// Every endpoint sessiond serves, with the methods it allows.
fn route(segs: &[&str]) -> Option<(Shape, &'static [Method])> {
    use Method as M;
    const POST: &[Method] = &[M::POST];
    const GET: &[Method] = &[M::GET];
    Some(match segs {
        ["applications", _, "users", _, "signout"] => (Shape::Rownd, POST),
        ["hub", "auth", "token"] => (Shape::Rownd, POST),
        ["hub", "auth", "keys"] => (Shape::Rownd, GET),
        ["revoke-all" | "refresh" | "introspect" | "logout"] => (Shape::Connect, POST),
        ["sessions", "revoke-all"] => (Shape::Flashback, POST),
        ["sessions", _, "revoke"] => (Shape::Flashback, POST),
        ["sessions"] => (Shape::Flashback, GET),
        ["user", "login" | "refresh"] => (Shape::Flashback, POST),
        ["api", "v1", "users.logoutOtherClients" | "login"] => (Shape::RocketChat, POST),
        ["api", "v1", "me"] => (Shape::RocketChat, GET),
        ["api", "v1", "users", _, "sessions"] => (Shape::Okta, &[M::DELETE]),
        ["api", "v1", "sessions", _] => (Shape::Okta, &[M::GET, M::DELETE]),
        ["admin", "v1", ..] => (Shape::Admin, &[M::GET, M::POST, M::DELETE, M::PATCH]),
        ["healthz"] => (Shape::Other, GET),
        _ => return None,
    })
}

pub async fn handle(state: &Sessiond, limits: &Limits, req: Request<Incoming>) -> Resp {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_owned();
    let resp = dispatch(state, limits, parts, body).await;
    tracing::debug!(
        path = %raw_path,
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

async fn dispatch(
    state: &Sessiond,
    limits: &Limits,
    parts: http::request::Parts,
    body: Incoming,
) -> Resp {
    // Split the raw path first, then decode each segment: `%2F` stays inside its id.
    // Leading empty segments (`//api/v1/...` from a base URL ending in `/`) are dropped.
    let raw: Vec<&str> = parts.uri.path().split('/').skip(1).collect();
    let Some(decoded) = raw
        .iter()
        .map(|s| wire::percent_decode(s))
        .collect::<Option<Vec<_>>>()
    else {
        return Shape::Other.error(StatusCode::NOT_FOUND, "no such endpoint");
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
    let Some((shape, methods)) = route(&seg_refs) else {
        return Shape::Other.error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    if shape == Shape::Admin && app_prefix.is_some() {
        return Shape::Other.error(
            StatusCode::NOT_FOUND,
            "the admin API is not served under /apps/",
        );
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
        return shape_headers(shape, state, &parts.headers, r);
    }
    let body = match read_body(body, &parts.headers, limits).await {
        Ok(b) => b,
        Err((status, msg)) => {
            return shape_headers(shape, state, &parts.headers, shape.error(status, msg));
        }
    };
    let req = Req {
        method: parts.method,
        headers: parts.headers,
        query: parts.uri.query().map(str::to_owned),
        segments: segs.to_vec(),
        app_prefix,
        body,
    };
    match shape {
        Shape::Rownd => rownd::handle(state, &req).await,
        Shape::Connect => connect::handle(state, &req).await,
        Shape::Flashback => flashback::handle(state, &req).await,
        Shape::RocketChat => rocketchat::handle(state, &req).await,
        Shape::Okta => okta::handle(state, &req).await,
        Shape::Admin => admin::handle(state, &req).await,
        Shape::Other => wire::json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
    }
}

/// Okta stamps its headers on every answer, also those the router gives.
fn shape_headers(shape: Shape, state: &Sessiond, headers: &http::HeaderMap, r: Resp) -> Resp {
    if shape == Shape::Okta {
        okta::stamp(state, headers, r)
    } else {
        r
    }
}

async fn read_body(
    body: Incoming,
    headers: &http::HeaderMap,
    limits: &Limits,
) -> Result<Bytes, (StatusCode, &'static str)> {
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
