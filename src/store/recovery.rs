//! Queries on the email columns of `users` and on `mail_tokens`, the one-time tokens mailed for
//! confirming an address and for resetting a password (only their SHA-256 is stored).
//!
//! Every change that spends tokens runs in one transaction that starts by writing, so SQLite
//! takes its write lock at once and two requests never both spend one token.

use sqlx::{AnyConnection, AnyPool};

use super::users::USER_COLUMNS;
use super::{Event, Store};
use crate::domain::{Email, Lookup, User, Username};
use crate::error::{Error, Result};

/// What a token is for (`mail_tokens.purpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Confirm,
    Reset,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Confirm => "confirm",
            Purpose::Reset => "reset",
        }
    }
}

/// A token to store: its hash, and until when it works.
pub struct NewToken<'a> {
    pub hash: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

/// Sets a new, unconfirmed address, spends the user's tokens (a reset link sent to the old
/// address included) and stores the confirmation token: one transaction. Another account's
/// claim of the address, unconfirmed, is no obstacle: the first to confirm it keeps it.
/// Recorded as `event`.
pub async fn set_email(
    db: &Store,
    user_id: i64,
    email: &Email,
    token: NewToken<'_>,
    event: Event,
) -> Result<()> {
    let mut tx = db.change().await?;
    sqlx::query("UPDATE users SET email = $2, email_key = $3, email_confirmed_at = NULL WHERE id = $1")
        .bind(user_id)
        .bind(email.as_str())
        .bind(email.key())
        .execute(&mut *tx)
        .await?;
    spend_tokens(&mut tx, user_id, None).await?;
    insert_token(&mut tx, user_id, Purpose::Confirm, email.as_str(), token).await?;
    tx.commit(&[event]).await
}

/// Whether another account has confirmed this address.
pub async fn confirmed_elsewhere(db: &AnyPool, user_id: i64, email: &Email) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM users WHERE email_key = $1 AND email_confirmed_at IS NOT NULL AND id <> $2",
    )
    .bind(email.key())
    .bind(user_id)
    .fetch_optional(db)
    .await?;
    Ok(found.is_some())
}

/// Removes the address and spends every token mailed to it, recording `event` when there was
/// one.
pub async fn remove_email(db: &Store, user_id: i64, event: Event) -> Result<()> {
    let mut tx = db.change().await?;
    let removed = sqlx::query(
        "UPDATE users SET email = NULL, email_key = NULL, email_confirmed_at = NULL \
         WHERE id = $1 AND email IS NOT NULL",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    spend_tokens(&mut tx, user_id, None).await?;
    tx.commit(&(removed.rows_affected() > 0).then_some(event).into_iter().collect::<Vec<_>>()).await
}

/// Spends a confirmation token and confirms the address it was mailed to, if that is still the
/// user's; every other account's unconfirmed claim of the address ends (with the links mailed
/// for it). `false` for a token unknown, spent, expired, or of an address changed since;
/// [`Error::EmailTaken`] when another account confirmed the address first. Recorded as
/// `event`, about the account.
pub async fn confirm_email(db: &Store, token_hash: &str, now: i64, event: Event) -> Result<bool> {
    let mut tx = db.change().await?;
    let Some((user_id, email)) = take_token(&mut tx, token_hash, Purpose::Confirm, now).await? else {
        return Ok(false);
    };
    let confirmed = sqlx::query("UPDATE users SET email_confirmed_at = $3 WHERE id = $1 AND email = $2")
        .bind(user_id)
        .bind(&email)
        .bind(now)
        .execute(&mut *tx)
        .await;
    let confirmed = match confirmed {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Err(Error::EmailTaken),
        other => other?.rows_affected() == 1,
    };
    if confirmed {
        let key = crate::domain::email_key(&email);
        sqlx::query(
            "DELETE FROM mail_tokens WHERE user_id IN \
             (SELECT id FROM users WHERE email_key = $1 AND id <> $2 AND email_confirmed_at IS NULL)",
        )
        .bind(&key)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE users SET email = NULL, email_key = NULL \
             WHERE email_key = $1 AND id <> $2 AND email_confirmed_at IS NULL",
        )
        .bind(&key)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    }
    let mut events = Vec::new();
    if confirmed {
        let username: String = sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        events.push(event.of(user_id, &username));
    }
    tx.commit(&events).await?;
    Ok(confirmed)
}

/// The user a reset request names, when their address is confirmed. A name or an address no
/// account could have is not looked up (PostgreSQL, for one, refuses a NUL byte in text).
pub async fn find_confirmed(db: &AnyPool, lookup: &Lookup) -> Result<Option<User>> {
    let (condition, key) = match lookup {
        Lookup::Username(name) => match Username::parse(name) {
            Ok(name) => ("u.username_key = $1", name.canonical()),
            Err(_) => return Ok(None),
        },
        Lookup::Email(email) if email.contains('\0') => return Ok(None),
        Lookup::Email(email) => ("u.email_key = $1", crate::domain::email_key(email)),
    };
    let user = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users u \
         WHERE {condition} AND u.email IS NOT NULL AND u.email_confirmed_at IS NOT NULL"
    ))
    .bind(key)
    .fetch_optional(db)
    .await?;
    Ok(user)
}

/// A reset token works only while it was mailed to the user's current confirmed address, and
/// after that address was confirmed: a change, a removal (even one that raced the mail being
/// prepared) or the same address confirmed again later all void it. `t` is the token, `u` its
/// user.
const SENT_TO_THE_CONFIRMED_ADDRESS: &str =
    "u.email = t.email AND u.email_confirmed_at IS NOT NULL AND u.email_confirmed_at <= t.created_at";

/// Stores a reset token mailed to `email`, spending the user's earlier ones (a newer request
/// voids them), in the same transaction as a check that `email` is still the user's confirmed
/// address: `false`, and nothing stored, when it is not (changed or removed since it was read).
pub async fn insert_reset_token(db: &Store, user_id: i64, email: &str, token: NewToken<'_>) -> Result<bool> {
    let (db, _turn) = db.write().await?;
    let mut tx = db.begin().await?;
    spend_tokens(&mut tx, user_id, Some(Purpose::Reset)).await?;
    let stored = sqlx::query(
        "INSERT INTO mail_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
         SELECT $1, u.id, 'reset', u.email, $4, $5 FROM users u \
         WHERE u.id = $2 AND u.email = $3 AND u.email_confirmed_at IS NOT NULL AND u.email_confirmed_at <= $4",
    )
    .bind(token.hash)
    .bind(user_id)
    .bind(email)
    .bind(token.now)
    .bind(token.expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(stored.rows_affected() == 1)
}

/// The user a reset token works for, while it is unspent, unexpired and sent to the user's
/// confirmed address (nothing is spent).
pub async fn find_reset_token(db: &AnyPool, token_hash: &str, now: i64) -> Result<Option<User>> {
    let user = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM mail_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.purpose = 'reset' AND t.expires_at > $2 \
           AND {SENT_TO_THE_CONFIRMED_ADDRESS}"
    ))
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db)
    .await?;
    Ok(user)
}

/// Spends a reset token of `user_id` and, in the same transaction, sets the new password hash
/// (which spends the user's other reset tokens) and revokes every session. `false`, and nothing
/// changed, when the token was spent meanwhile. Recorded as `event`.
pub async fn reset_password(
    db: &Store,
    token_hash: &str,
    (user_id, password_hash): (i64, &str),
    now: i64,
    event: Event,
) -> Result<bool> {
    let mut tx = db.change().await?;
    match take_token(&mut tx, token_hash, Purpose::Reset, now).await? {
        Some((owner, _)) if owner == user_id => {}
        _ => return Ok(false),
    }
    set_password_hash(&mut tx, user_id, password_hash).await?;
    sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit(&[event]).await?;
    Ok(true)
}

/// Sets a password hash, spends the user's reset tokens and ends their device tokens: no reset
/// link and no device token survives a password change, whichever way it came.
pub async fn set_password_hash(tx: &mut AnyConnection, user_id: i64, password_hash: &str) -> Result<()> {
    sqlx::query(
        "UPDATE users SET password_hash = $2, device_generation = device_generation + 1 WHERE id = $1",
    )
    .bind(user_id)
    .bind(password_hash)
    .execute(&mut *tx)
    .await?;
    spend_tokens(tx, user_id, Some(Purpose::Reset)).await
}

/// Spends a token: deletes it and returns its user and address, if it was there, of that
/// purpose, unexpired, and (a reset token) sent to the user's confirmed address.
async fn take_token(
    tx: &mut AnyConnection,
    token_hash: &str,
    purpose: Purpose,
    now: i64,
) -> Result<Option<(i64, String)>> {
    let valid = match purpose {
        Purpose::Confirm => "TRUE".to_owned(),
        Purpose::Reset => format!(
            "EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id AND {SENT_TO_THE_CONFIRMED_ADDRESS})"
        ),
    };
    // `fetch_all`: SQLite completes (and counts) a `DELETE … RETURNING` only when it runs to the end.
    let mut rows: Vec<(i64, String)> = sqlx::query_as(&format!(
        "DELETE FROM mail_tokens AS t WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 AND {valid} \
         RETURNING user_id, email"
    ))
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.pop())
}

/// Deletes the user's tokens of one purpose, or of every purpose.
async fn spend_tokens(tx: &mut AnyConnection, user_id: i64, purpose: Option<Purpose>) -> Result<()> {
    sqlx::query("DELETE FROM mail_tokens WHERE user_id = $1 AND ($2 = '' OR purpose = $2)")
        .bind(user_id)
        .bind(purpose.map_or("", Purpose::as_str))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn insert_token(
    tx: &mut AnyConnection,
    user_id: i64,
    purpose: Purpose,
    email: &str,
    token: NewToken<'_>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO mail_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token.hash)
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(email)
    .bind(token.now)
    .bind(token.expires_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
