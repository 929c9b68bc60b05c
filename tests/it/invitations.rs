//! Sign-up by invitation (`registration = "invite"`): an invitation makes one account, through
//! the page or the API, and puts it in its groups; a missing, unknown, used, expired or revoked
//! one is refused with the reason and creates nothing; a taken name leaves it unused; expiry
//! follows a clock the test sets; the OpenAPI document asks for it; the purge removes spent ones.

use crate::common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rocket::figment::Figment;
use rocket::http::Status;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use common::browser::{csrf_from, get_page, location, post_form};
use common::{expect, jwt_payload, problem, TestApp};
use miniauth::domain::{PublicUrl, Username};
use miniauth::store;
use miniauth::store::invitations::Standing;

const PASSWORD: &str = "quiet lantern trombone";
const HOUR: Duration = Duration::from_secs(3600);

fn invite_only(figment: Figment) -> Figment {
    figment.merge(("registration", "invite"))
}

backend_tests_with!(
    invite_only;
    an_invitation_makes_one_account_in_its_groups => sqlite_one_account, postgres_one_account,
    a_sign_up_without_a_usable_invitation_says_why_and_creates_nothing => sqlite_refused, postgres_refused,
    a_taken_username_leaves_the_invitation_unused => sqlite_taken, postgres_taken,
    concurrent_sign_ups_with_one_invitation_make_one_account => sqlite_race, postgres_race,
    the_sign_up_page_carries_the_invitation => sqlite_page, postgres_page,
    the_openapi_document_asks_for_the_invitation => sqlite_document, postgres_document,
    an_invitation_expires_by_the_clock => sqlite_expiry, postgres_expiry,
    the_purge_removes_spent_invitations_once_retention_is_over => sqlite_purge, postgres_purge,
);

backend_tests_with!(
    |figment| figment;
    with_open_registration_an_invitation_still_puts_the_account_in_its_groups => sqlite_open, postgres_open,
);

/// Creates the groups (if need be) and an invitation into them, made at `now` for `lifetime`: its
/// token.
async fn invitation(app: &TestApp, groups: &[&str], lifetime: Duration, now: i64) -> (i64, String) {
    let db = app.store();
    let mut ids = Vec::new();
    for name in groups {
        let name = Username::parse(name).unwrap();
        let id = match store::groups::create(&db, &name, now, miniauth::store::Event::command("test"))
            .await
            .unwrap()
        {
            Some(id) => id,
            None => store::groups::find(&db, name.as_str()).await.unwrap().unwrap().id,
        };
        ids.push(id);
    }
    let public_url = PublicUrl::parse("http://127.0.0.1:8000").unwrap();
    let made = miniauth::auth::invitations::invite(
        &db,
        &public_url,
        &ids,
        (lifetime, now),
        miniauth::store::Event::command("test"),
    )
    .await
    .unwrap();
    assert_eq!(made.link, format!("http://127.0.0.1:8000/register?invite={}", made.token));
    (made.id, made.token)
}

async fn sign_up<'a>(
    app: &'a TestApp,
    username: &str,
    invite: Option<&str>,
) -> rocket::local::asynchronous::LocalResponse<'a> {
    let mut body = json!({ "username": username, "password": PASSWORD });
    if let Some(invite) = invite {
        body["invite"] = json!(invite);
    }
    app.post_json("/auth/register", body).await
}

async fn standing(app: &TestApp, id: i64) -> Standing {
    let found = store::invitations::find(&app.store(), id).await.unwrap().expect("the invitation");
    found.standing(store::now())
}

async fn an_invitation_makes_one_account_in_its_groups(app: TestApp) {
    let (id, token) = invitation(&app, &["Family", "friends"], HOUR, store::now()).await;
    let user = expect(sign_up(&app, "alice", Some(&token)).await, Status::Created).await;
    assert_eq!(user["groups"], json!(["Family", "friends"]), "{user}");
    let tokens = app.sign_in("alice", PASSWORD).await;
    assert_eq!(jwt_payload(&tokens.access)["groups"], json!(["Family", "friends"]));
    let profile = expect(app.profile(&tokens.access).await, Status::Ok).await;
    assert_eq!(profile["groups"], json!(["Family", "friends"]), "{profile}");
    // Spent: a second account is refused and nothing is made.
    let again = problem(sign_up(&app, "mallory", Some(&token)).await, Status::Forbidden).await;
    assert_eq!(
        again["detail"],
        "This invitation has been used already. Ask the administrator for a new one."
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(standing(&app, id).await, Standing::Used);
    let listed = store::invitations::list(&app.store()).await.unwrap();
    assert_eq!(listed[0].used_by.as_deref(), Some("alice"));
    // Only its hash is kept.
    let kept = app.count(&format!("SELECT COUNT(*) FROM invitations WHERE token_hash = '{token}'")).await;
    assert_eq!(kept, 0);
}

async fn a_sign_up_without_a_usable_invitation_says_why_and_creates_nothing(app: TestApp) {
    let db = app.store();
    let now = store::now();
    let (revoked_id, revoked) = invitation(&app, &["family"], HOUR, now).await;
    assert!(store::invitations::revoke(&db, revoked_id, now, miniauth::store::Event::command("test"))
        .await
        .unwrap());
    let (_, expired) = invitation(&app, &[], HOUR, now - 2 * 3600).await;
    let cases = [
        (None, "Sign-up on this server needs an invitation: ask its administrator for one, and open the link it gives."),
        (Some("   "), "Sign-up on this server needs an invitation: ask its administrator for one, and open the link it gives."),
        (Some("not-an-invitation"), "This invitation is not valid: check that the link is complete. Ask the administrator for a new one."),
        (Some(&revoked[..]), "This invitation was withdrawn. Ask the administrator for a new one."),
        (Some(&expired[..]), "This invitation has expired. Ask the administrator for a new one."),
    ];
    for (invite, detail) in cases {
        let refused = problem(sign_up(&app, "walkin", invite).await, Status::Forbidden).await;
        assert_eq!(refused["detail"], detail, "{invite:?}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM group_members").await, 0);
    // The pages say the same, and offer no form.
    let (status, page) = get_page(&app, "/register").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Sign-up is by invitation") && !page.contains("<form class=\"form\""), "{page}");
    let (status, page) = get_page(&app, &format!("/register?invite={expired}")).await;
    assert_eq!(status, Status::Forbidden);
    assert!(page.contains("This invitation has expired") && !page.contains("name=\"password\""), "{page}");
    // No page links to a sign-up that needs an invitation's own link.
    for uri in ["/", "/login"] {
        let (_, page) = get_page(&app, uri).await;
        assert!(!page.contains("href=\"/register\""), "{uri} links to sign-up: {page}");
    }
}

async fn a_taken_username_leaves_the_invitation_unused(app: TestApp) {
    let (_, first) = invitation(&app, &[], HOUR, store::now()).await;
    let (second_id, second) = invitation(&app, &["family"], HOUR, store::now()).await;
    expect(sign_up(&app, "alice", Some(&first)).await, Status::Created).await;
    expect(sign_up(&app, "ALICE", Some(&second)).await, Status::Conflict).await;
    assert_eq!(standing(&app, second_id).await, Standing::Pending);
    // Field errors too leave it as it was.
    expect(sign_up(&app, "x", Some(&second)).await, Status::UnprocessableEntity).await;
    assert_eq!(standing(&app, second_id).await, Standing::Pending);
    let bob = expect(sign_up(&app, "bob", Some(&second)).await, Status::Created).await;
    assert_eq!(bob["groups"], json!(["family"]));
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 2);
}

async fn concurrent_sign_ups_with_one_invitation_make_one_account(app: TestApp) {
    for round in 0..5 {
        let (id, token) = invitation(&app, &["family"], HOUR, store::now()).await;
        let (first, second) = (format!("first{round}"), format!("second{round}"));
        let (a, b) =
            rocket::tokio::join!(sign_up(&app, &first, Some(&token)), sign_up(&app, &second, Some(&token)));
        let mut statuses = [a.status().code, b.status().code];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 403], "round {round}");
        assert_eq!(standing(&app, id).await, Standing::Used);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 5);
    assert_eq!(app.count("SELECT COUNT(*) FROM group_members").await, 5);
}

async fn the_sign_up_page_carries_the_invitation(app: TestApp) {
    let (id, token) = invitation(&app, &["family"], HOUR, store::now()).await;
    let (status, page) = get_page(&app, &format!("/register?invite={token}")).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains(&format!("<input type=\"hidden\" name=\"invite\" value=\"{token}\">")), "{page}");
    let csrf = csrf_from(&app, &format!("/register?invite={token}")).await;
    let mut fields = vec![
        ("csrf_token", csrf.as_str()),
        ("username", "alice"),
        ("password", PASSWORD),
        ("password_confirm", "not the same"),
        ("invite", token.as_str()),
    ];
    // A mistake in the form keeps the invitation in it, unspent.
    let response = post_form(&app, "/register", &fields).await;
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let page = response.into_string().await.unwrap_or_default();
    assert!(page.contains(&format!("name=\"invite\" value=\"{token}\"")), "{page}");
    assert_eq!(standing(&app, id).await, Standing::Pending);
    fields[3].1 = PASSWORD;
    let response = post_form(&app, "/register", &fields).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response).as_deref(), Some("/profile"));
    let (_, profile) = get_page(&app, "/profile").await;
    assert!(profile.contains("<dd id=\"groups\">family</dd>"), "{profile}");
    assert_eq!(standing(&app, id).await, Standing::Used);
}

async fn the_openapi_document_asks_for_the_invitation(app: TestApp) {
    let response = app.client.get("/openapi.json").dispatch().await;
    let document: Value = serde_json::from_str(&response.into_string().await.unwrap()).unwrap();
    let register = &document["paths"]["/auth/register"]["post"];
    assert!(register["description"].as_str().unwrap_or_default().contains("invitation"), "{register}");
    assert!(register["responses"]["403"].is_object(), "{register}");
    let schema = &document["components"]["schemas"]["NewCredentials"];
    assert!(schema["required"].as_array().unwrap().contains(&json!("invite")), "{schema}");
}

/// The clock is the test's: an invitation made at `t` for a minute works up to `t + 59` and not
/// at `t + 60`, whatever the time is. (`t` is now: the app's own purge would remove an invitation
/// that expired long ago.)
async fn an_invitation_expires_by_the_clock(app: TestApp) {
    let db = app.store();
    let t = store::now();
    let (id, token) = invitation(&app, &["family"], Duration::from_secs(60), t).await;
    let hash = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
    let hashed = |name: &str| ("$2b$04$".to_owned() + &"a".repeat(53), Username::parse(name).unwrap());
    let (password_hash, late) = hashed("late");
    let refused = store::invitations::sign_up(
        &db,
        (&late, &password_hash),
        &hash,
        t + 60,
        miniauth::store::Event::command("test"),
    )
    .await
    .unwrap();
    assert!(refused.is_none(), "expired at t + 60");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0, "the account went with the refusal");
    let found = store::invitations::find(&db, id).await;
    let found = found.unwrap_or_else(|e| panic!("{e:?}")).unwrap_or_else(|| panic!("no invitation {id}"));
    assert_eq!((found.standing(t + 59), found.standing(t + 60)), (Standing::Pending, Standing::Expired));
    let (_, on_time) = hashed("on_time");
    let (used, user) = store::invitations::sign_up(
        &db,
        (&on_time, &password_hash),
        &hash,
        t + 59,
        miniauth::store::Event::command("test"),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!((used, user.groups), (id, vec!["family".to_owned()]));
    // Spent: not even the clock turned back brings it back.
    let (_, again) = hashed("again");
    assert!(store::invitations::sign_up(
        &db,
        (&again, &password_hash),
        &hash,
        t,
        miniauth::store::Event::command("test")
    )
    .await
    .unwrap()
    .is_none());
    let late = problem(sign_up(&app, "later", Some(&token)).await, Status::Forbidden).await;
    assert!(late["detail"].as_str().unwrap().contains("used already"), "{late}");
}

async fn the_purge_removes_spent_invitations_once_retention_is_over(app: TestApp) {
    let db = app.store();
    let now = store::now();
    let (_, used) = invitation(&app, &["family"], HOUR, now).await;
    expect(sign_up(&app, "alice", Some(&used)).await, Status::Created).await;
    let (revoked, _) = invitation(&app, &[], HOUR, now).await;
    store::invitations::revoke(&db, revoked, now, miniauth::store::Event::command("test")).await.unwrap();
    invitation(&app, &[], HOUR, now - 2 * 3600).await; // expired an hour ago
    let (pending, _) = invitation(&app, &["family"], 30 * 24 * HOUR, now).await;
    // Kept while retention lasts (for `miniauth invite list`)…
    store::purge::purge_ended(&db, now + 60, (3 * 3600, 90 * 86400)).await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM invitations").await, 4);
    // …then gone, with their groups; the pending one stays.
    store::purge::purge_ended(&db, now + 4 * 3600, (3600, 90 * 86400)).await.unwrap();
    let left: Vec<i64> = store::invitations::list(&db).await.unwrap().iter().map(|i| i.id).collect();
    assert_eq!(left, vec![pending]);
    assert_eq!(app.count("SELECT COUNT(*) FROM invitation_groups").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM group_members").await, 1, "alice stays in her group");
}

async fn with_open_registration_an_invitation_still_puts_the_account_in_its_groups(app: TestApp) {
    let (_, token) = invitation(&app, &["family"], HOUR, store::now()).await;
    let plain = expect(sign_up(&app, "walkin", None).await, Status::Created).await;
    assert_eq!(plain["groups"], json!([]));
    let invited = expect(sign_up(&app, "cousin", Some(&token)).await, Status::Created).await;
    assert_eq!(invited["groups"], json!(["family"]));
    let spent = problem(sign_up(&app, "other", Some(&token)).await, Status::Forbidden).await;
    assert!(spent["detail"].as_str().unwrap().contains("used already"));
    let tokens = app.sign_in("cousin", PASSWORD).await;
    let profile = expect(app.profile(&tokens.access).await, Status::Ok).await;
    assert_eq!(profile["groups"], json!(["family"]));
}
