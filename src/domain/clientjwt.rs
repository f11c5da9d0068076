//! Connect client authentication: `Authorization: SudomimusClientJWT <jwt>`, an RS256 JWT
//! signed with the application's registered key, whose claims bind it to one request:
//! `iss` (the application anchor), `aud`, `iat`, `exp` (lifetime at most 60 s, `iat` at
//! most 30 s in the future), `jti` (honoured exactly once) and `body_sha256` (standard
//! base64 of SHA-256 of the raw body). Checked before the body is even parsed.

use super::{Result, Sessiond, jwt, secrets};
use crate::model::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const SCHEME: &str = "SudomimusClientJWT";
const MAX_LIFETIME_S: i64 = 60;
const MAX_SKEW_S: i64 = 30;

/// Which generation of the API the client speaks, from its `aud`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// `aud: "sudomimus-connect"`: the seed's contract, `{"revokedCount": n}`.
    Connect,
    /// `aud: "sudomimus-session"`: the later Session API, `{"revoked": true}`.
    Session,
}

/// An authenticated client.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub app: Application,
    pub generation: Generation,
}

/// Why client authentication failed. All but `Replayed` and `Disabled` are the public
/// reason `ClientJwtInvalid`; the detail goes to the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuthError {
    Invalid(&'static str),
    /// The `jti` was used before: a PRIVATE reason (empty body).
    Replayed,
    /// The application exists but is disabled.
    Disabled,
}

impl Sessiond {
    /// Authenticates a Connect client from its `Authorization` header and the raw body.
    /// On success the `jti` has been consumed.
    pub fn client_auth(
        &self,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Result<ClientAuth, ClientAuthError>> {
        use ClientAuthError::Invalid;
        // Auth scheme names are case-insensitive (RFC 9110 §11.1).
        let Some(token) = authorization
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(SCHEME))
            .map(|(_, rest)| rest.trim())
        else {
            return Ok(Err(Invalid(
                "missing or non-SudomimusClientJWT authorization",
            )));
        };
        let Some(parts) = jwt::split(token) else {
            return Ok(Err(Invalid("not a compact JWT")));
        };
        // The published SDKs send `{}`; an `alg` that is present must be RS256.
        match parts.header.get("alg") {
            None => {}
            Some(Value::String(a)) if a == "RS256" => {}
            Some(_) => return Ok(Err(Invalid("header alg is not RS256"))),
        }
        let c = &parts.claims;
        let Some(iss) = c.get("iss").and_then(Value::as_str) else {
            return Ok(Err(Invalid("no iss")));
        };
        let Some(app) = self.app_by_anchor(iss)? else {
            return Ok(Err(Invalid("unknown iss")));
        };
        let Some(key) = app
            .connect_public_key_pem
            .as_deref()
            .and_then(jwt::rsa_public_key)
        else {
            return Ok(Err(Invalid("the application has no client-auth key")));
        };
        if !jwt::verify_rs256(&key, parts.signed, &parts.signature) {
            return Ok(Err(Invalid("bad signature")));
        }
        let generation = match c.get("aud").and_then(Value::as_str) {
            Some("sudomimus-connect") => Generation::Connect,
            Some("sudomimus-session") => Generation::Session,
            _ => return Ok(Err(Invalid("wrong aud"))),
        };
        let (Some(iat), Some(exp)) = (
            c.get("iat").and_then(Value::as_i64),
            c.get("exp").and_then(Value::as_i64),
        ) else {
            return Ok(Err(Invalid("iat and exp must be integers")));
        };
        let now = self.now() / 1000;
        if exp <= now {
            return Ok(Err(Invalid("expired")));
        }
        if iat > now.saturating_add(MAX_SKEW_S) {
            return Ok(Err(Invalid("iat in the future")));
        }
        // Checked: claims are attacker-chosen integers (i64::MAX, negatives).
        if exp <= iat
            || exp
                .checked_sub(iat)
                .is_none_or(|life| life > MAX_LIFETIME_S)
        {
            return Ok(Err(Invalid("lifetime over 60 s")));
        }
        let Some(claimed) = c.get("body_sha256").and_then(Value::as_str) else {
            return Ok(Err(Invalid("no body_sha256")));
        };
        let actual = STANDARD.encode(Sha256::digest(body));
        if !secrets::ct_eq(claimed.as_bytes(), actual.as_bytes()) {
            return Ok(Err(Invalid("body_sha256 mismatch")));
        }
        let Some(jti) = c
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty() && j.len() <= 256)
        else {
            return Ok(Err(Invalid("no jti")));
        };
        if !app.enabled {
            return Ok(Err(ClientAuthError::Disabled));
        }
        if !self
            .store()
            .claim_jti(app.key, jti, exp.saturating_mul(1000))?
        {
            return Ok(Err(ClientAuthError::Replayed));
        }
        Ok(Ok(ClientAuth { app, generation }))
    }
}
