//! Okta: `DELETE /api/v1/users/{userId}/sessions?oauthTokens=&forgetDevices=` (the seed),
//! and the probes `GET`/`DELETE /api/v1/sessions/{id}`. Organisation-wide: an
//! `/apps/{anchor}` prefix is accepted and ignored.
//!
//! Auth: `SSWS <token>`, `SSWS<token>` (the Python SDK sends no space) or `Bearer <token>`,
//! an API token created through the admin API. Every answer carries `X-Rate-Limit-Limit`,
//! `-Remaining`, `-Reset` (epoch seconds), `Date` and `X-Okta-Request-Id`; errors are
//! Okta's `{errorCode, errorSummary, errorLink, errorId, errorCauses}`; success is a bare
//! 204 with no Content-Type.

use super::wire::{self, Req, Resp};
use crate::domain::{RateDecision, SessionState, Sessiond};
use crate::model::*;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

const USERS_MANAGE: &str = "okta.users.manage";
const SESSIONS_READ: &str = "okta.sessions.read";
const SESSIONS_MANAGE: &str = "okta.sessions.manage";

fn okta_error(status: StatusCode, code: &str, summary: &str, causes: &[String]) -> Resp {
    let error_id = format!("oae{}", hex_encode(&crate::domain::secrets::random::<11>()));
    let causes: Vec<_> = causes.iter().map(|c| json!({"errorSummary": c})).collect();
    wire::json(
        status,
        &json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": error_id,
            "errorCauses": causes,
        }),
    )
}

fn invalid_token() -> Resp {
    okta_error(
        StatusCode::UNAUTHORIZED,
        "E0000011",
        "Invalid token provided",
        &[],
    )
}

fn forbidden() -> Resp {
    okta_error(
        StatusCode::FORBIDDEN,
        "E0000006",
        "You do not have permission to perform the requested action",
        &[],
    )
}

fn not_found(id: &str, what: &str) -> Resp {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {id} ({what})"),
        &[],
    )
}

fn internal() -> Resp {
    okta_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "E0000009",
        "Internal Server Error",
        &[],
    )
}

/// Errors found before the handler (405, 413, ...), in Okta's format.
pub fn transport_error(status: StatusCode, message: &str) -> Resp {
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "E0000022",
        StatusCode::NOT_FOUND => "E0000007",
        _ => "E0000001",
    };
    okta_error(status, code, message, &[])
}

/// The API token of `SSWS <t>`, `SSWS<t>` or `Bearer <t>`.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?.trim();
    let token = if let Some(rest) = v.strip_prefix("SSWS") {
        rest.trim_start()
    } else {
        let (scheme, rest) = v.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        rest.trim()
    };
    (!token.is_empty()).then_some(token)
}

/// Who is calling, and their rate-limit decision (counted now). Unauthenticated calls
/// share one bucket.
fn authorize(
    state: &Sessiond,
    headers: &HeaderMap,
) -> (Result<Option<ApiToken>, ()>, RateDecision) {
    let token = match presented_token(headers).map(|t| state.api_token(t)) {
        Some(Ok(t)) => Ok(t),
        Some(Err(e)) => {
            tracing::error!(error = %e, "okta: reading an API token failed");
            Err(())
        }
        None => Ok(None),
    };
    let decision = match &token {
        Ok(Some(t)) => state.rate_limit(&format!("okta:{}", t.id), t.rate_limit_per_minute),
        _ => state.rate_limit(
            "okta:anonymous",
            state.config().default_rate_limit_per_minute,
        ),
    };
    (token, decision)
}

fn with_headers(mut r: Resp, d: &RateDecision, request_id: &str) -> Resp {
    let h = r.headers_mut();
    for (name, value) in [
        ("x-rate-limit-limit", d.limit.to_string()),
        ("x-rate-limit-remaining", d.remaining.to_string()),
        ("x-rate-limit-reset", d.reset.to_string()),
    ] {
        h.insert(
            name,
            HeaderValue::from_str(&value).expect("digits are a valid header"),
        );
    }
    // Okta mints a new id per request; so do we: the one in this request's log lines.
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-okta-request-id", v);
    }
    r
}

/// Adds Okta's headers to an answer the router gave before the handler ran.
pub fn stamp(state: &Sessiond, headers: &HeaderMap, request_id: &str, r: Resp) -> Resp {
    let (_, d) = authorize(state, headers);
    with_headers(r, &d, request_id)
}

pub async fn handle(state: &Sessiond, req: &Req) -> Resp {
    let (token, decision) = authorize(state, &req.headers);
    let resp = match token {
        _ if !decision.allowed => okta_error(
            StatusCode::TOO_MANY_REQUESTS,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
            &[],
        ),
        Err(()) => internal(),
        Ok(None) => invalid_token(),
        Ok(Some(t)) => endpoint(state, req, &t).await,
    };
    with_headers(resp, &decision, &req.request_id)
}

async fn endpoint(state: &Sessiond, req: &Req, token: &ApiToken) -> Resp {
    let has = |scope: &str| token.scopes.iter().any(|s| s == scope);
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("DELETE", ["api", "v1", "users", user, "sessions"]) => {
            if !has(USERS_MANAGE) {
                return forbidden();
            }
            revoke_user_sessions(state, req, user, token).await
        }
        ("GET", ["api", "v1", "sessions", id]) => {
            if !has(SESSIONS_READ) && !has(SESSIONS_MANAGE) {
                return forbidden();
            }
            get_session(state, id)
        }
        ("DELETE", ["api", "v1", "sessions", id]) => {
            if !has(SESSIONS_MANAGE) {
                return forbidden();
            }
            delete_session(state, id, token).await
        }
        _ => transport_error(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// `true`/`false`, absent → the documented default.
fn flag(req: &Req, name: &str, default: bool) -> Result<bool, Resp> {
    match req.query_param(name).as_deref() {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            &format!("Api validation failed: {name}"),
            &[format!("{name}: must be true or false")],
        )),
    }
}

async fn revoke_user_sessions(state: &Sessiond, req: &Req, user: &str, token: &ApiToken) -> Resp {
    let oauth_tokens = match flag(req, "oauthTokens", false) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let forget_devices = match flag(req, "forgetDevices", true) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = AccountId::parse(user) else {
        return not_found(user, "User");
    };
    match state
        .okta_revoke_user_sessions(
            &id,
            oauth_tokens,
            forget_devices,
            Credential::ApiToken(token.id.clone()),
        )
        .await
    {
        Ok(_) => wire::empty(StatusCode::NO_CONTENT),
        Err(crate::domain::Error::NotFound(_)) => not_found(user, "User"),
        Err(e) => {
            tracing::error!(error = %e, "okta: revoke_user_sessions failed");
            internal()
        }
    }
}

/// An identity-provider session that is alive, or `None` (unknown, another kind, dead).
fn live_idp_session(state: &Sessiond, id: &str) -> Result<Option<Session>, Resp> {
    let Some(sid) = SessionId::parse(id) else {
        return Ok(None);
    };
    match state.session(&sid) {
        Ok(Some((s, SessionState::Active))) if s.kind == SessionKind::Idp => Ok(Some(s)),
        Ok(_) => Ok(None),
        Err(e) => {
            tracing::error!(error = %e, "okta: reading a session failed");
            Err(internal())
        }
    }
}

fn get_session(state: &Sessiond, id: &str) -> Resp {
    let s = match live_idp_session(state, id) {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(id, "Session"),
        Err(r) => return r,
    };
    let login = match state.account(&s.account) {
        Ok(Some(a)) => a.login,
        Ok(None) => String::new(),
        Err(_) => return internal(),
    };
    let sid = s.id.to_string();
    wire::json(
        StatusCode::OK,
        &json!({
            "id": sid,
            "login": login,
            "userId": s.account.as_str(),
            "createdAt": wire::iso_ms(s.created),
            "expiresAt": wire::iso_ms(s.expires),
            "status": "ACTIVE",
            "lastPasswordVerification": wire::iso_ms(s.created),
            "lastFactorVerification": null,
            "amr": ["pwd"],
            "idp": {"id": "00osessiond", "type": "OKTA"},
            "mfaActive": false,
            "_links": {
                "self": {"href": format!("/api/v1/sessions/{sid}"),
                         "hints": {"allow": ["GET", "DELETE"]}},
                "user": {"name": login, "href": format!("/api/v1/users/{}", s.account),
                         "hints": {"allow": ["GET"]}},
            },
        }),
    )
}

async fn delete_session(state: &Sessiond, id: &str, token: &ApiToken) -> Resp {
    let s = match live_idp_session(state, id) {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(id, "Session"),
        Err(r) => return r,
    };
    match state
        .revoke_session(
            &s.id,
            "okta.revoke_session",
            "session closed by an administrator",
            Credential::ApiToken(token.id.clone()),
        )
        .await
    {
        Ok(_) => wire::empty(StatusCode::NO_CONTENT),
        Err(e) => {
            tracing::error!(error = %e, "okta: revoke_session failed");
            internal()
        }
    }
}
