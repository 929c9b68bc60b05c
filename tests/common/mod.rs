//! The one way tests build an app: every test gets its own fresh database (a SQLite file in a
//! temporary folder, or a new PostgreSQL database when `MINIAUTH_TEST_POSTGRES_URL` is set)
//! and its own data folder. `backend_tests!` runs each test on both backends.
#![allow(dead_code)]

pub mod browser;
pub mod server;

use std::sync::atomic::{AtomicUsize, Ordering};

use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::serde::json::{json, Value};
use rocket::{Build, Rocket};
use sqlx::Connection;

pub use miniauth::store::Backend;

/// A running app on a fresh database.
pub struct TestApp {
    pub client: Client,
    pub backend: Backend,
    pub database_url: String,
    pub data_dir: tempfile::TempDir,
}

/// Settings every test app gets: a cheap bcrypt cost, no logger, its own folder and database.
fn test_figment(database_url: &str, data_dir: &std::path::Path) -> Figment {
    rocket::Config::figment()
        .merge(("database_url", database_url))
        .merge(("databases.miniauth.url", database_url))
        .merge(("databases.miniauth.max_connections", 8))
        .merge(("data_dir", data_dir.display().to_string()))
        .merge(("bcrypt_cost", 4))
        .merge(("log_level", "off"))
        .merge(("cli_colors", false))
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (in this or another process) uses.
fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("miniauth_test_{}_{n}_{nanos}", std::process::id())
}

/// The PostgreSQL server to test against, if any. Under CI it must be given.
pub fn postgres_base_url() -> Option<String> {
    match std::env::var("MINIAUTH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!("CI must set MINIAUTH_TEST_POSTGRES_URL"),
        _ => None,
    }
}

/// A URL for a fresh database on `backend`, or `None` when PostgreSQL is not configured.
pub async fn fresh_database(backend: Backend, data_dir: &std::path::Path) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}/miniauth.db?mode=rwc", data_dir.display())),
        Backend::Postgres => {
            let base = postgres_base_url()?;
            let name = unique_name();
            let mut conn = sqlx::postgres::PgConnection::connect(&base).await.expect("connect to PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create database");
            let (server, _) = base.rsplit_once('/').expect("URL ends with /database");
            Some(format!("{server}/{name}"))
        }
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, |figment| figment).await
    }

    /// An app with settings changed by `configure` (e.g. a higher bcrypt cost).
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(Figment) -> Figment) -> Option<TestApp> {
        TestApp::spawn_custom(backend, configure, |rocket| rocket).await
    }

    /// An app with changed settings and extra routes (e.g. one that fails on purpose).
    pub async fn spawn_custom(
        backend: Backend,
        configure: impl FnOnce(Figment) -> Figment,
        extend: impl FnOnce(Rocket<Build>) -> Rocket<Build>,
    ) -> Option<TestApp> {
        let data_dir = tempfile::tempdir().expect("temporary folder");
        let database_url = fresh_database(backend, data_dir.path()).await?;
        let figment = configure(test_figment(&database_url, data_dir.path()));
        let client = Client::tracked(extend(miniauth::build(figment))).await.expect("the app starts");
        Some(TestApp { client, backend, database_url, data_dir })
    }

    pub async fn post_json(&self, uri: &str, body: Value) -> LocalResponse<'_> {
        self.client.post(uri.to_owned()).header(ContentType::JSON).body(body.to_string()).dispatch().await
    }

    pub async fn register(&self, username: &str, password: &str) -> LocalResponse<'_> {
        self.post_json("/auth/register", json!({ "username": username, "password": password })).await
    }

    pub async fn login(&self, username: &str, password: &str) -> LocalResponse<'_> {
        self.post_json("/auth/login", json!({ "username": username, "password": password })).await
    }

    /// Registers a user and signs in through the API; returns the access token.
    pub async fn token_for(&self, username: &str, password: &str) -> String {
        assert_eq!(self.register(username, password).await.status(), Status::Created);
        let response = self.login(username, password).await;
        assert_eq!(response.status(), Status::Ok);
        let body: Value = response.into_json().await.expect("token JSON");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    pub async fn profile(&self, token: &str) -> LocalResponse<'_> {
        self.client.get("/auth/profile").header(bearer(token)).dispatch().await
    }

    /// Runs one SQL statement against the app's database and returns the first column of the
    /// first row as an integer (for counting rows).
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.database_url).await.expect("connect");
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.expect("query");
        n
    }
}

impl Drop for TestApp {
    /// Drops a test's PostgreSQL database (on a thread of its own: `Drop` cannot await).
    fn drop(&mut self) {
        if self.backend != Backend::Postgres {
            return;
        }
        let (Some(base), Some((_, name))) = (postgres_base_url(), self.database_url.rsplit_once('/')) else {
            return;
        };
        let name = name.to_owned();
        let dropped = std::thread::spawn(move || {
            let runtime = rocket::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut conn = sqlx::postgres::PgConnection::connect(&base).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await
            })
        });
        if let Ok(Err(e)) = dropped.join() {
            eprintln!("could not drop test database: {e}");
        }
    }
}

pub fn bearer(token: &str) -> Header<'static> {
    Header::new("Authorization", format!("Bearer {token}"))
}

/// The body of a problem+json answer, after checking its content type and `status` field.
pub async fn problem(response: LocalResponse<'_>, status: Status) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.content_type().expect("a content type").to_string();
    assert!(content_type.starts_with("application/problem+json"), "got {content_type}");
    let body: Value = response.into_json().await.expect("problem JSON");
    assert_eq!(body["status"], status.code);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}

/// Defines each listed `async fn name(app: TestApp)` as a test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[rocket::async_test]
                async fn $name() {
                    let app = $crate::common::TestApp::spawn($crate::common::Backend::Sqlite).await.unwrap();
                    super::$name(app).await
                }
            )*
        }
        mod postgres {
            $(
                #[rocket::async_test]
                async fn $name() {
                    match $crate::common::TestApp::spawn($crate::common::Backend::Postgres).await {
                        Some(app) => super::$name(app).await,
                        None => eprintln!("skipped: set MINIAUTH_TEST_POSTGRES_URL to test PostgreSQL"),
                    }
                }
            )*
        }
    };
}

/// Defines `$sqlite` and `$postgres` as tests of `async fn $name(app: TestApp)` on SQLite and on
/// PostgreSQL, each on an app whose settings `$configure` changes (as `TestApp::spawn_with`
/// takes them): for tests that need settings `backend_tests!` does not give.
#[macro_export]
macro_rules! backend_tests_with {
    ($configure:expr; $($name:ident => $sqlite:ident, $postgres:ident),+ $(,)?) => {
        $(
            #[rocket::async_test]
            async fn $sqlite() {
                let backend = $crate::common::Backend::Sqlite;
                let app = $crate::common::TestApp::spawn_with(backend, $configure).await.unwrap();
                $name(app).await
            }

            #[rocket::async_test]
            async fn $postgres() {
                match $crate::common::TestApp::spawn_with($crate::common::Backend::Postgres, $configure).await {
                    Some(app) => $name(app).await,
                    None => eprintln!("skipped: set MINIAUTH_TEST_POSTGRES_URL to test PostgreSQL"),
                }
            }
        )+
    };
}
