//! Device tokens: proof that a client has signed in to an account before, so that others'
//! failed guesses at that account's password never lock its owner out (the per-username limit
//! does not hold a known device back). A token is `<user id>.<issued at>.<HMAC>` under a key of
//! its own; browsers keep theirs (one per account, a few accounts) in a long-lived cookie set
//! at each sign-in, API clients get one from `POST /auth/login` and send it back with the next.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use rocket::http::{Cookie, CookieJar, SameSite};

use super::MacKey;

/// Name of the cookie that holds a browser's device tokens.
pub const DEVICE_COOKIE: &str = "miniauth_device";
/// How long a device token vouches for a client: a year.
pub const DEVICE_TTL: i64 = 365 * 24 * 3600;
/// Accounts one browser is remembered for (the most recent sign-ins).
const REMEMBERED: usize = 5;

pub struct DeviceKey(MacKey);

impl DeviceKey {
    pub fn new(secret: &[u8]) -> Self {
        DeviceKey(MacKey::derive(secret, b"miniauth device key v1"))
    }

    /// A token vouching that this client signed in to `user_id` at `now`.
    pub fn issue(&self, user_id: i64, now: i64) -> String {
        let claim = format!("{user_id}.{now}");
        let signature = self.0.tag(&claim);
        format!("{claim}.{signature}")
    }

    /// The account a token vouches for, when it is ours and younger than [`DEVICE_TTL`].
    pub fn user_of(&self, token: &str, now: i64) -> Option<i64> {
        let (claim, signature) = token.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.0.mac(claim).verify_slice(&signature).ok()?;
        let (user_id, issued_at) = claim.split_once('.')?;
        let issued_at: i64 = issued_at.parse().ok()?;
        (now - issued_at < DEVICE_TTL).then(|| user_id.parse().ok()).flatten()
    }

    /// Whether any of `tokens` vouches for `user_id`.
    pub fn knows(&self, tokens: &[String], user_id: i64, now: i64) -> bool {
        tokens.iter().any(|token| self.user_of(token, now) == Some(user_id))
    }
}

/// The device tokens a browser's cookie holds.
pub fn from_cookie(jar: &CookieJar<'_>) -> Vec<String> {
    let value = jar.get(DEVICE_COOKIE).map(|cookie| cookie.value().to_owned()).unwrap_or_default();
    value.split('~').filter(|token| !token.is_empty()).take(REMEMBERED).map(str::to_owned).collect()
}

/// The device cookie after a sign-in to `user_id`: its new token first, then the still valid
/// tokens of the other accounts this browser signed in to.
pub fn remembered(
    key: &DeviceKey,
    jar: &CookieJar<'_>,
    user_id: i64,
    now: i64,
    secure: bool,
) -> Cookie<'static> {
    let others = from_cookie(jar)
        .into_iter()
        .filter(|token| key.user_of(token, now).is_some_and(|other| other != user_id));
    let tokens: Vec<String> =
        std::iter::once(key.issue(user_id, now)).chain(others).take(REMEMBERED).collect();
    Cookie::build((DEVICE_COOKIE, tokens.join("~")))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(secure)
        .max_age(rocket::time::Duration::seconds(DEVICE_TTL))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_vouches_for_its_account_until_it_is_a_year_old() {
        let key = DeviceKey::new(b"a secret of at least thirty-two bytes!!");
        let token = key.issue(42, 1_000);
        assert_eq!(key.user_of(&token, 1_000), Some(42));
        assert_eq!(key.user_of(&token, 1_000 + DEVICE_TTL - 1), Some(42));
        assert_eq!(key.user_of(&token, 1_000 + DEVICE_TTL), None);
        assert!(key.knows(&["junk".into(), token.clone()], 42, 1_000));
        assert!(!key.knows(std::slice::from_ref(&token), 43, 1_000));
    }

    #[test]
    fn a_token_changed_or_signed_by_another_key_vouches_for_nobody() {
        let key = DeviceKey::new(b"a secret of at least thirty-two bytes!!");
        let token = key.issue(42, 1_000);
        let signature = token.rsplit('.').next().unwrap_or_default();
        assert_eq!(key.user_of(&format!("43.1000.{signature}"), 1_000), None);
        let other = DeviceKey::new(b"another secret of thirty-two bytes or more");
        assert_eq!(other.user_of(&token, 1_000), None);
        for junk in ["", ".", "42", "42.1000", "42.1000.", "a.b.c"] {
            assert_eq!(key.user_of(junk, 1_000), None, "{junk:?}");
        }
    }
}
