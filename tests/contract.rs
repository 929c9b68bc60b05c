//! Rules that hold for every route, checked against the route table itself, so that a route
//! added tomorrow is held to them too: every state change needs its CSRF token, and the
//! OpenAPI document lists every API route with exactly the statuses it can answer. Also the
//! one rule for cookies when the session they carry ends, through both doors.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use rocket::serde::json::{json, Value};

use common::browser::{csrf_from, set_cookie};
use common::{bearer, TestApp};
use miniauth::auth::{CSRF_HEADER, REFRESH_COOKIE, TOKEN_COOKIE};

backend_tests!(
    every_state_changing_route_refuses_a_cookie_without_its_csrf_token,
    the_openapi_document_lists_every_api_route_and_nothing_else,
    every_route_answers_exactly_the_statuses_its_openapi_entry_documents,
    revoking_the_current_session_by_cookie_clears_the_cookies_through_the_api_too,
    revoking_a_session_by_bearer_or_another_session_by_cookie_leaves_cookies_alone,
);

const PASSWORD: &str = "correct horse battery";

/// Routes that authenticate nobody by cookie, so a forged cross-site request gains nothing:
/// sign-up and sign-in of the API, and the refresh whose token is in the body.
const NO_COOKIE_ROUTES: [&str; 3] = ["POST /auth/login", "POST /auth/refresh", "POST /auth/register"];

fn is_change(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The mounted routes as `METHOD /path` with `{param}` segments and no query.
fn mounted_routes(app: &TestApp) -> BTreeSet<String> {
    app.client
        .rocket()
        .routes()
        .map(|route| {
            let path = route.uri.path().to_string().replace('<', "{").replace('>', "}");
            format!("{} {path}", route.method)
        })
        .collect()
}

async fn signed_in_token(app: &TestApp, username: &str) -> String {
    let response = app.login(username, PASSWORD).await;
    assert_eq!(response.status(), Status::Ok, "signing in {username}");
    let body: Value = response.into_json().await.expect("token JSON");
    body["access_token"].as_str().expect("access_token").to_owned()
}

async fn every_state_changing_route_refuses_a_cookie_without_its_csrf_token(app: TestApp) {
    let token = app.token_for("alice", PASSWORD).await;
    // The browser holds a CSRF cookie (from a page) and the session cookie; it sends no token.
    csrf_from(&app, "/login").await;
    let mut checked = BTreeSet::new();
    for route in mounted_routes(&app) {
        let (method, path) = route.split_once(' ').unwrap();
        if !is_change(method) || NO_COOKIE_ROUTES.contains(&route.as_str()) {
            continue;
        }
        let uri = path.replace("{id}", "some-session");
        let method = method.parse().unwrap();
        let request = app.client.req(method, uri).cookie(Cookie::new(TOKEN_COOKIE, token.clone()));
        let response = match path.starts_with("/auth/") {
            true => request.header(ContentType::JSON).body("{}").dispatch().await,
            false => request.header(ContentType::Form).body("").dispatch().await,
        };
        assert_eq!(response.status(), Status::Forbidden, "{route} without a CSRF token");
        checked.insert(route);
    }
    assert!(checked.len() >= 10, "only {checked:?}");
    // Nothing happened: the session and the account are still there.
    assert_eq!(app.profile(&token).await.status(), Status::Ok);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL").await, 0);
}

async fn openapi(app: &TestApp) -> Value {
    let response = app.client.get("/openapi.json").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    response.into_json().await.expect("the OpenAPI document")
}

/// Every operation of the document as `METHOD /path`, with its documented statuses.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<u16>> {
    let mut operations = BTreeMap::new();
    for (path, methods) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in methods.as_object().expect("methods") {
            let statuses =
                operation["responses"].as_object().expect("responses").keys().map(|s| s.parse().unwrap());
            operations.insert(format!("{} {path}", method.to_uppercase()), statuses.collect());
        }
    }
    operations
}

async fn the_openapi_document_lists_every_api_route_and_nothing_else(app: TestApp) {
    let api: BTreeSet<String> = mounted_routes(&app)
        .into_iter()
        .filter(|route| {
            let path = route.split_once(' ').unwrap().1;
            path.starts_with("/auth/") || path == "/healthz" || path == "/readyz"
        })
        .collect();
    let listed: BTreeSet<String> = documented(&openapi(&app).await).into_keys().collect();
    assert_eq!(api, listed, "mounted API routes (left) and the OpenAPI document (right) differ");
}

/// One request of a probe: how it authenticates and what body it sends.
#[derive(Clone, Copy, Debug)]
enum Probe {
    /// No credentials, the JSON body `{}`.
    Anonymous,
    /// A bearer token that is not one of ours.
    BadToken,
    /// A live session's token in the cookie, without the CSRF header.
    CookieWithoutCsrf,
    /// A live session's bearer token with each kind of broken or empty body.
    Malformed,
    TextBody,
    Oversized,
    EmptyObject,
}

const PROBES: [Probe; 7] = [
    Probe::Anonymous,
    Probe::BadToken,
    Probe::CookieWithoutCsrf,
    Probe::Malformed,
    Probe::TextBody,
    Probe::Oversized,
    Probe::EmptyObject,
];

async fn send<'c>(
    app: &'c TestApp,
    route: &str,
    token: Option<&str>,
    content_type: ContentType,
    body: String,
) -> LocalResponse<'c> {
    let (method, path) = route.split_once(' ').unwrap();
    let uri = path.replace("{id}", "unknown-session");
    let mut request = app.client.req(method.parse().unwrap(), uri).header(content_type).body(body);
    if let Some(token) = token {
        request = request.header(bearer(token));
    }
    request.dispatch().await
}

async fn probe(app: &TestApp, route: &str, probe: Probe) -> Status {
    // A fresh session for each probe: some of them succeed (a sign-out, say).
    let token = signed_in_token(app, "prober").await;
    let json = ContentType::JSON;
    let response = match probe {
        Probe::Anonymous => send(app, route, None, json, "{}".into()).await,
        Probe::BadToken => send(app, route, Some("not-a-token"), json, "{}".into()).await,
        Probe::CookieWithoutCsrf => {
            let (method, path) = route.split_once(' ').unwrap();
            let uri = path.replace("{id}", "unknown-session");
            let request =
                app.client.req(method.parse().unwrap(), uri).cookie(Cookie::new(TOKEN_COOKIE, token));
            request.header(json).body("{}").dispatch().await
        }
        Probe::Malformed => send(app, route, Some(&token), json, "{".into()).await,
        Probe::TextBody => send(app, route, Some(&token), ContentType::Text, "hello".into()).await,
        Probe::Oversized => {
            let body = json!({ "padding": "x".repeat(17 * 1024) }).to_string();
            send(app, route, Some(&token), json, body).await
        }
        Probe::EmptyObject => send(app, route, Some(&token), json, "{}".into()).await,
    };
    response.status()
}

/// The answers only a route's own input gives: its successes and its own failures.
async fn specific(app: &TestApp, route: &str) -> BTreeSet<u16> {
    let mut seen = BTreeSet::new();
    let mut record = |response: LocalResponse<'_>| seen.insert(response.status().code);
    match route {
        "POST /auth/register" => {
            record(app.register("newcomer", PASSWORD).await);
            record(app.register("NEWCOMER", PASSWORD).await);
        }
        "POST /auth/login" => {
            record(app.login("prober", PASSWORD).await);
            record(app.login("prober", "wrong password").await);
        }
        "POST /auth/refresh" => {
            let login: Value = app.login("prober", PASSWORD).await.into_json().await.unwrap();
            let refresh_token = login["refresh_token"].clone();
            record(app.post_json("/auth/refresh", json!({ "refresh_token": refresh_token })).await);
            record(app.post_json("/auth/refresh", json!({ "refresh_token": "unknown" })).await);
        }
        "POST /auth/logout" => {
            let token = signed_in_token(app, "prober").await;
            record(app.client.post("/auth/logout?scope=nowhere").header(bearer(&token)).dispatch().await);
        }
        "POST /auth/password" => {
            let token = signed_in_token(app, "prober").await;
            let wrong = json!({ "current_password": "wrong password", "new_password": "another long one" });
            let request = app.client.post("/auth/password").header(bearer(&token)).header(ContentType::JSON);
            record(request.body(wrong.to_string()).dispatch().await);
            let token = app.token_for("changer", PASSWORD).await;
            let right = well_formed_body(route).to_string();
            let request = app.client.post("/auth/password").header(bearer(&token)).header(ContentType::JSON);
            record(request.body(right).dispatch().await);
        }
        "DELETE /auth/account" => {
            let token = signed_in_token(app, "prober").await;
            let request = app.client.delete("/auth/account").header(bearer(&token)).header(ContentType::JSON);
            record(request.body(json!({ "password": "wrong password" }).to_string()).dispatch().await);
            let token = app.token_for("leaver", PASSWORD).await;
            let request = app.client.delete("/auth/account").header(bearer(&token)).header(ContentType::JSON);
            record(request.body(json!({ "password": PASSWORD }).to_string()).dispatch().await);
        }
        "DELETE /auth/sessions/{id}" => {
            let token = signed_in_token(app, "prober").await;
            let sessions: Value = app
                .client
                .get("/auth/sessions")
                .header(bearer(&token))
                .dispatch()
                .await
                .into_json()
                .await
                .unwrap();
            let other =
                sessions.as_array().unwrap().iter().find(|s| s["current"] == false).expect("another session");
            let uri = format!("/auth/sessions/{}", other["id"].as_str().unwrap());
            record(app.client.delete(uri).header(bearer(&token)).dispatch().await);
        }
        _ => {}
    }
    seen
}

async fn every_route_answers_exactly_the_statuses_its_openapi_entry_documents(app: TestApp) {
    assert_eq!(app.register("prober", PASSWORD).await.status(), Status::Created);
    let documented = documented(&openapi(&app).await);
    let mut answered: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for route in documented.keys() {
        let statuses = answered.entry(route.clone()).or_default();
        for kind in PROBES {
            statuses.insert(probe(&app, route, kind).await.code);
        }
        statuses.extend(specific(&app, route).await);
    }
    // The database out of reach: everything that needs it answers 503.
    let unavailable = TestApp::spawn_with(app.backend, |figment| {
        figment
            .merge(("databases.miniauth.connect_timeout", 1))
            .merge(("databases.miniauth.max_connections", 2))
    })
    .await
    .unwrap();
    assert_eq!(unavailable.register("prober", PASSWORD).await.status(), Status::Created);
    let token_there = signed_in_token(&unavailable, "prober").await;
    let _held = hold_every_connection(&unavailable).await;
    for route in documented.keys() {
        let body = well_formed_body(route).to_string();
        let response = send(&unavailable, route, Some(&token_there), ContentType::JSON, body).await;
        answered.get_mut(route).unwrap().insert(response.status().code);
    }
    let mut wrong = Vec::new();
    for (route, statuses) in &documented {
        let seen = &answered[route];
        if seen != statuses {
            let undocumented: Vec<_> = seen.difference(statuses).collect();
            let never_seen: Vec<_> = statuses.difference(seen).collect();
            wrong.push(format!(
                "{route}: answers {undocumented:?} undocumented; documents {never_seen:?} never seen"
            ));
        }
    }
    assert!(wrong.is_empty(), "the OpenAPI document and the answers differ:\n{}", wrong.join("\n"));
}

/// A body each route accepts as far as its shape goes, so that the request reaches the database.
fn well_formed_body(route: &str) -> Value {
    match route {
        "POST /auth/register" => json!({ "username": "someone", "password": PASSWORD }),
        "POST /auth/login" => json!({ "username": "prober", "password": PASSWORD }),
        "POST /auth/refresh" => json!({ "refresh_token": "some token" }),
        "POST /auth/password" => json!({ "current_password": PASSWORD, "new_password": "another long one" }),
        "DELETE /auth/account" => json!({ "password": PASSWORD }),
        _ => json!({}),
    }
}

/// Takes every connection of the app's pool (until one cannot be had), so that nothing else
/// gets one: what a database out of reach looks like to a request.
async fn hold_every_connection(app: &TestApp) -> Vec<sqlx::pool::PoolConnection<sqlx::Any>> {
    let db = app.client.rocket().state::<miniauth::store::Db>().expect("the pool");
    let mut held = Vec::new();
    while let Ok(connection) = db.acquire().await {
        held.push(connection);
    }
    held
}

/// Whether the response tells the browser to forget cookie `name` (an empty value, expired).
fn clears(response: &LocalResponse<'_>, name: &str) -> bool {
    set_cookie(response, name).is_some_and(|header| {
        let value = header.split(';').next().unwrap_or_default().split_once('=').map_or("", |(_, v)| v);
        value.is_empty() && (header.contains("Max-Age=0") || header.contains("Expires="))
    })
}

/// The id of the session `token` belongs to.
async fn own_session_id(app: &TestApp, token: &str) -> String {
    let sessions: Value =
        app.client.get("/auth/sessions").header(bearer(token)).dispatch().await.into_json().await.unwrap();
    let current =
        sessions.as_array().unwrap().iter().find(|s| s["current"] == true).expect("the current session");
    current["id"].as_str().unwrap().to_owned()
}

async fn revoking_the_current_session_by_cookie_clears_the_cookies_through_the_api_too(app: TestApp) {
    assert_eq!(app.register("alice", PASSWORD).await.status(), Status::Created);
    let tokens: Value = app.login("alice", PASSWORD).await.into_json().await.unwrap();
    let (access, refresh) =
        (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    let id = own_session_id(&app, access).await;
    let csrf = csrf_from(&app, "/login").await;
    // The browser's two cookies, as the pages set them.
    let response = app
        .client
        .delete(format!("/auth/sessions/{id}"))
        .cookie(Cookie::new(TOKEN_COOKIE, access.to_owned()))
        .cookie(Cookie::new(REFRESH_COOKIE, refresh.to_owned()))
        .header(Header::new(CSRF_HEADER, csrf))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NoContent);
    assert!(clears(&response, TOKEN_COOKIE) && clears(&response, REFRESH_COOKIE), "the cookies stay");
    assert_eq!(app.profile(access).await.status(), Status::Unauthorized);
}

async fn revoking_a_session_by_bearer_or_another_session_by_cookie_leaves_cookies_alone(app: TestApp) {
    let token = app.token_for("alice", PASSWORD).await;
    let other = signed_in_token(&app, "alice").await;
    let other_id = own_session_id(&app, &other).await;
    let csrf = csrf_from(&app, "/login").await;
    let response = app
        .client
        .delete(format!("/auth/sessions/{other_id}"))
        .cookie(Cookie::new(TOKEN_COOKIE, token.clone()))
        .header(Header::new(CSRF_HEADER, csrf))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NoContent);
    assert!(set_cookie(&response, TOKEN_COOKIE).is_none(), "this session's cookie was touched");
    let id = own_session_id(&app, &token).await;
    let response = app.client.delete(format!("/auth/sessions/{id}")).header(bearer(&token)).dispatch().await;
    assert_eq!(response.status(), Status::NoContent);
    assert!(set_cookie(&response, TOKEN_COOKIE).is_none(), "a bearer call set a cookie");
}
