//! Forward auth through real reverse proxies (SPEC §14): Debian's nginx (`auth_request`) and
//! Caddy (`forward_auth`), each started on a free loopback port with the configuration the
//! README gives, in front of a tiny app that echoes the headers it receives
//! (`tests/common/echo_upstream.py`), and MiniAuth's real binary. A signed-out browser is sent to
//! sign in and brought back; the app sees `Remote-User`, never one the client wrote; a bearer
//! API call passes; after signing out the browser is sent to sign in again.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use rocket::serde::json::{serde_json, Value};

use common::browser::{attribute, form_body, input_tag, unescape_html};
use common::proxy::{start_app, start_caddy, start_nginx, CADDY, NGINX};
use common::server::{Server, JSON};
use common::{Backend, TestDatabase};

const PASSWORD: &str = "quiet lantern trombone";
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[test]
fn the_readme_gives_the_configurations_these_tests_use() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains(NGINX), "the README's nginx configuration differs from tests/proxies.rs");
    assert!(readme.contains(CADDY), "the README's Caddyfile differs from tests/proxies.rs");
}

#[test]
fn through_nginx_auth_request_on_sqlite() {
    through_nginx(Backend::Sqlite);
}

#[test]
fn through_caddy_forward_auth_on_sqlite() {
    through_caddy(Backend::Sqlite);
}

needs_postgres! {
    #[test]
    fn through_nginx_auth_request_on_postgres() {
        through_nginx(Backend::Postgres);
    }

    #[test]
    fn through_caddy_forward_auth_on_postgres() {
        through_caddy(Backend::Postgres);
    }
}

/// MiniAuth's real binary, protecting 127.0.0.1 (for alice only) for the proxies on this
/// machine.
fn start_miniauth(backend: Backend, dir: &Path) -> (Server, TestDatabase) {
    let database = TestDatabase::create(backend);
    let env = [
        database.env(),
        ("ROCKET_TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#),
        ("ROCKET_FORWARD_AUTH_DOMAINS", r#"["127.0.0.1"]"#),
        // A host rule, written as the README says to in the environment.
        ("ROCKET_FORWARD_AUTH", r#"{hosts={"127.0.0.1"={users=["Alice"]}}}"#),
    ];
    (Server::start(dir, &env), database)
}

fn through_nginx(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (miniauth, _database) = start_miniauth(backend, dir.path());
    let (_app, app_port) = start_app();
    let (_nginx, port) = start_nginx(dir.path(), miniauth.port, app_port);
    the_round_trip(&miniauth, port);
}

fn through_caddy(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (miniauth, _database) = start_miniauth(backend, dir.path());
    let (_app, app_port) = start_app();
    let (_caddy, port) = start_caddy(dir.path(), miniauth.port, app_port);
    the_round_trip(&miniauth, port);
}

/// A browser's cookies for 127.0.0.1 (cookies do not tell ports apart).
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn header(&self) -> String {
        self.0.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, head: &str) {
        for line in head.lines() {
            let Some((name, rest)) = line.split_once(':') else { continue };
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = rest.trim().split(';').next().unwrap_or_default();
            let (cookie, value) = pair.split_once('=').unwrap_or((pair, ""));
            let expired = rest.to_ascii_lowercase().contains("max-age=0");
            match expired || value.is_empty() {
                true => self.0.remove(cookie),
                false => self.0.insert(cookie.to_owned(), value.to_owned()),
            };
        }
    }
}

/// One request of a browser holding `jar`, which keeps what it is given.
fn browse(
    port: u16,
    method: &str,
    path: &str,
    jar: &mut Jar,
    extra: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let host = format!("127.0.0.1:{port}");
    let cookies = jar.header();
    let mut headers = vec![("Host", host.as_str()), ("Accept", HTML)];
    if !cookies.is_empty() {
        headers.push(("Cookie", &cookies));
    }
    headers.extend_from_slice(extra);
    let (status, head, body) = Server::request_to(port, method, path, &headers, body).expect("a response");
    jar.keep(&head);
    (status, head, body)
}

fn header_of(head: &str, wanted: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case(wanted).then(|| value.trim().to_owned())
    })
}

/// What the app received: its `headers`, names lower-cased.
fn received(body: &str) -> Value {
    serde_json::from_str::<Value>(body).unwrap_or_else(|_| panic!("not the app's echo: {body}"))["headers"]
        .clone()
}

fn the_round_trip(miniauth: &Server, proxy: u16) {
    let (status, _, body) = miniauth.request(
        "POST",
        "/auth/register",
        &[JSON],
        &format!(r#"{{"username": "alice", "password": "{PASSWORD}"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let app_url = format!("http://127.0.0.1:{proxy}/reports?year=2026&q=a%20b");
    let mut browser = Jar::default();

    // Signed out: the proxy sends the browser to MiniAuth's sign-in page, to come back here.
    let (status, head, _) = browse(proxy, "GET", "/reports?year=2026&q=a%20b", &mut browser, &[], "");
    assert_eq!(status, 302, "{head}");
    let sign_in = header_of(&head, "Location").expect("where to sign in");
    let mut expected = url::Url::parse(&miniauth.url("/login")).unwrap();
    expected.query_pairs_mut().append_pair("rd", &app_url);
    assert_eq!(sign_in, expected.as_str());

    // The sign-in form, filled in, brings the browser back to the app.
    let page = sign_in.trim_start_matches(&format!("http://127.0.0.1:{}", miniauth.port));
    let (status, _, html) = browse(miniauth.port, "GET", page, &mut browser, &[], "");
    assert_eq!(status, 200);
    let csrf = attribute(input_tag(&html, "csrf_token"), "value").unwrap();
    let rd = unescape_html(&attribute(input_tag(&html, "rd"), "value").unwrap());
    assert_eq!(rd, app_url);
    let form =
        form_body(&[("csrf_token", &csrf), ("username", "alice"), ("password", PASSWORD), ("rd", &rd)]);
    let content = ("Content-Type", "application/x-www-form-urlencoded");
    let (status, head, _) = browse(miniauth.port, "POST", "/login", &mut browser, &[content], &form);
    assert_eq!(status, 303, "{head}");
    assert_eq!(header_of(&head, "Location").as_deref(), Some(app_url.as_str()));

    // Back at the app, which learns who signed in, and never from the client.
    let forged = [("Remote-User", "mallory"), ("Remote-User-Id", "999")];
    let (status, _, body) = browse(proxy, "GET", "/reports?year=2026&q=a%20b", &mut browser, &forged, "");
    assert_eq!(status, 200, "{body}");
    let headers = received(&body);
    assert_eq!(headers["remote-user"], serde_json::json!(["alice"]), "{headers}");
    let alice_id = headers["remote-user-id"][0].as_str().unwrap().to_owned();
    assert_ne!(alice_id, "999");
    // A signed-out client's own Remote-User never reaches the app: it is not let through.
    let api = [("Accept", "application/json"), ("Remote-User", "alice")];
    let (status, head, body) = Server::request_to(proxy, "GET", "/reports", &api, "").unwrap();
    assert_eq!(status, 401, "{head}{body}");
    assert!(header_of(&head, "WWW-Authenticate").is_some_and(|c| c.starts_with("Bearer")), "{head}");
    assert!(!body.contains("remote-user"), "{body}");

    // An API client with a bearer token passes too.
    let (status, _, body) = miniauth.request(
        "POST",
        "/auth/login",
        &[JSON],
        &format!(r#"{{"username": "alice", "password": "{PASSWORD}"}}"#),
    );
    assert_eq!(status, 200, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let call =
        [("Accept", "application/json"), ("Authorization", bearer.as_str()), ("Remote-User", "mallory")];
    let (status, _, body) = Server::request_to(proxy, "POST", "/api/items", &call, "{}").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(received(&body)["remote-user"], serde_json::json!(["alice"]));

    // Bob has an account, but the host rule admits only alice.
    let bob = format!(r#"{{"username": "bob", "password": "{PASSWORD}"}}"#);
    assert_eq!(miniauth.request("POST", "/auth/register", &[JSON], &bob).0, 201);
    let (_, _, body) = miniauth.request("POST", "/auth/login", &[JSON], &bob);
    let token = serde_json::from_str::<Value>(&body).unwrap()["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let call = [("Accept", "application/json"), ("Authorization", bearer.as_str())];
    let (status, _, body) = Server::request_to(proxy, "GET", "/reports", &call, "").unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("remote-user"), "{body}");

    // Signed out on MiniAuth: the browser is sent to sign in again, even with a copy of the
    // cookies it had (the session ended).
    let (_, _, html) = browse(miniauth.port, "GET", "/profile", &mut browser, &[], "");
    let csrf = attribute(input_tag(&html, "csrf_token"), "value").unwrap();
    let mut copy = Jar(browser.0.clone());
    let (status, head, _) = browse(
        miniauth.port,
        "POST",
        "/logout",
        &mut browser,
        &[content],
        &form_body(&[("csrf_token", &csrf)]),
    );
    assert_eq!(status, 303, "{head}");
    for jar in [&mut browser, &mut copy] {
        let (status, head, _) = browse(proxy, "GET", "/reports", jar, &[], "");
        assert_eq!(status, 302, "{head}");
        assert!(header_of(&head, "Location").unwrap().contains("/login?rd="), "{head}");
    }
}
