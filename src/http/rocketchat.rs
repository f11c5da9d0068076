//! Rocket.Chat: `POST /api/v1/users.logoutOtherClients` (the seed), and the companions
//! `POST /api/v1/login` and `GET /api/v1/me`. A Rocket.Chat deployment is one application:
//! the `/apps/{anchor}` prefix (or the default application) says which.
//!
//! Auth is `X-Auth-Token` + `X-User-Id`; anything short of both, valid and matching, is
//! the 401 body Rocket.Chat's running code sends. Bodies may be empty or `{}` even under a
//! JSON Content-Type (the api-client sends an empty one).

use super::wire::{self, Req, Resp};
use crate::domain::{ActiveToken, NewSession, Sessiond, TokenCheck};
use crate::model::*;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

const NOT_LOGGED_IN: &str = "You must be logged in to do this.";

/// `{success: false, error}`, Rocket.Chat's `failure()`; used before a handler runs too.
pub fn error(status: StatusCode, message: &str) -> Resp {
    wire::json(status, &json!({"success": false, "error": message}))
}

fn unauthorized() -> Resp {
    wire::json(
        StatusCode::UNAUTHORIZED,
        &json!({"success": false, "error": NOT_LOGGED_IN, "status": "error", "message": NOT_LOGGED_IN}),
    )
}

fn internal(e: &dyn std::fmt::Display) -> Resp {
    tracing::error!(error = %e, "rocketchat: store failure");
    error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

pub async fn handle(state: &Sessiond, req: &Req) -> Resp {
    // Rocket.Chat parses JSON bodies before routing: malformed JSON is a 400 first.
    let body: Value = match req.json(true) {
        Ok(v) => v,
        Err(_) => return error(StatusCode::BAD_REQUEST, "Invalid JSON body"),
    };
    let app = match state.resolve_app(req.app_prefix.as_deref()) {
        Ok(a) => a,
        Err(crate::domain::Error::NotFound(_)) => {
            return error(StatusCode::NOT_FOUND, "application not found");
        }
        Err(e) => return internal(&e),
    };
    match req.segments.get(2).map(String::as_str) {
        Some("login") => login(state, req, &app, body).await,
        Some("me") => me(state, req, &app),
        Some("users.logoutOtherClients") => logout_other_clients(state, req, &app).await,
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// The caller's live login token or personal access token, matching `X-User-Id`.
fn authenticate(state: &Sessiond, req: &Req, app: &Application) -> Result<ActiveToken, Resp> {
    let (Some(token), Some(user)) = (req.header("x-auth-token"), req.header("x-user-id")) else {
        return Err(unauthorized());
    };
    match state.check_token(token, Some(app.key), &[TokenKind::Login, TokenKind::Pat]) {
        Ok(TokenCheck::Active(a)) if a.session.account.as_str() == user => Ok(a),
        Ok(_) => Err(unauthorized()),
        Err(e) => Err(internal(&e)),
    }
}

async fn logout_other_clients(state: &Sessiond, req: &Req, app: &Application) -> Resp {
    let current = match authenticate(state, req, app) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let keep = (current.record.kind == TokenKind::Login).then_some(current.session.id);
    match state
        .rocketchat_logout_others(
            app.key,
            &current.session.account,
            keep,
            Credential::Session(current.session.id),
        )
        .await
    {
        Ok(_) => {}
        // A concurrent call revoked the caller's token first: it is no longer logged in.
        Err(crate::domain::Error::CallerRevoked) => return unauthorized(),
        Err(e) => return internal(&e),
    }
    // tokenExpires = the token's `when` + the login expiration; "" for a personal access
    // token, which has no `when`.
    let token_expires = match current.record.kind {
        TokenKind::Login => {
            wire::iso_ms(current.record.issued + app.login_expiration_days as Millis * 86_400_000)
        }
        _ => String::new(),
    };
    wire::json(
        StatusCode::OK,
        &json!({
            "token": req.header("x-auth-token").unwrap_or_default(),
            "tokenExpires": token_expires,
            "success": true,
        }),
    )
}

fn user_json(a: &Account) -> Value {
    let emails: Vec<Value> = a
        .email
        .iter()
        .map(|e| json!({"address": e, "verified": false}))
        .collect();
    json!({
        "_id": a.id.as_str(),
        "username": a.login,
        "emails": emails,
        "name": a.name.clone().unwrap_or_else(|| a.login.clone()),
        "status": "online",
        "active": a.status == AccountStatus::Active,
    })
}

fn me(state: &Sessiond, req: &Req, app: &Application) -> Resp {
    let current = match authenticate(state, req, app) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match state.account(&current.session.account) {
        Ok(Some(a)) => {
            let mut u = user_json(&a);
            u["success"] = json!(true);
            wire::json(StatusCode::OK, &u)
        }
        Ok(None) => unauthorized(),
        Err(e) => internal(&e),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UserField {
    Plain(String),
    Username { username: String },
    Email { email: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PasswordField {
    Plain(String),
    Digest { digest: String, algorithm: String },
}

#[derive(Deserialize)]
struct LoginBody {
    user: Option<UserField>,
    username: Option<String>,
    email: Option<String>,
    password: Option<PasswordField>,
}

fn login_failed() -> Resp {
    wire::json(
        StatusCode::UNAUTHORIZED,
        &json!({"success": false, "error": "Unauthorized", "status": "error", "message": "Unauthorized"}),
    )
}

async fn login(state: &Sessiond, req: &Req, app: &Application, body: Value) -> Resp {
    let Ok(b) = serde_json::from_value::<LoginBody>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Match error: invalid login request",
        );
    };
    let who = match (&b.user, &b.username, &b.email) {
        (Some(UserField::Plain(u)), _, _) => state.find_account(u),
        (Some(UserField::Username { username }), _, _) | (None, Some(username), _) => {
            state.store().account_by_login(username).map_err(Into::into)
        }
        (Some(UserField::Email { email }), _, _) | (None, None, Some(email)) => {
            state.store().account_by_email(email).map_err(Into::into)
        }
        (None, None, None) => return error(StatusCode::BAD_REQUEST, "Match error: no user given"),
    };
    let account = match who {
        Ok(Some(a)) if a.status == AccountStatus::Active => a,
        Ok(_) => return login_failed(),
        Err(e) => return internal(&e),
    };
    let ok = match &b.password {
        Some(PasswordField::Plain(p)) => state.verify_password(&account, p).await,
        Some(PasswordField::Digest { digest, algorithm }) if algorithm == "sha-256" => {
            state.verify_password_digest(&account, digest).await
        }
        _ => return error(StatusCode::BAD_REQUEST, "Match error: no password given"),
    };
    if ok != Some(true) {
        return login_failed();
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
        Err(e) => return internal(&e),
    };
    wire::json(
        StatusCode::OK,
        &json!({
            "status": "success",
            "data": {
                "userId": account.id.as_str(),
                "authToken": issued.login_token,
                "me": user_json(&account),
            },
            "success": true,
        }),
    )
}
