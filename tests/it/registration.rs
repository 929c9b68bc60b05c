//! Who may come in: with `registration = "closed"` the sign-up page says so and has no form,
//! no page links to it, a sign-up through the page or the API is refused with `403` and
//! creates nothing, and the OpenAPI document says so; with open registration, forward auth
//! cannot be left to admit everyone signed in by default; the start names what a rule lists
//! that does not exist. (By invitation: `invitations.rs`.)

use crate::common;

use rocket::figment::Figment;
use rocket::http::Status;
use serde_json::{json, Value};

use common::browser::{csrf_from, get_page, post_form};
use common::server::Server;
use common::{problem, Backend, TestApp, TestDatabase};

const PASSWORD: &str = "quiet lantern trombone";
const CLOSED: &str = "Sign-up is closed on this server: ask its administrator for an account.";

fn closed(figment: Figment) -> Figment {
    figment.merge(("registration", "closed"))
}

backend_tests_with!(
    closed;
    a_closed_sign_up_page_says_so_and_nothing_links_to_it => sqlite_closed_page, postgres_closed_page,
    a_sign_up_is_refused_with_403_through_either_door_and_creates_nothing => sqlite_closed_refused, postgres_closed_refused,
    the_openapi_document_says_sign_up_is_closed => sqlite_closed_document, postgres_closed_document,
);

backend_tests_with!(
    |figment| figment;
    an_open_sign_up_page_has_its_form_and_the_pages_link_to_it => sqlite_open_page, postgres_open_page,
    the_openapi_document_describes_an_open_sign_up => sqlite_open_document, postgres_open_document,
);

async fn a_closed_sign_up_page_says_so_and_nothing_links_to_it(app: TestApp) {
    let (status, page) = get_page(&app, "/register").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Sign-up is closed"), "{page}");
    assert!(!page.contains("<form class=\"form\""), "no sign-up form: {page}");
    for uri in ["/", "/login", "/register", "/password-reset"] {
        let (status, page) = get_page(&app, uri).await;
        assert_eq!(status, Status::Ok, "{uri}");
        assert!(!page.contains("href=\"/register\""), "{uri} links to the closed sign-up: {page}");
    }
}

async fn a_sign_up_is_refused_with_403_through_either_door_and_creates_nothing(app: TestApp) {
    let refused = app.register("walkin", PASSWORD).await;
    let body = problem(refused, Status::Forbidden).await;
    assert_eq!(body["detail"], CLOSED);
    // The page's form, sent anyway (a form kept open from before, or written by hand).
    let csrf = csrf_from(&app, "/login").await;
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("username", "walkin"),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
    ];
    let response = post_form(&app, "/register", &fields).await;
    assert_eq!(response.status(), Status::Forbidden);
    let page = response.into_string().await.unwrap_or_default();
    assert!(page.contains("ask its administrator for an account"), "{page}");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(app.login("walkin", PASSWORD).await.status(), Status::Unauthorized);
}

async fn the_openapi_document_says_sign_up_is_closed(app: TestApp) {
    let register = register_operation(&app).await;
    let responses = register["responses"].as_object().unwrap();
    assert!(responses.contains_key("403"), "{register}");
    for gone in ["201", "409", "429", "503"] {
        assert!(!responses.contains_key(gone), "{gone} stays in a closed sign-up: {register}");
    }
    assert!(register["description"].as_str().unwrap_or_default().contains("closed"), "{register}");
    // The body's refusals read as they do for any body: its fields are never checked.
    assert_eq!(responses["422"]["description"], "Missing fields, or fields of the wrong type", "{register}");
}

async fn an_open_sign_up_page_has_its_form_and_the_pages_link_to_it(app: TestApp) {
    let (status, page) = get_page(&app, "/register").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("action=\"/register\""), "{page}");
    for uri in ["/", "/login"] {
        let (_, page) = get_page(&app, uri).await;
        assert!(page.contains("href=\"/register\""), "{uri} has no link to sign up: {page}");
    }
}

async fn the_openapi_document_describes_an_open_sign_up(app: TestApp) {
    let register = register_operation(&app).await;
    let responses = register["responses"].as_object().unwrap();
    assert!(responses.contains_key("201") && responses.contains_key("409"), "{register}");
    // Only an invitation given that cannot be used is refused.
    assert!(
        responses["403"]["description"].as_str().unwrap_or_default().contains("invitation"),
        "{register}"
    );
    assert!(!register["description"].as_str().unwrap_or_default().contains("closed"), "{register}");
}

async fn register_operation(app: &TestApp) -> Value {
    let response = app.client.get("/openapi.json").dispatch().await;
    let document: Value = serde_json::from_str(&response.into_string().await.unwrap()).unwrap();
    document["paths"]["/auth/register"]["post"].clone()
}

/// The settings with these protected domains, host rules and registration.
fn settings(domains: &[&str], hosts: Value, registration: &str) -> Result<(), String> {
    let written = miniauth::config::Written {
        public_url: "https://auth.example.com".into(),
        forward_auth_domains: domains.iter().map(|domain| domain.to_string()).collect(),
        forward_auth: serde_json::from_value(json!({ "hosts": hosts })).unwrap(),
        registration: registration.into(),
        ..Default::default()
    };
    miniauth::config::Settings::parse(written).map(drop)
}

#[test]
fn with_open_registration_every_protected_domain_needs_a_rule() {
    let refused = settings(&["example.com"], json!({}), "open").unwrap_err();
    let ways_out = [
        "example.com",
        "users = [...]",
        "groups = [...]",
        "any_signed_in = true",
        "registration = \"invite\" or \"closed\"",
    ];
    for way_out in ways_out {
        assert!(refused.contains(way_out), "the line does not name {way_out}: {refused}");
    }
    // A rule on one host below leaves the others to everyone signed in.
    let refused = settings(&["example.com"], json!({"wiki.example.com": {"users": ["alice"]}}), "open");
    assert!(refused.is_err_and(|e| e.contains("example.com has no rule")));
    let refused = settings(&["apps.test", "example.com"], json!({"apps.test": {"users": ["alice"]}}), "open");
    assert!(refused.is_err_and(|e| e.contains("example.com") && !e.contains("apps.test")));
    for hosts in [
        json!({"example.com": {"users": ["alice"]}}),
        json!({"example.com": {"groups": ["family"]}}),
        json!({"example.com": {"any_signed_in": true}}),
    ] {
        assert_eq!(settings(&["example.com"], hosts.clone(), "open"), Ok(()), "{hosts}");
    }
    // Without open registration, a host without a rule admits everyone signed in, as before.
    assert_eq!(settings(&["example.com"], json!({}), "closed"), Ok(()));
    assert_eq!(settings(&["example.com"], json!({}), "invite"), Ok(()));
    assert_eq!(settings(&[], json!({}), "open"), Ok(()), "no forward auth, nothing to rule");
}

#[test]
fn a_rule_takes_users_and_groups_or_any_signed_in_and_registration_is_open_invite_or_closed() {
    for both in [
        json!({"example.com": {"users": ["alice"], "any_signed_in": true}}),
        json!({"example.com": {"groups": ["family"], "any_signed_in": true}}),
    ] {
        assert!(settings(&["example.com"], both, "closed").is_err_and(|e| e.contains("any_signed_in")));
    }
    let bad_group = json!({"example.com": {"groups": ["the family"]}});
    assert!(settings(&["example.com"], bad_group, "closed").is_err_and(|e| e.contains(".groups")));
    for registration in ["Invite", "invited", "Closed", ""] {
        let refused = settings(&[], json!({}), registration);
        assert!(refused.is_err_and(|e| e.contains("registration must be")), "{registration:?}");
    }
}

/// The real binary refuses to start with one line and writes nothing.
#[test]
fn an_open_instance_protecting_a_domain_without_a_rule_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_miniauth"));
    let env = [("ROCKET_FORWARD_AUTH_DOMAINS", r#"["example.com"]"#)];
    let (status, log) = Server::run_to_exit(binary, dir.path(), &env);
    assert_eq!(status, Some(1), "{log}");
    assert!(log.contains("forward auth would let anyone in"), "{log}");
    assert_eq!(log.matches("would let anyone in").count(), 1, "{log}");
    assert!(!dir.path().join("data").exists(), "a refused start wrote files");
}

/// While registration is open or by invitation, a name a rule lists but nobody has taken is
/// anyone's (an invitee picks their own): the start says so for each such name, and not for an
/// account that exists, nor when sign-up is closed.
#[test]
fn a_listed_name_without_an_account_is_named_at_start_on_sqlite() {
    a_listed_name_without_an_account_is_named_at_start_while_registration_is_open(Backend::Sqlite);
}

needs_postgres! {
    #[test]
    fn a_listed_name_without_an_account_is_named_at_start_on_postgres() {
        a_listed_name_without_an_account_is_named_at_start_while_registration_is_open(Backend::Postgres);
    }
}

fn a_listed_name_without_an_account_is_named_at_start_while_registration_is_open(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(backend);
    let mut env = vec![
        database.env(),
        ("ROCKET_BCRYPT_COST", "4"),
        ("ROCKET_FORWARD_AUTH_DOMAINS", r#"["127.0.0.1"]"#),
        ("ROCKET_FORWARD_AUTH", r#"{hosts={"127.0.0.1"={users=["Alice","bob"]}}}"#),
    ];
    let server = Server::start(dir.path(), &env);
    let alice = json!({ "username": "alice", "password": PASSWORD }).to_string();
    let (status, _, _) = server.request("POST", "/auth/register", &[common::server::JSON], &alice);
    assert_eq!(status, 201);
    let first = server.stop();
    assert!(first.contains("admits alice, who has no account yet"), "{first}");

    let log = Server::start(dir.path(), &env).stop();
    assert!(log.contains("admits bob, who has no account yet"), "{log}");
    assert!(log.contains("miniauth user create bob"), "{log}");
    assert!(!log.contains("admits alice"), "alice has an account now: {log}");

    // By invitation, an invitee picks their own name: the same gap.
    env.push(("ROCKET_REGISTRATION", "invite"));
    let log = Server::start(dir.path(), &env).stop();
    assert!(log.contains("admits bob, who has no account yet"), "{log}");
    assert!(log.contains("an invitee picks their own name"), "{log}");

    env.pop();
    env.push(("ROCKET_REGISTRATION", "closed"));
    let log = Server::start(dir.path(), &env).stop();
    assert!(!log.contains("who has no account yet"), "nobody can sign up: {log}");
}

/// A rule naming a group that does not exist admits nobody through it: the start says so, in any
/// registration mode, until the group exists.
#[test]
fn a_rule_naming_a_missing_group_is_named_at_start_on_sqlite() {
    a_rule_naming_a_missing_group_is_named_at_start(Backend::Sqlite);
}

needs_postgres! {
    #[test]
    fn a_rule_naming_a_missing_group_is_named_at_start_on_postgres() {
        a_rule_naming_a_missing_group_is_named_at_start(Backend::Postgres);
    }
}

fn a_rule_naming_a_missing_group_is_named_at_start(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(backend);
    let env = [
        database.env(),
        ("ROCKET_REGISTRATION", "invite"),
        ("ROCKET_FORWARD_AUTH_DOMAINS", r#"["127.0.0.1"]"#),
        ("ROCKET_FORWARD_AUTH", r#"{hosts={"127.0.0.1"={groups=["Family"]}}}"#),
    ];
    let server = Server::start(dir.path(), &env);
    server.admin(&["group", "create", "family"]);
    let first = server.stop();
    assert!(first.contains("admits the group family, which does not exist"), "{first}");
    assert!(first.contains("miniauth group create family"), "{first}");
    let log = Server::start(dir.path(), &env).stop();
    assert!(!log.contains("which does not exist"), "the group exists now: {log}");
}
