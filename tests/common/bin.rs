//! The `sessiond` binary as a user runs it: `serve` on a loopback port, and one-shot
//! commands with a time limit.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

/// The admin token every [`serve`]d sessiond runs with.
pub const ADMIN_TOKEN: &str = "cli-admin";

/// A running `sessiond serve`, killed when dropped (also when an assertion fails).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sessiond serve` on a free loopback port; returns it and its base URL.
pub fn serve(dir: &std::path::Path, extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN_TOKEN,
        ])
        .arg("--data")
        .arg(dir)
        .args(extra)
        .env("SESSIOND_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let base = listening_base(&mut child);
    (Running(child), base)
}

/// The URL of a starting `sessiond serve`'s `listening on URL` line. Its stdout is read,
/// and kept drained, on a thread, so a server that never says where it listens fails the
/// test (killed) after 30 s instead of hanging it.
pub fn listening_base(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
                break;
            }
        }
        for _ in lines {}
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(base) => base,
        Err(_) => {
            let _ = child.kill();
            panic!("sessiond did not start listening within 30 s");
        }
    }
}

/// Runs `sessiond` with `args` to completion, or fails the test after 30 s.
pub fn run(args: &[&OsStr]) -> std::process::Output {
    run_with(args, &[])
}

/// `run` with these environment variables set, and no other `SESSIOND_*` one.
pub fn run_with(args: &[&OsStr], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SESSIOND_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .envs(env.iter().copied())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sessiond {args:?} did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// The admin API of a [`serve`]d sessiond, over blocking HTTP.
pub struct AdminApi {
    pub base: String,
    pub http: reqwest::blocking::Client,
}

impl AdminApi {
    pub fn new(base: &str) -> AdminApi {
        AdminApi {
            base: base.to_owned(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    /// `method /admin/v1{path}` with the admin token: the status and the JSON answer
    /// (`null` when there is none).
    pub fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut rb = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().expect("request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    /// A `POST` that must answer 201.
    pub fn create(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, v) = self.admin(reqwest::Method::POST, path, Some(body));
        assert_eq!(status, 201, "{path}: {v}");
        v
    }

    pub fn introspect(&self, token: &str) -> serde_json::Value {
        let (status, v) = self.admin(
            reqwest::Method::POST,
            "/introspect",
            Some(serde_json::json!({ "token": token })),
        );
        assert_eq!(status, 200, "{v}");
        v
    }
}
