//! TLS and CORS with the real binary: `--tls-self-signed` serves HTTPS that a client
//! trusting the printed certificate accepts for `localhost` and `127.0.0.1`, keeps the same
//! certificate across restarts, and shrugs off a plain-HTTP client; `--tls-cert/--tls-key`
//! serve given files; `--cors-origin` answers browsers' preflights and actual requests on
//! the five shapes only, for the configured origins only.

mod common;
use common::bin::*;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// One HTTPS GET over a rustls client that trusts only `ca_pem`, for server name `name`.
fn https_get(base: &str, name: &str, ca_pem: &[u8], path: &str) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject;
    let addr = base.trim_start_matches("https://");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server_name =
        rustls_pki_types::ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), server_name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    match tls.read_to_string(&mut out) {
        Ok(_) => Ok(out),
        // A peer closing without close_notify still gave us the whole answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(out),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn a_self_signed_certificate_is_served_trusted_kept_and_plain_http_does_no_harm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let cert_path = data.join("tls-self-signed-cert.pem");
    let first_cert = {
        let (_server, base) = serve(&data, &["--tls-self-signed"]);
        assert!(base.starts_with("https://127.0.0.1:"), "{base}");
        let cert = std::fs::read(&cert_path).expect("the certificate is in the data directory");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = data.join("tls-self-signed-key.pem");
            let mode = std::fs::metadata(key).expect("key").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is its owner's only: {mode:o}");
        }
        for name in ["localhost", "127.0.0.1"] {
            let answer = https_get(&base, name, &cert, "/healthz").expect("https");
            assert!(answer.starts_with("HTTP/1.1 200"), "{name}: {answer}");
            assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
        }
        // A client that does not trust it is refused by its own TLS stack.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("another certificate");
        let refused = https_get(&base, "localhost", other.cert.pem().as_bytes(), "/healthz");
        assert!(refused.is_err(), "{refused:?}");
        // Plain HTTP to the TLS port gets nothing useful, and the server serves on.
        let plain = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
            .get(format!(
                "http://{}/healthz",
                base.trim_start_matches("https://")
            ))
            .send();
        assert!(
            plain.as_ref().map_or(true, |r| !r.status().is_success()),
            "{plain:?}"
        );
        let again = https_get(&base, "localhost", &cert, "/readyz").expect("https");
        assert!(again.starts_with("HTTP/1.1 200"), "{again}");
        cert
    };
    // The same certificate after a restart: clients told to trust it once keep trusting.
    let (_server, base) = serve(&data, &["--tls-self-signed"]);
    assert_eq!(std::fs::read(&cert_path).expect("cert"), first_cert);
    let answer = https_get(&base, "localhost", &first_cert, "/healthz").expect("https");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn given_certificate_files_are_served_and_bad_ones_stop_the_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("cert");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("key");
    {
        let (_server, base) = serve(
            &tmp.path().join("data"),
            &[
                "--tls-cert",
                cert.to_str().expect("utf-8"),
                "--tls-key",
                key.to_str().expect("utf-8"),
            ],
        );
        let answer =
            https_get(&base, "localhost", made.cert.pem().as_bytes(), "/healthz").expect("https");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // The certificate given as the key: the start fails, naming the flag.
    let out = run(&[
        OsStr::new("serve"),
        OsStr::new("--ephemeral"),
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
        OsStr::new("--tls-cert"),
        cert.as_os_str(),
        OsStr::new("--tls-key"),
        cert.as_os_str(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-key"), "{err}");
}

fn send(
    http: &reqwest::blocking::Client,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let mut rb = http.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        url,
    );
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().expect("request")
}

fn header(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[test]
fn cors_answers_configured_origins_on_the_five_shapes_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, base) = serve(
        &tmp.path().join("data"),
        &["--cors-origin", "http://localhost:3000,https://app.example"],
    );
    let http = reqwest::blocking::Client::new();
    let okta = format!("{base}/api/v1/users/00u000000000000000x0/sessions");
    let preflight = |origin: &str, method: &str, url: &str| {
        send(
            &http,
            "OPTIONS",
            url,
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
        )
    };

    let r = preflight("http://localhost:3000", "DELETE", &okta);
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("http://localhost:3000")
    );
    assert_eq!(
        header(&r, "access-control-allow-methods").as_deref(),
        Some("DELETE")
    );
    assert_eq!(
        header(&r, "access-control-allow-headers").as_deref(),
        Some("authorization, content-type")
    );
    assert_eq!(header(&r, "access-control-max-age").as_deref(), Some("600"));
    // Origins compare without regard to case.
    let r = preflight(
        "HTTPS://APP.EXAMPLE",
        "POST",
        &format!("{base}/api/v1/users.logoutOtherClients"),
    );
    assert_eq!(r.status().as_u16(), 204);

    // Another origin, or a method the endpoint does not take: 403 and no CORS headers.
    for (origin, method) in [
        ("http://evil.example", "DELETE"),
        ("http://localhost:3000", "PUT"),
    ] {
        let r = preflight(origin, method, &okta);
        assert_eq!(r.status().as_u16(), 403, "{origin} {method}");
        assert_eq!(header(&r, "access-control-allow-origin"), None);
    }

    // An actual request, even one refused, carries the headers a script needs to read it.
    let r = send(
        &http,
        "GET",
        &format!("{base}/api/v1/me"),
        &[("origin", "http://localhost:3000")],
    );
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("http://localhost:3000")
    );
    assert!(header(&r, "vary").is_some_and(|v| v.contains("Origin")));
    assert!(
        header(&r, "access-control-expose-headers")
            .is_some_and(|v| v.contains("X-Rate-Limit-Remaining"))
    );
    let r = send(
        &http,
        "GET",
        &format!("{base}/api/v1/me"),
        &[("origin", "http://evil.example")],
    );
    assert_eq!(header(&r, "access-control-allow-origin"), None);

    // The admin API and the operator's endpoints are not for browsers.
    let r = preflight(
        "http://localhost:3000",
        "GET",
        &format!("{base}/admin/v1/audit"),
    );
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    let r = send(
        &http,
        "GET",
        &format!("{base}/healthz"),
        &[("origin", "http://localhost:3000")],
    );
    assert_eq!(header(&r, "access-control-allow-origin"), None);
}

#[test]
fn without_origins_cors_is_off_and_a_bad_origin_stops_the_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, base) = serve(&tmp.path().join("data"), &[]);
    let r = send(
        &reqwest::blocking::Client::new(),
        "OPTIONS",
        &format!("{base}/api/v1/me"),
        &[
            ("origin", "http://localhost:3000"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(header(&r, "access-control-allow-origin"), None);

    for bad in [
        "localhost:3000",
        "http://localhost:3000/app",
        "*,http://a.example",
    ] {
        let out = run(&[
            OsStr::new("serve"),
            OsStr::new("--ephemeral"),
            OsStr::new("--cors-origin"),
            OsStr::new(bad),
        ]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--cors-origin"), "{bad}: {err}");
    }
}
