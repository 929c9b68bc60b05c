//! `miniauth`: serves the pages and the API.

#[rocket::main]
async fn main() {
    miniauth::logging::init();
    if let Err(e) = miniauth::rocket().launch().await {
        log::error!("MiniAuth could not start: {e}");
        std::process::exit(1);
    }
}
