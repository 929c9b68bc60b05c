//! "Sign in with MiniAuth" (OpenID Connect): the authorization endpoint and its consent page,
//! the endpoints apps call (token, userinfo, revocation), RP-initiated logout, and the apps a
//! person allowed (on the profile page and in the API). The protocol is `auth::oidc`'s.

use rocket::form::{Form, FromForm};
use rocket::http::{CookieJar, Status};
use rocket::response::{Flash, Redirect};
use rocket::serde::json::Json;
use rocket::State;
use rocket_dyn_templates::{context, Template};
use serde::Serialize;
use utoipa::ToSchema;

use super::body::{Button, CsrfForm, OAuthForm};
use super::openapi::{
    AppRefusals, Authenticated, AuthenticatedChange, Database, OAuthClientForm, TokenRefusals,
};
use super::rfc3339;
use super::views::{long_date, UserView};
use crate::auth::oidc::{
    AuthorizeParams, AuthorizeRequest, ClientCredentials, LogoutRequest, Refusal, Step, TokenRequest,
    TokenResponse, Visitor,
};
use crate::auth::{Accounts, Client, Provider, Scope, SignedInUser};
use crate::domain::oauth::Scopes;
use crate::error::Error;
use crate::store::oauth::ConnectedApp;
use crate::web::{ApiUser, AppToken, BasicClient, CsrfToken, PageUser, SessionCookies};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        authorize,
        authorize_form,
        consent,
        token,
        userinfo,
        userinfo_post,
        revoke,
        logout,
        logout_confirmed,
        apps,
        revoke_app,
        revoke_app_page
    ]
}

/// The parameters of an authorization request (query or form); every one optional here, so
/// that each missing one gets its own answer.
#[derive(FromForm, Default)]
pub struct AuthorizeQuery {
    #[field(default = String::new())]
    client_id: String,
    #[field(default = String::new())]
    redirect_uri: String,
    #[field(default = String::new())]
    response_type: String,
    #[field(default = String::new())]
    scope: String,
    #[field(default = String::new())]
    state: String,
    #[field(default = String::new())]
    nonce: String,
    #[field(default = String::new())]
    code_challenge: String,
    #[field(default = String::new())]
    code_challenge_method: String,
    #[field(default = String::new())]
    prompt: String,
    #[field(default = String::new())]
    max_age: String,
    #[field(default = String::new())]
    auth_after: String,
}

impl From<AuthorizeQuery> for AuthorizeParams {
    fn from(q: AuthorizeQuery) -> Self {
        AuthorizeParams {
            client_id: q.client_id,
            redirect_uri: q.redirect_uri,
            response_type: q.response_type,
            scope: q.scope,
            state: q.state,
            nonce: q.nonce,
            code_challenge: q.code_challenge,
            code_challenge_method: q.code_challenge_method,
            prompt: q.prompt,
            max_age: q.max_age,
            auth_after: q.auth_after,
        }
    }
}

/// What the authorization endpoint answers: back to the app, to the sign-in page, or the
/// consent page.
#[derive(rocket::Responder)]
pub enum Answer {
    Redirect(Redirect),
    Page(Template),
}

/// The authorization endpoint (OpenID Connect's authorization code flow with PKCE).
#[rocket::get("/oauth/authorize?<query..>")]
pub async fn authorize(
    query: AuthorizeQuery,
    user: Option<PageUser>,
    csrf: CsrfToken,
    provider: &State<Provider>,
    client: Client,
) -> Result<Answer, Error> {
    answer_authorization(query.into(), user, (&csrf, &client), provider).await
}

/// The same, with the parameters sent as a form (OpenID Connect allows both).
#[rocket::post("/oauth/authorize", data = "<form>")]
pub async fn authorize_form(
    form: Form<AuthorizeQuery>,
    user: Option<PageUser>,
    csrf: CsrfToken,
    provider: &State<Provider>,
    client: Client,
) -> Result<Answer, Error> {
    answer_authorization(form.into_inner().into(), user, (&csrf, &client), provider).await
}

/// A checked request, or the answer that refuses it (an error page, or back to the app).
async fn checked(
    provider: &Provider,
    params: &AuthorizeParams,
) -> Result<Result<AuthorizeRequest, Answer>, Error> {
    match provider.check(params).await {
        Ok(request) => Ok(Ok(request)),
        Err(Refusal::Page(e)) => Err(e),
        Err(Refusal::ToApp(address)) => Ok(Err(Answer::Redirect(Redirect::to(address)))),
    }
}

async fn answer_authorization(
    params: AuthorizeParams,
    user: Option<PageUser>,
    (csrf, client): (&CsrfToken, &Client),
    provider: &Provider,
) -> Result<Answer, Error> {
    let request = match checked(provider, &params).await? {
        Ok(request) => request,
        Err(refused) => return Ok(refused),
    };
    let visitor = match &user {
        Some(user) => Some(Visitor { user, client, auth_time: provider.auth_time(&user.session_id).await? }),
        None => None,
    };
    Ok(match provider.authorize(&request, visitor.as_ref()).await? {
        Step::Redirect(address) => Answer::Redirect(Redirect::to(address)),
        Step::SignIn { again } => {
            let fresh = !params.max_age.is_empty()
                || params.prompt.split(' ').any(|p| p == "login" || p == "select_account");
            let mark = fresh.then(|| provider.fresh_mark(&params, crate::store::now()));
            Answer::Redirect(Redirect::to(sign_in_first(&params, mark, again)))
        }
        Step::Consent => {
            let user: Option<&SignedInUser> = user.as_deref();
            Answer::Page(consent_page(&request, &params, user, csrf))
        }
    })
}

/// What an authorization request carries onwards (to the way back from the sign-in page, or in
/// the consent form), but for `prompt`, `max_age` and the fresh-sign-in mark.
fn request_pairs(params: &AuthorizeParams) -> [(&'static str, &str); 8] {
    [
        ("client_id", params.client_id.as_str()),
        ("redirect_uri", &params.redirect_uri),
        ("response_type", &params.response_type),
        ("scope", &params.scope),
        ("state", &params.state),
        ("nonce", &params.nonce),
        ("code_challenge", &params.code_challenge),
        ("code_challenge_method", &params.code_challenge_method),
    ]
}

/// The sign-in page, coming back to this request once signed in. The way back carries `mark`
/// (a fresh sign-in asked for) in place of `prompt=login` and `max_age`, so it does not send the
/// browser round again.
fn sign_in_first(params: &AuthorizeParams, mark: Option<String>, again: bool) -> String {
    let prompt: Vec<&str> = params
        .prompt
        .split(' ')
        .filter(|p| !p.is_empty() && !["login", "select_account"].contains(p))
        .collect();
    let prompt = prompt.join(" ");
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in request_pairs(params).into_iter().chain([("prompt", prompt.as_str())]) {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    if let Some(mark) = mark {
        query.append_pair("auth_after", &mark);
    }
    let back = format!("/oauth/authorize?{}", query.finish());
    let mut login = url::form_urlencoded::Serializer::new(String::new());
    login.append_pair("next", &back);
    if again {
        login.append_pair("again", "true");
    }
    format!("/login?{}", login.finish())
}

/// The consent page: the app's name, what it will see, and who is signed in; the form carries
/// the request to be checked again.
fn consent_page(
    request: &AuthorizeRequest,
    params: &AuthorizeParams,
    user: Option<&SignedInUser>,
    csrf: &CsrfToken,
) -> Template {
    let hidden: Vec<(&str, &str)> =
        request_pairs(params).into_iter().filter(|(_, value)| !value.is_empty()).collect();
    let host = url::Url::parse(&request.redirect_uri).ok().and_then(|u| u.host_str().map(str::to_owned));
    Template::render(
        "consent",
        context! {
            csrf_token: csrf.token(),
            app: &request.client.name,
            host,
            username: user.map(|u| u.user.username.as_str()),
            user: user.map(|u| UserView::from(&u.user)),
            scopes: request.scopes.described(),
            hidden,
        },
    )
}

/// The consent page's answer: `allow` or `deny`, with the request it was shown for.
#[derive(FromForm)]
pub struct ConsentForm {
    #[field(default = String::new())]
    decision: String,
    request: AuthorizeQuery,
}

#[rocket::post("/oauth/authorize/consent", data = "<form>")]
pub async fn consent(
    user: PageUser,
    form: CsrfForm<ConsentForm>,
    provider: &State<Provider>,
    client: Client,
) -> Result<Redirect, Error> {
    let ConsentForm { decision, request } = form.fields;
    let params = AuthorizeParams::from(request);
    let request = match checked(provider, &params).await? {
        Ok(request) => request,
        Err(Answer::Redirect(refused)) => return Ok(refused),
        Err(Answer::Page(_)) => return Err(Error::BadRequest("The request could not be understood.".into())),
    };
    let allow = match decision.as_str() {
        "allow" => true,
        "deny" => false,
        _ => return Err(Error::BadRequest("Choose whether to allow the app or not.".into())),
    };
    let visitor =
        Visitor { user: &user, client: &client, auth_time: provider.auth_time(&user.session_id).await? };
    provider.consent(&request, &visitor, allow).await.map(Redirect::to)
}

/// The token endpoint's form (RFC 6749 §4.1.3 and §6), with client_secret_post's fields.
#[derive(FromForm, Default)]
pub struct TokenForm {
    #[field(default = String::new())]
    grant_type: String,
    #[field(default = String::new())]
    code: String,
    #[field(default = String::new())]
    redirect_uri: String,
    #[field(default = String::new())]
    code_verifier: String,
    #[field(default = String::new())]
    refresh_token: String,
    #[field(default = String::new())]
    scope: String,
    #[field(default = String::new())]
    client_id: String,
    #[field(default = String::new())]
    client_secret: String,
}

/// The answers of the token endpoint, never cached (RFC 6749 §5.1).
#[derive(rocket::Responder)]
#[response(content_type = "json")]
pub struct NoStore<T> {
    body: Json<T>,
    pragma: rocket::http::Header<'static>,
}

impl<T> NoStore<T> {
    fn new(body: T) -> Self {
        NoStore { body: Json(body), pragma: rocket::http::Header::new("Pragma", "no-cache") }
    }
}

/// Exchanges a code (with its PKCE verifier) or a refresh token for tokens.
#[utoipa::path(post, path = "/oauth/token", tag = "openid-connect",
    request_body(content = TokenFormDoc, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        OAuthClientForm, Database, TokenRefusals,
        (status = 200, description = "Tokens: `access_token` (for userinfo), `id_token`, and a `refresh_token` \
            when the scope had `offline_access`; never cached", body = TokenResponseDoc),
    ))]
#[rocket::post("/oauth/token", data = "<form>")]
pub async fn token(
    basic: BasicClient,
    form: OAuthForm<TokenForm>,
    provider: &State<Provider>,
    caller: Client,
) -> Result<NoStore<TokenResponse>, Error> {
    let form = form.0;
    let credentials =
        ClientCredentials { basic: basic.0, client_id: form.client_id, client_secret: form.client_secret };
    let client = provider.authenticate_client(&credentials).await?;
    let request = TokenRequest {
        grant_type: form.grant_type,
        code: form.code,
        redirect_uri: form.redirect_uri,
        code_verifier: form.code_verifier,
        refresh_token: form.refresh_token,
        scope: form.scope,
    };
    provider.token(&client, &request, &caller).await.map(NoStore::new)
}

/// The token endpoint's form, as the OpenAPI document describes it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenFormDoc {
    /// `authorization_code` or `refresh_token`.
    grant_type: String,
    /// authorization_code: the code the redirect brought.
    code: Option<String>,
    /// authorization_code: the redirect address the code was issued for.
    redirect_uri: Option<String>,
    /// authorization_code: the PKCE verifier (43–128 characters) whose S256 was the challenge.
    code_verifier: Option<String>,
    /// refresh_token: the refresh token.
    refresh_token: Option<String>,
    /// client_secret_post, or a public client's id alone.
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The revocation endpoint's form, as the OpenAPI document describes it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RevokeFormDoc {
    /// The access or refresh token to revoke.
    token: String,
    /// `access_token` or `refresh_token` (a hint only: either is found).
    token_type_hint: Option<String>,
    /// client_secret_post, or a public client's id alone.
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The token endpoint's answer, as the OpenAPI document describes it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenResponseDoc {
    access_token: String,
    /// `Bearer`.
    token_type: String,
    /// Seconds the access token (and the ID token) lives.
    expires_in: i64,
    /// The ID token (JWT, RS256 unless the app asked for EdDSA).
    id_token: String,
    scope: String,
    refresh_token: Option<String>,
}

/// The claims about the access token's user its scopes allow.
#[utoipa::path(get, path = "/oauth/userinfo", tag = "openid-connect",
    security(("bearer" = [])),
    responses(
        Authenticated, Database,
        (status = 200, description = "`sub`; `preferred_username` (scope profile); `email`, `email_verified` \
            (scope email, a confirmed address only); `groups` (scope groups)", body = Object,
            example = json!({"sub": "1", "preferred_username": "alice", "groups": ["family"]})),
    ))]
#[rocket::get("/oauth/userinfo")]
pub async fn userinfo(
    token: AppToken,
    provider: &State<Provider>,
) -> Result<NoStore<serde_json::Value>, Error> {
    provider.userinfo(&token.0).await.map(NoStore::new)
}

/// The same, by POST (OpenID Connect allows both).
#[utoipa::path(post, path = "/oauth/userinfo", tag = "openid-connect",
    security(("bearer" = [])),
    responses(
        Authenticated, Database,
        (status = 200, description = "As `GET /oauth/userinfo`", body = Object),
    ))]
#[rocket::post("/oauth/userinfo")]
pub async fn userinfo_post(
    token: AppToken,
    provider: &State<Provider>,
) -> Result<NoStore<serde_json::Value>, Error> {
    provider.userinfo(&token.0).await.map(NoStore::new)
}

/// The revocation endpoint's form (RFC 7009).
#[derive(FromForm, Default)]
pub struct RevokeForm {
    #[field(default = String::new())]
    token: String,
    #[field(default = String::new())]
    client_id: String,
    #[field(default = String::new())]
    client_secret: String,
}

/// Revokes an access token, or a refresh token with its whole grant (RFC 7009). An unknown
/// token, or another app's, gets the same `200`.
#[utoipa::path(post, path = "/oauth/revoke", tag = "openid-connect",
    request_body(content = RevokeFormDoc, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        OAuthClientForm, Database,
        (status = 200, description = "Revoked, or nothing to revoke (an unknown token, or another app's)"),
    ))]
#[rocket::post("/oauth/revoke", data = "<form>")]
pub async fn revoke(
    basic: BasicClient,
    form: OAuthForm<RevokeForm>,
    provider: &State<Provider>,
) -> Result<Status, Error> {
    let form = form.0;
    let credentials =
        ClientCredentials { basic: basic.0, client_id: form.client_id, client_secret: form.client_secret };
    let client = provider.authenticate_client(&credentials).await?;
    if form.token.trim().is_empty() {
        return Err(Error::OAuth { error: "invalid_request", description: "token is required.".into() });
    }
    provider.revoke(&client, &form.token).await?;
    Ok(Status::Ok)
}

/// RP-initiated logout's parameters.
#[derive(FromForm, Default)]
pub struct LogoutQuery {
    #[field(default = String::new())]
    id_token_hint: String,
    #[field(default = String::new())]
    client_id: String,
    #[field(default = String::new())]
    post_logout_redirect_uri: String,
    #[field(default = String::new())]
    state: String,
}

impl From<LogoutQuery> for LogoutRequest {
    fn from(q: LogoutQuery) -> Self {
        LogoutRequest {
            id_token_hint: q.id_token_hint,
            client_id: q.client_id,
            post_logout_redirect_uri: q.post_logout_redirect_uri,
            state: q.state,
        }
    }
}

/// Where the browser goes after a sign-out: back to the app, or to the sign-in page.
#[derive(rocket::Responder)]
pub enum AfterLogout {
    ToApp(Redirect),
    Here(Flash<Redirect>),
    Ask(Template),
}

fn signed_out(redirect: Option<String>) -> AfterLogout {
    match redirect {
        Some(address) => AfterLogout::ToApp(Redirect::to(address)),
        None => AfterLogout::Here(Flash::success(Redirect::to("/login"), "You have been signed out.")),
    }
}

/// RP-initiated logout: with the app's ID token of the signed-in user, the MiniAuth session
/// ends at once; without one (or with another user's), the person is asked first (a link alone
/// must not sign anyone out). Then back to a registered `post_logout_redirect_uri`, or to the
/// sign-in page.
#[rocket::get("/oauth/logout?<query..>")]
// Each is a guard Rocket fills from the request: a handler's arguments cannot be grouped.
#[allow(clippy::too_many_arguments)]
pub async fn logout(
    query: LogoutQuery,
    user: Option<PageUser>,
    csrf: CsrfToken,
    provider: &State<Provider>,
    accounts: &State<Accounts>,
    cookies: &State<SessionCookies>,
    jar: &CookieJar<'_>,
    client: Client,
) -> Result<AfterLogout, Error> {
    let request = LogoutRequest::from(query);
    let logout = provider.logout(&request).await?;
    let Some(user) = user else {
        return Ok(signed_out(logout.redirect));
    };
    match logout.subject {
        Some(subject) if subject == user.user.id.to_string() => {
            let this = accounts.sign_out(&user, Scope::Local, &client).await?;
            cookies.forget_ended(jar, &user, this);
            Ok(signed_out(logout.redirect))
        }
        // No ID token, or another user's: a link alone must not sign this browser out.
        _ => {
            let fields = [
                ("client_id", logout.client_id.as_deref().unwrap_or_default()),
                ("post_logout_redirect_uri", &request.post_logout_redirect_uri),
                ("state", &request.state),
            ];
            let hidden: Vec<_> = fields.into_iter().filter(|(_, value)| !value.is_empty()).collect();
            Ok(AfterLogout::Ask(Template::render(
                "logout",
                context! {
                    csrf_token: csrf.token(),
                    app: logout.app,
                    username: &user.user.username,
                    user: UserView::from(&user.user),
                    hidden,
                },
            )))
        }
    }
}

/// The person's answer to "sign out of MiniAuth?".
#[rocket::post("/oauth/logout", data = "<form>")]
pub async fn logout_confirmed(
    form: CsrfForm<LogoutQuery>,
    user: Option<PageUser>,
    provider: &State<Provider>,
    accounts: &State<Accounts>,
    cookies: &State<SessionCookies>,
    jar: &CookieJar<'_>,
    client: Client,
) -> Result<AfterLogout, Error> {
    let logout = provider.logout(&LogoutRequest::from(form.fields)).await?;
    if let Some(user) = user {
        let this = accounts.sign_out(&user, Scope::Local, &client).await?;
        cookies.forget_ended(jar, &user, this);
    }
    Ok(signed_out(logout.redirect))
}

/// An app the user allowed.
#[derive(Serialize, ToSchema)]
pub struct AppView {
    /// The app's client id.
    client_id: String,
    name: String,
    /// What it may see: `openid`, `profile`, `email`, `groups`, `offline_access`.
    scopes: Vec<String>,
    /// When it was allowed (RFC 3339).
    granted_at: String,
}

impl From<ConnectedApp> for AppView {
    fn from(app: ConnectedApp) -> Self {
        AppView {
            client_id: app.client_id,
            name: app.name,
            scopes: Scopes::parse(&app.scope).iter().map(str::to_owned).collect(),
            granted_at: rfc3339(app.granted_at),
        }
    }
}

/// An app the user allowed, as the profile page shows it.
#[derive(Serialize)]
pub struct AppRow {
    client_id: String,
    name: String,
    /// What it may see, as people read it.
    scopes: Vec<&'static str>,
    granted_on: String,
}

/// The apps the user allowed to sign them in ("Sign in with MiniAuth"), newest first.
#[utoipa::path(get, path = "/auth/apps", tag = "account",
    security(("bearer" = [])),
    responses(
        Authenticated, Database,
        (status = 200, description = "The connected apps", body = [AppView]),
    ))]
#[rocket::get("/auth/apps")]
pub async fn apps(user: ApiUser, provider: &State<Provider>) -> Result<Json<Vec<AppView>>, Error> {
    let apps = provider.connected_apps(&user.user).await?;
    Ok(Json(apps.into_iter().map(AppView::from).collect()))
}

/// Disconnects an app: its consent ends and every token it holds is revoked.
#[utoipa::path(delete, path = "/auth/apps/{client_id}", tag = "account",
    security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The app's client id")),
    responses(
        AuthenticatedChange, Database, AppRefusals,
        (status = 204, description = "Disconnected: its consent ended and its tokens revoked"),
    ))]
#[rocket::delete("/auth/apps/<client_id>")]
pub async fn revoke_app(
    user: ApiUser,
    client_id: &str,
    provider: &State<Provider>,
    client: Client,
) -> Result<Status, Error> {
    provider.revoke_app(&user.user, client_id, &client).await?;
    Ok(Status::NoContent)
}

/// The profile page's "Disconnect" button.
#[rocket::post("/account/apps/<client_id>/revoke", data = "<_button>")]
pub async fn revoke_app_page(
    user: PageUser,
    client_id: &str,
    _button: CsrfForm<Button>,
    provider: &State<Provider>,
    client: Client,
) -> Result<Flash<Redirect>, Error> {
    provider.revoke_app(&user.user, client_id, &client).await?;
    Ok(Flash::success(
        Redirect::to("/profile"),
        "The app is disconnected: it can no longer see your account.",
    ))
}

/// The connected apps as the profile page lists them.
pub async fn connected(provider: &Provider, user: &SignedInUser) -> Result<Vec<AppRow>, Error> {
    let apps = provider.connected_apps(&user.user).await?;
    Ok(apps
        .into_iter()
        .map(|app| AppRow {
            scopes: Scopes::parse(&app.scope).described(),
            granted_on: long_date(app.granted_at),
            client_id: app.client_id,
            name: app.name,
        })
        .collect())
}
