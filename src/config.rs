//! The one typed configuration struct, extracted from Rocket's figment (`Rocket.toml` profiles
//! and `ROCKET_*` environment variables), checked before anything is written.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use jsonwebtoken::Algorithm;

use crate::auth::{cookie_domain, ForwardAuth, TrustedProxies};
use crate::domain::{PasswordPolicy, PASSWORD_MAX_BYTES};

/// Name of the database in `[default.databases.<name>]`.
pub const DATABASE: &str = "miniauth";

/// Every MiniAuth setting. Defaults live here and, for the reader, in `Rocket.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
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
    pub jwt_algorithm: Algorithm,
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
    /// Days an ended session (and a spent refresh token) is kept before it is purged.
    pub retention_days: u64,
    /// Seconds between two purges of ended data.
    pub purge_interval: u64,
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
    /// The hosts (with their subdomains) forward auth protects: the endpoints decide only for
    /// them, and the sign-in page returns only to them (`rd`).
    pub forward_auth_domains: Vec<String>,
    /// Per-host rules of forward auth (`[forward_auth.hosts."wiki.example.com"]`).
    pub forward_auth: ForwardAuthSettings,
    /// The domain the session cookies are scoped to (`example.com`: every app below it sees
    /// the sign-in). Unset: host-only cookies.
    pub cookie_domain: Option<String>,
}

/// `[forward_auth]`: rules for some protected hosts; a host without one admits every
/// signed-in user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardAuthSettings {
    pub hosts: BTreeMap<String, HostRule>,
}

/// Who may use one protected host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRule {
    /// The usernames admitted (compared as usernames are: `Alice` is `alice`).
    pub users: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("data"),
            template_dir: None,
            static_dir: None,
            bcrypt_cost: bcrypt::DEFAULT_COST,
            hash_workers: 0,
            token_secret: None,
            public_url: String::new(),
            jwt_algorithm: Algorithm::EdDSA,
            jwt_private_key: None,
            jwks_cache_seconds: 600,
            jwt_issuer: "miniauth".into(),
            jwt_audience: "miniauth".into(),
            access_token_ttl: 15 * 60,
            session_ttl: 30 * 24 * 3600,
            refresh_grace: 10,
            cookie_secure: !cfg!(debug_assertions),
            password_min_length: PasswordPolicy::default().min_length,
            password_min_score: PasswordPolicy::default().min_score,
            trusted_proxies: Vec::new(),
            retention_days: 7,
            purge_interval: 600,
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
            forward_auth_domains: Vec::new(),
            forward_auth: ForwardAuthSettings::default(),
            cookie_domain: None,
        }
    }
}

impl Settings {
    pub fn password_policy(&self) -> PasswordPolicy {
        PasswordPolicy { min_length: self.password_min_length, min_score: self.password_min_score }
    }

    /// Seconds a retired signing key stays, verifying and published: until the last token it
    /// signed has expired (with the clock leeway, and the instances' time to follow a rotation)
    /// and key sets cached before then are stale.
    pub fn keep_retired_keys(&self) -> i64 {
        (self.access_token_ttl + self.jwks_cache_seconds) as i64
            + 5
            + crate::auth::keys::RELOAD_EVERY.as_secs() as i64
    }

    /// The signing key the configuration gives, with the setting's name: `jwt_private_key`
    /// (EdDSA) or `token_secret` (HS256). `None`: the keys in the database sign.
    pub fn configured_signing_key(&self) -> Option<(&'static str, &SecretString)> {
        match self.jwt_algorithm {
            Algorithm::EdDSA => self.jwt_private_key.as_ref().map(|key| ("jwt_private_key", key)),
            _ => self.token_secret.as_ref().map(|key| ("token_secret", key)),
        }
    }

    pub fn hash_workers(&self) -> usize {
        match self.hash_workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
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

/// Lets one variable choose the database: `ROCKET_DATABASE_URL=postgres://…` (or
/// `database_url` in `Rocket.toml`) overrides `databases.miniauth.url`.
pub fn with_database_url(figment: Figment) -> Figment {
    match figment.extract_inner::<String>("database_url") {
        Ok(url) => figment.merge((format!("databases.{DATABASE}.url"), url)),
        Err(_) => figment,
    }
}

/// Extracts [`Settings`] and checks them; only then creates the data folder.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("MiniAuth settings", |rocket| async move {
        let configured = rocket.figment().extract_inner::<String>("public_url").unwrap_or_default();
        if rocket.figment().profile() == "release" && configured.trim().is_empty() {
            log::error!(
                "invalid configuration: the release profile needs public_url, the address people reach \
                 MiniAuth at (e.g. ROCKET_PUBLIC_URL=https://auth.example.com): links in mails are built from it"
            );
            return Err(rocket);
        }
        match load(rocket.figment()) {
            Ok(settings) => Ok(rocket.manage(settings)),
            Err(e) => {
                log::error!("{e}");
                Err(rocket)
            }
        }
    })
}

/// The settings of a configuration, checked, with the data folder made: what the server and
/// the admin command line both start from.
pub fn load(figment: &Figment) -> Result<Settings, String> {
    let mut settings: Settings = figment.extract().map_err(|e| format!("invalid configuration: {e}"))?;
    if settings.public_url.is_empty() {
        let rocket::Config { address, port, .. } = figment.extract().unwrap_or_default();
        settings.public_url = match address {
            std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
            v4 => format!("http://{v4}:{port}"),
        };
    }
    settings.public_url = settings.public_url.trim_end_matches('/').to_owned();
    check(&settings).map_err(|e| format!("invalid configuration: {e}"))?;
    prepare(&settings.data_dir)?;
    Ok(settings)
}

/// Every rule a setting must meet on its own, checked before anything is written.
fn check(settings: &Settings) -> Result<(), String> {
    if !(4..=31).contains(&settings.bcrypt_cost) {
        return Err(format!("bcrypt_cost must be between 4 and 31, not {}", settings.bcrypt_cost));
    }
    if !(8..=PASSWORD_MAX_BYTES).contains(&settings.password_min_length) {
        return Err(format!(
            "password_min_length must be 8–{PASSWORD_MAX_BYTES}, not {}",
            settings.password_min_length
        ));
    }
    if settings.password_min_score > 4 {
        return Err(format!("password_min_score must be 0–4, not {}", settings.password_min_score));
    }
    if settings.login_block_seconds == 0 {
        return Err("login_block_seconds must be at least 1 (turn a limit off with 0 instead)".into());
    }
    TrustedProxies::parse(&settings.trusted_proxies)?;
    if settings.token_secret.as_ref().is_some_and(|key| key.expose_secret().len() < 32) {
        return Err("token_secret must be at least 32 characters".into());
    }
    check_public_url(&settings.public_url)?;
    ForwardAuth::new(settings)?;
    cookie_domain(settings)?;
    if settings.reset_token_ttl == 0 || settings.confirm_token_ttl == 0 {
        return Err("reset_token_ttl and confirm_token_ttl must be at least 1 second".into());
    }
    if settings.jwks_cache_seconds > 86_400 {
        return Err(format!(
            "jwks_cache_seconds must be at most 86400 (a day), not {}",
            settings.jwks_cache_seconds
        ));
    }
    match settings.jwt_algorithm {
        Algorithm::EdDSA | Algorithm::HS256 => {}
        other => return Err(format!("jwt_algorithm must be EdDSA or HS256, not {other:?}")),
    }
    if settings.jwt_private_key.is_some() && settings.jwt_algorithm != Algorithm::EdDSA {
        return Err("jwt_private_key is an Ed25519 key: it needs jwt_algorithm = \"EdDSA\"".into());
    }
    for (key, dir) in [("template_dir", &settings.template_dir), ("static_dir", &settings.static_dir)] {
        if let Some(dir) = dir.as_ref().filter(|dir| !dir.is_dir()) {
            return Err(format!(
                "{key} {} is not a folder (leave it unset to use the built-in one)",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// `public_url` is an absolute http(s) address with a host and nothing after its path.
fn check_public_url(public_url: &str) -> Result<(), String> {
    let wrong = |why: &str| {
        Err(format!("public_url must be {why}, as in https://auth.example.com, not {public_url:?}"))
    };
    let Ok(url) = url::Url::parse(public_url) else {
        return wrong("an absolute address");
    };
    match url.scheme() {
        "http" | "https" => {}
        _ => return wrong("an http:// or https:// address"),
    }
    if url.host_str().is_none_or(str::is_empty) || url.query().is_some() || url.fragment().is_some() {
        return wrong("a host with, at most, a path");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return wrong("an address without a user or password");
    }
    Ok(())
}

/// The sticky bit: a folder many users share (like `/tmp`).
const STICKY: u32 = 0o1000;

/// Makes the data folder, mode 0700, or takes from an existing one whatever its group and others
/// may do: it holds the SQLite file (by default), with the signing keys, and the outbox, with
/// reset links. Fixing it, rather than refusing to start, keeps the zero-configuration start
/// working where the folder was made by hand or by an older version (with the umask: 0755); a
/// folder that cannot be made private stops the start instead.
fn prepare(data_dir: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| format!("cannot create data_dir {}: {e}", data_dir.display()))?;
    let mode = fs::metadata(data_dir)
        .map_err(|e| format!("cannot read data_dir {}: {e}", data_dir.display()))?
        .permissions()
        .mode();
    // Taking a folder like `/tmp` from everyone else would break the machine for them.
    if mode & STICKY != 0 && mode & 0o077 != 0 {
        return Err(format!(
            "data_dir {} is a folder other users share (mode {:04o}): give MiniAuth a folder of its own",
            data_dir.display(),
            mode & 0o7777
        ));
    }
    make_owner_only(data_dir)?;
    // The mailer makes the outbox 0700 when it writes the first message; one made before (by
    // hand, or by an older version) is held to the same rule, as is the secret file of
    // installations from before the keys moved into the database.
    make_owner_only(&data_dir.join("outbox"))?;
    make_owner_only(&data_dir.join("secret.key"))
}

/// Takes from the file or folder at `path`, if there is one, whatever its group and others may
/// do (0644 becomes 0600, 0755 becomes 0700), and says so in one line. An error, saying what to
/// do, when that is not allowed (another user owns it): the caller refuses to start, since what
/// it guards (the signing keys, reset links) would stay open to every local user.
pub(crate) fn make_owner_only(path: &Path) -> Result<(), String> {
    let mode = match fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode() & 0o7777,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read the mode of {}: {e}", path.display())),
    };
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let private = mode & !0o077;
    fs::set_permissions(path, fs::Permissions::from_mode(private)).map_err(|e| {
        format!(
            "{} is open to other users (mode {mode:04o}) and cannot be made private ({e}): \
             run `chmod go-rwx {}` as its owner, or run MiniAuth as its owner",
            path.display(),
            path.display()
        )
    })?;
    log::warn!("{} was open to other users (mode {mode:04o}); now mode {private:04o}", path.display());
    Ok(())
}
