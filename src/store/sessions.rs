//! Queries on `sessions`.

use sqlx::AnyPool;

use super::users::User;
use crate::error::Result;

pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub now: i64,
    pub expires_at: i64,
    pub user_agent: &'a str,
}

pub async fn insert_session(db: &AnyPool, session: NewSession<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent) \
         VALUES ($1, $2, $3, $3, $4, $5)",
    )
    .bind(session.id)
    .bind(session.user_id)
    .bind(session.now)
    .bind(session.expires_at)
    .bind(session.user_agent)
    .execute(db)
    .await?;
    Ok(())
}

/// The user of a session that is neither revoked nor expired, and when the session ends, in
/// one round trip.
pub async fn find_live_session_user(
    db: &AnyPool,
    session_id: &str,
    user_id: i64,
    now: i64,
) -> Result<Option<(User, i64)>> {
    let row: Option<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT u.id, u.username, u.created_at, s.expires_at \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(now)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(id, username, created_at, expires_at)| (User { id, username, created_at }, expires_at)))
}

pub async fn revoke_session(db: &AnyPool, session_id: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}
