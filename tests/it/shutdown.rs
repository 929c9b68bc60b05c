//! A deploy loses nothing: SIGTERM (or SIGINT) while 50 sign-ins and registrations are in
//! flight, every one of them gets its normal answer, the server exits 0, and every acknowledged
//! write is in the database when it starts again.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::server::{Server, JSON};
use common::{Backend, TestDatabase};
use rocket::serde::json::{serde_json, Value};

const PASSWORD: &str = "quiet lantern trombone";

fn credentials(name: &str) -> String {
    format!(r#"{{"username":"{name}","password":"{PASSWORD}"}}"#)
}

#[test]
fn sigterm_answers_every_request_in_flight_on_sqlite() {
    requests_in_flight_are_answered(Backend::Sqlite, "TERM");
}

#[test]
fn sigint_answers_every_request_in_flight_on_sqlite() {
    requests_in_flight_are_answered(Backend::Sqlite, "INT");
}

needs_postgres! {
    #[test]
    fn sigterm_answers_every_request_in_flight_on_postgres() {
        requests_in_flight_are_answered(Backend::Postgres, "TERM");
    }
}

/// One request written whole on a connection of its own; its answer is read later.
fn send(port: u16, path: &str, body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        JSON.1,
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    stream
}

/// The status and body of the answer on `stream`, and when it came; `None` if the connection
/// ended without one.
fn answer(mut stream: TcpStream) -> Option<(u16, Value, Instant)> {
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null), Instant::now()))
}

fn requests_in_flight_are_answered(backend: Backend, signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(backend);
    // Slow hashes on one worker: the 50 requests queue behind each other for seconds. A grace
    // period no slow machine runs out of.
    let env = [
        database.env(),
        ("ROCKET_BCRYPT_COST", "10"),
        ("ROCKET_HASH_WORKERS", "1"),
        ("ROCKET_SHUTDOWN_GRACE", "300"),
        ("ROCKET_REGISTER_MAX_PER_ADDRESS_HOUR", "0"),
    ];
    let server = Server::start(dir.path(), &env);
    for n in 0..25 {
        let (status, _, body) =
            server.request("POST", "/auth/register", &[JSON], &credentials(&format!("early{n}")));
        assert_eq!(status, 201, "{body}");
    }

    // 25 sign-ins and 25 registrations, each written whole before the signal.
    let port = server.port;
    let sent = Arc::new(Barrier::new(51));
    let clients: Vec<_> = (0..50)
        .map(|n| {
            let sent = Arc::clone(&sent);
            std::thread::spawn(move || {
                let stream = if n % 2 == 0 {
                    send(port, "/auth/login", &credentials(&format!("early{}", n / 2)))
                } else {
                    send(port, "/auth/register", &credentials(&format!("late{}", n / 2)))
                };
                sent.wait();
                (n, answer(stream))
            })
        })
        .collect();
    sent.wait();
    // The server has taken every connection (the kernel's queue holds none it has not).
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    let (code, log) = server.signal_and_wait(signal);

    let mut refresh_tokens = Vec::new();
    let mut after_the_signal = 0;
    for client in clients {
        let (n, answer) = client.join().unwrap();
        let Some((status, body, at)) = answer else {
            panic!("request {n} got no answer:\n{log}");
        };
        let expected = if n % 2 == 0 { 200 } else { 201 };
        assert_eq!(status, expected, "request {n}: {body}\n{log}");
        if n % 2 == 0 {
            refresh_tokens.push(body["refresh_token"].as_str().expect("a refresh token").to_owned());
        }
        after_the_signal += usize::from(at > signalled);
    }
    assert!(after_the_signal > 0, "every request was answered before the signal: the test proves nothing");
    assert_eq!(code, Some(0), "exit status:\n{log}");
    assert!(log.contains("MiniAuth shutting down"), "{log}");
    assert!(log.contains("MiniAuth stopped: every request was answered"), "{log}");
    eprintln!("{after_the_signal} of 50 requests were answered after SIG{signal}");

    // Every acknowledged write is there: the new accounts sign in, every session refreshes.
    let server = Server::start(dir.path(), &env);
    for n in 0..25 {
        let (status, _, body) =
            server.request("POST", "/auth/login", &[JSON], &credentials(&format!("late{n}")));
        assert_eq!(status, 200, "late{n}: {body}");
    }
    for token in refresh_tokens {
        let (status, _, body) =
            server.request("POST", "/auth/refresh", &[JSON], &format!(r#"{{"refresh_token":"{token}"}}"#));
        assert_eq!(status, 200, "{body}");
    }
    server.stop();
}
