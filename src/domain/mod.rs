//! Sessions: issue, check, refresh, and the revoke-all variants of the five shapes. Returns
//! typed outcomes (`Revoked`, `Counted { refresh_tokens }`, `TokenCheck::Revoked`), never HTTP statuses;
//! each shape in `http/` decides how an outcome looks on its wire.
//!
//! The revocation model. A revoke-all writes one *watermark* per (account, scope, kind):
//! every session of that scope and kind whose creation sequence number is at or below the
//! watermark is dead (optionally except the caller's own). That is a small, atomic write
//! whose cost does not grow with the number of sessions; every token check consults the
//! two watermarks that can cover its session. Single-session revocations (logout, refresh
//! reuse) write a tombstone into the session record. Writes on one account are serialised
//! by a striped lock so counts such as Connect's `revokedCount` are exact.

mod admin;
mod audit;
mod clientjwt;
pub mod jwt;
mod ratelimit;
mod revoke;
pub mod secrets;
mod sweep;

pub use admin::*;
pub use audit::shape_of;
pub use clientjwt::{ClientAuth, ClientAuthError, Generation};
pub use ratelimit::RateDecision;
pub use revoke::*;
pub use sweep::{Sweep, Swept};

use crate::model::*;
use crate::store::{NewSubject, Store, StoreError};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed; nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} is already taken")]
    Taken(&'static str),
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The caller's own session, to be spared by an "all but current" revocation, died
    /// between authentication and the revocation (a concurrent revoke-all).
    #[error("the caller's session was revoked meanwhile")]
    CallerRevoked,
}

impl Error {
    fn from_store(e: StoreError) -> Error {
        match e {
            StoreError::Taken(what) => Error::Taken(what),
            other => Error::Store(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Lifetimes and limits of issued credentials.
#[derive(Debug, Clone)]
pub struct Config {
    /// Access tokens (opaque, and hub JWTs): Flashback documents one hour.
    pub access_ttl_ms: Millis,
    /// OAuth grants (refresh-token families).
    pub oauth_ttl_ms: Millis,
    /// Identity-provider sessions.
    pub idp_ttl_ms: Millis,
    /// The application served without an `/apps/{anchor}` prefix; the first created when
    /// unset.
    pub default_app: Option<String>,
    /// Okta API tokens created without a limit of their own.
    pub default_rate_limit_per_minute: u32,
    /// The `iss` of hub JWTs.
    pub issuer: String,
    /// How long a dead session (revoked or expired) and a token past its expiry are kept,
    /// answering "revoked" or "expired", before the sweeper removes them (`sweep.rs`).
    pub tombstone_retention_ms: Millis,
    /// Time between the end of one sweep and the start of the next.
    pub sweep_interval: std::time::Duration,
    /// Records one sweep pass examines (the work done between two pauses).
    pub sweep_batch: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            access_ttl_ms: 3_600_000,
            oauth_ttl_ms: 30 * 86_400_000,
            idp_ttl_ms: 12 * 3_600_000,
            default_app: None,
            default_rate_limit_per_minute: 1200,
            issuer: "sessiond".into(),
            tombstone_retention_ms: 86_400_000,
            sweep_interval: std::time::Duration::from_secs(60),
            sweep_batch: 1000,
        }
    }
}

/// Where time comes from: the wall clock in the server, a controlled clock in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis)
    }
}

const LOCK_STRIPES: usize = 512;

fn stripe(account: &AccountId) -> usize {
    let h = account
        .0
        .iter()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(*b as usize));
    h % LOCK_STRIPES
}

/// The service: a cheap `Clone` handle over the store, keys and settings.
#[derive(Clone)]
pub struct Sessiond {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: Config,
    clock: Arc<dyn Clock>,
    hub: jwt::HubKey,
    /// Serialises writes per account (striped): a revoke-all and an issue or refresh of the
    /// same account never interleave, so watermarks and counts are exact.
    locks: Vec<Mutex<()>>,
    limiter: ratelimit::RateLimiter,
    metrics: crate::metrics::Metrics,
    audit: audit::AuditQueue,
}

/// Whether a session can still be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    Active,
    Expired,
    Revoked(Revocation),
}

/// The credentials a new session carries (each only where its kind implies it).
#[derive(Debug, Clone)]
pub struct Issued {
    pub session: Session,
    pub access_token: Option<String>,
    pub access_expires: Option<Millis>,
    pub refresh_token: Option<String>,
    pub login_token: Option<String>,
    pub personal_access_token: Option<String>,
    pub hub_jwt: Option<String>,
}

/// What is asked for a new session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub account: AccountId,
    pub app: Option<AppKey>,
    pub kind: SessionKind,
    pub device: DeviceInfo,
    pub method: String,
}

/// The result of presenting a token.
#[derive(Debug, Clone)]
pub enum TokenCheck {
    /// Never issued, or issued by another application than the one asked.
    Unknown,
    /// Issued, but not of the kinds this endpoint accepts.
    WrongKind,
    /// A refresh token that was already rotated away.
    Consumed(Session),
    Expired(Session),
    Revoked(Session, Revocation),
    Active(ActiveToken),
}

#[derive(Debug, Clone)]
pub struct ActiveToken {
    pub hash: TokenHash,
    pub record: TokenRecord,
    pub session: Session,
}

impl Sessiond {
    /// Opens the service over an open store; creates the hub signing key in the store's
    /// directory on first use.
    pub fn new(store: Store, config: Config, clock: Arc<dyn Clock>) -> Result<Sessiond> {
        let hub = jwt::HubKey::load_or_create(store.dir()).map_err(StoreError::Io)?;
        let metrics = crate::metrics::Metrics::new(store.flush_histogram());
        Ok(Sessiond {
            inner: Arc::new(Inner {
                metrics,
                audit: audit::AuditQueue::default(),
                store,
                config,
                clock,
                hub,
                locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
                limiter: ratelimit::RateLimiter::default(),
            }),
        })
    }

    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// What `GET /metrics` reports (`src/metrics.rs`).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// `GET /metrics`: every metric, the stored-records gauges refreshed if they are older
    /// than `metrics::STORE_STATS_MAX_AGE`.
    pub async fn render_metrics(&self) -> Result<String> {
        if self.metrics().claim_store_stats_refresh() {
            let stats = self.blocking(|s| Ok(s.store().stats()?)).await?;
            self.metrics().set_store_stats(&stats);
        }
        Ok(self.metrics().render())
    }

    /// `GET /readyz`: the store is open and a durable write goes through.
    pub async fn ready(&self) -> Result<()> {
        Ok(self.store().ready(self.now()).await?)
    }

    /// Runs store work that reads or writes much (a scan, a snapshot, a sweep) on tokio's
    /// blocking threads; a task that fails is a store I/O error.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Sessiond) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || work(&me))
            .await
            .map_err(|e| Error::Store(StoreError::Io(std::io::Error::other(e))))?
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// `POST /admin/v1/backup`: a consistent backup of the store, while serving, into a new
    /// file at `path` on this machine (absolute; never overwritten). Writes wait while the
    /// snapshot is taken; reads go on.
    pub async fn backup(&self, path: std::path::PathBuf) -> Result<crate::store::BackupStats> {
        if !path.is_absolute() {
            return Err(Error::Invalid("`path` must be absolute".into()));
        }
        if !path.parent().is_some_and(|p| p.is_dir()) {
            return Err(Error::Invalid(
                "`path` must be in a directory that exists".into(),
            ));
        }
        if path.exists() {
            return Err(Error::Taken("the backup path"));
        }
        let stats = self
            .blocking(move |s| Ok(s.store().backup_to(&path, &|_| {})?))
            .await?;
        tracing::info!(
            entries = stats.entries,
            bytes = stats.bytes,
            "backup written"
        );
        Ok(stats)
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn hub(&self) -> &jwt::HubKey {
        &self.inner.hub
    }

    fn lock(&self, account: &AccountId) -> MutexGuard<'_, ()> {
        self.lock_stripe(stripe(account))
    }

    fn lock_stripe(&self, i: usize) -> MutexGuard<'_, ()> {
        // The guarded value is `()`: a panic while held leaves nothing inconsistent.
        self.inner.locks[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The locks of several accounts, taken in stripe order. Every other caller holds one
    /// stripe at a time, so this order cannot deadlock with them or with itself.
    fn lock_all<'a>(
        &self,
        accounts: impl Iterator<Item = &'a AccountId>,
    ) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = accounts.map(stripe).collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes.into_iter().map(|i| self.lock_stripe(i)).collect()
    }

    /// Makes everything written so far durable (group commit); see `store::Durability`.
    pub async fn sync(&self) -> Result<()> {
        Ok(self.inner.store.sync().await?)
    }

    // ---- applications and accounts ----------------------------------------------------

    /// The application a request speaks to: the one named by an `/apps/{anchor}` prefix,
    /// else the default one.
    pub fn resolve_app(&self, prefix: Option<&str>) -> Result<Application> {
        let store = &self.inner.store;
        if let Some(anchor) = prefix.or(self.inner.config.default_app.as_deref()) {
            return store
                .app_by_anchor(anchor)?
                .ok_or(Error::NotFound("application"));
        }
        store
            .apps()?
            .into_iter()
            .next()
            .ok_or(Error::NotFound("application"))
    }

    pub fn app_by_anchor(&self, anchor: &str) -> Result<Option<Application>> {
        Ok(self.inner.store.app_by_anchor(anchor)?)
    }

    pub fn app(&self, key: AppKey) -> Result<Option<Application>> {
        Ok(self.inner.store.app(key)?)
    }

    pub fn account(&self, id: &AccountId) -> Result<Option<Account>> {
        Ok(self.inner.store.account(id)?)
    }

    /// Looks an account up by login or email (a value with `@` is tried as an email
    /// first), as Rocket.Chat's `user` field is.
    pub fn find_account(&self, user: &str) -> Result<Option<Account>> {
        let store = &self.inner.store;
        if user.contains('@')
            && let Some(a) = store.account_by_email(user)?
        {
            return Ok(Some(a));
        }
        Ok(store.account_by_login(user)?)
    }

    /// The account's pairwise subject in a sector. Every session of an application creates
    /// it (durably, with the session), so this is a read; for a store written before that,
    /// it is created here and made durable before it is returned — a subject handed out and
    /// then lost in a crash would leave a client holding an id that revokes nobody.
    pub fn subject(&self, account: &AccountId, sector: SectorId) -> Result<String> {
        let store = &self.inner.store;
        if let Some(s) = store.subject(account, sector)? {
            return Ok(s);
        }
        let s = self.ensure_subject(account, sector)?;
        store.sync_blocking()?;
        Ok(s)
    }

    /// Creates the account's subject in `sector` unless it exists; not yet durable.
    fn ensure_subject(&self, account: &AccountId, sector: SectorId) -> Result<String> {
        let store = &self.inner.store;
        if let Some(s) = store.subject(account, sector)? {
            return Ok(s);
        }
        let fresh = format!("sub_{}", secrets::new_token());
        Ok(store.put_subject_if_absent(account, sector, &fresh)?)
    }

    // ---- sessions and tokens ----------------------------------------------------------

    /// The state of a session now: its own tombstone, then the watermarks that can cover
    /// it, then its expiry.
    pub fn state(&self, s: &Session) -> Result<SessionState> {
        if let Some(r) = &s.revoked {
            return Ok(SessionState::Revoked(r.clone()));
        }
        // Report the earliest revocation that covers the session.
        let earliest = self
            .covering_watermarks(s)?
            .into_iter()
            .flatten()
            .min_by_key(|m| m.revocation.at);
        if let Some(m) = earliest {
            return Ok(SessionState::Revoked(m.revocation));
        }
        if self.now() >= s.expires {
            return Ok(SessionState::Expired);
        }
        Ok(SessionState::Active)
    }

    /// The watermarks that kill `s`: of the two scopes that can reach it (its application's
    /// and every application's, or the identity provider's), of its kind, at or above its
    /// `seq`, not excepting it.
    fn covering_watermarks(&self, s: &Session) -> Result<[Option<Marker>; 2]> {
        let store = &self.inner.store;
        let scopes = scopes_reaching(s);
        let mut out = [None, None];
        for (slot, scope) in out.iter_mut().zip(scopes) {
            if let Some(scope) = scope
                && let Some(m) = store.marker(&s.account, scope, s.kind)?
                && s.seq <= m.upto
                && m.except != Some(s.id)
            {
                *slot = Some(m);
            }
        }
        Ok(out)
    }

    pub fn session(&self, id: &SessionId) -> Result<Option<(Session, SessionState)>> {
        match self.inner.store.session(id)? {
            Some(s) => {
                let st = self.state(&s)?;
                Ok(Some((s, st)))
            }
            None => Ok(None),
        }
    }

    /// Sessions of an account, with their states: all (`None`), of no application
    /// (`Some(None)`), or of one application.
    pub fn sessions_of(
        &self,
        account: &AccountId,
        app: Option<Option<AppKey>>,
    ) -> Result<Vec<(Session, SessionState)>> {
        self.inner
            .store
            .sessions_of(account, app)?
            .into_iter()
            .map(|s| {
                let st = self.state(&s)?;
                Ok((s, st))
            })
            .collect()
    }

    /// Creates a session and the credentials its kind implies, durably.
    pub async fn issue(&self, new: NewSession) -> Result<Issued> {
        let mut issued = self.issue_now(vec![new])?;
        self.sync().await?;
        Ok(issued.pop().expect("one session asked, one issued"))
    }

    /// Creates many sessions at once (bulk provisioning): all or none, in one write made
    /// durable by one sync. Answers in the order asked.
    pub async fn issue_many(&self, batch: Vec<NewSession>) -> Result<Vec<Issued>> {
        let issued = self.issue_now(batch)?;
        self.sync().await?;
        Ok(issued)
    }

    fn issue_now(&self, batch: Vec<NewSession>) -> Result<Vec<Issued>> {
        let store = &self.inner.store;
        let now = self.now();
        let cfg = &self.inner.config;
        // Everything is checked before anything is written: a bad entry writes nothing.
        let mut apps: std::collections::HashMap<AppKey, Application> = Default::default();
        let mut accounts: std::collections::HashSet<AccountId> = Default::default();
        let mut plans = Vec::with_capacity(batch.len());
        for new in batch {
            let app = match new.app {
                Some(k) => Some(match apps.get(&k) {
                    Some(a) => a.clone(),
                    None => {
                        let a = store.app(k)?.ok_or(Error::NotFound("application"))?;
                        apps.insert(k, a.clone());
                        a
                    }
                }),
                None => None,
            };
            if !accounts.contains(&new.account) {
                if !store.has_account(&new.account) {
                    return Err(Error::NotFound("account"));
                }
                accounts.insert(new.account);
            }
            match (new.kind, &app) {
                (SessionKind::Idp, Some(_)) => {
                    return Err(Error::Invalid(
                        "an identity-provider session belongs to no application".into(),
                    ));
                }
                (SessionKind::Login | SessionKind::Oauth | SessionKind::Pat, None) => {
                    return Err(Error::Invalid(format!(
                        "a `{}` session needs an application",
                        new.kind.as_str()
                    )));
                }
                _ => {}
            }
            let expires = match (new.kind, &app) {
                (SessionKind::Idp, _) => now + cfg.idp_ttl_ms,
                (SessionKind::Login, Some(a)) => {
                    now + a.login_expiration_days as Millis * 86_400_000
                }
                (SessionKind::Oauth, _) => now + cfg.oauth_ttl_ms,
                _ => NEVER,
            };
            plans.push((new, app, expires));
        }
        let _g = self.lock_all(plans.iter().map(|(new, _, _)| &new.account));
        // The pairwise subjects Connect clients will name these accounts by: written with
        // the sessions, in the same transaction.
        let mut subjects: Vec<(AccountId, SectorId, String)> = Vec::new();
        for (new, app, _) in &plans {
            if let Some(a) = app
                && !subjects
                    .iter()
                    .any(|(acc, sec, _)| *acc == new.account && *sec == a.sector)
                && store.subject(&new.account, a.sector)?.is_none()
            {
                subjects.push((
                    new.account,
                    a.sector,
                    format!("sub_{}", secrets::new_token()),
                ));
            }
        }
        let mut out = Vec::with_capacity(plans.len());
        let mut records = Vec::with_capacity(plans.len());
        for (new, app, expires) in plans {
            let session = Session {
                id: secrets::new_session_id(now),
                account: new.account,
                app: new.app,
                kind: new.kind,
                seq: store.next_seq()?,
                device: new.device,
                method: new.method,
                created: now,
                last_used: now,
                expires,
                has_refresh: matches!(new.kind, SessionKind::Login | SessionKind::Oauth),
                revoked: None,
                tokens: Vec::new(),
            };
            let mut issued = Issued {
                session: session.clone(),
                access_token: None,
                access_expires: None,
                refresh_token: None,
                login_token: None,
                personal_access_token: None,
                hub_jwt: None,
            };
            let mut minted = Minted::new(session.id, now);
            match session.kind {
                SessionKind::Idp => {}
                SessionKind::Pat => {
                    issued.personal_access_token = Some(minted.mint(TokenKind::Pat, NEVER));
                }
                SessionKind::Login | SessionKind::Oauth => {
                    let app = app
                        .as_ref()
                        .expect("checked above: app sessions have an app");
                    let (access, hub, access_exp) = self.mint_access(&session, app, &mut minted);
                    issued.access_token = Some(access);
                    issued.hub_jwt = Some(hub);
                    issued.access_expires = Some(access_exp);
                    issued.refresh_token = Some(minted.mint(TokenKind::Refresh, expires));
                    if session.kind == SessionKind::Login {
                        issued.login_token = Some(minted.mint(TokenKind::Login, expires));
                    }
                }
            }
            let mut session = session;
            session.tokens = minted.tokens;
            records.push(session);
            out.push(issued);
        }
        let subjects: Vec<NewSubject<'_>> = subjects
            .iter()
            .map(|(account, sector, subject)| NewSubject {
                account,
                sector: *sector,
                subject,
            })
            .collect();
        let records: Vec<&Session> = records.iter().collect();
        store
            .insert_sessions(&subjects, &records)
            .map_err(Error::from_store)?;
        Ok(out)
    }

    /// A new opaque access token and a hub JWT for a session; both expire together.
    fn mint_access(
        &self,
        session: &Session,
        app: &Application,
        minted: &mut Minted,
    ) -> (String, String, Millis) {
        let now = minted.now;
        let exp = (now + self.inner.config.access_ttl_ms).min(session.expires);
        let access = minted.mint(TokenKind::Access, exp);
        let jti = minted.mint(TokenKind::HubJwt, exp);
        let hub = self.inner.hub.sign(&serde_json::json!({
            "jti": jti,
            "sub": session.account.as_str(),
            "aud": [format!("app:{}", app.anchor)],
            "iat": now / 1000,
            "exp": exp / 1000,
            "iss": self.inner.config.issuer,
            "https://auth.rownd.io/app_user_id": session.account.as_str(),
            "https://auth.rownd.io/is_verified_user": true,
        }));
        (access, hub, exp)
    }

    /// Checks a presented token: it must exist, be of one of `kinds`, belong to `app` (when
    /// given), and its session must be alive. Read-only.
    pub fn check_token(
        &self,
        token: &str,
        app: Option<AppKey>,
        kinds: &[TokenKind],
    ) -> Result<TokenCheck> {
        let Some((hash, record, session)) = self.find_token(token)? else {
            return Ok(TokenCheck::Unknown);
        };
        self.check_found(hash, record, session, app, kinds)
    }

    /// A token's record and its session: from the session its text names, when the token
    /// is one of that session's current tokens (one read); otherwise from the `tokens` tree
    /// (tokens a rotation replaced, and those of older stores).
    fn find_token(&self, token: &str) -> Result<Option<(TokenHash, TokenRecord, Session)>> {
        let store = &self.inner.store;
        let hash = secrets::hash(token);
        if let Some(id) = secrets::session_of_token(token)
            && let Some(session) = store.session(&id)?
            && let Some(at) = session.token_at(&hash)
        {
            return Ok(Some((hash, session.token_record(at), session)));
        }
        let Some(record) = store.token(&hash)? else {
            return Ok(None);
        };
        // The sweeper removes a session's token records, then the session: one missing here
        // was removed since the record was read (or, in a race the next cycle heals, is
        // the sweeper's to remove; `sessiond check` names such a record). Unknown either way.
        let Some(session) = store.session(&record.session)? else {
            return Ok(None);
        };
        Ok(Some((hash, record, session)))
    }

    fn check_found(
        &self,
        hash: TokenHash,
        record: TokenRecord,
        session: Session,
        app: Option<AppKey>,
        kinds: &[TokenKind],
    ) -> Result<TokenCheck> {
        if app.is_some() && session.app != app {
            return Ok(TokenCheck::Unknown);
        }
        if !kinds.contains(&record.kind) {
            return Ok(TokenCheck::WrongKind);
        }
        match self.state(&session)? {
            SessionState::Revoked(r) => return Ok(TokenCheck::Revoked(session, r)),
            SessionState::Expired => return Ok(TokenCheck::Expired(session)),
            SessionState::Active => {}
        }
        if record.consumed_at.is_some() {
            return Ok(TokenCheck::Consumed(session));
        }
        if self.now() >= record.expires {
            return Ok(TokenCheck::Expired(session));
        }
        Ok(TokenCheck::Active(ActiveToken {
            hash,
            record,
            session,
        }))
    }

    /// Checks a Rownd hub JWT: our signature, not expired, then its `jti` against the store
    /// like any other access token.
    pub fn check_hub_jwt(&self, token: &str) -> Result<(TokenCheck, Option<serde_json::Value>)> {
        let Some(claims) = self.inner.hub.verify(token) else {
            return Ok((TokenCheck::Unknown, None));
        };
        let Some(jti) = claims.get("jti").and_then(|v| v.as_str()) else {
            return Ok((TokenCheck::Unknown, None));
        };
        let check = self.check_token(jti, None, &[TokenKind::HubJwt])?;
        Ok((check, Some(claims)))
    }

    /// Strict refresh-token rotation: a live, unconsumed refresh token of `app` is consumed
    /// and replaced (with a new access token and hub JWT); presenting a consumed one
    /// revokes its whole family (the session).
    /// `app` restricts the token to one application; `None` accepts any.
    pub async fn refresh(&self, app: Option<AppKey>, token: &str, by: &str) -> Result<Refreshed> {
        let out = self.refresh_now(app, token, by)?;
        self.sync().await?;
        if matches!(out, Refreshed::Reused) {
            self.killed_now(
                by,
                AuditCount {
                    sessions: 1,
                    refresh_tokens: 1,
                },
            );
        }
        Ok(out)
    }

    fn refresh_now(&self, app: Option<AppKey>, token: &str, by: &str) -> Result<Refreshed> {
        let store = &self.inner.store;
        let Some((_, _, session)) = self.find_token(token)? else {
            return Ok(Refreshed::NotFound);
        };
        let _g = self.lock(&session.account);
        // Re-read under the lock: a concurrent rotation or revoke may have happened.
        match self.check_token(token, app, &[TokenKind::Refresh])? {
            TokenCheck::Unknown | TokenCheck::WrongKind => Ok(Refreshed::NotFound),
            TokenCheck::Expired(_) => Ok(Refreshed::Expired),
            TokenCheck::Revoked(_, r) => Ok(Refreshed::Revoked(r)),
            TokenCheck::Consumed(mut s) => {
                let r = Revocation {
                    at: self.now(),
                    by: by.to_owned(),
                    reason: "refresh token reused: the family is compromised".into(),
                };
                s.revoked = Some(r);
                store.put_session(&s)?;
                self.record_session_revocation(&s, by, Credential::Sessiond, true)?;
                Ok(Refreshed::Reused)
            }
            TokenCheck::Active(active) => {
                let now = self.now();
                let mut session = active.session;
                let app = session
                    .app
                    .and_then(|k| store.app(k).transpose())
                    .transpose()?
                    .ok_or(Error::NotFound("application"))?;
                session.last_used = now;
                // The generation this rotation replaces (access token, hub JWT, refresh
                // token) leaves the session record for the `tokens` tree, its refresh token
                // consumed; its access token and hub JWT stay valid until they expire.
                // Login tokens and personal access tokens do not rotate and stay.
                let mut replaced = Vec::new();
                let mut kept = Vec::with_capacity(session.tokens.len());
                for (at, t) in session.tokens.iter().enumerate() {
                    if matches!(
                        t.kind,
                        TokenKind::Access | TokenKind::HubJwt | TokenKind::Refresh
                    ) {
                        let mut r = session.token_record(at);
                        if t.kind == TokenKind::Refresh {
                            r.consumed_at = Some(now);
                        }
                        replaced.push((t.hash, r));
                    } else {
                        kept.push(t.clone());
                    }
                }
                session.tokens = kept;
                // A token of an older store is in the `tokens` tree only: consumed there.
                let legacy = (!replaced.iter().any(|(h, _)| *h == active.hash)).then(|| {
                    let mut old = active.record.clone();
                    old.consumed_at = Some(now);
                    (active.hash, old)
                });
                let mut minted = Minted::new(session.id, now);
                let (access, hub, access_exp) = self.mint_access(&session, &app, &mut minted);
                let refresh = minted.mint(TokenKind::Refresh, session.expires);
                session.tokens.extend(minted.tokens);
                store.rotate(&replaced, &session, legacy.as_ref())?;
                Ok(Refreshed::Rotated(Box::new(Rotated {
                    access_token: access,
                    access_expires: access_exp,
                    refresh_token: refresh,
                    hub_jwt: hub,
                    session,
                })))
            }
        }
    }

    // ---- Okta API tokens and rate limits ----------------------------------------------

    pub fn api_token(&self, token: &str) -> Result<Option<ApiToken>> {
        Ok(self.inner.store.api_token(&secrets::hash(token))?)
    }

    /// Counts one request of `key` against `limit` per minute (fixed windows).
    pub fn rate_limit(&self, key: &str, limit: u32) -> RateDecision {
        self.inner.limiter.check(key, limit, self.now())
    }
}

/// The tokens minted for one session in one write: the texts go to the caller, only the
/// hashes into the session record.
struct Minted {
    session: SessionId,
    now: Millis,
    tokens: Vec<SessionToken>,
}

impl Minted {
    fn new(session: SessionId, now: Millis) -> Minted {
        Minted {
            session,
            now,
            tokens: Vec::new(),
        }
    }

    /// A new token of `kind` for the session; returns its text.
    fn mint(&mut self, kind: TokenKind, expires: Millis) -> String {
        let token = secrets::session_token(&self.session);
        self.tokens.push(SessionToken {
            hash: secrets::hash(&token),
            kind,
            issued: self.now,
            expires,
        });
        token
    }
}

/// The result of a refresh.
#[derive(Debug)]
pub enum Refreshed {
    Rotated(Box<Rotated>),
    NotFound,
    Expired,
    Revoked(Revocation),
    /// A consumed token was presented again: its family is now revoked.
    Reused,
}

#[derive(Debug)]
pub struct Rotated {
    pub access_token: String,
    pub access_expires: Millis,
    pub refresh_token: String,
    pub hub_jwt: String,
    pub session: Session,
}

/// The scopes whose watermarks can reach `s`: its application's and every application's,
/// or the identity provider's.
pub(crate) fn scopes_reaching(s: &Session) -> [Option<Scope>; 2] {
    match s.app {
        None => [Some(Scope::NoApp), None],
        Some(app) => [Some(Scope::App(app)), Some(Scope::AllApps)],
    }
}
