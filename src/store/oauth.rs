//! Queries on the OpenID Connect tables: `oauth_clients`, `oauth_consents`, `oauth_codes`,
//! `oauth_grants` and `oauth_tokens`. Secrets arrive here hashed.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, FromRow, Row};

use super::{Event, Store};
use crate::error::Result;

/// An app registered by an administrator.
#[derive(Debug, Clone)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    /// `""` for a public client.
    pub secret_hash: String,
    pub redirect_uris: Vec<String>,
    pub logout_uris: Vec<String>,
    pub id_token_alg: String,
    pub created_at: i64,
}

fn lines(text: String) -> Vec<String> {
    text.lines().filter(|line| !line.is_empty()).map(str::to_owned).collect()
}

impl FromRow<'_, AnyRow> for ClientRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<ClientRow> {
        Ok(ClientRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            secret_hash: row.try_get("secret_hash")?,
            redirect_uris: lines(row.try_get("redirect_uris")?),
            logout_uris: lines(row.try_get("logout_uris")?),
            id_token_alg: row.try_get("id_token_alg")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const CLIENT_COLUMNS: &str = "id, name, secret_hash, redirect_uris, logout_uris, id_token_alg, created_at";

/// Registers a client, recording `event`.
pub async fn insert_client(db: &Store, client: &ClientRow, event: Event) -> Result<()> {
    let mut change = db.change().await?;
    sqlx::query(&format!("INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
        .bind(&client.id)
        .bind(&client.name)
        .bind(&client.secret_hash)
        .bind(client.redirect_uris.join("\n"))
        .bind(client.logout_uris.join("\n"))
        .bind(&client.id_token_alg)
        .bind(client.created_at)
        .execute(&mut *change)
        .await?;
    change.commit(&[event]).await
}

/// Whether `id` has the shape of a client id (random, base64url): anything else is not looked
/// up (PostgreSQL refuses a NUL byte in text).
fn is_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub async fn find_client(db: &AnyPool, id: &str) -> Result<Option<ClientRow>> {
    if !is_client_id(id) {
        return Ok(None);
    }
    let client = sqlx::query_as(&format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(client)
}

/// Whether any app is registered.
pub async fn any_client(db: &AnyPool) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM oauth_clients LIMIT 1").fetch_optional(db).await?;
    Ok(found.is_some())
}

/// Every client, oldest first.
pub async fn list_clients(db: &AnyPool) -> Result<Vec<ClientRow>> {
    let clients =
        sqlx::query_as(&format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at, id"))
            .fetch_all(db)
            .await?;
    Ok(clients)
}

/// Deletes a client with its consents, codes, grants and tokens, recording `event`; `false`
/// when there was none.
pub async fn delete_client(db: &Store, id: &str, event: Event) -> Result<bool> {
    if !is_client_id(id) {
        return Ok(false);
    }
    let mut change = db.change().await?;
    let done = sqlx::query("DELETE FROM oauth_clients WHERE id = $1").bind(id).execute(&mut *change).await?;
    let deleted = done.rows_affected() == 1;
    change.commit(&deleted.then_some(event).into_iter().collect::<Vec<_>>()).await?;
    Ok(deleted)
}

/// The scopes the user allowed the client, if they did.
pub async fn consent(db: &AnyPool, user_id: i64, client_id: &str) -> Result<Option<String>> {
    let scope = sqlx::query_scalar("SELECT scope FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(db)
        .await?;
    Ok(scope)
}

/// Records what the user allowed the client (replacing what they allowed before), and `event`.
pub async fn consent_to(
    db: &Store,
    user_id: i64,
    client_id: &str,
    (scope, now): (&str, i64),
    event: Event,
) -> Result<()> {
    let mut change = db.change().await?;
    sqlx::query(
        "INSERT INTO oauth_consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(scope)
    .bind(now)
    .execute(&mut *change)
    .await?;
    change.commit(&[event]).await
}

/// An app a user allowed, as their profile lists it.
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    pub client_id: String,
    pub name: String,
    pub scope: String,
    pub granted_at: i64,
}

pub async fn connected_apps(db: &AnyPool, user_id: i64) -> Result<Vec<ConnectedApp>> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT c.id, c.name, k.scope, k.granted_at FROM oauth_consents k \
         JOIN oauth_clients c ON c.id = k.client_id WHERE k.user_id = $1 ORDER BY k.granted_at DESC, c.name",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(client_id, name, scope, granted_at)| ConnectedApp { client_id, name, scope, granted_at })
        .collect())
}

/// Ends what the user allowed the client: the consent goes and every grant is revoked, in one
/// transaction with `event`. `false` when the user had allowed it nothing.
pub async fn revoke_app(db: &Store, user_id: i64, client_id: &str, now: i64, event: Event) -> Result<bool> {
    if !is_client_id(client_id) {
        return Ok(false);
    }
    let mut tx = db.change().await?;
    let revoked = sqlx::query(
        "UPDATE oauth_grants SET revoked_at = $3 WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let deleted = sqlx::query("DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    let revoked = deleted.rows_affected() + revoked.rows_affected() > 0;
    tx.commit(&revoked.then_some(event).into_iter().collect::<Vec<_>>()).await?;
    Ok(revoked)
}

/// Revokes every grant of a user (an administrator cutting an account off): returns how many
/// were live.
pub async fn revoke_user_grants(db: &Store, user_id: i64, now: i64) -> Result<u64> {
    let (db, _turn) = db.write().await?;
    let done =
        sqlx::query("UPDATE oauth_grants SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user_id)
            .bind(now)
            .execute(db)
            .await?;
    Ok(done.rows_affected())
}

/// An authorization code as stored.
#[derive(Debug, Clone)]
pub struct CodeRow {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: i64,
    pub redirect_uri: String,
    pub scope: String,
    /// `""` when the app sent none.
    pub nonce: String,
    pub code_challenge: String,
    pub auth_time: i64,
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The grant its exchange made.
    pub grant_id: Option<String>,
}

impl FromRow<'_, AnyRow> for CodeRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<CodeRow> {
        Ok(CodeRow {
            code_hash: row.try_get("code_hash")?,
            client_id: row.try_get("client_id")?,
            user_id: row.try_get("user_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            scope: row.try_get("scope")?,
            nonce: row.try_get("nonce")?,
            code_challenge: row.try_get("code_challenge")?,
            auth_time: row.try_get("auth_time")?,
            amr: row.try_get("amr")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            used_at: super::nullable(row, "used_at")?,
            grant_id: super::nullable(row, "grant_id")?,
        })
    }
}

pub async fn insert_code(db: &Store, code: &CodeRow) -> Result<()> {
    let (db, _turn) = db.write().await?;
    sqlx::query(
        "INSERT INTO oauth_codes (code_hash, client_id, user_id, redirect_uri, scope, nonce, code_challenge, \
         auth_time, amr, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&code.code_hash)
    .bind(&code.client_id)
    .bind(code.user_id)
    .bind(&code.redirect_uri)
    .bind(&code.scope)
    .bind(&code.nonce)
    .bind(&code.code_challenge)
    .bind(code.auth_time)
    .bind(&code.amr)
    .bind(code.created_at)
    .bind(code.expires_at)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn find_code(db: &AnyPool, code_hash: &str) -> Result<Option<CodeRow>> {
    let code = sqlx::query_as(
        "SELECT code_hash, client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, amr, \
         created_at, expires_at, used_at, grant_id FROM oauth_codes WHERE code_hash = $1",
    )
    .bind(code_hash)
    .fetch_optional(db)
    .await?;
    Ok(code)
}

/// A grant to be made, with its first tokens.
pub struct NewGrant<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub user_id: i64,
    pub scope: &'a str,
    pub auth_time: i64,
    pub amr: &'a str,
    pub now: i64,
    pub expires_at: i64,
    /// The hash of the access token and when it expires.
    pub access: (&'a str, i64),
    /// The hash of the refresh token, when the app may stay connected.
    pub refresh: Option<&'a str>,
}

/// Spends a code and makes its grant, in one transaction: `false` (and nothing changed) when
/// the code was spent already, by a concurrent exchange.
pub async fn exchange_code(db: &Store, code_hash: &str, grant: NewGrant<'_>) -> Result<bool> {
    let (db, _turn) = db.write().await?;
    let mut tx = db.begin().await?;
    let spent = sqlx::query(
        "UPDATE oauth_codes SET used_at = $2, grant_id = $3 WHERE code_hash = $1 AND used_at IS NULL",
    )
    .bind(code_hash)
    .bind(grant.now)
    .bind(grant.id)
    .execute(&mut *tx)
    .await?;
    if spent.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO oauth_grants (id, client_id, user_id, scope, auth_time, amr, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(grant.id)
    .bind(grant.client_id)
    .bind(grant.user_id)
    .bind(grant.scope)
    .bind(grant.auth_time)
    .bind(grant.amr)
    .bind(grant.now)
    .bind(grant.expires_at)
    .execute(&mut *tx)
    .await?;
    insert_token(&mut *tx, grant.access.0, grant.id, "access", grant.now, grant.access.1).await?;
    if let Some(refresh) = grant.refresh {
        insert_token(&mut *tx, refresh, grant.id, "refresh", grant.now, grant.expires_at).await?;
    }
    tx.commit().await?;
    Ok(true)
}

async fn insert_token<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    token_hash: &str,
    grant_id: &str,
    kind: &str,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_tokens (token_hash, grant_id, kind, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(grant_id)
    .bind(kind)
    .bind(now)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Stores a new access token of a grant.
pub async fn insert_access_token(
    db: &Store,
    token_hash: &str,
    grant_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    let (db, _turn) = db.write().await?;
    insert_token(db, token_hash, grant_id, "access", now, expires_at).await
}

/// Revokes a grant (and so every token of it), recording `event` when given.
pub async fn revoke_grant(db: &Store, grant_id: &str, now: i64, event: Option<Event>) -> Result<()> {
    let mut change = db.change().await?;
    sqlx::query("UPDATE oauth_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(grant_id)
        .bind(now)
        .execute(&mut *change)
        .await?;
    change.commit(&event.into_iter().collect::<Vec<_>>()).await
}

/// A token with its grant, found by the token's hash.
#[derive(Debug, Clone)]
pub struct TokenTarget {
    pub token_hash: String,
    pub kind: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: i64,
    pub scope: String,
    pub auth_time: i64,
    pub amr: String,
    pub grant_expires_at: i64,
    pub revoked: bool,
}

impl FromRow<'_, AnyRow> for TokenTarget {
    fn from_row(row: &AnyRow) -> sqlx::Result<TokenTarget> {
        Ok(TokenTarget {
            token_hash: row.try_get("token_hash")?,
            kind: row.try_get("kind")?,
            expires_at: row.try_get("expires_at")?,
            used_at: super::nullable(row, "used_at")?,
            grant_id: row.try_get("grant_id")?,
            client_id: row.try_get("client_id")?,
            user_id: row.try_get("user_id")?,
            scope: row.try_get("scope")?,
            auth_time: row.try_get("auth_time")?,
            amr: row.try_get("amr")?,
            grant_expires_at: row.try_get("grant_expires_at")?,
            revoked: super::nullable::<i64>(row, "revoked_at")?.is_some(),
        })
    }
}

pub async fn find_token(db: &AnyPool, token_hash: &str) -> Result<Option<TokenTarget>> {
    let target = sqlx::query_as(
        "SELECT t.token_hash, t.kind, t.expires_at, t.used_at, t.grant_id, g.client_id, g.user_id, g.scope, \
         g.auth_time, g.amr, g.expires_at AS grant_expires_at, g.revoked_at \
         FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await?;
    Ok(target)
}

/// Whether a token (by its hash) belongs to the grant.
pub async fn is_token_of(db: &AnyPool, token_hash: &str, grant_id: &str) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM oauth_tokens WHERE token_hash = $1 AND grant_id = $2")
            .bind(token_hash)
            .bind(grant_id)
            .fetch_optional(db)
            .await?;
    Ok(found.is_some())
}

/// Exchanges a refresh token on its first use, in one transaction: the old one is marked used,
/// its successor and a new access token stored. `false` (and nothing changed) when it was used
/// already, by a concurrent request.
pub async fn rotate_refresh_token(
    db: &Store,
    target: &TokenTarget,
    successor: &str,
    access: (&str, i64),
    now: i64,
) -> Result<bool> {
    let (db, _turn) = db.write().await?;
    let mut tx = db.begin().await?;
    let used = sqlx::query("UPDATE oauth_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
        .bind(&target.token_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if used.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    insert_token(&mut *tx, successor, &target.grant_id, "refresh", now, target.grant_expires_at).await?;
    insert_token(&mut *tx, access.0, &target.grant_id, "access", now, access.1).await?;
    tx.commit().await?;
    Ok(true)
}

/// Deletes one token (an access token an app revoked).
pub async fn delete_token(db: &Store, token_hash: &str) -> Result<()> {
    let (db, _turn) = db.write().await?;
    sqlx::query("DELETE FROM oauth_tokens WHERE token_hash = $1").bind(token_hash).execute(db).await?;
    Ok(())
}
