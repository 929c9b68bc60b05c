//! The CSRF cookie and token of a request (see `auth::CsrfKey` for the rule). No handler checks
//! a token itself: a page's form arrives as `routes::body::CsrfForm`, a data guard that refuses
//! the request (403) before the handler runs, and the JSON API's [`super::ApiUser`] asks for the
//! `X-CSRF-Token` header whenever the cookie authenticates a state change.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use rocket::http::{Cookie, SameSite};
use rocket::request::{FromRequest, Outcome, Request};

use super::{state, SessionCookies, TOKEN_COOKIE};
use crate::auth::{Accounts, CsrfKey};
use crate::error::{Error, Result};

/// Name of the cookie that holds the visitor's CSRF secret…
pub const CSRF_COOKIE: &str = "miniauth_csrf";
/// …and its name when cookies are `Secure`: only this host, over https, may set it.
pub const SECURE_CSRF_COOKIE: &str = "__Host-miniauth_csrf";
/// Header carrying the token on JSON requests authenticated by the cookie.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// The CSRF cookie's name with these cookie settings.
pub fn csrf_cookie_name(secure: bool) -> &'static str {
    match secure {
        true => SECURE_CSRF_COOKIE,
        false => CSRF_COOKIE,
    }
}

/// The visitor's CSRF secret (its cookie is set on first sight) and the token forms carry.
#[derive(Clone)]
pub struct CsrfToken {
    token: String,
    /// The cookie's value.
    secret: String,
    /// The session the token is bound to.
    session: String,
}

impl CsrfToken {
    /// The value for the hidden `csrf_token` field (or the `X-CSRF-Token` header).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Checks a submitted token against the cookie and the session, in constant time.
    pub fn verify(&self, submitted: &str, key: &CsrfKey) -> Result<()> {
        key.verify(&self.secret, &self.session, submitted)
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
    let secure = state::<SessionCookies>(req)?.scope.secure;
    let (key, accounts) = (state::<CsrfKey>(req)?, state::<Accounts>(req)?);
    let name = csrf_cookie_name(secure);
    let existing = req.cookies().get(name).map(|c| c.value().to_owned());
    let secret = match existing.filter(|v| v.len() == 43) {
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
                    .secure(secure),
            );
            value
        }
    };
    // The session the browser is signed in with: the `sid` of its access cookie (as renewed by
    // this request, if it was), when the server signed that token (expired or not: the session
    // is what counts); `""` when it carries none.
    let access = req.cookies().get_pending(TOKEN_COOKIE);
    let session = access
        .and_then(|cookie| accounts.tokens().session_of(cookie.value(), crate::store::now()))
        .unwrap_or_default();
    let token = key.token(&secret, &session);
    Ok(CsrfToken { token, secret, session })
}
