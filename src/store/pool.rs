//! A `rocket_db_pools` pool over `sqlx::Any`: the backend comes from the URL's scheme, and
//! SQLite connections get the pragmas that make concurrent writers safe.

use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};
use rocket_db_pools::Database;

use super::session_check::SessionChecker;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

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
    pool: AnyPool,
    /// The session check of every authenticated request, batched (see [`SessionChecker`]).
    pub sessions: SessionChecker,
    pub backend: Backend,
    /// Where the data lives, for the start-up line: a file, or host and database (no password).
    location: String,
}

impl Deref for DbPool {
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
        if backend == Backend::Sqlite {
            create_sqlite_folder(&config.url).map_err(sqlx::Error::Io)?;
        }
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
        let sessions = SessionChecker::start(pool.clone(), timeout);
        Ok(DbPool { pool, sessions, backend, location: location(&config.url) })
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        self.pool.acquire().await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

impl DbPool {
    /// Opens the pool on the `databases.miniauth` part of a configuration, as the server does
    /// (for the admin command line). Connections open on first use.
    pub async fn open(figment: &Figment) -> Result<DbPool, sqlx::Error> {
        <DbPool as rocket_db_pools::Pool>::init(figment).await
    }

    /// Applies the embedded migrations of the backend; returns how many the database has.
    pub async fn migrate(&self) -> Result<usize, sqlx::migrate::MigrateError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator.run(&self.pool).await?;
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

/// `sqlite://data/miniauth.db?mode=rwc` needs `data/` to exist before the first connection.
fn create_sqlite_folder(url: &str) -> std::io::Result<()> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(());
    }
    match Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent),
        _ => Ok(()),
    }
}

/// Opens the pool and applies the embedded migrations of its backend; nothing at all (not even
/// the SQLite file's folder) when the settings were refused.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Database", |rocket| async {
        match rocket.state::<crate::config::Settings>() {
            Some(_) => Ok(rocket
                .attach(Db::init())
                .attach(AdHoc::try_on_ignite("Migrations", migrate))
                .attach(super::purge::stage())),
            None => Err(rocket),
        }
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
