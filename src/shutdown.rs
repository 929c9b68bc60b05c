//! Stopping without losing a request. On SIGTERM or SIGINT Rocket stops accepting connections
//! and lets the requests in flight run for the grace period (`shutdown_grace`). But Rocket 0.5
//! checks only once whether any is left, and if one was, sleeps the whole period before it
//! looks again: a busy server took `shutdown_grace` to stop on every deploy. So each request is
//! counted here from its arrival until Rocket lets go of it (its answer handed to the
//! connection), and the server stops as soon as none is left; a request that outlasts the
//! grace period is cut by Rocket as before, and the stop reports it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::tokio::time::sleep;
use rocket::{Build, Data, Request, Rocket};
use rocket_db_pools::Database;

use crate::store::{Db, Store};

/// How long the count must stay at zero: the last answer's bytes leave for the socket, and a
/// request already read on a kept-alive connection reaches the count.
const SETTLE: Duration = Duration::from_millis(250);

/// Serves until SIGTERM or SIGINT, then finishes the requests in flight and closes the
/// database behind the last of them.
pub async fn serve(rocket: Rocket<Build>) -> Result<(), rocket::Error> {
    let in_flight = InFlight::default();
    let count = Arc::clone(&in_flight.0);
    let rocket = rocket.attach(in_flight).ignite().await?;
    let shutdown = rocket.shutdown();
    let db = Db::fetch(&rocket).map(|db| Store::clone(db));
    let served = rocket.launch();
    rocket::tokio::pin!(served);
    let stopped: Result<(), rocket::Error> = rocket::tokio::select! {
        result = &mut served => result.map(drop),
        _ = async {
            shutdown.await;
            drained(&count).await
        } => Ok(()),
    };
    stopped?;
    if let Some(db) = db {
        db.close().await;
    }
    log::info!("MiniAuth stopped: every request was answered");
    Ok(())
}

/// Resolves once no request has been in flight for [`SETTLE`].
async fn drained(count: &AtomicUsize) {
    loop {
        while count.load(Ordering::Acquire) > 0 {
            sleep(Duration::from_millis(10)).await;
        }
        sleep(SETTLE).await;
        if count.load(Ordering::Acquire) == 0 {
            return;
        }
    }
}

/// Counts the requests in flight.
#[derive(Default)]
struct InFlight(Arc<AtomicUsize>);

/// One request in flight: counted while the request lives (Rocket drops it once its answer is
/// handed to the connection).
struct Arrived(Arc<AtomicUsize>);

impl Drop for Arrived {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

#[rocket::async_trait]
impl Fairing for InFlight {
    fn info(&self) -> Info {
        Info { name: "Requests in flight", kind: Kind::Request }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        req.local_cache(|| {
            self.0.fetch_add(1, Ordering::AcqRel);
            Arrived(Arc::clone(&self.0))
        });
    }
}
