//! "Sign in with MiniAuth" (OpenID Connect), rule by rule, on both backends: the authorization
//! endpoint's checks in order (an unknown app or redirect address is an error page, never a
//! redirect; the rest go back to the app with `error`, `state` and `iss`), PKCE required and
//! checked, sign-in and consent (remembered, asked again, revoked), `prompt` and `max_age`,
//! codes single use (a reuse revokes what the first use gave) and short-lived, the clients'
//! authentication, ID tokens verified with the published keys, userinfo by scope, refresh
//! rotation and reuse, revocation, RP-initiated logout and the discovery document.

use crate::common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::Value;
use sha2::{Digest, Sha256};

use common::browser::{
    attribute, csrf_token, form_body, get_page, location, post_form, sign_up, submit_login,
};
use common::{bearer, expect, jwt_header, jwt_payload, problem, TestApp};
use miniauth::auth::oidc::{register, NewClient};
use miniauth::auth::SigningAlgorithm;

const PASSWORD: &str = "quiet lantern trombone";
const REDIRECT: &str = "https://app.example.com/callback";
const LOGOUT_TO: &str = "https://app.example.com/signed-out";
/// The issuer: the test app's `public_url`.
const ISSUER: &str = "http://localhost:8000";

backend_tests!(
    the_whole_flow_signs_in_with_a_verified_id_token,
    consent_is_remembered_and_asked_again_for_more,
    an_unknown_app_or_address_is_an_error_page_never_a_redirect,
    the_other_checks_go_back_to_the_app_in_order,
    pkce_is_required_and_its_verifier_checked,
    a_code_works_once_and_its_reuse_revokes_what_it_gave,
    a_code_expires_after_a_minute,
    a_code_is_bound_to_its_app_and_redirect_address,
    a_wrong_secret_is_invalid_client,
    a_public_app_uses_no_secret,
    prompt_none_answers_without_a_page,
    prompt_login_and_max_age_ask_for_a_fresh_sign_in,
    denying_consent_tells_the_app,
    userinfo_gives_what_the_scopes_allow,
    refresh_tokens_rotate_and_a_reuse_revokes_the_grant,
    no_refresh_token_without_offline_access,
    revocation_ends_a_token_or_the_whole_grant,
    disconnecting_an_app_ends_its_consent_and_its_tokens,
    the_profile_lists_connected_apps_and_disconnects_them,
    rp_initiated_logout_ends_the_session,
    logout_without_a_hint_asks_first,
    another_users_id_token_does_not_sign_this_browser_out,
    the_discovery_document_names_every_endpoint,
    rsa_keys_are_published_once_an_app_exists,
    an_app_may_ask_for_eddsa_id_tokens,
    a_user_with_a_second_factor_passes_it_first,
    the_purge_removes_spent_codes,
    the_pages_that_lead_back_to_an_app_let_their_forms_go_there,
    a_fresh_sign_in_mark_cannot_be_made_up_or_moved,
    an_administrator_cutting_a_user_off_revokes_the_apps_too,
);

backend_tests_with!(
    |figment: Figment| figment.merge(("refresh_grace", 0));
    a_spent_refresh_token_without_grace_revokes_at_once => sqlite_no_grace, postgres_no_grace,
);

/// An app registered for the tests.
pub struct App {
    pub id: String,
    pub secret: Option<String>,
}

/// Registers an app (confidential unless `public`) with the tests' redirect addresses.
pub async fn app_of(test: &TestApp, public: bool, alg: SigningAlgorithm) -> App {
    let new = NewClient {
        name: "Wiki",
        redirect_uris: &[REDIRECT.to_owned(), "http://localhost:9999/cb".to_owned()],
        logout_uris: &[LOGOUT_TO.to_owned()],
        public,
        id_token_alg: alg,
    };
    let registered =
        register(&test.store(), new, miniauth::store::Event::command("test")).await.expect("registered");
    App { id: registered.client.id, secret: registered.secret }
}

async fn confidential(test: &TestApp) -> App {
    app_of(test, false, SigningAlgorithm::RS256).await
}

/// A PKCE verifier (with every kind of character RFC 7636 allows) and its S256 challenge.
pub fn pkce() -> (String, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let verifier = format!("{}-._~", URL_SAFE_NO_PAD.encode(bytes));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// An authorization request's address: the app's id, the redirect, `openid profile`, a state,
/// a nonce and the challenge, with `extra` pairs added (or replacing one of the same name).
fn authorize_uri(app: &App, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("client_id", app.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid profile"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in extra {
        pairs.retain(|(n, _)| n != name);
        if !value.is_empty() {
            pairs.push((name, value));
        }
    }
    format!("/oauth/authorize?{}", form_body(&pairs))
}

/// The query pairs of an address.
fn query_of(address: &str) -> Vec<(String, String)> {
    let url = url::Url::parse(address).unwrap_or_else(|_| panic!("an absolute address: {address}"));
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn param(address: &str, name: &str) -> Option<String> {
    query_of(address).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Follows an authorization request while signed in: the consent page is answered `decision`
/// when shown. Returns where the app is sent back to.
async fn authorize(test: &TestApp, uri: &str, decision: &str) -> String {
    let response = test.client.get(uri.to_owned()).dispatch().await;
    match response.status() {
        Status::SeeOther => location(&response).expect("a Location"),
        Status::Ok => {
            let html = response.into_string().await.unwrap();
            let answered = answer_consent(test, &html, decision).await;
            assert_eq!(answered.status(), Status::SeeOther);
            location(&answered).expect("a Location")
        }
        other => panic!("GET {uri}: {other}: {}", response.into_string().await.unwrap_or_default()),
    }
}

/// Submits the consent page's form with `decision` (`allow` or `deny`).
async fn answer_consent<'c>(test: &'c TestApp, html: &str, decision: &str) -> LocalResponse<'c> {
    assert!(html.contains("action=\"/oauth/authorize/consent\""), "a consent page: {html}");
    let mut fields =
        vec![("csrf_token".to_owned(), csrf_token(html)), ("decision".to_owned(), decision.to_owned())];
    for tag in html.split("<input").skip(1) {
        let tag = &tag[..tag.find('>').unwrap()];
        if let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value")) {
            if name.starts_with("request.") {
                fields.push((name, common::browser::unescape_html(&value)));
            }
        }
    }
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    post_form(test, "/oauth/authorize/consent", &fields).await
}

/// Signs `alice` up (the browser is signed in) and runs a first authorization with consent:
/// the app's code.
async fn code_for_alice(test: &TestApp, app: &App, challenge: &str, extra: &[(&str, &str)]) -> String {
    sign_up(test, "alice", PASSWORD).await;
    let back = authorize(test, &authorize_uri(app, challenge, extra), "allow").await;
    assert!(back.starts_with(REDIRECT), "{back}");
    param(&back, "code").expect("a code")
}

fn basic(id: &str, secret: &str) -> Header<'static> {
    Header::new("Authorization", format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))))
}

/// A token request of the app (client_secret_basic for a confidential one).
async fn token_request<'c>(test: &'c TestApp, app: &App, fields: &[(&str, &str)]) -> LocalResponse<'c> {
    let mut fields = fields.to_vec();
    let mut request = test.client.post("/oauth/token").header(ContentType::Form);
    match &app.secret {
        Some(secret) => request = request.header(basic(&app.id, secret)),
        None => fields.push(("client_id", &app.id)),
    }
    request.body(form_body(&fields)).dispatch().await
}

async fn exchange<'c>(test: &'c TestApp, app: &App, code: &str, verifier: &str) -> LocalResponse<'c> {
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    token_request(test, app, &fields).await
}

async fn refresh<'c>(test: &'c TestApp, app: &App, refresh_token: &str) -> LocalResponse<'c> {
    token_request(test, app, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

/// An OAuth error answer: its status, problem+json with `error`.
async fn oauth_error(response: LocalResponse<'_>, status: Status, error: &str) -> Value {
    let body = problem(response, status).await;
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}

async fn userinfo<'c>(test: &'c TestApp, access: &str) -> LocalResponse<'c> {
    test.client.get("/oauth/userinfo").header(bearer(access)).dispatch().await
}

/// Verifies an ID token with the published keys, as an app would.
async fn verify_id_token(test: &TestApp, id_token: &str, audience: &str) -> Value {
    let jwks = expect(test.client.get("/.well-known/jwks.json").dispatch().await, Status::Ok).await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).expect("the kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(id_token, &key, &validation).expect("a valid ID token").claims
}

async fn the_whole_flow_signs_in_with_a_verified_id_token(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let user = common::browser::sign_up(&test, "alice", PASSWORD).await;
    drop(user);
    // The consent page names the app and what it will see.
    let (status, html) = get_page(&test, &authorize_uri(&app, &challenge, &[])).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Allow Wiki?") && html.contains("app.example.com"), "{html}");
    assert!(html.contains("Your username") && html.contains("alice"), "{html}");
    let answered = answer_consent(&test, &html, "allow").await;
    assert_eq!(answered.status(), Status::SeeOther);
    let back = location(&answered).unwrap();
    drop(answered);
    assert!(back.starts_with(&format!("{REDIRECT}?code=")), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("st4te"));
    assert_eq!(param(&back, "iss").as_deref(), Some(ISSUER));
    let code = param(&back, "code").unwrap();

    let response = exchange(&test, &app, &code, &verifier).await;
    assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    assert_eq!(response.headers().get_one("Pragma"), Some("no-cache"));
    let tokens = expect(response, Status::Ok).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert_eq!(tokens["scope"], "openid profile");
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(jwt_header(id_token)["alg"], "RS256");
    let claims = verify_id_token(&test, id_token, &app.id).await;
    let user_id = test.count("SELECT id FROM users WHERE username = 'alice'").await;
    assert_eq!(claims["sub"], user_id.to_string());
    assert_eq!(claims["aud"], app.id);
    assert_eq!(claims["nonce"], "n0nce");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!(auth_time <= claims["iat"].as_i64().unwrap() && auth_time > common::now() - 60);
    assert!(claims.get("email").is_none() && claims.get("groups").is_none(), "{claims}");

    let access = tokens["access_token"].as_str().unwrap();
    let info = expect(userinfo(&test, access).await, Status::Ok).await;
    assert_eq!(info, serde_json::json!({"sub": user_id.to_string(), "preferred_username": "alice"}));
    // The app's access token is not a MiniAuth API token.
    assert_eq!(test.profile(access).await.status(), Status::Unauthorized);
}

async fn consent_is_remembered_and_asked_again_for_more(test: TestApp) {
    let app = confidential(&test).await;
    let (_, challenge) = pkce();
    code_for_alice(&test, &app, &challenge, &[]).await;
    // Allowed once: straight back, no page.
    let again = test.client.get(authorize_uri(&app, &challenge, &[])).dispatch().await;
    assert_eq!(again.status(), Status::SeeOther);
    assert!(param(&location(&again).unwrap(), "code").is_some());
    drop(again);
    // More than allowed: asked again, and `prompt=consent` asks even for the same.
    for extra in [("scope", "openid profile email"), ("prompt", "consent")] {
        let (status, html) = get_page(&test, &authorize_uri(&app, &challenge, &[extra])).await;
        assert_eq!(status, Status::Ok, "{extra:?}");
        assert!(html.contains("consent"), "{extra:?}");
    }
}

async fn an_unknown_app_or_address_is_an_error_page_never_a_redirect(test: TestApp) {
    let app = confidential(&test).await;
    let (_, challenge) = pkce();
    sign_up(&test, "alice", PASSWORD).await;
    let unknown = App { id: "no-such-app".into(), secret: None };
    let cases = [
        authorize_uri(&unknown, &challenge, &[]),
        authorize_uri(&app, &challenge, &[("client_id", "")]),
        authorize_uri(&app, &challenge, &[("redirect_uri", "https://evil.example.com/callback")]),
        // Matched exactly: no prefix, no trailing slash, no other query.
        authorize_uri(&app, &challenge, &[("redirect_uri", "https://app.example.com/callback/")]),
        authorize_uri(&app, &challenge, &[("redirect_uri", "https://app.example.com/callback?x=1")]),
        authorize_uri(&app, &challenge, &[("redirect_uri", "https://app.example.com/callbackx")]),
        authorize_uri(&app, &challenge, &[("redirect_uri", "")]),
        // Even with every other parameter wrong too.
        authorize_uri(&unknown, "", &[("response_type", "token"), ("scope", "profile")]),
    ];
    for uri in cases {
        let response = test.client.get(uri.clone()).dispatch().await;
        assert_eq!(response.status(), Status::BadRequest, "{uri}");
        assert!(location(&response).is_none(), "{uri}");
        let html = response.into_string().await.unwrap();
        assert!(html.contains("<html") && html.contains("administrator"), "{uri}: {html}");
    }
    assert_eq!(test.count("SELECT COUNT(*) FROM oauth_codes").await, 0);
}

async fn the_other_checks_go_back_to_the_app_in_order(test: TestApp) {
    let app = confidential(&test).await;
    let (_, challenge) = pkce();
    let long = "x".repeat(513);
    let cases: [(&[(&str, &str)], &str); 9] = [
        (&[("code_challenge", "")], "invalid_request"),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        // PKCE before the response type.
        (&[("code_challenge", ""), ("response_type", "token")], "invalid_request"),
        (&[("response_type", "token")], "unsupported_response_type"),
        // The response type before the scope.
        (&[("response_type", ""), ("scope", "profile")], "unsupported_response_type"),
        (&[("scope", "profile email")], "invalid_scope"),
        (&[("state", &long)], "invalid_request"),
        (&[("nonce", &long)], "invalid_request"),
        (&[("prompt", "none login")], "invalid_request"),
    ];
    for (extra, error) in cases {
        let back = authorize(&test, &authorize_uri(&app, &challenge, extra), "allow").await;
        assert!(back.starts_with(REDIRECT), "{extra:?}: {back}");
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{extra:?}: {back}");
        assert_eq!(param(&back, "iss").as_deref(), Some(ISSUER));
        if !extra.iter().any(|(name, _)| *name == "state") {
            assert_eq!(param(&back, "state").as_deref(), Some("st4te"), "{extra:?}");
        }
    }
    let back = authorize(&test, &authorize_uri(&app, &challenge, &[("max_age", "soon")]), "allow").await;
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
    // None of them asked anyone to sign in, nor made a code.
    assert_eq!(test.count("SELECT COUNT(*) FROM oauth_codes").await, 0);
}

async fn pkce_is_required_and_its_verifier_checked(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[]).await;
    let (other, _) = pkce();
    for wrong in [other.as_str(), "", "short", &verifier[1..]] {
        let response = exchange(&test, &app, &code, wrong).await;
        let error = if wrong.is_empty() { "invalid_request" } else { "invalid_grant" };
        oauth_error(response, Status::BadRequest, error).await;
    }
    expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
}

async fn a_code_works_once_and_its_reuse_revokes_what_it_gave(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[("scope", "openid offline_access")]).await;
    let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let access = tokens["access_token"].as_str().unwrap();
    expect(userinfo(&test, access).await, Status::Ok).await;
    // The same code again: refused, and what the first exchange gave stops working.
    oauth_error(exchange(&test, &app, &code, &verifier).await, Status::BadRequest, "invalid_grant").await;
    assert_eq!(userinfo(&test, access).await.status(), Status::Unauthorized);
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    oauth_error(refresh(&test, &app, refresh_token).await, Status::BadRequest, "invalid_grant").await;
}

async fn a_code_expires_after_a_minute(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[]).await;
    let expires_at = test.count("SELECT expires_at - created_at FROM oauth_codes").await;
    assert_eq!(expires_at, 60);
    test.execute(&["UPDATE oauth_codes SET expires_at = created_at - 1".into()]).await;
    oauth_error(exchange(&test, &app, &code, &verifier).await, Status::BadRequest, "invalid_grant").await;
}

async fn a_code_is_bound_to_its_app_and_redirect_address(test: TestApp) {
    let app = confidential(&test).await;
    let other = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[]).await;
    oauth_error(exchange(&test, &other, &code, &verifier).await, Status::BadRequest, "invalid_grant").await;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://localhost:9999/cb"),
        ("code_verifier", verifier.as_str()),
    ];
    oauth_error(token_request(&test, &app, &fields).await, Status::BadRequest, "invalid_grant").await;
    oauth_error(exchange(&test, &app, "made-up", &verifier).await, Status::BadRequest, "invalid_grant").await;
    expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
}

async fn a_wrong_secret_is_invalid_client(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[]).await;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let body = form_body(&fields);
    let attempts = [
        vec![basic(&app.id, "wrong")],
        vec![basic("no-such-app", "wrong")],
        vec![Header::new("Authorization", "Basic !!!")],
        vec![Header::new("Authorization", "Bearer abc")],
        vec![],
    ];
    for headers in attempts {
        let mut request = test.client.post("/oauth/token").header(ContentType::Form).body(body.clone());
        for header in headers {
            request = request.header(header);
        }
        let response = request.dispatch().await;
        assert_eq!(response.headers().get_one("WWW-Authenticate"), Some(r#"Basic realm="miniauth""#));
        oauth_error(response, Status::Unauthorized, "invalid_client").await;
    }
    // The secret in the form (client_secret_post) and in the header at once: one way only.
    let secret = app.secret.as_deref().unwrap();
    let both = form_body(&[&fields[..], &[("client_secret", secret)]].concat());
    let response = test
        .client
        .post("/oauth/token")
        .header(ContentType::Form)
        .header(basic(&app.id, secret))
        .body(both)
        .dispatch()
        .await;
    oauth_error(response, Status::BadRequest, "invalid_request").await;
    // client_secret_post alone works.
    let post =
        form_body(&[&fields[..], &[("client_id", app.id.as_str()), ("client_secret", secret)]].concat());
    let response = test.client.post("/oauth/token").header(ContentType::Form).body(post).dispatch().await;
    expect(response, Status::Ok).await;
    // Not a form at all.
    let response = test
        .client
        .post("/oauth/token")
        .header(ContentType::JSON)
        .header(basic(&app.id, secret))
        .body("{}")
        .dispatch()
        .await;
    oauth_error(response, Status::BadRequest, "invalid_request").await;
}

async fn a_public_app_uses_no_secret(test: TestApp) {
    let app = app_of(&test, true, SigningAlgorithm::RS256).await;
    assert!(app.secret.is_none());
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[]).await;
    // A secret it does not have is refused.
    let invented = App { id: app.id.clone(), secret: Some("invented".into()) };
    oauth_error(exchange(&test, &invented, &code, &verifier).await, Status::Unauthorized, "invalid_client")
        .await;
    expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    // A confidential app without its secret is refused.
    let confidential = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let back = authorize(&test, &authorize_uri(&confidential, &challenge, &[]), "allow").await;
    let code = param(&back, "code").unwrap();
    let secretless = App { id: confidential.id.clone(), secret: None };
    oauth_error(exchange(&test, &secretless, &code, &verifier).await, Status::Unauthorized, "invalid_client")
        .await;
}

async fn prompt_none_answers_without_a_page(test: TestApp) {
    let app = confidential(&test).await;
    let (_, challenge) = pkce();
    let uri = authorize_uri(&app, &challenge, &[("prompt", "none")]);
    // Signed out: login_required.
    let back = authorize(&test, &uri, "allow").await;
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("st4te"));
    // Signed in, never allowed: consent_required.
    sign_up(&test, "alice", PASSWORD).await;
    let back = authorize(&test, &uri, "allow").await;
    assert_eq!(param(&back, "error").as_deref(), Some("consent_required"), "{back}");
    // Allowed once: the code, silently.
    authorize(&test, &authorize_uri(&app, &challenge, &[]), "allow").await;
    let back = authorize(&test, &uri, "allow").await;
    assert!(param(&back, "code").is_some(), "{back}");
}

async fn prompt_login_and_max_age_ask_for_a_fresh_sign_in(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    // Signed out: the sign-in page, then back to the request.
    let response = test.client.get(authorize_uri(&app, &challenge, &[])).dispatch().await;
    let to_login = location(&response).unwrap();
    drop(response);
    assert!(to_login.starts_with("/login?next=%2Foauth%2Fauthorize"), "{to_login}");
    test.register("alice", PASSWORD).await;
    let next = param(&format!("http://x{to_login}"), "next").unwrap();
    let signed_in = submit_login(&test, "alice", PASSWORD, Some(&next)).await;
    assert_eq!(location(&signed_in).as_deref(), Some(next.as_str()));
    drop(signed_in);
    let back = authorize(&test, &next, "allow").await;
    assert!(param(&back, "code").is_some(), "{back}");

    // Signed in and allowed: prompt=login and a passed max_age send the browser to sign in again.
    test.execute(&["UPDATE sessions SET created_at = created_at - 100".into()]).await;
    for extra in [("prompt", "login"), ("max_age", "30"), ("prompt", "select_account")] {
        let response = test.client.get(authorize_uri(&app, &challenge, &[extra])).dispatch().await;
        let to_login = location(&response).unwrap();
        drop(response);
        assert!(
            to_login.starts_with("/login?next=") && to_login.ends_with("&again=true"),
            "{extra:?}: {to_login}"
        );
        let next = param(&format!("http://x{to_login}"), "next").unwrap();
        assert!(
            next.contains("auth_after=") && !next.contains("max_age") && !next.contains("login"),
            "{next}"
        );
        // The sign-in page shows its form though the browser is signed in.
        let (status, html) = get_page(&test, &to_login).await;
        assert_eq!(status, Status::Ok);
        assert!(html.contains("asks you to sign in again"), "{html}");
        // Coming back without a fresh sign-in goes round again.
        let response = test.client.get(next.clone()).dispatch().await;
        assert!(location(&response).unwrap().starts_with("/login?"), "{extra:?}");
        drop(response);
        // Signed in afresh on that page: the code, whose auth_time is the new sign-in's.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let fields = [
            ("csrf_token", csrf_token(&html)),
            ("username", "alice".into()),
            ("password", PASSWORD.into()),
            ("next", next.clone()),
        ];
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let signed_in = post_form(&test, "/login", &fields).await;
        assert_eq!(location(&signed_in).as_deref(), Some(next.as_str()));
        drop(signed_in);
        let back = authorize(&test, &next, "allow").await;
        let code = param(&back, "code").unwrap_or_else(|| panic!("{extra:?}: {back}"));
        let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
        let claims = jwt_payload(tokens["id_token"].as_str().unwrap());
        assert!(claims["auth_time"].as_i64().unwrap() >= common::now() - 5, "{claims}");
        test.execute(&["UPDATE sessions SET created_at = created_at - 100".into()]).await;
    }
}

async fn denying_consent_tells_the_app(test: TestApp) {
    let app = confidential(&test).await;
    let (_, challenge) = pkce();
    sign_up(&test, "alice", PASSWORD).await;
    let back = authorize(&test, &authorize_uri(&app, &challenge, &[]), "deny").await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("st4te"));
    assert_eq!(test.count("SELECT COUNT(*) FROM oauth_consents").await, 0);
    // A made-up consent answer without the page's CSRF token is refused.
    let response = post_form(&test, "/oauth/authorize/consent", &[("decision", "allow")]).await;
    assert_eq!(response.status(), Status::Forbidden);
}

async fn userinfo_gives_what_the_scopes_allow(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[("scope", "openid profile email groups")]).await;
    let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    // No confirmed address: neither email nor email_verified.
    let info = expect(userinfo(&test, &access).await, Status::Ok).await;
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["groups"], serde_json::json!([]));
    assert!(info.get("email").is_none() && info.get("email_verified").is_none(), "{info}");
    test.execute(&[
        "UPDATE users SET email = 'alice@example.com', email_confirmed_at = 1".into(),
        "INSERT INTO user_groups (name, name_key, created_at) VALUES ('family', 'family', 1)".into(),
        "INSERT INTO group_members (group_id, user_id, added_at) SELECT g.id, u.id, 1 FROM user_groups g, users u".into(),
    ])
    .await;
    let info = expect(userinfo(&test, &access).await, Status::Ok).await;
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["email_verified"], true);
    assert_eq!(info["groups"], serde_json::json!(["family"]));
    // POST works too; a made-up, missing or foreign-scheme token is 401 with the challenge.
    let posted = test.client.post("/oauth/userinfo").header(bearer(&access)).dispatch().await;
    expect(posted, Status::Ok).await;
    let response = userinfo(&test, "made-up").await;
    assert_eq!(response.headers().get_one("WWW-Authenticate"), Some(r#"Bearer error="invalid_token""#));
    problem(response, Status::Unauthorized).await;
    let response = test.client.get("/oauth/userinfo").dispatch().await;
    assert_eq!(response.headers().get_one("WWW-Authenticate"), Some("Bearer"));
    problem(response, Status::Unauthorized).await;
    // An expired access token.
    test.execute(&["UPDATE oauth_tokens SET expires_at = 1 WHERE kind = 'access'".into()]).await;
    assert_eq!(userinfo(&test, &access).await.status(), Status::Unauthorized);
}

async fn refresh_tokens_rotate_and_a_reuse_revokes_the_grant(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[("scope", "openid offline_access")]).await;
    let first = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let refresh_1 = first["refresh_token"].as_str().unwrap().to_owned();
    let second = expect(refresh(&test, &app, &refresh_1).await, Status::Ok).await;
    let refresh_2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh_1, refresh_2);
    let claims = verify_id_token(&test, second["id_token"].as_str().unwrap(), &app.id).await;
    assert!(claims.get("nonce").is_none(), "{claims}");
    // A retry within the grace window gets the same successor, never a second chain.
    let retry = expect(refresh(&test, &app, &refresh_1).await, Status::Ok).await;
    assert_eq!(retry["refresh_token"], refresh_2.as_str());
    // Another app cannot use it.
    let other = confidential(&test).await;
    oauth_error(refresh(&test, &other, &refresh_2).await, Status::BadRequest, "invalid_grant").await;
    // A wider scope than allowed is refused.
    let wider = token_request(
        &test,
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh_2), ("scope", "openid email")],
    )
    .await;
    oauth_error(wider, Status::BadRequest, "invalid_scope").await;
    // Past the grace window, the spent token is theft: the whole grant goes.
    test.execute(&["UPDATE oauth_tokens SET used_at = used_at - 60 WHERE used_at IS NOT NULL".into()]).await;
    oauth_error(refresh(&test, &app, &refresh_1).await, Status::BadRequest, "invalid_grant").await;
    oauth_error(refresh(&test, &app, &refresh_2).await, Status::BadRequest, "invalid_grant").await;
    assert_eq!(
        userinfo(&test, second["access_token"].as_str().unwrap()).await.status(),
        Status::Unauthorized
    );
}

async fn a_spent_refresh_token_without_grace_revokes_at_once(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[("scope", "openid offline_access")]).await;
    let first = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let refresh_1 = first["refresh_token"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = expect(refresh(&test, &app, &refresh_1).await, Status::Ok).await;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    oauth_error(refresh(&test, &app, &refresh_1).await, Status::BadRequest, "invalid_grant").await;
    let refresh_2 = second["refresh_token"].as_str().unwrap();
    oauth_error(refresh(&test, &app, refresh_2).await, Status::BadRequest, "invalid_grant").await;
}

async fn no_refresh_token_without_offline_access(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[]).await;
    let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    assert!(tokens.get("refresh_token").is_none());
    // The access token is not a refresh token.
    let access = tokens["access_token"].as_str().unwrap();
    oauth_error(refresh(&test, &app, access).await, Status::BadRequest, "invalid_grant").await;
    let response = token_request(&test, &app, &[("grant_type", "password")]).await;
    oauth_error(response, Status::BadRequest, "unsupported_grant_type").await;
    oauth_error(token_request(&test, &app, &[]).await, Status::BadRequest, "invalid_request").await;
    oauth_error(
        token_request(&test, &app, &[("grant_type", "refresh_token")]).await,
        Status::BadRequest,
        "invalid_request",
    )
    .await;
}

async fn revoke<'c>(test: &'c TestApp, app: &App, token: &str) -> LocalResponse<'c> {
    let mut request = test.client.post("/oauth/revoke").header(ContentType::Form);
    let mut fields = vec![("token", token)];
    match &app.secret {
        Some(secret) => request = request.header(basic(&app.id, secret)),
        None => fields.push(("client_id", &app.id)),
    }
    request.body(form_body(&fields)).dispatch().await
}

async fn revocation_ends_a_token_or_the_whole_grant(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[("scope", "openid offline_access")]).await;
    let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let (access, refresh_token) =
        (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    // Another app's revocation of it, and an unknown token: 200, nothing revoked.
    let other = confidential(&test).await;
    assert_eq!(revoke(&test, &other, access).await.status(), Status::Ok);
    assert_eq!(revoke(&test, &app, "made-up").await.status(), Status::Ok);
    expect(userinfo(&test, access).await, Status::Ok).await;
    // The access token alone.
    assert_eq!(revoke(&test, &app, access).await.status(), Status::Ok);
    assert_eq!(userinfo(&test, access).await.status(), Status::Unauthorized);
    let renewed = expect(refresh(&test, &app, refresh_token).await, Status::Ok).await;
    // The refresh token: the whole grant, its new access token too.
    let refresh_2 = renewed["refresh_token"].as_str().unwrap();
    assert_eq!(revoke(&test, &app, refresh_2).await.status(), Status::Ok);
    assert_eq!(
        userinfo(&test, renewed["access_token"].as_str().unwrap()).await.status(),
        Status::Unauthorized
    );
    oauth_error(refresh(&test, &app, refresh_2).await, Status::BadRequest, "invalid_grant").await;
    // Without the client's credentials, or without a token.
    let response =
        test.client.post("/oauth/revoke").header(ContentType::Form).body("token=x").dispatch().await;
    oauth_error(response, Status::Unauthorized, "invalid_client").await;
    oauth_error(revoke(&test, &app, "").await, Status::BadRequest, "invalid_request").await;
}

async fn disconnecting_an_app_ends_its_consent_and_its_tokens(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[("scope", "openid profile offline_access")]).await;
    let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let api = test.sign_in("alice", PASSWORD).await;
    let apps =
        expect(test.client.get("/auth/apps").header(bearer(&api.access)).dispatch().await, Status::Ok).await;
    assert_eq!(apps.as_array().unwrap().len(), 1);
    assert_eq!(apps[0]["client_id"], app.id);
    assert_eq!(apps[0]["name"], "Wiki");
    assert_eq!(apps[0]["scopes"], serde_json::json!(["openid", "profile", "offline_access"]));
    assert!(common::is_rfc3339(apps[0]["granted_at"].as_str().unwrap()));

    let uri = format!("/auth/apps/{}", app.id);
    let response = test.client.delete(uri.clone()).header(bearer(&api.access)).dispatch().await;
    assert_eq!(response.status(), Status::NoContent);
    assert_eq!(
        userinfo(&test, tokens["access_token"].as_str().unwrap()).await.status(),
        Status::Unauthorized
    );
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    oauth_error(refresh(&test, &app, refresh_token).await, Status::BadRequest, "invalid_grant").await;
    // Gone from the list; disconnecting again is 404; the next sign-in asks again.
    let apps =
        expect(test.client.get("/auth/apps").header(bearer(&api.access)).dispatch().await, Status::Ok).await;
    assert_eq!(apps, serde_json::json!([]));
    let response = test.client.delete(uri).header(bearer(&api.access)).dispatch().await;
    problem(response, Status::NotFound).await;
    let (status, html) = get_page(&test, &authorize_uri(&app, &challenge, &[])).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("/oauth/authorize/consent"));
}

async fn the_profile_lists_connected_apps_and_disconnects_them(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[]).await;
    let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let (status, html) = get_page(&test, "/profile").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Connected apps") && html.contains("Wiki"), "{html}");
    let action = format!("/account/apps/{}/revoke", app.id);
    assert!(html.contains(&action), "{html}");
    let response = post_form(&test, &action, &[("csrf_token", &csrf_token(&html))]).await;
    assert_eq!(response.status(), Status::SeeOther);
    drop(response);
    assert_eq!(
        userinfo(&test, tokens["access_token"].as_str().unwrap()).await.status(),
        Status::Unauthorized
    );
    let (_, html) = get_page(&test, "/profile").await;
    assert!(html.contains("is disconnected") && !html.contains("Connected apps"), "{html}");
}

async fn rp_initiated_logout_ends_the_session(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[]).await;
    let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    // An address not registered for the app: an error page, and nobody is signed out.
    let bad = format!(
        "/oauth/logout?{}",
        form_body(&[("id_token_hint", id_token), ("post_logout_redirect_uri", "https://evil.example.com/")])
    );
    let (status, html) = get_page(&test, &bad).await;
    assert_eq!(status, Status::BadRequest, "{html}");
    let forged = format!("/oauth/logout?{}", form_body(&[("id_token_hint", "e30.e30.e30")]));
    assert_eq!(get_page(&test, &forged).await.0, Status::BadRequest);
    assert_eq!(get_page(&test, "/profile").await.0, Status::Ok);
    // The app's ID token of this user and a registered address: signed out, sent back.
    let uri = format!(
        "/oauth/logout?{}",
        form_body(&[("id_token_hint", id_token), ("post_logout_redirect_uri", LOGOUT_TO), ("state", "bye")])
    );
    let response = test.client.get(uri).dispatch().await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some(format!("{LOGOUT_TO}?state=bye").as_str()));
    drop(response);
    assert_eq!(test.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL").await, 0);
    let profile = test.client.get("/profile").dispatch().await;
    assert_eq!(profile.status(), Status::SeeOther);
    // The app's own tokens are not the session's: signing out of MiniAuth leaves them.
    expect(userinfo(&test, tokens["access_token"].as_str().unwrap()).await, Status::Ok).await;
}

async fn logout_without_a_hint_asks_first(test: TestApp) {
    let app = confidential(&test).await;
    sign_up(&test, "alice", PASSWORD).await;
    let uri = format!(
        "/oauth/logout?{}",
        form_body(&[("client_id", &app.id), ("post_logout_redirect_uri", LOGOUT_TO), ("state", "s")])
    );
    let (status, html) = get_page(&test, &uri).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Sign out of MiniAuth?") && html.contains("Wiki"), "{html}");
    assert_eq!(test.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL").await, 1);
    let fields = [
        ("csrf_token", csrf_token(&html)),
        ("client_id", app.id.clone()),
        ("post_logout_redirect_uri", LOGOUT_TO.to_owned()),
        ("state", "s".to_owned()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = post_form(&test, "/oauth/logout", &fields).await;
    assert_eq!(location(&response).as_deref(), Some(format!("{LOGOUT_TO}?state=s").as_str()));
    drop(response);
    assert_eq!(test.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL").await, 0);
}

async fn the_discovery_document_names_every_endpoint(test: TestApp) {
    let document =
        expect(test.client.get("/.well-known/openid-configuration").dispatch().await, Status::Ok).await;
    assert_eq!(document["issuer"], ISSUER);
    for (field, path) in [
        ("authorization_endpoint", "/oauth/authorize"),
        ("token_endpoint", "/oauth/token"),
        ("userinfo_endpoint", "/oauth/userinfo"),
        ("revocation_endpoint", "/oauth/revoke"),
        ("end_session_endpoint", "/oauth/logout"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ] {
        assert_eq!(document[field], format!("{ISSUER}{path}"), "{field}");
    }
    let list = |field: &str| -> Vec<String> {
        document[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("response_types_supported"), ["code"]);
    assert_eq!(list("code_challenge_methods_supported"), ["S256"]);
    assert_eq!(list("subject_types_supported"), ["public"]);
    assert_eq!(list("grant_types_supported"), ["authorization_code", "refresh_token"]);
    assert!(list("id_token_signing_alg_values_supported").contains(&"RS256".to_owned()));
    for scope in ["openid", "profile", "email", "groups", "offline_access"] {
        assert!(list("scopes_supported").contains(&scope.to_owned()), "{scope}");
    }
    for method in ["client_secret_basic", "client_secret_post", "none"] {
        assert!(list("token_endpoint_auth_methods_supported").contains(&method.to_owned()));
    }
    for claim in
        ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "preferred_username", "email", "groups"]
    {
        assert!(list("claims_supported").contains(&claim.to_owned()), "{claim}");
    }
    assert_eq!(document["authorization_response_iss_parameter_supported"], true);
}

async fn rsa_keys_are_published_once_an_app_exists(test: TestApp) {
    let keys = |set: Value| -> Vec<Value> { set["keys"].as_array().unwrap().clone() };
    let before = keys(expect(test.client.get("/.well-known/jwks.json").dispatch().await, Status::Ok).await);
    assert!(before.iter().all(|key| key["kty"] == "OKP"), "{before:?}");
    confidential(&test).await;
    let after = keys(expect(test.client.get("/.well-known/jwks.json").dispatch().await, Status::Ok).await);
    let rsa: Vec<&Value> = after.iter().filter(|key| key["kty"] == "RSA").collect();
    // The current key and the next one, published ahead; public parts only.
    assert_eq!(rsa.len(), 2, "{after:?}");
    for key in rsa {
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["use"], "sig");
        assert!(key["n"].is_string() && key["e"] == "AQAB");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "{private}");
        }
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).unwrap();
        assert_eq!(jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).ok(), jwk.common.key_id);
    }
    assert_eq!(test.count("SELECT COUNT(*) FROM signing_keys WHERE algorithm = 'RS256'").await, 2);
}

async fn an_app_may_ask_for_eddsa_id_tokens(test: TestApp) {
    let app = app_of(&test, false, SigningAlgorithm::EdDSA).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[]).await;
    let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(jwt_header(id_token)["alg"], "EdDSA");
    verify_id_token(&test, id_token, &app.id).await;
    // A tampered signature is refused by the same check.
    let mut tampered = id_token.to_owned();
    let at = tampered.len() - 10;
    let swapped = if &tampered[at..at + 1] == "A" { "B" } else { "A" };
    tampered.replace_range(at..at + 1, swapped);
    let jwks = expect(test.client.get("/.well-known/jwks.json").dispatch().await, Status::Ok).await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let kid = jwt_header(id_token)["kid"].as_str().unwrap().to_owned();
    let key = jsonwebtoken::DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&[&app.id]);
    assert!(jsonwebtoken::decode::<Value>(&tampered, &key, &validation).is_err());
}

async fn a_user_with_a_second_factor_passes_it_first(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let tokens = test.register_and_sign_in::<1>("alice", PASSWORD).await;
    let (secret, _) = test.turn_on_totp(&tokens[0].access, PASSWORD).await;
    let response = test.client.get(authorize_uri(&app, &challenge, &[])).dispatch().await;
    let to_login = location(&response).unwrap();
    drop(response);
    let next = param(&format!("http://x{to_login}"), "next").unwrap();
    let signed_in = submit_login(&test, "alice", PASSWORD, Some(&next)).await;
    let code_page = location(&signed_in).unwrap();
    drop(signed_in);
    assert!(code_page.starts_with("/login/code?next="), "{code_page}");
    let html = common::browser::form_page(&test, &code_page).await;
    // The next period's code: the one that turned the app on is spent.
    let code = common::totp_code(&secret, common::now() + 30);
    let fields = [("csrf_token", csrf_token(&html)), ("code", code), ("next", next.clone())];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = post_form(&test, "/login/code", &fields).await;
    assert_eq!(location(&response).as_deref(), Some(next.as_str()));
    drop(response);
    let back = authorize(&test, &next, "allow").await;
    let code = param(&back, "code").unwrap();
    let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let claims = jwt_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
}

async fn the_purge_removes_spent_codes(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[]).await;
    expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    authorize(&test, &authorize_uri(&app, &challenge, &[]), "allow").await;
    assert_eq!(test.count("SELECT COUNT(*) FROM oauth_codes").await, 2);
    let day = 24 * 3600;
    let now = common::now();
    // Within the retention, spent codes stay (a reuse must still revoke); past it, they go.
    miniauth::store::purge::purge_ended(&test.store(), now, (7 * day, 90 * day)).await.unwrap();
    assert_eq!(test.count("SELECT COUNT(*) FROM oauth_codes").await, 2);
    miniauth::store::purge::purge_ended(&test.store(), now + 8 * day, (7 * day, 90 * day)).await.unwrap();
    assert_eq!(test.count("SELECT COUNT(*) FROM oauth_codes").await, 0);
    // Grants past their end go with their tokens.
    miniauth::store::purge::purge_ended(&test.store(), now + 40 * day, (7 * day, 90 * day)).await.unwrap();
    assert_eq!(test.count("SELECT COUNT(*) FROM oauth_grants").await, 0);
    assert_eq!(test.count("SELECT COUNT(*) FROM oauth_tokens").await, 0);
}

async fn the_pages_that_lead_back_to_an_app_let_their_forms_go_there(test: TestApp) {
    let app = confidential(&test).await;
    let (_, challenge) = pkce();
    let form_action = |response: &LocalResponse<'_>| {
        let csp = response.headers().get_one("Content-Security-Policy").unwrap().to_owned();
        csp.split(';').map(str::trim).find(|d| d.starts_with("form-action")).unwrap().to_owned()
    };
    // Browsers check a form's redirects against the page's form-action: the sign-in page (and
    // the consent page, and the sign-out question) may lead to the app's origin.
    let login = test.client.get("/login").dispatch().await;
    assert_eq!(form_action(&login), "form-action 'self' https://app.example.com http://localhost:9999");
    drop(login);
    sign_up(&test, "alice", PASSWORD).await;
    let consent = test.client.get(authorize_uri(&app, &challenge, &[])).dispatch().await;
    assert_eq!(consent.status(), Status::Ok);
    assert!(form_action(&consent).contains(" https://app.example.com"));
    drop(consent);
    // Other pages keep their forms at home.
    let profile = test.client.get("/profile").dispatch().await;
    assert_eq!(form_action(&profile), "form-action 'self'");
}

async fn a_fresh_sign_in_mark_cannot_be_made_up_or_moved(test: TestApp) {
    let app = confidential(&test).await;
    let (_, challenge) = pkce();
    code_for_alice(&test, &app, &challenge, &[]).await;
    test.execute(&["UPDATE sessions SET created_at = created_at - 100".into()]).await;
    let asked = |extra: Vec<(&'static str, String)>| {
        let mut pairs: Vec<(&str, &str)> = vec![("prompt", "login")];
        pairs.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        authorize_uri(&app, &challenge, &pairs)
    };
    // The mark the sign-in page's way back carries, for this request.
    let response = test.client.get(asked(vec![])).dispatch().await;
    let to_login = location(&response).unwrap();
    drop(response);
    let next = param(&format!("http://x{to_login}"), "next").unwrap();
    let mark = param(&format!("http://x{next}"), "auth_after").unwrap();
    let (_, other_challenge) = pkce();
    for made_up in [
        "0".to_owned(),
        format!("{}.", common::now() - 1000),
        format!("{}.{}", common::now() - 1000, mark.split_once('.').unwrap().1),
    ] {
        let response = test.client.get(asked(vec![("auth_after", made_up.clone())])).dispatch().await;
        assert!(location(&response).unwrap().starts_with("/login?"), "{made_up}");
    }
    // The real mark on another request (another PKCE challenge) is not that request's.
    let moved = authorize_uri(&app, &other_challenge, &[("auth_after", &mark)]);
    let response = test.client.get(moved.replace("&auth_after", "&prompt=login&auth_after")).dispatch().await;
    assert!(location(&response).unwrap().starts_with("/login?"));
}

async fn an_administrator_cutting_a_user_off_revokes_the_apps_too(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[("scope", "openid offline_access")]).await;
    let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let user_id = test.count("SELECT id FROM users WHERE username = 'alice'").await;
    // What `miniauth user revoke-sessions` (and set-password, reset-second-factor) do.
    let revoked =
        miniauth::store::oauth::revoke_user_grants(&test.store(), user_id, common::now()).await.unwrap();
    assert_eq!(revoked, 1);
    assert_eq!(
        userinfo(&test, tokens["access_token"].as_str().unwrap()).await.status(),
        Status::Unauthorized
    );
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    oauth_error(refresh(&test, &app, refresh_token).await, Status::BadRequest, "invalid_grant").await;
}

async fn another_users_id_token_does_not_sign_this_browser_out(test: TestApp) {
    let app = confidential(&test).await;
    let (verifier, challenge) = pkce();
    let code = code_for_alice(&test, &app, &challenge, &[]).await;
    let tokens = expect(exchange(&test, &app, &code, &verifier).await, Status::Ok).await;
    let alices = tokens["id_token"].as_str().unwrap();
    // Bob signs in on this browser; a link with Alice's ID token asks him first.
    let (_, html) = get_page(&test, "/profile").await;
    let response = post_form(&test, "/logout", &[("csrf_token", &csrf_token(&html))]).await;
    drop(response);
    sign_up(&test, "bob", PASSWORD).await;
    let uri = format!(
        "/oauth/logout?{}",
        form_body(&[("id_token_hint", alices), ("post_logout_redirect_uri", LOGOUT_TO), ("state", "s")])
    );
    let (status, html) = get_page(&test, &uri).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Sign out of MiniAuth?") && html.contains("bob"), "{html}");
    // The app, named by the ID token, is carried to the answer, which may then go back to it.
    assert!(html.contains(&format!("name=\"client_id\" value=\"{}\"", app.id)), "{html}");
    assert_eq!(get_page(&test, "/profile").await.0, Status::Ok, "still signed in");
}
