//! A real third-party verifier: `examples/verify_token.py` (PyJWT's `PyJWKClient`) checks
//! tokens from the real binary with the published keys alone, and keeps verifying across a
//! rotation without fetching the key set again, because the next key was published ahead.
//!
//! Python with PyJWT comes from `MINIAUTH_TEST_PYTHON` when set (CI sets it); otherwise the test
//! makes a virtualenv under `target/` and installs `PyJWT[crypto]` from the package registry.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{Server, JSON};
use serde_json::Value;

const CREDENTIALS: &str = r#"{"username":"alice","password":"correct horse"}"#;

/// A Python that can `import jwt` with its crypto extra.
fn python() -> PathBuf {
    if let Ok(python) = std::env::var("MINIAUTH_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-pyjwt");
    let python = venv.join("bin/python");
    let ready = Command::new(&python).args(["-c", "import jwt, cryptography"]).status();
    if !ready.is_ok_and(|status| status.success()) {
        let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().expect("python3 runs");
        assert!(made.success(), "python3 -m venv failed");
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "PyJWT[crypto]"])
            .status()
            .expect("pip runs");
        assert!(installed.success(), "pip install PyJWT[crypto] failed");
    }
    python
}

fn sign_in(server: &Server) -> String {
    let (status, _, body) = server.request("POST", "/auth/login", &[JSON], CREDENTIALS);
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn kid_of(token: &str) -> String {
    common::jwt_header(token)["kid"].as_str().expect("a kid").to_owned()
}

#[test]
fn pyjwt_verifies_tokens_with_the_published_keys_across_a_rotation() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.request("POST", "/auth/register", &[JSON], CREDENTIALS).0, 201);
    let before = sign_in(&server);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/verify_token.py");
    let mut verifier = Command::new(&python)
        .arg(&script)
        .arg(server.url(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the verifier starts");
    let mut to_verifier = verifier.stdin.take().unwrap();
    let mut answers = BufReader::new(verifier.stdout.take().unwrap()).lines();
    let mut verify = move |token: &str| {
        writeln!(to_verifier, "{token}").unwrap();
        answers.next().expect("an answer").unwrap()
    };

    let answer = verify(&before);
    assert!(answer.starts_with("ok ") && answer.contains(r#""sub": "1""#), "{answer}");
    let mut tampered = before.clone();
    tampered.insert(tampered.rfind('.').unwrap() + 1, 'A');
    assert!(verify(&tampered).starts_with("refused:"));

    // Rotate in the database, as `miniauth keys rotate` does, while the server runs.
    let url = format!("sqlite://{}", dir.path().join("data/miniauth.db").display());
    let runtime = rocket::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let promoted = runtime.block_on(async {
        let pool = miniauth::store::Store::connect_lazy(&url).unwrap();
        // The next key has been published since the server started, before the verifier
        // fetched the set: no need to wait out a cache time.
        let settings = miniauth::config::Settings::default().tokens;
        let promoted = miniauth::auth::keys::rotate(
            &pool,
            settings.algorithm,
            &settings,
            true,
            miniauth::store::Event::command("test"),
        )
        .await
        .unwrap();
        pool.close().await;
        promoted
    });
    let started = Instant::now();
    let after = loop {
        let token = sign_in(&server);
        if kid_of(&token) == promoted {
            break token;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the server did not follow the rotation");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_ne!(kid_of(&after), kid_of(&before));
    // The verifier, with the key set it cached before the rotation, takes both tokens.
    let answer = verify(&after);
    assert!(answer.starts_with("ok "), "{answer}");
    assert!(verify(&before).starts_with("ok "));
    drop(verify); // closes the verifier's input
    assert!(!verifier.wait().unwrap().success(), "one token was refused");
    let log = server.stop();
    assert_eq!(
        log.matches("GET /.well-known/jwks.json 200").count(),
        1,
        "the key set was fetched once:\n{log}"
    );
}
