//! Everything about proving who someone is: password hashing, tokens, the request guards,
//! CSRF, and the sign-up / sign-in / sign-out operations shared by the pages and the API.

mod accounts;
mod address;
mod csrf;
mod device;
mod forward;
mod guard;
pub mod keys;
mod password;
mod recovery;
mod throttle;
mod token;

pub use accounts::{Accounts, Issued, Scope, SessionSummary, SignedInUser, ThisSession};
pub use address::{peer, ClientAddress, TrustedProxies};
pub use csrf::{csrf_cookie_name, CsrfKey, CsrfToken, CSRF_COOKIE, CSRF_HEADER, SECURE_CSRF_COOKIE};
pub use device::{DeviceKey, DEVICE_COOKIE, DEVICE_TTL};
pub use forward::{beyond_the_cookies, cookie_domain, Decision, ForwardAuth, Original};
pub use guard::{ApiUser, Client, ForwardedUser, PageUser};
pub use password::PasswordHasher;
pub use recovery::Recovery;
pub use throttle::{Attempt, Limits, SeenBlocks, Throttle};
pub use token::{Claims, Tokens};

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rocket::fairing::AdHoc;
use rocket::http::{Cookie, CookieJar, SameSite};
use rocket_db_pools::Database;
use secrecy::ExposeSecret;
use sha2::Sha256;
use sqlx::AnyPool;

use crate::assets::Assets;
use crate::config::Settings;
use crate::domain::PasswordPolicy;
use crate::error::{Error, Result};
use crate::mail::Mailer;
use crate::store::Db;
use keys::KeyRing;

/// Name of the cookie that carries the access token (JWT) in the browser.
pub const TOKEN_COOKIE: &str = "miniauth_token";
/// Name of the cookie that carries the browser's refresh token.
pub const REFRESH_COOKIE: &str = "miniauth_refresh";

/// What the auth code needs at run time, built once from [`Settings`].
pub struct AuthService {
    pub hasher: PasswordHasher,
    pub tokens: Tokens,
    pub csrf: CsrfKey,
    /// Signs the device tokens of clients that signed in before.
    pub devices: DeviceKey,
    /// Throttling of password checks and sign-ups.
    pub limits: Limits,
    /// The blocks this instance has seen lately.
    pub seen_blocks: SeenBlocks,
    pub session_ttl: i64,
    /// Seconds during which a just-rotated refresh token is still accepted.
    pub refresh_grace: i64,
    pub cookie_secure: bool,
    /// The domain the session cookies are scoped to; `None`: host-only cookies.
    pub cookie_domain: Option<String>,
    /// Forward auth: the protected domains and their rules.
    pub forward: ForwardAuth,
    /// What a new password must be (sign-up, change, and later reset).
    pub password_policy: PasswordPolicy,
    /// The proxies whose forwarding headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// Recovery by email: the mailer, the links' address and lifetimes.
    pub recovery: Recovery,
    /// Derives a refresh token's one successor from it (see [`Accounts::refresh`]).
    successors: MacKey,
}

impl AuthService {
    /// Sets the browser's cookies: the access token, and the refresh token that renews it.
    /// Both live as long as the session.
    pub fn set_cookies(&self, jar: &CookieJar<'_>, issued: Issued) {
        let max_age = issued.session_ends - crate::store::now();
        jar.add(self.cookie(TOKEN_COOKIE, issued.access_token, max_age));
        jar.add(self.cookie(REFRESH_COOKIE, issued.refresh_token, max_age));
    }

    /// Remembers, in the browser's device cookie, the sign-in that issued these tokens.
    pub fn remember_device(&self, jar: &CookieJar<'_>, issued: &Issued) {
        let now = crate::store::now();
        jar.add(device::remembered(jar, &issued.device_token, issued.user_id, now, self.cookie_secure));
    }

    fn cookie(&self, name: &'static str, value: String, max_age: i64) -> Cookie<'static> {
        let cookie = Cookie::build((name, value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.cookie_secure)
            .max_age(rocket::time::Duration::seconds(max_age));
        self.scoped(cookie.build())
    }

    /// A session cookie in the scope it was set in: `Path=/` and `cookie_domain`, if any (a
    /// removal must name the same scope to reach it).
    fn scoped(&self, mut cookie: Cookie<'static>) -> Cookie<'static> {
        cookie.set_path("/");
        if let Some(domain) = &self.cookie_domain {
            cookie.set_domain(domain.clone());
        }
        cookie
    }

    /// The one rule for the browser's cookies after a sign-out, a revocation or a deletion,
    /// whichever door it came through: when the session the cookies carry has ended, they go.
    pub fn forget_ended(&self, jar: &CookieJar<'_>, user: &SignedInUser, this: ThisSession) {
        if user.by_cookie && this == ThisSession::Ended {
            jar.remove(self.scoped(Cookie::from(TOKEN_COOKIE)));
            jar.remove(self.scoped(Cookie::from(REFRESH_COOKIE)));
        }
    }
}

/// An HMAC-SHA256 key of its own for one use of the secret, so that no token of one kind (a
/// CSRF token, a device token) is ever valid as another or as a JWT signature.
struct MacKey(Hmac<Sha256>);

impl MacKey {
    fn derive(secret: &[u8], purpose: &[u8]) -> Self {
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

/// Builds the [`AuthService`]. It runs after the database's own stages (the pool, the
/// migrations), since the signing keys and the shared secret live in the database.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Authentication", |rocket| async {
        rocket.attach(AdHoc::try_on_ignite("Authentication keys", |rocket| async move {
            let (Some(settings), Some(db), Some(assets)) =
                (rocket.state::<Settings>(), Db::fetch(&rocket), rocket.state::<Assets>())
            else {
                return Err(rocket);
            };
            match service(settings, db, &assets.template_dir).await {
                Ok(service) => Ok(rocket.manage(service)),
                Err(e) => {
                    log::error!("cannot start authentication: {}", e.cause());
                    Err(rocket)
                }
            }
        }))
    })
}

async fn service(settings: &Settings, db: &AnyPool, template_dir: &Path) -> Result<AuthService> {
    let mailer = Mailer::start(settings, template_dir).map_err(Error::internal)?;
    let limits = Limits::from(settings);
    for domain in beyond_the_cookies(settings) {
        log::warn!(
            "forward_auth_domains: the session cookies do not reach {domain}, so a browser signed in \
             here is not recognised there and is sent back and forth to the sign-in page; set \
             cookie_domain to a domain above both it and public_url's host"
        );
    }
    let secret = match &settings.token_secret {
        Some(secret) => secret.expose_secret().as_bytes().to_vec(),
        None => shared_secret(db, &settings.data_dir).await?.into_bytes(),
    };
    let algorithm = settings.jwt_algorithm;
    let (ring, origin) = match settings.configured_signing_key() {
        Some((setting, key)) => (KeyRing::configured(algorithm, key)?, setting),
        None => (KeyRing::open(db, algorithm, settings.keep_retired_keys()).await?, "the database"),
    };
    let ring = Arc::new(ring);
    Arc::clone(&ring).follow(db.clone());
    log::info!(
        "signing keys: {} from {origin}, key {} signs",
        keys::name(algorithm),
        ring.keys().signing.kid
    );
    Ok(AuthService {
        hasher: PasswordHasher::new(settings.bcrypt_cost, settings.hash_workers()).await?,
        tokens: Tokens::new(ring, settings),
        csrf: CsrfKey::new(&secret),
        devices: DeviceKey::new(&secret),
        limits,
        seen_blocks: SeenBlocks::default(),
        session_ttl: settings.session_ttl as i64,
        refresh_grace: settings.refresh_grace as i64,
        cookie_secure: settings.cookie_secure,
        cookie_domain: cookie_domain(settings).map_err(Error::internal)?,
        forward: ForwardAuth::new(settings).map_err(Error::internal)?,
        password_policy: settings.password_policy(),
        trusted_proxies: TrustedProxies::parse(&settings.trusted_proxies).unwrap_or_default(),
        recovery: Recovery::start(settings, db, limits, mailer),
        successors: MacKey::derive(&secret, b"miniauth refresh successor v1"),
    })
}

/// The secret the CSRF and device-cookie keys derive from, kept in the database. Before keys
/// moved there, an installation generated it in `data/secret.key`: that one is kept, so the
/// forms and the device cookies it signed stay good across the upgrade.
async fn shared_secret(db: &AnyPool, data_dir: &Path) -> Result<String> {
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
    crate::store::keys::secret(db, "hmac", &candidate, crate::store::now()).await
}
