//! bcrypt: cost 12 unless configured otherwise (that it never runs on the async executor is
//! tested beside the hasher, in `src/auth/password.rs`).

#[test]
fn the_default_bcrypt_cost_is_12_and_tests_lower_it_through_configuration() {
    assert_eq!(miniauth::config::Settings::default().hashing.cost, 12);
    let configured: u32 = rocket::Config::figment().extract_inner("bcrypt_cost").unwrap();
    assert_eq!(configured, 12, "Rocket.toml keeps the production cost");
}
