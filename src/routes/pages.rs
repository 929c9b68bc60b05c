//! The HTML pages: landing, register, sign in, profile, sign out. Plain forms, no JavaScript.

use rocket::form::{Form, FromForm};
use rocket::http::{CookieJar, Status};
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect, Responder};
use rocket::State;
use rocket_dyn_templates::{context, Template};
use serde::Serialize;

use crate::auth::{self, AuthService, CsrfToken, PageUser, UserAgent};
use crate::domain::NewAccount;
use crate::error::{Error, FieldErrors};
use crate::store::{users::User, Db};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![index, register_page, register, login_page, login, logout]
}

/// A page answer that did not succeed: the form again with its errors, or an error page.
#[derive(Responder)]
pub enum Rejection {
    Form((Status, Template)),
    Error(Error),
}

impl Rejection {
    /// An error with field messages shows the form again beside its fields, with the error's
    /// status; any other error is an error page.
    pub(super) fn form(e: Error, render: impl FnOnce(&FieldErrors) -> Template) -> Rejection {
        match e.field_errors() {
            Some(errors) => Rejection::Form((e.status(), render(&errors))),
            None => Rejection::Error(e),
        }
    }
}

impl From<Error> for Rejection {
    fn from(e: Error) -> Self {
        Rejection::Error(e)
    }
}

/// The user as the pages show them.
#[derive(Serialize)]
pub(super) struct UserView {
    id: i64,
    username: String,
    created_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            id: user.id,
            username: user.username.clone(),
            created_at: crate::long_date(user.created_at),
        }
    }
}

fn signed_in_as(user: &Option<PageUser>) -> Option<UserView> {
    user.as_ref().map(|page_user| UserView::from(&page_user.user))
}

#[rocket::get("/")]
pub fn index(user: Option<PageUser>, csrf: CsrfToken) -> Template {
    Template::render("index", context! { user: signed_in_as(&user), csrf_token: csrf.token() })
}

#[derive(FromForm)]
pub struct RegisterForm {
    #[field(default = String::new())]
    username: String,
    #[field(default = String::new())]
    password: String,
    #[field(default = String::new())]
    password_confirm: String,
    #[field(default = String::new())]
    csrf_token: String,
}

fn register_form(csrf: &CsrfToken, username: &str, errors: &FieldErrors) -> Template {
    Template::render("register", context! { csrf_token: csrf.token(), username, errors })
}

#[rocket::get("/register")]
pub fn register_page(user: Option<PageUser>, csrf: CsrfToken) -> Result<Template, Redirect> {
    match user {
        Some(_) => Err(Redirect::to("/profile")),
        None => Ok(register_form(&csrf, "", &FieldErrors::new())),
    }
}

#[rocket::post("/register", data = "<form>")]
pub async fn register(
    form: Form<RegisterForm>,
    csrf: CsrfToken,
    db: &Db,
    auth: &State<AuthService>,
    agent: UserAgent,
    jar: &CookieJar<'_>,
) -> Result<Redirect, Rejection> {
    csrf.verify(&form.csrf_token, &auth.csrf)?;
    let created = match NewAccount::parse(&form.username, &form.password, Some(&form.password_confirm)) {
        Ok(account) => auth::register(db, auth, account).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(user) => {
            let signed_in = auth::start_session(db, auth, user, &agent.0).await?;
            auth.set_cookies(jar, signed_in.access_token, signed_in.refresh_token, auth.session_ttl);
            Ok(Redirect::to("/profile"))
        }
        Err(e @ Error::UsernameTaken) => {
            let errors = [("username", vec![e.detail()])].into();
            Err(Rejection::Form((Status::Conflict, register_form(&csrf, form.username.trim(), &errors))))
        }
        Err(e) => Err(Rejection::form(e, |errors| register_form(&csrf, form.username.trim(), errors))),
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
    #[field(default = String::new())]
    csrf_token: String,
}

fn login_form(
    csrf: &CsrfToken,
    username: &str,
    next: &str,
    error: Option<String>,
    notice: Option<String>,
) -> Template {
    let next = auth::safe_next(next).unwrap_or_default();
    Template::render("login", context! { csrf_token: csrf.token(), username, next, error, notice })
}

#[rocket::get("/login?<next>")]
pub fn login_page(
    next: Option<&str>,
    user: Option<PageUser>,
    flash: Option<FlashMessage<'_>>,
    csrf: CsrfToken,
) -> Result<Template, Redirect> {
    let next = next.unwrap_or_default();
    match user {
        Some(_) => Err(Redirect::to(auth::safe_next(next).unwrap_or("/profile").to_owned())),
        None => Ok(login_form(&csrf, "", next, None, flash.map(|f| f.message().to_owned()))),
    }
}

#[rocket::post("/login", data = "<form>")]
pub async fn login(
    form: Form<LoginForm>,
    csrf: CsrfToken,
    db: &Db,
    auth: &State<AuthService>,
    agent: UserAgent,
    jar: &CookieJar<'_>,
) -> Result<Redirect, Rejection> {
    csrf.verify(&form.csrf_token, &auth.csrf)?;
    match auth::sign_in(db, auth, &form.username, &form.password, &agent.0).await {
        Ok(signed_in) => {
            auth.set_cookies(jar, signed_in.access_token, signed_in.refresh_token, auth.session_ttl);
            Ok(Redirect::to(auth::safe_next(&form.next).unwrap_or("/profile").to_owned()))
        }
        Err(Error::InvalidCredentials) => {
            let page = login_form(
                &csrf,
                form.username.trim(),
                &form.next,
                Some(Error::InvalidCredentials.detail()),
                None,
            );
            Err(Rejection::Form((Status::Unauthorized, page)))
        }
        Err(e) => Err(e.into()),
    }
}

/// A form that carries nothing but its CSRF token (a button).
#[derive(FromForm)]
pub struct CsrfForm {
    #[field(default = String::new())]
    pub(super) csrf_token: String,
}

#[rocket::post("/logout", data = "<form>")]
pub async fn logout(
    user: PageUser,
    form: Form<CsrfForm>,
    csrf: CsrfToken,
    db: &Db,
    auth: &State<AuthService>,
    jar: &CookieJar<'_>,
) -> Result<Flash<Redirect>, Error> {
    csrf.verify(&form.csrf_token, &auth.csrf)?;
    auth::sign_out(db, user.user.id, &user.session_id, auth::Scope::Local).await?;
    auth.clear_cookies(jar);
    Ok(Flash::success(Redirect::to("/login"), "You have been signed out."))
}
