//! How an [`Error`] is answered: RFC 9457 problem+json on the API, a friendly page (or the
//! sign-in redirect) in the browser; and the catcher that gives every status Rocket produces
//! itself — 404, 405 for a known path with another method, 413, … — the same answers.
//! Internal causes are logged here, never sent.

use std::io::Cursor;

use rocket::http::{ContentType, Header, Method, RawStr, Status};
use rocket::request::Request;
use rocket::response::{self, Redirect, Responder, Response};
use rocket::serde::json::serde_json;
use rocket_dyn_templates::{context, Template};
use serde::Serialize;
use utoipa::ToSchema;

use super::views::safe_next;
use crate::error::{Error, FieldErrors, GuardError};
use crate::metrics::Metrics;

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
    #[schema(value_type = Option<std::collections::BTreeMap<String, Vec<String>>>)]
    pub errors: Option<FieldErrors>,
    /// The RFC 6749 error code, as OAuth2 clients read it: `mfa_required` when a sign-in needs
    /// its second step; `invalid_grant`, `invalid_client`, … from the OpenID Connect endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// Beside an OpenID Connect endpoint's `error`: what went wrong (RFC 6749 §5.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// When a sign-in needs its second step: the token that finishes it at
    /// `POST /auth/login/second-factor` (single use, 5 minutes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
    /// When a sign-in needs its second step: what the user can finish it with, among `totp`,
    /// `recovery_code` and `passkey`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<&'static str>>,
    /// When `methods` lists `passkey`: the ceremony a passkey answers, and the options for
    /// `navigator.credentials.get()` (`PublicKeyCredentialRequestOptionsJSON`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceremony: Option<String>,
    #[serde(rename = "publicKey", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub public_key: Option<serde_json::Value>,
}

impl From<&Error> for Problem {
    fn from(error: &Error) -> Self {
        let status = error.status();
        let mut problem = Problem {
            kind: "about:blank".into(),
            title: status.reason_lossy().to_string(),
            status: status.code,
            detail: error.detail(),
            errors: error.field_errors(),
            error: None,
            error_description: None,
            mfa_token: None,
            methods: None,
            ceremony: None,
            public_key: None,
        };
        if let Error::OAuth { error, description } = error {
            problem.error = Some(error);
            problem.error_description = Some(description.clone());
        }
        if let Error::ForOAuth2 { error, of } = error {
            problem.error = Some(error);
            problem.error_description = Some(of.detail());
        }
        if let Error::SecondFactorRequired { mfa_token, methods, passkey } = error {
            problem.error = Some("mfa_required");
            problem.mfa_token = Some(mfa_token.clone());
            problem.methods = Some(methods.clone());
            if let Some(challenge) = passkey {
                problem.ceremony = Some(challenge.ceremony.clone());
                problem.public_key = Some(challenge.public_key.clone());
            }
        }
        problem
    }
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

/// Whether a path is the JSON API's (`/auth` and below, and the OpenID Connect endpoints that
/// apps call rather than browsers visit).
pub fn is_api(path: &str) -> bool {
    path == "/auth"
        || path.starts_with("/auth/")
        || ["/oauth/token", "/oauth/userinfo", "/oauth/revoke"].contains(&path)
}

/// Whether the client should get JSON rather than a page: the API and operations paths, and
/// any request whose `Accept` prefers JSON.
fn wants_json(req: &Request<'_>) -> bool {
    let path = req.uri().path();
    if is_api(path.as_str()) || ["/openapi.json", "/healthz", "/readyz"].contains(&path.as_str()) {
        return true;
    }
    req.accept().is_some_and(|accept| {
        let media = accept.preferred().media_type();
        media.is_json() || media.sub().as_str().ends_with("+json")
    })
}

/// Where a signed-out visitor of a page is sent: the sign-in page, coming back afterwards.
fn login_redirect(req: &Request<'_>) -> String {
    let here = req.uri().to_string();
    match req.method() == Method::Get && here != "/" && safe_next(&here).is_some() {
        true => format!("/login?next={}", RawStr::new(&here).percent_encode()),
        false => "/login".into(),
    }
}

impl<'r> Responder<'r, 'static> for Error {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let internal = match &self {
            Error::ForOAuth2 { of, .. } => matches!(**of, Error::Internal(_)),
            error => matches!(error, Error::Internal(_)),
        };
        if internal {
            log::error!("{} {}: internal error: {}", req.method(), req.uri().path(), self.cause());
        }
        if self.is_database_failure() {
            if let Some(metrics) = req.rocket().state::<Metrics>() {
                metrics.database_error();
            }
        }
        let mut response = match &self {
            _ if wants_json(req) => Problem::from(&self).respond_to(req)?,
            // A proxy's question (forward auth) is answered, not redirected: the endpoint
            // itself decides who is sent to sign in.
            Error::Unauthenticated { .. } if !req.uri().path().starts_with("/authz/") => {
                return Redirect::to(login_redirect(req)).respond_to(req)
            }
            _ => {
                let status = self.status();
                let page =
                    context! { status: status.code, title: status.reason_lossy(), detail: self.detail() };
                Response::build_from(Template::render("error", page).respond_to(req)?)
                    .status(status)
                    .finalize()
            }
        };
        if let Some(seconds) = self.retry_after() {
            response.set_header(Header::new("Retry-After", seconds.to_string()));
        }
        match self {
            Error::Unauthenticated { invalid_token } => {
                let challenge = if invalid_token { r#"Bearer error="invalid_token""# } else { "Bearer" };
                response.set_header(Header::new("WWW-Authenticate", challenge));
            }
            Error::MethodNotAllowed(allow) => {
                response.set_header(Header::new("Allow", allow));
            }
            Error::OAuth { error: "invalid_client", .. } => {
                response.set_header(Header::new("WWW-Authenticate", r#"Basic realm="miniauth""#));
            }
            _ => {}
        }
        Ok(response)
    }
}

/// Answers every error status, whether Rocket or a guard produced it.
#[rocket::catch(default)]
pub fn catch_all(status: Status, req: &Request<'_>) -> Error {
    match &req.local_cache(|| GuardError(None)).0 {
        Some(error) if error.status() == status => error.clone(),
        // Refused by `HeaderLimit` and sent where no route is.
        Some(Error::HeadersTooLarge) => Error::HeadersTooLarge,
        _ => match status.code {
            // A request Rocket could not parse reaches the catchers without ever being routed:
            // chiefly a method it does not know (e.g. `QUERY`), which is a 405 on a known path.
            400 if req.route().is_none() => match allowed_methods(req) {
                allow if allow.is_empty() => Error::BadRequest("The request could not be understood.".into()),
                allow => Error::MethodNotAllowed(allow),
            },
            400 => Error::BadRequest("The request could not be understood.".into()),
            413 => Error::PayloadTooLarge,
            // Nothing at this path for any method: 404; a route for this very method that
            // found nothing (a missing static file): 404 too; only another method's route: 405.
            404 => match allowed_methods(req) {
                allow if allow.is_empty() || allows(&allow, req.method()) => Error::NotFound,
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

/// Whether a list of methods (as `allowed_methods` gives it) takes `method`; `HEAD` is served by
/// `GET`'s routes.
fn allows(allow: &str, method: Method) -> bool {
    let served = |name: &str| allow.split(", ").any(|m| m == name);
    served(method.as_str()) || (method == Method::Head && served("GET"))
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
