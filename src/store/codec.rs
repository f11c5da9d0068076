//! The one place that knows how records become bytes: a format-version byte, then bincode
//! 1.3.3 (big-endian, fixed-width integers, size-limited, no trailing bytes). Swapping the
//! encoding (postcard is the maintained alternative) is a change to this file and a new
//! version byte, nothing else. A record type whose fields change gets a layout byte of its
//! own (`SESSION_WITH_TOKENS`), so a record of the old layout is read as such and never
//! mistaken for a damaged new one. Watermark records, which every revoke-all reads and
//! writes, are the exception: variable-length integers (`encode_compact`) in a layout of
//! their own (`MARKERS_COMPACT`, built by `marker_codec.rs`).

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format of every value written today, but sessions.
const FORMAT_V1: u8 = 1;

/// Session records since they hold their current tokens' hashes (`Session::tokens`); a
/// session record tagged `FORMAT_V1` has the layout before.
pub const SESSION_WITH_TOKENS: u8 = 2;

/// `markers` records since they hold the audit entry of the revoke-all that last wrote them,
/// and each distinct revocation once (`MarkerRecord` in `store`); a `markers` record tagged
/// `FORMAT_V1` is a plain `ScopeMarkers`.
pub const MARKERS_WITH_AUDIT: u8 = 2;

/// `markers` records in the compact layout of `store::marker_codec`, with variable-length
/// integers ([`encode_compact`]).
pub const MARKERS_COMPACT: u8 = 3;

/// No record comes near this; a length prefix claiming more is corruption, not a reason
/// to allocate.
const MAX_RECORD: u64 = 1 << 20;

/// What both integer encodings share: the size limit, byte order, and no trailing bytes.
fn base() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_RECORD)
        .with_big_endian()
}

fn options() -> impl Options {
    base().with_fixint_encoding().reject_trailing_bytes()
}

/// The same, with variable-length integers (a small number takes one byte).
fn compact_options() -> impl Options {
    base().with_varint_encoding().reject_trailing_bytes()
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    encode_as(FORMAT_V1, value)
}

/// Encodes with the given version byte (`SESSION_WITH_TOKENS` for sessions).
pub fn encode_as<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, String> {
    encode_with(options(), version, value)
}

/// Encodes with the given version byte in variable-length integers (`MARKERS_COMPACT`).
pub fn encode_compact<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, String> {
    encode_with(compact_options(), version, value)
}

fn encode_with<T: Serialize>(o: impl Options, version: u8, value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64);
    out.push(version);
    o.serialize_into(&mut out, value)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The version byte of a record and the bytes after it.
pub fn split_version(bytes: &[u8]) -> Result<(u8, &[u8]), String> {
    bytes
        .split_first()
        .map(|(v, rest)| (*v, rest))
        .ok_or_else(|| "empty record".to_owned())
}

/// Decodes what follows a version byte the caller has already matched.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    options().deserialize(body).map_err(|e| e.to_string())
}

/// Decodes what follows a version byte of a variable-length layout.
pub fn decode_compact_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    compact_options()
        .deserialize(body)
        .map_err(|e| e.to_string())
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => options().deserialize(rest).map_err(|e| e.to_string()),
        Some((other, _)) => Err(format!("unknown record format version {other}")),
        None => Err("empty record".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use proptest::prelude::*;

    fn session(label: Option<String>, seq: u64, expires: i64) -> Session {
        Session {
            id: SessionId([3; 16]),
            account: AccountId::from_random([1; 17]),
            app: Some(AppKey(4)),
            kind: SessionKind::Oauth,
            seq,
            device: DeviceInfo {
                label,
                ip: None,
                user_agent: Some("ua".into()),
            },
            method: "admin".into(),
            created: 1,
            last_used: 2,
            expires,
            has_refresh: true,
            revoked: None,
            tokens: vec![SessionToken {
                hash: TokenHash([5; 32]),
                kind: TokenKind::Refresh,
                issued: 1,
                expires,
            }],
        }
    }

    proptest! {
        #[test]
        fn sessions_round_trip(label in proptest::option::of(".{0,40}"), seq in any::<u64>(), exp in any::<i64>()) {
            let s = session(label, seq, exp);
            let bytes = encode(&s).unwrap();
            prop_assert_eq!(decode::<Session>(&bytes).unwrap(), s);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode::<Session>(&bytes);
            let _ = decode::<Application>(&bytes);
        }
    }

    #[test]
    fn truncated_and_unknown_versions_are_errors() {
        let bytes = encode(&session(None, 9, 9)).unwrap();
        assert!(decode::<Session>(&bytes[..bytes.len() - 1]).is_err());
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(decode::<Session>(&v2).unwrap_err().contains("version 2"));
        assert!(decode::<Session>(&[]).is_err());
        // A huge length prefix is refused by the limit instead of allocating.
        let mut huge = vec![FORMAT_V1];
        huge.extend_from_slice(&[0xff; 16]);
        assert!(decode::<Vec<u8>>(&huge).is_err());
    }
}
