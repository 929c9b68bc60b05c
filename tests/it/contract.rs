//! Rules that hold for every route, checked against the route table itself, so that a route
//! added tomorrow is held to them too: every state change needs its CSRF token, and the
//! OpenAPI document lists every API route with exactly the statuses it can answer. Also the
//! one rule for cookies when the session they carry ends, through both doors.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use rocket::http::{ContentType, Cookie, Status};
use rocket::local::asynchronous::LocalResponse;
use rocket::serde::json::{json, Value};

use miniauth::domain::{username_pattern, EMAIL_MAX, PASSWORD_MAX_BYTES, USERNAME_MAX, USERNAME_MIN};

use common::authenticator::SoftPasskey;
use common::browser::{
    assert_cleared, attribute, csrf_from, csrf_of_session, form_page, input_tag, set_cookie, sign_up,
};
use common::{bearer, csrf_header, json_of, TestApp, REFRESH_COOKIE, TOKEN_COOKIE};

backend_tests!(
    every_state_changing_route_refuses_a_cookie_without_its_csrf_token,
    the_openapi_document_lists_every_api_route_and_nothing_else,
    every_route_answers_exactly_the_statuses_its_openapi_entry_documents,
    revoking_the_current_session_by_cookie_clears_the_cookies_through_the_api_too,
    revoking_a_session_by_bearer_or_another_session_by_cookie_leaves_cookies_alone,
);

backend_tests_with!(
    |figment| figment.merge(("password_min_length", 13));
    the_forms_and_the_openapi_schemas_take_their_bounds_from_the_rules_and_settings
        => sqlite_the_forms_and_the_openapi_schemas_take_their_bounds_from_the_rules_and_settings,
        postgres_the_forms_and_the_openapi_schemas_take_their_bounds_from_the_rules_and_settings,
);

const PASSWORD: &str = "correct horse battery";

/// Routes that authenticate nobody by cookie, so a forged cross-site request gains nothing:
/// sign-up and sign-in of the API, the refresh whose token is in the body, and the endpoints
/// OpenID Connect apps call with their own credentials. An authorization request by POST is one
/// by GET: it comes from another site by design.
const NO_COOKIE_ROUTES: [&str; 13] = [
    "POST /oauth/authorize",
    "POST /oauth/token",
    "POST /oauth/revoke",
    "POST /oauth/userinfo",
    "POST /auth/login",
    "POST /auth/login/second-factor",
    "POST /auth/passkeys/login/start",
    "POST /auth/passkeys/login/finish",
    "POST /auth/refresh",
    "POST /auth/register",
    "POST /auth/email/confirm",
    "POST /auth/password-reset",
    "POST /auth/password-reset/confirm",
];

/// A route's path with its `{id}` filled in: an unknown session's id, or an unknown passkey's;
/// and an unknown app's `{client_id}`.
fn concrete(path: &str) -> String {
    let path = path.replace("{client_id}", "unknown-app");
    match path.contains("passkeys") {
        true => path.replace("{id}", "999999"),
        false => path.replace("{id}", "unknown-session"),
    }
}

fn is_change(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The mounted routes as `METHOD /path` with `{param}` segments and no query.
fn mounted_routes(app: &TestApp) -> BTreeSet<String> {
    app.client
        .rocket()
        .routes()
        .map(|route| {
            let path = route.uri.path().to_string().replace('<', "{").replace('>', "}");
            format!("{} {path}", route.method)
        })
        .collect()
}

/// A new session of a registered user: its access token.
async fn signed_in_token(app: &TestApp, username: &str) -> String {
    app.sign_in(username, PASSWORD).await.access
}

async fn every_state_changing_route_refuses_a_cookie_without_its_csrf_token(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let token = tokens.access;
    // The browser holds a CSRF cookie (from a page) and the session cookie; it sends no token.
    csrf_from(&app, "/login").await;
    let mut checked = BTreeSet::new();
    for route in mounted_routes(&app) {
        let (method, path) = route.split_once(' ').unwrap();
        if !is_change(method) || NO_COOKIE_ROUTES.contains(&route.as_str()) {
            continue;
        }
        let uri = concrete(path);
        let method = method.parse().unwrap();
        let request = app.client.req(method, uri).cookie(Cookie::new(TOKEN_COOKIE, token.clone()));
        let response = match path.starts_with("/auth/") {
            true => request.header(ContentType::JSON).body("{}").dispatch().await,
            false => request.header(ContentType::Form).body("").dispatch().await,
        };
        assert_eq!(response.status(), Status::Forbidden, "{route} without a CSRF token");
        checked.insert(route);
    }
    assert!(checked.len() >= 10, "only {checked:?}");
    // Nothing happened: the session and the account are still there.
    assert_eq!(app.profile(&token).await.status(), Status::Ok);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL").await, 0);
}

async fn openapi(app: &TestApp) -> Value {
    let response = app.client.get("/openapi.json").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    response.into_json().await.expect("the OpenAPI document")
}

/// Every operation of the document as `METHOD /path`, with its documented statuses.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<u16>> {
    let mut operations = BTreeMap::new();
    for (path, methods) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in methods.as_object().expect("methods") {
            let statuses =
                operation["responses"].as_object().expect("responses").keys().map(|s| s.parse().unwrap());
            operations.insert(format!("{} {path}", method.to_uppercase()), statuses.collect());
        }
    }
    operations
}

async fn the_openapi_document_lists_every_api_route_and_nothing_else(app: TestApp) {
    let api: BTreeSet<String> = mounted_routes(&app)
        .into_iter()
        .filter(|route| {
            let path = route.split_once(' ').unwrap().1;
            path.starts_with("/auth/")
                || path.starts_with("/.well-known/")
                || ["/oauth/token", "/oauth/userinfo", "/oauth/revoke"].contains(&path)
                || path == "/healthz"
                || path == "/readyz"
                || path == "/metrics"
        })
        .collect();
    let listed: BTreeSet<String> = documented(&openapi(&app).await).into_keys().collect();
    assert_eq!(api, listed, "mounted API routes (left) and the OpenAPI document (right) differ");
}

/// One request of a probe: how it authenticates and what body it sends.
#[derive(Clone, Copy, Debug)]
enum Probe {
    /// No credentials, the JSON body `{}`.
    Anonymous,
    /// A bearer token that is not one of ours.
    BadToken,
    /// A live session's token in the cookie, without the CSRF header.
    CookieWithoutCsrf,
    /// A live session's bearer token with each kind of broken or empty body.
    Malformed,
    TextBody,
    Oversized,
    EmptyObject,
}

const PROBES: [Probe; 7] = [
    Probe::Anonymous,
    Probe::BadToken,
    Probe::CookieWithoutCsrf,
    Probe::Malformed,
    Probe::TextBody,
    Probe::Oversized,
    Probe::EmptyObject,
];

async fn send<'c>(
    app: &'c TestApp,
    route: &str,
    token: Option<&str>,
    content_type: ContentType,
    body: String,
) -> LocalResponse<'c> {
    let (method, path) = route.split_once(' ').unwrap();
    let uri = concrete(path);
    let mut request = app.client.req(method.parse().unwrap(), uri).header(content_type).body(body);
    if let Some(token) = token {
        request = request.header(bearer(token));
    }
    request.dispatch().await
}

async fn probe(app: &TestApp, route: &str, probe: Probe) -> Status {
    // A fresh session for each probe: some of them succeed (a sign-out, say).
    let token = signed_in_token(app, "prober").await;
    let json = ContentType::JSON;
    let response = match probe {
        Probe::Anonymous => send(app, route, None, json, "{}".into()).await,
        Probe::BadToken => send(app, route, Some("not-a-token"), json, "{}".into()).await,
        Probe::CookieWithoutCsrf => {
            let (method, path) = route.split_once(' ').unwrap();
            let uri = concrete(path);
            let request =
                app.client.req(method.parse().unwrap(), uri).cookie(Cookie::new(TOKEN_COOKIE, token));
            request.header(json).body("{}").dispatch().await
        }
        Probe::Malformed => send(app, route, Some(&token), json, "{".into()).await,
        Probe::TextBody => send(app, route, Some(&token), ContentType::Text, "hello".into()).await,
        Probe::Oversized => {
            let body = json!({ "padding": "x".repeat(17 * 1024) }).to_string();
            send(app, route, Some(&token), json, body).await
        }
        Probe::EmptyObject => send(app, route, Some(&token), json, "{}".into()).await,
    };
    response.status()
}

/// The answers only a route's own input gives: its successes and its own failures.
async fn specific(app: &TestApp, route: &str) -> BTreeSet<u16> {
    let mut seen = BTreeSet::new();
    let mut record = |response: LocalResponse<'_>| seen.insert(response.status().code);
    match route {
        "GET /metrics" => {
            // A client `metrics_from` does not list.
            let outsider = "203.0.113.9:5000".parse::<std::net::SocketAddr>().unwrap();
            record(app.client.get("/metrics").remote(outsider).dispatch().await);
        }
        "POST /auth/register" => {
            record(app.register("newcomer", PASSWORD).await);
            record(app.register("NEWCOMER", PASSWORD).await);
            let invited =
                json!({ "username": "invited", "password": PASSWORD, "invite": "no such invitation" });
            record(app.post_json("/auth/register", invited).await);
        }
        "POST /auth/login" => {
            record(app.login("prober", PASSWORD).await);
            record(app.login("prober", "wrong password").await);
            two_step_user(app, "twostep-login").await;
            record(app.login("twostep-login", PASSWORD).await);
        }
        "POST /auth/login/second-factor" => {
            let (_, secret, _) = two_step_user(app, "twostep-finish").await;
            let mfa_token =
                || async { json_of(app.login("twostep-finish", PASSWORD).await).await["mfa_token"].clone() };
            let (first, second, third) = (mfa_token().await, mfa_token().await, mfa_token().await);
            let code = common::totp_code(&secret, common::now() + 30);
            record(
                app.post_json("/auth/login/second-factor", json!({ "mfa_token": first, "code": code })).await,
            );
            // Wrong codes, until the pair is blocked: then a good sign-in is throttled too.
            for _ in 0..5 {
                record(
                    app.post_json(
                        "/auth/login/second-factor",
                        json!({ "mfa_token": second, "code": "000000" }),
                    )
                    .await,
                );
            }
            record(
                app.post_json("/auth/login/second-factor", json!({ "mfa_token": third, "code": "000000" }))
                    .await,
            );
        }
        "POST /auth/passkeys/register/finish" => {
            let [tokens] = app.register_and_sign_in("passkey-adder", PASSWORD).await;
            let (passkey, added) = add_passkey(app, &tokens.access).await;
            record(added);
            // The same credential offered for another account: registered already.
            let [tokens] = app.register_and_sign_in("passkey-again", PASSWORD).await;
            let other = tokens.access;
            let (ceremony, options) = passkey_start(app, "/auth/passkeys/register/start", Some(&other)).await;
            let answer = passkey.attest(&options, common::authenticator::ORIGIN);
            let body = json!({ "ceremony": ceremony, "name": "Again", "credential": answer });
            record(app.post_json_as("/auth/passkeys/register/finish", &other, body).await);
        }
        "DELETE /auth/passkeys/{id}" => {
            let [tokens] = app.register_and_sign_in("passkey-remover", PASSWORD).await;
            let token = tokens.access;
            add_passkey(app, &token).await;
            let listed =
                json_of(app.client.get("/auth/passkeys").header(bearer(&token)).dispatch().await).await;
            let id = listed[0]["id"].clone();
            let remove = |id: String, password: &'static str| {
                app.client
                    .delete(format!("/auth/passkeys/{id}"))
                    .header(ContentType::JSON)
                    .header(bearer(&token))
                    .body(json!({ "password": password }).to_string())
                    .dispatch()
            };
            record(remove(id.to_string(), "wrong password").await);
            record(remove("999999".into(), PASSWORD).await);
            record(remove(id.to_string(), PASSWORD).await);
        }
        "POST /auth/passkeys/login/finish" => {
            let [tokens] = app.register_and_sign_in("passkey-owner", PASSWORD).await;
            let token = tokens.access;
            let (mut passkey, _) = add_passkey(app, &token).await;
            let sign_in = |answer: Value, ceremony: String| {
                app.post_json(
                    "/auth/passkeys/login/finish",
                    json!({ "ceremony": ceremony, "credential": answer }),
                )
            };
            let (ceremony, options) = passkey_start(app, "/auth/passkeys/login/start", None).await;
            record(sign_in(passkey.sign(&options), ceremony).await);
            // Refused answers, until the owner's pair is blocked.
            for _ in 0..6 {
                let (ceremony, options) = passkey_start(app, "/auth/passkeys/login/start", None).await;
                let mut answer = passkey.sign(&options);
                common::authenticator::tamper(&mut answer);
                record(sign_in(answer, ceremony).await);
            }
        }
        "POST /auth/totp" => {
            let token = signed_in_token(app, "prober").await;
            record(app.post_json_as("/auth/totp", &token, json!({ "password": PASSWORD })).await);
            let (token, _, _) = two_step_user(app, "twostep-again").await;
            record(app.post_json_as("/auth/totp", &token, json!({ "password": PASSWORD })).await);
        }
        "POST /auth/totp/confirm" => {
            let [fresh] = app.register_and_sign_in("nothing-pending", PASSWORD).await;
            record(app.post_json_as("/auth/totp/confirm", &fresh.access, json!({ "code": "123456" })).await);
            let [tokens] = app.register_and_sign_in("twostep-confirm", PASSWORD).await;
            let setup = json_of(
                app.post_json_as("/auth/totp", &tokens.access, json!({ "password": PASSWORD })).await,
            )
            .await;
            let code = common::totp_code(setup["secret"].as_str().unwrap(), common::now());
            record(app.post_json_as("/auth/totp/confirm", &tokens.access, json!({ "code": code })).await);
        }
        "DELETE /auth/totp" => {
            let (token, _, codes) = two_step_user(app, "twostep-off").await;
            let prober = signed_in_token(app, "prober").await;
            for (token, code) in [(&token, &codes[0]), (&prober, &"123456".to_owned())] {
                let body = json!({ "password": PASSWORD, "code": code }).to_string();
                let request = app.client.delete("/auth/totp").header(ContentType::JSON).header(bearer(token));
                record(request.body(body).dispatch().await);
            }
        }
        "POST /auth/recovery-codes" => {
            let (token, _, _) = two_step_user(app, "twostep-codes").await;
            record(app.post_json_as("/auth/recovery-codes", &token, json!({ "password": PASSWORD })).await);
            let token = signed_in_token(app, "prober").await;
            record(app.post_json_as("/auth/recovery-codes", &token, json!({ "password": PASSWORD })).await);
        }
        "POST /auth/refresh" => {
            let tokens = app.sign_in("prober", PASSWORD).await;
            record(app.refresh(&tokens.refresh).await);
            record(app.refresh("unknown").await);
        }
        "POST /auth/logout" => {
            let token = signed_in_token(app, "prober").await;
            record(app.logout(&token, "?scope=nowhere").await);
        }
        "POST /auth/password" => {
            let token = signed_in_token(app, "prober").await;
            let wrong = json!({ "current_password": "wrong password", "new_password": "another long one" });
            let request = app.client.post("/auth/password").header(bearer(&token)).header(ContentType::JSON);
            record(request.body(wrong.to_string()).dispatch().await);
            let [tokens] = app.register_and_sign_in("changer", PASSWORD).await;
            let token = tokens.access;
            let right = well_formed_body(route).to_string();
            let request = app.client.post("/auth/password").header(bearer(&token)).header(ContentType::JSON);
            record(request.body(right).dispatch().await);
        }
        "DELETE /auth/account" => {
            let token = signed_in_token(app, "prober").await;
            let request = app.client.delete("/auth/account").header(bearer(&token)).header(ContentType::JSON);
            record(request.body(json!({ "password": "wrong password" }).to_string()).dispatch().await);
            let [tokens] = app.register_and_sign_in("leaver", PASSWORD).await;
            let token = tokens.access;
            let request = app.client.delete("/auth/account").header(bearer(&token)).header(ContentType::JSON);
            record(request.body(json!({ "password": PASSWORD }).to_string()).dispatch().await);
        }
        "PUT /auth/email" => {
            for name in ["prober", "other"] {
                let token = signed_in_token(app, name).await;
                let request = app.client.put("/auth/email").header(bearer(&token)).header(ContentType::JSON);
                record(request.body(well_formed_body(route).to_string()).dispatch().await);
            }
        }
        "POST /auth/email/confirm" => {
            let token = signed_in_token(app, "prober").await;
            let request = app.client.put("/auth/email").header(bearer(&token)).header(ContentType::JSON);
            request.body(json!({ "email": "confirmer@example.com" }).to_string()).dispatch().await;
            let confirm = mailed_token(app, "confirmer@example.com", "/email/confirm").await;
            record(app.post_json("/auth/email/confirm", json!({ "token": confirm })).await);
            record(app.post_json("/auth/email/confirm", json!({ "token": confirm })).await);
            // A claim of the same address whose link is still live (as when two confirmations
            // race): the one that comes second is 409.
            let token = signed_in_token(app, "other").await;
            let request = app.client.put("/auth/email").header(bearer(&token)).header(ContentType::JSON);
            request.body(json!({ "email": "second@example.com" }).to_string()).dispatch().await;
            let second = mailed_token(app, "second@example.com", "/email/confirm").await;
            app.execute(&[
                "UPDATE users SET email = 'confirmer@example.com', email_key = 'confirmer@example.com' \
                 WHERE username = 'other'"
                    .into(),
                "UPDATE mail_tokens SET email = 'confirmer@example.com' \
                 WHERE user_id = (SELECT id FROM users WHERE username = 'other')"
                    .into(),
            ])
            .await;
            record(app.post_json("/auth/email/confirm", json!({ "token": second })).await);
        }
        "POST /auth/password-reset" => {
            record(app.post_json("/auth/password-reset", json!({ "username": "prober" })).await);
        }
        "POST /auth/password-reset/confirm" => {
            let [tokens] = app.register_and_sign_in("resetter", PASSWORD).await;
            let request =
                app.client.put("/auth/email").header(bearer(&tokens.access)).header(ContentType::JSON);
            request.body(json!({ "email": "resetter@example.com" }).to_string()).dispatch().await;
            let confirm = mailed_token(app, "resetter@example.com", "/email/confirm").await;
            app.post_json("/auth/email/confirm", json!({ "token": confirm })).await;
            app.post_json("/auth/password-reset", json!({ "email": "resetter@example.com" })).await;
            let reset = mailed_token(app, "resetter@example.com", "/password-reset/new").await;
            let body = json!({ "token": reset, "new_password": "another long one" });
            record(app.post_json("/auth/password-reset/confirm", body.clone()).await);
            record(app.post_json("/auth/password-reset/confirm", body).await);
        }
        "POST /oauth/token" => {
            let (app_id, secret) = oidc_app(app).await;
            let (code, verifier) = oidc_code(app, &app_id, "prober").await;
            let fields = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", OIDC_REDIRECT),
                ("code_verifier", verifier.as_str()),
            ];
            record(oidc_form(app, "/oauth/token", &app_id, &secret, &fields).await);
            record(oidc_form(app, "/oauth/token", &app_id, "wrong", &fields).await);
            let big = "x".repeat(17 * 1024);
            record(oidc_form(app, "/oauth/token", &app_id, &secret, &[("grant_type", &big)]).await);
        }
        "POST /oauth/revoke" => {
            let (app_id, secret) = oidc_app(app).await;
            record(oidc_form(app, "/oauth/revoke", &app_id, &secret, &[("token", "unknown")]).await);
            record(oidc_form(app, "/oauth/revoke", &app_id, &secret, &[("token", "")]).await);
            let big = "x".repeat(17 * 1024);
            record(oidc_form(app, "/oauth/revoke", &app_id, &secret, &[("token", &big)]).await);
        }
        "GET /oauth/userinfo" | "POST /oauth/userinfo" => {
            let access = oidc_access_token(app, "prober").await;
            let (method, path) = route.split_once(' ').unwrap();
            record(app.client.req(method.parse().unwrap(), path).header(bearer(&access)).dispatch().await);
        }
        "DELETE /auth/apps/{client_id}" => {
            let (app_id, _) = oidc_app(app).await;
            let token = signed_in_token(app, "prober").await;
            let user_id = app.count("SELECT id FROM users WHERE username = 'prober'").await;
            miniauth::store::oauth::consent_to(
                &app.store(),
                user_id,
                &app_id,
                ("openid", common::now()),
                miniauth::store::Event::command("test"),
            )
            .await
            .unwrap();
            record(app.client.delete(format!("/auth/apps/{app_id}")).header(bearer(&token)).dispatch().await);
        }
        "DELETE /auth/sessions/{id}" => {
            let token = signed_in_token(app, "prober").await;
            let sessions = app.sessions(&token).await;
            let other = sessions.iter().find(|s| s["current"] == false).expect("another session");
            let uri = format!("/auth/sessions/{}", other["id"].as_str().unwrap());
            record(app.client.delete(uri).header(bearer(&token)).dispatch().await);
        }
        _ => {}
    }
    seen
}

/// The redirect address of the apps the contract registers.
const OIDC_REDIRECT: &str = "https://app.example.com/cb";

/// A confidential OpenID Connect app: its id and secret.
async fn oidc_app(app: &TestApp) -> (String, String) {
    let new = miniauth::auth::oidc::NewClient {
        name: "Contract",
        redirect_uris: &[OIDC_REDIRECT.to_owned()],
        logout_uris: &[],
        public: false,
        id_token_alg: miniauth::auth::SigningAlgorithm::RS256,
    };
    let registered =
        miniauth::auth::oidc::register(&app.store(), new, miniauth::store::Event::command("test"))
            .await
            .unwrap();
    (registered.client.id, registered.secret.unwrap())
}

/// A code for the app and `username`, as the authorization endpoint stores one (the browser's
/// part is the OpenID Connect tests'): the code and its PKCE verifier.
async fn oidc_code(app: &TestApp, app_id: &str, username: &str) -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let (code, verifier) = (format!("code-{app_id}"), "v".repeat(43));
    let user_id = app.count(&format!("SELECT id FROM users WHERE username = '{username}'")).await;
    let now = common::now();
    let row = miniauth::store::oauth::CodeRow {
        code_hash: b64(&sha2::Sha256::digest(code.as_bytes())),
        client_id: app_id.to_owned(),
        user_id,
        redirect_uri: OIDC_REDIRECT.to_owned(),
        scope: "openid".into(),
        nonce: String::new(),
        code_challenge: b64(&sha2::Sha256::digest(verifier.as_bytes())),
        auth_time: now,
        amr: "pwd".into(),
        created_at: now,
        expires_at: now + 60,
        used_at: None,
        grant_id: None,
    };
    miniauth::store::oauth::insert_code(&app.store(), &row).await.unwrap();
    (code, verifier)
}

/// An app's access token for `username` (for userinfo).
async fn oidc_access_token(app: &TestApp, username: &str) -> String {
    let (app_id, secret) = oidc_app(app).await;
    let (code, verifier) = oidc_code(app, &app_id, username).await;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", OIDC_REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let tokens = json_of(oidc_form(app, "/oauth/token", &app_id, &secret, &fields).await).await;
    tokens["access_token"].as_str().expect("an access token").to_owned()
}

/// A form to an OpenID Connect endpoint, the app authenticated by `Authorization: Basic`.
async fn oidc_form<'c>(
    app: &'c TestApp,
    path: &str,
    app_id: &str,
    secret: &str,
    fields: &[(&str, &str)],
) -> LocalResponse<'c> {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{app_id}:{secret}"));
    app.client
        .post(path.to_owned())
        .header(ContentType::Form)
        .header(rocket::http::Header::new("Authorization", format!("Basic {basic}")))
        .body(common::browser::form_body(fields))
        .dispatch()
        .await
}

/// A ceremony begun at `start` (by the holder of `token`): its token and options.
async fn passkey_start(app: &TestApp, start: &str, token: Option<&str>) -> (String, Value) {
    let response = match token {
        Some(token) => app.post_json_as(start, token, json!({})).await,
        None => app.post_json(start, json!({})).await,
    };
    let started = json_of(response).await;
    (started["ceremony"].as_str().unwrap().to_owned(), started["publicKey"].clone())
}

/// A passkey added to the account of `token`: the authenticator's, and the `201`.
async fn add_passkey<'c>(app: &'c TestApp, token: &str) -> (SoftPasskey, LocalResponse<'c>) {
    let (ceremony, options) = passkey_start(app, "/auth/passkeys/register/start", Some(token)).await;
    let (answer, passkey) = SoftPasskey::register(&options);
    let body = json!({ "ceremony": ceremony, "name": "Laptop", "credential": answer });
    (passkey, app.post_json_as("/auth/passkeys/register/finish", token, body).await)
}

/// A new user with two-step sign-in on: an access token of theirs, their secret and recovery
/// codes.
async fn two_step_user(app: &TestApp, username: &str) -> (String, String, Vec<String>) {
    let [tokens] = app.register_and_sign_in(username, PASSWORD).await;
    let (secret, codes) = app.turn_on_totp(&tokens.access, PASSWORD).await;
    (tokens.access, secret, codes)
}

/// The token of the link to `path` mailed to `to` (waiting for it), the newest if several.
async fn mailed_token(app: &TestApp, to: &str, path: &str) -> String {
    let outbox = app.data_dir.path().join("outbox");
    let prefix = format!("http://localhost:8000{path}?token=");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mails = common::mail::mails_in(&outbox);
        let mail = mails.iter().rev().find(|mail| {
            common::mail::header(mail, "To").as_deref() == Some(to)
                && common::mail::unfolded(mail).contains(&prefix)
        });
        if let Some(mail) = mail {
            return common::mail::link(mail, &prefix)[prefix.len()..].to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no link {path} mailed to {to}");
        rocket::tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn every_route_answers_exactly_the_statuses_its_openapi_entry_documents(app: TestApp) {
    app.registered("prober", PASSWORD).await;
    app.registered("other", PASSWORD).await;
    let documented = documented(&openapi(&app).await);
    let mut answered: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for route in documented.keys() {
        let statuses = answered.entry(route.clone()).or_default();
        for kind in PROBES {
            statuses.insert(probe(&app, route, kind).await.code);
        }
        statuses.extend(specific(&app, route).await);
    }
    // The database out of reach: everything that needs it answers 503.
    let unavailable = TestApp::spawn_with(app.backend(), |figment| {
        figment
            .merge(("databases.miniauth.connect_timeout", 1))
            .merge(("databases.miniauth.max_connections", 2))
    })
    .await;
    let [tokens] = unavailable.register_and_sign_in("prober", PASSWORD).await;
    let _held = unavailable.hold_every_connection().await;
    for route in documented.keys() {
        let response = match route.as_str() {
            // An app's own credentials, which the database must be reached to check.
            "POST /oauth/token" | "POST /oauth/revoke" => {
                let path = route.split_once(' ').unwrap().1;
                oidc_form(&unavailable, path, "some-app", "secret", &[("token", "x"), ("grant_type", "x")])
                    .await
            }
            _ => {
                let body = well_formed_body(route).to_string();
                send(&unavailable, route, Some(&tokens.access), ContentType::JSON, body).await
            }
        };
        answered.get_mut(route).unwrap().insert(response.status().code);
    }
    // With the limits at 1, the throttle refuses a second sign-up from this address and any
    // password check after one failure (of this name, from this address).
    let throttled = TestApp::spawn_with(app.backend(), |figment| {
        figment.merge(("login_max_failures_pair", 1)).merge(("register_max_per_address_hour", 1))
    })
    .await;
    let [tokens] = throttled.register_and_sign_in("prober", PASSWORD).await;
    assert_eq!(throttled.login("prober", "wrong password").await.status(), Status::Unauthorized);
    for route in documented.iter().filter(|(_, statuses)| statuses.contains(&429)).map(|(route, _)| route) {
        let body = well_formed_body(route).to_string();
        let response = send(&throttled, route, Some(&tokens.access), ContentType::JSON, body).await;
        answered.get_mut(route).unwrap().insert(response.status().code);
    }
    // Passkeys off (a public_url of an IP address): their routes refuse with 403.
    let off =
        TestApp::spawn_with(app.backend(), |figment| figment.merge(("public_url", "http://127.0.0.1:8000")))
            .await;
    let [tokens] = off.register_and_sign_in("prober", PASSWORD).await;
    for route in documented.keys().filter(|route| route.contains("/auth/passkeys/")) {
        let body = well_formed_body(route).to_string();
        let response = send(&off, route, Some(&tokens.access), ContentType::JSON, body).await;
        answered.get_mut(route).unwrap().insert(response.status().code);
    }
    let mut wrong = Vec::new();
    for (route, statuses) in &documented {
        let seen = &answered[route];
        if seen != statuses {
            let undocumented: Vec<_> = seen.difference(statuses).collect();
            let never_seen: Vec<_> = statuses.difference(seen).collect();
            wrong.push(format!(
                "{route}: answers {undocumented:?} undocumented; documents {never_seen:?} never seen"
            ));
        }
    }
    assert!(wrong.is_empty(), "the OpenAPI document and the answers differ:\n{}", wrong.join("\n"));
}

/// A passkey's answer that reads as one (it names an account by a user handle) but was signed by
/// nothing: enough to reach the database.
fn made_up_answer() -> Value {
    let id = common::authenticator::encode(b"made-up credential");
    json!({
        "id": id, "rawId": id, "type": "public-key",
        "response": {
            "clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA", "attestationObject": "oA",
            "userHandle": common::authenticator::encode(&[7u8; 16]),
        },
        "clientExtensionResults": {},
    })
}

/// A body each route accepts as far as its shape goes, so that the request reaches the database.
fn well_formed_body(route: &str) -> Value {
    match route {
        "POST /auth/register" => json!({ "username": "someone", "password": PASSWORD }),
        "POST /auth/login" => json!({ "username": "prober", "password": PASSWORD }),
        "POST /auth/login/second-factor" => json!({ "mfa_token": "some token", "code": "123456" }),
        "DELETE /auth/passkeys/{id}" => json!({ "password": PASSWORD }),
        "POST /auth/passkeys/register/finish" => {
            json!({ "ceremony": "some ceremony", "name": "Laptop", "credential": made_up_answer() })
        }
        "POST /auth/passkeys/login/finish" => {
            json!({ "ceremony": "some ceremony", "credential": made_up_answer() })
        }
        "POST /auth/totp" | "POST /auth/recovery-codes" => json!({ "password": PASSWORD }),
        "POST /auth/totp/confirm" => json!({ "code": "123456" }),
        "DELETE /auth/totp" => json!({ "password": PASSWORD, "code": "123456" }),
        "POST /auth/refresh" => json!({ "refresh_token": "some token" }),
        "POST /auth/password" => json!({ "current_password": PASSWORD, "new_password": "another long one" }),
        "DELETE /auth/account" => json!({ "password": PASSWORD }),
        "PUT /auth/email" => json!({ "email": "shared@example.com" }),
        "POST /auth/email/confirm" => json!({ "token": "some token" }),
        "POST /auth/password-reset" => json!({ "username": "prober" }),
        "POST /auth/password-reset/confirm" => {
            json!({ "token": "some token", "new_password": "another long one" })
        }
        _ => json!({}),
    }
}

async fn revoking_the_current_session_by_cookie_clears_the_cookies_through_the_api_too(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let id = app.session_id(&tokens.access).await;
    let csrf = csrf_of_session(&app, &tokens.access).await;
    // The browser's two cookies, as the pages set them.
    let response = app
        .client
        .delete(format!("/auth/sessions/{id}"))
        .cookie(Cookie::new(TOKEN_COOKIE, tokens.access.clone()))
        .cookie(Cookie::new(REFRESH_COOKIE, tokens.refresh))
        .header(csrf_header(&csrf))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NoContent);
    assert_cleared(&response, TOKEN_COOKIE);
    assert_cleared(&response, REFRESH_COOKIE);
    assert!(!app.token_works(&tokens.access).await);
}

async fn revoking_a_session_by_bearer_or_another_session_by_cookie_leaves_cookies_alone(app: TestApp) {
    let [this, other] = app.register_and_sign_in("alice", PASSWORD).await;
    let other_id = app.session_id(&other.access).await;
    let csrf = csrf_of_session(&app, &this.access).await;
    let response = app
        .client
        .delete(format!("/auth/sessions/{other_id}"))
        .cookie(Cookie::new(TOKEN_COOKIE, this.access.clone()))
        .header(csrf_header(&csrf))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NoContent);
    assert!(set_cookie(&response, TOKEN_COOKIE).is_none(), "this session's cookie was touched");
    let id = app.session_id(&this.access).await;
    let response =
        app.client.delete(format!("/auth/sessions/{id}")).header(bearer(&this.access)).dispatch().await;
    assert_eq!(response.status(), Status::NoContent);
    assert!(set_cookie(&response, TOKEN_COOKIE).is_none(), "a bearer call set a cookie");
}

/// The length bounds of a page's field, as `(minlength, maxlength)`.
fn bounds(html: &str, field: &str) -> (Option<usize>, Option<usize>) {
    let tag = input_tag(html, field);
    let number = |name| attribute(tag, name).map(|value| value.parse().expect("a number"));
    (number("minlength"), number("maxlength"))
}

/// The username rule and the new-password rules (with `password_min_length` 13) reach every form
/// and every schema from the one place each is defined; a password to sign in or to confirm with
/// has no minimum (it may predate the setting).
async fn the_forms_and_the_openapi_schemas_take_their_bounds_from_the_rules_and_settings(app: TestApp) {
    let (username, new_password, password, email) = (
        (Some(USERNAME_MIN), Some(USERNAME_MAX)),
        (Some(13), Some(PASSWORD_MAX_BYTES)),
        (None, Some(PASSWORD_MAX_BYTES)),
        (None, Some(EMAIL_MAX)),
    );
    let register = form_page(&app, "/register").await;
    assert_eq!(bounds(&register, "username"), username);
    assert_eq!(attribute(input_tag(&register, "username"), "pattern"), Some(username_pattern()));
    assert_eq!(bounds(&register, "password"), new_password);
    assert_eq!(bounds(&register, "password_confirm"), new_password);
    let login = form_page(&app, "/login").await;
    assert_eq!(bounds(&login, "username"), username);
    assert_eq!(bounds(&login, "password"), password);
    assert_eq!(bounds(&form_page(&app, "/password-reset").await, "account"), email);
    sign_up(&app, "alice", "quiet lantern trombone").await;
    let change = form_page(&app, "/account/password").await;
    assert_eq!(bounds(&change, "current_password"), password);
    assert_eq!(bounds(&change, "new_password"), new_password);
    assert_eq!(bounds(&change, "new_password_confirm"), new_password);
    assert_eq!(bounds(&form_page(&app, "/account/email").await, "email"), email);
    assert_eq!(bounds(&form_page(&app, "/account/delete").await, "password"), password);

    // Every schema field that carries a rule, wherever it is.
    let document = openapi(&app).await;
    let mut fields = Vec::new();
    collect_fields(&document, &mut fields);
    let with = |format: &str| fields.iter().filter(|f| f["format"] == format).collect::<Vec<_>>();
    let usernames = with("username");
    assert_eq!(usernames.len(), 1, "{usernames:?}");
    for field in usernames {
        assert_eq!(field["minLength"], json!(USERNAME_MIN), "{field}");
        assert_eq!(field["maxLength"], json!(USERNAME_MAX), "{field}");
        assert_eq!(field["pattern"], json!(format!("^{}$", username_pattern())), "{field}");
    }
    let passwords = with("bcrypt-password");
    assert_eq!(passwords.len(), 3, "sign-up, change and reset: {passwords:?}");
    for field in passwords {
        // JSON Schema counts characters: 13 bytes are at least 4 characters of 4 bytes.
        assert_eq!(field["minLength"], json!(4), "{field}");
        assert_eq!(field["maxLength"], json!(PASSWORD_MAX_BYTES), "{field}");
        let description = field["description"].as_str().unwrap_or_default();
        assert!(description.starts_with(&format!("13–{PASSWORD_MAX_BYTES} **bytes**")), "{field}");
    }
}

/// Every object in `value` that has a `format`.
fn collect_fields<'v>(value: &'v Value, fields: &mut Vec<&'v Value>) {
    match value {
        Value::Object(object) => {
            if object.contains_key("format") {
                fields.push(value);
            }
            object.values().for_each(|v| collect_fields(v, fields));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_fields(v, fields)),
        _ => {}
    }
}
