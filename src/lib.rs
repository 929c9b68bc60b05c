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

/// A stored time (unix seconds) as RFC 3339, e.g. `2026-11-25T16:39:37Z`.
pub fn rfc3339(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// A stored time as people read it, e.g. `25 November 2026`.
pub fn long_date(unix: i64) -> String {
    let format = time::macros::format_description!("[day padding:none] [month repr:long] [year]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// A stored time with the minute, as people read it, e.g. `25 November 2026, 16:39 UTC`.
pub fn date_time(unix: i64) -> String {
    let format =
        time::macros::format_description!("[day padding:none] [month repr:long] [year], [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}
