//! Mail as the tests read it: the messages in an outbox folder (MiniAuth's default transport)
//! or received by a real SMTP server ([`SmtpSink`], Debian's python3-aiosmtpd), and the links in
//! them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::server::free_port;

/// How long a message may take to arrive (it is sent in the background).
const ARRIVAL: Duration = Duration::from_secs(30);

/// The messages in `folder` (`.eml` files), oldest first.
pub fn mails_in(folder: &Path) -> Vec<String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|entries| entries.filter_map(|entry| Some(entry.ok()?.path())).collect())
        .unwrap_or_default();
    paths.retain(|path| path.extension().is_some_and(|ext| ext == "eml"));
    paths.sort();
    paths.iter().map(|path| std::fs::read_to_string(path).expect("a readable message")).collect()
}

/// Waits until `folder` holds at least `count` messages; returns them all, oldest first.
pub async fn wait_for_mails(folder: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let mails = mails_in(folder);
        if mails.len() >= count {
            return mails;
        }
        assert!(Instant::now() < deadline, "{count} messages did not arrive in {}", folder.display());
        rocket::tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The message's text with its quoted-printable soft line breaks undone: links whole again.
pub fn unfolded(mail: &str) -> String {
    mail.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
}

/// The first link in the message that starts with `prefix` (e.g.
/// `http://localhost:8000/password-reset/new?token=`), whole.
pub fn link(mail: &str, prefix: &str) -> String {
    let text = unfolded(mail);
    let start = text.find(prefix).unwrap_or_else(|| panic!("no link {prefix} in:\n{mail}"));
    text[start..].split(|c: char| c.is_whitespace() || c == '"' || c == '<').next().unwrap().to_owned()
}

/// The token of the first link to `path` on `public_url` in the message.
pub fn token(mail: &str, public_url: &str, path: &str) -> String {
    let prefix = format!("{public_url}{path}?token=");
    link(mail, &prefix)[prefix.len()..].to_owned()
}

/// A header's value (the first of that name).
pub fn header(mail: &str, name: &str) -> Option<String> {
    let wanted = format!("{}:", name.to_ascii_lowercase());
    mail.lines()
        .find(|line| line.to_ascii_lowercase().starts_with(&wanted))
        .map(|line| line[wanted.len()..].trim().to_owned())
}

/// A real SMTP server on a free loopback port, keeping what it receives in a folder; stopped
/// (by PID) when dropped.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub folder: tempfile::TempDir,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let folder = tempfile::tempdir().unwrap();
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/common/smtp_sink.py");
        // Debian's Python, which sees Debian's python3-aiosmtpd (another python3 on PATH may not).
        let mut child = Command::new("/usr/bin/python3")
            .args([script, &port.to_string(), &folder.path().display().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 runs (apt-get install python3-aiosmtpd)");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).ok();
        assert_eq!(ready.trim(), "ready", "the SMTP server did not start (apt-get install python3-aiosmtpd)");
        SmtpSink { child, port, folder }
    }

    /// `smtp_url` for MiniAuth: plain SMTP, since it is on this machine.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    pub async fn wait_for_mails(&self, count: usize) -> Vec<String> {
        wait_for_mails(self.folder.path(), count).await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
