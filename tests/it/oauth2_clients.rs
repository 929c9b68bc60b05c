//! OAuth2 client libraries end to end: `POST /auth/login` takes the password grant's form and
//! `POST /auth/refresh` the refresh grant's, and every refusal of a form request carries RFC
//! 6749's `error` (400 for `invalid_grant`, `invalid_request`, `unsupported_grant_type`; a 429
//! keeps `Retry-After` and says `slow_down`), which libraries raise on. The JSON routes answer as
//! they always have. Then real libraries: Authlib's `OAuth2Session` and requests-oauthlib's
//! `LegacyApplicationClient` (`examples/oauth2_password_client.py`) against the real binary.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::server::{Server, JSON};
use common::{expect, problem, Backend, TestApp, TestDatabase, Tokens};
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

backend_tests!(
    the_password_form_gives_tokens_and_ignores_parameters_it_does_not_know,
    a_wrong_password_in_the_form_is_invalid_grant,
    a_form_missing_a_field_is_invalid_request,
    another_grant_in_the_form_is_unsupported_grant_type,
    the_refresh_form_renews_and_a_spent_token_is_invalid_grant,
    a_throttled_form_keeps_retry_after_and_says_slow_down,
    the_database_out_of_reach_is_temporarily_unavailable_for_a_form,
    a_second_factor_is_still_mfa_required_for_a_form,
    the_json_routes_answer_as_before,
);

async fn form<'a>(app: &'a TestApp, uri: &str, fields: &[(&str, &str)]) -> LocalResponse<'a> {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    app.client.post(uri.to_owned()).header(ContentType::Form).body(body).dispatch().await
}

/// A refusal as an OAuth2 library reads it: the status, `error` and an `error_description`.
async fn oauth_error(response: LocalResponse<'_>, status: Status, error: &str) -> Value {
    let body = problem(response, status).await;
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    body
}

async fn password_grant<'a>(app: &'a TestApp, username: &str, password: &str) -> LocalResponse<'a> {
    form(app, "/auth/login", &[("grant_type", "password"), ("username", username), ("password", password)])
        .await
}

async fn the_password_form_gives_tokens_and_ignores_parameters_it_does_not_know(app: TestApp) {
    app.registered("lib-alice", PASSWORD).await;
    let fields = [
        ("grant_type", "password"),
        ("username", "lib-alice"),
        ("password", PASSWORD),
        ("client_id", "some-library"),
        ("scope", "profile"),
    ];
    let token = expect(form(&app, "/auth/login", &fields).await, Status::Ok).await;
    assert_eq!(token["token_type"], "bearer");
    expect(app.profile(token["access_token"].as_str().unwrap()).await, Status::Ok).await;
    // `grant_type` may be left out, as before.
    let fields = [("username", "lib-alice"), ("password", PASSWORD)];
    expect(form(&app, "/auth/login", &fields).await, Status::Ok).await;
}

async fn a_wrong_password_in_the_form_is_invalid_grant(app: TestApp) {
    app.registered("lib-bob", PASSWORD).await;
    let wrong = oauth_error(
        password_grant(&app, "lib-bob", "not the password").await,
        Status::BadRequest,
        "invalid_grant",
    )
    .await;
    let unknown =
        oauth_error(password_grant(&app, "lib-nobody", PASSWORD).await, Status::BadRequest, "invalid_grant")
            .await;
    assert_eq!(wrong["error_description"], unknown["error_description"], "one answer for both");
    assert!(wrong.get("access_token").is_none());
}

async fn a_form_missing_a_field_is_invalid_request(app: TestApp) {
    let missing = [("grant_type", "password"), ("username", "lib-carol")];
    let body =
        oauth_error(form(&app, "/auth/login", &missing).await, Status::BadRequest, "invalid_request").await;
    assert!(body["error_description"].as_str().unwrap().contains("password"), "{body}");
    let missing = [("grant_type", "refresh_token")];
    oauth_error(form(&app, "/auth/refresh", &missing).await, Status::BadRequest, "invalid_request").await;
    // A body past the limit keeps its 413, as a request the library can read.
    let big = "x".repeat(17 * 1024);
    let fields = [("grant_type", "password"), ("username", "lib-carol"), ("password", big.as_str())];
    oauth_error(form(&app, "/auth/login", &fields).await, Status::PayloadTooLarge, "invalid_request").await;
}

async fn another_grant_in_the_form_is_unsupported_grant_type(app: TestApp) {
    app.registered("lib-dave", PASSWORD).await;
    let fields = [("grant_type", "client_credentials"), ("username", "lib-dave"), ("password", PASSWORD)];
    oauth_error(form(&app, "/auth/login", &fields).await, Status::BadRequest, "unsupported_grant_type").await;
    let tokens = app.sign_in("lib-dave", PASSWORD).await;
    let fields = [("grant_type", "password"), ("refresh_token", tokens.refresh.as_str())];
    oauth_error(form(&app, "/auth/refresh", &fields).await, Status::BadRequest, "unsupported_grant_type")
        .await;
    // Nothing was spent by the refusal.
    expect(app.refresh(&tokens.refresh).await, Status::Ok).await;
}

async fn the_refresh_form_renews_and_a_spent_token_is_invalid_grant(app: TestApp) {
    app.registered("lib-erin", PASSWORD).await;
    let first = Tokens::of(&expect(password_grant(&app, "lib-erin", PASSWORD).await, Status::Ok).await);
    let fields = [("grant_type", "refresh_token"), ("refresh_token", first.refresh.as_str())];
    let second = Tokens::of(&expect(form(&app, "/auth/refresh", &fields).await, Status::Ok).await);
    expect(app.profile(&second.access).await, Status::Ok).await;
    let fields =
        [("grant_type", "refresh_token"), ("refresh_token", second.refresh.as_str()), ("client_id", "x")];
    let third = Tokens::of(&expect(form(&app, "/auth/refresh", &fields).await, Status::Ok).await);
    assert_ne!(third.refresh, second.refresh);
    // The first token, past the grace window of its use: a copy in the wrong hands.
    app.execute(&["UPDATE refresh_tokens SET used_at = used_at - 3600".to_owned()]).await;
    let fields = [("grant_type", "refresh_token"), ("refresh_token", first.refresh.as_str())];
    oauth_error(form(&app, "/auth/refresh", &fields).await, Status::BadRequest, "invalid_grant").await;
    let fields = [("grant_type", "refresh_token"), ("refresh_token", "never-issued")];
    oauth_error(form(&app, "/auth/refresh", &fields).await, Status::BadRequest, "invalid_grant").await;
    problem(app.profile(&third.access).await, Status::Unauthorized).await;
}

async fn a_throttled_form_keeps_retry_after_and_says_slow_down(app: TestApp) {
    app.registered("lib-frank", PASSWORD).await;
    for _ in 0..5 {
        oauth_error(password_grant(&app, "lib-frank", "not it").await, Status::BadRequest, "invalid_grant")
            .await;
    }
    let response = password_grant(&app, "lib-frank", PASSWORD).await;
    let retry_after: i64 = response.headers().get_one("Retry-After").expect("Retry-After").parse().unwrap();
    assert!(retry_after > 0);
    oauth_error(response, Status::TooManyRequests, "slow_down").await;
}

async fn the_database_out_of_reach_is_temporarily_unavailable_for_a_form(app: TestApp) {
    let unavailable = TestApp::spawn_with(app.backend(), |figment| {
        figment
            .merge(("databases.miniauth.connect_timeout", 1))
            .merge(("databases.miniauth.max_connections", 2))
    })
    .await;
    let _held = unavailable.hold_every_connection().await;
    let response = password_grant(&unavailable, "lib-gina", PASSWORD).await;
    assert!(response.headers().get_one("Retry-After").is_some());
    oauth_error(response, Status::ServiceUnavailable, "temporarily_unavailable").await;
    let fields = [("grant_type", "refresh_token"), ("refresh_token", "anything")];
    oauth_error(
        form(&unavailable, "/auth/refresh", &fields).await,
        Status::ServiceUnavailable,
        "temporarily_unavailable",
    )
    .await;
}

async fn a_second_factor_is_still_mfa_required_for_a_form(app: TestApp) {
    app.registered("lib-hank", PASSWORD).await;
    let tokens = app.sign_in("lib-hank", PASSWORD).await;
    app.turn_on_totp(&tokens.access, PASSWORD).await;
    let body = problem(password_grant(&app, "lib-hank", PASSWORD).await, Status::Forbidden).await;
    assert_eq!(body["error"], "mfa_required");
    assert!(body["mfa_token"].is_string());
}

async fn the_json_routes_answer_as_before(app: TestApp) {
    app.registered("lib-ivy", PASSWORD).await;
    let wrong = problem(app.login("lib-ivy", "not it").await, Status::Unauthorized).await;
    assert!(wrong.get("error").is_none(), "{wrong}");
    let other_grant =
        json!({ "grant_type": "client_credentials", "username": "lib-ivy", "password": PASSWORD });
    let refused = problem(app.post_json("/auth/login", other_grant).await, Status::UnprocessableEntity).await;
    assert!(refused["errors"]["grant_type"].is_array(), "{refused}");
    let spent = problem(app.refresh("never-issued").await, Status::Unauthorized).await;
    assert!(spent.get("error").is_none(), "{spent}");
    problem(app.post_json("/auth/refresh", json!({})).await, Status::UnprocessableEntity).await;
    let text = app
        .client
        .post("/auth/refresh")
        .header(Header::new("Content-Type", "text/plain"))
        .body("refresh_token=x")
        .dispatch()
        .await;
    problem(text, Status::UnsupportedMediaType).await;
}

/// A Python with Authlib, requests and requests-oauthlib: `MINIAUTH_TEST_PYTHON` when set (CI
/// installs them there), else a virtualenv under `target/` made once.
fn python() -> PathBuf {
    if let Ok(python) = std::env::var("MINIAUTH_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-oauth2-clients");
    let python = venv.join("bin/python");
    let ready = Command::new(&python).args(["-c", "import authlib, requests, requests_oauthlib"]).status();
    if !ready.is_ok_and(|status| status.success()) {
        let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().expect("python3 runs");
        assert!(made.success(), "python3 -m venv failed");
        let packages = ["authlib", "requests", "requests-oauthlib"];
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(packages)
            .status()
            .expect("pip runs");
        assert!(installed.success(), "pip install failed");
    }
    python
}

fn real_libraries_sign_in_refresh_and_raise_the_right_errors(backend: Backend) {
    let database = (backend == Backend::Postgres).then(|| TestDatabase::create(backend));
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![("ROCKET_BCRYPT_COST", "4"), ("ROCKET_REFRESH_GRACE", "0")];
    if let Some(database) = &database {
        env.push(database.env());
    }
    let server = Server::start(dir.path(), &env);
    let account = json!({ "username": "lib-user", "password": PASSWORD }).to_string();
    assert_eq!(server.request("POST", "/auth/register", &[JSON], &account).0, 201);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/oauth2_password_client.py");
    let output = Command::new(python())
        .arg(&script)
        .args([server.url(""), "lib-user".into(), PASSWORD.into()])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}\n{}", server.log());
    let steps: Vec<Value> = stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let of = |library: &str| -> Vec<(String, String)> {
        steps
            .iter()
            .filter(|step| step["library"] == library)
            .map(|step| {
                (step["step"].as_str().unwrap().to_owned(), step["error"].as_str().unwrap_or("").to_owned())
            })
            .collect()
    };
    let expected: Vec<(String, String)> = [
        ("token", ""),
        ("profile", ""),
        ("refresh 1", ""),
        ("refresh 2", ""),
        ("wrong password", "invalid_grant"),
        ("spent refresh token", "invalid_grant"),
    ]
    .map(|(step, error)| (step.to_owned(), error.to_owned()))
    .to_vec();
    assert_eq!(of("authlib"), expected, "{stdout}");
    assert_eq!(of("requests-oauthlib"), expected, "{stdout}");
    assert_eq!(of("all"), [("done".to_owned(), String::new())]);
}

#[test]
fn real_libraries_sign_in_refresh_and_raise_the_right_errors_on_sqlite() {
    real_libraries_sign_in_refresh_and_raise_the_right_errors(Backend::Sqlite);
}

needs_postgres! {
    #[test]
    fn real_libraries_sign_in_refresh_and_raise_the_right_errors_on_postgres() {
        real_libraries_sign_in_refresh_and_raise_the_right_errors(Backend::Postgres);
    }
}
