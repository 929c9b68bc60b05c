//! Floods through the front proxy of docs/operations.md ("Exposed to the internet: the front
//! proxy"). Rocket bounds neither the connections it holds nor the time a request's header may
//! take, so a client that opens hundreds of connections and sends half a request on each
//! (slowloris) would keep them all in MiniAuth. Behind Debian's nginx and Caddy, each started on
//! a free loopback port with the configuration the docs give (the constants here, ports and the
//! header timeout substituted), in front of MiniAuth's real binary:
//!
//! - a flood of half-sent requests, some of them trickling a header line now and then, is closed
//!   by the proxy once its header timeout is over, none of it reaches MiniAuth (which holds a few
//!   sockets, never one per flood connection), and a signed-in client is answered throughout;
//! - nginx answers `503` past its limit of connections per client address with a request under
//!   way (a body that never comes), while another address still passes; the held requests never
//!   reach MiniAuth, and once they go the address is served again.
//!
//! Timing is only ever asserted with generous deadlines: the proxies' timeouts are 2 s here,
//! and the tests wait up to a minute for what should take seconds.

use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocket::serde::json::{serde_json, Value};

use common::proxy::{run_nginx, Process};
use common::server::{free_port, Server, JSON};
use common::{Backend, TestDatabase};

/// The main context of nginx.conf, as docs/operations.md gives it.
const NGINX_FRONT_MAIN: &str = r#"# /etc/nginx/nginx.conf, its main context. Every connection, a client's or one to MiniAuth,
# is a file descriptor: let each worker process open more of them than it has connections.
worker_rlimit_nofile 16384;

events {
    # Connections per worker process, those to MiniAuth included (Debian's default is 768).
    # Past them nginx closes new ones at once ("worker_connections are not enough"): MiniAuth
    # never sees them.
    worker_connections 8192;
}
"#;

/// MiniAuth's own site in nginx, as docs/operations.md gives it.
const NGINX_FRONT: &str = r#"# /etc/nginx/conf.d/miniauth.conf, inside the http context: MiniAuth's own site.

# Connections per client address are counted in this 10 MB zone (some 160,000 addresses).
limit_conn_zone $binary_remote_addr zone=miniauth_per_address:10m;

upstream miniauth {
    server 127.0.0.1:8000;
    # Idle connections to MiniAuth kept open for the next requests (per worker process):
    # MiniAuth holds the requests in flight and these, never a connection per client.
    keepalive 16;
}

server {
    listen 80;
    server_name auth.example.com;

    # At most 20 connections from one address with a request under way (its header read):
    # the next ones are answered 503. A half-sent header does not count yet: the timeouts
    # below end those.
    limit_conn miniauth_per_address 20;
    # The whole request header within 10 s of connecting, however slowly it trickles in.
    client_header_timeout 10s;
    # At most 10 s between two reads of a request's body...
    client_body_timeout 10s;
    # ...and between two writes of the answer, to a client that does not read it.
    send_timeout 10s;
    # An idle kept-alive connection closes after 30 s.
    keepalive_timeout 30s;
    # A connection that timed out is reset rather than closed: its memory is freed at once.
    reset_timedout_connection on;
    # MiniAuth takes bodies of 16 KiB at most: nginx answers 413 to larger ones itself.
    client_max_body_size 16k;

    location / {
        proxy_pass http://miniauth;
        # HTTP/1.1 without "Connection: close": the upstream's kept-alive connections.
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        # The client's address as nginx saw it: X-Real-IP replaces a client's, and
        # X-Forwarded-For ends with it (MiniAuth reads that list from the right).
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
}
"#;

/// MiniAuth's own site in Caddy, with the global options it needs, as docs/operations.md
/// gives it.
const CADDY_FRONT: &str = r#"{
	servers {
		timeouts {
			# The whole request header within 10 s of connecting, however slowly it comes.
			read_header 10s
			# The whole request, body included, within 10 s.
			read_body 10s
			# The whole answer written within 30 s of the request's header.
			write 30s
			# An idle kept-alive connection closes after 30 s.
			idle 30s
		}
		# A request line and headers of 32 KiB at most (431 past them).
		max_header_size 32KiB
	}
}

auth.example.com {
	# MiniAuth takes bodies of 16 KiB at most: a larger one is cut off here.
	request_body {
		max_size 16KiB
	}
	reverse_proxy 127.0.0.1:8000 {
		# Caddy sets X-Forwarded-For itself; X-Real-IP replaces a client's.
		header_up X-Real-IP {remote_host}
	}
}
"#;

/// The header timeout of these tests, in place of the docs' 10 s.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a test waits for what should take seconds.
const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn the_docs_give_the_front_proxy_configurations_these_tests_use() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    for (name, config) in
        [("nginx.conf", NGINX_FRONT_MAIN), ("nginx site", NGINX_FRONT), ("Caddyfile", CADDY_FRONT)]
    {
        assert!(
            page.contains(config),
            "the front proxy's {name} of docs/operations.md differs from the tests'"
        );
    }
}

#[test]
fn a_flood_of_half_sent_requests_is_closed_by_nginx_and_never_reaches_miniauth() {
    a_flood_of_half_sent_requests(Front::Nginx);
}

#[test]
fn a_flood_of_half_sent_requests_is_closed_by_caddy_and_never_reaches_miniauth() {
    a_flood_of_half_sent_requests(Front::Caddy);
}

#[derive(Clone, Copy, Debug)]
enum Front {
    Nginx,
    Caddy,
}

/// `text` with `from` replaced by `to`; `from` must be there (so that a change to the docs'
/// text cannot make a substitution silently do nothing).
fn substituted(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "no {from:?} in the front proxy's configuration");
    text.replace(from, to)
}

/// MiniAuth's real binary behind a proxy on this machine, as the docs say to run it.
fn start_miniauth(dir: &Path) -> (Server, TestDatabase) {
    let database = TestDatabase::create(Backend::Sqlite);
    let env = [database.env(), ("ROCKET_TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#)];
    (Server::start(dir, &env), database)
}

/// nginx with the docs' configuration (MiniAuth on `miniauth`, the header timeout of these
/// tests, `changes` made to the site besides), listening on a free port of 127.0.0.1 (the
/// returned one), and of `::1` too when `ipv6`.
fn start_nginx(dir: &Path, miniauth: u16, ipv6: bool, changes: &[(&str, &str)]) -> (Process, u16) {
    let port = free_port();
    let mut listen = format!("listen 127.0.0.1:{port};");
    if ipv6 {
        listen += &format!("\n    listen [::1]:{port};");
    }
    let mut site = substituted(NGINX_FRONT, "127.0.0.1:8000", &format!("127.0.0.1:{miniauth}"));
    site = substituted(&site, "listen 80;", &listen);
    site = substituted(&site, "server_name auth.example.com;", "server_name 127.0.0.1;");
    let timeout = format!("client_header_timeout {}s;", HEADER_TIMEOUT.as_secs());
    site = substituted(&site, "client_header_timeout 10s;", &timeout);
    for (from, to) in changes {
        site = substituted(&site, from, to);
    }
    (run_nginx(&dir.join("nginx"), NGINX_FRONT_MAIN, &site, port), port)
}

/// Caddy with the docs' configuration, likewise (no admin endpoint, no certificates).
fn start_caddy(dir: &Path, miniauth: u16) -> (Process, u16) {
    let port = free_port();
    let home = dir.join("caddy");
    std::fs::create_dir_all(&home).unwrap();
    let options = CADDY_FRONT.strip_prefix("{\n").expect("the Caddyfile's global options");
    let mut config = format!("{{\n\tadmin off\n\tauto_https off\n{options}");
    config = substituted(&config, "127.0.0.1:8000", &format!("127.0.0.1:{miniauth}"));
    config = substituted(&config, "auth.example.com {", &format!("http://127.0.0.1:{port} {{"));
    let timeout = format!("read_header {}s", HEADER_TIMEOUT.as_secs());
    config = substituted(&config, "read_header 10s", &timeout);
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
    (caddy, port)
}

/// A new account's bearer token, signed up and in on MiniAuth directly.
fn signed_in(miniauth: &Server) -> String {
    let account = r#"{"username": "alice", "password": "quiet lantern trombone"}"#;
    let (status, _, body) = miniauth.request("POST", "/auth/register", &[JSON], account);
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = miniauth.request("POST", "/auth/login", &[JSON], account);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["access_token"].as_str().unwrap().to_owned()
}

/// The status of one request on a new connection to `address`, or why there was none; no
/// answer within 30 s is a failure too.
fn status_of(address: SocketAddr, request: &str) -> Result<u16, String> {
    let mut stream =
        TcpStream::connect_timeout(&address, Duration::from_secs(30)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let status = response.split(' ').nth(1).and_then(|status| status.parse().ok());
    status.ok_or_else(|| format!("no status in {response:?}"))
}

/// `GET /auth/profile` with `token`, as a signed-in client asks it.
fn profile_request(token: &str) -> String {
    format!(
        "GET /auth/profile HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    )
}

/// The sockets process `pid` holds open (connections and listeners).
fn sockets_of(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_link(entry.path()).is_ok_and(|to| to.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// How many connections this process may open besides what it holds: the flood stays well
/// within the soft limit on open files (1,024 on many machines), tests running beside it too.
fn flood_size() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<usize>().ok())
        .unwrap_or(1024);
    400.min(soft.saturating_sub(400)).max(50)
}

/// One connection of the flood: when it was opened, and when and how the other side ended it.
struct Half {
    stream: TcpStream,
    opened: Instant,
    /// Sends one more header line every so often: a timer restarted by each read would never
    /// end it.
    trickles: bool,
    ended: Option<(Instant, String)>,
}

impl Half {
    fn open(port: u16, trickles: bool) -> Half {
        let opened = Instant::now();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the proxy accepts the connection");
        stream.write_all(b"GET /auth/profile HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
        stream.set_nonblocking(true).unwrap();
        Half { stream, opened, trickles, ended: None }
    }

    /// Whether the other side has ended the connection (closed, reset, or answered it: a proxy
    /// may answer `408` before closing); a trickling one sends its next header line first.
    fn check(&mut self) -> bool {
        if self.ended.is_some() {
            return true;
        }
        if self.trickles {
            match self.stream.write(b"X-Slowly: 1\r\n") {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => self.ended = Some((Instant::now(), format!("write: {e}"))),
                Ok(_) => {}
            }
        }
        let mut buffer = [0; 512];
        match self.stream.read(&mut buffer) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => self.ended = self.ended.take().or(Some((Instant::now(), e.to_string()))),
            Ok(0) => self.ended = self.ended.take().or(Some((Instant::now(), "closed".into()))),
            Ok(n) => {
                let answer =
                    String::from_utf8_lossy(&buffer[..n]).lines().next().unwrap_or_default().to_owned();
                self.ended = self.ended.take().or(Some((Instant::now(), format!("answered {answer}"))));
            }
        }
        self.ended.is_some()
    }
}

/// A signed-in client asking for its profile through the proxy every 200 ms, on a thread of its
/// own, until told to stop: every answer's status, or why there was none.
struct Probe {
    stop: Arc<AtomicBool>,
    results: Arc<Mutex<Vec<Result<u16, String>>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Probe {
    fn start(port: u16, token: &str) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let request = profile_request(token);
        let (stopped, answers) = (stop.clone(), results.clone());
        let thread = std::thread::spawn(move || {
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            while !stopped.load(Ordering::Relaxed) {
                let answer = status_of(address, &request);
                answers.lock().unwrap().push(answer);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Probe { stop, results, thread }
    }

    fn finish(self) -> Vec<Result<u16, String>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        Arc::try_unwrap(self.results).unwrap().into_inner().unwrap()
    }
}

fn a_flood_of_half_sent_requests(front: Front) {
    let dir = tempfile::tempdir().unwrap();
    let (miniauth, _database) = start_miniauth(dir.path());
    let token = signed_in(&miniauth);
    let (_proxy, port) = match front {
        Front::Nginx => start_nginx(dir.path(), miniauth.port, false, &[]),
        Front::Caddy => start_caddy(dir.path(), miniauth.port),
    };
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(
        status_of(address, &profile_request(&token)),
        Ok(200),
        "{front:?}: the profile through the proxy"
    );

    let size = flood_size();
    let probe = Probe::start(port, &token);
    let mut flood: Vec<Half> = (0..size).map(|n| Half::open(port, n % 4 == 0)).collect();
    let opened = Instant::now();
    let mut most_sockets = 0;
    while Instant::now() < opened + PATIENCE {
        most_sockets = most_sockets.max(sockets_of(miniauth.pid()));
        let mut open = 0;
        for half in flood.iter_mut() {
            open += usize::from(!half.check());
        }
        if open == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // A few more answers after the flood, which must come too.
    std::thread::sleep(Duration::from_secs(1));
    let answers = probe.finish();

    let still_open = flood.iter().filter(|half| half.ended.is_none()).count();
    assert_eq!(
        still_open, 0,
        "{front:?}: {still_open} of {size} half-sent requests still open after a minute"
    );
    // Never before the header timeout: the proxy's timer starts after `opened` was taken. (Half
    // of it, since a timer may fire a little early.)
    let earliest = flood.iter().map(|half| half.ended.as_ref().unwrap().0 - half.opened).min().unwrap();
    assert!(earliest >= HEADER_TIMEOUT / 2, "{front:?}: a half-sent request ended after {earliest:?}");
    let latest = flood.iter().map(|half| half.ended.as_ref().unwrap().0 - half.opened).max().unwrap();
    let answered: Vec<&String> = flood.iter().map(|half| &half.ended.as_ref().unwrap().1).collect();
    let mut hows: Vec<&str> = answered.iter().map(|how| how.as_str()).collect();
    hows.sort();
    hows.dedup();
    eprintln!(
        "{front:?}: {size} half-sent requests ended after {earliest:.1?} to {latest:.1?} ({}); MiniAuth held \
         {most_sockets} sockets at most; {} probes",
        hows.join(", "),
        answers.len()
    );
    assert!(
        answered.iter().all(|how| !how.starts_with("answered") || how.contains(" 408 ")),
        "{front:?}: the flood was answered: {answered:?}"
    );
    // MiniAuth held its listener, the proxy's kept-alive connections and the probe's, never
    // one per flood connection.
    assert!(most_sockets < 40, "{front:?}: MiniAuth held {most_sockets} sockets during a flood of {size}");
    let failed: Vec<_> = answers.iter().filter(|answer| **answer != Ok(200)).collect();
    assert!(answers.len() >= 5 && failed.is_empty(), "{front:?}: the probe during the flood: {answers:?}");
}

#[test]
fn nginx_refuses_connections_past_its_limit_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let (miniauth, _database) = start_miniauth(dir.path());
    let token = signed_in(&miniauth);
    // The sign-ins MiniAuth has served (its log has a line per request): the one above, once
    // its line is read.
    let sign_ins = || miniauth.log().matches("POST /auth/login ").count();
    let deadline = Instant::now() + PATIENCE;
    while sign_ins() == 0 {
        assert!(Instant::now() < deadline, "no request line in the log:\n{}", miniauth.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let served = sign_ins();
    let limit: usize = NGINX_FRONT
        .lines()
        .find_map(|line| line.trim().strip_prefix("limit_conn miniauth_per_address "))
        .and_then(|limit| limit.trim_end_matches(';').parse().ok())
        .expect("the docs' limit_conn");
    // Another address: ::1, where this machine has it.
    let ipv6 = TcpListener::bind("[::1]:0").is_ok();
    // The held requests wait for their bodies longer than this test takes.
    let (_nginx, port) = start_nginx(
        dir.path(),
        miniauth.port,
        ipv6,
        &[("client_body_timeout 10s;", "client_body_timeout 120s;")],
    );
    let here = SocketAddr::from(([127, 0, 0, 1], port));
    let profile = profile_request(&token);
    assert_eq!(status_of(here, &profile), Ok(200));

    // As many sign-ins as the limit, whose bodies never come: each holds a connection with a
    // request under way.
    let held: Vec<TcpStream> = (0..limit)
        .map(|_| {
            let mut stream = TcpStream::connect(here).unwrap();
            let head = "POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                        Content-Length: 100\r\n\r\n";
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    // Once nginx has read their headers, the next connection from this address is refused.
    let deadline = Instant::now() + PATIENCE;
    while status_of(here, &profile) != Ok(503) {
        assert!(Instant::now() < deadline, "nginx still serves past {limit} held requests");
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..10 {
        assert_eq!(status_of(here, &profile), Ok(503), "past the limit");
    }
    // Another address is not held back.
    if ipv6 {
        let there = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
        assert_eq!(status_of(there, &profile), Ok(200), "from ::1");
    } else {
        eprintln!("no ::1 on this machine: the limit's other address is not tried");
    }
    // None of the held requests reached MiniAuth: nginx reads a body before it passes a request on.
    assert_eq!(sign_ins(), served, "{}", miniauth.log());
    assert!(sockets_of(miniauth.pid()) < 40);

    // Once they are gone, the address is served again.
    drop(held);
    let deadline = Instant::now() + PATIENCE;
    while status_of(here, &profile) != Ok(200) {
        assert!(Instant::now() < deadline, "nginx still refuses after the held requests went");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A body larger than MiniAuth takes is refused by nginx itself.
    let big = format!("{{\"username\": \"{}\"}}", "a".repeat(20 * 1024));
    let request = format!(
        "POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{big}",
        big.len()
    );
    assert_eq!(status_of(here, &request), Ok(413));
    assert_eq!(sign_ins(), served, "{}", miniauth.log());
}
