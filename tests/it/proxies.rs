//! Forward auth through real reverse proxies: Debian's nginx (`auth_request`) and
//! Caddy (`forward_auth`), each started on a free loopback port with the configuration the
//! docs (forward-auth.md) give, in front of a tiny app that echoes the headers it receives
//! (`tests/it/common/echo_upstream.py`), and MiniAuth's real binary. A signed-out browser is sent to
//! sign in and brought back; the app sees `Remote-User`, never one the client wrote; a bearer
//! API call passes; after signing out the browser is sent to sign in again. A client writing
//! another host into its request (`Host: app:@other`, an absolute request target) still meets
//! the rule of the host the proxy routed by, and no identity header a client forges
//! (`Remote-*`, `Remote_*`) reaches the app.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use rocket::serde::json::{serde_json, Value};

use common::browser::{attribute, form_body, input_tag, unescape_html};
use common::proxy::{start_app, start_caddy, start_nginx, CADDY, NGINX};
use common::server::{Server, JSON};
use common::{Backend, TestDatabase, TOKEN_COOKIE};

const PASSWORD: &str = "quiet lantern trombone";
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[test]
fn the_docs_give_the_configurations_these_tests_use() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/forward-auth.md")).unwrap();
    assert!(page.contains(NGINX), "the nginx configuration of docs/forward-auth.md differs from the tests'");
    assert!(page.contains(CADDY), "the Caddyfile of docs/forward-auth.md differs from the tests'");
}

#[test]
fn through_nginx_auth_request_on_sqlite() {
    behind(Proxy::Nginx, Backend::Sqlite, the_round_trip);
}

#[test]
fn through_caddy_forward_auth_on_sqlite() {
    behind(Proxy::Caddy, Backend::Sqlite, the_round_trip);
}

#[test]
fn a_host_rule_holds_whatever_host_the_client_writes_through_nginx_on_sqlite() {
    behind(Proxy::Nginx, Backend::Sqlite, a_host_rule_holds_whatever_host_the_client_writes);
}

#[test]
fn a_host_rule_holds_whatever_host_the_client_writes_through_caddy_on_sqlite() {
    behind(Proxy::Caddy, Backend::Sqlite, a_host_rule_holds_whatever_host_the_client_writes);
}

#[test]
fn forged_identity_headers_never_reach_the_app_through_nginx_on_sqlite() {
    behind(Proxy::Nginx, Backend::Sqlite, forged_identity_headers_never_reach_the_app);
}

#[test]
fn forged_identity_headers_never_reach_the_app_through_caddy_on_sqlite() {
    behind(Proxy::Caddy, Backend::Sqlite, forged_identity_headers_never_reach_the_app);
}

#[test]
fn a_browser_polling_past_its_access_tokens_lifetime_keeps_getting_the_app_through_nginx_on_sqlite() {
    polling_past_the_access_tokens_lifetime(Backend::Sqlite);
}

needs_postgres! {
    #[test]
    fn a_browser_polling_past_its_access_tokens_lifetime_keeps_getting_the_app_through_nginx_on_postgres() {
        polling_past_the_access_tokens_lifetime(Backend::Postgres);
    }
}

/// 127.0.0.1 asks for two-step sign-in.
const TWO_STEP_RULES: &str =
    r#"{hosts={"127.0.0.1"={any_signed_in=true,second_factor=true},"example.com"={any_signed_in=true}}}"#;

#[test]
fn a_host_asking_for_two_step_sign_in_through_nginx_on_sqlite() {
    behind_with(Proxy::Nginx, Backend::Sqlite, TWO_STEP_RULES, a_host_asking_for_two_step_sign_in);
}

needs_postgres! {
    #[test]
    fn a_host_asking_for_two_step_sign_in_through_nginx_on_postgres() {
        behind_with(Proxy::Nginx, Backend::Postgres, TWO_STEP_RULES, a_host_asking_for_two_step_sign_in);
    }
}

#[test]
fn a_group_rule_admits_its_members_only_through_nginx_on_sqlite() {
    behind(Proxy::Nginx, Backend::Sqlite, a_group_rule_admits_its_members_only);
}

#[test]
fn a_group_rule_admits_its_members_only_through_caddy_on_sqlite() {
    behind(Proxy::Caddy, Backend::Sqlite, a_group_rule_admits_its_members_only);
}

needs_postgres! {
    #[test]
    fn a_group_rule_admits_its_members_only_through_nginx_on_postgres() {
        behind(Proxy::Nginx, Backend::Postgres, a_group_rule_admits_its_members_only);
    }

    #[test]
    fn a_group_rule_admits_its_members_only_through_caddy_on_postgres() {
        behind(Proxy::Caddy, Backend::Postgres, a_group_rule_admits_its_members_only);
    }
}

needs_postgres! {
    #[test]
    fn through_nginx_auth_request_on_postgres() {
        behind(Proxy::Nginx, Backend::Postgres, the_round_trip);
    }

    #[test]
    fn through_caddy_forward_auth_on_postgres() {
        behind(Proxy::Caddy, Backend::Postgres, the_round_trip);
    }

    #[test]
    fn a_host_rule_holds_whatever_host_the_client_writes_through_nginx_on_postgres() {
        behind(Proxy::Nginx, Backend::Postgres, a_host_rule_holds_whatever_host_the_client_writes);
    }

    #[test]
    fn a_host_rule_holds_whatever_host_the_client_writes_through_caddy_on_postgres() {
        behind(Proxy::Caddy, Backend::Postgres, a_host_rule_holds_whatever_host_the_client_writes);
    }

    #[test]
    fn forged_identity_headers_never_reach_the_app_through_nginx_on_postgres() {
        behind(Proxy::Nginx, Backend::Postgres, forged_identity_headers_never_reach_the_app);
    }

    #[test]
    fn forged_identity_headers_never_reach_the_app_through_caddy_on_postgres() {
        behind(Proxy::Caddy, Backend::Postgres, forged_identity_headers_never_reach_the_app);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Proxy {
    Nginx,
    Caddy,
}

/// MiniAuth's real binary, protecting 127.0.0.1 (for alice and the group family only) and
/// example.com (everyone signed in, on every host below it) for the proxies on this machine.
fn start_miniauth(backend: Backend, dir: &Path, rules: &str) -> (Server, TestDatabase) {
    let database = TestDatabase::create(backend);
    let env = [
        database.env(),
        ("ROCKET_TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#),
        ("ROCKET_FORWARD_AUTH_DOMAINS", r#"["127.0.0.1", "example.com"]"#),
        // The host rules, written as the README says to in the environment.
        ("ROCKET_FORWARD_AUTH", rules),
    ];
    (Server::start(dir, &env), database)
}

/// The rules most scenarios run with.
const RULES: &str =
    r#"{hosts={"127.0.0.1"={users=["Alice"],groups=["family"]},"example.com"={any_signed_in=true}}}"#;

/// `scenario` against MiniAuth behind `proxy` (on the returned port), in front of the echo app.
fn behind(proxy: Proxy, backend: Backend, scenario: fn(Proxy, &Server, u16)) {
    behind_with(proxy, backend, RULES, scenario)
}

/// The same, with other host rules.
fn behind_with(proxy: Proxy, backend: Backend, rules: &str, scenario: fn(Proxy, &Server, u16)) {
    let dir = tempfile::tempdir().unwrap();
    let (miniauth, _database) = start_miniauth(backend, dir.path(), rules);
    let (_app, app_port) = start_app();
    let (_proxy, port) = match proxy {
        Proxy::Nginx => start_nginx(dir.path(), miniauth.port, app_port),
        Proxy::Caddy => start_caddy(dir.path(), miniauth.port, app_port),
    };
    scenario(proxy, &miniauth, port);
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

fn the_round_trip(_: Proxy, miniauth: &Server, proxy: u16) {
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
    let mut copy = Jar(browser.0.clone());
    sign_out(miniauth, &mut browser);
    for jar in [&mut browser, &mut copy] {
        let (status, head, _) = browse(proxy, "GET", "/reports", jar, &[], "");
        assert_eq!(status, 302, "{head}");
        assert!(header_of(&head, "Location").unwrap().contains("/login?rd="), "{head}");
    }
}

/// Signs out with the profile page's button, as a person does (the page renews the browser's
/// cookies on the way when its access token has expired).
fn sign_out(miniauth: &Server, browser: &mut Jar) {
    let (_, _, html) = browse(miniauth.port, "GET", "/profile", browser, &[], "");
    let csrf = attribute(input_tag(&html, "csrf_token"), "value").unwrap();
    let form = form_body(&[("csrf_token", &csrf)]);
    let content = ("Content-Type", "application/x-www-form-urlencoded");
    let (status, head, _) = browse(miniauth.port, "POST", "/logout", browser, &[content], &form);
    assert_eq!(status, 303, "{head}");
}

/// A new account's bearer token and id.
fn signed_up(miniauth: &Server, username: &str) -> (String, String) {
    let account = format!(r#"{{"username": "{username}", "password": "{PASSWORD}"}}"#);
    let (status, _, body) = miniauth.request("POST", "/auth/register", &[JSON], &account);
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"].to_string();
    let (status, _, body) = miniauth.request("POST", "/auth/login", &[JSON], &account);
    assert_eq!(status, 200, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["access_token"].as_str().unwrap().to_owned();
    (token, id)
}

/// Whether `body` is the app's echo: the request reached the app.
fn reached_the_app(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|echo| echo.get("headers").is_some())
}

/// The rule for 127.0.0.1 leaves bob out, and other.example.com (protected, without a rule)
/// would admit him: a client writing that host into its request — after a colon or an `@` in
/// `Host`, as an absolute request target, or as `Host` itself — never has MiniAuth decide on it.
/// Each request is refused by the rule of the host the proxy routed by (`403`, where alice
/// passes), or by the proxy itself (`400`, or `421` from the catch-all for other hosts); none
/// reaches the app for bob. nginx builds `X-Original-URL` from the routed `$host`; Caddy sends
/// the `Host` header, which Go's server refuses with an `@` in it.
fn a_host_rule_holds_whatever_host_the_client_writes(proxy: Proxy, miniauth: &Server, port: u16) {
    let (alice, _) = signed_up(miniauth, "alice");
    let (bob, _) = signed_up(miniauth, "bob");
    let at_port = format!("127.0.0.1:{port}");
    let port_at_other = format!("127.0.0.1:{port}@other.example.com");
    // (request target, Host, what nginx answers bob, what Caddy answers bob)
    let cases = [
        ("/reports", at_port.as_str(), 403, 403),
        ("/reports", "127.0.0.1", 403, 403),
        // nginx routes by what comes before the colon, and so asks about it.
        ("/reports", "127.0.0.1:@other.example.com", 403, 400),
        ("/reports", &port_at_other, 403, 400),
        ("/reports", "127.0.0.1:x@other.example.com:80", 403, 400),
        // nginx takes all of it for a name no server_name matches: the catch-all.
        ("/reports", "127.0.0.1@other.example.com", 421, 400),
        ("/reports", "@127.0.0.1", 421, 400),
        ("/reports", "other.example.com", 421, 421),
        // An absolute request target names the host, whatever `Host` says (the old
        // configuration, on `$http_host`, let bob in with the first).
        ("http://127.0.0.1/reports", "other.example.com", 403, 403),
        ("http://other.example.com/reports", "127.0.0.1", 421, 421),
        ("http://127.0.0.1:@other.example.com/reports", "127.0.0.1", 400, 421),
        // A slash in `Host`, or a target that is neither a path nor a URL: refused outright.
        ("/reports", "127.0.0.1/@other.example.com", 400, 400),
        ("@other.example.com/reports", "127.0.0.1", 400, 400),
    ];
    let mut wrong = Vec::new();
    for (target, host, nginx, caddy) in cases {
        let expected = if proxy == Proxy::Nginx { nginx } else { caddy };
        for (who, token) in [("bob", &bob), ("alice", &alice)] {
            let bearer = format!("Bearer {token}");
            let headers = [("Host", host), ("Accept", "application/json"), ("Authorization", &bearer)];
            let (status, head, body) = Server::request_to(port, "GET", target, &headers, "")
                .unwrap_or_else(|| panic!("no answer to {target} with Host: {host}"));
            // Where the rule decided, alice passes: the routed host is 127.0.0.1.
            let passes = who == "alice" && expected == 403;
            let expected = if passes { 200 } else { expected };
            if status != expected || reached_the_app(&body) != passes {
                wrong.push(format!(
                    "{who}: GET {target} Host: {host} → {status}, not {expected}\n{head}\n{body}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{proxy:?}:\n{}", wrong.join("\n\n"));
}

/// Every identity header a client forges, in any case or with an underscore, is gone before the
/// app sees the request: the app hears only MiniAuth's `Remote-User`, `Remote-User-Id` and
/// `Remote-Groups` (empty here).
fn forged_identity_headers_never_reach_the_app(proxy: Proxy, miniauth: &Server, port: u16) {
    let (alice, alice_id) = signed_up(miniauth, "alice");
    let forged = [
        ("Remote-User", "mallory"),
        ("Remote_User", "mallory"),
        ("remote-user-id", "999"),
        ("Remote_User_Id", "999"),
        ("Remote-Groups", "admins"),
        ("REMOTE-GROUPS", "admins"),
        ("Remote-Email", "mallory@example.com"),
        ("Remote-Name", "Mallory"),
        ("remote_email", "mallory@example.com"),
    ];
    let bearer = format!("Bearer {alice}");
    let cookie = format!("{TOKEN_COOKIE}={alice}");
    for (method, credentials) in [("GET", ("Authorization", &bearer)), ("POST", ("Cookie", &cookie))] {
        let mut headers = vec![("Accept", "application/json"), (credentials.0, credentials.1.as_str())];
        headers.extend_from_slice(&forged);
        let (status, _, body) = Server::request_to(port, method, "/reports", &headers, "").unwrap();
        assert_eq!(status, 200, "{proxy:?} {method}: {body}");
        let headers = received(&body);
        assert_eq!(headers["remote-user"], serde_json::json!(["alice"]), "{proxy:?} {method}: {headers}");
        assert_eq!(headers["remote-user-id"], serde_json::json!([alice_id]), "{proxy:?} {method}: {headers}");
        for (name, values) in headers.as_object().unwrap() {
            let identity = name.starts_with("remote-") || name.starts_with("remote_");
            // MiniAuth's own Remote-Groups, empty for alice (nginx leaves it out, Caddy not).
            let own_groups = name == "remote-groups" && *values == serde_json::json!([""]);
            assert!(
                !identity || name == "remote-user" || name == "remote-user-id" || own_groups,
                "{proxy:?} {method}: the app received {name}: {values}"
            );
            if name == "authorization" || name == "cookie" {
                continue; // alice's own token, which could hold any of these by chance
            }
            let values = values.to_string().to_ascii_lowercase();
            assert!(
                !["mallory", "admins", "999"].iter().any(|forgery| values.contains(forgery)),
                "{proxy:?} {method}: the app received {name}: {values}"
            );
        }
    }
}

/// The rule for 127.0.0.1 names the group family: carol, a member (made so by the command line
/// beside the running server), reaches the app, which hears her groups in `Remote-Groups`; dave
/// gets `403` and never reaches it; taken out of the group, carol is refused at her next
/// request, with the same token.
fn a_group_rule_admits_its_members_only(proxy: Proxy, miniauth: &Server, port: u16) {
    let (carol, _) = signed_up(miniauth, "carol");
    let (dave, _) = signed_up(miniauth, "dave");
    miniauth.admin(&["group", "create", "family"]);
    miniauth.admin(&["group", "create", "Admins"]);
    miniauth.admin(&["group", "add", "family", "carol"]);
    miniauth.admin(&["group", "add", "admins", "carol"]);
    let get = |token: &str| {
        let bearer = format!("Bearer {token}");
        let headers =
            [("Accept", "application/json"), ("Authorization", bearer.as_str()), ("Remote-Groups", "forged")];
        Server::request_to(port, "GET", "/reports", &headers, "").unwrap()
    };
    let (status, _, body) = get(&carol);
    assert_eq!(status, 200, "{proxy:?}: {body}");
    assert_eq!(received(&body)["remote-groups"], serde_json::json!(["Admins,family"]), "{proxy:?}: {body}");
    let (status, _, body) = get(&dave);
    assert_eq!(status, 403, "{proxy:?}: {body}");
    assert!(!reached_the_app(&body), "{proxy:?}: {body}");
    miniauth.admin(&["group", "remove", "family", "carol"]);
    let (status, _, body) = get(&carol);
    assert_eq!(status, 403, "{proxy:?}: {body}");
    assert!(!reached_the_app(&body), "{proxy:?}: {body}");
}

/// The host asks for two-step sign-in: carol's password-only session gets `403` on an API call
/// and is sent to sign in as a browser; signed in with her code, she reaches the app.
fn a_host_asking_for_two_step_sign_in(proxy: Proxy, miniauth: &Server, port: u16) {
    let (carol, _) = signed_up(miniauth, "carol");
    let auth = format!("Bearer {carol}");
    let body = format!(r#"{{"password": "{PASSWORD}"}}"#);
    let (status, _, setup) = miniauth.request("POST", "/auth/totp", &[JSON, ("Authorization", &auth)], &body);
    assert_eq!(status, 200, "{setup}");
    let secret = serde_json::from_str::<Value>(&setup).unwrap()["secret"].as_str().unwrap().to_owned();
    let code = format!(r#"{{"code": "{}"}}"#, common::totp_code(&secret, common::now()));
    let (status, _, _) =
        miniauth.request("POST", "/auth/totp/confirm", &[JSON, ("Authorization", &auth)], &code);
    assert_eq!(status, 200);
    let get = |token: &str, accept: &str| {
        let bearer = format!("Bearer {token}");
        Server::request_to(port, "GET", "/reports", &[("Accept", accept), ("Authorization", &bearer)], "")
            .unwrap()
    };
    let (status, _, body) = get(&carol, "application/json");
    assert_eq!(status, 403, "{proxy:?}: {body}");
    assert!(!reached_the_app(&body));
    let (status, head, _) = get(&carol, "text/html");
    assert_eq!(status, 302, "{proxy:?}: {head}");
    assert!(header_of(&head, "Location").unwrap().contains("/login?rd="), "{head}");
    // The two steps through the API: the app opens.
    let account = format!(r#"{{"username": "carol", "password": "{PASSWORD}"}}"#);
    let (status, _, step) = miniauth.request("POST", "/auth/login", &[JSON], &account);
    assert_eq!(status, 403, "{step}");
    let mfa_token = serde_json::from_str::<Value>(&step).unwrap()["mfa_token"].as_str().unwrap().to_owned();
    let finish = format!(
        r#"{{"mfa_token": "{mfa_token}", "code": "{}"}}"#,
        common::totp_code(&secret, common::now() + 30)
    );
    let (status, _, done) = miniauth.request("POST", "/auth/login/second-factor", &[JSON], &finish);
    assert_eq!(status, 200, "{done}");
    let token = serde_json::from_str::<Value>(&done).unwrap()["access_token"].as_str().unwrap().to_owned();
    let (status, _, body) = get(&token, "application/json");
    assert_eq!(status, 200, "{proxy:?}: {body}");
    assert_eq!(received(&body)["remote-user"], serde_json::json!(["carol"]));
}

/// An app polling in the background through nginx with the browser's cookies (no page load to
/// renew the access token) keeps getting the app past the token's lifetime (2 s here), while
/// the session lives; once the browser signs out, the same cookies are refused.
fn polling_past_the_access_tokens_lifetime(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(backend);
    let env = [
        database.env(),
        ("ROCKET_TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#),
        ("ROCKET_FORWARD_AUTH_DOMAINS", r#"["127.0.0.1", "example.com"]"#),
        ("ROCKET_FORWARD_AUTH", RULES),
        ("ROCKET_ACCESS_TOKEN_TTL", "2"),
    ];
    let miniauth = Server::start(dir.path(), &env);
    let (_app, app_port) = start_app();
    let (_proxy, proxy) = start_nginx(dir.path(), miniauth.port, app_port);
    signed_up(&miniauth, "alice");

    // Signed in through the sign-in page, as a browser is.
    let mut browser = Jar::default();
    let (_, _, html) = browse(miniauth.port, "GET", "/login", &mut browser, &[], "");
    let csrf = attribute(input_tag(&html, "csrf_token"), "value").unwrap();
    let form = form_body(&[("csrf_token", &csrf), ("username", "alice"), ("password", PASSWORD)]);
    let content = ("Content-Type", "application/x-www-form-urlencoded");
    let (status, head, _) = browse(miniauth.port, "POST", "/login", &mut browser, &[content], &form);
    assert_eq!(status, 303, "{head}");
    let token = browser.0.get(TOKEN_COOKIE).expect("the access cookie").clone();

    // Until the access token has expired (for an API client, it has).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let bearer = format!("Bearer {token}");
        let (status, _, _) = miniauth.request("GET", "/auth/profile", &[("Authorization", &bearer)], "");
        if status == 401 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the access token never expired");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    for poll in 0..3 {
        let (status, head, body) = background(proxy, "GET", "/api/poll", &browser, "");
        assert_eq!(status, 200, "poll {poll}: {head}{body}");
        assert_eq!(received(&body)["remote-user"], serde_json::json!(["alice"]));
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let (status, _, body) = background(proxy, "POST", "/api/autosave", &browser, "{}");
    assert_eq!(status, 200, "{body}");

    // Signed out (the profile page renews the cookies on the way): the old cookies are refused.
    let copy = Jar(browser.0.clone());
    sign_out(&miniauth, &mut browser);
    for jar in [copy, browser] {
        let (status, head, body) = background(proxy, "GET", "/api/poll", &jar, "");
        assert_eq!(status, 401, "{head}{body}");
        assert!(!reached_the_app(&body), "{body}");
    }
}

/// A script's request of the page a browser holding `jar` has open: its cookies, and JSON
/// accepted (no page to send it to).
fn background(port: u16, method: &str, path: &str, jar: &Jar, body: &str) -> (u16, String, String) {
    let (host, cookies) = (format!("127.0.0.1:{port}"), jar.header());
    let headers = [
        ("Host", host.as_str()),
        ("Cookie", cookies.as_str()),
        ("Accept", "application/json"),
        ("X-Requested-With", "XMLHttpRequest"),
    ];
    Server::request_to(port, method, path, &headers, body).expect("a response")
}
