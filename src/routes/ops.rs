//! Operations: liveness, readiness, and the OpenAPI description with its docs page.

use std::time::Duration;

use rocket::serde::json::{json, Json, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{Error, Problem, Result};
use crate::store::{self, Db};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![healthz, readyz]
}

/// Interactive docs at `/docs`, the description at `/openapi.json`; all files are in the binary.
pub fn docs() -> SwaggerUi {
    SwaggerUi::new("/docs/<_..>").url("/openapi.json", ApiDoc::openapi())
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "ok"}))))]
#[rocket::get("/healthz")]
pub fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Object, example = json!({"status": "ready"})),
        (status = 503, description = "The database is unreachable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before trying again"))),
    ))]
#[rocket::get("/readyz")]
pub async fn readyz(db: &Db) -> Result<Json<Value>> {
    match rocket::tokio::time::timeout(Duration::from_secs(2), store::ping(db)).await {
        Ok(Ok(())) => Ok(Json(json!({ "status": "ready" }))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Unavailable),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MiniAuth",
        description = "Username + password authentication. Errors are RFC 9457 problem details \
                       (`application/problem+json`)."
    ),
    paths(
        super::api::register,
        super::api::login,
        super::api::refresh,
        super::api::profile,
        super::api::logout,
        super::account_api::change_password,
        super::account_api::delete_account,
        super::account_api::sessions,
        super::account_api::revoke_session,
        healthz,
        readyz,
    ),
    components(schemas(super::api::LogoutScope)),
    modifiers(&BearerAuth),
    tags((name = "auth", description = "Sign up, sign in, tokens"), (name = "account", description = "The signed-in user's password, account and sessions"), (name = "operations", description = "Health checks")),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}
