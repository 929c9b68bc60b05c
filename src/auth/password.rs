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

    /// Runs CPU-heavy password work — bcrypt, and the strength estimator, which takes up to
    /// ~85 ms on a crafted 72-byte input (`examples/password_strength.rs`) — on the bounded pool
    /// of blocking workers, never on the async executor.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self.workers.acquire().await.map_err(Error::internal)?;
        spawn_blocking(job).await.map_err(Error::internal)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// On a single-threaded runtime, a verification running on the executor would finish in
    /// its first poll, before a 20 ms timer; on a blocking worker the timer wins.
    #[test]
    fn verification_leaves_the_executor_free() {
        let runtime = rocket::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let hasher = PasswordHasher::new(12, 1).await.unwrap();
            let hash = hasher.dummy_hash.to_string();
            let first = rocket::tokio::select! {
                biased;
                _ = hasher.verify("miniauth-dummy-password", Some(&hash)) => "verify",
                _ = rocket::tokio::time::sleep(Duration::from_millis(20)) => "timer",
            };
            assert_eq!(first, "timer", "bcrypt ran on the async executor");
        });
    }

    #[test]
    fn unknown_users_and_overlong_passwords_never_match() {
        let runtime = rocket::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let hasher = PasswordHasher::new(4, 1).await.unwrap();
            let policy = crate::domain::PasswordPolicy { min_length: 8, min_score: 0 };
            let password = NewPassword::parse(&"p".repeat(72), "someone", &policy).unwrap();
            let hash = hasher.hash(&password).await.unwrap();
            assert!(hasher.verify(&"p".repeat(72), Some(&hash)).await.unwrap());
            assert!(!hasher.verify(&"p".repeat(73), Some(&hash)).await.unwrap(), "bcrypt truncation");
            assert!(!hasher.verify("miniauth-dummy-password", None).await.unwrap());
        });
    }
}
