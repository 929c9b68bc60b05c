//! Operations: liveness, readiness, and the OpenAPI description with its docs page.

use std::time::Duration;

use rocket::http::ContentType;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::{json, Json, Value};
use rocket::State;
use utoipa_swagger_ui::SwaggerUi;

use super::openapi::{self, Database};
use crate::auth::{Accounts, Registration};
use crate::config::MetricsFrom;
use crate::domain::PasswordPolicy;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::web;

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![healthz, readyz, metrics]
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

/// A scraper `metrics_from` lists, asking directly or through a trusted proxy: through a proxy
/// MiniAuth was not told of, every client would look like the proxy's address.
pub struct Scraper(bool);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Scraper {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let listed =
            req.rocket().state::<MetricsFrom>().is_some_and(|from| from.0.contains(web::client_ip(req)));
        Outcome::Success(Scraper(listed && web::direct_or_trusted(req)))
    }
}

/// Metrics in the Prometheus text format, for the clients of `metrics_from` (loopback by
/// default); `404` for everyone else.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "The metrics, in the Prometheus text format", content_type = "text/plain; version=0.0.4", body = String),
        (status = 404, description = "The client is not in `metrics_from`"),
    ))]
#[rocket::get("/metrics")]
pub fn metrics(
    scraper: Scraper,
    metrics: &State<Metrics>,
    accounts: &State<Accounts>,
) -> Result<(ContentType, String)> {
    if !scraper.0 {
        return Err(Error::NotFound);
    }
    let content_type = ContentType::parse_flexible(CONTENT_TYPE).unwrap_or(ContentType::Plain);
    Ok((content_type, metrics.render(accounts.gauges())))
}
