//! The provisioning protocol (PROVISIONING.md): how the suite creates what a case needs on
//! the target, and how it asks whether a credential is alive. sessiond's admin API is its
//! reference implementation; another team implements these few calls on theirs.

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub struct Provisioner {
    pub http: reqwest::Client,
    pub base: String,
    /// e.g. `/admin/v1`
    pub prefix: String,
    pub token: String,
}

/// A failure of the provisioning protocol itself (not of a contract): exit code 3.
#[derive(Debug)]
pub struct ProvisioningError(pub String);

impl std::fmt::Display for ProvisioningError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ProvisioningError {}

impl Provisioner {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}{}", self.base, self.prefix, path);
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = &body {
            rb = rb.json(b);
        }
        let r = rb
            .send()
            .await
            .map_err(|e| ProvisioningError(format!("{method} {url}: {e}")))?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!(ProvisioningError(format!(
                "{method} {url}: {status} {text}"
            )));
        }
        serde_json::from_str(&text).map_err(|e| {
            ProvisioningError(format!("{method} {url}: answer is not JSON: {e}")).into()
        })
    }

    pub async fn create_app(
        &self,
        id: &str,
        public_key_pem: &str,
        sector: Option<&str>,
        login_expiration_days: Option<u32>,
    ) -> anyhow::Result<Value> {
        let mut b = json!({
            "id": id, "name": id, "connect_public_key_pem": public_key_pem,
        });
        if let Some(s) = sector {
            b["sector"] = json!(s);
        }
        if let Some(d) = login_expiration_days {
            b["login_expiration_days"] = json!(d);
        }
        self.call(reqwest::Method::POST, "/applications", Some(b))
            .await
    }

    pub async fn disable_app(&self, id: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::PATCH,
            &format!("/applications/{id}"),
            Some(json!({"enabled": false})),
        )
        .await
        .map(drop)
    }

    pub async fn create_account(
        &self,
        login: &str,
        email: &str,
        password: &str,
    ) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/accounts",
            Some(json!({"login": login, "email": email, "password": password})),
        )
        .await
    }

    /// `POST` of a path of the provisioning API with no body, for what a target offers
    /// beyond the protocol (the load generator's `--between-runs-post`): its JSON answer.
    pub async fn post(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, None).await
    }

    /// An account with no password or email (the load generator's: argon2id for 100,000
    /// accounts would take longer than the benchmark). PROVISIONING.md: both are optional.
    pub async fn create_account_without_password(&self, login: &str) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/accounts",
            Some(json!({"login": login})),
        )
        .await
    }

    pub async fn create_session(
        &self,
        account: &str,
        app: Option<&str>,
        kind: &str,
    ) -> anyhow::Result<Value> {
        let mut b = json!({"account": account, "kind": kind});
        if let Some(a) = app {
            b["application"] = json!(a);
        }
        self.call(reqwest::Method::POST, "/sessions", Some(b)).await
    }

    /// Creates several sessions in one call (`POST /sessions/batch`, optional in
    /// PROVISIONING.md): `Ok(None)` if the target does not have the call (404 or 405), so
    /// the caller creates them one at a time instead.
    pub async fn create_sessions(
        &self,
        entries: &[(&str, Option<&str>, &str)],
    ) -> anyhow::Result<Option<Vec<Value>>> {
        let sessions: Vec<Value> = entries
            .iter()
            .map(|(account, app, kind)| {
                let mut b = json!({"account": account, "kind": kind});
                if let Some(a) = app {
                    b["application"] = json!(a);
                }
                b
            })
            .collect();
        let url = format!("{}{}/sessions/batch", self.base, self.prefix);
        let r = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .json(&json!({ "sessions": sessions }))
            .send()
            .await
            .map_err(|e| ProvisioningError(format!("POST {url}: {e}")))?;
        let status = r.status();
        if status == reqwest::StatusCode::NOT_FOUND
            || status == reqwest::StatusCode::METHOD_NOT_ALLOWED
        {
            return Ok(None);
        }
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!(ProvisioningError(format!("POST {url}: {status} {text}")));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| ProvisioningError(format!("POST {url}: answer is not JSON: {e}")))?;
        match v["sessions"].as_array() {
            Some(items) if items.len() == entries.len() => Ok(Some(items.clone())),
            _ => bail!(ProvisioningError(format!(
                "POST {url}: the answer's `sessions` is not an array of {} answers",
                entries.len()
            ))),
        }
    }

    pub async fn create_api_token(
        &self,
        scopes: &[String],
        limit: Option<u32>,
    ) -> anyhow::Result<String> {
        let mut b = json!({"name": "conformance", "scopes": scopes});
        if let Some(l) = limit {
            b["rate_limit_per_minute"] = json!(l);
        }
        let v = self
            .call(reqwest::Method::POST, "/api-tokens", Some(b))
            .await?;
        v["token"]
            .as_str()
            .map(str::to_owned)
            .context(ProvisioningError("api-tokens answer has no `token`".into()))
    }

    pub async fn add_device(&self, account: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/accounts/{account}/devices"),
            Some(json!({"label": "conformance device"})),
        )
        .await
        .map(drop)
    }

    pub async fn device_count(&self, account: &str) -> anyhow::Result<usize> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/accounts/{account}/devices"),
                None,
            )
            .await?;
        v["devices"]
            .as_array()
            .map(Vec::len)
            .context(ProvisioningError(
                "devices answer has no `devices` array".into(),
            ))
    }

    /// Whether a token (of any kind) is alive.
    pub async fn token_active(&self, token: &str) -> anyhow::Result<bool> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/introspect",
                Some(json!({"token": token})),
            )
            .await?;
        v["active"].as_bool().context(ProvisioningError(
            "introspect answer has no boolean `active`".into(),
        ))
    }

    /// A session's state: `active`, `expired` or `revoked`.
    pub async fn session_state(&self, id: &str) -> anyhow::Result<String> {
        let v = self
            .call(reqwest::Method::GET, &format!("/sessions/{id}"), None)
            .await?;
        v["state"]
            .as_str()
            .map(str::to_owned)
            .context(ProvisioningError("session answer has no `state`".into()))
    }
}
