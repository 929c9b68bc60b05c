//! The security properties about tokens, and the request guard: every forged,
//! expired, misdirected or revoked token is answered `401`, never `200` or `500`; and an
//! unknown username cannot be told from a wrong password, by message or by time.

use crate::common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{json_of, jwt_header, jwt_payload, now, problem, user_id, Backend, TestApp, TOKEN_COOKIE};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rocket::http::{Cookie, Status};
use rocket::local::asynchronous::LocalResponse;
use rocket::serde::json::{json, Value};

backend_tests!(
    concurrent_checks_of_live_and_revoked_sessions_each_get_their_own_answer,
    a_token_signed_with_the_servers_key_for_a_live_session_is_accepted,
    a_token_with_alg_none_is_401,
    a_token_signed_with_hmac_over_the_public_key_is_401,
    a_token_whose_header_names_another_algorithm_over_the_real_signature_is_401,
    a_token_signed_with_another_key_under_the_servers_kid_is_401,
    a_token_without_a_kid_or_with_an_unknown_one_is_401,
    a_token_with_a_flipped_signature_byte_is_401,
    a_token_whose_payload_names_another_user_under_the_old_signature_is_401,
    a_correctly_signed_token_whose_sub_is_not_the_sessions_user_is_401,
    a_token_with_exp_an_hour_ago_is_401,
    a_token_from_another_issuer_is_401,
    a_token_for_another_audience_is_401,
    a_token_missing_any_required_claim_is_401,
    a_correctly_signed_token_with_a_non_numeric_sub_is_401,
    a_token_of_a_logged_out_session_is_401,
    a_token_of_an_unknown_session_is_401,
    a_token_of_a_session_past_its_expiry_is_401,
    a_token_of_a_deleted_user_is_401,
    a_token_of_a_deleted_user_whose_session_row_remains_is_401,
    a_forged_token_in_the_cookie_is_401,
);

const PASSWORD: &str = "correct horse";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT built by hand from any header, claims and signature bytes.
fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// A JWT signed by the `jsonwebtoken` crate with an HMAC `algorithm`, `secret` and `kid`.
fn sign(algorithm: Algorithm, secret: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign")
}

/// Claims as the server issues them, for `user_id` and session `sid`, valid for 15 minutes.
fn fresh_claims(user_id: i64, sid: &str) -> Value {
    let now = now();
    json!({"sub": user_id.to_string(), "sid": sid, "iat": now, "exp": now + 900, "iss": "miniauth", "aud": "miniauth"})
}

/// A registered, signed-in user: their id, their real token, and the claims in it.
struct Session {
    user_id: i64,
    token: String,
    claims: Value,
}

/// Registers `username` and signs in through the API.
async fn new_user(app: &TestApp, username: &str) -> Session {
    let user = app.registered(username, PASSWORD).await;
    let token = app.sign_in(username, PASSWORD).await.access;
    let claims = jwt_payload(&token);
    assert_eq!(claims["sub"], user["id"].to_string(), "sub is the user id as a string");
    Session { user_id: user_id(&user), token, claims }
}

/// The answer to a rejected token: 401 problem+json with the `invalid_token` challenge.
async fn assert_rejected(response: LocalResponse<'_>) {
    let challenge = response.headers().get_one("WWW-Authenticate").unwrap_or_default().to_owned();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(r#"error="invalid_token""#),
        "{challenge:?}"
    );
    problem(response, Status::Unauthorized).await;
}

async fn assert_token_rejected(app: &TestApp, token: &str) {
    assert_rejected(app.profile(token).await).await;
    assert_rejected(app.logout(token, "").await).await;
}

async fn assert_token_accepted(app: &TestApp, token: &str, user_id: i64) {
    let response = app.profile(token).await;
    assert_eq!(response.status(), Status::Ok);
    let profile: Value = response.into_json().await.unwrap();
    assert_eq!(profile["id"], user_id);
}

async fn a_token_signed_with_the_servers_key_for_a_live_session_is_accepted(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    assert_token_accepted(&app, &alice.token, alice.user_id).await;
    let header = jwt_header(&alice.token);
    assert_eq!(header["alg"], "EdDSA", "EdDSA is the default");
    let key = app.signing_key().await;
    assert_eq!(header["kid"], key.kid.as_str());
    // The way this file signs tokens makes ones the server takes when everything is right, so
    // each rejection below is about the one thing that was changed.
    let claims = fresh_claims(alice.user_id, alice.claims["sid"].as_str().unwrap());
    assert_token_accepted(&app, &key.sign(&claims), alice.user_id).await;
    assert_token_accepted(&app, &key.sign(&alice.claims), alice.user_id).await;
}

async fn a_token_with_alg_none_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let claims = fresh_claims(alice.user_id, alice.claims["sid"].as_str().unwrap());
    let real_signature = alice.token.rsplit('.').next().unwrap().to_owned();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let unsigned = forge(&json!({"alg": alg, "typ": "JWT"}), &claims, b"");
        assert_token_rejected(&app, &unsigned).await;
        assert_token_rejected(&app, unsigned.trim_end_matches('.')).await;
        // The untouched real payload, with or without the real signature.
        let header = b64(json!({"alg": alg}).to_string().as_bytes());
        let payload = alice.token.split('.').nth(1).unwrap();
        assert_token_rejected(&app, &format!("{header}.{payload}.")).await;
        assert_token_rejected(&app, &format!("{header}.{payload}.{real_signature}")).await;
    }
    assert_token_accepted(&app, &alice.token, alice.user_id).await;
}

/// The classic confusion: HMAC with the public key (which anyone may fetch) as the secret,
/// under the server's kid. The server's algorithm is pinned, so no HMAC token is taken at all.
async fn a_token_signed_with_hmac_over_the_public_key_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let key = app.signing_key().await;
    let claims = fresh_claims(alice.user_id, alice.claims["sid"].as_str().unwrap());
    let jwks = json_of(app.client.get("/.well-known/jwks.json").dispatch().await).await;
    let x = jwks["keys"][0]["x"].as_str().expect("the public key").to_owned();
    for secret in [x.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(&x).unwrap(), key.private.clone()] {
        for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            assert_token_rejected(&app, &sign(algorithm, &secret, &key.kid, &claims)).await;
        }
    }
}

async fn a_token_whose_header_names_another_algorithm_over_the_real_signature_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let kid = app.signing_key().await.kid;
    let (_, payload_and_signature) = alice.token.split_once('.').unwrap();
    for alg in ["HS256", "RS256", "ES256", "eddsa", "ED25519", "none"] {
        let header = b64(json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string().as_bytes());
        assert_token_rejected(&app, &format!("{header}.{payload_and_signature}")).await;
    }
}

async fn a_token_signed_with_another_key_under_the_servers_kid_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let claims = fresh_claims(alice.user_id, alice.claims["sid"].as_str().unwrap());
    let mut other = app.signing_key().await;
    other.private = miniauth::auth::keys::generate(miniauth::auth::SigningAlgorithm::EdDSA, now())
        .map(|row| URL_SAFE_NO_PAD.decode(row.private_key).unwrap())
        .unwrap();
    assert_token_rejected(&app, &other.sign(&claims)).await;
}

async fn a_token_without_a_kid_or_with_an_unknown_one_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let claims = fresh_claims(alice.user_id, alice.claims["sid"].as_str().unwrap());
    let key = app.signing_key().await;
    let without_kid = encode(&Header::new(Algorithm::EdDSA), &claims, &key.encoding()).unwrap();
    assert_token_rejected(&app, &without_kid).await;
    for kid in ["", "unknown", "../keys", "' OR '1'='1"] {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        assert_token_rejected(&app, &encode(&header, &claims, &key.encoding()).unwrap()).await;
    }
}

async fn a_token_with_a_flipped_signature_byte_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let (signing_input, signature) = alice.token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    for (index, bit) in [(0, 0x01), (signature.len() / 2, 0x80), (signature.len() - 1, 0x01)] {
        let mut flipped = signature.clone();
        flipped[index] ^= bit;
        assert_token_rejected(&app, &format!("{signing_input}.{}", b64(&flipped))).await;
    }
    // Cut short or lengthened.
    assert_token_rejected(&app, &format!("{signing_input}.{}", b64(&signature[..31]))).await;
    assert_token_rejected(&app, &format!("{signing_input}.{}", b64(&[&signature[..], &[0]].concat()))).await;
    assert_token_accepted(&app, &alice.token, alice.user_id).await;
}

async fn a_token_whose_payload_names_another_user_under_the_old_signature_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let bob = new_user(&app, "bob").await;
    let (header, _, signature) = {
        let parts: Vec<&str> = alice.token.split('.').collect();
        (parts[0], parts[1], parts[2])
    };
    let mut claims = alice.claims.clone();
    claims["sub"] = json!(bob.user_id.to_string());
    let tampered = format!("{header}.{}.{signature}", b64(claims.to_string().as_bytes()));
    assert_token_rejected(&app, &tampered).await;
    // Bob's session too, and a longer life.
    claims["sid"] = bob.claims["sid"].clone();
    let tampered = format!("{header}.{}.{signature}", b64(claims.to_string().as_bytes()));
    assert_token_rejected(&app, &tampered).await;
    let mut claims = alice.claims.clone();
    claims["exp"] = json!(now() + 10 * 365 * 24 * 3600);
    let tampered = format!("{header}.{}.{signature}", b64(claims.to_string().as_bytes()));
    assert_token_rejected(&app, &tampered).await;
}

async fn a_correctly_signed_token_whose_sub_is_not_the_sessions_user_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let bob = new_user(&app, "bob").await;
    // Alice's live session presented as Bob's: the session must belong to the token's user.
    let claims = fresh_claims(bob.user_id, alice.claims["sid"].as_str().unwrap());
    assert_token_rejected(&app, &app.signing_key().await.sign(&claims)).await;
}

async fn a_token_with_exp_an_hour_ago_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let mut claims = fresh_claims(alice.user_id, alice.claims["sid"].as_str().unwrap());
    claims["iat"] = json!(now() - 7200);
    claims["exp"] = json!(now() - 3600);
    assert_token_rejected(&app, &app.signing_key().await.sign(&claims)).await;
    // The session itself is still live.
    assert_token_accepted(&app, &alice.token, alice.user_id).await;
}

async fn a_token_from_another_issuer_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let key = app.signing_key().await;
    for issuer in [json!("evil"), json!("MiniAuth"), json!(""), json!(["miniauth"]), json!(null)] {
        let mut claims = fresh_claims(alice.user_id, alice.claims["sid"].as_str().unwrap());
        claims["iss"] = issuer;
        assert_token_rejected(&app, &key.sign(&claims)).await;
    }
}

async fn a_token_for_another_audience_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let key = app.signing_key().await;
    for audience in
        [json!("other-service"), json!("MINIAUTH"), json!(""), json!(["other-service"]), json!(null)]
    {
        let mut claims = fresh_claims(alice.user_id, alice.claims["sid"].as_str().unwrap());
        claims["aud"] = audience;
        assert_token_rejected(&app, &key.sign(&claims)).await;
    }
}

async fn a_token_missing_any_required_claim_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let key = app.signing_key().await;
    for missing in ["exp", "sub", "sid", "iss", "aud"] {
        let mut claims = fresh_claims(alice.user_id, alice.claims["sid"].as_str().unwrap());
        claims.as_object_mut().unwrap().remove(missing);
        assert_token_rejected(&app, &key.sign(&claims)).await;
    }
}

async fn a_correctly_signed_token_with_a_non_numeric_sub_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let key = app.signing_key().await;
    let sid = alice.claims["sid"].as_str().unwrap();
    for sub in
        [json!("alice"), json!(""), json!("1 OR 1=1"), json!("99999999999999999999999"), json!(alice.user_id)]
    {
        let mut claims = fresh_claims(alice.user_id, sid);
        claims["sub"] = sub;
        assert_token_rejected(&app, &key.sign(&claims)).await;
    }
}

async fn a_token_of_a_logged_out_session_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let response = app.logout(&alice.token, "").await;
    assert_eq!(response.status(), Status::NoContent);
    assert_token_rejected(&app, &alice.token).await;
    // Even a fresh, correctly signed token for that session.
    let claims = fresh_claims(alice.user_id, alice.claims["sid"].as_str().unwrap());
    assert_token_rejected(&app, &app.signing_key().await.sign(&claims)).await;
}

async fn a_token_of_an_unknown_session_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let key = app.signing_key().await;
    for sid in ["", "no-such-session", "' OR '1'='1"] {
        assert_token_rejected(&app, &key.sign(&fresh_claims(alice.user_id, sid))).await;
    }
}

async fn a_token_of_a_session_past_its_expiry_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    app.execute(&[format!("UPDATE sessions SET expires_at = {}", now() - 60)]).await;
    assert_token_rejected(&app, &alice.token).await;
}

async fn a_token_of_a_deleted_user_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let bob = new_user(&app, "bob").await;
    app.execute(&[format!("DELETE FROM users WHERE id = {}", alice.user_id)]).await;
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM sessions WHERE user_id = {}", alice.user_id)).await,
        0
    );
    assert_token_rejected(&app, &alice.token).await;
    assert_token_accepted(&app, &bob.token, bob.user_id).await;
}

async fn a_token_of_a_deleted_user_whose_session_row_remains_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    // Delete the user behind the foreign key's back, as a bug or a manual fix might.
    let without_foreign_keys = match app.backend() {
        Backend::Sqlite => "PRAGMA foreign_keys = OFF",
        Backend::Postgres => "SET session_replication_role = replica",
    };
    app.execute(&[without_foreign_keys.into(), format!("DELETE FROM users WHERE id = {}", alice.user_id)])
        .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL").await, 1);
    assert_token_rejected(&app, &alice.token).await;
}

async fn a_forged_token_in_the_cookie_is_401(app: TestApp) {
    let alice = new_user(&app, "alice").await;
    let claims = fresh_claims(alice.user_id, alice.claims["sid"].as_str().unwrap());
    let forged = [
        forge(&json!({"alg": "none", "typ": "JWT"}), &claims, b""),
        sign(Algorithm::HS256, b"not the secret", &app.signing_key().await.kid, &claims),
    ];
    for token in forged {
        let response =
            app.client.get("/auth/profile").cookie(Cookie::new(TOKEN_COOKIE, token)).dispatch().await;
        assert_rejected(response).await;
    }
    // The real token in the cookie is taken, so the cookie is read at all.
    let response =
        app.client.get("/auth/profile").cookie(Cookie::new(TOKEN_COOKIE, alice.token)).dispatch().await;
    assert_eq!(response.status(), Status::Ok);
}

// Timing ------------------------------------------------------------------------------------

/// The body of a 401 answer.
async fn unauthorized_body(response: LocalResponse<'_>) -> String {
    assert_eq!(response.status(), Status::Unauthorized);
    response.into_string().await.unwrap()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Signing in as an unknown user costs a bcrypt verification like a wrong password does, and
/// answers the same thing: neither the message nor the time tells whether a username exists.
async fn unknown_user_takes_as_long_as_a_wrong_password(backend: Backend) {
    // Thirty failures from one address: the throttle is off, so that every one runs bcrypt.
    let app = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(("bcrypt_cost", 8))
            .merge(("login_max_failures_pair", 0))
            .merge(("login_max_failures_address", 0))
            .merge(("login_max_failures_user_hour", 0))
    })
    .await;
    assert_eq!(app.register("alice", PASSWORD).await.status(), Status::Created);
    // Warm up both paths (connections, caches) before measuring.
    let wrong_body = unauthorized_body(app.login("alice", "wrong horse").await).await;
    let unknown_body = unauthorized_body(app.login("mallory", "wrong horse").await).await;
    assert_eq!(unknown_body, wrong_body);
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for round in 0..15 {
        let unknown_name = format!("mallory{round}");
        for (name, samples) in [(unknown_name.as_str(), &mut unknown), ("alice", &mut wrong)] {
            let started = Instant::now();
            let response = app.login(name, "wrong horse").await;
            samples.push(started.elapsed());
            assert_eq!(unauthorized_body(response).await, wrong_body);
        }
    }
    let (unknown, wrong) = (median(unknown), median(wrong));
    eprintln!("{backend}: median login time: unknown user {unknown:?}, wrong password {wrong:?}");
    assert!(
        unknown.as_secs_f64() >= 0.5 * wrong.as_secs_f64()
            && unknown.as_secs_f64() <= 2.0 * wrong.as_secs_f64(),
        "median login time: unknown user {unknown:?}, wrong password {wrong:?}"
    );
}

#[rocket::async_test]
async fn sqlite_unknown_user_takes_as_long_as_a_wrong_password() {
    unknown_user_takes_as_long_as_a_wrong_password(Backend::Sqlite).await;
}

needs_postgres! {
    #[rocket::async_test]
    async fn postgres_unknown_user_takes_as_long_as_a_wrong_password() {
        unknown_user_takes_as_long_as_a_wrong_password(Backend::Postgres).await;
    }
}

/// Session checks that arrive together are answered by one query: each must still get the
/// answer for its own session and user, whatever else is in the batch.
async fn concurrent_checks_of_live_and_revoked_sessions_each_get_their_own_answer(app: TestApp) {
    let [live_a, revoked] = app.register_and_sign_in("batch_a", "password for a").await.map(|t| t.access);
    let [live_b] = app.register_and_sign_in("batch_b", "password for b").await.map(|t| t.access);
    let logout = app.logout(&revoked, "").await;
    assert_eq!(logout.status(), Status::NoContent);

    let tokens: Vec<(&str, Option<&str>)> = (0..60)
        .map(|i| [(&*live_a, Some("batch_a")), (&*revoked, None), (&*live_b, Some("batch_b"))][i % 3])
        .collect();
    let answers = rocket::futures::future::join_all(tokens.iter().map(|(token, _)| app.profile(token))).await;
    for ((_, expected), response) in tokens.iter().zip(answers) {
        match expected {
            Some(name) => {
                assert_eq!(response.status(), Status::Ok);
                let body: Value = response.into_json().await.unwrap();
                assert_eq!(body["username"], *name);
            }
            None => assert_eq!(response.status(), Status::Unauthorized),
        }
    }
}
