//! Everything a person can do with their account, each written once for the pages and the API
//! alike: sign up, sign in, renew, sign out (here, elsewhere, everywhere), change the password,
//! delete the account, list and revoke sessions. Routes only parse, call and answer.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::invitations::{self, refusal};
use super::second_factor::{Methods, SignIn};
use super::{
    Attempt, Claims, ClientAddress, DeviceKey, Limits, MacKey, PasswordHasher, Recovery, SeenBlocks,
    Throttle, Tokens,
};
use crate::domain::{
    required, NewAccount, PasswordChange, PasswordPolicy, Session, TypedPassword, User, Username,
};
use crate::error::{Error, Result};
use crate::metrics::{Gauges, Metrics, SignInOutcome};
use crate::store::events::Recorded;
use crate::store::invitations::Standing;
use crate::store::{self, sessions::NewSession, Event, EventKind, SessionChecker, Store};

/// The account operations, each written once for every door: what the server builds at start
/// from the settings and the database, and keeps.
pub struct Accounts {
    pub(crate) db: Store,
    /// The batched check of the session each authenticated request carries.
    pub(crate) sessions: SessionChecker,
    pub(crate) hasher: PasswordHasher,
    pub(crate) tokens: Tokens,
    /// Signs the device tokens of clients that signed in before.
    pub(crate) devices: DeviceKey,
    /// Throttling of password checks, sign-ups and mails.
    pub(crate) limits: Limits,
    /// The blocks this instance has seen lately.
    pub(crate) seen_blocks: SeenBlocks,
    /// Seconds a session lives.
    pub(crate) session_ttl: i64,
    /// Seconds during which a just-rotated refresh token is still accepted.
    pub(crate) refresh_grace: i64,
    /// What a new password must be (sign-up, change, reset).
    pub(crate) password_policy: PasswordPolicy,
    /// Who may sign up.
    pub(crate) registration: Registration,
    /// Recovery by email: the mailer, the links' address and lifetimes.
    pub(crate) recovery: Recovery,
    /// Derives a refresh token's one successor from it (see [`Accounts::refresh`]).
    pub(crate) successors: MacKey,
    /// Passkeys: the relying party `public_url` names.
    pub(crate) relying_party: super::passkeys::RelyingParty,
    /// Counts sign-ins, sign-ups and refreshes for `GET /metrics`.
    pub(crate) metrics: Metrics,
}

/// Who is asking: the client's address (as counted) and its `User-Agent` (shortened), recorded
/// with each new session, and the device tokens it holds (see [`super::DeviceKey`]): a
/// browser's cookie, to which an API client adds the one its login body carries.
pub struct Client {
    pub address: ClientAddress,
    pub user_agent: String,
    pub device_tokens: Vec<String>,
}

impl Client {
    /// A security event of this client's, about `user`.
    pub fn event(&self, kind: EventKind, user: &User) -> Event {
        self.stranger_event(kind).of(user.id, &user.username)
    }

    /// A security event of this client's, about no account (yet).
    pub fn stranger_event(&self, kind: EventKind) -> Event {
        Event::new(kind, self.address.to_string(), &self.user_agent)
    }
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Anyone who reaches the sign-up page or the API.
    Open,
    /// Whoever holds an invitation (`miniauth invite create`).
    Invite,
    /// Administrators only, from the command line.
    Closed,
}

impl Registration {
    /// The `registration` setting.
    pub fn parse(setting: &str) -> std::result::Result<Registration, String> {
        match setting {
            "open" => Ok(Registration::Open),
            "invite" => Ok(Registration::Invite),
            "closed" => Ok(Registration::Closed),
            other => Err(format!("registration must be \"open\", \"invite\" or \"closed\", not {other:?}")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::Invite => "invite",
            Registration::Closed => "closed",
        }
    }
}

/// What a sign-up gets when registration is closed.
pub fn registration_closed() -> Error {
    Error::Forbidden("Sign-up is closed on this server: ask its administrator for an account.".into())
}

/// How many of their security events a user sees.
pub const ACTIVITY_SHOWN: i64 = 50;

/// A bad, expired or revoked credential.
const INVALID: Error = Error::Unauthenticated { invalid_token: true };

/// A signed-in user and the session their request came with.
pub struct SignedInUser {
    pub user: User,
    pub session_id: String,
    /// How the session signed in.
    pub methods: Methods,
    /// Authenticated by the browser's cookie rather than a bearer header.
    pub by_cookie: bool,
}

/// A session's tokens, as a sign-in or a renewal issues them.
pub struct Issued {
    pub user_id: i64,
    pub session_id: String,
    pub access_token: String,
    pub refresh_token: String,
    /// When the session ends (unix seconds): the browser's cookies live until then.
    pub session_ends: i64,
    /// A sign-in's device token (see [`super::DeviceKey`]); empty for a renewal.
    pub device_token: String,
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

/// Whether the session a request came with survived what it asked for. When it ended, the
/// browser's cookies go with it, through either door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThisSession {
    Ended,
    Continues,
}

impl Accounts {
    /// Whether the database answers (readiness).
    pub async fn ready(&self) -> Result<()> {
        store::ping(&self.db).await
    }

    /// The access tokens: issued here, verified by every door.
    /// The database pool's connections and the password workers' queue, now.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            connections: self.db.size(),
            idle_connections: self.db.num_idle(),
            hash_queue: self.hasher.queued(),
        }
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Who may sign up.
    pub fn registration(&self) -> Registration {
        self.registration
    }

    /// What a new password must be.
    pub fn password_policy(&self) -> &PasswordPolicy {
        &self.password_policy
    }

    /// The user of an access token (by a browser's cookie, or not): its signature, algorithm,
    /// `exp`, `iss` and `aud` are checked, then that its session is live and belongs to the
    /// user, so a revoked session is refused at once.
    pub async fn user_of_token(&self, token: &str, by_cookie: bool) -> Result<SignedInUser> {
        let claims = self.tokens.verify(token, store::now()).ok_or(INVALID)?;
        self.user_of_claims(claims, by_cookie).await
    }

    /// The user of a browser's access cookie as forward auth reads it: a token the server
    /// signed, expired or not, of a session that is live. The cookie lives as long as its
    /// session (beside the refresh cookie, which renews the token on the next page), so an app's
    /// background requests through the proxy pass for as long as the session does, and stop at
    /// once when it is signed out or revoked. Bearer tokens must not have expired.
    pub async fn user_of_session_cookie(&self, token: &str) -> Result<SignedInUser> {
        let claims = self.tokens.verify_expired_too(token, store::now()).ok_or(INVALID)?;
        self.user_of_claims(claims, true).await
    }

    /// The user of a verified token's claims, while its session is live.
    pub async fn user_of_claims(&self, claims: Claims, by_cookie: bool) -> Result<SignedInUser> {
        let user_id = claims.user_id().ok_or(INVALID)?;
        let (user, methods) = self.live_user(&claims.sid, user_id).await?;
        Ok(SignedInUser { user, session_id: claims.sid, methods, by_cookie })
    }

    /// Renews a browser's expired access token with its refresh token (rotating both): the
    /// signed-in user, and the tokens its cookies now carry.
    pub async fn renew(&self, refresh_token: &str, client: &Client) -> Result<(SignedInUser, Issued)> {
        let issued = match self.refresh(refresh_token, client).await {
            Err(Error::InvalidRefreshToken) => return Err(INVALID),
            other => other?,
        };
        let (user, methods) = self.live_user(&issued.session_id, issued.user_id).await?;
        let session_id = issued.session_id.clone();
        Ok((SignedInUser { user, session_id, methods, by_cookie: true }, issued))
    }

    /// The user of a session that is live and belongs to `user_id`, and how it signed in.
    async fn live_user(&self, session_id: &str, user_id: i64) -> Result<(User, Methods)> {
        let (user, amr) = self.sessions.find_live(session_id, user_id).await?.ok_or(INVALID)?;
        Ok((user, Methods::parse(&amr)))
    }

    /// Creates the account after checking every rule (all broken ones reported at once);
    /// `confirmation` is the page's "repeat password" field. The name's uniqueness, in any
    /// case, is decided by the database. With an invitation (required when registration is
    /// `invite`), the account is made only while the invitation is pending, which it spends, and
    /// it joins the invitation's groups.
    pub async fn sign_up(
        &self,
        username: &str,
        password: &str,
        confirmation: Option<&str>,
        invite: Option<&str>,
        client: &Client,
    ) -> Result<User> {
        let invitation = match (self.registration, invite.map(str::trim).filter(|token| !token.is_empty())) {
            (Registration::Closed, _) => return Err(registration_closed()),
            (Registration::Invite, None) => return Err(invitations::invitation_needed()),
            (Registration::Open, None) => None,
            (_, Some(token)) => Some(token_hash(token)),
        };
        // A spent invitation is refused before a hash is spent on it.
        if let Some(hash) = &invitation {
            self.pending_invitation(hash).await?;
        }
        let (username, typed) = (username.to_owned(), TypedPassword::new(password, confirmation));
        let policy = self.password_policy;
        let (account, hash) = self
            .hasher
            .choose(
                move || NewAccount::parse(&username, &typed, &policy),
                async |_| self.throttle().sign_up(&client.address, store::now()).await,
            )
            .await?;
        let event = client.stranger_event(EventKind::AccountCreated);
        let Some(invitation) = invitation else {
            let user =
                store::users::insert_user(&self.db, &account.username, &hash, store::now(), event).await?;
            self.metrics.sign_up();
            return Ok(user);
        };
        let signed_up = store::invitations::sign_up(
            &self.db,
            (&account.username, &hash),
            &invitation,
            store::now(),
            event,
        )
        .await?;
        match signed_up {
            Some((id, user)) => {
                self.metrics.sign_up();
                log::info!(
                    target: crate::logging::AUDIT,
                    "invitation {id} used: account {} created, in groups [{}], from {}",
                    user.username,
                    user.groups.join(", "),
                    client.address
                );
                Ok(user)
            }
            // Spent or revoked while the password was hashed.
            None => Err(self.pending_invitation(&invitation).await.err().unwrap_or_else(|| refusal(None))),
        }
    }

    /// Nothing when the invitation of this token can be used now, else why not (the sign-up
    /// page asks before it shows its form).
    pub async fn check_invitation(&self, token: &str) -> Result<()> {
        self.pending_invitation(&token_hash(token.trim())).await
    }

    /// Nothing when the invitation of this token hash is pending, else why it cannot be used.
    async fn pending_invitation(&self, token_hash: &str) -> Result<()> {
        let found = store::invitations::find_by_hash(&self.db, token_hash).await?;
        match found.map(|invitation| invitation.standing(store::now())) {
            Some(Standing::Pending) => Ok(()),
            standing => Err(refusal(standing)),
        }
    }

    /// Counts how a sign-in attempt ended: `success` tells what an answer is, `refused` what a
    /// wrong credential of its kind counts as. An error that answers no attempt (a malformed
    /// request, the database out of reach) is not counted.
    pub(super) fn count_sign_in<T>(
        &self,
        result: &Result<T>,
        success: impl FnOnce(&T) -> SignInOutcome,
        refused: SignInOutcome,
    ) {
        let outcome = match result {
            Ok(answer) => success(answer),
            Err(Error::TooManyAttempts { .. }) => SignInOutcome::Throttled,
            Err(
                Error::InvalidCredentials
                | Error::InvalidCode
                | Error::SignInExpired
                | Error::PasskeyRefused(_)
                | Error::CeremonyExpired,
            ) => refused,
            Err(_) => return,
        };
        self.metrics.sign_in(outcome);
    }

    pub(super) fn throttle(&self) -> Throttle<'_> {
        Throttle { db: &self.db, limits: &self.limits, seen: &self.seen_blocks }
    }

    /// Checks the credentials and opens a session, or, for a user with a second factor, the
    /// step that remains. An unknown user and a wrong password take the same time and give the
    /// same error; a throttled client gets `429` before bcrypt runs.
    pub async fn sign_in(&self, username: &str, password: &str, client: &Client) -> Result<SignIn> {
        let signed_in = self.password_sign_in(username, password, client).await;
        let success = |signed_in: &SignIn| match signed_in {
            SignIn::Done(_) => SignInOutcome::Success,
            SignIn::SecondStep { .. } => SignInOutcome::SecondFactorAsked,
        };
        self.count_sign_in(&signed_in, success, SignInOutcome::WrongPassword);
        signed_in
    }

    async fn password_sign_in(&self, username: &str, password: &str, client: &Client) -> Result<SignIn> {
        let now = store::now();
        let attempt = Attempt::new(username, &client.address);
        // A pair or address blocked lately is refused before anything is looked up.
        self.throttle().refuse_seen(&attempt, now)?;
        // A name that could never have been registered is not looked up (PostgreSQL, for one,
        // refuses NUL bytes in text); the dummy verification below still runs.
        let found = match Username::parse(username) {
            Ok(name) => store::users::find_credentials(&self.db, &name).await?,
            Err(_) => None,
        };
        let (user, hash, generation) = match found {
            Some(found) => (Some(found.user), Some(found.password_hash), found.device_generation),
            None => (None, None, 0),
        };
        let known = user
            .as_ref()
            .is_some_and(|user| self.devices.knows(&client.device_tokens, user.id, generation, now));
        let counted = self.throttle().begin(&attempt, known, now).await?;
        let failure = match &user {
            Some(user) => client.event(EventKind::SignInFailed, user),
            None => client.stranger_event(EventKind::SignInFailed).named(username),
        };
        match (self.hasher.verify(password, hash.as_deref()).await?, user) {
            // The right password of a user with a second factor finishes nothing: the pair's
            // count of wrong codes stays, or signing in again would wipe it.
            (true, Some(user)) if user.has_second_factor() => {
                self.throttle().passed_first_step(counted).await?;
                self.await_second_step(&user).await
            }
            (true, Some(user)) => {
                self.throttle().succeeded(counted).await?;
                self.open_session(&user, client, Methods::Password).await.map(SignIn::Done)
            }
            _ => {
                self.throttle().failed(counted, now, failure.with("step", "password")).await?;
                Err(Error::InvalidCredentials)
            }
        }
    }

    /// Opens a session for a user already proven (just signed in, or just signed up) by
    /// `methods`.
    pub async fn open_session(&self, user: &User, client: &Client, methods: Methods) -> Result<Issued> {
        let session_id = random_token();
        let now = store::now();
        let session_ends = now + self.session_ttl;
        let address = client.address.to_string();
        let refresh_token = random_token();
        let session = NewSession {
            id: &session_id,
            user_id: user.id,
            now,
            expires_at: session_ends,
            user_agent: &client.user_agent,
            address: &address,
            amr: methods.stored(),
            refresh_token_hash: &token_hash(&refresh_token),
        };
        let event = client.event(EventKind::SignedIn, user).with("methods", methods.label());
        store::sessions::insert_session(&self.db, session, event).await?;
        let claims = (user.id, user.groups.as_slice(), methods.amr());
        let mut issued = self.issued(claims, session_id, session_ends, refresh_token, now)?;
        let generation = store::users::device_generation(&self.db, user.id).await?;
        issued.device_token = self.devices.issue(user.id, generation, now);
        Ok(issued)
    }

    /// The tokens of a session whose new refresh token is stored: an access token is signed for
    /// the user (id and groups), signed in by the methods `amr`.
    fn issued(
        &self,
        (user_id, groups, amr): (i64, &[String], &[&str]),
        session_id: String,
        session_ends: i64,
        refresh_token: String,
        now: i64,
    ) -> Result<Issued> {
        let access_token = self.tokens.issue(user_id, &session_id, groups, amr, now)?;
        Ok(Issued {
            user_id,
            session_id,
            access_token,
            refresh_token,
            session_ends,
            device_token: String::new(),
        })
    }

    /// Exchanges a refresh token for a new access token and a new refresh token (rotation).
    ///
    /// The new refresh token is not drawn at random but derived from the one presented (an
    /// HMAC under a key of the server's), so each token has exactly one successor: a token
    /// presented again within `refresh_grace` seconds of its first use (a client retrying a
    /// request whose answer it lost, or two tabs renewing at once) gets that same successor,
    /// and a session never forks into two chains that both renew. Later, a token already
    /// exchanged can only be a copy in the wrong hands: the whole session is revoked, so thief
    /// and owner both sign in again.
    pub async fn refresh(&self, presented: &str, client: &Client) -> Result<Issued> {
        let renewed = self.rotate(presented, client).await;
        match &renewed {
            Ok(_) => self.metrics.refresh(true),
            Err(Error::InvalidRefreshToken) => self.metrics.refresh(false),
            Err(_) => {}
        }
        renewed
    }

    async fn rotate(&self, presented: &str, client: &Client) -> Result<Issued> {
        let presented = presented.trim();
        let hash = token_hash(presented);
        let now = store::now();
        let target =
            store::sessions::find_refresh_target(&self.db, &hash).await?.ok_or(Error::InvalidRefreshToken)?;
        if target.revoked || target.expires_at <= now {
            return Err(Error::InvalidRefreshToken);
        }
        let amr = Methods::parse(&target.amr).amr();
        let (user, session_id, session_ends) =
            ((target.user_id, target.groups.as_slice(), amr), target.session_id, target.expires_at);
        let refresh_token = self.successors.tag(presented);
        let new_hash = token_hash(&refresh_token);
        // The usual case, a first use: one transaction marks it used and stores the new one.
        if target.used_at.is_none()
            && store::sessions::rotate_refresh_token(&self.db, &hash, &new_hash, &session_id, now).await?
        {
            return self.issued(user, session_id, session_ends, refresh_token, now);
        }
        // Used before, or a concurrent exchange of the same token won the race just now.
        let used_at = target.used_at.unwrap_or(now);
        if now - used_at > self.refresh_grace {
            let event = client.stranger_event(EventKind::RefreshTokenReused);
            let event = match store::users::find_user_by_id(&self.db, target.user_id).await? {
                Some(user) => event.of(user.id, &user.username),
                None => event,
            };
            store::sessions::revoke_session(&self.db, &session_id, now, event).await?;
            self.metrics.refresh_reuse();
            log::warn!("a refresh token was reused after rotation: its session is revoked");
            return Err(Error::InvalidRefreshToken);
        }
        // Within the grace window: the successor stored at the first use, and no other. (A token
        // rotated before successors were derived has a random one: it is not renewed twice.)
        if !store::sessions::is_refresh_token_of(&self.db, &new_hash, &session_id).await? {
            return Err(Error::InvalidRefreshToken);
        }
        store::sessions::touch_sessions(&self.db, &[&session_id], now).await?;
        self.issued(user, session_id, session_ends, refresh_token, now)
    }

    /// Ends this session, the others, or all of the user's sessions.
    pub async fn sign_out(&self, me: &SignedInUser, scope: Scope, client: &Client) -> Result<ThisSession> {
        let now = store::now();
        let (id, user_id) = (me.session_id.as_str(), me.user.id);
        let revoked = |which: &str| client.event(EventKind::SessionRevoked, &me.user).with("which", which);
        match scope {
            Scope::Local => {
                let event = client.event(EventKind::SignedOut, &me.user);
                store::sessions::revoke_session(&self.db, id, now, event).await?
            }
            Scope::Others => {
                let event = revoked("others");
                store::sessions::revoke_user_sessions(&self.db, user_id, Some(id), now, event)
                    .await
                    .map(drop)?
            }
            Scope::Global => {
                let event = revoked("all");
                store::sessions::sign_out_everywhere(&self.db, user_id, now, event).await.map(drop)?
            }
        }
        Ok(match scope {
            Scope::Others => ThisSession::Continues,
            Scope::Local | Scope::Global => ThisSession::Ended,
        })
    }

    /// The user's last [`ACTIVITY_SHOWN`] security events, newest first.
    pub async fn activity(&self, me: &SignedInUser) -> Result<Vec<Recorded>> {
        store::events::of_user(&self.db, me.user.id, ACTIVITY_SHOWN).await
    }

    /// The user's live sessions, most recently used first, the current one marked.
    pub async fn sessions(&self, me: &SignedInUser) -> Result<Vec<Session>> {
        store::sessions::list_live_sessions(&self.db, me.user.id, &me.session_id, store::now()).await
    }

    /// Revokes one of the user's live sessions (the current one too: that is a sign-out).
    /// Another user's session is as unknown as one that never existed.
    pub async fn revoke_session(&self, me: &SignedInUser, id: &str, client: &Client) -> Result<ThisSession> {
        let event =
            client.event(EventKind::SessionRevoked, &me.user).with("which", "one").with("sessions", 1);
        if !store::sessions::revoke_user_session(&self.db, me.user.id, id, store::now(), event).await? {
            return Err(Error::NotFound);
        }
        Ok(match id == me.session_id {
            true => ThisSession::Ended,
            false => ThisSession::Continues,
        })
    }

    /// Changes the password after checking the new one against the rules and the current one
    /// against the account, and signs out every other session.
    pub async fn change_password(
        &self,
        me: &SignedInUser,
        current: &str,
        new: &str,
        confirmation: Option<&str>,
        client: &Client,
    ) -> Result<()> {
        let (username, current) = (me.user.username.clone(), SecretString::from(current));
        let (new, policy) = (TypedPassword::new(new, confirmation), self.password_policy);
        let (_, hash) = self
            .hasher
            .choose(
                move || PasswordChange::parse(&username, &current, &new, &policy),
                async |change: &PasswordChange| {
                    self.check_password(&me.user, &change.current, "current_password", client).await
                },
            )
            .await?;
        let event = client.event(EventKind::PasswordChanged, &me.user);
        store::users::set_password_hash(&self.db, me.user.id, &hash, event).await?;
        self.sign_out(me, Scope::Others, client).await.map(drop)
    }

    /// Deletes the account after checking its password; sessions and tokens go with it, and the
    /// name becomes free.
    pub async fn delete_account(
        &self,
        me: &SignedInUser,
        password: &SecretString,
        client: &Client,
    ) -> Result<ThisSession> {
        required("password", password.expose_secret())?;
        self.check_password(&me.user, password, "password", client).await?;
        let event = client.event(EventKind::AccountDeleted, &me.user);
        store::users::delete_user(&self.db, me.user.id, event).await?;
        Ok(ThisSession::Ended)
    }

    /// Checks a signed-in user's password, counted by the throttle before it runs (the session
    /// exempts it from the per-username limit), reporting a mismatch on `field`.
    pub(super) async fn check_password(
        &self,
        user: &User,
        password: &SecretString,
        field: &'static str,
        client: &Client,
    ) -> Result<()> {
        let now = store::now();
        let counted =
            self.throttle().begin(&Attempt::new(&user.username, &client.address), true, now).await?;
        let hash = store::users::find_password_hash(&self.db, user.id).await?;
        match self.hasher.verify(password.expose_secret(), hash.as_deref()).await? {
            true => self.throttle().succeeded(counted).await,
            false => {
                let failure =
                    client.event(EventKind::SignInFailed, user).with("step", "password confirmation");
                self.throttle().failed(counted, now, failure).await?;
                Err(Error::WrongPassword(field))
            }
        }
    }
}

/// 256 random bits, URL-safe: session ids, refresh tokens and mailed links' tokens.
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Refresh tokens and mailed links' tokens are stored only as this hash. They carry 256 random
/// bits, so a fast hash is enough: there is nothing to guess.
pub(super) fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}
