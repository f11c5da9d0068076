//! The operator's endpoints against a live server: `GET /healthz`, `GET /readyz` (a durable
//! write goes through) and `GET /metrics` (OpenMetrics text: requests by shape and status,
//! latency, revocations, rate-limit refusals, flushes, what is stored).

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::HashMap;

/// The samples of an OpenMetrics text: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l}"));
            (
                k.to_owned(),
                v.parse().unwrap_or_else(|_| panic!("bad value in {l}")),
            )
        })
        .collect()
}

async fn scrape(srv: &Server) -> (HashMap<String, f64>, String) {
    let a = srv.send(Method::GET, "/metrics", &[], None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        a.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = a.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    (samples(&text), text)
}

fn get(m: &HashMap<String, f64>, key: &str, text: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in\n{text}"))
}

#[tokio::test]
async fn health_and_readiness_answer_and_readiness_takes_a_durable_write() {
    let srv = Server::start().await;
    let h = srv.send(Method::GET, "/healthz", &[], None).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.json(), json!({"status": "ok"}));
    let (before, _) = scrape(&srv).await;
    let flushes = |m: &HashMap<String, f64>| {
        m.get("sessiond_store_flush_duration_seconds_count")
            .copied()
            .unwrap_or(0.0)
    };
    let r = srv.send(Method::GET, "/readyz", &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({"status": "ready"}));
    let (after, text) = scrape(&srv).await;
    assert!(
        flushes(&after) > flushes(&before),
        "readyz did not flush the store:\n{text}"
    );
    let wrong = srv.send(Method::POST, "/readyz", &[], None).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.header("allow"), Some("GET"));
}

#[tokio::test]
async fn metrics_count_requests_revocations_refusals_and_what_is_stored() {
    let srv = Server::start().await;
    let app = srv
        .app_with(json!({"id": "metrics-app", "name": "m", "generate_connect_key": false}))
        .await;
    let alice = srv.account("metrics-alice").await;
    let alice_id = s(&alice, "id");
    for _ in 0..3 {
        srv.session(alice_id, Some("metrics-app"), "login").await;
    }
    srv.session(alice_id, None, "idp").await;
    let creds = [
        ("x-rownd-app-key", s(&app, "rownd_app_key")),
        ("x-rownd-app-secret", s(&app, "rownd_app_secret")),
    ];
    let path = format!("/applications/metrics-app/users/{alice_id}/signout");
    for _ in 0..2 {
        let a = srv.send(Method::POST, &path, &creds, None).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    }
    let bad = srv
        .send(
            Method::POST,
            &path,
            &[("x-rownd-app-key", "nope"), ("x-rownd-app-secret", "nope")],
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    // An Okta token limited to one request a minute: the second is refused.
    let token = srv
        .api_token(&["okta.sessions.manage", "okta.users.manage"], Some(1))
        .await;
    let auth = format!("SSWS {token}");
    let okta_path = format!("/api/v1/users/{alice_id}/sessions");
    for expected in [StatusCode::NO_CONTENT, StatusCode::TOO_MANY_REQUESTS] {
        let a = srv
            .send(
                Method::DELETE,
                &okta_path,
                &[("authorization", &auth)],
                None,
            )
            .await;
        assert_eq!(a.status, expected, "{}", a.text());
    }

    let (m, text) = scrape(&srv).await;
    let g = |k: &str| get(&m, k, &text);
    assert_eq!(
        g(r#"sessiond_http_requests_total{shape="rownd",status="204"}"#),
        2.0
    );
    assert_eq!(
        g(r#"sessiond_http_requests_total{shape="rownd",status="401"}"#),
        1.0
    );
    assert_eq!(
        g(r#"sessiond_http_requests_total{shape="okta",status="204"}"#),
        1.0
    );
    assert_eq!(
        g(r#"sessiond_http_requests_total{shape="okta",status="429"}"#),
        1.0
    );
    assert_eq!(g(r#"sessiond_rate_limited_total{shape="okta"}"#), 1.0);
    assert_eq!(g(r#"sessiond_revocations_total{shape="rownd"}"#), 2.0);
    assert_eq!(g(r#"sessiond_revocations_total{shape="okta"}"#), 1.0);
    assert_eq!(
        g(r#"sessiond_http_request_duration_seconds_count{shape="rownd"}"#),
        3.0
    );
    assert_eq!(
        g(r#"sessiond_http_request_duration_seconds_bucket{le="+Inf",shape="rownd"}"#),
        3.0
    );
    assert!(g("sessiond_store_flush_duration_seconds_count") >= 2.0);
    assert_eq!(g("sessiond_accounts_stored"), 1.0);
    assert_eq!(g("sessiond_applications_stored"), 1.0);
    assert_eq!(g("sessiond_sessions_stored"), 4.0);
    // Three login sessions (access, refresh) and one identity-provider session (its token).
    assert!(g("sessiond_tokens_stored") >= 4.0, "{text}");
    assert!(g("sessiond_store_disk_bytes") > 0.0);
    // No label or value carries an id, a token or a secret.
    for needle in [alice_id, s(&app, "rownd_app_secret"), token.as_str()] {
        assert!(!text.contains(needle), "{needle} in\n{text}");
    }
}
