//! Queries on `passkeys` and `passkey_ceremonies`: a user's WebAuthn credentials, and the
//! ceremonies under way. A ceremony is taken by one statement that deletes it, and a sign-in
//! moves a passkey's counter forward by one conditional statement, so two instances (or two
//! requests) never both accept the same answer.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, FromRow, Row};

use super::{Event, Store};
use crate::error::Result;

/// A passkey as its owner sees it in the list.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl FromRow<'_, AnyRow> for Listed {
    fn from_row(row: &AnyRow) -> sqlx::Result<Listed> {
        Ok(Listed {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
            last_used_at: super::nullable(row, "last_used_at")?,
        })
    }
}

/// A passkey as a sign-in checks it: whose, and the credential the WebAuthn library stored.
#[derive(Debug, Clone, FromRow)]
pub struct Stored {
    pub id: i64,
    pub user_id: i64,
    pub user_handle: String,
    /// The library's credential, as JSON.
    pub credential: String,
}

/// A new passkey.
pub struct NewPasskey<'a> {
    pub user_id: i64,
    pub credential_id: &'a str,
    pub user_handle: &'a str,
    pub name: &'a str,
    pub credential: &'a str,
    pub counter: i64,
    pub now: i64,
}

/// The user's passkeys, the oldest first.
pub async fn list(db: &AnyPool, user_id: i64) -> Result<Vec<Listed>> {
    let listed = sqlx::query_as(
        "SELECT id, name, created_at, last_used_at FROM passkeys WHERE user_id = $1 ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    Ok(listed)
}

/// The user's passkeys as the library checks them, the oldest first.
pub async fn of_user(db: &AnyPool, user_id: i64) -> Result<Vec<Stored>> {
    let stored = sqlx::query_as(
        "SELECT id, user_id, user_handle, credential FROM passkeys WHERE user_id = $1 ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    Ok(stored)
}

/// The random id the user's passkeys carry for the account, if they have one.
pub async fn user_handle(db: &AnyPool, user_id: i64) -> Result<Option<String>> {
    let handle =
        sqlx::query_scalar("SELECT user_handle FROM passkeys WHERE user_id = $1 ORDER BY id LIMIT 1")
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(handle)
}

/// The passkey of a credential id (base64url), whoever's it is.
pub async fn find(db: &AnyPool, credential_id: &str) -> Result<Option<Stored>> {
    let stored =
        sqlx::query_as("SELECT id, user_id, user_handle, credential FROM passkeys WHERE credential_id = $1")
            .bind(credential_id)
            .fetch_optional(db)
            .await?;
    Ok(stored)
}

/// Records a sign-in with a passkey whose authenticator now reports `counter`: `false`, and
/// nothing changed, when the counter did not move forward (a cloned authenticator, or the same
/// answer twice), unless it is always zero (authenticators that keep no counter).
pub async fn used(db: &Store, id: i64, counter: i64, credential: &str, now: i64) -> Result<bool> {
    let (db, _turn) = db.write().await?;
    let used = sqlx::query(
        "UPDATE passkeys SET counter = $2, credential = $3, last_used_at = $4 \
         WHERE id = $1 AND (counter < $2 OR (counter = 0 AND $2 = 0))",
    )
    .bind(id)
    .bind(counter)
    .bind(credential)
    .bind(now)
    .execute(db)
    .await?;
    Ok(used.rows_affected() == 1)
}

/// Removes one of the user's passkeys; when it was their last second factor (no passkey left
/// and no authenticator app on), their recovery codes go too. Recorded as `event`, with the
/// passkey's name. `false` when it is not theirs.
pub async fn remove(db: &Store, user_id: i64, id: i64, event: Event) -> Result<bool> {
    let mut tx = db.change().await?;
    // `fetch_all`: SQLite finishes a `DELETE … RETURNING` only when the statement runs to
    // completion.
    let removed: Vec<String> =
        sqlx::query_scalar("DELETE FROM passkeys WHERE id = $1 AND user_id = $2 RETURNING name")
            .bind(id)
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
    let Some(name) = removed.into_iter().next() else {
        return Ok(false);
    };
    sqlx::query(
        "DELETE FROM recovery_codes WHERE user_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL)",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit(&[event.with("passkey", name)]).await?;
    Ok(true)
}

/// Stores a passkey and, when it is the user's first second factor, the hashes of their new
/// recovery codes, in one transaction. `None`, and nothing stored, when the credential is
/// registered already; otherwise the passkey and whether the codes were stored. Recorded as
/// `event`, with the passkey's name.
pub async fn insert(
    db: &Store,
    passkey: NewPasskey<'_>,
    code_hashes: &[String],
    event: Event,
) -> Result<Option<(Listed, bool)>> {
    let mut tx = db.change().await?;
    let first: Option<i64> = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users u WHERE u.id = $1 \
         AND NOT EXISTS (SELECT 1 FROM passkeys p WHERE p.user_id = u.id) \
         AND NOT EXISTS (SELECT 1 FROM totp_factors t WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL)",
    )
    .bind(passkey.user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let first = first.unwrap_or(0) == 1;
    // `fetch_all`, not `fetch_optional`: SQLite finishes an `INSERT … RETURNING` (and lets go
    // of its write lock) only when the statement runs to completion.
    let inserted: Vec<Listed> = sqlx::query_as(
        "INSERT INTO passkeys (user_id, credential_id, user_handle, name, credential, counter, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (credential_id) DO NOTHING \
         RETURNING id, name, created_at, last_used_at",
    )
    .bind(passkey.user_id)
    .bind(passkey.credential_id)
    .bind(passkey.user_handle)
    .bind(passkey.name)
    .bind(passkey.credential)
    .bind(passkey.counter)
    .bind(passkey.now)
    .fetch_all(&mut *tx)
    .await?;
    let Some(inserted) = inserted.into_iter().next() else {
        return Ok(None);
    };
    if first {
        super::second_factor::replace_codes(&mut tx, passkey.user_id, code_hashes).await?;
    }
    tx.commit(&[event.with("passkey", passkey.name)]).await?;
    Ok(Some((inserted, first)))
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Register,
    SignIn,
    SecondStep,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SignIn => "sign_in",
            Purpose::SecondStep => "second_step",
        }
    }
}

/// Keeps a ceremony's state, by the hash of its token, until `expires_at`.
pub async fn begin_ceremony(
    db: &Store,
    token_hash: &str,
    purpose: Purpose,
    user_id: Option<i64>,
    state: &str,
    expires_at: i64,
) -> Result<()> {
    // Two statements rather than a bound NULL: a prepared statement keeps the types of its first
    // parameters, and PostgreSQL refuses a number where a NULL's type was declared.
    let statement = match user_id {
        Some(_) => {
            "INSERT INTO passkey_ceremonies (token_hash, purpose, state, expires_at, user_id) \
                    VALUES ($1, $2, $3, $4, $5)"
        }
        None => {
            "INSERT INTO passkey_ceremonies (token_hash, purpose, state, expires_at) VALUES ($1, $2, $3, $4)"
        }
    };
    let query = sqlx::query(statement).bind(token_hash).bind(purpose.as_str()).bind(state).bind(expires_at);
    let query = match user_id {
        Some(user_id) => query.bind(user_id),
        None => query,
    };
    let (db, _turn) = db.write().await?;
    query.execute(db).await?;
    Ok(())
}

/// Takes a ceremony for `purpose` (and, unless it is a sign-in, `user_id`'s) by the hash of its
/// token, once: its state, or `None` when it is unknown, spent, someone else's or expired at
/// `now`.
pub async fn take_ceremony(
    db: &Store,
    token_hash: &str,
    purpose: Purpose,
    user_id: Option<i64>,
    now: i64,
) -> Result<Option<String>> {
    let owner = match user_id {
        Some(_) => "user_id = $3",
        None => "user_id IS NULL AND $3 = 0",
    };
    let (db, _turn) = db.write().await?;
    // `fetch_all`: the statement runs to completion (see `insert`).
    let taken: Vec<(String, i64)> = sqlx::query_as(&format!(
        "DELETE FROM passkey_ceremonies WHERE token_hash = $1 AND purpose = $2 AND {owner} \
         RETURNING state, expires_at"
    ))
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(user_id.unwrap_or(0))
    .fetch_all(db)
    .await?;
    Ok(taken.into_iter().next().filter(|(_, expires_at)| *expires_at > now).map(|(state, _)| state))
}
