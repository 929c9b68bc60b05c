//! The client's address: forwarding headers are believed only from a configured
//! trusted proxy, read right to left; IPv6 counts by its /64. The session list shows where each
//! session signed in from and a readable device.

use crate::common;

use std::net::SocketAddr;

use rocket::http::{ContentType, Header, Status};
use rocket::serde::json::json;

use common::browser::{form_page, sign_in_on_the_page};
use common::server::{Server, JSON};
use common::{TestApp, Tokens};

backend_tests!(
    an_untrusted_peer_cannot_choose_its_address_with_forwarding_headers,
    the_session_list_shows_a_readable_device_and_the_address
);

backend_tests_with!(
    |figment| figment.merge(("trusted_proxies", ["127.0.0.1/32", "10.0.0.0/8"]));
    behind_trusted_proxies_the_forwarded_client_is_recorded => sqlite_behind_trusted_proxies, postgres_behind_trusted_proxies,
    a_garbled_forwarded_for_never_lets_a_client_pick_its_address
        => sqlite_garbled_forwarded_for, postgres_garbled_forwarded_for,
);

const PASSWORD: &str = "quiet lantern trombone";
const CHROME: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// Signs `username` in through the API from `peer`, with extra headers.
async fn sign_in_from(app: &TestApp, username: &str, peer: &str, headers: &[(&'static str, &str)]) -> Tokens {
    let body = json!({ "username": username, "password": PASSWORD }).to_string();
    let mut request =
        app.client.post("/auth/login").header(ContentType::JSON).remote(peer.parse::<SocketAddr>().unwrap());
    for (name, value) in headers {
        request = request.header(Header::new(*name, value.to_string()));
    }
    let response = request.body(body).dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    Tokens::of(&response.into_json().await.unwrap())
}

/// The address the session of `tokens` is listed with.
async fn address_of(app: &TestApp, tokens: &Tokens) -> String {
    let sessions = app.sessions(&tokens.access).await;
    let current = sessions.iter().find(|s| s["current"] == true).expect("the current session");
    current["address"].as_str().expect("an address").to_owned()
}

async fn an_untrusted_peer_cannot_choose_its_address_with_forwarding_headers(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let forged = [("X-Forwarded-For", "1.2.3.4"), ("X-Real-IP", "5.6.7.8")];
    let tokens = sign_in_from(&app, "alice", "198.51.100.9:40000", &forged).await;
    assert_eq!(address_of(&app, &tokens).await, "198.51.100.9");
    let tokens = sign_in_from(&app, "alice", "[2001:db8:1:2:3:4:5:6]:40000", &forged).await;
    assert_eq!(address_of(&app, &tokens).await, "2001:db8:1:2::/64");
}

async fn behind_trusted_proxies_the_forwarded_client_is_recorded(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    // The client wrote 6.6.6.6 itself; the proxies appended what they saw.
    let chain = [("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.1.2.3")];
    let tokens = sign_in_from(&app, "alice", "127.0.0.1:40000", &chain).await;
    assert_eq!(address_of(&app, &tokens).await, "203.0.113.7");
    let tokens = sign_in_from(&app, "alice", "127.0.0.1:40000", &[("X-Real-IP", "192.0.2.44")]).await;
    assert_eq!(address_of(&app, &tokens).await, "192.0.2.44");
    let v6 = [("X-Forwarded-For", "2001:db8:aa:bb:1:2:3:4")];
    let tokens = sign_in_from(&app, "alice", "127.0.0.1:40000", &v6).await;
    assert_eq!(address_of(&app, &tokens).await, "2001:db8:aa:bb::/64");
    // Not from a trusted proxy: the same headers are not believed.
    let tokens = sign_in_from(&app, "alice", "198.51.100.9:40000", &chain).await;
    assert_eq!(address_of(&app, &tokens).await, "198.51.100.9");
}

/// Behind a trusted proxy, an `X-Forwarded-For` entry that does not parse ends the walk there
/// (what lies left of the proxy's own hop was the client's to write), and a client's
/// `X-Real-IP` beside it is not read: a client that garbles the one and changes the other on
/// each request is still one address to the throttle and in the session list.
async fn a_garbled_forwarded_for_never_lets_a_client_pick_its_address(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    for n in 1..=5 {
        let real_ip = format!("192.0.2.{n}");
        let headers = [("X-Forwarded-For", "x"), ("X-Real-IP", real_ip.as_str())];
        let response = wrong_login_from(&app, "127.0.0.1:40000", &headers).await;
        assert_eq!(response, Status::Unauthorized);
    }
    // The pair (alice, 127.0.0.1) is blocked, whatever X-Real-IP says next.
    let headers = [("X-Forwarded-For", "x"), ("X-Real-IP", "192.0.2.99")];
    assert_eq!(wrong_login_from(&app, "127.0.0.1:40000", &headers).await, Status::TooManyRequests);
    // Garbage left of the proxy's hop: the proxy's hop is the client.
    let chain = [("X-Forwarded-For", "not-an-ip, 203.0.113.8"), ("X-Real-IP", "192.0.2.100")];
    let tokens = sign_in_from(&app, "alice", "127.0.0.1:40000", &chain).await;
    assert_eq!(address_of(&app, &tokens).await, "203.0.113.8");
}

/// A sign-in with a wrong password from `peer` with these headers: its status.
async fn wrong_login_from(app: &TestApp, peer: &str, headers: &[(&'static str, &str)]) -> Status {
    let body = json!({ "username": "alice", "password": "wrong password" }).to_string();
    let mut request =
        app.client.post("/auth/login").header(ContentType::JSON).remote(peer.parse::<SocketAddr>().unwrap());
    for (name, value) in headers {
        request = request.header(Header::new(*name, value.to_string()));
    }
    request.body(body).dispatch().await.status()
}

async fn the_session_list_shows_a_readable_device_and_the_address(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let tokens = sign_in_from(&app, "alice", "198.51.100.9:40000", &[("User-Agent", CHROME)]).await;
    let sessions = app.sessions(&tokens.access).await;
    assert_eq!(sessions[0]["device"], "Chrome on Linux");
    assert_eq!(sessions[0]["user_agent"], CHROME);
    assert_eq!(sessions[0]["address"], "198.51.100.9");

    sign_in_on_the_page(&app, "alice", PASSWORD, CHROME).await;
    let html = form_page(&app, "/profile").await;
    assert!(html.contains("Chrome on Linux"), "{html}");
    assert!(html.contains("from 198.51.100.9"), "{html}");
    assert!(!html.contains("AppleWebKit"), "the raw User-Agent is shown:\n{html}");
}

#[test]
fn the_trusted_proxies_setting_works_from_the_environment_and_refuses_nonsense() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("ROCKET_TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#)]);
    let credentials = json!({ "username": "alice", "password": PASSWORD }).to_string();
    assert_eq!(server.request("POST", "/auth/register", &[JSON], &credentials).0, 201);
    let forwarded = [JSON, ("X-Forwarded-For", "203.0.113.7")];
    let (status, _, body) = server.request("POST", "/auth/login", &forwarded, &credentials);
    assert_eq!(status, 200, "{body}");
    let token: serde_json::Value = serde_json::from_str(&body).unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let (_, _, sessions) = server.request("GET", "/auth/sessions", &[("Authorization", &bearer)], "");
    assert!(sessions.contains(r#""address":"203.0.113.7""#), "{sessions}");
    server.stop();

    let dir = tempfile::tempdir().unwrap();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_miniauth"));
    let (status, log) =
        Server::run_to_exit(binary, dir.path(), &[("ROCKET_TRUSTED_PROXIES", r#"["nonsense"]"#)]);
    assert_eq!(status, Some(1), "{log}");
    assert!(log.contains(r#"trusted_proxies: "nonsense" is neither an address nor a CIDR block"#), "{log}");
}
