//! bcrypt hashing and verification, always on a bounded pool of blocking workers so a storm of
//! sign-ins cannot starve the async executor.

use std::sync::Arc;

use rocket::tokio::sync::Semaphore;
use rocket::tokio::task::spawn_blocking;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{NewPassword, PASSWORD_MAX_BYTES};
use crate::error::{Error, Result};

pub struct PasswordHasher {
    cost: u32,
    workers: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that answer takes as long as a
    /// wrong password (no username enumeration by timing).
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub async fn new(cost: u32, workers: usize) -> Result<Self> {
        let dummy = spawn_blocking(move || bcrypt::hash("miniauth-dummy-password", cost))
            .await
            .map_err(Error::internal)?
            .map_err(Error::internal)?;
        Ok(PasswordHasher {
            cost,
            workers: Arc::new(Semaphore::new(workers.max(1))),
            dummy_hash: dummy.into(),
        })
    }

    pub async fn hash(&self, password: &NewPassword) -> Result<String> {
        let password = SecretString::from(password.expose());
        let cost = self.cost;
        self.run(move || bcrypt::hash(password.expose_secret(), cost)).await?.map_err(Error::internal)
    }

    /// Checks `password` against `hash`; with no hash (unknown user) it spends the same time
    /// on a dummy hash and answers `false`. Over-long passwords never match: bcrypt would
    /// compare only their first 72 bytes.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let matchable = hash.is_some() && password.len() <= PASSWORD_MAX_BYTES;
        let hash: Arc<str> = hash.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let password = SecretString::from(password);
        let matched = self
            .run(move || bcrypt::verify(password.expose_secret(), &hash))
            .await?
            .map_err(Error::internal)?;
        Ok(matched && matchable)
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self.workers.acquire().await.map_err(Error::internal)?;
        spawn_blocking(job).await.map_err(Error::internal)
    }
}
