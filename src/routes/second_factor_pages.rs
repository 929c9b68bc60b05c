//! The pages of two-step sign-in under `/account/two-factor`: setting up an authenticator app
//! (the password, then a QR code the server draws and the secret as text, then a first code),
//! the recovery codes (shown once, to copy or download), new ones, and turning it off (the
//! password and a code). Plain forms, each a [`CsrfForm`].

use rocket::form::FromForm;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::State;
use rocket_dyn_templates::{context, Template};

use super::body::CsrfForm;
use super::views::{Rejection, UserView};
use crate::auth::{Accounts, Client, TotpSetup};
use crate::error::{Error, FieldErrors};
use crate::web::{CsrfToken, PageUser};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![page, begin, confirm, recovery_codes, disable]
}

/// What the page shows: the set-up waiting for its first code (its QR code and secret), if any.
struct Setup {
    qr_svg: String,
    secret_groups: Vec<String>,
}

impl From<TotpSetup> for Setup {
    fn from(setup: TotpSetup) -> Self {
        Setup {
            qr_svg: qr_svg(&setup.otpauth_uri),
            secret_groups: setup
                .secret
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect(),
        }
    }
}

/// The address as a QR code, an inline SVG element (without the XML declaration).
fn qr_svg(address: &str) -> String {
    match qrcode::QrCode::new(address.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .dark_color(qrcode::render::svg::Color("#000000"))
                .light_color(qrcode::render::svg::Color("#ffffff"))
                .build();
            let start = svg.find("<svg").unwrap_or(0);
            svg[start..].replacen(
                "<svg ",
                "<svg role=\"img\" aria-label=\"QR code for your authenticator app\" ",
                1,
            )
        }
        // An address too long for a QR code: the secret, as text, still works.
        Err(_) => String::new(),
    }
}

fn two_factor_page(
    user: &PageUser,
    csrf: &CsrfToken,
    setup: Option<Setup>,
    errors: &FieldErrors,
    notice: Option<String>,
) -> Template {
    let (qr_svg, secret_groups) = match setup {
        Some(Setup { qr_svg, secret_groups }) => (Some(qr_svg), secret_groups),
        None => (None, Vec::new()),
    };
    Template::render(
        "two_factor",
        context! { user: UserView::from(&user.user), csrf_token: csrf.token(), qr_svg, secret_groups, errors, notice },
    )
}

/// A refused form: the page again, with the errors beside its fields.
async fn refused(e: Error, user: &PageUser, csrf: &CsrfToken, accounts: &Accounts) -> Rejection {
    let setup = match accounts.pending_totp(user).await {
        Ok(setup) => setup.map(Setup::from),
        Err(failure) => return Rejection::Error(failure),
    };
    Rejection::form(e, |errors| two_factor_page(user, csrf, setup, errors, None))
}

pub(super) fn codes_page(user: &PageUser, csrf: &CsrfToken, codes: Vec<String>) -> Template {
    let download = codes.join("\r\n") + "\r\n";
    let download =
        format!("data:text/plain;charset=utf-8,{}", rocket::http::RawStr::new(&download).percent_encode());
    Template::render(
        "recovery_codes",
        context! { user: UserView::from(&user.user), csrf_token: csrf.token(), codes, download },
    )
}

#[rocket::get("/account/two-factor")]
pub async fn page(
    user: PageUser,
    csrf: CsrfToken,
    accounts: &State<Accounts>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, Error> {
    let setup = accounts.pending_totp(&user).await?.map(Setup::from);
    let notice = flash.map(|f| f.message().to_owned());
    Ok(two_factor_page(&user, &csrf, setup, &FieldErrors::new(), notice))
}

#[derive(FromForm)]
pub struct PasswordForm {
    #[field(default = String::new())]
    password: String,
}

/// Starts the set-up behind the password; the page then shows the app's QR code.
#[rocket::post("/account/two-factor", data = "<form>")]
pub async fn begin(
    user: PageUser,
    form: CsrfForm<PasswordForm>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Redirect, Rejection> {
    let password = form.fields.password.as_str().into();
    match accounts.begin_totp(&user, &password, &client).await {
        Ok(_) => Ok(Redirect::to("/account/two-factor")),
        Err(e) => Err(refused(e, &user, &form.csrf, accounts).await),
    }
}

#[derive(FromForm)]
pub struct CodeForm {
    #[field(default = String::new())]
    code: String,
}

/// Turns it on with the app's first code: the recovery codes, shown this once.
#[rocket::post("/account/two-factor/confirm", data = "<form>")]
pub async fn confirm(
    user: PageUser,
    form: CsrfForm<CodeForm>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Template, Rejection> {
    match accounts.confirm_totp(&user, &form.fields.code, &client).await {
        Ok(codes) => Ok(codes_page(&user, &form.csrf, codes)),
        Err(e) => Err(refused(e, &user, &form.csrf, accounts).await),
    }
}

/// New recovery codes behind the password, shown this once.
#[rocket::post("/account/two-factor/recovery-codes", data = "<form>")]
pub async fn recovery_codes(
    user: PageUser,
    form: CsrfForm<PasswordForm>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Template, Rejection> {
    let password = form.fields.password.as_str().into();
    match accounts.replace_recovery_codes(&user, &password, &client).await {
        Ok(codes) => Ok(codes_page(&user, &form.csrf, codes)),
        Err(e) => Err(refused(e, &user, &form.csrf, accounts).await),
    }
}

#[derive(FromForm)]
pub struct DisableForm {
    #[field(default = String::new())]
    password: String,
    #[field(default = String::new())]
    code: String,
}

/// Turns it off behind the password and a code of the app (or a recovery code).
#[rocket::post("/account/two-factor/disable", data = "<form>")]
pub async fn disable(
    user: PageUser,
    form: CsrfForm<DisableForm>,
    accounts: &State<Accounts>,
    client: Client,
) -> Result<Flash<Redirect>, Rejection> {
    let password = form.fields.password.as_str().into();
    match accounts.disable_totp(&user, &password, &form.fields.code, &client).await {
        Ok(()) => Ok(Flash::success(Redirect::to("/profile"), "Two-step sign-in is off.")),
        Err(e) => Err(refused(e, &user, &form.csrf, accounts).await),
    }
}
