//! Provisioning: applications, accounts, sessions, API tokens, remembered devices, and the
//! administrator's view of any token. What the admin API and the demo call.

use super::{Error, Issued, NewSession, Result, SessionState, Sessiond, TokenCheck, secrets};
use crate::model::*;

/// A request to create an application.
#[derive(Debug, Clone, Default)]
pub struct NewApp {
    pub id: Option<String>,
    pub name: String,
    /// Join the sector of this application (by anchor) instead of getting a fresh one.
    pub sector_of: Option<String>,
    pub login_expiration_days: Option<u32>,
    pub connect_public_key_pem: Option<String>,
    /// Generate a Connect key pair when no public key is given.
    pub generate_connect_key: bool,
}

#[derive(Debug, Clone)]
pub struct CreatedApp {
    pub app: Application,
    pub rownd_app_key: String,
    /// Shown once; only its hash is kept.
    pub rownd_app_secret: String,
    /// Shown once, when sessiond generated the pair.
    pub connect_private_key_pem: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub login: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: Option<String>,
}

/// What an administrator learns about any token.
#[derive(Debug, Clone)]
pub struct Introspection {
    pub active: bool,
    pub kind: Option<TokenKind>,
    pub session: Option<Session>,
    pub state: Option<SessionState>,
}

const ADMIN_TOKEN_META: &str = "admin_token_sha256";

impl Sessiond {
    pub async fn create_app(&self, req: NewApp) -> Result<CreatedApp> {
        let store = self.store();
        let anchor = match &req.id {
            Some(id) => Anchor::parse(id).ok_or_else(|| {
                Error::Invalid("id must be lowercase kebab-case, 1 to 63 characters".into())
            })?,
            None => Anchor::parse(&format!("app-{}", &hex_encode(&secrets::random::<4>())))
                .expect("generated anchors are valid"),
        };
        if req.name.trim().is_empty() || req.name.chars().count() > 200 {
            return Err(Error::Invalid("name must be 1 to 200 characters".into()));
        }
        let login_expiration_days = req.login_expiration_days.unwrap_or(90);
        if !(1..=36_500).contains(&login_expiration_days) {
            return Err(Error::Invalid(
                "login_expiration_days must be between 1 and 36500".into(),
            ));
        }
        let sector = match &req.sector_of {
            Some(other) => {
                store
                    .app_by_anchor(other)?
                    .ok_or(Error::NotFound("sector application"))?
                    .sector
            }
            None => SectorId(store.next_seq()?),
        };
        let (public_pem, private_pem) =
            match (&req.connect_public_key_pem, req.generate_connect_key) {
                (Some(pem), _) => {
                    if super::jwt::rsa_public_key(pem).is_none() {
                        return Err(Error::Invalid(
                            "connect_public_key_pem is not an RSA public key in PEM".into(),
                        ));
                    }
                    (Some(pem.trim().to_owned()), None)
                }
                (None, true) => {
                    let (private, public) =
                        tokio::task::spawn_blocking(super::jwt::generate_rsa_pair)
                            .await
                            .map_err(|e| Error::Invalid(format!("key generation failed: {e}")))?;
                    (Some(public), Some(private))
                }
                (None, false) => (None, None),
            };
        let now = self.now();
        let app = Application {
            key: AppKey(store.next_seq()?),
            anchor,
            name: req.name.trim().to_owned(),
            enabled: true,
            sector,
            connect_public_key_pem: public_pem,
            login_expiration_days,
            created: now,
        };
        let (key, secret) = new_rownd_key(&app, now);
        store.create_app(&app, &key).map_err(Error::from_store)?;
        self.sync().await?;
        Ok(CreatedApp {
            app,
            rownd_app_key: key.key,
            rownd_app_secret: secret,
            connect_private_key_pem: private_pem,
        })
    }

    /// Adds another Rownd key to an application; returns (key, secret).
    pub async fn add_rownd_key(&self, app: &Application) -> Result<(String, String)> {
        let (key, secret) = new_rownd_key(app, self.now());
        self.store().put_rownd_key(&key)?;
        self.sync().await?;
        Ok((key.key, secret))
    }

    /// Revokes a Rownd key of `app`: it and its secret stop working.
    pub async fn revoke_rownd_key(&self, app: &Application, key: &str) -> Result<()> {
        let mut k = self
            .store()
            .rownd_key(key)?
            .filter(|k| k.app == app.key)
            .ok_or(Error::NotFound("app key"))?;
        if k.revoked_at.is_none() {
            k.revoked_at = Some(self.now());
            self.store().put_rownd_key(&k)?;
        }
        // Also when already revoked: a concurrent call may not have made it durable yet.
        self.sync().await?;
        Ok(())
    }

    /// Enables or disables an application.
    pub async fn set_app_enabled(&self, app: &Application, enabled: bool) -> Result<Application> {
        let mut a = app.clone();
        a.enabled = enabled;
        self.store().put_app(&a)?;
        self.sync().await?;
        Ok(a)
    }

    /// The application a Rownd key + secret pair belongs to, if both are right and the
    /// key is not revoked.
    pub fn rownd_credentials(&self, key: &str, secret: &str) -> Result<Option<AppKey>> {
        let Some(k) = self.store().rownd_key(key)? else {
            return Ok(None);
        };
        let ok = secrets::ct_eq(&secrets::hash(secret).0, &k.secret_hash.0);
        Ok((ok && k.revoked_at.is_none()).then_some(k.app))
    }

    pub async fn create_account(&self, req: NewAccount) -> Result<Account> {
        let login = req.login.trim();
        if login.is_empty() || login.chars().count() > 200 || login.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "login must be 1 to 200 printable characters".into(),
            ));
        }
        if let Some(e) = &req.email
            && (!e.contains('@') || e.chars().count() > 254)
        {
            return Err(Error::Invalid("email must be an address".into()));
        }
        let password_hash = match req.password {
            Some(p) if !p.is_empty() => Some(
                tokio::task::spawn_blocking(move || secrets::hash_password(&p))
                    .await
                    .map_err(|e| Error::Invalid(format!("hashing failed: {e}")))?,
            ),
            Some(_) => return Err(Error::Invalid("password must not be empty".into())),
            None => None,
        };
        let account = Account {
            id: AccountId::from_random(secrets::random()),
            login: login.to_owned(),
            email: req.email,
            name: req.name,
            password_hash,
            status: AccountStatus::Active,
            created: self.now(),
        };
        self.store()
            .create_account(&account)
            .map_err(Error::from_store)?;
        self.sync().await?;
        Ok(account)
    }

    /// Checks a password; `None` if the account has none.
    pub async fn verify_password(&self, account: &Account, password: &str) -> Option<bool> {
        let phc = account.password_hash.clone()?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || secrets::verify_password(&password, &phc))
            .await
            .ok()
    }

    /// Checks a password given as its SHA-256 hex digest; `None` if the account has none.
    pub async fn verify_password_digest(&self, account: &Account, digest: &str) -> Option<bool> {
        let phc = account.password_hash.clone()?;
        let digest = digest.to_owned();
        tokio::task::spawn_blocking(move || secrets::verify_digest(&digest, &phc))
            .await
            .ok()
    }

    pub async fn create_session(&self, new: NewSession) -> Result<Issued> {
        self.issue(new).await
    }

    /// Creates many sessions at once: all or none (see `issue_many`).
    pub async fn create_sessions(&self, batch: Vec<NewSession>) -> Result<Vec<Issued>> {
        self.issue_many(batch).await
    }

    /// Creates an organisation-wide API token; returns it with its only plaintext copy.
    pub async fn create_api_token(
        &self,
        name: &str,
        scopes: Vec<String>,
        rate_limit_per_minute: Option<u32>,
    ) -> Result<(ApiToken, String)> {
        if name.trim().is_empty() {
            return Err(Error::Invalid("name must not be empty".into()));
        }
        let limit = rate_limit_per_minute.unwrap_or(self.config().default_rate_limit_per_minute);
        if limit == 0 {
            return Err(Error::Invalid(
                "rate_limit_per_minute must be at least 1".into(),
            ));
        }
        let token = format!("00{}", secrets::new_token());
        let rec = ApiToken {
            id: format!("00T{}", &hex_encode(&secrets::random::<9>())),
            name: name.trim().to_owned(),
            scopes,
            rate_limit_per_minute: limit,
            created: self.now(),
        };
        self.store().put_api_token(&secrets::hash(&token), &rec)?;
        self.sync().await?;
        Ok((rec, token))
    }

    pub async fn add_device(
        &self,
        account: &AccountId,
        label: &str,
        factor: &str,
    ) -> Result<RememberedDevice> {
        if self.account(account)?.is_none() {
            return Err(Error::NotFound("account"));
        }
        let d = RememberedDevice {
            id: format!("dev{}", hex_encode(&secrets::random::<8>())),
            label: label.to_owned(),
            factor: factor.to_owned(),
            created: self.now(),
        };
        self.store().add_device(account, &d)?;
        self.sync().await?;
        Ok(d)
    }

    pub fn devices(&self, account: &AccountId) -> Result<Vec<RememberedDevice>> {
        if self.account(account)?.is_none() {
            return Err(Error::NotFound("account"));
        }
        Ok(self.store().devices(account)?)
    }

    /// Any token's state, whatever its kind or application. Hub JWTs are recognised too.
    pub fn introspect_any(&self, token: &str) -> Result<Introspection> {
        let all = [
            TokenKind::Access,
            TokenKind::Refresh,
            TokenKind::Login,
            TokenKind::Pat,
            TokenKind::HubJwt,
        ];
        let check = if token.matches('.').count() == 2 {
            self.check_hub_jwt(token)?.0
        } else {
            self.check_token(token, None, &all)?
        };
        let hash = secrets::hash(token);
        let kind = match &check {
            TokenCheck::Active(a) => Some(a.record.kind),
            _ if token.matches('.').count() == 2 => Some(TokenKind::HubJwt),
            _ => self.store().token(&hash)?.map(|r| r.kind),
        };
        Ok(match check {
            TokenCheck::Unknown | TokenCheck::WrongKind => Introspection {
                active: false,
                kind: None,
                session: None,
                state: None,
            },
            TokenCheck::Active(a) => Introspection {
                active: true,
                kind,
                session: Some(a.session),
                state: Some(SessionState::Active),
            },
            TokenCheck::Consumed(s) | TokenCheck::Expired(s) => {
                let st = self.state(&s)?;
                Introspection {
                    active: false,
                    kind,
                    session: Some(s),
                    state: Some(st),
                }
            }
            TokenCheck::Revoked(s, r) => Introspection {
                active: false,
                kind,
                session: Some(s),
                state: Some(SessionState::Revoked(r)),
            },
        })
    }

    /// Sets up the admin token: stores the hash of `given` if one is given; otherwise, on
    /// first start, generates one and returns it (to be printed once).
    pub async fn ensure_admin_token(&self, given: Option<&str>) -> Result<Option<String>> {
        let store = self.store();
        let generated = match given {
            Some(t) => {
                store.set_meta(ADMIN_TOKEN_META, &secrets::hash(t).0)?;
                None
            }
            None if store.meta(ADMIN_TOKEN_META)?.is_some() => return Ok(None),
            None => {
                let t = format!("sdadm_{}", secrets::new_token());
                store.set_meta(ADMIN_TOKEN_META, &secrets::hash(&t).0)?;
                Some(t)
            }
        };
        self.sync().await?;
        Ok(generated)
    }

    pub fn is_admin_token(&self, token: &str) -> Result<bool> {
        Ok(match self.store().meta(ADMIN_TOKEN_META)? {
            Some(h) => secrets::ct_eq(&secrets::hash(token).0, &h),
            None => false,
        })
    }
}

fn new_rownd_key(app: &Application, now: Millis) -> (RowndKey, String) {
    let key = format!("key_{}", hex_encode(&secrets::random::<12>()));
    let secret = format!("ras_{}", secrets::new_token());
    (
        RowndKey {
            app: app.key,
            key,
            secret_hash: secrets::hash(&secret),
            created: now,
            revoked_at: None,
        },
        secret,
    )
}
