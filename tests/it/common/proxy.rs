//! Real reverse proxies for the forward-auth tests: Debian's nginx and Caddy, each started on a
//! free loopback port with the configuration the README gives (the constants here, which
//! `tests/proxies.rs` checks are the README's) for the host `127.0.0.1`, beside a catch-all that
//! answers any other host `421` (the README's protected host is never the default), in front of
//! a tiny app that echoes the headers it receives (`echo_upstream.py`). Each is a [`Process`],
//! stopped by its PID when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::server::free_port;

/// The nginx server block of the README: the app at app.example.com behind MiniAuth on port
/// 8000, the app itself on port 3000.
pub const NGINX: &str = r#"server {
    listen 80;
    server_name app.example.com;

    location / {
        auth_request /_miniauth;
        # Who signed in, for the app: MiniAuth's answer replaces any Remote-User,
        # Remote-User-Id or Remote-Groups a client sent (and is left out when empty); the
        # other identity headers apps read are emptied, which leaves them out. nginx itself
        # drops every header with an underscore (Remote_User): keep underscores_in_headers off.
        auth_request_set $miniauth_user $upstream_http_remote_user;
        auth_request_set $miniauth_user_id $upstream_http_remote_user_id;
        auth_request_set $miniauth_groups $upstream_http_remote_groups;
        proxy_set_header Remote-User $miniauth_user;
        proxy_set_header Remote-User-Id $miniauth_user_id;
        proxy_set_header Remote-Groups $miniauth_groups;
        proxy_set_header Remote-Email "";
        proxy_set_header Remote-Name "";
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
        # The host nginx routed the request by and the port it came in on: never the Host
        # header as the client wrote it ($http_host), which can name another host.
        proxy_set_header X-Original-URL $scheme://$host:$server_port$request_uri;
        proxy_set_header X-Original-Method $request_method;
        # The client's address as nginx saw it: X-Real-IP replaces a client's, and
        # X-Forwarded-For ends with it (MiniAuth reads that list from the right).
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
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
pub const CADDY: &str = r#"app.example.com {
	route {
		# Every Remote-* and Remote_* header a client sent goes first: only MiniAuth
		# names who signed in. The route keeps this order (by default Caddy runs
		# request_header after forward_auth, which would strip MiniAuth's answer).
		request_header -Remote-*
		request_header -Remote_*
		forward_auth 127.0.0.1:8000 {
			uri /authz/forward-auth
			copy_headers Remote-User Remote-User-Id Remote-Groups
			header_up X-Real-IP {remote_host}
		}
		reverse_proxy 127.0.0.1:3000
	}
}
"#;

/// A child process stopped (by its PID) when the test ends, however it ends.
pub struct Process {
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
    pub fn spawn(name: &'static str, command: &mut Command) -> Process {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start ({e}): apt-get install nginx caddy"));
        Process { child, name }
    }

    /// Waits until something listens on `port`, or the process has died.
    pub fn wait_for(&mut self, port: u16, log: &Path) {
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
pub fn start_app() -> (Process, u16) {
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/common/echo_upstream.py");
    let mut command = Command::new("/usr/bin/python3");
    command.args([script, &port.to_string()]).stdout(Stdio::piped());
    let mut app = Process::spawn("the echo app", &mut command);
    let mut ready = String::new();
    BufReader::new(app.child.stdout.take().unwrap()).read_line(&mut ready).ok();
    assert_eq!(ready.trim(), "ready", "the echo app did not start");
    (app, port)
}

/// A configuration of the README's with this test's ports and host.
fn localised(config: &str, miniauth: u16, app: u16) -> String {
    config
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{miniauth}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{app}"))
}

/// nginx with the README's server block, in front of the app on `app`, asking MiniAuth on
/// `miniauth`: listening on a free port (the returned one) as `127.0.0.1`. As the README asks,
/// that block is not the default server: another one answers every other host with `421`.
pub fn start_nginx(dir: &Path, miniauth: u16, app: u16) -> (Process, u16) {
    let port = free_port();
    let site = localised(NGINX, miniauth, app)
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("server_name app.example.com;", "server_name 127.0.0.1;");
    let http = format!("server {{\n    listen 127.0.0.1:{port} default_server;\n    return 421;\n}}\n{site}");
    (run_nginx(&dir.join("nginx"), "events { worker_connections 64; }", &http, port), port)
}

/// Debian's nginx in the foreground, one process, in its own `prefix` folder (its temporary
/// files, pid and log there), with `main` in its main context and `http` in its `http` block;
/// returned once it listens on `port`.
pub fn run_nginx(prefix: &Path, main: &str, http: &str, port: u16) -> Process {
    std::fs::create_dir_all(prefix).unwrap();
    let temp = |name: &str| format!("{name} {}/{name};", prefix.display());
    let config = format!(
        "daemon off;\nmaster_process off;\nuser root;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
         {main}\nhttp {{\n    access_log off;\n    {}\n    {}\n    {}\n    {}\n    {}\n{http}}}\n",
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
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .arg("-e")
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut nginx = Process::spawn("nginx", &mut command);
    nginx.wait_for(port, &log);
    nginx
}

/// Caddy with the README's site, likewise: every other host gets `421` from another site.
pub fn start_caddy(dir: &Path, miniauth: u16, app: u16) -> (Process, u16) {
    let port = free_port();
    let home = dir.join("caddy");
    std::fs::create_dir_all(&home).unwrap();
    // No admin endpoint (its fixed port would clash between tests), no certificates.
    let site =
        localised(CADDY, miniauth, app).replace("app.example.com {", &format!("http://127.0.0.1:{port} {{"));
    let config =
        format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}\nhttp://:{port} {{\n\trespond 421\n}}\n");
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
