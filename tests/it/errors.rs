//! Internal errors: a handler that fails or panics gets a bare 500 (problem+json on the API,
//! an error page in the browser) that reveals nothing of the cause.

use crate::common;

use common::{problem, Backend, TestApp};
use rocket::http::{Accept, Status};

const CAUSE: &str = "connection to 10.1.2.3 failed: password authentication for user admin";

#[rocket::get("/auth/fails")]
fn api_fails() -> Result<(), miniauth::error::Error> {
    Err(miniauth::error::Error::internal(CAUSE))
}

#[rocket::get("/auth/panics")]
fn api_panics() -> &'static str {
    panic!("{CAUSE}")
}

#[rocket::get("/page-fails")]
fn page_fails() -> Result<(), miniauth::error::Error> {
    Err(miniauth::error::Error::internal(CAUSE))
}

async fn failing_app() -> TestApp {
    let extra = rocket::routes![api_fails, api_panics, page_fails];
    TestApp::spawn_custom(Backend::Sqlite, |figment| figment, |rocket| rocket.mount("/", extra)).await
}

#[rocket::async_test]
async fn an_internal_error_on_the_api_is_a_bare_problem_500() {
    let app = failing_app().await;
    for uri in ["/auth/fails", "/auth/panics"] {
        let body = problem(app.client.get(uri).dispatch().await, Status::InternalServerError).await;
        assert_eq!(body["detail"], "Something went wrong on our side.");
        assert!(!body.to_string().contains("10.1.2.3"), "{body}");
    }
}

#[rocket::async_test]
async fn an_internal_error_on_a_page_is_a_friendly_page_that_hides_the_cause() {
    let app = failing_app().await;
    let response = app.client.get("/page-fails").header(Accept::HTML).dispatch().await;
    assert_eq!(response.status(), Status::InternalServerError);
    assert_eq!(response.content_type(), Some(rocket::http::ContentType::HTML));
    let page = response.into_string().await.unwrap();
    assert!(page.contains("Something went wrong on our side.") && !page.contains("10.1.2.3"));
}
