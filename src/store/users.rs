//! Queries on `users`.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, FromRow, Row};

use super::{Event, Store};
use crate::domain::{User, Username};
use crate::error::{Error, Result};

/// The columns a [`User`] is read from, by name (SQLite promises a result column's name only
/// when the query gives one); `u` stands for `users`. The user's groups come with them, read in
/// the same statement: whatever reads a user reads its groups as they are now.
pub const USER_COLUMNS: &str = concat!(
    "u.id AS id, u.username AS username, u.created_at AS created_at, \
     u.email AS email, u.email_confirmed_at AS email_confirmed_at, ",
    groups_of!("u.id"),
    " AS groups, (SELECT t.confirmed_at FROM totp_factors t WHERE t.user_id = u.id) AS totp_on, \
     (SELECT COUNT(*) FROM recovery_codes r WHERE r.user_id = u.id AND r.used_at IS NULL) AS recovery_codes_left, \
     (SELECT COUNT(*) FROM passkeys p WHERE p.user_id = u.id) AS passkeys"
);

impl FromRow<'_, AnyRow> for User {
    fn from_row(row: &AnyRow) -> sqlx::Result<User> {
        let email: Option<String> = super::nullable(row, "email")?;
        let confirmed_at: Option<i64> = super::nullable(row, "email_confirmed_at")?;
        Ok(User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            created_at: row.try_get("created_at")?,
            email_confirmed: email.is_some() && confirmed_at.is_some(),
            email,
            groups: super::groups::names(super::nullable(row, "groups")?),
            totp: super::nullable::<i64>(row, "totp_on")?.is_some(),
            recovery_codes_left: row.try_get("recovery_codes_left")?,
            passkeys: row.try_get("passkeys")?,
        })
    }
}

/// A user with what a sign-in checks.
#[derive(FromRow)]
pub struct Credentials {
    #[sqlx(flatten)]
    pub user: User,
    pub password_hash: String,
    /// The device tokens of earlier generations vouch for nothing.
    pub device_generation: i64,
}

/// A user as an operator lists them.
#[derive(FromRow)]
pub struct Listed {
    #[sqlx(flatten)]
    pub user: User,
    /// Live sessions.
    pub sessions: i64,
}

/// Inserts a user; the unique index on its key (`username_key`, computed here, never by the
/// database's collation) decides races, so two concurrent
/// registrations of one name give one row and one [`Error::UsernameTaken`]. Recorded as
/// `event`, about the new account.
pub async fn insert_user(
    db: &Store,
    username: &Username,
    password_hash: &str,
    now: i64,
    event: Event,
) -> Result<User> {
    let mut change = db.change().await?;
    let user = insert_user_in(&mut change, username, password_hash, now).await?;
    change.commit(&[event.of(user.id, &user.username)]).await?;
    Ok(user)
}

/// [`insert_user`] on a connection of the caller's (a transaction's).
pub async fn insert_user_in(
    db: &mut AnyConnection,
    username: &Username,
    password_hash: &str,
    now: i64,
) -> Result<User> {
    // `fetch_all`, not `fetch_one`: SQLite commits an `INSERT … RETURNING` only when the
    // statement runs to completion, and the 201 must not go out before the commit.
    let inserted = sqlx::query_as::<_, User>(
        "INSERT INTO users (username, username_key, password_hash, created_at) VALUES ($1, $2, $3, $4) \
         RETURNING id, username, created_at, email, email_confirmed_at, '' AS groups, \
           CAST(NULL AS BIGINT) AS totp_on, CAST(0 AS BIGINT) AS recovery_codes_left, \
           CAST(0 AS BIGINT) AS passkeys",
    )
    .bind(username.as_str())
    .bind(username.canonical())
    .bind(password_hash)
    .bind(now)
    .fetch_all(db)
    .await
    .map(|mut rows| rows.pop());
    match inserted {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(Error::UsernameTaken),
        other => other?.ok_or_else(|| Error::internal("INSERT … RETURNING gave no row")),
    }
}

/// The user, password hash and device generation for a sign-in, looked up by the name in any
/// case.
pub async fn find_credentials(db: &AnyPool, username: &Username) -> Result<Option<Credentials>> {
    let credentials = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS}, u.password_hash, u.device_generation FROM users u WHERE u.username_key = $1"
    ))
    .bind(username.canonical())
    .fetch_optional(db)
    .await?;
    Ok(credentials)
}

/// The user's device generation: the device tokens of earlier ones vouch for nothing.
pub async fn device_generation(db: &AnyPool, user_id: i64) -> Result<i64> {
    let generation = sqlx::query_scalar("SELECT device_generation FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    Ok(generation.unwrap_or_default())
}

pub async fn find_password_hash(db: &AnyPool, user_id: i64) -> Result<Option<String>> {
    let hash = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    Ok(hash)
}

/// Sets a new password hash, recording `event`; every reset link of the user stops working
/// with it.
pub async fn set_password_hash(db: &Store, user_id: i64, password_hash: &str, event: Event) -> Result<()> {
    let mut change = db.change().await?;
    super::recovery::set_password_hash(&mut change, user_id, password_hash).await?;
    change.commit(&[event]).await
}

/// Deletes the user, recording `event`; sessions and refresh tokens go with it (`ON DELETE
/// CASCADE`), the user's security events stay (until their retention ends).
pub async fn delete_user(db: &Store, user_id: i64, event: Event) -> Result<()> {
    let mut change = db.change().await?;
    sqlx::query("DELETE FROM users WHERE id = $1").bind(user_id).execute(&mut *change).await?;
    change.commit(&[event]).await
}

/// The user of that id.
pub async fn find_user_by_id(db: &AnyPool, user_id: i64) -> Result<Option<User>> {
    let user = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"))
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    Ok(user)
}

/// The user of that name, in any case (a name no account could have is nobody's).
pub async fn find_user(db: &AnyPool, username: &str) -> Result<Option<User>> {
    let Ok(username) = Username::parse(username) else {
        return Ok(None);
    };
    let user = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username_key = $1"))
        .bind(username.canonical())
        .fetch_optional(db)
        .await?;
    Ok(user)
}

/// Every user, oldest first, with the number of their live sessions at `now`.
pub async fn list_users(db: &AnyPool, now: i64) -> Result<Vec<Listed>> {
    let users = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS}, (SELECT COUNT(*) FROM sessions s \
           WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > $1) AS sessions \
         FROM users u ORDER BY u.id"
    ))
    .bind(now)
    .fetch_all(db)
    .await?;
    Ok(users)
}
