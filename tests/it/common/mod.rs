//! The one test harness.
//!
//! - [`TestDatabase`]: a fresh database of its own (a SQLite file in a temporary folder, or a new
//!   PostgreSQL database on the server `MINIAUTH_TEST_POSTGRES_URL` names) that removes itself
//!   when dropped, also when the test panics.
//! - [`TestApp`]: the app on a fresh database and data folder, with a tracked client; its
//!   methods speak the JSON API (register, sign in, refresh, sessions, …) and read the database.
//! - [`Tokens`]: what one sign-in through the API gives.
//! - `backend_tests!` / `backend_tests_with!`: each test on SQLite and on PostgreSQL.
//! - `needs_postgres!`: tests that need PostgreSQL, ignored unless asked for. Plain `cargo test`
//!   reports them as ignored; `MINIAUTH_TEST_POSTGRES_URL=… cargo test -- --include-ignored`
//!   runs them too, and a PostgreSQL test that runs without the URL fails.
//! - [`browser`]: the pages as a browser uses them (forms, CSRF, cookies); [`server`]: the real
//!   binary over a socket; [`mail`]: the messages MiniAuth sends, and a real SMTP server;
//!   [`proxy`]: real nginx and Caddy in front of an app that echoes what it receives.
#![allow(dead_code)]

pub mod authenticator;
pub mod browser;
pub mod mail;
pub mod proxy;
pub mod server;

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::serde::json::{json, serde_json, Value};
use rocket::{Build, Rocket};
use sqlx::Connection;

// The cookie names, as the crate defines them (not every test file uses each).
pub use miniauth::store::Backend;
use miniauth::web::CSRF_HEADER;
#[allow(unused_imports)]
pub use miniauth::web::{CSRF_COOKIE, REFRESH_COOKIE, SECURE_CSRF_COOKIE, TOKEN_COOKIE};

// ---------------------------------------------------------------------------------------------
// Databases

/// The PostgreSQL server to test against, if any (`MINIAUTH_TEST_POSTGRES_URL`).
pub fn postgres_base_url() -> Option<String> {
    std::env::var("MINIAUTH_TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty())
}

/// The PostgreSQL server to test against, for a test that needs one: the tests that call this
/// are ignored unless asked for (see `needs_postgres!`), so one that runs without a server fails.
pub fn required_postgres_base_url() -> String {
    postgres_base_url().unwrap_or_else(|| {
        panic!("needs PostgreSQL: set MINIAUTH_TEST_POSTGRES_URL=postgres://user@host:port/db")
    })
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (in this or another process) uses.
fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("miniauth_test_{}_{n}_{nanos}", std::process::id())
}

/// A fresh, empty database for one test. Dropping it removes it: the temporary folder of the
/// SQLite file, or the PostgreSQL database (`DROP DATABASE … WITH (FORCE)`, so connections still
/// open do not keep it) — also when the test panics.
pub struct TestDatabase {
    pub backend: Backend,
    /// The URL to give the app (`database_url`, `ROCKET_DATABASE_URL`).
    pub url: String,
    place: Place,
}

enum Place {
    /// Held until the database is dropped: the folder goes with it.
    Sqlite(tempfile::TempDir),
    Postgres {
        server: String,
        name: String,
    },
}

impl TestDatabase {
    /// A fresh database on `backend`. Panics when that is PostgreSQL and
    /// `MINIAUTH_TEST_POSTGRES_URL` is not set (see [`required_postgres_base_url`]).
    pub fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}/miniauth.db?mode=rwc", dir.path().display());
                TestDatabase { backend, url, place: Place::Sqlite(dir) }
            }
            Backend::Postgres => {
                let server = required_postgres_base_url();
                let name = unique_name();
                on_postgres(&server, format!("CREATE DATABASE {name}")).expect("create a test database");
                let (host, _) = server.rsplit_once('/').expect("URL ends with /database");
                let url = format!("{host}/{name}");
                TestDatabase { backend, url, place: Place::Postgres { server, name } }
            }
        }
    }

    /// A fresh PostgreSQL database created with these options (a collation, a locale), e.g.
    /// `TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'tr-TR'`.
    pub fn create_postgres_with(options: &str) -> TestDatabase {
        let server = required_postgres_base_url();
        let name = unique_name();
        on_postgres(&server, format!("CREATE DATABASE {name} {options}")).expect("create a test database");
        let (host, _) = server.rsplit_once('/').expect("URL ends with /database");
        let url = format!("{host}/{name}");
        TestDatabase { backend: Backend::Postgres, url, place: Place::Postgres { server, name } }
    }

    /// The variable that points the real binary at this database.
    pub fn env(&self) -> (&'static str, &str) {
        ("ROCKET_DATABASE_URL", &self.url)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Place::Postgres { server, name } = &self.place {
            if let Err(e) = on_postgres(server, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")) {
                eprintln!("could not drop test database {name}: {e}");
            }
        }
    }
}

/// Runs one statement on the PostgreSQL server at `url`, on a thread and runtime of its own: it
/// serves synchronous tests and `Drop` (which cannot await) alike.
fn on_postgres(url: &str, sql: String) -> Result<(), sqlx::Error> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = rocket::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut conn = sqlx::postgres::PgConnection::connect(&url).await?;
            sqlx::query(&sql).execute(&mut conn).await.map(drop)
        })
    })
    .join()
    .expect("the PostgreSQL thread does not panic")
}

// ---------------------------------------------------------------------------------------------
// The app

/// A running app on a fresh database, with a client that keeps cookies like a browser.
pub struct TestApp {
    // Declared first, dropped first: the app closes its pool before its database goes.
    pub client: Client,
    pub database: TestDatabase,
    pub data_dir: tempfile::TempDir,
}

/// The tokens of one sign-in through the API.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    /// The tokens in a sign-in or refresh answer.
    pub fn of(body: &Value) -> Tokens {
        Tokens {
            access: body["access_token"].as_str().expect("access_token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh_token").to_owned(),
        }
    }
}

/// A signing key of the app's, to make tokens the app should take (or, changed, refuse).
pub struct TestKey {
    pub kid: String,
    pub algorithm: jsonwebtoken::Algorithm,
    /// An Ed25519 key's PKCS#8 document, or an HS256 key's bytes.
    pub private: Vec<u8>,
}

impl TestKey {
    pub fn encoding(&self) -> jsonwebtoken::EncodingKey {
        match self.algorithm {
            jsonwebtoken::Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_der(&self.private),
            _ => jsonwebtoken::EncodingKey::from_secret(&self.private),
        }
    }

    /// `claims` signed as the app signs: its algorithm, this key, and the key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding()).expect("sign")
    }
}

/// Settings every test app gets: a cheap bcrypt cost, no logger, its own folder and database.
fn test_figment(database_url: &str, data_dir: &std::path::Path) -> Figment {
    miniauth::config::figment()
        .merge(("database_url", database_url))
        .merge(("databases.miniauth.url", database_url))
        .merge(("databases.miniauth.max_connections", 8))
        .merge(("data_dir", data_dir.display().to_string()))
        .merge(("bcrypt_cost", 4))
        .merge(("log_level", "off"))
        .merge(("cli_colors", false))
}

impl TestApp {
    /// An app on a fresh database (see [`TestDatabase::create`]).
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, |figment| figment).await
    }

    /// An app with settings changed by `configure` (e.g. a higher bcrypt cost).
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(Figment) -> Figment) -> TestApp {
        TestApp::spawn_custom(backend, configure, |rocket| rocket).await
    }

    /// An app with changed settings and extra routes (e.g. one that fails on purpose).
    pub async fn spawn_custom(
        backend: Backend,
        configure: impl FnOnce(Figment) -> Figment,
        extend: impl FnOnce(Rocket<Build>) -> Rocket<Build>,
    ) -> TestApp {
        let database = TestDatabase::create(backend);
        let data_dir = tempfile::tempdir().expect("temporary folder");
        let figment = configure(test_figment(&database.url, data_dir.path()));
        let client = Client::tracked(extend(miniauth::build(figment))).await.expect("the app starts");
        TestApp { client, database, data_dir }
    }

    pub fn backend(&self) -> Backend {
        self.database.backend
    }

    /// The app's own database, for what no route does (groups, invitations: the commands').
    pub fn store(&self) -> miniauth::store::Store {
        use rocket_db_pools::Database;
        let db = miniauth::store::Db::fetch(self.client.rocket()).expect("the database");
        miniauth::store::Store::clone(db)
    }

    pub async fn post_json(&self, uri: &str, body: Value) -> LocalResponse<'_> {
        self.client.post(uri.to_owned()).header(ContentType::JSON).body(body.to_string()).dispatch().await
    }

    /// A JSON call of the signed-in holder of `token`.
    pub async fn post_json_as(&self, uri: &str, token: &str, body: Value) -> LocalResponse<'_> {
        let request = self.client.post(uri.to_owned()).header(ContentType::JSON).header(bearer(token));
        request.body(body.to_string()).dispatch().await
    }

    /// Turns on two-step sign-in for the holder of `token`, with the code of now: the secret
    /// and the recovery codes.
    pub async fn turn_on_totp(&self, token: &str, password: &str) -> (String, Vec<String>) {
        let setup =
            expect(self.post_json_as("/auth/totp", token, json!({ "password": password })).await, Status::Ok)
                .await;
        let secret = setup["secret"].as_str().expect("a secret").to_owned();
        let code = totp_code(&secret, now());
        let confirmed = self.post_json_as("/auth/totp/confirm", token, json!({ "code": code })).await;
        let confirmed = expect(confirmed, Status::Ok).await;
        let codes = confirmed["recovery_codes"].as_array().expect("recovery codes");
        (secret, codes.iter().map(|code| code.as_str().unwrap().to_owned()).collect())
    }

    pub async fn register(&self, username: &str, password: &str) -> LocalResponse<'_> {
        self.post_json("/auth/register", json!({ "username": username, "password": password })).await
    }

    pub async fn login(&self, username: &str, password: &str) -> LocalResponse<'_> {
        self.post_json("/auth/login", json!({ "username": username, "password": password })).await
    }

    /// Registers through the API, which must answer 201; returns the user it answers.
    pub async fn registered(&self, username: &str, password: &str) -> Value {
        expect(self.register(username, password).await, Status::Created).await
    }

    /// Signs in through the API, which must answer 200; returns both tokens.
    pub async fn sign_in(&self, username: &str, password: &str) -> Tokens {
        Tokens::of(&expect(self.login(username, password).await, Status::Ok).await)
    }

    /// Signs in through the API from another device: one that sends `agent` as its `User-Agent`.
    pub async fn sign_in_as(&self, username: &str, password: &str, agent: &str) -> Tokens {
        let response = self
            .client
            .post("/auth/login")
            .header(ContentType::JSON)
            .header(user_agent(agent))
            .body(json!({ "username": username, "password": password }).to_string())
            .dispatch()
            .await;
        Tokens::of(&expect(response, Status::Ok).await)
    }

    /// Registers `username` and signs in `N` times through the API: the tokens of `N` sessions
    /// (`let [tokens] = app.register_and_sign_in(…)` for one).
    pub async fn register_and_sign_in<const N: usize>(&self, username: &str, password: &str) -> [Tokens; N] {
        self.registered(username, password).await;
        let mut signed_in = Vec::with_capacity(N);
        for _ in 0..N {
            signed_in.push(self.sign_in(username, password).await);
        }
        signed_in.try_into().unwrap_or_else(|_| unreachable!("N sign-ins"))
    }

    pub async fn refresh(&self, refresh_token: &str) -> LocalResponse<'_> {
        self.post_json("/auth/refresh", json!({ "refresh_token": refresh_token })).await
    }

    pub async fn profile(&self, token: &str) -> LocalResponse<'_> {
        self.client.get("/auth/profile").header(bearer(token)).dispatch().await
    }

    /// `POST /auth/logout{query}` with a bearer token (`query` is `""` or e.g. `"?scope=global"`).
    pub async fn logout(&self, token: &str, query: &str) -> LocalResponse<'_> {
        self.client.post(format!("/auth/logout{query}")).header(bearer(token)).dispatch().await
    }

    /// Whether a bearer token still opens the API profile (200), or is refused (401 problem).
    pub async fn token_works(&self, token: &str) -> bool {
        let response = self.profile(token).await;
        match response.status() {
            Status::Ok => true,
            status => {
                problem(response, status).await;
                assert_eq!(status, Status::Unauthorized);
                false
            }
        }
    }

    /// The session list (`GET /auth/sessions`) seen with `token`.
    pub async fn sessions(&self, token: &str) -> Vec<Value> {
        let response = self.client.get("/auth/sessions").header(bearer(token)).dispatch().await;
        let body = expect(response, Status::Ok).await;
        body.as_array().expect("a JSON array of sessions").clone()
    }

    /// The id of the session a token belongs to, as the session list shows it.
    pub async fn session_id(&self, token: &str) -> String {
        let current: Vec<Value> =
            self.sessions(token).await.into_iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1, "exactly one current session: {current:?}");
        current[0]["id"].as_str().expect("an id").to_owned()
    }

    /// The key the app signs access tokens with now, read from its database.
    pub async fn signing_key(&self) -> TestKey {
        let mut conn = self.connect().await;
        let (kid, algorithm, private_key): (String, String, String) = sqlx::query_as(
            "SELECT kid, algorithm, private_key FROM signing_keys \
             WHERE activated_at IS NOT NULL AND retired_at IS NULL AND algorithm <> 'RS256' \
             ORDER BY CASE algorithm WHEN 'HS256' THEN 0 ELSE 1 END",
        )
        .fetch_one(&mut conn)
        .await
        .expect("a current signing key");
        let algorithm = algorithm.parse().expect("a JWT algorithm");
        TestKey { kid, algorithm, private: URL_SAFE_NO_PAD.decode(private_key).expect("base64url") }
    }

    /// Takes every connection of the app's pool (until one cannot be had within the pool's
    /// `connect_timeout`) and holds them while the result lives: to the app's requests, the
    /// database is out of reach.
    pub async fn hold_every_connection(&self) -> Vec<sqlx::pool::PoolConnection<sqlx::Any>> {
        let db = self.client.rocket().state::<miniauth::store::Db>().expect("the pool");
        let mut held = Vec::new();
        while let Ok(connection) = db.acquire().await {
            held.push(connection);
        }
        held
    }

    /// A connection of its own to the app's database.
    async fn connect(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.database.url).await.expect("connect")
    }

    /// Runs one SQL statement against the app's database and returns the first column of the
    /// first row as an integer (for counting rows).
    pub async fn count(&self, sql: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut self.connect().await).await.expect("query");
        n
    }

    /// Runs SQL statements, in order, on one connection of its own to the app's database.
    pub async fn execute(&self, statements: &[String]) {
        let mut conn = self.connect().await;
        for statement in statements {
            sqlx::query(statement).execute(&mut conn).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Headers and answers

pub fn bearer(token: &str) -> Header<'static> {
    Header::new("Authorization", format!("Bearer {token}"))
}

/// The header that carries a CSRF token on a request the cookie authenticates.
pub fn csrf_header(token: &str) -> Header<'static> {
    Header::new(CSRF_HEADER, token.to_owned())
}

/// The `User-Agent` a client (a device, a browser) calls itself by.
pub fn user_agent(agent: &str) -> Header<'static> {
    Header::new("User-Agent", agent.to_owned())
}

/// The JSON body of an answer that must have `status` (the body is shown when it has not);
/// `Null` when the body is not JSON (or empty).
pub async fn expect(response: LocalResponse<'_>, status: Status) -> Value {
    let got = response.status();
    let body = response.into_string().await.unwrap_or_default();
    assert_eq!(got, status, "body: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// The JSON body of an answer, whatever its status.
pub async fn json_of(response: LocalResponse<'_>) -> Value {
    response.into_json().await.expect("a JSON body")
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

/// The code an authenticator app with this secret (base32) shows at `at` (unix seconds).
pub fn totp_code(secret: &str, at: i64) -> String {
    miniauth::auth::second_factor::Totp::decode(secret).expect("a secret").code_at(at)
}

/// The `id` of a user as the API answers it.
pub fn user_id(user: &Value) -> i64 {
    user["id"].as_i64().expect("an id")
}

/// The claims of a JWT, read without checking the signature.
pub fn jwt_payload(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Seconds since the Unix epoch.
/// The header of a JWT, decoded.
pub fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url")).expect("JSON")
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with fields in range.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let number = |at: usize, len: usize| -> Option<u32> {
        let digits = b.get(at..at + len)?;
        digits.iter().all(u8::is_ascii_digit).then(|| std::str::from_utf8(digits).ok()?.parse().ok())?
    };
    let date_time = (|| {
        let (month, day) = (number(5, 2)?, number(8, 2)?);
        let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
        number(0, 4)?;
        let separators =
            b[4] == b'-' && b[7] == b'-' && matches!(b[10], b'T' | b't') && b[13] == b':' && b[16] == b':';
        Some(
            separators
                && (1..=12).contains(&month)
                && (1..=31).contains(&day)
                && hour < 24
                && minute < 60
                && second <= 60,
        )
    })();
    if date_time != Some(true) {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &fraction[digits..];
    }
    let offset = rest.as_bytes();
    let two_digits = |at: usize| {
        let (tens, ones) = (offset[at], offset[at + 1]);
        (tens.is_ascii_digit() && ones.is_ascii_digit()).then(|| (tens - b'0') * 10 + (ones - b'0'))
    };
    matches!(rest, "Z" | "z")
        || (offset.len() == 6
            && matches!(offset[0], b'+' | b'-')
            && offset[3] == b':'
            && two_digits(1).is_some_and(|h| h < 24)
            && two_digits(4).is_some_and(|m| m < 60))
}

// ---------------------------------------------------------------------------------------------
// One test on both backends

/// Marks each test in it as one that needs PostgreSQL: ignored, with the reason, unless asked
/// for with `cargo test -- --include-ignored` (and `MINIAUTH_TEST_POSTGRES_URL` set), so the
/// counts say what ran. The one place the reason is written: `#[ignore]` takes no constant.
#[macro_export]
macro_rules! needs_postgres {
    ($($test:item)*) => {
        $(
            #[ignore = "needs PostgreSQL: set MINIAUTH_TEST_POSTGRES_URL and run cargo test -- --include-ignored"]
            $test
        )*
    };
}

/// Defines each listed `async fn name(app: TestApp)` as a test on SQLite and on PostgreSQL
/// (the latter ignored unless asked for: see `needs_postgres!`).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[rocket::async_test]
                async fn $name() {
                    let app = $crate::common::TestApp::spawn($crate::common::Backend::Sqlite).await;
                    super::$name(app).await
                }
            )*
        }
        mod postgres {
            $crate::needs_postgres! {
                $(
                    #[rocket::async_test]
                    async fn $name() {
                        let app = $crate::common::TestApp::spawn($crate::common::Backend::Postgres).await;
                        super::$name(app).await
                    }
                )*
            }
        }
    };
}

/// Defines `$sqlite` and `$postgres` as tests of `async fn $name(app: TestApp)` on SQLite and on
/// PostgreSQL (the latter ignored unless asked for: see `needs_postgres!`), each on an app whose
/// settings `$configure` changes (as `TestApp::spawn_with` takes them): for tests that need
/// settings `backend_tests!` does not give.
#[macro_export]
macro_rules! backend_tests_with {
    ($configure:expr; $($name:ident => $sqlite:ident, $postgres:ident),+ $(,)?) => {
        $(
            #[rocket::async_test]
            async fn $sqlite() {
                let backend = $crate::common::Backend::Sqlite;
                let app = $crate::common::TestApp::spawn_with(backend, $configure).await;
                $name(app).await
            }

            $crate::needs_postgres! {
                #[rocket::async_test]
                async fn $postgres() {
                    let backend = $crate::common::Backend::Postgres;
                    let app = $crate::common::TestApp::spawn_with(backend, $configure).await;
                    $name(app).await
                }
            }
        )+
    };
}
