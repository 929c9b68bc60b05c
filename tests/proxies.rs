//! Forward auth through real reverse proxies (SPEC §14): Debian's nginx (`auth_request`) and
//! Caddy (`forward_auth`), each started on a free loopback port with the configuration the
//! README gives, in front of a tiny app that echoes the headers it receives
//! (`tests/common/echo_upstream.py`), and MiniAuth's real binary. A signed-out browser is sent to
//! sign in and brought back; the app sees `Remote-User`, never one the client wrote; a bearer
//! API call passes; after signing out the browser is sent to sign in again.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rocket::serde::json::{serde_json, Value};

use common::browser::{attribute, form_body, input_tag, unescape_html};
use common::server::{free_port, Server, JSON};
use common::{Backend, TestDatabase};

/// The nginx server block of the README: the app at app.example.com behind MiniAuth on port
/// 8000, the app itself on port 3000.
const NGINX: &str = r#"server {
    listen 80;
    server_name app.example.com;

    location / {
        auth_request /_miniauth;
        # Who signed in, for the app. These replace any Remote-User* a client sent
        # (and are left out when empty).
        auth_request_set $miniauth_user $upstream_http_remote_user;
        auth_request_set $miniauth_user_id $upstream_http_remote_user_id;
        proxy_set_header Remote-User $miniauth_user;
        proxy_set_header Remote-User-Id $miniauth_user_id;
        # Signed out: a browser is sent to sign in (MiniAuth's 401 carries where).
        auth_request_set $miniauth_signin $upstream_http_location;
        error_page 401 = @miniauth_signin;
        proxy_pass http://127.0.0.1:3000;
    }

    location = /_miniauth {
        internal;
        proxy_pass http://127.0.0.1:8000/authz/auth-request;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
        proxy_set_header X-Original-Method $request_method;
    }

    location @miniauth_signin {
        if ($miniauth_signin) {
            return 302 $miniauth_signin;
        }
        add_header WWW-Authenticate Bearer always;
        return 401;
    }
}
"#;

/// The Caddyfile site of the README.
const CADDY: &str = r#"app.example.com {
	forward_auth 127.0.0.1:8000 {
		uri /authz/forward-auth
		copy_headers Remote-User Remote-User-Id
	}
	reverse_proxy 127.0.0.1:3000
}
"#;

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

/// A child process stopped (by its PID) when the test ends, however it ends.
struct Process {
    child: Child,
    name: &'static str,
}

impl Drop for Process {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Process {
    fn spawn(name: &'static str, command: &mut Command) -> Process {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start ({e}): apt-get install nginx caddy"));
        Process { child, name }
    }

    /// Waits until something listens on `port`, or the process has died.
    fn wait_for(&mut self, port: u16, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = || std::fs::read_to_string(log).unwrap_or_default();
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.name, log());
            }
            assert!(Instant::now() < deadline, "{} does not listen on {port}:\n{}", self.name, log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The app: answers every request with the headers it received.
fn start_app() -> (Process, u16) {
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/echo_upstream.py");
    let mut command = Command::new("/usr/bin/python3");
    command.args([script, &port.to_string()]).stdout(Stdio::piped());
    let mut app = Process::spawn("the echo app", &mut command);
    let mut ready = String::new();
    BufReader::new(app.child.stdout.take().unwrap()).read_line(&mut ready).ok();
    assert_eq!(ready.trim(), "ready", "the echo app did not start");
    (app, port)
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

/// A configuration of the README's with this test's ports and host.
fn localised(config: &str, miniauth: u16, app: u16) -> String {
    config
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{miniauth}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{app}"))
}

fn through_nginx(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (miniauth, _database) = start_miniauth(backend, dir.path());
    let (_app, app_port) = start_app();
    let port = free_port();
    let prefix = dir.path().join("nginx");
    std::fs::create_dir_all(&prefix).unwrap();
    let site = localised(NGINX, miniauth.port, app_port)
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("server_name app.example.com;", "server_name 127.0.0.1;");
    let temp = |name: &str| format!("{name} {}/{name};", prefix.display());
    let config = format!(
        "daemon off;\nmaster_process off;\nuser root;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
         events {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n    {}\n    {}\n    {}\n    {}\n    {}\n{site}}}\n",
        temp("client_body_temp_path"),
        temp("proxy_temp_path"),
        temp("fastcgi_temp_path"),
        temp("uwsgi_temp_path"),
        temp("scgi_temp_path"),
        p = prefix.display(),
    );
    std::fs::write(prefix.join("nginx.conf"), config).unwrap();
    let log = prefix.join("error.log");
    let mut command = Command::new("nginx");
    command
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .arg("-e")
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut nginx = Process::spawn("nginx", &mut command);
    nginx.wait_for(port, &log);
    the_round_trip(&miniauth, port);
}

fn through_caddy(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (miniauth, _database) = start_miniauth(backend, dir.path());
    let (_app, app_port) = start_app();
    let port = free_port();
    let home = dir.path().join("caddy");
    std::fs::create_dir_all(&home).unwrap();
    // No admin endpoint (its fixed port would clash between tests), no certificates.
    let site =
        localised(CADDY, miniauth.port, app_port).replace("app.example.com {", &format!("http://:{port} {{"));
    let config = format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}");
    let caddyfile = home.join("Caddyfile");
    std::fs::write(&caddyfile, config).unwrap();
    let log = home.join("caddy.log");
    let mut command = Command::new("caddy");
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&caddyfile)
        .env("HOME", &home)
        .env("XDG_DATA_HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut caddy = Process::spawn("caddy", &mut command);
    caddy.wait_for(port, &log);
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
