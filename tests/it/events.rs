//! The security activity log: each security event is recorded, with the client's address and
//! device, in the transaction of the change it describes (a change that cannot record its event
//! does not happen; a refusal records no change); a user sees their own last 50 on
//! `GET /auth/events` and `/account/activity`, and nobody else's; the profile route records
//! nothing; the purge keeps them `event_retention_days`; `event_log = "stdout"` prints each as
//! one JSON line; administrators read them with `miniauth events`, and their commands are events.

use crate::common;

use common::browser::{get_page, location, sign_in_on_the_page};
use common::server::{Server, JSON};
use common::{bearer, expect, problem, user_agent, Backend, TestApp, TestDatabase};
use rocket::http::{ContentType, Status};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a brand new passphrase";
const LAPTOP: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

backend_tests!(
    an_accounts_events_are_recorded_with_address_and_device_newest_first,
    a_failed_sign_in_is_recorded_for_the_account_or_for_the_name_typed,
    a_block_is_recorded_once_and_the_refusals_it_causes_write_nothing,
    refusals_record_no_change,
    a_change_whose_event_cannot_be_written_does_not_happen,
    the_profile_route_records_nothing,
    a_user_sees_their_own_last_fifty_and_nobody_elses,
    the_activity_page_lists_them_for_the_signed_in_user,
    the_purge_keeps_events_for_event_retention_days,
    email_changes_and_an_apps_consent_ending_are_recorded,
);

/// The kinds of the holder of `token`'s events, newest first.
async fn kinds(app: &TestApp, token: &str) -> Vec<String> {
    events(app, token).await.iter().map(|event| event["kind"].as_str().unwrap().to_owned()).collect()
}

async fn events(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app.client.get("/auth/events").header(bearer(token)).dispatch().await;
    expect(response, Status::Ok).await.as_array().expect("an array").clone()
}

async fn an_accounts_events_are_recorded_with_address_and_device_newest_first(app: TestApp) {
    app.registered("ev-alice", PASSWORD).await;
    let laptop = app.sign_in_as("ev-alice", PASSWORD, LAPTOP).await;
    let phone = app.sign_in_as("ev-alice", PASSWORD, "PhoneApp/1.0").await;
    // A session revoked from the list, a refresh token reused, the password changed (which
    // ends the other sessions), two-step sign-in on and off, new recovery codes.
    let phone_session = app.session_id(&phone.access).await;
    let revoked = app
        .client
        .delete(format!("/auth/sessions/{phone_session}"))
        .header(bearer(&laptop.access))
        .header(user_agent(LAPTOP));
    assert_eq!(revoked.dispatch().await.status(), Status::NoContent);
    let spare = app.sign_in_as("ev-alice", PASSWORD, "Spare/1.0").await;
    expect(app.refresh(&spare.refresh).await, Status::Ok).await;
    // Past the grace window of the first use: a copy in the wrong hands.
    app.execute(&["UPDATE refresh_tokens SET used_at = used_at - 3600".to_owned()]).await;
    problem(app.refresh(&spare.refresh).await, Status::Unauthorized).await;
    let changed = app
        .post_json_as(
            "/auth/password",
            &laptop.access,
            json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(changed.status(), Status::NoContent);
    let (secret, _) = app.turn_on_totp(&laptop.access, NEW_PASSWORD).await;
    let renewed =
        app.post_json_as("/auth/recovery-codes", &laptop.access, json!({ "password": NEW_PASSWORD })).await;
    expect(renewed, Status::Ok).await;
    let code = common::totp_code(&secret, common::now() + 30);
    let off = app
        .client
        .delete("/auth/totp")
        .header(bearer(&laptop.access))
        .header(ContentType::JSON)
        .body(json!({ "password": NEW_PASSWORD, "code": code }).to_string());
    assert_eq!(off.dispatch().await.status(), Status::NoContent);
    assert_eq!(
        kinds(&app, &laptop.access).await,
        [
            "second_factor.removed",
            "recovery_codes.renewed",
            "second_factor.added",
            "password.changed",
            "refresh_token.reused",
            "sign_in.succeeded",
            "session.revoked",
            "sign_in.succeeded",
            "sign_in.succeeded",
            "account.created",
        ],
    );
    let events = events(&app, &laptop.access).await;
    let laptop_sign_in = &events[events.len() - 2];
    assert_eq!(laptop_sign_in["description"], "Signed in");
    assert_eq!(laptop_sign_in["address"], "127.0.0.1");
    assert_eq!(laptop_sign_in["device"], "Firefox on Linux");
    assert_eq!(laptop_sign_in["user_agent"], LAPTOP);
    assert_eq!(laptop_sign_in["detail"]["methods"], "password");
    assert!(common::is_rfc3339(laptop_sign_in["at"].as_str().unwrap()));
    let revoked = &events[events.len() - 4];
    assert_eq!(revoked["detail"], json!({ "which": "one", "sessions": 1 }));
    assert_eq!(revoked["device"], "Firefox on Linux", "revoked from the laptop");
    assert_eq!(events[4]["address"], "127.0.0.1", "where the copy came from");

    // Signing out, and deleting the account: recorded, the account's events kept for
    // administrators after it is gone.
    let response =
        app.client.post("/auth/logout?scope=others").header(bearer(&laptop.access)).dispatch().await;
    assert_eq!(response.status(), Status::NoContent);
    let later = app.sign_in("ev-alice", NEW_PASSWORD).await;
    let response = app.client.post("/auth/logout").header(bearer(&later.access)).dispatch().await;
    assert_eq!(response.status(), Status::NoContent);
    assert_eq!(kinds(&app, &laptop.access).await[..2], ["session.signed_out", "sign_in.succeeded"]);
    let response = app
        .client
        .delete("/auth/account")
        .header(bearer(&laptop.access))
        .header(ContentType::JSON)
        .body(json!({ "password": NEW_PASSWORD }).to_string())
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NoContent);
    let deleted = app
        .count(
            "SELECT COUNT(*) FROM security_events WHERE kind = 'account.deleted' AND username = 'ev-alice'",
        )
        .await;
    assert_eq!(deleted, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM security_events WHERE username = 'ev-alice'").await, 13);
}

async fn a_failed_sign_in_is_recorded_for_the_account_or_for_the_name_typed(app: TestApp) {
    app.registered("ev-bob", PASSWORD).await;
    problem(app.login("ev-bob", "not the password").await, Status::Unauthorized).await;
    problem(app.login("ev-nobody", "not the password").await, Status::Unauthorized).await;
    let bob = app.sign_in("ev-bob", PASSWORD).await;
    let events = events(&app, &bob.access).await;
    assert_eq!(events[1]["kind"], "sign_in.failed");
    assert_eq!(events[1]["description"], "Failed sign-in");
    assert_eq!(events[1]["detail"]["step"], "password");
    assert_eq!(events[1]["address"], "127.0.0.1");
    // The unknown name: recorded (for administrators), tied to no account.
    let unknown = app
        .count(
            "SELECT COUNT(*) FROM security_events \
             WHERE kind = 'sign_in.failed' AND username = 'ev-nobody' AND user_id IS NULL",
        )
        .await;
    assert_eq!(unknown, 1);
    // A wrong second-factor code, too.
    let (secret, _) = app.turn_on_totp(&bob.access, PASSWORD).await;
    let asked = problem(app.login("ev-bob", PASSWORD).await, Status::Forbidden).await;
    let wrong = if common::totp_code(&secret, common::now()) == "000000" { "111111" } else { "000000" };
    let body = json!({ "mfa_token": asked["mfa_token"], "code": wrong });
    problem(app.post_json("/auth/login/second-factor", body).await, Status::Unauthorized).await;
    let failed = &events_of(&app, &bob.access, "sign_in.failed").await[0];
    assert_eq!(failed["detail"]["step"], "second factor");
}

async fn events_of(app: &TestApp, token: &str, kind: &str) -> Vec<Value> {
    events(app, token).await.into_iter().filter(|event| event["kind"] == kind).collect()
}

async fn a_block_is_recorded_once_and_the_refusals_it_causes_write_nothing(app: TestApp) {
    app.registered("ev-carol", PASSWORD).await;
    // Five wrong passwords block the pair (the default limit).
    for _ in 0..5 {
        problem(app.login("ev-carol", "not the password").await, Status::Unauthorized).await;
    }
    let recorded = app.count("SELECT COUNT(*) FROM security_events").await;
    for _ in 0..3 {
        problem(app.login("ev-carol", "not the password").await, Status::TooManyRequests).await;
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM security_events").await, recorded, "refusals write nothing");
    let blocks = app
        .count(
            "SELECT COUNT(*) FROM security_events WHERE kind = 'sign_in.throttled' AND username = 'ev-carol'",
        )
        .await;
    assert_eq!(blocks, 1);
    // From another address the account signs in, and sees why the first was held back.
    let elsewhere = app
        .client
        .post("/auth/login")
        .remote("198.51.100.7:4000".parse().unwrap())
        .header(ContentType::JSON)
        .body(json!({ "username": "ev-carol", "password": PASSWORD }).to_string())
        .dispatch()
        .await;
    let carol = common::Tokens::of(&expect(elsewhere, Status::Ok).await);
    let throttled = &events_of(&app, &carol.access, "sign_in.throttled").await[0];
    assert_eq!(throttled["address"], "127.0.0.1");
    assert_eq!(throttled["detail"]["scope"], "this name from this address");
    assert!(throttled["detail"]["until"].as_i64().unwrap() > common::now());
    assert_eq!(events(&app, &carol.access).await[0]["address"], "198.51.100.7");
}

async fn refusals_record_no_change(app: TestApp) {
    app.registered("ev-dave", PASSWORD).await;
    let dave = app.sign_in("ev-dave", PASSWORD).await;
    let before = app.count("SELECT COUNT(*) FROM security_events").await;
    // An unknown session, a bad new password, an app never allowed, a used email link.
    let unknown =
        app.client.delete(format!("/auth/sessions/{}", "x".repeat(43))).header(bearer(&dave.access));
    problem(unknown.dispatch().await, Status::NotFound).await;
    let weak = json!({ "current_password": PASSWORD, "new_password": "ev-dave" });
    problem(app.post_json_as("/auth/password", &dave.access, weak).await, Status::UnprocessableEntity).await;
    let app_never = app.client.delete("/auth/apps/no-such-app").header(bearer(&dave.access));
    problem(app_never.dispatch().await, Status::NotFound).await;
    let link = app.post_json("/auth/email/confirm", json!({ "token": "x".repeat(43) })).await;
    assert!(link.status().class().is_client_error());
    assert_eq!(app.count("SELECT COUNT(*) FROM security_events").await, before);
    // A wrong current password is a failure (recorded as one), never a change.
    let wrong = json!({ "current_password": "not the password", "new_password": NEW_PASSWORD });
    problem(app.post_json_as("/auth/password", &dave.access, wrong).await, Status::Forbidden).await;
    assert_eq!(kinds(&app, &dave.access).await[0], "sign_in.failed");
    assert_eq!(app.count("SELECT COUNT(*) FROM security_events WHERE kind = 'password.changed'").await, 0);
}

async fn a_change_whose_event_cannot_be_written_does_not_happen(app: TestApp) {
    app.registered("ev-erin", PASSWORD).await;
    let erin = app.sign_in("ev-erin", PASSWORD).await;
    let sessions = app.count("SELECT COUNT(*) FROM sessions").await;
    // The log cannot be written: sign-ins and password changes fail whole (500), changing
    // nothing; the data stays as it was.
    app.execute(&["ALTER TABLE security_events RENAME TO security_events_away".to_owned()]).await;
    problem(app.login("ev-erin", PASSWORD).await, Status::InternalServerError).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, sessions, "no session without its event");
    let change = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
    problem(app.post_json_as("/auth/password", &erin.access, change).await, Status::InternalServerError)
        .await;
    app.execute(&["ALTER TABLE security_events_away RENAME TO security_events".to_owned()]).await;
    expect(app.login("ev-erin", PASSWORD).await, Status::Ok).await;
    problem(app.login("ev-erin", NEW_PASSWORD).await, Status::Unauthorized).await;
}

async fn the_profile_route_records_nothing(app: TestApp) {
    app.registered("ev-frank", PASSWORD).await;
    let frank = app.sign_in("ev-frank", PASSWORD).await;
    let before = app.count("SELECT COUNT(*) FROM security_events").await;
    for _ in 0..20 {
        expect(app.profile(&frank.access).await, Status::Ok).await;
    }
    expect(app.client.get("/auth/sessions").header(bearer(&frank.access)).dispatch().await, Status::Ok).await;
    events(&app, &frank.access).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM security_events").await, before);
}

async fn a_user_sees_their_own_last_fifty_and_nobody_elses(app: TestApp) {
    app.registered("ev-gina", PASSWORD).await;
    app.registered("ev-hank", PASSWORD).await;
    let hank = app.sign_in("ev-hank", PASSWORD).await;
    let statements: Vec<String> = (0..60)
        .map(|n| {
            let at = common::now() - 1000 + n;
            format!(
                "INSERT INTO security_events (at, kind, user_id, username, address, user_agent, detail) \
                 SELECT {at}, 'sign_in.succeeded', id, username, '192.0.2.1', 'Old/1.0', '{{}}' \
                 FROM users WHERE username = 'ev-gina'"
            )
        })
        .collect();
    app.execute(&statements).await;
    let gina = app.sign_in("ev-gina", PASSWORD).await;
    let seen = events(&app, &gina.access).await;
    assert_eq!(seen.len(), 50);
    assert_eq!(seen[0]["address"], "127.0.0.1", "the newest first");
    assert!(seen.iter().all(|event| event["kind"] != "account.created"), "only the last 50");
    let hanks = events(&app, &hank.access).await;
    assert_eq!(hanks.len(), 2, "account.created and one sign-in: {hanks:?}");
    assert!(hanks.iter().all(|event| event["address"] == "127.0.0.1"));
    problem(app.client.get("/auth/events").dispatch().await, Status::Unauthorized).await;
}

async fn the_activity_page_lists_them_for_the_signed_in_user(app: TestApp) {
    let response = app.client.get("/account/activity").dispatch().await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/login?next=%2Faccount%2Factivity"));
    app.registered("ev-ivy", PASSWORD).await;
    problem(app.login("ev-ivy", "not the password").await, Status::Unauthorized).await;
    sign_in_on_the_page(&app, "ev-ivy", PASSWORD, LAPTOP).await;
    let (status, html) = get_page(&app, "/account/activity").await;
    assert_eq!(status, Status::Ok);
    let items: Vec<&str> = html.split("<li class=\"session").skip(1).collect();
    assert_eq!(items.len(), 3, "{html}");
    assert!(items[0].contains("data-kind=\"sign_in.succeeded\"") && items[0].contains("Signed in"));
    assert!(items[0].contains("Firefox on Linux") && items[0].contains("127.0.0.1"), "{}", items[0]);
    assert!(items[1].contains("session--alarming") && items[1].contains("Failed sign-in"), "{}", items[1]);
    assert!(items[2].contains("Account created"));
    let (_, profile) = get_page(&app, "/profile").await;
    assert!(profile.contains("href=\"/account/activity\""), "the profile links to it");
}

async fn the_purge_keeps_events_for_event_retention_days(app: TestApp) {
    app.registered("ev-jack", PASSWORD).await;
    app.sign_in("ev-jack", PASSWORD).await;
    let (day, now) = (86_400, common::now());
    let store = app.store();
    miniauth::store::purge::purge_ended(&store, now + 89 * day, (7 * day, 90 * day)).await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM security_events").await, 2);
    miniauth::store::purge::purge_ended(&store, now + 91 * day, (7 * day, 90 * day)).await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM security_events").await, 0);
}

async fn email_changes_and_an_apps_consent_ending_are_recorded(app: TestApp) {
    app.registered("ev-nina", PASSWORD).await;
    let nina = app.sign_in("ev-nina", PASSWORD).await;
    let set = app
        .client
        .put("/auth/email")
        .header(bearer(&nina.access))
        .header(ContentType::JSON)
        .body(json!({ "email": "nina@example.com" }).to_string())
        .dispatch()
        .await;
    assert_eq!(set.status(), Status::Accepted);
    assert_eq!(
        app.client.delete("/auth/email").header(bearer(&nina.access)).dispatch().await.status(),
        Status::NoContent
    );
    // Removing an address the account no longer has changes nothing, and records nothing.
    assert_eq!(
        app.client.delete("/auth/email").header(bearer(&nina.access)).dispatch().await.status(),
        Status::NoContent
    );
    // An app the user allowed, then disconnected.
    let new = miniauth::auth::oidc::NewClient {
        name: "Photos",
        redirect_uris: &["https://photos.example.com/callback".to_owned()],
        logout_uris: &[],
        public: false,
        id_token_alg: miniauth::auth::SigningAlgorithm::RS256,
    };
    let registered =
        miniauth::auth::oidc::register(&app.store(), new, miniauth::store::Event::command("client create"))
            .await
            .unwrap();
    let client_id = registered.client.id;
    let user_id = app.count("SELECT id FROM users WHERE username = 'ev-nina'").await;
    let consent =
        miniauth::store::Event::new(miniauth::store::EventKind::AppConsentGranted, String::new(), "")
            .of(user_id, "ev-nina");
    miniauth::store::oauth::consent_to(&app.store(), user_id, &client_id, ("openid", common::now()), consent)
        .await
        .unwrap();
    let revoked =
        app.client.delete(format!("/auth/apps/{client_id}")).header(bearer(&nina.access)).dispatch().await;
    assert_eq!(revoked.status(), Status::NoContent);
    let events = events(&app, &nina.access).await;
    let kinds: Vec<&str> = events.iter().map(|event| event["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[..4], ["app.consent_revoked", "app.consent_granted", "email.removed", "email.changed"]);
    assert_eq!(events[0]["detail"]["client_id"], client_id.as_str());
    assert!(!events[3].to_string().contains("nina@example.com"), "the address stays out of the log");
}

/// A server, its command line and `event_log = "stdout"`, on each backend.
fn a_shipper_and_an_administrator_read_them(backend: Backend) {
    let database = (backend == Backend::Postgres).then(|| TestDatabase::create(backend));
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![("ROCKET_BCRYPT_COST", "4"), ("ROCKET_EVENT_LOG", "stdout")];
    if let Some(database) = &database {
        env.push(database.env());
    }
    let server = Server::start(dir.path(), &env);
    let register = json!({ "username": "ev-kate", "password": PASSWORD }).to_string();
    assert_eq!(server.request("POST", "/auth/register", &[JSON], &register).0, 201);
    let wrong = json!({ "username": "ev-kate", "password": "not it" }).to_string();
    assert_eq!(server.request("POST", "/auth/login", &[JSON, ("User-Agent", "curl/8.0")], &wrong).0, 401);
    assert_eq!(server.request("POST", "/auth/login", &[JSON], &register).0, 200);
    server.admin(&["group", "create", "staff"]);
    server.admin(&["group", "add", "staff", "ev-kate"]);

    // The administrator: oldest first; by name; since a while; their own commands included.
    let all: Value = serde_json::from_str(&server.admin(&["events", "--json"])).unwrap();
    let kinds: Vec<&str> = all.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["account.created", "sign_in.failed", "sign_in.succeeded", "admin.command", "admin.command"]
    );
    assert_eq!(all[1]["user_agent"], "curl/8.0");
    assert_eq!(all[3]["detail"]["command"], "group create");
    assert_eq!(all[3]["device"], "miniauth command line");
    assert_eq!(all[4]["username"], "ev-kate");
    let kates: Value =
        serde_json::from_str(&server.admin(&["events", "--user", "EV-KATE", "--json"])).unwrap();
    assert_eq!(kates.as_array().unwrap().len(), 4, "group create is about no account");
    let recent: Value = serde_json::from_str(&server.admin(&["events", "--since", "1h", "--json"])).unwrap();
    assert_eq!(recent.as_array().unwrap().len(), 5);
    let table = server.admin(&["events", "--user", "ev-kate"]);
    assert!(table.starts_with("AT") && table.contains("sign_in.failed"), "{table}");
    assert_eq!(server.admin(&["events", "--user", "nobody-here"]), "(none)\n");

    // The shipper: one JSON line each on the server's standard output, as they happened.
    let log = server.stop();
    let lines: Vec<Value> = log.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let shipped: Vec<&str> = lines.iter().map(|line| line["kind"].as_str().unwrap()).collect();
    assert_eq!(shipped, ["account.created", "sign_in.failed", "sign_in.succeeded"], "{log}");
    assert_eq!(lines[1]["username"], "ev-kate");
    assert_eq!(lines[1]["address"], "127.0.0.1");
    assert_eq!(lines[1]["detail"]["step"], "password");
    assert!(common::is_rfc3339(lines[1]["at"].as_str().unwrap()));
    assert!(!log.contains(PASSWORD) && !log.contains("not it"), "never a password");
}

#[test]
fn a_shipper_and_an_administrator_read_them_on_sqlite() {
    a_shipper_and_an_administrator_read_them(Backend::Sqlite);
}

needs_postgres! {
    #[test]
    fn a_shipper_and_an_administrator_read_them_on_postgres() {
        a_shipper_and_an_administrator_read_them(Backend::Postgres);
    }
}

#[test]
fn without_event_log_nothing_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("ROCKET_BCRYPT_COST", "4")]);
    let register = json!({ "username": "ev-liam", "password": PASSWORD }).to_string();
    assert_eq!(server.request("POST", "/auth/register", &[JSON], &register).0, 201);
    let log = server.stop();
    assert!(!log.contains("account.created"), "{log}");
}

#[rocket::async_test]
async fn a_user_agent_is_kept_as_sent_and_named() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app
        .client
        .post("/auth/register")
        .header(ContentType::JSON)
        .header(user_agent(LAPTOP))
        .body(json!({ "username": "ev-mia", "password": PASSWORD }).to_string())
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Created);
    let mia = app.sign_in("ev-mia", PASSWORD).await;
    let created = &events(&app, &mia.access).await[1];
    assert_eq!(
        (created["kind"].as_str(), created["device"].as_str()),
        (Some("account.created"), Some("Firefox on Linux"))
    );
}
