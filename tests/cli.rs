//! The binary's command line: `sessiond check`'s exit codes, and flags that reach the server.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

/// A running `sessiond serve`, killed when dropped (also when an assertion fails).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sessiond serve` on a free loopback port; returns it and its base URL.
fn serve(dir: &std::path::Path, extra: &[&str]) -> (Running, String) {
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
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
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
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("sessiond did not start listening within 30 s");
    (running, base)
}

/// Runs `sessiond` with `args` to completion, or fails the test after 30 s.
fn run(args: &[&OsStr]) -> std::process::Output {
    let mut child = Command::new(BIN)
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

fn check(dir: &std::path::Path) -> (i32, String, String) {
    let out = run(&[OsStr::new("check"), OsStr::new("--data"), dir.as_os_str()]);
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
    let (server, _) = serve(dir.path(), &[]);
    let (code, _, err) = check(dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    drop(server);

    // Stopped: clean.
    let (code, out, err) = check(dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: "), "{out}");
}

#[tokio::test]
async fn the_credential_flood_limit_is_a_flag_and_zero_turns_it_off() {
    for (limit, refused) in [("2", true), ("0", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        // The window is the wall clock's calendar minute: do not straddle two.
        let into_minute = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            % 60;
        if into_minute >= 55 {
            std::thread::sleep(Duration::from_secs(61 - into_minute));
        }
        let (server, base) = serve(dir.path(), &["--credential-limit-per-minute", limit]);
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
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
        drop(server);
        // An unknown token is a 401 (or a 404 without any application) until the limit.
        assert!(statuses[..2].iter().all(|s| *s != 429), "{statuses:?}");
        assert_eq!(statuses[3] == 429, refused, "limit {limit}: {statuses:?}");
    }
}

#[test]
fn a_second_server_on_the_same_directory_fails_at_once_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, _) = serve(dir.path(), &[]);
    let started = Instant::now();
    // `run` fails the test if the second one waits for the lock instead of failing.
    let out = run(&[
        OsStr::new("serve"),
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
        OsStr::new("--admin-token"),
        OsStr::new("cli-admin"),
        OsStr::new("--data"),
        dir.path().as_os_str(),
    ]);
    drop(first);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it waited for the lock instead of failing"
    );
}
