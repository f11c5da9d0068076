//! The revoke-all variants, one per shape, and single-session revocation. Each is one
//! atomic write of watermarks (plus tombstones or device removals where the contract asks)
//! under the account's lock, then a durable sync before it returns: an `Ok` here may be
//! acknowledged.

use super::audit::{Count, RevokeAllRecord};
use super::{Error, Result, SessionState, Sessiond};
use crate::model::*;

/// What a revoke-all did. "Nothing to revoke" is `Ok` too; each shape decides what that
/// looks like on its wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revoked {
    /// What died, counted only where the contract answers a count (Connect's
    /// `revokedCount`): counting reads every session of the pair, the one part of a
    /// revoke-all whose cost grows with the number of sessions. The others write their
    /// watermarks and are done, whatever the pair holds.
    pub counted: Option<Counted>,
    /// Remembered devices / factors cleared.
    pub devices_forgotten: usize,
}

/// The exact count of what a revoke-all killed, read under the account's lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    /// Live sessions that died.
    pub sessions: usize,
    /// Live refresh-token families (one per session) that died.
    pub refresh_tokens: usize,
}

/// One revoke-all: which scopes and kinds die, who survives, whether devices are forgotten.
struct Plan<'a> {
    /// Who asked (the audit log).
    credential: Credential,
    by: &'a str,
    reason: &'a str,
    targets: Vec<(Scope, SessionKind)>,
    except: Option<SessionId>,
    forget_devices: bool,
    /// Whether the answer needs the exact count of what dies (see `Revoked::counted`).
    count: bool,
}

impl Sessiond {
    /// Writes the watermarks and the audit entry; returns what to answer, the entry's
    /// sequence number, and its count if it was taken now.
    fn revoke_all(
        &self,
        account: &AccountId,
        plan: &Plan<'_>,
    ) -> Result<(Revoked, u64, Option<AuditCount>)> {
        let store = self.store();
        let _g = self.lock(account);
        if !store.has_account(account) {
            return Err(Error::NotFound("account"));
        }
        // The survivor must still be alive now, under the lock: otherwise its exception in
        // the new watermark would lift an acknowledged revocation of it.
        if let Some(id) = plan.except {
            match store.session(&id)? {
                Some(s) if self.state(&s)? == SessionState::Active => {}
                _ => return Err(Error::CallerRevoked),
            }
        }
        let counted = if plan.count {
            Some(self.count_live(account, plan)?)
        } else {
            None
        };
        let killed = counted.map(|c| AuditCount {
            sessions: c.sessions as u64,
            refresh_tokens: c.refresh_tokens as u64,
        });
        let upto = store.next_seq()?;
        let revocation = Revocation {
            at: self.now(),
            by: plan.by.to_owned(),
            reason: plan.reason.to_owned(),
        };
        let markers: Vec<_> = plan
            .targets
            .iter()
            .map(|(scope, kind)| {
                (
                    *scope,
                    *kind,
                    Marker {
                        upto,
                        except: plan.except,
                        revocation: revocation.clone(),
                    },
                )
            })
            .collect();
        let base = store.revocation_base(
            account,
            plan.targets.iter().map(|(scope, _)| *scope),
            plan.forget_devices,
        )?;
        let devices_forgotten = base.devices();
        let count = match killed {
            Some(c) => Count::Known(c),
            // What the audit's later count judges "alive just before" against.
            None => Count::Later(self.watermarks_before(account, &plan.targets, &base.previous)?),
        };
        // The entry is written with the watermarks, in the record of the first scope.
        self.record_revoke_all(
            RevokeAllRecord {
                seq: upto,
                at: revocation.at,
                operation: plan.by,
                credential: plan.credential.clone(),
                account,
                targets: &plan.targets,
                except: plan.except,
                devices_forgotten,
                count,
            },
            |entry| Ok(store.apply_revocation(account, base, &markers, entry)?),
        )?;
        let revoked = Revoked {
            counted,
            devices_forgotten,
        };
        Ok((revoked, upto, killed))
    }

    /// The account's watermarks just before a revoke-all of `targets`, that can cover a
    /// session `targets` cover: of the scopes that reach such a session (single-key reads;
    /// all of the account's for every-application targets, Okta's `oauthTokens`), of the
    /// kinds targeted. Only those: they go into the audit entry written with every
    /// revocation. Called under the account's lock before the revoke-all's write:
    /// `previous` holds what it replaces, every other scope is as it is.
    fn watermarks_before(
        &self,
        account: &AccountId,
        targets: &[(Scope, SessionKind)],
        previous: &[(Scope, ScopeMarkers)],
    ) -> Result<Vec<Watermark>> {
        let store = self.store();
        let reaches = |scope: Scope| {
            targets.iter().any(|(t, _)| match *t {
                Scope::App(a) => scope == Scope::App(a) || scope == Scope::AllApps,
                Scope::NoApp => scope == Scope::NoApp,
                Scope::AllApps => scope != Scope::NoApp,
            })
        };
        let before = |scope: Scope| previous.iter().find(|(s, _)| *s == scope).map(|(_, m)| m);
        let markers = if targets.iter().any(|(s, _)| *s == Scope::AllApps) {
            let mut all: Vec<(Scope, ScopeMarkers)> = store
                .markers_of(account)?
                .into_iter()
                .filter(|(scope, _)| before(*scope).is_none())
                .collect();
            all.extend(previous.iter().cloned());
            all
        } else {
            let mut scopes: Vec<Scope> = Vec::new();
            for (scope, _) in targets {
                let also = matches!(scope, Scope::App(_)).then_some(Scope::AllApps);
                for s in std::iter::once(*scope).chain(also) {
                    if !scopes.contains(&s) {
                        scopes.push(s);
                    }
                }
            }
            let mut found = Vec::new();
            for scope in scopes {
                let m = match before(scope) {
                    Some(m) => Some(m.clone()),
                    None => store.scope_markers(account, scope)?,
                };
                if let Some(m) = m {
                    found.push((scope, m));
                }
            }
            found
        };
        Ok(markers
            .into_iter()
            .filter(|(scope, _)| reaches(*scope))
            .flat_map(|(scope, m)| {
                m.by_kind.into_iter().map(move |(kind, m)| Watermark {
                    scope,
                    kind,
                    upto: m.upto,
                    except: m.except,
                })
            })
            .filter(|w| targets.iter().any(|(_, k)| *k == w.kind))
            .collect())
    }

    /// What is alive now and would die under `plan`: exact, because the caller holds the
    /// account's lock, which keeps issues and refreshes of this account out until the
    /// watermarks are written. Only the pairs the plan names are read.
    fn count_live(&self, account: &AccountId, plan: &Plan<'_>) -> Result<Counted> {
        let mut out = Counted::default();
        for pair in pairs_of(&plan.targets) {
            for s in self.store().sessions_of(account, pair)? {
                let covered = plan.targets.iter().any(|(sc, k)| covers(*sc, *k, &s));
                if covered && plan.except != Some(s.id) && self.state(&s)? == SessionState::Active {
                    out.sessions += 1;
                    out.refresh_tokens += usize::from(s.has_refresh);
                }
            }
        }
        Ok(out)
    }

    async fn revoke_all_durably(&self, account: &AccountId, plan: Plan<'_>) -> Result<Revoked> {
        let (out, seq, killed) = self.revoke_all(account, &plan)?;
        // A revoke-all writes only its record of the revocation log.
        self.store().sync_revocations().await?;
        self.metrics().revoked(super::audit::label(plan.by));
        match killed {
            Some(c) => self.killed_now(plan.by, c),
            None => self.enqueue_count(account, seq),
        }
        Ok(out)
    }

    /// Rownd `signout` with app credentials (or a hub JWT with `sign_out_all` true or
    /// absent): every session and token of the account in `app`.
    pub async fn rownd_sign_out_all(
        &self,
        app: AppKey,
        account: &AccountId,
        credential: Credential,
    ) -> Result<Revoked> {
        let plan = Plan {
            credential,
            by: "rownd.signout",
            reason: "signed out of all devices",
            targets: app_kinds(
                app,
                &[SessionKind::Login, SessionKind::Oauth, SessionKind::Pat],
            ),
            except: None,
            forget_devices: false,
            count: false,
        };
        self.revoke_all_durably(account, plan).await
    }

    /// Connect `revoke-all`: the account's refresh tokens issued for `app` (its login and
    /// OAuth sessions); `refresh_tokens` is the exact `revokedCount`.
    pub async fn connect_revoke_all(
        &self,
        app: AppKey,
        account: &AccountId,
        credential: Credential,
    ) -> Result<Counted> {
        let plan = Plan {
            credential,
            by: "connect.revoke_all",
            reason: "revoke-all by the application",
            targets: app_kinds(app, &[SessionKind::Login, SessionKind::Oauth]),
            except: None,
            forget_devices: false,
            count: true,
        };
        let r = self.revoke_all_durably(account, plan).await?;
        Ok(r.counted.expect("a plan with `count` is counted"))
    }

    /// Flashback `sessions/revoke-all`: every session of the user in the token's
    /// application, the caller's own included.
    pub async fn flashback_revoke_all(
        &self,
        app: AppKey,
        account: &AccountId,
        credential: Credential,
    ) -> Result<Revoked> {
        let plan = Plan {
            credential,
            by: "flashback.revoke_all",
            reason: "logged out from all devices",
            targets: app_kinds(
                app,
                &[SessionKind::Login, SessionKind::Oauth, SessionKind::Pat],
            ),
            except: None,
            forget_devices: false,
            count: false,
        };
        self.revoke_all_durably(account, plan).await
    }

    /// Rocket.Chat `users.logoutOtherClients`: the user's login tokens in `app` other than
    /// the presented one (`current`, `None` when a personal access token was presented).
    /// Personal access tokens survive.
    pub async fn rocketchat_logout_others(
        &self,
        app: AppKey,
        account: &AccountId,
        current: Option<SessionId>,
        credential: Credential,
    ) -> Result<Revoked> {
        let plan = Plan {
            credential,
            by: "rocketchat.logout_other_clients",
            reason: "logged out from other clients",
            targets: app_kinds(app, &[SessionKind::Login]),
            except: current,
            forget_devices: false,
            count: false,
        };
        self.revoke_all_durably(account, plan).await
    }

    /// Okta `DELETE /api/v1/users/{id}/sessions`: identity-provider sessions; OAuth grants
    /// in every application when `oauth_tokens`; remembered devices when `forget_devices`.
    /// Application login sessions are untouched.
    pub async fn okta_revoke_user_sessions(
        &self,
        account: &AccountId,
        oauth_tokens: bool,
        forget_devices: bool,
        credential: Credential,
    ) -> Result<Revoked> {
        let mut targets = vec![(Scope::NoApp, SessionKind::Idp)];
        if oauth_tokens {
            targets.push((Scope::AllApps, SessionKind::Oauth));
        }
        let plan = Plan {
            credential,
            by: "okta.revoke_user_sessions",
            reason: "all identity-provider sessions revoked by an administrator",
            targets,
            except: None,
            forget_devices,
            count: false,
        };
        self.revoke_all_durably(account, plan).await
    }

    /// Revokes one session (logout, an administrator's or the user's choice). `Ok(false)`
    /// if it was not alive. Either way, its state is durable when this returns.
    pub async fn revoke_session(
        &self,
        id: &SessionId,
        by: &str,
        reason: &str,
        credential: Credential,
    ) -> Result<bool> {
        let store = self.store();
        let Some(s) = store.session(id)? else {
            return Err(Error::NotFound("session"));
        };
        let (killed, count) = {
            let _g = self.lock(&s.account);
            let mut s = store.session(id)?.ok_or(Error::NotFound("session"))?;
            let killed = self.state(&s)? == SessionState::Active;
            if killed {
                s.revoked = Some(Revocation {
                    at: self.now(),
                    by: by.to_owned(),
                    reason: reason.to_owned(),
                });
                store.put_session(&s)?;
            }
            // Recorded also when it was dead already: the request was made.
            (
                killed,
                self.record_session_revocation(&s, by, credential, killed)?,
            )
        };
        // Also when it was already dead: a concurrent revocation of it may have written its
        // tombstone without having made it durable yet, and "already revoked" may only be
        // acknowledged once that is on disk.
        self.sync().await?;
        self.killed_now(by, count);
        Ok(killed)
    }
}

/// Whether watermarks of `scope` and `kind` reach session `s` (its `seq` and the exception
/// aside).
pub(super) fn covers(scope: Scope, kind: SessionKind, s: &Session) -> bool {
    kind == s.kind
        && match scope {
            Scope::NoApp => s.app.is_none(),
            Scope::App(a) => s.app == Some(a),
            Scope::AllApps => s.app.is_some(),
        }
}

/// The index ranges that hold every session `targets` can cover: (account, no app),
/// (account, app), or the whole account (`None`) when every application is targeted.
pub(super) fn pairs_of(targets: &[(Scope, SessionKind)]) -> Vec<Option<Option<AppKey>>> {
    let mut pairs = Vec::new();
    for (scope, _) in targets {
        let pair = match scope {
            Scope::NoApp => Some(None),
            Scope::App(a) => Some(Some(*a)),
            Scope::AllApps => None,
        };
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    if pairs.contains(&None) {
        pairs = vec![None];
    }
    pairs
}

fn app_kinds(app: AppKey, kinds: &[SessionKind]) -> Vec<(Scope, SessionKind)> {
    kinds.iter().map(|k| (Scope::App(app), *k)).collect()
}
