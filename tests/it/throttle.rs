//! Throttling: failed password checks count per (username, address), per address
//! and per username, in the database; past a limit the answer is `429` with `Retry-After`, on
//! the API (problem+json) and on the pages (the form again), for sign-in, change password and
//! delete account, without running bcrypt. A success clears its pair. Clients that signed in to
//! an account before are not held back by the per-username limit. Sign-ups are limited per
//! address. Every limit is a setting, and `0` turns it off.

use crate::common;

use std::net::SocketAddr;

use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::LocalResponse;
use rocket::serde::json::{json, Value};

use common::browser::{
    assert_html, cookie, csrf_from, form_body, has_attribute, post_form, set_cookie, sign_in_on_the_page,
    submit_login,
};
use common::server::{Server, JSON};
use common::{bearer, expect, problem, Backend, TestApp, TestDatabase};
use miniauth::web::DEVICE_COOKIE;

backend_tests!(
    five_failures_of_a_pair_block_it_even_with_the_right_password_and_never_run_bcrypt,
    a_success_clears_the_pair_so_the_owner_can_mistype_again,
    fifty_failures_from_one_address_block_it_for_every_name,
    the_per_username_limit_holds_back_new_clients_but_not_known_ones,
    a_block_ends_with_its_window,
    the_sign_in_page_shows_the_form_again_with_429_and_retry_after,
    wrong_current_passwords_throttle_the_password_change_on_the_api_and_the_page,
    wrong_passwords_throttle_the_account_deletion_and_nothing_is_deleted,
    the_device_cookie_is_http_only_lasts_a_year_and_remembers_each_account,
);

backend_tests_with!(
    |figment| figment.merge(("register_max_per_address_hour", 2));
    sign_ups_are_limited_per_address_on_the_api_and_the_page
        => sqlite_sign_ups_are_limited_per_address, postgres_sign_ups_are_limited_per_address,
);

backend_tests_with!(
    |figment| figment
        .merge(("login_max_failures_pair", 0))
        .merge(("login_max_failures_address", 0))
        .merge(("login_max_failures_user_hour", 0))
        .merge(("register_max_per_address_hour", 0));
    a_limit_of_zero_is_no_limit => sqlite_a_limit_of_zero_is_no_limit, postgres_a_limit_of_zero_is_no_limit,
);

backend_tests_with!(
    |figment| figment.merge(("login_max_failures_user_hour", 3));
    a_device_token_ends_with_a_password_change_and_a_global_sign_out
        => sqlite_device_tokens_end, postgres_device_tokens_end,
);

backend_tests_with!(
    |figment| figment
        .merge(("login_max_failures_pair", 5))
        .merge(("login_max_failures_address", 5))
        .merge(("login_max_failures_user_hour", 5));
    parallel_guesses_get_no_more_checks_than_each_limit_allows
        => sqlite_parallel_guesses_stay_within_the_limits, postgres_parallel_guesses_stay_within_the_limits,
);

const PASSWORD: &str = "quiet lantern trombone";
const WRONG: &str = "wrong password";

/// A sign-in through the API from `peer`, with the device token of an earlier sign-in if any.
async fn login_from<'c>(
    app: &'c TestApp,
    username: &str,
    password: &str,
    peer: &str,
    device_token: Option<&str>,
) -> LocalResponse<'c> {
    let mut body = json!({ "username": username, "password": password });
    if let Some(token) = device_token {
        body["device_token"] = token.into();
    }
    app.client
        .post("/auth/login")
        .header(ContentType::JSON)
        .remote(peer.parse::<SocketAddr>().unwrap())
        .body(body.to_string())
        .dispatch()
        .await
}

/// A device token is good only until the account's next password change or global sign-out
/// (and reset, and `set-password`, which change the password the same way): one obtained with
/// the old password, or copied off a device, no longer gets past the per-username block.
async fn a_device_token_ends_with_a_password_change_and_a_global_sign_out(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let new_password = "another quiet lantern";
    let device_token = |body: &Value| body["device_token"].as_str().unwrap().to_owned();
    // Strangers' failures from three addresses block the name for new clients.
    let block = || async {
        app.execute(&["DELETE FROM throttle".into()]).await;
        for n in 1..=3 {
            fail(&app, "alice", &format!("10.9.0.{n}:1000"), 1).await;
        }
    };
    let signed_in =
        expect(login_from(&app, "alice", PASSWORD, "198.51.100.1:1000", None).await, Status::Ok).await;
    let (token, access) = (device_token(&signed_in), signed_in["access_token"].as_str().unwrap().to_owned());
    block().await;
    assert_eq!(
        login_from(&app, "alice", PASSWORD, "192.0.2.1:1000", Some(&token)).await.status(),
        Status::Ok
    );
    let change = json!({ "current_password": PASSWORD, "new_password": new_password }).to_string();
    let changed = app
        .client
        .post("/auth/password")
        .header(ContentType::JSON)
        .header(bearer(&access))
        .body(change)
        .dispatch()
        .await;
    assert_eq!(changed.status(), Status::NoContent);
    drop(changed);
    assert_throttled(login_from(&app, "alice", new_password, "192.0.2.2:1000", Some(&token)).await, 3600)
        .await;

    app.execute(&["DELETE FROM throttle".into()]).await;
    let signed_in =
        expect(login_from(&app, "alice", new_password, "198.51.100.1:1000", None).await, Status::Ok).await;
    let (token, access) = (device_token(&signed_in), signed_in["access_token"].as_str().unwrap().to_owned());
    block().await;
    assert_eq!(
        login_from(&app, "alice", new_password, "192.0.2.3:1000", Some(&token)).await.status(),
        Status::Ok
    );
    let everywhere = app.client.post("/auth/logout?scope=global").header(bearer(&access)).dispatch().await;
    assert_eq!(everywhere.status(), Status::NoContent);
    drop(everywhere);
    assert_throttled(login_from(&app, "alice", new_password, "192.0.2.4:1000", Some(&token)).await, 3600)
        .await;
}

/// Sends these sign-ins all at once; returns how many got `401` (a password check ran and
/// failed) and how many `429` (refused before any check).
async fn at_once(app: &TestApp, attempts: &[(String, String)]) -> (usize, usize) {
    let answers = rocket::futures::future::join_all(
        attempts.iter().map(|(username, peer)| login_from(app, username, WRONG, peer, None)),
    )
    .await;
    let statuses: Vec<Status> = answers.iter().map(|answer| answer.status()).collect();
    let count = |wanted: Status| statuses.iter().filter(|status| **status == wanted).count();
    assert_eq!(count(Status::Unauthorized) + count(Status::TooManyRequests), attempts.len(), "{statuses:?}");
    (count(Status::Unauthorized), count(Status::TooManyRequests))
}

/// Each attempt is counted before its password is checked, in one atomic statement, so twenty
/// guesses sent at once get exactly as many checks as a limit of five allows: for one pair, for
/// one address over many names, and for one name over many addresses.
async fn parallel_guesses_get_no_more_checks_than_each_limit_allows(app: TestApp) {
    for name in ["alice", "carol", "bob"] {
        app.register(name, PASSWORD).await;
    }
    let pair: Vec<_> = (0..20).map(|_| ("alice".to_owned(), "198.51.100.1:4000".to_owned())).collect();
    assert_eq!(at_once(&app, &pair).await, (5, 15), "one pair");
    let address: Vec<_> = (0..20).map(|i| (format!("name{i}"), "198.51.100.2:4000".to_owned())).collect();
    assert_eq!(at_once(&app, &address).await, (5, 15), "one address, many names");
    let user: Vec<_> = (0..20).map(|i| ("carol".to_owned(), format!("203.0.113.{}:4000", i + 1))).collect();
    assert_eq!(at_once(&app, &user).await, (5, 15), "one name, many addresses");
    // A check that passes gives its count back: successes never add up to a block.
    for _ in 0..10 {
        let response = login_from(&app, "bob", PASSWORD, "198.51.100.9:4000", None).await;
        assert_eq!(response.status(), Status::Ok);
    }
}

fn retry_after(response: &LocalResponse<'_>) -> i64 {
    let header = response.headers().get_one("Retry-After").expect("a Retry-After header");
    header.parse().expect("Retry-After in seconds")
}

/// Asserts a throttled API answer: `429`, problem+json, `Retry-After` within `(0, max]`.
async fn assert_throttled(response: LocalResponse<'_>, max: i64) {
    let wait = retry_after(&response);
    assert!((1..=max).contains(&wait), "Retry-After: {wait}");
    let body = problem(response, Status::TooManyRequests).await;
    assert!(body["detail"].as_str().unwrap().starts_with("Too many attempts: try again in"), "{body}");
}

async fn fail(app: &TestApp, username: &str, peer: &str, times: usize) {
    for _ in 0..times {
        let response = login_from(app, username, WRONG, peer, None).await;
        assert_eq!(response.status(), Status::Unauthorized, "a failure of {username} from {peer}");
    }
}

async fn five_failures_of_a_pair_block_it_even_with_the_right_password_and_never_run_bcrypt(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    fail(&app, "alice", "203.0.113.1:1000", 4).await;
    // The fifth failure, in another case of the name: names are counted case-insensitively.
    fail(&app, "ALICE", "203.0.113.1:1000", 1).await;
    assert_throttled(login_from(&app, "alice", PASSWORD, "203.0.113.1:2000", None).await, 900).await;
    // Another name from that address, and that name from elsewhere, are not held back.
    let other = login_from(&app, "bob", WRONG, "203.0.113.1:1000", None).await;
    assert_eq!(other.status(), Status::Unauthorized);
    let elsewhere = login_from(&app, "alice", PASSWORD, "198.51.100.2:1000", None).await;
    assert_eq!(elsewhere.status(), Status::Ok);
    // Unknown names are counted too.
    fail(&app, "nobody", "203.0.113.9:1000", 5).await;
    assert_throttled(login_from(&app, "nobody", WRONG, "203.0.113.9:1000", None).await, 900).await;
    // A blocked check never reaches bcrypt: with the stored hash unreadable, bcrypt would fail
    // (500); the blocked request still answers 429.
    app.execute(&["UPDATE users SET password_hash = 'not a bcrypt hash'".to_owned()]).await;
    assert_throttled(login_from(&app, "alice", PASSWORD, "203.0.113.1:1000", None).await, 900).await;
}

async fn a_success_clears_the_pair_so_the_owner_can_mistype_again(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let peer = "203.0.113.1:1000";
    fail(&app, "alice", peer, 4).await;
    assert_eq!(login_from(&app, "alice", PASSWORD, peer, None).await.status(), Status::Ok);
    fail(&app, "alice", peer, 4).await;
    assert_eq!(login_from(&app, "alice", PASSWORD, peer, None).await.status(), Status::Ok);
}

async fn fifty_failures_from_one_address_block_it_for_every_name(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let attacker = "203.0.113.66:1000";
    for n in 0..50 {
        fail(&app, &format!("guess{n}"), attacker, 1).await;
    }
    assert_throttled(login_from(&app, "alice", PASSWORD, attacker, None).await, 900).await;
    assert_eq!(login_from(&app, "alice", PASSWORD, "198.51.100.2:1000", None).await.status(), Status::Ok);
    // An IPv6 client counts by its /64: another address in it is the same client.
    for n in 0..50 {
        fail(&app, &format!("guess{n}"), "[2001:db8:1:2::1]:1000", 1).await;
    }
    let neighbour = login_from(&app, "alice", PASSWORD, "[2001:db8:1:2:ffff::9]:1000", None).await;
    assert_throttled(neighbour, 900).await;
}

async fn the_per_username_limit_holds_back_new_clients_but_not_known_ones(app: TestApp) {
    let alice = app.registered("alice", PASSWORD).await;
    app.registered("bob", PASSWORD).await;
    // The owner's API client signed in before and kept its device token; so did bob's.
    let earlier =
        expect(login_from(&app, "alice", PASSWORD, "198.51.100.1:1000", None).await, Status::Ok).await;
    let device_token = earlier["device_token"].as_str().expect("a device token").to_owned();
    let bobs = expect(login_from(&app, "bob", PASSWORD, "198.51.100.1:1000", None).await, Status::Ok).await;
    let bobs_token = bobs["device_token"].as_str().unwrap().to_owned();
    // 100 failures, from 100 addresses: neither a pair nor an address reaches its limit.
    for n in 0..100 {
        fail(&app, "alice", &format!("10.0.{}.{}:1000", n / 200, n % 200 + 1), 1).await;
    }
    let newcomer = login_from(&app, "alice", PASSWORD, "198.51.100.7:1000", None).await;
    assert_throttled(newcomer, 3600).await;
    // Someone else's token, or a forged one, vouches for nothing.
    let forged = format!("{}.{}.AAAA", user_id(&alice), common::now());
    for token in [bobs_token.as_str(), forged.as_str(), "junk"] {
        let stranger = login_from(&app, "alice", PASSWORD, "198.51.100.7:1000", Some(token)).await;
        assert_eq!(stranger.status(), Status::TooManyRequests, "with {token}");
    }
    // The owner's client, from a new address even, signs in.
    let owner = login_from(&app, "alice", PASSWORD, "192.0.2.50:1000", Some(&device_token)).await;
    let body = expect(owner, Status::Ok).await;
    assert!(body["device_token"].as_str().is_some_and(|t| !t.is_empty()));
}

fn user_id(user: &Value) -> i64 {
    user["id"].as_i64().expect("an id")
}

async fn a_block_ends_with_its_window(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let peer = "203.0.113.1:1000";
    fail(&app, "alice", peer, 5).await;
    assert_eq!(login_from(&app, "alice", PASSWORD, peer, None).await.status(), Status::TooManyRequests);
    // Fifteen minutes later (the stored times moved back instead; and the 5 seconds waited
    // for which an instance trusts a block it has seen without asking the database again).
    rocket::tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    app.execute(&[
        "UPDATE throttle SET window_start = window_start - 901, blocked_until = blocked_until - 901, \
                   expires_at = expires_at - 901"
            .to_owned(),
    ])
    .await;
    fail(&app, "alice", peer, 4).await;
    assert_eq!(login_from(&app, "alice", PASSWORD, peer, None).await.status(), Status::Ok);
}

async fn the_sign_in_page_shows_the_form_again_with_429_and_retry_after(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    for _ in 0..5 {
        assert_eq!(submit_login(&app, "alice", WRONG, None).await.status(), Status::Unauthorized);
    }
    let response = submit_login(&app, "alice", PASSWORD, None).await;
    assert_eq!(response.status(), Status::TooManyRequests);
    assert!((1..=900).contains(&retry_after(&response)));
    assert_html(&response);
    let html = response.into_string().await.unwrap();
    assert!(html.contains("Too many attempts: try again in 15 minutes."), "{html}");
    assert!(html.contains(r#"action="/login""#), "the form is not shown again:\n{html}");
    assert!(html.contains(r#"value="alice""#), "the username is not kept:\n{html}");
}

/// Five wrong current passwords through the API, then the right one: `429`.
async fn wrong_current_passwords_throttle_the_password_change_on_the_api_and_the_page(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let change = |current: &str| {
        let body = json!({ "current_password": current, "new_password": "another fine sentence" });
        app.client
            .post("/auth/password")
            .header(bearer(&tokens.access))
            .header(ContentType::JSON)
            .body(body.to_string())
    };
    for _ in 0..5 {
        assert_eq!(change(WRONG).dispatch().await.status(), Status::Forbidden);
    }
    assert_throttled(change(PASSWORD).dispatch().await, 900).await;
    // The pair is blocked for signing in too.
    assert_eq!(app.login("alice", PASSWORD).await.status(), Status::TooManyRequests);
    assert!(app.token_works(&tokens.access).await, "nothing changed");

    // The page: the form again, with the message.
    let app = TestApp::spawn(app.backend()).await;
    app.registered("alice", PASSWORD).await;
    sign_in_on_the_page(&app, "alice", PASSWORD, "test browser").await;
    let csrf = csrf_from(&app, "/account/password").await;
    let fields = |current: &'static str| {
        vec![
            ("csrf_token", csrf.clone()),
            ("current_password", current.to_owned()),
            ("new_password", "another fine sentence".to_owned()),
            ("new_password_confirm", "another fine sentence".to_owned()),
        ]
    };
    for _ in 0..5 {
        let fields = fields(WRONG);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(post_form(&app, "/account/password", &fields).await.status(), Status::Forbidden);
    }
    let right = fields(PASSWORD);
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = post_form(&app, "/account/password", &right).await;
    assert_eq!(response.status(), Status::TooManyRequests);
    assert!(retry_after(&response) > 0);
    let html = response.into_string().await.unwrap();
    assert!(html.contains("Too many attempts: try again in"), "{html}");
    assert!(html.contains(r#"action="/account/password""#), "{html}");
}

async fn wrong_passwords_throttle_the_account_deletion_and_nothing_is_deleted(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let delete = |password: &str| {
        let body = json!({ "password": password }).to_string();
        app.client.delete("/auth/account").header(bearer(&tokens.access)).header(ContentType::JSON).body(body)
    };
    for _ in 0..5 {
        assert_eq!(delete(WRONG).dispatch().await.status(), Status::Forbidden);
    }
    assert_throttled(delete(PASSWORD).dispatch().await, 900).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);

    // The page: the form again, with the message.
    let app = TestApp::spawn(app.backend()).await;
    app.registered("alice", PASSWORD).await;
    let csrf = sign_in_on_the_page(&app, "alice", PASSWORD, "test browser").await;
    for _ in 0..5 {
        let response =
            post_form(&app, "/account/delete", &[("csrf_token", &csrf), ("password", WRONG)]).await;
        assert_eq!(response.status(), Status::Forbidden);
    }
    let response = post_form(&app, "/account/delete", &[("csrf_token", &csrf), ("password", PASSWORD)]).await;
    assert_eq!(response.status(), Status::TooManyRequests);
    let html = response.into_string().await.unwrap();
    assert!(html.contains("Too many attempts: try again in"), "{html}");
    assert!(html.contains(r#"action="/account/delete""#), "{html}");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
}

async fn sign_ups_are_limited_per_address_on_the_api_and_the_page(app: TestApp) {
    let register_from = |name: &str, peer: &str| {
        let body = json!({ "username": name, "password": PASSWORD }).to_string();
        app.client
            .post("/auth/register")
            .header(ContentType::JSON)
            .remote(peer.parse::<SocketAddr>().unwrap())
            .body(body)
    };
    for name in ["first", "second"] {
        assert_eq!(register_from(name, "203.0.113.1:1000").dispatch().await.status(), Status::Created);
    }
    assert_throttled(register_from("third", "203.0.113.1:1000").dispatch().await, 3600).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE username = 'third'").await, 0);
    assert_eq!(register_from("third", "198.51.100.1:1000").dispatch().await.status(), Status::Created);
    // The page (this machine's address): two accounts, then the form again. The browser signs
    // out after each (the sign-up page's token is bound to the signed-out state).
    let page = |name: &'static str, csrf: String| {
        let fields = [
            ("csrf_token", csrf),
            ("username", name.into()),
            ("password", PASSWORD.into()),
            ("password_confirm", PASSWORD.into()),
        ];
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        app.client.post("/register").header(ContentType::Form).body(form_body(&fields))
    };
    for name in ["fourth", "fifth"] {
        let csrf = csrf_from(&app, "/register").await;
        assert_eq!(page(name, csrf).dispatch().await.status(), Status::SeeOther);
        let signed_in = csrf_from(&app, "/profile").await;
        assert_eq!(
            post_form(&app, "/logout", &[("csrf_token", &signed_in)]).await.status(),
            Status::SeeOther
        );
    }
    let response = page("sixth", csrf_from(&app, "/register").await).dispatch().await;
    assert_eq!(response.status(), Status::TooManyRequests);
    let html = response.into_string().await.unwrap();
    assert!(html.contains("Too many attempts: try again in"), "{html}");
    assert!(html.contains(r#"action="/register""#), "{html}");
}

async fn a_limit_of_zero_is_no_limit(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    fail(&app, "alice", "203.0.113.1:1000", 12).await;
    assert_eq!(login_from(&app, "alice", PASSWORD, "203.0.113.1:1000", None).await.status(), Status::Ok);
    for n in 0..35 {
        assert_eq!(app.register(&format!("user{n}"), PASSWORD).await.status(), Status::Created);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM throttle").await, 0);
}

async fn the_device_cookie_is_http_only_lasts_a_year_and_remembers_each_account(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    app.registered("bob", PASSWORD).await;
    let sign_in = |name: &'static str, csrf: String| {
        let fields = [("csrf_token", csrf.as_str()), ("username", name), ("password", PASSWORD)];
        app.client.post("/login").header(ContentType::Form).body(form_body(&fields))
    };
    let response = sign_in("alice", csrf_from(&app, "/login").await).dispatch().await;
    assert_eq!(response.status(), Status::SeeOther);
    let header = set_cookie(&response, DEVICE_COOKIE).expect("a device cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=31536000"] {
        assert!(has_attribute(&header, attribute), "{attribute} missing: {header}");
    }
    drop(response);
    // Alice signs out and Bob signs in on the same browser: it is remembered for both.
    let signed_in = csrf_from(&app, "/profile").await;
    assert_eq!(post_form(&app, "/logout", &[("csrf_token", &signed_in)]).await.status(), Status::SeeOther);
    assert_eq!(sign_in("bob", csrf_from(&app, "/login").await).dispatch().await.status(), Status::SeeOther);
    let tokens = cookie(&app, DEVICE_COOKIE).expect("the device cookie");
    assert_eq!(tokens.split('~').count(), 2, "{tokens}");
}

// ---------------------------------------------------------------------------------------------
// The attack, end to end: the real binary behind a trusted proxy (this machine), on each backend.

#[test]
fn sqlite_strangers_cannot_lock_the_owner_out() {
    strangers_cannot_lock_the_owner_out(Backend::Sqlite);
}

needs_postgres! {
    #[test]
    fn postgres_strangers_cannot_lock_the_owner_out() {
        strangers_cannot_lock_the_owner_out(Backend::Postgres);
    }
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie_value(head: &str, name: &str) -> Option<String> {
    let prefix = format!("set-cookie: {name}=");
    head.lines()
        .find(|line| line.to_ascii_lowercase().starts_with(&prefix))
        .map(|line| line[prefix.len()..].split(';').next().unwrap_or_default().to_owned())
}

/// Signs in on the sign-in page from `client` (an address the proxy reports) with the cookies
/// `cookies`; returns the status and the response head.
fn page_sign_in(server: &Server, client: &str, cookies: &str, password: &str) -> (u16, String) {
    let forwarded = ("X-Forwarded-For", client);
    let (_, head, html) = server.request("GET", "/login", &[forwarded, ("Cookie", cookies)], "");
    let csrf_cookie = set_cookie_value(&head, common::CSRF_COOKIE);
    let cookies = match csrf_cookie {
        Some(value) => format!("{cookies}; {}={value}", common::CSRF_COOKIE),
        None => cookies.to_owned(),
    };
    let csrf = common::browser::csrf_token(&html);
    let body = form_body(&[("csrf_token", &csrf), ("username", "alice"), ("password", password)]);
    let headers = [forwarded, ("Cookie", &cookies), ("Content-Type", "application/x-www-form-urlencoded")];
    let (status, head, _) = server.request("POST", "/login", &headers, &body);
    (status, head)
}

fn strangers_cannot_lock_the_owner_out(backend: Backend) {
    let database = TestDatabase::create(backend);
    let dir = tempfile::tempdir().unwrap();
    let env = [database.env(), ("ROCKET_TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#)];
    let server = Server::start(dir.path(), &env);
    let credentials = |password: &str, device_token: Option<&str>| {
        let mut body = json!({ "username": "alice", "password": password });
        if let Some(token) = device_token {
            body["device_token"] = token.into();
        }
        body.to_string()
    };
    assert_eq!(server.request("POST", "/auth/register", &[JSON], &credentials(PASSWORD, None)).0, 201);

    // Before the attack, the owner signed in with a browser and with an API client.
    let (status, head) = page_sign_in(&server, "192.0.2.10", "", PASSWORD);
    assert_eq!(status, 303, "{head}");
    let device_cookie = set_cookie_value(&head, DEVICE_COOKIE).expect("a device cookie");
    let (status, _, body) = server.request(
        "POST",
        "/auth/login",
        &[JSON, ("X-Forwarded-For", "192.0.2.20")],
        &credentials(PASSWORD, None),
    );
    assert_eq!(status, 200, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    let device_token = token["device_token"].as_str().expect("a device token").to_owned();

    // The attack: 100 wrong passwords from 100 addresses, as the proxy reports them.
    for n in 0..100 {
        let address = format!("198.18.{}.{}", n / 250, n % 250 + 1);
        let headers = [JSON, ("X-Forwarded-For", address.as_str())];
        let (status, _, body) = server.request("POST", "/auth/login", &headers, &credentials(WRONG, None));
        assert_eq!(status, 401, "failure {n}: {body}");
    }
    // A new client, with the right password: held back.
    let headers = [JSON, ("X-Forwarded-For", "203.0.113.200")];
    let (status, head, body) = server.request("POST", "/auth/login", &headers, &credentials(PASSWORD, None));
    assert_eq!(status, 429, "{body}");
    assert!(head.to_ascii_lowercase().contains("retry-after: "), "{head}");
    let (status, _) = page_sign_in(&server, "203.0.113.201", "", PASSWORD);
    assert_eq!(status, 429);

    // The owner's browser and API client, from new addresses even, sign in.
    let cookies = format!("{DEVICE_COOKIE}={device_cookie}");
    let (status, head) = page_sign_in(&server, "192.0.2.11", &cookies, PASSWORD);
    assert_eq!(status, 303, "the owner's browser is locked out: {head}");
    let headers = [JSON, ("X-Forwarded-For", "192.0.2.21")];
    let (status, _, body) =
        server.request("POST", "/auth/login", &headers, &credentials(PASSWORD, Some(&device_token)));
    assert_eq!(status, 200, "the owner's API client is locked out: {body}");
    server.stop();
}

/// A block of zero seconds would block nobody while looking like a limit: the server refuses to
/// start and says how to turn a limit off instead.
#[test]
fn a_block_of_zero_seconds_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_miniauth"));
    let (status, log) = Server::run_to_exit(binary, dir.path(), &[("ROCKET_LOGIN_BLOCK_SECONDS", "0")]);
    assert_eq!(status, Some(1), "{log}");
    assert!(log.contains("login_block_seconds must be at least 1"), "{log}");
    assert!(!dir.path().join("data").exists(), "a refused start wrote files");
}
