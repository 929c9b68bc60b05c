//! The one error type of MiniAuth: what went wrong, the status that means, and the message a
//! client may read. How an error is shown (problem+json, an error page, the sign-in redirect)
//! is the business of `routes`; internal causes travel here only to be logged there.

use std::collections::BTreeMap;
use std::sync::Arc;

use rocket::http::Status;
use rocket::request::Request;

/// Messages per field, as in `errors: {field: [message, …]}`.
pub type FieldErrors = BTreeMap<&'static str, Vec<String>>;

/// The cause of an internal error, kept whole for the log (its `source` chain included).
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
pub enum Error {
    /// One or more fields broke a rule (422).
    Validation(FieldErrors),
    /// The username is taken, compared case-insensitively (409).
    UsernameTaken,
    /// Another account confirmed this email address first, compared case-insensitively (409).
    EmailTaken,
    /// A mailed link (its token) that is unknown, used, expired or void (400).
    InvalidLink,
    /// Unknown username or wrong password: one answer for both (401).
    InvalidCredentials,
    /// No credentials, or credentials that are not (or no longer) valid (401).
    Unauthenticated {
        invalid_token: bool,
    },
    /// The password given to confirm an account change is not the account's (403); names the
    /// field it came from.
    WrongPassword(&'static str),
    /// A refresh token that is unknown, used up, or of a session that ended (401).
    InvalidRefreshToken,
    /// A state-changing request without a valid CSRF token (403).
    Csrf,
    /// Not allowed, for the reason given (403): forward auth's host rules, a forward-auth
    /// question from a client that is not a trusted proxy.
    Forbidden(String),
    /// Nothing here, or nothing of this user's (404).
    NotFound,
    /// What was asked cannot be done in the account's present state, for the reason given
    /// (409): two-step sign-in on already, nothing waiting for a first code, …
    Conflict(String),
    /// The password was right, and the sign-in waits for a second factor (403): the token that
    /// finishes it (`POST /auth/login/second-factor`) and the methods the user can use.
    SecondFactorRequired {
        mfa_token: String,
        methods: Vec<&'static str>,
        /// The passkey options, for a user with passkeys.
        passkey: Option<Box<crate::auth::Challenge>>,
    },
    /// A passkey's answer that is not accepted, for the reason given (401): not registered here,
    /// a wrong signature, another site's, a counter that went backwards.
    PasskeyRefused(&'static str),
    /// A passkey ceremony that is unknown, answered already, someone else's or expired (401).
    CeremonyExpired,
    /// A second-factor code (an authenticator app's or a recovery code) that is not correct
    /// (401).
    InvalidCode,
    /// A sign-in waiting for its second step that is unknown, finished, expired or out of
    /// tries (401).
    SignInExpired,
    /// An OAuth 2.0 error of the token, revocation or userinfo endpoint (RFC 6749 §5.2):
    /// `invalid_client` is 401, the others 400.
    OAuth {
        error: &'static str,
        description: String,
    },
    /// `of`, of a request that came as an OAuth 2.0 form (`POST /auth/login`, `POST
    /// /auth/refresh`) and that no RFC 6749 code of its own answers (a throttle's block, the
    /// database out of reach): answered as `of` is (status, `Retry-After`, log), with the
    /// `error` member `error` beside it, which OAuth2 client libraries raise on. See
    /// [`Error::for_oauth2`].
    ForOAuth2 {
        error: &'static str,
        of: Box<Error>,
    },
    /// The body could not be read as the declared type (400).
    BadRequest(String),
    UnsupportedMediaType(String),
    PayloadTooLarge,
    /// Request headers larger than MiniAuth reads (431).
    HeadersTooLarge,
    /// Too many failed password checks (or sign-ups) from this client or for this account:
    /// blocked for `retry_after` more seconds (429).
    TooManyAttempts {
        retry_after: i64,
    },
    /// The database cannot be reached right now (503).
    Unavailable,
    /// The path exists but not with this method (405); holds the methods it takes.
    MethodNotAllowed(String),
    /// Any other status Rocket produced itself.
    Status(Status),
    /// A bug or an unexpected failure: the cause is logged, the client sees a bare 500.
    Internal(Cause),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Request headers (names and values) are read up to this many bytes in all.
pub const HEADERS_MAX: usize = 64 * 1024;

impl Error {
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(Arc::from(cause.into()))
    }

    /// Whether the database failed this request: out of reach, or an error of its own.
    pub fn is_database_failure(&self) -> bool {
        match self {
            Error::ForOAuth2 { of, .. } => of.is_database_failure(),
            Error::Unavailable => true,
            Error::Internal(cause) => cause.downcast_ref::<sqlx::Error>().is_some(),
            _ => false,
        }
    }

    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Error::Validation(FieldErrors::from([(field, vec![message.into()])]))
    }

    /// Seconds a client should wait before trying again (`Retry-After`), for the errors that
    /// pass: a throttle's block, a database that is briefly out of reach.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::ForOAuth2 { of, .. } => of.retry_after(),
            Error::TooManyAttempts { retry_after } => Some((*retry_after).max(1) as u64),
            Error::Unavailable => Some(5),
            _ => None,
        }
    }

    pub fn status(&self) -> Status {
        match self {
            Error::Validation(_) => Status::UnprocessableEntity,
            Error::UsernameTaken | Error::EmailTaken => Status::Conflict,
            Error::InvalidLink => Status::BadRequest,
            Error::InvalidCredentials
            | Error::Unauthenticated { .. }
            | Error::InvalidRefreshToken
            | Error::InvalidCode
            | Error::SignInExpired
            | Error::PasskeyRefused(_)
            | Error::CeremonyExpired => Status::Unauthorized,
            Error::Csrf
            | Error::WrongPassword(_)
            | Error::Forbidden(_)
            | Error::SecondFactorRequired { .. } => Status::Forbidden,
            Error::NotFound => Status::NotFound,
            Error::Conflict(_) => Status::Conflict,
            Error::BadRequest(_) => Status::BadRequest,
            Error::OAuth { error: "invalid_client", .. } => Status::Unauthorized,
            Error::OAuth { .. } => Status::BadRequest,
            Error::ForOAuth2 { of, .. } => of.status(),
            Error::UnsupportedMediaType(_) => Status::UnsupportedMediaType,
            Error::PayloadTooLarge => Status::PayloadTooLarge,
            Error::HeadersTooLarge => Status::RequestHeaderFieldsTooLarge,
            Error::TooManyAttempts { .. } => Status::TooManyRequests,
            Error::Unavailable => Status::ServiceUnavailable,
            Error::MethodNotAllowed(_) => Status::MethodNotAllowed,
            Error::Status(status) => *status,
            Error::Internal(_) => Status::InternalServerError,
        }
    }

    /// What went wrong, for the log or a command line: an internal error's cause and every
    /// cause beneath it (`a: b: c`); any other error's message.
    pub fn cause(&self) -> String {
        match self {
            Error::Internal(cause) => with_sources(&**cause),
            Error::ForOAuth2 { of, .. } => of.cause(),
            _ => self.detail(),
        }
    }

    /// The human-readable explanation sent to the client.
    pub fn detail(&self) -> String {
        match self {
            Error::Validation(_) => "One or more fields are invalid.".into(),
            Error::UsernameTaken => "This username is already taken.".into(),
            Error::EmailTaken => "Another account has confirmed this email address.".into(),
            Error::InvalidLink => "This link is invalid, already used or expired: ask for a new one.".into(),
            Error::InvalidCredentials => "Invalid username or password.".into(),
            Error::Unauthenticated { invalid_token: false } => "Authentication is required.".into(),
            Error::Unauthenticated { invalid_token: true } => {
                "The access token is invalid, expired or revoked.".into()
            }
            Error::WrongPassword(_) => "The password is not correct.".into(),
            Error::InvalidRefreshToken => {
                "The refresh token is invalid, used or revoked: sign in again.".into()
            }
            Error::Csrf => "The form is missing a valid CSRF token: reload the page and try again.".into(),
            Error::NotFound => "There is nothing at this address.".into(),
            Error::OAuth { description, .. } => description.clone(),
            Error::ForOAuth2 { of, .. } => of.detail(),
            Error::BadRequest(detail)
            | Error::UnsupportedMediaType(detail)
            | Error::Forbidden(detail)
            | Error::Conflict(detail) => detail.clone(),
            Error::SecondFactorRequired { .. } => {
                "The password is right; now a second factor finishes the sign-in (POST \
                 /auth/login/second-factor with this mfa_token, within 5 minutes): a code of your \
                 authenticator app, a recovery code, or a passkey, as `methods` lists."
                    .into()
            }
            Error::PasskeyRefused(why) => format!("The passkey was not accepted: {why}."),
            Error::CeremonyExpired => {
                "This passkey request is unknown, was answered already, or has expired: start again.".into()
            }
            Error::InvalidCode => "The code is not correct.".into(),
            Error::SignInExpired => {
                "This sign-in has expired, was finished, or had too many wrong codes: sign in again.".into()
            }
            Error::PayloadTooLarge => "The request body is too large.".into(),
            Error::HeadersTooLarge => {
                format!("The request headers are too large: at most {} KiB in all.", HEADERS_MAX / 1024)
            }
            Error::TooManyAttempts { retry_after } => {
                format!("Too many attempts: try again in {}.", duration(*retry_after))
            }
            Error::Unavailable => "The service is temporarily unavailable: try again shortly.".into(),
            Error::MethodNotAllowed(allow) => format!("This address accepts only: {allow}."),
            Error::Status(status) => match status.code {
                422 => "The request body is missing fields or has fields of the wrong type.".into(),
                _ => status.reason_lossy().to_string(),
            },
            Error::Internal(_) => "Something went wrong on our side.".into(),
        }
    }

    /// This error as an OAuth2 client library reads it (RFC 6749 §5.2), for a request that came
    /// as an OAuth 2.0 form: a wrong password or a refresh token unknown, spent or revoked is
    /// `invalid_grant`, a field missing or a form unreadable `invalid_request` (400 each; a body
    /// too large keeps its `413`); a throttled client keeps its `429` and `Retry-After` with
    /// `slow_down` (the code RFC 8628 gives a client that must wait), the database out of reach
    /// its `503` with `temporarily_unavailable`, anything else of the server's `server_error`. An
    /// OAuth error already, and a sign-in that waits for its second factor (`mfa_required`),
    /// stay as they are.
    pub fn for_oauth2(self) -> Error {
        let error = match &self {
            Error::OAuth { .. } | Error::ForOAuth2 { .. } | Error::SecondFactorRequired { .. } => {
                return self
            }
            Error::InvalidCredentials | Error::InvalidRefreshToken | Error::BadRequest(_) => {
                let error =
                    if matches!(self, Error::BadRequest(_)) { "invalid_request" } else { "invalid_grant" };
                return Error::OAuth { error, description: self.detail() };
            }
            Error::Validation(fields) => {
                let messages = fields.iter().flat_map(|(field, messages)| {
                    messages.iter().map(move |message| format!("{field}: {message}"))
                });
                let description = messages.collect::<Vec<_>>().join(" ");
                return Error::OAuth { error: "invalid_request", description };
            }
            Error::TooManyAttempts { .. } => "slow_down",
            Error::Unavailable => "temporarily_unavailable",
            e if e.status().code >= 500 => "server_error",
            _ => "invalid_request",
        };
        Error::ForOAuth2 { error, of: Box::new(self) }
    }

    /// The messages per field this error carries: a problem's `errors`, and what a form shows
    /// again beside its fields.
    pub fn field_errors(&self) -> Option<FieldErrors> {
        match self {
            Error::Validation(errors) => Some(errors.clone()),
            Error::WrongPassword(field) => Some([(*field, vec![self.detail()])].into()),
            Error::UsernameTaken => Some([("username", vec![self.detail()])].into()),
            _ => None,
        }
    }

    /// Keeps this error for the catcher (Rocket passes only the status on) and gives what a
    /// failing request or data guard returns.
    pub fn stash(self, req: &Request<'_>) -> (Status, Error) {
        let status = self.status();
        req.local_cache(|| GuardError(Some(self.clone())));
        (status, self)
    }
}

/// A span of time as people say it: `45 seconds`, `1 minute`, `15 minutes`, `24 hours`
/// (rounded up).
pub fn duration(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match seconds {
        ..=59 => plural(seconds.max(1), "second"),
        60..=7199 => plural((seconds + 59) / 60, "minute"),
        _ => plural((seconds + 3599) / 3600, "hour"),
    }
}

/// An error a guard failed with, kept in the request for the catcher.
pub struct GuardError(pub Option<Error>);

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => {
                log::warn!("database unavailable: {e}");
                Error::Unavailable
            }
            e => Error::internal(e),
        }
    }
}

/// An error and every cause beneath it, for the log: `a: b: c`.
pub fn with_sources(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text += &format!(": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn a_wait_reads_in_seconds_then_whole_minutes_rounded_up() {
        assert_eq!(duration(0), "1 second");
        assert_eq!(duration(45), "45 seconds");
        assert_eq!(duration(60), "1 minute");
        assert_eq!(duration(61), "2 minutes");
        assert_eq!(duration(900), "15 minutes");
        assert_eq!(duration(1800), "30 minutes");
        assert_eq!(duration(86_400), "24 hours");
    }
}
