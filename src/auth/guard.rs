//! Request guards. `ApiUser` takes a bearer token or the cookie and fails with 401; `PageUser`
//! takes the cookie, renews an expired access token from its live session, and sends the
//! visitor to sign in. Both check signature, algorithm, `exp`, `iss`, `aud`, and then that the
//! session is live and the user exists: a revoked session is rejected at once.

use rocket::http::Method;
use rocket::request::{FromRequest, Outcome, Request};
use rocket_db_pools::Database;

use super::{accounts, AuthService, Claims, CsrfToken, CSRF_HEADER, REFRESH_COOKIE, TOKEN_COOKIE};
use crate::error::Error;
use crate::store::{self, users::User, Db};

/// A user authenticated for the JSON API.
pub struct ApiUser {
    pub user: User,
    pub session_id: String,
    /// Authenticated by the browser cookie rather than a bearer header.
    pub by_cookie: bool,
}

/// A signed-in person on a page.
pub struct PageUser {
    pub user: User,
    pub session_id: String,
}

/// The client's `User-Agent`, shortened, for the session list.
pub struct UserAgent(pub String);

const INVALID: Error = Error::Unauthenticated { invalid_token: true };

/// Checks the claims against the database: the session must be live and belong to the user.
async fn live_user(req: &Request<'_>, claims: &Claims) -> Result<User, Error> {
    let db = Db::fetch(req.rocket()).ok_or_else(|| Error::internal("database pool missing"))?;
    let user_id = claims.user_id().ok_or(INVALID)?;
    db.sessions.find_live(&claims.sid, user_id).await?.ok_or(INVALID)
}

fn service<'r>(req: &'r Request<'_>) -> Result<&'r AuthService, Error> {
    req.rocket().state::<AuthService>().ok_or_else(|| Error::internal("auth service missing"))
}

impl ApiUser {
    async fn authenticate(req: &Request<'_>) -> Result<Self, Error> {
        let auth = service(req)?;
        let (token, by_cookie) = match req.headers().get_one("Authorization") {
            Some(header) => match header.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    (token.trim().to_owned(), false)
                }
                _ => return Err(Error::Unauthenticated { invalid_token: false }),
            },
            None => match req.cookies().get(TOKEN_COOKIE) {
                Some(cookie) => (cookie.value().to_owned(), true),
                None => return Err(Error::Unauthenticated { invalid_token: false }),
            },
        };
        let claims = auth.tokens.verify(&token).ok_or(INVALID)?;
        let user = live_user(req, &claims).await?;
        // A cookie is sent by the browser on its own: a state-changing call it authenticates
        // must also prove it comes from our pages.
        if by_cookie && !matches!(req.method(), Method::Get | Method::Head | Method::Options) {
            let csrf = req.guard::<CsrfToken>().await.succeeded().ok_or(Error::Csrf)?;
            csrf.verify(req.headers().get_one(CSRF_HEADER).unwrap_or_default(), &auth.csrf)?;
        }
        Ok(ApiUser { user, session_id: claims.sid, by_cookie })
    }
}

impl PageUser {
    async fn authenticate(req: &Request<'_>) -> Result<Self, Error> {
        let auth = service(req)?;
        let access = req.cookies().get(TOKEN_COOKIE).map(|c| c.value().to_owned());
        if let Some(claims) = access.as_deref().and_then(|token| auth.tokens.verify(token)) {
            let user = live_user(req, &claims).await?;
            return Ok(PageUser { user, session_id: claims.sid });
        }
        // No usable access token (it lives minutes): the refresh cookie renews both, rotating,
        // for as long as the session lives, so a person stays signed in without noticing.
        let refresh = req.cookies().get(REFRESH_COOKIE).map(|c| c.value().to_owned());
        let refresh = refresh.ok_or(Error::Unauthenticated { invalid_token: access.is_some() })?;
        let db = Db::fetch(req.rocket()).ok_or_else(|| Error::internal("database pool missing"))?;
        let renewed = match accounts::refresh(db, auth, &refresh).await {
            Err(Error::InvalidRefreshToken) => return Err(INVALID),
            other => other?,
        };
        let user = db.sessions.find_live(&renewed.session_id, renewed.user_id).await?.ok_or(INVALID)?;
        let max_age = renewed.session_ends - store::now();
        auth.set_cookies(req.cookies(), renewed.access_token, renewed.refresh_token, max_age);
        Ok(PageUser { user, session_id: renewed.session_id })
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
impl<'r> FromRequest<'r> for UserAgent {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let agent = req.headers().get_one("User-Agent").unwrap_or_default();
        Outcome::Success(UserAgent(agent.chars().take(256).collect()))
    }
}
