//! Rownd: `POST /applications/{app}/users/{user}/signout` (the seed), and the companions
//! `POST /hub/auth/token` (refresh) and `GET /hub/auth/keys` (the JWKS of hub JWTs).
//!
//! Auth is either both `x-rownd-app-key` and `x-rownd-app-secret` of `{app}`, or
//! `Authorization: Bearer <hub JWT>` whose `aud` holds `app:{app}` and whose user is
//! `{user}`. Success is a bare 204. Errors (undocumented by Rownd) are
//! `{"statusCode", "error", "message"}`.

use super::wire::{self, Req, Resp};
use crate::domain::{Error, Refreshed, Sessiond, TokenCheck};
use crate::model::*;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

pub fn error(status: StatusCode, message: &str) -> Resp {
    wire::json(
        status,
        &json!({
            "statusCode": status.as_u16(),
            "error": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }),
    )
}

fn internal(e: &dyn std::fmt::Display) -> Resp {
    tracing::error!(error = %e, "rownd: store failure");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

pub async fn handle(state: &Sessiond, req: &Req) -> Resp {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["applications", app, "users", user, "signout"] => signout(state, req, app, user).await,
        ["hub", "auth", "token"] => token(state, req).await,
        ["hub", "auth", "keys"] => wire::json(StatusCode::OK, &state.hub().jwks()),
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// Who is signing the user out.
enum Caller {
    /// An application credential (key + secret) of this application.
    App(AppKey),
    /// The user, through a session's hub JWT.
    User {
        session: SessionId,
        account: String,
        audience: Vec<String>,
    },
}

fn authenticate(state: &Sessiond, req: &Req) -> Result<Caller, Resp> {
    let unauthorized = |m: &str| Err(error(StatusCode::UNAUTHORIZED, m));
    if let (Some(key), Some(secret)) = (
        req.header("x-rownd-app-key"),
        req.header("x-rownd-app-secret"),
    ) {
        return match state.rownd_credentials(key, secret) {
            Ok(Some(app)) => Ok(Caller::App(app)),
            Ok(None) => unauthorized("invalid app credentials"),
            Err(e) => Err(internal(&e)),
        };
    }
    let Some(jwt) = req.bearer() else {
        return unauthorized("missing credentials: app key and secret, or a bearer token");
    };
    match state.check_hub_jwt(jwt) {
        Ok((TokenCheck::Active(a), Some(claims))) => Ok(Caller::User {
            session: a.session.id,
            account: claims["https://auth.rownd.io/app_user_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            audience: claims["aud"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }),
        Ok(_) => unauthorized("invalid, expired or revoked token"),
        Err(e) => Err(internal(&e)),
    }
}

#[derive(Deserialize)]
struct SignoutBody {
    sign_out_all: Option<bool>,
}

async fn signout(state: &Sessiond, req: &Req, app_id: &str, user: &str) -> Resp {
    let caller = match authenticate(state, req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let app = match state.app_by_anchor(app_id) {
        Ok(Some(a)) => a,
        Ok(None) => return error(StatusCode::NOT_FOUND, "application not found"),
        Err(e) => return internal(&e),
    };
    if req.app_prefix.as_deref().is_some_and(|p| p != app_id) {
        return error(
            StatusCode::FORBIDDEN,
            "the path names another application than the prefix",
        );
    }
    match &caller {
        Caller::App(k) if *k != app.key => {
            return error(
                StatusCode::FORBIDDEN,
                "these credentials belong to another application",
            );
        }
        Caller::User { audience, .. }
            if !audience.iter().any(|a| *a == format!("app:{app_id}")) =>
        {
            return error(
                StatusCode::FORBIDDEN,
                "the token was not issued for this application",
            );
        }
        Caller::User { account, .. } if account != user => {
            return error(StatusCode::FORBIDDEN, "the token belongs to another user");
        }
        _ => {}
    }
    let body: SignoutBody = match req.json(true) {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "body must be {\"sign_out_all\": boolean}",
            );
        }
    };
    // Whether the user exists is the domain's to say, under the account's lock.
    let Some(account) = AccountId::parse(user) else {
        return error(StatusCode::NOT_FOUND, "user not found");
    };
    let credential = match &caller {
        Caller::User { session, .. } => Credential::Session(*session),
        Caller::App(_) => {
            Credential::AppKey(req.header("x-rownd-app-key").unwrap_or_default().to_owned())
        }
    };
    let result = match caller {
        Caller::User { session, .. } if body.sign_out_all == Some(false) => state
            .revoke_session(
                &session,
                "rownd.signout",
                "signed out of this device",
                credential,
            )
            .await
            .map(|_| ()),
        _ => state
            .rownd_sign_out_all(app.key, &account, credential)
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => wire::empty(StatusCode::NO_CONTENT),
        Err(Error::NotFound("account")) => error(StatusCode::NOT_FOUND, "user not found"),
        Err(e) => internal(&e),
    }
}

#[derive(Deserialize)]
struct TokenBody {
    refresh_token: Option<String>,
    id_token: Option<String>,
}

async fn token(state: &Sessiond, req: &Req) -> Resp {
    let app = match &req.app_prefix {
        None => None,
        Some(anchor) => match state.app_by_anchor(anchor) {
            Ok(Some(a)) => Some(a.key),
            Ok(None) => return error(StatusCode::NOT_FOUND, "application not found"),
            Err(e) => return internal(&e),
        },
    };
    let Ok(body) = req.json::<TokenBody>(false) else {
        return error(
            StatusCode::BAD_REQUEST,
            "body must be {\"refresh_token\": string}",
        );
    };
    let Some(refresh) = body.refresh_token else {
        let m = if body.id_token.is_some() {
            "id_token exchange is not offered: create sessions through the admin API"
        } else {
            "refresh_token is required"
        };
        return error(StatusCode::BAD_REQUEST, m);
    };
    // Rownd's SDKs read any 400 from a refresh as "invalid refresh token: sign out".
    match state.refresh(app, &refresh, "rownd.refresh_reuse").await {
        Ok(Refreshed::Rotated(r)) => wire::json(
            StatusCode::OK,
            &json!({"access_token": r.hub_jwt, "refresh_token": r.refresh_token}),
        ),
        Ok(_) => error(StatusCode::BAD_REQUEST, "invalid refresh token"),
        Err(e) => internal(&e),
    }
}
