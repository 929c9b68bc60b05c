//! The pages for recovery by email: the account's address (set, change, remove), the page a
//! confirmation link opens, and "Forgot your password?" through to a new password. Plain forms,
//! each a [`CsrfForm`]. A link's page only shows a form: its `POST` acts, so that mail scanners
//! that fetch links change nothing.

use rocket::form::FromForm;
use rocket::http::CookieJar;
use rocket::response::{Flash, Redirect};
use rocket::State;
use rocket_dyn_templates::{context, Template};

use super::body::{Button, CsrfForm};
use super::views::{Rejection, UserView};
use crate::auth::{Accounts, Client, Methods};
use crate::domain::Lookup;
use crate::error::{Error, FieldErrors};
use crate::web::{CsrfToken, PageUser, SessionCookies};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        email_page,
        set_email,
        remove_email,
        confirm_email_page,
        confirm_email,
        forgot_page,
        forgot,
        reset_page,
        reset
    ]
}

#[derive(FromForm)]
pub struct EmailForm {
    #[field(default = String::new())]
    email: String,
}

fn email_form(user: &PageUser, csrf: &CsrfToken, email: &str, errors: &FieldErrors) -> Template {
    let user = UserView::from(&user.user);
    Template::render("email", context! { user, csrf_token: csrf.token(), email, errors })
}

#[rocket::get("/account/email")]
pub fn email_page(user: PageUser, csrf: CsrfToken) -> Template {
    let current = user.user.email.clone().unwrap_or_default();
    email_form(&user, &csrf, &current, &FieldErrors::new())
}

#[rocket::post("/account/email", data = "<form>")]
pub async fn set_email(
    user: PageUser,
    form: CsrfForm<EmailForm>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Flash<Redirect>, Rejection> {
    let email = form.fields.email.trim();
    let set = accounts.set_email(&user, email, &client).await;
    let updated =
        set.map_err(|e| Rejection::form(e, |errors| email_form(&user, &form.csrf, email, errors)))?;
    let notice = match updated.email_confirmed {
        true => "Your email address is unchanged.".to_owned(),
        false => {
            format!("We sent a confirmation link to {email}: follow it to use this address for recovery.")
        }
    };
    Ok(Flash::success(Redirect::to("/profile"), notice))
}

#[rocket::post("/account/email/remove", data = "<_button>")]
pub async fn remove_email(
    user: PageUser,
    _button: CsrfForm<Button>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Flash<Redirect>, Error> {
    accounts.remove_email(&user, &client).await?;
    Ok(Flash::success(Redirect::to("/profile"), "Your email address has been removed."))
}

#[derive(FromForm)]
pub struct TokenForm {
    #[field(default = String::new())]
    token: String,
}

/// What a confirmation link opens: a button, so that fetching the link confirms nothing.
#[rocket::get("/email/confirm?<token>")]
pub fn confirm_email_page(token: Option<&str>, csrf: CsrfToken) -> Template {
    Template::render("confirm_email", context! { csrf_token: csrf.token(), token: token.unwrap_or_default() })
}

#[rocket::post("/email/confirm", data = "<form>")]
pub async fn confirm_email(
    form: CsrfForm<TokenForm>,
    user: Option<PageUser>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Flash<Redirect>, Error> {
    accounts.confirm_email(&form.fields.token, &client).await?;
    let notice = "Your email address is confirmed: it can now receive password reset links.";
    let to = if user.is_some() { "/profile" } else { "/login" };
    Ok(Flash::success(Redirect::to(to), notice))
}

#[derive(FromForm)]
pub struct ForgotForm {
    #[field(default = String::new())]
    account: String,
}

fn forgot_form(csrf: &CsrfToken, account: &str, errors: &FieldErrors) -> Template {
    Template::render("forgot", context! { csrf_token: csrf.token(), account, errors })
}

#[rocket::get("/password-reset")]
pub fn forgot_page(csrf: CsrfToken) -> Template {
    forgot_form(&csrf, "", &FieldErrors::new())
}

/// "Check your mail": the same page whatever was typed.
#[rocket::post("/password-reset", data = "<form>")]
pub async fn forgot(
    form: CsrfForm<ForgotForm>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Template, Rejection> {
    let account = form.fields.account.trim();
    if account.is_empty() {
        let errors = FieldErrors::from([("account", vec![crate::domain::REQUIRED.to_owned()])]);
        return Err(Rejection::Form((
            rocket::http::Status::UnprocessableEntity,
            forgot_form(&form.csrf, "", &errors),
        )));
    }
    // Usernames never hold an `@`.
    let lookup = match account.contains('@') {
        true => Lookup::Email(account.to_owned()),
        false => Lookup::Username(account.to_owned()),
    };
    accounts.request_password_reset(lookup, &client).await?;
    Ok(Template::render("reset_sent", context! {}))
}

#[derive(FromForm)]
pub struct ResetForm {
    #[field(default = String::new())]
    token: String,
    #[field(default = String::new())]
    new_password: String,
    #[field(default = String::new())]
    new_password_confirm: String,
}

fn reset_form(csrf: &CsrfToken, username: &str, token: &str, errors: &FieldErrors) -> Template {
    Template::render("reset", context! { csrf_token: csrf.token(), username, token, errors })
}

/// What a reset link opens: the new-password form, when the link still works.
#[rocket::get("/password-reset/new?<token>")]
pub async fn reset_page(
    token: Option<&str>,
    csrf: CsrfToken,
    accounts: &State<Accounts>,
) -> Result<Template, Error> {
    let token = token.unwrap_or_default();
    let user = accounts.reset_link_user(token).await?;
    Ok(reset_form(&csrf, &user.username, token, &FieldErrors::new()))
}

/// Sets the new password, signs out every session, and signs this browser in.
#[rocket::post("/password-reset/new", data = "<form>")]
pub async fn reset(
    form: CsrfForm<ResetForm>,
    accounts: &State<Accounts>,
    cookies: &State<SessionCookies>,
    client: Client,
    jar: &CookieJar<'_>,
) -> Result<Flash<Redirect>, Rejection> {
    let ResetForm { token, new_password, new_password_confirm } = &form.fields;
    let reset = accounts.reset_password(token, (new_password, Some(new_password_confirm)), &client).await;
    let user = match reset {
        Ok(user) => user,
        Err(e @ Error::InvalidLink) => return Err(Rejection::Error(e)),
        Err(e) => {
            // The link still works (the rules are checked before it is spent): the form again.
            let username =
                accounts.reset_link_user(token).await.map(|user| user.username).unwrap_or_default();
            return Err(Rejection::form(e, |errors| reset_form(&form.csrf, &username, token, errors)));
        }
    };
    // A reset link proves the mailbox, not the second factor: such a user signs in, with it.
    if user.has_second_factor() {
        let notice = "Your password has been changed and every session signed out. Sign in with it and \
                      the code of your authenticator app.";
        return Ok(Flash::success(Redirect::to("/login"), notice));
    }
    let issued = accounts.open_session(&user, &client, Methods::Password).await?;
    cookies.remember_device(jar, &issued);
    cookies.set(jar, issued);
    let notice = "Your password has been changed and every other session signed out. You are signed in.";
    Ok(Flash::success(Redirect::to("/profile"), notice))
}
