//! Tokens issued by a version before sessions kept their current tokens' hashes in their own
//! record: those tokens are 256 random bits, and their records are in the `tokens` tree
//! only. A store of that version must keep working: every such token checks as before, a
//! refresh token rotates once (into today's layout) and is then consumed, and presenting it
//! again is reuse. The old layout is rebuilt here from a session issued today: its token
//! records are copied to the `tokens` tree and its record is written without them.

use sessiond::domain::TokenCheck;
use sessiond::domain::{Config, NewAccount, NewApp, NewSession, Refreshed, Sessiond, SystemClock};
use sessiond::model::*;
use sessiond::store::{Store, StoreOptions};
use std::sync::Arc;

#[tokio::test]
async fn tokens_of_an_older_store_check_rotate_and_die_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
    let s = Sessiond::new(store, Config::default(), Arc::new(SystemClock)).expect("service");
    let app = s
        .create_app(NewApp {
            id: Some("old".into()),
            name: "Old".into(),
            ..NewApp::default()
        })
        .await
        .expect("app")
        .app;
    let account = s
        .create_account(NewAccount {
            login: "ann".into(),
            email: None,
            name: None,
            password: None,
        })
        .await
        .expect("account");
    let issued = s
        .issue(NewSession {
            account: account.id,
            app: Some(app.key),
            kind: SessionKind::Login,
            device: DeviceInfo::default(),
            method: "test".into(),
        })
        .await
        .expect("issue");

    // Rewrite it as the older version stored it.
    let mut session = s
        .store()
        .session(&issued.session.id)
        .expect("read")
        .expect("session");
    assert_eq!(session.tokens.len(), 4, "access, hub JWT, refresh, login");
    for at in 0..session.tokens.len() {
        let hash = session.tokens[at].hash;
        s.store()
            .put_token(&hash, &session.token_record(at))
            .expect("token");
    }
    session.tokens.clear();
    s.store().put_session(&session).expect("session");

    let access = issued.access_token.expect("access");
    let login = issued.login_token.expect("login");
    let refresh = issued.refresh_token.expect("refresh");
    let active = |t: &str, kind| {
        matches!(
            s.check_token(t, Some(app.key), &[kind]),
            Ok(TokenCheck::Active(_))
        )
    };
    assert!(active(&access, TokenKind::Access));
    assert!(active(&login, TokenKind::Login));
    assert!(active(&refresh, TokenKind::Refresh));

    // The old refresh token rotates; the new tokens live in the session record.
    let Refreshed::Rotated(r) = s
        .refresh(Some(app.key), &refresh, "test")
        .await
        .expect("refresh")
    else {
        panic!("the old refresh token did not rotate");
    };
    let after = s
        .store()
        .session(&issued.session.id)
        .expect("read")
        .expect("session");
    assert_eq!(after.tokens.len(), 3, "new access, hub JWT, refresh");
    assert!(active(&r.access_token, TokenKind::Access));
    assert!(active(&r.refresh_token, TokenKind::Refresh));
    // The old access and login tokens are still good; the old refresh token is consumed.
    assert!(active(&access, TokenKind::Access));
    assert!(active(&login, TokenKind::Login));
    assert!(matches!(
        s.check_token(&refresh, Some(app.key), &[TokenKind::Refresh]),
        Ok(TokenCheck::Consumed(_))
    ));

    // The new refresh token rotates too: today's path, from the session record.
    let Refreshed::Rotated(r2) = s
        .refresh(Some(app.key), &r.refresh_token, "test")
        .await
        .expect("refresh")
    else {
        panic!("the new refresh token did not rotate");
    };
    assert!(matches!(
        s.check_token(&r.refresh_token, Some(app.key), &[TokenKind::Refresh]),
        Ok(TokenCheck::Consumed(_))
    ));
    assert!(active(&r.access_token, TokenKind::Access));

    // Reuse of the oldest one kills the family: every token, old and new.
    assert!(matches!(
        s.refresh(Some(app.key), &refresh, "test").await,
        Ok(Refreshed::Reused)
    ));
    for t in [&access, &login, &r.access_token, &r2.access_token] {
        assert!(matches!(
            s.check_token(t, Some(app.key), &[TokenKind::Access, TokenKind::Login]),
            Ok(TokenCheck::Revoked(..))
        ));
    }
    assert!(matches!(
        s.refresh(Some(app.key), &r2.refresh_token, "test").await,
        Ok(Refreshed::Revoked(_))
    ));
    let report = s.store().check().expect("check");
    assert!(report.is_clean(), "{:?}", report.problems);
}
