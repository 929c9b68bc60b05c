//! The real binary, started the way an operator starts it: in a working folder of its own, with
//! nothing configured but a free port and a cheap bcrypt cost (no `Rocket.toml`, no template or
//! static folder: it carries its own). A minimal HTTP/1.1 client talks to it over a real socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The header of a JSON request body.
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Server {
    child: Child,
    pub port: u16,
    /// The host its `public_url` names: `127.0.0.1`, or `localhost` for passkeys.
    host: &'static str,
    log: Arc<Mutex<String>>,
    /// The binary, its folder and environment: what its admin commands run with.
    binary: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

/// The binary in `dir`, with nothing in its environment but `PATH`, `port` (and the
/// `public_url` it gives), a cheap bcrypt and `env`.
fn command(binary: &Path, dir: &Path, (host, port): (&str, u16), env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_BCRYPT_COST", "4")
        // A release build refuses to start without it.
        .env("ROCKET_PUBLIC_URL", format!("http://{host}:{port}"))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Starts `command`. A binary copied just now may be "busy" for a moment: a process another test
/// forks meanwhile holds the copy's write handle until it execs (ETXTBSY); try again then.
fn spawn(command: &mut Command) -> Child {
    for _ in 0..100 {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(20))
            }
            started => return started.expect("the binary starts"),
        }
    }
    panic!("the binary stayed busy")
}

impl Server {
    /// Starts the binary `cargo test` built in `dir`.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_binary(Path::new(env!("CARGO_BIN_EXE_miniauth")), dir, env)
    }

    /// Starts the binary with a `public_url` on `localhost`, as browsers need for passkeys.
    pub fn start_on_localhost(dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_binary_on(Path::new(env!("CARGO_BIN_EXE_miniauth")), dir, env, "localhost")
    }

    /// Starts `binary` in `dir` and waits until it answers.
    pub fn start_binary(binary: &Path, dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_binary_on(binary, dir, env, "127.0.0.1")
    }

    fn start_binary_on(binary: &Path, dir: &Path, env: &[(&str, &str)], host: &'static str) -> Server {
        let port = free_port();
        let mut child = spawn(&mut command(binary, dir, (host, port), env));
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push_str(&(line + "\n"));
                }
            });
        }
        let env = env.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        let (binary, dir) = (binary.to_owned(), dir.to_owned());
        let server = Server { child, port, host, log, binary, dir, env };
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.try_request("GET", "/healthz", &[], "").is_none() {
            assert!(Instant::now() < deadline, "server did not start:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Runs an admin command (`miniauth group add …`) beside the server, in its folder and
    /// with its settings and database; panics unless it succeeds. Its standard output.
    pub fn admin(&self, args: &[&str]) -> String {
        let env: Vec<(&str, &str)> =
            self.env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let output = command(&self.binary, &self.dir, (self.host, self.port), &env)
            .args(args)
            .output()
            .expect("the binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "miniauth {args:?}: {stdout}{stderr}");
        stdout
    }

    /// The address of `path` on this server, for a client of its own (e.g. a browser).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.host, self.port)
    }

    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<(u16, String, String)> {
        Server::request_to(self.port, method, path, headers, body)
    }

    /// One request on a new connection to `port` (`Host: 127.0.0.1` unless `headers` name
    /// another); `None` when the connection fails.
    pub fn request_to(
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<(u16, String, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("Host")) {
            request += "Host: 127.0.0.1\r\n";
        }
        for (name, value) in headers {
            request += &format!("{name}: {value}\r\n");
        }
        request += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, head.to_owned(), body.to_owned()))
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, String) {
        self.try_request(method, path, headers, body).expect("a response")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server as an operator would (SIGTERM: Rocket shuts down gracefully).
    pub fn stop(mut self) -> String {
        Command::new("kill").arg(self.child.id().to_string()).status().ok();
        self.child.wait().ok();
        std::thread::sleep(Duration::from_millis(100));
        self.log()
    }
}

impl Server {
    /// Runs `binary` in `dir` until it exits by itself (within 30 s): its status code and log.
    pub fn run_to_exit(binary: &Path, dir: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
        let mut child = spawn(&mut command(binary, dir, ("127.0.0.1", free_port()), env));
        let deadline = Instant::now() + Duration::from_secs(30);
        let status: ExitStatus = loop {
            if let Some(status) = child.try_wait().expect("the binary runs") {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                panic!("the binary did not exit");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut log = String::new();
        child.stdout.take().unwrap().read_to_string(&mut log).ok();
        child.stderr.take().unwrap().read_to_string(&mut log).ok();
        (status.code(), log)
    }
}

impl Drop for Server {
    /// A test that panics must not leave its server running.
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Server {
    /// Sends `signal` (`TERM`, `INT`) and waits, up to two minutes, for the server to exit by
    /// itself: its exit code and log.
    pub fn signal_and_wait(mut self, signal: &str) -> (Option<i32>, String) {
        let sent = Command::new("kill").args([format!("-{signal}"), self.child.id().to_string()]).status();
        assert!(sent.is_ok_and(|status| status.success()), "kill -{signal}");
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the server runs") {
                break status;
            }
            assert!(Instant::now() < deadline, "the server did not exit after SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        };
        // The log's readers reach the end of the pipes.
        std::thread::sleep(Duration::from_millis(200));
        (status.code(), self.log())
    }

    /// Kills the server with SIGKILL: no shutdown, no flush, as a crash would.
    pub fn crash(mut self) -> String {
        self.child.kill().ok();
        self.child.wait().ok();
        self.log()
    }
}
