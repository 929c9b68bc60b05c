//! A `rocket_db_pools` pool over `sqlx::Any`: the backend comes from the URL's scheme, and
//! SQLite connections get the pragmas that make concurrent writers safe. A SQLite file is
//! readable by this user only (mode 0600), wherever the URL puts it: it holds the signing keys.

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::tokio::sync::{Mutex, MutexGuard};
use rocket::tokio::time::timeout;
use rocket::{Build, Rocket};
use rocket_db_pools::Database;

use super::events::{self, Event};
use super::session_check::SessionChecker;
use crate::error::Error;
use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};

/// WAL lets readers run beside the writer; `busy_timeout` makes writers queue instead of
/// failing; `synchronous=FULL` makes every acknowledged commit survive a crash.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The pool size when the settings leave it at `0`. SQLite runs one writer at a time and
    /// each connection is a thread with its own caches, so a few connections do the work of
    /// many at a fraction of the memory.
    fn default_connections(self) -> u32 {
        match self {
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        }
    }

    fn from_url(url: &str) -> Result<Self, sqlx::Error> {
        match url.split(':').next() {
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres" | "postgresql") => Ok(Backend::Postgres),
            _ => Err(sqlx::Error::Configuration(
                "the database URL must start with sqlite: or postgres://".into(),
            )),
        }
    }
}

#[derive(Database)]
#[database("miniauth")]
pub struct Db(DbPool);

pub struct DbPool {
    store: Store,
    /// The session check of every authenticated request, batched (see [`SessionChecker`]).
    pub sessions: SessionChecker,
    pub backend: Backend,
    /// Where the data lives, for the start-up line: a file, or host and database (no password).
    location: String,
}

impl Deref for DbPool {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

/// The database as the server holds it: the pool (reads take it directly, through `Deref`),
/// and, on SQLite, a gate that lines up this process's writers.
///
/// SQLite runs one writer at a time. A writer that finds the database locked waits in SQLite's
/// busy handler, which sleeps in growing steps (up to 100 ms each) and lets a newcomer that
/// happens to try at the right moment go first: under concurrent writes that made the slowest
/// one in a hundred token refreshes wait over 100 ms. Behind the gate, a first-come,
/// first-served queue in the process, writers wait only for those ahead of them, and SQLite
/// seldom sees two at once. A writer waits for its turn as long as for a connection
/// (`connect_timeout`), then gets a `503`, as it would for a connection. PostgreSQL locks
/// rows, not the database: it has no gate.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    writers: Option<Arc<Mutex<()>>>,
    /// How long a writer waits for its turn.
    patience: Duration,
    /// Whether committed security events are also printed on standard output.
    events_to_stdout: Arc<AtomicBool>,
}

/// A write in one transaction, committed with the security events it makes (see
/// [`super::events`]): both are kept, or neither. It holds the writer's turn until it ends;
/// dropped without [`Change::commit`], it rolls back.
pub struct Change<'s> {
    tx: Transaction<'static, Any>,
    _turn: Option<MutexGuard<'s, ()>>,
    store: &'s Store,
}

impl Change<'_> {
    /// Records `events` and commits; then, when the settings ask, prints them.
    pub async fn commit(mut self, events: &[Event]) -> Result<(), Error> {
        for event in events {
            events::insert(&mut self.tx, event).await?;
        }
        self.tx.commit().await?;
        if !events.is_empty() && self.store.events_to_stdout.load(Ordering::Relaxed) {
            events::print(events);
        }
        Ok(())
    }
}

impl Deref for Change<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for Change<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl Store {
    fn new(pool: AnyPool, backend: Backend, patience: Duration) -> Store {
        let writers = (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Store { pool, writers, patience, events_to_stdout: Arc::default() }
    }

    /// Prints each security event on standard output too, once committed (`event_log = "stdout"`).
    pub fn print_events(&self, on: bool) {
        self.events_to_stdout.store(on, Ordering::Relaxed);
    }

    /// A transaction for a change, once this writer's turn has come (see [`Store::write`]).
    pub async fn change(&self) -> Result<Change<'_>, Error> {
        let (pool, turn) = self.write().await?;
        Ok(Change { tx: pool.begin().await?, _turn: turn, store: self })
    }

    /// A change that is only `events` (a failed sign-in, an administrator's command).
    pub async fn record(&self, events: &[Event]) -> Result<(), Error> {
        self.change().await?.commit(events).await
    }

    /// A store on `url` with sqlx's default pool, for a tool beside the server (the database
    /// must exist; connections open on first use).
    pub fn connect_lazy(url: &str) -> Result<Store, sqlx::Error> {
        sqlx::any::install_default_drivers();
        Ok(Store::new(AnyPool::connect_lazy(url)?, Backend::from_url(url)?, Duration::from_secs(30)))
    }

    /// The pool, for a write, once this writer's turn has come; the turn lasts as long as the
    /// guard (`None` on PostgreSQL) is held. [`Error::Unavailable`] when the turn does not come
    /// in time.
    pub async fn write(&self) -> Result<(&AnyPool, Option<MutexGuard<'_, ()>>), Error> {
        let turn = match &self.writers {
            Some(writers) => {
                Some(timeout(self.patience, writers.lock()).await.map_err(|_| Error::Unavailable)?)
            }
            None => None,
        };
        Ok((&self.pool, turn))
    }
}

impl Deref for Store {
    type Target = AnyPool;

    fn deref(&self) -> &AnyPool {
        &self.pool
    }
}

#[rocket::async_trait]
impl rocket_db_pools::Pool for DbPool {
    type Connection = sqlx::pool::PoolConnection<sqlx::Any>;
    type Error = sqlx::Error;

    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        sqlx::any::install_default_drivers();
        let config: rocket_db_pools::Config =
            figment.extract().map_err(|e| sqlx::Error::Configuration(e.into()))?;
        let backend = Backend::from_url(&config.url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match config.max_connections {
                0 => backend.default_connections(),
                n => n as u32,
            })
            .min_connections(config.min_connections.unwrap_or(0))
            .acquire_timeout(Duration::from_secs(config.connect_timeout))
            .idle_timeout(config.idle_timeout.map(Duration::from_secs))
            // Pinging before every checkout is one more trip to SQLite's connection thread per
            // query, and an embedded database's connections do not break. Connections to
            // PostgreSQL keep the check: they do break, when the server restarts.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy(&config.url)?;
        let timeout = Duration::from_secs(config.connect_timeout);
        let store = Store::new(pool, backend, timeout);
        let sessions = SessionChecker::start(store.clone(), timeout);
        Ok(DbPool { store, sessions, backend, location: location(&config.url) })
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        self.store.acquire().await
    }

    /// Nothing: rocket_db_pools calls this as soon as shutdown is asked for, while the requests
    /// in flight still need the database (closing here answered them `503`). The server closes
    /// the pool once they are done (`shutdown::serve`).
    async fn close(&self) {}
}

impl DbPool {
    /// Opens the pool on the `databases.miniauth` part of a configuration, as the server does
    /// (for the admin command line). Connections open on first use.
    pub async fn open(figment: &Figment) -> Result<DbPool, sqlx::Error> {
        let url: String = figment.extract_inner("url").map_err(|e| sqlx::Error::Configuration(e.into()))?;
        prepare_sqlite_file(&url).map_err(|why| sqlx::Error::Configuration(why.into()))?;
        <DbPool as rocket_db_pools::Pool>::init(figment).await
    }

    /// Applies the embedded migrations of the backend; returns how many the database has.
    pub async fn migrate(&self) -> Result<usize, sqlx::migrate::MigrateError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator.run(&self.store.pool).await?;
        Ok(migrator.iter().count())
    }

    /// Where the data lives: a file, or host and database (never a password).
    pub fn location(&self) -> &str {
        &self.location
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// The URL without its scheme, credentials and options.
fn location(url: &str) -> String {
    let rest = url.split_once(':').map_or(url, |(_, rest)| rest).trim_start_matches("//");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('?').next().unwrap_or_default().to_owned()
}

/// Readies the SQLite file of `url` for the first connection, for this user only. With
/// `mode=rwc` its folder is made (mode 0700) and the file created empty, mode 0600: SQLite would
/// create it with the umask's mode (0644 under the usual 022), readable by every local user.
/// SQLite gives the `-wal`, `-shm` and `-journal` files it creates the database file's mode, so
/// they are 0600 too. Files from before (an older version, a copy, a crash's leftovers) are made
/// private here; one that cannot be (another user's) stops the start.
fn prepare_sqlite_file(url: &str) -> Result<(), String> {
    if !matches!(Backend::from_url(url), Ok(Backend::Sqlite)) {
        return Ok(());
    }
    let Some((path, create)) = sqlite_file(url)? else {
        return Ok(());
    };
    if create {
        if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
            DirBuilder::new().recursive(true).mode(0o700).create(folder).map_err(|e| {
                format!("cannot create the folder of the SQLite file, {}: {e}", folder.display())
            })?;
        }
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create the SQLite file {}: {e}", path.display())),
        }
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        crate::files::make_owner_only(Path::new(&file))?;
    }
    Ok(())
}

/// The file a `sqlite:` URL names, as sqlx reads it (percent-decoded, relative to the working
/// folder), and whether the pool may create it (`mode=rwc`); `None` for an in-memory or a
/// temporary database, which have no file.
fn sqlite_file(url: &str) -> Result<Option<(PathBuf, bool)>, String> {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let mode = url::form_urlencoded::parse(params.as_bytes())
        .find(|(key, _)| key == "mode")
        .map(|(_, mode)| mode.into_owned());
    if database.is_empty() || database == ":memory:" || mode.as_deref() == Some("memory") {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(url).map_err(|e| format!("invalid SQLite URL: {e}"))?;
    let path = options.get_filename().into_owned();
    Ok(Some((path, mode.as_deref() == Some("rwc"))))
}

/// Readies the SQLite file (see `prepare_sqlite_file`), opens the pool and applies the
/// embedded migrations of its backend.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Database", |rocket| async {
        // Here rather than in `init`: rocket_db_pools logs a failed `init` under its own target,
        // which the log filter's `rocket=off` silences too, so the reason would not be seen.
        if let Ok(url) = rocket.figment().extract_inner::<String>(&format!("databases.{}.url", Db::NAME)) {
            if let Err(why) = prepare_sqlite_file(&url) {
                log::error!("{why}");
                return Err(rocket);
            }
        }
        Ok(rocket.attach(Db::init()).attach(AdHoc::try_on_ignite("Migrations", migrate)))
    })
}

async fn migrate(rocket: Rocket<Build>) -> Result<Rocket<Build>, Rocket<Build>> {
    let Some(db) = Db::fetch(&rocket) else {
        return Err(rocket);
    };
    match db.migrate().await {
        Ok(applied) => {
            log::info!("database: {} ({}), {applied} migrations applied", db.backend, db.location);
            Ok(rocket)
        }
        Err(e) => {
            log::error!("database migrations failed: {e}");
            Err(rocket)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as Log;

    use super::*;

    fn runtime() -> rocket::tokio::runtime::Runtime {
        rocket::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn sqlite_writers_take_turns_in_the_order_they_came() {
        runtime().block_on(async {
            let store = Store::connect_lazy("sqlite::memory:").unwrap();
            let order = Arc::new(Log::new(Vec::new()));
            let (_, first) = store.write().await.unwrap();
            assert!(first.is_some(), "SQLite writes go through the gate");
            let waiting: Vec<_> = (0..5)
                .map(|n| {
                    let (store, order) = (store.clone(), Arc::clone(&order));
                    rocket::tokio::spawn(async move {
                        let _turn = store.write().await.unwrap();
                        order.lock().unwrap().push(n);
                    })
                })
                .collect();
            // Each spawned writer queues in turn (the runtime has one thread: each runs up
            // to its wait before the next starts).
            for _ in 0..5 {
                rocket::tokio::task::yield_now().await;
            }
            assert!(order.lock().unwrap().is_empty(), "nobody writes while the first one does");
            drop(first);
            for task in waiting {
                task.await.unwrap();
            }
            assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        });
    }

    #[test]
    fn a_writer_whose_turn_does_not_come_in_time_is_told_the_service_is_unavailable() {
        runtime().block_on(async {
            sqlx::any::install_default_drivers();
            let pool = AnyPool::connect_lazy("sqlite::memory:").unwrap();
            let store = Store::new(pool, Backend::Sqlite, Duration::from_millis(20));
            let (_, _held) = store.write().await.unwrap();
            assert!(matches!(store.write().await, Err(Error::Unavailable)));
        });
    }

    #[test]
    fn postgres_writers_do_not_wait_for_each_other() {
        runtime().block_on(async {
            let store = Store::connect_lazy("postgres://127.0.0.1:1/none").unwrap();
            let (_, first) = store.write().await.unwrap();
            let (_, second) = store.write().await.unwrap();
            assert!(first.is_none() && second.is_none());
        });
    }
}
