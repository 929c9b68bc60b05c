//! The JSON API, with the user rules, the token answers and the malformed-input and
//! concurrency properties.

use crate::common;

use common::{csrf_header, expect, is_rfc3339, json_of, problem, TestApp, TOKEN_COOKIE};
use rocket::futures::future::join_all;
use rocket::http::{Accept, ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use rocket::serde::json::{json, Value};

backend_tests!(
    register_login_profile_logout_round_trip,
    a_json_object_that_repeats_a_key_is_400_and_changes_nothing,
    headers_past_the_limit_are_431_problem_and_reach_no_route,
    // Registration
    registering_answers_201_with_id_username_as_typed_an_rfc3339_created_at_and_no_email,
    registering_a_name_taken_in_another_case_is_409,
    registering_a_name_taken_in_the_same_case_is_409,
    a_username_of_three_or_thirty_two_characters_is_accepted,
    a_username_of_two_characters_is_422,
    a_username_of_thirty_three_characters_is_422,
    a_username_with_a_space_is_422,
    a_username_with_an_exclamation_mark_is_422,
    a_username_with_non_ascii_letters_is_422,
    a_password_of_seven_bytes_is_422,
    a_password_of_seventy_three_bytes_is_422,
    a_password_of_seventy_two_bytes_is_accepted,
    a_password_of_thirty_seven_accented_letters_is_74_bytes_and_422,
    a_password_equal_to_the_username_in_any_case_is_422,
    registering_with_no_fields_is_422_with_both_field_errors,
    a_user_can_sign_in_the_moment_registration_answers_201,
    // Login
    logging_in_with_json_answers_a_bearer_token_that_is_never_cached,
    logging_in_with_the_oauth2_password_form_works,
    logging_in_with_the_oauth2_form_without_grant_type_works,
    logging_in_with_another_grant_type_is_a_client_error,
    unknown_user_and_wrong_password_are_401_with_identical_bodies,
    logging_in_with_another_case_of_the_username_works,
    a_password_longer_than_72_bytes_never_matches_its_first_72_bytes,
    // Profile
    the_profile_with_a_bearer_token_is_the_registered_user,
    the_profile_without_credentials_is_401_with_a_bare_bearer_challenge,
    the_profile_with_a_garbage_token_is_401_with_invalid_token,
    the_profile_with_basic_authentication_is_401,
    // Logout
    logging_out_is_204_and_the_token_stops_working_at_once,
    logging_out_without_a_token_is_401,
    logging_out_by_cookie_without_a_csrf_token_is_403_and_keeps_the_session,
    // Malformed input
    invalid_json_is_400_problem,
    a_text_plain_body_is_415_problem,
    a_body_without_content_type_is_415_problem,
    a_json_body_over_16_kib_is_413_problem,
    a_form_body_over_16_kib_on_login_is_413_problem,
    json_of_the_wrong_shape_is_a_client_error_never_500,
    a_json_array_is_not_accepted_in_place_of_the_credentials_object,
    nul_characters_in_any_field_are_a_client_error_never_500,
    a_body_that_is_not_utf8_is_400_problem,
    a_json_content_type_with_a_charset_parameter_is_accepted,
    an_unknown_route_under_auth_is_404_problem_json,
    an_unknown_route_under_auth_is_problem_json_even_for_a_browser,
    the_wrong_method_on_an_api_route_is_problem_json,
    // Concurrency
    concurrent_registrations_of_one_name_in_different_cases_give_one_user,
    // Operations
    healthz_and_readyz_answer_200_json,
    openapi_json_is_openapi_3_1_and_describes_the_auth_routes,
    the_docs_page_is_served_as_html,
);

// Many sign-ups from one address at once: the per-address sign-up limit is off for these.
backend_tests_with!(
    |figment| figment.merge(("register_max_per_address_hour", 0));
    fifty_concurrent_registrations_of_one_name_give_one_201_and_forty_nine_409
        => sqlite_fifty_concurrent_registrations_of_one_name, postgres_fifty_concurrent_registrations_of_one_name,
    two_hundred_concurrent_registrations_of_distinct_names_all_succeed
        => sqlite_two_hundred_concurrent_registrations, postgres_two_hundred_concurrent_registrations,
);

const PASSWORD: &str = "correct horse";

async fn users(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM users").await
}

/// A POST with an exact body and content type (or none).
async fn post_raw<'c>(
    app: &'c TestApp,
    uri: &str,
    content_type: Option<ContentType>,
    body: &str,
) -> LocalResponse<'c> {
    let mut request = app.client.post(uri.to_owned()).body(body);
    if let Some(content_type) = content_type {
        request = request.header(content_type);
    }
    request.dispatch().await
}

/// A problem+json answer with some 4xx status; returns the status and the body.
async fn client_error_problem(response: LocalResponse<'_>) -> (Status, Value) {
    let status = response.status();
    assert!(status.code >= 400 && status.code < 500, "expected a 4xx, got {status}");
    (status, problem(response, status).await)
}

/// serde_json keeps the last of two equal keys: `{"username": "a", …, "username": "admin"}`
/// could be read as one name by a checker in front and as another here. Such a body is
/// malformed, on every JSON route, at any depth.
async fn a_json_object_that_repeats_a_key_is_400_and_changes_nothing(app: TestApp) {
    let register = format!(r#"{{"username":"alice","password":"{PASSWORD}","username":"admin"}}"#);
    let (status, body) =
        client_error_problem(post_raw(&app, "/auth/register", Some(ContentType::JSON), &register).await)
            .await;
    assert_eq!(status, Status::BadRequest, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("\"username\" appears twice"), "{body}");
    assert_eq!(users(&app).await, 0);
    app.register("alice", PASSWORD).await;
    let login = format!(r#"{{"username":"alice","password":"wrong password","password":"{PASSWORD}"}}"#);
    let (status, _) =
        client_error_problem(post_raw(&app, "/auth/login", Some(ContentType::JSON), &login).await).await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
    let nested = r#"{"refresh_token":"x","extra":{"a":1,"a":2}}"#;
    let (status, _) =
        client_error_problem(post_raw(&app, "/auth/refresh", Some(ContentType::JSON), nested).await).await;
    assert_eq!(status, Status::BadRequest);
    // The same keys once each are fine, in any order.
    let fine = format!(r#"{{"password":"{PASSWORD}","username":"alice"}}"#);
    assert_eq!(post_raw(&app, "/auth/login", Some(ContentType::JSON), &fine).await.status(), Status::Ok);
}

/// Headers larger than MiniAuth reads get `431` as problem+json (a page elsewhere), and no
/// route runs: a sign-up carrying them creates nothing.
async fn headers_past_the_limit_are_431_problem_and_reach_no_route(app: TestApp) {
    let big = "x".repeat(70 * 1024);
    let response = app
        .client
        .post("/auth/register")
        .header(ContentType::JSON)
        .header(rocket::http::Header::new("X-Padding", big.clone()))
        .body(json!({ "username": "alice", "password": PASSWORD }).to_string())
        .dispatch()
        .await;
    let body = problem(response, Status::RequestHeaderFieldsTooLarge).await;
    assert!(body["detail"].as_str().unwrap().contains("headers are too large"), "{body}");
    assert_eq!(users(&app).await, 0);
    let page = app.client.get("/login").header(rocket::http::Header::new("X-Padding", big)).dispatch().await;
    assert_eq!(page.status(), Status::RequestHeaderFieldsTooLarge);
    assert_eq!(page.content_type(), Some(ContentType::HTML));
    // Ordinary headers, even several kilobytes of cookies, pass.
    let cookies = rocket::http::Header::new("X-Padding", "y".repeat(16 * 1024));
    assert_eq!(app.client.get("/login").header(cookies).dispatch().await.status(), Status::Ok);
}

/// A 422 whose `errors` names `field` with at least one message, and no user stored.
async fn assert_rejected(app: &TestApp, body: Value, field: &str) -> Value {
    let response = app.post_json("/auth/register", body).await;
    let problem = problem(response, Status::UnprocessableEntity).await;
    let messages =
        problem["errors"][field].as_array().unwrap_or_else(|| panic!("no errors.{field}: {problem}"));
    assert!(!messages.is_empty() && messages.iter().all(|m| m.as_str().is_some_and(|m| !m.is_empty())));
    assert_eq!(users(app).await, 0, "a rejected registration stored a user");
    problem
}

async fn register_login_profile_logout_round_trip(app: TestApp) {
    let user = app.registered("Alice", PASSWORD).await;
    assert_eq!(user["username"], "Alice");
    let token = {
        let response = app.login("alice", PASSWORD).await;
        assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
        let body = expect(response, Status::Ok).await;
        assert_eq!(body["token_type"], "bearer");
        body["access_token"].as_str().unwrap().to_owned()
    };
    let profile = expect(app.profile(&token).await, Status::Ok).await;
    assert_eq!(profile, user);
    let response = app.logout(&token, "").await;
    assert_eq!(response.status(), Status::NoContent);
    problem(app.profile(&token).await, Status::Unauthorized).await;
    assert_eq!(users(&app).await, 1);
}

// Registration ------------------------------------------------------------------------------

async fn registering_answers_201_with_id_username_as_typed_an_rfc3339_created_at_and_no_email(app: TestApp) {
    let response = app.register("Mixed.Case_Name-9", PASSWORD).await;
    assert!(response.content_type().is_some_and(|ct| ct.is_json()));
    let user = expect(response, Status::Created).await;
    let fields: Vec<&str> = user.as_object().unwrap().keys().map(String::as_str).collect();
    let expected = [
        "created_at",
        "email",
        "email_confirmed",
        "groups",
        "id",
        "recovery_codes_left",
        "second_factors",
        "username",
    ];
    assert_eq!(fields, expected, "{user}");
    assert_eq!((user["email"].clone(), user["email_confirmed"].clone()), (Value::Null, Value::Bool(false)));
    assert_eq!(user["groups"], serde_json::json!([]), "in no group: {user}");
    assert!(user["id"].is_i64(), "id is an integer: {user}");
    assert_eq!(user["username"], "Mixed.Case_Name-9");
    let created_at = user["created_at"].as_str().expect("created_at is a string");
    assert!(is_rfc3339(created_at), "created_at {created_at:?} is not RFC 3339");
    assert!(!user.to_string().contains("password"), "the answer mentions a password: {user}");
    assert_eq!(users(&app).await, 1);
}

async fn registering_a_name_taken_in_another_case_is_409(app: TestApp) {
    app.registered("Alice", PASSWORD).await;
    for other_case in ["alice", "ALICE", "aLiCe"] {
        let body = problem(app.register(other_case, "another password").await, Status::Conflict).await;
        assert!(body["detail"].as_str().unwrap().to_lowercase().contains("taken"), "{body}");
    }
    assert_eq!(users(&app).await, 1);
    // The first spelling is the one kept.
    app.sign_in("ALICE", PASSWORD).await;
}

async fn registering_a_name_taken_in_the_same_case_is_409(app: TestApp) {
    app.registered("bob", PASSWORD).await;
    problem(app.register("bob", PASSWORD).await, Status::Conflict).await;
    assert_eq!(users(&app).await, 1);
}

async fn a_username_of_three_or_thirty_two_characters_is_accepted(app: TestApp) {
    app.registered("abc", PASSWORD).await;
    app.registered(&"b".repeat(32), PASSWORD).await;
    app.registered("A_b.c-9", PASSWORD).await;
    assert_eq!(users(&app).await, 3);
}

async fn a_username_of_two_characters_is_422(app: TestApp) {
    assert_rejected(&app, json!({"username": "ab", "password": PASSWORD}), "username").await;
}

async fn a_username_of_thirty_three_characters_is_422(app: TestApp) {
    assert_rejected(&app, json!({"username": "a".repeat(33), "password": PASSWORD}), "username").await;
}

async fn a_username_with_a_space_is_422(app: TestApp) {
    assert_rejected(&app, json!({"username": "al ice", "password": PASSWORD}), "username").await;
}

async fn a_username_with_an_exclamation_mark_is_422(app: TestApp) {
    assert_rejected(&app, json!({"username": "alice!", "password": PASSWORD}), "username").await;
}

async fn a_username_with_non_ascii_letters_is_422(app: TestApp) {
    for name in ["émile", "ålice", "名前です", "alicе" /* Cyrillic е */] {
        assert_rejected(&app, json!({"username": name, "password": PASSWORD}), "username").await;
    }
}

async fn a_password_of_seven_bytes_is_422(app: TestApp) {
    assert_rejected(&app, json!({"username": "alice", "password": "1234567"}), "password").await;
}

async fn a_password_of_seventy_three_bytes_is_422(app: TestApp) {
    let problem =
        assert_rejected(&app, json!({"username": "alice", "password": "p".repeat(73)}), "password").await;
    let message = problem["errors"]["password"][0].as_str().unwrap();
    assert!(message.contains("72"), "the message says what the limit is: {message}");
}

/// A strong password of exactly 72 bytes (a repeated letter would be refused as too easy).
const SEVENTY_TWO_BYTES: &str = "correct horse battery staple, purple monkey dishwasher, quiet lanterns!!";

async fn a_password_of_seventy_two_bytes_is_accepted(app: TestApp) {
    let password = SEVENTY_TWO_BYTES;
    assert_eq!(password.len(), 72);
    app.registered("alice", password).await;
    app.sign_in("alice", password).await;
    assert_eq!(users(&app).await, 1);
}

async fn a_password_of_thirty_seven_accented_letters_is_74_bytes_and_422(app: TestApp) {
    let password = "é".repeat(37);
    assert_eq!((password.chars().count(), password.len()), (37, 74));
    assert_rejected(&app, json!({"username": "alice", "password": password}), "password").await;
    // 72 bytes with accented letters (60 characters): accepted.
    let accented = "déjà vu, été, forêt, château, élève, crème brûlée, où es-tu?";
    assert_eq!((accented.chars().count(), accented.len()), (60, 72));
    app.registered("alice", accented).await;
}

async fn a_password_equal_to_the_username_in_any_case_is_422(app: TestApp) {
    for password in ["alice1234", "ALICE1234", "Alice1234"] {
        assert_rejected(&app, json!({"username": "Alice1234", "password": password}), "password").await;
    }
}

async fn registering_with_no_fields_is_422_with_both_field_errors(app: TestApp) {
    let problem = assert_rejected(&app, json!({}), "username").await;
    assert!(problem["errors"]["password"].as_array().is_some_and(|m| !m.is_empty()), "{problem}");
}

/// A 201 means the row is committed: another connection sees it at once.
async fn a_user_can_sign_in_the_moment_registration_answers_201(app: TestApp) {
    for i in 0..25 {
        let name = format!("quick{i}");
        app.registered(&name, PASSWORD).await;
        app.sign_in(&name, PASSWORD).await;
        assert_eq!(users(&app).await, i + 1);
    }
}

// Login -------------------------------------------------------------------------------------

async fn logging_in_with_json_answers_a_bearer_token_that_is_never_cached(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    let body = expect(response, Status::Ok).await;
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_i64().is_some_and(|s| s > 0), "{body}");
    let token = body["access_token"].as_str().expect("access_token");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    expect(app.profile(token).await, Status::Ok).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);
}

async fn login_form(app: &TestApp, form: &str) -> Value {
    let response = post_raw(app, "/auth/login", Some(ContentType::Form), form).await;
    assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    let body = expect(response, Status::Ok).await;
    assert_eq!(body["token_type"], "bearer");
    let token = body["access_token"].as_str().expect("access_token");
    expect(app.profile(token).await, Status::Ok).await;
    body
}

async fn logging_in_with_the_oauth2_password_form_works(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    login_form(&app, "grant_type=password&username=alice&password=correct+horse").await;
    login_form(&app, "username=alice&password=correct%20horse&grant_type=password").await;
}

async fn logging_in_with_the_oauth2_form_without_grant_type_works(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    login_form(&app, "username=alice&password=correct+horse").await;
}

async fn logging_in_with_another_grant_type_is_a_client_error(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let form = "grant_type=client_credentials&username=alice&password=correct+horse";
    let (status, _) =
        client_error_problem(post_raw(&app, "/auth/login", Some(ContentType::Form), form).await).await;
    assert_ne!(status, Status::Ok);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
}

async fn unknown_user_and_wrong_password_are_401_with_identical_bodies(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let wrong_password = app.login("alice", "wrong horse").await;
    assert!(wrong_password.headers().get_one("WWW-Authenticate").is_none_or(|h| h.starts_with("Bearer")));
    let wrong_password = problem(wrong_password, Status::Unauthorized).await;
    let unknown_user = problem(app.login("mallory", "wrong horse").await, Status::Unauthorized).await;
    assert_eq!(unknown_user, wrong_password);
    let unknown_user = problem(app.login("mallory", PASSWORD).await, Status::Unauthorized).await;
    assert_eq!(unknown_user, wrong_password);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
}

async fn logging_in_with_another_case_of_the_username_works(app: TestApp) {
    app.registered("Alice", PASSWORD).await;
    for name in ["alice", "ALICE", "Alice"] {
        let token = app.sign_in(name, PASSWORD).await.access;
        let profile = expect(app.profile(&token).await, Status::Ok).await;
        assert_eq!(profile["username"], "Alice", "shown as typed at registration");
    }
}

async fn a_password_longer_than_72_bytes_never_matches_its_first_72_bytes(app: TestApp) {
    let password = SEVENTY_TWO_BYTES;
    app.registered("alice", password).await;
    for suffix in ["x", "y", "anything at all"] {
        let longer = format!("{password}{suffix}");
        problem(app.login("alice", &longer).await, Status::Unauthorized).await;
    }
    app.sign_in("alice", password).await;
}

// Profile -----------------------------------------------------------------------------------

async fn the_profile_with_a_bearer_token_is_the_registered_user(app: TestApp) {
    let registered = app.registered("Alice", PASSWORD).await;
    let token = app.sign_in("alice", PASSWORD).await.access;
    let response = app.profile(&token).await;
    assert!(response.content_type().is_some_and(|ct| ct.is_json()));
    assert_eq!(expect(response, Status::Ok).await, registered);
}

async fn the_profile_without_credentials_is_401_with_a_bare_bearer_challenge(app: TestApp) {
    let response = app.client.get("/auth/profile").dispatch().await;
    assert_eq!(response.headers().get_one("WWW-Authenticate"), Some("Bearer"));
    problem(response, Status::Unauthorized).await;
}

async fn the_profile_with_a_garbage_token_is_401_with_invalid_token(app: TestApp) {
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", &"x".repeat(5000)] {
        let response = app.profile(garbage).await;
        let challenge = response.headers().get_one("WWW-Authenticate").unwrap_or_default().to_owned();
        assert!(challenge.starts_with("Bearer"), "{challenge:?}");
        assert!(challenge.contains(r#"error="invalid_token""#), "{challenge:?}");
        problem(response, Status::Unauthorized).await;
    }
}

async fn the_profile_with_basic_authentication_is_401(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    // alice:correct horse
    let basic = Header::new("Authorization", "Basic YWxpY2U6Y29ycmVjdCBob3JzZQ==");
    let response = app.client.get("/auth/profile").header(basic).dispatch().await;
    let challenge = response.headers().get_one("WWW-Authenticate").unwrap_or_default().to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge:?}");
    problem(response, Status::Unauthorized).await;
}

// Logout ------------------------------------------------------------------------------------

async fn logging_out_is_204_and_the_token_stops_working_at_once(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let token = app.sign_in("alice", PASSWORD).await.access;
    let other = app.sign_in("alice", PASSWORD).await.access;
    let response = app.logout(&token, "").await;
    expect(response, Status::NoContent).await;
    let response = app.profile(&token).await;
    let challenge = response.headers().get_one("WWW-Authenticate").unwrap_or_default().to_owned();
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge:?}");
    problem(response, Status::Unauthorized).await;
    let again = app.logout(&token, "").await;
    problem(again, Status::Unauthorized).await;
    // Only that session ended: another sign-in of the same user still works.
    expect(app.profile(&other).await, Status::Ok).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL").await, 1);
}

async fn logging_out_without_a_token_is_401(app: TestApp) {
    let response = app.client.post("/auth/logout").dispatch().await;
    assert_eq!(response.headers().get_one("WWW-Authenticate"), Some("Bearer"));
    problem(response, Status::Unauthorized).await;
}

async fn logging_out_by_cookie_without_a_csrf_token_is_403_and_keeps_the_session(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let token = app.sign_in("alice", PASSWORD).await.access;
    let cookie = || Cookie::new(TOKEN_COOKIE, token.clone());
    // The cookie alone authenticates a read …
    expect(app.client.get("/auth/profile").cookie(cookie()).dispatch().await, Status::Ok).await;
    // … but not a state-changing call a forged cross-site request could make.
    for csrf in [None, Some(""), Some("forged")] {
        let mut request = app.client.post("/auth/logout").cookie(cookie());
        if let Some(csrf) = csrf {
            request = request.header(csrf_header(csrf));
        }
        problem(request.dispatch().await, Status::Forbidden).await;
    }
    expect(app.profile(&token).await, Status::Ok).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL").await, 1);
}

// Malformed input ---------------------------------------------------------------------------

async fn invalid_json_is_400_problem(app: TestApp) {
    for uri in ["/auth/register", "/auth/login"] {
        for body in [r#"{"username": "alice", "password": "#, "{username: alice}", "", "nul", "{\"a\":1}}"] {
            let response = post_raw(&app, uri, Some(ContentType::JSON), body).await;
            problem(response, Status::BadRequest).await;
        }
    }
    assert_eq!(users(&app).await, 0);
}

async fn a_text_plain_body_is_415_problem(app: TestApp) {
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    for uri in ["/auth/register", "/auth/login"] {
        problem(post_raw(&app, uri, Some(ContentType::Plain), &body).await, Status::UnsupportedMediaType)
            .await;
    }
    assert_eq!(users(&app).await, 0);
}

async fn a_body_without_content_type_is_415_problem(app: TestApp) {
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    for uri in ["/auth/register", "/auth/login"] {
        problem(post_raw(&app, uri, None, &body).await, Status::UnsupportedMediaType).await;
    }
    assert_eq!(users(&app).await, 0);
}

async fn a_json_body_over_16_kib_is_413_problem(app: TestApp) {
    let body =
        json!({"username": "alice", "password": PASSWORD, "padding": "x".repeat(20 * 1024)}).to_string();
    for uri in ["/auth/register", "/auth/login"] {
        problem(post_raw(&app, uri, Some(ContentType::JSON), &body).await, Status::PayloadTooLarge).await;
    }
    assert_eq!(users(&app).await, 0);
    // Just under the limit is read (and then judged on its fields).
    let body =
        json!({"username": "alice", "password": PASSWORD, "padding": "x".repeat(15 * 1024)}).to_string();
    expect(post_raw(&app, "/auth/register", Some(ContentType::JSON), &body).await, Status::Created).await;
}

async fn a_form_body_over_16_kib_on_login_is_413_problem(app: TestApp) {
    let body = format!("username=alice&password={}", "x".repeat(20 * 1024));
    problem(post_raw(&app, "/auth/login", Some(ContentType::Form), &body).await, Status::PayloadTooLarge)
        .await;
}

async fn json_of_the_wrong_shape_is_a_client_error_never_500(app: TestApp) {
    let shapes = [
        json!({"username": 5}),
        json!({"username": 5, "password": PASSWORD}),
        json!({"username": "alice", "password": ["a", "b"]}),
        json!({"username": null, "password": null}),
        json!({"username": {"$ne": ""}, "password": PASSWORD}),
        json!([]),
        json!("x"),
        json!(42),
        json!(null),
    ];
    for uri in ["/auth/register", "/auth/login"] {
        for shape in &shapes {
            let response = app.post_json(uri, shape.clone()).await;
            let (status, _) = client_error_problem(response).await;
            assert!(
                status == Status::BadRequest || status == Status::UnprocessableEntity,
                "{uri} {shape}: {status}"
            );
        }
    }
    assert_eq!(users(&app).await, 0);
}

/// PostgreSQL refuses NUL in text: a NUL must be turned away before any query.
async fn nul_characters_in_any_field_are_a_client_error_never_500(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    for uri in ["/auth/register", "/auth/login"] {
        for username in ["ali\u{0}ce", "alice\u{0}", "\u{0}"] {
            let response = app.post_json(uri, json!({"username": username, "password": PASSWORD})).await;
            let status = response.status();
            assert!(status.code < 500, "{uri} {username:?}: {status}");
            client_error_problem(response).await;
        }
    }
    let form = "username=ali%00ce&password=correct+horse";
    client_error_problem(post_raw(&app, "/auth/login", Some(ContentType::Form), form).await).await;
    assert_eq!(users(&app).await, 1);
    // Inside a password a NUL is just another byte to bcrypt (only the hash is stored).
    let password = "correct\u{0}horse";
    app.registered("bob", password).await;
    app.sign_in("bob", password).await;
    problem(app.login("bob", "correct").await, Status::Unauthorized).await;
}

async fn a_body_that_is_not_utf8_is_400_problem(app: TestApp) {
    for uri in ["/auth/register", "/auth/login"] {
        let body: &[u8] = b"{\"username\": \"al\xffice\", \"password\": \"correct horse\"}";
        let response = app.client.post(uri).header(ContentType::JSON).body(body).dispatch().await;
        problem(response, Status::BadRequest).await;
    }
    assert_eq!(users(&app).await, 0);
}

async fn a_json_content_type_with_a_charset_parameter_is_accepted(app: TestApp) {
    let json_utf8 = ContentType::new("application", "json").with_params(("charset", "utf-8"));
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    expect(post_raw(&app, "/auth/register", Some(json_utf8.clone()), &body).await, Status::Created).await;
    expect(post_raw(&app, "/auth/login", Some(json_utf8), &body).await, Status::Ok).await;
}

/// The API takes `{username, password}` objects; serde would also read a struct from a
/// positional array, which no client of the original service sends and no document mentions.
async fn a_json_array_is_not_accepted_in_place_of_the_credentials_object(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    for uri in ["/auth/register", "/auth/login"] {
        let response = app.post_json(uri, json!(["bob", PASSWORD])).await;
        client_error_problem(response).await;
        let response = app.post_json(uri, json!(["alice", PASSWORD])).await;
        client_error_problem(response).await;
    }
    assert_eq!(users(&app).await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
}

async fn an_unknown_route_under_auth_is_404_problem_json(app: TestApp) {
    problem(app.client.get("/auth/nope").dispatch().await, Status::NotFound).await;
    problem(
        app.post_json("/auth/nope", json!({"username": "alice", "password": PASSWORD})).await,
        Status::NotFound,
    )
    .await;
    problem(app.client.get("/auth").dispatch().await, Status::NotFound).await;
    assert_eq!(users(&app).await, 0);
}

async fn an_unknown_route_under_auth_is_problem_json_even_for_a_browser(app: TestApp) {
    let response = app.client.get("/auth/nope").header(Accept::HTML).dispatch().await;
    problem(response, Status::NotFound).await;
}

async fn the_wrong_method_on_an_api_route_is_problem_json(app: TestApp) {
    for (method_uri, response) in [
        ("GET /auth/register", app.client.get("/auth/register").dispatch().await),
        ("GET /auth/login", app.client.get("/auth/login").dispatch().await),
        ("DELETE /auth/profile", app.client.delete("/auth/profile").dispatch().await),
        (
            "PUT /auth/register",
            app.client.put("/auth/register").header(ContentType::JSON).body("{}").dispatch().await,
        ),
    ] {
        let status = response.status();
        assert!(status == Status::NotFound || status == Status::MethodNotAllowed, "{method_uri}: {status}");
        if status == Status::MethodNotAllowed {
            let allow = response.headers().get_one("Allow").unwrap_or_default().to_owned();
            assert!(
                !allow.is_empty() && !allow.contains(method_uri.split(' ').next().unwrap()),
                "{method_uri}: Allow: {allow:?}"
            );
        }
        problem(response, status).await;
    }
    assert_eq!(users(&app).await, 0);
}

// Concurrency -------------------------------------------------------------------------------

fn tally(statuses: &[Status]) -> (usize, usize) {
    assert!(statuses.iter().all(|s| s.code < 500), "a 5xx among {statuses:?}");
    let created = statuses.iter().filter(|s| **s == Status::Created).count();
    let conflicts = statuses.iter().filter(|s| **s == Status::Conflict).count();
    (created, conflicts)
}

async fn fifty_concurrent_registrations_of_one_name_give_one_201_and_forty_nine_409(app: TestApp) {
    let responses = join_all((0..50).map(|_| app.register("racer", PASSWORD))).await;
    let statuses: Vec<Status> = responses.iter().map(|r| r.status()).collect();
    assert_eq!(tally(&statuses), (1, 49), "{statuses:?}");
    for response in responses.into_iter().filter(|r| r.status() == Status::Conflict) {
        problem(response, Status::Conflict).await;
    }
    assert_eq!(users(&app).await, 1);
    app.sign_in("racer", PASSWORD).await;
}

async fn concurrent_registrations_of_one_name_in_different_cases_give_one_user(app: TestApp) {
    let names = ["racer", "Racer", "RACER", "rAcEr", "RaceR"];
    let responses = join_all((0..30).map(|i| app.register(names[i % names.len()], PASSWORD))).await;
    let statuses: Vec<Status> = responses.iter().map(|r| r.status()).collect();
    assert_eq!(tally(&statuses), (1, 29), "{statuses:?}");
    assert_eq!(users(&app).await, 1);
}

async fn two_hundred_concurrent_registrations_of_distinct_names_all_succeed(app: TestApp) {
    let names: Vec<String> = (0..200).map(|i| format!("user{i:03}")).collect();
    let responses = join_all(names.iter().map(|name| app.register(name, PASSWORD))).await;
    let statuses: Vec<Status> = responses.iter().map(|r| r.status()).collect();
    assert_eq!(tally(&statuses), (200, 0), "{statuses:?}");
    assert_eq!(users(&app).await, 200);
    assert_eq!(app.count("SELECT COUNT(DISTINCT id) FROM users").await, 200);
}

// Operations --------------------------------------------------------------------------------

async fn healthz_and_readyz_answer_200_json(app: TestApp) {
    for uri in ["/healthz", "/readyz"] {
        let response = app.client.get(uri).dispatch().await;
        assert_eq!(response.status(), Status::Ok, "{uri}");
        assert!(response.content_type().is_some_and(|ct| ct.is_json()), "{uri}");
        assert!(json_of(response).await.is_object(), "{uri}");
    }
}

async fn openapi_json_is_openapi_3_1_and_describes_the_auth_routes(app: TestApp) {
    let response = app.client.get("/openapi.json").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    assert!(response.content_type().is_some_and(|ct| ct.is_json()));
    let document = json_of(response).await;
    let version = document["openapi"].as_str().expect("an openapi field");
    assert!(version.starts_with("3.1"), "openapi {version}");
    let paths = document["paths"].as_object().expect("paths");
    for path in ["/auth/register", "/auth/login", "/auth/profile", "/auth/logout"] {
        assert!(paths.contains_key(path), "{path} missing from {:?}", paths.keys().collect::<Vec<_>>());
    }
    assert!(document["paths"]["/auth/register"]["post"].is_object());
    assert!(document["paths"]["/auth/login"]["post"].is_object());
    assert!(document["paths"]["/auth/profile"]["get"].is_object());
    assert!(document["paths"]["/auth/logout"]["post"].is_object());
}

async fn the_docs_page_is_served_as_html(app: TestApp) {
    let mut response = app.client.get("/docs/").dispatch().await;
    if response.status() != Status::Ok {
        response = app.client.get("/docs/index.html").dispatch().await;
    }
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.content_type(), Some(ContentType::HTML));
    let page = response.into_string().await.unwrap_or_default();
    assert!(page.to_lowercase().contains("<html"), "not an HTML page");
    assert!(!page.contains("://cdn") && !page.contains("unpkg.com"), "the docs load files from a CDN");
}
