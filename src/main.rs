//! `miniauth`: serves the pages and the API.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// glibc gives threads that allocate at the same moment heaps ("arenas") of their own, up to
/// eight per core, and keeps what they free for reuse: with the database's threads that adds
/// megabytes to the peak resident memory of a server whose threads mostly wait. One arena is
/// enough here, but glibc reads that setting only when a process starts: so the binary starts
/// itself again with it, unless the environment already sets glibc's tunables (an operator's
/// own choice, or this second start).
fn with_one_malloc_arena() {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    let Ok(binary) = std::env::current_exe() else {
        return;
    };
    let args = std::env::args_os().skip(1);
    // `exec` returns only when it failed; the server then runs with glibc's defaults.
    let error = Command::new(binary).args(args).env("GLIBC_TUNABLES", "glibc.malloc.arena_max=1").exec();
    eprintln!("miniauth: could not restart with one malloc arena ({error}); carrying on");
}

fn main() {
    with_one_malloc_arena();
    miniauth::logging::init();
    if let Err(e) = rocket::execute(miniauth::rocket().launch()) {
        // A stage that failed has said why in its own line already.
        if !matches!(e.kind(), rocket::error::ErrorKind::FailedFairings(_)) {
            log::error!("MiniAuth could not start: {e}");
        }
        std::process::exit(1);
    }
}
