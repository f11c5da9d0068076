//! The binary's command line: `sessiond check`'s exit codes, and flags that reach the server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

/// `sessiond serve` on a free loopback port; returns the child and its base URL.
fn serve(dir: &std::path::Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            "cli-admin",
        ])
        .arg("--data")
        .arg(dir)
        .args(extra)
        .env("SESSIOND_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines.next().expect("exited early").expect("read");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().expect("address").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

fn check(dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("check")
        .arg("--data")
        .arg(dir)
        .output()
        .expect("run");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_exit_codes_say_clean_missing_or_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No store there: 2, and nothing is created.
    let (code, _, err) = check(dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds no sessiond store"), "{err}");
    assert!(!dir.path().join("store").exists());

    // A server holds the store: 2, with the reason.
    let (mut child, _) = serve(dir.path(), &[]);
    let (code, _, err) = check(dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    child.kill().expect("kill");
    child.wait().expect("reap");

    // Stopped: clean.
    let (code, out, err) = check(dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: "), "{out}");
}

#[tokio::test]
async fn the_credential_flood_limit_is_a_flag_and_zero_turns_it_off() {
    for (limit, refused) in [("2", true), ("0", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut child, base) = serve(dir.path(), &["--credential-limit-per-minute", limit]);
        let http = reqwest::Client::new();
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let r = http
                .get(format!("{base}/sessions"))
                .bearer_auth("not-a-token")
                .send()
                .await
                .expect("request");
            statuses.push(r.status().as_u16());
        }
        child.kill().expect("kill");
        child.wait().expect("reap");
        // An unknown token is a 401 (or a 404 without any application) until the limit.
        assert!(statuses[..2].iter().all(|s| *s != 429), "{statuses:?}");
        assert_eq!(statuses[3] == 429, refused, "limit {limit}: {statuses:?}");
    }
}

#[test]
fn a_second_server_on_the_same_directory_fails_at_once_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut first, _) = serve(dir.path(), &[]);
    let started = std::time::Instant::now();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            "cli-admin",
        ])
        .arg("--data")
        .arg(dir.path())
        .output()
        .expect("run");
    first.kill().expect("kill");
    first.wait().expect("reap");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "it waited for the lock instead of failing"
    );
}
