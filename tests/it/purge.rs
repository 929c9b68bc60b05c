//! Data over time: sessions that ended (expired or revoked) more than
//! `retention_days` ago disappear with their refresh tokens, and so do refresh tokens spent that
//! long ago; live sessions, recently ended ones and unspent tokens stay. Throttling counters go
//! once their window and block are over.

use crate::common;

use std::time::{Duration, Instant};

use rocket::http::Status;

use common::{expect, now, TestApp, Tokens};

backend_tests_with!(
    |figment| figment.merge(("purge_interval", 1)).merge(("retention_days", 7));
    ended_data_is_purged_after_the_retention_and_live_data_stays
        => sqlite_ended_data_is_purged, postgres_ended_data_is_purged,
    spent_throttling_counters_are_purged_and_live_ones_stay
        => sqlite_spent_throttling_counters_are_purged, postgres_spent_throttling_counters_are_purged,
);

const PASSWORD: &str = "quiet lantern trombone";
const DAY: i64 = 24 * 3600;

async fn ended_data_is_purged_after_the_retention_and_live_data_stays(app: TestApp) {
    let [live, revoked_long_ago, expired_long_ago, revoked_lately] =
        app.register_and_sign_in("alice", PASSWORD).await;
    // The live session's first refresh token is spent; its new one is not.
    let response = app.refresh(&live.refresh).await;
    let renewed = Tokens::of(&expect(response, Status::Ok).await);
    let live_id = app.session_id(&live.access).await;
    let old_revoked = app.session_id(&revoked_long_ago.access).await;
    let old_expired = app.session_id(&expired_long_ago.access).await;
    let recent = app.session_id(&revoked_lately.access).await;
    let (long_ago, lately) = (now() - 8 * DAY, now() - DAY);
    app.execute(&[
        format!("UPDATE sessions SET revoked_at = {long_ago} WHERE id = '{old_revoked}'"),
        format!("UPDATE sessions SET expires_at = {long_ago} WHERE id = '{old_expired}'"),
        format!("UPDATE sessions SET revoked_at = {lately} WHERE id = '{recent}'"),
        format!("UPDATE refresh_tokens SET used_at = {long_ago} WHERE used_at IS NOT NULL"),
    ])
    .await;

    let gone = |id: &str| format!("SELECT COUNT(*) FROM sessions WHERE id = '{id}'");
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.count(&gone(&old_revoked)).await + app.count(&gone(&old_expired)).await > 0
        || app.count("SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NOT NULL").await > 0
    {
        assert!(Instant::now() < deadline, "ended data was not purged");
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Their refresh tokens went with them; what lives stays.
    let orphans = "SELECT COUNT(*) FROM refresh_tokens WHERE session_id NOT IN (SELECT id FROM sessions)";
    assert_eq!(app.count(orphans).await, 0);
    assert_eq!(app.count(&gone(&live_id)).await, 1);
    assert_eq!(app.count(&gone(&recent)).await, 1, "a session that ended lately was purged");
    assert!(app.token_works(&renewed.access).await);
    assert_eq!(app.refresh(&renewed.refresh).await.status(), Status::Ok);
}

/// Throttling counters go once their window and their block are over; live ones stay.
async fn spent_throttling_counters_are_purged_and_live_ones_stay(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    for name in ["alice", "bob"] {
        let response = app.login(name, "wrong password").await;
        assert_eq!(response.status(), Status::Unauthorized);
    }
    // bob's counters ended an hour ago; alice's (and the address's, which both share) live on.
    let past = now() - 3600;
    app.execute(&[format!(
        "UPDATE throttle SET window_start = {past}, expires_at = {past} WHERE username = 'bob'"
    )])
    .await;
    let bobs = "SELECT COUNT(*) FROM throttle WHERE username = 'bob'";
    assert_eq!(app.count(bobs).await, 2, "bob's pair and username counters");
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.count(bobs).await > 0 {
        assert!(Instant::now() < deadline, "spent counters were not purged");
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM throttle WHERE username = 'alice'").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM throttle WHERE kind = 'address'").await, 1);
}
