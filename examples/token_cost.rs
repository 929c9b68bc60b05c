//! What an access token costs the server: signing, verifying a token seen for the first time,
//! and verifying one it verified before (answered from memory), for EdDSA and HS256; and what
//! signing an ID token with RS256 costs (OpenID Connect). The benchmark (`bench/bench.py`,
//! `--env ROCKET_JWT_ALGORITHM=HS256`) measures whole requests; this measures the token alone.
//!
//! `cargo run --release --example token_cost`

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use miniauth::auth::keys::{self, KeyRing};
use miniauth::auth::{SigningAlgorithm, Tokens};
use miniauth::config::Settings;

const ROUNDS: usize = 2_000;

fn main() {
    let settings = Settings::default();
    let now = miniauth::store::now();
    let ed = keys::generate(SigningAlgorithm::EdDSA, now).expect("a key");
    let der = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(ed.private_key).expect("base64url");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    let secret = "a-secret-of-at-least-thirty-two-characters-0123456789";
    println!("{:<8} {:>12} {:>18} {:>18}", "", "sign", "verify (first)", "verify (again)");
    for (algorithm, key) in [(SigningAlgorithm::EdDSA, pem.as_str()), (SigningAlgorithm::HS256, secret)] {
        let ring = KeyRing::configured(algorithm, &key.to_owned().into()).expect("a key ring");
        let tokens = Tokens::new(Arc::new(ring), &settings.tokens);
        let started = Instant::now();
        let issued: Vec<String> = (0..ROUNDS)
            .map(|i| tokens.issue(i as i64 + 1, "a-session-id", &[], &["pwd"], now).expect("signed"))
            .collect();
        let sign = started.elapsed() / ROUNDS as u32;
        let started = Instant::now();
        assert!(issued.iter().all(|token| tokens.verify(token, now).is_some()));
        let first = started.elapsed() / ROUNDS as u32;
        let started = Instant::now();
        assert!(issued.iter().all(|token| tokens.verify(token, now).is_some()));
        let again = started.elapsed() / ROUNDS as u32;
        println!("{:<8} {:>12.1?} {:>18.1?} {:>18.1?}", algorithm.name(), sign, first, again);
    }
    // An ID token: RS256 with a 2048-bit key of the database's kind (PKCS#8).
    let rsa = keys::generate(SigningAlgorithm::RS256, now).expect("an RSA key");
    let der = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(rsa.private_key).expect("base64url");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("an RSA key");
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    let claims =
        serde_json::json!({"iss": "https://auth.example.com", "sub": "1", "aud": "app", "exp": now + 900});
    let started = Instant::now();
    for _ in 0..ROUNDS / 10 {
        jsonwebtoken::encode(&header, &claims, &key).expect("signed");
    }
    println!("{:<8} {:>12.1?}", "RS256", started.elapsed() / (ROUNDS / 10) as u32);
}
