//! What other services need to verify MiniAuth's access tokens without asking it: the public
//! keys (JWKS, RFC 7517) and the discovery document that points to them.

use rocket::http::Header;
use rocket::serde::json::{json, Value};
use rocket::State;

use crate::auth::Accounts;
use crate::config::Settings;

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

/// The public keys that verify access tokens: the one signing now, the one that signs after the
/// next rotation, and retired ones whose tokens may not have expired. Empty with `HS256`,
/// whose keys are secret.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "The key set; `Cache-Control: public, max-age=600`", body = Object,
        example = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "alg": "EdDSA", "use": "sig"}]}))))]
#[rocket::get("/.well-known/jwks.json")]
pub fn jwks(accounts: &State<Accounts>, settings: &State<Settings>) -> Published {
    Published::new(accounts.tokens().keys.keys().jwks.to_string(), settings)
}

/// Where the key set is, for libraries that discover it (OpenID Connect Discovery).
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "keys",
    responses((status = 200, description = "`issuer` and `jwks_uri`", body = Object,
        example = json!({"issuer": "miniauth", "jwks_uri": "https://auth.example.com/.well-known/jwks.json"}))))]
#[rocket::get("/.well-known/openid-configuration")]
pub fn openid_configuration(settings: &State<Settings>) -> Published {
    let document: Value = json!({
        "issuer": settings.tokens.issuer,
        "jwks_uri": settings.public_url.at("/.well-known/jwks.json"),
    });
    Published::new(document.to_string(), settings)
}
