//! Recovery by email on the pages, as a browser uses them: the address on the
//! profile, the confirmation link's page, and "Forgot your password?" through to a new password
//! and a signed-in browser. The links are read from the outbox.

use crate::common;

use std::path::PathBuf;

use common::browser::{
    attribute, csrf_from, csrf_token, field_error, get_page, input_tag, location, post_form, sign_up,
};
use common::mail::{header, link, mails_in, wait_for_mails};
use common::TestApp;
use rocket::http::Status;

backend_tests!(
    the_sign_in_page_offers_forgot_your_password,
    the_profile_adds_confirms_and_removes_an_address,
    an_address_another_account_confirmed_is_answered_as_any_other_and_gets_no_link,
    forgot_your_password_shows_the_same_page_whatever_was_typed,
    the_whole_reset_flow_ends_signed_in_with_a_notice,
    a_used_or_unknown_reset_link_shows_a_clear_error_page,
    a_reset_form_that_breaks_the_rules_comes_back_with_its_errors_and_the_link_still_works,
    a_reset_signs_in_only_a_user_without_a_second_factor,
);

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a brand new passphrase";
const PUBLIC_URL: &str = "http://localhost:8000";

fn outbox(app: &TestApp) -> PathBuf {
    app.data_dir.path().join("outbox")
}

/// The path (on this site) of the `count`th message's link to `path`.
async fn link_path(app: &TestApp, count: usize, path: &str) -> String {
    let mails = wait_for_mails(&outbox(app), count).await;
    link(&mails[count - 1], &format!("{PUBLIC_URL}{path}?token="))[PUBLIC_URL.len()..].to_owned()
}

/// Sets the signed-in browser's address on the page; returns the answer's status and location.
async fn set_email(app: &TestApp, email: &str) -> (Status, Option<String>, String) {
    let csrf = csrf_from(app, "/account/email").await;
    let response = post_form(app, "/account/email", &[("csrf_token", &csrf), ("email", email)]).await;
    let (status, location) = (response.status(), location(&response));
    (status, location, response.into_string().await.unwrap_or_default())
}

/// Opens a confirmation link and presses its button.
async fn confirm(app: &TestApp, path: &str) -> Option<String> {
    let (status, html) = get_page(app, path).await;
    assert_eq!(status, Status::Ok, "{html}");
    let token = attribute(input_tag(&html, "token"), "value").unwrap();
    let fields = [("csrf_token", csrf_token(&html)), ("token", token)];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = post_form(app, "/email/confirm", &fields).await;
    assert_eq!(response.status(), Status::SeeOther);
    location(&response)
}

/// Signs up `username` on the pages and gives the account a confirmed address.
async fn with_confirmed_email(app: &TestApp, username: &str, email: &str) {
    sign_up(app, username, PASSWORD).await;
    let count = mails_in(&outbox(app)).len() + 1;
    assert_eq!(set_email(app, email).await.0, Status::SeeOther);
    let path = link_path(app, count, "/email/confirm").await;
    assert_eq!(confirm(app, &path).await.as_deref(), Some("/profile"));
}

async fn sign_out(app: &TestApp) {
    let csrf = csrf_from(app, "/profile").await;
    assert_eq!(post_form(app, "/logout", &[("csrf_token", &csrf)]).await.status(), Status::SeeOther);
}

/// Sends the "Forgot your password?" form: the page it answers.
async fn forgot(app: &TestApp, account: &str) -> (Status, String) {
    let csrf = csrf_from(app, "/password-reset").await;
    let response = post_form(app, "/password-reset", &[("csrf_token", &csrf), ("account", account)]).await;
    (response.status(), response.into_string().await.unwrap_or_default())
}

/// Sends the new-password form of a reset link's page.
async fn set_new_password<'c>(
    app: &'c TestApp,
    path: &str,
    password: &str,
    repeated: &str,
) -> rocket::local::asynchronous::LocalResponse<'c> {
    let (status, html) = get_page(app, path).await;
    assert_eq!(status, Status::Ok, "{html}");
    let token = attribute(input_tag(&html, "token"), "value").unwrap();
    let csrf = csrf_token(&html);
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("token", &token),
        ("new_password", password),
        ("new_password_confirm", repeated),
    ];
    post_form(app, "/password-reset/new", &fields).await
}

async fn the_sign_in_page_offers_forgot_your_password(app: TestApp) {
    let (_, html) = get_page(&app, "/login").await;
    assert!(html.contains(r#"<a href="/password-reset">Forgot your password?</a>"#), "{html}");
    let (status, html) = get_page(&app, "/password-reset").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Username or email address"), "{html}");
}

async fn the_profile_adds_confirms_and_removes_an_address(app: TestApp) {
    sign_up(&app, "alice", PASSWORD).await;
    let (_, html) = get_page(&app, "/profile").await;
    assert!(html.contains("Add email"), "{html}");
    let (status, location, _) = set_email(&app, "  alice@example.com ").await;
    assert_eq!((status, location.as_deref()), (Status::SeeOther, Some("/profile")));
    let (_, html) = get_page(&app, "/profile").await;
    assert!(html.contains("We sent a confirmation link to alice@example.com"), "{html}");
    assert!(html.contains("alice@example.com") && html.contains("Unconfirmed"), "{html}");
    let path = link_path(&app, 1, "/email/confirm").await;
    assert_eq!(confirm(&app, &path).await.as_deref(), Some("/profile"));
    let (_, html) = get_page(&app, "/profile").await;
    assert!(html.contains("Your email address is confirmed"), "{html}");
    assert!(html.contains("<span class=\"badge\">Confirmed</span>"), "{html}");
    let csrf = csrf_from(&app, "/profile").await;
    let removed = post_form(&app, "/account/email/remove", &[("csrf_token", &csrf)]).await;
    assert_eq!(removed.status(), Status::SeeOther);
    let (_, html) = get_page(&app, "/profile").await;
    assert!(html.contains("Your email address has been removed") && html.contains("Add email"), "{html}");
    assert!(!html.contains("alice@example.com"), "{html}");
}

/// The page tells nobody which addresses other accounts have: an address another account
/// confirmed is answered as any other, and no link is mailed for it.
async fn an_address_another_account_confirmed_is_answered_as_any_other_and_gets_no_link(app: TestApp) {
    with_confirmed_email(&app, "alice", "alice@example.com").await;
    sign_out(&app).await;
    sign_up(&app, "bob", PASSWORD).await;
    let mails = mails_in(&outbox(&app)).len();
    let (status, location, _) = set_email(&app, "ALICE@example.com").await;
    assert_eq!((status, location.as_deref()), (Status::SeeOther, Some("/profile")));
    let (_, html) = get_page(&app, "/profile").await;
    assert!(html.contains("We sent a confirmation link to ALICE@example.com"), "{html}");
    // A mail for bob's next address is the proof that none went out for the first.
    assert_eq!(set_email(&app, "bob@example.com").await.0, Status::SeeOther);
    link_path(&app, mails + 1, "/email/confirm").await;
    let sent = mails_in(&outbox(&app));
    assert_eq!(sent.len(), mails + 1, "a link was mailed for an address confirmed elsewhere");
    let (status, _, html) = set_email(&app, "not an address").await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(field_error(&html, "email").is_some(), "{html}");
}

async fn forgot_your_password_shows_the_same_page_whatever_was_typed(app: TestApp) {
    with_confirmed_email(&app, "alice", "alice@example.com").await;
    sign_out(&app).await;
    let mut pages = Vec::new();
    for account in ["alice", "alice@example.com", "nobody", "nobody@example.com", " Alice "] {
        let (status, html) = forgot(&app, account).await;
        assert_eq!(status, Status::Ok, "{account}");
        assert!(html.contains("Check your mail"), "{html}");
        pages.push(html);
    }
    assert!(pages.windows(2).all(|pair| pair[0] == pair[1]));
    let (status, html) = forgot(&app, "  ").await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(field_error(&html, "account").is_some(), "{html}");
}

async fn the_whole_reset_flow_ends_signed_in_with_a_notice(app: TestApp) {
    with_confirmed_email(&app, "alice", "alice@example.com").await;
    let old_session = app.sign_in("alice", PASSWORD).await;
    sign_out(&app).await;
    let (_, html) = forgot(&app, "alice@example.com").await;
    assert!(html.contains("Check your mail"));
    let path = link_path(&app, 2, "/password-reset/new").await;
    let mail = &mails_in(&outbox(&app))[1];
    assert_eq!(header(mail, "To").as_deref(), Some("alice@example.com"));
    let (_, form) = get_page(&app, &path).await;
    assert!(form.contains("Choose a new password") && form.contains("alice"), "{form}");
    let response = set_new_password(&app, &path, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/profile"));
    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok, "signed in");
    assert!(html.contains("Your password has been changed"), "{html}");
    assert!(!app.token_works(&old_session.access).await, "the other sessions are signed out");
    app.sign_in("alice", NEW_PASSWORD).await;
}

async fn a_used_or_unknown_reset_link_shows_a_clear_error_page(app: TestApp) {
    with_confirmed_email(&app, "alice", "alice@example.com").await;
    sign_out(&app).await;
    forgot(&app, "alice").await;
    let path = link_path(&app, 2, "/password-reset/new").await;
    assert_eq!(set_new_password(&app, &path, NEW_PASSWORD, NEW_PASSWORD).await.status(), Status::SeeOther);
    for used in [path.as_str(), "/password-reset/new?token=unknown", "/password-reset/new"] {
        let (status, html) = get_page(&app, used).await;
        assert_eq!(status, Status::BadRequest, "{used}");
        assert!(html.contains("This link is invalid, already used or expired"), "{html}");
    }
}

async fn a_reset_form_that_breaks_the_rules_comes_back_with_its_errors_and_the_link_still_works(
    app: TestApp,
) {
    with_confirmed_email(&app, "alice", "alice@example.com").await;
    sign_out(&app).await;
    forgot(&app, "alice").await;
    let path = link_path(&app, 2, "/password-reset/new").await;
    let response = set_new_password(&app, &path, NEW_PASSWORD, "something else").await;
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let html = response.into_string().await.unwrap();
    assert!(field_error(&html, "new_password_confirm").is_some(), "{html}");
    let response = set_new_password(&app, &path, "password", "password").await;
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let html = response.into_string().await.unwrap();
    assert!(field_error(&html, "new_password").is_some(), "{html}");
    assert_eq!(set_new_password(&app, &path, NEW_PASSWORD, NEW_PASSWORD).await.status(), Status::SeeOther);
}

/// A reset link proves the mailbox, not the second factor: the password is set, every session
/// ends, and the browser is sent to sign in (with the code), not signed in.
async fn a_reset_signs_in_only_a_user_without_a_second_factor(app: TestApp) {
    with_confirmed_email(&app, "alice", "alice@example.com").await;
    let api = app.sign_in("alice", PASSWORD).await;
    app.turn_on_totp(&api.access, PASSWORD).await;
    sign_out(&app).await;
    forgot(&app, "alice").await;
    let path = link_path(&app, 2, "/password-reset/new").await;
    let response = set_new_password(&app, &path, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/login"));
    assert!(response.cookies().get(common::TOKEN_COOKIE).is_none(), "not signed in");
    let (status, _) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::SeeOther, "not signed in");
    let (_, page) = get_page(&app, "/login").await;
    assert!(page.contains("the code of your authenticator app"), "{page}");
    assert!(!app.token_works(&api.access).await, "every session ended");
    // The new password leads to the second step, as before.
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status(), Status::Forbidden);
}
