//! The HTML pages: landing, register, sign in, sign out. Plain forms, no JavaScript; each form
//! arrives as a [`CsrfForm`], checked before its handler runs.

use rocket::form::FromForm;
use rocket::fs::NamedFile;
use rocket::http::CookieJar;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::State;
use rocket_dyn_templates::{context, Template};

use super::body::{Button, CsrfForm};
use super::views::{safe_next, Rejection, UserView, FORM};
use crate::assets::Assets;
use crate::auth::{
    Accounts, Challenge, Client, ForwardAuth, Methods, Proof, Registration, Scope, SecondStepOptions, SignIn,
};
use crate::error::{Error, FieldErrors};
use crate::web::{CsrfToken, PageUser, SessionCookies};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        index,
        favicon,
        register_page,
        register,
        login_page,
        login,
        code_step_page,
        code_step,
        logout
    ]
}

#[rocket::get("/")]
pub fn index(user: Option<PageUser>, csrf: CsrfToken) -> Template {
    let user = user.as_ref().map(|page_user| UserView::from(&page_user.user));
    Template::render("index", context! { user, csrf_token: csrf.token() })
}

/// Browsers ask for `/favicon.ico` on every visit: the icon of the static files.
#[rocket::get("/favicon.ico")]
pub async fn favicon(assets: &State<Assets>) -> Option<NamedFile> {
    NamedFile::open(assets.static_dir.join("favicon.svg")).await.ok()
}

#[derive(FromForm)]
pub struct RegisterForm {
    #[field(default = String::new())]
    username: String,
    #[field(default = String::new())]
    password: String,
    #[field(default = String::new())]
    password_confirm: String,
    /// The invitation's token, carried from the link (`/register?invite=…`).
    #[field(default = String::new())]
    invite: String,
    /// Where to go once signed up, carried from the sign-in page (see [`Return`]).
    #[field(default = String::new())]
    next: String,
    #[field(default = String::new())]
    rd: String,
}

fn register_form(
    csrf: &CsrfToken,
    username: &str,
    invite: &str,
    back: Return,
    errors: &FieldErrors,
) -> Template {
    let sign_in_link = carrying("/login", &back, &[]);
    let Return { next, rd } = back;
    Template::render(
        "register",
        context! { csrf_token: csrf.token(), username, invite, next, rd, sign_in_link, errors },
    )
}

/// The sign-up page; with an invitation's link, its form carries the invitation, once it is
/// known to be usable (a spent one is refused here rather than after the form is filled in).
/// Where the visitor was going when it came from the sign-in page (`next`, a protected app's
/// `rd`) is carried through, and the new account goes there.
#[rocket::get("/register?<invite>&<next>&<rd>")]
pub async fn register_page(
    user: Option<PageUser>,
    csrf: CsrfToken,
    accounts: &State<Accounts>,
    forward: &State<ForwardAuth>,
    invite: Option<&str>,
    next: Option<&str>,
    rd: Option<&str>,
) -> Result<Result<Template, Redirect>, Error> {
    let back = Return::new(forward, next.unwrap_or_default(), rd.unwrap_or_default());
    if user.is_some() {
        return Ok(Err(Redirect::to(back.target())));
    }
    let invite = invite.map(str::trim).unwrap_or_default();
    if !invite.is_empty() && accounts.registration() != Registration::Closed {
        accounts.check_invitation(invite).await?;
    }
    Ok(Ok(register_form(&csrf, "", invite, back, &FieldErrors::new())))
}

#[rocket::post("/register", data = "<form>")]
pub async fn register(
    form: CsrfForm<RegisterForm>,
    accounts: &State<Accounts>,
    cookies: &State<SessionCookies>,
    forward: &State<ForwardAuth>,
    client: Client,
    jar: &CookieJar<'_>,
) -> Result<Result<Redirect, Flash<Redirect>>, Rejection> {
    let RegisterForm { username, password, password_confirm, invite, next, rd } = &form.fields;
    // People type names with stray spaces around them; the API takes names exactly.
    let username = username.trim();
    let signed_up = accounts.sign_up(username, password, Some(password_confirm), Some(invite), &client).await;
    let user = signed_up.map_err(|e| {
        Rejection::form(e, |errors| {
            register_form(&form.csrf, username, invite, Return::new(forward, next, rd), errors)
        })
    })?;
    let issued = accounts.open_session(&user, &client, Methods::Password).await?;
    cookies.remember_device(jar, &issued);
    cookies.set(jar, issued);
    Ok(signed_in_to(forward, Return::new(forward, next, rd)))
}

/// Where a browser just signed in with its password alone goes: where it was going, unless
/// that app asks for two-step sign-in, which it would only be sent back from.
fn signed_in_to(forward: &ForwardAuth, back: Return) -> Result<Redirect, Flash<Redirect>> {
    match forward.returns_to_second_factor(&back.rd) {
        true => Err(Flash::warning(Redirect::to("/account/two-factor"), SET_UP_FIRST)),
        false => Ok(Redirect::to(back.target())),
    }
}

#[derive(FromForm)]
pub struct LoginForm {
    #[field(default = String::new())]
    username: String,
    #[field(default = String::new())]
    password: String,
    #[field(default = String::new())]
    next: String,
    /// The address of a protected app to return to (forward auth).
    #[field(default = String::new())]
    rd: String,
}

/// Where the sign-in page returns a visitor to: only addresses it honours (a protected app's
/// `rd`, a local `next`), the rest dropped. Kept in the form as hidden fields.
pub(super) struct Return {
    next: String,
    rd: String,
}

impl Return {
    pub(super) fn new(forward: &ForwardAuth, next: &str, rd: &str) -> Self {
        Return {
            next: safe_next(next).unwrap_or_default().to_owned(),
            rd: forward.return_to(rd).unwrap_or_default(),
        }
    }

    /// Where a visitor signed in (or found signed in) goes: back to the protected app it came
    /// from, else to `next`, else to the profile.
    pub(super) fn target(self) -> String {
        [self.rd, self.next]
            .into_iter()
            .find(|target| !target.is_empty())
            .unwrap_or_else(|| "/profile".into())
    }
}

pub(super) fn login_form(
    csrf: &CsrfToken,
    username: &str,
    back: Return,
    errors: &FieldErrors,
    notice: Option<String>,
) -> Template {
    let sign_up_link = carrying("/register", &back, &[]);
    let Return { next, rd } = back;
    Template::render(
        "login",
        context! { csrf_token: csrf.token(), username, next, rd, sign_up_link, errors, notice },
    )
}

#[rocket::get("/login?<next>&<rd>&<again>")]
pub fn login_page(
    next: Option<&str>,
    rd: Option<&str>,
    again: Option<bool>,
    user: Option<PageUser>,
    flash: Option<FlashMessage<'_>>,
    csrf: CsrfToken,
    forward: &State<ForwardAuth>,
) -> Result<Template, Result<Redirect, Flash<Redirect>>> {
    let (next, rd) = (next.unwrap_or_default(), rd.unwrap_or_default());
    let back = Return::new(forward, next, rd);
    let notice = flash.map(|f| f.message().to_owned());
    match user {
        // The app asks for two-step sign-in and this session did not use it: signing in again
        // (with the code) will do, or, without a second factor, setting one up.
        Some(user) if user.methods == Methods::Password && forward.returns_to_second_factor(&back.rd) => {
            match user.user.has_second_factor() {
                true => Ok(login_form(
                    &csrf,
                    &user.user.username,
                    back,
                    &FieldErrors::new(),
                    Some(STEP_UP.into()),
                )),
                false => Err(Err(Flash::warning(Redirect::to("/account/two-factor"), SET_UP_FIRST))),
            }
        }
        // An app signing the user in (OpenID Connect) asks for a fresh sign-in.
        Some(user) if again == Some(true) => Ok(login_form(
            &csrf,
            &user.user.username,
            back,
            &FieldErrors::new(),
            Some(SIGN_IN_AGAIN_FOR_APP.into()),
        )),
        Some(_) => Err(Ok(Redirect::to(back.target()))),
        None => Ok(login_form(&csrf, "", back, &FieldErrors::new(), notice)),
    }
}

/// What the sign-in page says to a signed-in visitor whose app asks for a fresh sign-in.
const SIGN_IN_AGAIN_FOR_APP: &str = "The app you came from asks you to sign in again.";
/// What the sign-in page says to a signed-in visitor whose app asks for two-step sign-in.
const STEP_UP: &str = "This app asks for two-step sign-in: sign in again, with your code.";
/// Where a visitor without a second factor is sent when the app asks for two-step sign-in.
const SET_UP_FIRST: &str =
    "The app you came from asks for two-step sign-in: set it up here, then sign out, sign in again and open the app.";

#[rocket::post("/login", data = "<form>")]
pub async fn login(
    form: CsrfForm<LoginForm>,
    accounts: &State<Accounts>,
    forward: &State<ForwardAuth>,
    cookies: &State<SessionCookies>,
    client: Client,
    jar: &CookieJar<'_>,
) -> Result<Result<Redirect, Flash<Redirect>>, Rejection> {
    let LoginForm { username, password, next, rd } = &form.fields;
    let username = username.trim();
    let form_again =
        |errors: &FieldErrors| login_form(&form.csrf, username, Return::new(forward, next, rd), errors, None);
    match accounts.sign_in(username, password, &client).await {
        Ok(SignIn::Done(issued)) => {
            cookies.remember_device(jar, &issued);
            cookies.set(jar, issued);
            Ok(signed_in_to(forward, Return::new(forward, next, rd)))
        }
        // Nothing signs the browser in yet: the code page, bound to it by a cookie, and
        // still bringing it back where it was going.
        Ok(SignIn::SecondStep { token, .. }) => {
            cookies.await_second_step(jar, token);
            Ok(Ok(Redirect::to(code_page(&Return::new(forward, next, rd), false))))
        }
        Err(e @ Error::InvalidCredentials) => {
            let page = form_again(&FieldErrors::from([(FORM, vec![e.detail()])]));
            Err(Rejection::Form((e.status(), page)))
        }
        Err(e) => Err(Rejection::form(e, form_again)),
    }
}

/// `path` with the query that carries where the browser goes once signed in (and `extra`).
fn carrying(path: &str, back: &Return, extra: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [("next", back.next.as_str()), ("rd", back.rd.as_str())].iter().chain(extra) {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    match query.finish() {
        query if query.is_empty() => path.to_owned(),
        query => format!("{path}?{query}"),
    }
}

/// The code page's address, carrying where the browser goes once signed in.
fn code_page(back: &Return, recovery: bool) -> String {
    carrying("/login/code", back, if recovery { &[("recovery", "true")] } else { &[] })
}

#[derive(FromForm)]
pub struct CodeForm {
    #[field(default = String::new())]
    code: String,
    /// With a passkey instead of a code: the ceremony the page began, and the answer (JSON).
    #[field(default = String::new())]
    ceremony: String,
    #[field(default = String::new())]
    credential: String,
    #[field(default = String::new())]
    next: String,
    #[field(default = String::new())]
    rd: String,
    /// The form asks for a recovery code rather than the app's.
    #[field(default = false)]
    recovery: bool,
}

/// The code page: the app's code (or a recovery code, when `recovery` or without an app), and
/// a passkey when the user has one.
fn code_form(
    csrf: &CsrfToken,
    back: Return,
    recovery: bool,
    options: SecondStepOptions,
    errors: &FieldErrors,
) -> Template {
    let SecondStepOptions { totp, passkey } = options;
    let recovery = recovery || !totp;
    let use_other = totp.then(|| code_page(&back, !recovery));
    let (ceremony, passkey_options) = match passkey {
        Some(Challenge { ceremony, public_key }) => (ceremony, public_key.to_string()),
        None => (String::new(), String::new()),
    };
    let Return { next, rd } = back;
    Template::render(
        "login_code",
        context! { csrf_token: csrf.token(), next, rd, recovery, use_other, ceremony, passkey_options, errors },
    )
}

/// The second step of a sign-in: the code of the user's authenticator app, or (`recovery`) one
/// of their recovery codes, or a passkey. Only a browser in the middle of a sign-in gets it.
#[rocket::get("/login/code?<query..>")]
pub async fn code_step_page(
    query: CodeQuery,
    csrf: CsrfToken,
    accounts: &State<Accounts>,
    forward: &State<ForwardAuth>,
    cookies: &State<SessionCookies>,
    jar: &CookieJar<'_>,
) -> Result<Template, Result<Redirect, Error>> {
    let back = Return::new(forward, &query.next, &query.rd);
    let Some(token) = cookies.second_step(jar) else {
        return Err(Ok(Redirect::to(login_again(&back))));
    };
    match accounts.second_step_options(&token).await {
        Ok(options) => Ok(code_form(&csrf, back, query.recovery, options, &FieldErrors::new())),
        Err(Error::SignInExpired) => {
            cookies.forget_second_step(jar);
            Err(Ok(Redirect::to(login_again(&back))))
        }
        Err(e) => Err(Err(e)),
    }
}

/// The code page's query: where the browser goes once signed in, and whether the page asks for
/// a recovery code.
#[derive(FromForm)]
pub struct CodeQuery {
    #[field(default = String::new())]
    next: String,
    #[field(default = String::new())]
    rd: String,
    #[field(default = false)]
    recovery: bool,
}

/// The sign-in page again, still bringing the browser back where it was going.
fn login_again(back: &Return) -> String {
    carrying("/login", back, &[])
}

#[rocket::post("/login/code", data = "<form>")]
pub async fn code_step(
    form: CsrfForm<CodeForm>,
    accounts: &State<Accounts>,
    forward: &State<ForwardAuth>,
    cookies: &State<SessionCookies>,
    client: Client,
    jar: &CookieJar<'_>,
) -> Result<Result<Redirect, Flash<Redirect>>, Rejection> {
    let CodeForm { code, ceremony, credential, next, rd, recovery } = &form.fields;
    let back = || Return::new(forward, next, rd);
    let Some(token) = cookies.second_step(jar) else {
        return Ok(Err(Flash::error(Redirect::to(login_again(&back())), SIGN_IN_AGAIN)));
    };
    let answer = match credential.as_str() {
        "" => None,
        json => Some(serde_json::from_str::<serde_json::Value>(json).map_err(|_| Error::InvalidCode)),
    };
    let finished = match &answer {
        None => accounts.finish_sign_in(&token, Proof::Code(code), &client).await,
        Some(Ok(credential)) => {
            accounts.finish_sign_in(&token, Proof::Passkey { ceremony, credential }, &client).await
        }
        Some(Err(e)) => Err(e.clone()),
    };
    match finished {
        Ok(issued) => {
            cookies.forget_second_step(jar);
            cookies.remember_device(jar, &issued);
            cookies.set(jar, issued);
            Ok(Ok(Redirect::to(back().target())))
        }
        Err(Error::SignInExpired) => {
            cookies.forget_second_step(jar);
            Ok(Err(Flash::error(Redirect::to(login_again(&back())), SIGN_IN_AGAIN)))
        }
        Err(e) => {
            // The page again, with new passkey options (a ceremony is answered once).
            let options = match accounts.second_step_options(&token).await {
                Ok(options) => options,
                Err(failure) => return Err(Rejection::Error(failure)),
            };
            let field = if answer.is_some() { "passkey" } else { "code" };
            match e {
                Error::InvalidCode => {
                    let message = match answer {
                        Some(_) => "The passkey was not accepted: try again, or use a code.".to_owned(),
                        None => e.detail(),
                    };
                    let errors = FieldErrors::from([(field, vec![message])]);
                    let page = code_form(&form.csrf, back(), *recovery, options, &errors);
                    Err(Rejection::Form((e.status(), page)))
                }
                e => Err(Rejection::form(e, |errors| {
                    code_form(&form.csrf, back(), *recovery, options, errors)
                })),
            }
        }
    }
}

/// What the sign-in page says when a sign-in's second step ran out.
const SIGN_IN_AGAIN: &str = "That sign-in has expired or had too many wrong codes: sign in again.";

#[rocket::post("/logout", data = "<_button>")]
pub async fn logout(
    user: PageUser,
    _button: CsrfForm<Button>,
    accounts: &State<Accounts>,
    cookies: &State<SessionCookies>,
    jar: &CookieJar<'_>,
    client: Client,
) -> Result<Flash<Redirect>, Error> {
    let this = accounts.sign_out(&user, Scope::Local, &client).await?;
    cookies.forget_ended(jar, &user, this);
    Ok(Flash::success(Redirect::to("/login"), "You have been signed out."))
}
