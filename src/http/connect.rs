//! Connect: `POST /revoke-all` (the seed), and the companions `POST /refresh`,
//! `POST /introspect`, `POST /logout`. The calling application is named by the client
//! JWT's `iss`; an `/apps/{anchor}` prefix that names another is a 403. Errors are
//! `{"reason": "..."}`, or a zero-byte body for a PRIVATE reason (a replayed `jti`).

use super::wire::{self, Req, Resp};
use crate::domain::{ClientAuthError, Generation, Refreshed, SessionState, Sessiond, TokenCheck};
use crate::model::*;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

pub fn error(status: StatusCode, reason: &str) -> Resp {
    let reason = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "BodyTooLarge",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::REQUEST_TIMEOUT => "RequestTimeout",
        StatusCode::BAD_REQUEST => "InvalidBody",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "HeadersTooLarge",
        _ => reason,
    };
    wire::json(status, &json!({"reason": reason}))
}

fn reason(status: StatusCode, reason: &str) -> Resp {
    wire::json(status, &json!({"reason": reason}))
}

fn internal(e: &dyn std::fmt::Display) -> Resp {
    tracing::error!(error = %e, "connect: store failure");
    reason(StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
}

fn invalid_body() -> Resp {
    reason(StatusCode::BAD_REQUEST, "InvalidBody")
}

pub async fn handle(state: &Sessiond, req: &Req) -> Resp {
    match req.segments[0].as_str() {
        "revoke-all" => revoke_all(state, req).await,
        "refresh" => refresh(state, req).await,
        "introspect" => introspect(state, req),
        "logout" => logout(state, req).await,
        _ => reason(StatusCode::NOT_FOUND, "NotFound"),
    }
}

/// The application an `/apps/{anchor}` prefix names: `Ok(None)` without a prefix.
fn prefix_app(state: &Sessiond, req: &Req) -> Result<Option<AppKey>, Resp> {
    match &req.app_prefix {
        None => Ok(None),
        Some(anchor) => match state.app_by_anchor(anchor) {
            Ok(Some(a)) => Ok(Some(a.key)),
            Ok(None) => Err(reason(StatusCode::NOT_FOUND, "ApplicationNotFound")),
            Err(e) => Err(internal(&e)),
        },
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeAllBody {
    subject: String,
}

async fn revoke_all(state: &Sessiond, req: &Req) -> Resp {
    // Client authentication comes first, over the raw body.
    let auth = match state.client_auth(req.header("authorization"), &req.body) {
        Ok(Ok(a)) => a,
        Ok(Err(ClientAuthError::Invalid(detail))) => {
            tracing::info!(detail, "connect: client JWT rejected");
            return reason(StatusCode::UNAUTHORIZED, "ClientJwtInvalid");
        }
        Ok(Err(ClientAuthError::Replayed)) => return wire::empty(StatusCode::UNAUTHORIZED),
        Ok(Err(ClientAuthError::Disabled)) => {
            return reason(StatusCode::FORBIDDEN, "ApplicationDisabled");
        }
        Err(e) => return internal(&e),
    };
    if req
        .app_prefix
        .as_deref()
        .is_some_and(|p| p != auth.app.anchor.as_str())
    {
        return reason(StatusCode::FORBIDDEN, "ApplicationMismatch");
    }
    // From here on the `jti` is consumed: it must stay consumed after a crash even when
    // nothing else is written (a bad body, an unknown subject).
    let Ok(body) = req.json::<RevokeAllBody>(false) else {
        return match state.sync().await {
            Ok(()) => invalid_body(),
            Err(e) => internal(&e),
        };
    };
    let account = match state.store().subject_owner(auth.app.sector, &body.subject) {
        Ok(a) => a,
        Err(e) => return internal(&e),
    };
    let revoked = match account {
        // A subject never issued in this sector revokes nothing.
        None => match state.sync().await {
            Ok(()) => 0,
            Err(e) => return internal(&e),
        },
        Some(account) => match state
            .connect_revoke_all(
                auth.app.key,
                &account,
                Credential::ClientJwt(auth.app.anchor.clone()),
            )
            .await
        {
            Ok(r) => r.refresh_tokens,
            Err(crate::domain::Error::NotFound(_)) => 0,
            Err(e) => return internal(&e),
        },
    };
    match auth.generation {
        Generation::Connect => wire::json(StatusCode::OK, &json!({"revokedCount": revoked})),
        Generation::Session => wire::json(StatusCode::OK, &json!({"revoked": true})),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(state: &Sessiond, req: &Req) -> Resp {
    let app = match prefix_app(state, req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(body) = req.json::<RefreshBody>(false) else {
        return invalid_body();
    };
    let r = match state
        .refresh(app, &body.refresh_token, "connect.refresh_reuse")
        .await
    {
        Ok(Refreshed::Rotated(r)) => r,
        Ok(Refreshed::NotFound) => return reason(StatusCode::UNAUTHORIZED, "RefreshTokenNotFound"),
        Ok(Refreshed::Expired) => return reason(StatusCode::UNAUTHORIZED, "RefreshTokenExpired"),
        Ok(Refreshed::Revoked(_)) => {
            return reason(StatusCode::UNAUTHORIZED, "RefreshTokenRevoked");
        }
        Ok(Refreshed::Reused) => {
            return reason(StatusCode::UNAUTHORIZED, "RefreshTokenFamilyCompromised");
        }
        Err(e) => return internal(&e),
    };
    let subject = match r
        .session
        .app
        .map(|k| state.app(k))
        .transpose()
        .map(Option::flatten)
    {
        Ok(Some(app)) => match state.subject(&r.session.account, app.sector) {
            Ok(s) => s,
            Err(e) => return internal(&e),
        },
        Ok(None) => String::new(),
        Err(e) => return internal(&e),
    };
    wire::json(
        StatusCode::OK,
        &json!({
            "accessToken": r.access_token,
            "refreshToken": r.refresh_token,
            "claims": {"subject": subject},
        }),
    )
}

fn introspect(state: &Sessiond, req: &Req) -> Resp {
    let app = match prefix_app(state, req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(body) = req.json::<serde_json::Value>(false) else {
        return invalid_body();
    };
    let Some(token) = body
        .get("accessToken")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty() && t.len() <= 512)
    else {
        return reason(StatusCode::UNAUTHORIZED, "AccessTokenInvalid");
    };
    // The access token's own `exp` is not enforced here: the session's state is reported.
    let status = match state.check_token(token, app, &[TokenKind::Access]) {
        Ok(TokenCheck::Active(_)) => "active",
        Ok(TokenCheck::Revoked(..)) => "revoked",
        Ok(TokenCheck::Expired(s) | TokenCheck::Consumed(s)) => match state.state(&s) {
            Ok(SessionState::Active) => "active",
            Ok(SessionState::Revoked(_)) => "revoked",
            Ok(SessionState::Expired) => "expired",
            Err(e) => return internal(&e),
        },
        Ok(TokenCheck::Unknown | TokenCheck::WrongKind) => "not_found",
        Err(e) => return internal(&e),
    };
    wire::json(
        StatusCode::OK,
        &json!({"status": status, "recommendedRecheckSeconds": 60}),
    )
}

async fn logout(state: &Sessiond, req: &Req) -> Resp {
    let app = match prefix_app(state, req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(body) = req.json::<RefreshBody>(false) else {
        return invalid_body();
    };
    let revoked = match state.check_token(&body.refresh_token, app, &[TokenKind::Refresh]) {
        Ok(TokenCheck::Active(a)) => {
            match state
                .revoke_session(
                    &a.session.id,
                    "connect.logout",
                    "logged out",
                    Credential::Session(a.session.id),
                )
                .await
            {
                Ok(_) => true,
                Err(e) => return internal(&e),
            }
        }
        // A refresh token already rotated away: whoever holds it should not, so the whole
        // family goes (as `/refresh` does on reuse).
        Ok(TokenCheck::Consumed(s)) => {
            match state
                .revoke_session(
                    &s.id,
                    "connect.logout",
                    "logged out with a rotated refresh token",
                    Credential::Session(s.id),
                )
                .await
            {
                Ok(_) => true,
                Err(e) => return internal(&e),
            }
        }
        // Already revoked or expired: idempotent success.
        Ok(TokenCheck::Revoked(..) | TokenCheck::Expired(_)) => true,
        Ok(TokenCheck::Unknown | TokenCheck::WrongKind) => false,
        Err(e) => return internal(&e),
    };
    wire::json(StatusCode::OK, &json!({"revoked": revoked}))
}
