//! Access tokens: JWTs carrying the user (`sub`) and the session (`sid`), signed with the
//! current key of the configured algorithm (EdDSA or HS256). Only that algorithm is accepted,
//! and the token's `kid` picks among the server's own keys: the token's header never chooses
//! an algorithm or brings a key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{decode, decode_header, encode, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::KeyRing;
use crate::config::Settings;
use crate::error::{Error, Result};

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
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
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
    pub fn new(keys: Arc<KeyRing>, settings: &Settings) -> Self {
        let mut validation = Validation::new(keys.algorithm);
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY as u64;
        Tokens {
            keys,
            validation,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            ttl: settings.access_token_ttl as i64,
            verified: Verified::default(),
        }
    }

    pub fn issue(&self, user_id: i64, session_id: &str, now: i64) -> Result<String> {
        let claims = Claims {
            sub: user_id.to_string(),
            sid: session_id.to_owned(),
            iat: now,
            exp: now + self.ttl,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let keys = self.keys.keys();
        let mut header = Header::new(self.keys.algorithm);
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
        if header.alg != self.keys.algorithm {
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
        if let Some(claims) = self.verify(token, now) {
            return Some(claims.sid);
        }
        let mut validation = self.validation.clone();
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        self.decode(token, &validation).map(|(_, claims)| claims.sid)
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
