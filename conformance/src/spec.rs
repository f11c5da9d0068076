//! Validation of every response against the OpenAPI 3.1 description of its shape
//! (`specs/<shape>.json`): is the status documented for that operation, and does the answer
//! match one of the documented forms (a JSON body valid against the schema, or a zero-byte
//! body where `x-empty-body` says so; required headers present)? Forms marked
//! `x-sessiond-proposed` are our readings: under `--level documented` an answer that only a
//! proposed form (or no form) describes is not held against the implementation.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// An answer as the suite saw it.
#[derive(Clone, Copy)]
pub struct Answer<'a> {
    pub status: u16,
    pub headers: &'a reqwest::header::HeaderMap,
    pub body: &'a [u8],
}

pub struct Specs {
    docs: BTreeMap<String, Value>,
}

impl Specs {
    /// Loads `*.json` from `dir` (file stem = shape name).
    pub fn load(dir: &Path) -> anyhow::Result<Specs> {
        let mut docs = BTreeMap::new();
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let doc: Value = serde_json::from_str(&std::fs::read_to_string(&p)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            docs.insert(name, doc);
        }
        Ok(Specs { docs })
    }

    /// Finds the operation for `method path` (path relative to the application's base path,
    /// without the query), preferring the case's own shape.
    fn operation(&self, shape: &str, method: &str, path: &str) -> Option<(&Value, String, &Value)> {
        let order = self
            .docs
            .get_key_value(shape)
            .into_iter()
            .chain(self.docs.iter().filter(|(k, _)| k.as_str() != shape));
        for (_, doc) in order {
            let Some(paths) = doc["paths"].as_object() else {
                continue;
            };
            for (template, item) in paths {
                if template_matches(template, path)
                    && let Some(op) = item.get(method.to_ascii_lowercase())
                {
                    return Some((doc, template.clone(), op));
                }
            }
        }
        None
    }

    /// What is wrong with an answer, judged by the spec; empty when it conforms (or when no
    /// spec describes the endpoint).
    pub fn check(
        &self,
        shape: &str,
        request: (&str, &str),
        answer: Answer<'_>,
        documented_only: bool,
    ) -> Vec<String> {
        let (method, path) = request;
        let Answer {
            status,
            headers,
            body,
        } = answer;
        let Some((doc, template, op)) = self.operation(shape, method, path) else {
            return Vec::new();
        };
        let responses = &op["responses"];
        let Some(resp) = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
        else {
            if documented_only {
                return Vec::new();
            }
            return vec![format!(
                "spec: status {status} is not documented for {method} {template} (documented: {})",
                responses
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            )];
        };
        let mut forms = vec![resp];
        if let Some(alts) = resp["x-alternatives"].as_array() {
            forms.extend(alts.iter());
        }
        let mut first_problems = None;
        for form in &forms {
            let problems = form_problems(doc, form, headers, body);
            if problems.is_empty() {
                return Vec::new();
            }
            first_problems.get_or_insert(problems);
        }
        // No form matched. Under `documented`, only a failure of a documented form counts.
        if documented_only
            && forms
                .iter()
                .all(|f| f["x-sessiond-proposed"] == json!(true))
        {
            return Vec::new();
        }
        let source = resp["x-source"].as_str().unwrap_or("the spec");
        first_problems
            .unwrap_or_default()
            .into_iter()
            .map(|p| format!("spec ({source}): {method} {template} {status}: {p}"))
            .collect()
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(a, b)| (a.starts_with('{') && a.ends_with('}') && !b.is_empty()) || a == b)
}

/// Why an answer does not match one documented form.
fn form_problems(
    doc: &Value,
    form: &Value,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(hs) = form["headers"].as_object() {
        for (name, h) in hs {
            if h["required"] == json!(true) && headers.get(name.as_str()).is_none() {
                out.push(format!("required header {name} is missing"));
            }
        }
    }
    if form["x-empty-body"] == json!(true) {
        if !body.is_empty() {
            out.push(format!("the body must be empty, got {} bytes", body.len()));
        }
        return out;
    }
    let Some(content) = form["content"].as_object() else {
        return out;
    };
    let Some(media) = content.get("application/json") else {
        return out;
    };
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !ctype.starts_with("application/json") {
        out.push(format!(
            "Content-Type must be application/json, got {ctype:?}"
        ));
    }
    let instance: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            out.push(format!(
                "the body must be JSON, got {:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
            return out;
        }
    };
    let Some(schema) = media.get("schema") else {
        return out;
    };
    let mut wrapper = match schema {
        Value::Object(m) => Value::Object(m.clone()),
        other => json!({"allOf": [other]}),
    };
    wrapper["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    wrapper["components"] = doc["components"].clone();
    match jsonschema::options()
        .should_validate_formats(true)
        .build(&wrapper)
    {
        Ok(v) => {
            for e in v.iter_errors(&instance) {
                out.push(format!("body {}: {e}", e.instance_path()));
            }
        }
        Err(e) => out.push(format!("the spec's schema does not compile: {e}")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Specs {
        Specs::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("specs")).expect("specs load")
    }

    fn json_headers() -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("content-type", "application/json".parse().expect("header"));
        h
    }

    #[test]
    fn paths_match_templates_segment_by_segment() {
        assert!(template_matches(
            "/api/v1/users/{userId}/sessions",
            "/api/v1/users/00u1/sessions"
        ));
        assert!(!template_matches(
            "/api/v1/users/{userId}/sessions",
            "/api/v1/users//sessions"
        ));
        assert!(!template_matches(
            "/sessions/{id}/revoke",
            "/sessions/revoke-all"
        ));
    }

    #[test]
    fn the_specs_catch_what_they_should() {
        let s = specs();
        let h = json_headers();
        let none = reqwest::header::HeaderMap::new();
        let check = |shape: &str, method: &str, path: &str, status: u16, headers, body: &[u8]| {
            s.check(
                shape,
                (method, path),
                Answer {
                    status,
                    headers,
                    body,
                },
                false,
            )
        };
        let rc = "/api/v1/users.logoutOtherClients";
        let ok = br#"{"token":"t","tokenExpires":"2021-12-27T14:33:09.851Z","success":true}"#;
        assert!(check("rocketchat", "POST", rc, 200, &h, ok).is_empty());
        let string_success =
            br#"{"token":"t","tokenExpires":"2021-12-27T14:33:09.851Z","success":"true"}"#;
        assert!(!check("rocketchat", "POST", rc, 200, &h, string_success).is_empty());
        assert!(
            check(
                "connect",
                "POST",
                "/revoke-all",
                200,
                &h,
                br#"{"revokedCount":2}"#
            )
            .is_empty()
        );
        assert!(
            !check(
                "connect",
                "POST",
                "/revoke-all",
                200,
                &h,
                br#"{"revoked_count":2}"#
            )
            .is_empty()
        );
        // A zero-byte 401 is a documented alternative of Connect errors.
        assert!(check("connect", "POST", "/revoke-all", 401, &none, b"").is_empty());
        // An undocumented status.
        assert!(!check("connect", "POST", "/revoke-all", 418, &h, b"{}").is_empty());
        // An endpoint no spec describes is not judged.
        assert!(check("okta", "GET", "/no/such/thing", 200, &h, b"").is_empty());
    }
}
