//! The one error type of MiniAuth and how it is answered: RFC 9457 problem+json on the API, a
//! friendly page (or the sign-in redirect) in the browser. Internal causes are logged, never sent.

use std::collections::BTreeMap;
use std::io::Cursor;

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Redirect, Responder, Response};
use rocket::serde::json::serde_json;
use rocket_dyn_templates::{context, Template};
use serde::Serialize;
use utoipa::ToSchema;

/// Messages per field, as in `errors: {field: [message, …]}`.
pub type FieldErrors = BTreeMap<&'static str, Vec<String>>;

#[derive(Debug, Clone)]
pub enum Error {
    /// One or more fields broke a rule (422).
    Validation(FieldErrors),
    /// The username is taken, compared case-insensitively (409).
    UsernameTaken,
    /// Unknown username or wrong password: one answer for both (401).
    InvalidCredentials,
    /// No credentials, or credentials that are not (or no longer) valid (401).
    Unauthenticated {
        invalid_token: bool,
    },
    /// The password given to confirm an account change is not the account's (403); names the
    /// form field it came from.
    WrongPassword(&'static str),
    /// A refresh token that is unknown, used up, or of a session that ended (401).
    InvalidRefreshToken,
    /// A state-changing request without a valid CSRF token (403).
    Csrf,
    /// The body could not be read as the declared type (400).
    BadRequest(String),
    UnsupportedMediaType(String),
    PayloadTooLarge,
    /// The database cannot be reached right now (503).
    Unavailable,
    /// The path exists but not with this method (405); holds the `Allow` header's value.
    MethodNotAllowed(String),
    /// Any other status Rocket produced itself (404, …).
    Status(Status),
    /// A bug or an unexpected failure; the cause is logged, the client sees a generic 500.
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error::Internal(cause.to_string())
    }

    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Error::Validation(FieldErrors::from([(field, vec![message.into()])]))
    }

    pub fn status(&self) -> Status {
        match self {
            Error::Validation(_) => Status::UnprocessableEntity,
            Error::UsernameTaken => Status::Conflict,
            Error::InvalidCredentials | Error::Unauthenticated { .. } | Error::InvalidRefreshToken => {
                Status::Unauthorized
            }
            Error::Csrf | Error::WrongPassword(_) => Status::Forbidden,
            Error::BadRequest(_) => Status::BadRequest,
            Error::UnsupportedMediaType(_) => Status::UnsupportedMediaType,
            Error::PayloadTooLarge => Status::PayloadTooLarge,
            Error::Unavailable => Status::ServiceUnavailable,
            Error::MethodNotAllowed(_) => Status::MethodNotAllowed,
            Error::Status(status) => *status,
            Error::Internal(_) => Status::InternalServerError,
        }
    }

    /// The human-readable explanation sent to the client.
    pub fn detail(&self) -> String {
        match self {
            Error::Validation(_) => "One or more fields are invalid.".into(),
            Error::UsernameTaken => "This username is already taken.".into(),
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
            Error::BadRequest(detail) | Error::UnsupportedMediaType(detail) => detail.clone(),
            Error::PayloadTooLarge => "The request body is too large.".into(),
            Error::Unavailable => "The service is temporarily unavailable: try again shortly.".into(),
            Error::MethodNotAllowed(allow) => format!("This address accepts only: {allow}."),
            Error::Status(status) => match status.code {
                404 => "There is nothing at this address.".into(),
                422 => "The request body is missing fields or has fields of the wrong type.".into(),
                _ => status.reason_lossy().to_string(),
            },
            Error::Internal(_) => "Something went wrong on our side.".into(),
        }
    }

    /// The messages per field this error carries: a problem's `errors`, and what a form shows
    /// again beside its fields.
    pub fn field_errors(&self) -> Option<FieldErrors> {
        match self {
            Error::Validation(errors) => Some(errors.clone()),
            Error::WrongPassword(field) => Some([(*field, vec![self.detail()])].into()),
            _ => None,
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            kind: "about:blank".into(),
            title: status.reason_lossy().to_string(),
            status: status.code,
            detail: self.detail(),
            errors: self.field_errors(),
        }
    }
}

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
            e => Error::internal(format!("database: {e}")),
        }
    }
}

/// An RFC 9457 problem details document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status and `title` say what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For validation errors: messages per field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, Vec<String>>>)]
    pub errors: Option<FieldErrors>,
}

impl<'r> Responder<'r, 'static> for Problem {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let body = serde_json::to_vec(&self).map_err(|_| Status::InternalServerError)?;
        Response::build()
            .status(Status::new(self.status))
            .header(ContentType::new("application", "problem+json"))
            .header(Header::new("Cache-Control", "no-store"))
            .sized_body(body.len(), Cursor::new(body))
            .ok()
    }
}

/// Whether the client should get JSON rather than a page: the API and operations paths, and
/// any request whose `Accept` prefers JSON.
pub fn wants_json(req: &Request<'_>) -> bool {
    let path = req.uri().path();
    if path == "/auth"
        || path.starts_with("/auth/")
        || ["/openapi.json", "/healthz", "/readyz"].contains(&path.as_str())
    {
        return true;
    }
    req.accept().is_some_and(|accept| {
        let media = accept.preferred().media_type();
        media.is_json() || media.sub().as_str().ends_with("+json")
    })
}

impl<'r> Responder<'r, 'static> for Error {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        if let Error::Internal(cause) = &self {
            log::error!("{} {}: internal error: {cause}", req.method(), req.uri().path());
        }
        let json = wants_json(req);
        let mut response = match &self {
            _ if json => self.problem().respond_to(req)?,
            Error::Unauthenticated { .. } => {
                return Redirect::to(crate::auth::login_redirect(req)).respond_to(req)
            }
            _ => {
                let status = self.status();
                let detail = self.detail();
                let page = context! { status: status.code, title: status.reason_lossy(), detail };
                Response::build_from(Template::render("error", page).respond_to(req)?)
                    .status(status)
                    .finalize()
            }
        };
        match self {
            Error::Unauthenticated { invalid_token } => {
                let challenge = if invalid_token { r#"Bearer error="invalid_token""# } else { "Bearer" };
                response.set_header(Header::new("WWW-Authenticate", challenge));
            }
            Error::MethodNotAllowed(allow) => {
                response.set_header(Header::new("Allow", allow));
            }
            Error::Unavailable => {
                response.set_header(Header::new("Retry-After", "5"));
            }
            _ => {}
        }
        Ok(response)
    }
}

/// An error a guard failed with, kept for the catcher (Rocket passes only the status on).
pub struct GuardError(pub Option<Error>);

impl Error {
    /// Remembers this error for the catcher and returns the status to fail the guard with.
    pub fn stash(self, req: &Request<'_>) -> (Status, Error) {
        let status = self.status();
        req.local_cache(|| GuardError(Some(self.clone())));
        (status, self)
    }
}

/// Answers every error status, whether Rocket or a guard produced it.
#[rocket::catch(default)]
pub fn catch_all(status: Status, req: &Request<'_>) -> Error {
    match &req.local_cache(|| GuardError(None)).0 {
        Some(error) if error.status() == status => error.clone(),
        _ => match status.code {
            // A request Rocket could not parse reaches the catchers without ever being routed:
            // chiefly a method it does not know (e.g. `QUERY`), which is a 405 on a known path.
            400 if req.route().is_none() => match allowed_methods(req) {
                allow if allow.is_empty() => Error::BadRequest("The request could not be understood.".into()),
                allow => Error::MethodNotAllowed(allow),
            },
            400 => Error::BadRequest("The request could not be understood.".into()),
            413 => Error::PayloadTooLarge,
            404 => match allowed_methods(req) {
                allow if allow.is_empty() => Error::Status(status),
                allow => Error::MethodNotAllowed(allow),
            },
            415 => Error::UnsupportedMediaType("Unsupported content type.".into()),
            500 => Error::internal("a handler failed or panicked"),
            503 => Error::Unavailable,
            _ => Error::Status(status),
        },
    }
}

/// The methods routed at this path, e.g. `POST` for `GET /auth/login` (Rocket itself answers
/// 404 when only the method is wrong). A `<param>` segment matches any one segment, and a
/// trailing `<param..>` the rest of the path.
fn allowed_methods(req: &Request<'_>) -> String {
    let path: Vec<&str> = req.uri().path().segments().collect();
    let mut methods: Vec<&str> = req
        .rocket()
        .routes()
        .filter(|route| route_matches(route.uri.path(), &path))
        .map(|route| route.method.as_str())
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods.join(", ")
}

fn route_matches(route: &str, path: &[&str]) -> bool {
    let route: Vec<&str> = route.split('/').filter(|segment| !segment.is_empty()).collect();
    if route.last().is_some_and(|last| last.ends_with("..>")) {
        let fixed = &route[..route.len() - 1];
        return path.len() >= fixed.len() && segments_match(fixed, &path[..fixed.len()]);
    }
    route.len() == path.len() && segments_match(&route, path)
}

fn segments_match(route: &[&str], path: &[&str]) -> bool {
    route.iter().zip(path).all(|(expected, given)| expected.starts_with('<') || expected == given)
}

#[cfg(test)]
mod tests {
    use super::route_matches;

    #[test]
    fn a_route_pattern_matches_the_paths_it_serves() {
        assert!(route_matches("/auth/login", &["auth", "login"]));
        assert!(route_matches("/auth/sessions/<id>", &["auth", "sessions", "0"]));
        assert!(route_matches("/docs/<_..>", &["docs", "swagger-ui.css"]));
        assert!(route_matches("/docs/<_..>", &["docs"]));
        assert!(!route_matches("/auth/sessions/<id>", &["auth", "sessions"]));
        assert!(!route_matches("/auth/login", &["auth", "logout"]));
    }
}
