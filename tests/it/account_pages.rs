//! The account pages: the sessions listed on the profile and their revoke buttons,
//! "Sign out everywhere else", changing the password, deleting the account, and a browser that
//! stays signed in while its access cookie expires (the refresh cookie renews it, rotating).
//!
//! The tracked client is "this browser". A second device signs in through the JSON API with its
//! own `User-Agent` and is then seen through its bearer token.

use crate::common;

use std::time::Duration;

use common::browser::{
    assert_cleared, assert_html, attribute, cookie, cookie_value, csrf_from, csrf_token, expired_copy_of,
    field_error, forged_tokens, form_page, get_page, has_attribute, input_tag, location, percent_encode,
    post_form, revoked_sessions, set_cookie, sign_in_on_the_page, sign_up, unescape_html,
};
use common::{jwt_payload, problem, TestApp, REFRESH_COOKIE, TOKEN_COOKIE};
use rocket::http::Status;

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a brand new passphrase";
const THIS_BROWSER: &str = "HomeBrowser/1.0";
const OTHER_DEVICE: &str = "OtherDevice/2.0";

backend_tests!(
    // Sessions on the profile
    the_profile_lists_this_browser_and_the_other_device_until_that_one_is_revoked,
    revoking_another_session_from_the_profile_signs_it_out_and_says_so,
    revoking_this_browsers_session_by_its_id_signs_out_and_clears_the_cookies,
    revoking_another_users_session_or_an_unknown_one_is_404_and_nothing_is_revoked,
    revoking_a_session_without_a_valid_csrf_token_is_forbidden_and_revokes_nothing,
    signing_out_everywhere_else_ends_the_other_sessions_and_keeps_this_browser,
    signing_out_everywhere_else_without_a_valid_csrf_token_is_forbidden_and_revokes_nothing,
    // Change password
    the_password_page_has_labelled_fields_for_password_managers,
    the_account_pages_send_a_signed_out_visitor_to_sign_in,
    changing_the_password_keeps_this_browser_and_signs_out_the_others,
    a_wrong_current_password_shows_an_error_beside_it_and_changes_nothing,
    a_mismatched_confirmation_shows_an_error_beside_it_and_changes_nothing,
    a_new_password_equal_to_the_username_shows_an_error_beside_it_and_changes_nothing,
    changing_the_password_without_a_valid_csrf_token_is_forbidden_and_changes_nothing,
    // Delete account
    the_delete_page_asks_for_the_password_to_confirm,
    deleting_the_account_signs_out_everywhere_says_so_and_frees_the_name,
    deleting_the_account_with_a_wrong_password_shows_an_error_and_keeps_it,
    deleting_the_account_without_a_valid_csrf_token_is_forbidden_and_keeps_it,
    // Staying signed in
    an_expired_access_cookie_is_renewed_and_the_refresh_cookie_rotated,
    // No JavaScript needed
    every_account_form_is_a_plain_post_form_with_a_csrf_token,
);

// ---------------------------------------------------------------------------------------------
// Helpers: the account and the session list on the page.

/// Whether the JSON API accepts `password` for `username`.
async fn password_signs_in(app: &TestApp, username: &str, password: &str) -> bool {
    match app.login(username, password).await.status() {
        Status::Ok => true,
        Status::Unauthorized => false,
        status => panic!("signing in answered {status}"),
    }
}

/// Whether the page shows `text` to the person reading it (Tera escapes `/`, quotes, …).
fn shows(html: &str, text: &str) -> bool {
    unescape_html(html).contains(text)
}

/// Every `<form …>…</form>` of a page: the opening tag and what lies inside.
fn forms(html: &str) -> Vec<(&str, &str)> {
    html.split("<form")
        .skip(1)
        .map(|rest| {
            let open_end = rest.find('>').expect("the end of the <form> tag");
            let close = rest.find("</form>").expect("a closed form");
            (&rest[..open_end], &rest[open_end + 1..close])
        })
        .collect()
}

/// The list item of the session list whose text contains `marker`.
fn session_item<'h>(html: &'h str, marker: &str) -> &'h str {
    let items: Vec<&str> = html
        .split("<li")
        .skip(1)
        .filter(|rest| rest.starts_with([' ', '>']))
        .map(|rest| &rest[..rest.find("</li>").expect("a closed <li>")])
        .filter(|item| shows(item, marker))
        .collect();
    assert_eq!(items.len(), 1, "not exactly one session showing {marker:?} in:\n{html}");
    items[0]
}

/// The id of the session the browser's cookie belongs to (the page shows no button for it).
fn this_browsers_session(app: &TestApp) -> String {
    let token = cookie(app, TOKEN_COOKIE).expect("signed in");
    jwt_payload(&token)["sid"].as_str().expect("a session id").to_owned()
}

/// The session id in the revoke form of a list item.
fn revoke_id(item: &str) -> String {
    let (open, _) = forms(item).into_iter().next().unwrap_or_else(|| panic!("no revoke form in {item}"));
    let action = attribute(open, "action").expect("the form has an action");
    let id = action
        .strip_prefix("/account/sessions/")
        .and_then(|rest| rest.strip_suffix("/revoke"))
        .unwrap_or_else(|| panic!("not a revoke action: {action}"));
    id.to_owned()
}

/// The flash notice of a page (`role="status"`), if any.
fn notice(html: &str) -> Option<String> {
    let start = html.find("role=\"status\"")?;
    let end = start + html[start..].find("</div>")?;
    Some(html[start..end].to_owned())
}

/// Checks the password field `name` as password managers need it: `type="password"`, the given
/// `autocomplete`, at most 72 bytes and a label of its own. Returns its tag.
fn password_field<'h>(html: &'h str, name: &str, autocomplete: &str) -> &'h str {
    let tag = input_tag(html, name);
    assert_eq!(attribute(tag, "type").as_deref(), Some("password"), "{tag}");
    assert_eq!(attribute(tag, "autocomplete").as_deref(), Some(autocomplete), "{tag}");
    assert_eq!(attribute(tag, "maxlength").as_deref(), Some("72"), "{tag}");
    let id = attribute(tag, "id").unwrap_or_else(|| panic!("{name} has no id: {tag}"));
    assert!(html.contains(&format!("for=\"{id}\"")), "no label for {id}");
    tag
}

/// Checks that the page has a form sending a POST to `action`.
fn assert_posts_a_form_to(html: &str, action: &str) {
    let (open, _) = forms(html)
        .into_iter()
        .find(|(open, _)| attribute(open, "action").as_deref() == Some(action))
        .unwrap_or_else(|| panic!("no form posting to {action}"));
    assert_eq!(attribute(open, "method").as_deref(), Some("post"), "{open}");
}

/// Sends a revoke form of the profile (to `uri`, with the page's `csrf` token) that spares this
/// browser: it is sent back to the profile, its cookie untouched. Returns the profile it lands on.
async fn revoke_from_the_profile(app: &TestApp, uri: &str, csrf: &str) -> String {
    let response = post_form(app, uri, &[("csrf_token", csrf)]).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/profile"));
    assert!(set_cookie(&response, TOKEN_COOKIE).is_none(), "this browser's cookie was touched");
    drop(response);

    let (status, html) = get_page(app, "/profile").await;
    assert_eq!(status, Status::Ok, "this browser was signed out too");
    html
}

// ---------------------------------------------------------------------------------------------
// Sessions on the profile

async fn the_profile_lists_this_browser_and_the_other_device_until_that_one_is_revoked(app: TestApp) {
    assert_eq!(app.register("Alice", PASSWORD).await.status(), Status::Created);
    sign_in_on_the_page(&app, "Alice", PASSWORD, THIS_BROWSER).await;
    let other = app.sign_in_as("Alice", PASSWORD, OTHER_DEVICE).await;

    let response = app.client.get("/profile").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    assert_html(&response);
    let html = response.into_string().await.unwrap();
    let here = session_item(&html, THIS_BROWSER);
    let there = session_item(&html, OTHER_DEVICE);
    assert!(here.contains("This browser"), "the current session is not marked:\n{here}");
    assert!(!there.contains("This browser"), "the other device is marked as this browser:\n{there}");
    assert_eq!(html.matches("This browser").count(), 1, "{html}");
    assert_eq!(revoke_id(there), app.session_id(&other.access).await);
    // This browser signs out with the header's button: its own card offers no second one.
    assert!(forms(here).is_empty(), "the current session has a sign-out button of its own:\n{here}");
    assert_eq!(html.matches("action=\"/logout\"").count(), 1, "one button signs this browser out:\n{html}");

    // The other device signs itself out: it is no longer listed.
    let response = app.logout(&other.access, "").await;
    assert_eq!(response.status(), Status::NoContent);
    drop(response);
    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok);
    assert!(!shows(&html, OTHER_DEVICE), "a revoked session is still listed:\n{html}");
    assert!(session_item(&html, THIS_BROWSER).contains("This browser"));
}

async fn revoking_another_session_from_the_profile_signs_it_out_and_says_so(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let other = app.sign_in_as("Alice", PASSWORD, OTHER_DEVICE).await;
    let other_id = app.session_id(&other.access).await;

    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(revoke_id(session_item(&html, OTHER_DEVICE)), other_id);
    let uri = format!("/account/sessions/{other_id}/revoke");
    let html = revoke_from_the_profile(&app, &uri, &csrf_token(&html)).await;
    assert!(html.contains("That session has been signed out."), "no notice:\n{html}");
    assert!(!shows(&html, OTHER_DEVICE), "the revoked session is still listed:\n{html}");
    // The notice is shown once.
    assert!(!get_page(&app, "/profile").await.1.contains("That session has been signed out."));

    assert!(!app.token_works(&other.access).await, "the revoked session's token still works");
    let response = app.refresh(&other.refresh).await;
    problem(response, Status::Unauthorized).await;
    assert_eq!(revoked_sessions(&app).await, 1);
}

async fn revoking_this_browsers_session_by_its_id_signs_out_and_clears_the_cookies(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let old_token = cookie(&app, TOKEN_COOKIE).expect("signed in");
    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok);
    let here = this_browsers_session(&app);
    let csrf = csrf_token(&html);

    let response =
        post_form(&app, &format!("/account/sessions/{here}/revoke"), &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/login"));
    assert_cleared(&response, TOKEN_COOKIE);
    assert_cleared(&response, REFRESH_COOKIE);
    drop(response);
    assert!(cookie(&app, TOKEN_COOKIE).is_none(), "the browser still holds the token");
    assert!(cookie(&app, REFRESH_COOKIE).is_none(), "the browser still holds the refresh token");

    let response = app.client.get("/profile").dispatch().await;
    assert_eq!(response.status(), Status::SeeOther);
    assert!(location(&response).is_some_and(|l| l.starts_with("/login")), "{:?}", location(&response));
    drop(response);
    assert_eq!(revoked_sessions(&app).await, 1);
    assert!(!app.token_works(&old_token).await, "the revoked session's token still works");
}

async fn revoking_another_users_session_or_an_unknown_one_is_404_and_nothing_is_revoked(app: TestApp) {
    assert_eq!(app.register("Bob", PASSWORD).await.status(), Status::Created);
    let bob = app.sign_in_as("Bob", PASSWORD, OTHER_DEVICE).await;
    let bob_session = app.session_id(&bob.access).await;
    sign_up(&app, "Alice", PASSWORD).await;

    let csrf = csrf_from(&app, "/profile").await;
    for id in [bob_session.as_str(), "no-such-session"] {
        let response =
            post_form(&app, &format!("/account/sessions/{id}/revoke"), &[("csrf_token", &csrf)]).await;
        assert_eq!(response.status(), Status::NotFound, "revoking {id}");
        assert_html(&response);
        assert!(set_cookie(&response, TOKEN_COOKIE).is_none(), "Alice's cookie was touched");
    }
    assert_eq!(revoked_sessions(&app).await, 0);
    assert!(app.token_works(&bob.access).await, "Alice signed Bob out");
    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok);
    assert!(!shows(&html, OTHER_DEVICE), "Alice sees Bob's session:\n{html}");
}

async fn revoking_a_session_without_a_valid_csrf_token_is_forbidden_and_revokes_nothing(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let other = app.sign_in_as("Alice", PASSWORD, OTHER_DEVICE).await;
    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok);
    let real = csrf_token(&html);
    let targets = [revoke_id(session_item(&html, OTHER_DEVICE)), this_browsers_session(&app)];
    for id in &targets {
        for forged in forged_tokens(&real) {
            let fields: Vec<(&str, &str)> =
                forged.iter().map(|token| ("csrf_token", token.as_str())).collect();
            let response = post_form(&app, &format!("/account/sessions/{id}/revoke"), &fields).await;
            assert_eq!(response.status(), Status::Forbidden, "csrf_token = {forged:?}");
            assert!(set_cookie(&response, TOKEN_COOKIE).is_none(), "the cookie was touched");
        }
    }
    assert_eq!(revoked_sessions(&app).await, 0);
    assert!(app.token_works(&other.access).await);
    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok, "signed out by a forged request");
    assert!(shows(&html, OTHER_DEVICE));
}

async fn signing_out_everywhere_else_ends_the_other_sessions_and_keeps_this_browser(app: TestApp) {
    assert_eq!(app.register("Alice", PASSWORD).await.status(), Status::Created);
    sign_in_on_the_page(&app, "Alice", PASSWORD, THIS_BROWSER).await;
    let other = app.sign_in_as("Alice", PASSWORD, OTHER_DEVICE).await;
    let third = app.sign_in_as("Alice", PASSWORD, "ThirdDevice/3.0").await;

    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Sign out everywhere else"), "{html}");
    let html = revoke_from_the_profile(&app, "/account/sessions/revoke-others", &csrf_token(&html)).await;
    assert!(notice(&html).is_some(), "no notice:\n{html}");
    assert!(!shows(&html, OTHER_DEVICE) && !shows(&html, "ThirdDevice/3.0"), "{html}");
    assert!(session_item(&html, THIS_BROWSER).contains("This browser"));
    for device in [&other, &third] {
        assert!(!app.token_works(&device.access).await, "another session still works");
    }
    assert_eq!(revoked_sessions(&app).await, 2);
}

async fn signing_out_everywhere_else_without_a_valid_csrf_token_is_forbidden_and_revokes_nothing(
    app: TestApp,
) {
    sign_up(&app, "Alice", PASSWORD).await;
    let other = app.sign_in_as("Alice", PASSWORD, OTHER_DEVICE).await;
    let real = csrf_from(&app, "/profile").await;
    for forged in forged_tokens(&real) {
        let fields: Vec<(&str, &str)> = forged.iter().map(|token| ("csrf_token", token.as_str())).collect();
        let response = post_form(&app, "/account/sessions/revoke-others", &fields).await;
        assert_eq!(response.status(), Status::Forbidden, "csrf_token = {forged:?}");
        assert_html(&response);
    }
    assert_eq!(revoked_sessions(&app).await, 0);
    assert!(app.token_works(&other.access).await, "signed out by a forged request");
}

// ---------------------------------------------------------------------------------------------
// Change password

async fn the_password_page_has_labelled_fields_for_password_managers(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let html = form_page(&app, "/account/password").await;
    let expected = [
        ("current_password", "current-password"),
        ("new_password", "new-password"),
        ("new_password_confirm", "new-password"),
    ];
    for (name, autocomplete) in expected {
        let tag = password_field(&html, name, autocomplete);
        assert_eq!(attribute(tag, "value"), None, "{name} carries a value: {tag}");
        match name {
            // Every stored password has at least 8 bytes; a smaller limit would be wrong.
            "current_password" => {
                assert!(matches!(attribute(tag, "minlength").as_deref(), None | Some("8")), "{tag}")
            }
            _ => assert_eq!(attribute(tag, "minlength").as_deref(), Some("8"), "{tag}"),
        }
    }
    assert_posts_a_form_to(&html, "/account/password");
}

async fn the_account_pages_send_a_signed_out_visitor_to_sign_in(app: TestApp) {
    for uri in ["/account/password", "/account/delete"] {
        let response = app.client.get(uri).dispatch().await;
        assert_eq!(response.status(), Status::SeeOther, "{uri}");
        let expected = format!("/login?next={}", percent_encode(uri));
        assert_eq!(location(&response).as_deref(), Some(expected.as_str()), "{uri}");
    }
}

async fn changing_the_password_keeps_this_browser_and_signs_out_the_others(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let this_token = cookie(&app, TOKEN_COOKIE).expect("signed in");
    let other = app.sign_in_as("Alice", PASSWORD, OTHER_DEVICE).await;

    let csrf = csrf_from(&app, "/account/password").await;
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("current_password", PASSWORD),
        ("new_password", NEW_PASSWORD),
        ("new_password_confirm", NEW_PASSWORD),
    ];
    let response = post_form(&app, "/account/password", &fields).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/profile"));
    assert!(set_cookie(&response, TOKEN_COOKIE).is_none_or(|c| !cookie_value(&c).is_empty()));
    drop(response);

    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok, "this browser was signed out");
    let notice = notice(&html).unwrap_or_else(|| panic!("no notice:\n{html}"));
    assert!(notice.contains("password"), "{notice}");
    assert!(!shows(&html, OTHER_DEVICE), "the other session is still listed:\n{html}");
    assert_eq!(cookie(&app, TOKEN_COOKIE).as_deref(), Some(this_token.as_str()));

    assert!(!app.token_works(&other.access).await, "the other session still works");
    let response = app.refresh(&other.refresh).await;
    problem(response, Status::Unauthorized).await;
    assert_eq!(revoked_sessions(&app).await, 1);

    assert!(!password_signs_in(&app, "Alice", PASSWORD).await, "the old password still signs in");
    assert!(password_signs_in(&app, "Alice", NEW_PASSWORD).await, "the new password does not sign in");
}

/// Sends the password form from a signed-in `username` (with another device signed in), expects
/// the form again, and checks that nothing changed. Returns the status and the page; the
/// caller checks the status last, so that a wrong status does not hide the rest.
async fn rejected_password_change(
    app: &TestApp,
    username: &str,
    fields: &[(&str, &str)],
) -> (Status, String) {
    sign_up(app, username, PASSWORD).await;
    let other = app.sign_in_as(username, PASSWORD, OTHER_DEVICE).await;
    let csrf = csrf_from(app, "/account/password").await;
    let mut fields = fields.to_vec();
    fields.push(("csrf_token", &csrf));
    let response = post_form(app, "/account/password", &fields).await;
    let status = response.status();
    assert!(status.class().is_client_error(), "got {status}");
    assert_html(&response);
    assert!(set_cookie(&response, TOKEN_COOKIE).is_none(), "the cookie was touched");
    let html = response.into_string().await.unwrap();
    for (name, _) in &fields {
        if *name != "csrf_token" {
            assert_eq!(attribute(input_tag(&html, name), "value"), None, "{name} echoes a value");
        }
    }
    // The form can be sent again.
    csrf_token(&html);

    assert!(password_signs_in(app, username, PASSWORD).await, "the password changed");
    assert_eq!(revoked_sessions(app).await, 0, "a session was revoked");
    assert!(app.token_works(&other.access).await);
    assert_eq!(get_page(app, "/profile").await.0, Status::Ok, "this browser was signed out");
    (status, html)
}

async fn a_wrong_current_password_shows_an_error_beside_it_and_changes_nothing(app: TestApp) {
    let fields = [
        ("current_password", "not my password"),
        ("new_password", NEW_PASSWORD),
        ("new_password_confirm", NEW_PASSWORD),
    ];
    let (status, html) = rejected_password_change(&app, "Alice", &fields).await;
    assert!(
        field_error(&html, "current_password").is_some(),
        "no error beside the current password:\n{html}"
    );
    assert!(field_error(&html, "new_password").is_none(), "{html}");
    assert!(field_error(&html, "new_password_confirm").is_none(), "{html}");
    assert!(!html.contains("not my password") && !html.contains(NEW_PASSWORD), "a password is echoed");
    assert!(!password_signs_in(&app, "Alice", NEW_PASSWORD).await);
    // A well-formed request whose proof is wrong is refused (403), like the API; 422 is for
    // a new password that breaks the rules.
    assert_eq!(status, Status::Forbidden, "the form comes back with the wrong status");
}

async fn a_mismatched_confirmation_shows_an_error_beside_it_and_changes_nothing(app: TestApp) {
    let fields = [
        ("current_password", PASSWORD),
        ("new_password", NEW_PASSWORD),
        ("new_password_confirm", "a brand new passphrasE"),
    ];
    let (status, html) = rejected_password_change(&app, "Alice", &fields).await;
    let error = field_error(&html, "new_password_confirm")
        .unwrap_or_else(|| panic!("no error beside the confirmation:\n{html}"));
    assert!(error.contains("The passwords do not match."), "{error}");
    assert!(field_error(&html, "current_password").is_none(), "{html}");
    assert!(!html.contains(PASSWORD) && !html.contains(NEW_PASSWORD), "a password is echoed");
    assert!(!password_signs_in(&app, "Alice", NEW_PASSWORD).await);
    assert_eq!(status, Status::UnprocessableEntity, "the form comes back with the wrong status");
}

async fn a_new_password_equal_to_the_username_shows_an_error_beside_it_and_changes_nothing(app: TestApp) {
    let name = "Alice_Liddell";
    let fields = [("current_password", PASSWORD), ("new_password", name), ("new_password_confirm", name)];
    let (status, html) = rejected_password_change(&app, name, &fields).await;
    let error = field_error(&html, "new_password")
        .unwrap_or_else(|| panic!("no error beside the new password:\n{html}"));
    assert!(error.contains("username"), "the message does not say why: {error}");
    assert!(field_error(&html, "current_password").is_none(), "{html}");
    assert!(!password_signs_in(&app, name, name).await);
    assert_eq!(status, Status::UnprocessableEntity, "the form comes back with the wrong status");
}

async fn changing_the_password_without_a_valid_csrf_token_is_forbidden_and_changes_nothing(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let other = app.sign_in_as("Alice", PASSWORD, OTHER_DEVICE).await;
    let real = csrf_from(&app, "/account/password").await;
    for forged in forged_tokens(&real) {
        let mut fields = vec![
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("new_password_confirm", NEW_PASSWORD),
        ];
        if let Some(token) = &forged {
            fields.push(("csrf_token", token));
        }
        let response = post_form(&app, "/account/password", &fields).await;
        assert_eq!(response.status(), Status::Forbidden, "csrf_token = {forged:?}");
        assert_html(&response);
    }
    assert!(password_signs_in(&app, "Alice", PASSWORD).await, "the password changed");
    assert!(!password_signs_in(&app, "Alice", NEW_PASSWORD).await, "the password changed");
    assert_eq!(revoked_sessions(&app).await, 0);
    assert!(app.token_works(&other.access).await);
}

// ---------------------------------------------------------------------------------------------
// Delete account

async fn the_delete_page_asks_for_the_password_to_confirm(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let html = form_page(&app, "/account/delete").await;
    assert!(html.contains("Alice"), "the page does not say which account goes:\n{html}");
    password_field(&html, "password", "current-password");
    assert_posts_a_form_to(&html, "/account/delete");
}

async fn deleting_the_account_signs_out_everywhere_says_so_and_frees_the_name(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let old_token = cookie(&app, TOKEN_COOKIE).expect("signed in");
    let other = app.sign_in_as("Alice", PASSWORD, OTHER_DEVICE).await;

    let csrf = csrf_from(&app, "/account/delete").await;
    let response = post_form(&app, "/account/delete", &[("csrf_token", &csrf), ("password", PASSWORD)]).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/login"));
    assert_cleared(&response, TOKEN_COOKIE);
    assert_cleared(&response, REFRESH_COOKIE);
    drop(response);
    assert!(cookie(&app, TOKEN_COOKIE).is_none() && cookie(&app, REFRESH_COOKIE).is_none());

    let (status, html) = get_page(&app, "/login").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Your account has been deleted."), "no notice:\n{html}");

    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens").await, 0);
    for token in [&old_token, &other.access] {
        assert!(!app.token_works(token).await, "a token of the deleted account still works");
    }
    let response = app.refresh(&other.refresh).await;
    problem(response, Status::Unauthorized).await;
    assert!(!password_signs_in(&app, "Alice", PASSWORD).await);
    let response = app.client.get("/profile").cookie((TOKEN_COOKIE, old_token)).dispatch().await;
    assert_eq!(response.status(), Status::SeeOther);
    assert!(location(&response).is_some_and(|l| l.starts_with("/login")));
    drop(response);

    // The name is free again, in any case.
    sign_up(&app, "alice", PASSWORD).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("alice"));
}

async fn deleting_the_account_with_a_wrong_password_shows_an_error_and_keeps_it(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let csrf = csrf_from(&app, "/account/delete").await;
    let fields = [("csrf_token", csrf.as_str()), ("password", "not my password")];
    let response = post_form(&app, "/account/delete", &fields).await;
    let status = response.status();
    assert!(status.class().is_client_error(), "got {status}");
    assert_html(&response);
    assert!(set_cookie(&response, TOKEN_COOKIE).is_none(), "the cookie was touched");
    let html = response.into_string().await.unwrap();
    assert!(field_error(&html, "password").is_some(), "no error beside the password:\n{html}");
    assert_eq!(attribute(input_tag(&html, "password"), "value"), None);
    assert!(!html.contains("not my password"), "the password is echoed");
    csrf_token(&html);

    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(revoked_sessions(&app).await, 0);
    assert_eq!(get_page(&app, "/profile").await.0, Status::Ok, "signed out");
    assert!(password_signs_in(&app, "Alice", PASSWORD).await);
    assert_eq!(status, Status::Forbidden, "the form comes back with the wrong status");
}

async fn deleting_the_account_without_a_valid_csrf_token_is_forbidden_and_keeps_it(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let real = csrf_from(&app, "/account/delete").await;
    for forged in forged_tokens(&real) {
        let mut fields = vec![("password", PASSWORD)];
        if let Some(token) = &forged {
            fields.push(("csrf_token", token));
        }
        let response = post_form(&app, "/account/delete", &fields).await;
        assert_eq!(response.status(), Status::Forbidden, "csrf_token = {forged:?}");
        assert_html(&response);
        assert!(set_cookie(&response, TOKEN_COOKIE).is_none(), "the cookie was touched");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(revoked_sessions(&app).await, 0);
    assert_eq!(get_page(&app, "/profile").await.0, Status::Ok, "signed out by a forged request");
    assert!(password_signs_in(&app, "Alice", PASSWORD).await);
}

// ---------------------------------------------------------------------------------------------
// Staying signed in: the refresh cookie renews an expired access cookie, rotating

/// Visits the profile with an expired access cookie; checks that both cookies are set again
/// and returns the refresh cookie value from before.
async fn visit_with_an_expired_access_cookie(app: &TestApp) -> String {
    let original = cookie(app, TOKEN_COOKIE).expect("signed in");
    let old_refresh = cookie(app, REFRESH_COOKIE).expect("a refresh cookie");
    let expired = expired_copy_of(app, &original).await;
    assert!(!app.token_works(&expired).await, "the forged token is not expired");

    let response = app.client.get("/profile").cookie((TOKEN_COOKIE, expired.clone())).dispatch().await;
    assert_eq!(response.status(), Status::Ok, "the browser was signed out");
    let token = set_cookie(&response, TOKEN_COOKIE).expect("a renewed token cookie");
    let refresh = set_cookie(&response, REFRESH_COOKIE).expect("a rotated refresh cookie");
    for header in [&token, &refresh] {
        for flag in ["HttpOnly", "Path=/", "SameSite=Lax"] {
            assert!(has_attribute(header, flag), "{flag} missing: {header}");
        }
    }
    assert!(!cookie_value(&refresh).is_empty() && cookie_value(&refresh) != old_refresh, "not rotated");
    let html = response.into_string().await.unwrap();
    assert!(html.contains("Alice"));

    let renewed = cookie(app, TOKEN_COOKIE).expect("the browser keeps the renewed token");
    assert_ne!(renewed, expired);
    assert_eq!(jwt_payload(&renewed)["sid"], jwt_payload(&original)["sid"], "a renewal keeps the session");
    assert!(app.token_works(&renewed).await);
    assert_ne!(cookie(app, REFRESH_COOKIE), Some(old_refresh.clone()));
    old_refresh
}

async fn an_expired_access_cookie_is_renewed_and_the_refresh_cookie_rotated(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    visit_with_an_expired_access_cookie(&app).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1, "a renewal opened a session");
    // The browser keeps going with what it was given.
    assert_eq!(get_page(&app, "/profile").await.0, Status::Ok);
    assert_eq!(revoked_sessions(&app).await, 0);
}

/// With no grace window, the refresh cookie value from before a renewal, presented again a
/// moment later, is taken for a stolen copy: the session ends, and this browser with it.
async fn a_rotated_refresh_cookie_presented_again_ends_the_session(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let old_refresh = visit_with_an_expired_access_cookie(&app).await;
    rocket::tokio::time::sleep(Duration::from_millis(1500)).await;

    let response = app.refresh(&old_refresh).await;
    problem(response, Status::Unauthorized).await;
    assert_eq!(revoked_sessions(&app).await, 1, "reuse did not revoke the session");

    let response = app.client.get("/profile").dispatch().await;
    assert_eq!(response.status(), Status::SeeOther, "still signed in after the reuse");
    assert!(location(&response).is_some_and(|l| l.starts_with("/login")), "{:?}", location(&response));
    drop(response);
    let current_refresh = cookie(&app, REFRESH_COOKIE);
    if let Some(refresh) = current_refresh {
        let response = app.refresh(&refresh).await;
        problem(response, Status::Unauthorized).await;
    }
}

backend_tests_with!(
    |f| f.merge(("refresh_grace", 0));
    a_rotated_refresh_cookie_presented_again_ends_the_session =>
        a_rotated_refresh_cookie_presented_again_ends_the_session_on_sqlite,
        a_rotated_refresh_cookie_presented_again_ends_the_session_on_postgres,
);

// ---------------------------------------------------------------------------------------------
// No JavaScript needed

async fn every_account_form_is_a_plain_post_form_with_a_csrf_token(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    app.sign_in_as("Alice", PASSWORD, OTHER_DEVICE).await;
    let mut actions = Vec::new();
    for uri in ["/profile", "/account/password", "/account/delete"] {
        let (status, html) = get_page(&app, uri).await;
        assert_eq!(status, Status::Ok, "{uri}");
        assert!(!html.contains("<script"), "{uri} has a script");
        assert!(!html.contains(" onclick=") && !html.contains(" onsubmit="), "{uri} has an inline handler");
        let page_token = csrf_token(&html);
        let found = forms(&html);
        assert!(!found.is_empty(), "{uri} has no form");
        for (open, inside) in found {
            let action = attribute(open, "action").unwrap_or_else(|| panic!("{uri}: a form without action"));
            assert_eq!(attribute(open, "method").as_deref(), Some("post"), "{uri}: {open}");
            let token = csrf_token(inside);
            assert_eq!(token, page_token, "{uri}: the form {action} carries another token");
            assert!(inside.contains("type=\"submit\""), "{uri}: the form {action} has no submit button");
            actions.push(action);
        }
    }
    let revoke_forms =
        actions.iter().filter(|a| a.starts_with("/account/sessions/") && a.ends_with("/revoke"));
    assert_eq!(revoke_forms.count(), 1, "one revoke button per other session: {actions:?}");
    for wanted in ["/account/sessions/revoke-others", "/account/password", "/account/delete", "/logout"] {
        assert!(actions.iter().any(|a| a == wanted), "no form posting to {wanted}: {actions:?}");
    }
}
