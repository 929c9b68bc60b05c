//! What the pages share: the user and sessions as templates show them, a form shown again with
//! its errors, the `next` rule, and stored times as people (and RFC 3339) read them.

use rocket::http::{Header, Status};
use rocket::response::Responder;
use rocket_dyn_templates::Template;
use serde::Serialize;

use crate::auth::Registration;
use crate::domain::{
    username_pattern, username_rule, PasswordPolicy, Session, User, EMAIL_MAX, PASSWORD_MAX_BYTES,
    USERNAME_MAX, USERNAME_MIN,
};
use crate::error::{Error, FieldErrors};
use crate::store::events::Recorded;

/// Where a form's errors hold a message about the whole form, shown above its fields.
pub const FORM: &str = "form";

/// A page answer that did not succeed: the form again with its errors, or an error page.
#[derive(Responder)]
pub enum Rejection {
    Form((Status, Template)),
    /// The form again, refused by the throttle: `429` with `Retry-After`.
    #[response(status = 429)]
    Throttled(Template, Header<'static>),
    Error(Error),
}

impl Rejection {
    /// An error with field messages shows the form again beside its fields, with the error's
    /// status; so does a throttled one, with its message above the fields; any other error is
    /// an error page.
    pub fn form(e: Error, render: impl FnOnce(&FieldErrors) -> Template) -> Rejection {
        if let (Error::TooManyAttempts { .. }, Some(seconds)) = (&e, e.retry_after()) {
            let page = render(&FieldErrors::from([(FORM, vec![e.detail()])]));
            return Rejection::Throttled(page, Header::new("Retry-After", seconds.to_string()));
        }
        match e.field_errors() {
            Some(errors) => Rejection::Form((e.status(), render(&errors))),
            None => Rejection::Error(e),
        }
    }
}

impl From<Error> for Rejection {
    fn from(e: Error) -> Self {
        Rejection::Error(e)
    }
}

/// The user as the pages show them.
#[derive(Serialize)]
pub struct UserView {
    id: i64,
    username: String,
    created_at: String,
    email: Option<String>,
    email_confirmed: bool,
    groups: Vec<String>,
    totp: bool,
    recovery_codes_left: i64,
    passkeys: i64,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            id: user.id,
            username: user.username.clone(),
            created_at: long_date(user.created_at),
            email: user.email.clone(),
            email_confirmed: user.email_confirmed,
            groups: user.groups.clone(),
            totp: user.totp,
            recovery_codes_left: user.recovery_codes_left,
            passkeys: user.passkeys,
        }
    }
}

/// The bounds of the forms' fields, from the domain's rules and the password settings, so the
/// browser checks what the server will, whether pages offer passkeys (`passkeys`: the
/// `public_url` can carry them), and whether anyone may sign up (`sign_up`: `open`, `invite` or
/// `closed`); templates read them as `rules()`.
pub fn form_rules(policy: &PasswordPolicy, registration: Registration, passkeys: bool) -> serde_json::Value {
    serde_json::json!({
        "sign_up": registration.as_str(),
        "passkeys": passkeys,
        "passkey_name_max": crate::auth::PASSKEY_NAME_MAX,
        "username": {
            "min_length": USERNAME_MIN,
            "max_length": USERNAME_MAX,
            "pattern": username_pattern(),
            "help": username_rule(),
        },
        "new_password": {
            "min_length": policy.min_length,
            "max_length": PASSWORD_MAX_BYTES,
            "advice": policy.advice(),
        },
        // A password to sign in or to confirm with: any length the setting once allowed, but
        // never more than bcrypt reads.
        "password": { "max_length": PASSWORD_MAX_BYTES },
        "email": { "max_length": EMAIL_MAX },
    })
}

/// A session as the profile lists it.
#[derive(Serialize)]
pub struct SessionView {
    id: String,
    created_at: String,
    last_used_at: String,
    device: String,
    address: String,
    current: bool,
    methods: &'static str,
}

impl From<Session> for SessionView {
    fn from(session: Session) -> Self {
        SessionView {
            current: session.current,
            created_at: date_time(session.created_at),
            last_used_at: date_time(session.last_used_at),
            device: session.device,
            address: session.address,
            methods: session.methods,
            id: session.id,
        }
    }
}

/// A security event, as the activity page shows it.
#[derive(Serialize)]
pub struct EventView {
    at: String,
    kind: String,
    label: String,
    device: String,
    address: String,
    /// The detail that tells it apart, in words (e.g. "with password + code").
    note: String,
    /// Worth a second look: a failure, a block, a token reused.
    alarming: bool,
}

impl From<Recorded> for EventView {
    fn from(event: Recorded) -> Self {
        let text = |key: &str| event.detail.get(key).and_then(|value| value.as_str()).map(str::to_owned);
        let note = match event.kind.as_str() {
            "sign_in.succeeded" => text("methods").map(|methods| format!("with {methods}")),
            "sign_in.failed" => text("step").map(|step| format!("wrong {step}")),
            "sign_in.throttled" => {
                let until = event.detail.get("until").and_then(|until| until.as_i64());
                text("scope")
                    .map(|scope| format!("{scope}, until {}", until.map(date_time).unwrap_or_default()))
            }
            "session.revoked" => text("which").map(|which| match which.as_str() {
                "others" => "every other session".to_owned(),
                "all" => "every session".to_owned(),
                _ => "one session".to_owned(),
            }),
            "passkey.added" | "passkey.removed" => text("passkey"),
            "app.consent_granted" => text("app"),
            "app.consent_revoked" | "app.token_reused" => text("client_id"),
            "admin.command" => text("command").map(|command| format!("miniauth {command}")),
            _ => None,
        };
        EventView {
            at: date_time(event.at),
            alarming: matches!(
                event.kind.as_str(),
                "sign_in.failed" | "sign_in.throttled" | "refresh_token.reused" | "app.token_reused"
            ),
            kind: event.kind,
            label: event.label,
            device: event.device,
            address: event.address,
            note: note.unwrap_or_default(),
        }
    }
}

/// `next` is honoured only for a path on this site: `/x`, never `//x`, `/\x` or `https://…`.
pub fn safe_next(next: &str) -> Option<&str> {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    (local && rocket::http::uri::Origin::parse(next).is_ok()).then_some(next)
}

fn format(unix: i64, format: &[time::format_description::FormatItem<'_>]) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

/// A stored time (unix seconds) as RFC 3339, e.g. `2026-11-25T16:39:37Z`.
pub fn rfc3339(unix: i64) -> String {
    format(unix, time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"))
}

/// A stored time as people read it, e.g. `25 November 2026`.
pub fn long_date(unix: i64) -> String {
    format(unix, time::macros::format_description!("[day padding:none] [month repr:long] [year]"))
}

/// A stored time with the minute, as people read it, e.g. `25 November 2026, 16:39 UTC`.
fn date_time(unix: i64) -> String {
    format(
        unix,
        time::macros::format_description!("[day padding:none] [month repr:long] [year], [hour]:[minute] UTC"),
    )
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_accepts_only_local_paths() {
        for good in ["/", "/profile", "/profile?tab=1", "/a/b"] {
            assert_eq!(safe_next(good), Some(good));
        }
        for bad in
            ["//evil.com", "https://evil.com", "/\\evil.com", "\\\\evil", "evil", "", "/\t/evil", "/ /x"]
        {
            assert_eq!(safe_next(bad), None, "{bad:?} was accepted");
        }
    }
}
