//! The admin API under `/admin/v1` (never under an app prefix): provisioning of
//! applications, accounts, sessions, API tokens and remembered devices, and an
//! administrator's view of any token or session. `Authorization: Bearer <admin token>`;
//! JSON with snake_case fields in and out; errors `{"error", "message"}`.
//! Documented in docs/admin-api.md.

use super::wire::{self, Req, Resp};
use crate::domain::{
    Error, Introspection, Issued, NewAccount, NewApp, NewSession, SessionState, Sessiond,
};
use crate::model::*;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn error(status: StatusCode, message: &str) -> Resp {
    let code = match status {
        StatusCode::BAD_REQUEST => "invalid_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        _ => "internal_error",
    };
    wire::json(status, &json!({"error": code, "message": message}))
}

fn from_domain(e: Error) -> Resp {
    match e {
        Error::NotFound(what) => error(StatusCode::NOT_FOUND, &format!("{what} not found")),
        Error::Taken(what) => error(StatusCode::CONFLICT, &format!("{what} is already taken")),
        Error::Invalid(m) => error(StatusCode::BAD_REQUEST, &m),
        Error::CallerRevoked => error(StatusCode::CONFLICT, "the session was revoked meanwhile"),
        Error::Store(e) => {
            tracing::error!(error = %e, "admin: store failure");
            error(StatusCode::INTERNAL_SERVER_ERROR, "store failure")
        }
    }
}

/// An optional whole number as JSON Schema reads `"type": "integer"`: `90` and `90.0` alike
/// (a number with no fractional part); absent or `null` is `None`.
fn whole_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error as _;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64)
                .map(|f| f as u64)
        })
        .and_then(|v| u32::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            D::Error::custom(format!("{n} is not a whole number from 0 to {}", u32::MAX))
        })
}

fn body<T: serde::de::DeserializeOwned>(req: &Req) -> Result<T, Resp> {
    req.json(false)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))
}

pub async fn handle(state: &Sessiond, req: &Req) -> Resp {
    match req.bearer().map(|t| state.is_admin_token(t)) {
        Some(Ok(true)) => {}
        Some(Err(e)) => return from_domain(e),
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "a valid admin bearer token is required",
            );
        }
    }
    let segs: Vec<&str> = req.segments[2..].iter().map(String::as_str).collect();
    let m = &req.method;
    let result = match (m, segs.as_slice()) {
        (&Method::POST, ["applications"]) => create_app(state, req).await,
        (&Method::GET, ["applications"]) => list_apps(state),
        (&Method::GET, ["applications", id]) => {
            app_of(state, id).map(|a| (StatusCode::OK, app_json(&a)))
        }
        (&Method::PATCH, ["applications", id]) => patch_app(state, req, id).await,
        (&Method::POST, ["applications", id, "keys"]) => add_key(state, id).await,
        (&Method::DELETE, ["applications", id, "keys", key]) => revoke_key(state, id, key).await,
        (&Method::POST, ["accounts"]) => create_account(state, req).await,
        (&Method::GET, ["accounts", id]) => get_account(state, id),
        (&Method::GET, ["accounts", id, "sessions"]) => account_sessions(state, req, id),
        (&Method::POST, ["accounts", id, "devices"]) => add_device(state, req, id).await,
        (&Method::GET, ["accounts", id, "devices"]) => devices(state, id),
        (&Method::POST, ["sessions"]) => create_session(state, req).await,
        (&Method::POST, ["sessions", "batch"]) => create_sessions(state, req).await,
        (&Method::GET, ["sessions", id]) => get_session(state, id),
        (&Method::DELETE, ["sessions", id]) => delete_session(state, id).await,
        (&Method::POST, ["api-tokens"]) => create_api_token(state, req).await,
        (&Method::POST, ["introspect"]) => introspect(state, req),
        (&Method::GET, ["audit"]) => audit(state, req),
        (&Method::POST, ["backup"]) => backup(state, req).await,
        (&Method::POST, ["sweep"]) => sweep(state).await,
        _ => Err(error(StatusCode::NOT_FOUND, "no such admin endpoint")),
    };
    match result {
        Ok((status, v)) => wire::json(status, &v),
        Err(r) => r,
    }
}

type Out = Result<(StatusCode, Value), Resp>;

fn opt_ms(ms: Millis) -> Value {
    if ms == NEVER {
        Value::Null
    } else {
        json!(wire::iso_ms(ms))
    }
}

fn app_json(a: &Application) -> Value {
    json!({
        "id": a.anchor.as_str(),
        // Where its shapes are served (the conformance provisioning protocol asks for it).
        "base_path": format!("/apps/{}", a.anchor),
        "name": a.name,
        "enabled": a.enabled,
        "sector": a.sector.0.to_string(),
        "login_expiration_days": a.login_expiration_days,
        "connect_public_key_pem": a.connect_public_key_pem,
        "created_at": wire::iso_ms(a.created),
    })
}

fn app_of(state: &Sessiond, anchor: &str) -> Result<Application, Resp> {
    match state.app_by_anchor(anchor) {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(error(StatusCode::NOT_FOUND, "application not found")),
        Err(e) => Err(from_domain(e)),
    }
}

fn account_of(state: &Sessiond, id: &str) -> Result<Account, Resp> {
    let not_found = || error(StatusCode::NOT_FOUND, "account not found");
    let id = AccountId::parse(id).ok_or_else(not_found)?;
    match state.account(&id) {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(not_found()),
        Err(e) => Err(from_domain(e)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApp {
    id: Option<String>,
    name: String,
    sector: Option<String>,
    #[serde(default, deserialize_with = "whole_u32")]
    login_expiration_days: Option<u32>,
    connect_public_key_pem: Option<String>,
    #[serde(default = "yes")]
    generate_connect_key: bool,
}

fn yes() -> bool {
    true
}

async fn create_app(state: &Sessiond, req: &Req) -> Out {
    let b: CreateApp = body(req)?;
    let created = state
        .create_app(NewApp {
            id: b.id,
            name: b.name,
            sector_of: b.sector,
            login_expiration_days: b.login_expiration_days,
            connect_public_key_pem: b.connect_public_key_pem,
            generate_connect_key: b.generate_connect_key,
        })
        .await
        .map_err(from_domain)?;
    let mut v = app_json(&created.app);
    v["rownd_app_key"] = json!(created.rownd_app_key);
    v["rownd_app_secret"] = json!(created.rownd_app_secret);
    if let Some(pem) = created.connect_private_key_pem {
        v["connect_private_key_pem"] = json!(pem);
    }
    Ok((StatusCode::CREATED, v))
}

fn list_apps(state: &Sessiond) -> Out {
    let apps = state.store().apps().map_err(|e| from_domain(e.into()))?;
    Ok((
        StatusCode::OK,
        json!({"applications": apps.iter().map(app_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchApp {
    enabled: bool,
}

async fn patch_app(state: &Sessiond, req: &Req, id: &str) -> Out {
    let app = app_of(state, id)?;
    let b: PatchApp = body(req)?;
    let app = state
        .set_app_enabled(&app, b.enabled)
        .await
        .map_err(from_domain)?;
    Ok((StatusCode::OK, app_json(&app)))
}

async fn add_key(state: &Sessiond, id: &str) -> Out {
    let app = app_of(state, id)?;
    let (key, secret) = state.add_rownd_key(&app).await.map_err(from_domain)?;
    Ok((
        StatusCode::CREATED,
        json!({"rownd_app_key": key, "rownd_app_secret": secret}),
    ))
}

async fn revoke_key(state: &Sessiond, id: &str, key: &str) -> Out {
    let app = app_of(state, id)?;
    state
        .revoke_rownd_key(&app, key)
        .await
        .map_err(from_domain)?;
    Ok((
        StatusCode::OK,
        json!({"rownd_app_key": key, "revoked": true}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAccount {
    login: String,
    email: Option<String>,
    name: Option<String>,
    password: Option<String>,
}

fn account_json(a: &Account) -> Value {
    json!({
        "id": a.id.as_str(),
        "login": a.login,
        "email": a.email,
        "name": a.name,
        "status": match a.status { AccountStatus::Active => "active", AccountStatus::Suspended => "suspended" },
        "has_password": a.password_hash.is_some(),
        "created_at": wire::iso_ms(a.created),
    })
}

async fn create_account(state: &Sessiond, req: &Req) -> Out {
    let b: CreateAccount = body(req)?;
    let a = state
        .create_account(NewAccount {
            login: b.login,
            email: b.email,
            name: b.name,
            password: b.password,
        })
        .await
        .map_err(from_domain)?;
    Ok((StatusCode::CREATED, account_json(&a)))
}

fn get_account(state: &Sessiond, id: &str) -> Out {
    Ok((StatusCode::OK, account_json(&account_of(state, id)?)))
}

fn state_fields(v: &mut Value, st: &SessionState) {
    match st {
        SessionState::Active => v["state"] = json!("active"),
        SessionState::Expired => v["state"] = json!("expired"),
        SessionState::Revoked(r) => {
            v["state"] = json!("revoked");
            v["revoked_at"] = json!(wire::iso_ms(r.at));
            v["revoked_by"] = json!(r.by);
            v["revoked_reason"] = json!(r.reason);
        }
    }
}

fn session_json(state: &Sessiond, s: &Session, st: &SessionState) -> Result<Value, Resp> {
    let app = match s.app {
        Some(k) => state.app(k).map_err(from_domain)?,
        None => None,
    };
    let subject = match &app {
        Some(a) => Some(state.subject(&s.account, a.sector).map_err(from_domain)?),
        None => None,
    };
    let mut v = json!({
        "id": s.id.to_string(),
        "kind": s.kind.as_str(),
        "account": s.account.as_str(),
        "application": app.as_ref().map(|a| a.anchor.as_str()),
        "subject": subject,
        "device": {"label": s.device.label, "ip": s.device.ip, "user_agent": s.device.user_agent},
        "method": s.method,
        "created_at": wire::iso_ms(s.created),
        "last_used_at": wire::iso_ms(s.last_used),
        "expires_at": opt_ms(s.expires),
    });
    state_fields(&mut v, st);
    Ok(v)
}

fn account_sessions(state: &Sessiond, req: &Req, id: &str) -> Out {
    let a = account_of(state, id)?;
    let filter = match req.query_param("application") {
        Some(anchor) => Some(Some(app_of(state, &anchor)?.key)),
        None => None,
    };
    let list = state.sessions_of(&a.id, filter).map_err(from_domain)?;
    let items = list
        .iter()
        .map(|(s, st)| session_json(state, s, st))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((StatusCode::OK, json!({"sessions": items})))
}

/// `GET /admin/v1/audit[?account=ID][&before=CURSOR][&limit=N]`: revocations, newest first;
/// `next` is the cursor of the following page (`null` on the last one).
fn audit(state: &Sessiond, req: &Req) -> Out {
    let account = match req.query_param("account") {
        Some(id) => Some(account_of(state, &id)?.id),
        None => None,
    };
    let bad = |what: &str| error(StatusCode::BAD_REQUEST, what);
    let before = match req.query_param("before") {
        Some(c) => Some(
            c.parse::<u64>()
                .map_err(|_| bad("`before` must be the `next` cursor of a previous page"))?,
        ),
        None => None,
    };
    let limit = match req.query_param("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| bad("`limit` must be a number from 1 to 1000"))?,
        None => 100,
    };
    let entries = state
        .audit_log(account.as_ref(), before, limit)
        .map_err(from_domain)?;
    let mut anchors: std::collections::HashMap<AppKey, Option<String>> = Default::default();
    let mut items = Vec::with_capacity(entries.len());
    for e in &entries {
        let application = match e.app {
            Some(k) => match anchors.get(&k) {
                Some(a) => a.clone(),
                None => {
                    let a = state
                        .app(k)
                        .map_err(from_domain)?
                        .map(|a| a.anchor.as_str().to_owned());
                    anchors.insert(k, a.clone());
                    a
                }
            },
            None => None,
        };
        items.push(json!({
            "id": e.seq.to_string(),
            "at": wire::iso_ms(e.at),
            "shape": crate::domain::shape_of(&e.operation),
            "operation": e.operation,
            "credential": credential_json(&e.credential),
            "account": e.account.as_str(),
            "application": application,
            "scope": e.scope,
            "session": e.session.map(|s| s.to_string()),
            "counted": e.killed.is_some(),
            "sessions_revoked": e.killed.map(|k| k.sessions),
            "refresh_tokens_revoked": e.killed.map(|k| k.refresh_tokens),
            "devices_forgotten": e.devices_forgotten,
        }));
    }
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok((StatusCode::OK, json!({"entries": items, "next": next})))
}

/// Who asked for a revocation: `{"type": ..., "id": ...}`, an identifier, never a secret.
fn credential_json(c: &Credential) -> Value {
    match c {
        Credential::AppKey(k) => json!({"type": "app_key", "id": k}),
        Credential::ClientJwt(a) => json!({"type": "client_jwt", "id": a.as_str()}),
        Credential::Session(s) => json!({"type": "session", "id": s.to_string()}),
        Credential::ApiToken(t) => json!({"type": "api_token", "id": t}),
        Credential::Admin => json!({"type": "admin", "id": null}),
        Credential::Sessiond => json!({"type": "sessiond", "id": null}),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateDevice {
    label: String,
    #[serde(default = "default_factor")]
    factor: String,
}

fn default_factor() -> String {
    "push".into()
}

fn device_json(d: &RememberedDevice) -> Value {
    json!({"id": d.id, "label": d.label, "factor": d.factor, "created_at": wire::iso_ms(d.created)})
}

async fn add_device(state: &Sessiond, req: &Req, id: &str) -> Out {
    let a = account_of(state, id)?;
    let b: CreateDevice = body(req)?;
    let d = state
        .add_device(&a.id, &b.label, &b.factor)
        .await
        .map_err(from_domain)?;
    Ok((StatusCode::CREATED, device_json(&d)))
}

fn devices(state: &Sessiond, id: &str) -> Out {
    let a = account_of(state, id)?;
    let list = state.devices(&a.id).map_err(from_domain)?;
    Ok((
        StatusCode::OK,
        json!({"devices": list.iter().map(device_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateDeviceInfo {
    label: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    account: String,
    application: Option<String>,
    kind: SessionKind,
    #[serde(default)]
    device: Option<CreateDeviceInfo>,
}

/// Most sessions one `POST /sessions/batch` creates: its body stays well under the 64 KiB
/// body limit.
const MAX_BATCH: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSessions {
    sessions: Vec<CreateSession>,
}

fn new_session(state: &Sessiond, b: CreateSession) -> Result<NewSession, Resp> {
    let account = account_of(state, &b.account)?;
    let app = match &b.application {
        Some(anchor) => Some(app_of(state, anchor)?),
        None => None,
    };
    let d = b.device.unwrap_or_default();
    Ok(NewSession {
        account: account.id,
        app: app.as_ref().map(|a| a.key),
        kind: b.kind,
        device: DeviceInfo {
            label: d.label,
            ip: d.ip,
            user_agent: d.user_agent,
        },
        method: "admin".into(),
    })
}

fn issued_json(state: &Sessiond, issued: &Issued) -> Result<Value, Resp> {
    let mut v = session_json(state, &issued.session, &SessionState::Active)?;
    for (name, val) in [
        ("access_token", &issued.access_token),
        ("refresh_token", &issued.refresh_token),
        ("login_token", &issued.login_token),
        ("personal_access_token", &issued.personal_access_token),
        ("hub_jwt", &issued.hub_jwt),
    ] {
        if let Some(t) = val {
            v[name] = json!(t);
        }
    }
    if let Some(exp) = issued.access_expires {
        v["access_expires_at"] = json!(wire::iso_ms(exp));
    }
    Ok(v)
}

async fn create_session(state: &Sessiond, req: &Req) -> Out {
    let new = new_session(state, body(req)?)?;
    let issued = state.create_session(new).await.map_err(from_domain)?;
    Ok((StatusCode::CREATED, issued_json(state, &issued)?))
}

/// Bulk provisioning (the load generator's seeding): up to `MAX_BATCH` sessions, all or
/// none, answered in the order asked.
async fn create_sessions(state: &Sessiond, req: &Req) -> Out {
    let b: CreateSessions = body(req)?;
    if b.sessions.is_empty() || b.sessions.len() > MAX_BATCH {
        return Err(error(
            StatusCode::BAD_REQUEST,
            &format!("`sessions` takes 1 to {MAX_BATCH} entries"),
        ));
    }
    let batch = b
        .sessions
        .into_iter()
        .map(|s| new_session(state, s))
        .collect::<Result<Vec<_>, _>>()?;
    let issued = state.create_sessions(batch).await.map_err(from_domain)?;
    let items = issued
        .iter()
        .map(|i| issued_json(state, i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((StatusCode::CREATED, json!({ "sessions": items })))
}

fn get_session(state: &Sessiond, id: &str) -> Out {
    let not_found = || error(StatusCode::NOT_FOUND, "session not found");
    let sid = SessionId::parse(id).ok_or_else(not_found)?;
    match state.session(&sid).map_err(from_domain)? {
        Some((s, st)) => Ok((StatusCode::OK, session_json(state, &s, &st)?)),
        None => Err(not_found()),
    }
}

async fn delete_session(state: &Sessiond, id: &str) -> Out {
    let sid =
        SessionId::parse(id).ok_or_else(|| error(StatusCode::NOT_FOUND, "session not found"))?;
    let killed = state
        .revoke_session(
            &sid,
            "admin.revoke_session",
            "revoked by an administrator",
            Credential::Admin,
        )
        .await
        .map_err(from_domain)?;
    let (s, st) = state
        .session(&sid)
        .map_err(from_domain)?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "session not found"))?;
    let mut v = session_json(state, &s, &st)?;
    v["revoked_now"] = json!(killed);
    Ok((StatusCode::OK, v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApiToken {
    name: String,
    scopes: Vec<String>,
    #[serde(default, deserialize_with = "whole_u32")]
    rate_limit_per_minute: Option<u32>,
}

async fn create_api_token(state: &Sessiond, req: &Req) -> Out {
    let b: CreateApiToken = body(req)?;
    let (rec, token) = state
        .create_api_token(&b.name, b.scopes, b.rate_limit_per_minute)
        .await
        .map_err(from_domain)?;
    Ok((
        StatusCode::CREATED,
        json!({
            "id": rec.id,
            "name": rec.name,
            "scopes": rec.scopes,
            "rate_limit_per_minute": rec.rate_limit_per_minute,
            "token": token,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    path: String,
}

/// `POST /admin/v1/backup {"path"}`: a consistent backup into a new file on the server's
/// machine (what `sessiond backup --server` asks for).
async fn backup(state: &Sessiond, req: &Req) -> Out {
    let b: BackupBody = body(req)?;
    let started = std::time::Instant::now();
    let stats = state
        .backup(b.path.clone().into())
        .await
        .map_err(from_domain)?;
    Ok((
        StatusCode::CREATED,
        json!({
            "path": b.path,
            "trees": stats.trees,
            "entries": stats.entries,
            "files": stats.files,
            "bytes": stats.bytes,
            "duration_ms": started.elapsed().as_millis() as u64,
        }),
    ))
}

/// `POST /admin/v1/sweep`: one whole cycle of the expiry sweeper, now.
async fn sweep(state: &Sessiond) -> Out {
    let started = std::time::Instant::now();
    let sweep = state.sweep().await.map_err(from_domain)?;
    Ok((
        StatusCode::OK,
        json!({
            "sessions": sweep.swept.sessions,
            "tokens": sweep.swept.tokens,
            "jtis": sweep.swept.jtis,
            "passes": sweep.passes,
            "duration_ms": started.elapsed().as_millis() as u64,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntrospectBody {
    token: String,
}

fn introspect(state: &Sessiond, req: &Req) -> Out {
    let b: IntrospectBody = body(req)?;
    let Introspection {
        active,
        kind,
        session,
        state: st,
    } = state.introspect_any(&b.token).map_err(from_domain)?;
    let mut v = json!({"active": active});
    if let Some(k) = kind {
        v["kind"] = json!(k.as_str());
    }
    if let (Some(s), Some(st)) = (&session, &st) {
        let sj = session_json(state, s, st)?;
        v["session"] = json!(s.id.to_string());
        v["session_kind"] = sj["kind"].clone();
        v["account"] = sj["account"].clone();
        v["application"] = sj["application"].clone();
        state_fields(&mut v, st);
    }
    Ok((StatusCode::OK, v))
}
