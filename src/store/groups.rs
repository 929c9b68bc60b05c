//! Queries on `user_groups` and `group_members`. A user's groups are read with the user (see
//! [`super::users::USER_COLUMNS`]); here they are managed.

use sqlx::{AnyPool, FromRow};

use super::{Event, Store};
use crate::domain::Username;
use crate::error::{Error, Result};

/// A group as an operator lists it.
#[derive(Debug, Clone, FromRow)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    /// Its members' usernames, in the order of their keys (empty: none).
    #[sqlx(try_from = "String")]
    pub members: Members,
}

/// Usernames, read from one comma-separated column.
#[derive(Debug, Clone, Default)]
pub struct Members(pub Vec<String>);

impl From<String> for Members {
    fn from(joined: String) -> Members {
        Members(names(Some(joined)))
    }
}

/// The names of one comma-separated column (see `groups_of!`), NULL or empty for none, in the
/// order of their keys (sorted here: a PostgreSQL collation may order `-`, `.` and `_` its own
/// way).
pub fn names(joined: Option<String>) -> Vec<String> {
    let Some(joined) = joined else {
        return Vec::new();
    };
    let mut names: Vec<String> =
        joined.split(',').filter(|name| !name.is_empty()).map(str::to_owned).collect();
    let key = |name: &String| name.bytes().map(|b| b.to_ascii_lowercase()).collect::<Vec<u8>>();
    if names.len() > 1 {
        names.sort_by_cached_key(key);
    }
    names
}

/// Creates a group, recording `event`: its id, or `None` when the name is taken (in any case).
pub async fn create(db: &Store, name: &Username, now: i64, event: Event) -> Result<Option<i64>> {
    let mut change = db.change().await?;
    let created: sqlx::Result<Vec<i64>> = sqlx::query_scalar(
        "INSERT INTO user_groups (name, name_key, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name.as_str())
    .bind(name.canonical())
    .bind(now)
    .fetch_all(&mut *change)
    .await;
    let id = match created {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
        other => other?.pop().ok_or_else(|| Error::internal("INSERT … RETURNING gave no row"))?,
    };
    change.commit(&[event]).await?;
    Ok(Some(id))
}

/// The group of that name, in any case (a name no group could have is nobody's).
pub async fn find(db: &AnyPool, name: &str) -> Result<Option<Group>> {
    let Ok(name) = Username::parse(name) else {
        return Ok(None);
    };
    let group = sqlx::query_as(&format!("{SELECT_GROUPS} WHERE g.name_key = $1"))
        .bind(name.canonical())
        .fetch_optional(db)
        .await?;
    Ok(group)
}

/// Every group, by key, with its members.
pub async fn list(db: &AnyPool) -> Result<Vec<Group>> {
    let groups = sqlx::query_as(&format!("{SELECT_GROUPS} ORDER BY g.name_key")).fetch_all(db).await?;
    Ok(groups)
}

/// Groups with their members' names (an empty text for none: the column is never NULL).
const SELECT_GROUPS: &str = "SELECT g.id, g.name, g.created_at, \
     COALESCE((SELECT string_agg(u.username, ',' ORDER BY u.username_key) FROM group_members m \
       JOIN users u ON u.id = m.user_id WHERE m.group_id = g.id), '') AS members \
     FROM user_groups g";

/// Deletes a group, recording `event`: its members leave it, and invitations no longer put
/// anyone in it.
pub async fn delete(db: &Store, group_id: i64, event: Event) -> Result<()> {
    let mut change = db.change().await?;
    sqlx::query("DELETE FROM user_groups WHERE id = $1").bind(group_id).execute(&mut *change).await?;
    change.commit(&[event]).await
}

/// Puts a user in a group, recording `event`; `false` when they were in it already.
pub async fn add_member(db: &Store, (group_id, user_id): (i64, i64), now: i64, event: Event) -> Result<bool> {
    let mut change = db.change().await?;
    let added = sqlx::query(
        "INSERT INTO group_members (user_id, group_id, added_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, group_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(group_id)
    .bind(now)
    .execute(&mut *change)
    .await?;
    let added = added.rows_affected() == 1;
    change.commit(&added.then_some(event).into_iter().collect::<Vec<_>>()).await?;
    Ok(added)
}

/// Takes a user out of a group, recording `event`; `false` when they were not in it.
pub async fn remove_member(db: &Store, group_id: i64, user_id: i64, event: Event) -> Result<bool> {
    let mut change = db.change().await?;
    let removed = sqlx::query("DELETE FROM group_members WHERE user_id = $1 AND group_id = $2")
        .bind(user_id)
        .bind(group_id)
        .execute(&mut *change)
        .await?;
    let removed = removed.rows_affected() == 1;
    change.commit(&removed.then_some(event).into_iter().collect::<Vec<_>>()).await?;
    Ok(removed)
}
