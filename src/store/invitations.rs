//! Queries on `invitations` and `invitation_groups`: one-time invitations to sign up, kept as
//! a hash of their token, and the account made with one.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, FromRow, Row};

use super::users::insert_user_in;
use super::{Event, Store};
use crate::domain::{User, Username};
use crate::error::{Error, Result};

/// An invitation as an operator lists it (never its token: only its hash is kept).
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The account it made, while that account exists.
    pub used_by: Option<String>,
    pub revoked_at: Option<i64>,
    /// The groups it puts its new account in.
    pub groups: Vec<String>,
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It can still be used.
    Pending,
    Used,
    Revoked,
    Expired,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Pending => "pending",
            Standing::Used => "used",
            Standing::Revoked => "revoked",
            Standing::Expired => "expired",
        }
    }
}

impl Invitation {
    /// Where it stands at `now`: used or revoked for good, else pending until it expires.
    pub fn standing(&self, now: i64) -> Standing {
        match (self.used_at, self.revoked_at) {
            (Some(_), _) => Standing::Used,
            (None, Some(_)) => Standing::Revoked,
            (None, None) if self.expires_at <= now => Standing::Expired,
            (None, None) => Standing::Pending,
        }
    }
}

impl FromRow<'_, AnyRow> for Invitation {
    fn from_row(row: &AnyRow) -> sqlx::Result<Invitation> {
        Ok(Invitation {
            id: row.try_get("id")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            used_at: super::nullable(row, "used_at")?,
            used_by: super::nullable(row, "used_by")?,
            revoked_at: super::nullable(row, "revoked_at")?,
            groups: super::groups::names(super::nullable(row, "groups")?),
        })
    }
}

/// Invitations with the name of the account each made and its groups' names; `i` stands for
/// `invitations`.
const SELECT_INVITATIONS: &str = "SELECT i.id AS id, i.created_at AS created_at, \
     i.expires_at AS expires_at, i.used_at AS used_at, u.username AS used_by, \
     i.revoked_at AS revoked_at, \
     (SELECT string_agg(g.name, ',' ORDER BY g.name_key) FROM invitation_groups ig \
       JOIN user_groups g ON g.id = ig.group_id WHERE ig.invitation_id = i.id) AS groups \
     FROM invitations i LEFT JOIN users u ON u.id = i.used_by";

/// Stores an invitation (the hash of its token) that puts its account in `group_ids`, recording
/// `event` with its id: its id.
pub async fn insert(
    db: &Store,
    token_hash: &str,
    group_ids: &[i64],
    (now, expires_at): (i64, i64),
    event: Event,
) -> Result<i64> {
    let mut tx = db.change().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO invitations (token_hash, created_at, expires_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(token_hash)
    .bind(now)
    .bind(expires_at)
    .fetch_all(&mut *tx)
    .await?
    .pop();
    let id = id.ok_or_else(|| Error::internal("INSERT … RETURNING gave no row"))?;
    for group_id in group_ids {
        sqlx::query(
            "INSERT INTO invitation_groups (invitation_id, group_id) VALUES ($1, $2) \
             ON CONFLICT (invitation_id, group_id) DO NOTHING",
        )
        .bind(id)
        .bind(group_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit(&[event.with("invitation", id)]).await?;
    Ok(id)
}

/// Every invitation, newest first.
pub async fn list(db: &AnyPool) -> Result<Vec<Invitation>> {
    let invitations =
        sqlx::query_as(&format!("{SELECT_INVITATIONS} ORDER BY i.id DESC")).fetch_all(db).await?;
    Ok(invitations)
}

pub async fn find(db: &AnyPool, id: i64) -> Result<Option<Invitation>> {
    let invitation =
        sqlx::query_as(&format!("{SELECT_INVITATIONS} WHERE i.id = $1")).bind(id).fetch_optional(db).await?;
    Ok(invitation)
}

/// The invitation of a token's hash.
pub async fn find_by_hash(db: &AnyPool, token_hash: &str) -> Result<Option<Invitation>> {
    let invitation = sqlx::query_as(&format!("{SELECT_INVITATIONS} WHERE i.token_hash = $1"))
        .bind(token_hash)
        .fetch_optional(db)
        .await?;
    Ok(invitation)
}

/// Revokes an invitation not used yet; `false` (nothing changed) when it was used or revoked
/// already, or does not exist. Recorded as `event`.
pub async fn revoke(db: &Store, id: i64, now: i64, event: Event) -> Result<bool> {
    let mut change = db.change().await?;
    let revoked = sqlx::query(
        "UPDATE invitations SET revoked_at = $2 WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *change)
    .await?;
    let revoked = revoked.rows_affected() == 1;
    change.commit(&revoked.then_some(event).into_iter().collect::<Vec<_>>()).await?;
    Ok(revoked)
}

/// Creates the account an invitation admits, in one transaction with spending the invitation
/// and putting the account in the invitation's groups: the invitation's id and the account;
/// `Ok(None)`, and nothing created, when
/// the invitation was not pending at `now` (used, revoked, expired, unknown); a name taken is
/// [`Error::UsernameTaken`], and the invitation stays unused. Recorded as `event`, about the
/// new account, with the invitation.
pub async fn sign_up(
    db: &Store,
    (username, password_hash): (&Username, &str),
    token_hash: &str,
    now: i64,
    event: Event,
) -> Result<Option<(i64, User)>> {
    let mut tx = db.change().await?;
    let mut user = insert_user_in(&mut tx, username, password_hash, now).await?;
    let spent: Option<i64> = sqlx::query_scalar(
        "UPDATE invitations SET used_at = $2, used_by = $3 \
         WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
         RETURNING id",
    )
    .bind(token_hash)
    .bind(now)
    .bind(user.id)
    .fetch_all(&mut *tx)
    .await?
    .pop();
    let Some(invitation_id) = spent else {
        // Dropped uncommitted: the account goes too.
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO group_members (user_id, group_id, added_at) \
         SELECT $1, group_id, $2 FROM invitation_groups WHERE invitation_id = $3",
    )
    .bind(user.id)
    .bind(now)
    .bind(invitation_id)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(concat!("SELECT ", groups_of!("$1"), " AS groups"))
        .bind(user.id)
        .fetch_one(&mut *tx)
        .await?;
    user.groups = super::groups::names(super::nullable(&row, "groups")?);
    tx.commit(&[event.of(user.id, &user.username).with("invitation", invitation_id)]).await?;
    Ok(Some((invitation_id, user)))
}
