//! The OpenAPI 3.1 description served at `/openapi.json`. Each failure that a guard or a body
//! type can cause is documented once, here, as a response set; a route lists the sets of the
//! guards it takes, then its own answers (a later entry for the same status wins).

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Ref, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::errors::Problem;

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
        super::recovery_api::set_email,
        super::recovery_api::remove_email,
        super::recovery_api::confirm_email,
        super::recovery_api::request_reset,
        super::recovery_api::confirm_reset,
        super::ops::healthz,
        super::ops::readyz,
        super::wellknown::jwks,
        super::wellknown::openid_configuration,
    ),
    components(schemas(Problem, super::api::TokenResponse, super::api::LogoutScope)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign up, sign in, tokens"),
        (name = "account", description = "The signed-in user's password, account and sessions"),
        (name = "recovery", description = "The email address, and password reset links mailed to it"),
        (name = "operations", description = "Health checks"),
        (name = "keys", description = "The public keys that verify access tokens"),
    ),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
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

fn unauthorized() -> (u16, ResponseBuilder) {
    let response = problem("Missing, invalid, expired or revoked token");
    let challenge = "`Bearer`, plus `error=\"invalid_token\"` when a token was sent but is not valid";
    (401, header(response, "WWW-Authenticate", challenge))
}

/// A JSON body ([`super::body::ApiJson`]): every way it can be unreadable.
pub struct JsonBody;

impl IntoResponses for JsonBody {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set([
            (400, problem("Malformed JSON")),
            (413, problem("Body too large (the limit is 16 KiB)")),
            (415, problem("Body is not JSON")),
            (422, problem("Missing fields, or fields of the wrong type")),
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
        set([unauthorized(), (403, problem("Cookie-authenticated call without a valid X-CSRF-Token"))])
    }
}

/// Anything that reads or writes the database.
pub struct Database;

impl IntoResponses for Database {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let retry = header(
            problem("The database is unavailable"),
            "Retry-After",
            "Seconds to wait before trying again",
        );
        set([(503, retry)])
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
        let response =
            problem("Too many failed password checks (or sign-ups) from this client or for this account");
        set([(429, header(response, "Retry-After", "Seconds until the block ends"))])
    }
}
