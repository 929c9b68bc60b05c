//! The benchmark's passkey clients: signs in with passkeys, no username or password, as fast as
//! `CONNECTIONS` keep-alive clients can, against a running MiniAuth whose `public_url` is
//! `ORIGIN`. Each client first makes its own accounts, each with a passkey held by the tests'
//! software authenticator (ES256), then repeats `POST /auth/passkeys/login/start` and `…/finish`
//! until `SIGN_INS` are done in all; every sign-in opens a session. Prints one JSON line: sign-ins
//! a second, p50 and p99 of a whole sign-in (both requests) in milliseconds, and the statuses.
//!
//! `cargo run --release --example passkey_client -- PORT ORIGIN [SIGN_INS] [CONNECTIONS]`

#[path = "../tests/it/common/authenticator.rs"]
#[allow(dead_code)]
mod authenticator;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use authenticator::SoftPasskey;
use serde_json::{json, Value};

/// Accounts (each with one passkey) per client.
const ACCOUNTS: usize = 20;

/// One keep-alive HTTP/1.1 connection to the server.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: String,
}

impl Connection {
    fn open(port: u16, host: &str) -> Connection {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("MiniAuth answers");
        stream.set_nodelay(true).ok();
        Connection { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream, host: host.into() }
    }

    /// POSTs `body` as JSON (with a bearer `token`): the status and the JSON answer.
    fn post(&mut self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let body = body.to_string();
        let bearer = token.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{bearer}\r\n{body}",
            self.host,
            body.len()
        );
        self.writer.write_all(request.as_bytes()).expect("the request is sent");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a status line");
        let status: u16 = line.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status");
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("a header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("a length");
                }
            }
        }
        let mut answer = vec![0; length];
        self.reader.read_exact(&mut answer).expect("the body");
        (status, serde_json::from_slice(&answer).unwrap_or(Value::Null))
    }
}

/// A new account with a passkey: what the client then signs in with.
fn account(connection: &mut Connection, origin: &str, name: &str) -> SoftPasskey {
    let password = "quiet lantern trombone";
    let credentials = json!({ "username": name, "password": password });
    assert_eq!(connection.post("/auth/register", &credentials, None).0, 201, "sign-up");
    let (status, tokens) = connection.post("/auth/login", &credentials, None);
    assert_eq!(status, 200, "sign-in");
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, started) = connection.post("/auth/passkeys/register/start", &json!({}), Some(&token));
    assert_eq!(status, 200, "registration start: {started}");
    let (answer, passkey) = SoftPasskey::register_at(&started["publicKey"], origin);
    let body = json!({ "ceremony": started["ceremony"], "name": "Bench", "credential": answer });
    let (status, added) = connection.post("/auth/passkeys/register/finish", &body, Some(&token));
    assert_eq!(status, 201, "registration finish: {added}");
    passkey
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|arg| arg.parse().ok()).expect("PORT");
    let origin = args.get(2).expect("ORIGIN").clone();
    let sign_ins: usize = args.get(3).and_then(|arg| arg.parse().ok()).unwrap_or(4000);
    let connections: usize = args.get(4).and_then(|arg| arg.parse().ok()).unwrap_or(8);
    let host = origin.split("://").nth(1).unwrap_or("localhost").to_owned();
    let run = format!("{:x}", std::process::id());
    // Every client makes its accounts first; the clock starts when all are ready.
    let ready = std::sync::Arc::new(std::sync::Barrier::new(connections + 1));
    let clients: Vec<_> = (0..connections)
        .map(|client| {
            let (origin, host, run, ready) = (origin.clone(), host.clone(), run.clone(), ready.clone());
            let share = sign_ins / connections + usize::from(client < sign_ins % connections);
            std::thread::spawn(move || {
                let mut connection = Connection::open(port, &host);
                let mut passkeys: Vec<SoftPasskey> = (0..ACCOUNTS)
                    .map(|n| account(&mut connection, &origin, &format!("pk{run}c{client}n{n}")))
                    .collect();
                ready.wait();
                let mut timings = Vec::with_capacity(share);
                for n in 0..share {
                    let passkey = &mut passkeys[n % ACCOUNTS];
                    let started = Instant::now();
                    let (status, challenge) = connection.post("/auth/passkeys/login/start", &json!({}), None);
                    let status = match status {
                        200 => {
                            passkey.counter += 1;
                            let answer = passkey.assert(&challenge["publicKey"], &origin, passkey.counter);
                            let body = json!({ "ceremony": challenge["ceremony"], "credential": answer });
                            connection.post("/auth/passkeys/login/finish", &body, None).0
                        }
                        refused => refused,
                    };
                    timings.push((started.elapsed().as_secs_f64() * 1000.0, status));
                }
                timings
            })
        })
        .collect();
    ready.wait();
    let started = Instant::now();
    let mut timings: Vec<(f64, u16)> =
        clients.into_iter().flat_map(|client| client.join().unwrap()).collect();
    let elapsed = started.elapsed().as_secs_f64();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (_, status) in &timings {
        *statuses.entry(*status).or_default() += 1;
    }
    timings.sort_by(|a, b| a.0.total_cmp(&b.0));
    let nearest = |p: f64| timings[((p / 100.0 * timings.len() as f64).ceil() as usize).max(1) - 1].0;
    let statuses: Vec<String> = statuses.iter().map(|(code, count)| format!("{code}={count}")).collect();
    let report = json!({
        "rps": timings.len() as f64 / elapsed,
        "p50": nearest(50.0),
        "p99": nearest(99.0),
        "statuses": statuses.join(" "),
        "non2xx": timings.iter().filter(|(_, status)| *status != 200).count(),
    });
    println!("{report}");
}
