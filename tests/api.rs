//! The JSON API of SPEC §5.

mod common;

use common::{problem, TestApp};
use rocket::http::Status;
use rocket::serde::json::Value;

backend_tests!(register_login_profile_logout_round_trip);

async fn register_login_profile_logout_round_trip(app: TestApp) {
    let response = app.register("Alice", "correct horse").await;
    assert_eq!(response.status(), Status::Created);
    let user: Value = response.into_json().await.unwrap();
    assert_eq!(user["username"], "Alice");
    let token = {
        let response = app.login("alice", "correct horse").await;
        assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
        let body: Value = response.into_json().await.unwrap();
        assert_eq!(body["token_type"], "bearer");
        body["access_token"].as_str().unwrap().to_owned()
    };
    let profile: Value = app.profile(&token).await.into_json().await.unwrap();
    assert_eq!(profile, user);
    let response = app.client.post("/auth/logout").header(common::bearer(&token)).dispatch().await;
    assert_eq!(response.status(), Status::NoContent);
    problem(app.profile(&token).await, Status::Unauthorized).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
}
