//! How a `markers` record ([`MarkerRecord`]) becomes bytes, in each layout it has had.
//!
//! A revoke-all writes one of these per scope it covers, and at a million sessions they
//! are most of what a revoke reads and writes in sled, so their size is the revoke's cost:
//! sled copies a leaf's values when it writes one, and the fewer leaves the records fill,
//! the more of them the page cache holds. Hence the compact layout.
//!
//! - `MARKERS_COMPACT` (written today): bincode with variable-length integers; the
//!   operation names and reasons of the revoke-alls, and the audit scopes, as one-byte
//!   codes of [`TEXTS`]; the held audit entry names its revocation by position instead of
//!   repeating its time and operation, and leaves out its account when the key names it.
//!   A Rownd revoke-all's record, its entry held: 112 bytes, against 323 in the layout
//!   before.
//! - `MARKERS_WITH_AUDIT`: the same fields in bincode's fixed-width integers, strings
//!   spelled out. Read, never written.
//! - `FORMAT_V1`: a plain `ScopeMarkers`, before records held audit entries. Read, never
//!   written.

use super::{MarkerRecord, Result, StoreError, codec, corruption};
use crate::model::*;
use serde::{Deserialize, Serialize};

/// Strings a compact record writes as their position here: the operations and reasons of
/// the revoke-alls in `domain/revoke.rs` (a test checks that each is here), and the audit
/// scopes. Append only: a record on disk names a string by its position forever. Strings
/// not here are written out ([`Text::Other`]), so a new operation only costs bytes until it
/// is added.
const TEXTS: &[&str] = &[
    "rownd.signout",
    "signed out of all devices",
    "connect.revoke_all",
    "revoke-all by the application",
    "flashback.revoke_all",
    "logged out from all devices",
    "rocketchat.logout_other_clients",
    "logged out from other clients",
    "okta.revoke_user_sessions",
    "all identity-provider sessions revoked by an administrator",
    "app",
    "idp",
    "all_apps",
    "idp_and_all_apps",
    "session",
];

/// A string of a compact record: its position in [`TEXTS`], or itself.
#[derive(Serialize, Deserialize)]
enum Text {
    Code(u8),
    Other(String),
}

impl Text {
    fn of(s: &str) -> Text {
        match TEXTS.iter().position(|t| *t == s) {
            Some(i) => Text::Code(i as u8),
            None => Text::Other(s.to_owned()),
        }
    }

    fn text(self) -> std::result::Result<String, String> {
        match self {
            Text::Code(i) => TEXTS
                .get(usize::from(i))
                .map(|t| (*t).to_owned())
                .ok_or_else(|| format!("text code {i} of {}", TEXTS.len())),
            Text::Other(s) => Ok(s),
        }
    }
}

/// The layout of `MARKERS_WITH_AUDIT` (and, with compact parts, of `MARKERS_COMPACT`): each
/// kind's watermark names its revocation by position, so that one written for several
/// kinds (a Rownd revoke-all writes three) is stored once.
#[derive(Serialize, Deserialize)]
pub(super) struct MarkersDisk<R, E> {
    pub(super) kinds: Vec<(SessionKind, u64, Option<SessionId>, u8)>,
    pub(super) revocations: Vec<R>,
    pub(super) held: Option<E>,
}

/// A revocation in a compact record.
#[derive(Serialize, Deserialize)]
struct RevocationDisk {
    at: Millis,
    by: Text,
    reason: Text,
}

/// The held audit entry in a compact record.
#[derive(Serialize, Deserialize)]
struct HeldDisk {
    seq: u64,
    /// The entry's time and operation: those of the record's revocation at this position,
    /// or, if none matches, written out.
    origin: Origin,
    credential: Credential,
    /// `None`: the account the record's key names.
    account: Option<AccountId>,
    app: Option<AppKey>,
    scope: Text,
    session: Option<SessionId>,
    devices_forgotten: u64,
    killed: Option<AuditCount>,
    pending: Option<PendingCount>,
}

#[derive(Serialize, Deserialize)]
enum Origin {
    Revocation(u8),
    Own { at: Millis, operation: Text },
}

/// The account a `markers` key begins with.
fn account_of(key: &[u8]) -> Option<AccountId> {
    key.get(..AccountId::LEN)?.try_into().ok().map(AccountId)
}

fn encode_error(detail: impl Into<String>) -> StoreError {
    StoreError::Encode {
        tree: "markers",
        detail: detail.into(),
    }
}

/// The bytes of `r`, in the compact layout, for the record at `key` (any key will do: the
/// held entry's account is left out only if `key` names it).
pub(super) fn encode(key: &[u8], r: &MarkerRecord) -> Result<Vec<u8>> {
    let mut revocations: Vec<&Revocation> = Vec::new();
    let mut kinds = Vec::with_capacity(r.markers.by_kind.len());
    for (kind, m) in &r.markers.by_kind {
        let at = match revocations.iter().position(|x| **x == m.revocation) {
            Some(at) => at,
            None => {
                revocations.push(&m.revocation);
                revocations.len() - 1
            }
        };
        // At most one watermark per kind, and there are four kinds.
        let at = u8::try_from(at)
            .map_err(|_| encode_error("more revocations than a record can name"))?;
        kinds.push((*kind, m.upto, m.except, at));
    }
    let held = r.held.as_ref().map(|e| {
        let origin = revocations
            .iter()
            .position(|x| x.at == e.at && x.by == e.operation)
            .and_then(|i| u8::try_from(i).ok())
            .map_or_else(
                || Origin::Own {
                    at: e.at,
                    operation: Text::of(&e.operation),
                },
                Origin::Revocation,
            );
        HeldDisk {
            seq: e.seq,
            origin,
            credential: e.credential.clone(),
            account: (account_of(key) != Some(e.account)).then_some(e.account),
            app: e.app,
            scope: Text::of(&e.scope),
            session: e.session,
            devices_forgotten: e.devices_forgotten,
            killed: e.killed,
            pending: e.pending.clone(),
        }
    });
    let disk = MarkersDisk {
        kinds,
        revocations: revocations
            .iter()
            .map(|r| RevocationDisk {
                at: r.at,
                by: Text::of(&r.by),
                reason: Text::of(&r.reason),
            })
            .collect(),
        held,
    };
    codec::encode_compact(codec::MARKERS_COMPACT, &disk).map_err(encode_error)
}

/// Decodes the record at `key`, of any layout it has had.
pub(super) fn decode(key: &[u8], bytes: &[u8]) -> Result<MarkerRecord> {
    let corrupt = corruption("markers", key);
    let (version, body) = codec::split_version(bytes).map_err(corrupt)?;
    let (kinds, revocations, held) = match version {
        codec::MARKERS_COMPACT => {
            let disk: MarkersDisk<RevocationDisk, HeldDisk> =
                codec::decode_compact_body(body).map_err(corrupt)?;
            let revocations = disk
                .revocations
                .into_iter()
                .map(|r| {
                    Ok(Revocation {
                        at: r.at,
                        by: r.by.text()?,
                        reason: r.reason.text()?,
                    })
                })
                .collect::<std::result::Result<Vec<_>, String>>()
                .map_err(corrupt)?;
            let held = match disk.held {
                None => None,
                Some(h) => Some(held_entry(key, h, &revocations).map_err(corrupt)?),
            };
            (disk.kinds, revocations, held)
        }
        codec::MARKERS_WITH_AUDIT => {
            let disk: MarkersDisk<Revocation, AuditEntry> =
                codec::decode_body(body).map_err(corrupt)?;
            (disk.kinds, disk.revocations, disk.held)
        }
        // Version 1, or an unknown one, which `decode` names.
        _ => {
            let markers = codec::decode(bytes).map_err(corrupt)?;
            return Ok(MarkerRecord {
                markers,
                held: None,
            });
        }
    };
    let mut by_kind = Vec::with_capacity(kinds.len());
    for (kind, upto, except, at) in kinds {
        let revocation = revocations.get(usize::from(at)).cloned().ok_or_else(|| {
            corrupt(format!(
                "{kind:?} names revocation {at} of {}",
                revocations.len()
            ))
        })?;
        by_kind.push((
            kind,
            Marker {
                upto,
                except,
                revocation,
            },
        ));
    }
    Ok(MarkerRecord {
        markers: ScopeMarkers { by_kind },
        held,
    })
}

fn held_entry(
    key: &[u8],
    h: HeldDisk,
    revocations: &[Revocation],
) -> std::result::Result<AuditEntry, String> {
    let (at, operation) = match h.origin {
        Origin::Revocation(i) => {
            let r = revocations.get(usize::from(i)).ok_or_else(|| {
                format!(
                    "the held entry names revocation {i} of {}",
                    revocations.len()
                )
            })?;
            (r.at, r.by.clone())
        }
        Origin::Own { at, operation } => (at, operation.text()?),
    };
    let account = match h.account {
        Some(a) => a,
        None => {
            account_of(key).ok_or("the held entry's account is the key's, and there is no key")?
        }
    };
    Ok(AuditEntry {
        seq: h.seq,
        at,
        operation,
        credential: h.credential,
        account,
        app: h.app,
        scope: h.scope.text()?,
        session: h.session,
        devices_forgotten: h.devices_forgotten,
        killed: h.killed,
        pending: h.pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys;
    use proptest::prelude::*;

    /// The record a Rownd revoke-all of an application writes: three kinds, one
    /// revocation, its entry held, its count to do.
    fn rownd_record(account: AccountId) -> MarkerRecord {
        let app = AppKey(1_234);
        let kinds = [SessionKind::Login, SessionKind::Oauth, SessionKind::Pat];
        let revocation = Revocation {
            at: 1_796_000_000_123,
            by: "rownd.signout".into(),
            reason: "signed out of all devices".into(),
        };
        let marker = Marker {
            upto: 2_345_678,
            except: None,
            revocation: revocation.clone(),
        };
        MarkerRecord {
            markers: ScopeMarkers {
                by_kind: kinds.iter().map(|k| (*k, marker.clone())).collect(),
            },
            held: Some(AuditEntry {
                seq: 2_345_678,
                at: revocation.at,
                operation: revocation.by.clone(),
                credential: Credential::AppKey("key_0123456789abcdef01234567".into()),
                account,
                app: Some(app),
                scope: "app".into(),
                session: None,
                devices_forgotten: 0,
                killed: None,
                pending: Some(PendingCount {
                    targets: kinds.iter().map(|k| (Scope::App(app), *k)).collect(),
                    upto: 2_345_678,
                    except: None,
                    before: vec![],
                }),
            }),
        }
    }

    /// The same record in the layout before (`MARKERS_WITH_AUDIT`), as it was written.
    fn with_audit_layout(r: &MarkerRecord) -> Vec<u8> {
        let revocation = &r.markers.by_kind[0].1.revocation;
        let disk = MarkersDisk {
            kinds: r
                .markers
                .by_kind
                .iter()
                .map(|(k, m)| (*k, m.upto, m.except, 0u8))
                .collect(),
            revocations: vec![revocation],
            held: r.held.as_ref(),
        };
        codec::encode_as(codec::MARKERS_WITH_AUDIT, &disk).expect("encode")
    }

    #[test]
    fn a_rownd_revoke_all_record_is_a_third_of_the_layout_before_and_both_read() {
        let account = AccountId::from_random([9; 17]);
        let key = keys::marker(&account, Scope::App(AppKey(1_234)));
        let r = rownd_record(account);
        let compact = encode(&key, &r).expect("encode");
        let before = with_audit_layout(&r);
        assert_eq!(decode(&key, &compact).expect("decode"), r);
        // The layout before still reads, as the same record.
        assert_eq!(decode(&key, &before).expect("decode"), r);
        // The figures of the module's documentation.
        assert_eq!((compact.len(), before.len()), (112, 323));
        // Without the key, the held entry keeps its account.
        let keyless = encode(b"", &r).expect("encode");
        assert_eq!(keyless.len(), compact.len() + AccountId::LEN);
        assert_eq!(decode(b"", &keyless).expect("decode"), r);
        // A keyless record that leaves the account to its key cannot be read without one.
        let err = decode(b"", &compact).expect_err("no key").to_string();
        assert!(err.contains("the key's"), "{err}");
    }

    #[test]
    fn strings_without_a_code_and_entries_of_another_time_are_written_out() {
        let account = AccountId::from_random([8; 17]);
        let key = keys::marker(&account, Scope::NoApp);
        let mut r = rownd_record(account);
        r.markers.by_kind[1].1.revocation.by = "admin.some_new_operation".into();
        r.markers.by_kind[1].1.revocation.reason = "ünïcode reason".into();
        let held = r.held.as_mut().expect("held");
        held.at += 1;
        held.operation = "no.such_operation".into();
        held.scope = "a scope of tomorrow".into();
        held.account = AccountId::from_random([7; 17]);
        held.killed = Some(AuditCount {
            sessions: u64::MAX,
            refresh_tokens: 3,
        });
        let bytes = encode(&key, &r).expect("encode");
        assert_eq!(decode(&key, &bytes).expect("decode"), r);
    }

    #[test]
    fn a_code_past_the_table_is_damage_named_with_its_key() {
        let account = AccountId::from_random([6; 17]);
        let key = keys::marker(&account, Scope::App(AppKey(1_234)));
        let mut bytes = encode(&key, &rownd_record(account)).expect("encode");
        // The first revocation's `by`: version, kinds (a length and three of 7 bytes: kind,
        // a 4-byte varint, no exception, position), the revocations' length, `at` (a 9-byte
        // varint), then the Text tag and the code.
        let code = 1 + 1 + 3 * 8 + 1 + 9 + 1;
        assert_eq!(bytes[code], 0, "rownd.signout is code 0");
        bytes[code] = TEXTS.len() as u8;
        let err = decode(&key, &bytes).expect_err("corrupt").to_string();
        assert!(
            err.contains("markers") && err.contains(&format!("text code {}", TEXTS.len())),
            "{err}"
        );
    }

    /// Every revoke-all's operation and reason in `domain/revoke.rs` is written as a code.
    #[test]
    fn every_revoke_all_operation_and_reason_has_a_code() {
        let source = include_str!("../domain/revoke.rs");
        let mut seen = 0;
        for line in source.lines() {
            let line = line.trim();
            for field in ["by: \"", "reason: \""] {
                if let Some(rest) = line.strip_prefix(field) {
                    let text = rest.split('"').next().expect("a closing quote");
                    assert!(TEXTS.contains(&text), "{text:?} has no code in TEXTS");
                    seen += 1;
                }
            }
        }
        assert_eq!(
            seen, 10,
            "five revoke-alls, each with an operation and a reason"
        );
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(TEXTS).prop_map(str::to_owned),
            ".{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn any_record_reads_back_as_written(
            upto in any::<u64>(),
            at in any::<i64>(),
            by in any_text(),
            reason in any_text(),
            scope in any_text(),
            seq in any::<u64>(),
            same_origin in any::<bool>(),
            same_account in any::<bool>(),
            except in proptest::option::of(any::<[u8; 16]>()),
            kinds in proptest::sample::subsequence(
                vec![SessionKind::Idp, SessionKind::Login, SessionKind::Oauth, SessionKind::Pat],
                0..=4,
            ),
        ) {
            let account = AccountId::from_random([5; 17]);
            let key = keys::marker(&account, Scope::AllApps);
            let revocation = Revocation { at, by: by.clone(), reason };
            let r = MarkerRecord {
                markers: ScopeMarkers {
                    by_kind: kinds
                        .iter()
                        .enumerate()
                        .map(|(i, k)| {
                            let mut revocation = revocation.clone();
                            revocation.at = revocation.at.wrapping_add(i as i64 % 2);
                            (*k, Marker { upto, except: except.map(SessionId), revocation })
                        })
                        .collect(),
                },
                held: Some(AuditEntry {
                    seq,
                    at: if same_origin { at } else { at.wrapping_sub(1) },
                    operation: by,
                    credential: Credential::Sessiond,
                    account: if same_account { account } else { AccountId::from_random([4; 17]) },
                    app: None,
                    scope,
                    session: except.map(SessionId),
                    devices_forgotten: seq / 3,
                    killed: None,
                    pending: None,
                }),
            };
            let bytes = encode(&key, &r).expect("encode");
            prop_assert_eq!(decode(&key, &bytes).expect("decode"), r);
        }
    }
}
