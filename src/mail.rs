//! Mail: the confirmation and password-reset messages, rendered from templates (a plain-text
//! and an HTML part each) and delivered in the background, through SMTP when `smtp_url` is set
//! and otherwise as `.eml` files in `<data_dir>/outbox/` (mode 0600; the log says where).
//!
//! A request only queues a message. Delivery happens on a task of its own, one message at a
//! time; a transport that fails or hangs is logged with its cause and never fails or delays the
//! request that asked for the mail. A full queue drops the message, with a warning.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::RngCore;
use rocket::tokio::fs::OpenOptions;
use rocket::tokio::io::AsyncWriteExt;
use rocket::tokio::sync::mpsc;
use rocket_dyn_templates::tera::{Context, Tera};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::Email;
use crate::error::with_sources;
use crate::metrics::Metrics;

/// Messages waiting for the transport; beyond this, new ones are dropped (and logged).
const QUEUE: usize = 256;
/// How long one SMTP command may take before the message is given up.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// What a message is for: each has its subject and its two templates, `mail/<name>.txt` and
/// `mail/<name>.html` in the template folder (or the built-in ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// "Confirm your email address", with the confirmation link.
    Confirm,
    /// "Reset your password", with the one-time reset link.
    Reset,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Confirm, Kind::Reset];

    fn name(self) -> &'static str {
        match self {
            Kind::Confirm => "confirm",
            Kind::Reset => "reset",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Kind::Confirm => "Confirm your email address",
            Kind::Reset => "Reset your password",
        }
    }
}

/// One message to send: to whom, what for, and what its templates show.
pub struct Letter {
    pub to: Email,
    pub kind: Kind,
    pub username: String,
    /// The link the message is about (built from `public_url`, never from a request).
    pub link: String,
    /// How long the link works, as people say it ("30 minutes").
    pub valid_for: String,
}

/// Queues messages for the delivery task. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    queue: mpsc::Sender<Letter>,
    /// Counts mails sent and failed (dropped ones too) for `GET /metrics`.
    metrics: Metrics,
}

/// The settings `mail_from` and `smtp_url`, parsed.
#[derive(Debug, Clone)]
pub struct MailSettings {
    from: Mailbox,
    /// The SMTP server's URL, checked, with its TLS rule spelled out; `None`: the outbox.
    smtp_url: Option<SecretString>,
    outbox: PathBuf,
}

impl MailSettings {
    pub fn parse(smtp_url: Option<&SecretString>, mail_from: &str, outbox: PathBuf) -> Result<Self, String> {
        let from = Mailbox::from_str(mail_from)
            .map_err(|e| format!("mail_from {mail_from:?} is not an address: {e}"))?;
        let smtp_url = match smtp_url {
            Some(url) => {
                let url = smtp_url_with_tls(url.expose_secret())?;
                AsyncSmtpTransport::<Tokio1Executor>::from_url(&url).map_err(|e| format!("smtp_url: {e}"))?;
                Some(SecretString::from(url))
            }
            None => None,
        };
        Ok(MailSettings { from, smtp_url, outbox })
    }
}

impl Mailer {
    /// Loads the templates and starts the delivery task (which needs the async runtime: call
    /// it from a fairing).
    pub fn start(settings: &MailSettings, template_dir: &Path, metrics: Metrics) -> Result<Mailer, String> {
        let from = settings.from.clone();
        let transport = match &settings.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| format!("smtp_url: {e}"))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
            None => Transport::Outbox(settings.outbox.clone()),
        };
        match &transport {
            Transport::Smtp(_) => log::info!("mail: through SMTP (smtp_url)"),
            Transport::Outbox(dir) => log::info!("mail: written to {} (no smtp_url)", dir.display()),
        }
        let delivery =
            Delivery { templates: templates(template_dir)?, from, transport, metrics: metrics.clone() };
        let (queue, waiting) = mpsc::channel(QUEUE);
        rocket::tokio::spawn(delivery.run(waiting));
        Ok(Mailer { queue, metrics })
    }

    /// Queues a message; never waits. A full queue (a transport far behind) drops it.
    pub fn send(&self, letter: Letter) {
        if let Err(e) = self.queue.try_send(letter) {
            self.metrics.mail(false);
            log::warn!("mail: a message was dropped, the queue is full or closed: {e}");
        }
    }
}

/// `smtp://` requires STARTTLS unless the URL says `?tls=opportunistic` (use it if offered) or
/// `?tls=none` (plain, for a relay on the same machine); `smtps://` is TLS from the start.
fn smtp_url_with_tls(url: &str) -> Result<String, String> {
    // The URL may hold a password: no message here repeats it.
    let mut parsed = url::Url::parse(url).map_err(|e| format!("smtp_url is not a URL: {e}"))?;
    let tls = parsed.query_pairs().find(|(key, _)| key == "tls").map(|(_, value)| value.into_owned());
    if parsed.scheme() == "smtp" {
        let others: Vec<(String, String)> =
            parsed.query_pairs().filter(|(key, _)| key != "tls").map(|(k, v)| (k.into(), v.into())).collect();
        let tls = match tls.as_deref() {
            None | Some("required") => Some("required"),
            Some("opportunistic") => Some("opportunistic"),
            Some("none") => None,
            Some(other) => {
                return Err(format!("smtp_url: tls must be required, opportunistic or none, not {other:?}"))
            }
        };
        parsed.set_query(None);
        if !others.is_empty() || tls.is_some() {
            let mut query = parsed.query_pairs_mut();
            query.extend_pairs(others);
            query.extend_pairs(tls.map(|tls| ("tls", tls)));
        }
    } else if parsed.scheme() != "smtps" {
        return Err(format!("smtp_url must start with smtp:// or smtps://, not {}://", parsed.scheme()));
    }
    Ok(parsed.into())
}

/// The mail templates: from `<template_dir>/mail/` where it has them, else the built-in ones.
/// Names ending in `.html` are HTML-escaped.
fn templates(template_dir: &Path) -> Result<Tera, String> {
    let mut tera = Tera::default();
    for kind in Kind::ALL {
        for part in ["txt", "html"] {
            let name = format!("{}.{part}", kind.name());
            let own = template_dir.join("mail").join(&name);
            let source = match std::fs::read_to_string(&own) {
                Ok(source) => source,
                Err(_) => crate::assets::built_in_template(&format!("mail/{name}"))
                    .ok_or_else(|| format!("the mail template {name} is missing"))?,
            };
            tera.add_raw_template(&name, &source).map_err(|e| format!("mail template {name}: {e}"))?;
        }
    }
    Ok(tera)
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// The delivery task's own state.
struct Delivery {
    templates: Tera,
    from: Mailbox,
    transport: Transport,
    metrics: Metrics,
}

impl Delivery {
    async fn run(self, mut waiting: mpsc::Receiver<Letter>) {
        while let Some(letter) = waiting.recv().await {
            let kind = letter.kind.name();
            let delivered = self.deliver(letter).await;
            self.metrics.mail(delivered.is_ok());
            if let Err(e) = delivered {
                log::error!("mail: a {kind} message was not sent: {e}");
            }
        }
    }

    async fn deliver(&self, letter: Letter) -> Result<(), String> {
        let message = self.message(&letter)?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| with_sources(&e)),
            Transport::Outbox(dir) => {
                let path = write_to_outbox(dir, &message.formatted()).await.map_err(|e| e.to_string())?;
                log::info!("mail: a {} message is in {}", letter.kind.name(), path.display());
                Ok(())
            }
        }
    }

    fn message(&self, letter: &Letter) -> Result<Message, String> {
        let mut context = Context::new();
        context.insert("username", &letter.username);
        context.insert("link", &letter.link);
        context.insert("valid_for", &letter.valid_for);
        context.insert("email", letter.to.as_str());
        let render = |part: &str| {
            let name = format!("{}.{part}", letter.kind.name());
            self.templates
                .render(&name, &context)
                .map_err(|e| format!("template {name}: {}", with_sources(&e)))
        };
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, letter.to.address().clone()))
            .subject(letter.kind.subject())
            .multipart(MultiPart::alternative_plain_html(render("txt")?, render("html")?))
            .map_err(|e| e.to_string())
    }
}

/// Writes one message as `<time>-<random>.eml`, readable by this user only, in a folder only
/// this user may enter. It is written under another name first, so that whoever watches the
/// folder never reads half a message.
async fn write_to_outbox(dir: &Path, message: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mut random = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let (path, part) = (dir.join(format!("{nanos}-{name}.eml")), dir.join(format!("{nanos}-{name}.part")));
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&part).await?;
    file.write_all(message).await?;
    file.sync_all().await?;
    rocket::tokio::fs::rename(&part, &path).await?;
    Ok(path)
}
