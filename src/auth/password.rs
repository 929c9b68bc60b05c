//! bcrypt hashing and verification, always on a fixed pool of worker threads so a storm of
//! sign-ins cannot starve the async executor.
//!
//! The pool is MiniAuth's own rather than Tokio's blocking pool: Tokio starts a fresh thread
//! whenever none is idle at the instant a job arrives, so a queue of sign-ins grew it to a dozen
//! threads (each with its own stack and allocator arena) to run two hashes at a time.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use rocket::tokio::sync::oneshot;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{ChoosesPassword, NewPassword, PASSWORD_MAX_BYTES};
use crate::error::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

/// The settings `bcrypt_cost` and `hash_workers` (0 there: one worker per CPU core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashing {
    pub cost: u32,
    pub workers: usize,
}

impl Hashing {
    pub fn new(cost: u32, workers: usize) -> Self {
        let workers = match workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        Hashing { cost, workers }
    }
}

pub struct PasswordHasher {
    cost: u32,
    /// The workers' queue; they stop when the hasher (the last sender) is dropped.
    jobs: Sender<Job>,
    /// Jobs sent that no worker has taken yet.
    queued: Arc<AtomicUsize>,
    /// Verified against when the user does not exist, so that answer takes as long as a
    /// wrong password (no username enumeration by timing).
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub async fn new(cost: u32, workers: usize) -> Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..workers.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("miniauth-hash-{i}"))
                .spawn(move || work(&queue))
                .map_err(Error::internal)?;
        }
        let queued = Arc::new(AtomicUsize::new(0));
        let mut hasher = PasswordHasher { cost, jobs, queued, dummy_hash: Arc::from("") };
        let dummy = hasher.run(move || bcrypt::hash("miniauth-dummy-password", cost)).await?;
        hasher.dummy_hash = dummy.map_err(Error::internal)?.into();
        Ok(hasher)
    }

    async fn hash(&self, password: &NewPassword) -> Result<String> {
        let password = SecretString::from(password.expose());
        let cost = self.cost;
        self.run(move || bcrypt::hash(password.expose_secret(), cost)).await?.map_err(Error::internal)
    }

    /// The one way a new password comes in (sign-up, a change, a reset, the command line): the
    /// form's rules checked on the workers (the strength estimator is CPU work), then `admit`
    /// (what else must pass before a hash is spent: the sign-up throttle, the current
    /// password), then the bcrypt hash. Gives the form back with the hash.
    pub async fn choose<T>(
        &self,
        parse: impl FnOnce() -> Result<T> + Send + 'static,
        admit: impl AsyncFnOnce(&T) -> Result<()>,
    ) -> Result<(T, String)>
    where
        T: ChoosesPassword + Send + 'static,
    {
        let form = self.run(parse).await??;
        admit(&form).await?;
        let hash = self.hash(form.new_password()).await?;
        Ok((form, hash))
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

    /// How many jobs wait for a worker now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Runs CPU-heavy password work — bcrypt, and the strength estimator, which takes up to
    /// ~85 ms on a crafted 72-byte input (`examples/password_strength.rs`) — on the pool's
    /// workers, in arrival order, never on the async executor.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (answer, result) = oneshot::channel();
        let queued = Arc::clone(&self.queued);
        queued.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move || {
            queued.fetch_sub(1, Ordering::Relaxed);
            // The caller may have gone (its client hung up): nobody is left to tell.
            let _ = answer.send(job());
        });
        if self.jobs.send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::internal("the password workers have stopped"));
        }
        // A job that panicked dropped its answer unsent.
        result.await.map_err(|_| Error::internal("a password job panicked"))
    }
}

/// A worker: takes jobs until the queue closes. A panicking job is caught (and reported by the
/// panic hook), so it costs its caller a 500 and the pool nothing.
fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => {
                let _ = catch_unwind(AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
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
    fn a_panicking_job_costs_the_pool_nothing() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let runtime = rocket::tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async {
            let hasher = PasswordHasher::new(4, 1).await.map_err(|e| e.cause())?;
            assert!(hasher.run(|| panic!("a job that fails")).await.is_err());
            assert_eq!(hasher.run(|| 7).await.ok(), Some(7), "the only worker died with the job");
            Ok(())
        })
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
