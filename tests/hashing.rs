//! bcrypt: cost 12 unless configured otherwise, and never run on the async executor.

mod common;

use common::{Backend, TestApp};
use rocket::http::Status;

#[test]
fn the_default_bcrypt_cost_is_12_and_tests_lower_it_through_configuration() {
    assert_eq!(miniauth::config::Settings::default().bcrypt_cost, 12);
    let configured: u32 = rocket::Config::figment().extract_inner("bcrypt_cost").unwrap();
    assert_eq!(configured, 12, "Rocket.toml keeps the production cost");
}

/// On a single-threaded runtime a sign-in that hashed on the executor would hold the only
/// thread until bcrypt finished, so `/healthz` could only answer after it.
#[test]
fn a_sign_in_does_not_hold_up_other_requests_while_bcrypt_runs() {
    let runtime = rocket::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let app =
            TestApp::spawn_with(Backend::Sqlite, |figment| figment.merge(("bcrypt_cost", 12))).await.unwrap();
        assert_eq!(app.register("patience", "slow hash please").await.status(), Status::Created);
        let login = app.login("patience", "slow hash please");
        let health = app.client.get("/healthz").dispatch();
        let first = rocket::tokio::select! {
            biased;
            response = login => ("login", response.status()),
            response = health => ("healthz", response.status()),
        };
        assert_eq!(first, ("healthz", Status::Ok), "the health check waited for bcrypt");
    });
}
