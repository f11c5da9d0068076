//! `sessiond serve --seed FILE`: applications, accounts, sessions and API tokens to create
//! at start, so a test suite elsewhere starts from a known state in one command. The file
//! is TOML, or JSON when its name ends in `.json`; its fields are the admin API's
//! (docs/admin-api.md), sessions name their account by login. A seed is applied once, to
//! a store with no application, account or API token; on a store that has some it is
//! skipped (a restart keeps what the last run did). `--seed-output FILE` writes what was
//! created, secrets included (owner-only), as JSON.

use crate::domain::{NewAccount, NewApp, NewSession, Sessiond};
use crate::model::{DeviceInfo, SessionKind};
use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub applications: Vec<SeedApp>,
    #[serde(default)]
    pub accounts: Vec<SeedAccount>,
    #[serde(default)]
    pub sessions: Vec<SeedSession>,
    #[serde(default)]
    pub api_tokens: Vec<SeedApiToken>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SeedApp {
    pub id: String,
    pub name: String,
    pub sector: Option<String>,
    pub login_expiration_days: Option<u32>,
    pub connect_public_key_pem: Option<String>,
    #[serde(default = "yes")]
    pub generate_connect_key: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SeedAccount {
    pub login: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SeedSession {
    /// The account's login.
    pub account: String,
    /// The application's id; absent for `idp` sessions.
    pub application: Option<String>,
    pub kind: SessionKind,
    /// How many such sessions (default 1).
    #[serde(default = "one")]
    pub count: u32,
    pub device_label: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SeedApiToken {
    pub name: String,
    pub scopes: Vec<String>,
    pub rate_limit_per_minute: Option<u32>,
}

/// Reads and parses a seed file; the error names the file and what is wrong in it.
pub fn read(path: &Path) -> anyhow::Result<Seed> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the seed file {}", path.display()))?;
    let seed: Seed = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(anyhow::Error::from)
    } else {
        toml::from_str(&text).map_err(anyhow::Error::from)
    }
    .with_context(|| format!("the seed file {}", path.display()))?;
    seed.check()
        .with_context(|| format!("the seed file {}", path.display()))?;
    Ok(seed)
}

impl Seed {
    /// How many sessions the file asks for.
    pub fn session_count(&self) -> u64 {
        self.sessions.iter().map(|s| u64::from(s.count)).sum()
    }

    /// What can be known before writing anything: every session names an account and an
    /// application of the file, as its kind needs, and nothing is named twice.
    fn check(&self) -> anyhow::Result<()> {
        let mut apps = std::collections::HashSet::new();
        for a in &self.applications {
            if !apps.insert(a.id.as_str()) {
                bail!("application {:?} is listed twice", a.id);
            }
            if let Some(s) = &a.sector
                && !self.applications.iter().any(|o| &o.id == s)
            {
                bail!(
                    "application {:?} joins the sector of {s:?}, which is not in the file",
                    a.id
                );
            }
        }
        let mut logins = std::collections::HashSet::new();
        for a in &self.accounts {
            if !logins.insert(a.login.to_lowercase()) {
                bail!("account {:?} is listed twice", a.login);
            }
        }
        for (i, s) in self.sessions.iter().enumerate() {
            let n = i + 1;
            if !logins.contains(&s.account.to_lowercase()) {
                bail!(
                    "session {n} names account {:?}, which is not in the file",
                    s.account
                );
            }
            match (&s.application, s.kind) {
                (Some(_), SessionKind::Idp) => {
                    bail!("session {n}: an `idp` session belongs to no application")
                }
                (None, SessionKind::Idp) => {}
                (None, kind) => bail!(
                    "session {n}: a `{}` session needs an application",
                    kind.as_str()
                ),
                (Some(app), _) if !apps.contains(app.as_str()) => {
                    bail!("session {n} names application {app:?}, which is not in the file")
                }
                _ => {}
            }
            if !(1..=100_000).contains(&s.count) {
                bail!("session {n}: count must be 1 to 100000");
            }
        }
        Ok(())
    }

    /// Creates everything, in file order (applications, accounts, sessions, API tokens),
    /// each write durable. Returns what was created, secrets included, or `None` when the
    /// store already holds records and the seed was skipped.
    /// `progress` is told how many sessions were created so far.
    pub async fn apply(
        &self,
        state: &Sessiond,
        progress: &dyn Fn(u64),
    ) -> anyhow::Result<Option<Value>> {
        if !state.store().has_no_records()? {
            tracing::info!("the store holds records already: seed skipped");
            return Ok(None);
        }
        let mut apps = HashMap::new();
        let mut apps_out = Vec::new();
        for a in &self.applications {
            let created = state
                .create_app(NewApp {
                    id: Some(a.id.clone()),
                    name: a.name.clone(),
                    sector_of: a.sector.clone(),
                    login_expiration_days: a.login_expiration_days,
                    connect_public_key_pem: a.connect_public_key_pem.clone(),
                    generate_connect_key: a.generate_connect_key,
                })
                .await
                .with_context(|| format!("creating application {:?}", a.id))?;
            apps_out.push(json!({
                "id": a.id,
                "rownd_app_key": created.rownd_app_key,
                "rownd_app_secret": created.rownd_app_secret,
                "connect_private_key_pem": created.connect_private_key_pem,
            }));
            apps.insert(a.id.clone(), created.app);
        }
        let mut accounts = HashMap::new();
        let mut accounts_out = Vec::new();
        for a in &self.accounts {
            let created = state
                .create_account(NewAccount {
                    login: a.login.clone(),
                    email: a.email.clone(),
                    name: a.name.clone(),
                    password: a.password.clone(),
                })
                .await
                .with_context(|| format!("creating account {:?}", a.login))?;
            accounts_out.push(json!({"login": a.login, "id": created.id.as_str()}));
            accounts.insert(a.login.to_lowercase(), created);
        }
        let mut sessions_out = Vec::new();
        for (i, s) in self.sessions.iter().enumerate() {
            let account = &accounts[&s.account.to_lowercase()];
            let app = s.application.as_ref().map(|id| &apps[id]);
            let new = || NewSession {
                account: account.id,
                app: app.map(|a| a.key),
                kind: s.kind,
                device: DeviceInfo {
                    label: s.device_label.clone(),
                    ..DeviceInfo::default()
                },
                method: "seed".into(),
            };
            let mut left = s.count as usize;
            while left > 0 {
                let n = left.min(500);
                let issued = state
                    .create_sessions((0..n).map(|_| new()).collect())
                    .await
                    .with_context(|| format!("creating session {}", i + 1))?;
                for t in issued {
                    sessions_out.push(json!({
                        "id": t.session.id.to_string(),
                        "account": s.account,
                        "account_id": account.id.as_str(),
                        "application": s.application,
                        "kind": s.kind.as_str(),
                        "access_token": t.access_token,
                        "refresh_token": t.refresh_token,
                        "login_token": t.login_token,
                        "personal_access_token": t.personal_access_token,
                        "hub_jwt": t.hub_jwt,
                    }));
                }
                left -= n;
                progress(sessions_out.len() as u64);
            }
        }
        let mut tokens_out = Vec::new();
        for t in &self.api_tokens {
            let (rec, token) = state
                .create_api_token(&t.name, t.scopes.clone(), t.rate_limit_per_minute)
                .await
                .with_context(|| format!("creating API token {:?}", t.name))?;
            tokens_out.push(json!({"name": rec.name, "id": rec.id, "token": token}));
        }
        tracing::info!(
            applications = apps_out.len(),
            accounts = accounts_out.len(),
            sessions = sessions_out.len(),
            api_tokens = tokens_out.len(),
            "seeded"
        );
        Ok(Some(json!({
            "applications": apps_out,
            "accounts": accounts_out,
            "sessions": sessions_out,
            "api_tokens": tokens_out,
        })))
    }
}

/// Writes what a seed created to `path`, owner-only (it holds secrets).
pub fn write_output(path: &Path, created: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(created)? + "\n";
    crate::files::write(path, text.as_bytes(), crate::files::PRIVATE, true)
        .with_context(|| format!("writing the seed output {}", path.display()))
}
