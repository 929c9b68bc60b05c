//! The browser's session cookies: the access token and the refresh token that renews it, and
//! the device cookie that remembers which accounts this browser signed in to. All `HttpOnly`,
//! `SameSite=Lax`, `Secure` with `cookie_secure`, scoped to `cookie_domain` when it is set.

use rocket::http::{Cookie, CookieJar, SameSite};

use crate::auth::{device, CookieScope, Issued, SignedInUser, ThisSession, DEVICE_TTL};

/// Name of the cookie that carries the access token (JWT) in the browser.
pub const TOKEN_COOKIE: &str = "miniauth_token";
/// Name of the cookie that carries the browser's refresh token.
pub const REFRESH_COOKIE: &str = "miniauth_refresh";
/// Name of the cookie that holds a browser's device tokens.
pub const DEVICE_COOKIE: &str = "miniauth_device";

/// Name of the cookie that binds a sign-in waiting for its second step to the browser that
/// gave the password (the sign-in's token, sent to the code page only).
pub const SECOND_STEP_COOKIE: &str = "miniauth_second_step";
/// The path of the code page, the only one the waiting sign-in's cookie is sent to.
const SECOND_STEP_PATH: &str = "/login/code";

/// Sets and clears the session cookies, in their scope.
pub struct SessionCookies {
    pub scope: CookieScope,
}

impl SessionCookies {
    /// Sets the browser's cookies: the access token, and the refresh token that renews it.
    /// Both live as long as the session.
    pub fn set(&self, jar: &CookieJar<'_>, issued: Issued) {
        let max_age = issued.session_ends - crate::store::now();
        jar.add(self.cookie(TOKEN_COOKIE, issued.access_token, max_age));
        jar.add(self.cookie(REFRESH_COOKIE, issued.refresh_token, max_age));
    }

    /// Remembers, in the browser's device cookie, the sign-in that issued these tokens.
    pub fn remember_device(&self, jar: &CookieJar<'_>, issued: &Issued) {
        let value =
            device::keep(device_tokens(jar), &issued.device_token, issued.user_id, crate::store::now());
        let cookie = Cookie::build((DEVICE_COOKIE, value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.scope.secure)
            .max_age(rocket::time::Duration::seconds(DEVICE_TTL));
        jar.add(cookie.build());
    }

    /// Binds a sign-in waiting for its second step to this browser, for as long as it waits.
    pub fn await_second_step(&self, jar: &CookieJar<'_>, token: String) {
        let cookie = Cookie::build((SECOND_STEP_COOKIE, token))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path(SECOND_STEP_PATH)
            .secure(self.scope.secure)
            .max_age(rocket::time::Duration::seconds(crate::auth::second_factor::PENDING_FOR));
        jar.add(cookie.build());
    }

    /// The sign-in this browser is in the middle of, if any.
    pub fn second_step(&self, jar: &CookieJar<'_>) -> Option<String> {
        jar.get(SECOND_STEP_COOKIE).map(|cookie| cookie.value().to_owned())
    }

    /// Forgets the sign-in this browser was in the middle of (finished, or void).
    pub fn forget_second_step(&self, jar: &CookieJar<'_>) {
        let mut cookie = Cookie::from(SECOND_STEP_COOKIE);
        cookie.set_path(SECOND_STEP_PATH);
        jar.remove(cookie);
    }

    /// The one rule for the browser's cookies after a sign-out, a revocation or a deletion,
    /// whichever door it came through: when the session the cookies carry has ended, they go.
    pub fn forget_ended(&self, jar: &CookieJar<'_>, user: &SignedInUser, this: ThisSession) {
        if user.by_cookie && this == ThisSession::Ended {
            jar.remove(self.scoped(Cookie::from(TOKEN_COOKIE)));
            jar.remove(self.scoped(Cookie::from(REFRESH_COOKIE)));
        }
    }

    fn cookie(&self, name: &'static str, value: String, max_age: i64) -> Cookie<'static> {
        let cookie = Cookie::build((name, value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.scope.secure)
            .max_age(rocket::time::Duration::seconds(max_age));
        self.scoped(cookie.build())
    }

    /// A session cookie in the scope it was set in: `Path=/` and `cookie_domain`, if any (a
    /// removal must name the same scope to reach it).
    fn scoped(&self, mut cookie: Cookie<'static>) -> Cookie<'static> {
        cookie.set_path("/");
        if let Some(domain) = &self.scope.domain {
            cookie.set_domain(domain.clone());
        }
        cookie
    }
}

/// The device tokens a browser's cookie holds.
pub fn device_tokens(jar: &CookieJar<'_>) -> Vec<String> {
    jar.get(DEVICE_COOKIE).map(|cookie| device::kept(cookie.value())).unwrap_or_default()
}
