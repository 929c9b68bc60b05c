//! The JSON API under `/auth`: the original three routes of the FastAPI design, and logout.

use rocket::http::{CookieJar, Header, Status};
use rocket::response::Responder;
use rocket::serde::json::Json;
use rocket::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{ApiJson, Credentials, LoginCredentials, NewCredentials};
use crate::auth::{self, ApiUser, AuthService, Scope, UserAgent};
use crate::error::{Error, Problem, Result};
use crate::store::{users::User, Db};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![register, login, refresh, profile, logout]
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub username: String,
    /// When the account was created (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<User> for UserOut {
    fn from(user: User) -> Self {
        UserOut { id: user.id, username: user.username, created_at: crate::rfc3339(user.created_at) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Exchange it at `POST /auth/refresh` for new tokens; each one works once.
    pub refresh_token: String,
}

impl TokenResponse {
    fn new(access_token: String, refresh_token: String, auth: &AuthService) -> NoStore<Json<TokenResponse>> {
        NoStore::new(Json(TokenResponse {
            access_token,
            token_type: "bearer",
            expires_in: auth.tokens.ttl,
            refresh_token,
        }))
    }
}

/// `{refresh_token}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    pub refresh_token: String,
}

/// A response that must never be cached (it carries a token).
#[derive(Responder)]
pub struct NoStore<T> {
    inner: T,
    cache_control: Header<'static>,
    pragma: Header<'static>,
}

impl<T> NoStore<T> {
    pub fn new(inner: T) -> Self {
        NoStore {
            inner,
            cache_control: Header::new("Cache-Control", "no-store"),
            pragma: Header::new("Pragma", "no-cache"),
        }
    }
}

/// Create an account.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    request_body = NewCredentials,
    responses(
        (status = 201, description = "Account created", body = UserOut),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username taken (compared case-insensitively)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before trying again"))),
    )
)]
#[rocket::post("/auth/register", data = "<body>")]
pub async fn register(
    db: &Db,
    auth: &State<AuthService>,
    body: ApiJson<NewCredentials>,
) -> Result<(Status, Json<UserOut>)> {
    let account = body.0.parse()?;
    let user = auth::register(db, auth, account).await?;
    Ok((Status::Created, Json(user.into())))
}

/// Sign in: opens a session and returns its access token.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    request_body(content(
        (Credentials = "application/json"),
        (Credentials = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`: the token is never cached"),
            ("Pragma" = String, description = "`no-cache`, for HTTP/1.0 caches"),
        )),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid username or password", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor a form", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing fields, or a `grant_type` other than `password`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before trying again"))),
    )
)]
#[rocket::post("/auth/login", data = "<credentials>")]
pub async fn login(
    db: &Db,
    auth: &State<AuthService>,
    credentials: LoginCredentials,
    agent: UserAgent,
) -> Result<NoStore<Json<TokenResponse>>> {
    let Credentials { username, password, .. } = credentials.0;
    let signed_in = auth::sign_in(db, auth, &username, &password, &agent.0).await?;
    Ok(TokenResponse::new(signed_in.access_token, signed_in.refresh_token, auth))
}

/// Exchange a refresh token for a new access token and a new refresh token. The old refresh
/// token stops working; presenting it again later revokes the whole session (reuse detection),
/// except within a few seconds of its first use (`refresh_grace`: a client's retry).
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`: the token is never cached"),
            ("Pragma" = String, description = "`no-cache`, for HTTP/1.0 caches"),
        )),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown, used or revoked refresh token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before trying again"))),
    )
)]
#[rocket::post("/auth/refresh", data = "<body>")]
pub async fn refresh(
    db: &Db,
    auth: &State<AuthService>,
    body: ApiJson<RefreshRequest>,
) -> Result<NoStore<Json<TokenResponse>>> {
    if body.0.refresh_token.is_empty() {
        return Err(Error::field("refresh_token", "The refresh token is required."));
    }
    let renewed = auth::refresh(db, auth, &body.0.refresh_token).await?;
    Ok(TokenResponse::new(renewed.access_token, renewed.refresh_token, auth))
}

/// The signed-in user.
#[utoipa::path(
    get, path = "/auth/profile", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user of the token", body = UserOut),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer`, plus `error=\"invalid_token\"` when a token was sent but is not valid"))),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before trying again"))),
    )
)]
#[rocket::get("/auth/profile")]
pub fn profile(user: ApiUser) -> Json<UserOut> {
    Json(user.user.into())
}

/// The sessions a sign-out ends, as the OpenAPI document describes the `scope` parameter;
/// the handler reads it as text so that an unknown scope gets a 422 that names it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum LogoutScope {
    Local,
    Others,
    Global,
}

/// Sign out: revokes this session (`scope=local`, the default), every other session of the
/// user (`others`), or all of them (`global`), at once.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    security(("bearer" = [])),
    params(("scope" = Option<LogoutScope>, Query, description = "`local` (default), `others` or `global`")),
    responses(
        (status = 204, description = "Sessions revoked"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer`, plus `error=\"invalid_token\"` when a token was sent but is not valid"))),
        (status = 403, description = "Cookie-authenticated call without X-CSRF-Token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown scope", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before trying again"))),
    )
)]
#[rocket::post("/auth/logout?<scope>")]
pub async fn logout(
    user: ApiUser,
    scope: Vec<&str>,
    db: &Db,
    auth: &State<AuthService>,
    jar: &CookieJar<'_>,
) -> Result<Status> {
    // Every value is collected: a `scope` given twice is refused, not half-read.
    let scope = match scope.as_slice() {
        [] | ["local"] => Scope::Local,
        ["others"] => Scope::Others,
        ["global"] => Scope::Global,
        _ => return Err(Error::field("scope", "Give one scope: local, others or global.")),
    };
    auth::sign_out(db, user.user.id, &user.session_id, scope).await?;
    if user.by_cookie && scope != Scope::Others {
        auth.clear_cookies(jar);
    }
    Ok(Status::NoContent)
}
