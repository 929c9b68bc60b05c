//! Data that does not pile up: a background task deletes what has ended — sessions expired or
//! revoked more than `retention_days` ago (their refresh tokens go with them), refresh tokens
//! spent that long ago, throttling counters whose window and block are over, mailed links
//! (confirmation, reset) and sign-ins waiting for a second step that expired, and invitations
//! used, revoked or expired more than
//! `retention_days` ago (kept until then for `miniauth invite list`), and OpenID Connect's
//! codes, grants and tokens ended that long ago — in small batches, so it never holds the
//! database for long.
//!
//! A spent refresh token (or authorization code) is kept while it is younger than the
//! retention: presenting it again then revokes its session or grant (theft). After that it is
//! simply unknown.

use std::time::Duration;

use super::{now, Db, Store};
use crate::error::Result;
use rocket::fairing::AdHoc;
use rocket::tokio::time::{interval, sleep, MissedTickBehavior};
use rocket_db_pools::Database;

/// Rows deleted per statement.
const BATCH: i64 = 500;
/// A pause between batches, for the requests waiting behind them.
const BETWEEN_BATCHES: Duration = Duration::from_millis(50);

/// Deletes, in batches, sessions that ended more than `retention` seconds before `now` (unix
/// seconds) with their refresh tokens, refresh tokens spent that long ago, spent throttling
/// counters, expired mailed links, and invitations spent that long ago, and security events
/// older than `event_retention` seconds. Returns the rows deleted.
pub async fn purge_ended(db: &Store, now: i64, (retention, event_retention): (i64, i64)) -> Result<u64> {
    let before = now - retention;
    // Each statement deletes rows older than $1, at most $2 of them.
    let statements = [
        (
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
          WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1) LIMIT $2)",
            before,
        ),
        (
            "DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens \
          WHERE used_at IS NOT NULL AND used_at < $1 LIMIT $2)",
            before,
        ),
        (
            "DELETE FROM throttle WHERE (kind, username, address) IN (SELECT kind, username, address \
          FROM throttle WHERE expires_at < $1 AND blocked_until < $1 LIMIT $2)",
            now,
        ),
        (
            "DELETE FROM mail_tokens WHERE token_hash IN (SELECT token_hash FROM mail_tokens \
          WHERE expires_at < $1 LIMIT $2)",
            now,
        ),
        (
            "DELETE FROM pending_sign_ins WHERE token_hash IN (SELECT token_hash FROM pending_sign_ins \
          WHERE expires_at < $1 LIMIT $2)",
            now,
        ),
        (
            "DELETE FROM passkey_ceremonies WHERE token_hash IN (SELECT token_hash FROM passkey_ceremonies \
          WHERE expires_at < $1 LIMIT $2)",
            now,
        ),
        (
            "DELETE FROM oauth_codes WHERE code_hash IN (SELECT code_hash FROM oauth_codes \
          WHERE expires_at < $1 LIMIT $2)",
            before,
        ),
        (
            "DELETE FROM oauth_grants WHERE id IN (SELECT id FROM oauth_grants \
          WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1) LIMIT $2)",
            before,
        ),
        (
            "DELETE FROM oauth_tokens WHERE token_hash IN (SELECT token_hash FROM oauth_tokens \
          WHERE (kind = 'access' AND expires_at < $1) OR used_at < $1 LIMIT $2)",
            before,
        ),
        (
            "DELETE FROM invitations WHERE id IN (SELECT id FROM invitations \
          WHERE expires_at < $1 OR used_at < $1 OR revoked_at < $1 LIMIT $2)",
            before,
        ),
        // Ids follow time (give or take the clocks of several instances): the oldest by id,
        // of those past the retention, without an index on `at`. One a few seconds younger
        // than a later id's goes at the next purge.
        (
            "DELETE FROM security_events WHERE id IN (SELECT id FROM (SELECT id, at FROM security_events \
          ORDER BY id LIMIT $2) oldest WHERE at < $1)",
            now - event_retention,
        ),
    ];
    let mut deleted = 0;
    for (statement, cutoff) in statements {
        loop {
            let (pool, _turn) = db.write().await?;
            let done = sqlx::query(statement).bind(cutoff).bind(BATCH).execute(pool).await?;
            deleted += done.rows_affected();
            if done.rows_affected() < BATCH as u64 {
                break;
            }
            drop(_turn);
            sleep(BETWEEN_BATCHES).await;
        }
    }
    Ok(deleted)
}

/// Starts the purge at lift-off: every `every`, the first time right away, of what ended
/// `retention` ago, of the security events older than `event_retention`, and of the signing
/// keys retired `keep_retired_keys` ago.
pub fn stage(
    (retention, event_retention): (Duration, Duration),
    keep_retired_keys: Duration,
    every: Duration,
) -> AdHoc {
    AdHoc::on_liftoff("Purge of ended data", move |rocket| {
        Box::pin(async move {
            let Some(db) = Db::fetch(rocket) else {
                return;
            };
            let store = Store::clone(db);
            let retention = (super::seconds(retention), super::seconds(event_retention));
            let keep_retired_keys = super::seconds(keep_retired_keys);
            let mut ticks = interval(every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            rocket::tokio::spawn(async move {
                loop {
                    ticks.tick().await;
                    let now = now();
                    match purge_ended(&store, now, retention).await {
                        Ok(0) => {}
                        Ok(deleted) => {
                            log::info!("purged {deleted} rows of ended sessions, spent tokens, counters and invitations")
                        }
                        Err(e) => log::warn!("purging ended data failed: {e:?}"),
                    }
                    match super::keys::forget_retired(&store, now - keep_retired_keys).await {
                        Ok(0) => {}
                        Ok(deleted) => log::info!("deleted {deleted} retired signing keys"),
                        Err(e) => log::warn!("deleting retired signing keys failed: {e:?}"),
                    }
                }
            });
        })
    })
}
