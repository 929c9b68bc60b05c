//! The password policy: new passwords that are common or easily guessed (zxcvbn, with
//! its bundled lists, against `password_min_score`), shorter than `password_min_length`, or that
//! contain the username are refused with a message that says why — on sign-up and password
//! change, through the pages and the API alike. Existing passwords still sign in.

use crate::common;

use rocket::http::Status;
use rocket::serde::json::json;

use common::browser::{field_error, form_page, post_form, sign_up, submit_register};
use common::{bearer, problem, TestApp};

backend_tests!(
    a_common_password_is_refused_at_sign_up_saying_why,
    a_password_containing_the_username_in_any_case_is_refused,
    the_registration_page_says_what_makes_a_good_password_and_refuses_a_weak_one_beside_the_field,
    changing_to_an_easily_guessed_password_is_refused_through_the_api_and_the_page,
    signing_in_never_applies_the_policy_to_an_existing_password,
);

backend_tests_with!(
    |figment| figment.merge(("password_min_length", 12));
    the_minimum_length_is_a_setting => sqlite_the_minimum_length_is_a_setting,
        postgres_the_minimum_length_is_a_setting,
);

backend_tests_with!(
    |figment| figment.merge(("password_min_score", 0));
    a_minimum_score_of_0_turns_the_estimator_off => sqlite_a_minimum_score_of_0_turns_the_estimator_off,
        postgres_a_minimum_score_of_0_turns_the_estimator_off,
);

const STRONG: &str = "quiet lantern trombone";
const TOO_EASY: &str = "This password is too easy to guess. ";

/// The messages on `password` of a refused sign-up, after checking that nothing was created.
async fn refused(app: &TestApp, username: &str, password: &str) -> Vec<String> {
    let users = app.count("SELECT COUNT(*) FROM users").await;
    let body = problem(app.register(username, password).await, Status::UnprocessableEntity).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, users, "a refused sign-up created a user");
    serde_json::from_value(body["errors"]["password"].clone()).expect("messages on password")
}

async fn a_common_password_is_refused_at_sign_up_saying_why(app: TestApp) {
    for weak in ["password", "password123", "qwertyuiop", "iloveyou1", "aaaaaaaaaaaa", "1234567890"] {
        let messages = refused(&app, "alice", weak).await;
        assert!(messages.iter().any(|m| m.starts_with(TOO_EASY)), "{weak}: {messages:?}");
    }
    let messages = refused(&app, "alice", "password").await;
    assert!(messages.iter().any(|m| m.contains("common password")), "{messages:?}");
    app.registered("alice", STRONG).await;
}

async fn a_password_containing_the_username_in_any_case_is_refused(app: TestApp) {
    for password in ["Walter-White-9071", "my name is WALTER, trust me", "walter"] {
        let messages = refused(&app, "Walter", password).await;
        assert!(
            messages.contains(&"Password must not contain the username.".to_owned()),
            "{password}: {messages:?}"
        );
    }
}

async fn the_registration_page_says_what_makes_a_good_password_and_refuses_a_weak_one_beside_the_field(
    app: TestApp,
) {
    let html = form_page(&app, "/register").await;
    assert!(html.contains("common passwords and easy patterns are refused"), "{html}");
    assert!(html.contains("minlength=\"8\""), "{html}");
    let response = submit_register(&app, "alice", "password123", "password123").await;
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let html = response.into_string().await.unwrap();
    let error =
        field_error(&html, "password").unwrap_or_else(|| panic!("no error beside the password:\n{html}"));
    assert!(error.contains(TOO_EASY.trim()), "{error}");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn changing_to_an_easily_guessed_password_is_refused_through_the_api_and_the_page(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", STRONG).await;
    let change = json!({ "current_password": STRONG, "new_password": "qwertyuiop" });
    let request = app.client.post("/auth/password").header(bearer(&tokens.access));
    let response = request.header(rocket::http::ContentType::JSON).body(change.to_string()).dispatch().await;
    let body = problem(response, Status::UnprocessableEntity).await;
    assert!(body["errors"]["new_password"][0].as_str().unwrap().starts_with(TOO_EASY), "{body}");

    let csrf = sign_up(&app, "bob", STRONG).await;
    let html = form_page(&app, "/account/password").await;
    assert!(html.contains("common passwords and easy patterns are refused"), "{html}");
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("current_password", STRONG),
        ("new_password", "bob-is-back-again"),
        ("new_password_confirm", "bob-is-back-again"),
    ];
    let response = post_form(&app, "/account/password", &fields).await;
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let html = response.into_string().await.unwrap();
    let error = field_error(&html, "new_password").unwrap_or_else(|| panic!("no error:\n{html}"));
    assert!(error.contains("must not contain the username"), "{error}");
    // Both still sign in with the password they had.
    app.sign_in("alice", STRONG).await;
    app.sign_in("bob", STRONG).await;
}

async fn signing_in_never_applies_the_policy_to_an_existing_password(app: TestApp) {
    // An account from before the policy, with the weakest of passwords.
    let hash = bcrypt::hash("password", 4).unwrap();
    app.execute(&[format!(
        "INSERT INTO users (username, username_key, password_hash, created_at) VALUES ('oldtimer', 'oldtimer', '{hash}', 0)"
    )])
    .await;
    app.sign_in("oldtimer", "password").await;
}

async fn the_minimum_length_is_a_setting(app: TestApp) {
    let messages = refused(&app, "alice", "Tr0mb0n3!xQ").await;
    assert!(messages.contains(&"Password must be at least 12 characters long.".to_owned()), "{messages:?}");
    assert!(form_page(&app, "/register").await.contains("minlength=\"12\""));
    app.registered("alice", "Tr0mb0n3!xQz").await;
}

async fn a_minimum_score_of_0_turns_the_estimator_off(app: TestApp) {
    app.registered("alice", "password").await;
    // The other rules stay.
    let messages = refused(&app, "bob", "bob12345").await;
    assert_eq!(messages, ["Password must not contain the username."]);
}
