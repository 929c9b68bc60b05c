//! Forward auth: the two endpoints a reverse proxy asks before each request to an app it
//! protects. `/authz/forward-auth` reads Traefik's and Caddy's `X-Forwarded-*` headers;
//! `/authz/auth-request` reads the `X-Original-*` headers of an nginx `auth_request`. Both
//! answer only the proxies in `trusted_proxies`; the decision itself is `auth::ForwardAuth`'s.

use rocket::http::{Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::State;

use crate::auth::{Decision, ForwardAuth, Original, TrustedProxies};
use crate::domain::User;
use crate::error::Error;
use crate::web::{peer, state, ForwardedUser};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![forward_auth, auth_request]
}

/// The request a proxy asks about, from Traefik's and Caddy's headers.
pub struct Forwarded(Original);

/// The request a proxy asks about, from nginx's `X-Original-URL` and `X-Original-Method`.
pub struct OriginalUrl(Original);

/// The original request, read from the headers of a trusted proxy by `read`; a question from
/// anyone else is refused before anything else is looked at.
fn asked(
    req: &Request<'_>,
    read: impl FnOnce(&dyn Fn(&str) -> Result<String, String>) -> Result<(String, String), String>,
) -> Result<Original, Error> {
    if !state::<TrustedProxies>(req)?.trusts(peer(req)) {
        return Err(Error::Forbidden(
            "Forward auth answers only the reverse proxies listed in trusted_proxies.".into(),
        ));
    }
    let header = |name: &str| match req.headers().get_one(name).map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value.to_owned()),
        _ => Err(format!("The proxy sent no {name} header.")),
    };
    let (method, url) = read(&header).map_err(Error::BadRequest)?;
    let accept = req.headers().get_one("Accept");
    Original::new(&method, &url, accept).map_err(|e| Error::BadRequest(format!("The original request: {e}.")))
}

fn outcome<T>(
    req: &Request<'_>,
    asked: Result<Original, Error>,
    wrap: fn(Original) -> T,
) -> Outcome<T, Error> {
    match asked {
        Ok(original) => Outcome::Success(wrap(original)),
        Err(e) => Outcome::Error(e.stash(req)),
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Forwarded {
    type Error = Error;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Error> {
        let original = asked(req, |header| {
            let (proto, host, uri) =
                (header("X-Forwarded-Proto")?, header("X-Forwarded-Host")?, header("X-Forwarded-Uri")?);
            // The path as routed: anything else (`@other.host/`) would move the host.
            if !uri.starts_with('/') {
                return Err(format!("X-Forwarded-Uri must be a path starting with /, not {uri:?}."));
            }
            let url = format!("{proto}://{host}{uri}");
            Ok((header("X-Forwarded-Method")?, url))
        });
        outcome(req, original, Forwarded)
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for OriginalUrl {
    type Error = Error;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Error> {
        let original = asked(req, |header| Ok((header("X-Original-Method")?, header("X-Original-URL")?)));
        outcome(req, original, OriginalUrl)
    }
}

/// A decision that is not an error.
pub enum Answer {
    /// Pass, naming the user to the app (`Remote-User`, `Remote-User-Id`) with their groups
    /// as they are now (`Remote-Groups`, comma-separated; empty for none, and sent all the
    /// same: Caddy 2.6 copies a header missing from the answer as its placeholder's text).
    Allow(User),
    /// Send the browser to sign in: `302` (the proxy passes it on), or `401` with `Location`
    /// (nginx passes on only 2xx, 401 and 403: its configuration turns this into the redirect).
    SignIn { status: Status, location: String },
}

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        match self {
            Answer::Allow(user) => Response::build()
                .header(Header::new("Remote-User", user.username))
                .header(Header::new("Remote-User-Id", user.id.to_string()))
                .header(Header::new("Remote-Groups", user.groups.join(",")))
                .ok(),
            Answer::SignIn { status, location } => {
                Response::build().status(status).header(Header::new("Location", location)).ok()
            }
        }
    }
}

fn answer(
    forward: &ForwardAuth,
    original: &Original,
    user: Result<ForwardedUser, Error>,
    sign_in: Status,
) -> Result<Answer, Error> {
    let user = match user {
        Ok(ForwardedUser(signed_in)) => Ok((signed_in.user, signed_in.methods)),
        Err(Error::Unauthenticated { invalid_token }) => Err(invalid_token),
        Err(other) => return Err(other),
    };
    match forward.decide(original, user.as_ref().map(|(user, methods)| (user, *methods)).map_err(|bad| *bad))
    {
        Decision::Allow => {
            user.map(|(user, _)| Answer::Allow(user)).map_err(|_| Error::internal("allowed nobody"))
        }
        Decision::Forbid(why) => Err(Error::Forbidden(why)),
        Decision::SignIn(location) => Ok(Answer::SignIn { status: sign_in, location }),
        Decision::Challenge { invalid_token } => Err(Error::Unauthenticated { invalid_token }),
    }
}

/// Traefik `ForwardAuth`, Caddy `forward_auth`: a signed-out browser gets `302` to sign in.
#[rocket::get("/authz/forward-auth")]
pub fn forward_auth(
    asked: Forwarded,
    user: Result<ForwardedUser, Error>,
    forward: &State<ForwardAuth>,
) -> Result<Answer, Error> {
    answer(forward, &asked.0, user, Status::Found)
}

/// nginx `auth_request`: a signed-out browser gets `401` with the sign-in address in `Location`.
#[rocket::get("/authz/auth-request")]
pub fn auth_request(
    asked: OriginalUrl,
    user: Result<ForwardedUser, Error>,
    forward: &State<ForwardAuth>,
) -> Result<Answer, Error> {
    answer(forward, &asked.0, user, Status::Unauthorized)
}
