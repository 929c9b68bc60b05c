//! The authentication core: accounts and sessions, access tokens and their keys, password
//! hashing, throttling, recovery by email, device tokens, CSRF tokens and the forward-auth
//! policy. Plain inputs, plain results: nothing here knows of HTTP requests, cookies or Rocket
//! (that is `web`, beside the routes), so a door of another kind reuses every rule as it is.

mod accounts;
mod address;
mod csrf;
pub mod device;
mod forward;
pub mod invitations;
pub mod keys;
pub mod oidc;
mod passkeys;
mod password;
mod recovery;
pub mod second_factor;
mod throttle;
mod token;

pub use accounts::{
    registration_closed, Accounts, Client, Issued, Registration, Scope, SignedInUser, ThisSession,
    ACTIVITY_SHOWN,
};
pub use address::{ClientAddress, Networks, TrustedProxies};
pub use csrf::CsrfKey;
pub use device::{DeviceKey, DEVICE_TTL};
pub use forward::{CookieScope, Decision, ForwardAuth, Original, WrittenRule};
pub use keys::SigningAlgorithm;
pub use oidc::Provider;
pub use passkeys::{Added, Challenge, RelyingParty, SecondStepOptions, NAME_MAX as PASSKEY_NAME_MAX};
pub use password::{Hashing, PasswordHasher};
pub use recovery::{LinkLifetimes, Recovery};
pub use second_factor::{Methods, Proof, SignIn, TotpSetup};
pub use throttle::{Attempt, Limits, SeenBlocks, Throttle};
pub use token::{Claims, TokenSettings, Tokens};

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::error::Result;
use crate::store::{self, Store};

/// An HMAC-SHA256 key of its own for one use of the secret, so that no token of one kind (a
/// CSRF token, a device token) is ever valid as another or as a JWT signature.
pub struct MacKey(Hmac<Sha256>);

impl MacKey {
    pub fn derive(secret: &[u8], purpose: &[u8]) -> Self {
        let mut derive = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        derive.update(purpose);
        let key = derive.finalize().into_bytes();
        MacKey(Hmac::new_from_slice(&key).expect("HMAC takes keys of any length"))
    }

    /// The MAC of `value`, to finalize or to verify.
    fn mac(&self, value: &str) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(value.as_bytes());
        mac
    }

    /// The MAC of `value`, base64url.
    fn tag(&self, value: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(value).finalize().into_bytes())
    }
}

/// The secret the CSRF and device-cookie keys derive from, kept in the database. Before keys
/// moved there, an installation generated it in `data/secret.key`: that one is kept, so the
/// forms and the device cookies it signed stay good across the upgrade.
pub async fn shared_secret(db: &Store, data_dir: &Path) -> Result<String> {
    let legacy = data_dir.join("secret.key");
    let candidate = match std::fs::read_to_string(&legacy) {
        Ok(text) if !text.trim().is_empty() => {
            log::info!("{}: its secret now lives in the database; the file can be deleted", legacy.display());
            text.trim().to_owned()
        }
        _ => {
            let mut bytes = [0u8; 48];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            URL_SAFE_NO_PAD.encode(bytes)
        }
    };
    store::keys::secret(db, "hmac", &candidate, store::now()).await
}
