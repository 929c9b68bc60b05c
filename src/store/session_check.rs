//! The session check every authenticated request makes, batched.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every query is a round trip
//! between threads (and with PostgreSQL, over the network); for the profile route that trip
//! cost more than everything else together. Here one task runs the checks: requests that
//! arrive while a check is in flight wait for the next one, and all of them are answered by a
//! single `WHERE id IN (…)` query. A lone request is checked at once, so nothing waits on a
//! timer; under load one round trip serves dozens of requests. Each check reads the database
//! after its request arrived, so a revocation committed before it (by any instance) is seen.

use std::collections::HashMap;
use std::time::Duration;

use rocket::tokio::sync::{mpsc, oneshot};
use rocket::tokio::time::timeout;
use sqlx::{AnyConnection, AnyPool, FromRow};

use super::users::USER_COLUMNS;
use super::Store;
use crate::domain::User;
use crate::error::{Error, Result};

/// At most this many sessions are asked for in one query.
const MAX_BATCH: usize = 64;
/// A session's `last_used_at` is brought up to date when it is older than this (seconds):
/// once a minute at most, so the check stays a read.
const TOUCH_AFTER: i64 = 60;

/// A live session as the query finds it.
#[derive(FromRow)]
struct Found {
    session_id: String,
    last_used_at: i64,
    amr: String,
    #[sqlx(flatten)]
    user: User,
}

struct Check {
    session_id: String,
    user_id: i64,
    reply: oneshot::Sender<Result<Option<(User, String)>>>,
}

#[derive(Clone)]
pub struct SessionChecker {
    queue: mpsc::UnboundedSender<Check>,
}

impl SessionChecker {
    /// Starts the checking task; `deadline` bounds one query (then the batch gets a 503).
    pub fn start(store: Store, deadline: Duration) -> SessionChecker {
        let (queue, checks) = mpsc::unbounded_channel();
        rocket::tokio::spawn(run(store, checks, deadline));
        SessionChecker { queue }
    }

    /// The user of a session that is neither revoked nor expired and belongs to `user_id`, with
    /// how the session signed in (RFC 8176 methods, space-separated).
    pub async fn find_live(&self, session_id: &str, user_id: i64) -> Result<Option<(User, String)>> {
        let (reply, answer) = oneshot::channel();
        let check = Check { session_id: session_id.to_owned(), user_id, reply };
        self.queue.send(check).map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::internal("the session checker stopped"))?
    }
}

async fn run(store: Store, mut checks: mpsc::UnboundedReceiver<Check>, deadline: Duration) {
    let mut connection: Option<AnyConnection> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while checks.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let ids: Vec<&str> = {
            let mut ids: Vec<&str> = batch.iter().map(|check| check.session_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let now = super::now();
        let found = match timeout(deadline, query_with_retry(&store, &mut connection, &ids, now)).await {
            Ok(found) => found,
            Err(_) => {
                connection = None;
                Err(Error::Unavailable)
            }
        };
        for check in batch.drain(..) {
            let answer = match &found {
                Ok(sessions) => Ok(sessions
                    .get(&check.session_id)
                    .filter(|found| found.user.id == check.user_id)
                    .map(|found| (found.user.clone(), found.amr.clone()))),
                Err(e) => Err(e.clone()),
            };
            // The request may have gone (client disconnected): nobody to answer.
            let _ = check.reply.send(answer);
        }
        if let Ok(sessions) = &found {
            touch_stale(&store, sessions, now);
        }
    }
}

/// Records, in the background, that sessions not marked used for a while were used now.
fn touch_stale(store: &Store, sessions: &HashMap<String, Found>, now: i64) {
    let stale: Vec<String> = sessions
        .iter()
        .filter(|(_, found)| found.last_used_at < now - TOUCH_AFTER)
        .map(|(id, _)| id.clone())
        .collect();
    if stale.is_empty() {
        return;
    }
    let store = store.clone();
    rocket::tokio::spawn(async move {
        let ids: Vec<&str> = stale.iter().map(String::as_str).collect();
        if let Err(e) = super::sessions::touch_sessions(&store, &ids, now).await {
            log::warn!("could not record session use: {e:?}");
        }
    });
}

/// Runs the query on the checker's own connection, opening one when needed. A connection that
/// broke while idle (e.g. PostgreSQL restarted) is replaced once: the read is safe to repeat.
async fn query_with_retry(
    pool: &AnyPool,
    connection: &mut Option<AnyConnection>,
    ids: &[&str],
    now: i64,
) -> Result<HashMap<String, Found>> {
    let reused = connection.is_some();
    match query(pool, connection, ids, now).await {
        Err(e) if reused && is_connection_error(&e) => {
            *connection = None;
            Ok(query(pool, connection, ids, now).await?)
        }
        other => Ok(other?),
    }
}

async fn query(
    pool: &AnyPool,
    connection: &mut Option<AnyConnection>,
    ids: &[&str],
    now: i64,
) -> Result<HashMap<String, Found>, sqlx::Error> {
    let conn = match connection {
        Some(conn) => conn,
        // Taken out of sqlx's pool: sqlx 0.7 pings a connection each time it goes back to its
        // pool, which would be one more round trip per check.
        None => connection.insert(pool.acquire().await?.detach()),
    };
    let placeholders: Vec<String> = (2..ids.len() + 2).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT s.id AS session_id, s.last_used_at AS last_used_at, s.amr AS amr, {USER_COLUMNS} \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.revoked_at IS NULL AND s.expires_at > $1 AND s.id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, Found>(&sql).bind(now);
    for id in ids {
        query = query.bind(*id);
    }
    match query.fetch_all(&mut *conn).await {
        Ok(rows) => Ok(rows.into_iter().map(|found| (found.session_id.clone(), found)).collect()),
        Err(e) => {
            // Never reuse a connection a query failed on.
            if is_connection_error(&e) {
                *connection = None;
            }
            Err(e)
        }
    }
}

fn is_connection_error(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed
    )
}
