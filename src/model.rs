//! Ids, records and time: the vocabulary every other module speaks. No IO, no sled, no hyper.
//!
//! Ids are parsed once at the edge (`parse`) and carried as validated types afterwards.
//! Records are plain data; what they mean (is this session alive?) is decided in `domain`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the Unix epoch. Stored records keep time as integers; RFC 3339 text
/// appears only at the JSON edge.
pub type Millis = i64;

/// "Never expires" (personal access tokens).
pub const NEVER: Millis = i64::MAX;

/// The internal, never-on-the-wire key of an application. Starts at 1: 0 means "no
/// application" (identity-provider sessions) in storage keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppKey(pub u64);

/// A pairwise-subject sector. Each application has its own unless it joined another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SectorId(pub u64);

/// An application's public id: lowercase kebab-case, 1 to 63 characters (`my-app`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Anchor(String);

impl Anchor {
    pub fn parse(s: &str) -> Option<Anchor> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--")
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then(|| Anchor(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An account's opaque id, Okta-like: `00u` then 17 base62 characters (20 in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub [u8; AccountId::LEN]);

impl AccountId {
    pub const LEN: usize = 20;

    /// Builds an id from 17 random bytes (each reduced to a base62 digit).
    pub fn from_random(random: [u8; 17]) -> AccountId {
        let mut id = [0u8; Self::LEN];
        id[..3].copy_from_slice(b"00u");
        for (slot, r) in id[3..].iter_mut().zip(random) {
            *slot = BASE62[(r % 62) as usize];
        }
        AccountId(id)
    }

    pub fn parse(s: &str) -> Option<AccountId> {
        let b = s.as_bytes();
        if b.len() != Self::LEN || !b.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        let mut id = [0u8; Self::LEN];
        id.copy_from_slice(b);
        Some(AccountId(id))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("account ids are ASCII by construction")
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session's id: 16 bytes, its creation time then random bits (`secrets::new_session_id`),
/// shown as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    pub fn parse(s: &str) -> Option<SessionId> {
        let raw = hex_decode(s)?;
        Some(SessionId(raw.try_into().ok()?))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_encode(&self.0))
    }
}

/// SHA-256 of a token's text. Only this is ever stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenHash(pub [u8; 32]);

pub fn hex_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// What a session is. Each revoke-all shape kills a documented subset of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// An identity-provider (SSO) session: belongs to no application (Okta's sessions).
    Idp,
    /// An application's own login session (Rocket.Chat login tokens, Flashback logins).
    Login,
    /// An OAuth / OIDC grant: access + refresh tokens issued to an application.
    Oauth,
    /// A personal access token.
    Pat,
}

impl SessionKind {
    pub const ALL: [SessionKind; 4] = [
        SessionKind::Idp,
        SessionKind::Login,
        SessionKind::Oauth,
        SessionKind::Pat,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Idp => "idp",
            SessionKind::Login => "login",
            SessionKind::Oauth => "oauth",
            SessionKind::Pat => "pat",
        }
    }
    pub fn code(self) -> u8 {
        match self {
            SessionKind::Idp => 0,
            SessionKind::Login => 1,
            SessionKind::Oauth => 2,
            SessionKind::Pat => 3,
        }
    }
}

/// The kinds of bearer credentials a session can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Opaque access token, checked against the store on every use.
    Access,
    /// Rotating refresh token; the session is its family.
    Refresh,
    /// Rocket.Chat login (resume) token.
    Login,
    /// Personal access token.
    Pat,
    /// The `jti` of a Rownd hub JWT (an EdDSA access token).
    HubJwt,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
            TokenKind::Login => "login",
            TokenKind::Pat => "pat",
            TokenKind::HubJwt => "hub_jwt",
        }
    }
}

/// When, by which operation and why something was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub at: Millis,
    /// The operation, e.g. `okta.revoke_user_sessions`, `connect.refresh_reuse`.
    pub by: String,
    pub reason: String,
}

/// Who asked for a revocation, as the audit log names them: an identifier, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Credential {
    /// A Rownd application credential: its publishable app key (the secret is not kept).
    AppKey(String),
    /// A Connect client JWT, signed with the application's key.
    ClientJwt(Anchor),
    /// A user's own token (access token, login token, personal access token, hub JWT,
    /// refresh token): the session it belongs to.
    Session(SessionId),
    /// An Okta API token, by id.
    ApiToken(String),
    /// The admin API's bearer token.
    Admin,
    /// sessiond itself (a refresh token presented again after its rotation).
    Sessiond,
}

/// What a revocation killed: live sessions, and the refresh tokens among their credentials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCount {
    pub sessions: u64,
    pub refresh_tokens: u64,
}

/// What a revoke-all's count needs, kept until the count is done: the revoke-all writes
/// watermarks and never visits its sessions, so what it killed is counted after its answer
/// (`domain::audit`), as the sessions it covered that were alive just before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCount {
    pub targets: Vec<(Scope, SessionKind)>,
    pub upto: u64,
    pub except: Option<SessionId>,
    /// The account's watermarks just before the revoke-all, of the scopes and kinds that
    /// can cover a session it covers.
    pub before: Vec<Watermark>,
}

/// A watermark without its revocation's description: what a count needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub scope: Scope,
    pub kind: SessionKind,
    pub upto: u64,
    pub except: Option<SessionId>,
}

/// One revocation, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The store's sequence number when it was written: the log's order.
    pub seq: u64,
    pub at: Millis,
    /// The operation, as in `Revocation::by` (`okta.revoke_user_sessions`, ...); the API
    /// it came through is the part before the dot.
    pub operation: String,
    pub credential: Credential,
    pub account: AccountId,
    /// The application revoked in (`None`: identity-provider sessions, or every
    /// application, as `scope` says).
    pub app: Option<AppKey>,
    /// `app`, `idp`, `all_apps`, `idp_and_all_apps` (Okta), `session` (one session).
    pub scope: String,
    /// The one session revoked, for single-session revocations.
    pub session: Option<SessionId>,
    /// Remembered devices forgotten (Okta).
    pub devices_forgotten: u64,
    /// What it killed; `None` until counted.
    pub killed: Option<AuditCount>,
    /// What the count needs; `None` once counted (or never needed).
    pub pending: Option<PendingCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub key: AppKey,
    pub anchor: Anchor,
    pub name: String,
    pub enabled: bool,
    pub sector: SectorId,
    /// SPKI PEM of the Connect client-auth key, if one is registered.
    pub connect_public_key_pem: Option<String>,
    /// Rocket.Chat `Accounts_LoginExpiration`, in days.
    pub login_expiration_days: u32,
    pub created: Millis,
}

/// A Rownd application credential: a publishable key and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowndKey {
    pub app: AppKey,
    pub key: String,
    pub secret_hash: TokenHash,
    pub created: Millis,
    pub revoked_at: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    Suspended,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub login: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// argon2id PHC string.
    pub password_hash: Option<String>,
    pub status: AccountStatus,
    pub created: Millis,
}

/// Where a session was opened from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub label: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub account: AccountId,
    /// `None` for identity-provider sessions.
    pub app: Option<AppKey>,
    pub kind: SessionKind,
    /// Position in the store's global, monotonic creation order. A revoke-all watermark
    /// kills every session of its scope whose `seq` is at or below it.
    pub seq: u64,
    pub device: DeviceInfo,
    /// How it was opened (`password`, `admin`, ...): Flashback's `loginMethod`.
    pub method: String,
    pub created: Millis,
    pub last_used: Millis,
    pub expires: Millis,
    /// Whether a refresh token family belongs to this session (Connect counts these).
    pub has_refresh: bool,
    /// Set when this one session was revoked on its own (logout, refresh reuse, ...).
    pub revoked: Option<Revocation>,
    /// The hashes of its current tokens: all it was issued with, then what the last rotation
    /// minted. A rotation moves the tokens it replaces to the `tokens` tree, so this stays
    /// a handful; tokens of stores written before this field live only there.
    pub tokens: Vec<SessionToken>,
}

impl Session {
    /// The position of a current token of this session, by hash.
    pub fn token_at(&self, hash: &TokenHash) -> Option<usize> {
        self.tokens.iter().position(|t| t.hash == *hash)
    }

    /// A current token as the record the `tokens` tree would hold for it.
    pub fn token_record(&self, at: usize) -> TokenRecord {
        let t = &self.tokens[at];
        TokenRecord {
            session: self.id,
            kind: t.kind,
            issued: t.issued,
            expires: t.expires,
            consumed_at: None,
        }
    }
}

/// A token of a session's current generation, kept in the session record: only its hash.
/// Its text starts with the session's id (`secrets::session_token`), so a check reads one
/// record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionToken {
    pub hash: TokenHash,
    pub kind: TokenKind,
    pub issued: Millis,
    pub expires: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub session: SessionId,
    pub kind: TokenKind,
    pub issued: Millis,
    pub expires: Millis,
    /// A refresh token that was rotated away: presenting it again is reuse.
    pub consumed_at: Option<Millis>,
}

/// A revoke-all watermark for one (account, scope, kind): every session of that scope and
/// kind with `seq <= upto` is dead, except `except` (the caller's own, for "all but current").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub upto: u64,
    pub except: Option<SessionId>,
    pub revocation: Revocation,
}

/// The watermarks of one (account, scope), at most one per session kind, kept under one key
/// so that a revoke-all of one scope is a single-key write. (A sled 0.34 transaction writes
/// the log out and waits for the device before it commits, and holds a store-wide lock while
/// it does: a revoke-all in a transaction costs a disk write even when nothing waits for it.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeMarkers {
    pub by_kind: Vec<(SessionKind, Marker)>,
}

impl ScopeMarkers {
    pub fn get(&self, kind: SessionKind) -> Option<&Marker> {
        self.by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, m)| m)
    }

    /// Sets `kind`'s watermark, replacing the one it had.
    pub fn set(&mut self, kind: SessionKind, m: Marker) {
        match self.by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some(slot) => slot.1 = m,
            None => self.by_kind.push((kind, m)),
        }
    }
}

/// Where a marker applies, within one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Sessions of no application (identity-provider sessions).
    NoApp,
    /// Sessions of one application.
    App(AppKey),
    /// Sessions of every application (Okta's `oauthTokens=true`).
    AllApps,
}

/// A remembered device / factor: what Okta's `forgetDevices` clears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedDevice {
    pub id: String,
    pub label: String,
    pub factor: String,
    pub created: Millis,
}

/// An organisation-wide API token (Okta's SSWS tokens and scoped Bearer tokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub rate_limit_per_minute: u32,
    pub created: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_lowercase_kebab() {
        for ok in ["a", "my-app", "chat", "app-2", "x1-y2-z3"] {
            assert!(Anchor::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "My-App",
            "a_b",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(Anchor::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ids_round_trip_through_text() {
        let a = AccountId::from_random([7; 17]);
        assert_eq!(a.as_str().len(), 20);
        assert!(a.as_str().starts_with("00u"));
        assert_eq!(AccountId::parse(a.as_str()), Some(a));
        assert_eq!(AccountId::parse("00u/../../etc/passwdx"), None);
        let s = SessionId([0xab; 16]);
        assert_eq!(SessionId::parse(&s.to_string()), Some(s));
        assert_eq!(SessionId::parse("zz"), None);
        assert_eq!(SessionId::parse("ABAB"), None);
    }
}
