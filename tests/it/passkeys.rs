//! Passkeys through the API and the pages, answered by the tests' software authenticator:
//! adding one (and the recovery codes of a first second factor), signing in with one alone (no
//! username; `amr` hwk/swk + user + mfa), as the second step after a password, and every answer
//! the server must refuse — another site's, a bad signature, a replayed or expired ceremony, a
//! counter going backwards, another user's passkey — and removal behind the password.

use crate::common;

use rocket::figment::Figment;
use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::{json, Value};

use common::authenticator::{tamper, SoftPasskey};
use common::browser::{csrf_of_session, get_page, location, post_form};
use common::{bearer, expect, jwt_payload, problem, TestApp, Tokens, TOKEN_COOKIE};

const PASSWORD: &str = "quiet lantern trombone";

backend_tests!(
    a_passkey_is_added_and_signs_in_without_a_username,
    a_synced_passkey_signs_in_as_a_software_key,
    another_sites_answer_is_refused,
    a_tampered_signature_is_refused,
    a_ceremony_is_answered_once_and_expires,
    a_counter_going_backwards_is_refused_unless_always_zero,
    another_users_passkey_is_refused,
    a_passkey_is_removed_behind_the_password,
    a_passkey_is_the_second_step_after_a_password,
    the_pages_add_a_passkey_and_sign_in_with_it,
    the_code_page_offers_the_passkey_instead,
    the_administrators_reset_removes_the_passkeys,
);

backend_tests_with!(
    |figment: Figment| figment.merge(("public_url", "http://127.0.0.1:8000"));
    an_address_that_cannot_carry_passkeys_turns_them_off => sqlite_off, postgres_off,
);

backend_tests_with!(
    crate::two_step::vault;
    a_passkey_session_passes_a_host_that_asks_for_two_step_sign_in => sqlite_vault, postgres_vault,
);

backend_tests_with!(
    |figment: Figment| figment.merge(("login_max_failures_address", 3));
    refused_passkeys_are_failed_sign_ins_for_the_throttle => sqlite_throttled, postgres_throttled,
);

/// Begins a registration for the holder of `token`: the ceremony and its options.
async fn register_start(app: &TestApp, token: &str) -> (String, Value) {
    let started =
        expect(app.post_json_as("/auth/passkeys/register/start", token, json!({})).await, Status::Ok).await;
    (started["ceremony"].as_str().unwrap().to_owned(), started["publicKey"].clone())
}

async fn register_finish<'a>(
    app: &'a TestApp,
    token: &str,
    ceremony: &str,
    name: &str,
    answer: &Value,
) -> LocalResponse<'a> {
    let body = json!({ "ceremony": ceremony, "name": name, "credential": answer });
    app.post_json_as("/auth/passkeys/register/finish", token, body).await
}

/// A passkey named "Laptop" added to the account of `token`.
async fn add_passkey(app: &TestApp, token: &str) -> (SoftPasskey, Value) {
    add_passkey_named(app, token, "Laptop").await
}

/// A passkey added to the account of `token`: the authenticator's passkey and the `201` body.
async fn add_passkey_named(app: &TestApp, token: &str, name: &str) -> (SoftPasskey, Value) {
    let (ceremony, options) = register_start(app, token).await;
    let (answer, passkey) = SoftPasskey::register(&options);
    let added = expect(register_finish(app, token, &ceremony, name, &answer).await, Status::Created).await;
    (passkey, added)
}

async fn login_start(app: &TestApp) -> (String, Value) {
    let started = expect(app.post_json("/auth/passkeys/login/start", json!({})).await, Status::Ok).await;
    (started["ceremony"].as_str().unwrap().to_owned(), started["publicKey"].clone())
}

async fn login_finish<'a>(app: &'a TestApp, ceremony: &str, answer: &Value) -> LocalResponse<'a> {
    app.post_json("/auth/passkeys/login/finish", json!({ "ceremony": ceremony, "credential": answer })).await
}

/// A sign-in with the passkey alone.
async fn sign_in_with<'a>(app: &'a TestApp, passkey: &mut SoftPasskey) -> LocalResponse<'a> {
    let (ceremony, options) = login_start(app).await;
    let answer = passkey.sign(&options);
    login_finish(app, &ceremony, &answer).await
}

async fn passkeys(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app.client.get("/auth/passkeys").header(bearer(token)).dispatch().await;
    expect(response, Status::Ok).await.as_array().unwrap().clone()
}

async fn remove<'a>(app: &'a TestApp, token: &str, id: &Value, password: &str) -> LocalResponse<'a> {
    app.client
        .delete(format!("/auth/passkeys/{id}"))
        .header(ContentType::JSON)
        .header(bearer(token))
        .body(json!({ "password": password }).to_string())
        .dispatch()
        .await
}

async fn a_passkey_is_added_and_signs_in_without_a_username(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let (ceremony, options) = register_start(&app, &tokens.access).await;
    // A discoverable credential with user verification, attestation none, for this host.
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], "alice");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(options["attestation"], "none");
    let (answer, mut passkey) = SoftPasskey::register(&options);
    let empty = problem(
        register_finish(&app, &tokens.access, &ceremony, " ", &answer).await,
        Status::UnprocessableEntity,
    )
    .await;
    assert!(empty["errors"]["name"].is_array(), "{empty}");
    let (ceremony, options) = register_start(&app, &tokens.access).await;
    let (answer, mut passkey2) = SoftPasskey::register(&options);
    let added =
        expect(register_finish(&app, &tokens.access, &ceremony, "Laptop", &answer).await, Status::Created)
            .await;
    assert_eq!(added["name"], "Laptop");
    assert!(added["last_used_at"].is_null());
    let codes = added["recovery_codes"].as_array().expect("a first second factor brings recovery codes");
    assert_eq!(codes.len(), 10);
    std::mem::swap(&mut passkey, &mut passkey2);
    let profile = expect(app.profile(&tokens.access).await, Status::Ok).await;
    assert_eq!(profile["second_factors"], json!(["passkey"]));
    assert_eq!(profile["recovery_codes_left"], 10);
    // A second one: no new codes.
    let (_, second) = add_passkey_named(&app, &tokens.access, "Phone").await;
    assert!(second.get("recovery_codes").is_none(), "{second}");
    // The same authenticator cannot register its credential again (excluded), and the
    // options say so.
    let (_, options) = register_start(&app, &tokens.access).await;
    assert_eq!(options["excludeCredentials"].as_array().unwrap().len(), 2);

    // Sign in with no username: no allow list, user verification required.
    let (ceremony, options) = login_start(&app).await;
    assert!(
        options.get("allowCredentials").is_none_or(|list| list.as_array().is_some_and(Vec::is_empty)),
        "{options}"
    );
    assert_eq!(options["userVerification"], "required");
    assert_eq!(options["rpId"], "localhost");
    let answer = passkey.sign(&options);
    let response = login_finish(&app, &ceremony, &answer).await;
    assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    let signed_in = Tokens::of(&expect(response, Status::Ok).await);
    let claims = jwt_payload(&signed_in.access);
    assert_eq!(claims["amr"], json!(["hwk", "user", "mfa"]));
    assert_eq!(expect(app.profile(&signed_in.access).await, Status::Ok).await["username"], "alice");
    let sessions = app.sessions(&signed_in.access).await;
    assert!(sessions.iter().any(|s| s["current"] == true && s["methods"] == "passkey"), "{sessions:?}");
    // The refresh keeps how it signed in.
    let refreshed = expect(app.refresh(&signed_in.refresh).await, Status::Ok).await;
    assert_eq!(
        jwt_payload(refreshed["access_token"].as_str().unwrap())["amr"],
        json!(["hwk", "user", "mfa"])
    );
    let listed = passkeys(&app, &tokens.access).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["name"], "Laptop");
    assert!(listed[0]["last_used_at"].is_string(), "{listed:?}");
    assert!(listed[1]["last_used_at"].is_null());
    // Nothing secret is kept: the public key and its counter.
    let public = app
        .count(r#"SELECT COUNT(*) FROM passkeys WHERE credential LIKE '%"x":%' AND credential LIKE '%"y":%'"#)
        .await;
    let private = app.count(r#"SELECT COUNT(*) FROM passkeys WHERE credential LIKE '%"d":%'"#).await;
    assert_eq!((public, private), (2, 0));
    // A password sign-in now asks for the second step.
    let step = problem(app.login("alice", PASSWORD).await, Status::Forbidden).await;
    assert_eq!(step["methods"], json!(["recovery_code", "passkey"]));
}

async fn a_synced_passkey_signs_in_as_a_software_key(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let (ceremony, options) = register_start(&app, &tokens.access).await;
    // A phone's password manager reports its passkeys as backed up (synced).
    let (answer, mut passkey) = SoftPasskey::register_synced(&options);
    expect(register_finish(&app, &tokens.access, &ceremony, "Phone", &answer).await, Status::Created).await;
    let done = expect(sign_in_with(&app, &mut passkey).await, Status::Ok).await;
    assert_eq!(jwt_payload(done["access_token"].as_str().unwrap())["amr"], json!(["swk", "user", "mfa"]));
}

async fn another_sites_answer_is_refused(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let phishing = "https://login.examp1e.com";
    let (ceremony, options) = register_start(&app, &tokens.access).await;
    let (answer, _) = SoftPasskey::register_at(&options, phishing);
    let refused = problem(
        register_finish(&app, &tokens.access, &ceremony, "Laptop", &answer).await,
        Status::UnprocessableEntity,
    )
    .await;
    assert!(refused["errors"]["credential"][0].as_str().unwrap().contains("another site"), "{refused}");
    assert!(passkeys(&app, &tokens.access).await.is_empty());
    let (mut passkey, _) = add_passkey_named(&app, &tokens.access, "Laptop").await;
    let (ceremony, options) = login_start(&app).await;
    passkey.counter += 1;
    let answer = passkey.assert(&options, phishing, passkey.counter);
    let refused = problem(login_finish(&app, &ceremony, &answer).await, Status::Unauthorized).await;
    assert!(refused["detail"].as_str().unwrap().contains("another site"), "{refused}");
}

async fn a_tampered_signature_is_refused(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let (mut passkey, _) = add_passkey_named(&app, &tokens.access, "Laptop").await;
    let (ceremony, options) = login_start(&app).await;
    let mut answer = passkey.sign(&options);
    tamper(&mut answer);
    let refused = problem(login_finish(&app, &ceremony, &answer).await, Status::Unauthorized).await;
    assert!(refused["detail"].as_str().unwrap().contains("not accepted"), "{refused}");
    assert!(passkeys(&app, &tokens.access).await[0]["last_used_at"].is_null(), "nothing recorded");
    // The right one still works.
    expect(sign_in_with(&app, &mut passkey).await, Status::Ok).await;
}

async fn a_ceremony_is_answered_once_and_expires(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let (mut passkey, _) = add_passkey_named(&app, &tokens.access, "Laptop").await;
    let (ceremony, options) = login_start(&app).await;
    let answer = passkey.sign(&options);
    expect(login_finish(&app, &ceremony, &answer).await, Status::Ok).await;
    // The same answer again, and a fresh signature of the same challenge: the ceremony is spent.
    let replay = problem(login_finish(&app, &ceremony, &answer).await, Status::Unauthorized).await;
    assert!(replay["detail"].as_str().unwrap().contains("answered already"), "{replay}");
    let again = passkey.sign(&options);
    assert_eq!(login_finish(&app, &ceremony, &again).await.status(), Status::Unauthorized);
    // A registration's ceremony is spent too.
    let (ceremony, options) = register_start(&app, &tokens.access).await;
    let (answer, _) = SoftPasskey::register(&options);
    expect(register_finish(&app, &tokens.access, &ceremony, "Phone", &answer).await, Status::Created).await;
    let (answer, _) = SoftPasskey::register(&options);
    let replay =
        problem(register_finish(&app, &tokens.access, &ceremony, "Other", &answer).await, Status::BadRequest)
            .await;
    assert!(replay["detail"].as_str().unwrap().contains("answered already"), "{replay}");
    // Five minutes on, a ceremony is void (the clock moved by the test, in the database).
    let (ceremony, options) = login_start(&app).await;
    app.execute(&["UPDATE passkey_ceremonies SET expires_at = expires_at - 301".to_owned()]).await;
    let answer = passkey.sign(&options);
    assert_eq!(login_finish(&app, &ceremony, &answer).await.status(), Status::Unauthorized);
    let unknown = passkey.sign(&options);
    assert_eq!(login_finish(&app, "no-such-ceremony", &unknown).await.status(), Status::Unauthorized);
}

async fn a_counter_going_backwards_is_refused_unless_always_zero(app: TestApp) {
    let [alice, bob] = [
        app.register_and_sign_in::<1>("alice", PASSWORD).await[0].access.clone(),
        app.register_and_sign_in::<1>("bob", PASSWORD).await[0].access.clone(),
    ];
    let (mut passkey, _) = add_passkey_named(&app, &alice, "Laptop").await;
    expect(sign_in_with(&app, &mut passkey).await, Status::Ok).await;
    expect(sign_in_with(&app, &mut passkey).await, Status::Ok).await;
    // A clone that still counts 2 (or less).
    for counter in [2, 1] {
        let (ceremony, options) = login_start(&app).await;
        let answer = passkey.assert(&options, common::authenticator::ORIGIN, counter);
        let refused = problem(login_finish(&app, &ceremony, &answer).await, Status::Unauthorized).await;
        assert!(refused["detail"].as_str().unwrap().contains("counter"), "{refused}");
    }
    expect(sign_in_with(&app, &mut passkey).await, Status::Ok).await;
    // An authenticator that keeps no counter (always 0) signs in every time.
    let (zero, _) = add_passkey_named(&app, &bob, "Synced").await;
    for _ in 0..3 {
        let (ceremony, options) = login_start(&app).await;
        let answer = zero.assert(&options, common::authenticator::ORIGIN, 0);
        expect(login_finish(&app, &ceremony, &answer).await, Status::Ok).await;
    }
}

async fn another_users_passkey_is_refused(app: TestApp) {
    let [alice] = app.register_and_sign_in("alice", PASSWORD).await;
    let [bob] = app.register_and_sign_in("bob", PASSWORD).await;
    let (mut alices, _) = add_passkey_named(&app, &alice.access, "Laptop").await;
    let (mut bobs, _) = add_passkey_named(&app, &bob.access, "Phone").await;
    // Bob's credential claiming Alice's account (her user handle).
    let (ceremony, options) = login_start(&app).await;
    let handle = std::mem::replace(&mut bobs.user_handle, alices.user_handle.clone());
    let answer = bobs.sign(&options);
    assert_eq!(login_finish(&app, &ceremony, &answer).await.status(), Status::Unauthorized);
    bobs.user_handle = handle;
    // Bob's passkey as the second step of Alice's sign-in.
    let step = problem(app.login("alice", PASSWORD).await, Status::Forbidden).await;
    let answer = bobs.sign(&step["publicKey"]);
    let body = json!({ "mfa_token": step["mfa_token"], "ceremony": step["ceremony"], "credential": answer });
    assert_eq!(app.post_json("/auth/login/second-factor", body).await.status(), Status::Unauthorized);
    // Alice's credential offered for Bob's account: registered already (to anyone).
    let (ceremony, options) = register_start(&app, &bob.access).await;
    let again = alices.attest(&options, common::authenticator::ORIGIN);
    let taken =
        problem(register_finish(&app, &bob.access, &ceremony, "Hers", &again).await, Status::Conflict).await;
    assert!(taken["detail"].as_str().unwrap().contains("registered already"), "{taken}");
    // Bob cannot list or remove Alice's.
    let alices_id = passkeys(&app, &alice.access).await[0]["id"].clone();
    assert_eq!(passkeys(&app, &bob.access).await.len(), 1);
    assert_eq!(remove(&app, &bob.access, &alices_id, PASSWORD).await.status(), Status::NotFound);
    // A passkey this server never registered.
    let (_, options) = register_start(&app, &alice.access).await;
    let (_, mut stranger) = SoftPasskey::register(&options);
    let refused = problem(sign_in_with(&app, &mut stranger).await, Status::Unauthorized).await;
    assert!(refused["detail"].as_str().unwrap().contains("not registered"), "{refused}");
    expect(sign_in_with(&app, &mut alices).await, Status::Ok).await;
}

async fn a_passkey_is_removed_behind_the_password(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let (mut passkey, _) = add_passkey_named(&app, &tokens.access, "Laptop").await;
    let id = passkeys(&app, &tokens.access).await[0]["id"].clone();
    let wrong = problem(remove(&app, &tokens.access, &id, "not it").await, Status::Forbidden).await;
    assert_eq!(wrong["errors"]["password"][0], "The password is not correct.");
    assert_eq!(remove(&app, &tokens.access, &json!(999_999), PASSWORD).await.status(), Status::NotFound);
    assert_eq!(remove(&app, &tokens.access, &id, PASSWORD).await.status(), Status::NoContent);
    assert!(passkeys(&app, &tokens.access).await.is_empty());
    // Gone: it signs in no more, and with the last second factor the recovery codes went too.
    assert_eq!(sign_in_with(&app, &mut passkey).await.status(), Status::Unauthorized);
    let profile = expect(app.profile(&tokens.access).await, Status::Ok).await;
    assert_eq!(
        (profile["second_factors"].clone(), profile["recovery_codes_left"].clone()),
        (json!([]), json!(0))
    );
    assert_eq!(app.login("alice", PASSWORD).await.status(), Status::Ok, "the password alone again");
    // Both are security events, with the passkey's name; the refusals are not.
    let events =
        expect(app.client.get("/auth/events").header(bearer(&tokens.access)).dispatch().await, Status::Ok)
            .await;
    let changes: Vec<(&str, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"].as_str().unwrap().starts_with("passkey."))
        .map(|event| (event["kind"].as_str().unwrap(), event["detail"]["passkey"].as_str().unwrap()))
        .collect();
    assert_eq!(changes, [("passkey.removed", "Laptop"), ("passkey.added", "Laptop")]);
    // With an authenticator app on as well, the codes stay.
    let (_, _) = app.turn_on_totp(&tokens.access, PASSWORD).await;
    add_passkey_named(&app, &tokens.access, "Phone").await;
    let id = passkeys(&app, &tokens.access).await[0]["id"].clone();
    assert_eq!(remove(&app, &tokens.access, &id, PASSWORD).await.status(), Status::NoContent);
    assert_eq!(expect(app.profile(&tokens.access).await, Status::Ok).await["recovery_codes_left"], 10);
}

async fn a_passkey_is_the_second_step_after_a_password(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let (mut passkey, added) = add_passkey_named(&app, &tokens.access, "Laptop").await;
    let step = problem(app.login("alice", PASSWORD).await, Status::Forbidden).await;
    assert_eq!(step["error"], "mfa_required");
    assert_eq!(step["methods"], json!(["recovery_code", "passkey"]));
    let allowed = step["publicKey"]["allowCredentials"].as_array().expect("the user's passkeys");
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["id"], common::authenticator::encode(&passkey.id));
    // The passkey's answer without its ceremony: a field missing.
    let answer = passkey.sign(&step["publicKey"]);
    let partial = json!({ "mfa_token": step["mfa_token"], "credential": answer });
    let missing =
        problem(app.post_json("/auth/login/second-factor", partial).await, Status::UnprocessableEntity).await;
    assert!(missing["errors"]["ceremony"].is_array(), "{missing}");
    let answer = passkey.sign(&step["publicKey"]);
    let body = json!({ "mfa_token": step["mfa_token"], "ceremony": step["ceremony"], "credential": answer });
    let done = expect(app.post_json("/auth/login/second-factor", body.clone()).await, Status::Ok).await;
    assert_eq!(jwt_payload(done["access_token"].as_str().unwrap())["amr"], json!(["pwd", "hwk", "mfa"]));
    assert_eq!(app.post_json("/auth/login/second-factor", body).await.status(), Status::Unauthorized, "once");
    // A recovery code works in its place.
    let step = problem(app.login("alice", PASSWORD).await, Status::Forbidden).await;
    let code = added["recovery_codes"][0].as_str().unwrap();
    let done = expect(
        app.post_json("/auth/login/second-factor", json!({ "mfa_token": step["mfa_token"], "code": code }))
            .await,
        Status::Ok,
    )
    .await;
    assert_eq!(jwt_payload(done["access_token"].as_str().unwrap())["amr"], json!(["pwd", "otp", "mfa"]));
    // A tampered answer is a wrong second factor, counted against the waiting sign-in.
    let step = problem(app.login("alice", PASSWORD).await, Status::Forbidden).await;
    let mut answer = passkey.sign(&step["publicKey"]);
    tamper(&mut answer);
    let body = json!({ "mfa_token": step["mfa_token"], "ceremony": step["ceremony"], "credential": answer });
    assert_eq!(app.post_json("/auth/login/second-factor", body).await.status(), Status::Unauthorized);
    assert_eq!(app.count("SELECT COUNT(*) FROM pending_sign_ins WHERE failures = 1").await, 1);
}

async fn refused_passkeys_are_failed_sign_ins_for_the_throttle(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let (mut passkey, _) = add_passkey_named(&app, &tokens.access, "Laptop").await;
    for _ in 0..3 {
        let (ceremony, options) = login_start(&app).await;
        let mut answer = passkey.sign(&options);
        tamper(&mut answer);
        assert_eq!(login_finish(&app, &ceremony, &answer).await.status(), Status::Unauthorized);
    }
    let blocked = sign_in_with(&app, &mut passkey).await;
    assert_eq!(blocked.status(), Status::TooManyRequests);
    assert!(blocked.headers().get_one("Retry-After").is_some());
}

async fn an_address_that_cannot_carry_passkeys_turns_them_off(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let off = problem(
        app.post_json_as("/auth/passkeys/register/start", &tokens.access, json!({})).await,
        Status::Forbidden,
    )
    .await;
    assert!(off["detail"].as_str().unwrap().contains("IP address"), "{off}");
    let off = problem(app.post_json("/auth/passkeys/login/start", json!({})).await, Status::Forbidden).await;
    assert!(off["detail"].as_str().unwrap().contains("Passkeys are off"), "{off}");
    let (_, login) = get_page(&app, "/login").await;
    assert!(!login.contains("Sign in with a passkey") && !login.contains("webauthn"), "{login}");
    assert!(!login.contains("<script"), "no script where there is nothing for it to do");
    // A password sign-in is unchanged.
    assert_eq!(app.login("alice", PASSWORD).await.status(), Status::Ok);
}

async fn the_pages_add_a_passkey_and_sign_in_with_it(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let cookie = rocket::http::Cookie::new(TOKEN_COOKIE, tokens.access.clone());
    let page = app.client.get("/account/passkeys").cookie(cookie.clone()).dispatch().await;
    assert_eq!(page.status(), Status::Ok);
    let csp = page.headers().get_one("Content-Security-Policy").unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let html = page.into_string().await.unwrap();
    assert!(html.contains(r#"<script src="/static/passkeys.js" defer></script>"#), "{html}");
    assert!(html.contains("You have no passkey yet."));
    // The page's script starts the ceremony through the API (the cookie and the CSRF header).
    let csrf = csrf_of_session(&app, &tokens.access).await;
    let started = app
        .client
        .post("/auth/passkeys/register/start")
        .cookie(cookie.clone())
        .header(common::csrf_header(&csrf))
        .dispatch()
        .await;
    let started = expect(started, Status::Ok).await;
    let (answer, mut passkey) = SoftPasskey::register(&started["publicKey"]);
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("name", "Laptop"),
        ("ceremony", started["ceremony"].as_str().unwrap()),
        ("credential", &answer.to_string()),
    ];
    let body = common::browser::form_body(&fields);
    let added = app
        .client
        .post("/account/passkeys")
        .cookie(cookie.clone())
        .header(ContentType::Form)
        .body(body)
        .dispatch()
        .await;
    assert_eq!(added.status(), Status::Ok, "the first second factor shows the recovery codes");
    assert!(added.into_string().await.unwrap().contains("Your recovery codes"));
    let page = app.client.get("/account/passkeys").cookie(cookie.clone()).dispatch().await;
    let html = page.into_string().await.unwrap();
    assert!(html.contains("Laptop") && html.contains("not used yet"), "{html}");
    let profile = app.client.get("/profile").cookie(cookie).dispatch().await.into_string().await.unwrap();
    assert!(profile.contains("1 passkey") && profile.contains("/account/passkeys"), "{profile}");

    // Signed out, the sign-in page offers the passkey (button and autofill).
    app.client.cookies().iter().for_each(drop);
    let (_, login) = get_page(&app, "/login?rd=").await;
    assert!(login.contains(r#"autocomplete="username webauthn""#), "{login}");
    assert!(login.contains("Sign in with a passkey"));
    let csrf = common::browser::csrf_token(&login);
    // A refused answer shows the sign-in page again, with why.
    let (ceremony, options) = login_start(&app).await;
    let mut answer = passkey.sign(&options);
    tamper(&mut answer);
    let fields =
        [("csrf_token", csrf.as_str()), ("ceremony", ceremony.as_str()), ("credential", &answer.to_string())];
    let response = post_form(&app, "/login/passkey", &fields).await;
    assert_eq!(response.status(), Status::Unauthorized);
    let html = response.into_string().await.unwrap();
    assert!(
        html.contains("The passkey was not accepted") && html.contains("Sign in with a passkey"),
        "{html}"
    );
    let (ceremony, options) = login_start(&app).await;
    let answer = passkey.sign(&options);
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("ceremony", ceremony.as_str()),
        ("credential", &answer.to_string()),
        ("next", "/account/passkeys"),
    ];
    let response = post_form(&app, "/login/passkey", &fields).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/account/passkeys"));
    let (status, _) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok, "signed in");
}

/// A session from a passkey alone counts as two factors: a host whose rule asks for two-step
/// sign-in lets it in (here with `public_url` https://auth.example.com, the relying party).
async fn a_passkey_session_passes_a_host_that_asks_for_two_step_sign_in(app: TestApp) {
    let origin = "https://auth.example.com";
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let (ceremony, options) = register_start(&app, &tokens.access).await;
    assert_eq!(options["rp"]["id"], "auth.example.com");
    let (answer, mut passkey) = SoftPasskey::register_at(&options, origin);
    expect(register_finish(&app, &tokens.access, &ceremony, "Laptop", &answer).await, Status::Created).await;
    let vault = "https://vault.example.com/secrets";
    let refused = crate::two_step::ask(&app, vault, &tokens.access, false).await;
    assert_eq!(refused.status(), Status::Forbidden, "the password-only session");
    let (ceremony, options) = login_start(&app).await;
    passkey.counter += 1;
    let answer = passkey.assert(&options, origin, passkey.counter);
    let signed_in = Tokens::of(&expect(login_finish(&app, &ceremony, &answer).await, Status::Ok).await);
    let answer = crate::two_step::ask(&app, vault, &signed_in.access, false).await;
    assert_eq!(answer.status(), Status::Ok);
    assert_eq!(answer.headers().get_one("Remote-User"), Some("alice"));
}

/// After the password, the code page of a user with a passkey (and no app) asks for a recovery
/// code or the passkey, whose options it carries for its script; the passkey's answer, posted
/// as the page's script posts it, finishes the sign-in.
async fn the_code_page_offers_the_passkey_instead(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let (mut passkey, _) = add_passkey(&app, &tokens.access).await;
    let response = common::browser::submit_login(&app, "alice", PASSWORD, None).await;
    assert_eq!(location(&response).as_deref(), Some("/login/code"));
    let page = app.client.get("/login/code").dispatch().await;
    let csp = page.headers().get_one("Content-Security-Policy").unwrap().to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.into_string().await.unwrap();
    assert!(html.contains("Use a passkey instead") && html.contains("recovery codes"), "{html}");
    assert!(!html.contains("Use the code of your app instead"), "no app to use");
    let form = &html[html.find(r#"id="passkey-second-step""#).expect("the passkey form")..];
    let tag = &form[..form.find('>').unwrap()];
    let options: Value = serde_json::from_str(&common::browser::unescape_html(
        &common::browser::attribute(tag, "data-options").unwrap(),
    ))
    .expect("the options, as JSON");
    let ceremony = common::browser::attribute(common::browser::input_tag(form, "ceremony"), "value").unwrap();
    let csrf = common::browser::csrf_token(&html);
    let answer = passkey.sign(&options).to_string();
    let fields =
        [("csrf_token", csrf.as_str()), ("ceremony", ceremony.as_str()), ("credential", answer.as_str())];
    let response = post_form(&app, "/login/code", &fields).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/profile"));
    let (status, profile) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok);
    assert!(profile.contains("with password + passkey"), "{profile}");
}

/// `miniauth user reset-second-factor` (its query, run here on the app's database) removes the
/// passkeys with the rest: the password alone signs in again, and the passkey no more.
async fn the_administrators_reset_removes_the_passkeys(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let (mut passkey, _) = add_passkey(&app, &tokens.access).await;
    let id = common::user_id(&expect(app.profile(&tokens.access).await, Status::Ok).await);
    assert!(miniauth::store::second_factor::remove_all(
        &app.store(),
        id,
        miniauth::store::Event::command("test")
    )
    .await
    .unwrap());
    assert_eq!(app.count("SELECT COUNT(*) FROM passkeys").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM recovery_codes").await, 0);
    assert_eq!(app.login("alice", PASSWORD).await.status(), Status::Ok);
    assert_eq!(sign_in_with(&app, &mut passkey).await.status(), Status::Unauthorized);
    assert!(
        !miniauth::store::second_factor::remove_all(
            &app.store(),
            id,
            miniauth::store::Event::command("test")
        )
        .await
        .unwrap(),
        "nothing left"
    );
}

/// The start-up log says why passkeys are off (a `public_url` of an IP address, as the test
/// servers have by default), and says nothing of them when the address names `localhost`.
#[test]
fn the_start_up_log_says_why_passkeys_are_off() {
    use common::server::Server;
    let (dir, named) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let off = Server::start(dir.path(), &[]);
    let on = Server::start_on_localhost(named.path(), &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !off.log().contains("passkeys are off") {
        assert!(std::time::Instant::now() < deadline, "{}", off.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        off.log().contains("names an IP address, and browsers accept passkeys only for a named host"),
        "{}",
        off.log()
    );
    // Its start is logged before its first request.
    while !on.log().contains("/healthz") {
        assert!(std::time::Instant::now() < deadline, "{}", on.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!on.log().contains("passkeys are off"), "{}", on.log());
}
