//! Several instances, one service: two copies of the real binary on one PostgreSQL
//! database, with no secret in their environment (keys and secrets live in the database). A token from one works on the other, and a revocation,
//! password change or deletion made through one is honoured by the other on the very next
//! request. Refresh tokens rotate across instances, and reuse is caught whichever instance
//! sees it.

use crate::common;

use std::time::Duration;

use common::server::{Server, JSON};
use common::{Backend, TestDatabase};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse";
const NEW_PASSWORD: &str = "battery staple";

/// The environment of every instance: the shared database, and `extra`.
fn environment<'a>(database: &'a TestDatabase, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![database.env()];
    env.extend_from_slice(extra);
    env
}

/// Two instances, each in a folder of its own, started one after the other.
struct Pair {
    a: Server,
    b: Server,
    // Held until the servers stop.
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Pair {
    fn start(database: &TestDatabase, extra: &[(&str, &str)]) -> Pair {
        let env = environment(database, extra);
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Server::start(dir_a.path(), &env);
        let b = Server::start(dir_b.path(), &env);
        assert_ne!(a.port, b.port);
        Pair { a, b, _dirs: (dir_a, dir_b) }
    }
}

/// One request; returns the status and the JSON body (`Null` when there is none).
fn call(server: &Server, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![JSON];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, _, body) = server.request(method, path, &headers, &body);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn profile(server: &Server, token: &str) -> u16 {
    call(server, "GET", "/auth/profile", Some(token), None).0
}

fn register(server: &Server, username: &str, password: &str) {
    let (status, body) = call(
        server,
        "POST",
        "/auth/register",
        None,
        Some(json!({ "username": username, "password": password })),
    );
    assert_eq!(status, 201, "{body}");
}

/// Signs in; returns the access token and the refresh token.
fn sign_in(server: &Server, username: &str, password: &str) -> (String, String) {
    let (status, body) = call(
        server,
        "POST",
        "/auth/login",
        None,
        Some(json!({ "username": username, "password": password })),
    );
    assert_eq!(status, 200, "{body}");
    (body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned())
}

fn login_status(server: &Server, username: &str, password: &str) -> u16 {
    call(server, "POST", "/auth/login", None, Some(json!({ "username": username, "password": password }))).0
}

/// Exchanges a refresh token; returns the status and the new tokens when it worked.
fn refresh(server: &Server, refresh_token: &str) -> (u16, Option<(String, String)>) {
    let (status, body) =
        call(server, "POST", "/auth/refresh", None, Some(json!({ "refresh_token": refresh_token })));
    let tokens = match (body["access_token"].as_str(), body["refresh_token"].as_str()) {
        (Some(access), Some(refresh)) => Some((access.to_owned(), refresh.to_owned())),
        _ => None,
    };
    (status, tokens)
}

/// The id of the token's session, as the session list shows it.
fn session_id(server: &Server, token: &str) -> String {
    let (status, body) = call(server, "GET", "/auth/sessions", Some(token), None);
    assert_eq!(status, 200, "{body}");
    let current: Vec<&Value> = body.as_array().unwrap().iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{body}");
    current[0]["id"].as_str().unwrap().to_owned()
}

needs_postgres! {
    #[test]
    fn a_session_revoked_through_one_instance_is_refused_by_the_other_at_once() {
        let database = TestDatabase::create(Backend::Postgres);
        let Pair { a, b, .. } = &Pair::start(&database, &[]);
        register(a, "alice", PASSWORD);
        let (t1, _) = sign_in(a, "alice", PASSWORD);
        let (t2, _) = sign_in(a, "alice", PASSWORD);
        // Tokens made by A work on B: one secret, one database.
        assert_eq!(profile(b, &t1), 200);
        assert_eq!(profile(b, &t2), 200);
        assert_eq!(profile(a, &t2), 200, "A has just checked t2's session");

        // t2's session revoked through B, by the user's other session.
        let t2_session = session_id(b, &t2);
        let (status, body) = call(b, "DELETE", &format!("/auth/sessions/{t2_session}"), Some(&t1), None);
        assert_eq!(status, 204, "{body}");
        assert_eq!(profile(a, &t2), 401, "A still accepts a session revoked through B");
        assert_eq!(profile(b, &t2), 401);
        assert_eq!(profile(a, &t1), 200);

        // A logout on A ends a session B had just accepted.
        let (t4, _) = sign_in(b, "alice", PASSWORD);
        assert_eq!(profile(b, &t4), 200);
        assert_eq!(call(a, "POST", "/auth/logout", Some(&t4), None).0, 204);
        assert_eq!(profile(b, &t4), 401, "B still accepts a session signed out on A");
        assert_eq!(profile(b, &t1), 200);
    }
}

needs_postgres! {
    #[test]
    fn a_password_changed_through_one_instance_signs_out_the_other_sessions_on_the_other() {
        let database = TestDatabase::create(Backend::Postgres);
        let Pair { a, b, .. } = &Pair::start(&database, &[]);
        register(a, "alice", PASSWORD);
        let (t1, _) = sign_in(a, "alice", PASSWORD);
        let (t3, r3) = sign_in(a, "alice", PASSWORD);
        assert_eq!(profile(a, &t3), 200);

        let change = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
        let (status, body) = call(b, "POST", "/auth/password", Some(&t1), Some(change));
        assert_eq!(status, 204, "{body}");
        assert_eq!(profile(a, &t3), 401, "A still accepts a session the password change on B ended");
        assert_eq!(refresh(a, &r3).0, 401, "A still renews a session the password change on B ended");
        assert_eq!(profile(a, &t1), 200, "the session that changed the password stays");
        assert_eq!(login_status(a, "alice", PASSWORD), 401, "A still takes the old password");
        assert_eq!(login_status(a, "alice", NEW_PASSWORD), 200);
    }
}

needs_postgres! {
    #[test]
    fn an_account_deleted_through_one_instance_is_gone_on_the_other_at_once() {
        let database = TestDatabase::create(Backend::Postgres);
        let Pair { a, b, .. } = &Pair::start(&database, &[]);
        register(a, "alice", PASSWORD);
        let (t1, r1) = sign_in(a, "alice", PASSWORD);
        let (t2, _) = sign_in(b, "alice", PASSWORD);
        assert_eq!(profile(b, &t1), 200);
        assert_eq!(profile(b, &t2), 200);

        let (status, body) =
            call(a, "DELETE", "/auth/account", Some(&t1), Some(json!({ "password": PASSWORD })));
        assert_eq!(status, 204, "{body}");
        assert_eq!(profile(b, &t1), 401, "B still accepts the token of a user deleted through A");
        assert_eq!(profile(b, &t2), 401, "B still accepts its own session of a user deleted through A");
        assert_eq!(refresh(b, &r1).0, 401);
        assert_eq!(login_status(b, "alice", PASSWORD), 401);
        // The name is free on every instance.
        register(b, "alice", NEW_PASSWORD);
    }
}

needs_postgres! {
    #[test]
    fn the_whole_story_on_two_instances() {
        // The brief's sequence in one go: register on A; two sessions on A work on B; one revoked
        // through B is refused by A; a password change through B ends a third session on A;
        // deleting the account through A ends the last one on B.
        let database = TestDatabase::create(Backend::Postgres);
        let Pair { a, b, .. } = &Pair::start(&database, &[]);
        register(a, "alice", PASSWORD);
        let (t1, _) = sign_in(a, "alice", PASSWORD);
        let (t2, _) = sign_in(a, "alice", PASSWORD);
        let (t3, _) = sign_in(a, "alice", PASSWORD);
        for token in [&t1, &t2, &t3] {
            assert_eq!(profile(b, token), 200);
            assert_eq!(profile(a, token), 200);
        }
        let (status, _) =
            call(b, "DELETE", &format!("/auth/sessions/{}", session_id(b, &t2)), Some(&t1), None);
        assert_eq!(status, 204);
        assert_eq!(profile(a, &t2), 401);

        let change = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
        assert_eq!(call(b, "POST", "/auth/password", Some(&t1), Some(change)).0, 204);
        assert_eq!(profile(a, &t3), 401);
        assert_eq!(profile(a, &t1), 200);

        let deletion = json!({ "password": NEW_PASSWORD });
        assert_eq!(call(a, "DELETE", "/auth/account", Some(&t1), Some(deletion)).0, 204);
        assert_eq!(profile(b, &t1), 401);
    }
}

needs_postgres! {
    #[test]
    fn a_refresh_token_rotated_on_one_instance_is_reuse_on_the_other() {
        let database = TestDatabase::create(Backend::Postgres);
        // No grace: any later reuse of a rotated token counts as theft.
        let Pair { a, b, .. } = &Pair::start(&database, &[("ROCKET_REFRESH_GRACE", "0")]);
        register(a, "alice", PASSWORD);
        let (_, r1) = sign_in(a, "alice", PASSWORD);
        let (status, renewed) = refresh(a, &r1);
        assert_eq!(status, 200);
        let (t2, r2) = renewed.unwrap();
        // Rotation continues on the other instance.
        let (status, renewed) = refresh(b, &r2);
        assert_eq!(status, 200);
        let (t3, r3) = renewed.unwrap();
        assert_eq!(profile(a, &t3), 200);
        assert_eq!(profile(b, &t2), 200);

        // The check is in whole seconds: let more than one go by, then replay the rotated token.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(refresh(a, &r2).0, 401, "A accepts a refresh token rotated on B");
        // The whole session is revoked, on both instances.
        assert_eq!(refresh(b, &r3).0, 401, "B renews a session A found stolen");
        assert_eq!(profile(b, &t3), 401);
        assert_eq!(profile(a, &t3), 401);
        assert_eq!(profile(b, &t2), 401);
    }
}

needs_postgres! {
    #[test]
    fn a_retry_with_a_just_rotated_refresh_token_on_the_other_instance_works_within_the_grace() {
        let database = TestDatabase::create(Backend::Postgres);
        // The default grace (10 s) covers a client that lost A's answer and retried on B.
        let Pair { a, b, .. } = &Pair::start(&database, &[]);
        register(a, "alice", PASSWORD);
        let (_, r1) = sign_in(a, "alice", PASSWORD);
        let (status, first) = refresh(a, &r1);
        assert_eq!(status, 200);
        let (status, retried) = refresh(b, &r1);
        assert_eq!(status, 200, "B takes a retry within the grace window for theft");
        let (t_first, _) = first.unwrap();
        let (t_retry, r_retry) = retried.unwrap();
        assert_eq!(profile(b, &t_first), 200);
        assert_eq!(profile(a, &t_retry), 200);
        assert_eq!(refresh(a, &r_retry).0, 200);
    }
}

needs_postgres! {
    #[test]
    fn two_instances_started_at_once_on_a_fresh_database_both_come_up_and_share_it() {
        let database = TestDatabase::create(Backend::Postgres);
        let env: Vec<(String, String)> =
            environment(&database, &[]).into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Both apply the migrations at the same moment.
        let (a, b) = std::thread::scope(|scope| {
            let start = |dir: &std::path::Path| {
                let dir = dir.to_owned();
                let env = env.clone();
                scope.spawn(move || {
                    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    Server::start(&dir, &env)
                })
            };
            let (a, b) = (start(dirs.0.path()), start(dirs.1.path()));
            (a.join().expect("instance A starts"), b.join().expect("instance B starts"))
        });
        register(&a, "alice", PASSWORD);
        let (token, _) = sign_in(&b, "alice", PASSWORD);
        assert_eq!(profile(&a, &token), 200);
        let taken = json!({ "username": "ALICE", "password": PASSWORD });
        assert_eq!(call(&b, "POST", "/auth/register", None, Some(taken)).0, 409);
    }
}

needs_postgres! {
    /// The throttle lives in the database: failures through one instance count through the
    /// other, and a block made through one holds on both.
    #[test]
    fn failed_sign_ins_through_one_instance_count_through_the_other() {
        let database = TestDatabase::create(Backend::Postgres);
        let Pair { a, b, .. } = &Pair::start(&database, &[]);
        register(a, "alice", PASSWORD);
        for server in [a, b, a, b] {
            assert_eq!(login_status(server, "alice", "wrong password"), 401);
        }
        // The fifth failure of (alice, this machine), through B, blocks the pair everywhere.
        assert_eq!(login_status(b, "Alice", "wrong password"), 401);
        assert_eq!(login_status(a, "alice", PASSWORD), 429);
        assert_eq!(login_status(b, "alice", PASSWORD), 429);
    }
}

needs_postgres! {
    /// A passkey ceremony begun on one instance finishes on the other: adding a passkey,
    /// signing in with it, and using it as the second step after a password.
    #[test]
    fn a_passkey_ceremony_begun_on_one_instance_finishes_on_the_other() {
        use common::authenticator::SoftPasskey;
        let database = TestDatabase::create(Backend::Postgres);
        // One service, one name: both instances are the relying party of that address.
        let origin = "http://localhost:8000";
        let pair = Pair::start(&database, &[("ROCKET_PUBLIC_URL", origin)]);
        register(&pair.a, "alice", PASSWORD);
        let (access, _) = sign_in(&pair.a, "alice", PASSWORD);
        let (status, started) = call(&pair.a, "POST", "/auth/passkeys/register/start", Some(&access), Some(json!({})));
        assert_eq!(status, 200, "{started}");
        let (answer, mut passkey) = SoftPasskey::register_at(&started["publicKey"], origin);
        let body = json!({ "ceremony": started["ceremony"], "name": "Laptop", "credential": answer });
        let (status, added) = call(&pair.b, "POST", "/auth/passkeys/register/finish", Some(&access), Some(body));
        assert_eq!(status, 201, "{added}");
        // Signing in: begun on B, finished on A, and not again on B.
        let (_, started) = call(&pair.b, "POST", "/auth/passkeys/login/start", None, Some(json!({})));
        passkey.counter += 1;
        let answer = passkey.assert(&started["publicKey"], origin, passkey.counter);
        let body = json!({ "ceremony": started["ceremony"], "credential": answer });
        let (status, tokens) = call(&pair.a, "POST", "/auth/passkeys/login/finish", None, Some(body.clone()));
        assert_eq!(status, 200, "{tokens}");
        assert_eq!(profile(&pair.b, tokens["access_token"].as_str().unwrap()), 200);
        assert_eq!(call(&pair.b, "POST", "/auth/passkeys/login/finish", None, Some(body)).0, 401, "spent");
        // The second step: the password on A, the passkey on B.
        let (status, step) =
            call(&pair.a, "POST", "/auth/login", None, Some(json!({ "username": "alice", "password": PASSWORD })));
        assert_eq!(status, 403, "{step}");
        passkey.counter += 1;
        let answer = passkey.assert(&step["publicKey"], origin, passkey.counter);
        let body = json!({ "mfa_token": step["mfa_token"], "ceremony": step["ceremony"], "credential": answer });
        let (status, done) = call(&pair.b, "POST", "/auth/login/second-factor", None, Some(body));
        assert_eq!(status, 200, "{done}");
    }
}

needs_postgres! {
    /// "Sign in with MiniAuth" across instances: an app registered from the command line is
    /// known to both; the consent page is shown by one and answered on the other; the code is
    /// exchanged on the first, the ID token verified with the other's key set, userinfo asked
    /// of either; the code presented again on the other is reuse, which revokes what it gave.
    #[test]
    fn an_openid_connect_flow_begun_on_one_instance_finishes_on_the_other() {
        use base64::Engine;
        use sha2::Digest;
        let database = TestDatabase::create(Backend::Postgres);
        // One service, one issuer.
        let issuer = "http://localhost:8000";
        let pair = Pair::start(&database, &[("ROCKET_PUBLIC_URL", issuer)]);
        let redirect = "https://app.example.com/cb";
        let client: Value =
            serde_json::from_str(&pair.a.admin(&["client", "create", "Wiki", "--redirect-uri", redirect, "--json"]))
                .unwrap();
        let (client_id, secret) = (client["client_id"].as_str().unwrap(), client["client_secret"].as_str().unwrap());
        register(&pair.a, "alice", PASSWORD);
        let (access, _) = sign_in(&pair.a, "alice", PASSWORD);
        let cookie = format!("{}={access}", miniauth::web::TOKEN_COOKIE);
        let verifier = "a".repeat(43);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let query = common::browser::form_body(&[
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "openid profile offline_access"),
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        // The consent page on B, answered on A.
        let (status, head, page) =
            pair.b.request("GET", &format!("/oauth/authorize?{query}"), &[("Cookie", &cookie)], "");
        assert_eq!(status, 200, "{page}");
        // The browser keeps the CSRF cookie the page set.
        let csrf_cookie = head
            .lines()
            .find_map(|line| line.to_ascii_lowercase().starts_with("set-cookie: miniauth_csrf=").then(|| &line[12..]))
            .and_then(|cookie| cookie.split(';').next())
            .expect("the CSRF cookie");
        let cookie = format!("{cookie}; {csrf_cookie}");
        let mut fields = vec![("csrf_token".to_owned(), common::browser::csrf_token(&page)), ("decision".into(), "allow".into())];
        for pair_ in query.split('&') {
            let (name, value) = pair_.split_once('=').unwrap();
            let value = url::form_urlencoded::parse(format!("v={value}").as_bytes()).next().unwrap().1.into_owned();
            fields.push((format!("request.{name}"), value));
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let form = ("Content-Type", "application/x-www-form-urlencoded");
        let (status, head, _) = pair.a.request(
            "POST",
            "/oauth/authorize/consent",
            &[("Cookie", &cookie), form],
            &common::browser::form_body(&fields),
        );
        assert_eq!(status, 303, "{head}");
        let location = head.lines().find_map(|l| l.strip_prefix("Location: ").or_else(|| l.strip_prefix("location: "))).unwrap();
        let code = url::Url::parse(location).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        // The code (issued by A) exchanged on B.
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}")));
        let exchange = common::browser::form_body(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ]);
        let (status, _, body) = pair.b.request("POST", "/oauth/token", &[("Authorization", &basic), form], &exchange);
        assert_eq!(status, 200, "{body}");
        let tokens: Value = serde_json::from_str(&body).unwrap();
        // The ID token verifies with A's key set.
        let (_, jwks) = call(&pair.a, "GET", "/.well-known/jwks.json", None, None);
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
        let id_token = tokens["id_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(id_token).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(set.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[client_id]);
        jsonwebtoken::decode::<Value>(id_token, &key, &validation).expect("the ID token verifies on the other instance");
        // userinfo on A; the code again on A: spent, and what it gave is revoked everywhere.
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(call(&pair.a, "GET", "/oauth/userinfo", Some(access), None).0, 200);
        let (status, _, _) = pair.a.request("POST", "/oauth/token", &[("Authorization", &basic), form], &exchange);
        assert_eq!(status, 400);
        assert_eq!(call(&pair.b, "GET", "/oauth/userinfo", Some(access), None).0, 401);
    }
}
