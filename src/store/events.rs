//! The security activity log: what happened to an account, when, from which address and device.
//! An event is written by the store function that makes the change it describes, in the same
//! transaction (see [`super::Change`]): a change that rolls back leaves no event, and an event
//! is never written for a change that did not happen. Once committed, the server can also print
//! it on standard output as one JSON line (`event_log = "stdout"`), for a log shipper.

use std::io::Write as _;

use serde::Serialize;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, FromRow, Row};

use crate::domain::device_name;
use crate::error::Result;

/// What happened. The stored names are stable: log shippers and alerts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A session opened (password, second factor, passkey); `detail.methods`.
    SignedIn,
    /// A wrong password or second-factor code; `detail.step`.
    SignInFailed,
    /// Failures reached a limit: sign-ins are refused until `detail.until`, for `detail.scope`.
    SignInThrottled,
    /// The user signed this session out.
    SignedOut,
    /// Sessions ended by their user (`detail.sessions`, `detail.which`): one from the list, the
    /// others, or all of them.
    SessionRevoked,
    /// A refresh token presented after it had been exchanged: its session was revoked.
    RefreshTokenReused,
    SecondFactorAdded,
    SecondFactorRemoved,
    RecoveryCodesRenewed,
    /// `detail.passkey`: its name.
    PasskeyAdded,
    PasskeyRemoved,
    PasswordChanged,
    /// Through a mailed link.
    PasswordReset,
    EmailChanged,
    EmailRemoved,
    EmailConfirmed,
    AccountCreated,
    AccountDeleted,
    /// `detail.client_id`, `detail.scope`.
    AppConsentGranted,
    AppConsentRevoked,
    /// An app's refresh token or code presented again: the app's grant was revoked.
    AppTokenReused,
    /// An administrator's command that changed something; `detail.command`.
    AdminCommand,
}

impl Kind {
    pub const ALL: [Kind; 22] = [
        Kind::SignedIn,
        Kind::SignInFailed,
        Kind::SignInThrottled,
        Kind::SignedOut,
        Kind::SessionRevoked,
        Kind::RefreshTokenReused,
        Kind::SecondFactorAdded,
        Kind::SecondFactorRemoved,
        Kind::RecoveryCodesRenewed,
        Kind::PasskeyAdded,
        Kind::PasskeyRemoved,
        Kind::PasswordChanged,
        Kind::PasswordReset,
        Kind::EmailChanged,
        Kind::EmailRemoved,
        Kind::EmailConfirmed,
        Kind::AccountCreated,
        Kind::AccountDeleted,
        Kind::AppConsentGranted,
        Kind::AppConsentRevoked,
        Kind::AppTokenReused,
        Kind::AdminCommand,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SignedIn => "sign_in.succeeded",
            Kind::SignInFailed => "sign_in.failed",
            Kind::SignInThrottled => "sign_in.throttled",
            Kind::SignedOut => "session.signed_out",
            Kind::SessionRevoked => "session.revoked",
            Kind::RefreshTokenReused => "refresh_token.reused",
            Kind::SecondFactorAdded => "second_factor.added",
            Kind::SecondFactorRemoved => "second_factor.removed",
            Kind::RecoveryCodesRenewed => "recovery_codes.renewed",
            Kind::PasskeyAdded => "passkey.added",
            Kind::PasskeyRemoved => "passkey.removed",
            Kind::PasswordChanged => "password.changed",
            Kind::PasswordReset => "password.reset",
            Kind::EmailChanged => "email.changed",
            Kind::EmailRemoved => "email.removed",
            Kind::EmailConfirmed => "email.confirmed",
            Kind::AccountCreated => "account.created",
            Kind::AccountDeleted => "account.deleted",
            Kind::AppConsentGranted => "app.consent_granted",
            Kind::AppConsentRevoked => "app.consent_revoked",
            Kind::AppTokenReused => "app.token_reused",
            Kind::AdminCommand => "admin.command",
        }
    }

    /// What the activity page says of it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::SignedIn => "Signed in",
            Kind::SignInFailed => "Failed sign-in",
            Kind::SignInThrottled => "Sign-ins held back after repeated failures",
            Kind::SignedOut => "Signed out",
            Kind::SessionRevoked => "Sessions ended",
            Kind::RefreshTokenReused => "A used refresh token came back: its session was ended",
            Kind::SecondFactorAdded => "Authenticator app turned on",
            Kind::SecondFactorRemoved => "Authenticator app turned off",
            Kind::RecoveryCodesRenewed => "New recovery codes",
            Kind::PasskeyAdded => "Passkey added",
            Kind::PasskeyRemoved => "Passkey removed",
            Kind::PasswordChanged => "Password changed",
            Kind::PasswordReset => "Password reset by email",
            Kind::EmailChanged => "Email address changed",
            Kind::EmailRemoved => "Email address removed",
            Kind::EmailConfirmed => "Email address confirmed",
            Kind::AccountCreated => "Account created",
            Kind::AccountDeleted => "Account deleted",
            Kind::AppConsentGranted => "App allowed",
            Kind::AppConsentRevoked => "App disconnected",
            Kind::AppTokenReused => "A used app token came back: the app's access was ended",
            Kind::AdminCommand => "Administrator command",
        }
    }

    pub fn parse(stored: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == stored)
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An event about to be recorded: who it concerns (an account, a name typed, or no one), from
/// where (the client's address as counted, `''` for the command line) and which device (its
/// `User-Agent`), and what else tells it apart (a JSON object; never a secret).
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Kind,
    pub at: i64,
    pub user_id: Option<i64>,
    pub username: String,
    pub address: String,
    pub user_agent: String,
    pub detail: Value,
}

/// What the command line records as its device.
pub const COMMAND_LINE: &str = "miniauth command line";

impl Event {
    /// An event from a client at `address` with `user_agent`, about no account yet.
    pub fn new(kind: Kind, address: String, user_agent: &str) -> Event {
        Event {
            kind,
            at: super::now(),
            user_id: None,
            username: String::new(),
            address,
            user_agent: user_agent.to_owned(),
            detail: json!({}),
        }
    }

    /// An administrator's `command` (e.g. `user delete`), from the command line.
    pub fn command(command: &str) -> Event {
        Event::new(Kind::AdminCommand, String::new(), COMMAND_LINE).with("command", command)
    }

    /// About the account `user_id`, named `username`.
    pub fn of(mut self, user_id: i64, username: &str) -> Event {
        self.user_id = Some(user_id);
        self.username = username.to_owned();
        self
    }

    /// About a name typed, which may be no account's: its first 64 characters, control
    /// characters left out (PostgreSQL refuses a NUL byte in text, and a log line must stay one).
    pub fn named(mut self, username: &str) -> Event {
        self.username = username.chars().filter(|c| !c.is_control()).take(64).collect();
        self
    }

    /// With `key` in its detail.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Event {
        if let Value::Object(detail) = &mut self.detail {
            detail.insert(key.to_owned(), value.into());
        }
        self
    }
}

/// Writes the event, in the transaction of the change it describes.
pub(super) async fn insert(conn: &mut AnyConnection, event: &Event) -> Result<()> {
    // NULLIF: a NULL and a number bound in turn to one statement trip PostgreSQL's prepared
    // statement cache; no account has the id 0.
    sqlx::query(
        "INSERT INTO security_events (at, kind, user_id, username, address, user_agent, detail) \
         VALUES ($1, $2, NULLIF($3, 0), $4, $5, $6, $7)",
    )
    .bind(event.at)
    .bind(event.kind.as_str())
    .bind(event.user_id.unwrap_or(0))
    .bind(&event.username)
    .bind(&event.address)
    .bind(&event.user_agent)
    .bind(event.detail.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// A recorded event, as users and administrators read it.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub id: i64,
    pub at: i64,
    /// The stored name (`sign_in.succeeded`…).
    pub kind: String,
    /// What the activity page says of it.
    pub label: String,
    pub user_id: Option<i64>,
    pub username: String,
    pub address: String,
    /// The device its `User-Agent` names (e.g. "Firefox on Linux").
    pub device: String,
    pub user_agent: String,
    pub detail: Value,
}

impl FromRow<'_, AnyRow> for Recorded {
    fn from_row(row: &AnyRow) -> sqlx::Result<Recorded> {
        let kind: String = row.try_get("kind")?;
        let user_agent: String = row.try_get("user_agent")?;
        let detail: String = row.try_get("detail")?;
        Ok(Recorded {
            id: row.try_get("id")?,
            at: row.try_get("at")?,
            label: Kind::parse(&kind).map_or_else(|| kind.clone(), |kind| kind.label().to_owned()),
            kind,
            user_id: super::nullable(row, "user_id")?,
            username: row.try_get("username")?,
            address: row.try_get("address")?,
            device: device(&user_agent),
            user_agent,
            detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
        })
    }
}

/// The device a `User-Agent` names; the command line as itself.
fn device(user_agent: &str) -> String {
    match user_agent {
        COMMAND_LINE => COMMAND_LINE.to_owned(),
        agent => device_name(agent),
    }
}

const COLUMNS: &str = "id, at, kind, user_id, username, address, user_agent, detail";

/// The account's last `limit` events, newest first.
pub async fn of_user(db: &AnyPool, user_id: i64, limit: i64) -> Result<Vec<Recorded>> {
    let events = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM security_events WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(user_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(events)
}

/// The events since `since` (unix seconds), of the name `username` when given (any account that
/// bore it, and sign-ins that typed it), oldest first, at most `limit` of the newest.
pub async fn query(db: &AnyPool, username: Option<&str>, since: i64, limit: i64) -> Result<Vec<Recorded>> {
    let mut events: Vec<Recorded> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM security_events \
         WHERE at >= $1 AND ($2 = '' OR lower(username) = lower($2)) ORDER BY id DESC LIMIT $3"
    ))
    .bind(since)
    .bind(username.unwrap_or_default())
    .bind(limit)
    .fetch_all(db)
    .await?;
    events.reverse();
    Ok(events)
}

/// Prints committed events on standard output, one JSON line each.
pub(super) fn print(events: &[Event]) {
    let mut out = std::io::stdout().lock();
    for event in events {
        let line = json!({
            "at": time::OffsetDateTime::from_unix_timestamp(event.at)
                .ok()
                .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok()),
            "kind": event.kind,
            "user_id": event.user_id,
            "username": event.username,
            "address": event.address,
            "device": device(&event.user_agent),
            "user_agent": event.user_agent,
            "detail": event.detail,
        });
        // Standard output closed (a shipper gone) must not fail the change, which is committed.
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}
