//! The JSON API for managing one's own account: password, deletion, sessions.

use rocket::http::{CookieJar, Status};
use rocket::serde::json::Json;
use rocket::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::ApiJson;
use crate::auth::{self, ApiUser, AuthService};
use crate::error::{Error, Problem, Result};
use crate::store::{self, sessions::SessionInfo, Db};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![change_password, delete_account, sessions, revoke_session]
}

/// `{current_password, new_password}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChange {
    #[serde(default)]
    #[schema(required = true, format = Password, min_length = 1)]
    pub current_password: String,
    /// 8–72 bytes, not the username.
    #[serde(default)]
    #[schema(required = true, format = "bcrypt-password", min_length = 2, max_length = 72)]
    pub new_password: String,
}

/// `{password}`: the account's password, to confirm the deletion.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AccountDeletion {
    #[serde(default)]
    #[schema(required = true, format = Password, min_length = 1)]
    pub password: String,
}

/// A live session of the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Updated at most every few minutes.
    #[schema(format = DateTime)]
    pub last_used_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub user_agent: String,
    /// The session of the token making this request.
    pub current: bool,
}

impl SessionOut {
    fn new(session: SessionInfo, current_id: &str) -> Self {
        SessionOut {
            current: session.id == current_id,
            id: session.id,
            created_at: crate::rfc3339(session.created_at),
            last_used_at: crate::rfc3339(session.last_used_at),
            expires_at: crate::rfc3339(session.expires_at),
            user_agent: session.user_agent,
        }
    }
}

fn require(field: &'static str, value: &str) -> Result<()> {
    match value.is_empty() {
        true => Err(Error::field(field, "This field is required.")),
        false => Ok(()),
    }
}

/// Change the password: checks the current one, then signs out every other session.
#[utoipa::path(
    post, path = "/auth/password", tag = "account",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Password changed; every other session is revoked"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Wrong current password (`errors.current_password`), or a cookie-authenticated call without X-CSRF-Token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A new password that breaks the rules, or a missing field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[rocket::post("/auth/password", data = "<body>")]
pub async fn change_password(
    user: ApiUser,
    db: &Db,
    auth: &State<AuthService>,
    body: ApiJson<PasswordChange>,
) -> Result<Status> {
    require("current_password", &body.0.current_password)?;
    let PasswordChange { current_password, new_password } = body.0;
    auth::change_password(db, auth, &user.user, &user.session_id, &current_password, &new_password).await?;
    Ok(Status::NoContent)
}

/// Delete the account after checking its password, with every session and token; the
/// username becomes free again.
#[utoipa::path(
    delete, path = "/auth/account", tag = "account",
    security(("bearer" = [])),
    request_body = AccountDeletion,
    responses(
        (status = 204, description = "Account deleted"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Wrong password (`errors.password`), or a cookie-authenticated call without X-CSRF-Token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[rocket::delete("/auth/account", data = "<body>")]
pub async fn delete_account(
    user: ApiUser,
    db: &Db,
    auth: &State<AuthService>,
    body: ApiJson<AccountDeletion>,
    jar: &CookieJar<'_>,
) -> Result<Status> {
    require("password", &body.0.password)?;
    auth::delete_account(db, auth, &user.user, &body.0.password).await?;
    if user.by_cookie {
        auth.clear_cookies(jar);
    }
    Ok(Status::NoContent)
}

/// The user's live sessions, most recently used first.
#[utoipa::path(
    get, path = "/auth/sessions", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions", body = Vec<SessionOut>),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[rocket::get("/auth/sessions")]
pub async fn sessions(user: ApiUser, db: &Db) -> Result<Json<Vec<SessionOut>>> {
    let sessions = store::sessions::list_live_sessions(db, user.user.id, store::now()).await?;
    Ok(Json(sessions.into_iter().map(|session| SessionOut::new(session, &user.session_id)).collect()))
}

/// Revoke one of the user's sessions (the current one too: that signs out).
#[utoipa::path(
    delete, path = "/auth/sessions/{id}", tag = "account",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "A session id from `GET /auth/sessions`")),
    responses(
        (status = 204, description = "Session revoked"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cookie-authenticated call without X-CSRF-Token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The user has no live session with this id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[rocket::delete("/auth/sessions/<id>")]
pub async fn revoke_session(user: ApiUser, id: &str, db: &Db) -> Result<Status> {
    match store::sessions::revoke_user_session(db, user.user.id, id, store::now()).await? {
        true => Ok(Status::NoContent),
        false => Err(Error::Status(Status::NotFound)),
    }
}
