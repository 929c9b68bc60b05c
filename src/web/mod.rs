//! The Rocket side of authentication, beside the routes: the request guards (who is asking,
//! from where), the session and device cookies, the CSRF cookie and token. Each turns a
//! request into the plain inputs of `auth` and its results back into cookies; no rule is
//! decided here.

mod address;
mod cookies;
mod csrf;
mod guards;

pub use address::{client_address, client_ip, direct_or_trusted, peer};
pub use cookies::{SessionCookies, DEVICE_COOKIE, REFRESH_COOKIE, SECOND_STEP_COOKIE, TOKEN_COOKIE};
pub use csrf::{csrf_cookie_name, CsrfToken, CSRF_COOKIE, CSRF_HEADER, SECURE_CSRF_COOKIE};
pub use guards::{ApiUser, AppToken, BasicClient, ForwardedUser, PageUser};

use rocket::Request;

use crate::error::Error;

/// A state the server manages, for a guard (a missing one is a 500 that logs which).
pub fn state<'r, T: Send + Sync + 'static>(req: &'r Request<'_>) -> Result<&'r T, Error> {
    req.rocket()
        .state::<T>()
        .ok_or_else(|| Error::internal(format!("{} is not managed", std::any::type_name::<T>())))
}
