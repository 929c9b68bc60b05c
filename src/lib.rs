//! MiniAuth: username + password authentication, for browsers (pages and an `HttpOnly` cookie)
//! and API clients (JSON and `Authorization: Bearer`), on SQLite or PostgreSQL.

pub mod admin;
pub mod assets;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
mod files;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod routes;
mod server;
pub mod shutdown;
pub mod store;
pub mod web;

use rocket::figment::Figment;
use rocket::{Build, Rocket};

/// The server as configured by `Rocket.toml` and `ROCKET_*` variables, over MiniAuth's defaults.
pub fn rocket() -> Rocket<Build> {
    build(config::figment())
}

/// The server on an explicit configuration (tests give each app its own database).
pub fn build(figment: Figment) -> Rocket<Build> {
    // Rocket would believe `X-Real-IP` from anyone: the client address guard decides instead.
    rocket::custom(config::with_shutdown(config::with_database_url(figment)).merge(("ip_header", false)))
        .attach(server::stage())
        .attach(logging::liftoff())
        .attach(logging::shutdown())
}
