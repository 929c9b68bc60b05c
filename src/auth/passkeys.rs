//! Passkeys (WebAuthn): adding one to an account, signing in with one alone (no username: the
//! credential is discoverable and the authenticator verifies the user, so it counts as two
//! factors), and using one as the second step after a password. The ceremonies, CBOR, COSE
//! and signatures are `webauthn-rs`'s; each ceremony's state lives in the database for 5
//! minutes and is taken once, and a passkey's counter moves forward by a conditional statement
//! (see `store::passkeys`), so any instance finishes what another began.

use secrecy::{ExposeSecret, SecretString};
use url::{Host, Url};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use super::accounts::{random_token, token_hash, Accounts, Client, Issued, SignedInUser};
use super::second_factor::{recovery_codes, recovery_hash, Methods, MAX_WRONG_CODES};
use super::Attempt;
use crate::domain::{required, PublicUrl};
use crate::error::{Error, Result};
use crate::metrics::SignInOutcome;
use crate::store::passkeys::{Listed, NewPasskey, Purpose, Stored};
use crate::store::{self, EventKind};

/// Seconds a ceremony waits for its answer.
pub const CEREMONY_FOR: i64 = 5 * 60;
/// Characters of a passkey's name.
pub const NAME_MAX: usize = 64;

/// The relying party: passkeys for the host of `public_url`, from its origin only, or the
/// reason that address cannot carry them.
pub struct RelyingParty(std::result::Result<Webauthn, String>);

impl RelyingParty {
    pub fn new(public_url: &PublicUrl) -> RelyingParty {
        RelyingParty(relying_party(public_url.as_url()))
    }

    /// Why passkeys are off, when they are.
    pub fn unavailable(&self) -> Option<&str> {
        self.0.as_ref().err().map(String::as_str)
    }

    fn webauthn(&self) -> Result<&Webauthn> {
        self.0.as_ref().map_err(|why| Error::Forbidden(format!("Passkeys are off on this server: {why}")))
    }
}

/// Browsers accept passkeys only for a named host (never an IP address), over https, or over
/// plain http on `localhost` (a secure context).
fn relying_party(public_url: &Url) -> std::result::Result<Webauthn, String> {
    let host = match public_url.host() {
        Some(Host::Domain(host)) => host,
        Some(_) => {
            return Err(format!(
                "public_url ({public_url}) names an IP address, and browsers accept passkeys only \
                 for a named host: set public_url to the name people reach MiniAuth by \
                 (http://localhost:PORT on this machine)"
            ))
        }
        None => return Err(format!("public_url ({public_url}) has no host")),
    };
    let local = host == "localhost" || host.ends_with(".localhost");
    if public_url.scheme() != "https" && !local {
        return Err(format!(
            "public_url ({public_url}) is plain http on a host other than localhost, where browsers \
             refuse passkeys: serve MiniAuth over https"
        ));
    }
    let origin = Url::parse(&public_url.origin().ascii_serialization()).map_err(|e| e.to_string())?;
    WebauthnBuilder::new(host, &origin)
        .and_then(|builder| builder.rp_name("MiniAuth").build())
        .map_err(|e| format!("public_url ({public_url}) cannot carry passkeys: {e}"))
}

/// A ceremony begun: its token, and the options for `navigator.credentials` (WebAuthn Level 3
/// JSON: binary fields as base64url).
#[derive(Debug, Clone)]
pub struct Challenge {
    pub ceremony: String,
    pub public_key: serde_json::Value,
}

/// What can finish a sign-in's second step.
pub struct SecondStepOptions {
    /// The user has an authenticator app (else a recovery code or a passkey).
    pub totp: bool,
    pub passkey: Option<Challenge>,
}

/// A passkey added: as listed, and the recovery codes when it is the user's first second
/// factor (shown this once).
pub struct Added {
    pub passkey: Listed,
    pub recovery_codes: Option<Vec<String>>,
}

/// What a registration ceremony keeps: the library's state, and the account's user handle.
#[derive(serde::Serialize, serde::Deserialize)]
struct Registering {
    handle: Uuid,
    state: PasskeyRegistration,
}

impl Accounts {
    /// Why passkeys are off on this server, when they are.
    pub fn passkeys_unavailable(&self) -> Option<&str> {
        self.relying_party.unavailable()
    }

    /// Begins adding a passkey to the signed-in user's account: a discoverable credential
    /// (so it signs in without a username), user verification required, none of the
    /// passkeys they have already.
    pub async fn begin_passkey_registration(&self, me: &SignedInUser) -> Result<Challenge> {
        let webauthn = self.relying_party.webauthn()?;
        let handle = match store::passkeys::user_handle(&self.db, me.user.id).await? {
            Some(handle) => Uuid::parse_str(&handle).map_err(Error::internal)?,
            None => Uuid::new_v4(),
        };
        let existing = self.user_passkeys(me.user.id).await?;
        let exclude = existing.iter().map(|(_, passkey)| passkey.cred_id().clone()).collect();
        let name = &me.user.username;
        let (options, state) = webauthn
            .start_passkey_registration(handle, name, name, Some(exclude))
            .map_err(Error::internal)?;
        let mut public_key = serde_json::to_value(&options.public_key).map_err(Error::internal)?;
        // webauthn-rs asks for a non-resident credential; a passkey must be discoverable.
        if let Some(selection) = public_key.get_mut("authenticatorSelection") {
            selection["residentKey"] = "required".into();
            selection["requireResidentKey"] = true.into();
            selection["userVerification"] = "required".into();
        }
        let state = serde_json::to_string(&Registering { handle, state }).map_err(Error::internal)?;
        let ceremony = self.keep_ceremony(Purpose::Register, Some(me.user.id), state).await?;
        Ok(Challenge { ceremony, public_key })
    }

    /// Finishes adding a passkey with the authenticator's answer, named by its owner. The first
    /// second factor of the account also gets recovery codes, shown this once.
    pub async fn finish_passkey_registration(
        &self,
        me: &SignedInUser,
        ceremony: &str,
        name: &str,
        credential: &serde_json::Value,
        client: &Client,
    ) -> Result<Added> {
        let webauthn = self.relying_party.webauthn()?;
        // The ceremony first: no schema tells a live one from any other string, so a made-up
        // one is a bad request (400), whatever else the body holds.
        let state =
            self.take_ceremony(ceremony, Purpose::Register, Some(me.user.id)).await.map_err(|e| match e {
                Error::CeremonyExpired => Error::BadRequest(e.detail()),
                e => e,
            })?;
        let name = passkey_name(name)?;
        let credential: RegisterPublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|_| Error::field("credential", "This is not a WebAuthn registration response."))?;
        let Registering { handle, state } = serde_json::from_str(&state).map_err(Error::internal)?;
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| Error::field("credential", refusal(&e)))?;
        let stored = serde_json::to_string(&passkey).map_err(Error::internal)?;
        let codes = recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|code| recovery_hash(code)).collect();
        let new = NewPasskey {
            user_id: me.user.id,
            credential_id: &credential_id(passkey.cred_id()),
            user_handle: &handle.to_string(),
            name: &name,
            credential: &stored,
            counter: counter_of(&passkey),
            now: store::now(),
        };
        let event = client.event(EventKind::PasskeyAdded, &me.user);
        let (passkey, first) = store::passkeys::insert(&self.db, new, &hashes, event)
            .await?
            .ok_or_else(|| Error::Conflict("This passkey is registered already.".into()))?;
        log::info!("a passkey was added for {}", me.user.username);
        Ok(Added { passkey, recovery_codes: first.then_some(codes) })
    }

    /// The signed-in user's passkeys.
    pub async fn passkeys(&self, me: &SignedInUser) -> Result<Vec<Listed>> {
        store::passkeys::list(&self.db, me.user.id).await
    }

    /// Removes one of the user's passkeys, behind the password. `404` when it is not theirs.
    pub async fn remove_passkey(
        &self,
        me: &SignedInUser,
        id: i64,
        password: &SecretString,
        client: &Client,
    ) -> Result<()> {
        required("password", password.expose_secret())?;
        self.check_password(&me.user, password, "password", client).await?;
        let event = client.event(EventKind::PasskeyRemoved, &me.user);
        if !store::passkeys::remove(&self.db, me.user.id, id, event).await? {
            return Err(Error::NotFound);
        }
        log::info!("a passkey was removed for {}", me.user.username);
        Ok(())
    }

    /// Begins a sign-in with a passkey and no username: the browser offers the passkeys it
    /// has for this site.
    pub async fn begin_passkey_sign_in(&self) -> Result<Challenge> {
        let webauthn = self.relying_party.webauthn()?;
        let (options, state) = webauthn.start_discoverable_authentication().map_err(Error::internal)?;
        let public_key = serde_json::to_value(&options.public_key).map_err(Error::internal)?;
        let state = serde_json::to_string(&state).map_err(Error::internal)?;
        let ceremony = self.keep_ceremony(Purpose::SignIn, None, state).await?;
        Ok(Challenge { ceremony, public_key })
    }

    /// Finishes a sign-in with a passkey alone. A refused answer counts as a failed sign-in
    /// (of the passkey's owner, when it is someone's) for throttling.
    pub async fn finish_passkey_sign_in(
        &self,
        ceremony: &str,
        credential: &serde_json::Value,
        client: &Client,
    ) -> Result<Issued> {
        let signed_in = self.passkey_sign_in(ceremony, credential, client).await;
        self.count_sign_in(&signed_in, |_| SignInOutcome::Success, SignInOutcome::PasskeyRefused);
        signed_in
    }

    async fn passkey_sign_in(
        &self,
        ceremony: &str,
        credential: &serde_json::Value,
        client: &Client,
    ) -> Result<Issued> {
        let webauthn = self.relying_party.webauthn()?;
        required("ceremony", ceremony)?;
        let credential = &read_answer(credential)?;
        let (handle, id) = webauthn
            .identify_discoverable_authentication(credential)
            .map_err(|_| Error::PasskeyRefused("the answer names no account"))?;
        let stored = store::passkeys::find(&self.db, &credential_id(id)).await?;
        let owner = match &stored {
            Some(stored) => store::users::find_user_by_id(&self.db, stored.user_id).await?,
            None => None,
        };
        let now = store::now();
        let attempt = Attempt::new(owner.as_ref().map_or("", |user| user.username.as_str()), &client.address);
        let known = match &owner {
            Some(user) => {
                let generation = store::users::device_generation(&self.db, user.id).await?;
                self.devices.knows(&client.device_tokens, user.id, generation, now)
            }
            None => false,
        };
        let counted = self.throttle().begin(&attempt, known, now).await?;
        let owner_of_failure = owner.clone();
        // The ceremony is spent whatever the answer: a challenge is answered once.
        let state = self.take_ceremony(ceremony, Purpose::SignIn, None).await;
        let checked = match (state, stored, owner) {
            (Err(e), _, _) => Err(e),
            (Ok(_), None, _) | (Ok(_), _, None) => {
                Err(Error::PasskeyRefused("this passkey is not registered here"))
            }
            (Ok(_), Some(stored), Some(_)) if stored.user_handle != handle.to_string() => {
                Err(Error::PasskeyRefused("this passkey is not registered here"))
            }
            (Ok(state), Some(stored), Some(user)) => {
                let state: DiscoverableAuthentication =
                    serde_json::from_str(&state).map_err(Error::internal)?;
                let mut passkey = parse_passkey(&stored)?;
                match webauthn.finish_discoverable_authentication_v2(credential, state, &passkey) {
                    Ok(result) => self
                        .record_use(&stored, &mut passkey, &result, now)
                        .await
                        .map(|synced| (user, synced)),
                    Err(e) => Err(Error::PasskeyRefused(refusal(&e))),
                }
            }
        };
        match checked {
            Ok((user, synced)) => {
                self.throttle().succeeded(counted).await?;
                self.open_session(&user, client, Methods::Passkey { synced }).await
            }
            Err(e @ (Error::PasskeyRefused(_) | Error::CeremonyExpired)) => {
                let failure = match &owner_of_failure {
                    Some(user) => client.event(EventKind::SignInFailed, user),
                    None => client.stranger_event(EventKind::SignInFailed),
                };
                self.throttle().failed(counted, now, failure.with("step", "passkey")).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The passkey options of a sign-in waiting for its second step, for a user with passkeys
    /// (`None` without, or when passkeys are off).
    pub(super) async fn second_step_challenge(&self, user_id: i64) -> Result<Option<Challenge>> {
        let Ok(webauthn) = self.relying_party.webauthn() else {
            return Ok(None);
        };
        let passkeys: Vec<Passkey> = self.user_passkeys(user_id).await?.into_iter().map(|(_, p)| p).collect();
        if passkeys.is_empty() {
            return Ok(None);
        }
        let (options, state) = webauthn.start_passkey_authentication(&passkeys).map_err(Error::internal)?;
        let public_key = serde_json::to_value(&options.public_key).map_err(Error::internal)?;
        let state = serde_json::to_string(&state).map_err(Error::internal)?;
        let ceremony = self.keep_ceremony(Purpose::SecondStep, Some(user_id), state).await?;
        Ok(Some(Challenge { ceremony, public_key }))
    }

    /// What can finish a sign-in waiting for its second step, for the code page: whether the
    /// user has an authenticator app, and new passkey options when they have passkeys.
    pub async fn second_step_options(&self, token: &str) -> Result<SecondStepOptions> {
        let hash = token_hash(token.trim());
        let pending = store::second_factor::find_pending(&self.db, &hash, store::now(), MAX_WRONG_CODES)
            .await?
            .ok_or(Error::SignInExpired)?;
        let user =
            store::users::find_user_by_id(&self.db, pending.user_id).await?.ok_or(Error::SignInExpired)?;
        let passkey = self.second_step_challenge(user.id).await?;
        Ok(SecondStepOptions { totp: user.totp, passkey })
    }

    /// Checks a passkey as the second step of the user's sign-in: `synced` as the
    /// authenticator reported it. A refused answer is [`Error::InvalidCode`] (a wrong second
    /// factor) unless the ceremony is spent or expired.
    pub(super) async fn check_passkey(
        &self,
        user_id: i64,
        ceremony: &str,
        credential: &serde_json::Value,
    ) -> Result<bool> {
        let webauthn = self.relying_party.webauthn()?;
        let state = self.take_ceremony(ceremony, Purpose::SecondStep, Some(user_id)).await?;
        let state: PasskeyAuthentication = serde_json::from_str(&state).map_err(Error::internal)?;
        let credential = read_answer(credential).map_err(|_| Error::InvalidCode)?;
        let result = webauthn.finish_passkey_authentication(&credential, &state).map_err(|e| {
            log::debug!("a second-step passkey was refused: {e}");
            Error::InvalidCode
        })?;
        let stored = store::passkeys::find(&self.db, &credential_id(result.cred_id())).await?;
        let stored = stored.filter(|stored| stored.user_id == user_id).ok_or(Error::InvalidCode)?;
        let mut passkey = parse_passkey(&stored)?;
        self.record_use(&stored, &mut passkey, &result, store::now()).await.map_err(|_| Error::InvalidCode)
    }

    /// Moves the passkey's counter forward to what the authenticator reported, once: refused
    /// when it did not move (a cloned authenticator, or the same answer twice), unless it is
    /// always zero. Whether the passkey is synced (backed up), as the authenticator said.
    async fn record_use(
        &self,
        stored: &Stored,
        passkey: &mut Passkey,
        result: &webauthn_rs::prelude::AuthenticationResult,
        now: i64,
    ) -> Result<bool> {
        passkey.update_credential(result);
        let credential = serde_json::to_string(&*passkey).map_err(Error::internal)?;
        if !store::passkeys::used(&self.db, stored.id, i64::from(result.counter()), &credential, now).await? {
            log::warn!(
                "a passkey's signature counter did not move forward: refused (a cloned authenticator?)"
            );
            return Err(Error::PasskeyRefused("its signature counter went backwards"));
        }
        Ok(result.backup_state())
    }

    async fn user_passkeys(&self, user_id: i64) -> Result<Vec<(Stored, Passkey)>> {
        let stored = store::passkeys::of_user(&self.db, user_id).await?;
        stored.into_iter().map(|stored| parse_passkey(&stored).map(|passkey| (stored, passkey))).collect()
    }

    async fn keep_ceremony(&self, purpose: Purpose, user_id: Option<i64>, state: String) -> Result<String> {
        let token = random_token();
        let expires_at = store::now() + CEREMONY_FOR;
        store::passkeys::begin_ceremony(&self.db, &token_hash(&token), purpose, user_id, &state, expires_at)
            .await?;
        Ok(token)
    }

    async fn take_ceremony(&self, token: &str, purpose: Purpose, user_id: Option<i64>) -> Result<String> {
        required("ceremony", token)?;
        let now = store::now();
        store::passkeys::take_ceremony(&self.db, &token_hash(token.trim()), purpose, user_id, now)
            .await?
            .ok_or(Error::CeremonyExpired)
    }
}

/// A passkey's name: 1 to 64 characters, without control characters, trimmed.
fn passkey_name(name: &str) -> Result<String> {
    let name = name.trim();
    required("name", name)?;
    if name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(Error::field(
            "name",
            format!("A passkey's name is at most {NAME_MAX} characters, without control characters."),
        ));
    }
    Ok(name.to_owned())
}

/// A sign-in's answer (`AuthenticationResponseJSON`), or why it is none.
fn read_answer(credential: &serde_json::Value) -> Result<PublicKeyCredential> {
    serde_json::from_value(credential.clone())
        .map_err(|_| Error::PasskeyRefused("the answer is not a WebAuthn authentication response"))
}

fn parse_passkey(stored: &Stored) -> Result<Passkey> {
    serde_json::from_str(&stored.credential).map_err(Error::internal)
}

/// A credential id as stored: base64url without padding.
fn credential_id(id: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// The signature counter a new passkey starts from, as the library read it.
fn counter_of(passkey: &Passkey) -> i64 {
    serde_json::to_value(passkey).ok().and_then(|value| value["cred"]["counter"].as_i64()).unwrap_or(0)
}

/// Why the library refused an answer, as a client may read it (never anything of the server's).
fn refusal(error: &WebauthnError) -> &'static str {
    match error {
        WebauthnError::InvalidRPOrigin => "it was made for another site (the origin is not this server's)",
        WebauthnError::InvalidRPIDHash => "it was made for another site (the RP ID is not this server's)",
        WebauthnError::MismatchedChallenge => "it answers another challenge",
        WebauthnError::UserNotVerified => "the authenticator did not verify the user (PIN or biometrics)",
        WebauthnError::UserNotPresent => "the authenticator did not check that someone was present",
        WebauthnError::InvalidClientDataType => "it is not the answer to this kind of request",
        WebauthnError::AuthenticationFailure => "the signature is not correct",
        WebauthnError::CredentialPossibleCompromise => "its signature counter went backwards",
        WebauthnError::COSEKeyInvalidType | WebauthnError::COSEKeyInvalidAlgorithm => {
            "its key type is not supported"
        }
        _ => "the authenticator's answer is not valid",
    }
}
