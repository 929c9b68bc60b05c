//! The pages for managing one's own account: the profile with its sessions, changing the
//! password, deleting the account. Plain forms, each with its CSRF token.

use rocket::form::{Form, FromForm};
use rocket::http::{CookieJar, Status};
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::State;
use rocket_dyn_templates::{context, Template};
use serde::Serialize;

use super::pages::{CsrfForm, Rejection, UserView};
use crate::auth::{self, AuthService, CsrfToken, PageUser, Scope};
use crate::error::{Error, FieldErrors};
use crate::store::{self, sessions::SessionInfo, Db};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        profile,
        revoke_session,
        revoke_other_sessions,
        password_page,
        change_password,
        delete_page,
        delete_account
    ]
}

/// A session as the profile lists it.
#[derive(Serialize)]
struct SessionView {
    id: String,
    created_at: String,
    last_used_at: String,
    user_agent: String,
    current: bool,
}

impl SessionView {
    fn new(session: SessionInfo, current_id: &str) -> Self {
        SessionView {
            current: session.id == current_id,
            created_at: crate::date_time(session.created_at),
            last_used_at: crate::date_time(session.last_used_at),
            user_agent: match session.user_agent.is_empty() {
                true => "Unknown device".into(),
                false => session.user_agent,
            },
            id: session.id,
        }
    }
}

#[rocket::get("/profile")]
pub async fn profile(
    user: PageUser,
    csrf: CsrfToken,
    db: &Db,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, Error> {
    let sessions = store::sessions::list_live_sessions(db, user.user.id, store::now()).await?;
    let sessions: Vec<SessionView> =
        sessions.into_iter().map(|session| SessionView::new(session, &user.session_id)).collect();
    Ok(Template::render(
        "profile",
        context! {
            user: UserView::from(&user.user),
            csrf_token: csrf.token(),
            sessions,
            notice: flash.map(|f| f.message().to_owned()),
        },
    ))
}

#[rocket::post("/account/sessions/<id>/revoke", data = "<form>")]
pub async fn revoke_session(
    user: PageUser,
    id: &str,
    form: Form<CsrfForm>,
    csrf: CsrfToken,
    db: &Db,
    auth: &State<AuthService>,
    jar: &CookieJar<'_>,
) -> Result<Flash<Redirect>, Error> {
    csrf.verify(&form.csrf_token, &auth.csrf)?;
    if !store::sessions::revoke_user_session(db, user.user.id, id, store::now()).await? {
        return Err(Error::Status(Status::NotFound));
    }
    if id == user.session_id {
        auth.clear_cookies(jar);
        return Ok(Flash::success(Redirect::to("/login"), "You have been signed out."));
    }
    Ok(Flash::success(Redirect::to("/profile"), "That session has been signed out."))
}

#[rocket::post("/account/sessions/revoke-others", data = "<form>")]
pub async fn revoke_other_sessions(
    user: PageUser,
    form: Form<CsrfForm>,
    csrf: CsrfToken,
    db: &Db,
    auth: &State<AuthService>,
) -> Result<Flash<Redirect>, Error> {
    csrf.verify(&form.csrf_token, &auth.csrf)?;
    auth::sign_out(db, user.user.id, &user.session_id, Scope::Others).await?;
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
    #[field(default = String::new())]
    csrf_token: String,
}

fn password_form(user: &PageUser, csrf: &CsrfToken, errors: &FieldErrors) -> Template {
    Template::render(
        "password",
        context! { user: UserView::from(&user.user), csrf_token: csrf.token(), errors },
    )
}

#[rocket::get("/account/password")]
pub fn password_page(user: PageUser, csrf: CsrfToken) -> Template {
    password_form(&user, &csrf, &FieldErrors::new())
}

#[rocket::post("/account/password", data = "<form>")]
pub async fn change_password(
    user: PageUser,
    form: Form<PasswordForm>,
    csrf: CsrfToken,
    db: &Db,
    auth: &State<AuthService>,
) -> Result<Flash<Redirect>, Rejection> {
    csrf.verify(&form.csrf_token, &auth.csrf)?;
    let changed = match form.new_password == form.new_password_confirm {
        true => {
            let (current, new) = (&form.current_password, &form.new_password);
            auth::change_password(db, auth, &user.user, &user.session_id, current, new).await
        }
        false => Err(Error::field("new_password_confirm", "The passwords do not match.")),
    };
    match changed {
        Ok(()) => Ok(Flash::success(
            Redirect::to("/profile"),
            "Your password has been changed, and every other session signed out.",
        )),
        Err(e) => Err(Rejection::form(e, |errors| password_form(&user, &csrf, errors))),
    }
}

#[derive(FromForm)]
pub struct DeleteForm {
    #[field(default = String::new())]
    password: String,
    #[field(default = String::new())]
    csrf_token: String,
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
    form: Form<DeleteForm>,
    csrf: CsrfToken,
    db: &Db,
    auth: &State<AuthService>,
    jar: &CookieJar<'_>,
) -> Result<Flash<Redirect>, Rejection> {
    csrf.verify(&form.csrf_token, &auth.csrf)?;
    match auth::delete_account(db, auth, &user.user, &form.password).await {
        Ok(()) => {
            auth.clear_cookies(jar);
            Ok(Flash::success(Redirect::to("/login"), "Your account has been deleted."))
        }
        Err(e) => Err(Rejection::form(e, |errors| delete_form(&user, &csrf, errors))),
    }
}
