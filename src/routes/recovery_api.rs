//! The JSON API for recovery by email: the account's address, its confirmation, and password
//! reset links.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::State;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::UserOut;
use super::body::ApiJson;
use super::openapi::{
    AuthenticatedChange, ConfirmationRefusals, Database, EmailRefusals, JsonBody, ResetRefusals,
    ResetRequestRefusals,
};
use crate::auth::{Accounts, Client};
use crate::domain::{required, Lookup};
use crate::error::{Error, Result};
use crate::web::ApiUser;

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![set_email, remove_email, confirm_email, request_reset, confirm_reset]
}

/// `{email}`.
#[derive(Deserialize, ToSchema)]
pub struct EmailRequest {
    /// At most 254 characters; unique among accounts regardless of case.
    #[serde(default)]
    #[schema(required = true, format = Email, min_length = 3, max_length = 254)]
    pub email: String,
}

/// `{token}`: from the link in the mail.
#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    pub token: String,
}

/// `{username}` or `{email}`, not both: the account to send a reset link for. As the schema
/// ([`ResetRequestDoc`]) says, the field that is not a non-empty string does not count.
#[derive(Deserialize)]
pub struct ResetRequest {
    #[serde(default)]
    pub username: Option<serde_json::Value>,
    #[serde(default)]
    pub email: Option<serde_json::Value>,
}

/// `{username}` or `{email}`, not both: the account to send a reset link for.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(as = ResetRequest)]
#[allow(dead_code)]
pub enum ResetRequestDoc {
    ByUsername {
        /// A username, in any case.
        #[schema(min_length = 1)]
        username: String,
    },
    ByEmail {
        /// An email address, in any case.
        #[schema(min_length = 1)]
        email: String,
    },
}

/// `{token, new_password}`.
#[derive(Deserialize, ToSchema)]
pub struct ResetConfirmation {
    /// From the link in the mail.
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    pub token: String,
    #[serde(default)]
    #[schema(value_type = String, required = true, format = "bcrypt-password")]
    pub new_password: secrecy::SecretString,
}

/// What a reset request always answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetAccepted {
    pub detail: &'static str,
}

/// The answer to every reset request, whatever it names.
pub const RESET_ACCEPTED: &str = "If an account with a confirmed email address matches, a link to \
                                  reset its password is on its way. It works once, for a short time.";

/// Set or change the account's email address. It stays unconfirmed (and receives no reset
/// link) until the link mailed to it is followed.
#[utoipa::path(
    put, path = "/auth/email", tag = "recovery",
    security(("bearer" = [])),
    request_body = EmailRequest,
    responses(
        JsonBody, AuthenticatedChange, Database,
        (status = 202, description = "Address set; a confirmation link is mailed to it", body = UserOut),
        EmailRefusals,
    )
)]
#[rocket::put("/auth/email", data = "<body>")]
pub async fn set_email(
    user: ApiUser,
    accounts: &State<Accounts>,
    body: ApiJson<EmailRequest>,
    client: Client,
) -> Result<(Status, Json<UserOut>)> {
    let user = accounts.set_email(&user, &body.0.email, &client).await?;
    Ok((Status::Accepted, Json(user.into())))
}

/// Remove the account's email address; links mailed to it stop working.
#[utoipa::path(
    delete, path = "/auth/email", tag = "recovery",
    security(("bearer" = [])),
    responses(
        AuthenticatedChange, Database,
        (status = 204, description = "Address removed"),
    )
)]
#[rocket::delete("/auth/email")]
pub async fn remove_email(user: ApiUser, accounts: &State<Accounts>, client: Client) -> Result<Status> {
    accounts.remove_email(&user, &client).await?;
    Ok(Status::NoContent)
}

/// Confirm an email address with the token of the link mailed to it.
#[utoipa::path(
    post, path = "/auth/email/confirm", tag = "recovery",
    request_body = TokenRequest,
    responses(
        JsonBody, Database,
        (status = 204, description = "Address confirmed"),
        ConfirmationRefusals,
    )
)]
#[rocket::post("/auth/email/confirm", data = "<body>")]
pub async fn confirm_email(
    accounts: &State<Accounts>,
    body: ApiJson<TokenRequest>,
    client: Client,
) -> Result<Status> {
    accounts.confirm_email(required("token", &body.0.token)?, &client).await?;
    Ok(Status::NoContent)
}

/// Ask for a password reset link, by username or by email address. The answer is the same,
/// and as fast, whether or not such an account exists: the link goes only to a confirmed
/// address, at most a few times an hour.
#[utoipa::path(
    post, path = "/auth/password-reset", tag = "recovery",
    request_body = ResetRequestDoc,
    responses(
        JsonBody, Database,
        (status = 202, description = "Accepted (whatever it names)", body = ResetAccepted),
        ResetRequestRefusals,
    )
)]
#[rocket::post("/auth/password-reset", data = "<body>")]
pub async fn request_reset(
    accounts: &State<Accounts>,
    body: ApiJson<ResetRequest>,
    client: Client,
) -> Result<(Status, Json<ResetAccepted>)> {
    let given = |field: Option<serde_json::Value>| match field {
        Some(serde_json::Value::String(value)) if !value.is_empty() => Some(value),
        _ => None,
    };
    let lookup = match (given(body.0.username), given(body.0.email)) {
        (Some(name), None) => Lookup::Username(name),
        (None, Some(email)) => Lookup::Email(email),
        _ => return Err(Error::field("username", "Give either a username or an email address.")),
    };
    accounts.request_password_reset(lookup, &client).await?;
    Ok((Status::Accepted, Json(ResetAccepted { detail: RESET_ACCEPTED })))
}

/// Set a new password with the token of a reset link. Every session of the account is signed
/// out; the link works only once.
#[utoipa::path(
    post, path = "/auth/password-reset/confirm", tag = "recovery",
    request_body = ResetConfirmation,
    responses(
        JsonBody, Database,
        (status = 204, description = "Password set; every session is revoked"),
        ResetRefusals,
    )
)]
#[rocket::post("/auth/password-reset/confirm", data = "<body>")]
pub async fn confirm_reset(
    accounts: &State<Accounts>,
    body: ApiJson<ResetConfirmation>,
    client: Client,
) -> Result<Status> {
    let ResetConfirmation { token, new_password } = body.0;
    accounts
        .reset_password(required("token", &token)?, (new_password.expose_secret(), None), &client)
        .await?;
    Ok(Status::NoContent)
}
