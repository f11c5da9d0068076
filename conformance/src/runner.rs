//! Running one case: provision its `given`, send its steps, compare what came back with
//! what the case expects, then probe what must be dead or alive. The one place that sends
//! contract requests.

use crate::case::{Case, ClientJwt, Expect, Request};
use crate::provision::{Provisioner, ProvisioningError};
use anyhow::{Context, anyhow};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::time::{Duration, Instant};

/// Everything a run shares: the target, the provisioning client, the signing keys.
pub struct Target {
    pub base: String,
    pub specs: crate::spec::Specs,
    /// `--level documented`: answers only our readings describe are not failures.
    pub documented_only: bool,
    pub http: reqwest::Client,
    pub provisioner: Provisioner,
    pub run_id: String,
    pub key_a_private: String,
    pub key_a_public: String,
    pub key_b_private: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Contract failures, each naming what broke.
    Fail(Vec<String>),
    /// The target could not be reached or provisioned.
    Error(String),
}

#[derive(Debug, Clone)]
pub struct CaseResult {
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// A request as sent, kept for `replay`.
#[derive(Debug, Clone)]
struct Sent {
    method: reqwest::Method,
    url: String,
    /// The path relative to the application's base path, without the query.
    rel_path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct World {
    vars: Value,
    sessions: Map<String, Value>,
    sent: Vec<Sent>,
    counter: u64,
    prefix: String,
}

impl World {
    fn unique(&mut self) -> String {
        self.counter += 1;
        format!("{}-u{}", self.prefix, self.counter)
    }

    fn lookup(&self, path: &str) -> Option<Value> {
        let mut v = &self.vars;
        for part in path.split('.') {
            v = match v {
                Value::Object(m) => m.get(part)?,
                Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v.clone())
    }

    /// Replaces `{a.b.c}` with the value at that path (`{unique}`: a fresh string). A
    /// string that is exactly one placeholder becomes the value itself (a number stays one).
    fn fill(&mut self, s: &str) -> anyhow::Result<Value> {
        if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}'))
            && is_placeholder(inner)
        {
            return self.resolve(inner);
        }
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            match after.find('}') {
                Some(end) if is_placeholder(&after[..end]) => {
                    match self.resolve(&after[..end])? {
                        Value::String(v) => out.push_str(&v),
                        other => out.push_str(&other.to_string()),
                    }
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(Value::String(out))
    }

    fn resolve(&mut self, name: &str) -> anyhow::Result<Value> {
        if name == "unique" {
            return Ok(Value::String(self.unique()));
        }
        self.lookup(name)
            .ok_or_else(|| anyhow!("the case names `{{{name}}}`, which is not defined"))
    }

    fn fill_value(&mut self, v: &Value) -> anyhow::Result<Value> {
        Ok(match v {
            Value::String(s) => self.fill(s)?,
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.fill_value(x))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => {
                let mut o = Map::new();
                for (k, x) in m {
                    o.insert(k.clone(), self.fill_value(x)?);
                }
                Value::Object(o)
            }
            other => other.clone(),
        })
    }

    fn fill_str(&mut self, s: &str) -> anyhow::Result<String> {
        Ok(match self.fill(s)? {
            Value::String(s) => s,
            other => other.to_string(),
        })
    }
}

fn is_placeholder(s: &str) -> bool {
    s == "unique"
        || (s.contains('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Target {
    pub async fn run(&self, case: &Case, index: usize) -> CaseResult {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout, self.run_inner(case, index)).await {
            Ok(Ok(fails)) if fails.is_empty() => Outcome::Pass,
            Ok(Ok(fails)) => Outcome::Fail(fails),
            Ok(Err(e)) if e.downcast_ref::<ProvisioningError>().is_some() => {
                Outcome::Error(format!("provisioning failed: {e:#}"))
            }
            Ok(Err(e)) if is_unreachable(&e) => {
                Outcome::Error(format!("target unreachable: {e:#}"))
            }
            Ok(Err(e)) => Outcome::Fail(vec![format!("{e:#}")]),
            Err(_) => Outcome::Fail(vec![format!(
                "the case took longer than {:?}",
                self.timeout
            )]),
        };
        CaseResult {
            outcome,
            elapsed: started.elapsed(),
        }
    }

    async fn run_inner(&self, case: &Case, index: usize) -> anyhow::Result<Vec<String>> {
        let mut w = self.provision(case, index).await?;
        let mut fails = Vec::new();
        for (i, step) in case.steps.iter().enumerate() {
            if let Some(race) = &step.race {
                let label = format!("step {} (revoke racing refreshes)", i + 1);
                for f in self.race(&mut w, &step.request, &step.expect, race).await? {
                    fails.push(format!("{label}: {f}"));
                }
                continue;
            }
            let times = step.repeat.unwrap_or(1).max(1);
            for n in 0..times {
                let sent = self.build(&mut w, &step.request).await?;
                let (status, headers, body) = self.send(&sent).await?;
                if n == 0 {
                    w.sent.push(sent);
                }
                let json: Option<Value> = serde_json::from_slice(&body).ok();
                if let Some(steps) = w.vars["step"].as_array_mut() {
                    if n == 0 {
                        steps.push(
                            json!({"status": status, "json": json.clone().unwrap_or(Value::Null)}),
                        );
                    } else if let Some(last) = steps.last_mut() {
                        *last =
                            json!({"status": status, "json": json.clone().unwrap_or(Value::Null)});
                    }
                }
                if step.expect_last_only && n + 1 < times {
                    continue;
                }
                let label = if step.note.is_empty() {
                    format!("step {}", i + 1)
                } else {
                    format!("step {} ({})", i + 1, step.note)
                };
                let what = format!(
                    "{} {}",
                    w.sent[i].method,
                    w.sent[i].url.trim_start_matches(&self.base)
                );
                for f in check(&mut w, &step.expect, status, &headers, &body)? {
                    fails.push(format!("{label}: {what}: {f}"));
                }
                if step.expect.spec {
                    let s = &w.sent[i];
                    let answer = crate::spec::Answer {
                        status,
                        headers: &headers,
                        body: &body,
                    };
                    let request = (s.method.as_str(), s.rel_path.as_str());
                    for f in self
                        .specs
                        .check(&case.shape, request, answer, self.documented_only)
                    {
                        fails.push(format!("{label}: {what}: {f}"));
                    }
                }
            }
        }
        fails.extend(self.probe(case, &mut w).await?);
        Ok(fails)
    }

    /// Runs a revoke while refreshers rotate tokens; returns the broken expectations.
    async fn race(
        &self,
        w: &mut World,
        request: &Request,
        expect: &Expect,
        race: &crate::case::Race,
    ) -> anyhow::Result<Vec<String>> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let base_path = match &race.app {
            Some(a) => w
                .lookup(&format!("app.{a}.base_path"))
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            None => String::new(),
        };
        let url = format!("{}{}{}", self.base, base_path, race.path);
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for name in &race.sessions {
            let mut token = w.sessions[name]["refresh_token"]
                .as_str()
                .context(format!("race: session `{name}` has no refresh_token"))?
                .to_owned();
            let (http, url, stop) = (self.http.clone(), url.clone(), stop.clone());
            let (field, answer) = (race.token_field.clone(), race.answer_field.clone());
            tasks.push(tokio::spawn(async move {
                // (sent at, succeeded, minted token)
                let mut log: Vec<(Instant, bool, Option<String>)> = Vec::new();
                while !stop.load(Ordering::SeqCst) && log.len() < 10_000 {
                    let sent = Instant::now();
                    let r = http
                        .post(&url)
                        .json(&json!({ field.as_str(): token }))
                        .send()
                        .await;
                    let Ok(r) = r else { break };
                    let ok = r.status().is_success();
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    let minted = v[answer.as_str()].as_str().map(str::to_owned);
                    log.push((sent, ok, minted.clone()));
                    match (ok, minted) {
                        (true, Some(t)) => token = t,
                        _ => break,
                    }
                }
                log
            }));
        }
        tokio::time::sleep(Duration::from_millis(race.before_ms)).await;
        let sent = self.build(w, request).await?;
        let (status, headers, body) = self.send(&sent).await?;
        let answered = Instant::now();
        w.sent.push(sent);
        let mut fails = check(w, expect, status, &headers, &body)?;
        tokio::time::sleep(Duration::from_millis(race.after_ms)).await;
        stop.store(true, Ordering::SeqCst);
        let mut before = 0usize;
        let mut minted = Vec::new();
        for t in tasks {
            for (sent_at, ok, token) in t.await.context("a refresher panicked")? {
                if ok && sent_at > answered {
                    fails.push(format!(
                        "a refresh sent {} ms after the revoke-all's answer succeeded",
                        sent_at.duration_since(answered).as_millis()
                    ));
                }
                if ok && sent_at < answered {
                    before += 1;
                }
                if let (true, Some(tok)) = (ok, token) {
                    minted.push(tok);
                }
            }
        }
        if before == 0 {
            fails.push("no refresh succeeded before the revoke: the race exercised nothing".into());
        }
        let mut alive = 0;
        for t in &minted {
            if self.provisioner.token_active(t).await? {
                alive += 1;
            }
        }
        if alive > 0 {
            fails.push(format!(
                "{alive} of the {} refresh tokens minted during the race are alive after the revoke-all",
                minted.len()
            ));
        }
        Ok(fails)
    }

    async fn provision(&self, case: &Case, index: usize) -> anyhow::Result<World> {
        let p = &self.provisioner;
        let prefix = format!("cf{}-{}", self.run_id, index);
        let mut vars =
            json!({"app": {}, "account": {}, "session": {}, "api_token": {}, "step": []});
        // Applications that join another's sector come after it.
        let mut order: Vec<_> = case.given.apps.iter().collect();
        order.sort_by_key(|(_, spec)| spec.sector.is_some());
        for (name, spec) in order {
            let anchor = format!("{prefix}-{}", name.to_lowercase());
            let sector = match &spec.sector {
                Some(other) => Some(
                    vars["app"][other]["id"]
                        .as_str()
                        .context(format!(
                            "app `{name}` joins the sector of unknown app `{other}`"
                        ))?
                        .to_owned(),
                ),
                None => None,
            };
            let mut v = p
                .create_app(
                    &anchor,
                    &self.key_a_public,
                    sector.as_deref(),
                    spec.login_expiration_days,
                )
                .await?;
            if v["base_path"].is_null() {
                v["base_path"] = json!("");
            }
            v["anchor"] = json!(anchor);
            vars["app"][name] = v;
        }
        for name in case.given.accounts.keys() {
            let login = format!("{prefix}-{}", name.to_lowercase());
            let email = format!("{login}@conformance.test");
            let password = format!("pw-{login}");
            let mut v = p.create_account(&login, &email, &password).await?;
            v["login"] = json!(login);
            v["email"] = json!(email);
            v["password"] = json!(password);
            vars["account"][name] = v;
        }
        let mut sessions = Map::new();
        for (name, spec) in &case.given.sessions {
            let account = vars["account"][&spec.account]["id"]
                .as_str()
                .context(format!(
                    "session `{name}` names unknown account `{}`",
                    spec.account
                ))?
                .to_owned();
            let app = match &spec.app {
                Some(a) => Some(
                    vars["app"][a]["anchor"]
                        .as_str()
                        .context(format!("session `{name}` names unknown app `{a}`"))?
                        .to_owned(),
                ),
                None => None,
            };
            let v = p
                .create_session(&account, app.as_deref(), &spec.kind)
                .await?;
            vars["session"][name] = v.clone();
            sessions.insert(name.clone(), v);
        }
        for (name, spec) in &case.given.api_tokens {
            let t = p
                .create_api_token(&spec.scopes, spec.rate_limit_per_minute)
                .await?;
            vars["api_token"][name] = json!(t);
        }
        for (name, n) in &case.given.devices {
            let id = vars["account"][name]["id"]
                .as_str()
                .context("devices of an unknown account")?
                .to_owned();
            for _ in 0..*n {
                p.add_device(&id).await?;
            }
        }
        for name in &case.given.disabled_apps {
            let anchor = vars["app"][name]["anchor"]
                .as_str()
                .context("disabling an unknown app")?
                .to_owned();
            p.disable_app(&anchor).await?;
        }
        Ok(World {
            vars,
            sessions,
            sent: Vec::new(),
            counter: 0,
            prefix,
        })
    }

    async fn build(&self, w: &mut World, r: &Request) -> anyhow::Result<Sent> {
        if let Some(n) = r.replay {
            return w
                .sent
                .get(n)
                .cloned()
                .context(format!("replay of step {n}, which has not run"));
        }
        let base_path = match &r.app {
            Some(a) => w
                .lookup(&format!("app.{a}.base_path"))
                .and_then(|v| v.as_str().map(str::to_owned))
                .context(format!("the request names unknown app `{a}`"))?,
            None => String::new(),
        };
        let path = w.fill_str(&r.path)?;
        let rel_path = path.split('?').next().unwrap_or_default().to_owned();
        let url = format!("{}{}{}", self.base, base_path, path);
        let mut headers = Vec::new();
        for (k, v) in &r.headers {
            headers.push((k.to_ascii_lowercase(), w.fill_str(v)?));
        }
        let body: Vec<u8> = match (&r.json, &r.raw) {
            (Some(j), _) => {
                if !headers.iter().any(|(k, _)| k == "content-type") {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                w.fill_value(j)?.to_string().into_bytes()
            }
            (None, Some(raw)) => w.fill_str(raw)?.into_bytes(),
            (None, None) => Vec::new(),
        };
        if let Some(cj) = &r.client_jwt {
            let jwt = self.client_jwt(w, cj, &body)?;
            let scheme = cj
                .scheme
                .clone()
                .unwrap_or_else(|| "SudomimusClientJWT".into());
            headers.retain(|(k, _)| k != "authorization");
            headers.push(("authorization".into(), format!("{scheme} {jwt}")));
        }
        let method = reqwest::Method::from_bytes(r.method.as_bytes())
            .map_err(|_| anyhow!("bad method `{}`", r.method))?;
        Ok(Sent {
            method,
            url,
            rel_path,
            headers,
            body,
        })
    }

    fn client_jwt(&self, w: &mut World, cj: &ClientJwt, body: &[u8]) -> anyhow::Result<String> {
        let iss = w
            .lookup(&format!("app.{}.anchor", cj.app))
            .and_then(|v| v.as_str().map(str::to_owned))
            .context(format!("client_jwt names unknown app `{}`", cj.app))?;
        let hashed: Vec<u8> = match &cj.body_for_hash {
            Some(b) => w.fill_str(b)?.into_bytes(),
            None => body.to_vec(),
        };
        let iat = now_s() + cj.iat_offset;
        let mut claims = json!({
            "iss": iss, "aud": cj.aud, "iat": iat, "exp": iat + cj.lifetime,
            "jti": w.unique(),
            "body_sha256": STANDARD.encode(sha2::Sha256::digest(&hashed)),
        });
        for (k, v) in &cj.claims {
            let v = w.fill_value(v)?;
            if v.is_null() {
                claims
                    .as_object_mut()
                    .expect("claims are an object")
                    .remove(k);
            } else {
                claims[k] = v;
            }
        }
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(cj.header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = match &cj.signature {
            Some(s) => s.clone(),
            None => {
                let pem = if cj.key == "b" {
                    &self.key_b_private
                } else {
                    &self.key_a_private
                };
                URL_SAFE_NO_PAD.encode(crate::sign_rs256(pem, signed.as_bytes())?)
            }
        };
        Ok(format!("{signed}.{sig}"))
    }

    async fn send(&self, s: &Sent) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Vec<u8>)> {
        let mut rb = self.http.request(s.method.clone(), &s.url);
        for (k, v) in &s.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if !s.body.is_empty() {
            rb = rb.body(s.body.clone());
        }
        let r = rb.send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await?.to_vec();
        Ok((status, headers, body))
    }

    async fn probe(&self, case: &Case, w: &mut World) -> anyhow::Result<Vec<String>> {
        let mut fails = Vec::new();
        let p = &self.provisioner;
        for (names, want_alive) in [(&case.then.dead, false), (&case.then.alive, true)] {
            for name in names {
                let s = w
                    .sessions
                    .get(name)
                    .context(format!("`then` names unknown session `{name}`"))?
                    .clone();
                let tokens: Vec<(&str, &str)> = [
                    "access_token",
                    "refresh_token",
                    "login_token",
                    "personal_access_token",
                    "hub_jwt",
                ]
                .into_iter()
                .filter_map(|k| s[k].as_str().map(|t| (k, t)))
                .collect();
                if tokens.is_empty() {
                    let id = s["id"].as_str().context("a session without id")?;
                    let state = p.session_state(id).await?;
                    if (state == "active") != want_alive {
                        fails.push(format!(
                            "afterwards: session `{name}` ({}) is {state}; it must be {}",
                            s["kind"].as_str().unwrap_or("?"),
                            if want_alive { "alive" } else { "dead" }
                        ));
                    }
                }
                for (kind, t) in tokens {
                    let active = p.token_active(t).await?;
                    if active != want_alive {
                        fails.push(format!(
                            "afterwards: the {kind} of session `{name}` ({}) is {}; it must be {}",
                            s["kind"].as_str().unwrap_or("?"),
                            if active { "alive" } else { "dead" },
                            if want_alive { "alive" } else { "dead" }
                        ));
                    }
                }
            }
        }
        for (account, want) in &case.then.devices {
            let id = w
                .lookup(&format!("account.{account}.id"))
                .and_then(|v| v.as_str().map(str::to_owned))
                .context("devices of an unknown account")?;
            let n = p.device_count(&id).await?;
            if n != *want {
                fails.push(format!("afterwards: account `{account}` has {n} remembered devices; it must have {want}"));
            }
        }
        Ok(fails)
    }
}

fn is_unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_connect() || r.is_timeout())
    })
}

/// Compares a response with a step's expectations; one message per broken expectation.
fn check(
    w: &mut World,
    e: &Expect,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> anyhow::Result<Vec<String>> {
    let mut f = Vec::new();
    let shown = || {
        let t = String::from_utf8_lossy(body);
        if t.len() > 300 {
            format!("{}…", &t[..300])
        } else {
            t.into_owned()
        }
    };
    if status != e.status {
        f.push(format!(
            "status: expected {}, got {status} (body: {:?})",
            e.status,
            shown()
        ));
    }
    for (name, want) in &e.headers {
        let got: Vec<&str> = headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        match want {
            None if !got.is_empty() => {
                f.push(format!("header {name}: must be absent, got {got:?}"))
            }
            None => {}
            Some(w_) => {
                let w_ = w.fill_str(w_)?;
                let ok = match got.as_slice() {
                    [] => false,
                    [one] if w_ == "*" => !one.is_empty(),
                    [one] if w_.ends_with('*') => one
                        .to_ascii_lowercase()
                        .starts_with(&w_[..w_.len() - 1].to_ascii_lowercase()),
                    [one] => *one == w_,
                    _ => false,
                };
                if !ok {
                    f.push(format!(
                        "header {name}: expected exactly one {w_:?}, got {got:?}"
                    ));
                }
            }
        }
    }
    if e.empty_body && !body.is_empty() {
        f.push(format!("body: expected zero bytes, got {:?}", shown()));
    }
    if let Some(raw) = &e.raw {
        let want = w.fill_str(raw)?;
        if want.as_bytes() != body {
            f.push(format!(
                "body: expected exactly\n      {want}\n    got\n      {}",
                shown()
            ));
        }
    }
    if e.json.is_some() || e.json_contains.is_some() {
        match serde_json::from_slice::<Value>(body) {
            Err(_) => f.push(format!("body: expected JSON, got {:?}", shown())),
            Ok(got) => {
                if let Some(want) = &e.json {
                    let want = w.fill_value(want)?;
                    compare(&want, &got, "$", true, &mut f);
                }
                if let Some(want) = &e.json_contains {
                    let want = w.fill_value(want)?;
                    compare(&want, &got, "$", false, &mut f);
                }
            }
        }
    }
    Ok(f)
}

/// Structural comparison with matchers: a expected string `$string`, `$nonempty`,
/// `$integer`, `$boolean`, `$array`, `$object`, `$any`, `$iso8601-ms` or `$absent` (with
/// `exact = false`) checks the kind of value instead of the value.
fn compare(want: &Value, got: &Value, path: &str, exact: bool, f: &mut Vec<String>) {
    if let Value::String(m) = want
        && let Some(matcher) = m.strip_prefix('$')
    {
        let ok = match matcher {
            "any" => true,
            "string" => got.is_string(),
            "nonempty" => got.as_str().is_some_and(|s| !s.is_empty()),
            "integer" => got.is_i64() || got.is_u64(),
            "boolean" => got.is_boolean(),
            "array" => got.is_array(),
            "object" => got.is_object(),
            "iso8601-ms" => got.as_str().is_some_and(is_iso_ms),
            _ => want == got,
        };
        if !ok {
            f.push(format!("body {path}: expected {m}, got {got}"));
        }
        return;
    }
    match (want, got) {
        (Value::Object(wm), Value::Object(gm)) => {
            for (k, wv) in wm {
                let p = format!("{path}.{k}");
                match gm.get(k) {
                    None if wv == "$absent" => {}
                    None => f.push(format!("body {p}: missing (expected {wv})")),
                    Some(gv) if wv == "$absent" => {
                        f.push(format!("body {p}: must be absent, got {gv}"))
                    }
                    Some(gv) => compare(wv, gv, &p, exact, f),
                }
            }
            if exact {
                for k in gm.keys().filter(|k| !wm.contains_key(*k)) {
                    f.push(format!(
                        "body {path}.{k}: not in the contract (got {})",
                        gm[k]
                    ));
                }
            }
        }
        (Value::Array(wa), Value::Array(ga)) if wa.len() == ga.len() => {
            for (i, (wv, gv)) in wa.iter().zip(ga).enumerate() {
                compare(wv, gv, &format!("{path}[{i}]"), exact, f);
            }
        }
        _ if want == got => {}
        _ => f.push(format!("body {path}: expected {want}, got {got}")),
    }
}

fn is_iso_ms(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 23) || c.is_ascii_digit())
}
