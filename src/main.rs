//! `miniauth`: serves the pages and the API.

#[rocket::main]
async fn main() {
    miniauth::logging::init();
    if let Err(e) = miniauth::rocket().launch().await {
        // A stage that failed has said why in its own line already.
        if !matches!(e.kind(), rocket::error::ErrorKind::FailedFairings(_)) {
            log::error!("MiniAuth could not start: {e}");
        }
        std::process::exit(1);
    }
}
