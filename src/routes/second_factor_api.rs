//! The JSON API of two-step sign-in: setting up an authenticator app, recovery codes, turning
//! it off, and the second step of a sign-in.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::State;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::{NoStore, TokenResponse};
use super::body::ApiJson;
use super::openapi::{
    AuthenticatedChange, Database, IssuedTokens, JsonBody, RecoveryCodeRefusals, SecondStepRefusals,
    Throttled, TotpConfirmRefusals, TotpDisableRefusals, TotpSetupRefusals,
};
use crate::auth::{Accounts, Client, Proof, TotpSetup};
use crate::error::Result;
use crate::web::ApiUser;

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![begin_totp, confirm_totp, disable_totp, replace_recovery_codes, second_factor]
}

/// `{password}`: the account's password, to confirm a change of its second factor.
#[derive(Deserialize, ToSchema)]
pub struct PasswordConfirmation {
    #[serde(default)]
    #[schema(value_type = String, required = true, format = Password, min_length = 1)]
    pub password: SecretString,
}

/// `{code}`: the code the authenticator app shows now.
#[derive(Deserialize, ToSchema)]
pub struct TotpCode {
    #[serde(default)]
    #[schema(required = true, min_length = 1, example = "123456")]
    pub code: String,
}

/// `{password, code}`: the password, and a code of the app or a recovery code.
#[derive(Deserialize, ToSchema)]
pub struct TotpRemoval {
    #[serde(default)]
    #[schema(value_type = String, required = true, format = Password, min_length = 1)]
    pub password: SecretString,
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    pub code: String,
}

/// `{mfa_token, code}` or `{mfa_token, ceremony, credential}`: the second step of a sign-in.
#[derive(Deserialize, ToSchema)]
pub struct SecondStep {
    /// From the `403` that `POST /auth/login` answered.
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    pub mfa_token: String,
    /// The code the user's authenticator app shows now, or one of their recovery codes.
    #[serde(default)]
    #[schema(required = false, example = "123456")]
    pub code: Option<String>,
    /// With a passkey: the `ceremony` of the `403`.
    #[serde(default)]
    #[schema(required = false)]
    pub ceremony: Option<String>,
    /// With a passkey: `AuthenticationResponseJSON`, the answer to the `403`'s `publicKey`.
    #[serde(default)]
    #[schema(value_type = Option<Object>, required = false)]
    pub credential: Option<serde_json::Value>,
    /// The `device_token` of an earlier sign-in to this account, as `POST /auth/login` takes it:
    /// strangers' wrong codes (the per-username limit) then do not keep this client out.
    #[serde(default)]
    #[schema(required = false)]
    pub device_token: Option<String>,
}

/// A new authenticator-app secret, not on until `POST /auth/totp/confirm`.
#[derive(Serialize, ToSchema)]
pub struct TotpSetupOut {
    /// The secret, base32, for typing into the app.
    pub secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_uri: String,
}

/// Recovery codes: shown this once; each works once in place of the app's code.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// Start setting up an authenticator app, behind the password: a new secret, waiting for its
/// first code (it replaces one waiting already).
#[utoipa::path(
    post, path = "/auth/totp", tag = "account",
    security(("bearer" = [])),
    request_body = PasswordConfirmation,
    responses(
        JsonBody, AuthenticatedChange, Database, Throttled,
        (status = 200, description = "The secret, waiting for its first code", body = TotpSetupOut),
        TotpSetupRefusals,
    )
)]
#[rocket::post("/auth/totp", data = "<body>")]
pub async fn begin_totp(
    user: ApiUser,
    accounts: &State<Accounts>,
    body: ApiJson<PasswordConfirmation>,
    client: Client,
) -> Result<NoStore<Json<TotpSetupOut>>> {
    let TotpSetup { secret, otpauth_uri } = accounts.begin_totp(&user, &body.0.password, &client).await?;
    Ok(NoStore::new(Json(TotpSetupOut { secret, otpauth_uri })))
}

/// Turn two-step sign-in on with the first code of the app: the recovery codes, shown once.
#[utoipa::path(
    post, path = "/auth/totp/confirm", tag = "account",
    security(("bearer" = [])),
    request_body = TotpCode,
    responses(
        JsonBody, AuthenticatedChange, Database,
        (status = 200, description = "Two-step sign-in is on", body = RecoveryCodes),
        TotpConfirmRefusals,
    )
)]
#[rocket::post("/auth/totp/confirm", data = "<body>")]
pub async fn confirm_totp(
    user: ApiUser,
    accounts: &State<Accounts>,
    body: ApiJson<TotpCode>,
    client: Client,
) -> Result<NoStore<Json<RecoveryCodes>>> {
    let recovery_codes = accounts.confirm_totp(&user, &body.0.code, &client).await?;
    Ok(NoStore::new(Json(RecoveryCodes { recovery_codes })))
}

/// Turn two-step sign-in off, behind the password and a code of the app or a recovery code:
/// the secret and the recovery codes go.
#[utoipa::path(
    delete, path = "/auth/totp", tag = "account",
    security(("bearer" = [])),
    request_body = TotpRemoval,
    responses(
        JsonBody, AuthenticatedChange, Database, Throttled,
        (status = 204, description = "Two-step sign-in is off"),
        TotpDisableRefusals,
    )
)]
#[rocket::delete("/auth/totp", data = "<body>")]
pub async fn disable_totp(
    user: ApiUser,
    accounts: &State<Accounts>,
    body: ApiJson<TotpRemoval>,
    client: Client,
) -> Result<Status> {
    let TotpRemoval { password, code } = body.0;
    accounts.disable_totp(&user, &password, &code, &client).await?;
    Ok(Status::NoContent)
}

/// New recovery codes, behind the password; the old ones stop working.
#[utoipa::path(
    post, path = "/auth/recovery-codes", tag = "account",
    security(("bearer" = [])),
    request_body = PasswordConfirmation,
    responses(
        JsonBody, AuthenticatedChange, Database, Throttled,
        (status = 200, description = "The new recovery codes", body = RecoveryCodes),
        RecoveryCodeRefusals,
    )
)]
#[rocket::post("/auth/recovery-codes", data = "<body>")]
pub async fn replace_recovery_codes(
    user: ApiUser,
    accounts: &State<Accounts>,
    body: ApiJson<PasswordConfirmation>,
    client: Client,
) -> Result<NoStore<Json<RecoveryCodes>>> {
    let recovery_codes = accounts.replace_recovery_codes(&user, &body.0.password, &client).await?;
    Ok(NoStore::new(Json(RecoveryCodes { recovery_codes })))
}

/// Finish a sign-in that needs a second factor: the `mfa_token` of `POST /auth/login`'s `403`
/// and a code of the user's app (or a recovery code), or a passkey's answer to the `403`'s
/// `ceremony` and `publicKey`. Answers as a sign-in does. A wrong code
/// counts as a failed sign-in; a token takes at most 5 wrong codes and lives 5 minutes.
#[utoipa::path(
    post, path = "/auth/login/second-factor", tag = "auth",
    request_body = SecondStep,
    responses(
        JsonBody, Database, IssuedTokens, Throttled,
        SecondStepRefusals,
    )
)]
#[rocket::post("/auth/login/second-factor", data = "<body>")]
pub async fn second_factor(
    accounts: &State<Accounts>,
    body: ApiJson<SecondStep>,
    mut client: Client,
) -> Result<NoStore<Json<TokenResponse>>> {
    let SecondStep { mfa_token, code, ceremony, credential, device_token } = body.0;
    client.device_tokens.extend(device_token);
    // A passkey's answer when there is one, else the code.
    let proof = match &credential {
        Some(credential) => Proof::Passkey { ceremony: ceremony.as_deref().unwrap_or_default(), credential },
        None => Proof::Code(code.as_deref().unwrap_or_default()),
    };
    let mut issued = accounts.finish_sign_in(&mfa_token, proof, &client).await?;
    let device_token = std::mem::take(&mut issued.device_token);
    Ok(TokenResponse::new(issued, accounts, Some(device_token)))
}
