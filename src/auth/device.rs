//! Device tokens: proof that a client has signed in to an account before, so that others'
//! failed guesses at that account's password never lock its owner out (the per-username limit
//! does not hold a known device back). A token is `<user id>.<issued at>.<HMAC>` under a key of
//! its own, the HMAC also covering the account's device generation, which every password
//! change, reset and global sign-out advances: the tokens issued before then vouch for nothing
//! (a token copied off a device, or obtained with the old password, ends there). Browsers keep theirs (one per account, a few accounts) in a long-lived cookie set
//! at each sign-in, API clients get one from `POST /auth/login` and send it back with the next.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;

use super::MacKey;

/// How long a device token vouches for a client: a year.
pub const DEVICE_TTL: i64 = 365 * 24 * 3600;
/// Accounts one browser is remembered for (the most recent sign-ins).
pub const REMEMBERED_DEVICES: usize = 5;

pub struct DeviceKey(MacKey);

impl DeviceKey {
    pub fn new(secret: &[u8]) -> Self {
        DeviceKey(MacKey::derive(secret, b"miniauth device key v1"))
    }

    /// A token vouching that this client signed in to `user_id`, whose device generation is
    /// `generation`, at `now`.
    pub fn issue(&self, user_id: i64, generation: i64, now: i64) -> String {
        let claim = format!("{user_id}.{now}");
        let signature = self.0.tag(&signed(&claim, generation));
        format!("{claim}.{signature}")
    }

    /// Whether a token vouches for `user_id` at its current `generation`: ours, for that
    /// generation, and younger than [`DEVICE_TTL`].
    pub fn vouches(&self, token: &str, user_id: i64, generation: i64, now: i64) -> bool {
        let Some((claim, signature)) = token.rsplit_once('.') else { return false };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else { return false };
        claim_of(claim, now) == Some(user_id)
            && self.0.mac(&signed(claim, generation)).verify_slice(&signature).is_ok()
    }

    /// Whether any of `tokens` vouches for `user_id` at its current `generation`.
    pub fn knows(&self, tokens: &[String], user_id: i64, generation: i64, now: i64) -> bool {
        tokens.iter().any(|token| self.vouches(token, user_id, generation, now))
    }
}

/// What a token's HMAC covers: its claim and the account's device generation.
fn signed(claim: &str, generation: i64) -> String {
    format!("{claim}.{generation}")
}

/// The account a token's claim (`<user id>.<issued at>`) names, while it is younger than
/// [`DEVICE_TTL`] (its signature unchecked).
fn claim_of(claim: &str, now: i64) -> Option<i64> {
    let (user_id, issued_at) = claim.split_once('.')?;
    let issued_at: i64 = issued_at.parse().ok()?;
    (now - issued_at < DEVICE_TTL).then(|| user_id.parse().ok()).flatten()
}

/// The device tokens a browser keeps (its cookie's value: tokens joined by `~`).
pub fn kept(value: &str) -> Vec<String> {
    value.split('~').filter(|token| !token.is_empty()).take(REMEMBERED_DEVICES).map(str::to_owned).collect()
}

/// What a browser keeps after a sign-in to `user_id`, which gave it `token`: that token first,
/// then the tokens it kept for the other accounts it signed in to (each is checked when it is
/// used), as its cookie's value.
pub fn keep(kept: Vec<String>, token: &str, user_id: i64, now: i64) -> String {
    let others = kept.into_iter().filter(|other| {
        let claim = other.rsplit_once('.').map_or("", |(claim, _)| claim);
        claim_of(claim, now).is_some_and(|other| other != user_id)
    });
    let tokens: Vec<String> =
        std::iter::once(token.to_owned()).chain(others).take(REMEMBERED_DEVICES).collect();
    tokens.join("~")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_vouches_for_its_account_until_it_is_a_year_old() {
        let key = DeviceKey::new(b"a secret of at least thirty-two bytes!!");
        let token = key.issue(42, 0, 1_000);
        assert!(key.vouches(&token, 42, 0, 1_000));
        assert!(key.vouches(&token, 42, 0, 1_000 + DEVICE_TTL - 1));
        assert!(!key.vouches(&token, 42, 0, 1_000 + DEVICE_TTL));
        assert!(key.knows(&["junk".into(), token.clone()], 42, 0, 1_000));
        assert!(!key.knows(std::slice::from_ref(&token), 43, 0, 1_000));
    }

    #[test]
    fn a_token_ends_when_its_accounts_generation_moves_on() {
        let key = DeviceKey::new(b"a secret of at least thirty-two bytes!!");
        let token = key.issue(42, 3, 1_000);
        assert!(key.vouches(&token, 42, 3, 1_000));
        assert!(!key.vouches(&token, 42, 4, 1_000));
        assert!(key.vouches(&key.issue(42, 4, 1_001), 42, 4, 1_001));
    }

    #[test]
    fn a_token_changed_or_signed_by_another_key_vouches_for_nobody() {
        let key = DeviceKey::new(b"a secret of at least thirty-two bytes!!");
        let token = key.issue(42, 0, 1_000);
        let signature = token.rsplit('.').next().unwrap_or_default();
        assert!(!key.vouches(&format!("43.1000.{signature}"), 43, 0, 1_000));
        let other = DeviceKey::new(b"another secret of thirty-two bytes or more");
        assert!(!other.vouches(&token, 42, 0, 1_000));
        for junk in ["", ".", "42", "42.1000", "42.1000.", "a.b.c"] {
            assert!(!key.vouches(junk, 42, 0, 1_000), "{junk:?}");
        }
    }
}
