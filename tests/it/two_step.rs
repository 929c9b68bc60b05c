//! Two-step sign-in with an authenticator app (TOTP) and recovery codes: turning it on (the
//! password, then a first code), signing in in two steps through the API and the pages, codes
//! accepted once per time step, recovery codes once each, wrong codes counted (against the
//! waiting sign-in and by the throttle), turning it off (the password and a code), new recovery
//! codes, and what the sessions and tokens record (`amr`). Codes come from the secret at times
//! the test chooses; no test waits for a time step to pass.

use crate::common;

use rocket::figment::Figment;
use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::{json, Value};

use common::browser::{csrf_from, csrf_token, field_error, get_page, location, post_form, sign_up};
use common::{bearer, expect, jwt_payload, now, problem, totp_code, TestApp, Tokens, TOKEN_COOKIE};
use miniauth::auth::second_factor::{recovery_hash, Totp};
use miniauth::store;

const PASSWORD: &str = "quiet lantern trombone";

backend_tests!(
    turning_it_on_takes_the_password_and_a_first_code,
    a_sign_in_takes_its_second_step_through_the_api,
    a_code_works_once_and_a_recovery_code_once,
    turning_it_off_takes_the_password_and_a_code,
    new_recovery_codes_replace_the_old_ones,
    a_sign_in_takes_its_second_step_through_the_pages,
    the_account_pages_set_it_up_show_the_codes_once_and_turn_it_off,
    codes_follow_the_time_steps_of_a_clock_the_test_sets,
);

backend_tests_with!(
    |figment: Figment| figment.merge(("login_max_failures_pair", 50));
    a_waiting_sign_in_takes_five_wrong_codes_and_one_right_one => sqlite_five_wrong, postgres_five_wrong,
);

backend_tests_with!(
    vault;
    a_host_asking_for_two_step_sign_in_admits_only_sessions_that_used_it => sqlite_vault, postgres_vault,
);

backend_tests_with!(
    |figment: Figment| figment.merge(("login_max_failures_pair", 3));
    wrong_codes_are_failed_sign_ins_for_the_throttle => sqlite_throttled, postgres_throttled,
    the_password_step_does_not_wipe_the_count_of_wrong_codes => sqlite_no_wipe, postgres_no_wipe,
);

async fn delete_totp<'a>(app: &'a TestApp, token: &str, password: &str, code: &str) -> LocalResponse<'a> {
    let body = json!({ "password": password, "code": code }).to_string();
    app.client
        .delete("/auth/totp")
        .header(ContentType::JSON)
        .header(bearer(token))
        .body(body)
        .dispatch()
        .await
}

async fn finish<'a>(app: &'a TestApp, mfa_token: &Value, code: &str) -> LocalResponse<'a> {
    app.post_json("/auth/login/second-factor", json!({ "mfa_token": mfa_token, "code": code })).await
}

/// A password sign-in of a user with two-step sign-in: the `403`'s body.
async fn first_step(app: &TestApp, username: &str) -> Value {
    problem(app.login(username, PASSWORD).await, Status::Forbidden).await
}

/// A user with two-step sign-in on: their first session's tokens, secret and recovery codes.
async fn two_step_user(app: &TestApp, username: &str) -> (Tokens, String, Vec<String>) {
    let [tokens] = app.register_and_sign_in(username, PASSWORD).await;
    let (secret, codes) = app.turn_on_totp(&tokens.access, PASSWORD).await;
    (tokens, secret, codes)
}

async fn profile(app: &TestApp, token: &str) -> Value {
    expect(app.profile(token).await, Status::Ok).await
}

async fn turning_it_on_takes_the_password_and_a_first_code(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let token = tokens.access.as_str();
    let wrong = problem(
        app.post_json_as("/auth/totp", token, json!({ "password": "not it" })).await,
        Status::Forbidden,
    )
    .await;
    assert_eq!(wrong["errors"]["password"][0], "The password is not correct.");
    let setup =
        expect(app.post_json_as("/auth/totp", token, json!({ "password": PASSWORD })).await, Status::Ok)
            .await;
    let secret = setup["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits, base32: {secret}");
    assert_eq!(
        setup["otpauth_uri"],
        format!("otpauth://totp/miniauth:alice?secret={secret}&issuer=miniauth")
    );
    // Not on before a first code.
    assert_eq!(profile(&app, token).await["second_factors"], json!([]));
    assert_eq!(app.login("alice", PASSWORD).await.status(), Status::Ok);
    let wrong = app.post_json_as("/auth/totp/confirm", token, json!({ "code": "000000" })).await;
    let wrong = problem(wrong, Status::UnprocessableEntity).await;
    assert!(wrong["errors"]["code"][0].as_str().unwrap().contains("not correct"), "{wrong}");
    let stale = totp_code(secret, now() - 90);
    let stale = app.post_json_as("/auth/totp/confirm", token, json!({ "code": stale })).await;
    assert_eq!(stale.status(), Status::UnprocessableEntity, "a code three steps old");
    let confirmed =
        app.post_json_as("/auth/totp/confirm", token, json!({ "code": totp_code(secret, now()) })).await;
    assert_eq!(confirmed.headers().get_one("Cache-Control"), Some("no-store"));
    let codes = expect(confirmed, Status::Ok).await["recovery_codes"].clone();
    let codes: Vec<&str> = codes.as_array().unwrap().iter().map(|code| code.as_str().unwrap()).collect();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::BTreeSet<&str> = codes.iter().copied().collect();
    assert_eq!(distinct.len(), 10);
    for code in &codes {
        assert!(code.len() == 19 && code.split('-').all(|part| part.len() == 4), "{code}");
    }
    let on = profile(&app, token).await;
    assert_eq!(
        (on["second_factors"].clone(), on["recovery_codes_left"].clone()),
        (json!(["totp"]), json!(10))
    );
    // Stored as hashes only.
    let stored = app
        .count(&format!(
            "SELECT COUNT(*) FROM recovery_codes WHERE code_hash = '{}'",
            recovery_hash(codes[0])
        ))
        .await;
    assert_eq!(stored, 1);
    let plain =
        app.count(&format!("SELECT COUNT(*) FROM recovery_codes WHERE code_hash = '{}'", codes[0])).await;
    assert_eq!(plain, 0);
    // Once on: no second set-up, nothing waiting.
    let again = app.post_json_as("/auth/totp", token, json!({ "password": PASSWORD })).await;
    assert!(problem(again, Status::Conflict).await["detail"].as_str().unwrap().contains("on already"));
    let again =
        app.post_json_as("/auth/totp/confirm", token, json!({ "code": totp_code(secret, now()) })).await;
    assert_eq!(again.status(), Status::Conflict);
}

async fn a_sign_in_takes_its_second_step_through_the_api(app: TestApp) {
    let (before, secret, _) = two_step_user(&app, "alice").await;
    assert_eq!(jwt_payload(&before.access)["amr"], json!(["pwd"]));
    let sessions = app.count("SELECT COUNT(*) FROM sessions").await;
    let step = first_step(&app, "alice").await;
    assert_eq!(step["error"], "mfa_required");
    assert_eq!(step["methods"], json!(["totp", "recovery_code"]));
    let mfa_token = step["mfa_token"].clone();
    assert!(mfa_token.as_str().is_some_and(|token| token.len() >= 43), "{step}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions").await,
        sessions,
        "the password alone opens no session"
    );
    // The OAuth2 password form gets the same.
    let form = app
        .client
        .post("/auth/login")
        .header(ContentType::Form)
        .body(format!("grant_type=password&username=alice&password={}", PASSWORD.replace(' ', "+")))
        .dispatch()
        .await;
    assert_eq!(problem(form, Status::Forbidden).await["error"], "mfa_required");
    // A wrong code, then the right one.
    assert_eq!(
        problem(finish(&app, &mfa_token, "000000").await, Status::Unauthorized).await["detail"],
        "The code is not correct."
    );
    let done = finish(&app, &mfa_token, &totp_code(&secret, now() + 30)).await;
    let done = expect(done, Status::Ok).await;
    let tokens = Tokens::of(&done);
    assert!(done["device_token"].is_string());
    assert_eq!(jwt_payload(&tokens.access)["amr"], json!(["pwd", "otp", "mfa"]));
    // The session says how it signed in, and keeps it through a refresh.
    let listed = app.sessions(&tokens.access).await;
    let methods: Vec<(&str, bool)> =
        listed.iter().map(|s| (s["methods"].as_str().unwrap(), s["current"].as_bool().unwrap())).collect();
    assert!(
        methods.contains(&("password + code", true)) && methods.contains(&("password", false)),
        "{methods:?}"
    );
    let refreshed = expect(app.refresh(&tokens.refresh).await, Status::Ok).await;
    assert_eq!(jwt_payload(refreshed["access_token"].as_str().unwrap())["amr"], json!(["pwd", "otp", "mfa"]));
    // Single use.
    let again = finish(&app, &mfa_token, &totp_code(&secret, now() + 30)).await;
    assert!(problem(again, Status::Unauthorized).await["detail"].as_str().unwrap().contains("sign in again"));
    // Missing fields are named: the token first (without a live one nothing else matters),
    // then, with one, the code.
    let missing =
        problem(app.post_json("/auth/login/second-factor", json!({})).await, Status::UnprocessableEntity)
            .await;
    assert!(missing["errors"]["mfa_token"].is_array(), "{missing}");
    let step = first_step(&app, "alice").await;
    let body = json!({ "mfa_token": step["mfa_token"] });
    let missing =
        problem(app.post_json("/auth/login/second-factor", body).await, Status::UnprocessableEntity).await;
    assert!(missing["errors"]["code"].is_array(), "{missing}");
    let unknown = json!({ "mfa_token": "no such sign-in" });
    assert_eq!(app.post_json("/auth/login/second-factor", unknown).await.status(), Status::Unauthorized);
}

async fn a_code_works_once_and_a_recovery_code_once(app: TestApp) {
    let (tokens, secret, codes) = two_step_user(&app, "alice").await;
    // The set-up used the code of now: it, and any older one, never works again.
    let step = first_step(&app, "alice").await;
    for at in [now(), now() - 30] {
        assert_eq!(
            finish(&app, &step["mfa_token"], &totp_code(&secret, at)).await.status(),
            Status::Unauthorized
        );
    }
    let code = totp_code(&secret, now() + 30);
    expect(finish(&app, &step["mfa_token"], &code).await, Status::Ok).await;
    let step = first_step(&app, "alice").await;
    assert_eq!(
        finish(&app, &step["mfa_token"], &code).await.status(),
        Status::Unauthorized,
        "a code seen once"
    );
    // A recovery code, however typed, works once.
    let typed = codes[3].to_uppercase().replace('-', " ");
    expect(finish(&app, &step["mfa_token"], &typed).await, Status::Ok).await;
    assert_eq!(profile(&app, &tokens.access).await["recovery_codes_left"], 9);
    let step = first_step(&app, "alice").await;
    assert_eq!(finish(&app, &step["mfa_token"], &codes[3]).await.status(), Status::Unauthorized);
    // Another user's recovery code is nobody's here.
    let (_, _, bobs) = two_step_user(&app, "bob").await;
    assert_eq!(finish(&app, &step["mfa_token"], &bobs[0]).await.status(), Status::Unauthorized);
}

/// (The throttle's limit per name and address is raised here: this is the waiting sign-in's own
/// limit.)
async fn a_waiting_sign_in_takes_five_wrong_codes_and_one_right_one(app: TestApp) {
    let (_, secret, _) = two_step_user(&app, "alice").await;
    let step = first_step(&app, "alice").await;
    for _ in 0..4 {
        assert_eq!(finish(&app, &step["mfa_token"], "000000").await.status(), Status::Unauthorized);
    }
    let fifth = finish(&app, &step["mfa_token"], "111111").await;
    assert_eq!(problem(fifth, Status::Unauthorized).await["detail"], "The code is not correct.");
    let right = finish(&app, &step["mfa_token"], &totp_code(&secret, now() + 30)).await;
    let right = problem(right, Status::Unauthorized).await;
    assert!(right["detail"].as_str().unwrap().contains("too many wrong codes"), "{right}");
    assert_eq!(app.count("SELECT COUNT(*) FROM pending_sign_ins WHERE failures = 5").await, 1);
    // An expired one too (the clock here is the row's).
    let step = first_step(&app, "alice").await;
    app.execute(&["UPDATE pending_sign_ins SET expires_at = created_at WHERE failures = 0".to_owned()]).await;
    assert_eq!(
        finish(&app, &step["mfa_token"], &totp_code(&secret, now() + 30)).await.status(),
        Status::Unauthorized
    );
}

async fn wrong_codes_are_failed_sign_ins_for_the_throttle(app: TestApp) {
    let (_, secret, _) = two_step_user(&app, "alice").await;
    let (first, second) = (first_step(&app, "alice").await, first_step(&app, "alice").await);
    for _ in 0..3 {
        assert_eq!(finish(&app, &first["mfa_token"], "000000").await.status(), Status::Unauthorized);
    }
    // The pair is blocked: even the right code waits, with Retry-After.
    let blocked = finish(&app, &second["mfa_token"], &totp_code(&secret, now() + 30)).await;
    assert_eq!(blocked.status(), Status::TooManyRequests);
    assert!(blocked.headers().get_one("Retry-After").is_some());
    assert_eq!(app.login("alice", PASSWORD).await.status(), Status::TooManyRequests);
}

/// The right password starts a sign-in but finishes none: it does not wipe the pair's count of
/// wrong codes, so signing in again and again buys no more guesses.
async fn the_password_step_does_not_wipe_the_count_of_wrong_codes(app: TestApp) {
    let (_, secret, _) = two_step_user(&app, "alice").await;
    let first = first_step(&app, "alice").await;
    for _ in 0..2 {
        assert_eq!(finish(&app, &first["mfa_token"], "000000").await.status(), Status::Unauthorized);
    }
    let second = first_step(&app, "alice").await;
    assert_eq!(finish(&app, &second["mfa_token"], "000000").await.status(), Status::Unauthorized);
    // Three wrong codes from this address: blocked, the password step too.
    assert_eq!(app.login("alice", PASSWORD).await.status(), Status::TooManyRequests);
    let blocked = finish(&app, &second["mfa_token"], &totp_code(&secret, now() + 30)).await;
    assert_eq!(blocked.status(), Status::TooManyRequests);
}

async fn turning_it_off_takes_the_password_and_a_code(app: TestApp) {
    let (tokens, secret, codes) = two_step_user(&app, "alice").await;
    let token = tokens.access.as_str();
    let wrong_password = delete_totp(&app, token, "not it", &codes[0]).await;
    assert_eq!(wrong_password.status(), Status::Forbidden);
    let wrong_code =
        problem(delete_totp(&app, token, PASSWORD, "000000").await, Status::UnprocessableEntity).await;
    assert!(wrong_code["errors"]["code"].is_array(), "{wrong_code}");
    let missing = problem(delete_totp(&app, token, PASSWORD, "").await, Status::UnprocessableEntity).await;
    assert!(missing["errors"]["code"].is_array(), "{missing}");
    assert_eq!(profile(&app, token).await["second_factors"], json!(["totp"]), "still on");
    assert_eq!(
        delete_totp(&app, token, PASSWORD, &totp_code(&secret, now() + 30)).await.status(),
        Status::NoContent
    );
    let off = profile(&app, token).await;
    assert_eq!((off["second_factors"].clone(), off["recovery_codes_left"].clone()), (json!([]), json!(0)));
    assert_eq!(app.count("SELECT COUNT(*) FROM recovery_codes").await, 0);
    assert_eq!(app.login("alice", PASSWORD).await.status(), Status::Ok, "the password alone again");
    assert_eq!(delete_totp(&app, token, PASSWORD, &codes[1]).await.status(), Status::NotFound);
}

async fn new_recovery_codes_replace_the_old_ones(app: TestApp) {
    let (tokens, _, old) = two_step_user(&app, "alice").await;
    let token = tokens.access.as_str();
    let wrong = app.post_json_as("/auth/recovery-codes", token, json!({ "password": "not it" })).await;
    assert_eq!(wrong.status(), Status::Forbidden);
    let new = expect(
        app.post_json_as("/auth/recovery-codes", token, json!({ "password": PASSWORD })).await,
        Status::Ok,
    )
    .await;
    let new: Vec<String> = serde_json::from_value(new["recovery_codes"].clone()).unwrap();
    assert_eq!(new.len(), 10);
    let step = first_step(&app, "alice").await;
    assert_eq!(finish(&app, &step["mfa_token"], &old[0]).await.status(), Status::Unauthorized);
    expect(finish(&app, &step["mfa_token"], &new[0]).await, Status::Ok).await;
    // Without a second factor there is nothing to replace.
    let [bob] = app.register_and_sign_in("bob", PASSWORD).await;
    let none = app.post_json_as("/auth/recovery-codes", &bob.access, json!({ "password": PASSWORD })).await;
    assert_eq!(none.status(), Status::Conflict);
}

async fn a_sign_in_takes_its_second_step_through_the_pages(app: TestApp) {
    let (_, secret, _) = two_step_user(&app, "alice").await;
    let csrf = csrf_from(&app, "/login?next=/account/email").await;
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("username", "alice"),
        ("password", PASSWORD),
        ("next", "/account/email"),
    ];
    let response = post_form(&app, "/login", &fields).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/login/code?next=%2Faccount%2Femail"));
    assert!(response.cookies().get(TOKEN_COOKIE).is_none(), "not signed in yet");
    let (status, page) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::SeeOther, "not signed in yet: {page}");
    let (status, page) = get_page(&app, "/login/code?next=%2Faccount%2Femail").await;
    assert_eq!(status, Status::Ok);
    for wanted in [
        "autocomplete=\"one-time-code\"",
        "inputmode=\"numeric\"",
        "Use a recovery code",
        "name=\"next\" value=\"&#x2F;account&#x2F;email\"",
    ] {
        assert!(page.contains(wanted), "{wanted}: {page}");
    }
    let csrf = csrf_token(&page);
    let code = |code: &str| {
        [("csrf_token", csrf.clone()), ("code", code.to_owned()), ("next", "/account/email".to_owned())]
    };
    let wrong = code("000000");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = post_form(&app, "/login/code", &wrong).await;
    assert_eq!(response.status(), Status::Unauthorized);
    assert!(response.into_string().await.unwrap_or_default().contains("The code is not correct."));
    // The recovery code page, then the right code: signed in, and on to `next`.
    let (_, page) = get_page(&app, "/login/code?next=%2Faccount%2Femail&recovery=true").await;
    assert!(page.contains("Recovery code") && page.contains("Use the code of your app instead"), "{page}");
    let right = code(&totp_code(&secret, now() + 30));
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = post_form(&app, "/login/code", &right).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/account/email"));
    let (status, page) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("with password + code"), "{page}");
    assert!(page.contains("Authenticator app"), "{page}");
    // The waiting sign-in is spent: its page sends the browser to sign in again.
    assert_eq!(get_page(&app, "/login/code").await.0, Status::SeeOther);
}

/// RFC 6238's own test vector, the skew of one step either way, and the once-per-step rule of
/// the database, all at times the test sets.
async fn codes_follow_the_time_steps_of_a_clock_the_test_sets(app: TestApp) {
    // RFC 6238, appendix B: SHA-1, the ASCII secret "12345678901234567890", T = 59 s → 94287082.
    let rfc = Totp::decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
    assert_eq!(rfc.code_at(59), "287082");
    assert_eq!(rfc.step_of("287082", 59), Some(1));
    assert_eq!(rfc.code_at(1_111_111_109), "081804");
    let t = 1_234_567_890;
    let code = rfc.code_at(t);
    for (at, accepted) in [(t - 60, false), (t - 30, true), (t, true), (t + 30, true), (t + 60, false)] {
        assert_eq!(rfc.step_of(&code, at).is_some(), accepted, "a code of {t} at {at}");
    }
    assert_eq!(rfc.step_of(" 89005924 ", t), None, "six digits only");
    // Each step once per user, and never one older than the newest accepted.
    let (tokens, _, _) = two_step_user(&app, "alice").await;
    let db = app.store();
    let alice = profile(&app, &tokens.access).await["id"].as_i64().unwrap();
    let newest = store::now() / 30 + 10;
    assert!(store::second_factor::accept_step(&db, alice, newest).await.unwrap());
    assert!(!store::second_factor::accept_step(&db, alice, newest).await.unwrap(), "the same step again");
    assert!(!store::second_factor::accept_step(&db, alice, newest - 1).await.unwrap(), "an older step");
    assert!(store::second_factor::accept_step(&db, alice, newest + 1).await.unwrap());
}

/// Sends a form of the page at `page` (its CSRF token) to `action`: the answer's status, location
/// and body.
async fn send(
    app: &TestApp,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> (Status, Option<String>, String) {
    let csrf = csrf_from(app, page).await;
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    let response = post_form(app, action, &all).await;
    let (status, location) = (response.status(), location(&response));
    (status, location, response.into_string().await.unwrap_or_default())
}

/// The recovery codes of a codes page.
fn codes_of(page: &str) -> Vec<String> {
    let start = page.find("id=\"recovery-codes\">").expect("the codes") + "id=\"recovery-codes\">".len();
    let end = start + page[start..].find("</pre>").unwrap();
    page[start..end].lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned).collect()
}

async fn the_account_pages_set_it_up_show_the_codes_once_and_turn_it_off(app: TestApp) {
    sign_up(&app, "alice", PASSWORD).await;
    let (_, profile) = get_page(&app, "/profile").await;
    assert!(profile.contains("href=\"/account/two-factor\"") && profile.contains("Off"), "{profile}");
    let page = "/account/two-factor";
    let (status, _, body) = send(&app, page, page, &[("password", "not it")]).await;
    assert_eq!(status, Status::Forbidden);
    assert!(field_error(&body, "password").is_some(), "{body}");
    let (status, location, _) = send(&app, page, page, &[("password", PASSWORD)]).await;
    assert_eq!((status, location.as_deref()), (Status::SeeOther, Some(page)));
    let (_, setup) = get_page(&app, page).await;
    assert!(setup.contains("<svg role=\"img\"") && setup.contains("<path"), "a QR code drawn here: {setup}");
    assert!(!setup.contains("<script") && !setup.contains("src=\"http"), "nothing from elsewhere: {setup}");
    let start = setup.find("<code id=\"secret\">").unwrap() + "<code id=\"secret\">".len();
    let secret: String = setup[start..start + setup[start..].find("</code>").unwrap()].split(' ').collect();
    assert_eq!(secret.len(), 32, "{secret}");
    let action = "/account/two-factor/confirm";
    let (status, _, body) = send(&app, page, action, &[("code", "000000")]).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(field_error(&body, "code").is_some_and(|e| e.contains("not correct")), "{body}");
    let (status, _, shown) = send(&app, page, action, &[("code", &totp_code(&secret, now()))]).await;
    assert_eq!(status, Status::Ok, "{shown}");
    let codes = codes_of(&shown);
    assert_eq!(codes.len(), 10, "{shown}");
    assert!(shown.contains("download=\"miniauth-recovery-codes.txt\""), "{shown}");
    assert!(shown.contains(&format!("data:text/plain;charset=utf-8,{}%0D%0A", codes[0])), "{shown}");
    let (_, profile) = get_page(&app, "/profile").await;
    assert!(profile.contains("Authenticator app"), "{profile}");
    let (_, on) = get_page(&app, page).await;
    assert!(on.contains("10 recovery codes left") && !on.contains("<svg"), "{on}");
    // New codes: the old ones stop working.
    let (status, _, shown) =
        send(&app, page, "/account/two-factor/recovery-codes", &[("password", PASSWORD)]).await;
    assert_eq!(status, Status::Ok);
    let new = codes_of(&shown);
    assert!(new.iter().all(|code| !codes.contains(code)));
    // Off: the password and a code.
    let action = "/account/two-factor/disable";
    let (status, _, body) = send(&app, page, action, &[("password", PASSWORD), ("code", &codes[0])]).await;
    assert_eq!(status, Status::UnprocessableEntity, "an old recovery code: {body}");
    let (status, location, _) = send(&app, page, action, &[("password", PASSWORD), ("code", &new[0])]).await;
    assert_eq!((status, location.as_deref()), (Status::SeeOther, Some("/profile")));
    let (_, profile) = get_page(&app, "/profile").await;
    assert!(
        profile.contains("Two-step sign-in is off.") && profile.contains("Set up the authenticator app"),
        "{profile}"
    );
}

/// MiniAuth protecting example.com: the vault asks for two-step sign-in, the rest does not.
pub(crate) fn vault(figment: Figment) -> Figment {
    let hosts = json!({"hosts": {
        "vault.example.com": {"any_signed_in": true, "second_factor": true},
        "example.com": {"any_signed_in": true},
    }});
    figment
        .merge(("public_url", "https://auth.example.com"))
        .merge(("trusted_proxies", ["127.0.0.1/32"]))
        .merge(("forward_auth_domains", ["example.com"]))
        .merge(("forward_auth", hosts))
        .merge(("cookie_domain", "example.com"))
}

/// What nginx asks about `GET url` for the holder of `token` (a browser's page, or an API call).
pub(crate) async fn ask<'c>(app: &'c TestApp, url: &str, token: &str, browser: bool) -> LocalResponse<'c> {
    app.client
        .get("/authz/auth-request")
        .remote("127.0.0.1:50000".parse::<std::net::SocketAddr>().unwrap())
        .header(rocket::http::Header::new("X-Original-Method", "GET"))
        .header(rocket::http::Header::new("X-Original-URL", url.to_owned()))
        .header(rocket::http::Header::new("Accept", if browser { "text/html" } else { "application/json" }))
        .header(bearer(token))
        .dispatch()
        .await
}

async fn a_host_asking_for_two_step_sign_in_admits_only_sessions_that_used_it(app: TestApp) {
    let vault = "https://vault.example.com/secrets";
    let (password_only, secret, _) = two_step_user(&app, "alice").await;
    assert_eq!(
        ask(&app, "https://wiki.example.com/", &password_only.access, false).await.status(),
        Status::Ok
    );
    let refused = ask(&app, vault, &password_only.access, false).await;
    assert_eq!(refused.status(), Status::Forbidden, "an API call with a password-only session");
    assert!(refused.into_string().await.unwrap_or_default().contains("two-step sign-in"));
    let browser = ask(&app, vault, &password_only.access, true).await;
    assert_eq!(browser.status(), Status::Unauthorized, "a browser is sent to sign in");
    let to = browser.headers().get_one("Location").unwrap_or_default().to_owned();
    assert!(to.starts_with("https://auth.example.com/login?rd="), "{to}");
    // Signed in with the code: the vault opens.
    let step = first_step(&app, "alice").await;
    let done =
        expect(finish(&app, &step["mfa_token"], &totp_code(&secret, now() + 30)).await, Status::Ok).await;
    let two_steps = Tokens::of(&done);
    let answer = ask(&app, vault, &two_steps.access, false).await;
    assert_eq!(answer.status(), Status::Ok);
    assert_eq!(answer.headers().get_one("Remote-User"), Some("alice"));
    // The sign-in page, for a password-only browser session coming from the vault, asks for a
    // sign-in again (with the code) instead of sending it straight back.
    let rd = "/login?rd=https%3A%2F%2Fvault.example.com%2Fsecrets";
    let page = |token: &str| {
        app.client.get(rd).cookie(rocket::http::Cookie::new(TOKEN_COOKIE, token.to_owned())).dispatch()
    };
    let response = page(&password_only.access).await;
    assert_eq!(response.status(), Status::Ok);
    assert!(response.into_string().await.unwrap_or_default().contains("sign in again, with your code"));
    let response = page(&two_steps.access).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("https://vault.example.com/secrets"));
    // Without a second factor there is no code to sign in with: set one up first.
    let [bob] = app.register_and_sign_in("bob", PASSWORD).await;
    let response = page(&bob.access).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/account/two-factor"));
}
