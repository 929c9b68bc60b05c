//! Signing keys and the JWKS: keys in the database, published with their RFC 7638
//! thumbprint and never a private part; rotation that never breaks a verifier holding a cached
//! key set; HS256 by configuration, alone accepted; keys from the configuration; and the
//! upgrade of an installation whose HS256 tokens were signed with `data/secret.key`.

use crate::common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::server::{Server, JSON};
use common::{expect, json_of, jwt_payload, now, Backend, TestApp, TestDatabase, TOKEN_COOKIE};
use jsonwebtoken::{encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use miniauth::auth::{SigningAlgorithm, TokenSettings};
use rocket::figment::Figment;
use rocket::http::{Cookie, Status};
use rocket::serde::json::{json, serde_json, Value};
use sha2::{Digest, Sha256};

backend_tests!(
    the_key_set_publishes_the_current_and_the_next_key_and_nothing_private,
    the_discovery_document_names_the_issuer_and_the_key_set,
    a_token_verifies_with_the_published_key_alone,
    a_rotation_promotes_the_published_key_and_keeps_the_retired_one_until_its_tokens_expire,
    a_rotation_waits_until_verifiers_can_have_fetched_the_next_key,
    an_installation_upgraded_from_a_secret_file_keeps_its_secret_and_its_users_signed_in,
);

const PASSWORD: &str = "correct horse";

fn hs256(figment: Figment) -> Figment {
    figment.merge(("jwt_algorithm", "HS256"))
}

backend_tests_with!(hs256;
    with_hs256_tokens_are_hs256_under_a_kid_and_nothing_is_published
        => sqlite_hs256_tokens_are_hs256_under_a_kid, postgres_hs256_tokens_are_hs256_under_a_kid,
    with_hs256_an_eddsa_token_or_another_hmac_algorithm_is_401
        => sqlite_hs256_refuses_other_algorithms, postgres_hs256_refuses_other_algorithms,
    a_rotation_works_for_hs256_keys_too
        => sqlite_hs256_rotation, postgres_hs256_rotation,
);

/// An Ed25519 key of the test's own, as PEM, and its PKCS#8 document.
fn own_key() -> (String, Vec<u8>) {
    let row = miniauth::auth::keys::generate(SigningAlgorithm::EdDSA, now()).unwrap();
    let der = URL_SAFE_NO_PAD.decode(row.private_key).unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(&der);
    (format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"), der)
}

backend_tests_with!(|figment: Figment| figment.merge(("jwt_private_key", OWN_KEY.0.as_str()));
    a_key_from_the_configuration_alone_signs_and_is_published
        => sqlite_a_configured_key_signs, postgres_a_configured_key_signs,
);

static OWN_KEY: std::sync::LazyLock<(String, Vec<u8>)> = std::sync::LazyLock::new(own_key);

async fn a_key_from_the_configuration_alone_signs_and_is_published(app: TestApp) {
    let (access, _) = signed_in(&app, "alice").await;
    let jwks = jwks(&app).await;
    assert_eq!(kids(&jwks), [kid_of(&access)], "{jwks}");
    assert_eq!(jwks["keys"][0]["kid"].as_str().unwrap(), thumbprint(jwks["keys"][0]["x"].as_str().unwrap()));
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid_of(&access));
    let own = encode(&header, &jwt_payload(&access), &EncodingKey::from_ed_der(&OWN_KEY.1)).unwrap();
    assert!(app.token_works(&own).await, "a token signed with the configured key");
    assert_eq!(app.count("SELECT COUNT(*) FROM signing_keys").await, 0, "no key is generated");
}

#[test]
fn an_unknown_algorithm_or_a_key_that_is_not_ed25519_refuses_to_start() {
    for (name, value, message) in [
        ("ROCKET_JWT_ALGORITHM", "RS256", "jwt_algorithm must be EdDSA or HS256"),
        ("ROCKET_JWT_ALGORITHM", "none", "invalid configuration"),
        (
            "ROCKET_JWT_PRIVATE_KEY",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "jwt_private_key",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_miniauth"));
        let (status, log) = Server::run_to_exit(binary, dir.path(), &[(name, value)]);
        assert_eq!(status, Some(1), "{name}={value}: {log}");
        assert!(log.contains(message), "{name}={value}: {log}");
    }
}

/// Registers `username` and signs in through the API; returns the access and refresh tokens.
async fn signed_in(app: &TestApp, username: &str) -> (String, String) {
    app.registered(username, PASSWORD).await;
    let tokens = app.sign_in(username, PASSWORD).await;
    (tokens.access, tokens.refresh)
}

async fn jwks(app: &TestApp) -> Value {
    json_of(app.client.get("/.well-known/jwks.json").dispatch().await).await
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"].as_array().unwrap().iter().map(|key| key["kid"].as_str().unwrap().to_owned()).collect()
}

fn kid_of(token: &str) -> String {
    common::jwt_header(token)["kid"].as_str().expect("a kid").to_owned()
}

/// The RFC 7638 thumbprint of an Ed25519 JWK, computed here from its definition.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Rotates as the admin command does.
async fn rotate(app: &TestApp, algorithm: SigningAlgorithm, force: bool) -> Result<String, String> {
    let db = app.client.rocket().state::<miniauth::store::Db>().expect("the pool");
    let settings = TokenSettings { algorithm, ..miniauth::config::Settings::default().tokens };
    miniauth::auth::keys::rotate(
        db,
        settings.algorithm,
        &settings,
        force,
        miniauth::store::Event::command("test"),
    )
    .await
    .map_err(|e| format!("{e:?}"))
}

/// Makes the app reload its keys now rather than within five seconds.
async fn reload(app: &TestApp) {
    let db = app.client.rocket().state::<miniauth::store::Db>().expect("the pool");
    let accounts = app.client.rocket().state::<miniauth::auth::Accounts>().expect("the accounts");
    accounts.tokens().keys.reload(db).await.expect("reload");
}

/// Backdates every key's creation by `seconds`, as if they had been published that long ago.
async fn age_keys(app: &TestApp, seconds: i64) {
    app.execute(&[format!("UPDATE signing_keys SET created_at = created_at - {seconds}")]).await;
}

async fn the_key_set_publishes_the_current_and_the_next_key_and_nothing_private(app: TestApp) {
    let response = app.client.get("/.well-known/jwks.json").dispatch().await;
    assert_eq!(response.headers().get_one("Cache-Control"), Some("public, max-age=600"));
    assert!(response.content_type().unwrap().is_json());
    let jwks: Value = response.into_json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "the current and the next key: {jwks}");
    for key in keys {
        let mut fields: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(fields, ["alg", "crv", "kid", "kty", "use", "x"], "{key}");
        assert_eq!(
            (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
            (&json!("OKP"), &json!("Ed25519"), &json!("EdDSA"), &json!("sig"))
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap().len(), 32);
        assert_eq!(key["kid"].as_str().unwrap(), thumbprint(key["x"].as_str().unwrap()));
    }
    let signing = app.signing_key().await;
    assert!(kids(&jwks).contains(&signing.kid));
    // The private key appears nowhere, in any encoding.
    let text = jwks.to_string();
    let seed = &signing.private[signing.private.len() - 32..];
    for encoded in [URL_SAFE_NO_PAD.encode(seed), URL_SAFE_NO_PAD.encode(&signing.private)] {
        assert!(!text.contains(&encoded[..20]), "a private part is published: {text}");
    }
}

async fn the_discovery_document_names_the_issuer_and_the_key_set(app: TestApp) {
    let response = app.client.get("/.well-known/openid-configuration").dispatch().await;
    assert_eq!(response.headers().get_one("Cache-Control"), Some("public, max-age=600"));
    let document: Value = response.into_json().await.unwrap();
    // OpenID Connect's issuer is public_url (MiniAuth's own access tokens keep `jwt_issuer`).
    assert_eq!(document["issuer"], "http://localhost:8000");
    assert_eq!(document["jwks_uri"], "http://localhost:8000/.well-known/jwks.json");
}

/// What another service does: fetch the key set, pick the key by `kid`, verify.
async fn a_token_verifies_with_the_published_key_alone(app: TestApp) {
    let (access, _) = signed_in(&app, "alice").await;
    let jwks = jwks(&app).await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let key = set.find(&kid_of(&access)).expect("the token's key is published");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["miniauth"]);
    validation.set_issuer(&["miniauth"]);
    let claims = jsonwebtoken::decode::<Value>(&access, &DecodingKey::from_jwk(key).unwrap(), &validation)
        .expect("verifies")
        .claims;
    assert_eq!(claims["sub"], jwt_payload(&access)["sub"]);
}

async fn a_rotation_promotes_the_published_key_and_keeps_the_retired_one_until_its_tokens_expire(
    app: TestApp,
) {
    let (before, _) = signed_in(&app, "alice").await;
    let published = kids(&jwks(&app).await);
    let (old, next) =
        (kid_of(&before), published.iter().find(|kid| **kid != kid_of(&before)).unwrap().clone());
    age_keys(&app, 700).await;

    let promoted = rotate(&app, SigningAlgorithm::EdDSA, false).await.expect("rotates");
    assert_eq!(promoted, next, "the key verifiers already have signs next");
    reload(&app).await;
    let after = app.sign_in("alice", PASSWORD).await.access;
    assert_eq!(kid_of(&after), next);
    // The token signed before still works, and its key is still published, with the new next.
    assert!(app.token_works(&before).await);
    assert!(app.token_works(&after).await);
    let published = kids(&jwks(&app).await);
    assert_eq!(published.len(), 3, "{published:?}");
    assert!(published.contains(&old) && published.contains(&next));

    // Once the tokens it signed have expired and cached key sets are stale, the old key goes.
    let long_ago = now()
        - miniauth::store::seconds(miniauth::config::Settings::default().tokens.keep_retired_keys())
        - 1;
    app.execute(&[format!("UPDATE signing_keys SET retired_at = {long_ago} WHERE kid = '{old}'")]).await;
    reload(&app).await;
    let published = kids(&jwks(&app).await);
    assert_eq!(published.len(), 2, "{published:?}");
    assert!(!published.contains(&old));
    assert!(!app.token_works(&before).await, "a token whose key left the set");
    // And the purge deletes it from the database.
    let db = app.client.rocket().state::<miniauth::store::Db>().expect("the pool");
    let keep = miniauth::store::seconds(miniauth::config::Settings::default().tokens.keep_retired_keys());
    assert_eq!(miniauth::store::keys::forget_retired(db, now() - keep).await.unwrap(), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM signing_keys").await, 2);
}

async fn a_rotation_waits_until_verifiers_can_have_fetched_the_next_key(app: TestApp) {
    let (before, _) = signed_in(&app, "alice").await;
    let refused = rotate(&app, SigningAlgorithm::EdDSA, false).await.expect_err("the next key is brand new");
    assert!(refused.contains("TooSoon"), "{refused}");
    reload(&app).await;
    assert_eq!(kid_of(&app.sign_in("alice", PASSWORD).await.access), kid_of(&before), "nothing changed");
    // An operator who must (a leaked key) can insist.
    let promoted = rotate(&app, SigningAlgorithm::EdDSA, true).await.expect("forced");
    reload(&app).await;
    assert_eq!(kid_of(&app.sign_in("alice", PASSWORD).await.access), promoted);
}

async fn with_hs256_tokens_are_hs256_under_a_kid_and_nothing_is_published(app: TestApp) {
    let (access, _) = signed_in(&app, "alice").await;
    let key = app.signing_key().await;
    assert_eq!(key.algorithm, Algorithm::HS256);
    assert_eq!(kid_of(&access), key.kid);
    assert!(app.token_works(&access).await);
    assert_eq!(jwks(&app).await, json!({"keys": []}), "secret keys are never published");
}

async fn with_hs256_an_eddsa_token_or_another_hmac_algorithm_is_401(app: TestApp) {
    let (access, _) = signed_in(&app, "alice").await;
    let claims = jwt_payload(&access);
    let key = app.signing_key().await;
    for algorithm in [Algorithm::HS384, Algorithm::HS512] {
        let mut header = Header::new(algorithm);
        header.kid = Some(key.kid.clone());
        let token = encode(&header, &claims, &EncodingKey::from_secret(&key.private)).unwrap();
        assert!(!app.token_works(&token).await, "{algorithm:?}");
    }
    let ed = miniauth::auth::keys::generate(SigningAlgorithm::EdDSA, now()).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    let der = URL_SAFE_NO_PAD.decode(ed.private_key).unwrap();
    let token = encode(&header, &claims, &EncodingKey::from_ed_der(&der)).unwrap();
    assert!(!app.token_works(&token).await);
    assert!(app.token_works(&key.sign(&claims)).await, "the same claims, signed right");
}

async fn a_rotation_works_for_hs256_keys_too(app: TestApp) {
    let (before, _) = signed_in(&app, "alice").await;
    age_keys(&app, 700).await;
    let promoted = rotate(&app, SigningAlgorithm::HS256, false).await.expect("rotates");
    reload(&app).await;
    let after = app.sign_in("alice", PASSWORD).await.access;
    assert_eq!(kid_of(&after), promoted);
    assert_ne!(promoted, kid_of(&before));
    assert!(app.token_works(&before).await && app.token_works(&after).await);
}

/// Before keys moved to the database, an installation signed HS256 tokens (without a `kid`)
/// with the secret it generated in `data/secret.key`, which also keyed its CSRF and device
/// cookies. After the upgrade those access tokens are refused, the refresh tokens carry API
/// clients and browsers on, and the secret keeps the cookies it signed good.
async fn an_installation_upgraded_from_a_secret_file_keeps_its_secret_and_its_users_signed_in(app: TestApp) {
    let backend = app.backend();
    drop(app);
    let data_dir = tempfile::tempdir().unwrap();
    let secret = "an-old-installations-secret-0123456789-abcdefghijklmnop";
    std::fs::write(data_dir.path().join("secret.key"), format!("{secret}\n")).unwrap();
    let dir = data_dir.path().display().to_string();
    let app = TestApp::spawn_with(backend, |figment| figment.merge(("data_dir", dir))).await;
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM server_secrets WHERE value = '{secret}'")).await, 1);

    let (access, refresh) = signed_in(&app, "alice").await;
    // What the old version issued for this session: HS256 with the file's secret, no kid.
    let old = encode(
        &Header::new(Algorithm::HS256),
        &jwt_payload(&access),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert!(!app.token_works(&old).await, "an old HS256 token is no longer accepted");

    // The API client refreshes, and carries on with an EdDSA token.
    let renewed = expect(app.refresh(&refresh).await, Status::Ok).await;
    let renewed = renewed["access_token"].as_str().unwrap().to_owned();
    assert!(app.token_works(&renewed).await);

    // The browser holds the old token and a refresh cookie: its next page renews both.
    let refresh = app.sign_in("alice", PASSWORD).await.refresh;
    let page = app
        .client
        .get("/profile")
        .cookie(Cookie::new(TOKEN_COOKIE, old.clone()))
        .cookie(Cookie::new(miniauth::web::REFRESH_COOKIE, refresh))
        .dispatch()
        .await;
    assert_eq!(page.status(), Status::Ok, "the browser stays signed in");
    let cookie = app.client.cookies().get(TOKEN_COOKIE).expect("a renewed token").value().to_owned();
    assert_ne!(cookie, old);
    assert!(app.token_works(&cookie).await);
}

// Two instances -------------------------------------------------------------------------------

/// The kid an instance signs with now.
fn signing_kid(server: &Server) -> String {
    let body = r#"{"username":"alice","password":"correct horse"}"#;
    let (status, _, answer) = server.request("POST", "/auth/login", &[JSON], body);
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    kid_of(answer["access_token"].as_str().unwrap())
}

fn published(server: &Server) -> Vec<String> {
    let (status, _, body) = server.request("GET", "/.well-known/jwks.json", &[], "");
    assert_eq!(status, 200);
    kids(&serde_json::from_str(&body).unwrap())
}

needs_postgres! {
    /// Two instances on one PostgreSQL database, with no secret in their environment: they
    /// share keys, and both follow a rotation within ten seconds, without a restart.
    #[test]
    fn two_instances_share_the_keys_and_follow_a_rotation_without_a_restart() {
        let database = TestDatabase::create(Backend::Postgres);
        let env = [database.env()];
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Server::start(dir_a.path(), &env);
        let b = Server::start(dir_b.path(), &env);
        let body = r#"{"username":"alice","password":"correct horse"}"#;
        assert_eq!(a.request("POST", "/auth/register", &[JSON], body).0, 201);
        let before = signing_kid(&a);
        assert_eq!(signing_kid(&b), before);
        assert_eq!(published(&a), published(&b));
        let (_, _, token) = a.request("POST", "/auth/login", &[JSON], body);
        let token: Value = serde_json::from_str(&token).unwrap();
        let auth = format!("Bearer {}", token["access_token"].as_str().unwrap());
        assert_eq!(b.request("GET", "/auth/profile", &[("Authorization", &auth)], "").0, 200);

        let runtime = rocket::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let promoted = runtime.block_on(async {
            let pool = miniauth::store::Store::connect_lazy(&database.url).unwrap();
            sqlx::query("UPDATE signing_keys SET created_at = created_at - 700").execute(&*pool).await.unwrap();
            let settings = miniauth::config::Settings::default().tokens;
            let promoted = miniauth::auth::keys::rotate(&pool, settings.algorithm, &settings, false, miniauth::store::Event::command("test")).await.unwrap();
            pool.close().await;
            promoted
        });
        let started = Instant::now();
        while (signing_kid(&a), signing_kid(&b)) != (promoted.clone(), promoted.clone()) {
            assert!(started.elapsed() < Duration::from_secs(10), "an instance did not follow the rotation");
            std::thread::sleep(Duration::from_millis(250));
        }
        assert_eq!(published(&a).len(), 3);
        assert_eq!(published(&a), published(&b));
        // The token signed before the rotation still works on both.
        assert_eq!(a.request("GET", "/auth/profile", &[("Authorization", &auth)], "").0, 200);
        assert_eq!(b.request("GET", "/auth/profile", &[("Authorization", &auth)], "").0, 200);
        a.stop();
        b.stop();
    }
}
