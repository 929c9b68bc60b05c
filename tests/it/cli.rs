//! The admin command line, through the real binary, beside a running server on the
//! same database, on SQLite and on PostgreSQL: every subcommand, its exit status (0, 1 with one
//! line on stderr, 2 on bad usage), and what a running server makes of its changes.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{Server, JSON};
use common::{Backend, TestDatabase};
use serde_json::Value;

const PASSWORD: &str = "quiet lantern trombone";

needs_postgres! {
    /// Usernames are one name in any case by a key MiniAuth computes itself, never by the
    /// database's `lower()`: under a Turkish collation `lower('I')` is a dotless `ı`, which let
    /// `IVAN` beside `ivan`, and kept `Irene` from ever signing in.
    #[test]
    fn usernames_are_one_name_in_any_case_whatever_the_databases_collation() {
        let turkish = TestDatabase::create_postgres_with("TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'tr-TR'");
        let site = Site::on(Some(turkish));
        let register = |name: &str| {
            let body = serde_json::json!({ "username": name, "password": PASSWORD }).to_string();
            site.server.request("POST", "/auth/register", &[JSON], &body).0
        };
        let login = |name: &str| {
            let body = serde_json::json!({ "username": name, "password": PASSWORD }).to_string();
            site.server.request("POST", "/auth/login", &[JSON], &body).0
        };
        assert_eq!(register("ivan"), 201);
        assert_eq!(register("IVAN"), 409);
        assert_eq!(register("Ivan"), 409);
        assert_eq!(register("Irene"), 201);
        for name in ["Irene", "irene", "IRENE", "iRENE"] {
            assert_eq!(login(name), 200, "{name}");
        }
        assert!(site.fails(&["user", "create", "IRENE", "--password-stdin"], &format!("{PASSWORD}\n")).contains("already taken"));
        assert_eq!(site.ok(&["user", "delete", "IVAN"], ""), "deleted user ivan\n");
        assert_eq!(login("ivan"), 401);
        assert_eq!(login("Irene"), 200, "the other account was left alone");
    }
}

/// What one run of the command line gave: its exit status, standard output and error.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A server and the command line, in one folder, on one database.
struct Site {
    server: Server,
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    _database: Option<TestDatabase>,
}

impl Site {
    fn start(backend: Backend) -> Site {
        Site::on((backend == Backend::Postgres).then(|| TestDatabase::create(backend)))
    }

    /// A site on this database (`None`: SQLite in the site's folder).
    fn on(database: Option<TestDatabase>) -> Site {
        Site::with(database, &[])
    }

    /// A site whose server and commands both get the settings `extra` too.
    fn with(database: Option<TestDatabase>, extra: &[(&'static str, &str)]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![("ROCKET_BCRYPT_COST", "4".to_owned())];
        env.extend(extra.iter().map(|(name, value)| (*name, (*value).to_owned())));
        if let Some(database) = &database {
            let (name, url) = database.env();
            env.push((name, url.to_owned()));
        }
        let server_env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let server = Server::start(dir.path(), &server_env);
        Site { server, dir, env, _database: database }
    }

    /// Runs `miniauth ARGS` in the site's folder with `stdin` as its input.
    fn run(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_miniauth"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(name, value)| (*name, value.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed; returns its output.
    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let run = self.run(args, stdin);
        assert_eq!(run.code, 0, "miniauth {args:?}: {}{}", run.stdout, run.stderr);
        assert_eq!(run.stderr, "", "nothing on stderr when all is well");
        run.stdout
    }

    /// Runs a command that must fail with one line on stderr; returns that line.
    fn fails(&self, args: &[&str], stdin: &str) -> String {
        let run = self.run(args, stdin);
        assert_eq!(run.code, 1, "miniauth {args:?}: {}{}", run.stdout, run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {:?}", run.stderr);
        assert!(run.stderr.starts_with("miniauth: "), "{}", run.stderr);
        run.stderr
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args, "")).expect("JSON")
    }

    fn login(&self, username: &str, password: &str) -> (u16, Value) {
        let body = serde_json::json!({ "username": username, "password": password }).to_string();
        let (status, _, body) = self.server.request("POST", "/auth/login", &[JSON], &body);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn token(&self, username: &str, password: &str) -> String {
        let (status, body) = self.login(username, password);
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    fn profile(&self, token: &str) -> u16 {
        let auth = format!("Bearer {token}");
        self.server.request("GET", "/auth/profile", &[("Authorization", &auth)], "").0
    }
}

fn users_and_passwords(backend: Backend) {
    let site = Site::start(backend);
    assert_eq!(
        site.ok(&["user", "create", "alice", "--password-stdin"], &format!("{PASSWORD}\n")),
        "created user alice (id 1)\n"
    );
    // The running server takes the new account at once.
    let token = site.token("alice", PASSWORD);
    assert_eq!(site.profile(&token), 200);

    // The sign-up rules, with the reason; nothing is created.
    let weak = site.fails(&["user", "create", "bob", "--password-stdin"], "password\n");
    assert!(weak.contains("too easy to guess"), "{weak}");
    let named = site.fails(&["user", "create", "bob", "--password-stdin"], "bob-bob-bob-bob\n");
    assert!(named.contains("username"), "{named}");
    let taken = site.fails(&["user", "create", "ALICE", "--password-stdin"], PASSWORD);
    assert!(taken.contains("already taken"), "{taken}");
    let bad_name = site.fails(&["user", "create", "no spaces", "--password-stdin"], PASSWORD);
    assert!(!bad_name.is_empty());
    let users = site.json(&["user", "list", "--json"]);
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["sessions"], 1);
    assert_eq!(
        (users[0]["email"].clone(), users[0]["email_confirmed"].clone()),
        (serde_json::Value::Null, false.into())
    );
    assert!(site.ok(&["user", "list"], "").contains("alice"));

    // A new password: the old one and every session end at once.
    let new = "velvet hammock orbit";
    let set = site.ok(&["user", "set-password", "Alice", "--password-stdin"], &format!("{new}\r\n"));
    assert_eq!(set, "set the password of alice; revoked 1 sessions\n");
    assert_eq!(site.profile(&token), 401);
    assert_eq!(site.login("alice", PASSWORD).0, 401);
    let token = site.token("alice", new);
    let weak = site.fails(&["user", "set-password", "alice", "--password-stdin"], "alice12345\n");
    assert!(weak.contains("username") || weak.contains("guess"), "{weak}");
    assert_eq!(site.login("alice", new).0, 200, "a refused password changes nothing");
    site.fails(&["user", "set-password", "nobody", "--password-stdin"], PASSWORD);

    // Sessions revoked, then the user deleted, while the server runs.
    let revoked = site.ok(&["user", "revoke-sessions", "alice"], "");
    assert_eq!(revoked, "revoked 2 sessions of alice\n");
    assert_eq!(site.profile(&token), 401);
    let token = site.token("alice", new);
    assert_eq!(site.ok(&["user", "delete", "alice"], ""), "deleted user alice\n");
    assert_eq!(site.profile(&token), 401);
    assert_eq!(site.login("alice", new).0, 401);
    assert_eq!(site.json(&["user", "list", "--json"]), serde_json::json!([]));
    assert!(site.fails(&["user", "delete", "alice"], "").contains("no user named \"alice\""));
    assert!(site.fails(&["user", "revoke-sessions", "alice"], "").contains("no user"));
    site.server.stop();
}

fn bad_usage_is_status_2_and_every_command_has_help(backend: Backend) {
    let site = Site::start(backend);
    for args in [
        &["user", "create", "alice"][..], // the password must come from stdin
        &["user", "create", "alice", "--password", "x"],
        &["user"],
        &["keys", "spin"],
        &["throttle", "clear", "a", "b"],
        &["frobnicate"],
    ] {
        let run = site.run(args, "");
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["user", "--help"],
        &["user", "create", "--help"],
        &["user", "set-password", "--help"],
        &["user", "list", "--help"],
        &["user", "delete", "--help"],
        &["user", "revoke-sessions", "--help"],
        &["keys", "--help"],
        &["keys", "list", "--help"],
        &["keys", "rotate", "--help"],
        &["throttle", "--help"],
        &["throttle", "list", "--help"],
        &["throttle", "clear", "--help"],
        &["migrate", "--help"],
        &["purge", "--help"],
    ] {
        let help = site.ok(args, "");
        assert!(help.contains("Usage: miniauth"), "{args:?}: {help}");
    }
    assert_eq!(site.json(&["user", "list", "--json"]), serde_json::json!([]), "nothing was created");
    site.server.stop();
}

fn keys_are_listed_and_rotated_and_the_server_follows(backend: Backend) {
    let site = Site::start(backend);
    site.ok(&["user", "create", "alice", "--password-stdin"], PASSWORD);
    let before = site.token("alice", PASSWORD);
    let keys = site.json(&["keys", "list", "--json"]);
    let roles: Vec<&str> = keys.as_array().unwrap().iter().map(|key| key["role"].as_str().unwrap()).collect();
    assert_eq!(roles.len(), 2);
    assert!(roles.contains(&"current") && roles.contains(&"next"), "{keys}");
    assert!(!keys.to_string().contains("private"), "no private part is listed: {keys}");
    let table = site.ok(&["keys", "list"], "");
    assert!(table.starts_with("KID") && table.contains("current") && table.contains("next"), "{table}");

    // The next key was published a moment ago: verifiers may not have it yet.
    let refused = site.fails(&["keys", "rotate"], "");
    assert!(refused.contains("--force"), "{refused}");
    let rotated = site.ok(&["keys", "rotate", "--force"], "");
    let kid = rotated.split_whitespace().nth(2).unwrap().to_owned();
    let started = Instant::now();
    loop {
        let token = site.token("alice", PASSWORD);
        if common::jwt_header(&token)["kid"] == kid.as_str() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the server did not follow the rotation");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(site.profile(&before), 200, "a token signed before the rotation still works");
    let keys = site.json(&["keys", "list", "--json"]);
    assert_eq!(keys.as_array().unwrap().len(), 3, "{keys}");
    // A key from the configuration is the operator's to rotate.
    let mut env = site.env.clone();
    env.extend([("ROCKET_JWT_ALGORITHM", "HS256".into()), ("ROCKET_TOKEN_SECRET", "s".repeat(40))]);
    let configured = Site { env, ..site };
    assert!(configured
        .fails(&["keys", "rotate"], "")
        .contains("comes from the configuration (token_secret)"));
    configured.server.stop();
}

fn throttling_is_listed_and_cleared(backend: Backend) {
    let site = Site::start(backend);
    site.ok(&["user", "create", "alice", "--password-stdin"], PASSWORD);
    assert_eq!(site.ok(&["throttle", "list"], ""), "(none)\n");
    for _ in 0..5 {
        assert_eq!(site.login("alice", "wrong password").0, 401);
    }
    assert_eq!(site.login("alice", PASSWORD).0, 429);
    let entries = site.json(&["throttle", "list", "--json"]);
    let pair = entries.as_array().unwrap().iter().find(|e| e["kind"] == "pair").expect("the pair's counter");
    assert_eq!(
        (&pair["username"], &pair["address"], &pair["count"]),
        (&"alice".into(), &"127.0.0.1".into(), &5.into())
    );
    assert!(pair["blocked_until"].is_string(), "{pair}");

    assert_eq!(site.ok(&["throttle", "clear", "ALICE"], ""), "cleared 2 counters of ALICE\n");
    // A running server may answer from its memory of blocks for five more seconds.
    let started = Instant::now();
    while site.login("alice", PASSWORD).0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(8), "the block outlived its clearing");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(site.login("alice", "wrong password").0, 401);
    assert_eq!(site.ok(&["throttle", "clear", "127.0.0.1"], ""), "cleared 2 counters of 127.0.0.1\n");
    assert_eq!(site.login("nobody", "wrong password").0, 401);
    assert!(site.ok(&["throttle", "clear"], "").starts_with("cleared "));
    assert_eq!(site.json(&["throttle", "list", "--json"]), serde_json::json!([]));
    site.server.stop();
}

fn migrate_and_purge(backend: Backend) {
    let site = Site::start(backend);
    assert_eq!(site.ok(&["migrate"], ""), "");
    site.ok(&["user", "create", "alice", "--password-stdin"], PASSWORD);
    site.token("alice", PASSWORD);
    site.ok(&["user", "revoke-sessions", "alice"], "");
    // Ended a moment ago: kept for `retention_days`, gone with a retention of none.
    assert!(site.ok(&["purge"], "").starts_with("purged 0 rows"));
    let run = {
        let mut env = site.env.clone();
        env.push(("ROCKET_RETENTION_DAYS", "0".into()));
        Site { env, ..site }
    };
    std::thread::sleep(Duration::from_millis(1100));
    let purged = run.ok(&["purge"], "");
    assert!(purged.starts_with("purged ") && !purged.starts_with("purged 0 "), "{purged}");
    run.server.stop();
}

#[test]
fn a_database_out_of_reach_is_status_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_miniauth"))
        .args(["user", "list"])
        .current_dir(dir.path())
        .env("ROCKET_DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing")
        .env(
            "ROCKET_DATABASES",
            r#"{miniauth={url="postgres://postgres@127.0.0.1:1/nothing",connect_timeout=1}}"#,
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("miniauth: cannot use the database (PostgreSQL"), "{stderr}");
    assert!(!Path::new(&dir.path().join("data/miniauth.db")).exists());
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::Backend::Sqlite) } )*
        }
        mod postgres {
            $crate::needs_postgres! {
                $( #[test] fn $name() { super::$name(super::Backend::Postgres) } )*
            }
        }
    };
}

/// Closed registration shuts the public doors only: the administrator still creates accounts,
/// and they sign in.
fn administrators_create_accounts_when_sign_up_is_closed(backend: Backend) {
    let database = (backend == Backend::Postgres).then(|| TestDatabase::create(backend));
    let site = Site::with(database, &[("ROCKET_REGISTRATION", "closed")]);
    let body = serde_json::json!({ "username": "walkin", "password": PASSWORD }).to_string();
    assert_eq!(site.server.request("POST", "/auth/register", &[JSON], &body).0, 403);
    assert_eq!(
        site.ok(&["user", "create", "alice", "--password-stdin"], &format!("{PASSWORD}\n")),
        "created user alice (id 1)\n"
    );
    site.token("alice", PASSWORD);
    assert_eq!(site.login("walkin", PASSWORD).0, 401, "the refused sign-up created nothing");
}

on_both_backends!(
    administrators_create_accounts_when_sign_up_is_closed,
    users_and_passwords,
    bad_usage_is_status_2_and_every_command_has_help,
    keys_are_listed_and_rotated_and_the_server_follows,
    throttling_is_listed_and_cleared,
    migrate_and_purge,
);
