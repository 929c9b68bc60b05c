//! `miniauth`: serves the pages and the API; `miniauth <command>` administers (see `--help`).

use std::process::ExitCode;

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
    miniauth::logging::init();
    match rocket::execute(miniauth::shutdown::serve(miniauth::rocket())) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) if matches!(e.kind(), rocket::error::ErrorKind::Shutdown(..)) => {
            log::error!(
                "MiniAuth stopped with requests unanswered: they outlasted shutdown_grace, and their \
                 connections were cut"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            // A stage that failed has said why in its own line already.
            if !matches!(e.kind(), rocket::error::ErrorKind::FailedFairings(_)) {
                log::error!("MiniAuth could not start: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
