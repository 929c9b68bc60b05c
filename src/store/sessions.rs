//! Queries on `sessions`.

use sqlx::AnyPool;

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

pub async fn revoke_session(db: &AnyPool, session_id: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}
