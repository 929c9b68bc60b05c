//! Request guards. `ApiUser` takes a bearer token or the cookie and fails with 401; `PageUser`
//! takes the cookie, renews an expired access token from its live session, and sends the
//! visitor to sign in. Both check signature, algorithm, `exp`, `iss`, `aud`, and then that the
//! session is live and the user exists (`auth::Accounts::user_of_token`): a revoked session is
//! rejected at once.

use std::ops::Deref;

use rocket::http::{Method, RawStr};
use rocket::request::{FromRequest, Outcome, Request};

use super::{
    client_address, cookies, state, CsrfToken, SessionCookies, CSRF_HEADER, REFRESH_COOKIE, TOKEN_COOKIE,
};
use crate::auth::{Accounts, Client, CsrfKey, SignedInUser};
use crate::error::Error;

/// A user authenticated for the JSON API (by a bearer token, or by the cookie and the CSRF
/// header on a state-changing call).
pub struct ApiUser(pub SignedInUser);

/// A signed-in person on a page (by the cookie, renewed when it expired).
pub struct PageUser(pub SignedInUser);

/// The visitor a reverse proxy asks about (forward auth): by a bearer token, or else by the
/// cookie. An `Authorization` header of another scheme belongs to the app behind the proxy.
pub struct ForwardedUser(pub SignedInUser);

/// The bearer token an app presents to an OpenID Connect endpoint (userinfo): required.
pub struct AppToken(pub String);

/// An app's `Authorization: Basic` header (client_secret_basic): its id and secret, each
/// form-decoded (RFC 6749 §2.3.1); `None` without one. A header of another scheme, or one that
/// cannot be read, fails the client's authentication.
pub struct BasicClient(pub Option<(String, String)>);

impl BasicClient {
    fn parse(req: &Request<'_>) -> Result<Self, Error> {
        use base64::Engine;
        let Some(header) = req.headers().get_one("Authorization") else {
            return Ok(BasicClient(None));
        };
        let failed = || Error::OAuth {
            error: "invalid_client",
            description: "The Authorization header is not a client's Basic credentials.".into(),
        };
        let encoded = match header.split_once(' ') {
            Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => encoded.trim(),
            _ => return Err(failed()),
        };
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| failed())?;
        let text = String::from_utf8(decoded).map_err(|_| failed())?;
        let (id, secret) = text.split_once(':').ok_or_else(failed)?;
        let decode =
            |part: &str| RawStr::new(part).url_decode().map(|text| text.into_owned()).map_err(|_| failed());
        Ok(BasicClient(Some((decode(id)?, decode(secret)?))))
    }
}

/// The token of an `Authorization: Bearer` header; `Err` for a header of another scheme.
fn bearer_token(req: &Request<'_>) -> Option<Result<String, ()>> {
    let header = req.headers().get_one("Authorization")?;
    Some(match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim().to_owned()),
        _ => Err(()),
    })
}

/// The access token the cookie carries.
fn cookie_token(req: &Request<'_>) -> Result<String, Error> {
    let cookie = req.cookies().get(TOKEN_COOKIE).ok_or(Error::Unauthenticated { invalid_token: false })?;
    Ok(cookie.value().to_owned())
}

impl ApiUser {
    async fn authenticate(req: &Request<'_>) -> Result<Self, Error> {
        let accounts = state::<Accounts>(req)?;
        let (token, by_cookie) = match bearer_token(req) {
            Some(Ok(token)) => (token, false),
            Some(Err(())) => return Err(Error::Unauthenticated { invalid_token: false }),
            None => (cookie_token(req)?, true),
        };
        let user = accounts.user_of_token(&token, by_cookie).await?;
        // A cookie is sent by the browser on its own: a state-changing call it authenticates
        // must also prove it comes from our pages.
        if by_cookie && !matches!(req.method(), Method::Get | Method::Head | Method::Options) {
            let csrf = req.guard::<CsrfToken>().await.succeeded().ok_or(Error::Csrf)?;
            csrf.verify(req.headers().get_one(CSRF_HEADER).unwrap_or_default(), state::<CsrfKey>(req)?)?;
        }
        Ok(ApiUser(user))
    }
}

impl ForwardedUser {
    async fn authenticate(req: &Request<'_>) -> Result<Self, Error> {
        let accounts = state::<Accounts>(req)?;
        let user = match bearer_token(req) {
            Some(Ok(token)) => accounts.user_of_token(&token, false).await?,
            _ => accounts.user_of_session_cookie(&cookie_token(req)?).await?,
        };
        Ok(ForwardedUser(user))
    }
}

impl PageUser {
    async fn authenticate(req: &Request<'_>) -> Result<Self, Error> {
        let accounts = state::<Accounts>(req)?;
        let access = req.cookies().get(TOKEN_COOKIE).map(|c| c.value().to_owned());
        let verified =
            access.as_deref().and_then(|token| accounts.tokens().verify(token, crate::store::now()));
        if let Some(claims) = verified {
            return Ok(PageUser(accounts.user_of_claims(claims, true).await?));
        }
        // No usable access token (it lives minutes): the refresh cookie renews both, rotating,
        // for as long as the session lives, so a person stays signed in without noticing.
        let refresh = req.cookies().get(REFRESH_COOKIE).map(|c| c.value().to_owned());
        let refresh = refresh.ok_or(Error::Unauthenticated { invalid_token: access.is_some() })?;
        let (user, issued) = accounts.renew(&refresh, &client_of(req)).await?;
        state::<SessionCookies>(req)?.set(req.cookies(), issued);
        Ok(PageUser(user))
    }
}

impl Deref for ApiUser {
    type Target = SignedInUser;

    fn deref(&self) -> &SignedInUser {
        &self.0
    }
}

impl Deref for PageUser {
    type Target = SignedInUser;

    fn deref(&self) -> &SignedInUser {
        &self.0
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ApiUser {
    type Error = Error;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Error> {
        match ApiUser::authenticate(req).await {
            Ok(user) => Outcome::Success(user),
            Err(e) => Outcome::Error(e.stash(req)),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ForwardedUser {
    type Error = Error;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Error> {
        match ForwardedUser::authenticate(req).await {
            Ok(user) => Outcome::Success(user),
            Err(e) => Outcome::Error(e.stash(req)),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for PageUser {
    type Error = Error;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Error> {
        match PageUser::authenticate(req).await {
            Ok(user) => Outcome::Success(user),
            Err(e) => Outcome::Error(e.stash(req)),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AppToken {
    type Error = Error;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Error> {
        match bearer_token(req) {
            Some(Ok(token)) if !token.is_empty() => Outcome::Success(AppToken(token)),
            Some(_) => Outcome::Error(Error::Unauthenticated { invalid_token: true }.stash(req)),
            None => Outcome::Error(Error::Unauthenticated { invalid_token: false }.stash(req)),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for BasicClient {
    type Error = Error;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Error> {
        match BasicClient::parse(req) {
            Ok(client) => Outcome::Success(client),
            Err(e) => Outcome::Error(e.stash(req)),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Client {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(client_of(req))
    }
}

/// Who sent the request: its address as counted, its `User-Agent` (shortened) and its device
/// tokens.
fn client_of(req: &Request<'_>) -> Client {
    let agent = req.headers().get_one("User-Agent").unwrap_or_default();
    Client {
        address: client_address(req),
        user_agent: agent.chars().take(256).collect(),
        device_tokens: cookies::device_tokens(req.cookies()),
    }
}
