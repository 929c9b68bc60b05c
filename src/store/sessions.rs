//! Queries on `sessions` and their `refresh_tokens`.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, FromRow, Row};

use super::{Event, Store};
use crate::domain::{device_name, Methods, Session};
use crate::error::Result;

pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub now: i64,
    pub expires_at: i64,
    pub user_agent: &'a str,
    /// Where the session signed in from (see `auth::ClientAddress`).
    pub address: &'a str,
    /// How it signed in (RFC 8176 methods, space-separated).
    pub amr: &'a str,
    /// The hash of its first refresh token.
    pub refresh_token_hash: &'a str,
}

/// A session as stored; not the current one until its reader says so.
impl FromRow<'_, AnyRow> for Session {
    fn from_row(row: &AnyRow) -> sqlx::Result<Session> {
        let user_agent: String = row.try_get("user_agent")?;
        Ok(Session {
            id: row.try_get("id")?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
            expires_at: row.try_get("expires_at")?,
            device: device_name(&user_agent),
            user_agent,
            address: row.try_get("address")?,
            current: false,
            methods: Methods::parse(&row.try_get::<String, _>("amr")?).label(),
        })
    }
}

/// A refresh token's session, found by the token's hash.
#[derive(Debug)]
pub struct RefreshTarget {
    pub session_id: String,
    pub user_id: i64,
    pub expires_at: i64,
    pub revoked: bool,
    /// When the token was exchanged already, if it was.
    pub used_at: Option<i64>,
    /// The groups of the session's user, as they are now.
    pub groups: Vec<String>,
    /// How the session signed in (RFC 8176 methods, space-separated).
    pub amr: String,
}

impl FromRow<'_, AnyRow> for RefreshTarget {
    fn from_row(row: &AnyRow) -> sqlx::Result<RefreshTarget> {
        Ok(RefreshTarget {
            session_id: row.try_get("session_id")?,
            user_id: row.try_get("user_id")?,
            expires_at: row.try_get("expires_at")?,
            revoked: super::nullable::<i64>(row, "revoked_at")?.is_some(),
            used_at: super::nullable(row, "used_at")?,
            groups: super::groups::names(super::nullable(row, "groups")?),
            amr: row.try_get("amr")?,
        })
    }
}

/// Opens a session with its first refresh token, recording the sign-in `event`: one
/// transaction, one commit (and one sync to disk).
pub async fn insert_session(db: &Store, session: NewSession<'_>, event: Event) -> Result<()> {
    let mut change = db.change().await?;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, address, amr) \
         VALUES ($1, $2, $3, $3, $4, $5, $6, $7)",
    )
    .bind(session.id)
    .bind(session.user_id)
    .bind(session.now)
    .bind(session.expires_at)
    .bind(session.user_agent)
    .bind(session.address)
    .bind(session.amr)
    .execute(&mut *change)
    .await?;
    insert_refresh_token(&mut change, session.refresh_token_hash, session.id, session.now).await?;
    change.commit(&[event]).await
}

/// Revokes a session, recording `event` when it was live.
pub async fn revoke_session(db: &Store, session_id: &str, now: i64, event: Event) -> Result<()> {
    let mut change = db.change().await?;
    let done = sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .bind(now)
        .execute(&mut *change)
        .await?;
    change.commit(&event_if(done.rows_affected() > 0, event)).await
}

/// `event`, when what it describes happened.
fn event_if(happened: bool, event: Event) -> Vec<Event> {
    happened.then_some(event).into_iter().collect()
}

/// Whether `id` has the shape of a session id (256 bits, base64url): anything else is not
/// looked up at all (PostgreSQL, for one, refuses a NUL byte in text).
fn is_session_id(id: &str) -> bool {
    id.len() == 43 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Revokes one of the user's live sessions, recording `event`; `false` when the user has no such
/// live session (another user's session is never touched).
pub async fn revoke_user_session(
    db: &Store,
    user_id: i64,
    session_id: &str,
    now: i64,
    event: Event,
) -> Result<bool> {
    if !is_session_id(session_id) {
        return Ok(false);
    }
    let mut change = db.change().await?;
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $3 \
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(now)
    .execute(&mut *change)
    .await?;
    let revoked = done.rows_affected() == 1;
    change.commit(&event_if(revoked, event)).await?;
    Ok(revoked)
}

/// Revokes every live session of the user, except `keep` when given, recording `event` (with
/// how many there were) when there was one.
pub async fn revoke_user_sessions(
    db: &Store,
    user_id: i64,
    keep: Option<&str>,
    now: i64,
    event: Event,
) -> Result<u64> {
    let mut change = db.change().await?;
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $2 \
         WHERE user_id = $1 AND revoked_at IS NULL AND id <> $3",
    )
    .bind(user_id)
    .bind(now)
    .bind(keep.unwrap_or_default())
    .execute(&mut *change)
    .await?;
    let revoked = done.rows_affected();
    change.commit(&event_if(revoked > 0, event.with("sessions", revoked))).await?;
    Ok(revoked)
}

/// Signs the user out everywhere: every session revoked and every device token ended, in one
/// transaction with `event`. Returns how many sessions were live.
pub async fn sign_out_everywhere(db: &Store, user_id: i64, now: i64, event: Event) -> Result<u64> {
    let mut tx = db.change().await?;
    sqlx::query("UPDATE users SET device_generation = device_generation + 1 WHERE id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let revoked = done.rows_affected();
    tx.commit(&[event.with("sessions", revoked)]).await?;
    Ok(revoked)
}

/// The user's live sessions, most recently used first, the one of id `current` marked.
pub async fn list_live_sessions(db: &AnyPool, user_id: i64, current: &str, now: i64) -> Result<Vec<Session>> {
    let mut sessions = sqlx::query_as::<_, Session>(
        "SELECT id, created_at, last_used_at, expires_at, user_agent, address, amr FROM sessions \
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
         ORDER BY last_used_at DESC, created_at DESC",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(db)
    .await?;
    for session in &mut sessions {
        session.current = session.id == current;
    }
    Ok(sessions)
}

/// Records that these sessions were used at `now`.
pub async fn touch_sessions(db: &Store, ids: &[&str], now: i64) -> Result<()> {
    let (db, _turn) = db.write().await?;
    // One transaction: one commit (and one sync to disk) for the lot.
    let mut tx = db.begin().await?;
    for id in ids {
        sqlx::query("UPDATE sessions SET last_used_at = $2 WHERE id = $1 AND last_used_at < $2")
            .bind(*id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_refresh_token(
    db: &mut AnyConnection,
    token_hash: &str,
    session_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
        .bind(token_hash)
        .bind(session_id)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// Whether a refresh token (by its hash) belongs to the session.
pub async fn is_refresh_token_of(db: &AnyPool, token_hash: &str, session_id: &str) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM refresh_tokens WHERE token_hash = $1 AND session_id = $2")
            .bind(token_hash)
            .bind(session_id)
            .fetch_optional(db)
            .await?;
    Ok(found.is_some())
}

pub async fn find_refresh_target(db: &AnyPool, token_hash: &str) -> Result<Option<RefreshTarget>> {
    let target = sqlx::query_as(concat!(
        "SELECT s.id AS session_id, s.user_id AS user_id, s.expires_at AS expires_at, \
         s.revoked_at AS revoked_at, r.used_at AS used_at, s.amr AS amr, ",
        groups_of!("s.user_id"),
        " AS groups FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(db)
    .await?;
    Ok(target)
}

/// Exchanges a refresh token on its first use, in one transaction: the old one is marked used
/// at `now`, the session touched and the new one stored. `false` (and nothing changed) when the
/// old one was used already, by a concurrent request.
pub async fn rotate_refresh_token(
    db: &Store,
    old_hash: &str,
    new_hash: &str,
    session_id: &str,
    now: i64,
) -> Result<bool> {
    let (db, _turn) = db.write().await?;
    let mut tx = db.begin().await?;
    let used =
        sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
            .bind(old_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    if used.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("UPDATE sessions SET last_used_at = $2 WHERE id = $1 AND last_used_at < $2")
        .bind(session_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    insert_refresh_token(&mut tx, new_hash, session_id, now).await?;
    tx.commit().await?;
    Ok(true)
}

/// When a session began (its sign-in), if it exists.
pub async fn created_at(db: &AnyPool, session_id: &str) -> Result<Option<i64>> {
    let created = sqlx::query_scalar("SELECT created_at FROM sessions WHERE id = $1")
        .bind(session_id)
        .fetch_optional(db)
        .await?;
    Ok(created)
}
