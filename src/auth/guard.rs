//! Request guards. `ApiUser` takes a bearer token or the cookie and fails with 401; `PageUser`
//! takes the cookie, renews an expired access token from its live session, and sends the
//! visitor to sign in. Both check signature, algorithm, `exp`, `iss`, `aud`, and then that the
//! session is live and the user exists: a revoked session is rejected at once.

use std::ops::Deref;

use rocket::http::Method;
use rocket::request::{FromRequest, Outcome, Request};
use rocket_db_pools::Database;

use super::{
    Accounts, AuthService, Claims, ClientAddress, CsrfToken, SignedInUser, CSRF_HEADER, REFRESH_COOKIE,
    TOKEN_COOKIE,
};
use crate::domain::User;
use crate::error::Error;
use crate::store::Db;

/// A user authenticated for the JSON API (by a bearer token, or by the cookie and the CSRF
/// header on a state-changing call).
pub struct ApiUser(pub SignedInUser);

/// A signed-in person on a page (by the cookie, renewed when it expired).
pub struct PageUser(pub SignedInUser);

/// The visitor a reverse proxy asks about (forward auth): by a bearer token, or else by the
/// cookie. An `Authorization` header of another scheme belongs to the app behind the proxy.
pub struct ForwardedUser(pub SignedInUser);

/// Who is asking: the client's address (as counted) and its `User-Agent` (shortened), recorded
/// with each new session, and the device tokens it holds (see [`super::DeviceKey`]): the
/// browser's cookie, to which an API client adds the one its login body carries.
pub struct Client {
    pub address: ClientAddress,
    pub user_agent: String,
    pub device_tokens: Vec<String>,
}

const INVALID: Error = Error::Unauthenticated { invalid_token: true };

/// Checks the claims against the database: the session must be live and belong to the user.
async fn live_user(req: &Request<'_>, session_id: &str, user_id: i64) -> Result<User, Error> {
    let db = Db::fetch(req.rocket()).ok_or_else(|| Error::internal("database pool missing"))?;
    db.sessions.find_live(session_id, user_id).await?.ok_or(INVALID)
}

fn service<'r>(req: &'r Request<'_>) -> Result<&'r AuthService, Error> {
    req.rocket().state::<AuthService>().ok_or_else(|| Error::internal("auth service missing"))
}

async fn signed_in(req: &Request<'_>, claims: Claims, by_cookie: bool) -> Result<SignedInUser, Error> {
    let user_id = claims.user_id().ok_or(INVALID)?;
    let user = live_user(req, &claims.sid, user_id).await?;
    Ok(SignedInUser { user, session_id: claims.sid, by_cookie })
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

/// The user of a token, by cookie or not.
async fn user_of(req: &Request<'_>, token: &str, by_cookie: bool) -> Result<SignedInUser, Error> {
    let claims = service(req)?.tokens.verify(token, crate::store::now()).ok_or(INVALID)?;
    signed_in(req, claims, by_cookie).await
}

impl ApiUser {
    async fn authenticate(req: &Request<'_>) -> Result<Self, Error> {
        let auth = service(req)?;
        let (token, by_cookie) = match bearer_token(req) {
            Some(Ok(token)) => (token, false),
            Some(Err(())) => return Err(Error::Unauthenticated { invalid_token: false }),
            None => (cookie_token(req)?, true),
        };
        let user = user_of(req, &token, by_cookie).await?;
        // A cookie is sent by the browser on its own: a state-changing call it authenticates
        // must also prove it comes from our pages.
        if by_cookie && !matches!(req.method(), Method::Get | Method::Head | Method::Options) {
            let csrf = req.guard::<CsrfToken>().await.succeeded().ok_or(Error::Csrf)?;
            csrf.verify(req.headers().get_one(CSRF_HEADER).unwrap_or_default(), &auth.csrf)?;
        }
        Ok(ApiUser(user))
    }
}

impl ForwardedUser {
    async fn authenticate(req: &Request<'_>) -> Result<Self, Error> {
        let user = match bearer_token(req) {
            Some(Ok(token)) => user_of(req, &token, false).await?,
            _ => user_of(req, &cookie_token(req)?, true).await?,
        };
        Ok(ForwardedUser(user))
    }
}

impl PageUser {
    async fn authenticate(req: &Request<'_>) -> Result<Self, Error> {
        let auth = service(req)?;
        let access = req.cookies().get(TOKEN_COOKIE).map(|c| c.value().to_owned());
        if let Some(claims) =
            access.as_deref().and_then(|token| auth.tokens.verify(token, crate::store::now()))
        {
            return Ok(PageUser(signed_in(req, claims, true).await?));
        }
        // No usable access token (it lives minutes): the refresh cookie renews both, rotating,
        // for as long as the session lives, so a person stays signed in without noticing.
        let refresh = req.cookies().get(REFRESH_COOKIE).map(|c| c.value().to_owned());
        let refresh = refresh.ok_or(Error::Unauthenticated { invalid_token: access.is_some() })?;
        let accounts = req.guard::<Accounts<'_>>().await.succeeded().ok_or(INVALID)?;
        let issued = match accounts.refresh(&refresh).await {
            Err(Error::InvalidRefreshToken) => return Err(INVALID),
            other => other?,
        };
        let user = live_user(req, &issued.session_id, issued.user_id).await?;
        let session_id = issued.session_id.clone();
        auth.set_cookies(req.cookies(), issued);
        Ok(PageUser(SignedInUser { user, session_id, by_cookie: true }))
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
impl<'r> FromRequest<'r> for Client {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let agent = req.headers().get_one("User-Agent").unwrap_or_default();
        Outcome::Success(Client {
            address: ClientAddress::of(req),
            user_agent: agent.chars().take(256).collect(),
            device_tokens: super::device::from_cookie(req.cookies()),
        })
    }
}
