//! Optional TLS on the listener (rustls, ring): a certificate chain and key from PEM files
//! (`--tls-cert/--tls-key`), or a self-signed certificate for local development
//! (`--tls-self-signed`) kept in the data directory, so that clients told to trust it once
//! keep trusting it across restarts. Several real SDKs refuse plain http (the Okta Python
//! SDK does).

use anyhow::Context;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The self-signed certificate and its key, in the data directory.
pub const SELF_SIGNED_CERT: &str = "tls-self-signed-cert.pem";
pub const SELF_SIGNED_KEY: &str = "tls-self-signed-key.pem";

/// What the listener serves TLS with, and how to tell a client to trust it.
pub struct Tls {
    pub config: Arc<ServerConfig>,
    /// The certificate file (for a client's CA bundle when self-signed).
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate, `AB:CD:…`.
    pub fingerprint: String,
}

/// TLS from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
/// Errors name the file and what is wrong with it.
pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("--tls-cert {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("--tls-cert {}: not PEM certificates", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "--tls-cert {}: no certificate in it",
        cert.display()
    );
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("--tls-key {}: no PEM private key in it", key.display()))?;
    let fingerprint = fingerprint(&chain[0]);
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .with_context(|| {
                format!(
                    "--tls-cert {} and --tls-key {} do not make a usable pair",
                    cert.display(),
                    key.display()
                )
            })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        cert_path: cert.to_owned(),
        fingerprint,
    })
}

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`: the one in `dir` if
/// there is one, else a new one written there (the key owner-only).
pub fn self_signed(dir: &Path) -> anyhow::Result<Tls> {
    let (cert, key) = (dir.join(SELF_SIGNED_CERT), dir.join(SELF_SIGNED_KEY));
    if !(cert.exists() && key.exists()) {
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .context("generating a self-signed certificate")?;
        let written = |path: &Path, bytes: &[u8], mode| {
            crate::files::write(path, bytes, mode, true)
                .with_context(|| format!("writing {}", path.display()))
        };
        written(
            &key,
            made.key_pair.serialize_pem().as_bytes(),
            crate::files::PRIVATE,
        )?;
        written(&cert, made.cert.pem().as_bytes(), 0o644)?;
        tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    }
    from_files(&cert, &key)
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
