//! CSRF protection by a signed double-submit token bound to the session: a random value in an
//! `HttpOnly` cookie, and in each form the HMAC, under the server's key, of that value and of
//! the session the browser is signed in with. A forged request can send the cookie but cannot
//! read it; and a cookie and token an attacker obtained for themselves and planted in a
//! victim's browser (from a sibling subdomain, or over plain http) name no session, or the
//! attacker's, never the victim's: they are refused. With `Secure` cookies the cookie's name
//! carries the `__Host-` prefix, which browsers accept only from this very host over https,
//! so a sibling subdomain cannot set it at all.
//!
//! Here is the key and the token's rule; the cookie and the guards that check every form and
//! every cookie-authenticated API change are in `web::csrf`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;

use super::MacKey;
use crate::error::{Error, Result};

pub struct CsrfKey(MacKey);

impl CsrfKey {
    pub fn new(secret: &[u8]) -> Self {
        CsrfKey(MacKey::derive(secret, b"miniauth csrf key v1"))
    }

    /// The token of a visitor's CSRF secret (its cookie's value) and of the session it is
    /// signed in with (`""`: none).
    pub fn token(&self, secret: &str, session: &str) -> String {
        self.0.tag(&bound(secret, session))
    }

    /// Checks a submitted token against the secret and the session, in constant time.
    pub fn verify(&self, secret: &str, session: &str, submitted: &str) -> Result<()> {
        let submitted = URL_SAFE_NO_PAD.decode(submitted.trim()).map_err(|_| Error::Csrf)?;
        self.0.mac(&bound(secret, session)).verify_slice(&submitted).map_err(|_| Error::Csrf)
    }
}

/// What a token signs: the secret and the session.
fn bound(secret: &str, session: &str) -> String {
    format!("{secret}\n{session}")
}
