//! The integration tests, one binary: each module is one part of the product, on SQLite and
//! (with `MINIAUTH_TEST_POSTGRES_URL` and `-- --include-ignored`) on PostgreSQL. One binary
//! links the server once instead of once per file.

#[macro_use]
mod common;

mod account;
mod account_pages;
mod anywhere;
mod api;
mod cli;
mod client_address;
mod contract;
mod crash;
mod docs;
mod errors;
mod events;
mod file_modes;
mod floods;
mod forward_auth;
mod groups;
mod hashing;
mod instances;
mod invitations;
mod keys;
mod mail;
mod metrics;
mod oauth2_clients;
mod oidc;
mod outage;
mod pages;
mod passkeys;
mod password_policy;
mod proxies;
mod purge;
mod recovery;
mod recovery_pages;
mod registration;
mod server;
mod settings;
mod shutdown;
mod third_party;
mod throttle;
mod tokens;
mod two_step;
