//! CSRF protection by a signed double-submit token: a random value in an `HttpOnly` cookie,
//! and in each form its HMAC under the server's key. A forged request can send the cookie
//! but cannot read it, and a planted cookie is useless without the key.
//!
//! No handler checks a token itself: a page's form arrives as `routes::body::CsrfForm`, a data
//! guard that refuses the request (403) before the handler runs, and the JSON API's
//! [`super::ApiUser`] asks for the `X-CSRF-Token` header whenever the cookie authenticates a
//! state change.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use rand::RngCore;
use rocket::http::{Cookie, SameSite};
use rocket::request::{FromRequest, Outcome, Request};

use super::{AuthService, MacKey};
use crate::error::{Error, Result};

/// Name of the cookie that holds the visitor's CSRF secret.
pub const CSRF_COOKIE: &str = "miniauth_csrf";
/// Header carrying the token on JSON requests authenticated by the cookie.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

pub struct CsrfKey(MacKey);

impl CsrfKey {
    pub fn new(secret: &[u8]) -> Self {
        CsrfKey(MacKey::derive(secret, b"miniauth csrf key v1"))
    }
}

/// The visitor's CSRF secret (its cookie is set on first sight) and the token forms carry.
#[derive(Clone)]
pub struct CsrfToken {
    token: String,
    cookie_value: String,
}

impl CsrfToken {
    /// The value for the hidden `csrf_token` field (or the `X-CSRF-Token` header).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Checks a submitted token against the cookie in constant time.
    pub fn verify(&self, submitted: &str, key: &CsrfKey) -> Result<()> {
        let submitted = URL_SAFE_NO_PAD.decode(submitted.trim()).map_err(|_| Error::Csrf)?;
        key.0.mac(&self.cookie_value).verify_slice(&submitted).map_err(|_| Error::Csrf)
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CsrfToken {
    type Error = Error;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Error> {
        // Once per request: a second look must not set a second cookie.
        match req.local_cache(|| csrf_token(req)) {
            Ok(token) => Outcome::Success(token.clone()),
            Err(e) => Outcome::Error(e.clone().stash(req)),
        }
    }
}

fn csrf_token(req: &Request<'_>) -> Result<CsrfToken> {
    let auth = req.rocket().state::<AuthService>().ok_or_else(|| Error::internal("auth service missing"))?;
    let existing = req.cookies().get(CSRF_COOKIE).map(|c| c.value().to_owned());
    let cookie_value = match existing.filter(|v| v.len() == 43) {
        Some(value) => value,
        None => {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let value = URL_SAFE_NO_PAD.encode(bytes);
            req.cookies().add(
                Cookie::build((CSRF_COOKIE, value.clone()))
                    .http_only(true)
                    .same_site(SameSite::Lax)
                    .path("/")
                    .secure(auth.cookie_secure),
            );
            value
        }
    };
    let token = auth.csrf.0.tag(&cookie_value);
    Ok(CsrfToken { token, cookie_value })
}
