//! Every setting is in `Rocket.toml` with the built-in default, under the exact name operators
//! and scripts use, and explained in the settings table of `docs/configuration.md`: the
//! defaults are set in one place (`config::Written::default`), and these tests hold the file and
//! the table to it.

use rocket::figment::providers::{Format, Toml};
use rocket::figment::Figment;

#[test]
fn the_throttling_settings_are_in_rocket_toml_with_their_defaults_and_in_the_docs() {
    let built_in = miniauth::config::Written::default();
    let expected = [
        ("login_max_failures_pair", built_in.login_max_failures_pair, 5),
        ("login_max_failures_address", built_in.login_max_failures_address, 50),
        ("login_block_seconds", built_in.login_block_seconds, 900),
        ("login_max_failures_user_hour", built_in.login_max_failures_user_hour, 100),
        ("register_max_per_address_hour", built_in.register_max_per_address_hour, 30),
    ];
    let file = Figment::from(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml")));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    for (key, default, spec) in expected {
        assert_eq!(default, spec, "the built-in {key}");
        let in_file: u32 =
            file.extract_inner(&format!("default.{key}")).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(in_file, spec, "{key} in Rocket.toml");
        let row = format!("| `{key}` | `{spec}` | `ROCKET_{}` |", key.to_uppercase());
        assert!(readme.contains(&row), "the configuration table lacks {row}");
    }
}

/// The signing-key settings likewise; the ones unset by default are in the table.
#[test]
fn the_key_settings_are_in_rocket_toml_with_their_defaults_and_in_the_docs() {
    let built_in = miniauth::config::Written::default();
    assert_eq!(built_in.jwt_algorithm, "EdDSA");
    assert_eq!(built_in.jwks_cache_seconds, 600);
    let file = Figment::from(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml")));
    let algorithm: String = file.extract_inner("default.jwt_algorithm").unwrap();
    assert_eq!(algorithm, "EdDSA");
    let cache: u64 = file.extract_inner("default.jwks_cache_seconds").unwrap();
    assert_eq!(cache, 600);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    for row in [
        "| `jwt_algorithm` | `EdDSA` | `ROCKET_JWT_ALGORITHM` |",
        "| `jwks_cache_seconds` | `600` | `ROCKET_JWKS_CACHE_SECONDS` |",
        "| `jwt_private_key` | *(unset)* | `ROCKET_JWT_PRIVATE_KEY` |",
        "| `public_url` | `http://<address>:<port>` (`http://localhost:<port>` on a loopback address) | `ROCKET_PUBLIC_URL` |",
        "| `token_secret` | *(in the database)* | `ROCKET_TOKEN_SECRET` |",
    ] {
        assert!(readme.contains(row), "the configuration table lacks {row}");
    }
}

/// The recovery and mail settings likewise: in `Rocket.toml` with the built-in
/// defaults, and in the table.
#[test]
fn the_mail_settings_are_in_rocket_toml_with_their_defaults_and_in_the_docs() {
    let built_in = miniauth::config::Written::default();
    let expected = [
        ("reset_token_ttl", built_in.reset_token_ttl, 1800),
        ("confirm_token_ttl", built_in.confirm_token_ttl, 86_400),
        ("mail_max_per_account_hour", u64::from(built_in.mail_max_per_account_hour), 3),
        ("mail_max_per_address_hour", u64::from(built_in.mail_max_per_address_hour), 10),
    ];
    let file = Figment::from(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml")));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    for (key, default, spec) in expected {
        assert_eq!(default, spec, "the built-in {key}");
        let in_file: u64 =
            file.extract_inner(&format!("default.{key}")).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(in_file, spec, "{key} in Rocket.toml");
        let row = format!("| `{key}` | `{spec}` | `ROCKET_{}` |", key.to_uppercase());
        assert!(readme.contains(&row), "the configuration table lacks {row}");
    }
    assert!(built_in.smtp_url.is_none(), "the outbox by default");
    let from: String = file.extract_inner("default.mail_from").unwrap();
    assert_eq!(from, built_in.mail_from);
    for row in [
        "| `smtp_url` | *(unset: the outbox)* | `ROCKET_SMTP_URL` |",
        "| `mail_from` | `MiniAuth <miniauth@localhost>` | `ROCKET_MAIL_FROM` |",
    ] {
        assert!(readme.contains(row), "the configuration table lacks {row}");
    }
}

/// Every setting at all: `Rocket.toml` sets each one that has a built-in default to that
/// default (and leaves the unset ones commented out), and the table has a row for each, whose
/// default is the built-in one.
#[test]
fn every_setting_has_one_default_that_rocket_toml_and_the_docs_repeat() {
    let built_in = serde_json::to_value(miniauth::config::Written::default()).unwrap();
    let file: serde_json::Value =
        Figment::from(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml")))
            .extract_inner("default")
            .unwrap();
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    let mut wrong = Vec::new();
    for (key, default) in built_in.as_object().unwrap() {
        // Unset: no value, or a table of rules with none in it.
        let empty_table =
            default.as_object().is_some_and(|table| table.values().all(|v| v == &serde_json::json!({})));
        let unset = default.is_null() || default == "" || empty_table;
        match (file.get(key), unset) {
            (None, true) => {}
            (Some(in_file), false) if in_file == default => {}
            (in_file, _) => {
                wrong.push(format!("Rocket.toml has {key} = {in_file:?}, the built-in default is {default}"))
            }
        }
        // The row's first cell names the setting (with its neighbours, or its sub-keys).
        let row = docs.lines().find(|line| {
            let first = line.split('|').nth(1).unwrap_or_default();
            first.contains(&format!("`{key}`")) || first.contains(&format!("`{key}."))
        });
        let Some(row) = row else {
            wrong.push(format!("the table has no row for {key}"));
            continue;
        };
        let shown = row.split('|').nth(2).unwrap_or_default().trim();
        let expected = match default {
            serde_json::Value::String(text) => format!("`{text}`"),
            other => format!("`{other}`"),
        };
        if !unset && !shown.starts_with(&expected) {
            wrong.push(format!("the table shows {key}'s default as {shown}, the built-in one is {expected}"));
        }
        // Unset, the table says what happens then: `*(…)*`, or the address made up instead.
        if unset && !shown.starts_with("*(") && !shown.contains('<') {
            wrong.push(format!("the table shows {key}'s default as {shown}, and it is unset"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
