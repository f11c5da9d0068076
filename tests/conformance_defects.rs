//! Mutation testing of the conformance harness: a defect proxy sits between the suite and a
//! live sessiond, forwards everything, and injects ONE realistic defect per run (a wrong
//! status, a missing header, a token that outlives a revoke-all, ...). Each defect must make
//! the whole suite (`--level all`) exit 1 with a failure that names the broken contract; a
//! run through the proxy without a defect must pass, so the catches are the defects' doing.
//!
//! The proxy sees the provisioning traffic too: it learns the sessions the suite creates
//! (`POST /admin/v1/sessions`) and calls sessiond's admin API itself (introspect, list,
//! delete) to make state-changing defects real rather than cosmetic.

mod common;
use common::*;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sessiond_conformance::{
    LevelFilter, Options, default_cases_dir, default_specs_dir, report::Format,
};
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- the defects ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    /// A transparent proxy: the suite must pass through it.
    None,
    FlashbackRevokesOtherApps,
    FlashbackSparesCaller,
    Flashback401WithoutSuccess,
    RcKillsCurrentToken,
    RcKillsPat,
    RcSuccessAsString,
    Rc401WithoutStatusMessage,
    RcEmptyJsonBody400,
    RcTokenExpiresWithoutMillis,
    ConnectZombieAccessTokens,
    ConnectRevokedCountSnakeCase,
    ConnectReplayedJtiAccepted,
    ConnectUnknownSubject404,
    ConnectBodyBeforeAuth,
    ConnectRevokesSectorSiblings,
    RevokedRefreshStillRefreshes,
    Okta200Instead204,
    Okta204WithContentType,
    OktaNoRateLimitHeaders,
    OktaIgnoresForgetDevices,
    OktaOauthTokensDefaultTrue,
    OktaSswsNeedsSpace,
    OktaUnknownUser204,
    OktaOauthTokensKillsLogins,
    RowndSignout200Json,
    RowndIgnoresSignOutAllFalse,
    RowndForeignKey401,
}

/// A defect and where the suite must catch it: a failing case whose id contains `case`
/// with a failure message containing `needle`.
struct Expectation {
    defect: Defect,
    what: &'static str,
    case: &'static str,
    needle: &'static str,
}

const fn e(
    defect: Defect,
    what: &'static str,
    case: &'static str,
    needle: &'static str,
) -> Expectation {
    Expectation {
        defect,
        what,
        case,
        needle,
    }
}

const DEFECTS: &[Expectation] = &[
    e(
        Defect::FlashbackRevokesOtherApps,
        "flashback: revoke-all also kills the user's sessions in other apps",
        "flashback/other-apps-survive",
        "session `u_b_login` (login) is dead; it must be alive",
    ),
    e(
        Defect::RcKillsCurrentToken,
        "rocketchat: logoutOtherClients also kills the presented token",
        "rocketchat/logout-other-clients-survival-matrix",
        "session `u_current` (login) is dead; it must be alive",
    ),
    e(
        Defect::ConnectZombieAccessTokens,
        "connect: access tokens stay active after revoke-all",
        "connect/probes-after-revoke",
        "body $.status: expected \"revoked\", got \"active\"",
    ),
    e(
        Defect::Okta200Instead204,
        "okta: revoke answers 200 instead of 204",
        "okta/",
        "status: expected 204, got 200",
    ),
    e(
        Defect::Okta204WithContentType,
        "okta: 204 carries Content-Type: application/json",
        "okta/",
        "header content-type: must be absent",
    ),
    e(
        Defect::RcSuccessAsString,
        "rocketchat: \"success\": \"true\" (a string)",
        "rocketchat/",
        "body $.success: expected true, got \"true\"",
    ),
    e(
        Defect::ConnectRevokedCountSnakeCase,
        "connect: {\"revoked_count\": n}",
        "connect/",
        "{\"revoked_count\":",
    ),
    e(
        Defect::OktaNoRateLimitHeaders,
        "okta: no X-Rate-Limit-* headers",
        "okta/",
        "header x-rate-limit-limit: expected exactly one",
    ),
    e(
        Defect::RevokedRefreshStillRefreshes,
        "connect+rownd: a revoked refresh token still refreshes",
        "connect/probes-after-revoke",
        "POST /refresh: status: expected 401, got 200",
    ),
    e(
        Defect::ConnectReplayedJtiAccepted,
        "connect: a replayed jti is accepted (200 revokedCount 0)",
        "connect/replayed-jti-401",
        "status: expected 401, got 200",
    ),
    e(
        Defect::ConnectUnknownSubject404,
        "connect: an unknown subject is 404, not 200 revokedCount 0",
        "connect/unknown-subject-zero",
        "status: expected 200, got 404",
    ),
    e(
        Defect::OktaIgnoresForgetDevices,
        "okta: forgetDevices ignored (always false)",
        "okta/revoke-default-flags",
        "has 2 remembered devices; it must have 0",
    ),
    e(
        Defect::OktaOauthTokensDefaultTrue,
        "okta: oauthTokens defaults to true",
        "okta/revoke-default-flags",
        "session `u_oauth` (oauth) is dead; it must be alive",
    ),
    e(
        Defect::Rc401WithoutStatusMessage,
        "rocketchat: 401 body without status/message",
        "rocketchat/401-",
        "body $.status: missing",
    ),
    e(
        Defect::ConnectBodyBeforeAuth,
        "connect: body checked before client auth (400 with bad auth)",
        "connect/bad-auth-bad-body-401",
        "status: expected 401, got 400",
    ),
    e(
        Defect::RowndSignout200Json,
        "rownd: signout answers 200 + JSON instead of a bare 204",
        "rownd/",
        "status: expected 204, got 200",
    ),
    e(
        Defect::OktaSswsNeedsSpace,
        "okta: SSWS<token> without a space is refused (401)",
        "okta/ssws-without-space",
        "status: expected 204, got 401",
    ),
    e(
        Defect::RcEmptyJsonBody400,
        "rocketchat: empty body under application/json is 400",
        "rocketchat/empty-body-under-json-content-type",
        "status: expected 200, got 400",
    ),
    // Extras.
    e(
        Defect::FlashbackSparesCaller,
        "flashback: revoke-all spares the caller's own session",
        "flashback/caller-session-dies-too",
        "session `u_caller` (login) is alive; it must be dead",
    ),
    e(
        Defect::Flashback401WithoutSuccess,
        "flashback: 401 body without success:false",
        "flashback/401-",
        "body $.success: missing",
    ),
    e(
        Defect::RcKillsPat,
        "rocketchat: logoutOtherClients also kills personal access tokens",
        "rocketchat/",
        "session `u_pat` (pat) is dead; it must be alive",
    ),
    e(
        Defect::RcTokenExpiresWithoutMillis,
        "rocketchat: tokenExpires without milliseconds",
        "rocketchat/",
        "body $.tokenExpires: expected $iso8601-ms",
    ),
    e(
        Defect::ConnectRevokesSectorSiblings,
        "connect: revoke-all also kills same-sector sibling apps' sessions",
        "connect/other-apps-survive",
        "session `u_b` (oauth) is dead; it must be alive",
    ),
    e(
        Defect::OktaUnknownUser204,
        "okta: an unknown user is 204, not 404",
        "okta/unknown-user-404",
        "status: expected 404, got 204",
    ),
    e(
        Defect::OktaOauthTokensKillsLogins,
        "okta: oauthTokens=true also kills app login sessions",
        "okta/oauth-tokens-true",
        "session `u_login` (login) is dead; it must be alive",
    ),
    e(
        Defect::RowndIgnoresSignOutAllFalse,
        "rownd: sign_out_all false kills every session anyway",
        "rownd/bearer-sign-out-all-false-kills-presenter-only",
        "session `u_login` (login) is dead; it must be alive",
    ),
    e(
        Defect::RowndForeignKey401,
        "rownd: another app's valid key is 401, not 403",
        "rownd/other-app-key-403",
        "status: expected 403, got 401",
    ),
];

// ---- the proxy --------------------------------------------------------------------------

/// A request or an answer, read whole.
#[derive(Clone)]
struct Msg {
    status: StatusCode,
    method: Method,
    /// Path and query, as received.
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Msg {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
    fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
    /// The path's segments without an `/apps/{anchor}` prefix, and the anchor.
    fn route(&self) -> (Vec<String>, Option<String>) {
        let segs: Vec<String> = self
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if segs.len() > 2 && segs[0] == "apps" {
            (segs[2..].to_vec(), Some(segs[1].clone()))
        } else {
            (segs, None)
        }
    }
    fn set_json(&mut self, status: StatusCode, body: &Value) {
        self.status = status;
        self.body = Bytes::from(body.to_string());
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    fn answer(status: StatusCode, body: &Value) -> Msg {
        let mut m = Msg {
            status,
            method: Method::GET,
            target: String::new(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        m.set_json(status, body);
        m
    }
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

fn end_to_end(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in h {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    defect: Defect,
    /// Admin answers of `POST /admin/v1/sessions`.
    sessions: Mutex<Vec<Value>>,
    /// Access tokens a revoke-all should have killed, reported alive (ConnectZombie...).
    zombies: Mutex<HashSet<String>>,
}

impl Proxy {
    async fn forward(&self, req: &Msg) -> Msg {
        let mut rb = self
            .http
            .request(
                req.method.clone(),
                format!("{}{}", self.upstream, req.target),
            )
            .headers(end_to_end(&req.headers));
        if !req.body.is_empty() {
            rb = rb.body(req.body.clone());
        }
        match rb.send().await {
            Ok(r) => {
                let status = r.status();
                let headers = end_to_end(r.headers());
                let body = r.bytes().await.unwrap_or_default();
                Msg {
                    status,
                    method: req.method.clone(),
                    target: req.target.clone(),
                    headers,
                    body,
                }
            }
            Err(e) => Msg::answer(
                StatusCode::BAD_GATEWAY,
                &json!({"proxy_error": e.to_string()}),
            ),
        }
    }

    /// sessiond's admin API, called directly (not through the defect).
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Option<Value> {
        let mut rb = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.upstream))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    async fn introspect(&self, token: &str) -> Option<Value> {
        self.admin(Method::POST, "/introspect", Some(json!({"token": token})))
            .await
    }

    /// The account's sessions (optionally of one application) that are still active.
    async fn active_sessions(&self, account: &str, app: Option<&str>) -> Vec<Value> {
        let q = app.map(|a| format!("?application={a}")).unwrap_or_default();
        let list = self
            .admin(
                Method::GET,
                &format!("/accounts/{account}/sessions{q}"),
                None,
            )
            .await;
        list.and_then(|v| v["sessions"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s["state"] == "active")
            .collect()
    }

    async fn kill(&self, session_id: &str) {
        let _ = self
            .admin(Method::DELETE, &format!("/sessions/{session_id}"), None)
            .await;
    }

    async fn handle(&self, req: Msg) -> Msg {
        let (segs, prefix) = req.route();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let mut ans = self.with_defect(&req, &segs, prefix.as_deref()).await;
        if req.method == Method::POST
            && segs == ["admin", "v1", "sessions"]
            && ans.status == StatusCode::CREATED
            && let Some(v) = ans.json()
        {
            self.sessions.lock().expect("lock").push(v);
        }
        if self.defect == Defect::ConnectZombieAccessTokens {
            self.zombify(&req, &segs, &mut ans);
        }
        ans
    }

    /// The Connect subject and iss of a revoke-all request.
    fn connect_call(req: &Msg, prefix: Option<&str>) -> Option<(String, String)> {
        let subject = req.json()?["subject"].as_str()?.to_owned();
        let jwt = req.header("authorization")?.split_once(' ')?.1;
        let claims = jwt.split('.').nth(1)?;
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .ok()?,
        )
        .ok()?;
        let iss = prefix
            .map(str::to_owned)
            .or_else(|| claims["iss"].as_str().map(str::to_owned))?;
        Some((subject, iss))
    }

    /// Learned sessions with this subject, in (`same_app`) or out of the application.
    fn learned(&self, subject: &str, app: &str, same_app: bool) -> Vec<Value> {
        self.sessions
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s["subject"] == subject && (s["application"] == app) == same_app)
            .cloned()
            .collect()
    }

    fn zombify(&self, req: &Msg, segs: &[&str], ans: &mut Msg) {
        let token_field = match segs {
            ["introspect"] => "accessToken",
            ["admin", "v1", "introspect"] => "token",
            _ => return,
        };
        let Some(token) = req
            .json()
            .and_then(|j| j[token_field].as_str().map(str::to_owned))
        else {
            return;
        };
        if !self.zombies.lock().expect("lock").contains(&token) {
            return;
        }
        let Some(mut v) = ans.json() else { return };
        if token_field == "token" {
            v["active"] = json!(true);
            v["state"] = json!("active");
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, _| !k.starts_with("revoked"));
            }
        } else {
            v["status"] = json!("active");
        }
        let status = ans.status;
        ans.set_json(status, &v);
    }

    async fn with_defect(&self, req: &Msg, segs: &[&str], prefix: Option<&str>) -> Msg {
        use Defect as D;
        let post = req.method == Method::POST;
        let okta_revoke =
            req.method == Method::DELETE && matches!(segs, ["api", "v1", "users", _, "sessions"]);
        let okta = matches!(segs, ["api", "v1", "users", _, "sessions"])
            || matches!(segs, ["api", "v1", "sessions", _]);
        let rc = matches!(
            segs,
            ["api", "v1", "users.logoutOtherClients" | "login" | "me"]
        );
        let rc_logout = post && segs == ["api", "v1", "users.logoutOtherClients"];
        let fb_revoke_all = post && segs == ["sessions", "revoke-all"];
        let fb = matches!(segs, ["sessions", ..] | ["user", "login" | "refresh"]);
        let connect_revoke = post && segs == ["revoke-all"];
        let rownd_signout = post && matches!(segs, ["applications", _, "users", _, "signout"]);

        match self.defect {
            D::FlashbackRevokesOtherApps if fb_revoke_all => {
                let caller = self.introspect(bearer(req)).await;
                let ans = self.forward(req).await;
                if ans.status == StatusCode::OK
                    && let Some(c) = caller
                    && let (Some(acc), Some(app)) =
                        (c["account"].as_str(), c["application"].as_str())
                {
                    for s in self.active_sessions(acc, None).await {
                        if !s["application"].is_null() && s["application"] != app {
                            self.kill(s["id"].as_str().unwrap_or_default()).await;
                        }
                    }
                }
                ans
            }
            D::FlashbackSparesCaller if fb_revoke_all => {
                let caller = self.introspect(bearer(req)).await.unwrap_or_default();
                let (Some(acc), Some(app), Some(me)) = (
                    caller["account"].as_str(),
                    caller["application"].as_str(),
                    caller["session"].as_str(),
                ) else {
                    return self.forward(req).await;
                };
                if caller["active"] != true {
                    return self.forward(req).await;
                }
                for s in self.active_sessions(acc, Some(app)).await {
                    if s["id"] != me {
                        self.kill(s["id"].as_str().unwrap_or_default()).await;
                    }
                }
                Msg::answer(
                    StatusCode::OK,
                    &json!({"success": true, "message": "All sessions revoked successfully"}),
                )
            }
            D::Flashback401WithoutSuccess if fb => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::UNAUTHORIZED {
                    ans.set_json(StatusCode::UNAUTHORIZED, &json!({"error": "Unauthorized"}));
                }
                ans
            }
            D::RcKillsCurrentToken if rc_logout => {
                let ans = self.forward(req).await;
                if ans.status == StatusCode::OK
                    && let Some(t) = req.header("x-auth-token")
                    && let Some(i) = self.introspect(t).await
                    && let Some(id) = i["session"].as_str()
                {
                    self.kill(id).await;
                }
                ans
            }
            D::RcKillsPat if rc_logout => {
                let ans = self.forward(req).await;
                if ans.status == StatusCode::OK
                    && let Some(t) = req.header("x-auth-token")
                    && let Some(i) = self.introspect(t).await
                    && let (Some(acc), Some(app)) =
                        (i["account"].as_str(), i["application"].as_str())
                {
                    for s in self.active_sessions(acc, Some(app)).await {
                        if s["kind"] == "pat" {
                            self.kill(s["id"].as_str().unwrap_or_default()).await;
                        }
                    }
                }
                ans
            }
            D::RcSuccessAsString if rc_logout => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::OK
                    && let Some(mut v) = ans.json()
                {
                    v["success"] = json!("true");
                    ans.set_json(StatusCode::OK, &v);
                }
                ans
            }
            D::Rc401WithoutStatusMessage if rc => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::UNAUTHORIZED {
                    ans.set_json(
                        StatusCode::UNAUTHORIZED,
                        &json!({"success": false, "error": "Unauthorized"}),
                    );
                }
                ans
            }
            D::RcEmptyJsonBody400
                if rc_logout
                    && req.body.is_empty()
                    && req
                        .header("content-type")
                        .is_some_and(|c| c.starts_with("application/json")) =>
            {
                Msg::answer(
                    StatusCode::BAD_REQUEST,
                    &json!({"success": false, "error": "Unexpected end of JSON input"}),
                )
            }
            D::RcTokenExpiresWithoutMillis if rc_logout => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::OK
                    && let Some(mut v) = ans.json()
                    && let Some(t) = v["tokenExpires"].as_str()
                    && t.len() == 24
                {
                    v["tokenExpires"] = json!(format!("{}Z", &t[..19]));
                    ans.set_json(StatusCode::OK, &v);
                }
                ans
            }
            D::ConnectZombieAccessTokens if connect_revoke => {
                let mut live = Vec::new();
                if let Some((subject, iss)) = Self::connect_call(req, prefix) {
                    for s in self.learned(&subject, &iss, true) {
                        if let Some(t) = s["access_token"].as_str()
                            && let Some(i) = self.introspect(t).await
                            && i["active"] == true
                        {
                            live.push(t.to_owned());
                        }
                    }
                }
                let ans = self.forward(req).await;
                if ans.status == StatusCode::OK {
                    self.zombies.lock().expect("lock").extend(live);
                }
                ans
            }
            D::ConnectRevokesSectorSiblings if connect_revoke => {
                let ans = self.forward(req).await;
                if ans.status == StatusCode::OK
                    && let Some((subject, iss)) = Self::connect_call(req, prefix)
                {
                    for s in self.learned(&subject, &iss, false) {
                        self.kill(s["id"].as_str().unwrap_or_default()).await;
                    }
                }
                ans
            }
            D::ConnectRevokedCountSnakeCase if connect_revoke => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::OK
                    && let Some(v) = ans.json()
                    && let Some(n) = v.get("revokedCount")
                {
                    ans.set_json(StatusCode::OK, &json!({"revoked_count": n}));
                }
                ans
            }
            D::ConnectReplayedJtiAccepted if connect_revoke => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::UNAUTHORIZED && ans.body.is_empty() {
                    ans.set_json(StatusCode::OK, &json!({"revokedCount": 0}));
                }
                ans
            }
            D::ConnectUnknownSubject404 if connect_revoke => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::OK && ans.body.as_ref() == b"{\"revokedCount\":0}" {
                    ans.set_json(StatusCode::NOT_FOUND, &json!({"reason": "SubjectNotFound"}));
                }
                ans
            }
            D::ConnectBodyBeforeAuth
                if connect_revoke && !req.json().is_some_and(|v| v["subject"].is_string()) =>
            {
                Msg::answer(StatusCode::BAD_REQUEST, &json!({"reason": "InvalidBody"}))
            }
            D::RevokedRefreshStillRefreshes
                if post && (segs == ["refresh"] || segs == ["hub", "auth", "token"]) =>
            {
                let mut ans = self.forward(req).await;
                let connect = segs == ["refresh"];
                let refused = if connect {
                    ans.status == StatusCode::UNAUTHORIZED
                } else {
                    ans.status == StatusCode::BAD_REQUEST
                };
                let field = if connect {
                    "refreshToken"
                } else {
                    "refresh_token"
                };
                let token = req
                    .json()
                    .and_then(|v| v[field].as_str().map(str::to_owned));
                if refused
                    && let Some(t) = token
                    && let Some(i) = self.introspect(&t).await
                    && i["session"].is_string()
                {
                    let (access, refresh) = (unique_jti(), unique_jti());
                    let body = if connect {
                        json!({"accessToken": access, "refreshToken": refresh,
                               "claims": {"subject": ""}})
                    } else {
                        json!({"access_token": access, "refresh_token": refresh})
                    };
                    ans.set_json(StatusCode::OK, &body);
                }
                ans
            }
            D::Okta200Instead204 if okta_revoke => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::NO_CONTENT {
                    ans.status = StatusCode::OK;
                }
                ans
            }
            D::Okta204WithContentType if okta_revoke => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::NO_CONTENT {
                    ans.headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                }
                ans
            }
            D::OktaNoRateLimitHeaders if okta => {
                let mut ans = self.forward(req).await;
                let names: Vec<_> = ans
                    .headers
                    .keys()
                    .filter(|k| k.as_str().starts_with("x-rate-limit-"))
                    .cloned()
                    .collect();
                for k in names {
                    ans.headers.remove(k);
                }
                ans
            }
            D::OktaIgnoresForgetDevices if okta_revoke => {
                let mut r = req.clone();
                r.target = with_param(req, "forgetDevices", "false");
                self.forward(&r).await
            }
            D::OktaOauthTokensDefaultTrue
                if okta_revoke && !req.query().unwrap_or_default().contains("oauthTokens=") =>
            {
                let mut r = req.clone();
                r.target = with_param(req, "oauthTokens", "true");
                self.forward(&r).await
            }
            D::OktaOauthTokensKillsLogins if okta_revoke => {
                let ans = self.forward(req).await;
                if ans.status == StatusCode::NO_CONTENT
                    && req.query().unwrap_or_default().contains("oauthTokens=true")
                {
                    for s in self.active_sessions(segs[3], None).await {
                        if s["kind"] == "login" {
                            self.kill(s["id"].as_str().unwrap_or_default()).await;
                        }
                    }
                }
                ans
            }
            D::OktaSswsNeedsSpace
                if okta
                    && req
                        .header("authorization")
                        .is_some_and(|a| a.starts_with("SSWS") && !a.starts_with("SSWS ")) =>
            {
                let mut r = req.clone();
                r.headers.remove(header::AUTHORIZATION);
                self.forward(&r).await
            }
            D::OktaUnknownUser204 if okta_revoke => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::NOT_FOUND {
                    ans.status = StatusCode::NO_CONTENT;
                    ans.body = Bytes::new();
                    ans.headers.remove(header::CONTENT_TYPE);
                }
                ans
            }
            D::RowndSignout200Json if rownd_signout => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::NO_CONTENT {
                    ans.set_json(StatusCode::OK, &json!({"result": "ok"}));
                }
                ans
            }
            D::RowndIgnoresSignOutAllFalse if rownd_signout => {
                let mut r = req.clone();
                if let Some(mut v) = req.json()
                    && v["sign_out_all"] == false
                {
                    v["sign_out_all"] = json!(true);
                    r.body = Bytes::from(v.to_string());
                }
                self.forward(&r).await
            }
            D::RowndForeignKey401 if rownd_signout => {
                let mut ans = self.forward(req).await;
                if ans.status == StatusCode::FORBIDDEN {
                    ans.set_json(
                        StatusCode::UNAUTHORIZED,
                        &json!({"statusCode": 401, "error": "Unauthorized",
                                "message": "invalid app credentials"}),
                    );
                }
                ans
            }
            _ => self.forward(req).await,
        }
    }
}

fn bearer(req: &Msg) -> &str {
    req.header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or_default()
}

/// The request target with `name` removed from the query and `name=value` appended.
fn with_param(req: &Msg, name: &str, value: &str) -> String {
    let mut params: Vec<&str> = req
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(name))
        .collect();
    let added = format!("{name}={value}");
    params.push(&added);
    format!("{}?{}", req.path(), params.join("&"))
}

/// A running proxy; aborted on drop.
struct Running {
    base: String,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn start_proxy(upstream: &str, defect: Defect) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let proxy = Arc::new(Proxy {
        upstream: upstream.to_owned(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client"),
        defect,
        sessions: Mutex::new(Vec::new()),
        zombies: Mutex::new(HashSet::new()),
    });
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let proxy = proxy.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        let msg = Msg {
                            status: StatusCode::OK,
                            method: parts.method,
                            target: parts
                                .uri
                                .path_and_query()
                                .map_or("/".into(), |p| p.as_str().to_owned()),
                            headers: parts.headers,
                            body,
                        };
                        let ans = proxy.handle(msg).await;
                        let mut resp = hyper::Response::new(Full::new(ans.body));
                        *resp.status_mut() = ans.status;
                        *resp.headers_mut() = end_to_end(&ans.headers);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Running { base, accept }
}

// ---- running the suite -------------------------------------------------------------------

struct RunResult {
    code: i32,
    /// Failing cases: (id, failure messages).
    failed: Vec<(String, Vec<String>)>,
    /// How many of them are `documented`-level cases (a `--level documented` run sees
    /// only those).
    documented_failed: usize,
    elapsed: Duration,
    raw: String,
}

async fn run_suite(upstream: &str, defect: Defect) -> RunResult {
    let proxy = start_proxy(upstream, defect).await;
    let opts = Options {
        target: proxy.base.clone(),
        admin_token: ADMIN.into(),
        admin_prefix: "/admin/v1".into(),
        cases_dir: default_cases_dir(),
        specs_dir: default_specs_dir(),
        level: LevelFilter::All,
        shapes: Vec::new(),
        case_filter: Vec::new(),
        expect_fail: None,
        format: Format::Json,
        junit: None,
        list: false,
        concurrency: 8,
        case_timeout: Duration::from_secs(60),
    };
    let started = Instant::now();
    let mut out = Vec::new();
    let code = sessiond_conformance::run(opts, &mut out).await;
    let elapsed = started.elapsed();
    drop(proxy);
    let raw = String::from_utf8_lossy(&out).into_owned();
    let doc: Value = serde_json::from_str(raw.trim()).unwrap_or(Value::Null);
    let failing: Vec<&Value> = doc["cases"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|c| c["verdict"] != "passed")
        .collect();
    let documented_failed = failing
        .iter()
        .filter(|c| c["level"] == "documented")
        .count();
    let failed = failing
        .into_iter()
        .map(|c| {
            let msgs = c["failures"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|m| m.as_str().map(str::to_owned))
                .collect();
            (c["id"].as_str().unwrap_or("?").to_owned(), msgs)
        })
        .collect();
    RunResult {
        code,
        failed,
        documented_failed,
        elapsed,
        raw,
    }
}

fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_suite_catches_every_injected_defect() {
    let started = Instant::now();
    let srv = Server::start().await;

    // The proxy itself must be transparent.
    let clean = run_suite(&srv.base, Defect::None).await;
    assert!(
        clean.code == 0 && clean.failed.is_empty(),
        "the suite must pass through a defect-free proxy (exit {}): {:?}\n{}",
        clean.code,
        clean.failed,
        clean.raw
    );

    // The defects, a few suite runs at a time against the one sessiond (names are unique
    // per run).
    let limit = Arc::new(tokio::sync::Semaphore::new(2));
    let mut set = tokio::task::JoinSet::new();
    for (i, d) in DEFECTS.iter().enumerate() {
        let base = srv.base.clone();
        let limit = limit.clone();
        let defect = d.defect;
        // `run` borrows a `dyn Write` (not `Send`): each run gets a runtime of its own on
        // a blocking thread.
        set.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore open");
            let r = tokio::task::spawn_blocking(move || {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(run_suite(&base, defect))
            })
            .await
            .expect("suite thread");
            (i, r)
        });
    }
    let mut results: Vec<Option<RunResult>> = (0..DEFECTS.len()).map(|_| None).collect();
    while let Some(done) = set.join_next().await {
        let (i, r) = done.expect("suite task");
        results[i] = Some(r);
    }

    println!();
    println!(
        "{:<66} {:<6} {:>4} {:>5} {:>4}  matching case: failure",
        "defect", "caught", "exit", "fails", "doc"
    );
    let mut missed = Vec::new();
    for (d, r) in DEFECTS.iter().zip(results.iter().flatten()) {
        let hit = r.failed.iter().find_map(|(id, msgs)| {
            (id.contains(d.case))
                .then(|| msgs.iter().find(|m| m.contains(d.needle)))
                .flatten()
                .map(|m| (id, m))
        });
        let caught = r.code == 1 && hit.is_some();
        let shown = match (hit, r.failed.first()) {
            (Some((id, m)), _) => format!("{id}: {}", one_line(m, 110)),
            (None, Some((id, msgs))) => format!(
                "(needle not found) first: {id}: {}",
                one_line(msgs.first().map_or("", String::as_str), 110)
            ),
            (None, None) => "(no case failed)".into(),
        };
        println!(
            "{:<66} {:<6} {:>4} {:>5} {:>4}  {shown}   [{:.1}s]",
            d.what,
            if caught { "yes" } else { "NO" },
            r.code,
            r.failed.len(),
            r.documented_failed,
            r.elapsed.as_secs_f64()
        );
        if !caught {
            missed.push(format!(
                "{:?} (exit {}; wanted a failing `{}` case naming {:?}; failing: {:?})",
                d.defect,
                r.code,
                d.case,
                d.needle,
                r.failed.iter().map(|(id, _)| id).collect::<Vec<_>>()
            ));
            if r.failed.is_empty() {
                println!("  output: {}", one_line(&r.raw, 600));
            }
        }
    }
    let caught = DEFECTS.len() - missed.len();
    println!(
        "caught {caught}/{} defects ({}%); clean run {:.1}s; total {:.1}s",
        DEFECTS.len(),
        caught * 100 / DEFECTS.len(),
        clean.elapsed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        missed.is_empty(),
        "defects not caught:\n{}",
        missed.join("\n")
    );
}
