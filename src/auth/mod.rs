//! Everything about proving who someone is: password hashing, tokens, the request guards,
//! CSRF, and the sign-up / sign-in / sign-out operations shared by the pages and the API.

mod accounts;
mod csrf;
mod guard;
mod password;
mod token;

pub use accounts::{
    change_password, delete_account, refresh, register, sign_in, sign_out, start_session, Renewed, Scope,
    SignedIn,
};
pub use csrf::{CsrfKey, CsrfToken, CSRF_HEADER};
pub use guard::{ApiUser, PageUser, UserAgent};
pub use password::PasswordHasher;
pub use token::{Claims, Tokens};

use rocket::fairing::AdHoc;
use rocket::http::{Cookie, CookieJar, RawStr, SameSite};
use rocket::request::Request;
use secrecy::ExposeSecret;

use crate::config::Settings;

/// Name of the cookie that carries the access token (JWT) in the browser.
pub const TOKEN_COOKIE: &str = "miniauth_token";
/// Name of the cookie that carries the browser's refresh token.
pub const REFRESH_COOKIE: &str = "miniauth_refresh";

/// What the auth code needs at run time, built once from [`Settings`].
pub struct AuthService {
    pub hasher: PasswordHasher,
    pub tokens: Tokens,
    pub csrf: CsrfKey,
    pub session_ttl: i64,
    /// Seconds during which a just-rotated refresh token is still accepted.
    pub refresh_grace: i64,
    pub cookie_secure: bool,
}

impl AuthService {
    /// Sets the browser's cookies: the access token, and the refresh token that renews it.
    /// Both live as long as the session (`max_age` seconds from now).
    pub fn set_cookies(
        &self,
        jar: &CookieJar<'_>,
        access_token: String,
        refresh_token: String,
        max_age: i64,
    ) {
        jar.add(self.cookie(TOKEN_COOKIE, access_token, max_age));
        jar.add(self.cookie(REFRESH_COOKIE, refresh_token, max_age));
    }

    fn cookie(&self, name: &'static str, value: String, max_age: i64) -> Cookie<'static> {
        Cookie::build((name, value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.cookie_secure)
            .max_age(rocket::time::Duration::seconds(max_age))
            .build()
    }

    pub fn clear_cookies(&self, jar: &CookieJar<'_>) {
        jar.remove(Cookie::build(TOKEN_COOKIE).path("/"));
        jar.remove(Cookie::build(REFRESH_COOKIE).path("/"));
    }
}

pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Authentication", |rocket| async move {
        let Some(settings) = rocket.state::<Settings>().cloned() else {
            return Err(rocket);
        };
        let secret = match &settings.token_secret {
            Some(secret) => secret.expose_secret().as_bytes().to_vec(),
            None => return Err(rocket),
        };
        let hasher = match PasswordHasher::new(settings.bcrypt_cost, settings.hash_workers()).await {
            Ok(hasher) => hasher,
            Err(e) => {
                log::error!("cannot start the password hasher: {e:?}");
                return Err(rocket);
            }
        };
        let service = AuthService {
            hasher,
            tokens: Tokens::new(&secret, &settings),
            csrf: CsrfKey::new(&secret),
            session_ttl: settings.session_ttl as i64,
            refresh_grace: settings.refresh_grace as i64,
            cookie_secure: settings.cookie_secure,
        };
        Ok(rocket.manage(service))
    })
}

/// `next` is honoured only for a path on this site: `/x`, never `//x`, `/\x` or `https://…`.
pub fn safe_next(next: &str) -> Option<&str> {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    (local && rocket::http::uri::Origin::parse(next).is_ok()).then_some(next)
}

/// Where a signed-out visitor of a page is sent: the sign-in page, coming back afterwards.
pub fn login_redirect(req: &Request<'_>) -> String {
    let here = req.uri().to_string();
    match req.method() == rocket::http::Method::Get && here != "/" && safe_next(&here).is_some() {
        true => format!("/login?next={}", RawStr::new(&here).percent_encode()),
        false => "/login".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_accepts_only_local_paths() {
        for good in ["/", "/profile", "/profile?tab=1", "/a/b"] {
            assert_eq!(safe_next(good), Some(good));
        }
        for bad in
            ["//evil.com", "https://evil.com", "/\\evil.com", "\\\\evil", "evil", "", "/\t/evil", "/ /x"]
        {
            assert_eq!(safe_next(bad), None, "{bad:?} was accepted");
        }
    }
}
