//! `miniauth`: serves the pages and the API; `miniauth <command>` administers (see `--help`).

use std::os::unix::process::CommandExt;
use std::process::{Command as Process, ExitCode};

use clap::Parser;
use miniauth::admin::{self, Cli, Command};

fn main() -> ExitCode {
    match Cli::parse().command {
        None | Some(Command::Serve) => serve(),
        Some(command) => {
            miniauth::logging::init_for_commands();
            let runtime =
                rocket::tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build();
            let result = match runtime {
                Ok(runtime) => runtime.block_on(admin::run(command)),
                Err(e) => Err(format!("cannot start: {e}")),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("miniauth: {message}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve() -> ExitCode {
    with_two_malloc_arenas();
    miniauth::logging::init();
    match rocket::execute(miniauth::rocket().launch()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            // A stage that failed has said why in its own line already.
            if !matches!(e.kind(), rocket::error::ErrorKind::FailedFairings(_)) {
                log::error!("MiniAuth could not start: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// glibc's malloc gives each thread that allocates an arena of its own (up to eight per core)
/// and keeps what is freed in it for later: a few MB per arena under load, which kept the
/// server's peak memory above its 32 MB target. Two arenas hold it some 4 MB lower at no
/// measured cost in throughput (README, "Performance"). glibc reads `MALLOC_ARENA_MAX` only as a
/// process starts, so the server sets it and starts itself again, once: an operator's own value
/// is kept, and if the new start fails the server runs on as it is.
fn with_two_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(binary) = std::env::current_exe() else {
        return;
    };
    let error = Process::new(binary).args(std::env::args_os().skip(1)).env("MALLOC_ARENA_MAX", "2").exec();
    eprintln!(
        "miniauth: serving with glibc's default arenas (could not restart with MALLOC_ARENA_MAX=2: {error})"
    );
}
