//! The pages for managing one's own account: the profile with its sessions, changing the
//! password, deleting the account. Plain forms, each a [`CsrfForm`].

use rocket::form::FromForm;
use rocket::http::CookieJar;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::State;
use rocket_dyn_templates::{context, Template};

use super::body::{Button, CsrfForm};
use super::views::{EventView, Rejection, SessionView, UserView};
use crate::auth::{Accounts, Client, Provider, Scope, ThisSession};
use crate::error::{Error, FieldErrors};
use crate::web::{CsrfToken, PageUser, SessionCookies};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        profile,
        activity,
        revoke_session,
        revoke_other_sessions,
        password_page,
        change_password,
        delete_page,
        delete_account
    ]
}

#[rocket::get("/profile")]
pub async fn profile(
    user: PageUser,
    csrf: CsrfToken,
    accounts: &State<Accounts>,
    provider: &State<Provider>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, Error> {
    let sessions: Vec<SessionView> =
        accounts.sessions(&user).await?.into_iter().map(SessionView::from).collect();
    let apps = super::oauth::connected(provider, &user).await?;
    Ok(Template::render(
        "profile",
        context! {
            user: UserView::from(&user.user),
            csrf_token: csrf.token(),
            sessions,
            apps,
            notice: flash.map(|f| f.message().to_owned()),
        },
    ))
}

/// The account's recent security activity.
#[rocket::get("/account/activity")]
pub async fn activity(
    user: PageUser,
    csrf: CsrfToken,
    accounts: &State<Accounts>,
) -> Result<Template, Error> {
    let events: Vec<EventView> = accounts.activity(&user).await?.into_iter().map(EventView::from).collect();
    Ok(Template::render(
        "activity",
        context! {
            user: UserView::from(&user.user),
            csrf_token: csrf.token(),
            events,
            shown: crate::auth::ACTIVITY_SHOWN,
        },
    ))
}

#[rocket::post("/account/sessions/<id>/revoke", data = "<_button>")]
pub async fn revoke_session(
    user: PageUser,
    id: &str,
    _button: CsrfForm<Button>,
    accounts: &State<Accounts>,
    cookies: &State<SessionCookies>,
    jar: &CookieJar<'_>,
    client: Client,
) -> Result<Flash<Redirect>, Error> {
    let this = accounts.revoke_session(&user, id, &client).await?;
    cookies.forget_ended(jar, &user, this);
    Ok(match this {
        ThisSession::Ended => Flash::success(Redirect::to("/login"), "You have been signed out."),
        ThisSession::Continues => {
            Flash::success(Redirect::to("/profile"), "That session has been signed out.")
        }
    })
}

#[rocket::post("/account/sessions/revoke-others", data = "<_button>")]
pub async fn revoke_other_sessions(
    user: PageUser,
    _button: CsrfForm<Button>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Flash<Redirect>, Error> {
    accounts.sign_out(&user, Scope::Others, &client).await?;
    Ok(Flash::success(Redirect::to("/profile"), "Every other session has been signed out."))
}

#[derive(FromForm)]
pub struct PasswordForm {
    #[field(default = String::new())]
    current_password: String,
    #[field(default = String::new())]
    new_password: String,
    #[field(default = String::new())]
    new_password_confirm: String,
}

fn password_form(user: &PageUser, csrf: &CsrfToken, errors: &FieldErrors) -> Template {
    let user = UserView::from(&user.user);
    Template::render("password", context! { user, csrf_token: csrf.token(), errors })
}

#[rocket::get("/account/password")]
pub fn password_page(user: PageUser, csrf: CsrfToken) -> Template {
    password_form(&user, &csrf, &FieldErrors::new())
}

#[rocket::post("/account/password", data = "<form>")]
pub async fn change_password(
    user: PageUser,
    form: CsrfForm<PasswordForm>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Flash<Redirect>, Rejection> {
    let PasswordForm { current_password, new_password, new_password_confirm } = &form.fields;
    let confirmation = Some(new_password_confirm.as_str());
    let changed =
        accounts.change_password(&user, current_password, new_password, confirmation, &client).await;
    changed.map_err(|e| Rejection::form(e, |errors| password_form(&user, &form.csrf, errors)))?;
    let notice = "Your password has been changed, and every other session signed out.";
    Ok(Flash::success(Redirect::to("/profile"), notice))
}

#[derive(FromForm)]
pub struct DeleteForm {
    #[field(default = String::new())]
    password: String,
}

fn delete_form(user: &PageUser, csrf: &CsrfToken, errors: &FieldErrors) -> Template {
    Template::render(
        "delete",
        context! { user: UserView::from(&user.user), csrf_token: csrf.token(), errors },
    )
}

#[rocket::get("/account/delete")]
pub fn delete_page(user: PageUser, csrf: CsrfToken) -> Template {
    delete_form(&user, &csrf, &FieldErrors::new())
}

#[rocket::post("/account/delete", data = "<form>")]
pub async fn delete_account(
    user: PageUser,
    form: CsrfForm<DeleteForm>,
    accounts: &State<Accounts>,
    cookies: &State<SessionCookies>,
    client: Client,
    jar: &CookieJar<'_>,
) -> Result<Flash<Redirect>, Rejection> {
    let password = form.fields.password.as_str().into();
    let deleted = accounts.delete_account(&user, &password, &client).await;
    let this = deleted.map_err(|e| Rejection::form(e, |errors| delete_form(&user, &form.csrf, errors)))?;
    cookies.forget_ended(jar, &user, this);
    Ok(Flash::success(Redirect::to("/login"), "Your account has been deleted."))
}
