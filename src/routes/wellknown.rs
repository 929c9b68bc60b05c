//! What other services need to verify MiniAuth's tokens without asking it: the public keys
//! (JWKS, RFC 7517) and the OpenID Connect discovery document, which names them and every
//! endpoint of "Sign in with MiniAuth".

use rocket::http::Header;
use rocket::serde::json::{json, Value};
use rocket::State;

use crate::auth::{Accounts, Provider};
use crate::config::Settings;
use crate::domain::oauth::{CLAIMS, SCOPES};
use crate::error::Error;

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![jwks, openid_configuration]
}

/// A public document, which verifiers may cache for `jwks_cache_seconds`.
#[derive(rocket::Responder)]
#[response(content_type = "json")]
pub struct Published {
    body: String,
    cache_control: Header<'static>,
}

impl Published {
    fn new(body: String, settings: &Settings) -> Self {
        let cache_control = format!("public, max-age={}", settings.tokens.jwks_cache.as_secs());
        Published { body, cache_control: Header::new("Cache-Control", cache_control) }
    }
}

/// The public keys that verify access tokens and ID tokens: per algorithm, the one signing now,
/// the one that signs after the next rotation, and retired ones whose tokens may not have
/// expired. Access tokens' `HS256` keys are secret and never here; the ID tokens' RS256 keys
/// are, once an app is registered.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "The key set; `Cache-Control: public, max-age=600`", body = Object,
        example = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "alg": "EdDSA", "use": "sig"}]}))))]
#[rocket::get("/.well-known/jwks.json")]
pub async fn jwks(
    accounts: &State<Accounts>,
    provider: &State<Provider>,
    settings: &State<Settings>,
) -> Result<Published, Error> {
    let access = &accounts.tokens().keys;
    let mut keys = access.keys().published.clone();
    keys.extend(provider.published_keys().await?);
    Ok(Published::new(json!({ "keys": keys }).to_string(), settings))
}

/// OpenID Connect Discovery: the issuer (`public_url`), the key set and every endpoint, with
/// what each supports, as a "Basic OP" publishes them.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "keys",
    responses((status = 200, description = "The provider's metadata", body = Object,
        example = json!({"issuer": "https://auth.example.com", "jwks_uri": "https://auth.example.com/.well-known/jwks.json",
            "authorization_endpoint": "https://auth.example.com/oauth/authorize", "token_endpoint": "https://auth.example.com/oauth/token"}))))]
#[rocket::get("/.well-known/openid-configuration")]
pub fn openid_configuration(settings: &State<Settings>) -> Published {
    let at = |path: &str| settings.public_url.at(path);
    let document: Value = json!({
        "issuer": settings.public_url.to_string(),
        "jwks_uri": at("/.well-known/jwks.json"),
        "authorization_endpoint": at("/oauth/authorize"),
        "token_endpoint": at("/oauth/token"),
        "userinfo_endpoint": at("/oauth/userinfo"),
        "revocation_endpoint": at("/oauth/revoke"),
        "end_session_endpoint": at("/oauth/logout"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    });
    Published::new(document.to_string(), settings)
}
