//! The API description: `docs/openapi.json`, served at `GET /openapi.json`.
//!
//! It is built from two kinds of parts: the five shapes' contracts in `conformance/specs/`
//! (what the conformance harness checks any implementation against) and
//! `docs/openapi-sessiond.json` (the admin API and the operator's endpoints). This file is
//! the build: `SESSIOND_UPDATE_OPENAPI=1 cargo test --test openapi` rewrites the document
//! after a part changed; without it a stale document fails the test. The merge:
//! - each shape's components are renamed `<shape>.<Name>` (its `$ref`s and security
//!   requirements with them), its operations are tagged with the shape, and an operation
//!   without `security` of its own gets its document's top-level one;
//! - a response with `x-alternatives` (two body forms for one status) is made readable by
//!   every OpenAPI tool: JSON alternatives become one `anyOf`, and where one form is a
//!   zero-byte body the response documents no `content` (a tool cannot say "JSON, or
//!   nothing") and says so in its description; the `x-` marks stay for the harness;
//! - paths keep the shapes' base-path convention (the root serves the default application,
//!   `/apps/{anchor}` any other), told in `info.description`.
//!
//! Then the document and the router are held together: every route the router knows is
//! in it with the same methods, and nothing else is; and each route reaches its handler.

mod common;
use common::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const SHAPES: [&str; 5] = ["rownd", "connect", "flashback", "rocketchat", "okta"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Rewrites every `$ref` to `#/components/<kind>/<Name>` as `<shape>.<Name>`.
fn rename_refs(v: &mut Value, shape: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "$ref"
                    && let Some(r) = x.as_str()
                    && let Some(rest) = r.strip_prefix("#/components/")
                    && let Some((kind, name)) = rest.split_once('/')
                {
                    *x = json!(format!("#/components/{kind}/{shape}.{name}"));
                } else {
                    rename_refs(x, shape);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rename_refs(x, shape)),
        _ => {}
    }
}

fn rename_security(sec: &Value, shape: &str) -> Value {
    let reqs = sec.as_array().expect("security is an array");
    Value::Array(
        reqs.iter()
            .map(|req| {
                let m = req
                    .as_object()
                    .expect("a security requirement is an object");
                Value::Object(
                    m.iter()
                        .map(|(k, v)| (format!("{shape}.{k}"), v.clone()))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// One status, several body forms (`x-alternatives`) → what a generic tool can read.
fn fold_alternatives(resp: &mut Map<String, Value>) {
    let Some(alts) = resp
        .get("x-alternatives")
        .and_then(Value::as_array)
        .cloned()
    else {
        return;
    };
    let forms: Vec<&Value> = std::iter::once(&Value::Null).chain(alts.iter()).collect();
    let main = Value::Object(resp.clone());
    let forms: Vec<&Value> = forms
        .into_iter()
        .map(|f| if f.is_null() { &main } else { f })
        .collect();
    if forms.iter().any(|f| f.get("content").is_none()) {
        resp.remove("content");
        let d = resp
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        resp.insert(
            "description".into(),
            json!(format!(
                "{d} One of the forms listed in x-alternatives is a zero-byte body without \
                 a Content-Type, so no content is declared here."
            )),
        );
        return;
    }
    let mut content = Map::new();
    for f in &forms {
        for (media, m) in f["content"].as_object().expect("content is an object") {
            let entry = content
                .entry(media.clone())
                .or_insert_with(|| json!({"schema": {"anyOf": []}}));
            entry["schema"]["anyOf"]
                .as_array_mut()
                .expect("built above")
                .push(m.get("schema").cloned().unwrap_or(json!({})));
        }
    }
    resp.insert("content".into(), Value::Object(content));
}

/// The document as its parts say it should be.
fn build() -> Value {
    let mut doc = read(&root().join("docs/openapi-sessiond.json"));
    let mut tags = doc["tags"].as_array().cloned().unwrap_or_default();
    for shape in SHAPES {
        let mut part = read(&root().join(format!("conformance/specs/{shape}.json")));
        rename_refs(&mut part, shape);
        tags.push(json!({
            "name": shape,
            "description": format!(
                "{} ({}).",
                part["info"]["title"].as_str().unwrap_or(shape),
                format_args!("conformance/specs/{shape}.json")
            ),
        }));
        let top_security = part.get("security").cloned();
        for (kind, items) in part["components"].as_object().cloned().unwrap_or_default() {
            let target = doc["components"]
                .as_object_mut()
                .expect("components")
                .entry(kind.clone())
                .or_insert_with(|| json!({}));
            for (name, item) in items.as_object().expect("a components kind is an object") {
                let key = format!("{shape}.{name}");
                assert!(target.get(&key).is_none(), "{kind}/{key} twice");
                target[&key] = item.clone();
            }
        }
        for (path, item) in part["paths"].as_object().expect("paths").clone() {
            let mut item = item;
            for (method, op) in item.as_object_mut().expect("path item") {
                if method == "parameters" || method.starts_with("x-") {
                    continue;
                }
                let op = op.as_object_mut().expect("operation");
                op.insert("tags".into(), json!([shape]));
                match op.get("security").cloned().or(top_security.clone()) {
                    Some(sec) => op.insert("security".into(), rename_security(&sec, shape)),
                    None => op.insert("security".into(), json!([])),
                };
                for resp in op["responses"]
                    .as_object_mut()
                    .expect("responses")
                    .values_mut()
                {
                    if let Some(r) = resp.as_object_mut() {
                        fold_alternatives(r);
                    }
                }
            }
            let paths = doc["paths"].as_object_mut().expect("paths");
            assert!(!paths.contains_key(&path), "{path} is in two parts");
            paths.insert(path, item);
        }
    }
    doc["tags"] = Value::Array(tags);
    doc
}

fn doc_path() -> PathBuf {
    root().join("docs/openapi.json")
}

#[test]
fn the_document_is_built_from_its_parts() {
    let built = build();
    let text = serde_json::to_string_pretty(&built).expect("serialise") + "\n";
    if std::env::var_os("SESSIOND_UPDATE_OPENAPI").is_some() {
        std::fs::write(doc_path(), &text).expect("write docs/openapi.json");
        return;
    }
    let kept = std::fs::read_to_string(doc_path()).expect("docs/openapi.json");
    assert!(
        kept == text,
        "docs/openapi.json is not what its parts make: run \
         `SESSIOND_UPDATE_OPENAPI=1 cargo test --test openapi` and commit the result"
    );
    assert_eq!(
        sessiond::http::OPENAPI,
        kept,
        "the binary serves the kept document"
    );
}

/// (METHOD, path template) of every operation in the document.
fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(sessiond::http::OPENAPI).expect("JSON");
    let mut ops = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if method == "parameters" || method.starts_with("x-") {
                continue;
            }
            let id = op["operationId"]
                .as_str()
                .expect("every operation has an id");
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            assert!(
                op["tags"].as_array().is_some_and(|t| t.len() == 1),
                "{method} {path}: one tag"
            );
            assert!(op.get("security").is_some(), "{method} {path}: security");
            ops.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    ops
}

fn routed() -> BTreeSet<(String, String)> {
    sessiond::http::ROUTES
        .iter()
        .flat_map(|r| {
            r.methods
                .iter()
                .map(move |m| (m.as_str().to_owned(), r.template()))
        })
        .collect()
}

#[test]
fn the_router_serves_exactly_what_the_document_describes() {
    let doc = documented();
    let routes = routed();
    let undocumented: Vec<_> = routes.difference(&doc).collect();
    let unserved: Vec<_> = doc.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "routed but not in docs/openapi.json: {undocumented:?}\n\
         in docs/openapi.json but not routed: {unserved:?}"
    );
}

/// Each route's handler answers it: no route falls through to a handler's "no such
/// endpoint", and a method the route does not allow is a 405 naming the ones it does.
#[tokio::test]
async fn every_route_reaches_its_handler() {
    let srv = Server::start().await;
    srv.app("default-app").await;
    let served = srv
        .send(reqwest::Method::GET, "/openapi.json", &[], None)
        .await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("application/json"));
    assert_eq!(served.text(), sessiond::http::OPENAPI);
    let auth = format!("Bearer {ADMIN}");
    for r in sessiond::http::ROUTES {
        let path: String = r
            .path
            .iter()
            .map(|s| {
                if s.starts_with('{') {
                    "/x0".to_owned()
                } else {
                    format!("/{s}")
                }
            })
            .collect();
        for m in r.methods {
            let method = reqwest::Method::from_bytes(m.as_str().as_bytes()).expect("method");
            let a = srv
                .send_json(method, &path, &[("authorization", &auth)], &json!({}))
                .await;
            let body = a.text();
            assert!(
                a.status != 404
                    || ![
                        "no such endpoint",
                        "no such admin endpoint",
                        "\"Not found\"",
                        "\"NotFound\"",
                    ]
                    .iter()
                    .any(|fallback| body.contains(fallback)),
                "{m} {path} fell through to a fallback: {} {body}",
                a.status
            );
        }
        let a = srv
            .send(
                reqwest::Method::PUT,
                &r.template(),
                &[("authorization", &auth)],
                None,
            )
            .await;
        assert_eq!(a.status, 405, "PUT {}: {}", r.template(), a.text());
        let allow: Vec<&str> = r.methods.iter().map(|m| m.as_str()).collect();
        assert_eq!(a.header("allow"), Some(allow.join(", ").as_str()));
    }
}
