//! `GET /metrics`: after known traffic, every series counts exactly what happened (requests by
//! route template and status, sign-ins by outcome, sign-ups, refreshes and reuse, mails, the
//! pool and the password queue); labels never hold a raw path or a name; only the clients of
//! `metrics_from` are answered (loopback by default), and not through a proxy MiniAuth was not
//! told of.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{bearer, expect, now, problem, totp_code, TestApp};
use rocket::http::{ContentType, Header, Status};
use rocket::serde::json::json;

backend_tests!(metrics_count_known_traffic, only_the_clients_of_metrics_from_are_answered);

backend_tests_with!(|figment| figment.merge(("metrics_from", ["10.0.0.0/8"])).merge(("trusted_proxies", ["127.0.0.1"]));
    a_scraper_behind_a_trusted_proxy_is_answered => behind_a_trusted_proxy_on_sqlite, behind_a_trusted_proxy_on_postgres);

backend_tests_with!(|figment| figment.merge(("metrics_from", Vec::<String>::new()));
    no_one_is_answered_when_metrics_from_is_empty => metrics_off_on_sqlite, metrics_off_on_postgres);

const PASSWORD: &str = "correct horse battery";

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get("/metrics").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    let content_type = response.content_type().expect("a content type");
    assert_eq!(content_type.to_string(), "text/plain; version=0.0.4; charset=utf-8");
    response.into_string().await.unwrap()
}

/// The value of the one sample of `series` (its name and labels, as written).
fn sample(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|line| line.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn sign_ins(text: &str, outcome: &str) -> f64 {
    sample(text, &format!(r#"miniauth_sign_ins_total{{outcome="{outcome}"}}"#))
}

fn requests(text: &str, method: &str, route: &str, status: u16) -> f64 {
    sample(
        text,
        &format!(
            r#"miniauth_http_request_duration_seconds_count{{method="{method}",route="{route}",status="{status}"}}"#
        ),
    )
}

async fn metrics_count_known_traffic(app: TestApp) {
    let before = scrape(&app).await;
    for outcome in ["success", "wrong_password", "throttled", "second_factor_asked", "second_factor_failed"] {
        assert_eq!(sign_ins(&before, outcome), 0.0, "{outcome} before any traffic");
    }
    assert_eq!(sample(&before, "miniauth_sign_ups_total"), 0.0);

    app.registered("meter-alice", PASSWORD).await;
    app.registered("meter-bob", PASSWORD).await;
    let alice = app.sign_in("meter-alice", PASSWORD).await;
    for _ in 0..3 {
        expect(app.profile(&alice.access).await, Status::Ok).await;
    }
    // Five wrong passwords block the pair: the sixth try is throttled.
    for _ in 0..5 {
        problem(app.login("meter-bob", "not the password").await, Status::Unauthorized).await;
    }
    problem(app.login("meter-bob", "not the password").await, Status::TooManyRequests).await;
    // Two-step sign-in: asked for, then a wrong code.
    let (secret, _) = app.turn_on_totp(&alice.access, PASSWORD).await;
    let asked = problem(app.login("meter-alice", PASSWORD).await, Status::Forbidden).await;
    let mfa_token = asked["mfa_token"].as_str().unwrap();
    let wrong = if totp_code(&secret, now()) == "000000" { "111111" } else { "000000" };
    let refused =
        app.post_json("/auth/login/second-factor", json!({ "mfa_token": mfa_token, "code": wrong })).await;
    problem(refused, Status::Unauthorized).await;
    // A refresh, and an unknown token refused (reuse comes below, past the grace period).
    let renewed = expect(app.refresh(&alice.refresh).await, Status::Ok).await;
    problem(app.refresh("no such token").await, Status::Unauthorized).await;
    // A path no route has, and one with a value in it.
    app.client.get("/no/such/page/meter-alice").dispatch().await;
    let response =
        app.client.delete("/auth/apps/client-of-meter-alice").header(bearer(&alice.access)).dispatch().await;
    assert_eq!(response.status(), Status::NotFound);

    let text = scrape(&app).await;
    assert_eq!(sample(&text, "miniauth_sign_ups_total"), 2.0);
    assert_eq!(sign_ins(&text, "success"), 1.0);
    assert_eq!(sign_ins(&text, "wrong_password"), 5.0);
    assert_eq!(sign_ins(&text, "throttled"), 1.0);
    assert_eq!(sign_ins(&text, "second_factor_asked"), 1.0);
    assert_eq!(sign_ins(&text, "second_factor_failed"), 1.0);
    assert_eq!(sample(&text, r#"miniauth_refreshes_total{outcome="renewed"}"#), 1.0);
    assert_eq!(sample(&text, r#"miniauth_refreshes_total{outcome="refused"}"#), 1.0);
    assert_eq!(sample(&text, "miniauth_refresh_reuse_total"), 0.0);
    assert_eq!(requests(&text, "GET", "/auth/profile", 200), 3.0);
    assert_eq!(requests(&text, "POST", "/auth/register", 201), 2.0);
    assert_eq!(requests(&text, "POST", "/auth/login", 401), 5.0);
    assert_eq!(requests(&text, "POST", "/auth/login", 429), 1.0);
    assert_eq!(requests(&text, "GET", "unmatched", 404), 1.0);
    assert_eq!(requests(&text, "DELETE", "/auth/apps/<client_id>", 404), 1.0);
    // The first scrape counted itself once it was answered.
    assert_eq!(requests(&text, "GET", "/metrics", 200), 1.0);
    assert!(text.contains(r#"miniauth_db_connections{state="in_use"}"#), "{text}");
    assert!(text.contains(r#"miniauth_db_connections{state="idle"}"#), "{text}");
    assert_eq!(sample(&text, "miniauth_hash_queue"), 0.0);
    assert!(sample(&text, "process_resident_memory_bytes") > 0.0);
    // Never a raw path, a name or a token.
    for secret in
        ["meter-alice", "meter-bob", "client-of", "/no/such", renewed["refresh_token"].as_str().unwrap()]
    {
        assert!(!text.contains(secret), "{secret} is in the metrics");
    }

    // A confirmation mail, written to the outbox by the delivery task.
    let response = app
        .client
        .put("/auth/email")
        .header(ContentType::JSON)
        .header(bearer(renewed["access_token"].as_str().unwrap()))
        .body(json!({ "email": "alice@example.com" }).to_string())
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Accepted);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sample(&scrape(&app).await, r#"miniauth_mails_total{outcome="sent"}"#) < 1.0 {
        assert!(Instant::now() < deadline, "the mail was never counted");
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The old refresh token again, past its grace: reuse.
    app.execute(&["UPDATE refresh_tokens SET used_at = used_at - 3600".to_owned()]).await;
    problem(app.refresh(&alice.refresh).await, Status::Unauthorized).await;
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "miniauth_refresh_reuse_total"), 1.0);
    assert_eq!(sample(&text, r#"miniauth_refreshes_total{outcome="refused"}"#), 2.0);
}

fn from(address: &str) -> SocketAddr {
    address.parse().unwrap()
}

async fn only_the_clients_of_metrics_from_are_answered(app: TestApp) {
    for client in ["127.0.0.1:5000", "[::1]:5000"] {
        let response = app.client.get("/metrics").remote(from(client)).dispatch().await;
        assert_eq!(response.status(), Status::Ok, "{client}");
    }
    // Another address gets what a path with no route gets.
    let response = app.client.get("/metrics").remote(from("203.0.113.9:5000")).dispatch().await;
    assert_eq!(response.status(), Status::NotFound);
    let page = response.into_string().await.unwrap();
    assert!(!page.contains("miniauth_"), "{page}");
    // Through a proxy nobody said to trust, the peer is the proxy, not the client.
    for header in ["X-Forwarded-For", "X-Real-IP", "Forwarded"] {
        let response = app
            .client
            .get("/metrics")
            .remote(from("127.0.0.1:5000"))
            .header(Header::new(header, "203.0.113.9"))
            .dispatch()
            .await;
        assert_eq!(response.status(), Status::NotFound, "{header}");
    }
}

async fn a_scraper_behind_a_trusted_proxy_is_answered(app: TestApp) {
    let through = |client: &'static str| {
        app.client
            .get("/metrics")
            .remote(from("127.0.0.1:5000"))
            .header(Header::new("X-Forwarded-For", client))
    };
    assert_eq!(through("10.1.2.3").dispatch().await.status(), Status::Ok);
    assert_eq!(through("203.0.113.9").dispatch().await.status(), Status::NotFound);
    // The proxy itself is not in metrics_from.
    let response = app.client.get("/metrics").remote(from("127.0.0.1:5000")).dispatch().await;
    assert_eq!(response.status(), Status::NotFound);
}

async fn no_one_is_answered_when_metrics_from_is_empty(app: TestApp) {
    let response = app.client.get("/metrics").remote(from("127.0.0.1:5000")).dispatch().await;
    assert_eq!(response.status(), Status::NotFound);
}
