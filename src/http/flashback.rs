//! Flashback: `POST /sessions/revoke-all` (the seed), and the companions `POST /user/login`,
//! `POST /user/refresh`, `GET /sessions`, `POST /sessions/{id}/revoke`. A Flashback
//! deployment is one application: the `/apps/{anchor}` prefix (or the default) says which.
//! Bodies are Flashback's envelope `{success, message | error, ...}`.

use super::wire::{self, Req, Resp};
use crate::domain::{ActiveToken, NewSession, Refreshed, SessionState, Sessiond, TokenCheck};
use crate::model::*;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

/// `{success: false, error}`; used before a handler runs too.
pub fn error(status: StatusCode, message: &str) -> Resp {
    wire::json(status, &json!({"success": false, "error": message}))
}

fn unauthorized() -> Resp {
    error(StatusCode::UNAUTHORIZED, "Unauthorized")
}

fn failed(message: &str, e: &dyn std::fmt::Display) -> Resp {
    tracing::error!(error = %e, "flashback: {message}");
    error(StatusCode::INTERNAL_SERVER_ERROR, message)
}

pub async fn handle(state: &Sessiond, req: &Req) -> Resp {
    let app = match state.resolve_app(req.app_prefix.as_deref()) {
        Ok(a) => a,
        Err(crate::domain::Error::NotFound(_)) => {
            return error(StatusCode::NOT_FOUND, "Application not found");
        }
        Err(e) => return failed("Internal server error", &e),
    };
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["sessions", "revoke-all"] => revoke_all(state, req, &app).await,
        ["sessions", id, "revoke"] => revoke_one(state, req, &app, id).await,
        ["sessions"] => list(state, req, &app),
        ["user", "login"] => login(state, req, &app).await,
        ["user", "refresh"] => refresh(state, req, &app).await,
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// The caller's live access token of this application.
fn authenticate(state: &Sessiond, req: &Req, app: &Application) -> Result<ActiveToken, Resp> {
    let Some(token) = req.bearer() else {
        return Err(unauthorized());
    };
    match state.check_token(token, Some(app.key), &[TokenKind::Access]) {
        Ok(TokenCheck::Active(a)) => Ok(a),
        Ok(_) => Err(unauthorized()),
        Err(e) => Err(failed("Internal server error", &e)),
    }
}

/// The body is ignored, but it must be empty or JSON: any JSON (the samples send `{}`;
/// an array or a scalar is as ignorable), so not `Req::json`, which wants an object. Parsed
/// into a `Value`, not skipped with `IgnoredAny`, which lets strings that are not UTF-8 by.
fn ignored_body_ok(req: &Req) -> bool {
    req.has_no_body() || serde_json::from_slice::<serde_json::Value>(&req.body).is_ok()
}

async fn revoke_all(state: &Sessiond, req: &Req, app: &Application) -> Resp {
    let caller = match authenticate(state, req, app) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !ignored_body_ok(req) {
        return error(StatusCode::BAD_REQUEST, "Invalid JSON body");
    }
    match state
        .flashback_revoke_all(
            app.key,
            &caller.session.account,
            Credential::Session(caller.session.id),
        )
        .await
    {
        Ok(_) => wire::json(
            StatusCode::OK,
            &json!({"success": true, "message": "All sessions revoked successfully"}),
        ),
        Err(e) => failed("Failed to revoke all sessions", &e),
    }
}

async fn revoke_one(state: &Sessiond, req: &Req, app: &Application, id: &str) -> Resp {
    let caller = match authenticate(state, req, app) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let not_found = || error(StatusCode::NOT_FOUND, "Session not found");
    let Some(sid) = SessionId::parse(id) else {
        return not_found();
    };
    match state.session(&sid) {
        Ok(Some((s, SessionState::Active)))
            if s.account == caller.session.account && s.app == Some(app.key) => {}
        Ok(_) => return not_found(),
        Err(e) => return failed("Failed to revoke session", &e),
    }
    match state
        .revoke_session(
            &sid,
            "flashback.revoke_session",
            "revoked by the user",
            Credential::Session(caller.session.id),
        )
        .await
    {
        Ok(true) => wire::json(
            StatusCode::OK,
            &json!({"success": true, "message": "Session revoked successfully"}),
        ),
        Ok(false) | Err(crate::domain::Error::NotFound(_)) => not_found(),
        Err(e) => failed("Failed to revoke session", &e),
    }
}

fn list(state: &Sessiond, req: &Req, app: &Application) -> Resp {
    let caller = match authenticate(state, req, app) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let sessions = match state.sessions_of(&caller.session.account, Some(Some(app.key))) {
        Ok(s) => s,
        Err(e) => return failed("Failed to retrieve sessions", &e),
    };
    let items: Vec<_> = sessions
        .into_iter()
        // Flashback has no personal access tokens (sessiond's `pat` kind, which never
        // expires, has no `expiresAt` date-time to show).
        .filter(|(s, st)| *st == SessionState::Active && s.kind != SessionKind::Pat)
        .map(|(s, _)| {
            json!({
                "id": s.id.to_string(),
                "deviceName": s.device.label.clone().or(s.device.user_agent.clone()).unwrap_or_default(),
                "ipAddress": s.device.ip.clone().unwrap_or_default(),
                "location": "",
                "startedAt": wire::iso_ms(s.created),
                "lastActivity": wire::iso_ms(s.last_used),
                "expiresAt": wire::iso_ms(s.expires),
                "loginMethod": s.method,
            })
        })
        .collect();
    wire::json(StatusCode::OK, &json!({"success": true, "sessions": items}))
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

fn login_error(code: &str) -> Resp {
    wire::json(
        StatusCode::UNAUTHORIZED,
        &json!({"success": false, "error_code": code}),
    )
}

async fn login(state: &Sessiond, req: &Req, app: &Application) -> Resp {
    let Ok(b) = req.json::<LoginBody>(false) else {
        return error(StatusCode::BAD_REQUEST, "email and password are required");
    };
    let account = match state.store().account_by_email(&b.email) {
        Ok(Some(a)) => a,
        Ok(None) => return login_error("USER_NOT_FOUND"),
        Err(e) => return failed("Internal server error", &e),
    };
    if account.status != AccountStatus::Active {
        return login_error("USER_INACTIVE");
    }
    match state.verify_password(&account, &b.password).await {
        None => return login_error("NO_PASSWORD_SET"),
        Some(false) => return login_error("INVALID_PASSWORD"),
        Some(true) => {}
    }
    let issued = match state
        .issue(NewSession {
            account: account.id,
            app: Some(app.key),
            kind: SessionKind::Login,
            device: wire::device_of(req),
            method: "password".into(),
        })
        .await
    {
        Ok(i) => i,
        Err(e) => return failed("Internal server error", &e),
    };
    wire::json(
        StatusCode::OK,
        &json!({
            "success": true,
            "accessToken": issued.access_token,
            "refreshToken": issued.refresh_token,
            "tokenId": issued.session.id.to_string(),
            "expiresAt": issued.access_expires,
            "user": {
                "id": account.id.as_str(),
                "email": account.email,
                "name": account.name.clone().unwrap_or_else(|| account.login.clone()),
                "orgId": app.anchor.as_str(),
            },
        }),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(state: &Sessiond, req: &Req, app: &Application) -> Resp {
    let Ok(b) = req.json::<RefreshBody>(false) else {
        return error(StatusCode::BAD_REQUEST, "refreshToken is required");
    };
    match state
        .refresh(Some(app.key), &b.refresh_token, "flashback.refresh_reuse")
        .await
    {
        Ok(Refreshed::Rotated(r)) => wire::json(
            StatusCode::OK,
            &json!({
                "success": true,
                "accessToken": r.access_token,
                "refreshToken": r.refresh_token,
                "tokenId": r.session.id.to_string(),
                "expiresAt": r.access_expires,
            }),
        ),
        Ok(_) => error(StatusCode::UNAUTHORIZED, "Invalid refresh token"),
        Err(e) => failed("Internal server error", &e),
    }
}
