//! CORS for browser SDKs, on the five shapes' endpoints only (the admin API and the
//! operator's endpoints are not for browsers). Off unless origins are configured
//! (`--cors-origin`). Credentials travel in headers, never cookies, so no
//! `Access-Control-Allow-Credentials`; every answer of an allowed origin, errors included,
//! carries `Access-Control-Allow-Origin`, or the browser would hide a 401's body.

use super::wire::Resp;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

/// Which browser origins may call the five shapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cors {
    #[default]
    Off,
    /// `*`: any origin.
    Any,
    /// Exact origins (`scheme://host[:port]`), compared without regard to case.
    Origins(Vec<String>),
}

/// Response headers a browser script may read: Okta's rate-limit and request-id headers,
/// and `Retry-After` of a 429.
const EXPOSED: &str = "X-Rate-Limit-Limit, X-Rate-Limit-Remaining, X-Rate-Limit-Reset, \
                       X-Okta-Request-Id, Retry-After";
/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE: &str = "600";

impl Cors {
    /// From the configured list: empty is off, `*` (alone) is any origin, anything else
    /// must be an origin: `http(s)://host[:port]`, no path.
    pub fn parse(list: &[String]) -> Result<Cors, String> {
        let list: Vec<&str> = list
            .iter()
            .map(|s| s.trim().trim_end_matches('/'))
            .filter(|s| !s.is_empty())
            .collect();
        if list.is_empty() {
            return Ok(Cors::Off);
        }
        if list.contains(&"*") {
            if list.len() > 1 {
                return Err("`*` allows every origin; list it alone".into());
            }
            return Ok(Cors::Any);
        }
        for o in &list {
            let rest = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
                .ok_or_else(|| format!("{o:?} is not an origin (http:// or https://)"))?;
            if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
                return Err(format!(
                    "{o:?} is not an origin (scheme://host[:port], no path)"
                ));
            }
        }
        Ok(Cors::Origins(
            list.iter().map(|o| o.to_ascii_lowercase()).collect(),
        ))
    }

    fn allowed<'a>(&self, origin: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
        let origin = origin?;
        match self {
            Cors::Off => None,
            Cors::Any => Some(origin),
            Cors::Origins(list) => {
                let o = origin.to_str().ok()?.to_ascii_lowercase();
                list.contains(&o).then_some(origin)
            }
        }
    }

    fn allow_origin(&self, origin: &HeaderValue, r: &mut Resp) {
        let h = r.headers_mut();
        match self {
            Cors::Any => {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
            _ => {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                h.append(header::VARY, HeaderValue::from_static("Origin"));
            }
        }
    }

    /// Adds the CORS headers to an answer to an allowed origin (the request's `Origin`).
    pub fn decorate(&self, origin: Option<&HeaderValue>, r: &mut Resp) {
        if let Some(origin) = self.allowed(origin) {
            self.allow_origin(origin, r);
            r.headers_mut().insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED),
            );
        }
    }

    /// A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) to an
    /// endpoint allowing `methods`: 204 with what the browser may send, when the origin is
    /// allowed and the method is one of the endpoint's; 403 without CORS headers otherwise
    /// (the browser then refuses the request). `None`: not a preflight, or CORS is off.
    pub fn preflight(
        &self,
        method: &Method,
        request: &HeaderMap,
        methods: &[Method],
    ) -> Option<Resp> {
        if *self == Cors::Off
            || method != Method::OPTIONS
            || !request.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
            || !request.contains_key(header::ORIGIN)
        {
            return None;
        }
        let wanted = request
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| Method::from_bytes(v.as_bytes()).ok());
        let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
        let (Some(origin), Some(true)) = (
            self.allowed(request.get(header::ORIGIN)),
            wanted.map(|m| methods.contains(&m)),
        ) else {
            *r.status_mut() = StatusCode::FORBIDDEN;
            return Some(r);
        };
        *r.status_mut() = StatusCode::NO_CONTENT;
        self.allow_origin(origin, &mut r);
        let allow = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&allow) {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        // Any header may be asked for: every credential is checked on the request itself.
        if let Some(asked) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE),
        );
        h.append(
            header::VARY,
            HeaderValue::from_static(
                "Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        Some(r)
    }
}
