//! CSRF protection by a signed double-submit token bound to the session: a random value in an
//! `HttpOnly` cookie, and in each form the HMAC, under the server's key, of that value and of
//! the session the browser is signed in with. A forged request can send the cookie but cannot
//! read it; and a cookie and token an attacker obtained for themselves and planted in a
//! victim's browser (from a sibling subdomain, or over plain http) name no session, or the
//! attacker's, never the victim's: they are refused. With `Secure` cookies the cookie's name
//! carries the `__Host-` prefix, which browsers accept only from this very host over https,
//! so a sibling subdomain cannot set it at all.
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

use super::{AuthService, MacKey, TOKEN_COOKIE};
use crate::error::{Error, Result};

/// Name of the cookie that holds the visitor's CSRF secret…
pub const CSRF_COOKIE: &str = "miniauth_csrf";
/// …and its name when cookies are `Secure`: only this host, over https, may set it.
pub const SECURE_CSRF_COOKIE: &str = "__Host-miniauth_csrf";

/// The CSRF cookie's name with these cookie settings.
pub fn csrf_cookie_name(secure: bool) -> &'static str {
    match secure {
        true => SECURE_CSRF_COOKIE,
        false => CSRF_COOKIE,
    }
}
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
    /// What the token signs: the cookie's value and the session it is bound to.
    bound: String,
}

impl CsrfToken {
    /// The value for the hidden `csrf_token` field (or the `X-CSRF-Token` header).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Checks a submitted token against the cookie in constant time.
    pub fn verify(&self, submitted: &str, key: &CsrfKey) -> Result<()> {
        let submitted = URL_SAFE_NO_PAD.decode(submitted.trim()).map_err(|_| Error::Csrf)?;
        key.0.mac(&self.bound).verify_slice(&submitted).map_err(|_| Error::Csrf)
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

/// The token of this request: computed once, after the guards that may renew the session's
/// cookie (a form is shown, and checked, with the session the browser carries from then on).
fn csrf_token(req: &Request<'_>) -> Result<CsrfToken> {
    let auth = req.rocket().state::<AuthService>().ok_or_else(|| Error::internal("auth service missing"))?;
    let name = csrf_cookie_name(auth.cookie_secure);
    let existing = req.cookies().get(name).map(|c| c.value().to_owned());
    let cookie_value = match existing.filter(|v| v.len() == 43) {
        Some(value) => value,
        None => {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let value = URL_SAFE_NO_PAD.encode(bytes);
            req.cookies().add(
                Cookie::build((name, value.clone()))
                    .http_only(true)
                    .same_site(SameSite::Lax)
                    .path("/")
                    .secure(auth.cookie_secure),
            );
            value
        }
    };
    let bound = format!("{cookie_value}\n{}", session_of(req, auth));
    let token = auth.csrf.0.tag(&bound);
    Ok(CsrfToken { token, bound })
}

/// The session the browser is signed in with: the `sid` of its access cookie (as renewed by
/// this request, if it was), when the server signed that token (expired or not: the session
/// is what counts); `""` when it carries none.
fn session_of(req: &Request<'_>, auth: &AuthService) -> String {
    let token = req.cookies().get_pending(TOKEN_COOKIE);
    token.and_then(|cookie| auth.tokens.session_of(cookie.value(), crate::store::now())).unwrap_or_default()
}
