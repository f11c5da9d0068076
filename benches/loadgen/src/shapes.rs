//! What the workers send: one revoke-all per shape (the timed operation), the trivial
//! endpoint that measures the load generator's own ceiling, and the optional mix of token
//! checks and refreshes that runs beside the revocations.

use crate::dataset::Dataset;
use crate::load::{Req, Source};
use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The revoke-all shapes the load generator drives. Connect is not among them: each of its
/// requests needs a freshly signed RS256 client JWT (unique `jti`, 60 s lifetime), and
/// signing costs the load generator more CPU than the server spends revoking.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// `POST /applications/{app}/users/{user}/signout` with the app's key and secret: every
    /// token of one (account, application) pair.
    Rownd,
    /// `POST /sessions/revoke-all` with a bearer access token of the pair: every session of
    /// the pair, the caller's included.
    Flashback,
    /// `POST /api/v1/users.logoutOtherClients` with a login token of the pair: every other
    /// login token of the pair.
    Rocketchat,
    /// `DELETE /api/v1/users/{id}/sessions?oauthTokens=true`: every identity-provider session
    /// and every OAuth token of one account, in all its applications (seeds OAuth sessions).
    Okta,
}

impl std::fmt::Display for Shape {
    /// The name on the command line and in the JSON report.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        let v = self.to_possible_value().expect("no variant is skipped");
        f.write_str(v.get_name())
    }
}

impl Shape {
    /// What one timed revoke covers: a pair, or (Okta) a whole account.
    pub fn per_account(self) -> bool {
        self == Shape::Okta
    }

    /// The session kind the data set is made of.
    pub fn session_kind(self) -> &'static str {
        match self {
            Shape::Okta => "oauth",
            _ => "login",
        }
    }

    fn expected(self) -> StatusCode {
        match self {
            Shape::Rownd | Shape::Okta => StatusCode::NO_CONTENT,
            Shape::Flashback | Shape::Rocketchat => StatusCode::OK,
        }
    }
}

fn header(name: &'static str, value: &str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(name),
        HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid")),
    )
}

/// Revokes the units of `order` in turn, from a cursor shared by every worker of the run,
/// so no unit is revoked twice in one run.
pub struct Revoke {
    pub shape: Shape,
    pub ds: Arc<Dataset>,
    pub order: Arc<Vec<usize>>,
    pub cursor: Arc<AtomicUsize>,
    /// Okta: the API token (`SSWS`).
    pub api_token: Option<String>,
}

impl Source for Revoke {
    fn next(&mut self) -> Option<Req> {
        let i = self.cursor.fetch_add(1, Ordering::Relaxed);
        let unit = *self.order.get(i)?;
        let ds = &self.ds;
        let req = match self.shape {
            Shape::Okta => Req {
                method: Method::DELETE,
                path: format!(
                    "/api/v1/users/{}/sessions?oauthTokens=true",
                    ds.accounts[unit]
                ),
                headers: vec![
                    header(
                        "authorization",
                        &format!("SSWS {}", self.api_token.as_deref().unwrap_or_default()),
                    ),
                    header("accept", "application/json"),
                ],
                body: Bytes::new(),
            },
            shape => {
                let app = &ds.apps[unit % ds.apps.len()];
                let account = &ds.accounts[unit / ds.apps.len()];
                let tokens = &ds.pairs[unit];
                match shape {
                    Shape::Rownd => Req {
                        method: Method::POST,
                        path: format!(
                            "{}/applications/{}/users/{account}/signout",
                            app.base_path, app.id
                        ),
                        headers: vec![
                            header("x-rownd-app-key", &app.rownd_key),
                            header("x-rownd-app-secret", &app.rownd_secret),
                        ],
                        body: Bytes::new(),
                    },
                    Shape::Flashback => Req {
                        method: Method::POST,
                        path: format!("{}/sessions/revoke-all", app.base_path),
                        headers: vec![(
                            AUTHORIZATION,
                            HeaderValue::from_str(&format!(
                                "Bearer {}",
                                tokens.access.as_deref().unwrap_or_default()
                            ))
                            .ok()?,
                        )],
                        body: Bytes::from_static(b"{}"),
                    },
                    _ => Req {
                        method: Method::POST,
                        path: format!("{}/api/v1/users.logoutOtherClients", app.base_path),
                        headers: vec![
                            header("x-user-id", account),
                            header("x-auth-token", tokens.login.as_deref().unwrap_or_default()),
                        ],
                        body: Bytes::new(),
                    },
                }
            }
        };
        Some(req)
    }

    fn answer(&mut self, status: StatusCode, _body: &Bytes) -> bool {
        status == self.shape.expected()
    }
}

/// The load generator's own ceiling: a trivial endpoint over the same connections.
pub struct Ceiling {
    pub path: String,
}

impl Source for Ceiling {
    fn next(&mut self) -> Option<Req> {
        Some(Req {
            method: Method::GET,
            path: self.path.clone(),
            headers: Vec::new(),
            body: Bytes::new(),
        })
    }

    fn answer(&mut self, status: StatusCode, _body: &Bytes) -> bool {
        status.is_success()
    }
}

/// Token checks beside the revocations: the provisioning protocol's `POST /introspect` on
/// an access token of a pair picked at random (alive or revoked: both are answers).
pub struct Check {
    pub ds: Arc<Dataset>,
    pub admin_prefix: String,
    pub admin_token: String,
    pub rng: u64,
}

impl Source for Check {
    fn next(&mut self) -> Option<Req> {
        // xorshift64: not for secrets, only to spread the checks.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let n = self.ds.pairs.len();
        let pair = &self.ds.pairs[usize::try_from(self.rng % n as u64).unwrap_or(0)];
        let token = pair.access.as_deref().or(pair.login.as_deref())?;
        Some(Req {
            method: Method::POST,
            path: format!("{}/introspect", self.admin_prefix),
            headers: vec![header(
                "authorization",
                &format!("Bearer {}", self.admin_token),
            )],
            body: Bytes::from(serde_json::json!({ "token": token }).to_string()),
        })
    }

    fn answer(&mut self, status: StatusCode, body: &Bytes) -> bool {
        status == StatusCode::OK
            && serde_json::from_slice::<serde_json::Value>(body)
                .is_ok_and(|v| v["active"].is_boolean())
    }
}

/// Refreshes beside the revocations: Rownd's `POST /hub/auth/token` with rotation, over
/// pairs no revoke of the run touches; each worker keeps the new refresh token it is given.
pub struct Refresh {
    pub tokens: Tokens,
    pub at: usize,
}

/// A refresh worker's (application base path, current refresh token) pairs, kept from one
/// run to the next.
pub type Tokens = Arc<std::sync::Mutex<Vec<(String, String)>>>;

impl Source for Refresh {
    fn next(&mut self) -> Option<Req> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.is_empty() {
            return None;
        }
        self.at = (self.at + 1) % tokens.len();
        let (base, token) = &tokens[self.at];
        Some(Req {
            method: Method::POST,
            path: format!("{base}/hub/auth/token"),
            headers: Vec::new(),
            body: Bytes::from(serde_json::json!({ "refresh_token": token }).to_string()),
        })
    }

    fn answer(&mut self, status: StatusCode, body: &Bytes) -> bool {
        let fresh = (status == StatusCode::OK)
            .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
            .flatten()
            .and_then(|v| v["refresh_token"].as_str().map(str::to_owned));
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        match fresh {
            Some(t) => {
                tokens[self.at].1 = t;
                true
            }
            None => {
                // The family is dead (it should not be: these pairs are never revoked);
                // stop presenting it.
                tokens.swap_remove(self.at);
                false
            }
        }
    }
}
