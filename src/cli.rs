//! The command line: `sessiond serve`, `demo`, `conformance`, `check`, `bench`, `backup`,
//! `restore`, `admin`. Parsing and wiring only; the server is `http::serve`, the rules are
//! in `domain`.

use crate::config::LogFormat;
use crate::domain::{self, Config, NewAccount, NewApp, NewSession, Sessiond, SystemClock};
use crate::http::{self as web, Limits, Options};
use crate::model::{DeviceInfo, Millis, SessionKind};
use crate::store::{Durability, Store, StoreOptions};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "sessiond",
    version,
    about = "A durable 'log out everywhere' backend: five public revoke-all API shapes over an embedded sled store."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the five API shapes, their companion endpoints and the admin API.
    Serve(ServeArgs),
    /// Like `serve`, after provisioning a demo application, accounts and sessions and
    /// printing a ready-to-paste request for each of the five shapes.
    Demo(ServeArgs),
    /// Run the conformance suite against an implementation at a base URL (the same as the
    /// `sessiond-conformance` binary).
    Conformance(sessiond_conformance::Args),
    /// Verify a stopped store: every record decodes and every index agrees with the
    /// records, both ways. Exit 0 if consistent, 1 if problems were found (each printed
    /// with its tree and key), 2 if the store cannot be opened (e.g. a server holds it).
    /// It opens the store as `serve` does: sled may replay its log, and sessiond's
    /// directories are made private; it changes no record.
    Check(CheckArgs),
    /// Benchmark revoke-all of one shape against an implementation at a base URL (this
    /// one, or any that speaks the shape and the conformance suite's provisioning protocol):
    /// seeds a data set, runs each concurrency for a fixed time, and reports throughput and
    /// latency percentiles as a table, JSON and SVG. BENCHMARKS.md shows how it is used.
    Bench(sessiond_loadgen::Args),
    /// Write a consistent backup of a store to a new file: of a stopped store (`--data`),
    /// or of a running server's (`--server URL --admin-token T`, which asks it through the
    /// admin API to write the file on its machine; writes wait while it runs). The file
    /// holds every record, the hub signing key and a SHA-256 checksum; keep it private.
    Backup(BackupArgs),
    /// Restore a backup into a data directory that holds no store yet: checks the file's
    /// checksum, loads it, and verifies the result as `sessiond check` does. Exit 0 when
    /// the store is restored and consistent; on any failure nothing is left behind.
    Restore(RestoreArgs),
    /// Call a running server's admin API: applications, accounts, sessions, API tokens,
    /// introspection, the audit log (docs/admin-api.md). Prints the answer as JSON.
    Admin(crate::admin_client::AdminArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    /// The backup file to create (never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Data directory of a stopped store.
    #[arg(
        long,
        env = "SESSIOND_DATA",
        default_value = "./sessiond-data",
        conflicts_with = "server"
    )]
    pub data: PathBuf,
    /// Base URL of a running sessiond to back up instead (on this machine: the path is
    /// the server's).
    #[arg(long)]
    pub server: Option<String>,
    /// The running server's admin token.
    #[arg(
        long,
        env = "SESSIOND_ADMIN_TOKEN",
        hide_env_values = true,
        requires = "server"
    )]
    pub admin_token: Option<String>,
    /// A PEM certificate to trust for an https server.
    #[arg(long, env = "SESSIOND_CA_CERT", requires = "server")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long)]
    pub from: PathBuf,
    /// Data directory to restore into: new, or holding no store.
    #[arg(long, env = "SESSIOND_DATA", default_value = "./sessiond-data")]
    pub data: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Data directory to verify.
    #[arg(long, env = "SESSIOND_DATA", default_value = "./sessiond-data")]
    pub data: PathBuf,
}

/// `serve` and `demo`. Each setting is a flag, a `SESSIOND_*` variable and a key of the
/// `--config` file (`src/config.rs`; README, "Operating sessiond").
#[derive(Args, Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServeArgs {
    /// TOML file of settings: keys are the long flag names (`listen = "0.0.0.0:8080"`,
    /// `cache-mb = 128`, `ephemeral = true`). The command line and the environment override it.
    #[arg(long, env = "SESSIOND_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the settings this command would run with (from flags, environment, file and
    /// defaults) as a configuration file, and exit without opening the store.
    #[arg(long)]
    pub print_config: bool,
    /// Log lines as human-readable text or as one JSON object per line (on standard error).
    #[arg(long, env = "SESSIOND_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// What to log: a level (`error`, `warn`, `info`, `debug`) or a `tracing` filter such as
    /// `sessiond=debug,info`. `info` logs one line per request; benchmarks use `warn`.
    #[arg(long, env = "SESSIOND_LOG", default_value = "info")]
    pub log_level: String,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "SESSIOND_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data directory (created if missing). One process per directory.
    #[arg(long, env = "SESSIOND_DATA", default_value = "./sessiond-data")]
    pub data: PathBuf,
    /// Use a fresh temporary data directory, removed at exit (overrides --data).
    #[arg(long, env = "SESSIOND_EPHEMERAL")]
    pub ephemeral: bool,
    /// Serve TLS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "SESSIOND_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "SESSIOND_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a self-signed certificate for localhost, 127.0.0.1 and ::1, made once
    /// and kept in the data directory (its path and fingerprint are printed at start).
    #[arg(long, env = "SESSIOND_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// Browser origin allowed to call the five shapes (CORS), e.g. http://localhost:3000;
    /// repeat it, or comma-separate in SESSIOND_CORS_ORIGINS; `*` allows any. None: CORS off.
    #[arg(
        long = "cors-origin",
        env = "SESSIOND_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origin: Vec<String>,
    /// Applications, accounts, sessions and API tokens to create at start (TOML, or JSON
    /// for a `.json` name), once, on a store that holds none yet (README, "Seeding").
    #[arg(long, env = "SESSIOND_SEED")]
    pub seed: Option<PathBuf>,
    /// Where to write what the seed created, secrets included, as JSON (owner-only).
    #[arg(long, env = "SESSIOND_SEED_OUTPUT", requires = "seed")]
    pub seed_output: Option<PathBuf>,
    /// Admin API bearer token. Without it, one is generated on first start and printed
    /// once; only its hash is kept.
    #[arg(long, env = "SESSIOND_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Application served without an `/apps/{anchor}` prefix (default: the first created).
    #[arg(long, env = "SESSIOND_DEFAULT_APP")]
    pub default_app: Option<String>,
    /// What an acknowledged write has been through: `fsync` (sled flush, each log write
    /// ending in fdatasync),
    /// `flush` (sled flush only) or `none` (benchmarks only).
    #[arg(long, env = "SESSIOND_DURABILITY", value_enum, default_value = "fsync")]
    pub durability: Durability,
    /// sled page cache, in MiB.
    #[arg(long, env = "SESSIOND_CACHE_MB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub cache_mb: u64,
    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "SESSIOND_MAX_BODY_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_body_bytes: u32,
    /// Concurrent connections accepted.
    #[arg(long, env = "SESSIOND_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Requests per minute of an Okta API token created without a limit of its own.
    #[arg(long, env = "SESSIOND_RATE_LIMIT_PER_MINUTE", default_value_t = 1200)]
    pub rate_limit_per_minute: u32,
    /// Flood guard of the other four shapes: requests per calendar minute carrying the same
    /// credential headers, beyond which they get a 429 with `Retry-After`. 0 turns it off
    /// (for load tests that reuse one credential).
    #[arg(
        long,
        env = "SESSIOND_CREDENTIAL_LIMIT_PER_MINUTE",
        default_value_t = 1200
    )]
    pub credential_limit_per_minute: u32,
    /// How long a revoked or expired session, and a token past its expiry, keep answering
    /// "revoked" or "expired" before the background sweeper removes them (after that:
    /// unknown). `90s`, `24h`, `7d`...; `0s` removes them at the next sweep.
    #[arg(long, env = "SESSIOND_TOMBSTONE_RETENTION", default_value = "24h")]
    pub tombstone_retention: crate::config::Duration,
    /// Time between two sweeps (the end of one and the start of the next).
    #[arg(long, env = "SESSIOND_SWEEP_INTERVAL", default_value = "1m",
          value_parser = positive_duration)]
    pub sweep_interval: crate::config::Duration,
    /// Records one sweep pass reads before it pauses for the request path.
    #[arg(long, env = "SESSIOND_SWEEP_BATCH", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sweep_batch: u32,
}

/// A duration above zero (a sweep interval of zero would never pause).
fn positive_duration(s: &str) -> Result<crate::config::Duration, String> {
    let d: crate::config::Duration = s.parse()?;
    if d.0.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

impl Cli {
    /// Where log lines go and how much is logged: `serve` and `demo` say so themselves; the
    /// other commands log warnings and errors, unless `SESSIOND_LOG` says otherwise.
    pub fn logging(&self) -> (LogFormat, String) {
        match &self.command {
            Command::Serve(a) | Command::Demo(a) => (a.log_format, a.log_level.clone()),
            _ => (
                LogFormat::Text,
                std::env::var("SESSIOND_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve_with(args, false).await,
        Command::Demo(args) => serve_with(args, true).await,
        Command::Conformance(args) => {
            let code = sessiond_conformance::run(args.into_options(), &mut std::io::stdout()).await;
            std::process::exit(code);
        }
        Command::Check(args) => std::process::exit(check(&args)),
        Command::Backup(args) => backup(&args).await,
        Command::Admin(args) => crate::admin_client::run(args).await,
        Command::Restore(args) => {
            let len = std::fs::metadata(&args.from)
                .with_context(|| format!("reading {}", args.from.display()))?
                .len();
            let bar = sessiond_loadgen::dataset::progress(len, "restoring bytes");
            let stats = Store::restore(&args.from, &args.data, &offline_options(), &|n| {
                bar.set_position(n)
            });
            bar.finish_and_clear();
            let stats = stats.with_context(|| format!("restoring {}", args.from.display()))?;
            println!(
                "restored {} entries in {} trees and {} file(s) into {}; the store checks clean",
                stats.entries,
                stats.trees,
                stats.files,
                args.data.display()
            );
            Ok(())
        }
        Command::Bench(args) => {
            let clean = sessiond_loadgen::run(args, &mut std::io::stdout()).await?;
            anyhow::ensure!(clean, "some requests got an unexpected answer (see above)");
            Ok(())
        }
    }
}

/// How the offline commands (`check`, `backup`, `restore`) open a store.
fn offline_options() -> StoreOptions {
    StoreOptions {
        cache_bytes: 64 << 20,
        durability: Durability::Fsync,
    }
}

/// `sessiond backup`: of a stopped store, or through a running server's admin API.
async fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    let out = std::path::absolute(&args.out).context("the --out path")?;
    let stats = match &args.server {
        Some(server) => {
            let client = crate::admin_client::Client::new(&crate::admin_client::Connection {
                server: server.clone(),
                admin_token: args.admin_token.clone(),
                ca_cert: args.ca_cert.clone(),
            })?;
            let v = client
                .call(
                    reqwest::Method::POST,
                    "/backup",
                    Some(serde_json::json!({ "path": out })),
                )
                .await?;
            crate::store::BackupStats {
                trees: v["trees"].as_u64().unwrap_or_default(),
                entries: v["entries"].as_u64().unwrap_or_default(),
                files: v["files"].as_u64().unwrap_or_default(),
                bytes: v["bytes"].as_u64().unwrap_or_default(),
            }
        }
        None => {
            anyhow::ensure!(
                args.data.join("store").is_dir(),
                "{} holds no sessiond store",
                args.data.display()
            );
            let store = Store::open(&args.data, &offline_options()).map_err(|e| match e {
                crate::store::StoreError::Locked(..) => anyhow::anyhow!(
                    "{e}\nto back up a running server: sessiond backup --server URL --admin-token T --out FILE"
                ),
                e => anyhow::anyhow!("opening the store in {}: {e}", args.data.display()),
            })?;
            let bar = indicatif::ProgressBar::new_spinner()
                .with_style(
                    indicatif::ProgressStyle::with_template("{spinner} {human_pos} {msg}")
                        .expect("the template is valid"),
                )
                .with_message("entries backed up");
            let written = store.backup_to(&out, &|n| bar.set_position(n));
            bar.finish_and_clear();
            written.with_context(|| format!("writing {}", out.display()))?
        }
    };
    println!(
        "backup written to {}: {} entries in {} trees, {} file(s), {} bytes",
        out.display(),
        stats.entries,
        stats.trees,
        stats.files,
        stats.bytes
    );
    Ok(())
}

/// `sessiond check`: prints a summary (and each problem) and returns the exit code.
fn check(args: &CheckArgs) -> i32 {
    if !args.data.join("store").is_dir() {
        eprintln!("error: {} holds no sessiond store", args.data.display());
        return 2;
    }
    let store = match Store::open(&args.data, &offline_options()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: opening the store in {}: {e}", args.data.display());
            return 2;
        }
    };
    let report = match store.check() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: reading the store: {e}");
            return 2;
        }
    };
    for p in &report.problems {
        println!("problem: {p}");
    }
    let shown = report.problems.len() as u64;
    if report.problem_count > shown {
        println!("… and {} more problems", report.problem_count - shown);
    }
    let trees: Vec<String> = report
        .entries
        .iter()
        .map(|t| format!("{} {}", t.tree, t.entries))
        .collect();
    let sizes: Vec<String> = report
        .entries
        .iter()
        .filter(|t| t.bytes > 0)
        .map(|t| format!("{} {}", t.tree, indicatif::DecimalBytes(t.bytes)))
        .collect();
    println!(
        "{}: {} entries checked ({}); {} problem(s)",
        if report.is_clean() {
            "ok"
        } else {
            "INCONSISTENT"
        },
        report.total_entries(),
        trees.join(", "),
        report.problem_count
    );
    println!(
        "records: {} of keys and values ({}); the directory holds them with sled's overhead and its log's free space",
        indicatif::DecimalBytes(report.total_bytes()),
        sizes.join(", ")
    );
    if report.is_clean() { 0 } else { 1 }
}

async fn serve_with(args: ServeArgs, demo: bool) -> anyhow::Result<()> {
    if args.print_config {
        print!("{}", crate::config::render(&args)?);
        return Ok(());
    }
    // A bad seed file or origin is a bad setting: it stops the start before anything opens.
    let cors = match crate::http::cors::Cors::parse(&args.cors_origin) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: --cors-origin: {e}");
            std::process::exit(2);
        }
    };
    let seed = match &args.seed {
        Some(path) => match crate::seed::read(path) {
            Ok(seed) => Some(seed),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(2);
            }
        },
        None => None,
    };
    let temp = if args.ephemeral {
        Some(tempfile::tempdir().context("creating a temporary data directory")?)
    } else {
        None
    };
    let data = temp
        .as_ref()
        .map_or(args.data.clone(), |t| t.path().to_owned());
    let store = Store::open(
        &data,
        &StoreOptions {
            cache_bytes: args.cache_mb << 20,
            durability: args.durability,
        },
    )
    .with_context(|| format!("opening the store in {}", data.display()))?;
    let config = Config {
        default_app: args.default_app.clone(),
        default_rate_limit_per_minute: args.rate_limit_per_minute,
        tombstone_retention_ms: Millis::try_from(args.tombstone_retention.0.as_millis())
            .unwrap_or(Millis::MAX),
        sweep_interval: args.sweep_interval.0,
        sweep_batch: args.sweep_batch as usize,
        ..Config::default()
    };
    let state = Sessiond::new(store, config, Arc::new(SystemClock))?;
    if let Some(token) = state
        .ensure_admin_token(args.admin_token.as_deref())
        .await?
    {
        println!("admin token (shown once; only its hash is kept): {token}");
    }
    if let Some(seed) = &seed {
        let bar = sessiond_loadgen::dataset::progress(seed.session_count(), "seeding sessions");
        let created = seed.apply(&state, &|n| bar.set_position(n)).await;
        bar.finish_and_clear();
        if let Some(created) = created.context("seeding the store")?
            && let Some(out) = &args.seed_output
        {
            crate::seed::write_output(out, &created)?;
        }
    }
    let tls = match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => Some(crate::http::tls::from_files(cert, key)?),
        (_, _, true) => Some(crate::http::tls::self_signed(&data)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    if let Some(t) = &tls {
        println!(
            "TLS certificate {} (SHA-256 {})",
            t.cert_path.display(),
            t.fingerprint
        );
    }
    let base = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
    if demo {
        provision_demo(&state, &base).await?;
    }
    println!("sessiond listening on {base} (data: {})", data.display());
    use std::io::Write;
    std::io::stdout().flush()?;
    let limits = Limits {
        max_body_bytes: args.max_body_bytes as usize,
        max_connections: args.max_connections as usize,
        per_credential_per_minute: args.credential_limit_per_minute,
        ..Limits::default()
    };
    let options = Options {
        limits,
        tls: tls.map(|t| t.config),
        cors,
    };
    web::serve_with(listener, state, options, shutdown_signal()).await?;
    tracing::info!("stopped; store flushed");
    drop(temp);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Provisions a demo application, two accounts and sessions of every kind, then prints a
/// request for each shape.
async fn provision_demo(state: &Sessiond, base: &str) -> anyhow::Result<()> {
    let suffix = crate::model::hex_encode(&domain::secrets::random::<3>());
    let created = state
        .create_app(NewApp {
            id: Some(format!("demo-{suffix}")),
            name: "Demo application".into(),
            generate_connect_key: true,
            ..NewApp::default()
        })
        .await?;
    let app = &created.app;
    let alice = state
        .create_account(NewAccount {
            login: format!("alice-{suffix}"),
            email: Some(format!("alice-{suffix}@example.com")),
            name: Some("Alice".into()),
            password: Some("correct horse battery staple".into()),
        })
        .await?;
    let session = |kind, app_key| NewSession {
        account: alice.id,
        app: app_key,
        kind,
        device: DeviceInfo {
            label: Some("demo".into()),
            ..DeviceInfo::default()
        },
        method: "demo".into(),
    };
    let login = state
        .issue(session(SessionKind::Login, Some(app.key)))
        .await?;
    let _other = state
        .issue(session(SessionKind::Login, Some(app.key)))
        .await?;
    let _oauth = state
        .issue(session(SessionKind::Oauth, Some(app.key)))
        .await?;
    let _idp = state.issue(session(SessionKind::Idp, None)).await?;
    let (_, api_token) = state
        .create_api_token(
            "demo",
            vec![
                "okta.users.manage".into(),
                "okta.sessions.manage".into(),
                "okta.sessions.read".into(),
            ],
            None,
        )
        .await?;
    let subject = state.subject(&alice.id, app.sector)?;
    let body = serde_json::json!({"subject": subject}).to_string();
    let now = state.now() / 1000;
    let private = created
        .connect_private_key_pem
        .as_deref()
        .context("the demo application has a generated Connect key")?;
    let claims = serde_json::json!({
        "iss": app.anchor.as_str(), "aud": "sudomimus-connect", "iat": now, "exp": now + 60,
        "jti": crate::model::hex_encode(&domain::secrets::random::<16>()),
        "body_sha256": base64::Engine::encode(&base64::engine::general_purpose::STANDARD,
            <sha2::Sha256 as sha2::Digest>::digest(body.as_bytes())),
    });
    let client_jwt =
        domain::jwt::sign_client_jwt(private, &claims).context("signing the demo client JWT")?;
    let a = app.anchor.as_str();
    let u = alice.id.as_str();
    println!(
        "\nDemo application `{a}` (sector subject of alice: {subject}), account alice = {u}.\n\
         Each request below revokes something; run them in any order.\n\n\
         # Rownd: sign alice out of `{a}` (204)\n\
         curl -i -X POST {base}/applications/{a}/users/{u}/signout \\\n  -H 'x-rownd-app-key: {key}' -H 'x-rownd-app-secret: {secret}' \\\n  -H 'content-type: application/json' -d '{{\"sign_out_all\": true}}'\n\n\
         # Connect: revoke-all by the application (200 {{\"revokedCount\": n}}; this JWT is valid for 60 s and once)\n\
         curl -i -X POST {base}/revoke-all -H 'content-type: application/json' \\\n  -H 'Authorization: SudomimusClientJWT {client_jwt}' \\\n  --data-raw '{body}'\n\n\
         # Flashback: the user logs out of all devices (200)\n\
         curl -i -X POST {base}/apps/{a}/sessions/revoke-all -H 'Authorization: Bearer {access}'\n\n\
         # Rocket.Chat: log out the other clients, keep this one (200)\n\
         curl -i -X POST {base}/apps/{a}/api/v1/users.logoutOtherClients \\\n  -H 'X-Auth-Token: {login_token}' -H 'X-User-Id: {u}'\n\n\
         # Okta: revoke alice's identity-provider sessions and OAuth tokens (204)\n\
         curl -i -X DELETE '{base}/api/v1/users/{u}/sessions?oauthTokens=true' -H 'Authorization: SSWS {api_token}'\n",
        key = created.rownd_app_key,
        secret = created.rownd_app_secret,
        access = login.access_token.as_deref().unwrap_or_default(),
        login_token = login.login_token.as_deref().unwrap_or_default(),
    );
    Ok(())
}
