//! The real binary, started as `cargo run` starts it: zero configuration, the SQLite file under
//! `data/` holding the generated keys, sessions that survive a restart, one log line per
//! request, and no secret in any log line.

use crate::common;

use std::path::Path;

use common::server::{Server, JSON};
use common::{Backend, TestDatabase};

fn json_field(body: &str, field: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    value[field].as_str().expect("a string field").to_owned()
}

#[test]
fn zero_configuration_start_keeps_sessions_across_restarts_and_logs_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert!(dir.path().join("data/miniauth.db").exists());
    sign_in_restart_and_check_logs(dir.path(), server, &[]);
}

needs_postgres! {
    /// The same binary on PostgreSQL, chosen by one variable.
    #[test]
    fn one_variable_switches_the_binary_to_postgresql() {
        let database = TestDatabase::create(Backend::Postgres);
        let dir = tempfile::tempdir().unwrap();
        let env = [database.env()];
        let server = Server::start(dir.path(), &env);
        assert!(!dir.path().join("data/miniauth.db").exists(), "no SQLite file when PostgreSQL is chosen");
        let log = sign_in_restart_and_check_logs(dir.path(), server, &env);
        assert!(log.contains("database: PostgreSQL"), "{log}");
        assert!(!log.contains("postgres://"), "the log shows no database URL:\n{log}");
    }
}

/// Registers and signs in, restarts the server, and checks the token still works and that no
/// secret reached the log. Returns the log of both runs.
fn sign_in_restart_and_check_logs(dir: &Path, server: Server, env: &[(&str, &str)]) -> String {
    let password = "Secret-Pa55word-never-logged";

    // No secret is written to a file: the keys and the shared secret live in the database.
    assert!(!dir.join("data/secret.key").exists());

    let credentials = format!(r#"{{"username":"Walter","password":"{password}"}}"#);
    let (status, _, _) = server.request("POST", "/auth/register", &[JSON], &credentials);
    assert_eq!(status, 201);
    let (status, head, body) = server.request("POST", "/auth/login", &[JSON], &credentials);
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("cache-control: no-store"));
    let token = json_field(&body, "access_token");
    let auth = format!("Bearer {token}");

    // Over real HTTP too, an oversized body is refused with problem+json.
    let big = format!(r#"{{"username":"x","password":"{}"}}"#, "a".repeat(64 * 1024));
    let (status, head, _) = server.request("POST", "/auth/register", &[JSON], &big);
    assert_eq!(status, 413);
    assert!(head.contains("application/problem+json"), "{head}");
    let first_log = server.stop();

    // After a restart the same token still works: the keys and the session were persisted.
    let server = Server::start(dir, env);
    let (status, _, body) = server.request("GET", "/auth/profile", &[("Authorization", &auth)], "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_field(&body, "username"), "Walter");
    let log = first_log + &server.stop();

    assert!(
        log.contains("signing keys: EdDSA from the database, key "),
        "the log names the signing key:\n{log}"
    );
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
    let request_lines = log.lines().filter(|l| l.contains("miniauth::request")).count();
    // Start-up probes poll /healthz, so count the routes we called.
    for line in [
        "POST /auth/register 201",
        "POST /auth/login 200",
        "POST /auth/register 413",
        "GET /auth/profile 200",
    ] {
        assert_eq!(log.matches(line).count(), 1, "one line for {line}:\n{log}");
    }
    assert!(request_lines >= 4);
    let url = env.iter().find(|(name, _)| *name == "ROCKET_DATABASE_URL").map(|(_, url)| url.to_string());
    let url = url.unwrap_or_else(|| format!("sqlite://{}", dir.join("data/miniauth.db").display()));
    let mut secrets = stored_secrets(&url);
    assert_eq!(secrets.len(), 3, "two signing keys and the shared secret");
    secrets.extend([password.to_owned(), token, "$2b$".into(), "$2y$".into(), "PRIVATE KEY".into()]);
    for secret_text in secrets {
        assert!(!log.contains(&secret_text), "the log leaks {secret_text:?}:\n{log}");
    }
    log
}

/// The private keys and the shared secret in the database at `url`.
fn stored_secrets(url: &str) -> Vec<String> {
    let runtime = rocket::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
        let sql = "SELECT private_key FROM signing_keys UNION ALL SELECT value FROM server_secrets";
        let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
        rows.into_iter().map(|(secret,)| secret).collect()
    })
}
