//! What a person can do with their account — sign up, sign in, renew, sign out (here, elsewhere,
//! everywhere), change the password, delete the account — shared by the pages and the API.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;

use super::AuthService;
use crate::domain::{NewAccount, NewPassword, Username};
use crate::error::{Error, Result};
use crate::store::{self, sessions::NewSession, users::User};

/// A new session and the tokens that prove it.
pub struct SignedIn {
    pub user: User,
    pub session_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// The tokens a refresh token was exchanged for.
pub struct Renewed {
    pub user_id: i64,
    pub session_id: String,
    pub access_token: String,
    pub refresh_token: String,
    /// When the session ends (unix seconds): the cookies live until then.
    pub session_ends: i64,
}

/// Which sessions a sign-out ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This session only.
    Local,
    /// Every other session of the user.
    Others,
    /// Every session of the user, this one included.
    Global,
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

/// 256 random bits, URL-safe: session ids and refresh tokens.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Refresh tokens are stored only as this hash. They carry 256 random bits, so a fast hash is
/// enough: there is nothing to guess.
fn refresh_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

async fn new_refresh_token(db: &AnyPool, session_id: &str, now: i64) -> Result<String> {
    let token = random_token();
    store::sessions::insert_refresh_token(db, &refresh_token_hash(&token), session_id, now).await?;
    Ok(token)
}

/// Opens a session for a user already proven, with its first access and refresh tokens.
pub async fn start_session(
    db: &AnyPool,
    auth: &AuthService,
    user: User,
    user_agent: &str,
) -> Result<SignedIn> {
    let session_id = random_token();
    let now = store::now();
    let session =
        NewSession { id: &session_id, user_id: user.id, now, expires_at: now + auth.session_ttl, user_agent };
    store::sessions::insert_session(db, session).await?;
    let refresh_token = new_refresh_token(db, &session_id, now).await?;
    let access_token = auth.tokens.issue(user.id, &session_id, now)?;
    Ok(SignedIn { user, session_id, access_token, refresh_token })
}

/// Exchanges a refresh token for a new access token and a new refresh token (rotation).
///
/// A token already exchanged is accepted again only within `refresh_grace` seconds of its first
/// use — a client retrying a request whose answer it lost. Later, it can only be a copy in the
/// wrong hands: the whole session is revoked, so the thief and the owner are both signed out.
pub async fn refresh(db: &AnyPool, auth: &AuthService, presented: &str) -> Result<Renewed> {
    let hash = refresh_token_hash(presented.trim());
    let now = store::now();
    let target = store::sessions::find_refresh_target(db, &hash).await?.ok_or(Error::InvalidRefreshToken)?;
    if target.revoked || target.expires_at <= now {
        return Err(Error::InvalidRefreshToken);
    }
    let first_use = target.used_at.is_none() && store::sessions::use_refresh_token(db, &hash, now).await?;
    // Lost a race with a concurrent exchange of the same token: that use was just now.
    let used_at = if first_use { now } else { target.used_at.unwrap_or(now) };
    if now - used_at > auth.refresh_grace {
        store::sessions::revoke_session(db, &target.session_id, now).await?;
        log::warn!("a refresh token was reused after rotation: its session is revoked");
        return Err(Error::InvalidRefreshToken);
    }
    store::sessions::touch_sessions(db, &[&target.session_id], now).await?;
    Ok(Renewed {
        user_id: target.user_id,
        refresh_token: new_refresh_token(db, &target.session_id, now).await?,
        access_token: auth.tokens.issue(target.user_id, &target.session_id, now)?,
        session_id: target.session_id,
        session_ends: target.expires_at,
    })
}

/// Ends this session, the others, or all of the user's sessions.
pub async fn sign_out(db: &AnyPool, user_id: i64, session_id: &str, scope: Scope) -> Result<()> {
    let now = store::now();
    match scope {
        Scope::Local => store::sessions::revoke_session(db, session_id, now).await,
        Scope::Others => {
            store::sessions::revoke_user_sessions(db, user_id, Some(session_id), now).await.map(drop)
        }
        Scope::Global => store::sessions::revoke_user_sessions(db, user_id, None, now).await.map(drop),
    }
}

/// Checks a password of a signed-in user, reporting a mismatch on `field`.
async fn check_password(
    db: &AnyPool,
    auth: &AuthService,
    user: &User,
    password: &str,
    field: &'static str,
) -> Result<()> {
    let hash = store::users::find_password_hash(db, user.id).await?;
    match auth.hasher.verify(password, hash.as_deref()).await? {
        true => Ok(()),
        false => Err(Error::WrongPassword(field)),
    }
}

/// Changes the password after checking the current one, and signs out every other session.
pub async fn change_password(
    db: &AnyPool,
    auth: &AuthService,
    user: &User,
    session_id: &str,
    current: &str,
    new: &str,
) -> Result<()> {
    let new = NewPassword::parse(new, &user.username)
        .map_err(|errors| Error::Validation([("new_password", errors)].into()))?;
    check_password(db, auth, user, current, "current_password").await?;
    let hash = auth.hasher.hash(&new).await?;
    store::users::set_password_hash(db, user.id, &hash).await?;
    sign_out(db, user.id, session_id, Scope::Others).await
}

/// Deletes the account after checking its password; sessions and tokens go with it, and the
/// name becomes free.
pub async fn delete_account(db: &AnyPool, auth: &AuthService, user: &User, password: &str) -> Result<()> {
    check_password(db, auth, user, password, "password").await?;
    store::users::delete_user(db, user.id).await
}
