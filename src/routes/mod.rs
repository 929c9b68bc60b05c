//! HTTP: the routes (pages, JSON API, operations), how errors are answered, the OpenAPI
//! description, and the fairings every response passes through (security headers, one log
//! line per request). Handlers parse, call an account operation, and answer; the rules live
//! in `domain` and `auth`, the SQL in `store`, which nothing here touches.

mod account_api;
mod account_pages;
mod api;
mod body;
mod errors;
mod forward_auth;
mod oauth;
mod openapi;
mod ops;
mod pages;
mod passkey_api;
mod passkey_pages;
mod recovery_api;
mod recovery_pages;
mod second_factor_api;
mod second_factor_pages;
mod views;
mod wellknown;

use std::time::Instant;

use rocket::fairing::{AdHoc, Fairing, Info, Kind};
use rocket::fs::FileServer;
use rocket::http::{ContentType, Header, Method};
use rocket::shield::{Frame, Referrer, Shield};
use rocket::{Data, Request, Response};

use crate::assets::Assets;
use crate::auth::{ForwardAuth, Provider, Registration};
use crate::domain::PasswordPolicy;
use crate::error::{Error, GuardError, HEADERS_MAX};
use crate::metrics::Metrics;

pub use errors::Problem;
pub use views::{form_rules, rfc3339};

/// Mounts the routes and attaches the response fairings; the sign-in page's policy may send
/// its form on to the hosts forward auth protects.
pub fn stage(
    forward: &ForwardAuth,
    policy: &PasswordPolicy,
    registration: Registration,
    metrics: &Metrics,
) -> AdHoc {
    let form_targets = forward.form_targets();
    let metrics = metrics.clone();
    let docs = ops::docs(policy, registration);
    AdHoc::try_on_ignite("Routes", |rocket| async move {
        let Some(static_dir) = rocket.state::<Assets>().map(|assets| assets.static_dir.clone()) else {
            return Err(rocket);
        };
        Ok(rocket
            .mount("/", pages::routes())
            .mount("/", account_pages::routes())
            .mount("/", api::routes())
            .mount("/", account_api::routes())
            .mount("/", second_factor_api::routes())
            .mount("/", passkey_api::routes())
            .mount("/", passkey_pages::routes())
            .mount("/", second_factor_pages::routes())
            .mount("/", recovery_pages::routes())
            .mount("/", recovery_api::routes())
            .mount("/", forward_auth::routes())
            .mount("/", ops::routes())
            .mount("/", wellknown::routes())
            .mount("/", oauth::routes())
            .mount("/", docs)
            .mount("/static", FileServer::from(static_dir))
            .register("/", rocket::catchers![errors::catch_all])
            .attach(Shield::default().enable(Frame::Deny).enable(Referrer::NoReferrer))
            .attach(HeaderLimit)
            .attach(SecurityHeaders::new(&form_targets))
            .attach(RequestLog { metrics }))
    })
}

/// Refuses requests whose headers pass [`HEADERS_MAX`] with a `431` like any other error
/// (problem+json, or a page): no route runs for them. (Headers past hyper's own buffer, about
/// 400 KiB, never reach Rocket: hyper answers a bare `431` itself.)
struct HeaderLimit;

#[rocket::async_trait]
impl Fairing for HeaderLimit {
    fn info(&self) -> Info {
        Info { name: "Header limit", kind: Kind::Request }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        let size: usize = req.headers().iter().map(|h| h.name().len() + h.value().len() + 4).sum();
        if size > HEADERS_MAX {
            req.local_cache(|| GuardError(Some(Error::HeadersTooLarge)));
            // A fairing cannot answer: the request goes where no route is, under `/auth/` when
            // it was an API call (the answer is then problem+json), and the catcher answers
            // with the error kept above.
            req.set_method(Method::Get);
            req.set_uri(match errors::is_api(req.uri().path().as_str()) {
                true => rocket::uri!("/auth/headers-too-large"),
                false => rocket::uri!("/headers-too-large"),
            });
        }
    }
}

/// Content-Security-Policy and caching rules for everything served.
struct SecurityHeaders {
    /// The policy of the sign-in and sign-up pages, whose forms may also lead back to a
    /// protected app.
    login_csp: String,
}

impl SecurityHeaders {
    fn new(form_targets: &str) -> Self {
        let login_csp = match form_targets {
            "" => CSP_PAGES.to_owned(),
            targets => CSP_PAGES.replace("form-action 'self'", &format!("form-action 'self' {targets}")),
        };
        SecurityHeaders { login_csp }
    }
}

const CSP_PAGES: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                         frame-ancestors 'none'; base-uri 'none'";
const PASSKEY_SCRIPT: &str = "script-src 'self'; connect-src 'self'";
/// The pages whose forms may lead back to an OpenID Connect app: signing in (and its second
/// step), the consent page, and the sign-out an app asked for.
const APP_FORM_PAGES: [&str; 4] = ["/login", "/login/code", "/oauth/authorize", "/oauth/logout"];
// Swagger UI sets styles from its script and shows data: images.
const CSP_DOCS: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info { name: "Security headers", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        // Only the documentation itself gets its looser policy (not `/docsx`).
        let path = req.uri().path();
        let docs = path == "/docs" || path.starts_with("/docs/");
        let csp = match req.uri().path().as_str() {
            _ if docs => CSP_DOCS,
            // Their forms may end in a redirect back to a protected app (`rd`).
            "/login" | "/register" => &self.login_csp,
            _ => CSP_PAGES,
        };
        // The pages with passkeys run the one script of MiniAuth's own, which asks the server
        // for a ceremony's options.
        let mut csp = match req.uri().path().as_str() {
            "/login" | "/login/code" | "/account/passkeys" => format!("{csp}; {PASSKEY_SCRIPT}"),
            _ => csp.to_owned(),
        };
        // Their forms may end in a redirect to an app that signs its users in with MiniAuth.
        if APP_FORM_PAGES.contains(&req.uri().path().as_str())
            && res.content_type() == Some(ContentType::HTML)
        {
            if let Some(provider) = req.rocket().state::<Provider>() {
                match provider.app_origins().await {
                    Ok(origins) if !origins.is_empty() => {
                        csp = csp.replacen("form-action 'self'", &format!("form-action 'self' {origins}"), 1);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::warn!("the apps' addresses are not in this page's form-action: {}", e.cause())
                    }
                }
            }
        }
        res.set_header(Header::new("Content-Security-Policy", csp));
        let asset = req.uri().path().starts_with("/static/") || req.uri().path() == "/favicon.ico";
        if !res.headers().contains("Cache-Control") && !asset && !docs {
            // Pages and API answers are about one person: never keep them in a shared cache.
            res.set_header(Header::new("Cache-Control", "no-store"));
        }
    }
}

/// One line per request: method, path (never the query), status, latency; and the same,
/// by route template instead of path, in the metrics.
struct RequestLog {
    metrics: Metrics,
}

struct Started(Instant);

#[rocket::async_trait]
impl Fairing for RequestLog {
    fn info(&self) -> Info {
        Info { name: "Request log", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        req.local_cache(|| Started(Instant::now()));
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let elapsed = req.local_cache(|| Started(Instant::now())).0.elapsed();
        let route = req.route().map_or("unmatched", |route| route.uri.path());
        self.metrics.request(req.method().as_str(), route, res.status().code, elapsed);
        log::info!(
            target: "miniauth::request",
            "{} {} {} {:.1}ms",
            req.method(),
            req.uri().path(),
            res.status().code,
            elapsed.as_secs_f64() * 1000.0
        );
    }
}
