//! The server's assembly: the settings first and, only when they parse, what is built from
//! them, each once, in order: the templates and static files, the database (pool, migrations,
//! purge), the authentication service, the routes. A stage that fails says why in one line and
//! stops the start before anything is served.

use std::sync::Arc;

use rocket::fairing::AdHoc;
use rocket_db_pools::Database;
use secrecy::ExposeSecret;

use crate::assets::{self, Assets};
use crate::auth::keys::KeyRing;
use crate::auth::oidc::IdTokenKeys;
use crate::auth::{
    self, Accounts, CsrfKey, DeviceKey, MacKey, PasswordHasher, Provider, Recovery, Registration,
    RelyingParty, SeenBlocks, Tokens,
};
use crate::config::{self, Settings};
use crate::error::{Error, Result};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::routes;
use crate::store::{self, Db, DbPool, Store};
use crate::web::SessionCookies;

/// Parses the settings and, when they are good, attaches every other stage.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("MiniAuth settings", |rocket| async move {
        let configured = rocket.figment().extract_inner::<String>("public_url").unwrap_or_default();
        if rocket.figment().profile() == "release" && configured.trim().is_empty() {
            log::error!(
                "invalid configuration: the release profile needs public_url, the address people reach \
                 MiniAuth at (e.g. ROCKET_PUBLIC_URL=https://auth.example.com): links in mails are built from it"
            );
            return Err(rocket);
        }
        let settings = match config::load(rocket.figment()) {
            Ok(settings) => settings,
            Err(e) => {
                log::error!("{e}");
                return Err(rocket);
            }
        };
        let keep_retired_keys = settings.tokens.keep_retired_keys();
        let metrics = Metrics::new();
        let routes =
            routes::stage(&settings.forward_auth, &settings.password_policy, settings.registration, &metrics);
        // Passkey buttons only where `public_url` can carry passkeys (the log says why not).
        let passkeys = RelyingParty::new(&settings.public_url).unavailable().is_none();
        let form_rules = routes::form_rules(&settings.password_policy, settings.registration, passkeys);
        Ok(rocket
            .attach(assets::stage(settings.template_dir.clone(), settings.static_dir.clone(), form_rules))
            .attach(store::stage())
            .attach(store::purge::stage(
                (settings.retention, settings.event_retention),
                keep_retired_keys,
                settings.purge_interval,
            ))
            // After the database's own stages, which `store::stage` attaches as it runs: the
            // signing keys and the shared secret live in the database.
            .attach(AdHoc::on_ignite("Authentication and routes", |rocket| async {
                rocket.attach(authentication()).attach(routes)
            }))
            .manage(metrics)
            .manage(settings))
    })
}

/// Builds the accounts and the other states of authentication.
fn authentication() -> AdHoc {
    AdHoc::try_on_ignite("Authentication", |rocket| async move {
        let (Some(settings), Some(db), Some(assets), Some(metrics)) = (
            rocket.state::<Settings>(),
            Db::fetch(&rocket),
            rocket.state::<Assets>(),
            rocket.state::<Metrics>(),
        ) else {
            return Err(rocket);
        };
        db.print_events(settings.events_to_stdout);
        let started = match Mailer::start(&settings.mail, &assets.template_dir, metrics.clone()) {
            Ok(mailer) => accounts(settings, db, mailer, metrics.clone()).await,
            Err(e) => Err(Error::internal(e)),
        };
        match started {
            Ok((accounts, csrf, provider)) => {
                let cookies = SessionCookies { scope: settings.cookies.clone() };
                let (forward, proxies) = (settings.forward_auth.clone(), settings.trusted_proxies.clone());
                let metrics_from = settings.metrics_from.clone();
                Ok(rocket
                    .manage(accounts)
                    .manage(csrf)
                    .manage(provider)
                    .manage(cookies)
                    .manage(forward)
                    .manage(proxies)
                    .manage(metrics_from))
            }
            Err(e) => {
                log::error!("cannot start authentication: {}", e.cause());
                Err(rocket)
            }
        }
    })
}

/// The accounts of these settings, with the signing keys (the configured one, or the
/// database's, followed from now on), the hashing workers and the recovery task started; the
/// CSRF key; and the OpenID Connect provider.
async fn accounts(
    settings: &Settings,
    db: &DbPool,
    mailer: Mailer,
    metrics: Metrics,
) -> Result<(Accounts, CsrfKey, Provider)> {
    for domain in settings.forward_auth.beyond_the_cookies(&settings.cookies) {
        log::warn!(
            "forward_auth_domains: the session cookies do not reach {domain}, so a browser signed in \
             here is not recognised there and is sent back and forth to the sign-in page; set \
             cookie_domain to a domain above both it and public_url's host"
        );
    }
    if settings.registration != Registration::Closed {
        for (host, name) in settings.forward_auth.listed_users() {
            if store::users::find_user(db, name).await?.is_none() {
                log::warn!(
                    "forward_auth.hosts.{host:?} admits {name}, who has no account yet: while \
                     registration is {}, whoever signs up as {name} first may use {host}; create \
                     the account (miniauth user create {name}), admit a group instead, or close \
                     registration",
                    match settings.registration {
                        Registration::Invite => "by invitation (an invitee picks their own name)",
                        _ => "open",
                    }
                );
            }
        }
    }
    for (host, name) in settings.forward_auth.listed_groups() {
        if store::groups::find(db, name).await?.is_none() {
            log::warn!(
                "forward_auth.hosts.{host:?} admits the group {name}, which does not exist: nobody gets in \
                 through it until it does (miniauth group create {name}; miniauth group add {name} USER)"
            );
        }
    }
    let secret = match &settings.token_secret {
        Some(secret) => secret.expose_secret().as_bytes().to_vec(),
        None => auth::shared_secret(db, &settings.data_dir).await?.into_bytes(),
    };
    let signing = &settings.tokens;
    let (ring, origin) = match &signing.configured_key {
        Some((setting, key)) => (KeyRing::configured(signing.algorithm, key)?, *setting),
        None => {
            let keep = store::seconds(signing.keep_retired_keys());
            (KeyRing::open(db, signing.algorithm, keep).await?, "the database")
        }
    };
    let ring = Arc::new(ring);
    Arc::clone(&ring).follow(Store::clone(db));
    log::info!(
        "signing keys: {} from {origin}, key {} signs",
        signing.algorithm.name(),
        ring.keys().signing.kid
    );
    let provider = Provider::new(
        Store::clone(db),
        &settings.public_url,
        IdTokenKeys::new(&ring, store::seconds(signing.keep_retired_keys())),
        (
            store::seconds(signing.access_ttl),
            store::seconds(settings.session_ttl),
            store::seconds(settings.refresh_grace),
        ),
        &secret,
        metrics.clone(),
    );
    let hashing = settings.hashing;
    let accounts = Accounts {
        db: Store::clone(db),
        sessions: db.sessions.clone(),
        hasher: PasswordHasher::new(hashing.cost, hashing.workers).await?,
        tokens: Tokens::new(ring, signing),
        devices: DeviceKey::new(&secret),
        limits: settings.limits,
        seen_blocks: SeenBlocks::default(),
        session_ttl: store::seconds(settings.session_ttl),
        refresh_grace: store::seconds(settings.refresh_grace),
        password_policy: settings.password_policy,
        registration: settings.registration,
        recovery: Recovery::start(&settings.public_url, settings.links, db, settings.limits, mailer),
        successors: MacKey::derive(&secret, b"miniauth refresh successor v1"),
        relying_party: RelyingParty::new(&settings.public_url),
        metrics,
    };
    if let Some(why) = accounts.passkeys_unavailable() {
        log::warn!("passkeys are off: {why}");
    }
    Ok((accounts, CsrfKey::new(&secret), provider))
}
