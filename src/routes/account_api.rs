//! The JSON API for managing one's own account: password, deletion, sessions.

use rocket::http::{CookieJar, Status};
use rocket::serde::json::Json;
use rocket::State;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::ApiJson;
use super::openapi::{
    Authenticated, AuthenticatedChange, Database, DeletionRefusals, JsonBody, PasswordChangeRefusals,
    SessionRefusals, Throttled,
};
use super::views::rfc3339;
use crate::auth::{Accounts, Client};
use crate::domain::Session;
use crate::error::Result;
use crate::store::events::Recorded;
use crate::web::{ApiUser, SessionCookies};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![change_password, delete_account, sessions, revoke_session, events]
}

/// `{current_password, new_password}`.
#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    #[serde(default)]
    #[schema(value_type = String, required = true, format = Password, min_length = 1)]
    pub current_password: SecretString,
    #[serde(default)]
    #[schema(value_type = String, required = true, format = "bcrypt-password")]
    pub new_password: SecretString,
}

/// `{password}`: the account's password, to confirm the deletion.
#[derive(Deserialize, ToSchema)]
pub struct AccountDeletion {
    #[serde(default)]
    #[schema(value_type = String, required = true, format = Password, min_length = 1)]
    pub password: SecretString,
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
    /// The client's `User-Agent`, as sent.
    pub user_agent: String,
    /// The device, as people name it (e.g. "Chrome on Linux"), read from `user_agent`.
    pub device: String,
    /// Where it signed in from: an IPv4 address, or an IPv6 /64 (`2001:db8:1:2::/64`).
    pub address: String,
    /// The session of the token making this request.
    pub current: bool,
    /// How it signed in: `password`, or `password + code` (two-step sign-in).
    pub methods: String,
}

impl From<Session> for SessionOut {
    fn from(session: Session) -> Self {
        SessionOut {
            current: session.current,
            id: session.id,
            created_at: rfc3339(session.created_at),
            last_used_at: rfc3339(session.last_used_at),
            expires_at: rfc3339(session.expires_at),
            user_agent: session.user_agent,
            device: session.device,
            address: session.address,
            methods: session.methods.to_owned(),
        }
    }
}

/// A security event of the user's account.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub id: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// What happened: `sign_in.succeeded`, `sign_in.failed`, `sign_in.throttled`,
    /// `session.signed_out`, `session.revoked`, `refresh_token.reused`, `second_factor.added`,
    /// `second_factor.removed`, `recovery_codes.renewed`, `passkey.added`, `passkey.removed`,
    /// `password.changed`, `password.reset`, `email.changed`, `email.removed`, `email.confirmed`,
    /// `account.created`, `app.consent_granted`, `app.consent_revoked`, `app.token_reused`,
    /// `admin.command`.
    pub kind: String,
    /// The same, in words.
    pub description: String,
    /// Where the request came from: an IPv4 address, or an IPv6 /64; empty for the command line.
    pub address: String,
    /// The device, as people name it (e.g. "Chrome on Linux").
    pub device: String,
    /// The client's `User-Agent`, as sent.
    pub user_agent: String,
    /// What else tells the event apart (e.g. `methods` of a sign-in, `step` of a failure).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<Recorded> for EventOut {
    fn from(event: Recorded) -> Self {
        EventOut {
            id: event.id,
            at: rfc3339(event.at),
            kind: event.kind,
            description: event.label,
            address: event.address,
            device: event.device,
            user_agent: event.user_agent,
            detail: event.detail,
        }
    }
}

/// The account's last 50 security events, newest first: sign-ins (and failed or throttled
/// ones), sign-outs and revoked sessions, changes of password, email, second factors and
/// passkeys, apps allowed and disconnected, what administrators did to it.
#[utoipa::path(
    get, path = "/auth/events", tag = "account",
    security(("bearer" = [])),
    responses(
        Authenticated, Database,
        (status = 200, description = "Security events, newest first", body = Vec<EventOut>),
    )
)]
#[rocket::get("/auth/events")]
pub async fn events(user: ApiUser, accounts: &State<Accounts>) -> Result<Json<Vec<EventOut>>> {
    let events = accounts.activity(&user).await?;
    Ok(Json(events.into_iter().map(EventOut::from).collect()))
}

/// Change the password: checks the current one, then signs out every other session.
#[utoipa::path(
    post, path = "/auth/password", tag = "account",
    security(("bearer" = [])),
    request_body = PasswordChangeRequest,
    responses(
        JsonBody, AuthenticatedChange, Database, Throttled,
        (status = 204, description = "Password changed; every other session is revoked"),
        PasswordChangeRefusals,
    )
)]
#[rocket::post("/auth/password", data = "<body>")]
pub async fn change_password(
    user: ApiUser,
    accounts: &State<Accounts>,
    body: ApiJson<PasswordChangeRequest>,
    client: Client,
) -> Result<Status> {
    let PasswordChangeRequest { current_password, new_password } = body.0;
    let (current, new) = (current_password.expose_secret(), new_password.expose_secret());
    accounts.change_password(&user, current, new, None, &client).await?;
    Ok(Status::NoContent)
}

/// Delete the account after checking its password, with every session and token; the
/// username becomes free again.
#[utoipa::path(
    delete, path = "/auth/account", tag = "account",
    security(("bearer" = [])),
    request_body = AccountDeletion,
    responses(
        JsonBody, AuthenticatedChange, Database, Throttled,
        (status = 204, description = "Account deleted"),
        DeletionRefusals,
    )
)]
#[rocket::delete("/auth/account", data = "<body>")]
pub async fn delete_account(
    user: ApiUser,
    accounts: &State<Accounts>,
    cookies: &State<SessionCookies>,
    body: ApiJson<AccountDeletion>,
    client: Client,
    jar: &CookieJar<'_>,
) -> Result<Status> {
    let this = accounts.delete_account(&user, &body.0.password, &client).await?;
    cookies.forget_ended(jar, &user, this);
    Ok(Status::NoContent)
}

/// The user's live sessions, most recently used first.
#[utoipa::path(
    get, path = "/auth/sessions", tag = "account",
    security(("bearer" = [])),
    responses(
        Authenticated, Database,
        (status = 200, description = "Live sessions", body = Vec<SessionOut>),
    )
)]
#[rocket::get("/auth/sessions")]
pub async fn sessions(user: ApiUser, accounts: &State<Accounts>) -> Result<Json<Vec<SessionOut>>> {
    let sessions = accounts.sessions(&user).await?;
    Ok(Json(sessions.into_iter().map(SessionOut::from).collect()))
}

/// Revoke one of the user's sessions (the current one too: that signs out, and a browser's
/// cookies are cleared).
#[utoipa::path(
    delete, path = "/auth/sessions/{id}", tag = "account",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "A session id from `GET /auth/sessions`")),
    responses(
        AuthenticatedChange, Database,
        (status = 204, description = "Session revoked"),
        SessionRefusals,
    )
)]
#[rocket::delete("/auth/sessions/<id>")]
pub async fn revoke_session(
    user: ApiUser,
    id: &str,
    accounts: &State<Accounts>,
    cookies: &State<SessionCookies>,
    jar: &CookieJar<'_>,
    client: Client,
) -> Result<Status> {
    let this = accounts.revoke_session(&user, id, &client).await?;
    cookies.forget_ended(jar, &user, this);
    Ok(Status::NoContent)
}
