//! The JSON API of passkeys: adding, listing and removing them, and signing in with one alone.
//! The options and answers are WebAuthn Level 3's JSON (`toJSON()`, binary as base64url), so a
//! native app or a script can take part as a browser does.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::State;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::{NoStore, TokenResponse};
use super::body::ApiJson;
use super::openapi::{
    Authenticated, AuthenticatedChange, Database, IssuedTokens, JsonBody, PasskeyOff,
    PasskeyRegistrationRefusals, PasskeyRemovalRefusals, PasskeySignInRefusals, Throttled,
};
use super::views::rfc3339;
use crate::auth::{Accounts, Added, Challenge, Client};
use crate::error::{Error, Result};
use crate::store::passkeys::Listed;
use crate::web::ApiUser;

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![begin_registration, finish_registration, list, remove, begin_sign_in, finish_sign_in]
}

/// A ceremony begun: its token, which the answer carries back, and the options to hand to
/// `navigator.credentials` (after `PublicKeyCredential.parseCreationOptionsFromJSON()` or
/// `parseRequestOptionsFromJSON()`). Single use; 5 minutes.
#[derive(Serialize, ToSchema)]
pub struct ChallengeOut {
    pub ceremony: String,
    /// `PublicKeyCredentialCreationOptionsJSON` or `PublicKeyCredentialRequestOptionsJSON`.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

impl From<Challenge> for ChallengeOut {
    fn from(Challenge { ceremony, public_key }: Challenge) -> Self {
        ChallengeOut { ceremony, public_key }
    }
}

/// `{ceremony, name, credential}`: the authenticator's answer to a registration ceremony.
#[derive(Deserialize, ToSchema)]
pub struct PasskeyRegistration {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    pub ceremony: String,
    /// What the user calls it ("Phone", "YubiKey"): 1 to 64 characters.
    #[serde(default)]
    #[schema(required = true, min_length = 1, max_length = 64, example = "Laptop")]
    pub name: String,
    /// `RegistrationResponseJSON`: what `credential.toJSON()` gives after
    /// `navigator.credentials.create()`.
    #[serde(default)]
    #[schema(value_type = Object, required = true)]
    pub credential: Option<serde_json::Value>,
}

/// `{ceremony, credential}`: the authenticator's answer to a sign-in ceremony.
#[derive(Deserialize, ToSchema)]
pub struct PasskeySignIn {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    pub ceremony: String,
    /// `AuthenticationResponseJSON`: what `credential.toJSON()` gives after
    /// `navigator.credentials.get()`.
    #[serde(default)]
    #[schema(value_type = Object, required = true)]
    pub credential: Option<serde_json::Value>,
    /// The `device_token` of an earlier sign-in to this account, as `POST /auth/login` takes it.
    #[serde(default)]
    #[schema(required = false)]
    pub device_token: Option<String>,
}

/// A passkey of the user.
#[derive(Serialize, ToSchema)]
pub struct PasskeyOut {
    pub id: i64,
    pub name: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it last signed in (none yet: null).
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
}

impl From<Listed> for PasskeyOut {
    fn from(passkey: Listed) -> Self {
        PasskeyOut {
            id: passkey.id,
            name: passkey.name,
            created_at: rfc3339(passkey.created_at),
            last_used_at: passkey.last_used_at.map(rfc3339),
        }
    }
}

/// A passkey added; with the recovery codes when it is the account's first second factor
/// (shown this once).
#[derive(Serialize, ToSchema)]
pub struct PasskeyAdded {
    #[serde(flatten)]
    pub passkey: PasskeyOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

/// `{password}`: the account's password, to confirm the removal.
#[derive(Deserialize, ToSchema)]
pub struct PasskeyRemoval {
    #[serde(default)]
    #[schema(value_type = String, required = true, format = Password, min_length = 1)]
    pub password: SecretString,
}

/// An answer field that is missing.
fn missing(field: &'static str) -> Error {
    Error::field(field, "This field is required.")
}

/// Begin adding a passkey: the options for `navigator.credentials.create()` (a discoverable
/// credential, user verification required, attestation `none`).
#[utoipa::path(
    post, path = "/auth/passkeys/register/start", tag = "passkeys",
    security(("bearer" = [])),
    responses(
        AuthenticatedChange, Database, PasskeyOff,
        (status = 200, description = "The ceremony and its options", body = ChallengeOut),
    )
)]
#[rocket::post("/auth/passkeys/register/start")]
pub async fn begin_registration(
    user: ApiUser,
    accounts: &State<Accounts>,
) -> Result<NoStore<Json<ChallengeOut>>> {
    let challenge = accounts.begin_passkey_registration(&user).await?;
    Ok(NoStore::new(Json(challenge.into())))
}

/// Finish adding a passkey with the authenticator's answer. The account's first second factor
/// also gets 10 recovery codes, shown this once; from now on a password sign-in asks for a
/// second step.
#[utoipa::path(
    post, path = "/auth/passkeys/register/finish", tag = "passkeys",
    security(("bearer" = [])),
    request_body = PasskeyRegistration,
    responses(
        JsonBody, AuthenticatedChange, Database, PasskeyOff,
        (status = 201, description = "The passkey is added", body = PasskeyAdded),
        PasskeyRegistrationRefusals,
    )
)]
#[rocket::post("/auth/passkeys/register/finish", data = "<body>")]
pub async fn finish_registration(
    user: ApiUser,
    accounts: &State<Accounts>,
    body: ApiJson<PasskeyRegistration>,
    client: Client,
) -> Result<(Status, NoStore<Json<PasskeyAdded>>)> {
    let PasskeyRegistration { ceremony, name, credential } = body.0;
    let credential = credential.ok_or_else(|| missing("credential"))?;
    let Added { passkey, recovery_codes } =
        accounts.finish_passkey_registration(&user, &ceremony, &name, &credential, &client).await?;
    Ok((Status::Created, NoStore::new(Json(PasskeyAdded { passkey: passkey.into(), recovery_codes }))))
}

/// The user's passkeys, the oldest first.
#[utoipa::path(
    get, path = "/auth/passkeys", tag = "passkeys",
    security(("bearer" = [])),
    responses(
        Authenticated, Database,
        (status = 200, description = "The passkeys", body = [PasskeyOut]),
    )
)]
#[rocket::get("/auth/passkeys")]
pub async fn list(user: ApiUser, accounts: &State<Accounts>) -> Result<Json<Vec<PasskeyOut>>> {
    let passkeys = accounts.passkeys(&user).await?;
    Ok(Json(passkeys.into_iter().map(PasskeyOut::from).collect()))
}

/// Remove a passkey, behind the password. Removing the last second factor also removes the
/// recovery codes.
#[utoipa::path(
    delete, path = "/auth/passkeys/{id}", tag = "passkeys",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The passkey's id")),
    request_body = PasskeyRemoval,
    responses(
        JsonBody, AuthenticatedChange, Database, Throttled,
        (status = 204, description = "The passkey is removed"),
        PasskeyRemovalRefusals,
    )
)]
#[rocket::delete("/auth/passkeys/<id>", data = "<body>")]
pub async fn remove(
    user: ApiUser,
    accounts: &State<Accounts>,
    id: i64,
    body: ApiJson<PasskeyRemoval>,
    client: Client,
) -> Result<Status> {
    accounts.remove_passkey(&user, id, &body.0.password, &client).await?;
    Ok(Status::NoContent)
}

/// Begin a sign-in with a passkey and no username: the options for
/// `navigator.credentials.get()` (no allow list: the authenticator offers its passkeys for
/// this site).
#[utoipa::path(
    post, path = "/auth/passkeys/login/start", tag = "passkeys",
    responses(
        Database, PasskeyOff,
        (status = 200, description = "The ceremony and its options", body = ChallengeOut),
    )
)]
#[rocket::post("/auth/passkeys/login/start")]
pub async fn begin_sign_in(accounts: &State<Accounts>) -> Result<NoStore<Json<ChallengeOut>>> {
    let challenge = accounts.begin_passkey_sign_in().await?;
    Ok(NoStore::new(Json(challenge.into())))
}

/// Finish a sign-in with a passkey: answers as `POST /auth/login` does. A refused answer counts
/// as a failed sign-in.
#[utoipa::path(
    post, path = "/auth/passkeys/login/finish", tag = "passkeys",
    request_body = PasskeySignIn,
    responses(
        JsonBody, Database, IssuedTokens, Throttled, PasskeyOff,
        PasskeySignInRefusals,
    )
)]
#[rocket::post("/auth/passkeys/login/finish", data = "<body>")]
pub async fn finish_sign_in(
    accounts: &State<Accounts>,
    body: ApiJson<PasskeySignIn>,
    mut client: Client,
) -> Result<NoStore<Json<TokenResponse>>> {
    let PasskeySignIn { ceremony, credential, device_token } = body.0;
    let credential = credential.ok_or_else(|| missing("credential"))?;
    client.device_tokens.extend(device_token);
    let mut issued = accounts.finish_passkey_sign_in(&ceremony, &credential, &client).await?;
    let device_token = std::mem::take(&mut issued.device_token);
    Ok(TokenResponse::new(issued, accounts, Some(device_token)))
}
