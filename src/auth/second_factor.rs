//! The second factor: an authenticator app's codes (TOTP, RFC 6238: SHA-1, 6 digits, 30-second
//! steps, one step of clock skew either way) and single-use recovery codes. The arithmetic is
//! `totp-rs`'s; what is accepted when, and once only, is decided here and in the database.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};

use secrecy::SecretString;

use super::accounts::{random_token, token_hash, Accounts, Client, Issued, SignedInUser};
use super::passkeys::Challenge;
use super::Attempt;
pub use crate::domain::Methods;
use crate::domain::{required, User};
use crate::error::{Error, Result};
use crate::metrics::SignInOutcome;
use crate::store::{self, EventKind};

/// Seconds per time step.
pub const STEP: i64 = 30;
/// Steps of clock difference accepted either way.
const SKEW: i64 = 1;
const DIGITS: usize = 6;
/// Recovery codes made at a time.
pub const RECOVERY_CODES: usize = 10;
/// Random bytes of a new secret: 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;

/// An authenticator app's secret.
pub struct Totp(TOTP);

impl Totp {
    /// A new random secret.
    pub fn generate() -> Totp {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Totp::from_bytes(bytes)
    }

    fn from_bytes(bytes: Vec<u8>) -> Totp {
        // 160 bits pass totp-rs's minimum (128): `new_unchecked` only skips that check.
        Totp(TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 0, STEP as u64, bytes, None, String::new()))
    }

    /// The secret as stored and as people type it into an app: base32, without padding.
    pub fn encoded(&self) -> String {
        self.0.get_secret_base32()
    }

    /// A stored secret.
    pub fn decode(encoded: &str) -> Result<Totp> {
        let bytes = Secret::Encoded(encoded.to_owned())
            .to_bytes()
            .map_err(|e| Error::internal(format!("a stored TOTP secret: {e:?}")))?;
        Ok(Totp::from_bytes(bytes))
    }

    /// The `otpauth://` address an app reads from the QR code: the issuer and the account name.
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        let mut totp = self.0.clone();
        totp.issuer = Some(issuer.to_owned());
        totp.account_name = account.to_owned();
        totp.get_url()
    }

    /// The time step of `now` (unix seconds) that `code` is the code of, the newest first,
    /// within the skew; `None` when it is none's.
    pub fn step_of(&self, code: &str, now: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let step = now.div_euclid(STEP);
        (step - SKEW..=step + SKEW).rev().find(|s| *s >= 0 && self.0.check(code, (*s * STEP) as u64))
    }

    /// The code of the time step of `at` (what an app shows then): for tests and tools.
    pub fn code_at(&self, at: i64) -> String {
        self.0.generate(at.max(0) as u64)
    }
}

/// New recovery codes: each 80 random bits, as `xxxx-xxxx-xxxx-xxxx` in lower-case base32.
pub fn recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let text = Secret::Raw(bytes.to_vec()).to_encoded().to_string().to_ascii_lowercase();
            text.as_bytes()
                .chunks(4)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// A recovery code as stored: the SHA-256 of its characters, without dashes or spaces and in
/// lower case, so it matches however it is typed. (80 random bits: nothing to guess, so a fast
/// hash is enough.)
pub fn recovery_hash(code: &str) -> String {
    let plain: String =
        code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect::<String>().to_ascii_lowercase();
    URL_SAFE_NO_PAD.encode(Sha256::digest(plain.as_bytes()))
}

/// What a sign-in with the right password gives: the session's tokens, or (for a user with a
/// second factor) the step that remains.
pub enum SignIn {
    Done(Issued),
    /// The password was right: `token` finishes the sign-in with a code, within
    /// [`PENDING_FOR`] seconds, by one of `methods`.
    SecondStep {
        token: String,
        methods: Vec<&'static str>,
        /// The passkey options, for a user with passkeys.
        passkey: Option<Challenge>,
    },
}

/// Seconds a sign-in waits for its second step.
pub const PENDING_FOR: i64 = 5 * 60;
/// Wrong codes a sign-in waiting for its second step takes before it is void.
pub const MAX_WRONG_CODES: i64 = 5;

/// A new authenticator-app secret, waiting for its first code.
pub struct TotpSetup {
    /// Base32, as an app takes it typed in.
    pub secret: String,
    /// `otpauth://totp/…`, as an app takes it from a QR code.
    pub otpauth_uri: String,
}

impl Accounts {
    /// Starts setting up an authenticator app, behind the password: a new secret, waiting for
    /// its first code (it replaces one waiting already). `409` when the factor is on.
    pub async fn begin_totp(
        &self,
        me: &SignedInUser,
        password: &SecretString,
        client: &Client,
    ) -> Result<TotpSetup> {
        use secrecy::ExposeSecret;
        required("password", password.expose_secret())?;
        self.check_password(&me.user, password, "password", client).await?;
        let totp = Totp::generate();
        if me.user.totp
            || !store::second_factor::begin(&self.db, me.user.id, &totp.encoded(), store::now()).await?
        {
            return Err(already_on());
        }
        let otpauth_uri = totp.uri(self.tokens.issuer(), &me.user.username);
        Ok(TotpSetup { secret: totp.encoded(), otpauth_uri })
    }

    /// The authenticator app waiting for its first code, if any (for the set-up page).
    pub async fn pending_totp(&self, me: &SignedInUser) -> Result<Option<TotpSetup>> {
        let Some(factor) = store::second_factor::find(&self.db, me.user.id).await? else {
            return Ok(None);
        };
        if factor.confirmed {
            return Ok(None);
        }
        let totp = Totp::decode(&factor.secret)?;
        let otpauth_uri = totp.uri(self.tokens.issuer(), &me.user.username);
        Ok(Some(TotpSetup { secret: factor.secret, otpauth_uri }))
    }

    /// Turns the waiting factor on with a first code from the app: the recovery codes, shown
    /// this once. `409` when nothing waits, `422` for a wrong code.
    pub async fn confirm_totp(&self, me: &SignedInUser, code: &str, client: &Client) -> Result<Vec<String>> {
        required("code", code)?;
        let pending = match store::second_factor::find(&self.db, me.user.id).await? {
            Some(factor) if !factor.confirmed => factor,
            _ => return Err(nothing_pending()),
        };
        let now = store::now();
        let step = Totp::decode(&pending.secret)?.step_of(code, now).ok_or_else(wrong_code_field)?;
        let codes = recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|code| recovery_hash(code)).collect();
        let event = client.event(EventKind::SecondFactorAdded, &me.user);
        if !store::second_factor::confirm(&self.db, me.user.id, (step, now), &hashes, event).await? {
            return Err(nothing_pending());
        }
        log::info!("two-step sign-in turned on for {}", me.user.username);
        Ok(codes)
    }

    /// Turns the factor off, behind the password and a current code or a recovery code (a
    /// stolen session and a known password are not enough). `404` when it is off.
    pub async fn disable_totp(
        &self,
        me: &SignedInUser,
        password: &SecretString,
        code: &str,
        client: &Client,
    ) -> Result<()> {
        use secrecy::ExposeSecret;
        required("password", password.expose_secret())?;
        required("code", code)?;
        self.check_password(&me.user, password, "password", client).await?;
        if !me.user.totp {
            return Err(Error::NotFound);
        }
        // No device is trusted here: a stolen session comes with its browser's device cookie.
        self.check_second_factor(me.user.id, &me.user.username, Proof::Code(code), client, false)
            .await
            .map_err(|e| match e {
                Error::InvalidCode => wrong_code_field(),
                e => e,
            })?;
        let event = client.event(EventKind::SecondFactorRemoved, &me.user);
        store::second_factor::remove(&self.db, me.user.id, event).await?;
        log::info!("two-step sign-in turned off for {}", me.user.username);
        Ok(())
    }

    /// New recovery codes, behind the password (the old ones stop working). `409` when the
    /// factor is off.
    pub async fn replace_recovery_codes(
        &self,
        me: &SignedInUser,
        password: &SecretString,
        client: &Client,
    ) -> Result<Vec<String>> {
        use secrecy::ExposeSecret;
        required("password", password.expose_secret())?;
        self.check_password(&me.user, password, "password", client).await?;
        let codes = recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|code| recovery_hash(code)).collect();
        let event = client.event(EventKind::RecoveryCodesRenewed, &me.user);
        if !store::second_factor::replace_recovery_codes(&self.db, me.user.id, &hashes, event).await? {
            return Err(Error::Conflict(
                "Two-step sign-in is off: there are no recovery codes to replace.".into(),
            ));
        }
        Ok(codes)
    }

    /// The second step of a sign-in whose password was right: where it waits, by the token the
    /// first step gave, what can finish it, and the passkey options when the user has passkeys.
    pub(super) async fn await_second_step(&self, user: &User) -> Result<SignIn> {
        let token = random_token();
        let now = store::now();
        store::second_factor::insert_pending(&self.db, &token_hash(&token), user.id, now, now + PENDING_FOR)
            .await?;
        let passkey = self.second_step_challenge(user.id).await?;
        let mut methods = Vec::new();
        if user.totp {
            methods.push("totp");
        }
        methods.push("recovery_code");
        if passkey.is_some() {
            methods.push("passkey");
        }
        Ok(SignIn::SecondStep { token, methods, passkey })
    }

    /// Finishes a sign-in with its second factor: a current code of the user's app, one of
    /// their recovery codes, or a passkey. A wrong code or a refused passkey counts as a failed
    /// sign-in for throttling, and against the waiting sign-in, which takes at most
    /// [`MAX_WRONG_CODES`]; a right one opens the session, once.
    pub async fn finish_sign_in(&self, token: &str, proof: Proof<'_>, client: &Client) -> Result<Issued> {
        let finished = self.check_second_step(token, proof, client).await;
        self.count_sign_in(&finished, |_| SignInOutcome::Success, SignInOutcome::SecondFactorFailed);
        finished
    }

    async fn check_second_step(&self, token: &str, proof: Proof<'_>, client: &Client) -> Result<Issued> {
        // The waiting sign-in first: without it, nothing else in the request matters.
        required("mfa_token", token)?;
        let hash = token_hash(token.trim());
        let now = store::now();
        let pending = store::second_factor::find_pending(&self.db, &hash, now, MAX_WRONG_CODES)
            .await?
            .ok_or(Error::SignInExpired)?;
        match proof {
            Proof::Code(code) => required("code", code)?,
            Proof::Passkey { ceremony, .. } => required("ceremony", ceremony)?,
        };
        let checked = self.check_second_factor(pending.user_id, &pending.username, proof, client, true).await;
        let methods = match checked {
            Ok(methods) => methods,
            Err(Error::InvalidCode) => {
                store::second_factor::fail_pending(&self.db, &hash).await?;
                return Err(Error::InvalidCode);
            }
            Err(e) => return Err(e),
        };
        if !store::second_factor::spend_pending(&self.db, &hash, now, MAX_WRONG_CODES).await? {
            return Err(Error::SignInExpired);
        }
        let user =
            store::users::find_user_by_id(&self.db, pending.user_id).await?.ok_or(Error::SignInExpired)?;
        self.open_session(&user, client, methods).await
    }

    /// Checks a second factor of the user, throttled as a password check is (a wrong one is a
    /// failed sign-in): a code of their app, accepted once per time step, an unused recovery
    /// code, spent, or (for a sign-in) a passkey. A client that signed in to the account before
    /// is spared the per-username limit only where `devices_count` (a sign-in's second step).
    /// How the user signed in with it, or [`Error::InvalidCode`].
    async fn check_second_factor(
        &self,
        user_id: i64,
        username: &str,
        proof: Proof<'_>,
        client: &Client,
        devices_count: bool,
    ) -> Result<Methods> {
        let now = store::now();
        let attempt = Attempt::new(username, &client.address);
        self.throttle().refuse_seen(&attempt, now)?;
        let known = match devices_count {
            true => {
                let generation = store::users::device_generation(&self.db, user_id).await?;
                self.devices.knows(&client.device_tokens, user_id, generation, now)
            }
            false => false,
        };
        let counted = self.throttle().begin(&attempt, known, now).await?;
        let right = match proof {
            Proof::Code(code) => match self.check_code(user_id, code, now).await? {
                true => Some(Methods::PasswordAndCode),
                false => None,
            },
            Proof::Passkey { ceremony, credential } => {
                match self.check_passkey(user_id, ceremony, credential).await {
                    Ok(synced) => Some(Methods::PasswordAndPasskey { synced }),
                    Err(Error::InvalidCode | Error::PasskeyRefused(_)) => None,
                    Err(e) => return Err(e),
                }
            }
        };
        match right {
            Some(methods) => self.throttle().succeeded(counted).await.map(|()| methods),
            None => {
                let failure = client
                    .stranger_event(EventKind::SignInFailed)
                    .of(user_id, username)
                    .with("step", "second factor");
                self.throttle().failed(counted, now, failure).await?;
                Err(Error::InvalidCode)
            }
        }
    }

    /// Whether `code` is a code of the user's app (accepted once per time step) or one of their
    /// unused recovery codes (spent).
    async fn check_code(&self, user_id: i64, code: &str, now: i64) -> Result<bool> {
        if let Some(factor) = store::second_factor::find(&self.db, user_id).await? {
            if factor.confirmed {
                if let Some(step) = Totp::decode(&factor.secret)?.step_of(code, now) {
                    return store::second_factor::accept_step(&self.db, user_id, step).await;
                }
            }
        }
        store::second_factor::use_recovery_code(&self.db, user_id, &recovery_hash(code), now).await
    }
}

/// What finishes a sign-in's second step.
#[derive(Clone, Copy)]
pub enum Proof<'a> {
    /// A code of the user's app, or a recovery code.
    Code(&'a str),
    /// A passkey's answer to the ceremony the first step began.
    Passkey { ceremony: &'a str, credential: &'a serde_json::Value },
}

fn already_on() -> Error {
    Error::Conflict("Two-step sign-in is on already: turn it off first to set up another app.".into())
}

fn nothing_pending() -> Error {
    Error::Conflict("No authenticator app is waiting for its first code: start the set-up again.".into())
}

fn wrong_code_field() -> Error {
    Error::field("code", "The code is not correct: type the one your app shows now.")
}
