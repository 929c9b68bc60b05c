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
        // Nothing on stderr when all is well, but the record of a change to groups or
        // invitations (see `recorded`).
        let others: Vec<&str> =
            run.stderr.lines().filter(|line| !line.contains(" miniauth::audit] ")).collect();
        assert!(others.is_empty(), "nothing on stderr when all is well: {}", run.stderr);
        run.stdout
    }

    /// Runs a command that changes groups or invitations: its standard output, and the one line
    /// it records (on standard error, under the log target `miniauth::audit`).
    fn recorded(&self, args: &[&str]) -> (String, String) {
        let run = self.run(args, "");
        assert_eq!(run.code, 0, "miniauth {args:?}: {}{}", run.stdout, run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {:?}", run.stderr);
        let line = run.stderr.trim_end().to_owned();
        assert!(line.contains(" INFO  miniauth::audit] "), "{line}");
        (run.stdout, line.split("miniauth::audit] ").nth(1).unwrap_or_default().to_owned())
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
        &["invite", "create", "--expires", "soon"],
        &["invite", "revoke", "three"],
        &["group", "add", "family"],
        &["client", "create", "Wiki"], // a redirect address is required
        &["client", "create", "Wiki", "--redirect-uri", "https://a.test/cb", "--id-token-alg", "HS256"],
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
        &["user", "reset-second-factor", "--help"],
        &["keys", "--help"],
        &["keys", "list", "--help"],
        &["keys", "rotate", "--help"],
        &["throttle", "--help"],
        &["throttle", "list", "--help"],
        &["throttle", "clear", "--help"],
        &["invite", "--help"],
        &["invite", "create", "--help"],
        &["invite", "list", "--help"],
        &["invite", "revoke", "--help"],
        &["group", "--help"],
        &["group", "create", "--help"],
        &["group", "delete", "--help"],
        &["group", "list", "--help"],
        &["group", "add", "--help"],
        &["group", "remove", "--help"],
        &["client", "--help"],
        &["client", "create", "--help"],
        &["client", "list", "--help"],
        &["client", "delete", "--help"],
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
    // "rotated EdDSA: key <kid> signs now; …" (the ID tokens' RSA keys do not exist yet).
    assert!(rotated.starts_with("rotated EdDSA: key ") && !rotated.contains("RS256"), "{rotated}");
    let kid = rotated.split_whitespace().nth(3).unwrap().to_owned();
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
    // A key from the configuration is the operator's to rotate; the Ed25519 keys in the
    // database then sign the ID tokens of apps that ask for EdDSA, and rotate as before.
    let mut env = site.env.clone();
    env.extend([("ROCKET_JWT_ALGORITHM", "HS256".into()), ("ROCKET_TOKEN_SECRET", "s".repeat(40))]);
    let configured = Site { env, ..site };
    let rotated = configured.ok(&["keys", "rotate", "--force"], "");
    assert!(rotated.starts_with("rotated EdDSA: key "), "{rotated}");
    assert!(rotated.contains("their key comes from the configuration (token_secret)"), "{rotated}");
    let table = configured.ok(&["keys", "list"], "");
    assert!(table.contains("ID tokens") && table.contains("token_secret"), "{table}");
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

/// Groups through the commands, beside a running server: made, listed, joined and left (the
/// server sees each change at the next request), deleted; each change recorded in one line.
fn groups_are_managed_and_the_server_follows(backend: Backend) {
    let database = (backend == Backend::Postgres).then(|| TestDatabase::create(backend));
    let site = Site::with(database, &[("ROCKET_REGISTRATION", "closed")]);
    site.ok(&["user", "create", "alice", "--password-stdin"], &format!("{PASSWORD}\n"));
    let token = site.token("alice", PASSWORD);
    let groups = |token: &str| {
        let auth = format!("Bearer {token}");
        let (_, _, body) = site.server.request("GET", "/auth/profile", &[("Authorization", &auth)], "");
        serde_json::from_str::<Value>(&body).unwrap()["groups"].clone()
    };
    assert_eq!(
        site.recorded(&["group", "create", "Family"]),
        ("created group Family\n".into(), "group Family created".into())
    );
    assert!(site.fails(&["group", "create", "FAMILY"], "").contains("already"));
    assert!(site.fails(&["group", "create", "the family"], "").contains("username rule"));
    assert!(site.fails(&["group", "add", "friends", "alice"], "").contains("no group named \"friends\""));
    assert!(site.fails(&["group", "add", "family", "nobody"], "").contains("no user named \"nobody\""));
    let (out, line) = site.recorded(&["group", "add", "family", "ALICE"]);
    assert_eq!((out.as_str(), line.as_str()), ("added alice to Family\n", "group Family: alice added"));
    assert_eq!(site.ok(&["group", "add", "family", "alice"], ""), "alice was in Family already\n");
    assert_eq!(groups(&token), serde_json::json!(["Family"]), "the server sees it at once");
    let listed = site.json(&["group", "list", "--json"]);
    assert_eq!(
        (listed[0]["name"].clone(), listed[0]["members"].clone()),
        ("Family".into(), serde_json::json!(["alice"]))
    );
    assert!(site.ok(&["group", "list"], "").contains("Family"));
    let users = site.json(&["user", "list", "--json"]);
    assert_eq!(users[0]["groups"], serde_json::json!(["Family"]));
    assert!(site.ok(&["user", "list"], "").lines().nth(1).unwrap().contains("Family"));
    let (out, line) = site.recorded(&["group", "remove", "family", "alice"]);
    assert_eq!((out.as_str(), line.as_str()), ("removed alice from Family\n", "group Family: alice removed"));
    assert_eq!(
        site.ok(&["group", "remove", "family", "alice"], ""),
        "alice was not in Family: nothing to remove\n"
    );
    assert_eq!(groups(&token), serde_json::json!([]));
    site.recorded(&["group", "add", "family", "alice"]);
    let (out, line) = site.recorded(&["group", "delete", "family"]);
    assert_eq!(
        (out.as_str(), line.as_str()),
        ("deleted group Family (1 members left it)\n", "group Family deleted, with its members [alice]")
    );
    assert_eq!(groups(&token), serde_json::json!([]));
    assert_eq!(site.json(&["group", "list", "--json"]), serde_json::json!([]));
    // Closed registration: an invitation could never be used.
    assert!(site.fails(&["invite", "create"], "").contains("registration is \"closed\""));
}

/// Invitations through the commands: made (with groups and a lifetime), used through the
/// running server, listed with where each stands (never a token), revoked; each change
/// recorded in one line without the token.
fn invitations_are_made_listed_and_revoked(backend: Backend) {
    let database = (backend == Backend::Postgres).then(|| TestDatabase::create(backend));
    let settings = [("ROCKET_REGISTRATION", "invite"), ("ROCKET_PUBLIC_URL", "https://auth.example.com")];
    let site = Site::with(database, &settings);
    site.recorded(&["group", "create", "family"]);
    site.recorded(&["group", "create", "friends"]);
    assert!(site
        .fails(&["invite", "create", "--group", "cousins"], "")
        .contains("no group named \"cousins\""));
    for lifetime in ["0s", "400d"] {
        let refused = site.fails(&["invite", "create", "--expires", lifetime], "");
        assert!(refused.contains("between one second and a year"), "{refused}");
    }
    let run = site.run(
        &["invite", "create", "--group", "family", "--group", "Friends", "--expires", "2h", "--json"],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let made: Value = serde_json::from_str(&run.stdout).unwrap();
    let token = made["token"].as_str().unwrap();
    assert!(!run.stderr.contains(token), "the record holds no token: {}", run.stderr);
    assert!(run.stderr.contains(&format!("invitation {} created", made["id"])), "{}", run.stderr);
    assert_eq!(made["link"], format!("https://auth.example.com/register?invite={token}"));
    assert_eq!(made["groups"], serde_json::json!(["family", "friends"]));
    let expires = made["expires_at"].as_str().unwrap();
    assert!(common::is_rfc3339(expires), "{expires}");
    // Text: the link on a line of its own.
    let (text, line) = site.recorded(&["invite", "create"]);
    let link = text.lines().nth(1).unwrap();
    assert!(link.starts_with("https://auth.example.com/register?invite="), "{text}");
    let unused = link.split("invite=").nth(1).unwrap();
    assert!(!line.contains(unused), "{line}");
    // Used through the server.
    let body = serde_json::json!({ "username": "alice", "password": PASSWORD, "invite": token }).to_string();
    let (status, _, body) = site.server.request("POST", "/auth/register", &[JSON], &body);
    assert_eq!(status, 201, "{body}");
    // The server's log, read as it comes.
    let used = "invitation 1 used: account alice created, in groups [family, friends]";
    let deadline = Instant::now() + Duration::from_secs(30);
    while !site.server.log().contains(used) {
        assert!(Instant::now() < deadline, "{}", site.server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!site.server.log().contains(token), "no token in the server's log");
    let listed = site.json(&["invite", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!((listed[0]["id"].clone(), listed[0]["state"].clone()), (2.into(), "pending".into()));
    assert_eq!((listed[1]["state"].clone(), listed[1]["used_by"].clone()), ("used".into(), "alice".into()));
    assert_eq!(listed[1]["groups"], serde_json::json!(["family", "friends"]));
    assert!(!listed.to_string().contains(token) && !listed.to_string().contains(unused), "never a token");
    assert!(site.ok(&["invite", "list"], "").contains("pending"));
    // Revoked: the link stops working.
    assert!(site.fails(&["invite", "revoke", "1"], "").contains("used already (by alice)"));
    assert_eq!(
        site.recorded(&["invite", "revoke", "2"]),
        ("revoked invitation 2\n".into(), "invitation 2 revoked".into())
    );
    assert!(site.fails(&["invite", "revoke", "2"], "").contains("revoked already"));
    assert!(site.fails(&["invite", "revoke", "9"], "").contains("no invitation 9"));
    let body = serde_json::json!({ "username": "bob", "password": PASSWORD, "invite": unused }).to_string();
    let (status, _, body) = site.server.request("POST", "/auth/register", &[JSON], &body);
    assert_eq!(status, 403, "{body}");
    assert_eq!(site.json(&["invite", "list", "--json"])[0]["state"], "revoked");
}

/// A lost phone: the administrator turns the user's second factor off, which ends their
/// sessions; the password alone signs in again.
fn a_second_factor_is_reset_from_the_command_line(backend: Backend) {
    let database = (backend == Backend::Postgres).then(|| TestDatabase::create(backend));
    let site = Site::on(database);
    site.ok(&["user", "create", "alice", "--password-stdin"], &format!("{PASSWORD}\n"));
    let token = site.token("alice", PASSWORD);
    let auth = format!("Bearer {token}");
    let body = serde_json::json!({ "password": PASSWORD }).to_string();
    let (_, _, setup) = site.server.request("POST", "/auth/totp", &[JSON, ("Authorization", &auth)], &body);
    let secret = serde_json::from_str::<Value>(&setup).unwrap()["secret"].as_str().unwrap().to_owned();
    let code = serde_json::json!({ "code": common::totp_code(&secret, common::now()) }).to_string();
    let (status, _, _) =
        site.server.request("POST", "/auth/totp/confirm", &[JSON, ("Authorization", &auth)], &code);
    assert_eq!(status, 200);
    assert_eq!(site.login("alice", PASSWORD).0, 403, "two steps now");
    let users = site.json(&["user", "list", "--json"]);
    assert_eq!(
        (users[0]["second_factors"].clone(), users[0]["recovery_codes_left"].clone()),
        (serde_json::json!(["totp"]), 10.into())
    );
    assert!(site.ok(&["user", "list"], "").contains("totp"));
    let run = site.run(&["user", "reset-second-factor", "Alice", "--json"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let reset: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        reset,
        serde_json::json!({"username": "alice", "second_factor_removed": true, "sessions_revoked": 1, "app_grants_revoked": 0})
    );
    assert_eq!(site.profile(&token), 401, "the sessions ended");
    assert_eq!(site.login("alice", PASSWORD).0, 200, "the password alone again");
    let again = site.ok(&["user", "reset-second-factor", "alice"], "");
    assert_eq!(again, "alice had no second factor; revoked 1 sessions\n");
    assert!(site.fails(&["user", "reset-second-factor", "nobody"], "").contains("no user named"));
}

/// Apps for "Sign in with MiniAuth": registered with a secret shown once (stored hashed),
/// public ones without, listed without secrets, deleted; the running server knows each at once.
fn clients_are_registered_listed_and_deleted(backend: Backend) {
    let site = Site::start(backend);
    let authorize = |client_id: &str| {
        let query = format!(
            "/oauth/authorize?client_id={client_id}&redirect_uri=https%3A%2F%2Fwiki.example.com%2Fcb&response_type=code\
             &scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
        );
        site.server.request("GET", &query, &[], "").0
    };
    let (stdout, audit) = site.recorded(&[
        "client",
        "create",
        "Wiki",
        "--redirect-uri",
        "https://wiki.example.com/cb",
        "--redirect-uri",
        "http://localhost:3000/cb",
        "--post-logout-redirect-uri",
        "https://wiki.example.com/",
        "--json",
    ]);
    let made: Value = serde_json::from_str(&stdout).expect("JSON");
    let (id, secret) = (made["client_id"].as_str().unwrap(), made["client_secret"].as_str().unwrap());
    assert!(id.len() >= 16 && secret.len() >= 43, "{made}");
    assert!(audit.contains(id) && audit.contains("Wiki") && !audit.contains(secret), "{audit}");
    // The running server knows it at once: signed out, the browser is sent to sign in.
    assert_eq!(authorize(id), 303);
    assert_eq!(authorize("unknown"), 400);
    // Stored hashed: the secret appears nowhere in the database.
    let text =
        site.ok(&["client", "create", "Spa", "--redirect-uri", "https://spa.example.com/cb", "--public"], "");
    assert!(
        text.starts_with("registered Spa (public)\nclient_id:     ") && !text.contains("client_secret"),
        "{text}"
    );
    let public_id = text.lines().nth(1).unwrap().split_whitespace().nth(1).unwrap().to_owned();
    let listed = site.json(&["client", "list", "--json"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    // Oldest first; both were made within a second, so they are found by id.
    let wiki = listed.iter().find(|client| client["client_id"] == id).expect("Wiki is listed");
    let spa = listed.iter().find(|client| client["client_id"] == public_id.as_str()).expect("Spa is listed");
    assert_eq!(wiki["type"], "confidential");
    assert_eq!(
        wiki["redirect_uris"],
        serde_json::json!(["https://wiki.example.com/cb", "http://localhost:3000/cb"])
    );
    assert_eq!(wiki["post_logout_redirect_uris"], serde_json::json!(["https://wiki.example.com/"]));
    assert_eq!(wiki["id_token_alg"], "RS256");
    assert_eq!(spa["type"], "public");
    assert!(!serde_json::to_string(&listed).unwrap().contains(secret));
    let table = site.ok(&["client", "list"], "");
    assert!(table.starts_with("CLIENT_ID") && table.contains("Spa") && !table.contains(secret), "{table}");
    // Addresses that cannot be registered, and an unknown client: one line, status 1.
    for bad in ["http://wiki.example.com/cb", "wiki.example.com/cb", "https://wiki.example.com/cb#x"] {
        let refused = site.fails(&["client", "create", "Bad", "--redirect-uri", bad], "");
        assert!(refused.contains("redirect"), "{bad}: {refused}");
    }
    assert!(site.fails(&["client", "delete", "unknown"], "").contains("no client"));
    let (stdout, audit) = site.recorded(&["client", "delete", &public_id]);
    assert_eq!(stdout, format!("deleted client {public_id}\n"));
    assert!(audit.contains(&public_id), "{audit}");
    assert_eq!(site.json(&["client", "list", "--json"]).as_array().unwrap().len(), 1);
    site.server.stop();
}

on_both_backends!(
    clients_are_registered_listed_and_deleted,
    a_second_factor_is_reset_from_the_command_line,
    groups_are_managed_and_the_server_follows,
    invitations_are_made_listed_and_revoked,
    administrators_create_accounts_when_sign_up_is_closed,
    users_and_passwords,
    bad_usage_is_status_2_and_every_command_has_help,
    keys_are_listed_and_rotated_and_the_server_follows,
    throttling_is_listed_and_cleared,
    migrate_and_purge,
);
