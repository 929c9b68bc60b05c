//! The browser pages: forms, the session cookie, CSRF, redirects, headers.
//! The client keeps cookies like a browser: each test fetches a page, takes the CSRF token from
//! its form and posts `application/x-www-form-urlencoded` bodies.

use crate::common;

use common::browser::{
    assert_cleared, assert_html, attribute, cookie, cookie_value, csrf_from, csrf_token, expired_copy_of,
    forged_tokens, form_page, get_page, has_attribute, input_tag, location, percent_encode, post_form,
    revoked_sessions, set_cookie, sign_up, submit_login, submit_register,
};
use common::{
    csrf_header, jwt_payload, now, problem, Backend, TestApp, CSRF_COOKIE, SECURE_CSRF_COOKIE, TOKEN_COOKIE,
};
use rocket::http::{ContentType, Status};

const PASSWORD: &str = "correct horse battery";

backend_tests!(
    landing_page_links_to_sign_in_and_register_when_signed_out,
    landing_page_shows_the_username_and_profile_link_when_signed_in,
    register_page_has_labelled_fields_with_autocomplete_and_length_limits,
    registering_signs_in_with_an_http_only_cookie_and_shows_the_profile,
    register_with_a_bad_username_and_short_password_shows_both_errors_and_keeps_the_username,
    register_with_a_mismatched_confirmation_shows_an_error_beside_the_confirmation,
    register_with_a_name_taken_in_another_case_answers_409_and_stores_nothing,
    login_page_asks_for_the_current_password,
    login_with_good_credentials_redirects_to_the_profile,
    login_with_a_wrong_password_or_unknown_user_gives_the_same_401_message,
    signed_out_visitor_of_the_profile_signs_in_and_comes_back,
    login_never_redirects_off_site,
    logout_revokes_the_session_clears_the_cookie_and_shows_a_notice,
    register_without_a_valid_csrf_token_is_forbidden_and_creates_nothing,
    login_without_a_valid_csrf_token_is_forbidden_and_signs_nobody_in,
    logout_without_a_valid_csrf_token_is_forbidden_and_keeps_the_session,
    a_csrf_cookie_and_token_obtained_by_an_attacker_and_planted_are_refused,
    cookie_authenticated_api_logout_needs_the_csrf_header,
    pages_send_security_headers_and_no_inline_script,
    stylesheet_is_served_as_css,
    only_the_docs_get_the_docs_policy,
    expired_access_cookie_is_renewed_from_a_live_session,
    expired_access_cookie_of_a_revoked_session_sends_to_sign_in,
    unknown_page_is_an_html_404,
    unknown_page_asked_for_as_json_is_problem_json,
);

// ---------------------------------------------------------------------------------------------
// GET /

async fn landing_page_links_to_sign_in_and_register_when_signed_out(app: TestApp) {
    let response = app.client.get("/").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    assert_html(&response);
    let html = response.into_string().await.unwrap();
    assert!(html.contains(r#"href="/login""#), "no link to /login:\n{html}");
    assert!(html.contains(r#"href="/register""#), "no link to /register:\n{html}");
    assert!(!html.contains("Signed in as"));
}

async fn landing_page_shows_the_username_and_profile_link_when_signed_in(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let (status, html) = get_page(&app, "/").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Alice"), "the username is not shown:\n{html}");
    assert!(html.contains(r#"href="/profile""#), "no link to the profile:\n{html}");
    assert!(!html.contains(r#"href="/register""#), "still offers to register:\n{html}");
}

// ---------------------------------------------------------------------------------------------
// Register

async fn register_page_has_labelled_fields_with_autocomplete_and_length_limits(app: TestApp) {
    let html = form_page(&app, "/register").await;
    let expected = [
        ("username", "text", "username", "3", "32"),
        ("password", "password", "new-password", "8", "72"),
        ("password_confirm", "password", "new-password", "8", "72"),
    ];
    for (name, kind, autocomplete, min, max) in expected {
        let tag = input_tag(&html, name);
        assert_eq!(attribute(tag, "type").as_deref(), Some(kind), "{tag}");
        assert_eq!(attribute(tag, "autocomplete").as_deref(), Some(autocomplete), "{tag}");
        assert_eq!(attribute(tag, "minlength").as_deref(), Some(min), "{tag}");
        assert_eq!(attribute(tag, "maxlength").as_deref(), Some(max), "{tag}");
        let id = attribute(tag, "id").unwrap_or_else(|| panic!("{name} has no id: {tag}"));
        assert!(html.contains(&format!("<label class=\"field__label\" for=\"{id}\">")), "no label for {id}");
    }
    assert!(html.contains(r#"action="/register""#) && html.contains(r#"method="post""#));
}

async fn registering_signs_in_with_an_http_only_cookie_and_shows_the_profile(app: TestApp) {
    let response = submit_register(&app, "Alice", PASSWORD, PASSWORD).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/profile"));
    let cookie = set_cookie(&response, TOKEN_COOKIE).expect("a token cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2592000"] {
        assert!(has_attribute(&cookie, flag), "{flag} missing from {cookie}");
    }
    assert!(!has_attribute(&cookie, "Secure"), "Secure in the debug profile: {cookie}");
    drop(response);
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE username = 'Alice'").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL").await, 1);

    let response = app.client.get("/profile").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    assert_html(&response);
    let html = response.into_string().await.unwrap();
    assert!(html.contains("Alice"), "{html}");
    assert!(html.contains("Member since"), "{html}");
}

async fn register_with_a_bad_username_and_short_password_shows_both_errors_and_keeps_the_username(
    app: TestApp,
) {
    let response = submit_register(&app, "ab", "Xq9z", "Xq9z").await;
    assert_eq!(response.status(), Status::UnprocessableEntity);
    assert_html(&response);
    assert!(set_cookie(&response, TOKEN_COOKIE).is_none());
    let html = response.into_string().await.unwrap();
    assert!(html.contains(r#"id="username-error""#), "no message beside the username:\n{html}");
    assert!(html.contains("Username must be 3–32 characters long."), "{html}");
    assert!(html.contains(r#"id="password-error""#), "no message beside the password:\n{html}");
    assert!(html.contains("Password must be at least 8 characters long."), "{html}");
    assert_eq!(attribute(input_tag(&html, "username"), "value").as_deref(), Some("ab"));
    assert!(attribute(input_tag(&html, "username"), "aria-invalid").is_some());
    for name in ["password", "password_confirm"] {
        assert_eq!(attribute(input_tag(&html, name), "value"), None, "{name} echoes a value");
    }
    assert!(!html.contains("Xq9z"), "the password is echoed back");
    // The page can be submitted again: it carries a fresh form with a CSRF token.
    csrf_token(&html);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);

    // A username with characters outside the alphabet is kept, escaped.
    let response = submit_register(&app, "<b>bob", PASSWORD, PASSWORD).await;
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let html = response.into_string().await.unwrap();
    assert!(!html.contains("<b>bob"), "the username is not escaped");
    assert_eq!(attribute(input_tag(&html, "username"), "value").as_deref(), Some("<b>bob"));
    assert!(html.contains(r#"id="username-error""#));
    assert!(!html.contains(PASSWORD), "the password is echoed back");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn register_with_a_mismatched_confirmation_shows_an_error_beside_the_confirmation(app: TestApp) {
    let other = "correct horse battery!";
    let response = submit_register(&app, "Alice", PASSWORD, other).await;
    assert_eq!(response.status(), Status::UnprocessableEntity);
    assert!(set_cookie(&response, TOKEN_COOKIE).is_none());
    let html = response.into_string().await.unwrap();
    assert!(html.contains(r#"id="password_confirm-error""#), "no message beside the confirmation:\n{html}");
    assert!(html.contains("The passwords do not match."), "{html}");
    assert!(!html.contains(r#"id="username-error""#), "the username was fine");
    assert_eq!(attribute(input_tag(&html, "username"), "value").as_deref(), Some("Alice"));
    assert!(!html.contains(PASSWORD), "a password is echoed back");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
}

async fn register_with_a_name_taken_in_another_case_answers_409_and_stores_nothing(app: TestApp) {
    assert_eq!(app.register("Alice", PASSWORD).await.status(), Status::Created);
    let response = submit_register(&app, "alice", "another password", "another password").await;
    assert_eq!(response.status(), Status::Conflict);
    assert_html(&response);
    assert!(set_cookie(&response, TOKEN_COOKIE).is_none());
    let html = response.into_string().await.unwrap();
    assert!(html.contains(r#"id="username-error""#), "no message beside the username:\n{html}");
    assert!(html.contains("This username is already taken."), "{html}");
    assert_eq!(attribute(input_tag(&html, "username"), "value").as_deref(), Some("alice"));
    assert!(!html.contains("another password"), "the password is echoed back");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
    assert!(cookie(&app, TOKEN_COOKIE).is_none(), "signed in after a failed registration");
}

// ---------------------------------------------------------------------------------------------
// Sign in

async fn login_page_asks_for_the_current_password(app: TestApp) {
    let html = form_page(&app, "/login").await;
    let username = input_tag(&html, "username");
    // The browser's autofill offers passkeys in the username field too.
    assert_eq!(attribute(username, "autocomplete").as_deref(), Some("username webauthn"), "{username}");
    let password = input_tag(&html, "password");
    assert_eq!(attribute(password, "type").as_deref(), Some("password"), "{password}");
    assert_eq!(attribute(password, "autocomplete").as_deref(), Some("current-password"), "{password}");
    for id in ["username", "password"] {
        assert!(html.contains(&format!("for=\"{id}\"")), "no label for {id}");
    }
}

async fn login_with_good_credentials_redirects_to_the_profile(app: TestApp) {
    assert_eq!(app.register("Alice", PASSWORD).await.status(), Status::Created);
    let response = submit_login(&app, "alice", PASSWORD, None).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/profile"));
    let cookie = set_cookie(&response, TOKEN_COOKIE).expect("a token cookie");
    assert!(has_attribute(&cookie, "HttpOnly") && has_attribute(&cookie, "SameSite=Lax"), "{cookie}");
    drop(response);
    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Alice"), "{html}");
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);
}

async fn login_with_a_wrong_password_or_unknown_user_gives_the_same_401_message(app: TestApp) {
    assert_eq!(app.register("Alice", PASSWORD).await.status(), Status::Created);
    let mut pages = Vec::new();
    for (username, password) in [("Alice", "wrong password"), ("nobody", PASSWORD)] {
        let response = submit_login(&app, username, password, None).await;
        assert_eq!(response.status(), Status::Unauthorized, "{username}");
        assert_html(&response);
        assert!(set_cookie(&response, TOKEN_COOKIE).is_none());
        let html = response.into_string().await.unwrap();
        assert!(html.contains("Invalid username or password"), "{html}");
        assert_eq!(attribute(input_tag(&html, "username"), "value").as_deref(), Some(username));
        assert_eq!(attribute(input_tag(&html, "password"), "value"), None);
        assert!(!html.contains(password), "the password is echoed back");
        pages.push(html.replace(username, "USER"));
    }
    assert_eq!(pages[0], pages[1], "the two failures are told apart");
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
    assert!(cookie(&app, TOKEN_COOKIE).is_none());
}

async fn signed_out_visitor_of_the_profile_signs_in_and_comes_back(app: TestApp) {
    assert_eq!(app.register("Alice", PASSWORD).await.status(), Status::Created);
    let response = app.client.get("/profile").dispatch().await;
    assert_eq!(response.status(), Status::SeeOther);
    let to_login = location(&response).expect("a Location");
    assert_eq!(to_login, "/login?next=%2Fprofile");
    drop(response);

    let (status, html) = get_page(&app, &to_login).await;
    assert_eq!(status, Status::Ok);
    let next = attribute(input_tag(&html, "next"), "value").expect("the form carries next");
    assert_eq!(next, "/profile");
    let csrf = csrf_token(&html);
    let fields =
        [("csrf_token", csrf.as_str()), ("username", "Alice"), ("password", PASSWORD), ("next", &next)];
    let response = post_form(&app, "/login", &fields).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/profile"));
    drop(response);
    assert_eq!(get_page(&app, "/profile").await.0, Status::Ok);
}

async fn login_never_redirects_off_site(app: TestApp) {
    assert_eq!(app.register("Alice", PASSWORD).await.status(), Status::Created);
    // The sign-in page does not carry an off-site `next` into its form.
    for next in ["//evil.example", "https://evil.example", "/\\evil.example", "http:/x"] {
        let uri = format!("/login?next={}", percent_encode(next));
        let (status, html) = get_page(&app, &uri).await;
        assert_eq!(status, Status::Ok, "{uri}");
        assert!(!html.contains("evil.example") && !html.contains("http:"), "{uri} carried into the form");
    }
    let mut csrf = csrf_from(&app, "/login").await;
    for next in ["//evil.example", "https://evil.example", "/\\evil.example", "http:/x"] {
        let fields =
            [("csrf_token", csrf.as_str()), ("username", "Alice"), ("password", PASSWORD), ("next", next)];
        let response = post_form(&app, "/login", &fields).await;
        assert_eq!(response.status(), Status::SeeOther, "next = {next}");
        assert_eq!(location(&response).as_deref(), Some("/profile"), "next = {next}");
        drop(response);
        // Signed in now, the form is sent again with a token of this session (the profile's).
        csrf = csrf_from(&app, "/profile").await;
    }
}

// ---------------------------------------------------------------------------------------------
// Sign out

async fn logout_revokes_the_session_clears_the_cookie_and_shows_a_notice(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let old_token = cookie(&app, TOKEN_COOKIE).expect("signed in");
    let csrf = csrf_from(&app, "/profile").await;
    let response = post_form(&app, "/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/login"));
    assert_cleared(&response, TOKEN_COOKIE);
    drop(response);
    assert!(cookie(&app, TOKEN_COOKIE).is_none(), "the browser still holds the token");

    let (status, html) = get_page(&app, "/login").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("You have been signed out."), "no notice:\n{html}");
    // The notice is shown once.
    assert!(!get_page(&app, "/login").await.1.contains("You have been signed out."));

    assert_eq!(revoked_sessions(&app).await, 1);
    let response = app.client.get("/profile").cookie((TOKEN_COOKIE, old_token.clone())).dispatch().await;
    assert_eq!(response.status(), Status::SeeOther);
    assert!(location(&response).is_some_and(|l| l.starts_with("/login")), "{:?}", location(&response));
    drop(response);
    problem(app.profile(&old_token).await, Status::Unauthorized).await;
}

// ---------------------------------------------------------------------------------------------
// CSRF

async fn register_without_a_valid_csrf_token_is_forbidden_and_creates_nothing(app: TestApp) {
    let real = csrf_from(&app, "/register").await;
    for forged in forged_tokens(&real) {
        let mut fields = vec![("username", "Alice"), ("password", PASSWORD), ("password_confirm", PASSWORD)];
        if let Some(token) = &forged {
            fields.push(("csrf_token", token));
        }
        let response = post_form(&app, "/register", &fields).await;
        assert_eq!(response.status(), Status::Forbidden, "csrf_token = {forged:?}");
        assert!(set_cookie(&response, TOKEN_COOKIE).is_none());
        assert_html(&response);
        let html = response.into_string().await.unwrap();
        assert!(html.contains("CSRF"), "the page does not say what went wrong:\n{html}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
}

async fn login_without_a_valid_csrf_token_is_forbidden_and_signs_nobody_in(app: TestApp) {
    assert_eq!(app.register("Alice", PASSWORD).await.status(), Status::Created);
    let real = csrf_from(&app, "/login").await;
    for forged in forged_tokens(&real) {
        let mut fields = vec![("username", "Alice"), ("password", PASSWORD)];
        if let Some(token) = &forged {
            fields.push(("csrf_token", token));
        }
        let response = post_form(&app, "/login", &fields).await;
        assert_eq!(response.status(), Status::Forbidden, "csrf_token = {forged:?}");
        assert!(set_cookie(&response, TOKEN_COOKIE).is_none());
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
    assert!(cookie(&app, TOKEN_COOKIE).is_none());
    assert_eq!(app.client.get("/profile").dispatch().await.status(), Status::SeeOther);
}

async fn logout_without_a_valid_csrf_token_is_forbidden_and_keeps_the_session(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let real = csrf_from(&app, "/profile").await;
    for forged in forged_tokens(&real) {
        let fields: Vec<(&str, &str)> = forged.iter().map(|token| ("csrf_token", token.as_str())).collect();
        let response = post_form(&app, "/logout", &fields).await;
        assert_eq!(response.status(), Status::Forbidden, "csrf_token = {forged:?}");
        assert!(set_cookie(&response, TOKEN_COOKIE).is_none(), "the cookie was touched");
    }
    assert_eq!(revoked_sessions(&app).await, 0);
    let (status, html) = get_page(&app, "/profile").await;
    assert_eq!(status, Status::Ok, "signed out by a forged request");
    assert!(html.contains("Alice"));
}

/// An attacker loads the pages with the CSRF cookie they will plant in a victim's browser (from
/// a sibling subdomain, or over plain http) and takes the tokens: signed out, and signed in to
/// an account of their own. Once the victim signs in, those tokens are refused on the pages and
/// the API alike, and change nothing: a token is bound to the session it was issued for.
async fn a_csrf_cookie_and_token_obtained_by_an_attacker_and_planted_are_refused(app: TestApp) {
    // This browser's CSRF cookie stays the same throughout: it is the planted one.
    let signed_out = csrf_from(&app, "/login").await;
    let mallorys = sign_up(&app, "mallory", PASSWORD).await;
    assert_eq!(post_form(&app, "/logout", &[("csrf_token", &mallorys)]).await.status(), Status::SeeOther);
    sign_up(&app, "Alice", PASSWORD).await;
    for planted in [&signed_out, &mallorys] {
        let response =
            post_form(&app, "/account/email", &[("csrf_token", planted), ("email", "m@evil.test")]).await;
        assert_eq!(response.status(), Status::Forbidden);
        drop(response);
        let response = post_form(&app, "/account/sessions/revoke-others", &[("csrf_token", planted)]).await;
        assert_eq!(response.status(), Status::Forbidden);
        drop(response);
        let response = post_form(&app, "/logout", &[("csrf_token", planted)]).await;
        assert_eq!(response.status(), Status::Forbidden);
        drop(response);
        problem(
            app.client.delete("/auth/email").header(csrf_header(planted)).dispatch().await,
            Status::Forbidden,
        )
        .await;
        problem(
            app.client.post("/auth/logout").header(csrf_header(planted)).dispatch().await,
            Status::Forbidden,
        )
        .await;
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE email IS NOT NULL").await, 0);
    assert_eq!(revoked_sessions(&app).await, 1, "only mallory's own sign-out ended a session");
    // The victim's own pages carry a token of the victim's session, which works.
    let own = csrf_from(&app, "/profile").await;
    assert_ne!(own, signed_out);
    let response = post_form(&app, "/logout", &[("csrf_token", &own)]).await;
    assert_eq!(response.status(), Status::SeeOther);
}

async fn cookie_authenticated_api_logout_needs_the_csrf_header(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    // The browser holds the cookie; no Authorization header is sent.
    let response = app.client.post("/auth/logout").dispatch().await;
    problem(response, Status::Forbidden).await;
    let response = app.client.post("/auth/logout").header(csrf_header("not-a-token")).dispatch().await;
    problem(response, Status::Forbidden).await;
    assert_eq!(revoked_sessions(&app).await, 0);
    assert_eq!(get_page(&app, "/profile").await.0, Status::Ok, "the session was ended without CSRF proof");
    assert_eq!(app.client.get("/auth/profile").dispatch().await.status(), Status::Ok);

    let csrf = csrf_from(&app, "/profile").await;
    let response = app.client.post("/auth/logout").header(csrf_header(&csrf)).dispatch().await;
    assert_eq!(response.status(), Status::NoContent);
    drop(response);
    assert_eq!(revoked_sessions(&app).await, 1);
    assert_eq!(app.client.get("/profile").dispatch().await.status(), Status::SeeOther);
}

// ---------------------------------------------------------------------------------------------
// Headers and static files

async fn pages_send_security_headers_and_no_inline_script(app: TestApp) {
    for uri in ["/", "/login", "/register", "/profile"] {
        if uri == "/profile" {
            sign_up(&app, "Alice", PASSWORD).await;
        }
        let response = app.client.get(uri).dispatch().await;
        assert_eq!(response.status(), Status::Ok, "{uri}");
        let headers = response.headers();
        let csp = headers.get_one("Content-Security-Policy").unwrap_or_else(|| panic!("{uri}: no CSP"));
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        let directive = |name: &str| {
            csp.split(';')
                .map(str::trim)
                .find(|d| d.split_whitespace().next() == Some(name))
                .map(str::to_owned)
        };
        let scripts = directive("script-src").or_else(|| directive("default-src")).expect("a script policy");
        assert!(!scripts.contains("'unsafe-inline'"), "{uri}: {scripts}");
        assert_eq!(headers.get_one("X-Frame-Options"), Some("DENY"), "{uri}");
        assert_eq!(headers.get_one("X-Content-Type-Options"), Some("nosniff"), "{uri}");
        assert!(
            headers.get_one("Referrer-Policy").is_some_and(|p| !p.is_empty()),
            "{uri}: no Referrer-Policy"
        );
        let html = response.into_string().await.unwrap();
        // Scripts only from MiniAuth's own files (the passkeys' one), never inline.
        for script in html.split("<script").skip(1) {
            assert!(
                script.starts_with(r#" src="/static/passkeys.js" defer></script>"#),
                "{uri}: <script{script}"
            );
        }
        assert!(html.contains(r#"href="/static/style.css""#), "{uri} does not use the stylesheet");
    }
}

async fn stylesheet_is_served_as_css(app: TestApp) {
    let response = app.client.get("/static/style.css").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.content_type(), Some(ContentType::CSS));
    assert!(!response.into_string().await.unwrap().is_empty());
    // A file that is not there is not found, whatever the method asked for (405 would say
    // the path exists with another method).
    assert_eq!(app.client.get("/static/missing.css").dispatch().await.status(), Status::NotFound);
    assert_eq!(app.client.head("/static/missing.css").dispatch().await.status(), Status::NotFound);
    let post = app.client.post("/static/style.css").dispatch().await;
    assert_eq!(post.status(), Status::MethodNotAllowed);
    assert_eq!(post.headers().get_one("Allow"), Some("GET"));
}

/// Only the interactive docs get their looser policy (Swagger UI's inline styles), not a path
/// that merely starts with the same letters.
async fn only_the_docs_get_the_docs_policy(app: TestApp) {
    let csp = |response: &rocket::local::asynchronous::LocalResponse<'_>| {
        response.headers().get_one("Content-Security-Policy").unwrap_or_default().to_owned()
    };
    let docs = app.client.get("/docs/").dispatch().await;
    assert!(csp(&docs).contains("'unsafe-inline'"), "{}", csp(&docs));
    for path in ["/docsx", "/docs-evil", "/docs.html", "/documents"] {
        let response = app.client.get(path).dispatch().await;
        assert!(!csp(&response).contains("'unsafe-inline'"), "{path}: {}", csp(&response));
        assert!(!csp(&response).contains("script-src"), "{path}: {}", csp(&response));
    }
}

// ---------------------------------------------------------------------------------------------
// The page guard renews an expired access token from its live session

async fn expired_access_cookie_is_renewed_from_a_live_session(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let original = cookie(&app, TOKEN_COOKIE).expect("signed in");
    let expired = expired_copy_of(&app, &original).await;
    // The API does not accept the expired token, so it really is expired.
    problem(app.profile(&expired).await, Status::Unauthorized).await;

    let response = app.client.get("/profile").cookie((TOKEN_COOKIE, expired.clone())).dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    let renewed = set_cookie(&response, TOKEN_COOKIE).expect("a renewed token cookie");
    assert!(has_attribute(&renewed, "HttpOnly") && has_attribute(&renewed, "Path=/"), "{renewed}");
    let html = response.into_string().await.unwrap();
    assert!(html.contains("Alice"));

    let renewed = cookie(&app, TOKEN_COOKIE).expect("the browser keeps the renewed token");
    assert_ne!(renewed, expired);
    let claims = jwt_payload(&renewed);
    let original_claims = jwt_payload(&original);
    assert!(claims["exp"].as_i64().unwrap() > now(), "the renewed token is expired: {claims}");
    assert_eq!(claims["sid"], original_claims["sid"], "a renewal keeps the session");
    assert_eq!(claims["sub"], original_claims["sub"]);
    assert_eq!(app.profile(&renewed).await.status(), Status::Ok);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);
}

async fn expired_access_cookie_of_a_revoked_session_sends_to_sign_in(app: TestApp) {
    sign_up(&app, "Alice", PASSWORD).await;
    let original = cookie(&app, TOKEN_COOKIE).expect("signed in");
    let expired = expired_copy_of(&app, &original).await;
    let csrf = csrf_from(&app, "/profile").await;
    let response = post_form(&app, "/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), Status::SeeOther);
    drop(response);
    assert_eq!(revoked_sessions(&app).await, 1);

    let response = app.client.get("/profile").cookie((TOKEN_COOKIE, expired)).dispatch().await;
    assert_eq!(response.status(), Status::SeeOther);
    assert!(location(&response).is_some_and(|l| l.starts_with("/login")), "{:?}", location(&response));
    assert!(
        set_cookie(&response, TOKEN_COOKIE).is_none_or(|c| cookie_value(&c).is_empty()),
        "a token was issued for a revoked session"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors

async fn unknown_page_is_an_html_404(app: TestApp) {
    let response = app.client.get("/no-such-page").dispatch().await;
    assert_eq!(response.status(), Status::NotFound);
    assert_html(&response);
    let html = response.into_string().await.unwrap();
    assert!(html.contains("404"), "{html}");
    assert!(html.contains("<html"), "{html}");
}

async fn unknown_page_asked_for_as_json_is_problem_json(app: TestApp) {
    let response = app.client.get("/no-such-page").header(rocket::http::Accept::JSON).dispatch().await;
    let body = problem(response, Status::NotFound).await;
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

// ---------------------------------------------------------------------------------------------
// The `Secure` flag follows the configuration (these two run on SQLite only: the flag does not
// depend on the database).

#[rocket::async_test]
async fn token_cookie_is_secure_when_cookie_secure_is_set() {
    let app = TestApp::spawn_with(Backend::Sqlite, |f| f.merge(("cookie_secure", true))).await;
    let response = app.client.get("/login").dispatch().await;
    // Secure cookies: the CSRF cookie takes the `__Host-` prefix (this host only, no Domain).
    assert!(set_cookie(&response, CSRF_COOKIE).is_none(), "an unprefixed CSRF cookie");
    let csrf_cookie = set_cookie(&response, SECURE_CSRF_COOKIE).expect("a __Host- CSRF cookie");
    assert!(has_attribute(&csrf_cookie, "Secure"), "no Secure flag: {csrf_cookie}");
    assert!(csrf_cookie.contains("Path=/") && !csrf_cookie.contains("Domain"), "{csrf_cookie}");
    drop(response);
    let response = submit_register(&app, "Alice", PASSWORD, PASSWORD).await;
    assert_eq!(response.status(), Status::SeeOther);
    let cookie = set_cookie(&response, TOKEN_COOKIE).expect("a token cookie");
    assert!(has_attribute(&cookie, "Secure"), "no Secure flag: {cookie}");
    assert!(has_attribute(&cookie, "HttpOnly"), "{cookie}");
}

#[rocket::async_test]
async fn token_cookie_is_not_secure_in_the_debug_profile() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = submit_register(&app, "Alice", PASSWORD, PASSWORD).await;
    assert_eq!(response.status(), Status::SeeOther);
    let cookie = set_cookie(&response, TOKEN_COOKIE).expect("a token cookie");
    assert!(!has_attribute(&cookie, "Secure"), "Secure over plain HTTP in debug: {cookie}");
}
