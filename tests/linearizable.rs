//! Guarantee 2 of ARCHITECTURE.md: revocation is linearizable. Many clients hammer one
//! account's sessions over real HTTP — Flashback refreshes (with rotation), Rocket.Chat
//! login-token checks (`GET /api/v1/me`), Flashback access-token checks (`GET /sessions`)
//! and administrator introspection — while one revoker sends a revoke-all (Rownd, Connect,
//! Flashback or Rocket.Chat, in turn). Then:
//!
//! - no operation that *started* after the revoke-all's response arrived says "alive";
//! - no refresh that raced the revoke minted a token that outlives it: every token any
//!   refresh handed out is dead once the revoke has answered.
//!
//! Repeated for many rounds (`SESSIOND_SLOW_TESTS=1`: many more).

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sessiond::domain::Config;
use sessiond::http::Limits;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SESSIONS: usize = 10;
const APP: &str = "lin";

#[derive(Debug, Clone, Copy)]
enum Revoker {
    Rownd,
    Connect,
    Flashback,
    RocketChat,
}

#[derive(Debug)]
struct Obs {
    what: &'static str,
    session: String,
    start: Instant,
    alive: bool,
}

/// One session as a client holds it.
#[derive(Clone)]
struct Held {
    id: String,
    access: String,
    refresh: String,
    login: String,
}

fn held(v: &Value) -> Held {
    Held {
        id: s(v, "id").to_owned(),
        access: s(v, "access_token").to_owned(),
        refresh: s(v, "refresh_token").to_owned(),
        login: s(v, "login_token").to_owned(),
    }
}

/// A client of one session: cycles through the four checks until told to stop (bounded).
/// Returns what it saw and every token it was handed.
async fn client(
    srv: Arc<Server>,
    user: String,
    mut h: Held,
    stop: Arc<AtomicBool>,
) -> (Vec<Obs>, Vec<String>) {
    let mut seen = Vec::new();
    let mut minted = Vec::new();
    for n in 0..2_000 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let start = Instant::now();
        let (what, alive) = match n % 4 {
            0 => {
                let a = srv
                    .send_json(
                        Method::POST,
                        &format!("/apps/{APP}/user/refresh"),
                        &[],
                        &json!({"refreshToken": h.refresh}),
                    )
                    .await;
                if a.status == StatusCode::OK {
                    let b = a.json();
                    h.access = s(&b, "accessToken").to_owned();
                    h.refresh = s(&b, "refreshToken").to_owned();
                    minted.push(h.access.clone());
                    minted.push(h.refresh.clone());
                } else {
                    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "refresh: {}", a.text());
                }
                ("refresh", a.status == StatusCode::OK)
            }
            1 => {
                let a = srv
                    .send(
                        Method::GET,
                        &format!("/apps/{APP}/api/v1/me"),
                        &[("x-auth-token", &h.login), ("x-user-id", &user)],
                        None,
                    )
                    .await;
                assert!(
                    matches!(a.status, StatusCode::OK | StatusCode::UNAUTHORIZED),
                    "me: {}",
                    a.text()
                );
                ("rocketchat me", a.status == StatusCode::OK)
            }
            2 => {
                let auth = format!("Bearer {}", h.access);
                let a = srv
                    .send(
                        Method::GET,
                        &format!("/apps/{APP}/sessions"),
                        &[("authorization", &auth)],
                        None,
                    )
                    .await;
                assert!(
                    matches!(a.status, StatusCode::OK | StatusCode::UNAUTHORIZED),
                    "sessions: {}",
                    a.text()
                );
                ("flashback sessions", a.status == StatusCode::OK)
            }
            _ => ("introspect", srv.is_active(&h.access).await),
        };
        seen.push(Obs {
            what,
            session: h.id.clone(),
            start,
            alive,
        });
    }
    (seen, minted)
}

/// Sends the revoke-all; the caller session (index 0) is the Flashback / Rocket.Chat caller.
async fn revoke(srv: &Server, how: Revoker, app: &Value, user: &str, subject: &str, caller: &Held) {
    let a = match how {
        Revoker::Rownd => {
            let h = [
                ("x-rownd-app-key", s(app, "rownd_app_key")),
                ("x-rownd-app-secret", s(app, "rownd_app_secret")),
            ];
            srv.send_json(
                Method::POST,
                &format!("/applications/{APP}/users/{user}/signout"),
                &h,
                &json!({"sign_out_all": true}),
            )
            .await
        }
        Revoker::Connect => {
            let body = json!({"subject": subject}).to_string();
            let jwt = client_jwt(
                s(app, "connect_private_key_pem"),
                APP,
                "sudomimus-connect",
                body.as_bytes(),
                now_s(),
                30,
                &unique_jti(),
            );
            let auth = format!("SudomimusClientJWT {jwt}");
            srv.send(
                Method::POST,
                "/revoke-all",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                Some(body.as_bytes()),
            )
            .await
        }
        Revoker::Flashback => {
            let auth = format!("Bearer {}", caller.access);
            srv.send(
                Method::POST,
                &format!("/apps/{APP}/sessions/revoke-all"),
                &[("authorization", &auth)],
                None,
            )
            .await
        }
        Revoker::RocketChat => {
            srv.send(
                Method::POST,
                &format!("/apps/{APP}/api/v1/users.logoutOtherClients"),
                &[("x-auth-token", &caller.login), ("x-user-id", user)],
                None,
            )
            .await
        }
    };
    assert!(
        a.status.is_success(),
        "{how:?} revoke-all: {} {}",
        a.status,
        a.text()
    );
}

/// One round; returns (operations observed, of which started after the acknowledgement,
/// tokens checked dead afterwards).
async fn round(srv: &Arc<Server>, app: &Value, n: usize, how: Revoker) -> (usize, usize, usize) {
    let account = srv.account(&format!("lin{n}")).await;
    let user = s(&account, "id").to_owned();
    let sessions: Vec<Value> = {
        let mut v = Vec::new();
        for _ in 0..SESSIONS {
            v.push(srv.session(&user, Some(APP), "login").await);
        }
        v
    };
    let subject = s(&sessions[0], "subject").to_owned();
    let caller = held(&sessions[0]);
    let stop = Arc::new(AtomicBool::new(false));
    // Session 0 belongs to the revoker; the others to the clients.
    let clients: Vec<_> = sessions[1..]
        .iter()
        .map(|v| tokio::spawn(client(srv.clone(), user.clone(), held(v), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(5 + (n as u64 * 7) % 30)).await;
    revoke(srv, how, app, &user, &subject, &caller).await;
    let acked = Instant::now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    stop.store(true, Ordering::SeqCst);

    let (mut observed, mut after, mut dead_checked) = (0, 0, 0);
    let mut violations = Vec::new();
    for (c, v) in clients.into_iter().zip(&sessions[1..]) {
        let (seen, minted) = c.await.expect("client");
        observed += seen.len();
        for o in seen.iter().filter(|o| o.start > acked) {
            after += 1;
            if o.alive {
                violations.push(format!(
                    "{} of session {} said alive after {how:?} was acknowledged",
                    o.what, o.session
                ));
            }
        }
        let h = held(v);
        for t in minted.iter().chain([&h.access, &h.refresh, &h.login]) {
            dead_checked += 1;
            if srv.is_active(t).await {
                violations.push(format!("a token of session {} outlived {how:?}", h.id));
            }
        }
    }
    assert!(violations.is_empty(), "round {n}: {violations:#?}");
    // Rocket.Chat keeps the caller; every other revoker kills it too.
    let caller_state = srv.session_state(&caller.id).await;
    let want = if matches!(how, Revoker::RocketChat) {
        "active"
    } else {
        "revoked"
    };
    assert_eq!(caller_state, want, "{how:?} caller");
    (observed, after, dead_checked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_check_after_a_revoke_all_says_alive_and_no_raced_refresh_outlives_it() {
    let rounds = if std::env::var("SESSIOND_SLOW_TESTS").is_ok_and(|v| v == "1") {
        200
    } else {
        16
    };
    // The per-credential flood limit is not what this test is about.
    let limits = Limits {
        per_credential_per_minute: u32::MAX,
        ..Limits::default()
    };
    let srv = Arc::new(Server::start_with(Config::default(), limits).await);
    let app = srv.app(APP).await;
    let (mut observed, mut after, mut dead) = (0, 0, 0);
    let order = [
        Revoker::Rownd,
        Revoker::Connect,
        Revoker::Flashback,
        Revoker::RocketChat,
    ];
    for n in 0..rounds {
        let (o, a, d) = round(&srv, &app, n, order[n % order.len()]).await;
        observed += o;
        after += a;
        dead += d;
    }
    eprintln!(
        "linearizability: {rounds} rounds, {observed} checks by {} concurrent clients, \
         {after} of them started after the revoke-all was acknowledged, {dead} tokens dead afterwards",
        SESSIONS - 1
    );
    assert!(
        after > 0,
        "no check started after a revoke-all: the test checked nothing"
    );
}
