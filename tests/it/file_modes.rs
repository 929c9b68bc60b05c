//! The files that hold the signing keys are this user's alone, through the real binary: a data
//! folder others may enter is made 0700 at start (a shared or another user's folder stops the
//! start), and the SQLite file with its `-wal` and `-shm` is 0600 wherever the URL puts it, when
//! MiniAuth creates it and when an older version left it 0644. Each fix is one log line.

use crate::common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::server::{free_port, Server, JSON};

/// Debian's `nobody`: the other local user of the finding.
const NOBODY: u32 = 65534;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `path` with `suffix` added to its name (`miniauth.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Asserts the database file, its `-wal` and its `-shm` exist and are mode 0600.
fn assert_database_private(db: &Path) {
    for file in [db.to_owned(), with_suffix(db, "-wal"), with_suffix(db, "-shm")] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

fn register(server: &Server, username: &str) {
    let body = format!(r#"{{"username":"{username}","password":"Secret-Pa55word-for-modes"}}"#);
    let (status, _, body) = server.request("POST", "/auth/register", &[JSON], &body);
    assert_eq!(status, 201, "{body}");
}

/// Whether the tests run as root, who can act as another user (`/proc/self` belongs to the
/// process's effective user).
fn running_as_root() -> bool {
    fs::metadata("/proc/self").unwrap().uid() == 0
}

/// Whether `nobody` can read the file at `path`: the finding's attack.
fn nobody_reads(path: &Path) -> bool {
    let mut cat = Command::new("cat");
    cat.arg(path).uid(NOBODY).gid(NOBODY).stdout(Stdio::null()).stderr(Stdio::null());
    cat.status().unwrap().success()
}

/// The lines of `log` that report a mode fixed.
fn fix_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|line| line.contains("was open to other users")).collect()
}

#[test]
fn a_data_dir_others_may_enter_is_made_private_and_the_database_is_created_private() {
    let dir = tempfile::tempdir().unwrap();
    // Made by hand (or an older version) with the umask: MiniAuth used to keep it so.
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    set_mode(&data, 0o755);
    fs::create_dir(data.join("outbox")).unwrap();
    set_mode(&data.join("outbox"), 0o750);

    let server = Server::start(dir.path(), &[]);
    // A registration writes: the -wal and -shm exist now.
    register(&server, "walter");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("outbox")), 0o700);
    let db = data.join("miniauth.db");
    assert_database_private(&db);
    let log = server.stop();
    let fixes = fix_lines(&log);
    assert_eq!(fixes.len(), 2, "one line per fix:\n{log}");
    assert!(fixes[0].ends_with("data was open to other users (mode 0755); now mode 0700"), "{log}");
    assert!(fixes[1].ends_with("data/outbox was open to other users (mode 0750); now mode 0700"), "{log}");

    // A clean stop removes the -wal and -shm; SQLite creates them again with the database's mode.
    let server = Server::start(dir.path(), &[]);
    register(&server, "skyler");
    assert_database_private(&db);
    assert_eq!(mode(&data), 0o700);
    let log = server.stop();
    assert_eq!(fix_lines(&log), Vec::<&str>::new(), "nothing left to fix");
}

#[test]
fn sqlite_files_outside_the_data_dir_are_private_too_and_old_ones_are_fixed() {
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755);
    // A folder MiniAuth makes for the database is 0700, the files in it 0600.
    let db = dir.path().join("elsewhere/keys/auth.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let env = [("ROCKET_DATABASE_URL", url.as_str())];
    let server = Server::start(dir.path(), &env);
    register(&server, "walter");
    assert_database_private(&db);
    // The data folder MiniAuth makes (for the outbox) is 0700 as well.
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    // Killed, as a crash would: the -wal and -shm stay.
    server.crash();

    // As an older MiniAuth left them: readable by every local user, in a folder anyone may enter.
    for folder in db.ancestors().skip(1).take(2) {
        assert_eq!(mode(folder), 0o700, "{}", folder.display());
        set_mode(folder, 0o755);
    }
    let files = [db.clone(), with_suffix(&db, "-wal"), with_suffix(&db, "-shm")];
    for file in &files {
        set_mode(file, 0o644);
    }
    let root = running_as_root();
    if root {
        assert!(nobody_reads(&db), "the finding reproduced: nobody reads the keys");
    }

    let server = Server::start(dir.path(), &env);
    assert_database_private(&db);
    if root {
        assert!(!nobody_reads(&db), "nobody no longer reads the database");
        assert!(!nobody_reads(&with_suffix(&db, "-wal")), "nor its write-ahead log");
    }
    // The data survived: the first user is still there.
    let (status, _, body) = server.request(
        "POST",
        "/auth/login",
        &[JSON],
        r#"{"username":"walter","password":"Secret-Pa55word-for-modes"}"#,
    );
    assert_eq!(status, 200, "{body}");
    register(&server, "skyler");
    assert_database_private(&db);
    // The folder is not MiniAuth's to decide about once it exists; the files in it are.
    assert_eq!(mode(db.parent().unwrap()), 0o755);
    let log = server.stop();
    let fixes = fix_lines(&log);
    assert_eq!(fixes.len(), 3, "one line per file:\n{log}");
    for file in &files {
        let line = format!("{} was open to other users (mode 0644); now mode 0600", file.display());
        assert!(fixes.iter().any(|fix| fix.ends_with(&line)), "{line}:\n{log}");
    }
}

/// The admin commands open the same files: they hold them to the same rule.
#[test]
fn an_admin_command_makes_the_files_private_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    set_mode(&data, 0o775);
    let db = data.join("miniauth.db");
    fs::write(&db, b"").unwrap();
    set_mode(&db, 0o664);

    let output = admin(dir.path(), &["migrate"], &[]);
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert!(log.contains("data was open to other users (mode 0775); now mode 0700"), "{log}");
    assert!(log.contains("data/miniauth.db was open to other users (mode 0664); now mode 0600"), "{log}");
}

/// `miniauth <args>` in `dir`, run to its end.
fn admin(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_miniauth"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A folder with the sticky bit is one many users share, like `/tmp`: taking it from them would
/// break the machine, so the start is refused instead, and nothing is written.
#[test]
fn a_shared_data_dir_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o1777);
    let binary = Path::new(env!("CARGO_BIN_EXE_miniauth"));
    let (status, log) = Server::run_to_exit(binary, dir.path(), &[("ROCKET_DATA_DIR", "shared")]);
    assert_eq!(status, Some(1), "{log}");
    let refusal =
        "data_dir shared is a folder other users share (mode 1777): give MiniAuth a folder of its own";
    assert_eq!(log.lines().filter(|line| line.contains("ERROR")).count(), 1, "one line:\n{log}");
    assert!(log.contains(refusal), "{log}");
    assert_eq!(mode(&shared), 0o1777);
    assert!(!dir.path().join("data").exists(), "no database is created:\n{log}");
}

/// A data folder of another user's that others may enter cannot be made private: the start is
/// refused with one line saying what to do (run as root, the test acts as `nobody`).
#[test]
fn a_data_dir_that_cannot_be_made_private_stops_the_start() {
    if !running_as_root() {
        eprintln!("skipped: only root can start the server as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755);
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    set_mode(&data, 0o755);

    let port = free_port().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_miniauth"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ROCKET_PORT", &port)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{log}");
    let errors: Vec<_> = log.lines().filter(|line| line.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one line:\n{log}");
    assert!(
        errors[0].ends_with(
            "data is open to other users (mode 0755) and cannot be made private (Operation not \
             permitted (os error 1)): run `chmod go-rwx data` as its owner, or run MiniAuth as its owner"
        ),
        "{log}"
    );
    assert_eq!(mode(&data), 0o755);
    assert!(!data.join("miniauth.db").exists());
}

needs_postgres! {
    /// PostgreSQL keeps no file here, but the data folder (the outbox) follows the same rule.
    #[test]
    fn on_postgresql_the_data_dir_is_made_private_too() {
        let database = common::TestDatabase::create(common::Backend::Postgres);
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        set_mode(&data, 0o755);
        let server = Server::start(dir.path(), &[database.env()]);
        register(&server, "walter");
        assert_eq!(mode(&data), 0o700);
        assert!(!data.join("miniauth.db").exists(), "no SQLite file");
        let log = server.stop();
        assert_eq!(fix_lines(&log).len(), 1, "{log}");
        assert!(log.contains("data was open to other users (mode 0755); now mode 0700"), "{log}");
    }
}
