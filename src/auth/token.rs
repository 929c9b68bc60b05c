//! Access tokens: HS256 JWTs carrying the user (`sub`) and the session (`sid`). The algorithm
//! is pinned here; the token's own header is never trusted to choose it.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
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
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    /// Access token lifetime in seconds.
    pub ttl: i64,
}

const ALGORITHM: Algorithm = Algorithm::HS256;

impl Tokens {
    pub fn new(secret: &[u8], settings: &Settings) -> Self {
        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            ttl: settings.access_token_ttl as i64,
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
        encode(&Header::new(ALGORITHM), &claims, &self.encoding).map_err(Error::internal)
    }

    /// The claims of a token whose signature, algorithm, `exp`, `iss` and `aud` are all good.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation).ok().map(|data| data.claims)
    }
}
