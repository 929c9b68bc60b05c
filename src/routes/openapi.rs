//! The OpenAPI 3.1 description served at `/openapi.json`. Each failure that a guard or a body
//! type can cause is documented once, here, as a response set; a route lists the sets of the
//! guards it takes, then its own answers (a later entry for the same status wins).

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Object, ObjectBuilder, Ref, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::errors::Problem;
use crate::auth::{registration_closed, Registration};
use crate::domain::{
    username_pattern, PasswordPolicy, EMAIL_MAX, PASSWORD_MAX_BYTES, USERNAME_MAX, USERNAME_MIN,
};
use crate::error::{Error, FieldErrors};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MiniAuth",
        description = "Username + password authentication. Errors are RFC 9457 problem details \
                       (`application/problem+json`)."
    ),
    paths(
        super::api::register,
        super::api::login,
        super::api::refresh,
        super::api::profile,
        super::api::logout,
        super::account_api::change_password,
        super::account_api::delete_account,
        super::account_api::sessions,
        super::account_api::revoke_session,
        super::account_api::events,
        super::second_factor_api::begin_totp,
        super::second_factor_api::confirm_totp,
        super::second_factor_api::disable_totp,
        super::second_factor_api::replace_recovery_codes,
        super::second_factor_api::second_factor,
        super::passkey_api::begin_registration,
        super::passkey_api::finish_registration,
        super::passkey_api::list,
        super::passkey_api::remove,
        super::passkey_api::begin_sign_in,
        super::passkey_api::finish_sign_in,
        super::recovery_api::set_email,
        super::recovery_api::remove_email,
        super::recovery_api::confirm_email,
        super::recovery_api::request_reset,
        super::recovery_api::confirm_reset,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        super::wellknown::jwks,
        super::wellknown::openid_configuration,
        super::oauth::token,
        super::oauth::userinfo,
        super::oauth::userinfo_post,
        super::oauth::revoke,
        super::oauth::apps,
        super::oauth::revoke_app,
    ),
    components(schemas(
        Problem,
        super::api::TokenResponse,
        super::api::LogoutScope,
        super::oauth::TokenFormDoc,
        super::oauth::TokenResponseDoc,
        super::oauth::RevokeFormDoc,
        super::oauth::AppView
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign up, sign in, tokens"),
        (name = "account", description = "The signed-in user's password, account and sessions"),
        (name = "passkeys", description = "Passkeys (WebAuthn): adding them, and signing in with one alone"),
        (name = "recovery", description = "The email address, and password reset links mailed to it"),
        (name = "operations", description = "Health checks"),
        (name = "keys", description = "The public keys that verify access tokens and ID tokens, and OpenID Connect discovery"),
        (name = "openid-connect", description = "\"Sign in with MiniAuth\": the endpoints apps call (the browser's are pages: \
            `/oauth/authorize`, `/oauth/logout`)"),
    ),
)]
pub struct ApiDoc;

/// The document as served: the username and new-password rules written in from the domain's
/// constants and the password settings, and sign-up as the `registration` setting has it.
pub fn document(policy: &PasswordPolicy, registration: Registration) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    FieldRules(*policy).modify(&mut document);
    match registration {
        Registration::Open => {}
        Registration::Invite => invite_only(&mut document),
        Registration::Closed => close_sign_up(&mut document),
    }
    document
}

/// With registration by invitation, `POST /auth/register` needs `invite`.
fn invite_only(document: &mut utoipa::openapi::OpenApi) {
    if let Some(operation) =
        document.paths.paths.get_mut("/auth/register").and_then(|item| item.post.as_mut())
    {
        operation.description = Some(
            "Sign-up on this server is by invitation: `invite` is the token of an invitation's link \
             (`/register?invite=<token>`, made by `miniauth invite create`), spent by the sign-up."
                .into(),
        );
    }
    let schema =
        document.components.as_mut().and_then(|components| components.schemas.get_mut("NewCredentials"));
    if let Some(RefOr::T(Schema::Object(object))) = schema {
        object.required.push("invite".into());
    }
}

/// With registration closed, `POST /auth/register` answers `403` to every readable body: its
/// other answers go, the body's own refusals stay.
fn close_sign_up(document: &mut utoipa::openapi::OpenApi) {
    let Some(operation) = document.paths.paths.get_mut("/auth/register").and_then(|item| item.post.as_mut())
    else {
        return;
    };
    // The body's own refusals, as they read for any body (its fields are never checked
    // against the sign-up rules), and the one answer to a readable body.
    let mut responses = JsonBody::responses();
    responses.extend(set([refusal(registration_closed(), "Sign-up is closed on this server")]));
    operation.responses.responses = responses;
    operation.description = Some(
        "Sign-up is closed on this server: accounts are created by its administrator \
         (`miniauth user create`)."
            .into(),
    );
}

/// Writes the username rule and the new-password rules into every field that carries them:
/// `format: username` and `format: bcrypt-password`.
pub struct FieldRules(pub PasswordPolicy);

impl FieldRules {
    fn apply(&self, field: &mut Object) {
        let Some(SchemaFormat::Custom(format)) = &field.format else { return };
        match format.as_str() {
            "username" => {
                field.min_length = Some(USERNAME_MIN);
                field.max_length = Some(USERNAME_MAX);
                field.pattern = Some(format!("^{}$", username_pattern()));
                field.description = Some(format!(
                    "{USERNAME_MIN}–{USERNAME_MAX} characters of `A–Z a–z 0–9 _ . -`, unique \
                     regardless of case, kept as typed."
                ));
            }
            "bcrypt-password" => {
                let min = self.0.min_length;
                // JSON Schema counts characters: the bounds the byte rule implies (a character
                // is at most 4 bytes).
                field.min_length = Some(min.div_ceil(4));
                field.max_length = Some(PASSWORD_MAX_BYTES);
                field.description = Some(format!(
                    "{min}–{PASSWORD_MAX_BYTES} **bytes** of UTF-8 (bcrypt's limit: accented letters \
                     and symbols count as several), not the username in any case. JSON Schema \
                     counts characters, so `minLength` and `maxLength` are only the bounds the byte \
                     rule implies."
                ));
            }
            _ => {}
        }
    }
}

impl Modify for FieldRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.iter_mut().flat_map(|c| c.schemas.values_mut());
        let bodies = openapi.paths.paths.values_mut().flat_map(|item| {
            let operations =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            operations.into_iter().flatten().filter_map(|operation| match &mut operation.request_body {
                Some(RefOr::T(body)) => Some(body.content.values_mut()),
                _ => None,
            })
        });
        let bodies = bodies.flatten().filter_map(|content| match content {
            RefOr::T(content) => content.schema.as_mut(),
            RefOr::Ref(_) => None,
        });
        for schema in components.chain(bodies) {
            if let RefOr::T(Schema::Object(object)) = schema {
                for field in object.properties.values_mut() {
                    if let RefOr::T(Schema::Object(field)) = field {
                        self.apply(field);
                    }
                }
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        // An app's id and secret at the token and revocation endpoints (client_secret_basic).
        components.add_security_scheme(
            "client_secret_basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// A problem+json answer.
fn problem(description: &str) -> ResponseBuilder {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
    ResponseBuilder::new().description(description).content("application/problem+json", content)
}

/// A response header whose value is text.
fn header(response: ResponseBuilder, name: &str, description: &str) -> ResponseBuilder {
    let text = ObjectBuilder::new().schema_type(Type::String);
    response.header(name, HeaderBuilder::new().schema(Some(text)).description(Some(description)).build())
}

fn set(responses: impl IntoIterator<Item = (u16, ResponseBuilder)>) -> BTreeMap<String, RefOr<Response>> {
    responses.into_iter().map(|(status, response)| (status.to_string(), response.build().into())).collect()
}

/// An error's row: its status is the one [`Error::status`] gives it, so the document and the
/// answer cannot drift apart.
fn refusal(error: Error, description: &str) -> (u16, ResponseBuilder) {
    (error.status().code, problem(description))
}

/// Every row of a set that is errors only.
fn refusals<const N: usize>(rows: [(Error, &str); N]) -> BTreeMap<String, RefOr<Response>> {
    set(rows.map(|(error, description)| refusal(error, description)))
}

fn unauthorized() -> (u16, ResponseBuilder) {
    let (status, response) =
        refusal(Error::Unauthenticated { invalid_token: true }, "Missing, invalid, expired or revoked token");
    let challenge = "`Bearer`, plus `error=\"invalid_token\"` when a token was sent but is not valid";
    (status, header(response, "WWW-Authenticate", challenge))
}

/// A JSON body ([`super::body::ApiJson`]): every way it can be unreadable.
pub struct JsonBody;

impl IntoResponses for JsonBody {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refusals([
            (Error::BadRequest(String::new()), "Malformed JSON"),
            (Error::PayloadTooLarge, "Body too large (the limit is 16 KiB)"),
            (Error::UnsupportedMediaType(String::new()), "Body is not JSON"),
            (Error::Validation(FieldErrors::new()), "Missing fields, or fields of the wrong type"),
        ])
    }
}

/// [`crate::auth::ApiUser`] on a read.
pub struct Authenticated;

impl IntoResponses for Authenticated {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set([unauthorized()])
    }
}

/// [`crate::auth::ApiUser`] on a change: the cookie needs the CSRF header too.
pub struct AuthenticatedChange;

impl IntoResponses for AuthenticatedChange {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set([unauthorized(), refusal(Error::Csrf, "Cookie-authenticated call without a valid X-CSRF-Token")])
    }
}

/// Anything that reads or writes the database.
pub struct Database;

impl IntoResponses for Database {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let (status, response) = refusal(Error::Unavailable, "The database is unavailable");
        set([(status, header(response, "Retry-After", "Seconds to wait before trying again"))])
    }
}

/// `200` with new tokens, which are never cached.
pub struct IssuedTokens;

impl IntoResponses for IssuedTokens {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("TokenResponse"))).build();
        let response = ResponseBuilder::new().description("New tokens").content("application/json", body);
        let response = header(response, "Cache-Control", "`no-store`: the token is never cached");
        set([(200, header(response, "Pragma", "`no-cache`, for HTTP/1.0 caches"))])
    }
}

/// A password check or a sign-up, which the throttle may refuse.
pub struct Throttled;

impl IntoResponses for Throttled {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let (status, response) = refusal(
            Error::TooManyAttempts { retry_after: 0 },
            "Too many failed password checks (or sign-ups) from this client or for this account; a request sent as \
             the OAuth2 form also gets `error`: `slow_down`",
        );
        set([(status, header(response, "Retry-After", "Seconds until the block ends"))])
    }
}

/// A route's own refusals, each row an [`Error`] (whose status it takes) and what it means there.
macro_rules! refusal_set {
    ($(#[$doc:meta])* $name:ident { $($error:expr => $description:expr),+ $(,)? }) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                refusals([$(($error, $description)),+])
            }
        }
    };
}

/// An OAuth error row: `error` names the code, `error_description` says why.
fn oauth(error: &'static str) -> Error {
    Error::OAuth { error, description: String::new() }
}

refusal_set!(
    /// The form of an OpenID Connect endpoint ([`super::body::OAuthForm`]) and the client's
    /// authentication.
    OAuthClientForm {
        oauth("invalid_request") =>
            "`error`: `invalid_request` (not a form, or a field missing), with `error_description`",
        Error::PayloadTooLarge => "Body too large (the limit is 16 KiB)",
        oauth("invalid_client") =>
            "`error`: `invalid_client`: an unknown app, a wrong or missing secret, a secret sent two ways \
             (`WWW-Authenticate: Basic`)",
    }
);

refusal_set!(
    /// `POST /oauth/token`.
    TokenRefusals {
        oauth("invalid_grant") =>
            "`error`: `invalid_grant` (a code or refresh token unknown, spent, expired or another app's; a \
             `redirect_uri` or `code_verifier` that does not match), `invalid_request` (a field missing), \
             `unsupported_grant_type` or `invalid_scope`, with `error_description`",
    }
);

refusal_set!(
    /// `DELETE /auth/apps/{client_id}`.
    AppRefusals {
        Error::NotFound => "The user had not allowed this app",
    }
);

refusal_set!(
    /// `POST /auth/register`.
    SignUpRefusals {
        Error::UsernameTaken => "Username taken (compared case-insensitively)",
        Error::Validation(FieldErrors::new()) => "Invalid fields",
        Error::Forbidden(String::new()) =>
            "An invitation that cannot be used (unknown, used, expired or revoked), or none where sign-up needs one",
    }
);

refusal_set!(
    /// `POST /auth/login`.
    SignInRefusals {
        Error::InvalidCredentials => "Invalid username or password",
        Error::SecondFactorRequired { mfa_token: String::new(), methods: Vec::new(), passkey: None } =>
            "The password is right and the user has a second factor: `mfa_token` and `methods` say how to finish \
             (`POST /auth/login/second-factor`), with `ceremony` and `publicKey` when `methods` lists `passkey`; \
             `error` is `mfa_required`",
        Error::UnsupportedMediaType(String::new()) => "Neither JSON nor a form",
        Error::Validation(FieldErrors::new()) => "JSON: missing fields, or a `grant_type` other than `password`",
        oauth("invalid_grant") => OAUTH2_FORM_REFUSALS,
    }
);

/// What the `400` of `POST /auth/login` and `POST /auth/refresh` covers: malformed JSON, and
/// every refusal of a request sent as the OAuth2 form.
const OAUTH2_FORM_REFUSALS: &str =
    "Malformed JSON. A request sent as the OAuth2 form gets its refusals as OAuth2 \
     client libraries read them (RFC 6749 §5.2), `error` and `error_description` beside the problem: \
     `invalid_grant` (a wrong username or password, a refresh token unknown, used or revoked), \
     `invalid_request` (a field missing, a form that cannot be read) or `unsupported_grant_type`; its `429` \
     has `error` `slow_down`, its `503` `temporarily_unavailable`";

refusal_set!(
    /// `POST /auth/totp`.
    TotpSetupRefusals {
        Error::WrongPassword("password") =>
            "Wrong password (`errors.password`), or a cookie-authenticated call without X-CSRF-Token",
        Error::Conflict(String::new()) => "Two-step sign-in is on already",
        Error::Validation(FieldErrors::new()) => "A missing field",
    }
);

refusal_set!(
    /// `POST /auth/totp/confirm`.
    TotpConfirmRefusals {
        Error::Conflict(String::new()) => "No authenticator app is waiting for its first code",
        Error::Validation(FieldErrors::new()) => "A wrong code (`errors.code`), or a missing field",
    }
);

refusal_set!(
    /// `DELETE /auth/totp`.
    TotpDisableRefusals {
        Error::WrongPassword("password") =>
            "Wrong password (`errors.password`), or a cookie-authenticated call without X-CSRF-Token",
        Error::NotFound => "Two-step sign-in is off",
        Error::Validation(FieldErrors::new()) => "A wrong code (`errors.code`), or a missing field",
    }
);

refusal_set!(
    /// `POST /auth/recovery-codes`.
    RecoveryCodeRefusals {
        Error::WrongPassword("password") =>
            "Wrong password (`errors.password`), or a cookie-authenticated call without X-CSRF-Token",
        Error::Conflict(String::new()) => "Two-step sign-in is off",
        Error::Validation(FieldErrors::new()) => "A missing field",
    }
);

refusal_set!(
    /// `POST /auth/login/second-factor`.
    SecondStepRefusals {
        Error::InvalidCode =>
            "A wrong code, a refused passkey, an unknown or expired ceremony, or a sign-in that expired, was \
             finished or had too many wrong codes",
        Error::Validation(FieldErrors::new()) =>
            "A missing field: `code`, or with a passkey's `credential` its `ceremony`",
    }
);

/// Passkey routes on a server whose `public_url` cannot carry passkeys.
pub struct PasskeyOff;

impl IntoResponses for PasskeyOff {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refusals([(
            Error::Forbidden(String::new()),
            "Passkeys are off on this server (`public_url` names an IP address, or plain http on a host \
             other than localhost), or a cookie-authenticated call without X-CSRF-Token",
        )])
    }
}

refusal_set!(
    /// `POST /auth/passkeys/register/finish`.
    PasskeyRegistrationRefusals {
        Error::BadRequest(String::new()) => "Malformed JSON, or an unknown, answered or expired ceremony",
        Error::Validation(FieldErrors::new()) =>
            "An answer that is refused: not a registration response, another site's origin, another \
             challenge, no user verification (`errors.credential`), a bad name (`errors.name`), or a missing \
             field",
        Error::Conflict(String::new()) => "This passkey is registered already",
    }
);

refusal_set!(
    /// `DELETE /auth/passkeys/{id}`.
    PasskeyRemovalRefusals {
        Error::WrongPassword("password") =>
            "Wrong password (`errors.password`), or a cookie-authenticated call without X-CSRF-Token",
        Error::NotFound => "The user has no passkey with this id",
        Error::Validation(FieldErrors::new()) => "A missing field",
    }
);

refusal_set!(
    /// `POST /auth/passkeys/login/finish`.
    PasskeySignInRefusals {
        Error::PasskeyRefused("") =>
            "A passkey not registered here, a wrong signature, another site's answer, a counter that went \
             backwards, or an unknown, answered or expired ceremony",
        Error::Validation(FieldErrors::new()) => "A missing field",
    }
);

refusal_set!(
    /// `POST /auth/refresh`.
    RefreshRefusals {
        Error::InvalidRefreshToken => "JSON: unknown, used or revoked refresh token",
        Error::UnsupportedMediaType(String::new()) => "Neither JSON nor a form",
        oauth("invalid_grant") => OAUTH2_FORM_REFUSALS,
    }
);

refusal_set!(
    /// `POST /auth/logout`.
    LogoutRefusals {
        Error::Validation(FieldErrors::new()) => "Unknown scope",
    }
);

refusal_set!(
    /// `POST /auth/password`.
    PasswordChangeRefusals {
        Error::WrongPassword("current_password") =>
            "Wrong current password (`errors.current_password`), or a cookie-authenticated call without X-CSRF-Token",
        Error::Validation(FieldErrors::new()) => "A new password that breaks the rules, or a missing field",
    }
);

refusal_set!(
    /// `DELETE /auth/account`.
    DeletionRefusals {
        Error::WrongPassword("password") =>
            "Wrong password (`errors.password`), or a cookie-authenticated call without X-CSRF-Token",
    }
);

refusal_set!(
    /// `DELETE /auth/sessions/{id}`.
    SessionRefusals {
        Error::NotFound => "The user has no live session with this id",
    }
);

refusal_set!(
    /// `PUT /auth/email`.
    EmailRefusals {
        Error::Validation(FieldErrors::new()) => &format!("Not an email address, or longer than {EMAIL_MAX} characters"),
    }
);

refusal_set!(
    /// `POST /auth/email/confirm`.
    ConfirmationRefusals {
        Error::InvalidLink => "Unknown, used or expired token, or an address changed since",
        Error::EmailTaken => "Another account confirmed this address first",
    }
);

refusal_set!(
    /// `POST /auth/password-reset`.
    ResetRequestRefusals {
        Error::Validation(FieldErrors::new()) => "Neither `username` nor `email`, or both",
    }
);

refusal_set!(
    /// `POST /auth/password-reset/confirm`.
    ResetRefusals {
        Error::InvalidLink => "Unknown, used or expired token",
        Error::Validation(FieldErrors::new()) => "A new password that breaks the rules",
    }
);
