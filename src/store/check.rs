//! `Store::check`: every record decodes, and every index agrees with the primary records in
//! both directions. It reads the whole store (it is `sessiond check`, run offline and by the
//! crash-loop test after every restart), reports each problem with its tree and key, and
//! never stops at the first one.

use super::{Store, dec, dec_markers, dec_session, keys};
use crate::model::*;
use sled::Tree;

/// One inconsistency: where it is, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub tree: &'static str,
    /// The key, as text where the key is text, else hex.
    pub key: String,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]: {}", self.tree, self.key, self.detail)
    }
}

/// What `check` read of one tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeSize {
    pub tree: &'static str,
    pub entries: u64,
    /// Bytes of keys and values: what the records hold, before sled's own overhead.
    pub bytes: u64,
}

/// What `check` found.
#[derive(Debug, Default)]
pub struct Report {
    /// What was read, per tree, in the order the trees were checked.
    pub entries: Vec<TreeSize>,
    /// The first `Report::MAX_PROBLEMS` problems.
    pub problems: Vec<Problem>,
    /// All problems, including those not kept.
    pub problem_count: u64,
}

impl Report {
    pub const MAX_PROBLEMS: usize = 1000;

    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }

    pub fn total_entries(&self) -> u64 {
        self.entries.iter().map(|t| t.entries).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|t| t.bytes).sum()
    }

    fn problem(&mut self, tree: &'static str, key: &[u8], detail: impl Into<String>) {
        self.problem_count += 1;
        if self.problems.len() < Self::MAX_PROBLEMS {
            self.problems.push(Problem {
                tree,
                key: show_key(key),
                detail: detail.into(),
            });
        }
    }
}

/// Text keys (anchors, logins, publishable keys) print as text; binary keys as hex.
fn show_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic()) => s.to_owned(),
        _ => hex_encode(key),
    }
}

fn account_id(bytes: &[u8]) -> Option<AccountId> {
    let arr: [u8; AccountId::LEN] = bytes.try_into().ok()?;
    AccountId::parse(std::str::from_utf8(&arr).ok()?)
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

type Entries = Vec<(sled::IVec, sled::IVec)>;

/// The `meta` entry holding the SHA-256 of the admin token (written by `domain::admin`).
const ADMIN_META_KEY: &[u8] = b"admin_token_sha256";

impl Store {
    /// Verifies every record and every index of the store. An `Err` is a failure to read
    /// (the engine's own error); inconsistencies are in the report.
    pub fn check(&self) -> super::Result<Report> {
        let mut r = Report::default();
        let t = &self.t;
        // Every session's seq and every watermark's `upto` came from sled's id generator,
        // which must never go back: a new session with a seq at or below an old watermark
        // would be born revoked. (Reading it consumes one id, which is harmless.)
        let next_id = self.db.generate_id()?;
        let read = |r: &mut Report, name: &'static str, tree: &Tree| -> super::Result<Entries> {
            let all: Entries = tree.iter().collect::<Result<_, _>>()?;
            r.entries.push(TreeSize {
                tree: name,
                entries: all.len() as u64,
                bytes: all.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum(),
            });
            Ok(all)
        };

        for (k, v) in read(&mut r, "meta", &t.meta)? {
            if k.as_ref() == ADMIN_META_KEY && v.len() != 32 {
                r.problem("meta", &k, "the admin token's hash is not 32 bytes");
            }
        }

        // Applications and their anchor index.
        for (k, v) in read(&mut r, "apps", &t.apps)? {
            let Some(app) = decoded::<Application>(&mut r, "apps", &k, &v) else {
                continue;
            };
            if k.as_ref() != keys::app(app.key) {
                r.problem("apps", &k, format!("record says key {}", app.key.0));
            }
            match t.app_anchors.get(app.anchor.as_str())? {
                Some(to) if to.as_ref() == k.as_ref() => {}
                Some(_) => r.problem(
                    "apps",
                    &k,
                    format!("anchor `{}` indexes another application", app.anchor),
                ),
                None => r.problem(
                    "apps",
                    &k,
                    format!("anchor `{}` is not indexed", app.anchor),
                ),
            }
        }
        for (k, v) in read(&mut r, "app_anchors", &t.app_anchors)? {
            match self.t.apps.get(&v)? {
                Some(bytes) => {
                    // An undecodable application is reported by the pass over `apps`.
                    if let Ok(app) = dec::<Application>("apps", &v, &bytes)
                        && app.anchor.as_str().as_bytes() != k.as_ref()
                    {
                        r.problem(
                            "app_anchors",
                            &k,
                            format!("points at application `{}`", app.anchor),
                        );
                    }
                }
                None => r.problem("app_anchors", &k, "points at a missing application"),
            }
        }
        for (k, v) in read(&mut r, "rownd_keys", &t.rownd_keys)? {
            let Some(key) = decoded::<RowndKey>(&mut r, "rownd_keys", &k, &v) else {
                continue;
            };
            if key.key.as_bytes() != k.as_ref() {
                r.problem("rownd_keys", &k, "record names another key");
            }
            if !t.apps.contains_key(keys::app(key.app))? {
                r.problem("rownd_keys", &k, "belongs to a missing application");
            }
        }

        // Accounts, their login / email indexes, and pairwise subjects.
        for (k, v) in read(&mut r, "accounts", &t.accounts)? {
            let Some(a) = decoded::<Account>(&mut r, "accounts", &k, &v) else {
                continue;
            };
            if k.as_ref() != a.id.0 {
                r.problem("accounts", &k, "record names another account id");
            }
            let mut indexed = vec![("account_logins", &t.account_logins, a.login.clone())];
            if let Some(email) = &a.email {
                indexed.push(("account_emails", &t.account_emails, email.clone()));
            }
            for (name, tree, value) in indexed {
                match tree.get(value.to_lowercase().as_bytes())? {
                    Some(id) if id.as_ref() == a.id.0 => {}
                    Some(_) => r.problem(
                        "accounts",
                        &k,
                        format!("{name} gives `{value}` to another account"),
                    ),
                    None => r.problem("accounts", &k, format!("`{value}` is missing from {name}")),
                }
            }
        }
        for (name, tree) in [
            ("account_logins", &t.account_logins),
            ("account_emails", &t.account_emails),
        ] {
            for (k, v) in read(&mut r, name, tree)? {
                let Some(id) = account_id(&v) else {
                    r.problem(name, &k, "value is not an account id");
                    continue;
                };
                let Some(bytes) = t.accounts.get(id.0)? else {
                    r.problem(name, &k, format!("points at missing account {id}"));
                    continue;
                };
                if let Ok(a) = dec::<Account>("accounts", &id.0, &bytes) {
                    let own = if name == "account_logins" {
                        Some(a.login)
                    } else {
                        a.email
                    };
                    if own.map(|s| s.to_lowercase().into_bytes()).as_deref() != Some(k.as_ref()) {
                        r.problem(name, &k, format!("account {id} no longer has this value"));
                    }
                }
            }
        }
        for (k, v) in read(&mut r, "subjects", &t.subjects)? {
            let (Some(account), Some(sector)) = (
                k.get(..AccountId::LEN).and_then(account_id),
                u64_at(&k, AccountId::LEN).filter(|_| k.len() == AccountId::LEN + 8),
            ) else {
                r.problem("subjects", &k, "key is not account ‖ sector");
                continue;
            };
            if !t.accounts.contains_key(account.0)? {
                r.problem(
                    "subjects",
                    &k,
                    format!("belongs to missing account {account}"),
                );
            }
            let Ok(subject) = std::str::from_utf8(&v) else {
                r.problem("subjects", &k, "subject is not UTF-8");
                continue;
            };
            match t
                .subject_owners
                .get(keys::subject_owner(SectorId(sector), subject))?
            {
                Some(owner) if owner.as_ref() == account.0 => {}
                Some(_) => r.problem("subjects", &k, "its subject is owned by another account"),
                None => r.problem("subjects", &k, "its subject has no owner entry"),
            }
        }
        for (k, v) in read(&mut r, "subject_owners", &t.subject_owners)? {
            let (Some(sector), Some(account)) = (u64_at(&k, 0), account_id(&v)) else {
                r.problem("subject_owners", &k, "not sector ‖ subject → account id");
                continue;
            };
            match t.subjects.get(keys::subject(&account, SectorId(sector)))? {
                Some(subject) if subject.as_ref() == &k[8..] => {}
                Some(_) => r.problem(
                    "subject_owners",
                    &k,
                    format!("account {account} has another subject in this sector"),
                ),
                None => r.problem(
                    "subject_owners",
                    &k,
                    format!("account {account} has no subject in this sector"),
                ),
            }
        }

        // Sessions and their indexes, both ways.
        for (k, v) in read(&mut r, "sessions", &t.sessions)? {
            let s = match dec_session(&k, &v) {
                Ok(s) => s,
                Err(e) => {
                    r.problem("sessions", &k, format!("does not decode: {e}"));
                    continue;
                }
            };
            for (i, tok) in s.tokens.iter().enumerate() {
                if s.tokens[..i].iter().any(|o| o.hash == tok.hash) {
                    r.problem(
                        "sessions",
                        &k,
                        format!("token {} twice", hex_encode(&tok.hash.0)),
                    );
                }
            }
            if k.as_ref() != s.id.0 {
                r.problem("sessions", &k, "record names another session id");
            }
            if !t.accounts.contains_key(s.account.0)? {
                r.problem(
                    "sessions",
                    &k,
                    format!("belongs to missing account {}", s.account),
                );
            }
            if let Some(app) = s.app
                && !t.apps.contains_key(keys::app(app))?
            {
                r.problem(
                    "sessions",
                    &k,
                    format!("belongs to missing application {}", app.0),
                );
            }
            if s.seq >= next_id {
                r.problem(
                    "sessions",
                    &k,
                    format!("seq {} is not below the id generator ({next_id})", s.seq),
                );
            }
            if !t
                .by_account
                .contains_key(keys::by_account(&s.account, s.app, s.seq, &s.id))?
            {
                r.problem("sessions", &k, "missing from by_account");
            }
            if s.expires != NEVER
                && !t
                    .by_expiry
                    .contains_key(keys::by_expiry(s.expires, &s.id))?
            {
                r.problem("sessions", &k, "missing from by_expiry");
            }
        }
        for (k, _) in read(&mut r, "by_account", &t.by_account)? {
            let Some(id) = (k.len() == AccountId::LEN + 32)
                .then(|| keys::session_of_by_account(&k))
                .flatten()
            else {
                r.problem("by_account", &k, "key is not account ‖ app ‖ seq ‖ session");
                continue;
            };
            match self.session_checked(&mut r, "by_account", &k, &id)? {
                Some(s) if keys::by_account(&s.account, s.app, s.seq, &s.id) == k.as_ref() => {}
                Some(_) => r.problem(
                    "by_account",
                    &k,
                    "disagrees with its session's account, app or seq",
                ),
                None => {}
            }
        }
        for (k, _) in read(&mut r, "by_expiry", &t.by_expiry)? {
            let Some(id) = (k.len() == 24)
                .then(|| k[8..].try_into().ok().map(SessionId))
                .flatten()
            else {
                r.problem("by_expiry", &k, "key is not expires ‖ session");
                continue;
            };
            match self.session_checked(&mut r, "by_expiry", &k, &id)? {
                Some(s) if keys::by_expiry(s.expires, &s.id) == k.as_ref() => {}
                Some(_) => r.problem("by_expiry", &k, "disagrees with its session's expiry"),
                None => {}
            }
        }
        for (k, v) in read(&mut r, "tokens", &t.tokens)? {
            if k.len() != 32 {
                r.problem("tokens", &k, "key is not a SHA-256");
            }
            if let Some(tok) = decoded::<TokenRecord>(&mut r, "tokens", &k, &v) {
                // It may also be current in its session: a rotation a crash cut between
                // its first two writes (`Store::rotate`). The session's copy is the one read.
                self.session_checked(&mut r, "tokens", &k, &tok.session)?;
            }
        }

        // Watermarks, devices, API tokens, client-JWT replay entries.
        // The records are the revocation log's; a key left in sled's tree of that name by
        // the import is one of no watermark, named below.
        let mut markers: Entries = t.markers.iter().collect::<Result<_, _>>()?;
        markers.extend(
            self.revlog
                .pages(4096)
                .flatten()
                .map(|(k, v)| (sled::IVec::from(&k[..]), sled::IVec::from(v))),
        );
        r.entries.push(TreeSize {
            tree: "markers",
            entries: markers.len() as u64,
            bytes: markers
                .iter()
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum(),
        });
        for (k, v) in markers {
            let owner = k.get(..AccountId::LEN).and_then(account_id);
            match owner {
                Some(a) if k.len() == keys::MARKER_KEY_LEN => {
                    if !t.accounts.contains_key(a.0)? {
                        r.problem("markers", &k, format!("belongs to missing account {a}"));
                    }
                }
                _ => r.problem("markers", &k, "key is not account ‖ scope"),
            }
            let record = match dec_markers(&k, &v) {
                Ok(record) => record,
                Err(e) => {
                    r.problem("markers", &k, format!("does not decode: {e}"));
                    continue;
                }
            };
            let all = record.markers;
            // The entry held is of the revoke-all that wrote the record last.
            if let Some(e) = &record.held
                && (owner != Some(e.account) || !all.by_kind.iter().any(|(_, m)| m.upto == e.seq))
            {
                r.problem(
                    "markers",
                    &k,
                    format!(
                        "holds the audit entry {} of account {}, not of a watermark of the record",
                        e.seq, e.account
                    ),
                );
            }
            for (i, (kind, m)) in all.by_kind.iter().enumerate() {
                if all.by_kind[..i].iter().any(|(k2, _)| k2 == kind) {
                    r.problem("markers", &k, format!("two watermarks of kind {kind:?}"));
                }
                if m.upto >= next_id {
                    r.problem(
                        "markers",
                        &k,
                        format!(
                            "{kind:?} upto {} is not below the id generator ({next_id})",
                            m.upto
                        ),
                    );
                }
            }
        }
        for (k, v) in read(&mut r, "devices", &t.devices)? {
            let Some(account) = k.get(..AccountId::LEN).and_then(account_id) else {
                r.problem("devices", &k, "key is not account ‖ device id");
                continue;
            };
            if !t.accounts.contains_key(account.0)? {
                r.problem(
                    "devices",
                    &k,
                    format!("belongs to missing account {account}"),
                );
            }
            if let Some(d) = decoded::<RememberedDevice>(&mut r, "devices", &k, &v)
                && d.id.as_bytes() != &k[AccountId::LEN..]
            {
                r.problem("devices", &k, "record names another device id");
            }
        }
        for (k, v) in read(&mut r, "api_tokens", &t.api_tokens)? {
            if k.len() != 32 {
                r.problem("api_tokens", &k, "key is not a SHA-256");
            }
            decoded::<ApiToken>(&mut r, "api_tokens", &k, &v);
        }
        for (k, v) in read(&mut r, "jtis", &t.jtis)? {
            if k.len() < 8 || v.len() != 8 {
                r.problem("jtis", &k, "not app ‖ jti → expiry");
            }
        }
        for (k, v) in read(&mut r, "audit", &t.audit)? {
            let (Some(account), Some(seq)) = (
                k.get(..AccountId::LEN).and_then(account_id),
                keys::seq_of_audit(&k),
            ) else {
                r.problem("audit", &k, "key is not account ‖ seq");
                continue;
            };
            if let Some(e) = decoded::<AuditEntry>(&mut r, "audit", &k, &v)
                && (e.account != account || e.seq != seq)
            {
                r.problem("audit", &k, "record names another account or seq");
            }
        }
        Ok(r)
    }

    /// The session an index entry points at, reporting a missing or undecodable one
    /// against the index entry.
    fn session_checked(
        &self,
        r: &mut Report,
        tree: &'static str,
        key: &[u8],
        id: &SessionId,
    ) -> super::Result<Option<Session>> {
        match self.t.sessions.get(id.0)? {
            // An undecodable session is reported once, by the pass over `sessions`.
            Some(bytes) => Ok(dec_session(&id.0, &bytes).ok()),
            None => {
                r.problem(tree, key, format!("points at missing session {id}"));
                Ok(None)
            }
        }
    }
}

/// Decodes a record, reporting (not returning) a corrupt one.
fn decoded<T: serde::de::DeserializeOwned>(
    r: &mut Report,
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Option<T> {
    match dec::<T>(tree, key, bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            r.problem(tree, key, format!("does not decode: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(dir.path(), &StoreOptions::default()).expect("open");
        (dir, s)
    }

    fn fixture(s: &Store) -> (Account, Session) {
        let account = Account {
            id: AccountId::from_random([5; 17]),
            login: "Ann".into(),
            email: Some("ann@example.com".into()),
            name: None,
            password_hash: None,
            status: AccountStatus::Active,
            created: 1,
        };
        s.create_account(&account).expect("account");
        s.put_subject_if_absent(&account.id, SectorId(3), "sub-1")
            .expect("subject");
        let session = Session {
            id: SessionId([7; 16]),
            account: account.id,
            app: None,
            kind: SessionKind::Idp,
            seq: s.next_seq().expect("seq"),
            device: DeviceInfo::default(),
            method: "admin".into(),
            created: 1,
            last_used: 1,
            expires: 5_000,
            has_refresh: false,
            revoked: None,
            tokens: vec![SessionToken {
                hash: TokenHash([1; 32]),
                kind: TokenKind::Access,
                issued: 1,
                expires: 5_000,
            }],
        };
        s.insert_session(&session).expect("session");
        // A replaced token, in the `tokens` tree.
        let token = TokenRecord {
            session: session.id,
            kind: TokenKind::Access,
            issued: 1,
            expires: 5_000,
            consumed_at: None,
        };
        s.put_token(&TokenHash([9; 32]), &token).expect("token");
        (account, session)
    }

    #[test]
    fn a_consistent_store_is_clean() {
        let (_d, s) = store();
        fixture(&s);
        let r = s.check().expect("check");
        assert!(r.is_clean(), "{:?}", r.problems);
        assert!(r.total_entries() >= 8, "{:?}", r.entries);
        // Sizes are the keys' and values' bytes, tree by tree.
        for (name, tree) in [("sessions", &s.t.sessions), ("accounts", &s.t.accounts)] {
            let bytes: u64 = tree
                .iter()
                .map(|kv| kv.map(|(k, v)| (k.len() + v.len()) as u64).expect("read"))
                .sum();
            let reported = r.entries.iter().find(|t| t.tree == name).expect("tree");
            assert!(bytes > 0, "{name}");
            assert_eq!(reported.bytes, bytes, "{name}");
            assert_eq!(reported.entries, tree.len() as u64, "{name}");
        }
        assert!(r.total_bytes() >= r.entries.iter().map(|t| t.bytes).max().unwrap_or(0));
    }

    #[test]
    fn each_broken_index_is_named() {
        let (_d, s) = store();
        let (account, session) = fixture(&s);
        // A session whose index entries are gone, an index entry without its session, a
        // token of a missing session, a login pointing nowhere, an undecodable record.
        s.t.by_expiry
            .remove(keys::by_expiry(session.expires, &session.id))
            .expect("remove");
        let ghost = SessionId([8; 16]);
        s.t.by_account
            .insert(
                keys::by_account(&account.id, None, session.seq + 1, &ghost),
                &[],
            )
            .expect("insert");
        let orphan = TokenRecord {
            session: ghost,
            kind: TokenKind::Refresh,
            issued: 1,
            expires: 2,
            consumed_at: None,
        };
        s.t.tokens
            .insert(
                [2u8; 32],
                super::super::enc("tokens", &orphan).expect("enc"),
            )
            .expect("insert");
        s.t.account_logins
            .insert("bob", &AccountId::from_random([6; 17]).0)
            .expect("insert");
        s.revlog.append(&[super::super::revlog::Op::Put {
            key: keys::marker(&account.id, Scope::NoApp)
                .try_into()
                .expect("key length"),
            value: vec![1, 0, 0],
        }]);
        let r = s.check().expect("check");
        let text: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
        let has = |needle: &str| text.iter().any(|t| t.contains(needle));
        assert!(has("sessions ["), "{text:#?}");
        assert!(has("missing from by_expiry"), "{text:#?}");
        assert!(
            has(&format!("by_account [{}", hex_encode(&account.id.0))),
            "{text:#?}"
        );
        assert!(
            has(&format!("points at missing session {ghost}")),
            "{text:#?}"
        );
        assert!(has(&format!("tokens [{}]", "02".repeat(32))), "{text:#?}");
        assert!(
            has("account_logins [bob]: points at missing account"),
            "{text:#?}"
        );
        assert!(has("markers [") && has("does not decode"), "{text:#?}");
        assert_eq!(r.problem_count, 5, "{text:#?}");
    }

    #[test]
    fn a_watermark_ahead_of_the_id_generator_is_named() {
        let (_d, s) = store();
        let (account, _) = fixture(&s);
        let m = Marker {
            upto: u64::MAX / 2,
            except: None,
            revocation: Revocation {
                at: 1,
                by: "test".into(),
                reason: "test".into(),
            },
        };
        crate::store::tests::revoke(&s, &account.id, &[(Scope::NoApp, SessionKind::Idp, m)]);
        let r = s.check().expect("check");
        assert_eq!(r.problem_count, 1, "{:?}", r.problems);
        assert!(
            r.problems[0]
                .to_string()
                .contains("is not below the id generator"),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn an_audit_entry_held_by_a_record_it_does_not_belong_to_is_named() {
        let (_d, s) = store();
        let (account, _) = fixture(&s);
        let seq = s.next_seq().expect("seq");
        let m = Marker {
            upto: seq,
            except: None,
            revocation: Revocation {
                at: 1,
                by: "test".into(),
                reason: "test".into(),
            },
        };
        let scope = Scope::App(AppKey(9));
        let base = s
            .revocation_base(&account.id, [scope], false)
            .expect("read");
        // The entry of another revocation (another seq) held by this record.
        let stray = crate::store::tests::entry(&account.id, seq + 1);
        s.apply_revocation(&account.id, base, &[(scope, SessionKind::Login, m)], stray)
            .expect("revoke");
        let r = s.check().expect("check");
        assert_eq!(r.problem_count, 1, "{:?}", r.problems);
        assert!(
            r.problems[0].to_string().contains("holds the audit entry"),
            "{:?}",
            r.problems
        );
    }
}
