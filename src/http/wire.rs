//! What every shape module shares: the parsed request, response builders, header and body
//! helpers, and time formatting at the JSON edge.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;

pub type Resp = Response<Full<Bytes>>;

/// A request after routing: the body is read (within limits), the path split on the raw
/// `/` and each segment percent-decoded, so `%2F` inside an id never splits it.
pub struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Option<String>,
    /// Decoded path segments after any `/apps/{anchor}` prefix.
    pub segments: Vec<String>,
    /// The anchor of an `/apps/{anchor}` prefix, if there was one.
    pub app_prefix: Option<String>,
    pub body: Bytes,
    /// This request's id in the logs (and in Okta's `X-Okta-Request-Id`).
    pub request_id: String,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// A query parameter, percent-decoded; the last occurrence wins.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        q.split('&')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k)? == name).then(|| percent_decode(&v.replace('+', " ")))?
            })
            .next_back()
    }

    /// The request carries no body: zero bytes. Whitespace alone is a body, and not JSON:
    /// the JSON parsers behind these APIs (Express's `body-parser` in strict mode) answer it
    /// with a 400, as they do any other malformed JSON.
    pub fn has_no_body(&self) -> bool {
        self.body.is_empty()
    }

    /// The body as a JSON object. An empty body reads as `{}` where the contract allows no
    /// body. Anything but an object is refused before it reaches a typed struct (serde would
    /// otherwise read a JSON array positionally into the struct's fields).
    pub fn json<T: serde::de::DeserializeOwned>(&self, empty_is_object: bool) -> Result<T, String> {
        let value: serde_json::Value = if empty_is_object && self.has_no_body() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_slice(&self.body).map_err(|e| e.to_string())?
        };
        if !value.is_object() {
            return Err("the body must be a JSON object".into());
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: &impl Serialize) -> Resp {
    let bytes = serde_json::to_vec(body).expect("response bodies are plain JSON values");
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A response with no body and no Content-Type (a JSON Content-Type on an empty 204
/// crashes the Okta Python SDK).
pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// ISO-8601 UTC with milliseconds, as Rocket.Chat and Okta print times
/// (`2021-12-27T14:33:09.851Z`).
pub fn iso_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => String::new(),
    }
}

/// Where a request comes from, as far as its headers say.
pub fn device_of(req: &Req) -> crate::model::DeviceInfo {
    let clip = |s: &str| s.chars().take(200).collect::<String>();
    crate::model::DeviceInfo {
        label: req.header("x-device-name").map(clip),
        ip: req
            .header("x-forwarded-for")
            .and_then(|v| v.split(',').next())
            .map(|v| clip(v.trim())),
        user_agent: req.header("user-agent").map(clip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc%40d").as_deref(), Some("a b/c@d"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn times_print_with_milliseconds() {
        assert_eq!(iso_ms(1_640_615_589_851), "2021-12-27T14:33:09.851Z");
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
