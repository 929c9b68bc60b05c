//! The pages of passkeys: `/account/passkeys` (add one, list them, remove one behind the
//! password) and the sign-in with a passkey from `/login`. The browser's part (the options to
//! `navigator.credentials` and the answer back) is `static/passkeys.js`; what reaches these
//! handlers are plain forms, each a [`CsrfForm`], whose `credential` field holds the answer as
//! JSON.

use rocket::form::FromForm;
use rocket::http::CookieJar;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::State;
use rocket_dyn_templates::{context, Template};

use super::body::CsrfForm;
use super::pages::{login_form, Return};
use super::second_factor_pages::codes_page;
use super::views::{long_date, Rejection, UserView, FORM};
use crate::auth::{Accounts, Added, Client, ForwardAuth};
use crate::error::{Error, FieldErrors};
use crate::store::passkeys::Listed;
use crate::web::{CsrfToken, PageUser, SessionCookies};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![page, add, remove, sign_in]
}

/// A passkey as the page lists it.
#[derive(serde::Serialize)]
struct PasskeyView {
    id: i64,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
}

impl From<Listed> for PasskeyView {
    fn from(passkey: Listed) -> Self {
        PasskeyView {
            id: passkey.id,
            name: passkey.name,
            created_at: long_date(passkey.created_at),
            last_used_at: passkey.last_used_at.map(long_date),
        }
    }
}

/// The page, with the user's passkeys as they are now.
async fn passkeys_page(
    user: &PageUser,
    csrf: &CsrfToken,
    accounts: &Accounts,
    errors: &FieldErrors,
    notice: Option<String>,
) -> Result<Template, Error> {
    let render = render_with(user, csrf, accounts).await?;
    Ok(render(errors, notice))
}

/// What renders the page (its list read now) with some errors and a notice.
async fn render_with<'a>(
    user: &'a PageUser,
    csrf: &'a CsrfToken,
    accounts: &'a Accounts,
) -> Result<impl Fn(&FieldErrors, Option<String>) -> Template + 'a, Error> {
    let passkeys: Vec<PasskeyView> =
        accounts.passkeys(user).await?.into_iter().map(PasskeyView::from).collect();
    Ok(move |errors: &FieldErrors, notice: Option<String>| {
        let unavailable = accounts.passkeys_unavailable();
        let user = UserView::from(&user.user);
        Template::render(
            "passkeys",
            context! { user, csrf_token: csrf.token(), passkeys: &passkeys, unavailable, errors, notice },
        )
    })
}

/// A refused form: the page again, with the errors beside its fields (or above them).
async fn refused(e: Error, user: &PageUser, csrf: &CsrfToken, accounts: &Accounts) -> Rejection {
    let render = match render_with(user, csrf, accounts).await {
        Ok(render) => render,
        Err(failure) => return Rejection::Error(failure),
    };
    match e {
        Error::Conflict(_) | Error::Forbidden(_) | Error::NotFound | Error::BadRequest(_) => {
            let page = render(&FieldErrors::from([(FORM, vec![e.detail()])]), None);
            Rejection::Form((e.status(), page))
        }
        e => Rejection::form(e, |errors| render(errors, None)),
    }
}

#[rocket::get("/account/passkeys")]
pub async fn page(
    user: PageUser,
    csrf: CsrfToken,
    accounts: &State<Accounts>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, Error> {
    let notice = flash.map(|f| f.message().to_owned());
    passkeys_page(&user, &csrf, accounts, &FieldErrors::new(), notice).await
}

#[derive(FromForm)]
pub struct AddForm {
    #[field(default = String::new())]
    name: String,
    #[field(default = String::new())]
    ceremony: String,
    /// The browser's answer (`RegistrationResponseJSON`), put here by the page's script.
    #[field(default = String::new())]
    credential: String,
}

/// Adds the passkey the browser just made; the account's first second factor also shows the
/// recovery codes, this once.
#[rocket::post("/account/passkeys", data = "<form>")]
pub async fn add(
    user: PageUser,
    form: CsrfForm<AddForm>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Result<Template, Flash<Redirect>>, Rejection> {
    let AddForm { name, ceremony, credential } = &form.fields;
    let added = match serde_json::from_str::<serde_json::Value>(credential) {
        Ok(credential) => {
            accounts.finish_passkey_registration(&user, ceremony, name, &credential, &client).await
        }
        Err(_) => Err(Error::field(
            "credential",
            "Your browser made no passkey: adding one needs JavaScript and a browser with passkeys.",
        )),
    };
    match added {
        Ok(Added { recovery_codes: Some(codes), .. }) => Ok(Ok(codes_page(&user, &form.csrf, codes))),
        Ok(Added { passkey, .. }) => Ok(Err(Flash::success(
            Redirect::to("/account/passkeys"),
            format!("Passkey “{}” added.", passkey.name),
        ))),
        Err(e) => Err(refused(e, &user, &form.csrf, accounts).await),
    }
}

#[derive(FromForm)]
pub struct RemoveForm {
    #[field(default = String::new())]
    password: String,
}

/// Removes a passkey behind the password.
#[rocket::post("/account/passkeys/<id>/delete", data = "<form>")]
pub async fn remove(
    user: PageUser,
    id: i64,
    form: CsrfForm<RemoveForm>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Flash<Redirect>, Rejection> {
    let password = form.fields.password.as_str().into();
    match accounts.remove_passkey(&user, id, &password, &client).await {
        Ok(()) => Ok(Flash::success(Redirect::to("/account/passkeys"), "The passkey is removed.")),
        Err(e) => Err(refused(e, &user, &form.csrf, accounts).await),
    }
}

#[derive(FromForm)]
pub struct SignInForm {
    #[field(default = String::new())]
    ceremony: String,
    /// The browser's answer (`AuthenticationResponseJSON`), put here by the page's script.
    #[field(default = String::new())]
    credential: String,
    #[field(default = String::new())]
    next: String,
    #[field(default = String::new())]
    rd: String,
}

/// Signs in with a passkey alone (from the sign-in page's button, or its autofill), and
/// returns the browser where it was going.
#[rocket::post("/login/passkey", data = "<form>")]
pub async fn sign_in(
    form: CsrfForm<SignInForm>,
    accounts: &State<Accounts>,
    forward: &State<ForwardAuth>,
    cookies: &State<SessionCookies>,
    client: Client,
    jar: &CookieJar<'_>,
) -> Result<Redirect, Rejection> {
    let SignInForm { ceremony, credential, next, rd } = &form.fields;
    let finished = match serde_json::from_str::<serde_json::Value>(credential) {
        Ok(credential) => accounts.finish_passkey_sign_in(ceremony, &credential, &client).await,
        Err(_) => Err(Error::PasskeyRefused("your browser sent no passkey")),
    };
    match finished {
        Ok(issued) => {
            cookies.remember_device(jar, &issued);
            cookies.set(jar, issued);
            Ok(Redirect::to(Return::new(forward, next, rd).target()))
        }
        Err(e) => {
            let render = |errors: &FieldErrors| {
                login_form(&form.csrf, "", Return::new(forward, next, rd), errors, None)
            };
            match e {
                Error::PasskeyRefused(_) | Error::CeremonyExpired | Error::Forbidden(_) => {
                    let page = render(&FieldErrors::from([(FORM, vec![e.detail()])]));
                    Err(Rejection::Form((e.status(), page)))
                }
                e => Err(Rejection::form(e, render)),
            }
        }
    }
}
