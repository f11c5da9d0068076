//! Secrets: random tokens, their SHA-256 hashes, constant-time comparison, argon2id
//! passwords. Secrets are 256-bit CSPRNG values; a session's tokens are its id and 128
//! random bits. Only hashes of tokens are ever stored.

use crate::model::TokenHash;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `n` bytes from the operating system's CSPRNG.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the OS random source is available");
    b
}

/// A new session's id: its creation time in milliseconds (48 bits, big-endian), then 80
/// random bits. Ids in creation order put each new session at the end of the `sessions`
/// tree, as UUIDv7 keys do in a B-tree index: the leaves new sessions fill are written
/// whole once, where random ids scattered a small write over every leaf of the tree, and
/// sled's log kept each leaf's pieces alive in many segments. An id is no secret (a token's
/// secret is its other 128 bits, `session_token`); 80 random bits keep ids of the same
/// millisecond apart.
pub fn new_session_id(now: crate::model::Millis) -> crate::model::SessionId {
    let mut id = random::<16>();
    id[..6].copy_from_slice(&(now.max(0) as u64).to_be_bytes()[2..]);
    crate::model::SessionId(id)
}

/// A new 256-bit token as URL-safe base64 without padding (43 characters).
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random::<32>())
}

/// A new token of a session: URL-safe base64 of the session's id and 128 random bits, 43
/// characters like `new_token`'s. The id lets a check find the session's record (where the
/// token's hash is) in one read; the random half is the secret. A token of an older store
/// (256 random bits) decodes to an id no session has, and is looked up by hash instead.
pub fn session_token(session: &crate::model::SessionId) -> String {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&session.0);
    b[16..].copy_from_slice(&random::<16>());
    URL_SAFE_NO_PAD.encode(b)
}

/// The session id a token of `session_token`'s form names; `None` for any other text.
pub fn session_of_token(token: &str) -> Option<crate::model::SessionId> {
    if token.len() != 43 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let id: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
    Some(crate::model::SessionId(id))
}

pub fn hash(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// Compares two byte strings in time independent of where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The lowercase hex SHA-256 of a password: what is argon2-hashed. Meteor (Rocket.Chat)
/// does the same, which lets a client log in with `{"digest", "algorithm": "sha-256"}`
/// instead of the plain password.
pub fn password_digest(password: &str) -> String {
    crate::model::hex_encode(&Sha256::digest(password.as_bytes()))
}

/// An argon2id PHC string for a password (of its SHA-256 digest, see `password_digest`).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&random::<16>()).expect("16 bytes is a valid salt");
    argon2::Argon2::default()
        .hash_password(password_digest(password).as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

/// Checks a password's SHA-256 hex digest against a PHC string from `hash_password`.
pub fn verify_digest(digest: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(digest.to_ascii_lowercase().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    verify_digest(&password_digest(password), phc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_and_distinct() {
        let a = new_token();
        let b = new_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).expect("b64").len(), 32);
        assert_ne!(a, b);
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn session_ids_sort_by_creation_and_differ_within_a_millisecond() {
        let t = 1_765_000_000_123;
        let a = new_session_id(t);
        let b = new_session_id(t);
        assert_ne!(a, b);
        assert_eq!(a.0[..6], b.0[..6]);
        assert_eq!(a.0[..6], (t as u64).to_be_bytes()[2..]);
        let later = new_session_id(t + 1);
        assert!(later.0 > a.0 && later.0 > b.0);
        // A clock before 1970 gives time 0, not a wrapped id from the far future.
        assert_eq!(new_session_id(-5).0[..6], [0; 6]);
    }

    #[test]
    fn passwords_are_argon2id() {
        let phc = hash_password("s3cret");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &phc));
        assert!(!verify_password("s3cret!", &phc));
        assert!(!verify_password("s3cret", "not a phc string"));
        assert!(verify_digest(
            &password_digest("s3cret").to_uppercase(),
            &phc
        ));
    }
}
