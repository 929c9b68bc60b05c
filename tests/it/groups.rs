//! Groups: a user's groups in the profile, the access token (`groups`) and forward auth's
//! answer (`Remote-Groups`); a host ruled by a group admits its members only, decided on the
//! groups as they are at each request, so a member taken out (or a group deleted) is refused at
//! once, with a token minted before. Through real proxies: `tests/it/proxies.rs`; the commands
//! that manage groups: `tests/it/cli.rs`.

use crate::common;

use std::net::SocketAddr;

use rocket::figment::Figment;
use rocket::http::{Header, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::json;

use common::{bearer, expect, jwt_payload, TestApp};
use miniauth::domain::Username;
use miniauth::store::{self, Store};

const PASSWORD: &str = "quiet lantern trombone";

/// Photos for the family group and carol, everything else below example.com for anyone signed in.
fn protecting(figment: Figment) -> Figment {
    let hosts = json!({"hosts": {
        "photos.example.com": {"groups": ["Family"], "users": ["carol"]},
        "example.com": {"any_signed_in": true},
    }});
    figment
        .merge(("public_url", "https://auth.example.com"))
        .merge(("trusted_proxies", ["127.0.0.1/32"]))
        .merge(("forward_auth_domains", ["example.com"]))
        .merge(("forward_auth", hosts))
}

backend_tests_with!(
    protecting;
    groups_reach_the_profile_the_token_and_the_proxy => sqlite_everywhere, postgres_everywhere,
    a_group_rule_admits_its_members_as_they_are_now => sqlite_live, postgres_live,
);

/// A group of that name (made if need be): its id.
async fn group(db: &Store, name: &str) -> i64 {
    let parsed = Username::parse(name).unwrap();
    match store::groups::create(db, &parsed, store::now(), miniauth::store::Event::command("test"))
        .await
        .unwrap()
    {
        Some(id) => id,
        None => store::groups::find(db, name).await.unwrap().unwrap().id,
    }
}

async fn user_id(db: &Store, name: &str) -> i64 {
    store::users::find_user(db, name).await.unwrap().expect("the user").id
}

/// What nginx asks about `GET url` for the holder of `token`.
async fn ask<'c>(app: &'c TestApp, url: &str, token: &str) -> LocalResponse<'c> {
    app.client
        .get("/authz/auth-request")
        .remote("127.0.0.1:50000".parse::<SocketAddr>().unwrap())
        .header(Header::new("X-Original-Method", "GET"))
        .header(Header::new("X-Original-URL", url.to_owned()))
        .header(Header::new("Accept", "application/json"))
        .header(bearer(token))
        .dispatch()
        .await
}

async fn groups_reach_the_profile_the_token_and_the_proxy(app: TestApp) {
    let db = app.store();
    let [before] = app.register_and_sign_in("alice", PASSWORD).await;
    assert_eq!(jwt_payload(&before.access)["groups"], json!([]));
    let alice = user_id(&db, "alice").await;
    for name in ["family", "Admins"] {
        let id = group(&db, name).await;
        assert!(store::groups::add_member(
            &db,
            (id, alice),
            store::now(),
            miniauth::store::Event::command("test")
        )
        .await
        .unwrap());
    }
    // The profile reads them as they are now, for a token minted before.
    let profile = expect(app.profile(&before.access).await, Status::Ok).await;
    assert_eq!(profile["groups"], json!(["Admins", "family"]), "{profile}");
    // A new token carries them; so does a refreshed one.
    let after = app.sign_in("alice", PASSWORD).await;
    assert_eq!(jwt_payload(&after.access)["groups"], json!(["Admins", "family"]));
    let refreshed = expect(app.refresh(&after.refresh).await, Status::Ok).await;
    let refreshed = refreshed["access_token"].as_str().unwrap();
    assert_eq!(jwt_payload(refreshed)["groups"], json!(["Admins", "family"]));
    // The proxy hears them, comma-separated, for the old token too.
    for token in [&before.access, &after.access] {
        let answer = ask(&app, "https://photos.example.com/", token).await;
        assert_eq!(answer.status(), Status::Ok);
        assert_eq!(answer.headers().get_one("Remote-User"), Some("alice"));
        assert_eq!(answer.headers().get_one("Remote-Groups"), Some("Admins,family"));
    }
    // Someone in no group: the header is empty (and nginx leaves it out).
    let [bob] = app.register_and_sign_in("bob", PASSWORD).await;
    let answer = ask(&app, "https://wiki.example.com/", &bob.access).await;
    assert_eq!(answer.status(), Status::Ok);
    assert_eq!(answer.headers().get_one("Remote-Groups"), Some(""));
}

async fn a_group_rule_admits_its_members_as_they_are_now(app: TestApp) {
    let db = app.store();
    let [alice] = app.register_and_sign_in("alice", PASSWORD).await;
    let [bob] = app.register_and_sign_in("bob", PASSWORD).await;
    let [carol] = app.register_and_sign_in("carol", PASSWORD).await;
    let photos = "https://photos.example.com/album";
    let family = group(&db, "family").await;
    let alice_id = user_id(&db, "alice").await;
    store::groups::add_member(&db, (family, alice_id), store::now(), miniauth::store::Event::command("test"))
        .await
        .unwrap();
    assert_eq!(ask(&app, photos, &alice.access).await.status(), Status::Ok, "a member");
    assert_eq!(ask(&app, photos, &carol.access).await.status(), Status::Ok, "listed by name");
    let refused = ask(&app, photos, &bob.access).await;
    assert_eq!(refused.status(), Status::Forbidden, "neither");
    let refused = refused.into_string().await.unwrap_or_default();
    assert!(refused.contains("bob may not use photos.example.com"), "{refused}");
    // Out of the group: refused at the next request, with the token that passed just now.
    assert!(store::groups::remove_member(&db, family, alice_id, miniauth::store::Event::command("test"))
        .await
        .unwrap());
    assert_eq!(ask(&app, photos, &alice.access).await.status(), Status::Forbidden);
    assert_eq!(ask(&app, "https://wiki.example.com/", &alice.access).await.status(), Status::Ok);
    // Back in, then the group deleted: the same.
    store::groups::add_member(&db, (family, alice_id), store::now(), miniauth::store::Event::command("test"))
        .await
        .unwrap();
    assert_eq!(ask(&app, photos, &alice.access).await.status(), Status::Ok);
    store::groups::delete(&db, family, miniauth::store::Event::command("test")).await.unwrap();
    assert_eq!(ask(&app, photos, &alice.access).await.status(), Status::Forbidden);
    let profile = expect(app.profile(&alice.access).await, Status::Ok).await;
    assert_eq!(profile["groups"], json!([]));
}
