//! What the fuzz targets check: one function per target, over raw bytes, that must never
//! panic. Shared on purpose: `tests/fuzz_regressions.rs` compiles this same file (by path)
//! and replays every input under `fuzz/regressions/<target>/`, so an input that once
//! crashed a target stays a regression test that `cargo test` runs on stable, without
//! libFuzzer. Only `sessiond` and its own dependencies may be used here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sessiond::domain::{ClientAuthError, Config, NewApp, Sessiond, SystemClock, jwt};
use sessiond::model::*;
use sessiond::store::{Durability, Store, StoreOptions, codec};
use sha2::{Digest, Sha256};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The `Authorization` scheme of Connect client JWTs (private in `sessiond`).
pub const SCHEME: &str = "SudomimusClientJWT";

/// The anchor of the fixture's one application.
pub const ANCHOR: &str = "fuzz-app";

/// A service over a store in a temporary directory, with one application whose Connect key
/// is an RSA-1024 pair generated here: smaller than the SDKs' 2048 bits so that signing a
/// client JWT per input is not the whole cost of the target (no check depends on the size).
/// Field order: the service drops before its directory.
pub struct Fixture {
    pub s: Sessiond,
    /// The application's Connect private key (PKCS#8 PEM), to sign client JWTs.
    pub private_pem: String,
    /// Fresh `jti`s for the client JWTs the `client_auth` check completes itself.
    jtis: AtomicU64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Builds the fixture.
    pub fn open() -> Fixture {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).expect("RSA key");
        let private_pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encode private key")
            .to_string();
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("encode public key");
        let dir = tempfile::Builder::new()
            .prefix("sessiond-fuzz-")
            .tempdir()
            .expect("tempdir");
        let opts = StoreOptions {
            cache_bytes: 8 << 20,
            durability: Durability::None,
        };
        let store = Store::open(dir.path(), &opts).expect("open store");
        let s = Sessiond::new(store, Config::default(), Arc::new(SystemClock)).expect("sessiond");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(s.create_app(NewApp {
            id: Some(ANCHOR.into()),
            name: "fuzz".into(),
            connect_public_key_pem: Some(public_pem),
            ..NewApp::default()
        }))
        .expect("create app");
        Fixture {
            s,
            private_pem,
            jtis: AtomicU64::new(0),
            _dir: dir,
        }
    }
}

/// The fixture of a fuzzing process, built on first use. (Its temporary directory is never
/// removed: libFuzzer ends the process with `exit`.)
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::open)
}

/// `jwt::split` and `HubKey::verify` on arbitrary text. When a token splits: its signed
/// part is `header.claims` as given, and the claims re-signed by the hub key verify back to
/// themselves. Nothing the fuzzer writes verifies as ours.
pub fn jwt_split(f: &Fixture, data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    let hub = f.s.hub();
    if let Some(parts) = jwt::split(&token) {
        assert!(parts.header.is_object() && parts.claims.is_object());
        assert!(token.starts_with(parts.signed));
        assert_eq!(token.as_bytes().get(parts.signed.len()), Some(&b'.'));
        assert_eq!(parts.signed.matches('.').count(), 1);
        let resigned = hub.sign(&parts.claims);
        // Compared with the claims' own JSON text parsed again: without serde_json's
        // `float_roundtrip`, a float may move by an ulp through one text round trip.
        let reparsed: Value =
            serde_json::from_str(&parts.claims.to_string()).expect("claims text re-parses");
        assert_eq!(hub.verify(&resigned), Some(reparsed));
    }
    assert_eq!(hub.verify(&token), None, "a forged hub JWT verified");
    let _ =
        f.s.check_hub_jwt(&token)
            .expect("check_hub_jwt: store error");
}

/// `Sessiond::client_auth(Some(header), body)`. Input: a mode byte, then the header text
/// (or JSON claims) up to the first NUL, then the body.
/// - mode 0: the header as given; 1: `SudomimusClientJWT ` + the given text. Neither can
///   carry a valid signature, so both must fail as `Invalid`.
/// - mode 2: the text as JSON claims, signed with the application's key (RS256, header
///   `{}` as the SDKs send): any outcome but a panic or a store error.
/// - mode 3: as 2 for a JSON object whose missing required claims (`iss`, `aud`, `iat`,
///   `exp`, `body_sha256`, `jti`) are filled in validly; if the fuzzer gave none of them,
///   authentication must succeed.
pub fn client_auth(f: &Fixture, data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (text, body) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let header = match mode % 4 {
        0 => text.into_owned(),
        1 => format!("{SCHEME} {text}"),
        2 => {
            let Ok(claims) = serde_json::from_str::<Value>(&text) else {
                return;
            };
            let token = jwt::sign_client_jwt(&f.private_pem, &claims).expect("sign");
            let r = f.s.client_auth(Some(&format!("{SCHEME} {token}")), body);
            r.expect("client_auth: store error").ok();
            return;
        }
        _ => {
            let Ok(Value::Object(mut claims)) = serde_json::from_str::<Value>(&text) else {
                return;
            };
            const REQUIRED: [&str; 6] = ["iss", "aud", "iat", "exp", "body_sha256", "jti"];
            let given = REQUIRED.iter().any(|k| claims.contains_key(*k));
            let now = f.s.now() / 1000;
            let jti = format!("fuzz-{}", f.jtis.fetch_add(1, Ordering::Relaxed));
            for (k, v) in [
                ("iss", json!(ANCHOR)),
                ("aud", json!("sudomimus-connect")),
                ("iat", json!(now)),
                ("exp", json!(now + 30)),
                ("body_sha256", json!(STANDARD.encode(Sha256::digest(body)))),
                ("jti", json!(jti)),
            ] {
                claims.entry(k).or_insert(v);
            }
            let token = jwt::sign_client_jwt(&f.private_pem, &Value::Object(claims)).expect("sign");
            let r =
                f.s.client_auth(Some(&format!("{SCHEME} {token}")), body)
                    .expect("client_auth: store error");
            if !given {
                let app = r.expect("a complete, valid client JWT authenticates").app;
                assert_eq!(app.anchor.as_str(), ANCHOR);
            }
            return;
        }
    };
    let r =
        f.s.client_auth(Some(&header), body)
            .expect("client_auth: store error");
    assert!(
        matches!(r, Err(ClientAuthError::Invalid(_))),
        "an unsigned header was not refused as invalid: {header:?} -> {r:?}"
    );
}

/// The id parsers on arbitrary text: whatever parses prints back as the same text, and
/// hex and generated account ids round-trip.
pub fn ids(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    if let Some(a) = AccountId::parse(&s) {
        assert_eq!(a.as_str(), s);
        assert_eq!(a.to_string(), s);
    }
    if let Some(id) = SessionId::parse(&s) {
        assert_eq!(id.to_string(), s);
    }
    if let Some(a) = Anchor::parse(&s) {
        assert_eq!(a.as_str(), s);
        assert!((1..=63).contains(&s.len()));
    }
    if let Some(bytes) = hex_decode(&s) {
        assert_eq!(hex_encode(&bytes), s);
    }
    assert_eq!(hex_decode(&hex_encode(data)).as_deref(), Some(data));
    if let Some(random) = data.first_chunk::<17>() {
        let id = AccountId::from_random(*random);
        assert_eq!(AccountId::parse(id.as_str()), Some(id));
    }
}

/// A decoded record re-encodes to exactly its input (the encoding is canonical) and decodes
/// again to itself.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    if let Ok(v) = codec::decode::<T>(data) {
        let again = codec::encode(&v).expect("a decoded record encodes");
        assert_eq!(
            again,
            data,
            "{} decodes from bytes it does not encode to",
            std::any::type_name::<T>()
        );
        assert_eq!(codec::decode::<T>(&again).as_ref(), Ok(&v));
    }
}

/// The store's record codec on arbitrary bytes, as every record type it stores.
pub fn codec(data: &[u8]) {
    round_trip::<Session>(data);
    round_trip::<TokenRecord>(data);
    round_trip::<Marker>(data);
    round_trip::<Application>(data);
    round_trip::<Account>(data);
    round_trip::<RowndKey>(data);
    round_trip::<ApiToken>(data);
    round_trip::<RememberedDevice>(data);
}
