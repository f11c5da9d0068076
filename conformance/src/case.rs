//! The contract format: one case per JSON file under `cases/<shape>/`. A case says what it
//! needs on the target (`given`), what to send and what must come back (`steps`), and what
//! must be dead or alive afterwards (`then`). Adding a case needs no Rust change.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// What the public documents and the vendors' running code say.
    Documented,
    /// sessiond's readings where the documents are silent ([PROPOSED] in contracts.md).
    Sessiond,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// `shape/name`, unique; defaults to the file's path under `cases/` without `.json`.
    #[serde(default)]
    pub id: String,
    pub title: String,
    pub level: Level,
    /// The line of the public document this case checks (seed file and section).
    pub source: String,
    /// Entries of `coverage.json` this case exercises.
    #[serde(default)]
    pub covers: Vec<String>,
    #[serde(default)]
    pub given: Given,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub then: Then,
    /// Filled in from the directory name.
    #[serde(skip)]
    pub shape: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Given {
    #[serde(default)]
    pub apps: BTreeMap<String, AppSpec>,
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountSpec>,
    /// Created in name order.
    #[serde(default)]
    pub sessions: BTreeMap<String, SessionSpec>,
    #[serde(default)]
    pub api_tokens: BTreeMap<String, ApiTokenSpec>,
    /// Account name → number of remembered devices to create.
    #[serde(default)]
    pub devices: BTreeMap<String, u32>,
    /// Application names to disable after everything is created.
    #[serde(default)]
    pub disabled_apps: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// Another application (by name in this case) whose sector this one joins.
    pub sector: Option<String>,
    pub login_expiration_days: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    pub account: String,
    pub app: Option<String>,
    /// `idp` | `login` | `oauth` | `pat`
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenSpec {
    pub scopes: Vec<String>,
    pub rate_limit_per_minute: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What this step shows, for the report.
    #[serde(default)]
    pub note: String,
    pub request: Request,
    pub expect: Expect,
    /// Run the step this many times, each expecting the same (e.g. to reach a rate limit
    /// only the last needs to match: see `expect_last_only`).
    #[serde(default)]
    pub repeat: Option<u32>,
    #[serde(default)]
    pub expect_last_only: bool,
    /// Send this step's request (a revoke-all) while refreshers rotate refresh tokens
    /// concurrently; see [`Race`].
    pub race: Option<Race>,
}

/// A revoke racing concurrent refreshes. One refresher per named session rotates that
/// session's refresh token in a loop; the step's request is sent while they run. Then: no
/// refresh sent after the revoke's answer may succeed, and no token any refresh minted may
/// be alive afterwards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Race {
    pub sessions: Vec<String>,
    /// The refresh endpoint: application (base path), path, the body field that carries
    /// the refresh token and the answer field with the rotated one.
    pub app: Option<String>,
    pub path: String,
    pub token_field: String,
    pub answer_field: String,
    /// How long the refreshers run before the revoke is sent, and after its answer.
    #[serde(default = "race_ms")]
    pub before_ms: u64,
    #[serde(default = "race_ms")]
    pub after_ms: u64,
}

fn race_ms() -> u64 {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default)]
    pub method: String,
    /// Prefix the path with this application's base path.
    pub app: Option<String>,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (sent compactly, with `Content-Type: application/json` unless a header
    /// says otherwise).
    pub json: Option<Value>,
    /// A raw body, sent as is.
    pub raw: Option<String>,
    /// Sign a Connect client JWT over the body and send it as `Authorization`.
    pub client_jwt: Option<ClientJwt>,
    /// Resend exactly what step N (0-based) sent.
    pub replay: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientJwt {
    /// The application (by name) whose anchor is `iss`.
    pub app: String,
    /// `a` (the key registered at provisioning) or `b` (a wrong key).
    #[serde(default = "key_a")]
    pub key: String,
    #[serde(default = "aud_connect")]
    pub aud: String,
    #[serde(default = "thirty")]
    pub lifetime: i64,
    /// Seconds added to "now" for `iat`.
    #[serde(default)]
    pub iat_offset: i64,
    /// The JOSE header; the published SDKs send `{}`.
    #[serde(default = "empty_header")]
    pub header: Value,
    /// Claims replaced or added after the standard ones (`null` removes one).
    #[serde(default)]
    pub claims: serde_json::Map<String, Value>,
    /// Sign over this body instead of the one sent (a `body_sha256` mismatch).
    pub body_for_hash: Option<String>,
    /// Replace the signature with this (base64url) text.
    pub signature: Option<String>,
    /// Put this scheme instead of `SudomimusClientJWT`.
    pub scheme: Option<String>,
}

fn key_a() -> String {
    "a".into()
}
fn aud_connect() -> String {
    "sudomimus-connect".into()
}
fn thirty() -> i64 {
    30
}
fn empty_header() -> Value {
    Value::Object(Default::default())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: u16,
    /// Header name → expected value: a string (templated; `*` = present; a trailing `*` =
    /// prefix), or `null` = must be absent.
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    /// The body must be zero bytes.
    #[serde(default)]
    pub empty_body: bool,
    /// The exact bytes of the body (templated).
    pub raw: Option<String>,
    /// The body as JSON, equal to this (templated strings; matchers such as `$string`).
    pub json: Option<Value>,
    /// The body as JSON has at least these members with these values.
    pub json_contains: Option<Value>,
    /// Also validate the answer against the shape's OpenAPI spec (status documented, body
    /// valid). Off only for answers no public document describes (405, 413, ...).
    #[serde(default = "yes")]
    pub spec: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Then {
    /// Sessions (by name) every credential of which must be dead.
    #[serde(default)]
    pub dead: Vec<String>,
    /// Sessions (by name) every credential of which must be alive.
    #[serde(default)]
    pub alive: Vec<String>,
    /// Account name → remembered devices left.
    #[serde(default)]
    pub devices: BTreeMap<String, usize>,
}

impl Case {
    /// Checks that every name the case uses is defined in its `given`: a malformed case is
    /// a usage error, found before anything is sent.
    pub fn validate(&self) -> Result<(), String> {
        let g = &self.given;
        let app = |a: &str, what: &str| {
            if g.apps.contains_key(a) {
                Ok(())
            } else {
                Err(format!("{what} names unknown app `{a}`"))
            }
        };
        let account = |a: &str, what: &str| {
            if g.accounts.contains_key(a) {
                Ok(())
            } else {
                Err(format!("{what} names unknown account `{a}`"))
            }
        };
        for (name, spec) in &g.apps {
            if let Some(other) = &spec.sector {
                app(other, &format!("app `{name}`"))?;
            }
        }
        for (name, spec) in &g.sessions {
            account(&spec.account, &format!("session `{name}`"))?;
            if let Some(a) = &spec.app {
                app(a, &format!("session `{name}`"))?;
            }
        }
        for name in g.devices.keys().chain(self.then.devices.keys()) {
            account(name, "devices")?;
        }
        for name in &g.disabled_apps {
            app(name, "disabled_apps")?;
        }
        for name in self.then.dead.iter().chain(&self.then.alive) {
            if !g.sessions.contains_key(name) {
                return Err(format!("`then` names unknown session `{name}`"));
            }
        }
        if self.steps.is_empty() {
            return Err("a case needs at least one step".into());
        }
        for (i, step) in self.steps.iter().enumerate() {
            let r = &step.request;
            if let Some(n) = r.replay {
                if n >= i {
                    return Err(format!(
                        "step {} replays step {n}, which has not run yet",
                        i + 1
                    ));
                }
                continue;
            }
            if reqwest::Method::from_bytes(r.method.as_bytes()).is_err() || r.method.is_empty() {
                return Err(format!("step {}: bad method `{}`", i + 1, r.method));
            }
            if !r.path.starts_with('/') {
                return Err(format!("step {}: the path must start with `/`", i + 1));
            }
            if let Some(a) = &r.app {
                app(a, &format!("step {}", i + 1))?;
            }
            if let Some(cj) = &r.client_jwt {
                app(&cj.app, &format!("step {} client_jwt", i + 1))?;
            }
            if let Some(race) = &step.race {
                if let Some(a) = &race.app {
                    app(a, &format!("step {} race", i + 1))?;
                }
                for name in &race.sessions {
                    if !g.sessions.contains_key(name) {
                        return Err(format!("step {} races unknown session `{name}`", i + 1));
                    }
                }
            }
            if r.json.is_some() && r.raw.is_some() {
                return Err(format!("step {}: give `json` or `raw`, not both", i + 1));
            }
        }
        Ok(())
    }
}

/// Loads every `*.json` under `dir/<shape>/`, sorted by id.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let mut out = Vec::new();
    let mut shapes: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    shapes.sort_by_key(|e| e.path());
    for shape in shapes.into_iter().filter(|e| e.path().is_dir()) {
        let shape_name = shape.file_name().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(shape.path())?.collect::<Result<_, _>>()?;
        files.sort_by_key(|e| e.path());
        for f in files {
            let p = f.path();
            if p.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&p)?;
            let mut case: Case =
                serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if case.id.is_empty() {
                case.id = format!("{shape_name}/{stem}");
            }
            case.shape = shape_name.clone();
            case.validate()
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            out.push(case);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
