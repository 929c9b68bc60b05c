//! Sign-up, sign-in and sign-out: the operations the pages and the API share.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sqlx::AnyPool;

use super::AuthService;
use crate::domain::{NewAccount, Username};
use crate::error::{Error, Result};
use crate::store::{self, sessions::NewSession, users::User};

/// A new session and the access token that proves it.
pub struct SignedIn {
    pub user: User,
    pub session_id: String,
    pub access_token: String,
}

pub async fn register(db: &AnyPool, auth: &AuthService, account: NewAccount) -> Result<User> {
    let hash = auth.hasher.hash(&account.password).await?;
    store::users::insert_user(db, &account.username, &hash, store::now()).await
}

/// Checks the credentials; unknown user and wrong password take the same time and give the
/// same error.
pub async fn sign_in(
    db: &AnyPool,
    auth: &AuthService,
    username: &str,
    password: &str,
    user_agent: &str,
) -> Result<SignedIn> {
    // A name that could never have been registered is not looked up (PostgreSQL, for one,
    // refuses NUL bytes in text); the dummy verification below still runs.
    let found = match Username::parse(username) {
        Ok(name) => store::users::find_credentials(db, name.as_str()).await?,
        Err(_) => None,
    };
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    match (auth.hasher.verify(password, hash.as_deref()).await?, user) {
        (true, Some(user)) => start_session(db, auth, user, user_agent).await,
        _ => Err(Error::InvalidCredentials),
    }
}

/// Opens a session for a user already proven, and issues its first access token.
pub async fn start_session(
    db: &AnyPool,
    auth: &AuthService,
    user: User,
    user_agent: &str,
) -> Result<SignedIn> {
    let mut id = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let session_id = URL_SAFE_NO_PAD.encode(id);
    let now = store::now();
    let session =
        NewSession { id: &session_id, user_id: user.id, now, expires_at: now + auth.session_ttl, user_agent };
    store::sessions::insert_session(db, session).await?;
    let access_token = auth.tokens.issue(user.id, &session_id, now)?;
    Ok(SignedIn { user, session_id, access_token })
}

pub async fn sign_out(db: &AnyPool, session_id: &str) -> Result<()> {
    store::sessions::revoke_session(db, session_id, store::now()).await
}
