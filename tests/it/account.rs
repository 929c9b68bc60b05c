//! Account management and refresh tokens through the JSON API: renewing
//! tokens with rotation and reuse detection, changing the password, deleting the account,
//! listing and revoking sessions, and signing out here, elsewhere or everywhere.

use crate::common;

use std::time::Duration;

use common::{bearer, expect, is_rfc3339, problem, user_id, TestApp, Tokens};
use rocket::futures::future::join_all;
use rocket::http::{ContentType, Method, Status};
use rocket::local::asynchronous::LocalResponse;
use rocket::serde::json::{json, Value};

backend_tests!(
    a_known_session_path_with_the_wrong_method_is_405_naming_the_right_one,
    // Refresh tokens
    logging_in_returns_an_opaque_refresh_token_beside_the_access_token,
    refreshing_answers_a_new_access_token_and_a_new_refresh_token_never_cached,
    the_access_token_from_a_refresh_opens_the_profile,
    each_new_refresh_token_renews_again_three_rotations_deep,
    refreshing_keeps_the_same_session_and_opens_no_new_one,
    refresh_tokens_are_stored_only_as_hashes,
    an_unknown_refresh_token_is_401_problem,
    a_refresh_without_the_field_or_with_an_empty_one_is_422_on_refresh_token,
    a_refresh_token_of_the_wrong_type_is_a_client_error_never_500,
    a_refresh_with_malformed_json_is_400_problem,
    a_refresh_with_a_text_body_is_415_problem,
    a_refresh_token_of_a_signed_out_session_is_401,
    a_used_refresh_token_presented_again_within_the_grace_window_still_works,
    five_concurrent_refreshes_with_one_token_all_succeed_within_the_grace_window,
    // Password change
    changing_the_password_is_204_and_only_the_new_password_signs_in,
    changing_the_password_signs_out_every_other_session_but_keeps_this_one,
    changing_the_password_ends_the_refresh_tokens_of_the_other_sessions,
    a_wrong_current_password_is_refused_on_current_password_and_changes_nothing,
    a_new_password_of_seven_bytes_is_422_on_new_password_and_changes_nothing,
    a_new_password_of_seventy_three_bytes_is_422_on_new_password_and_changes_nothing,
    a_new_password_equal_to_the_username_is_422_on_new_password_and_changes_nothing,
    a_password_change_without_fields_is_422,
    a_password_change_with_malformed_json_is_400_problem,
    changing_the_password_without_a_token_is_401,
    // Account deletion
    deleting_the_account_is_204_and_its_token_stops_working_at_once,
    a_deleted_user_cannot_sign_in_and_the_name_is_free_again,
    deleting_the_account_removes_its_user_sessions_and_refresh_tokens_rows_only,
    the_refresh_token_of_a_deleted_account_is_401,
    deleting_the_account_with_a_wrong_password_is_refused_and_the_account_remains,
    deleting_the_account_without_a_password_is_422_and_the_account_remains,
    deleting_the_account_without_a_token_is_401,
    // Sessions
    the_session_list_shows_each_live_session_with_times_and_user_agent,
    exactly_one_listed_session_is_the_current_one,
    signed_out_and_revoked_sessions_are_not_listed,
    revoking_another_of_my_sessions_is_204_and_signs_only_it_out,
    revoking_my_current_session_by_id_signs_me_out,
    revoking_a_session_already_revoked_is_404,
    revoking_another_users_session_is_404_and_it_keeps_working,
    the_session_list_never_shows_another_users_sessions,
    revoking_an_unknown_session_is_404_problem,
    revoking_a_malformed_session_id_is_a_client_error_never_500,
    a_very_long_user_agent_is_shortened_in_the_list_and_never_refused,
    the_session_list_without_a_token_is_401,
    // Logout scopes
    logging_out_others_ends_every_other_session_and_keeps_this_one,
    logging_out_globally_ends_every_session_including_this_one,
    logging_out_locally_ends_only_this_session,
    logging_out_without_a_scope_ends_only_this_session,
    logging_out_with_an_unknown_scope_is_422_problem_and_ends_nothing,
    logging_out_globally_leaves_other_users_signed_in,
);

const PASSWORD: &str = "correct horse";
/// The answer to a wrong password confirming an account change: a well-formed request whose
/// proof is wrong is refused (403); 422 is for a new password that breaks the rules.
const WRONG_PASSWORD: Status = Status::Forbidden;
const NEW_PASSWORD: &str = "battery staple";

/// The profile answers 401 problem+json for this token.
async fn refused(app: &TestApp, token: &str) {
    assert!(!app.token_works(token).await, "the token still opens the profile");
}

async fn works(app: &TestApp, token: &str) {
    assert!(app.token_works(token).await, "the token does not open the profile");
}

/// Exchanges a refresh token that must work; returns the new tokens.
async fn renewed(app: &TestApp, refresh_token: &str) -> Tokens {
    Tokens::of(&expect(app.refresh(refresh_token).await, Status::Ok).await)
}

fn ids(sessions: &[Value]) -> Vec<String> {
    sessions.iter().map(|s| s["id"].as_str().expect("an id").to_owned()).collect()
}

async fn revoke<'c>(app: &'c TestApp, token: &str, id: &str) -> LocalResponse<'c> {
    app.client.delete(format!("/auth/sessions/{id}")).header(bearer(token)).dispatch().await
}

/// A request with a JSON body (sent as it is, well-formed or not) and a bearer token.
async fn send_json<'c>(
    app: &'c TestApp,
    method: Method,
    uri: &str,
    token: &str,
    body: impl Into<String>,
) -> LocalResponse<'c> {
    app.client
        .req(method, uri.to_owned())
        .header(ContentType::JSON)
        .header(bearer(token))
        .body(body.into())
        .dispatch()
        .await
}

async fn change_password<'c>(app: &'c TestApp, token: &str, current: &str, new: &str) -> LocalResponse<'c> {
    let body = json!({ "current_password": current, "new_password": new });
    send_json(app, Method::Post, "/auth/password", token, body.to_string()).await
}

async fn delete_account<'c>(app: &'c TestApp, token: &str, body: Value) -> LocalResponse<'c> {
    send_json(app, Method::Delete, "/auth/account", token, body.to_string()).await
}

// Refresh tokens ----------------------------------------------------------------------------

async fn logging_in_returns_an_opaque_refresh_token_beside_the_access_token(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    let body = expect(response, Status::Ok).await;
    assert_eq!(body["token_type"], "bearer");
    let tokens = Tokens::of(&body);
    // 128 bits are at least 22 base64 characters; opaque: not a JWT.
    assert!(tokens.refresh.len() >= 22, "refresh token too short: {}", tokens.refresh);
    assert_eq!(tokens.refresh.matches('.').count(), 0, "an opaque token, not a JWT");
    assert_ne!(tokens.refresh, tokens.access);
    // A second sign-in gets another refresh token.
    assert_ne!(app.sign_in("alice", PASSWORD).await.refresh, tokens.refresh);
}

async fn refreshing_answers_a_new_access_token_and_a_new_refresh_token_never_cached(app: TestApp) {
    let [first] = app.register_and_sign_in("alice", PASSWORD).await;
    let response = app.refresh(&first.refresh).await;
    assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    assert!(response.content_type().is_some_and(|ct| ct.is_json()));
    let body = expect(response, Status::Ok).await;
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_i64().is_some_and(|s| s > 0), "expires_in: {body}");
    let second = Tokens::of(&body);
    assert!(!second.access.is_empty());
    assert_ne!(second.refresh, first.refresh, "the refresh token rotates");
}

async fn the_access_token_from_a_refresh_opens_the_profile(app: TestApp) {
    let id = user_id(&app.registered("alice", PASSWORD).await);
    let first = app.sign_in("alice", PASSWORD).await;
    let second = renewed(&app, &first.refresh).await;
    let profile = expect(app.profile(&second.access).await, Status::Ok).await;
    assert_eq!(profile["id"], id);
    assert_eq!(profile["username"], "alice");
}

async fn each_new_refresh_token_renews_again_three_rotations_deep(app: TestApp) {
    let [mut tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let mut seen = vec![tokens.refresh.clone()];
    for _ in 0..3 {
        tokens = renewed(&app, &tokens.refresh).await;
        assert!(!seen.contains(&tokens.refresh), "every refresh token is new");
        seen.push(tokens.refresh.clone());
        works(&app, &tokens.access).await;
    }
}

async fn refreshing_keeps_the_same_session_and_opens_no_new_one(app: TestApp) {
    let [first] = app.register_and_sign_in("alice", PASSWORD).await;
    let before = app.session_id(&first.access).await;
    let mut tokens = renewed(&app, &first.refresh).await;
    tokens = renewed(&app, &tokens.refresh).await;
    let listed = app.sessions(&tokens.access).await;
    assert_eq!(ids(&listed), vec![before.clone()], "still one session: {listed:?}");
    assert_eq!(app.session_id(&tokens.access).await, before);
}

async fn refresh_tokens_are_stored_only_as_hashes(app: TestApp) {
    let [first] = app.register_and_sign_in("alice", PASSWORD).await;
    let second = renewed(&app, &first.refresh).await;
    let session = app.session_id(&second.access).await;
    for raw in [&first.refresh, &second.refresh] {
        // Tokens are URL-safe base64: nothing to escape in SQL.
        assert!(raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{raw}");
        let stored =
            app.count(&format!("SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = '{raw}'")).await;
        assert_eq!(stored, 0, "a raw refresh token is stored");
        let anywhere = app
            .count(&format!(
                "SELECT COUNT(*) FROM refresh_tokens WHERE token_hash LIKE '%{raw}%' OR session_id LIKE '%{raw}%'"
            ))
            .await;
        assert_eq!(anywhere, 0, "a raw refresh token is stored");
    }
    let rows =
        app.count(&format!("SELECT COUNT(*) FROM refresh_tokens WHERE session_id = '{session}'")).await;
    assert!(rows >= 1, "the session's refresh tokens are stored (as hashes)");
}

async fn an_unknown_refresh_token_is_401_problem(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let body =
        problem(app.refresh("not-a-refresh-token-at-all-0123456789").await, Status::Unauthorized).await;
    assert!(!body.to_string().contains("not-a-refresh-token"), "the token is not echoed: {body}");
    // An access token is not a refresh token.
    problem(app.refresh(&tokens.access).await, Status::Unauthorized).await;
    // Nothing happened to the real session.
    works(&app, &tokens.access).await;
    renewed(&app, &tokens.refresh).await;
}

async fn a_refresh_without_the_field_or_with_an_empty_one_is_422_on_refresh_token(app: TestApp) {
    for body in [json!({}), json!({ "refresh_token": "" })] {
        let problem =
            problem(app.post_json("/auth/refresh", body.clone()).await, Status::UnprocessableEntity).await;
        assert!(problem["errors"]["refresh_token"].is_array(), "{body} → {problem}");
    }
}

async fn a_refresh_token_of_the_wrong_type_is_a_client_error_never_500(app: TestApp) {
    for body in [json!({ "refresh_token": 5 }), json!({ "refresh_token": null }), json!(["x"]), json!("x")] {
        let response = app.post_json("/auth/refresh", body.clone()).await;
        let status = response.status();
        assert!((400..500).contains(&status.code), "{body} answered {status}");
        problem(response, status).await;
    }
}

async fn a_refresh_with_malformed_json_is_400_problem(app: TestApp) {
    let response = app
        .client
        .post("/auth/refresh")
        .header(ContentType::JSON)
        .body(r#"{"refresh_token": "abc"#)
        .dispatch()
        .await;
    problem(response, Status::BadRequest).await;
}

async fn a_refresh_with_a_text_body_is_415_problem(app: TestApp) {
    let response = app.client.post("/auth/refresh").header(ContentType::Plain).body("abc").dispatch().await;
    problem(response, Status::UnsupportedMediaType).await;
}

async fn a_refresh_token_of_a_signed_out_session_is_401(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    assert_eq!(app.logout(&tokens.access, "").await.status(), Status::NoContent);
    problem(app.refresh(&tokens.refresh).await, Status::Unauthorized).await;
    refused(&app, &tokens.access).await;
}

async fn a_used_refresh_token_presented_again_within_the_grace_window_still_works(app: TestApp) {
    // Default grace: 10 s. A client that lost the answer retries with the same token.
    let [first] = app.register_and_sign_in("alice", PASSWORD).await;
    let second = renewed(&app, &first.refresh).await;
    let retried = renewed(&app, &first.refresh).await;
    // The retry gets the same successor: the session has one chain of refresh tokens, not two.
    assert_eq!(retried.refresh, second.refresh);
    // The session stays live: every token it was given works.
    works(&app, &first.access).await;
    works(&app, &second.access).await;
    works(&app, &retried.access).await;
    renewed(&app, &retried.refresh).await;
    assert_eq!(app.sessions(&retried.access).await.len(), 1);
}

async fn five_concurrent_refreshes_with_one_token_all_succeed_within_the_grace_window(app: TestApp) {
    let [first] = app.register_and_sign_in("alice", PASSWORD).await;
    let responses = join_all((0..5).map(|_| app.refresh(&first.refresh))).await;
    let mut renewed_tokens = Vec::new();
    for response in responses {
        let status = response.status();
        let body = response.into_string().await.unwrap_or_default();
        assert!(status.code < 500, "a concurrent refresh answered {status}: {body}");
        assert_eq!(status, Status::Ok, "{body}");
        let body: Value = rocket::serde::json::serde_json::from_str(&body).unwrap();
        renewed_tokens.push(Tokens::of(&body));
    }
    for tokens in &renewed_tokens {
        works(&app, &tokens.access).await;
        assert_eq!(tokens.refresh, renewed_tokens[0].refresh, "one token, one successor");
    }
    // The session was not taken for stolen.
    works(&app, &first.access).await;
    renewed(&app, &renewed_tokens[4].refresh).await;
}

/// With `refresh_grace = 0`, a rotated token presented again a second later is theft: the
/// whole session ends, the thief's and the owner's tokens alike.
async fn reuse_after_the_grace_window_revokes_the_whole_session(app: TestApp) {
    let [bystander, a] = app.register_and_sign_in("alice", PASSWORD).await;
    let b = renewed(&app, &a.refresh).await;
    works(&app, &b.access).await;
    // The check is in whole seconds: wait until at least one full second has gone by.
    rocket::tokio::time::sleep(Duration::from_millis(1100)).await;
    problem(app.refresh(&a.refresh).await, Status::Unauthorized).await;
    // B, never used, is refused too: the session is revoked.
    problem(app.refresh(&b.refresh).await, Status::Unauthorized).await;
    refused(&app, &b.access).await;
    refused(&app, &a.access).await;
    // The user's other session is not touched.
    works(&app, &bystander.access).await;
    let listed = app.sessions(&bystander.access).await;
    assert_eq!(listed.len(), 1, "only the untouched session is listed: {listed:?}");
}

/// A thief who replays a token within the grace window gets the very successor its owner got,
/// not a chain of its own: when the owner renews again, the thief's copy is a used token, and
/// presenting it after the window ends the session for both.
async fn a_replay_within_the_grace_window_joins_the_owners_chain_and_cannot_fork_it(app: TestApp) {
    let [a] = app.register_and_sign_in("alice", PASSWORD).await;
    let owners = renewed(&app, &a.refresh).await;
    let thiefs = renewed(&app, &a.refresh).await;
    assert_eq!(thiefs.refresh, owners.refresh, "the replay got a successor of its own");
    let owners_next = renewed(&app, &owners.refresh).await;
    // Past the window (2 s, counted in whole seconds) the thief's copy is a reused token.
    rocket::tokio::time::sleep(Duration::from_millis(3100)).await;
    problem(app.refresh(&thiefs.refresh).await, Status::Unauthorized).await;
    problem(app.refresh(&owners_next.refresh).await, Status::Unauthorized).await;
    refused(&app, &owners_next.access).await;
    refused(&app, &thiefs.access).await;
}

/// The latest refresh token of a session, the one its owner holds, keeps working for as long as
/// nobody replays an old one, however long the gap between refreshes.
async fn the_latest_refresh_token_keeps_working_after_the_grace_window(app: TestApp) {
    let [a] = app.register_and_sign_in("alice", PASSWORD).await;
    let b = renewed(&app, &a.refresh).await;
    rocket::tokio::time::sleep(Duration::from_millis(1100)).await;
    let c = renewed(&app, &b.refresh).await;
    works(&app, &c.access).await;
}

backend_tests_with!(
    |f| f.merge(("refresh_grace", 2));
    a_replay_within_the_grace_window_joins_the_owners_chain_and_cannot_fork_it =>
        a_replay_within_the_grace_window_joins_the_owners_chain_and_cannot_fork_it_on_sqlite,
        a_replay_within_the_grace_window_joins_the_owners_chain_and_cannot_fork_it_on_postgres,
);

// Both need `refresh_grace = 0`: a rotated refresh token presented again is theft at once.
backend_tests_with!(
    |f| f.merge(("refresh_grace", 0));
    reuse_after_the_grace_window_revokes_the_whole_session =>
        reuse_after_the_grace_window_revokes_the_whole_session_on_sqlite,
        reuse_after_the_grace_window_revokes_the_whole_session_on_postgres,
    the_latest_refresh_token_keeps_working_after_the_grace_window =>
        the_latest_refresh_token_keeps_working_after_the_grace_window_on_sqlite,
        the_latest_refresh_token_keeps_working_after_the_grace_window_on_postgres,
);

// Password change ---------------------------------------------------------------------------

async fn changing_the_password_is_204_and_only_the_new_password_signs_in(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let response = change_password(&app, &tokens.access, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), Status::NoContent);
    problem(app.login("alice", PASSWORD).await, Status::Unauthorized).await;
    app.sign_in("alice", NEW_PASSWORD).await;
}

async fn changing_the_password_signs_out_every_other_session_but_keeps_this_one(app: TestApp) {
    let [here, phone, laptop] = app.register_and_sign_in("alice", PASSWORD).await;
    assert_eq!(change_password(&app, &here.access, PASSWORD, NEW_PASSWORD).await.status(), Status::NoContent);
    refused(&app, &phone.access).await;
    refused(&app, &laptop.access).await;
    works(&app, &here.access).await;
    let listed = app.sessions(&here.access).await;
    assert_eq!(listed.len(), 1, "only this session is left: {listed:?}");
    assert_eq!(listed[0]["current"], true);
    // This session's refresh token still renews it.
    let renewed_here = renewed(&app, &here.refresh).await;
    works(&app, &renewed_here.access).await;
}

async fn changing_the_password_ends_the_refresh_tokens_of_the_other_sessions(app: TestApp) {
    let [here, stolen] = app.register_and_sign_in("alice", PASSWORD).await;
    assert_eq!(change_password(&app, &here.access, PASSWORD, NEW_PASSWORD).await.status(), Status::NoContent);
    problem(app.refresh(&stolen.refresh).await, Status::Unauthorized).await;
}

async fn a_wrong_current_password_is_refused_on_current_password_and_changes_nothing(app: TestApp) {
    let [here, other] = app.register_and_sign_in("alice", PASSWORD).await;
    let body =
        problem(change_password(&app, &here.access, "wrong password", NEW_PASSWORD).await, WRONG_PASSWORD)
            .await;
    assert!(body["errors"]["current_password"].is_array(), "{body}");
    assert!(body["errors"].get("new_password").is_none(), "{body}");
    problem(app.login("alice", NEW_PASSWORD).await, Status::Unauthorized).await;
    app.sign_in("alice", PASSWORD).await;
    works(&app, &here.access).await;
    works(&app, &other.access).await;
}

/// A new password that breaks the rules is refused on `new_password`, and nothing changes.
async fn refused_new_password(app: &TestApp, username: &str, new: &str) {
    let [here, other] = app.register_and_sign_in(username, PASSWORD).await;
    let body =
        problem(change_password(app, &here.access, PASSWORD, new).await, Status::UnprocessableEntity).await;
    let messages = body["errors"]["new_password"].as_array().unwrap_or_else(|| panic!("{body}"));
    assert!(!messages.is_empty() && messages.iter().all(Value::is_string), "{body}");
    problem(app.login(username, new).await, Status::Unauthorized).await;
    app.sign_in(username, PASSWORD).await;
    works(app, &here.access).await;
    works(app, &other.access).await;
}

async fn a_new_password_of_seven_bytes_is_422_on_new_password_and_changes_nothing(app: TestApp) {
    refused_new_password(&app, "alice", "1234567").await;
}

async fn a_new_password_of_seventy_three_bytes_is_422_on_new_password_and_changes_nothing(app: TestApp) {
    refused_new_password(&app, "alice", &"a".repeat(73)).await;
}

async fn a_new_password_equal_to_the_username_is_422_on_new_password_and_changes_nothing(app: TestApp) {
    refused_new_password(&app, "Longname_1", "longname_1").await;
}

async fn a_password_change_without_fields_is_422(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let response = send_json(&app, Method::Post, "/auth/password", &tokens.access, "{}").await;
    let body = problem(response, Status::UnprocessableEntity).await;
    assert!(body["errors"].is_object(), "{body}");
    app.sign_in("alice", PASSWORD).await;
}

async fn a_password_change_with_malformed_json_is_400_problem(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    let response =
        send_json(&app, Method::Post, "/auth/password", &tokens.access, r#"{"current_password": "#).await;
    problem(response, Status::BadRequest).await;
    app.sign_in("alice", PASSWORD).await;
}

async fn changing_the_password_without_a_token_is_401(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let body = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
    let response = app.post_json("/auth/password", body).await;
    assert_eq!(response.headers().get_one("WWW-Authenticate"), Some("Bearer"));
    problem(response, Status::Unauthorized).await;
    app.sign_in("alice", PASSWORD).await;
}

// Account deletion --------------------------------------------------------------------------

async fn deleting_the_account_is_204_and_its_token_stops_working_at_once(app: TestApp) {
    let [here, other] = app.register_and_sign_in("alice", PASSWORD).await;
    works(&app, &here.access).await;
    let response = delete_account(&app, &here.access, json!({ "password": PASSWORD })).await;
    assert_eq!(response.status(), Status::NoContent);
    refused(&app, &here.access).await;
    refused(&app, &other.access).await;
    let response = app.client.get("/auth/sessions").header(bearer(&here.access)).dispatch().await;
    problem(response, Status::Unauthorized).await;
}

async fn a_deleted_user_cannot_sign_in_and_the_name_is_free_again(app: TestApp) {
    let old_id = user_id(&app.registered("Alice", PASSWORD).await);
    let tokens = app.sign_in("alice", PASSWORD).await;
    assert_eq!(
        delete_account(&app, &tokens.access, json!({ "password": PASSWORD })).await.status(),
        Status::NoContent
    );
    problem(app.login("alice", PASSWORD).await, Status::Unauthorized).await;
    let new_id = user_id(&app.registered("alice", NEW_PASSWORD).await);
    assert_ne!(new_id, old_id, "a new account, not the old one back");
    // The old token does not open the new account of the same name.
    refused(&app, &tokens.access).await;
    problem(app.login("alice", PASSWORD).await, Status::Unauthorized).await;
    let fresh = app.sign_in("alice", NEW_PASSWORD).await;
    assert_eq!(expect(app.profile(&fresh.access).await, Status::Ok).await["id"], new_id);
}

async fn deleting_the_account_removes_its_user_sessions_and_refresh_tokens_rows_only(app: TestApp) {
    let alice = user_id(&app.registered("alice", PASSWORD).await);
    let bob = user_id(&app.registered("bob_the_user", PASSWORD).await);
    let here = app.sign_in("alice", PASSWORD).await;
    let other = app.sign_in("alice", PASSWORD).await;
    renewed(&app, &other.refresh).await;
    let bobs = app.sign_in("bob_the_user", PASSWORD).await;
    let alice_sessions = ids(&app.sessions(&here.access).await);
    assert_eq!(alice_sessions.len(), 2);
    let in_list = alice_sessions.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ");
    let tokens_sql = format!("SELECT COUNT(*) FROM refresh_tokens WHERE session_id IN ({in_list})");
    assert!(app.count(&tokens_sql).await >= 3);

    assert_eq!(
        delete_account(&app, &here.access, json!({ "password": PASSWORD })).await.status(),
        Status::NoContent
    );
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM users WHERE id = {alice}")).await, 0);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM sessions WHERE user_id = {alice}")).await, 0);
    assert_eq!(app.count(&tokens_sql).await, 0);
    // Bob's account is untouched.
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM users WHERE id = {bob}")).await, 1);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM sessions WHERE user_id = {bob}")).await, 1);
    works(&app, &bobs.access).await;
    renewed(&app, &bobs.refresh).await;
}

async fn the_refresh_token_of_a_deleted_account_is_401(app: TestApp) {
    let [tokens] = app.register_and_sign_in("alice", PASSWORD).await;
    assert_eq!(
        delete_account(&app, &tokens.access, json!({ "password": PASSWORD })).await.status(),
        Status::NoContent
    );
    problem(app.refresh(&tokens.refresh).await, Status::Unauthorized).await;
}

async fn deleting_the_account_with_a_wrong_password_is_refused_and_the_account_remains(app: TestApp) {
    let id = user_id(&app.registered("alice", PASSWORD).await);
    let tokens = app.sign_in("alice", PASSWORD).await;
    let body = problem(
        delete_account(&app, &tokens.access, json!({ "password": "wrong password" })).await,
        WRONG_PASSWORD,
    )
    .await;
    assert!(body["errors"]["password"].is_array(), "{body}");
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM users WHERE id = {id}")).await, 1);
    works(&app, &tokens.access).await;
    app.sign_in("alice", PASSWORD).await;
    problem(app.register("alice", PASSWORD).await, Status::Conflict).await;
}

async fn deleting_the_account_without_a_password_is_422_and_the_account_remains(app: TestApp) {
    let id = user_id(&app.registered("alice", PASSWORD).await);
    let tokens = app.sign_in("alice", PASSWORD).await;
    for body in [json!({}), json!({ "password": "" })] {
        let problem =
            problem(delete_account(&app, &tokens.access, body.clone()).await, Status::UnprocessableEntity)
                .await;
        assert!(problem["errors"]["password"].is_array(), "{body} → {problem}");
    }
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM users WHERE id = {id}")).await, 1);
    works(&app, &tokens.access).await;
}

async fn deleting_the_account_without_a_token_is_401(app: TestApp) {
    let id = user_id(&app.registered("alice", PASSWORD).await);
    let response = app
        .client
        .delete("/auth/account")
        .header(ContentType::JSON)
        .body(json!({ "password": PASSWORD }).to_string())
        .dispatch()
        .await;
    problem(response, Status::Unauthorized).await;
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM users WHERE id = {id}")).await, 1);
}

// Sessions ----------------------------------------------------------------------------------

async fn the_session_list_shows_each_live_session_with_times_and_user_agent(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let browser = app.sign_in_as("alice", PASSWORD, "test-agent/1.0").await;
    let cli = app.sign_in_as("alice", PASSWORD, "other-client/2.0").await;
    let listed = app.sessions(&browser.access).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    for session in &listed {
        assert!(session["id"].as_str().is_some_and(|id| id.len() >= 22), "{session}");
        for field in ["created_at", "last_used_at", "expires_at"] {
            let value = session[field].as_str().unwrap_or_else(|| panic!("{field} missing: {session}"));
            assert!(is_rfc3339(value), "{field} {value:?} is not RFC 3339");
        }
        assert!(session["expires_at"].as_str() > session["created_at"].as_str(), "{session}");
        assert!(session["current"].is_boolean(), "{session}");
        assert!(!session.to_string().contains(&browser.access), "no token in the list");
    }
    let agents: Vec<&str> = listed.iter().map(|s| s["user_agent"].as_str().expect("user_agent")).collect();
    assert!(agents.contains(&"test-agent/1.0"), "{agents:?}");
    assert!(agents.contains(&"other-client/2.0"), "{agents:?}");
    let current = listed.iter().find(|s| s["current"] == true).expect("a current session");
    assert_eq!(current["user_agent"], "test-agent/1.0");
    // The other client sees the same sessions, its own marked current.
    let seen_by_cli = app.sessions(&cli.access).await;
    let mut a = ids(&listed);
    let mut b = ids(&seen_by_cli);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let current = seen_by_cli.iter().find(|s| s["current"] == true).expect("a current session");
    assert_eq!(current["user_agent"], "other-client/2.0");
}

async fn exactly_one_listed_session_is_the_current_one(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let mut all = Vec::new();
    for _ in 0..3 {
        all.push(app.sign_in("alice", PASSWORD).await);
    }
    let mut currents = Vec::new();
    for tokens in &all {
        let listed = app.sessions(&tokens.access).await;
        assert_eq!(listed.len(), 3);
        assert_eq!(listed.iter().filter(|s| s["current"] == true).count(), 1, "{listed:?}");
        currents.push(app.session_id(&tokens.access).await);
    }
    currents.sort();
    currents.dedup();
    assert_eq!(currents.len(), 3, "each sign-in is its own session");
}

async fn signed_out_and_revoked_sessions_are_not_listed(app: TestApp) {
    let [here, logged_out, revoked] = app.register_and_sign_in("alice", PASSWORD).await;
    let logged_out_id = app.session_id(&logged_out.access).await;
    let revoked_id = app.session_id(&revoked.access).await;
    assert_eq!(app.logout(&logged_out.access, "").await.status(), Status::NoContent);
    assert_eq!(revoke(&app, &here.access, &revoked_id).await.status(), Status::NoContent);
    let listed = ids(&app.sessions(&here.access).await);
    assert_eq!(listed, vec![app.session_id(&here.access).await]);
    assert!(!listed.contains(&logged_out_id) && !listed.contains(&revoked_id));
}

async fn revoking_another_of_my_sessions_is_204_and_signs_only_it_out(app: TestApp) {
    let [here, lost_phone, laptop] = app.register_and_sign_in("alice", PASSWORD).await;
    let phone_id = app.session_id(&lost_phone.access).await;
    let response = revoke(&app, &here.access, &phone_id).await;
    assert_eq!(response.status(), Status::NoContent);
    refused(&app, &lost_phone.access).await;
    problem(app.refresh(&lost_phone.refresh).await, Status::Unauthorized).await;
    works(&app, &here.access).await;
    works(&app, &laptop.access).await;
}

async fn revoking_my_current_session_by_id_signs_me_out(app: TestApp) {
    let [here, other] = app.register_and_sign_in("alice", PASSWORD).await;
    let mine = app.session_id(&here.access).await;
    assert_eq!(revoke(&app, &here.access, &mine).await.status(), Status::NoContent);
    refused(&app, &here.access).await;
    works(&app, &other.access).await;
}

async fn revoking_a_session_already_revoked_is_404(app: TestApp) {
    let [here, other] = app.register_and_sign_in("alice", PASSWORD).await;
    let other_id = app.session_id(&other.access).await;
    assert_eq!(revoke(&app, &here.access, &other_id).await.status(), Status::NoContent);
    problem(revoke(&app, &here.access, &other_id).await, Status::NotFound).await;
}

async fn revoking_another_users_session_is_404_and_it_keeps_working(app: TestApp) {
    let [alice] = app.register_and_sign_in("alice", PASSWORD).await;
    let [mallory] = app.register_and_sign_in("mallory", PASSWORD).await;
    let alice_id = app.session_id(&alice.access).await;
    let response = revoke(&app, &mallory.access, &alice_id).await;
    // The same answer as for an id that does not exist: nothing tells Mallory it is real.
    let body = problem(response, Status::NotFound).await;
    let unknown = problem(revoke(&app, &mallory.access, "no-such-session-id").await, Status::NotFound).await;
    assert_eq!(body, unknown);
    works(&app, &alice.access).await;
    assert_eq!(ids(&app.sessions(&alice.access).await), vec![alice_id]);
    renewed(&app, &alice.refresh).await;
    works(&app, &mallory.access).await;
}

async fn the_session_list_never_shows_another_users_sessions(app: TestApp) {
    let [alice, _] = app.register_and_sign_in("alice", PASSWORD).await;
    let [bob, _] = app.register_and_sign_in("bob_the_user", PASSWORD).await;
    let alices = ids(&app.sessions(&alice.access).await);
    let bobs = ids(&app.sessions(&bob.access).await);
    assert_eq!(alices.len(), 2);
    assert_eq!(bobs.len(), 2);
    assert!(alices.iter().all(|id| !bobs.contains(id)), "{alices:?} / {bobs:?}");
}

async fn revoking_an_unknown_session_is_404_problem(app: TestApp) {
    let [here] = app.register_and_sign_in("alice", PASSWORD).await;
    problem(
        revoke(&app, &here.access, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await,
        Status::NotFound,
    )
    .await;
    works(&app, &here.access).await;
}

async fn revoking_a_malformed_session_id_is_a_client_error_never_500(app: TestApp) {
    let [here] = app.register_and_sign_in("alice", PASSWORD).await;
    let long = "x".repeat(4000);
    let mut failures = Vec::new();
    for id in ["%00", "abc%00def", "%C3%A9t%C3%A9", "%FF%FE", "'%20OR%201=1%20--", long.as_str()] {
        let status = revoke(&app, &here.access, id).await.status();
        if !(400..500).contains(&status.code) {
            failures.push(format!("DELETE /auth/sessions/{id:.40} answered {status}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    works(&app, &here.access).await;
    assert_eq!(app.sessions(&here.access).await.len(), 1);
}

async fn a_very_long_user_agent_is_shortened_in_the_list_and_never_refused(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let agent = format!("very-long-agent/{}", "é".repeat(2000));
    let here = app.sign_in_as("alice", PASSWORD, &agent).await;
    let listed = app.sessions(&here.access).await;
    let shown = listed[0]["user_agent"].as_str().expect("user_agent");
    assert!(agent.starts_with(shown), "the list shows the start of the agent");
    assert!(!shown.is_empty() && shown.len() < agent.len(), "shortened: {} bytes", shown.len());
}

async fn the_session_list_without_a_token_is_401(app: TestApp) {
    let response = app.client.get("/auth/sessions").dispatch().await;
    assert_eq!(response.headers().get_one("WWW-Authenticate"), Some("Bearer"));
    problem(response, Status::Unauthorized).await;
    let response = app.client.delete("/auth/sessions/anything").dispatch().await;
    problem(response, Status::Unauthorized).await;
}

// Logout scopes -----------------------------------------------------------------------------

async fn logging_out_others_ends_every_other_session_and_keeps_this_one(app: TestApp) {
    let [here, a, b] = app.register_and_sign_in("alice", PASSWORD).await;
    assert_eq!(app.logout(&here.access, "?scope=others").await.status(), Status::NoContent);
    refused(&app, &a.access).await;
    refused(&app, &b.access).await;
    problem(app.refresh(&a.refresh).await, Status::Unauthorized).await;
    works(&app, &here.access).await;
    assert_eq!(app.sessions(&here.access).await.len(), 1);
    renewed(&app, &here.refresh).await;
}

async fn logging_out_globally_ends_every_session_including_this_one(app: TestApp) {
    let [here, a] = app.register_and_sign_in("alice", PASSWORD).await;
    assert_eq!(app.logout(&here.access, "?scope=global").await.status(), Status::NoContent);
    refused(&app, &here.access).await;
    refused(&app, &a.access).await;
    problem(app.refresh(&here.refresh).await, Status::Unauthorized).await;
    problem(app.refresh(&a.refresh).await, Status::Unauthorized).await;
    // Signing in again still works.
    let again = app.sign_in("alice", PASSWORD).await;
    assert_eq!(app.sessions(&again.access).await.len(), 1);
}

async fn logging_out_locally_ends_only_this_session(app: TestApp) {
    let [here, other] = app.register_and_sign_in("alice", PASSWORD).await;
    assert_eq!(app.logout(&here.access, "?scope=local").await.status(), Status::NoContent);
    refused(&app, &here.access).await;
    works(&app, &other.access).await;
    assert_eq!(app.sessions(&other.access).await.len(), 1);
}

async fn logging_out_without_a_scope_ends_only_this_session(app: TestApp) {
    let [here, other] = app.register_and_sign_in("alice", PASSWORD).await;
    assert_eq!(app.logout(&here.access, "").await.status(), Status::NoContent);
    refused(&app, &here.access).await;
    problem(app.refresh(&here.refresh).await, Status::Unauthorized).await;
    works(&app, &other.access).await;
}

async fn logging_out_with_an_unknown_scope_is_422_problem_and_ends_nothing(app: TestApp) {
    let [here, other] = app.register_and_sign_in("alice", PASSWORD).await;
    for query in [
        "?scope=bogus",
        "?scope=everything",
        "?scope=",
        "?scope=global&scope=global",
        "?scope=null&scope=local",
    ] {
        let body = problem(app.logout(&here.access, query).await, Status::UnprocessableEntity).await;
        assert!(body["errors"]["scope"].is_array(), "{query}: {body}");
    }
    works(&app, &here.access).await;
    works(&app, &other.access).await;
}

async fn logging_out_globally_leaves_other_users_signed_in(app: TestApp) {
    let [alice] = app.register_and_sign_in("alice", PASSWORD).await;
    let [bob] = app.register_and_sign_in("bob_the_user", PASSWORD).await;
    assert_eq!(app.logout(&alice.access, "?scope=global").await.status(), Status::NoContent);
    refused(&app, &alice.access).await;
    works(&app, &bob.access).await;
    renewed(&app, &bob.refresh).await;
}

async fn a_known_session_path_with_the_wrong_method_is_405_naming_the_right_one(app: TestApp) {
    let [here] = app.register_and_sign_in("alice", PASSWORD).await;
    let response = app.client.get("/auth/sessions/some-id").header(bearer(&here.access)).dispatch().await;
    assert_eq!(response.headers().get_one("Allow"), Some("DELETE"));
    problem(response, Status::MethodNotAllowed).await;
}
