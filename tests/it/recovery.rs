//! Recovery by email through the JSON API: the optional address and its confirmation
//! link, password reset links (one-time, hashed, short-lived, void after a password change or a
//! newer request, sent only to a confirmed address), the answer that reveals nothing, the
//! hourly limits, and links that never take the request's host. Mail goes to the default
//! outbox (`<data_dir>/outbox/*.eml`) and is read from there.

use crate::common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::mail::{header, mails_in, token, unfolded, wait_for_mails};
use common::{bearer, expect, problem, TestApp};
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use rocket::serde::json::{json, Value};

backend_tests!(
    the_profile_has_no_address_until_one_is_set,
    an_address_is_set_with_202_and_a_confirmation_link_is_mailed_to_it,
    the_confirmation_link_opens_a_button_and_only_its_post_confirms,
    a_confirmation_link_works_once_and_not_after_the_address_changed,
    an_unconfirmed_claim_reserves_nothing_and_the_owners_confirmation_ends_it,
    an_address_another_account_confirmed_gets_the_usual_answer_and_no_link,
    of_two_unconfirmed_claims_the_first_confirmed_keeps_the_address_and_the_second_gets_409,
    a_malformed_or_too_long_address_is_422_and_changes_nothing,
    removing_the_address_is_204_and_voids_its_links,
    the_same_confirmed_address_again_changes_nothing_and_mails_nothing,
    a_reset_link_sets_a_new_password_and_revokes_every_session,
    a_reset_link_works_once,
    a_reset_link_is_checked_against_the_password_rules_before_it_is_spent,
    a_reset_request_needs_a_username_or_an_address,
    only_a_confirmed_address_receives_a_reset_link,
    a_newer_request_voids_the_older_link,
    a_password_change_voids_the_reset_link,
    an_expired_reset_link_is_400,
    reset_links_are_stored_only_as_hashes,
    a_reset_link_works_only_while_its_address_is_the_confirmed_one,
    an_account_gets_at_most_three_mails_an_hour_and_the_answer_never_changes,
    outbox_messages_are_readable_by_the_server_user_only,
);

// Nine requests from one address: its own limit is off here (the test below has it).
backend_tests_with!(
    |figment| figment.merge(("mail_max_per_address_hour", 0));
    a_reset_request_answers_the_same_whatever_it_names => same_answer_sqlite, same_answer_postgres,
);

#[test]
fn a_nul_byte_in_a_reset_request_is_nobody_and_logs_no_error_on_sqlite() {
    a_nul_byte_in_a_reset_request_is_nobody_and_logs_no_error(common::Backend::Sqlite);
}

needs_postgres! {
    #[test]
    fn a_nul_byte_in_a_reset_request_is_nobody_and_logs_no_error_on_postgres() {
        a_nul_byte_in_a_reset_request_is_nobody_and_logs_no_error(common::Backend::Postgres);
    }
}

backend_tests_with!(
    |figment| figment.merge(("mail_max_per_address_hour", 3)).merge(("mail_max_per_account_hour", 0));
    an_address_that_asks_too_often_gets_the_same_answer_and_no_mail => address_limit_sqlite, address_limit_postgres,
);

backend_tests_with!(
    |figment| figment.merge(("public_url", "https://auth.example.com/")).merge(("trusted_proxies", ["127.0.0.1/32"]));
    a_forged_host_never_reaches_a_mail => forged_host_sqlite, forged_host_postgres,
);

pub const PASSWORD: &str = "correct horse battery";
pub const NEW_PASSWORD: &str = "a brand new passphrase";
/// `public_url` as the test apps have it: the default, from `address` and `port`.
pub const PUBLIC_URL: &str = "http://localhost:8000";
pub const CONFIRM: &str = "/email/confirm";
pub const RESET: &str = "/password-reset/new";
pub const ALICE: &str = "alice@example.com";

fn outbox(app: &TestApp) -> PathBuf {
    app.data_dir.path().join("outbox")
}

async fn put_email<'c>(app: &'c TestApp, access: &str, email: &str) -> LocalResponse<'c> {
    app.client
        .put("/auth/email")
        .header(ContentType::JSON)
        .header(bearer(access))
        .body(json!({ "email": email }).to_string())
        .dispatch()
        .await
}

async fn profile(app: &TestApp, access: &str) -> Value {
    expect(app.profile(access).await, Status::Ok).await
}

async fn request_reset(app: &TestApp, body: Value) -> Value {
    expect(app.post_json("/auth/password-reset", body).await, Status::Accepted).await
}

async fn confirm_reset<'c>(app: &'c TestApp, token: &str, new_password: &str) -> LocalResponse<'c> {
    app.post_json("/auth/password-reset/confirm", json!({ "token": token, "new_password": new_password }))
        .await
}

/// The messages in the outbox to `to` with a link to `path`, oldest first.
fn mails_with(app: &TestApp, to: &str, path: &str) -> Vec<String> {
    let link = format!("{PUBLIC_URL}{path}?token=");
    let mails = mails_in(&outbox(app));
    mails
        .into_iter()
        .filter(|mail| header(mail, "To").as_deref() == Some(to) && unfolded(mail).contains(&link))
        .collect()
}

/// Waits for the `count`th message to `to` with a link to `path`; returns that link's token.
async fn wait_for_link(app: &TestApp, to: &str, path: &str, count: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(mail) = mails_with(app, to, path).get(count - 1) {
            return token(mail, PUBLIC_URL, path);
        }
        assert!(std::time::Instant::now() < deadline, "no message {count} to {to} with {path}");
        rocket::tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Registers `username`, signs in, and gives the account `email`, confirmed through the link
/// mailed to it; returns the access token.
async fn with_confirmed_email(app: &TestApp, username: &str, email: &str) -> String {
    let [tokens] = app.register_and_sign_in(username, PASSWORD).await;
    expect(put_email(app, &tokens.access, email).await, Status::Accepted).await;
    let confirm = wait_for_link(app, email, CONFIRM, 1).await;
    let confirmed = app.post_json("/auth/email/confirm", json!({ "token": confirm })).await;
    assert_eq!(confirmed.status(), Status::NoContent);
    tokens.access
}

/// Asks for a reset link for `username`, whose address is `email`, and returns its token.
async fn reset_token(app: &TestApp, username: &str, email: &str) -> String {
    let count = mails_with(app, email, RESET).len() + 1;
    request_reset(app, json!({ "username": username })).await;
    wait_for_link(app, email, RESET, count).await
}

async fn the_profile_has_no_address_until_one_is_set(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let me = profile(&app, &tokens.access).await;
    assert_eq!(me["email"], Value::Null, "{me}");
    assert_eq!(me["email_confirmed"], false, "{me}");
}

async fn an_address_is_set_with_202_and_a_confirmation_link_is_mailed_to_it(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let body = expect(put_email(&app, &tokens.access, "Alice@Example.com").await, Status::Accepted).await;
    assert_eq!(body["email"], "Alice@Example.com", "kept as typed: {body}");
    assert_eq!(body["email_confirmed"], false, "{body}");
    let me = profile(&app, &tokens.access).await;
    assert_eq!(
        (me["email"].as_str(), me["email_confirmed"].as_bool()),
        (Some("Alice@Example.com"), Some(false))
    );
    let mails = wait_for_mails(&outbox(&app), 1).await;
    assert_eq!(header(&mails[0], "To").as_deref(), Some("Alice@Example.com"), "{}", mails[0]);
    assert_eq!(header(&mails[0], "From").as_deref(), Some("MiniAuth <miniauth@localhost>"));
    assert_eq!(header(&mails[0], "Subject").as_deref(), Some("Confirm your email address"));
    assert!(mails[0].contains("multipart/alternative") && mails[0].contains("text/html"), "{}", mails[0]);
    let token = token(&mails[0], PUBLIC_URL, CONFIRM);
    assert_eq!(token.len(), 43, "256 bits, base64url: {token}");
}

async fn the_confirmation_link_opens_a_button_and_only_its_post_confirms(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    expect(put_email(&app, &tokens.access, "alice@example.com").await, Status::Accepted).await;
    let mails = wait_for_mails(&outbox(&app), 1).await;
    let link = common::mail::link(&mails[0], &format!("{PUBLIC_URL}{CONFIRM}?token="));
    // A mail scanner fetching the link, twice: a page with a button, nothing confirmed.
    let path = link.trim_start_matches(PUBLIC_URL).to_owned();
    for _ in 0..2 {
        let (status, html) = common::browser::get_page(&app, &path).await;
        assert_eq!(status, Status::Ok);
        assert!(html.contains("<form") && html.contains("action=\"/email/confirm\""), "{html}");
    }
    assert_eq!(profile(&app, &tokens.access).await["email_confirmed"], false);
    // The button: the form's POST, with its CSRF token.
    let (_, html) = common::browser::get_page(&app, &path).await;
    let csrf = common::browser::csrf_token(&html);
    let token = common::browser::attribute(common::browser::input_tag(&html, "token"), "value").unwrap();
    let response =
        common::browser::post_form(&app, CONFIRM, &[("csrf_token", &csrf), ("token", &token)]).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(profile(&app, &tokens.access).await["email_confirmed"], true);
}

async fn a_confirmation_link_works_once_and_not_after_the_address_changed(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    expect(put_email(&app, &tokens.access, "old@example.com").await, Status::Accepted).await;
    let old = token(&wait_for_mails(&outbox(&app), 1).await[0], PUBLIC_URL, CONFIRM);
    expect(put_email(&app, &tokens.access, "new@example.com").await, Status::Accepted).await;
    let new = token(&wait_for_mails(&outbox(&app), 2).await[1], PUBLIC_URL, CONFIRM);
    let stale = app.post_json("/auth/email/confirm", json!({ "token": old })).await;
    let body = problem(stale, Status::BadRequest).await;
    assert!(body["detail"].as_str().unwrap().contains("invalid, already used or expired"), "{body}");
    assert_eq!(
        app.post_json("/auth/email/confirm", json!({ "token": new })).await.status(),
        Status::NoContent
    );
    let again = app.post_json("/auth/email/confirm", json!({ "token": new })).await;
    problem(again, Status::BadRequest).await;
    let me = profile(&app, &tokens.access).await;
    assert_eq!(
        (me["email"].as_str(), me["email_confirmed"].as_bool()),
        (Some("new@example.com"), Some(true))
    );
}

/// A squatter adds the victim's address without confirming it: the victim can still add it
/// (no `409` that would also tell who has it), confirm it, and so end the squatter's claim.
async fn an_unconfirmed_claim_reserves_nothing_and_the_owners_confirmation_ends_it(app: TestApp) {
    let [mallory] = app.register_and_sign_in("mallory", PASSWORD).await;
    expect(put_email(&app, &mallory.access, "Alice@Example.com").await, Status::Accepted).await;
    let squatters = wait_for_link(&app, "Alice@Example.com", CONFIRM, 1).await;
    let [alice] = app.register_and_sign_in("alice", PASSWORD).await;
    let answer = expect(put_email(&app, &alice.access, ALICE).await, Status::Accepted).await;
    assert_eq!((answer["email"].as_str(), answer["email_confirmed"].as_bool()), (Some(ALICE), Some(false)));
    let owners = wait_for_link(&app, ALICE, CONFIRM, 1).await;
    expect(app.post_json("/auth/email/confirm", json!({ "token": owners })).await, Status::NoContent).await;
    assert_eq!(profile(&app, &alice.access).await["email_confirmed"], Value::Bool(true));
    // The squatter's claim, and the link mailed for it, are gone.
    assert_eq!(profile(&app, &mallory.access).await["email"], Value::Null);
    problem(app.post_json("/auth/email/confirm", json!({ "token": squatters })).await, Status::BadRequest)
        .await;
    // Reset links for the address go to its owner.
    request_reset(&app, json!({ "email": "ALICE@example.com" })).await;
    wait_for_link(&app, ALICE, RESET, 1).await;
}

/// An address another account has confirmed: the answer is the usual one (it tells nobody
/// whose it is), no confirmation link is mailed, and the owner keeps it.
async fn an_address_another_account_confirmed_gets_the_usual_answer_and_no_link(app: TestApp) {
    let owner = with_confirmed_email(&app, "alice", ALICE).await;
    let [bob] = app.register_and_sign_in("bob", PASSWORD).await;
    let answer = expect(put_email(&app, &bob.access, "ALICE@example.COM").await, Status::Accepted).await;
    assert_eq!(answer["email_confirmed"], Value::Bool(false));
    // Another mail for the owner's address would have gone out by the time this one does.
    expect(put_email(&app, &bob.access, "bob@example.com").await, Status::Accepted).await;
    wait_for_link(&app, "bob@example.com", CONFIRM, 1).await;
    assert!(
        mails_with(&app, "ALICE@example.COM", CONFIRM).is_empty(),
        "a link for an address confirmed elsewhere"
    );
    assert_eq!(mails_with(&app, ALICE, CONFIRM).len(), 1, "only the owner's own confirmation");
    let me = profile(&app, &owner).await;
    assert_eq!((me["email"].as_str(), me["email_confirmed"].as_bool()), (Some(ALICE), Some(true)));
}

/// Two accounts claim one address and both links reach its mailbox: the first followed keeps
/// the address, and the second, had it still been live, gets `409`.
async fn of_two_unconfirmed_claims_the_first_confirmed_keeps_the_address_and_the_second_gets_409(
    app: TestApp,
) {
    let [alice] = app.register_and_sign_in("alice", PASSWORD).await;
    let [bob] = app.register_and_sign_in("bob", PASSWORD).await;
    expect(put_email(&app, &alice.access, ALICE).await, Status::Accepted).await;
    let alices = wait_for_link(&app, ALICE, CONFIRM, 1).await;
    expect(put_email(&app, &bob.access, ALICE).await, Status::Accepted).await;
    let bobs = wait_for_link(&app, ALICE, CONFIRM, 2).await;
    expect(app.post_json("/auth/email/confirm", json!({ "token": alices })).await, Status::NoContent).await;
    // Alice's confirmation ended Bob's claim and its link.
    problem(app.post_json("/auth/email/confirm", json!({ "token": bobs })).await, Status::BadRequest).await;
    assert_eq!(profile(&app, &bob.access).await["email"], Value::Null);
    // A confirmation that loses the race to the unique index is 409 and changes nothing.
    let [carol] = app.register_and_sign_in("carol", PASSWORD).await;
    expect(put_email(&app, &carol.access, "carol@example.com").await, Status::Accepted).await;
    let carols = wait_for_link(&app, "carol@example.com", CONFIRM, 1).await;
    // Carol's mailbox link names Alice's address, as if she had claimed it before Alice confirmed.
    app.execute(&[
        format!("UPDATE mail_tokens SET email = '{ALICE}' WHERE user_id = (SELECT id FROM users WHERE username = 'carol')"),
        format!("UPDATE users SET email = '{ALICE}', email_key = '{ALICE}' WHERE username = 'carol'"),
    ])
    .await;
    let taken =
        problem(app.post_json("/auth/email/confirm", json!({ "token": carols })).await, Status::Conflict)
            .await;
    assert!(taken["detail"].as_str().unwrap().contains("Another account"), "{taken}");
    assert_eq!(profile(&app, &alice.access).await["email_confirmed"], Value::Bool(true));
    assert_eq!(profile(&app, &carol.access).await["email_confirmed"], Value::Bool(false));
}

async fn a_malformed_or_too_long_address_is_422_and_changes_nothing(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    expect(put_email(&app, &tokens.access, "alice@example.com").await, Status::Accepted).await;
    let longest = format!("a@{}.{}.{}.{}", "d".repeat(63), "d".repeat(63), "d".repeat(63), "d".repeat(60));
    for bad in [
        "",
        "alice",
        "alice@",
        "@example.com",
        "a b@example.com",
        "alice@exa mple.com",
        &format!("{longest}d"),
    ] {
        let body = problem(put_email(&app, &tokens.access, bad).await, Status::UnprocessableEntity).await;
        assert!(body["errors"]["email"].is_array(), "{bad:?}: {body}");
    }
    let wrong_type = app
        .client
        .put("/auth/email")
        .header(ContentType::JSON)
        .header(bearer(&tokens.access))
        .body(r#"{"email": 42}"#)
        .dispatch()
        .await;
    assert!(wrong_type.status().code >= 400 && wrong_type.status().code < 500);
    assert_eq!(profile(&app, &tokens.access).await["email"], "alice@example.com", "unchanged");
    expect(put_email(&app, &tokens.access, &longest).await, Status::Accepted).await;
}

async fn removing_the_address_is_204_and_voids_its_links(app: TestApp) {
    let access = with_confirmed_email(&app, "alice", ALICE).await;
    let reset = reset_token(&app, "alice", ALICE).await;
    let removed = app.client.delete("/auth/email").header(bearer(&access)).dispatch().await;
    assert_eq!(removed.status(), Status::NoContent);
    let me = profile(&app, &access).await;
    assert_eq!((me["email"].clone(), me["email_confirmed"].clone()), (Value::Null, Value::Bool(false)));
    problem(confirm_reset(&app, &reset, NEW_PASSWORD).await, Status::BadRequest).await;
    let unauthenticated = app.client.delete("/auth/email").dispatch().await;
    assert_eq!(unauthenticated.status(), Status::Unauthorized);
}

async fn the_same_confirmed_address_again_changes_nothing_and_mails_nothing(app: TestApp) {
    let access = with_confirmed_email(&app, "alice", ALICE).await;
    let body = expect(put_email(&app, &access, "ALICE@example.com").await, Status::Accepted).await;
    assert_eq!(
        (body["email"].as_str(), body["email_confirmed"].as_bool()),
        (Some("alice@example.com"), Some(true))
    );
    // The confirmation, then a reset link asked for after it: nothing in between.
    reset_token(&app, "alice", ALICE).await;
    assert_eq!(mails_in(&outbox(&app)).len(), 2);
}

async fn a_reset_link_sets_a_new_password_and_revokes_every_session(app: TestApp) {
    let access = with_confirmed_email(&app, "alice", ALICE).await;
    let other = app.sign_in("alice", PASSWORD).await;
    let reset = reset_token(&app, "alice", ALICE).await;
    let mail = &mails_in(&outbox(&app))[1];
    assert_eq!(header(mail, "To").as_deref(), Some("alice@example.com"));
    assert_eq!(header(mail, "Subject").as_deref(), Some("Reset your password"));
    assert!(mail.contains("30 minutes"), "{mail}");
    assert_eq!(confirm_reset(&app, &reset, NEW_PASSWORD).await.status(), Status::NoContent);
    assert!(!app.token_works(&access).await, "every session is revoked");
    assert!(!app.token_works(&other.access).await);
    assert_eq!(app.refresh(&other.refresh).await.status(), Status::Unauthorized);
    assert_eq!(app.login("alice", PASSWORD).await.status(), Status::Unauthorized);
    app.sign_in("alice", NEW_PASSWORD).await;
}

async fn a_reset_link_works_once(app: TestApp) {
    with_confirmed_email(&app, "alice", ALICE).await;
    let reset = reset_token(&app, "alice", ALICE).await;
    assert_eq!(confirm_reset(&app, &reset, NEW_PASSWORD).await.status(), Status::NoContent);
    let again =
        problem(confirm_reset(&app, &reset, "yet another good passphrase").await, Status::BadRequest).await;
    assert!(again["detail"].as_str().unwrap().contains("ask for a new one"), "{again}");
    app.sign_in("alice", NEW_PASSWORD).await;
    for unknown in ["", "nonsense", &"A".repeat(43)] {
        let response = confirm_reset(&app, unknown, NEW_PASSWORD).await;
        assert!(matches!(response.status().code, 400 | 422), "{unknown:?}: {}", response.status());
    }
}

async fn a_reset_link_is_checked_against_the_password_rules_before_it_is_spent(app: TestApp) {
    with_confirmed_email(&app, "alice", ALICE).await;
    let reset = reset_token(&app, "alice", ALICE).await;
    for weak in ["short", "password123", "alice-is-my-name"] {
        let body = problem(confirm_reset(&app, &reset, weak).await, Status::UnprocessableEntity).await;
        assert!(body["errors"]["new_password"].is_array(), "{weak}: {body}");
    }
    assert_eq!(confirm_reset(&app, &reset, NEW_PASSWORD).await.status(), Status::NoContent);
}

async fn a_reset_request_answers_the_same_whatever_it_names(app: TestApp) {
    with_confirmed_email(&app, "alice", ALICE).await;
    app.registered("bob", PASSWORD).await;
    let mut answers = Vec::new();
    for body in [
        json!({ "username": "alice" }),
        json!({ "username": "ALICE" }),
        json!({ "email": "Alice@Example.com" }),
        json!({ "username": "bob" }),
        json!({ "username": "nobody" }),
        json!({ "email": "nobody@example.com" }),
        json!({ "username": "not a possible name!" }),
        json!({ "username": "", "email": "nobody@example.com" }),
        json!({ "username": null, "email": "nobody@example.com" }),
    ] {
        let response = app.post_json("/auth/password-reset", body.clone()).await;
        assert_eq!(response.status(), Status::Accepted, "{body}");
        let headers: Vec<String> =
            response.headers().iter().map(|h| format!("{}: {}", h.name, h.value)).collect();
        answers.push((headers, response.into_string().await.unwrap()));
    }
    assert!(answers.windows(2).all(|pair| pair[0] == pair[1]), "{answers:#?}");
    assert!(answers[0].1.contains("If an account"), "{}", answers[0].1);
    // Requests are answered in order: once zed's link is out, every request above was answered.
    // alice, named three ways, got two links (her confirmation was the hour's first of three).
    with_confirmed_email(&app, "zed", "zed@example.com").await;
    reset_token(&app, "zed", "zed@example.com").await;
    assert_eq!(mails_with(&app, ALICE, RESET).len(), 2);
    assert_eq!(mails_in(&outbox(&app)).len(), 1 + 2 + 2);
}

async fn a_reset_request_needs_a_username_or_an_address(app: TestApp) {
    for body in [
        json!({}),
        json!({ "username": "" }),
        json!({ "username": "", "email": "" }),
        json!({ "username": "a", "email": "a@example.com" }),
    ] {
        let answer =
            problem(app.post_json("/auth/password-reset", body.clone()).await, Status::UnprocessableEntity)
                .await;
        assert!(answer["errors"].is_object(), "{body}: {answer}");
    }
    let text =
        app.client.post("/auth/password-reset").header(ContentType::Text).body("alice").dispatch().await;
    assert_eq!(text.status(), Status::UnsupportedMediaType);
}

async fn only_a_confirmed_address_receives_a_reset_link(app: TestApp) {
    let [carol] = app.register_and_sign_in("carol", PASSWORD).await;
    expect(put_email(&app, &carol.access, "carol@example.com").await, Status::Accepted).await;
    wait_for_mails(&outbox(&app), 1).await;
    request_reset(&app, json!({ "username": "carol" })).await;
    request_reset(&app, json!({ "email": "carol@example.com" })).await;
    // Requests are answered in order: once alice's link is out, carol's requests were answered.
    with_confirmed_email(&app, "alice", ALICE).await;
    reset_token(&app, "alice", ALICE).await;
    assert_eq!(mails_in(&outbox(&app)).len(), 3, "carol's confirmation, alice's confirmation and her link");
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_tokens WHERE purpose = 'reset'").await, 1);
}

async fn a_newer_request_voids_the_older_link(app: TestApp) {
    with_confirmed_email(&app, "alice", ALICE).await;
    let first = reset_token(&app, "alice", ALICE).await;
    let second = reset_token(&app, "alice", ALICE).await;
    assert_ne!(first, second);
    problem(confirm_reset(&app, &first, NEW_PASSWORD).await, Status::BadRequest).await;
    assert_eq!(confirm_reset(&app, &second, NEW_PASSWORD).await.status(), Status::NoContent);
}

async fn a_password_change_voids_the_reset_link(app: TestApp) {
    let access = with_confirmed_email(&app, "alice", ALICE).await;
    let reset = reset_token(&app, "alice", ALICE).await;
    let changed = app
        .client
        .post("/auth/password")
        .header(ContentType::JSON)
        .header(bearer(&access))
        .body(json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }).to_string())
        .dispatch()
        .await;
    assert_eq!(changed.status(), Status::NoContent);
    problem(confirm_reset(&app, &reset, "yet another good passphrase").await, Status::BadRequest).await;
    app.sign_in("alice", NEW_PASSWORD).await;
}

async fn an_expired_reset_link_is_400(app: TestApp) {
    with_confirmed_email(&app, "alice", ALICE).await;
    let reset = reset_token(&app, "alice", ALICE).await;
    let expires_at = app.count("SELECT expires_at FROM mail_tokens WHERE purpose = 'reset'").await;
    let created_at = app.count("SELECT created_at FROM mail_tokens WHERE purpose = 'reset'").await;
    assert_eq!(expires_at - created_at, 1800, "reset_token_ttl: 30 minutes");
    app.execute(&["UPDATE mail_tokens SET expires_at = expires_at - 1800".to_owned()]).await;
    problem(confirm_reset(&app, &reset, NEW_PASSWORD).await, Status::BadRequest).await;
    app.sign_in("alice", PASSWORD).await;
}

/// Stores a reset token for `email` as the background task does, at `created_at`: what a task
/// that read the address just before it changed would have stored just after.
async fn plant_reset_token(app: &TestApp, token: &str, email: &str, created_at: i64) {
    use base64::Engine;
    use sha2::Digest;
    let hash =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token.as_bytes()));
    app.execute(&[format!(
        "INSERT INTO mail_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
         SELECT '{hash}', id, 'reset', '{email}', {created_at}, {} FROM users WHERE username = 'alice'",
        created_at + 1800
    )])
    .await;
}

/// A reset link works only while the address it was mailed to is the account's confirmed one,
/// and was confirmed before the link was made: a link stored as the address changed or went
/// (the race of a mail being prepared) resets nothing, nor does one from before the same
/// address was confirmed again.
async fn a_reset_link_works_only_while_its_address_is_the_confirmed_one(app: TestApp) {
    let access = with_confirmed_email(&app, "alice", ALICE).await;
    let now = common::now();
    expect(put_email(&app, &access, "new@example.com").await, Status::Accepted).await;
    plant_reset_token(&app, "raced-a-change", ALICE, now).await;
    problem(confirm_reset(&app, "raced-a-change", NEW_PASSWORD).await, Status::BadRequest).await;
    let page = app.client.get("/password-reset/new?token=raced-a-change").dispatch().await;
    assert_eq!(page.status(), Status::BadRequest);
    drop(page);
    assert_eq!(
        app.client.delete("/auth/email").header(bearer(&access)).dispatch().await.status(),
        Status::NoContent
    );
    plant_reset_token(&app, "raced-a-removal", ALICE, now).await;
    problem(confirm_reset(&app, "raced-a-removal", NEW_PASSWORD).await, Status::BadRequest).await;
    // The same address, added and confirmed again: a link from before voids nothing less.
    expect(put_email(&app, &access, ALICE).await, Status::Accepted).await;
    let confirm = wait_for_link(&app, ALICE, CONFIRM, 2).await;
    expect(app.post_json("/auth/email/confirm", json!({ "token": confirm })).await, Status::NoContent).await;
    plant_reset_token(&app, "from-before", ALICE, now - 60).await;
    problem(confirm_reset(&app, "from-before", NEW_PASSWORD).await, Status::BadRequest).await;
    assert_eq!(app.login("alice", PASSWORD).await.status(), Status::Ok, "the password is unchanged");
    // The same token made now, for the confirmed address, works: the refusals above were theirs.
    plant_reset_token(&app, "made-now", ALICE, common::now()).await;
    assert_eq!(confirm_reset(&app, "made-now", NEW_PASSWORD).await.status(), Status::NoContent);
}

/// A NUL byte (which PostgreSQL refuses in text) in a reset request names nobody: the answer is
/// the usual one and the server logs no error.
fn a_nul_byte_in_a_reset_request_is_nobody_and_logs_no_error(backend: common::Backend) {
    let database = (backend == common::Backend::Postgres).then(|| common::TestDatabase::create(backend));
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, &str)> = database.iter().map(|database| database.env()).collect();
    let server = common::server::Server::start(dir.path(), &env);
    for body in [r#"{"username":"al\u0000ice"}"#, r#"{"email":"al\u0000ice@example.com"}"#] {
        let (status, _, _) = server.request("POST", "/auth/password-reset", &[common::server::JSON], body);
        assert_eq!(status, 202, "{body}");
    }
    // A request behind them that is answered shows the two were handled.
    let (status, _, _) =
        server.request("POST", "/auth/password-reset", &[common::server::JSON], r#"{"username":"nobody"}"#);
    assert_eq!(status, 202);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let log = server.stop();
    assert!(!log.contains("ERROR") && !log.contains("password reset:"), "{log}");
}

async fn reset_links_are_stored_only_as_hashes(app: TestApp) {
    with_confirmed_email(&app, "alice", ALICE).await;
    let reset = reset_token(&app, "alice", ALICE).await;
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM mail_tokens WHERE token_hash = '{reset}'")).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_tokens").await, 1, "the confirmation token is spent");
}

async fn an_account_gets_at_most_three_mails_an_hour_and_the_answer_never_changes(app: TestApp) {
    // The confirmation is the first mail of the hour, so two reset links follow, then none.
    with_confirmed_email(&app, "alice", ALICE).await;
    for _ in 0..5 {
        request_reset(&app, json!({ "username": "alice" })).await;
    }
    // Answered in order: once bob's link is out, alice's five requests were answered.
    with_confirmed_email(&app, "bob", "bob@example.com").await;
    reset_token(&app, "bob", "bob@example.com").await;
    let to_alice =
        mails_in(&outbox(&app)).iter().filter(|m| header(m, "To").as_deref() == Some(ALICE)).count();
    assert_eq!(to_alice, 3);
}

async fn an_address_that_asks_too_often_gets_the_same_answer_and_no_mail(app: TestApp) {
    with_confirmed_email(&app, "alice", ALICE).await;
    let from = |peer: &str| peer.parse::<SocketAddr>().unwrap();
    // mail_max_per_address_hour = 3 here (and no per-account limit): from one address, the
    // fourth and fifth requests send nothing and answer the same.
    for _ in 0..5 {
        let response = app
            .client
            .post("/auth/password-reset")
            .header(ContentType::JSON)
            .remote(from("192.0.2.7:4000"))
            .body(json!({ "username": "alice" }).to_string())
            .dispatch()
            .await;
        assert!(expect(response, Status::Accepted).await["detail"]
            .as_str()
            .unwrap()
            .starts_with("If an account"));
    }
    let response = app
        .client
        .post("/auth/password-reset")
        .header(ContentType::JSON)
        .remote(from("198.51.100.9:4000"))
        .body(json!({ "username": "alice" }).to_string())
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Accepted);
    wait_for_link(&app, ALICE, RESET, 4).await;
    assert_eq!(mails_with(&app, ALICE, RESET).len(), 4, "three from the first address, one from the second");
    let counted =
        app.count("SELECT count FROM throttle WHERE kind = 'mail_address' AND address = '192.0.2.7'").await;
    assert_eq!(counted, 5);
}

async fn outbox_messages_are_readable_by_the_server_user_only(app: TestApp) {
    with_confirmed_email(&app, "alice", ALICE).await;
    let folder = std::fs::metadata(outbox(&app)).unwrap().permissions().mode() & 0o777;
    assert_eq!(folder, 0o700);
    for entry in std::fs::read_dir(outbox(&app)).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(path.extension().unwrap(), "eml");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            path.display()
        );
    }
}

async fn a_forged_host_never_reaches_a_mail(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let forged = [
        Header::new("Host", "evil.example"),
        Header::new("X-Forwarded-Host", "evil.example"),
        Header::new("Forwarded", "host=evil.example;proto=http"),
        Header::new("X-Forwarded-Proto", "http"),
    ];
    let mut request = app.client.put("/auth/email").header(ContentType::JSON).header(bearer(&tokens.access));
    for header in forged.clone() {
        request = request.header(header);
    }
    expect(
        request.body(json!({ "email": "alice@example.com" }).to_string()).dispatch().await,
        Status::Accepted,
    )
    .await;
    let confirm = token(&wait_for_mails(&outbox(&app), 1).await[0], "https://auth.example.com", CONFIRM);
    app.post_json("/auth/email/confirm", json!({ "token": confirm })).await;
    let mut request = app.client.post("/auth/password-reset").header(ContentType::JSON);
    for header in forged {
        request = request.header(header);
    }
    request.body(json!({ "username": "alice" }).to_string()).dispatch().await;
    let mails = wait_for_mails(&outbox(&app), 2).await;
    token(&mails[1], "https://auth.example.com", RESET);
    for mail in &mails {
        assert!(!mail.contains("evil"), "{mail}");
    }
}
