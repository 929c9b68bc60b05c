//! Operations: liveness, readiness, and the OpenAPI description with its docs page.

use std::time::Duration;

use rocket::serde::json::{json, Json, Value};
use rocket::State;
use utoipa_swagger_ui::SwaggerUi;

use super::openapi::{self, Database};
use crate::auth::{Accounts, Registration};
use crate::domain::PasswordPolicy;
use crate::error::{Error, Result};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![healthz, readyz]
}

/// Interactive docs at `/docs`, the description at `/openapi.json`; all files are in the binary.
pub fn docs(policy: &PasswordPolicy, registration: Registration) -> SwaggerUi {
    SwaggerUi::new("/docs/<_..>").url("/openapi.json", openapi::document(policy, registration))
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
        Database,
        (status = 200, description = "Ready", body = Object, example = json!({"status": "ready"})),
    ))]
#[rocket::get("/readyz")]
pub async fn readyz(accounts: &State<Accounts>) -> Result<Json<Value>> {
    match rocket::tokio::time::timeout(Duration::from_secs(2), accounts.ready()).await {
        Ok(Ok(())) => Ok(Json(json!({ "status": "ready" }))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Unavailable),
    }
}
