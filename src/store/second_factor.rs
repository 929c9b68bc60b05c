//! Queries on `totp_factors`, `recovery_codes` and `pending_sign_ins`: the second factor of a
//! user, and the sign-ins waiting for it. Each use of a code is one conditional statement, so
//! two instances (or two requests) never both accept the same one.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, FromRow, Row};

use super::{Event, Store};
use crate::error::Result;

/// A user's authenticator-app secret, on or waiting for its first code.
pub struct Factor {
    pub secret: String,
    pub confirmed: bool,
}

impl FromRow<'_, AnyRow> for Factor {
    fn from_row(row: &AnyRow) -> sqlx::Result<Factor> {
        Ok(Factor {
            secret: row.try_get("secret")?,
            confirmed: super::nullable::<i64>(row, "confirmed_at")?.is_some(),
        })
    }
}

pub async fn find(db: &AnyPool, user_id: i64) -> Result<Option<Factor>> {
    let factor = sqlx::query_as("SELECT secret, confirmed_at FROM totp_factors WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    Ok(factor)
}

/// Keeps a new secret waiting for its first code, in place of one waiting already; `false`,
/// and nothing changed, when the user's factor is on.
pub async fn begin(db: &Store, user_id: i64, secret: &str, now: i64) -> Result<bool> {
    let (db, _turn) = db.write().await?;
    let stored = sqlx::query(
        "INSERT INTO totp_factors (user_id, secret, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, \
           last_step = 0 WHERE totp_factors.confirmed_at IS NULL",
    )
    .bind(user_id)
    .bind(secret)
    .bind(now)
    .execute(db)
    .await?;
    Ok(stored.rows_affected() == 1)
}

/// Turns the waiting factor on with the code of time step `step`, and stores the hashes of its
/// recovery codes, in one transaction with `event`; `false`, and nothing changed, when nothing
/// waits.
pub async fn confirm(
    db: &Store,
    user_id: i64,
    (step, now): (i64, i64),
    code_hashes: &[String],
    event: Event,
) -> Result<bool> {
    let mut tx = db.change().await?;
    let confirmed = sqlx::query(
        "UPDATE totp_factors SET confirmed_at = $2, last_step = $3 \
         WHERE user_id = $1 AND confirmed_at IS NULL AND last_step < $3",
    )
    .bind(user_id)
    .bind(now)
    .bind(step)
    .execute(&mut *tx)
    .await?;
    if confirmed.rows_affected() != 1 {
        return Ok(false);
    }
    replace_codes(&mut tx, user_id, code_hashes).await?;
    tx.commit(&[event]).await?;
    Ok(true)
}

/// Replaces the user's recovery codes, recording `event`; `false`, and nothing changed, when
/// they have no second factor (no authenticator app on and no passkey).
pub async fn replace_recovery_codes(
    db: &Store,
    user_id: i64,
    code_hashes: &[String],
    event: Event,
) -> Result<bool> {
    let mut tx = db.change().await?;
    let on: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL) \
              + (SELECT COUNT(*) FROM passkeys WHERE user_id = $1)",
    )
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    if on == 0 {
        return Ok(false);
    }
    replace_codes(&mut tx, user_id, code_hashes).await?;
    tx.commit(&[event]).await?;
    Ok(true)
}

pub(super) async fn replace_codes(
    tx: &mut AnyConnection,
    user_id: i64,
    code_hashes: &[String],
) -> Result<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
    for hash in code_hashes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
            .bind(user_id)
            .bind(hash)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Accepts a code of time step `step` for a user whose factor is on, once: `false` when that
/// step (or a later one) was accepted before — a code seen once is never good again.
pub async fn accept_step(db: &Store, user_id: i64, step: i64) -> Result<bool> {
    let (db, _turn) = db.write().await?;
    let accepted = sqlx::query(
        "UPDATE totp_factors SET last_step = $2 \
         WHERE user_id = $1 AND confirmed_at IS NOT NULL AND last_step < $2",
    )
    .bind(user_id)
    .bind(step)
    .execute(db)
    .await?;
    Ok(accepted.rows_affected() == 1)
}

/// Spends one of the user's recovery codes, by its hash: `false` when it is not theirs or was
/// used.
pub async fn use_recovery_code(db: &Store, user_id: i64, code_hash: &str, now: i64) -> Result<bool> {
    let (db, _turn) = db.write().await?;
    let used = sqlx::query(
        "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(code_hash)
    .bind(now)
    .execute(db)
    .await?;
    Ok(used.rows_affected() == 1)
}

/// Turns the user's authenticator app off: its secret goes, and so do the recovery codes when
/// no passkey remains, recording `event`. `false` when it was not on.
pub async fn remove(db: &Store, user_id: i64, event: Event) -> Result<bool> {
    let mut tx = db.change().await?;
    let removed = sqlx::query("DELETE FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM recovery_codes WHERE user_id = $1 AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM totp_factors WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
    let removed = removed.rows_affected() == 1;
    tx.commit(&removed.then_some(event).into_iter().collect::<Vec<_>>()).await?;
    Ok(removed)
}

/// Removes every second factor of the user (for an administrator): the authenticator app, the
/// passkeys and the recovery codes, recording `event`. `false` when there was none.
pub async fn remove_all(db: &Store, user_id: i64, event: Event) -> Result<bool> {
    let mut tx = db.change().await?;
    let delete = |statement| sqlx::query(statement).bind(user_id);
    let app = delete("DELETE FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL")
        .execute(&mut *tx)
        .await?;
    let passkeys = delete("DELETE FROM passkeys WHERE user_id = $1").execute(&mut *tx).await?;
    delete("DELETE FROM totp_factors WHERE user_id = $1").execute(&mut *tx).await?;
    delete("DELETE FROM recovery_codes WHERE user_id = $1").execute(&mut *tx).await?;
    let removed = app.rows_affected() + passkeys.rows_affected();
    tx.commit(&[event]).await?;
    Ok(removed > 0)
}

/// A sign-in waiting for its second step: whose.
#[derive(FromRow)]
pub struct Pending {
    pub user_id: i64,
    pub username: String,
}

/// Keeps a sign-in whose password was right, by the hash of its token, until `expires_at`.
pub async fn insert_pending(
    db: &Store,
    token_hash: &str,
    user_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    let (db, _turn) = db.write().await?;
    sqlx::query(
        "INSERT INTO pending_sign_ins (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The sign-in of a token's hash while it can still finish: unused, unexpired at `now`, with
/// fewer than `max_failures` wrong codes.
pub async fn find_pending(
    db: &AnyPool,
    token_hash: &str,
    now: i64,
    max_failures: i64,
) -> Result<Option<Pending>> {
    let pending = sqlx::query_as(
        "SELECT p.user_id AS user_id, u.username AS username FROM pending_sign_ins p \
         JOIN users u ON u.id = p.user_id \
         WHERE p.token_hash = $1 AND p.used_at IS NULL AND p.expires_at > $2 AND p.failures < $3",
    )
    .bind(token_hash)
    .bind(now)
    .bind(max_failures)
    .fetch_optional(db)
    .await?;
    Ok(pending)
}

/// Counts a wrong code against a waiting sign-in.
pub async fn fail_pending(db: &Store, token_hash: &str) -> Result<()> {
    let (db, _turn) = db.write().await?;
    sqlx::query("UPDATE pending_sign_ins SET failures = failures + 1 WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}

/// Finishes a waiting sign-in, once: `false` when it was finished (or ran out) meanwhile.
pub async fn spend_pending(db: &Store, token_hash: &str, now: i64, max_failures: i64) -> Result<bool> {
    let (db, _turn) = db.write().await?;
    let spent = sqlx::query(
        "UPDATE pending_sign_ins SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND failures < $3",
    )
    .bind(token_hash)
    .bind(now)
    .bind(max_failures)
    .execute(db)
    .await?;
    Ok(spent.rows_affected() == 1)
}
