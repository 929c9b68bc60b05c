//! "Sign in with MiniAuth": an OpenID Connect provider (authorization code flow with PKCE).
//!
//! Apps are registered by an administrator ([`register`]). A browser sent to
//! the authorization endpoint is checked ([`Provider::check`]: the app and its redirect address
//! first, never redirected when wrong), signed in if needed, asked for consent on an app's
//! first use, and sent back with a code ([`Provider::authorize`]). The app exchanges the code,
//! with its PKCE verifier, for an ID token, an opaque access token (for userinfo) and, with
//! `offline_access`, a refresh token rotated like a session's ([`Provider::token`]). Everything
//! lives in the database, so a flow begun on one instance finishes on any other.

use std::sync::Arc;

use base64::Engine;
use hmac::Mac;
use jsonwebtoken::{decode, decode_header, encode, Header, Validation};
use rocket::tokio::sync::OnceCell;
use serde_json::{json, Map, Value};

use super::accounts::{random_token, token_hash, Client};
use super::keys::{KeyRing, SigningAlgorithm};
use super::{MacKey, SignedInUser};
use crate::domain::oauth::{self, code_challenge, verifier_matches, Prompt, Scopes};
use crate::domain::{Methods, PublicUrl, User};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::oauth::{ClientRow, CodeRow, ConnectedApp, NewGrant};
use crate::store::{self, Event, EventKind, Store};

/// Seconds an authorization code may be exchanged.
pub const CODE_TTL: i64 = 60;
/// The longest `state` and `nonce` kept.
const PARAMETER_MAX: usize = 512;

/// The OpenID Connect provider: what the server builds at start and keeps.
pub struct Provider {
    db: Store,
    /// `public_url`: the issuer, and the prefix of every endpoint.
    issuer: String,
    keys: IdTokenKeys,
    /// Seconds an access token (and an ID token) lives.
    access_ttl: i64,
    /// Seconds a grant, and so its refresh tokens, lives.
    grant_ttl: i64,
    /// Seconds during which a just-rotated refresh token is still accepted.
    refresh_grace: i64,
    /// Derives a refresh token's one successor from it.
    successors: MacKey,
    /// Counts refreshes and their reuse for `GET /metrics`.
    metrics: Metrics,
    /// Signs the mark of a fresh sign-in on the way back from the sign-in page.
    fresh: MacKey,
}

/// The keys that sign ID tokens: RS256, and EdDSA for the apps that ask (the access tokens'
/// ring when they are EdDSA). A ring of their own is opened, and its keys made, at its first
/// use once an app is registered: a server without apps makes and publishes none.
pub struct IdTokenKeys {
    /// The access tokens' ring, when it is EdDSA.
    access_eddsa: Option<Arc<KeyRing>>,
    eddsa: OnceCell<Arc<KeyRing>>,
    rs256: OnceCell<Arc<KeyRing>>,
    /// Seconds a retired key is kept.
    keep_retired: i64,
}

impl IdTokenKeys {
    /// The ID tokens' keys beside the access tokens' `access` ring.
    pub fn new(access: &Arc<KeyRing>, keep_retired: i64) -> Self {
        let access_eddsa = (access.algorithm == SigningAlgorithm::EdDSA).then(|| Arc::clone(access));
        IdTokenKeys { access_eddsa, eddsa: OnceCell::new(), rs256: OnceCell::new(), keep_retired }
    }
}

/// An app as an administrator registers it.
pub struct NewClient<'a> {
    pub name: &'a str,
    pub redirect_uris: &'a [String],
    pub logout_uris: &'a [String],
    /// No secret: PKCE alone binds its codes (a single-page or native app).
    pub public: bool,
    pub id_token_alg: SigningAlgorithm,
}

/// A registered app, with its secret when it was just made (shown once).
pub struct Registered {
    pub client: ClientRow,
    pub secret: Option<String>,
}

/// The parameters of an authorization request, as sent (query or form).
#[derive(Debug, Default, Clone)]
pub struct AuthorizeParams {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_type: String,
    pub scope: String,
    pub state: String,
    pub nonce: String,
    pub code_challenge: String,
    pub code_challenge_method: String,
    pub prompt: String,
    pub max_age: String,
    /// Set by MiniAuth itself on the way back from the sign-in page ([`Provider::fresh_mark`]):
    /// a sign-in at or after its time meets `prompt=login` and `max_age`. Signed, and bound to
    /// the request's app and PKCE challenge: one made up, or taken from another request, is
    /// ignored.
    pub auth_after: String,
}

/// A checked authorization request.
pub struct AuthorizeRequest {
    pub client: ClientRow,
    pub redirect_uri: String,
    pub scopes: Scopes,
    pub state: String,
    pub nonce: String,
    pub code_challenge: String,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub auth_after: Option<i64>,
}

/// Why an authorization request is refused.
pub enum Refusal {
    /// The app or its redirect address is wrong: an error page, never a redirect.
    Page(Error),
    /// Anything else: back to the app with `error` (RFC 6749 §4.1.2.1).
    ToApp(String),
}

/// What an authorization request needs next.
pub enum Step {
    /// The visitor signs in (`again`: though signed in, as the app asked).
    SignIn { again: bool },
    /// The visitor is asked whether the app may see what it asks for.
    Consent,
    /// Back to the app: its redirect address with the code (or an error).
    Redirect(String),
}

/// The browser's session, for the authorization endpoint.
pub struct Visitor<'a> {
    pub user: &'a SignedInUser,
    /// The browser it comes with.
    pub client: &'a Client,
    /// When the session signed in (unix seconds).
    pub auth_time: i64,
}

/// How an app authenticates at the token and revocation endpoints.
#[derive(Debug, Default)]
pub struct ClientCredentials {
    /// From `Authorization: Basic` (client_secret_basic).
    pub basic: Option<(String, String)>,
    /// From the form (client_secret_post, or a public client's id alone).
    pub client_id: String,
    pub client_secret: String,
}

/// The token endpoint's form.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub grant_type: String,
    pub code: String,
    pub redirect_uri: String,
    pub code_verifier: String,
    pub refresh_token: String,
    pub scope: String,
}

/// The token endpoint's answer (RFC 6749 §5.1, with OpenID Connect's `id_token`).
#[derive(Debug, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub id_token: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// An RFC 6749 error of the token, revocation or userinfo endpoint.
fn oauth(error: &'static str, description: impl Into<String>) -> Error {
    Error::OAuth { error, description: description.into() }
}

fn invalid_client() -> Error {
    oauth("invalid_client", "The client is unknown, or its authentication failed.")
}

fn invalid_grant(why: &str) -> Error {
    oauth("invalid_grant", why)
}

impl Provider {
    /// The provider of `public_url`, with the lifetimes of access tokens, grants and the
    /// refresh grace window (seconds), its keys derived from the server's `secret`.
    pub fn new(
        db: Store,
        public_url: &PublicUrl,
        keys: IdTokenKeys,
        (access_ttl, grant_ttl, refresh_grace): (i64, i64, i64),
        secret: &[u8],
        metrics: Metrics,
    ) -> Self {
        Provider {
            metrics,
            db,
            issuer: public_url.to_string(),
            keys,
            access_ttl,
            grant_ttl,
            refresh_grace,
            successors: MacKey::derive(secret, b"miniauth oauth refresh successor v1"),
            fresh: MacKey::derive(secret, b"miniauth oauth fresh sign-in v1"),
        }
    }

    /// The mark that asks, on the way back from the sign-in page, for a sign-in no older than
    /// `now` in place of `prompt=login` and `max_age` (which the new sign-in meets).
    pub fn fresh_mark(&self, params: &AuthorizeParams, now: i64) -> String {
        format!("{now}.{}", self.fresh.tag(&format!("{now} {} {}", params.client_id, params.code_challenge)))
    }

    /// The time of a request's fresh-sign-in mark, when it is one of ours for this request.
    fn fresh_since(&self, params: &AuthorizeParams) -> Option<i64> {
        let (time, tag) = params.auth_after.split_once('.')?;
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag).ok()?;
        let signed = format!("{time} {} {}", params.client_id, params.code_challenge);
        self.fresh.mac(&signed).verify_slice(&tag).ok()?;
        time.parse().ok()
    }

    /// The issuer: `public_url`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// When a session signed in (its `auth_time`).
    pub async fn auth_time(&self, session_id: &str) -> Result<i64> {
        Ok(store::sessions::created_at(&self.db, session_id).await?.unwrap_or_else(store::now))
    }

    /// The ring of `algorithm` (RS256 or EdDSA), opened (its keys made when missing) on its
    /// first use.
    async fn ring(&self, algorithm: SigningAlgorithm) -> Result<&KeyRing> {
        let cell = match (algorithm, &self.keys.access_eddsa) {
            (SigningAlgorithm::EdDSA, Some(access)) => return Ok(access),
            (SigningAlgorithm::EdDSA, None) => &self.keys.eddsa,
            _ => &self.keys.rs256,
        };
        let ring = cell
            .get_or_try_init(|| async {
                let ring = Arc::new(KeyRing::open(&self.db, algorithm, self.keys.keep_retired).await?);
                Arc::clone(&ring).follow(Store::clone(&self.db));
                Ok::<_, Error>(ring)
            })
            .await?;
        Ok(ring)
    }

    /// The origins of every registered app's redirect and sign-out addresses, space-separated:
    /// where a page's form may lead the browser (a sign-in, a consent, a sign-out end with a
    /// redirect to the app, which browsers check against the page's `form-action`).
    pub async fn app_origins(&self) -> Result<String> {
        let mut origins: Vec<String> = Vec::new();
        for client in store::oauth::list_clients(&self.db).await? {
            for address in client.redirect_uris.iter().chain(&client.logout_uris) {
                if let Ok(url) = url::Url::parse(address) {
                    let origin = url.origin().ascii_serialization();
                    if !origins.contains(&origin) {
                        origins.push(origin);
                    }
                }
            }
        }
        Ok(origins.join(" "))
    }

    /// The public keys of the ID tokens, for the JWKS beside the access tokens' own, once an
    /// app is registered: RS256, and EdDSA unless the access tokens' keys are those already.
    pub async fn published_keys(&self) -> Result<Vec<Value>> {
        let opened = self.keys.rs256.initialized() || self.keys.eddsa.initialized();
        // The key set is served from memory: with the database out of reach, an instance that
        // has not opened these keys yet serves the access tokens' alone.
        if !opened && !store::oauth::any_client(&self.db).await.unwrap_or(false) {
            return Ok(Vec::new());
        }
        let mut keys = self.ring(SigningAlgorithm::RS256).await?.keys().published.clone();
        if self.keys.access_eddsa.is_none() {
            keys.extend(self.ring(SigningAlgorithm::EdDSA).await?.keys().published.iter().cloned());
        }
        Ok(keys)
    }

    /// Checks an authorization request in order: the app and its redirect address (an error
    /// page when wrong), then, back to the app when wrong, PKCE (`S256`), `response_type`,
    /// `scope` (with `openid`), `state`, `nonce`, `prompt` and `max_age`.
    pub async fn check(&self, params: &AuthorizeParams) -> std::result::Result<AuthorizeRequest, Refusal> {
        let client =
            match store::oauth::find_client(&self.db, params.client_id.trim()).await {
                Ok(Some(client)) => client,
                Ok(None) => return Err(Refusal::Page(Error::BadRequest(
                    "This sign-in link names an app that is not registered here (client_id): tell the app's \
                     administrator."
                        .into(),
                ))),
                Err(e) => return Err(Refusal::Page(e)),
            };
        if !client.redirect_uris.contains(&params.redirect_uri) {
            return Err(Refusal::Page(Error::BadRequest(format!(
                "This sign-in link would send you back to an address not registered for {} (redirect_uri): \
                 tell the app's administrator.",
                client.name
            ))));
        }
        let back = |error: &str, description: &str| {
            let answer = [("error", error), ("error_description", description)];
            Refusal::ToApp(self.back_to_app(&params.redirect_uri, &params.state, &answer))
        };
        if params.code_challenge.is_empty() || params.code_challenge_method != "S256" {
            return Err(back(
                "invalid_request",
                "PKCE is required: code_challenge with code_challenge_method=S256",
            ));
        }
        let challenge = code_challenge(&params.code_challenge).map_err(|e| back("invalid_request", &e))?;
        if params.response_type != "code" {
            return Err(back("unsupported_response_type", "response_type must be code"));
        }
        let scopes = Scopes::parse(&params.scope);
        if !scopes.has("openid") {
            return Err(back("invalid_scope", "scope must include openid"));
        }
        if params.state.len() > PARAMETER_MAX {
            return Err(back("invalid_request", "state is too long (at most 512 characters)"));
        }
        if params.nonce.len() > PARAMETER_MAX {
            return Err(back("invalid_request", "nonce is too long (at most 512 characters)"));
        }
        let prompt = Prompt::parse(&params.prompt).map_err(|e| back("invalid_request", &e))?;
        let seconds = |text: &str| match text {
            "" => Ok(None),
            text => text.parse::<u32>().map(|n| Some(i64::from(n))),
        };
        let max_age = seconds(&params.max_age)
            .map_err(|_| back("invalid_request", "max_age must be a number of seconds"))?;
        let auth_after = self.fresh_since(params);
        Ok(AuthorizeRequest {
            client,
            redirect_uri: params.redirect_uri.clone(),
            scopes,
            state: params.state.clone(),
            nonce: params.nonce.clone(),
            code_challenge: challenge.to_owned(),
            prompt,
            max_age,
            auth_after,
        })
    }

    /// What an app's checked request needs next, for this visitor (if signed in): a sign-in
    /// when there is none, or when the app asks for a fresh one (`prompt=login`, `max_age`);
    /// consent on the app's first use (or `prompt=consent`); else the code. With `prompt=none`,
    /// nothing is shown: the app hears `login_required` or `consent_required` instead.
    pub async fn authorize(&self, request: &AuthorizeRequest, visitor: Option<&Visitor<'_>>) -> Result<Step> {
        let now = store::now();
        let fresh = |visitor: &Visitor<'_>| match request.auth_after {
            Some(after) => visitor.auth_time >= after,
            None => !request.prompt.login && request.max_age.is_none_or(|age| now - visitor.auth_time <= age),
        };
        let Some(visitor) = visitor.filter(|visitor| fresh(visitor)) else {
            if request.prompt.none {
                return Ok(Step::Redirect(self.back_with_error(
                    request,
                    "login_required",
                    "The user is not signed in.",
                )));
            }
            return Ok(Step::SignIn { again: visitor.is_some() });
        };
        let allowed = store::oauth::consent(&self.db, visitor.user.user.id, &request.client.id).await?;
        let remembered = allowed.is_some_and(|scope| request.scopes.within(&Scopes::parse(&scope)));
        match (remembered && !request.prompt.consent, request.prompt.none) {
            (true, _) => self.issue_code(request, visitor).await.map(Step::Redirect),
            (false, true) => Ok(Step::Redirect(self.back_with_error(
                request,
                "consent_required",
                "The user has not allowed this app yet.",
            ))),
            (false, false) => Ok(Step::Consent),
        }
    }

    /// The visitor's answer on the consent page: allowed, the consent is remembered (with what
    /// was allowed before) and the app gets its code; denied, it hears `access_denied`.
    pub async fn consent(
        &self,
        request: &AuthorizeRequest,
        visitor: &Visitor<'_>,
        allow: bool,
    ) -> Result<String> {
        if !allow {
            return Ok(self.back_with_error(request, "access_denied", "The user did not allow this app."));
        }
        let (user, client) = (visitor.user.user.id, &request.client.id);
        let before = store::oauth::consent(&self.db, user, client).await?.unwrap_or_default();
        let scope = request.scopes.with(&Scopes::parse(&before)).to_text();
        let event = visitor.client.event(EventKind::AppConsentGranted, &visitor.user.user);
        let event = event.with("client_id", client.as_str()).with("app", request.client.name.as_str());
        let event = event.with("scope", scope.as_str());
        store::oauth::consent_to(&self.db, user, client, (&scope, store::now()), event).await?;
        self.issue_code(request, visitor).await
    }

    /// The app's redirect address with an error, its `state` and the issuer.
    fn back_with_error(&self, request: &AuthorizeRequest, error: &str, description: &str) -> String {
        let answer = [("error", error), ("error_description", description)];
        self.back_to_app(&request.redirect_uri, &request.state, &answer)
    }

    /// The app's redirect address with the answer, its `state` (when it sent one) and the
    /// issuer (RFC 9207).
    fn back_to_app(&self, redirect_uri: &str, state: &str, answer: &[(&str, &str)]) -> String {
        let mut pairs = answer.to_vec();
        if !state.is_empty() {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.issuer));
        oauth::with_query(redirect_uri, &pairs)
    }

    /// Makes a code for the visitor and the request: the app's redirect address with it.
    async fn issue_code(&self, request: &AuthorizeRequest, visitor: &Visitor<'_>) -> Result<String> {
        let code = random_token();
        let now = store::now();
        let row = CodeRow {
            code_hash: token_hash(&code),
            client_id: request.client.id.clone(),
            user_id: visitor.user.user.id,
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scopes.to_text(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time: visitor.auth_time,
            amr: visitor.user.methods.stored().to_owned(),
            created_at: now,
            expires_at: now + CODE_TTL,
            used_at: None,
            grant_id: None,
        };
        store::oauth::insert_code(&self.db, &row).await?;
        Ok(self.back_to_app(&request.redirect_uri, &request.state, &[("code", &code)]))
    }

    /// The app these credentials authenticate: a confidential app by its secret (in the
    /// `Authorization: Basic` header or the form, not both), a public app by its id alone.
    pub async fn authenticate_client(&self, credentials: &ClientCredentials) -> Result<ClientRow> {
        let (id, secret) = match &credentials.basic {
            Some(_) if !credentials.client_secret.is_empty() => {
                return Err(oauth(
                    "invalid_request",
                    "Authenticate the client one way only: Basic or the form.",
                ))
            }
            Some((id, secret)) => {
                if !credentials.client_id.is_empty() && credentials.client_id != *id {
                    return Err(invalid_client());
                }
                (id.as_str(), secret.as_str())
            }
            None => (credentials.client_id.as_str(), credentials.client_secret.as_str()),
        };
        if id.is_empty() {
            return Err(invalid_client());
        }
        let client = store::oauth::find_client(&self.db, id).await?.ok_or_else(invalid_client)?;
        let authenticated = match client.secret_hash.as_str() {
            "" => secret.is_empty(),
            hash => !secret.is_empty() && token_hash(secret) == hash,
        };
        authenticated.then_some(client).ok_or_else(invalid_client)
    }

    /// The token endpoint: a code (with its PKCE verifier) or a refresh token, exchanged.
    /// `caller`: who sent the request (the app's server), for the security log.
    pub async fn token(
        &self,
        client: &ClientRow,
        request: &TokenRequest,
        caller: &Client,
    ) -> Result<TokenResponse> {
        match request.grant_type.as_str() {
            "authorization_code" => self.exchange_code(client, request, caller).await,
            "refresh_token" => {
                let renewed = self.refresh(client, request, caller).await;
                match &renewed {
                    Ok(_) => self.metrics.refresh(true),
                    Err(Error::OAuth { error: "invalid_grant", .. }) => self.metrics.refresh(false),
                    Err(_) => {}
                }
                renewed
            }
            "" => Err(oauth("invalid_request", "grant_type is required.")),
            _ => Err(oauth(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token.",
            )),
        }
    }

    async fn exchange_code(
        &self,
        client: &ClientRow,
        request: &TokenRequest,
        caller: &Client,
    ) -> Result<TokenResponse> {
        for (field, value) in [
            ("code", &request.code),
            ("redirect_uri", &request.redirect_uri),
            ("code_verifier", &request.code_verifier),
        ] {
            if value.is_empty() {
                return Err(oauth("invalid_request", format!("{field} is required.")));
            }
        }
        let hash = token_hash(request.code.trim());
        let now = store::now();
        let code = store::oauth::find_code(&self.db, &hash)
            .await?
            .ok_or_else(|| invalid_grant("The code is unknown."))?;
        if code.used_at.is_some() {
            return Err(self.code_reused(&code, caller).await);
        }
        if code.expires_at <= now {
            return Err(invalid_grant("The code has expired."));
        }
        if code.client_id != client.id {
            return Err(invalid_grant("The code was issued to another client."));
        }
        if code.redirect_uri != request.redirect_uri {
            return Err(invalid_grant("redirect_uri is not the one the code was issued for."));
        }
        if !verifier_matches(&request.code_verifier, &code.code_challenge) {
            return Err(invalid_grant("code_verifier does not match the code_challenge."));
        }
        let user = store::users::find_user_by_id(&self.db, code.user_id)
            .await?
            .ok_or_else(|| invalid_grant("The user no longer exists."))?;
        let scopes = Scopes::parse(&code.scope);
        let (grant_id, access, refresh) = (random_token(), random_token(), random_token());
        let refresh = scopes.has("offline_access").then_some(refresh);
        let refresh_hash = refresh.as_deref().map(token_hash);
        let grant = NewGrant {
            id: &grant_id,
            client_id: &client.id,
            user_id: user.id,
            scope: &code.scope,
            auth_time: code.auth_time,
            amr: &code.amr,
            now,
            expires_at: now + self.grant_ttl,
            access: (&token_hash(&access), now + self.access_ttl),
            refresh: refresh_hash.as_deref(),
        };
        if !store::oauth::exchange_code(&self.db, &hash, grant).await? {
            // A concurrent exchange of the same code won: it is reused all the same.
            let code = store::oauth::find_code(&self.db, &hash).await?;
            return Err(match code {
                Some(code) => self.code_reused(&code, caller).await,
                None => invalid_grant("The code is unknown."),
            });
        }
        let claims =
            Grant { client, user: &user, scopes: &scopes, auth_time: code.auth_time, amr: &code.amr };
        self.answer(claims, &code.nonce, access, refresh, now).await
    }

    /// A code presented after its exchange can only be a copy: the grant its exchange made is
    /// revoked (RFC 6749 §4.1.2), and the app signs the user in again.
    async fn code_reused(&self, code: &CodeRow, caller: &Client) -> Error {
        if let Some(grant) = &code.grant_id {
            let event = match self.reuse_event(code.user_id, &code.client_id, "code", caller).await {
                Ok(event) => event,
                Err(e) => return e,
            };
            if let Err(e) = store::oauth::revoke_grant(&self.db, grant, store::now(), Some(event)).await {
                return e;
            }
            log::warn!("an authorization code was used twice: the tokens it gave are revoked");
        }
        invalid_grant("The code was used already.")
    }

    /// Exchanges a refresh token for a new access token, ID token and refresh token (rotation),
    /// as sessions do: each token has exactly one successor, derived from it, which a retry
    /// within `refresh_grace` gets again; later, a token exchanged already revokes its grant.
    /// The event of an app's code or refresh token presented again, about its user.
    async fn reuse_event(&self, user_id: i64, client_id: &str, what: &str, caller: &Client) -> Result<Event> {
        let event =
            caller.stranger_event(EventKind::AppTokenReused).with("client_id", client_id).with("token", what);
        Ok(match store::users::find_user_by_id(&self.db, user_id).await? {
            Some(user) => event.of(user.id, &user.username),
            None => event,
        })
    }

    async fn refresh(
        &self,
        client: &ClientRow,
        request: &TokenRequest,
        caller: &Client,
    ) -> Result<TokenResponse> {
        let presented = request.refresh_token.trim();
        if presented.is_empty() {
            return Err(oauth("invalid_request", "refresh_token is required."));
        }
        let hash = token_hash(presented);
        let now = store::now();
        let invalid = || invalid_grant("The refresh token is invalid, used or revoked.");
        let target = store::oauth::find_token(&self.db, &hash)
            .await?
            .filter(|t| t.kind == "refresh")
            .ok_or_else(invalid)?;
        if target.client_id != client.id || target.revoked || target.grant_expires_at <= now {
            return Err(invalid());
        }
        let scopes = Scopes::parse(&target.scope);
        if !Scopes::parse(&request.scope).within(&scopes) {
            return Err(oauth("invalid_scope", "A refresh cannot widen the scope the user allowed."));
        }
        let user = store::users::find_user_by_id(&self.db, target.user_id).await?.ok_or_else(invalid)?;
        let successor = self.successors.tag(presented);
        let successor_hash = token_hash(&successor);
        let access = random_token();
        let access_row = (token_hash(&access), now + self.access_ttl);
        let rotated = target.used_at.is_none()
            && store::oauth::rotate_refresh_token(
                &self.db,
                &target,
                &successor_hash,
                (&access_row.0, access_row.1),
                now,
            )
            .await?;
        if !rotated {
            let used_at = target.used_at.unwrap_or(now);
            if now - used_at > self.refresh_grace {
                let event = self.reuse_event(target.user_id, &client.id, "refresh token", caller).await?;
                store::oauth::revoke_grant(&self.db, &target.grant_id, now, Some(event)).await?;
                self.metrics.refresh_reuse();
                log::warn!("an app's refresh token was reused after rotation: its grant is revoked");
                return Err(invalid());
            }
            if !store::oauth::is_token_of(&self.db, &successor_hash, &target.grant_id).await? {
                return Err(invalid());
            }
            store::oauth::insert_access_token(&self.db, &access_row.0, &target.grant_id, now, access_row.1)
                .await?;
        }
        let claims =
            Grant { client, user: &user, scopes: &scopes, auth_time: target.auth_time, amr: &target.amr };
        self.answer(claims, "", access, Some(successor), now).await
    }

    /// The token endpoint's answer, with an ID token signed for the app.
    async fn answer(
        &self,
        grant: Grant<'_>,
        nonce: &str,
        access_token: String,
        refresh_token: Option<String>,
        now: i64,
    ) -> Result<TokenResponse> {
        let id_token = self.id_token(&grant, nonce, now).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.access_ttl,
            id_token,
            scope: grant.scopes.to_text(),
            refresh_token,
        })
    }

    /// An ID token: who signed in, when and how, for this app, with the claims its scopes
    /// allow; signed with the app's algorithm (RS256 unless it asked for EdDSA).
    async fn id_token(&self, grant: &Grant<'_>, nonce: &str, now: i64) -> Result<String> {
        let mut claims = user_claims(grant.user, grant.scopes);
        let amr: Vec<&str> = Methods::parse(grant.amr).amr().to_vec();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("aud".into(), json!(grant.client.id));
        claims.insert("azp".into(), json!(grant.client.id));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + self.access_ttl));
        claims.insert("auth_time".into(), json!(grant.auth_time));
        claims.insert("amr".into(), json!(amr));
        if !nonce.is_empty() {
            claims.insert("nonce".into(), json!(nonce));
        }
        let algorithm = match grant.client.id_token_alg.as_str() {
            "EdDSA" => SigningAlgorithm::EdDSA,
            _ => SigningAlgorithm::RS256,
        };
        let keys = self.ring(algorithm).await?.keys();
        let mut header = Header::new(algorithm.jwt());
        header.kid = Some(keys.signing.kid.clone());
        encode(&header, &claims, keys.signing.encoding()).map_err(Error::internal)
    }

    /// userinfo: the claims of the access token's user that its scopes allow. A token unknown,
    /// expired or of a revoked grant is refused (`401`, `invalid_token`).
    pub async fn userinfo(&self, access_token: &str) -> Result<Value> {
        let invalid = Error::Unauthenticated { invalid_token: true };
        let now = store::now();
        let target = store::oauth::find_token(&self.db, &token_hash(access_token.trim())).await?;
        let target = target
            .filter(|t| t.kind == "access" && t.expires_at > now && !t.revoked)
            .ok_or(invalid.clone())?;
        let user = store::users::find_user_by_id(&self.db, target.user_id).await?.ok_or(invalid)?;
        Ok(Value::Object(user_claims(&user, &Scopes::parse(&target.scope))))
    }

    /// Revocation (RFC 7009): a refresh token revokes its whole grant, an access token itself.
    /// A token unknown, or another app's, is answered the same (nothing to say).
    pub async fn revoke(&self, client: &ClientRow, token: &str) -> Result<()> {
        let Some(target) = store::oauth::find_token(&self.db, &token_hash(token.trim())).await? else {
            return Ok(());
        };
        match (target.client_id == client.id, target.kind.as_str()) {
            (true, "refresh") => {
                // The app letting go of its own tokens: no security event (its consent stays).
                store::oauth::revoke_grant(&self.db, &target.grant_id, store::now(), None).await
            }
            (true, _) => store::oauth::delete_token(&self.db, &target.token_hash).await,
            (false, _) => Ok(()),
        }
    }

    /// The apps the user allowed, newest first.
    pub async fn connected_apps(&self, user: &User) -> Result<Vec<ConnectedApp>> {
        store::oauth::connected_apps(&self.db, user.id).await
    }

    /// Ends what the user allowed an app: its consent, and every token it holds.
    pub async fn revoke_app(&self, user: &User, client_id: &str, caller: &Client) -> Result<()> {
        let event = caller.event(EventKind::AppConsentRevoked, user).with("client_id", client_id);
        match store::oauth::revoke_app(&self.db, user.id, client_id, store::now(), event).await? {
            true => Ok(()),
            false => Err(Error::NotFound),
        }
    }

    /// RP-initiated logout: the app (by the ID token it holds, and/or its id) and where the
    /// browser may go afterwards (a registered `post_logout_redirect_uri`, with `state`). The
    /// hint's subject is returned, to sign out only that user's session.
    pub async fn logout(&self, request: &LogoutRequest) -> Result<Logout> {
        let hint = match request.id_token_hint.trim() {
            "" => None,
            token => Some(self.verify_hint(token).await.ok_or_else(|| {
                Error::BadRequest(
                    "The sign-out link's id_token_hint is not an ID token of this server.".into(),
                )
            })?),
        };
        let client_id = match (&hint, request.client_id.trim()) {
            (Some((_, aud)), id) if !id.is_empty() && id != aud => {
                return Err(Error::BadRequest("The sign-out link's client_id is not the ID token's.".into()))
            }
            (Some((_, aud)), _) => aud.clone(),
            (None, id) => id.to_owned(),
        };
        let client = match client_id.as_str() {
            "" => None,
            id => Some(store::oauth::find_client(&self.db, id).await?.ok_or_else(|| {
                Error::BadRequest("The sign-out link names an app that is not registered here.".into())
            })?),
        };
        let redirect = match (request.post_logout_redirect_uri.as_str(), &client) {
            ("", _) => None,
            (uri, Some(client)) if client.logout_uris.iter().any(|registered| registered == uri) => {
                let state = [("state", request.state.as_str())];
                Some(oauth::with_query(uri, if request.state.is_empty() { &[] } else { &state }))
            }
            _ => {
                return Err(Error::BadRequest(
                    "The sign-out link would send you to an address not registered for its app \
                     (post_logout_redirect_uri)."
                        .into(),
                ))
            }
        };
        Ok(Logout {
            subject: hint.map(|(sub, _)| sub),
            client_id: client.as_ref().map(|c| c.id.clone()),
            app: client.map(|c| c.name),
            redirect,
        })
    }

    /// The subject and audience of an ID token this server signed (expired or not).
    async fn verify_hint(&self, token: &str) -> Option<(String, String)> {
        let header = decode_header(token).ok()?;
        let algorithm = match header.alg {
            jsonwebtoken::Algorithm::RS256 => SigningAlgorithm::RS256,
            jsonwebtoken::Algorithm::EdDSA => SigningAlgorithm::EdDSA,
            _ => return None,
        };
        let keys = self.ring(algorithm).await.ok()?.keys();
        let key = keys.verifying(&header.kid?)?;
        let mut validation = Validation::new(algorithm.jwt());
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        let claims = decode::<Map<String, Value>>(token, key.decoding(), &validation).ok()?.claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Some((text("sub")?, text("aud")?))
    }
}

/// Registers an app; a confidential one gets a secret, returned once and stored hashed. The ID
/// tokens' RSA keys are made by the servers, at the first use.
pub async fn register(db: &Store, new: NewClient<'_>, event: Event) -> Result<Registered> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::field("name", "The app's name must be 1–100 characters, on one line."));
    }
    if new.redirect_uris.is_empty() {
        return Err(Error::field("redirect_uri", "An app needs at least one redirect address."));
    }
    let checked = |uris: &[String], field| -> Result<Vec<String>> {
        uris.iter().map(|uri| oauth::redirect_uri(uri).map_err(|e| Error::field(field, e))).collect()
    };
    let redirect_uris = checked(new.redirect_uris, "redirect_uri")?;
    let logout_uris = checked(new.logout_uris, "post_logout_redirect_uri")?;
    let secret = (!new.public).then(random_token);
    let client = ClientRow {
        id: random_token()[..22].to_owned(),
        name: name.to_owned(),
        secret_hash: secret.as_deref().map(token_hash).unwrap_or_default(),
        redirect_uris,
        logout_uris,
        id_token_alg: new.id_token_alg.name().to_owned(),
        created_at: store::now(),
    };
    let event = event.with("client_id", client.id.as_str()).with("app", client.name.as_str());
    store::oauth::insert_client(db, &client, event).await?;
    Ok(Registered { client, secret })
}

/// The parameters of RP-initiated logout.
#[derive(Debug, Default)]
pub struct LogoutRequest {
    pub id_token_hint: String,
    pub client_id: String,
    pub post_logout_redirect_uri: String,
    pub state: String,
}

/// What a logout request allows.
pub struct Logout {
    /// The user the app's ID token names (sign out only theirs).
    pub subject: Option<String>,
    /// The app, by the ID token or the request.
    pub client_id: Option<String>,
    /// The app's name.
    pub app: Option<String>,
    /// Where the browser goes afterwards.
    pub redirect: Option<String>,
}

/// Who an ID token is about, for which app, and how they signed in.
struct Grant<'a> {
    client: &'a ClientRow,
    user: &'a User,
    scopes: &'a Scopes,
    auth_time: i64,
    amr: &'a str,
}

/// The claims about `user` its scopes allow: `sub` always; `preferred_username` (profile);
/// `email` and `email_verified` (email, only an address the user confirmed); `groups`.
fn user_claims(user: &User, scopes: &Scopes) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id.to_string()));
    if scopes.has("profile") {
        claims.insert("preferred_username".into(), json!(user.username));
    }
    if let (true, Some(email), true) = (scopes.has("email"), &user.email, user.email_confirmed) {
        claims.insert("email".into(), json!(email));
        claims.insert("email_verified".into(), json!(true));
    }
    if scopes.has("groups") {
        claims.insert("groups".into(), json!(user.groups));
    }
    claims
}
