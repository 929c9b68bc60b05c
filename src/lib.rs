//! MiniAuth: username + password authentication, for browsers (pages and an `HttpOnly` cookie)
//! and API clients (JSON and `Authorization: Bearer`), on SQLite or PostgreSQL.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod logging;
pub mod routes;
pub mod store;

use rocket::figment::Figment;
use rocket::{Build, Rocket};
use rocket_dyn_templates::Template;

/// The server as configured by `Rocket.toml` and `ROCKET_*` variables.
pub fn rocket() -> Rocket<Build> {
    build(rocket::Config::figment())
}

/// The server on an explicit configuration (tests give each app its own database).
pub fn build(figment: Figment) -> Rocket<Build> {
    rocket::custom(config::with_database_url(figment))
        .attach(config::stage())
        .attach(store::stage())
        .attach(auth::stage())
        .attach(routes::stage())
        .attach(Template::fairing())
        .attach(logging::liftoff())
}
