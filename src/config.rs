//! The settings: read from Rocket's figment (`Rocket.toml` profiles and `ROCKET_*` environment
//! variables) over the one set of defaults, and parsed once, before anything is written, into
//! the finished values the rest of the server is built from. Checking a setting is parsing it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rocket::figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::auth::{
    CookieScope, ForwardAuth, Hashing, Limits, LinkLifetimes, Registration, SigningAlgorithm, TokenSettings,
    WrittenRule,
};
use crate::auth::{Networks, TrustedProxies};
use crate::domain::{PasswordPolicy, PublicUrl, PASSWORD_MAX_BYTES};
use crate::mail::MailSettings;

/// Name of the database in `[default.databases.<name>]`.
pub const DATABASE: &str = "miniauth";

/// Every MiniAuth setting as written, under the names operators use, with the built-in
/// defaults ([`Written::default`], the only place they are set; `Rocket.toml` repeats them for
/// the reader, and a test holds the two and the documentation's table together).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Written {
    /// Folder for the SQLite file (by default) and the outbox: made, or kept, mode 0700.
    pub data_dir: PathBuf,
    /// Page templates of one's own; unset: the ones built into the binary.
    pub template_dir: Option<PathBuf>,
    /// Static files (CSS, icon) of one's own; unset: the ones built into the binary.
    pub static_dir: Option<PathBuf>,
    /// bcrypt cost factor (4–31). Tests lower it; production keeps 12.
    pub bcrypt_cost: u32,
    /// Threads that run bcrypt and the strength estimator (0 = number of CPU cores).
    pub hash_workers: usize,
    /// HMAC secret for the CSRF and device cookies and, with `HS256`, the signing key. Unset:
    /// one kept in the database, shared by every instance.
    #[serde(skip_serializing)]
    pub token_secret: Option<SecretString>,
    /// The address people and services reach MiniAuth at (`https://auth.example.com`), for the
    /// links it gives out (in mails too). Unset: `http://<address>:<port>`, except in the release
    /// profile, where the server refuses to start without it.
    pub public_url: String,
    /// `EdDSA` (Ed25519, verifiable by anyone with the JWKS) or `HS256`; the only one accepted.
    pub jwt_algorithm: String,
    /// An Ed25519 private key (PKCS#8 PEM) that signs instead of the keys in the database.
    #[serde(skip_serializing)]
    pub jwt_private_key: Option<SecretString>,
    /// How long verifiers may cache the JWKS (`Cache-Control: max-age`), in seconds; also how
    /// long a new key waits, published, before a rotation may make it sign.
    pub jwks_cache_seconds: u64,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// Lifetime of an access token (JWT), in seconds.
    pub access_token_ttl: u64,
    /// Lifetime of a session (and of the browser cookie), in seconds.
    pub session_ttl: u64,
    /// Seconds during which a just-rotated refresh token is still accepted (a client's retry).
    pub refresh_grace: u64,
    /// Send cookies with the `Secure` flag (on by default in the release profile).
    pub cookie_secure: bool,
    /// Fewest bytes a new password may have (8–72).
    pub password_min_length: usize,
    /// Lowest zxcvbn score a new password may have (0–4; 0 turns the estimator off).
    pub password_min_score: u8,
    /// Proxies (CIDR blocks or addresses) whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<String>,
    /// Clients (CIDR blocks or addresses) `GET /metrics` answers; others get `404`.
    pub metrics_from: Vec<String>,
    /// Days an ended session (and a spent refresh token) is kept before it is purged.
    pub retention_days: u64,
    /// Seconds between two purges of ended data.
    pub purge_interval: u64,
    /// Days a security event is kept before it is purged.
    pub event_retention_days: u64,
    /// Where security events go besides the database: `"off"` or `"stdout"` (one JSON line
    /// each).
    pub event_log: String,
    /// Seconds the requests in flight at SIGTERM or SIGINT get to finish before the server
    /// cuts their connections and exits.
    pub shutdown_grace: u64,
    /// Failed password checks of one username from one address, within `login_block_seconds`,
    /// that block the pair (0 = no limit).
    pub login_max_failures_pair: u32,
    /// Failed password checks from one address, within `login_block_seconds`, that block the
    /// address (0 = no limit).
    pub login_max_failures_address: u32,
    /// The window of the two limits above, and how long their block lasts (seconds).
    pub login_block_seconds: u32,
    /// Failed password checks one username may take an hour, from anywhere; clients that
    /// signed in to it before are exempt (0 = no limit).
    pub login_max_failures_user_hour: u32,
    /// Accounts one address may create an hour (0 = no limit).
    pub register_max_per_address_hour: u32,
    /// The SMTP server mail goes through (`smtp://user:pass@host:587`, STARTTLS; `smtps://…`,
    /// TLS). Unset: each message is written to `<data_dir>/outbox/` instead.
    #[serde(skip_serializing)]
    pub smtp_url: Option<SecretString>,
    /// The sender of MiniAuth's mail, e.g. `MiniAuth <auth@example.com>`.
    pub mail_from: String,
    /// Seconds a password reset link works.
    pub reset_token_ttl: u64,
    /// Seconds an email confirmation link works.
    pub confirm_token_ttl: u64,
    /// Mails (confirmation, reset) one account may be sent an hour (0 = no limit).
    pub mail_max_per_account_hour: u32,
    /// Password reset requests and address changes one client address may make an hour
    /// (0 = no limit).
    pub mail_max_per_address_hour: u32,
    /// Who may create an account: `open` (anyone who reaches the sign-up page or the API),
    /// `invite` (whoever holds an invitation, `miniauth invite create`) or `closed`
    /// (administrators only, from the command line).
    pub registration: String,
    /// The hosts (with their subdomains) forward auth protects: the endpoints decide only for
    /// them, and the sign-in page returns only to them (`rd`).
    pub forward_auth_domains: Vec<String>,
    /// Per-host rules of forward auth (`[forward_auth.hosts."wiki.example.com"]`).
    pub forward_auth: ForwardAuthRules,
    /// The domain the session cookies are scoped to (`example.com`: every app below it sees
    /// the sign-in). Unset: host-only cookies.
    pub cookie_domain: Option<String>,
}

/// The clients `GET /metrics` answers (`metrics_from`).
#[derive(Debug, Clone, Default)]
pub struct MetricsFrom(pub Networks);

/// `[forward_auth]`: rules for protected hosts. A rule covers its host and the hosts below it
/// without one of their own; a host with no rule at or above it admits every signed-in user,
/// which open registration does not allow.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardAuthRules {
    pub hosts: BTreeMap<String, HostRule>,
}

/// Who may use one protected host: the users listed and the members of the groups listed, or
/// anyone signed in.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostRule {
    /// The usernames admitted (compared as usernames are: `Alice` is `alice`).
    pub users: Vec<String>,
    /// The groups whose members are admitted, as they are at each request (compared likewise).
    pub groups: Vec<String>,
    /// Admit everyone signed in (said out loud: with open registration, that is anyone).
    pub any_signed_in: bool,
    /// Admit only sessions that signed in with a second factor (two-step sign-in).
    pub second_factor: bool,
}

impl Default for Written {
    fn default() -> Self {
        let policy = PasswordPolicy::default();
        Written {
            data_dir: PathBuf::from("data"),
            template_dir: None,
            static_dir: None,
            bcrypt_cost: bcrypt::DEFAULT_COST,
            hash_workers: 0,
            token_secret: None,
            public_url: String::new(),
            jwt_algorithm: SigningAlgorithm::EdDSA.name().into(),
            jwt_private_key: None,
            jwks_cache_seconds: 600,
            jwt_issuer: "miniauth".into(),
            jwt_audience: "miniauth".into(),
            access_token_ttl: 15 * 60,
            session_ttl: 30 * 24 * 3600,
            refresh_grace: 10,
            cookie_secure: !cfg!(debug_assertions),
            password_min_length: policy.min_length,
            password_min_score: policy.min_score,
            trusted_proxies: Vec::new(),
            metrics_from: vec!["127.0.0.1/32".into(), "::1/128".into()],
            retention_days: 7,
            event_retention_days: 90,
            event_log: "off".into(),
            purge_interval: 600,
            shutdown_grace: 10,
            login_max_failures_pair: 5,
            login_max_failures_address: 50,
            login_block_seconds: 900,
            login_max_failures_user_hour: 100,
            register_max_per_address_hour: 30,
            smtp_url: None,
            mail_from: "MiniAuth <miniauth@localhost>".into(),
            reset_token_ttl: 30 * 60,
            confirm_token_ttl: 24 * 3600,
            mail_max_per_account_hour: 3,
            mail_max_per_address_hour: 10,
            registration: "open".into(),
            forward_auth_domains: Vec::new(),
            forward_auth: ForwardAuthRules::default(),
            cookie_domain: None,
        }
    }
}

/// Every setting, parsed and checked: what the server and the admin command line are built
/// from. Nothing here is parsed again.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub template_dir: Option<PathBuf>,
    pub static_dir: Option<PathBuf>,
    pub hashing: Hashing,
    /// The secret the CSRF and device keys derive from; `None`: the one kept in the database.
    pub token_secret: Option<SecretString>,
    pub public_url: PublicUrl,
    pub tokens: TokenSettings,
    pub session_ttl: Duration,
    pub refresh_grace: Duration,
    pub cookies: CookieScope,
    pub password_policy: PasswordPolicy,
    pub trusted_proxies: TrustedProxies,
    pub metrics_from: MetricsFrom,
    pub limits: Limits,
    /// How long ended sessions and spent tokens are kept.
    pub retention: Duration,
    /// How long security events are kept.
    pub event_retention: Duration,
    /// Whether security events are also printed on standard output.
    pub events_to_stdout: bool,
    pub purge_interval: Duration,
    pub shutdown_grace: Duration,
    pub mail: MailSettings,
    pub links: LinkLifetimes,
    pub registration: Registration,
    pub forward_auth: ForwardAuth,
}

impl Default for Settings {
    /// The built-in defaults, parsed (with the default address's `public_url`).
    fn default() -> Self {
        let written = Written { public_url: "http://localhost:8000".into(), ..Written::default() };
        Settings::parse(written).expect("the built-in defaults are valid")
    }
}

/// Rocket's configuration sources, with MiniAuth's own defaults beneath `Rocket.toml` and the
/// `ROCKET_*` variables: the binary needs no file to run, from any folder.
pub fn figment() -> Figment {
    use rocket::figment::providers::{Env, Format, Toml};
    use rocket::figment::Profile;

    let mut figment = Figment::from(rocket::Config::default())
        .merge((format!("databases.{DATABASE}.url"), "sqlite://data/miniauth.db?mode=rwc"))
        .merge((format!("databases.{DATABASE}.max_connections"), 0))
        .merge((format!("databases.{DATABASE}.connect_timeout"), 5));
    for limit in ["json", "form", "data-form", "string", "bytes"] {
        figment = figment.merge((format!("limits.{limit}"), "16 KiB"));
    }
    figment
        .merge(Toml::file(Env::var_or("ROCKET_CONFIG", "Rocket.toml")).nested())
        .merge(Env::prefixed("ROCKET_").ignore(&["PROFILE"]).global())
        .select(Profile::from_env_or("ROCKET_PROFILE", rocket::Config::DEFAULT_PROFILE))
}

/// The longest `shutdown_grace`, in seconds: an hour.
const MAX_SHUTDOWN_GRACE: u64 = 3600;

/// Rocket's shutdown as `shutdown_grace` asks. On SIGTERM or SIGINT (Rocket's signals) the server
/// stops accepting connections, gives the requests in flight `shutdown_grace` seconds to finish
/// and their answers two more to leave, then cuts what is left.
pub fn with_shutdown(figment: Figment) -> Figment {
    let grace = figment.extract_inner::<u64>("shutdown_grace").unwrap_or(Written::default().shutdown_grace);
    figment.merge(("shutdown.grace", grace.min(MAX_SHUTDOWN_GRACE))).merge(("shutdown.mercy", 2))
}

/// Lets one variable choose the database: `ROCKET_DATABASE_URL=postgres://…` (or
/// `database_url` in `Rocket.toml`) overrides `databases.miniauth.url`.
pub fn with_database_url(figment: Figment) -> Figment {
    match figment.extract_inner::<String>("database_url") {
        Ok(url) => figment.merge((format!("databases.{DATABASE}.url"), url)),
        Err(_) => figment,
    }
}

/// The settings of a configuration, parsed, with the data folder made: what the server and the
/// admin command line both start from.
pub fn load(figment: &Figment) -> Result<Settings, String> {
    let mut written: Written = figment.extract().map_err(|e| format!("invalid configuration: {e}"))?;
    if written.public_url.is_empty() {
        let rocket::Config { address, port, .. } = figment.extract().unwrap_or_default();
        // A loopback address is named `localhost`: browsers take passkeys (and treat the page
        // as a secure context) only on a named host.
        written.public_url = match address {
            loopback if loopback.is_loopback() => format!("http://localhost:{port}"),
            std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
            v4 => format!("http://{v4}:{port}"),
        };
    }
    let settings = Settings::parse(written).map_err(|e| format!("invalid configuration: {e}"))?;
    crate::files::prepare_data_dir(&settings.data_dir)?;
    Ok(settings)
}

/// Seconds as a [`Duration`].
const fn seconds(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

impl Settings {
    /// Every rule a setting must meet, checked by building what it sets, before anything is
    /// written.
    pub fn parse(written: Written) -> Result<Settings, String> {
        let w = written;
        if !(4..=31).contains(&w.bcrypt_cost) {
            return Err(format!("bcrypt_cost must be between 4 and 31, not {}", w.bcrypt_cost));
        }
        if !(PasswordPolicy::default().min_length..=PASSWORD_MAX_BYTES).contains(&w.password_min_length) {
            return Err(format!(
                "password_min_length must be {}–{PASSWORD_MAX_BYTES}, not {}",
                PasswordPolicy::default().min_length,
                w.password_min_length
            ));
        }
        if w.password_min_score > 4 {
            return Err(format!("password_min_score must be 0–4, not {}", w.password_min_score));
        }
        if w.login_block_seconds == 0 {
            return Err("login_block_seconds must be at least 1 (turn a limit off with 0 instead)".into());
        }
        let trusted_proxies = TrustedProxies::parse(&w.trusted_proxies)?;
        let metrics_from = MetricsFrom(Networks::parse("metrics_from", &w.metrics_from)?);
        if w.event_retention_days == 0 {
            return Err("event_retention_days must be at least 1".into());
        }
        let events_to_stdout = match w.event_log.as_str() {
            "off" => false,
            "stdout" => true,
            other => return Err(format!("event_log must be \"off\" or \"stdout\", not {other:?}")),
        };
        if w.token_secret.as_ref().is_some_and(|key| key.expose_secret().len() < 32) {
            return Err("token_secret must be at least 32 characters".into());
        }
        let public_url = PublicUrl::parse(&w.public_url)?;
        let cookies = CookieScope::parse(w.cookie_secure, w.cookie_domain.as_deref(), &public_url)?;
        let registration = Registration::parse(&w.registration)?;
        let rules = w.forward_auth.hosts.iter().map(|(host, rule)| WrittenRule {
            host,
            users: &rule.users,
            groups: &rule.groups,
            any_signed_in: rule.any_signed_in,
            second_factor: rule.second_factor,
        });
        let forward_auth = ForwardAuth::new(&w.forward_auth_domains, rules, &public_url, w.cookie_secure)?;
        let unruled = forward_auth.unruled();
        if registration == Registration::Open && !unruled.is_empty() {
            return Err(format!(
                "forward auth would let anyone in: registration is open, so anyone may sign up, and \
                 {} {} no rule. Give {} a rule ([forward_auth.hosts.\"{}\"] with users = [...] or \
                 groups = [...], or any_signed_in = true to admit everyone signed in on purpose), or set \
                 registration = \"invite\" or \"closed\"",
                unruled.join(", "),
                if unruled.len() == 1 { "has" } else { "have" },
                if unruled.len() == 1 { "it" } else { "each" },
                unruled[0],
            ));
        }
        if w.shutdown_grace > MAX_SHUTDOWN_GRACE {
            return Err(format!(
                "shutdown_grace must be at most {MAX_SHUTDOWN_GRACE} seconds, not {}",
                w.shutdown_grace
            ));
        }
        if w.reset_token_ttl == 0 || w.confirm_token_ttl == 0 {
            return Err("reset_token_ttl and confirm_token_ttl must be at least 1 second".into());
        }
        if w.jwks_cache_seconds > 86_400 {
            return Err(format!(
                "jwks_cache_seconds must be at most 86400 (a day), not {}",
                w.jwks_cache_seconds
            ));
        }
        let algorithm = SigningAlgorithm::parse(&w.jwt_algorithm)?;
        let configured_key = match (algorithm, w.jwt_private_key, &w.token_secret) {
            (SigningAlgorithm::EdDSA, Some(key), _) => Some(("jwt_private_key", key)),
            (SigningAlgorithm::HS256, Some(_), _) => {
                return Err("jwt_private_key is an Ed25519 key: it needs jwt_algorithm = \"EdDSA\"".into())
            }
            (SigningAlgorithm::HS256, None, Some(secret)) => Some(("token_secret", secret.clone())),
            _ => None,
        };
        for (key, dir) in [("template_dir", &w.template_dir), ("static_dir", &w.static_dir)] {
            if let Some(dir) = dir.as_ref().filter(|dir| !dir.is_dir()) {
                return Err(format!(
                    "{key} {} is not a folder (leave it unset to use the built-in one)",
                    dir.display()
                ));
            }
        }
        let mail = MailSettings::parse(w.smtp_url.as_ref(), &w.mail_from, w.data_dir.join("outbox"))?;
        Ok(Settings {
            hashing: Hashing::new(w.bcrypt_cost, w.hash_workers),
            token_secret: w.token_secret,
            tokens: TokenSettings {
                algorithm,
                configured_key,
                issuer: w.jwt_issuer,
                audience: w.jwt_audience,
                access_ttl: seconds(w.access_token_ttl),
                jwks_cache: seconds(w.jwks_cache_seconds),
            },
            session_ttl: seconds(w.session_ttl),
            refresh_grace: seconds(w.refresh_grace),
            cookies,
            password_policy: PasswordPolicy {
                min_length: w.password_min_length,
                min_score: w.password_min_score,
            },
            trusted_proxies,
            metrics_from,
            limits: Limits {
                pair: w.login_max_failures_pair.into(),
                address: w.login_max_failures_address.into(),
                block_seconds: w.login_block_seconds.into(),
                user_hour: w.login_max_failures_user_hour.into(),
                register_hour: w.register_max_per_address_hour.into(),
                mail_account_hour: w.mail_max_per_account_hour.into(),
                mail_address_hour: w.mail_max_per_address_hour.into(),
            },
            retention: seconds(w.retention_days.saturating_mul(24 * 3600)),
            event_retention: seconds(w.event_retention_days.saturating_mul(24 * 3600)),
            events_to_stdout,
            purge_interval: seconds(w.purge_interval.max(1)),
            shutdown_grace: seconds(w.shutdown_grace),
            mail,
            links: LinkLifetimes { reset: seconds(w.reset_token_ttl), confirm: seconds(w.confirm_token_ttl) },
            registration,
            forward_auth,
            public_url,
            data_dir: w.data_dir,
            template_dir: w.template_dir,
            static_dir: w.static_dir,
        })
    }
}
