//! The binary's command line: `sessiond check`'s exit codes, flags that reach the server,
//! where settings come from (flags, `SESSIOND_*`, the `--config` file), the log lines, and
//! the allocator's options compiled into the binary.

mod common;
use common::bin::*;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    // And what the records weigh, per tree: the server wrote its admin token's hash.
    let sizes = out
        .lines()
        .find(|l| l.starts_with("records: "))
        .unwrap_or_else(|| panic!("no sizes line: {out}"));
    assert!(sizes.contains("(meta "), "{sizes}");
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

fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(std::ffi::OsString::from).collect()
}

fn refs(args: &[std::ffi::OsString]) -> Vec<&OsStr> {
    args.iter().map(|a| a.as_os_str()).collect()
}

#[test]
fn settings_come_from_flags_then_environment_then_file_then_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sessiond.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9999\"\n\
         cache-mb = 32\n\
         durability = \"flush\"\n\
         log_format = \"json\"\n\
         ephemeral = true\n\
         admin-token = \"from-the-file\"\n",
    )
    .expect("write config");
    let mut args = os(&[
        "serve",
        "--print-config",
        "--durability",
        "none",
        "--config",
    ]);
    args.push(file.clone().into_os_string());
    let out = run_with(
        &refs(&args),
        &[
            ("SESSIOND_CACHE_MB", "48"),
            ("SESSIOND_DURABILITY", "fsync"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: toml::Table = toml::from_str(&stdout).expect("--print-config prints TOML");
    let get = |k: &str| {
        got.get(k)
            .unwrap_or_else(|| panic!("{k} missing: {stdout}"))
    };
    // The flag beats the environment, which beats the file, which beats the default.
    assert_eq!(get("durability").as_str(), Some("none"), "{stdout}");
    assert_eq!(get("cache-mb").as_integer(), Some(48), "{stdout}");
    assert_eq!(get("listen").as_str(), Some("127.0.0.1:9999"), "{stdout}");
    assert_eq!(get("log-format").as_str(), Some("json"), "{stdout}");
    assert_eq!(get("ephemeral").as_bool(), Some(true), "{stdout}");
    assert_eq!(get("max-connections").as_integer(), Some(4096), "{stdout}");
    // The admin token is never printed.
    assert!(!stdout.contains("from-the-file"), "{stdout}");
    assert_eq!(get("admin-token").as_str(), Some("<set, not shown>"));
}

#[test]
fn invalid_settings_fail_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str)] = &[
        ("cashe-mb = 1\n", "unknown setting `cashe-mb`"),
        ("cache-mb = \"lots\"\n", "--cache-mb"),
        ("cache-mb = 0\n", "--cache-mb"),
        ("durability = \"sometimes\"\n", "--durability"),
        ("ephemeral = 3\n", "`ephemeral` is a switch"),
        ("listen = [1, 2\n", "parsing the configuration file"),
        ("log-level = \"info,[\"\n", "--log-level"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&file, text).expect("write");
        let mut args = os(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ephemeral",
            "--config",
        ]);
        args.push(file.into_os_string());
        let out = run_with(&refs(&args), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(needle), "{text}: expected {needle:?} in {err}");
        assert!(out.stdout.is_empty(), "{text}: it started anyway");
    }
    // The same checks apply to the environment and the command line.
    let out = run_with(
        &refs(&os(&["serve", "--ephemeral", "--print-config"])),
        &[("SESSIOND_MAX_CONNECTIONS", "0")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--max-connections"), "{err}");
    let out = run_with(
        &refs(&os(&["serve", "--config", "/nonexistent/sessiond.toml"])),
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/sessiond.toml"), "{err}");
}

#[test]
fn json_logs_give_one_line_per_request_with_its_id_shape_status_and_latency() {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--ephemeral",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            "cli-admin",
            "--log-format",
            "json",
            "--log-level",
            "info",
        ])
        .env_remove("SESSIOND_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let running = Running(child);
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("the listening line");
    let base = first
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("a base URL")
        .to_owned();
    let http = reqwest::blocking::Client::new();
    let secret = "SSWS00secret-api-token-never-logged";
    let okta = http
        .delete(format!("{base}/api/v1/users/nobody/sessions?probe=1"))
        .header("authorization", secret)
        .send()
        .expect("okta request");
    assert_eq!(okta.status().as_u16(), 401);
    let okta_id = okta
        .headers()
        .get("x-okta-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("X-Okta-Request-Id")
        .to_owned();
    let health = http.get(format!("{base}/healthz")).send().expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    // SIGTERM would be cleaner, but a kill also ends stderr, and every line was written
    // before its answer went out.
    drop(running);
    let lines: Vec<serde_json::Value> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let answered: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == "answered")
        .collect();
    assert_eq!(answered.len(), 2, "{lines:#?}");
    let okta_line = answered[0];
    assert_eq!(okta_line["status"], 401, "{okta_line}");
    assert!(okta_line["latency_us"].is_u64(), "{okta_line}");
    let span = &okta_line["span"];
    assert_eq!(span["id"], okta_id.as_str(), "{okta_line}");
    assert_eq!(span["shape"], "okta", "{okta_line}");
    assert_eq!(span["method"], "DELETE", "{okta_line}");
    assert_eq!(span["path"], "/api/v1/users/nobody/sessions", "{okta_line}");
    assert_eq!(answered[1]["span"]["path"], "/healthz");
    assert_ne!(answered[1]["span"]["id"], span["id"]);
    let all = lines.iter().map(|l| l.to_string()).collect::<String>();
    assert!(
        !all.contains("secret-api-token"),
        "a credential was logged: {all}"
    );
    assert!(!all.contains("probe=1"), "the query was logged: {all}");
}

/// `--seed FILE` creates a known state at start, once: its output names every secret, the
/// secrets work over the wire, and a restart with the same seed creates nothing more. A seed
/// file with a dangling name stops the start with exit 2.
#[test]
fn a_seed_file_starts_a_known_state_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, seed, out) = (
        tmp.path().join("data"),
        tmp.path().join("seed.toml"),
        tmp.path().join("created.json"),
    );
    std::fs::write(
        &seed,
        r#"
[[applications]]
id = "chat"
name = "Chat"

[[accounts]]
login = "alice"
email = "alice@example.com"
password = "correct horse"

[[sessions]]
account = "alice"
application = "chat"
kind = "login"
count = 2

[[sessions]]
account = "alice"
kind = "idp"

[[api_tokens]]
name = "ci"
scopes = ["okta.sessions.read"]
"#,
    )
    .expect("seed");
    let seed_args = [
        "--seed",
        seed.to_str().expect("utf-8"),
        "--seed-output",
        out.to_str().expect("utf-8"),
    ];
    let created: serde_json::Value = {
        let (_server, base) = serve(&data, &seed_args);
        let created: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).expect("seed output")).expect("JSON");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).expect("out").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the output holds secrets: {mode:o}");
        }
        let sessions = created["sessions"].as_array().expect("sessions");
        assert_eq!(sessions.len(), 3, "{created}");
        let http = reqwest::blocking::Client::new();
        // The Okta token reads the idp session; Rocket.Chat's login token is the caller.
        let idp = sessions.iter().find(|s| s["kind"] == "idp").expect("idp");
        let r = http
            .get(format!(
                "{base}/api/v1/sessions/{}",
                idp["id"].as_str().expect("id")
            ))
            .header(
                "authorization",
                format!(
                    "SSWS {}",
                    created["api_tokens"][0]["token"].as_str().expect("t")
                ),
            )
            .send()
            .expect("okta");
        assert_eq!(r.status().as_u16(), 200);
        let r = http
            .get(format!("{base}/api/v1/me"))
            .header(
                "x-auth-token",
                sessions[0]["login_token"].as_str().expect("t"),
            )
            .header("x-user-id", sessions[0]["account_id"].as_str().expect("id"))
            .send()
            .expect("me");
        assert_eq!(r.status().as_u16(), 200);
        created
    };
    std::fs::remove_file(&out).expect("rm");
    {
        let (_server, base) = serve(&data, &seed_args);
        assert!(!out.exists(), "a seed applies once: nothing was created");
        let r = reqwest::blocking::Client::new()
            .get(format!(
                "{base}/admin/v1/accounts/{}/sessions",
                created["accounts"][0]["id"].as_str().expect("id")
            ))
            .bearer_auth("cli-admin")
            .send()
            .expect("sessions");
        let v: serde_json::Value = r.json().expect("json");
        assert_eq!(v["sessions"].as_array().expect("list").len(), 3, "{v}");
    }

    std::fs::write(&seed, "[[sessions]]\naccount = \"bob\"\nkind = \"idp\"\n").expect("bad");
    let bad = run(&[
        OsStr::new("serve"),
        OsStr::new("--ephemeral"),
        OsStr::new("--seed"),
        seed.as_os_str(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("\"bob\"") && err.contains("seed file"),
        "{err}"
    );
}

/// jemalloc takes the binary's options (`src/main.rs`): an options symbol under a name it
/// does not read would be ignored without a word. `stats_print` makes it print the options
/// it runs with when the process exits.
#[test]
fn the_allocator_runs_with_the_binarys_options() {
    let out = run_with(
        &[OsStr::new("--version")],
        &[("_RJEM_MALLOC_CONF", "stats_print:true")],
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("opt.narenas: 1\n"), "{err}");
}
