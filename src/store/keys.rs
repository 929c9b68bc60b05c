//! Queries on `signing_keys` and `server_secrets`: the keys every instance signs and verifies
//! access tokens with, and the secrets they share.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, FromRow, Row};

use super::{Event, Store};
use crate::error::{Error, Result};

/// One signing key as stored. The key material is base64url text (see the migration). No
/// `Debug`: the private key must not reach a log by accident.
#[derive(Clone)]
pub struct KeyRow {
    pub kid: String,
    pub algorithm: String,
    pub private_key: String,
    pub public_key: String,
    pub created_at: i64,
    /// When it began signing; `None` while it is the next key, published ahead.
    pub activated_at: Option<i64>,
    /// When it stopped signing.
    pub retired_at: Option<i64>,
}

/// The part a key plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Signs new tokens.
    Current,
    /// Published ahead; signs after the next rotation.
    Next,
    /// Signed tokens that may not have expired yet.
    Retired,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Current => "current",
            Role::Next => "next",
            Role::Retired => "retired",
        }
    }
}

impl FromRow<'_, AnyRow> for KeyRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<KeyRow> {
        Ok(KeyRow {
            kid: row.try_get("kid")?,
            algorithm: row.try_get("algorithm")?,
            private_key: row.try_get("private_key")?,
            public_key: row.try_get("public_key")?,
            created_at: row.try_get("created_at")?,
            activated_at: super::nullable(row, "activated_at")?,
            retired_at: super::nullable(row, "retired_at")?,
        })
    }
}

impl KeyRow {
    pub fn role(&self) -> Role {
        match (self.activated_at, self.retired_at) {
            (_, Some(_)) => Role::Retired,
            (Some(_), None) => Role::Current,
            (None, None) => Role::Next,
        }
    }
}

/// Every key of `algorithm`, oldest first.
pub async fn all(db: &AnyPool, algorithm: &str) -> Result<Vec<KeyRow>> {
    let keys = sqlx::query_as(
        "SELECT kid, algorithm, private_key, public_key, created_at, activated_at, retired_at \
         FROM signing_keys WHERE algorithm = $1 ORDER BY created_at, kid",
    )
    .bind(algorithm)
    .fetch_all(db)
    .await?;
    Ok(keys)
}

/// Stores a new key; `false` when another instance stored the key of that role first.
pub async fn insert(db: &Store, key: &KeyRow) -> Result<bool> {
    let (db, _turn) = db.write().await?;
    let done = insert_query(key).execute(db).await;
    match done {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A new key: the current one (activated) or the next one. Two statements rather than a bound
/// NULL: a prepared statement keeps the types of its first parameters, and PostgreSQL refuses a
/// number where a NULL's type was declared. A new key is never retired.
fn insert_query(key: &KeyRow) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    let statement = match key.activated_at {
        Some(_) => {
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at, activated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        }
        None => {
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at) \
             VALUES ($1, $2, $3, $4, $5)"
        }
    };
    let query = sqlx::query(statement)
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(&key.private_key)
        .bind(&key.public_key)
        .bind(key.created_at);
    match key.activated_at {
        Some(at) => query.bind(at),
        None => query,
    }
}

/// In one transaction: the current key of `next`'s algorithm retires, the next key `promote`
/// starts signing, `next` is published to follow it, and keys retired before `forget_before`
/// are deleted. Fails, changing nothing, when `promote` is no longer the next key (another
/// rotation ran meanwhile). Recorded as `event`.
pub async fn rotate(
    db: &Store,
    (now, forget_before): (i64, i64),
    promote: &str,
    next: &KeyRow,
    event: Event,
) -> Result<()> {
    let mut tx = db.change().await?;
    // A write first: SQLite then takes the write lock at once (with its busy timeout) rather
    // than failing to upgrade a read.
    sqlx::query(
        "UPDATE signing_keys SET retired_at = $2 \
         WHERE algorithm = $1 AND activated_at IS NOT NULL AND retired_at IS NULL",
    )
    .bind(&next.algorithm)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let done =
        sqlx::query("UPDATE signing_keys SET activated_at = $2 WHERE kid = $1 AND activated_at IS NULL")
            .bind(promote)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() != 1 {
        return Err(Error::internal("another rotation ran at the same time; nothing changed"));
    }
    insert_query(next).execute(&mut *tx).await?;
    delete_retired(&mut *tx, forget_before).await?;
    tx.commit(&[event]).await
}

/// Deletes the keys retired before `before`: no token they signed is still valid.
pub async fn forget_retired(db: &Store, before: i64) -> Result<u64> {
    let (db, _turn) = db.write().await?;
    delete_retired(db, before).await
}

async fn delete_retired<'e>(db: impl sqlx::Executor<'e, Database = sqlx::Any>, before: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM signing_keys WHERE retired_at < $1").bind(before).execute(db).await?;
    Ok(done.rows_affected())
}

/// The secret called `name`: the stored one, or else `candidate`, stored now. Instances that
/// start together all end up with whichever was stored first.
pub async fn secret(db: &Store, name: &str, candidate: &str, now: i64) -> Result<String> {
    let (db, _turn) = db.write().await?;
    sqlx::query(
        "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(candidate)
    .bind(now)
    .execute(db)
    .await?;
    let (value,): (String,) =
        sqlx::query_as("SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_one(db).await?;
    Ok(value)
}
