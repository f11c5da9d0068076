//! `sessiond admin …`: the admin API of a running server from the command line, so a
//! developer never needs curl. Each subcommand is one admin API call (docs/admin-api.md);
//! the answer is printed as pretty JSON on standard output, an error's message on standard
//! error with exit status 1.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Where the server is and how to reach it (also used by `sessiond backup --server`).
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Base URL of the running sessiond.
    #[arg(
        long,
        env = "SESSIOND_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// The server's admin token.
    #[arg(
        long,
        env = "SESSIOND_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<String>,
    /// A PEM certificate to trust for an https server (its `--tls-self-signed`
    /// certificate, say). Only certificates given here are trusted.
    #[arg(long, env = "SESSIOND_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct AdminArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Applications.
    #[command(subcommand)]
    Apps(Apps),
    /// Accounts and their remembered devices.
    #[command(subcommand)]
    Accounts(Accounts),
    /// Sessions: create, list, look at, revoke.
    #[command(subcommand)]
    Sessions(Sessions),
    /// Okta API tokens.
    #[command(subcommand, name = "api-tokens")]
    ApiTokens(ApiTokens),
    /// What any token is, and the state of its session.
    Introspect {
        /// The token (access, refresh, login, personal access token or hub JWT). One that
        /// begins with `-` (base64url has it as a digit) is still the token, not a flag.
        #[arg(allow_hyphen_values = true)]
        token: String,
    },
    /// Revocations, newest first.
    Audit {
        /// Only this account's.
        #[arg(long)]
        account: Option<String>,
        /// Entries per page (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// The `next` cursor of the previous page.
        #[arg(long)]
        before: Option<String>,
    },
    /// Run the expiry sweeper now: remove what has been dead for the tombstone retention.
    Sweep,
}

#[derive(Subcommand, Debug)]
pub enum Apps {
    /// Every application.
    List,
    /// One application.
    Get { id: String },
    /// Create an application (its Rownd secret and generated Connect key are shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Lowercase kebab-case id (generated if absent).
        #[arg(long)]
        id: Option<String>,
        /// Join the pairwise-subject sector of this application.
        #[arg(long)]
        sector: Option<String>,
        #[arg(long)]
        login_expiration_days: Option<u32>,
        /// A PEM file with the RSA public key of Connect client JWTs (else one is made).
        #[arg(long)]
        connect_public_key: Option<PathBuf>,
    },
    /// Enable or disable an application.
    Enable {
        id: String,
        #[arg(long, action = clap::ArgAction::Set, default_value_t = true)]
        enabled: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum Accounts {
    /// Create an account.
    Create {
        #[arg(long)]
        login: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        password: Option<String>,
    },
    /// One account.
    Get { id: String },
    /// Remember a device (what Okta's forgetDevices clears).
    AddDevice {
        id: String,
        #[arg(long)]
        label: String,
    },
    /// An account's remembered devices.
    Devices { id: String },
}

#[derive(Subcommand, Debug)]
pub enum Sessions {
    /// Create a session and print its tokens (shown once).
    Create {
        #[arg(long)]
        account: String,
        /// Required for login, oauth and pat; absent for idp.
        #[arg(long)]
        application: Option<String>,
        /// idp | login | oauth | pat
        #[arg(long)]
        kind: String,
    },
    /// An account's sessions with their state.
    List {
        #[arg(long)]
        account: String,
        #[arg(long)]
        application: Option<String>,
    },
    /// One session.
    Get { id: String },
    /// Revoke one session (durable before the answer).
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub enum ApiTokens {
    /// Create an Okta API token (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// An Okta scope, e.g. okta.users.manage (repeat it).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long)]
        rate_limit_per_minute: Option<u32>,
    },
}

/// A client of one server's admin API.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(c: &Connection) -> anyhow::Result<Client> {
        let token = c
            .admin_token
            .clone()
            .context("the admin token is needed: --admin-token or SESSIOND_ADMIN_TOKEN")?;
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(600));
        if let Some(path) = &c.ca_cert {
            let pem =
                std::fs::read(path).with_context(|| format!("--ca-cert {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("--ca-cert {}: not a PEM certificate", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(Client {
            base: c.server.trim_end_matches('/').to_owned(),
            token,
            http: builder.build().context("building the HTTP client")?,
        })
    }

    /// One call; the answer's JSON on a 2xx, else an error carrying the server's message.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/admin/v1{path}", self.base);
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.with_context(|| format!("{method} {url}"))?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status.is_success(),
            "{method} {url} answered {status}: {}",
            v["message"].as_str().unwrap_or("(no message)")
        );
        Ok(v)
    }
}

/// Percent-encodes one path segment or query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The call a subcommand stands for.
fn request(cmd: AdminCommand) -> anyhow::Result<(reqwest::Method, String, Option<Value>)> {
    use reqwest::Method as M;
    Ok(match cmd {
        AdminCommand::Apps(Apps::List) => (M::GET, "/applications".into(), None),
        AdminCommand::Apps(Apps::Get { id }) => {
            (M::GET, format!("/applications/{}", enc(&id)), None)
        }
        AdminCommand::Apps(Apps::Create {
            name,
            id,
            sector,
            login_expiration_days,
            connect_public_key,
        }) => {
            let pem = match connect_public_key {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("--connect-public-key {}", p.display()))?,
                ),
                None => None,
            };
            (
                M::POST,
                "/applications".into(),
                Some(json!({"name": name, "id": id, "sector": sector,
                    "login_expiration_days": login_expiration_days,
                    "connect_public_key_pem": pem})),
            )
        }
        AdminCommand::Apps(Apps::Enable { id, enabled }) => (
            M::PATCH,
            format!("/applications/{}", enc(&id)),
            Some(json!({ "enabled": enabled })),
        ),
        AdminCommand::Accounts(Accounts::Create {
            login,
            email,
            name,
            password,
        }) => (
            M::POST,
            "/accounts".into(),
            Some(json!({"login": login, "email": email, "name": name, "password": password})),
        ),
        AdminCommand::Accounts(Accounts::Get { id }) => {
            (M::GET, format!("/accounts/{}", enc(&id)), None)
        }
        AdminCommand::Accounts(Accounts::AddDevice { id, label }) => (
            M::POST,
            format!("/accounts/{}/devices", enc(&id)),
            Some(json!({ "label": label })),
        ),
        AdminCommand::Accounts(Accounts::Devices { id }) => {
            (M::GET, format!("/accounts/{}/devices", enc(&id)), None)
        }
        AdminCommand::Sessions(Sessions::Create {
            account,
            application,
            kind,
        }) => (
            M::POST,
            "/sessions".into(),
            Some(json!({"account": account, "application": application, "kind": kind})),
        ),
        AdminCommand::Sessions(Sessions::List {
            account,
            application,
        }) => (
            M::GET,
            format!(
                "/accounts/{}/sessions{}",
                enc(&account),
                application.map_or(String::new(), |a| format!("?application={}", enc(&a)))
            ),
            None,
        ),
        AdminCommand::Sessions(Sessions::Get { id }) => {
            (M::GET, format!("/sessions/{}", enc(&id)), None)
        }
        AdminCommand::Sessions(Sessions::Revoke { id }) => {
            (M::DELETE, format!("/sessions/{}", enc(&id)), None)
        }
        AdminCommand::ApiTokens(ApiTokens::Create {
            name,
            scopes,
            rate_limit_per_minute,
        }) => (
            M::POST,
            "/api-tokens".into(),
            Some(json!({"name": name, "scopes": scopes,
                "rate_limit_per_minute": rate_limit_per_minute})),
        ),
        AdminCommand::Introspect { token } => (
            M::POST,
            "/introspect".into(),
            Some(json!({ "token": token })),
        ),
        AdminCommand::Audit {
            account,
            limit,
            before,
        } => {
            let query: Vec<String> = [
                account.map(|a| format!("account={}", enc(&a))),
                limit.map(|l| format!("limit={l}")),
                before.map(|b| format!("before={}", enc(&b))),
            ]
            .into_iter()
            .flatten()
            .collect();
            let q = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            (M::GET, format!("/audit{q}"), None)
        }
        AdminCommand::Sweep => (M::POST, "/sweep".into(), None),
    })
}

/// Runs one subcommand and prints the answer.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.connection)?;
    let (method, path, body) = request(args.command)?;
    let answer = client.call(method, &path, body).await?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
