//! The JSON API under `/auth`: the original three routes of the FastAPI design, and logout.

use rocket::http::{CookieJar, Header, Status};
use rocket::response::Responder;
use rocket::serde::json::Json;
use rocket::State;
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use super::body::{
    ApiJson, Credentials, LoginCredentials, NewCredentials, RefreshCredentials, RefreshForm, RefreshRequest,
};
use super::openapi::{
    Authenticated, AuthenticatedChange, Database, IssuedTokens, JsonBody, LogoutRefusals, RefreshRefusals,
    SignInRefusals, SignUpRefusals, Throttled,
};
use super::views::rfc3339;
use crate::auth::{Accounts, Client, Issued, Scope, SignIn};
use crate::domain::User;
use crate::error::{Error, Result};
use crate::web::{ApiUser, SessionCookies};

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
    /// The account's email address, for recovery; `null` when it has none.
    #[schema(format = Email)]
    pub email: Option<String>,
    /// Whether its owner followed the confirmation link: only a confirmed address receives
    /// password reset links.
    pub email_confirmed: bool,
    /// The groups the user is in, as they are now (administrators manage them).
    pub groups: Vec<String>,
    /// The second factors the user signs in with after the password: `totp` (an authenticator
    /// app), `passkey`, both or none.
    pub second_factors: Vec<&'static str>,
    /// Recovery codes not used yet (0 without a second factor).
    pub recovery_codes_left: i64,
}

impl From<User> for UserOut {
    fn from(user: User) -> Self {
        let second_factors = user.second_factors();
        UserOut {
            id: user.id,
            username: user.username,
            created_at: rfc3339(user.created_at),
            email: user.email,
            email_confirmed: user.email_confirmed,
            groups: user.groups,
            second_factors,
            recovery_codes_left: user.recovery_codes_left,
        }
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
    /// From a sign-in: proof that this client signed in to the account. Send it back as
    /// `device_token` with the next login, and strangers' failed guesses at the password
    /// (the per-username limit) never keep this client out. Valid a year.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

impl TokenResponse {
    pub fn new(
        issued: Issued,
        accounts: &Accounts,
        device_token: Option<String>,
    ) -> NoStore<Json<TokenResponse>> {
        NoStore::new(Json(TokenResponse {
            access_token: issued.access_token,
            token_type: "bearer",
            expires_in: accounts.tokens().ttl,
            refresh_token: issued.refresh_token,
            device_token,
        }))
    }
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
        JsonBody, Database, Throttled,
        (status = 201, description = "Account created", body = UserOut),
        SignUpRefusals,
    )
)]
#[rocket::post("/auth/register", data = "<body>")]
pub async fn register(
    accounts: &State<Accounts>,
    body: ApiJson<NewCredentials>,
    client: Client,
) -> Result<(Status, Json<UserOut>)> {
    let NewCredentials { username, password, invite } = body.0;
    let user =
        accounts.sign_up(&username, password.expose_secret(), None, invite.as_deref(), &client).await?;
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
        JsonBody, Database, IssuedTokens, Throttled,
        SignInRefusals,
    )
)]
#[rocket::post("/auth/login", data = "<credentials>")]
pub async fn login(
    accounts: &State<Accounts>,
    credentials: LoginCredentials,
    mut client: Client,
) -> Result<NoStore<Json<TokenResponse>>> {
    let Credentials { username, password, device_token, .. } = &credentials.body;
    client.device_tokens.extend(device_token.clone());
    match credentials.answer(accounts.sign_in(username, password.expose_secret(), &client).await)? {
        SignIn::Done(mut issued) => {
            let device_token = std::mem::take(&mut issued.device_token);
            Ok(TokenResponse::new(issued, accounts, Some(device_token)))
        }
        SignIn::SecondStep { token, methods, passkey } => {
            Err(Error::SecondFactorRequired { mfa_token: token, methods, passkey: passkey.map(Box::new) })
        }
    }
}

/// Exchange a refresh token for a new access token and a new refresh token. The old refresh
/// token stops working; presenting it again later revokes the whole session (reuse detection),
/// except within a few seconds of its first use (`refresh_grace`: a client's retry).
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth",
    request_body(content(
        (RefreshRequest = "application/json"),
        (RefreshForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        JsonBody, Database, IssuedTokens,
        RefreshRefusals,
    )
)]
#[rocket::post("/auth/refresh", data = "<body>")]
pub async fn refresh(
    accounts: &State<Accounts>,
    body: RefreshCredentials,
    client: Client,
) -> Result<NoStore<Json<TokenResponse>>> {
    let issued = body.answer(accounts.refresh(&body.body.refresh_token, &client).await)?;
    Ok(TokenResponse::new(issued, accounts, None))
}

/// The signed-in user.
#[utoipa::path(
    get, path = "/auth/profile", tag = "auth",
    security(("bearer" = [])),
    responses(
        Authenticated, Database,
        (status = 200, description = "The user of the token", body = UserOut),
    )
)]
#[rocket::get("/auth/profile")]
pub fn profile(user: ApiUser) -> Json<UserOut> {
    Json(user.0.user.into())
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
        AuthenticatedChange, Database,
        (status = 204, description = "Sessions revoked"),
        LogoutRefusals,
    )
)]
#[rocket::post("/auth/logout?<scope>")]
pub async fn logout(
    user: ApiUser,
    scope: Vec<&str>,
    accounts: &State<Accounts>,
    cookies: &State<SessionCookies>,
    jar: &CookieJar<'_>,
    client: Client,
) -> Result<Status> {
    // Every value is collected: a `scope` given twice is refused, not half-read.
    let scope = match scope.as_slice() {
        [] | ["local"] => Scope::Local,
        ["others"] => Scope::Others,
        ["global"] => Scope::Global,
        _ => return Err(Error::field("scope", "Give one scope: local, others or global.")),
    };
    let this = accounts.sign_out(&user, scope, &client).await?;
    cookies.forget_ended(jar, &user, this);
    Ok(Status::NoContent)
}
