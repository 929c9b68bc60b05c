//! Access tokens: JWTs carrying the user (`sub`) and the session (`sid`), signed with the
//! current key of the configured algorithm (EdDSA or HS256). Only that algorithm is accepted,
//! and the token's `kid` picks among the server's own keys: the token's header never chooses
//! an algorithm or brings a key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{decode, decode_header, encode, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::time::Duration;

use secrecy::SecretString;

use super::keys::{KeyRing, SigningAlgorithm, RELOAD_EVERY};
use crate::error::{Error, Result};
use crate::store;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string (as the original service and RFC 7519 have it).
    pub sub: String,
    /// The session id: the token is valid only while this session is live.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// The user's groups when the token was issued: for the token's readers, never for
    /// MiniAuth's own decisions, which read the groups as they are at each request. A token
    /// issued before groups existed has none.
    #[serde(default)]
    pub groups: Vec<String>,
    /// How the session signed in (RFC 8176): `["pwd"]`, or `["pwd", "otp", "mfa"]` after a
    /// second factor. A token issued before sessions recorded it has none.
    #[serde(default)]
    pub amr: Vec<String>,
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

/// How access tokens are signed and checked: the settings `jwt_*`, `access_token_ttl` and
/// `jwks_cache_seconds`.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub algorithm: SigningAlgorithm,
    /// The key the configuration gives, with its setting's name: `jwt_private_key` (EdDSA) or
    /// `token_secret` (HS256). `None`: the keys in the database sign.
    pub configured_key: Option<(&'static str, SecretString)>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    /// How long verifiers may cache the JWKS; also how long a new key waits, published,
    /// before a rotation may make it sign.
    pub jwks_cache: Duration,
}

impl TokenSettings {
    /// How long a retired signing key stays, verifying and published: until the last token it
    /// signed has expired (with the clock leeway, and the instances' time to follow a rotation)
    /// and key sets cached before then are stale.
    pub fn keep_retired_keys(&self) -> Duration {
        self.access_ttl + self.jwks_cache + Duration::from_secs(LEEWAY as u64) + RELOAD_EVERY
    }
}

pub struct Tokens {
    pub keys: Arc<KeyRing>,
    validation: Validation,
    issuer: String,
    audience: String,
    /// Access token lifetime in seconds.
    pub ttl: i64,
    verified: Verified,
}

impl Tokens {
    pub fn new(keys: Arc<KeyRing>, settings: &TokenSettings) -> Self {
        let mut validation = Validation::new(keys.algorithm.jwt());
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY as u64;
        Tokens {
            keys,
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ttl: store::seconds(settings.access_ttl),
            verified: Verified::default(),
        }
    }

    /// Who issues the tokens (`iss`), also the name authenticator apps show for MiniAuth.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A token for the user `user_id` in the groups `groups`, of the session `session_id`
    /// signed in by the methods `amr`.
    pub fn issue(
        &self,
        user_id: i64,
        session_id: &str,
        groups: &[String],
        amr: &[&str],
        now: i64,
    ) -> Result<String> {
        let claims = Claims {
            sub: user_id.to_string(),
            sid: session_id.to_owned(),
            groups: groups.to_vec(),
            amr: amr.iter().map(|method| method.to_string()).collect(),
            iat: now,
            exp: now + self.ttl,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let keys = self.keys.keys();
        let mut header = Header::new(self.keys.algorithm.jwt());
        header.kid = Some(keys.signing.kid.clone());
        encode(&header, &claims, keys.signing.encoding()).map_err(Error::internal)
    }

    /// The claims of a token whose algorithm, key, signature, `exp`, `iss` and `aud` are all
    /// good. A token verified before is answered from memory until it expires: an Ed25519
    /// verification costs more than the rest of a request.
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        let keys = self.keys.keys();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&digest, now, |kid| keys.verifying(kid).is_some()) {
            return Some(claims);
        }
        let (kid, claims) = self.decode(token, &self.validation)?;
        self.verified.insert(digest, kid, &claims, now);
        Some(claims)
    }

    /// The key id and claims of a token of the configured algorithm, signed by one of the
    /// server's keys, that passes `validation`.
    fn decode(&self, token: &str, validation: &Validation) -> Option<(String, Claims)> {
        let header = decode_header(token).ok()?;
        if header.alg != self.keys.algorithm.jwt() {
            return None;
        }
        let kid = header.kid?;
        let keys = self.keys.keys();
        let key = keys.verifying(&kid)?;
        let claims = decode::<Claims>(token, key.decoding(), validation).ok()?.claims;
        Some((kid, claims))
    }

    /// The session of a token the server signed, expired or not (what the CSRF token of a
    /// signed-in browser is bound to; never a proof that the session is live).
    pub fn session_of(&self, token: &str, now: i64) -> Option<String> {
        self.verify_expired_too(token, now).map(|claims| claims.sid)
    }

    /// The claims of a token the server signed whose algorithm, key, signature, `iss` and `aud`
    /// are good, expired or not. Never a proof by itself: only with its session found live.
    pub fn verify_expired_too(&self, token: &str, now: i64) -> Option<Claims> {
        if let Some(claims) = self.verify(token, now) {
            return Some(claims);
        }
        let mut validation = self.validation.clone();
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        self.decode(token, &validation).map(|(_, claims)| claims)
    }
}

/// Seconds of clock difference allowed on `exp`.
const LEEWAY: i64 = 5;
/// Verified tokens remembered at most; past that the memory starts over.
const VERIFIED_MAX: usize = 10_000;

/// Tokens verified lately, by the SHA-256 of their bytes (a token that differs in any byte is
/// verified afresh), each with the kid that verified it, until its `exp` or until that key
/// leaves the set.
#[derive(Default)]
struct Verified(Mutex<HashMap<[u8; 32], (String, Claims)>>);

impl Verified {
    fn get(&self, digest: &[u8; 32], now: i64, key_in_force: impl Fn(&str) -> bool) -> Option<Claims> {
        let map = self.0.lock().ok()?;
        let (kid, claims) = map.get(digest)?;
        (claims.exp + LEEWAY > now && key_in_force(kid)).then(|| claims.clone())
    }

    fn insert(&self, digest: [u8; 32], kid: String, claims: &Claims, now: i64) {
        let Ok(mut map) = self.0.lock() else { return };
        if map.len() >= VERIFIED_MAX {
            map.retain(|_, (_, claims)| claims.exp + LEEWAY > now);
            if map.len() >= VERIFIED_MAX {
                map.clear();
            }
        }
        map.insert(digest, (kid, claims.clone()));
    }
}
