//! Every throttling setting is in `Rocket.toml` with the built-in default, under the
//! exact name operators and scripts use, and explained in the README.

use rocket::figment::providers::{Format, Toml};
use rocket::figment::Figment;

#[test]
fn the_throttling_settings_are_in_rocket_toml_with_their_defaults_and_in_the_readme() {
    let built_in = miniauth::config::Settings::default();
    let expected = [
        ("login_max_failures_pair", built_in.login_max_failures_pair, 5),
        ("login_max_failures_address", built_in.login_max_failures_address, 50),
        ("login_block_seconds", built_in.login_block_seconds, 900),
        ("login_max_failures_user_hour", built_in.login_max_failures_user_hour, 100),
        ("register_max_per_address_hour", built_in.register_max_per_address_hour, 30),
    ];
    let file = Figment::from(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml")));
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (key, default, spec) in expected {
        assert_eq!(default, spec, "the built-in {key}");
        let in_file: u32 =
            file.extract_inner(&format!("default.{key}")).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(in_file, spec, "{key} in Rocket.toml");
        let row = format!("| `{key}` | `{spec}` | `ROCKET_{}` |", key.to_uppercase());
        assert!(readme.contains(&row), "the README's configuration table lacks {row}");
    }
}

/// The signing-key settings likewise; the ones unset by default are in the README.
#[test]
fn the_key_settings_are_in_rocket_toml_with_their_defaults_and_in_the_readme() {
    let built_in = miniauth::config::Settings::default();
    assert_eq!(built_in.jwt_algorithm, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(built_in.jwks_cache_seconds, 600);
    let file = Figment::from(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml")));
    let algorithm: String = file.extract_inner("default.jwt_algorithm").unwrap();
    assert_eq!(algorithm, "EdDSA");
    let cache: u64 = file.extract_inner("default.jwks_cache_seconds").unwrap();
    assert_eq!(cache, 600);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for row in [
        "| `jwt_algorithm` | `EdDSA` | `ROCKET_JWT_ALGORITHM` |",
        "| `jwks_cache_seconds` | `600` | `ROCKET_JWKS_CACHE_SECONDS` |",
        "| `jwt_private_key` | *(unset)* | `ROCKET_JWT_PRIVATE_KEY` |",
        "| `public_url` | `http://<address>:<port>` | `ROCKET_PUBLIC_URL` |",
        "| `token_secret` | *(in the database)* | `ROCKET_TOKEN_SECRET` |",
    ] {
        assert!(readme.contains(row), "the README's configuration table lacks {row}");
    }
}

/// The recovery and mail settings likewise: in `Rocket.toml` with the built-in
/// defaults, and in the README's table.
#[test]
fn the_mail_settings_are_in_rocket_toml_with_their_defaults_and_in_the_readme() {
    let built_in = miniauth::config::Settings::default();
    let expected = [
        ("reset_token_ttl", built_in.reset_token_ttl, 1800),
        ("confirm_token_ttl", built_in.confirm_token_ttl, 86_400),
        ("mail_max_per_account_hour", u64::from(built_in.mail_max_per_account_hour), 3),
        ("mail_max_per_address_hour", u64::from(built_in.mail_max_per_address_hour), 10),
    ];
    let file = Figment::from(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml")));
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (key, default, spec) in expected {
        assert_eq!(default, spec, "the built-in {key}");
        let in_file: u64 =
            file.extract_inner(&format!("default.{key}")).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(in_file, spec, "{key} in Rocket.toml");
        let row = format!("| `{key}` | `{spec}` | `ROCKET_{}` |", key.to_uppercase());
        assert!(readme.contains(&row), "the README's configuration table lacks {row}");
    }
    assert!(built_in.smtp_url.is_none(), "the outbox by default");
    let from: String = file.extract_inner("default.mail_from").unwrap();
    assert_eq!(from, built_in.mail_from);
    for row in [
        "| `smtp_url` | *(unset: the outbox)* | `ROCKET_SMTP_URL` |",
        "| `mail_from` | `MiniAuth <miniauth@localhost>` | `ROCKET_MAIL_FROM` |",
    ] {
        assert!(readme.contains(row), "the README's configuration table lacks {row}");
    }
}
