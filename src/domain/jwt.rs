//! Compact JWTs, from the raw segments: sessiond's own EdDSA hub tokens (Rownd), and the
//! RS256 client-auth JWTs that Connect applications sign. Both are verified from the
//! segments with the algorithm pinned here, never taken from the header: the published
//! Connect SDKs send a header of `{}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey, Verifier};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The three segments of a compact JWT, decoded.
pub struct Parts<'a> {
    pub header: Value,
    pub claims: Value,
    /// `header.claims`, the signed bytes.
    pub signed: &'a str,
    pub signature: Vec<u8>,
}

/// Splits and decodes a compact JWT; `None` if it is not three base64url segments with
/// JSON objects in the first two.
pub fn split(token: &str) -> Option<Parts<'_>> {
    let mut it = token.split('.');
    let (h, c, s) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    if !header.is_object() || !claims.is_object() {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(s).ok()?;
    Some(Parts {
        header,
        claims,
        signed: &token[..h.len() + 1 + c.len()],
        signature,
    })
}

/// Parses an RSA public key in SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`)
/// PEM.
pub fn rsa_public_key(pem: &str) -> Option<rsa::RsaPublicKey> {
    rsa::RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem.trim()))
        .ok()
}

/// Verifies an RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature over `signed`.
pub fn verify_rs256(key: &rsa::RsaPublicKey, signed: &str, signature: &[u8]) -> bool {
    let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone());
    match rsa::pkcs1v15::Signature::try_from(signature) {
        Ok(sig) => rsa::signature::Verifier::verify(&vk, signed.as_bytes(), &sig).is_ok(),
        Err(_) => false,
    }
}

/// A freshly generated RSA-2048 key pair as (private PKCS#8 PEM, public SPKI PEM). Slow
/// (tens to hundreds of milliseconds): call it off the async executor.
pub fn generate_rsa_pair() -> (String, String) {
    use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
        .expect("RSA-2048 key generation with the OS RNG succeeds");
    let public = private.to_public_key();
    (
        private
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a generated key encodes")
            .to_string(),
        public
            .to_public_key_pem(LineEnding::LF)
            .expect("a generated key encodes"),
    )
}

/// sessiond's own signing key for Rownd hub JWTs (EdDSA / Ed25519), kept in the data
/// directory (mode 0600) so tokens survive a restart, and published with a `kid`.
pub struct HubKey {
    key: SigningKey,
    kid: String,
}

pub const HUB_KEY_FILE: &str = "hub-signing-key.pem";

impl HubKey {
    pub fn load_or_create(dir: &Path) -> std::io::Result<HubKey> {
        let path = dir.join(HUB_KEY_FILE);
        let key = match std::fs::read_to_string(&path) {
            Ok(pem) => {
                // A key file left readable by others (copied in, or restored from a backup)
                // is restricted to its owner again.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(&path)?.permissions().mode();
                    if mode & 0o077 != 0 {
                        std::fs::set_permissions(
                            &path,
                            std::fs::Permissions::from_mode(mode & 0o600),
                        )?;
                    }
                }
                SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                    std::io::Error::other(format!("{} is not an Ed25519 key: {e}", path.display()))
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::from_bytes(&super::secrets::random::<32>());
                let pem = key
                    .to_pkcs8_pem(Default::default())
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                crate::files::write(&path, pem.as_bytes(), crate::files::PRIVATE, false)?;
                key
            }
            Err(e) => return Err(e),
        };
        let kid = crate::model::hex_encode(&Sha256::digest(key.verifying_key().as_bytes())[..8]);
        Ok(HubKey { key, kid })
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    /// The claims of a token this key signed (header `alg` must be EdDSA); `None` for
    /// anything else. Expiry and revocation are the caller's to check.
    pub fn verify(&self, token: &str) -> Option<Value> {
        let parts = split(token)?;
        if parts.header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
            return None;
        }
        let sig = ed25519_dalek::Signature::from_slice(&parts.signature).ok()?;
        self.key
            .verifying_key()
            .verify(parts.signed.as_bytes(), &sig)
            .ok()?;
        Some(parts.claims)
    }

    /// The JWKS served at `GET /hub/auth/keys`.
    pub fn jwks(&self) -> Value {
        serde_json::json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
        }]})
    }
}

/// Signs `claims` as a client-auth JWT the way the published Connect SDKs do: header `{}`,
/// RS256 with a PKCS#8 (or PKCS#1) private key in PEM. For the demo and for tests.
pub fn sign_client_jwt(private_pem: &str, claims: &Value) -> Option<String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::signature::{SignatureEncoding, Signer as _};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_pem.trim())
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(private_pem.trim()))
        .ok()?;
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(b"{}"),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = rsa::pkcs1v15::SigningKey::<Sha256>::new(key).sign(signed.as_bytes());
    Some(format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_tokens_verify_and_survive_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = HubKey::load_or_create(dir.path()).expect("create");
        let t = k.sign(&serde_json::json!({"sub": "x"}));
        let again = HubKey::load_or_create(dir.path()).expect("reload");
        assert_eq!(again.verify(&t).expect("verifies")["sub"], "x");
        let mut forged = t.clone();
        forged.pop();
        forged.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(again.verify(&forged).is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(HUB_KEY_FILE))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn split_rejects_garbage() {
        assert!(split("a.b").is_none());
        assert!(split("a.b.c.d").is_none());
        assert!(split("e30.e30.").is_some());
        assert!(split("W10.e30.").is_none()); // header `[]` is not an object
    }
}
