//! The mail transports: a real SMTP server (Debian's python3-aiosmtpd, started by
//! the test on a free loopback port) receives the message for the right recipient with a link
//! that works; without `smtp_url` the message lands in the outbox and the log says where; a
//! transport that refuses or hangs is logged with its cause and never fails or delays the
//! request; the release profile refuses to start without `public_url`; no SMTP password
//! reaches the log.

use crate::common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::mail::{header, mails_in, token, SmtpSink};
use common::server::{free_port, Server, JSON};
use common::{expect, TestApp};
use rocket::http::{ContentType, Status};
use rocket::serde::json::json;

const PASSWORD: &str = "correct horse battery";

backend_tests!(a_message_through_a_real_smtp_server_reaches_its_recipient_with_a_working_link);

async fn a_message_through_a_real_smtp_server_reaches_its_recipient_with_a_working_link(app: TestApp) {
    let sink = SmtpSink::start();
    let backend = app.backend();
    drop(app);
    let url = sink.url();
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(("smtp_url", url)).merge(("mail_from", "Accounts <accounts@example.org>"))
    })
    .await;
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let response = app
        .client
        .put("/auth/email")
        .header(ContentType::JSON)
        .header(common::bearer(&tokens.access))
        .body(json!({ "email": "alice@example.com" }).to_string())
        .dispatch()
        .await;
    expect(response, Status::Accepted).await;
    let mails = sink.wait_for_mails(1).await;
    assert_eq!(header(&mails[0], "X-Envelope-To").as_deref(), Some("alice@example.com"), "{}", mails[0]);
    assert_eq!(header(&mails[0], "To").as_deref(), Some("alice@example.com"));
    assert_eq!(header(&mails[0], "From").as_deref(), Some("Accounts <accounts@example.org>"));
    let confirm = token(&mails[0], "http://localhost:8000", "/email/confirm");
    let confirmed = app.post_json("/auth/email/confirm", json!({ "token": confirm })).await;
    assert_eq!(confirmed.status(), Status::NoContent);
    // And a reset link, through the same server.
    app.post_json("/auth/password-reset", json!({ "email": "alice@example.com" })).await;
    let mails = sink.wait_for_mails(2).await;
    let reset = token(&mails[1], "http://localhost:8000", "/password-reset/new");
    let body = json!({ "token": reset, "new_password": "a brand new passphrase" });
    assert_eq!(app.post_json("/auth/password-reset/confirm", body).await.status(), Status::NoContent);
    assert!(!app.data_dir.path().join("outbox").exists(), "nothing went to the outbox");
}

/// Registers, signs in and sets an address on the real binary; the request's status.
fn set_address(server: &Server, email: &str) -> u16 {
    let credentials = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#);
    server.request("POST", "/auth/register", &[JSON], &credentials);
    let (_, _, body) = server.request("POST", "/auth/login", &[JSON], &credentials);
    let login: serde_json::Value = serde_json::from_str(&body).unwrap();
    let auth = format!("Bearer {}", login["access_token"].as_str().unwrap());
    let body = format!(r#"{{"email":"{email}"}}"#);
    let (status, _, _) = server.request("PUT", "/auth/email", &[JSON, ("Authorization", &auth)], &body);
    status
}

/// Waits until the server's log holds `wanted`; returns the log.
fn wait_for_log(server: &Server, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = server.log();
        if log.contains(wanted) {
            return log;
        }
        assert!(Instant::now() < deadline, "the log never said {wanted:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn without_smtp_url_each_message_is_an_eml_file_in_the_outbox_and_the_log_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert!(server.log().contains("mail: written to data/outbox"), "{}", server.log());
    assert_eq!(set_address(&server, "alice@example.com"), 202);
    let log = wait_for_log(&server, "mail: a confirm message is in data/outbox/");
    let outbox = dir.path().join("data/outbox");
    let mails = mails_in(&outbox);
    assert_eq!(mails.len(), 1);
    let path = log.lines().find(|line| line.contains("message is in")).unwrap().rsplit(' ').next().unwrap();
    assert!(dir.path().join(path).exists(), "the logged path {path} is the message");
    let confirm = token(&mails[0], &format!("http://127.0.0.1:{}", server.port), "/email/confirm");
    assert!(!log.contains(&confirm), "the log never holds a link's token:\n{log}");
}

#[test]
fn a_refusing_smtp_server_is_logged_with_its_cause_and_the_request_still_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let url = format!("smtp://mailer:Sm7p-Pa55word-never-logged@127.0.0.1:{closed}?tls=none");
    let server = Server::start(dir.path(), &[("ROCKET_SMTP_URL", &url)]);
    assert_eq!(set_address(&server, "alice@example.com"), 202);
    let (status, _, _) =
        server.request("POST", "/auth/password-reset", &[JSON], r#"{"email":"alice@example.com"}"#);
    assert_eq!(status, 202);
    let log = wait_for_log(&server, "mail: a confirm message was not sent:");
    let line = log.lines().find(|line| line.contains("was not sent")).unwrap();
    assert!(line.to_lowercase().contains("refused"), "the cause is in the line: {line}");
    // The server carries on.
    assert_eq!(server.request("GET", "/healthz", &[], "").0, 200);
    let log = server.stop();
    assert!(!log.contains("Sm7p-Pa55word-never-logged"), "the SMTP password reached the log:\n{log}");
}

#[test]
fn a_hanging_smtp_server_never_holds_up_the_request() {
    // It accepts connections and never says a word: delivery waits on it, the requests do not.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://127.0.0.1:{}?tls=none", listener.local_addr().unwrap().port());
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("ROCKET_SMTP_URL", &url)]);
    assert_eq!(set_address(&server, "alice@example.com"), 202);
    let (held, _) = listener.accept().expect("MiniAuth connects to deliver");
    // Delivery is under way (the connection is open, nothing was said); the API answers.
    for _ in 0..3 {
        let (status, _, _) =
            server.request("POST", "/auth/password-reset", &[JSON], r#"{"username":"alice"}"#);
        assert_eq!(status, 202);
    }
    assert_eq!(server.request("GET", "/healthz", &[], "").0, 200);
    assert!(!server.log().contains("was not sent"), "delivery was still waiting:\n{}", server.log());
    drop(held);
}

#[test]
fn the_release_profile_refuses_to_start_without_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_miniauth"));
    let release = [("ROCKET_PROFILE", "release"), ("ROCKET_PUBLIC_URL", "")];
    let (status, log) = Server::run_to_exit(binary, dir.path(), &release);
    assert_eq!(status, Some(1), "{log}");
    assert!(log.contains("the release profile needs public_url"), "{log}");
    assert!(!dir.path().join("data").exists(), "nothing was written:\n{log}");
    let server = Server::start(dir.path(), &[("ROCKET_PROFILE", "release")]);
    assert_eq!(server.request("GET", "/healthz", &[], "").0, 200);
}

#[test]
fn mail_settings_that_cannot_work_refuse_to_start_with_a_clear_line() {
    for (name, value, message) in [
        ("ROCKET_SMTP_URL", "http://mail.example.com", "smtp_url must start with smtp:// or smtps://"),
        (
            "ROCKET_SMTP_URL",
            "smtp://mail.example.com?tls=sometimes",
            "tls must be required, opportunistic or none",
        ),
        ("ROCKET_MAIL_FROM", "not an address", "mail_from"),
        ("ROCKET_PUBLIC_URL", "auth.example.com", "public_url must be"),
        ("ROCKET_PUBLIC_URL", "https://auth.example.com/?next=x", "public_url must be"),
        ("ROCKET_RESET_TOKEN_TTL", "0", "reset_token_ttl"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_miniauth"));
        let (status, log) = Server::run_to_exit(binary, dir.path(), &[(name, value)]);
        assert_eq!(status, Some(1), "{name}={value}: {log}");
        assert!(log.contains(message), "{name}={value}: {log}");
    }
}
