//! The keys that sign and verify access tokens.
//!
//! They live in the database, so every instance on one database signs and verifies with the
//! same keys. Per algorithm there is one *current* key, which signs, and one *next* key,
//! published in the JWKS ahead of its use: a rotation promotes the next key, which every
//! verifier with a cached key set already has, and publishes a new next key. A *retired* key
//! stays (verifying, and in the JWKS) until the tokens it signed have expired and key sets
//! cached before the rotation have been fetched again. Each instance reloads the keys every few
//! seconds, so a rotation reaches all of them without a restart.
//!
//! A key given in the configuration (`jwt_private_key` for EdDSA, `token_secret` for HS256)
//! overrides the database: it alone signs and verifies, and rotation is the operator's.
//!
//! ID tokens (OpenID Connect) are signed RS256, or EdDSA for an app that asks: the RSA keys are
//! a ring of their own, made at their first use, kept and rotated the same way.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rand::RngCore;
use rocket::tokio::time::{interval, MissedTickBehavior};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::token::TokenSettings;
use crate::error::{Error, Result};
use crate::store::keys::{KeyRow, Role};
use crate::store::{self, Event, Store};

/// How often each instance reloads the keys from the database.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// One key, ready to sign or verify.
pub struct Key {
    pub kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public JWK (Ed25519 and RSA keys; HS256 keys are never published).
    jwk: Option<Value>,
}

impl Key {
    pub fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    fn from_row(row: &KeyRow, algorithm: SigningAlgorithm) -> Result<Key> {
        let private = URL_SAFE_NO_PAD.decode(&row.private_key).map_err(Error::internal)?;
        match algorithm {
            SigningAlgorithm::EdDSA => {
                Key::public(EncodingKey::from_ed_der(&private), algorithm, Some(row.kid.clone()))
            }
            SigningAlgorithm::RS256 => Key::public(rsa_key(&private)?, algorithm, Some(row.kid.clone())),
            SigningAlgorithm::HS256 => Key::hmac(&private, row.kid.clone()),
        }
    }

    /// An Ed25519 or RSA key from its private key; its kid is the RFC 7638 thumbprint unless
    /// given.
    fn public(encoding: EncodingKey, algorithm: SigningAlgorithm, kid: Option<String>) -> Result<Key> {
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm.jwt()).map_err(Error::internal)?;
        let kid = match kid {
            Some(kid) => kid,
            None => jwk.thumbprint(ThumbprintHash::SHA256).map_err(Error::internal)?,
        };
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).map_err(Error::internal)?;
        let jwk = serde_json::to_value(&jwk).map_err(Error::internal)?;
        Ok(Key { kid, encoding, decoding, jwk: Some(jwk) })
    }

    fn hmac(secret: &[u8], kid: String) -> Result<Key> {
        Ok(Key {
            kid,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            jwk: None,
        })
    }
}

/// The PKCS#1 key inside an RSA key's PKCS#8 document, which jsonwebtoken signs with.
fn rsa_key(pkcs8: &[u8]) -> Result<EncodingKey> {
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8).map_err(|e| Error::internal(e.to_string()))?;
    Ok(EncodingKey::from_rsa_der(info.private_key))
}

/// A new random key of `algorithm`, as stored: the next key (not yet activated).
pub fn generate(algorithm: SigningAlgorithm, now: i64) -> Result<KeyRow> {
    let (private, public, kid) = match algorithm {
        SigningAlgorithm::EdDSA => {
            let pair = Ed25519KeyPair::generate().map_err(Error::internal)?;
            // The PKCS#8 v1 form (the seed alone), as keys were always stored.
            let document = pair.to_pkcs8v1().map_err(Error::internal)?;
            let key = Key::public(EncodingKey::from_ed_der(document.as_ref()), algorithm, None)?;
            let public = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
            (document.as_ref().to_vec(), public, key.kid)
        }
        SigningAlgorithm::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).map_err(Error::internal)?;
            let document = pair.as_der().map_err(Error::internal)?;
            let key = Key::public(rsa_key(document.as_ref())?, algorithm, None)?;
            let public = pair.public_key().as_der().map_err(Error::internal)?;
            (document.as_ref().to_vec(), URL_SAFE_NO_PAD.encode(public.as_ref()), key.kid)
        }
        SigningAlgorithm::HS256 => {
            let (mut bytes, mut id) = ([0u8; 32], [0u8; 16]);
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            rand::rngs::OsRng.fill_bytes(&mut id);
            (bytes.to_vec(), String::new(), URL_SAFE_NO_PAD.encode(id))
        }
    };
    Ok(KeyRow {
        kid,
        algorithm: algorithm.name().to_owned(),
        private_key: URL_SAFE_NO_PAD.encode(private),
        public_key: public,
        created_at: now,
        activated_at: None,
        retired_at: None,
    })
}

/// The algorithms MiniAuth signs with: access tokens EdDSA or HS256, ID tokens RS256 or EdDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// Ed25519: anyone with the JWKS verifies.
    EdDSA,
    /// HMAC-SHA256 with a shared secret, which also mints tokens.
    HS256,
    /// RSA 2048 with SHA-256 (PKCS#1 v1.5): ID tokens, which every OpenID Connect library reads.
    RS256,
}

impl SigningAlgorithm {
    /// The setting `jwt_algorithm` (access tokens: EdDSA or HS256).
    pub fn parse(setting: &str) -> std::result::Result<Self, String> {
        match setting {
            "EdDSA" => Ok(SigningAlgorithm::EdDSA),
            "HS256" => Ok(SigningAlgorithm::HS256),
            other => Err(format!("jwt_algorithm must be EdDSA or HS256, not {other:?}")),
        }
    }

    /// The name as settings, the database and JWT headers spell it.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::EdDSA => "EdDSA",
            SigningAlgorithm::HS256 => "HS256",
            SigningAlgorithm::RS256 => "RS256",
        }
    }

    /// jsonwebtoken's name for it.
    pub fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::EdDSA => Algorithm::EdDSA,
            SigningAlgorithm::HS256 => Algorithm::HS256,
            SigningAlgorithm::RS256 => Algorithm::RS256,
        }
    }
}

/// The keys in force at one moment.
pub struct KeySet {
    /// Signs new tokens.
    pub signing: Arc<Key>,
    /// Every key whose tokens are accepted, by kid.
    verifying: HashMap<String, Arc<Key>>,
    /// The public JWKs of its keys (none for HS256), for the JWKS document.
    pub published: Vec<Value>,
    /// What the set was built from: (kid, activated, retired), to notice a rotation.
    built_from: Vec<(String, Option<i64>, Option<i64>)>,
}

impl KeySet {
    pub fn verifying(&self, kid: &str) -> Option<&Arc<Key>> {
        self.verifying.get(kid)
    }

    fn of(
        keys: Vec<(Arc<Key>, Role)>,
        built_from: Vec<(String, Option<i64>, Option<i64>)>,
    ) -> Result<KeySet> {
        let signing = keys
            .iter()
            .find(|(_, role)| *role == Role::Current)
            .map(|(key, _)| Arc::clone(key))
            .ok_or_else(|| Error::internal("no current signing key"))?;
        let published = keys.iter().filter_map(|(key, _)| key.jwk.clone()).collect();
        let verifying = keys.into_iter().map(|(key, _)| (key.kid.clone(), key)).collect();
        Ok(KeySet { signing, verifying, published, built_from })
    }
}

/// Where the keys come from.
enum Source {
    Database,
    /// A key from the configuration: fixed for the life of the process.
    Configured,
}

/// The keys of the configured algorithm, kept up to date with the database.
pub struct KeyRing {
    pub algorithm: SigningAlgorithm,
    source: Source,
    /// Seconds a retired key is kept: the access token lifetime plus the JWKS cache time.
    keep_retired: i64,
    set: RwLock<Arc<KeySet>>,
}

impl KeyRing {
    /// The ring of a key from the configuration.
    pub fn configured(algorithm: SigningAlgorithm, key: &SecretString) -> Result<KeyRing> {
        let key = match algorithm {
            SigningAlgorithm::EdDSA => {
                let encoding = EncodingKey::from_ed_pem(key.expose_secret().as_bytes()).map_err(|e| {
                    Error::internal(format!("jwt_private_key is not an Ed25519 PKCS#8 PEM key: {e}"))
                })?;
                Key::public(encoding, algorithm, None)?
            }
            SigningAlgorithm::HS256 => {
                let secret = key.expose_secret().as_bytes();
                let kid = super::MacKey::derive(secret, b"miniauth hs256 kid v1").tag("");
                Key::hmac(secret, kid)?
            }
            SigningAlgorithm::RS256 => return Err(Error::internal("RS256 keys live in the database only")),
        };
        let set = KeySet::of(vec![(Arc::new(key), Role::Current)], Vec::new())?;
        Ok(KeyRing {
            algorithm,
            source: Source::Configured,
            keep_retired: 0,
            set: RwLock::new(Arc::new(set)),
        })
    }

    /// The ring of the keys in the database, creating the current and the next key when
    /// missing (at first start, or on switching algorithm).
    pub async fn open(db: &Store, algorithm: SigningAlgorithm, keep_retired: i64) -> Result<KeyRing> {
        ensure(db, algorithm).await?;
        let now = store::now();
        let rows = store::keys::all(db, algorithm.name()).await?;
        let in_force: Vec<&KeyRow> = rows.iter().filter(|row| in_force(row, now, keep_retired)).collect();
        let set = build(&in_force, algorithm, None)?;
        Ok(KeyRing { algorithm, source: Source::Database, keep_retired, set: RwLock::new(Arc::new(set)) })
    }

    /// The keys in force now.
    pub fn keys(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(set) => Arc::clone(&set),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reloads the keys from the database; rebuilds the set only when a key was added,
    /// promoted, retired or deleted, or a retired key's time is up.
    pub async fn reload(&self, db: &Store) -> Result<()> {
        if matches!(self.source, Source::Configured) {
            return Ok(());
        }
        let rows = store::keys::all(db, self.algorithm.name()).await?;
        let now = store::now();
        let current = self.keys();
        let in_force: Vec<&KeyRow> =
            rows.iter().filter(|row| in_force(row, now, self.keep_retired)).collect();
        if fingerprint(&in_force) == current.built_from {
            return Ok(());
        }
        let set = Arc::new(build(&in_force, self.algorithm, Some(&current))?);
        match self.set.write() {
            Ok(mut slot) => *slot = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(())
    }

    /// Reloads the keys every [`RELOAD_EVERY`], for as long as the process runs.
    pub fn follow(self: Arc<Self>, db: Store) {
        if matches!(self.source, Source::Configured) {
            return;
        }
        rocket::tokio::spawn(async move {
            let mut every = interval(RELOAD_EVERY);
            every.set_missed_tick_behavior(MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = self.reload(&db).await {
                    log::warn!("could not reload the signing keys (the ones loaded stay in use): {e:?}");
                }
            }
        });
    }
}

/// Whether a key still signs or verifies at `now`: any key but one retired more than
/// `keep_retired` seconds ago.
fn in_force(row: &KeyRow, now: i64, keep_retired: i64) -> bool {
    row.retired_at.is_none_or(|at| at + keep_retired >= now)
}

/// What a set is built from: the keys and their parts, to notice a rotation.
fn fingerprint(rows: &[&KeyRow]) -> Vec<(String, Option<i64>, Option<i64>)> {
    rows.iter().map(|row| (row.kid.clone(), row.activated_at, row.retired_at)).collect()
}

/// The set of `rows`, reusing the parsed keys of `previous`. A key that cannot be read is left
/// out with a warning, unless it is the one that signs.
fn build(rows: &[&KeyRow], algorithm: SigningAlgorithm, previous: Option<&KeySet>) -> Result<KeySet> {
    let mut keys = Vec::new();
    for row in rows {
        let key = match previous.and_then(|set| set.verifying(&row.kid)) {
            Some(key) => Arc::clone(key),
            None => match Key::from_row(row, algorithm) {
                Ok(key) => Arc::new(key),
                Err(e) if row.role() != Role::Current => {
                    log::warn!("signing key {} cannot be read and is left out: {}", row.kid, e.cause());
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        keys.push((key, row.role()));
    }
    KeySet::of(keys, fingerprint(rows))
}

/// Makes sure the current and the next key of `algorithm` exist. Instances starting together
/// may race: the unique indexes let one key of each role in, and the others give way.
async fn ensure(db: &Store, algorithm: SigningAlgorithm) -> Result<()> {
    let rows = store::keys::all(db, algorithm.name()).await?;
    let now = store::now();
    if !rows.iter().any(|row| row.role() == Role::Current) {
        let mut key = generate(algorithm, now)?;
        key.activated_at = Some(now);
        if store::keys::insert(db, &key).await? {
            log::info!("signing keys: generated the current {} key {}", algorithm.name(), key.kid);
        }
    }
    if !rows.iter().any(|row| row.role() == Role::Next) {
        let key = generate(algorithm, now)?;
        if store::keys::insert(db, &key).await? {
            log::info!("signing keys: generated the next {} key {}", algorithm.name(), key.kid);
        }
    }
    Ok(())
}

/// The algorithms whose keys live in the database with these settings: the access tokens'
/// (unless the configuration gives their key), EdDSA for the ID tokens of apps that ask for it,
/// and RS256 for the others' ID tokens.
pub fn in_database(settings: &TokenSettings) -> Vec<SigningAlgorithm> {
    let mut algorithms = Vec::new();
    if settings.configured_key.is_none() {
        algorithms.push(settings.algorithm);
    }
    if settings.algorithm != SigningAlgorithm::EdDSA {
        algorithms.push(SigningAlgorithm::EdDSA);
    }
    algorithms.push(SigningAlgorithm::RS256);
    algorithms
}

/// Why a rotation did not happen.
#[derive(Debug)]
pub enum RotateRefused {
    /// The next key was published `age` seconds ago: verifiers may still hold a key set cached
    /// from before it, and would refuse the tokens it signs.
    TooSoon {
        age: i64,
        wait: i64,
    },
    Failed(Error),
}

impl From<Error> for RotateRefused {
    fn from(e: Error) -> Self {
        RotateRefused::Failed(e)
    }
}

/// Rotates the keys of `algorithm` in the database: the next key signs from now on, the current
/// one retires, a new next key is published. Refused while the next key has not been published
/// for `jwks_cache_seconds` (plus the instances' reload time), since a verifier may hold a key
/// set cached from before it, unless `force`d. Returns the kid of the key that now signs. Every
/// instance follows within [`RELOAD_EVERY`].
pub async fn rotate(
    db: &Store,
    algorithm: SigningAlgorithm,
    settings: &TokenSettings,
    force: bool,
    event: Event,
) -> Result<String, RotateRefused> {
    ensure(db, algorithm).await?;
    let now = store::now();
    let rows = store::keys::all(db, algorithm.name()).await?;
    let next =
        rows.iter().find(|row| row.role() == Role::Next).ok_or_else(|| Error::internal("no next key"))?;
    let age = now - next.created_at;
    let published_long_enough = store::seconds(settings.jwks_cache + RELOAD_EVERY);
    if age < published_long_enough && !force {
        return Err(RotateRefused::TooSoon { age, wait: published_long_enough - age });
    }
    let new_next = generate(algorithm, now)?;
    let forget_before = now - store::seconds(settings.keep_retired_keys());
    let event = event.with("algorithm", algorithm.name()).with("kid", next.kid.as_str());
    store::keys::rotate(db, (now, forget_before), &next.kid, &new_next, event).await?;
    Ok(next.kid.clone())
}
