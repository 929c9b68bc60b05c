//! A `rocket_db_pools` pool over `sqlx::Any`: the backend comes from the URL's scheme, and
//! SQLite connections get the pragmas that make concurrent writers safe. A SQLite file is
//! readable by this user only (mode 0600), wherever the URL puts it: it holds the signing keys.

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::ops::Deref;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};
use rocket_db_pools::Database;

use super::session_check::SessionChecker;
use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
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
