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

/// `jwt::split`, `HubKey::verify` and `Sessiond::check_hub_jwt` on arbitrary text. When a
/// token splits: its signed part is `header.claims` as given, and the claims re-signed by
/// the hub key verify back to themselves and pass `check_hub_jwt`'s signature check (an
/// unknown `jti`). Nothing the fuzzer writes verifies as ours.
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
        assert_eq!(hub.verify(&resigned), Some(reparsed.clone()));
        // Past the signature, `check_hub_jwt` reads the claims: a string `jti` is looked up
        // (and no hub JWT the fixture issued has one the fuzzer can write), anything else
        // is unknown without a lookup.
        let (check, claims) =
            f.s.check_hub_jwt(&resigned)
                .expect("check_hub_jwt: store error");
        assert!(
            matches!(check, sessiond::domain::TokenCheck::Unknown),
            "a hub JWT with claims {reparsed} was {check:?}"
        );
        let has_jti = reparsed.get("jti").is_some_and(Value::is_string);
        assert_eq!(claims, has_jti.then_some(reparsed));
    }
    assert_eq!(hub.verify(&token), None, "a forged hub JWT verified");
    let (check, claims) =
        f.s.check_hub_jwt(&token)
            .expect("check_hub_jwt: store error");
    assert!(matches!(check, sessiond::domain::TokenCheck::Unknown) && claims.is_none());
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
    round_trip::<ScopeMarkers>(data);
    round_trip::<Application>(data);
    round_trip::<Account>(data);
    round_trip::<RowndKey>(data);
    round_trip::<ApiToken>(data);
    round_trip::<RememberedDevice>(data);
    round_trip::<AuditEntry>(data);
    markers_record(data);
}

/// A `markers` record (watermarks naming their revocations by position, and the audit entry
/// held) decodes without a panic, and what it decodes to encodes to bytes that decode the
/// same. Not byte-canonical: a revocation no watermark names, or one listed twice, is
/// dropped when written again.
fn markers_record(data: &[u8]) {
    if let Ok((markers, held)) = sessiond::store::decode_markers_record(data) {
        let again = sessiond::store::encode_markers_record(&markers, held.as_ref())
            .expect("a decoded record encodes");
        let (m2, h2) =
            sessiond::store::decode_markers_record(&again).expect("an encoded record decodes");
        assert_eq!((&m2, &h2), (&markers, &held));
    }
}

/// Reads key components off the fuzzer's bytes; past the end, every read gives zeros.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        for b in &mut out {
            *b = self.byte();
        }
        out
    }

    /// A number, biased towards the edges where byte order and numeric order could part:
    /// small values, values just below `u64::MAX` (as `i64`: small negatives), one set bit
    /// (the boundaries between big-endian bytes), or any 8 bytes.
    fn num(&mut self) -> u64 {
        let tag = self.byte();
        let small = u64::from(tag >> 2);
        match tag & 3 {
            0 => small,
            1 => u64::MAX - small,
            2 => 1u64.rotate_left(u32::from(tag >> 2)),
            _ => u64::from_be_bytes(self.array()),
        }
    }

    /// An account id: one of a few fixed ones (so that two tuples often share one, or
    /// differ only in their last byte), or 20 bytes as given (the key layout does not care
    /// whether they are base62).
    fn account(&mut self) -> AccountId {
        let tag = self.byte();
        match tag % 8 {
            0 => AccountId(*b"00u00000000000000000"),
            1 => AccountId(*b"00u00000000000000001"),
            2 => AccountId(*b"00uzzzzzzzzzzzzzzzzz"),
            3 => AccountId([0; AccountId::LEN]),
            4 => AccountId([0xff; AccountId::LEN]),
            5 => AccountId::from_random(self.array()),
            _ => AccountId(self.array()),
        }
    }

    /// An optional application: none, the reserved keys 0 and `u64::MAX`, or any number.
    fn app(&mut self) -> Option<AppKey> {
        match self.byte() % 4 {
            0 => None,
            _ => Some(AppKey(self.num())),
        }
    }

    fn session(&mut self) -> SessionId {
        let tag = self.byte();
        match tag % 4 {
            0 => SessionId([tag; 16]),
            1 => {
                let mut id = [0; 16];
                id[15] = tag;
                SessionId(id)
            }
            _ => SessionId(self.array()),
        }
    }

    fn scope(&mut self) -> Scope {
        match self.byte() % 4 {
            0 => Scope::NoApp,
            1 => Scope::AllApps,
            _ => Scope::App(AppKey(self.num())),
        }
    }

    /// Short text (0 to 15 bytes, lossily UTF-8), so that two tuples often share a prefix.
    fn text(&mut self) -> String {
        let len = usize::from(self.byte() % 16).min(self.0.len());
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(text).into_owned()
    }
}

/// One of everything a key is built from.
#[derive(Debug)]
struct KeyParts {
    account: AccountId,
    app: Option<AppKey>,
    seq: u64,
    session: SessionId,
    expires: i64,
    scope: Scope,
    sector: SectorId,
    subject: String,
    jti_app: AppKey,
    jti: String,
    device: String,
}

impl KeyParts {
    fn read(r: &mut Reader) -> KeyParts {
        KeyParts {
            account: r.account(),
            app: r.app(),
            seq: r.num(),
            session: r.session(),
            expires: r.num() as i64,
            scope: r.scope(),
            sector: SectorId(r.num()),
            subject: r.text(),
            jti_app: AppKey(r.num()),
            jti: r.text(),
            device: r.text(),
        }
    }

    /// The application as the key layout sees it: none is 0 (application keys start at 1).
    fn app_num(&self) -> u64 {
        self.app.map_or(0, |a| a.0)
    }

    /// The scope as the key layout sees it: no application is 0, every application is
    /// `u64::MAX` (keys no application is given).
    fn scope_num(&self) -> u64 {
        match self.scope {
            Scope::NoApp => 0,
            Scope::App(a) => a.0,
            Scope::AllApps => u64::MAX,
        }
    }
}

/// Asserts that two keys compare as the tuples they were built from.
fn same_order<T: Ord + Debug>(tree: &str, k1: &[u8], k2: &[u8], t1: T, t2: T) {
    assert_eq!(
        k1.cmp(k2),
        t1.cmp(&t2),
        "{tree}: keys {k1:02x?} and {k2:02x?} do not sort as {t1:?} and {t2:?}"
    );
}

/// Every key encoder of `sessiond::store::keys` over components made from arbitrary
/// bytes. Each key splits back into its components (fixed widths, big-endian integers),
/// the decoder `session_of_by_account` finds the session, two keys of a tree sort as their
/// component tuples do (so a range or prefix scan means what it says), and the
/// `by_account` prefix of an account, or of an (account, application) pair, starts exactly
/// the keys of that account or pair.
pub fn keys(data: &[u8]) {
    use sessiond::store::keys;
    // The decoder on raw bytes: the last 16 bytes, if there are 16.
    let tail = data
        .len()
        .checked_sub(16)
        .map(|i| SessionId(data[i..].try_into().expect("exactly the last 16 bytes")));
    assert_eq!(keys::session_of_by_account(data), tail);

    let mut r = Reader(data);
    let a = KeyParts::read(&mut r);
    let b = KeyParts::read(&mut r);
    for p in [&a, &b] {
        let k = keys::by_account(&p.account, p.app, p.seq, &p.session);
        assert_eq!(k.len(), AccountId::LEN + 8 + 8 + 16);
        assert_eq!(k[..AccountId::LEN], p.account.0);
        assert_eq!(k[AccountId::LEN..][..8], p.app_num().to_be_bytes());
        assert_eq!(k[AccountId::LEN + 8..][..8], p.seq.to_be_bytes());
        assert_eq!(keys::session_of_by_account(&k), Some(p.session));
        assert_eq!(keys::app_part(p.app), p.app_num().to_be_bytes());
        let account_prefix = keys::by_account_prefix(&p.account, None);
        let pair_prefix = keys::by_account_prefix(&p.account, Some(p.app));
        assert_eq!(account_prefix, p.account.0);
        assert_eq!(pair_prefix.len(), AccountId::LEN + 8);
        assert!(k.starts_with(&pair_prefix) && pair_prefix.starts_with(&account_prefix));

        let k = keys::by_expiry(p.expires, &p.session);
        assert_eq!(k.len(), 24);
        assert_eq!(k[..8], (p.expires.max(0) as u64).to_be_bytes());
        assert_eq!(k[8..], p.session.0);

        let k = keys::marker(&p.account, p.scope);
        assert_eq!(k.len(), keys::MARKER_KEY_LEN);
        assert_eq!(k[..AccountId::LEN], p.account.0);
        assert_eq!(k[AccountId::LEN..][..8], p.scope_num().to_be_bytes());

        let k = keys::app(p.jti_app);
        assert_eq!(AppKey(u64::from_be_bytes(k)), p.jti_app);

        let k = keys::subject(&p.account, p.sector);
        assert_eq!(k.len(), AccountId::LEN + 8);
        assert_eq!(k[..AccountId::LEN], p.account.0);
        assert_eq!(k[AccountId::LEN..], p.sector.0.to_be_bytes());

        let k = keys::subject_owner(p.sector, &p.subject);
        assert_eq!(k[..8], p.sector.0.to_be_bytes());
        assert_eq!(k[8..], *p.subject.as_bytes());

        let k = keys::jti(p.jti_app, &p.jti);
        assert_eq!(k[..8], p.jti_app.0.to_be_bytes());
        assert_eq!(k[8..], *p.jti.as_bytes());

        let k = keys::device(&p.account, &p.device);
        assert_eq!(k[..AccountId::LEN], p.account.0);
        assert_eq!(k[AccountId::LEN..], *p.device.as_bytes());
    }

    // Byte order is component order, numbers compared as numbers.
    same_order(
        "by_account",
        &keys::by_account(&a.account, a.app, a.seq, &a.session),
        &keys::by_account(&b.account, b.app, b.seq, &b.session),
        (a.account, a.app_num(), a.seq, a.session),
        (b.account, b.app_num(), b.seq, b.session),
    );
    same_order(
        "by_expiry",
        &keys::by_expiry(a.expires, &a.session),
        &keys::by_expiry(b.expires, &b.session),
        (a.expires.max(0), a.session),
        (b.expires.max(0), b.session),
    );
    same_order(
        "markers",
        &keys::marker(&a.account, a.scope),
        &keys::marker(&b.account, b.scope),
        (a.account, a.scope_num()),
        (b.account, b.scope_num()),
    );
    same_order(
        "apps",
        &keys::app(a.jti_app),
        &keys::app(b.jti_app),
        a.jti_app,
        b.jti_app,
    );
    same_order(
        "subjects",
        &keys::subject(&a.account, a.sector),
        &keys::subject(&b.account, b.sector),
        (a.account, a.sector.0),
        (b.account, b.sector.0),
    );
    same_order(
        "subject_owners",
        &keys::subject_owner(a.sector, &a.subject),
        &keys::subject_owner(b.sector, &b.subject),
        (a.sector.0, a.subject.as_bytes()),
        (b.sector.0, b.subject.as_bytes()),
    );
    same_order(
        "jtis",
        &keys::jti(a.jti_app, &a.jti),
        &keys::jti(b.jti_app, &b.jti),
        (a.jti_app, a.jti.as_bytes()),
        (b.jti_app, b.jti.as_bytes()),
    );
    same_order(
        "devices",
        &keys::device(&a.account, &a.device),
        &keys::device(&b.account, &b.device),
        (a.account, a.device.as_bytes()),
        (b.account, b.device.as_bytes()),
    );

    // Prefix scans select exactly their account, or their (account, application) pair.
    let kb = keys::by_account(&b.account, b.app, b.seq, &b.session);
    let same_account = a.account == b.account;
    assert_eq!(
        kb.starts_with(&keys::by_account_prefix(&a.account, None)),
        same_account
    );
    assert_eq!(
        kb.starts_with(&keys::by_account_prefix(&a.account, Some(a.app))),
        same_account && a.app_num() == b.app_num(),
        "the pair prefix of {a:?} and the by_account key of {b:?}"
    );
    assert_eq!(
        keys::device(&b.account, &b.device).starts_with(&a.account.0),
        same_account
    );
}

/// The fixture of the `http` target: the service behind its own `Router` (in process, no
/// socket), an account with a live session of each kind, and the credentials of each shape,
/// which an input names by placeholder (see `http`).
pub struct HttpFixture {
    pub f: Fixture,
    rt: tokio::runtime::Runtime,
    router: sessiond::http::Router,
    account: AccountId,
    /// Placeholder → value, refreshed when an input revoked the sessions behind them.
    creds: std::sync::Mutex<Vec<(&'static str, String)>>,
    /// The sessions behind `creds`: renewed when one of them is no longer alive.
    live: std::sync::Mutex<Vec<SessionId>>,
}

/// The admin token of the `http` fixture.
pub const HTTP_ADMIN: &str = "fuzz-admin-token";

impl HttpFixture {
    pub fn open() -> HttpFixture {
        use sessiond::domain::NewAccount;
        let f = Fixture::open();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let s = &f.s;
        let (account, fixed) = rt.block_on(async {
            s.ensure_admin_token(Some(HTTP_ADMIN))
                .await
                .expect("admin token");
            let account = s
                .create_account(NewAccount {
                    login: "alice".into(),
                    email: Some("alice@example.com".into()),
                    name: None,
                    password: Some("pw-alice".into()),
                })
                .await
                .expect("account")
                .id;
            let app = s.app_by_anchor(ANCHOR).expect("app").expect("fuzz-app");
            let (key, secret) = s.add_rownd_key(&app).await.expect("rownd key");
            let scopes = [
                "okta.users.manage",
                "okta.sessions.read",
                "okta.sessions.manage",
            ];
            let (_, okta) = s
                .create_api_token(
                    "fuzz",
                    scopes.iter().map(|s| s.to_string()).collect(),
                    Some(u32::MAX),
                )
                .await
                .expect("api token");
            let subject = s.subject(&account, app.sector).expect("subject");
            let fixed = vec![
                ("$ADMIN", HTTP_ADMIN.to_owned()),
                ("$USER", account.as_str().to_owned()),
                ("$KEY", key),
                ("$SECRET", secret),
                ("$OKTA", okta),
                ("$SUBJECT", subject),
            ];
            (account, fixed)
        });
        // The flood guard is off (it would refuse most inputs: they share credentials); the
        // body cap is small, so the fuzzer meets it.
        let limits = sessiond::http::Limits {
            max_body_bytes: 4096,
            per_credential_per_minute: 0,
            ..Default::default()
        };
        let router = sessiond::http::Router::new(f.s.clone(), limits);
        let h = HttpFixture {
            f,
            rt,
            router,
            account,
            creds: std::sync::Mutex::new(fixed),
            live: std::sync::Mutex::new(Vec::new()),
        };
        h.renew_sessions();
        h
    }

    /// Issues a fresh idp and login session when one behind the credentials is not alive.
    fn renew_sessions(&self) {
        use sessiond::domain::{NewSession, SessionState};
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let s = &self.f.s;
        let alive = !live.is_empty()
            && live.iter().all(|id| {
                matches!(
                    s.session(id).expect("read a session"),
                    Some((_, SessionState::Active))
                )
            });
        if alive {
            return;
        }
        let app = s.app_by_anchor(ANCHOR).expect("app").expect("fuzz-app");
        let issue = |app: Option<AppKey>, kind| {
            self.rt
                .block_on(s.create_session(NewSession {
                    account: self.account,
                    app,
                    kind,
                    device: DeviceInfo::default(),
                    method: "fuzz".into(),
                }))
                .expect("issue a session")
        };
        let idp = issue(None, SessionKind::Idp);
        let login = issue(Some(app.key), SessionKind::Login);
        let pat = issue(Some(app.key), SessionKind::Pat);
        let mut creds = self.creds.lock().unwrap_or_else(|p| p.into_inner());
        creds.retain(|(k, _)| {
            !matches!(
                *k,
                "$IDP" | "$SESSION" | "$ACCESS" | "$REFRESH" | "$LOGIN" | "$HUB" | "$PAT"
            )
        });
        let some = |t: Option<String>| t.unwrap_or_default();
        creds.push(("$IDP", idp.session.id.to_string()));
        creds.push(("$SESSION", login.session.id.to_string()));
        creds.push(("$ACCESS", some(login.access_token)));
        creds.push(("$REFRESH", some(login.refresh_token)));
        creds.push(("$LOGIN", some(login.login_token)));
        creds.push(("$HUB", some(login.hub_jwt)));
        creds.push(("$PAT", some(pat.personal_access_token)));
        *live = vec![idp.session.id, login.session.id, pat.session.id];
    }

    /// `text` with every placeholder replaced by its credential.
    fn fill(&self, text: &[u8]) -> Vec<u8> {
        if !text.contains(&b'$') {
            return text.to_vec();
        }
        let creds = self.creds.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(text.len());
        let mut i = 0;
        'outer: while i < text.len() {
            if text[i] == b'$' {
                for (k, v) in creds.iter() {
                    if text[i..].starts_with(k.as_bytes()) {
                        out.extend_from_slice(v.as_bytes());
                        i += k.len();
                        continue 'outer;
                    }
                }
            }
            out.push(text[i]);
            i += 1;
        }
        out
    }
}

/// The fixture of the `http` target in a fuzzing process, built on first use.
pub fn http_fixture() -> &'static HttpFixture {
    static FIXTURE: OnceLock<HttpFixture> = OnceLock::new();
    FIXTURE.get_or_init(HttpFixture::open)
}

/// Which public document a path belongs to, read from the documented endpoints (README's
/// table), independently of the router's code: it decides which statuses and which error
/// format an answer may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HttpShape {
    Rownd,
    Connect,
    Flashback,
    RocketChat,
    Okta,
    Admin,
    Other,
}

fn pct_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn shape_of(path: &str) -> HttpShape {
    let Some(segs) = path
        .split('/')
        .skip(1)
        .map(pct_decode)
        .collect::<Option<Vec<_>>>()
    else {
        return HttpShape::Other;
    };
    fn skip_empty(mut s: &[String]) -> &[String] {
        while s.len() > 1 && s[0].is_empty() {
            s = &s[1..];
        }
        s
    }
    let mut segs = skip_empty(&segs);
    let prefixed = segs.len() > 2 && segs[0] == "apps";
    if prefixed {
        segs = skip_empty(&segs[2..]);
    }
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["applications", _, "users", _, "signout"] | ["hub", "auth", "token" | "keys"] => {
            HttpShape::Rownd
        }
        ["revoke-all" | "refresh" | "introspect" | "logout"] => HttpShape::Connect,
        ["sessions", "revoke-all"]
        | ["sessions", _, "revoke"]
        | ["sessions"]
        | ["user", "login" | "refresh"] => HttpShape::Flashback,
        ["api", "v1", "users.logoutOtherClients" | "login" | "me"] => HttpShape::RocketChat,
        ["api", "v1", "users", _, "sessions"] | ["api", "v1", "sessions", _] => HttpShape::Okta,
        ["admin", "v1", ..] if !prefixed => HttpShape::Admin,
        _ => HttpShape::Other,
    }
}

/// The whole HTTP layer, in process: an arbitrary method, path, headers and body through
/// `sessiond::http::Router`. Input, like an HTTP/1.1 request: the request line
/// `METHOD TARGET` up to the first `\n`, then header lines `name: value` (each up to `\n`,
/// a trailing `\r` dropped) until an empty line, then the body. A method, target or header
/// hyper would refuse before the router is skipped (hyper answers those itself). In the
/// target, header values and the body, the placeholders `$ADMIN` (the admin token),
/// `$USER` (the account id), `$KEY`/`$SECRET` (a Rownd app credential), `$OKTA` (an Okta
/// API token with every scope), `$SUBJECT`, `$IDP` (a live Okta session id), `$SESSION`,
/// `$ACCESS`, `$REFRESH`, `$LOGIN`, `$HUB` (a login session's id and tokens), `$PAT` and
/// `$CJWT` (a Connect client JWT signed over the body) are replaced, so inputs get past
/// authentication; the sessions are renewed when an input revoked them.
///
/// Must hold: no panic; the status is in the documented set of the shape the path reaches
/// (never a 500), or one of the generic ones (400, 404, 405, 413, 429, 431); an error body
/// is in that shape's format; a 405 carries `Allow`; every Okta answer carries its
/// rate-limit headers; a 204 has no body.
pub fn http(h: &HttpFixture, data: &[u8]) {
    use http_body_util::BodyExt;
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let line = data[..nl].strip_suffix(b"\r").unwrap_or(&data[..nl]);
    let Some(sp) = line.iter().position(|&b| b == b' ') else {
        return;
    };
    let Ok(method) = http::Method::from_bytes(&line[..sp]) else {
        return;
    };
    h.renew_sessions();
    let Ok(uri) = http::Uri::try_from(h.fill(&line[sp + 1..])) else {
        return;
    };
    let mut rest = &data[nl + 1..];
    let mut lines = Vec::new();
    loop {
        let (l, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        rest = after;
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.is_empty() {
            break;
        }
        lines.push(l);
    }
    let body = h.fill(rest);
    let mut builder = http::Request::builder().method(method).uri(uri);
    for l in lines {
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            return;
        };
        let Ok(name) = http::HeaderName::from_bytes(&l[..colon]) else {
            return;
        };
        let value = if l[colon + 1..].windows(5).any(|w| w == b"$CJWT") {
            let claims = json!({
                "iss": ANCHOR, "aud": "sudomimus-connect",
                "iat": h.f.s.now() / 1000, "exp": h.f.s.now() / 1000 + 30,
                "jti": format!("http-{}", h.f.jtis.fetch_add(1, Ordering::Relaxed)),
                "body_sha256": STANDARD.encode(Sha256::digest(&body)),
            });
            let jwt = jwt::sign_client_jwt(&h.f.private_pem, &claims).expect("sign");
            let raw = String::from_utf8_lossy(&l[colon + 1..]).replace("$CJWT", &jwt);
            h.fill(raw.as_bytes())
        } else {
            h.fill(&l[colon + 1..])
        };
        let Ok(value) = http::HeaderValue::from_bytes(value.trim_ascii()) else {
            return;
        };
        builder = builder.header(name, value);
    }
    let Ok(req) = builder.body(http_body_util::Full::new(bytes::Bytes::from(body))) else {
        return;
    };
    let path = req.uri().path().to_owned();
    let shape = shape_of(&path);
    let resp = h.rt.block_on(h.router.handle(req));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes =
        h.rt.block_on(resp.into_body().collect())
            .expect("an in-memory body")
            .to_bytes();
    let what = || {
        format!(
            "{shape:?} {path} -> {status} {:?}",
            String::from_utf8_lossy(&bytes)
        )
    };

    let documented: &[u16] = match shape {
        HttpShape::Rownd => &[200, 204, 400, 401, 403, 404],
        HttpShape::Connect => &[200, 400, 401, 403, 404],
        HttpShape::Flashback | HttpShape::RocketChat => &[200, 400, 401, 404],
        HttpShape::Okta => &[200, 204, 400, 401, 403, 404],
        HttpShape::Admin => &[200, 201, 400, 401, 404, 409],
        HttpShape::Other => &[200, 404],
    };
    const GENERIC: [u16; 6] = [400, 404, 405, 413, 429, 431];
    assert!(
        documented.contains(&status) || GENERIC.contains(&status),
        "undocumented status: {}",
        what()
    );
    if status == 405 {
        assert!(
            headers.contains_key("allow"),
            "405 without Allow: {}",
            what()
        );
    }
    if shape == HttpShape::Okta {
        for name in [
            "x-rate-limit-limit",
            "x-rate-limit-remaining",
            "x-rate-limit-reset",
        ] {
            assert!(
                headers.contains_key(name),
                "Okta answer without {name}: {}",
                what()
            );
        }
    }
    if status == 204 {
        assert!(bytes.is_empty(), "204 with a body: {}", what());
        return;
    }
    // Connect's PRIVATE reason (a replayed `jti`) is a 401 with no body at all.
    if shape == HttpShape::Connect && status == 401 && bytes.is_empty() {
        return;
    }
    let v: Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", what()));
    assert!(v.is_object(), "not a JSON object: {}", what());
    if status < 400 {
        return;
    }
    let is_str = |k: &str| v.get(k).is_some_and(Value::is_string);
    let format_ok = match shape {
        HttpShape::Rownd => {
            v["statusCode"] == json!(status) && is_str("error") && is_str("message")
        }
        HttpShape::Connect => is_str("reason"),
        HttpShape::Flashback | HttpShape::RocketChat => v["success"] == json!(false),
        HttpShape::Okta => {
            is_str("errorCode")
                && v["errorLink"] == v["errorCode"]
                && is_str("errorSummary")
                && v["errorCauses"].is_array()
        }
        HttpShape::Admin | HttpShape::Other => is_str("error") && is_str("message"),
    };
    assert!(format_ok, "an error not in the shape's format: {}", what());
}
