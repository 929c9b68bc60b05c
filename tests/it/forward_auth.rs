//! Forward auth: what `/authz/forward-auth` (Traefik, Caddy) and
//! `/authz/auth-request` (nginx) answer a trusted proxy, the sign-in page's return to a
//! protected app (`rd`), and session cookies scoped to a parent domain. Through real proxies:
//! `tests/proxies.rs`.

use crate::common;

use std::net::SocketAddr;

use rocket::figment::Figment;
use rocket::http::{Cookie, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::json;

use common::browser::{csrf_from, form_body, has_attribute, location, post_form, set_cookie};
use common::{bearer, TestApp, REFRESH_COOKIE, TOKEN_COOKIE};

const PASSWORD: &str = "quiet lantern trombone";
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const LOGIN: &str = "https://auth.example.com/login";

/// MiniAuth at `auth.example.com`, protecting `example.com` for the proxy on this machine, with
/// the session cookies for all of it; only alice may use the wiki, everyone signed in the rest.
fn protecting(figment: Figment) -> Figment {
    let hosts = json!({"hosts": {
        "wiki.example.com": {"users": ["Alice"]},
        "example.com": {"any_signed_in": true},
    }});
    figment
        .merge(("public_url", "https://auth.example.com"))
        .merge(("trusted_proxies", ["127.0.0.1/32", "::1"]))
        .merge(("forward_auth_domains", ["example.com"]))
        .merge(("forward_auth", hosts))
        .merge(("cookie_domain", "example.com"))
}

/// The same, with `Secure` cookies.
fn secure(figment: Figment) -> Figment {
    protecting(figment).merge(("cookie_secure", true))
}

backend_tests_with!(
    protecting;
    a_signed_in_visitor_passes_named_by_cookie_or_bearer => sqlite_passes, postgres_passes,
    a_signed_out_browser_is_sent_to_sign_in_and_brought_back => sqlite_sign_in_round_trip, postgres_sign_in_round_trip,
    a_new_user_signs_up_from_the_sign_in_page_and_is_brought_back => sqlite_sign_up_round_trip, postgres_sign_up_round_trip,
    anything_but_a_signed_out_browser_gets_a_bearer_challenge => sqlite_challenge, postgres_challenge,
    only_trusted_proxies_are_answered_and_only_with_the_headers_they_must_send => sqlite_trusted_only, postgres_trusted_only,
    hosts_outside_the_protected_domains_are_refused_and_never_returned_to => sqlite_outside, postgres_outside,
    a_host_rule_admits_only_its_users => sqlite_host_rule, postgres_host_rule,
    a_revoked_session_stops_passing_at_once => sqlite_revoked, postgres_revoked,
    an_original_url_with_credentials_before_its_host_is_a_bad_request => sqlite_url_userinfo, postgres_url_userinfo,
    forwarded_headers_that_move_the_host_are_a_bad_request => sqlite_forwarded_userinfo, postgres_forwarded_userinfo,
);

backend_tests_with!(
    secure;
    with_secure_cookies_only_https_apps_are_returned_to => sqlite_https_only, postgres_https_only,
    a_cookie_domain_scopes_the_session_cookies_and_signing_out_clears_them_there => sqlite_cookie_domain, postgres_cookie_domain,
);

/// The same, with access tokens that live 2 seconds.
fn short_lived(figment: Figment) -> Figment {
    protecting(figment).merge(("access_token_ttl", 2))
}

backend_tests_with!(
    short_lived;
    a_browsers_background_requests_pass_while_its_session_lives => sqlite_background, postgres_background,
);

#[derive(Clone, Copy, Debug)]
enum Endpoint {
    /// Traefik and Caddy: `X-Forwarded-*`; a signed-out browser gets 302.
    ForwardAuth,
    /// nginx: `X-Original-*`; a signed-out browser gets 401 with `Location`.
    AuthRequest,
}

const ENDPOINTS: [Endpoint; 2] = [Endpoint::ForwardAuth, Endpoint::AuthRequest];

/// How a proxy on this machine asks about `method url`, with the client's own `headers`.
async fn ask<'c>(
    app: &'c TestApp,
    endpoint: Endpoint,
    method: &str,
    url: &str,
    headers: &[(&'static str, &str)],
) -> LocalResponse<'c> {
    ask_from(app, "127.0.0.1:50000", endpoint, method, url, headers).await
}

async fn ask_from<'c>(
    app: &'c TestApp,
    peer: &str,
    endpoint: Endpoint,
    method: &str,
    url: &str,
    headers: &[(&'static str, &str)],
) -> LocalResponse<'c> {
    let parsed = url::Url::parse(url).unwrap();
    let host = &parsed[url::Position::BeforeHost..url::Position::AfterPort];
    let uri = &parsed[url::Position::BeforePath..];
    let (path, proxy_headers) = match endpoint {
        Endpoint::ForwardAuth => (
            "/authz/forward-auth",
            vec![
                ("X-Forwarded-Method", method.to_owned()),
                ("X-Forwarded-Proto", parsed.scheme().to_owned()),
                ("X-Forwarded-Host", host.to_owned()),
                ("X-Forwarded-Uri", uri.to_owned()),
            ],
        ),
        Endpoint::AuthRequest => (
            "/authz/auth-request",
            vec![("X-Original-Method", method.to_owned()), ("X-Original-URL", url.to_owned())],
        ),
    };
    let mut request = app.client.get(path).remote(peer.parse::<SocketAddr>().unwrap());
    for (name, value) in proxy_headers {
        request = request.header(Header::new(name, value));
    }
    for (name, value) in headers {
        request = match *name {
            // Rocket's local client reads cookies from its own jar, not from a header.
            "Cookie" => value.split("; ").fold(request, |request, pair| {
                let (cookie, value) = pair.split_once('=').unwrap();
                request.cookie(Cookie::new(cookie.to_owned(), value.to_owned()))
            }),
            _ => request.header(Header::new(*name, value.to_string())),
        };
    }
    request.dispatch().await
}

fn header(response: &LocalResponse<'_>, name: &str) -> Option<String> {
    response.headers().get_one(name).map(str::to_owned)
}

/// The sign-in page's address for a visitor who wanted `url`.
fn sign_in_for(url: &str) -> String {
    let mut login = url::Url::parse(LOGIN).unwrap();
    login.query_pairs_mut().append_pair("rd", url);
    login.into()
}

async fn a_signed_in_visitor_passes_named_by_cookie_or_bearer(app: TestApp) {
    let alice = app.registered("alice", PASSWORD).await;
    let id = alice["id"].as_i64().unwrap().to_string();
    let token = app.sign_in("alice", PASSWORD).await.access;
    let cookie = format!("{TOKEN_COOKIE}={token}");
    for endpoint in ENDPOINTS {
        for (method, credentials) in [
            ("GET", ("Authorization", format!("Bearer {token}"))),
            ("POST", ("Authorization", format!("bearer {token}"))),
            ("GET", ("Cookie", cookie.clone())),
            ("DELETE", ("Cookie", cookie.clone())),
        ] {
            let url = "https://wiki.example.com/pages/Home?edit=1";
            let response = ask(&app, endpoint, method, url, &[(credentials.0, &credentials.1)]).await;
            assert_eq!(response.status(), Status::Ok, "{endpoint:?} {method} with {}", credentials.0);
            assert_eq!(header(&response, "Remote-User").as_deref(), Some("alice"));
            assert_eq!(header(&response, "Remote-User-Id"), Some(id.clone()));
            assert_eq!(header(&response, "Cache-Control").as_deref(), Some("no-store"));
        }
        // The app's own `Authorization` (another scheme) does not hide the cookie.
        let basic = [("Authorization", "Basic YWxpY2U6eA=="), ("Cookie", cookie.as_str())];
        let response = ask(&app, endpoint, "GET", "https://grafana.example.com/", &basic).await;
        assert_eq!(response.status(), Status::Ok, "{endpoint:?} with an app's Basic header");
        // HEAD asks the same question.
        let head = app
            .client
            .head(match endpoint {
                Endpoint::ForwardAuth => "/authz/forward-auth",
                Endpoint::AuthRequest => "/authz/auth-request",
            })
            .header(bearer(&token))
            .header(Header::new("X-Forwarded-Method", "GET"))
            .header(Header::new("X-Forwarded-Proto", "https"))
            .header(Header::new("X-Forwarded-Host", "wiki.example.com"))
            .header(Header::new("X-Forwarded-Uri", "/"))
            .header(Header::new("X-Original-Method", "GET"))
            .header(Header::new("X-Original-URL", "https://wiki.example.com/"))
            .dispatch()
            .await;
        assert_eq!(head.status(), Status::Ok);
        assert_eq!(header(&head, "Remote-User").as_deref(), Some("alice"));
    }
}

async fn a_signed_out_browser_is_sent_to_sign_in_and_brought_back(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let wanted = "https://wiki.example.com:8443/pages/Home?edit=1&lang=en";
    let forward = ask(&app, Endpoint::ForwardAuth, "GET", wanted, &[("Accept", HTML)]).await;
    assert_eq!(forward.status(), Status::Found);
    assert_eq!(location(&forward), Some(sign_in_for(wanted)));
    let nginx = ask(&app, Endpoint::AuthRequest, "HEAD", wanted, &[("Accept", HTML)]).await;
    assert_eq!(nginx.status(), Status::Unauthorized, "nginx passes on only 2xx, 401 and 403");
    assert_eq!(location(&nginx), Some(sign_in_for(wanted)));

    // The sign-in page keeps where to return, and returns there. Its form may lead there: a
    // browser applies the page's CSP `form-action` to the redirect after the form too.
    let page = format!("/login?rd={}", common::browser::percent_encode(wanted));
    let response = app.client.get(page.clone()).dispatch().await;
    let csp = header(&response, "Content-Security-Policy").unwrap();
    let targets = "http://example.com:* http://*.example.com:* https://example.com:* https://*.example.com:*";
    assert!(csp.contains(&format!("form-action 'self' {targets};")), "{csp}");
    let elsewhere = app.client.get("/password-reset").dispatch().await;
    let csp = header(&elsewhere, "Content-Security-Policy").unwrap();
    assert!(csp.contains("form-action 'self';"), "only the sign-in and sign-up forms lead away: {csp}");
    let html = app.client.get(page.clone()).dispatch().await.into_string().await.unwrap();
    let kept = common::browser::input_tag(&html, "rd");
    assert_eq!(common::browser::attribute(kept, "value").as_deref(), Some(wanted), "{kept}");
    let csrf = csrf_from(&app, &page).await;
    // A wrong password: the form again, still returning there.
    let fields =
        [("csrf_token", csrf.as_str()), ("username", "alice"), ("password", "wrong one"), ("rd", wanted)];
    let again = post_form(&app, "/login", &fields).await;
    assert_eq!(again.status(), Status::Unauthorized);
    let html = again.into_string().await.unwrap();
    let kept = common::browser::input_tag(&html, "rd");
    assert_eq!(common::browser::attribute(kept, "value").as_deref(), Some(wanted), "{kept}");
    let fields =
        [("csrf_token", csrf.as_str()), ("username", "alice"), ("password", PASSWORD), ("rd", wanted)];
    let signed_in = post_form(&app, "/login", &fields).await;
    assert_eq!(signed_in.status(), Status::SeeOther);
    assert_eq!(location(&signed_in).as_deref(), Some(wanted));

    // The browser now holds the cookie: the proxy lets it through.
    let token = common::browser::cookie(&app, TOKEN_COOKIE).expect("the session cookie");
    let cookie = format!("{TOKEN_COOKIE}={token}");
    let response =
        ask(&app, Endpoint::ForwardAuth, "GET", wanted, &[("Accept", HTML), ("Cookie", &cookie)]).await;
    assert_eq!(response.status(), Status::Ok);
    // A browser already signed in (its access token renewed on the way) goes straight back.
    let again = app.client.get(page).dispatch().await;
    assert_eq!(again.status(), Status::SeeOther);
    assert_eq!(location(&again).as_deref(), Some(wanted));
}

async fn anything_but_a_signed_out_browser_gets_a_bearer_challenge(app: TestApp) {
    let url = "https://wiki.example.com/api/items";
    for endpoint in ENDPOINTS {
        for (method, accept) in [("GET", "application/json"), ("GET", "*/*"), ("POST", HTML), ("PUT", HTML)] {
            let response = ask(&app, endpoint, method, url, &[("Accept", accept)]).await;
            assert_eq!(response.status(), Status::Unauthorized, "{endpoint:?} {method} {accept}");
            assert_eq!(header(&response, "WWW-Authenticate").as_deref(), Some("Bearer"));
            assert_eq!(location(&response), None, "{endpoint:?} {method} {accept}");
        }
        let bad = ask(&app, endpoint, "GET", url, &[("Authorization", "Bearer not-a-token")]).await;
        assert_eq!(bad.status(), Status::Unauthorized);
        assert_eq!(header(&bad, "WWW-Authenticate").as_deref(), Some(r#"Bearer error="invalid_token""#));
        // A browser with a bad cookie is sent to sign in again.
        let stale = [("Accept", HTML), ("Cookie", "miniauth_token=forged")];
        let response = ask(&app, endpoint, "GET", url, &stale).await;
        assert_eq!(location(&response), Some(sign_in_for(url)), "{endpoint:?}");
    }
}

async fn only_trusted_proxies_are_answered_and_only_with_the_headers_they_must_send(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let token = app.sign_in("alice", PASSWORD).await.access;
    let auth = format!("Bearer {token}");
    let url = "https://wiki.example.com/";
    for endpoint in ENDPOINTS {
        // Anyone else could write any URL into these headers: no decision at all.
        for peer in ["198.51.100.9:4000", "[2001:db8::1]:4000"] {
            let response = ask_from(&app, peer, endpoint, "GET", url, &[("Authorization", &auth)]).await;
            assert_eq!(response.status(), Status::Forbidden, "{endpoint:?} from {peer}");
            assert_eq!(header(&response, "Remote-User"), None);
            let body = response.into_string().await.unwrap();
            assert!(body.contains("trusted_proxies"), "{body}");
        }
        let response = ask_from(&app, "[::1]:4000", endpoint, "GET", url, &[("Authorization", &auth)]).await;
        assert_eq!(response.status(), Status::Ok, "{endpoint:?} from ::1");
    }
    // A trusted proxy that leaves out a header, or sends garbage, is told which.
    for (path, headers, missing) in [
        (
            "/authz/forward-auth",
            vec![
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Host", "wiki.example.com"),
                ("X-Forwarded-Uri", "/"),
            ],
            "X-Forwarded-Proto",
        ),
        (
            "/authz/forward-auth",
            vec![
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "wiki.example.com"),
            ],
            "X-Forwarded-Uri",
        ),
        ("/authz/auth-request", vec![("X-Original-Method", "GET")], "X-Original-URL"),
        ("/authz/auth-request", vec![("X-Original-URL", url)], "X-Original-Method"),
        (
            "/authz/auth-request",
            vec![("X-Original-Method", "GET"), ("X-Original-URL", "/relative")],
            "not an absolute",
        ),
        (
            "/authz/auth-request",
            vec![("X-Original-Method", "GET"), ("X-Original-URL", "ftp://wiki.example.com/")],
            "http(s)",
        ),
    ] {
        let mut request =
            app.client.get(path).header(bearer(&token)).header(Header::new("Accept", "application/json"));
        for (name, value) in headers {
            request = request.header(Header::new(name, value));
        }
        let response = request.dispatch().await;
        assert_eq!(response.status(), Status::BadRequest, "{path} without {missing}");
        let problem: serde_json::Value = response.into_json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains(missing), "{problem}");
    }
}

async fn hosts_outside_the_protected_domains_are_refused_and_never_returned_to(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let token = app.sign_in("alice", PASSWORD).await.access;
    let auth = format!("Bearer {token}");
    for url in ["https://example.org/", "https://notexample.com/", "https://example.com.evil.test/"] {
        for endpoint in ENDPOINTS {
            let response = ask(&app, endpoint, "GET", url, &[("Authorization", &auth)]).await;
            assert_eq!(response.status(), Status::Forbidden, "{endpoint:?} {url}");
            let signed_out = ask(&app, endpoint, "GET", url, &[("Accept", HTML)]).await;
            assert_eq!(signed_out.status(), Status::Forbidden, "{endpoint:?} {url} signed out");
        }
    }
    // The sign-in page sends nobody to a host it does not protect, nor to anything but http(s):
    // neither after the form, nor when the visitor is signed in already.
    let mut csrf = csrf_from(&app, "/login").await;
    for rd in [
        "https://evil.test/",
        "https://example.com.evil.test/",
        "https://alice:pw@wiki.example.com/",
        "javascript:alert(1)",
        "//evil.test/",
        "data:text/html,hi",
    ] {
        let fields =
            [("csrf_token", csrf.as_str()), ("username", "alice"), ("password", PASSWORD), ("rd", rd)];
        let response = post_form(&app, "/login", &fields).await;
        assert_eq!(response.status(), Status::SeeOther, "rd={rd}");
        assert_eq!(location(&response).as_deref(), Some("/profile"), "rd={rd}");
        drop(response);
        let page = format!("/login?rd={}", common::browser::percent_encode(rd));
        let signed_in = app.client.get(page).dispatch().await;
        assert_eq!(location(&signed_in).as_deref(), Some("/profile"), "signed in, rd={rd}");
        drop(signed_in);
        // Signed in now, the form is sent again with a token of this session (the profile's).
        csrf = csrf_from(&app, "/profile").await;
    }
}

async fn a_host_rule_admits_only_its_users(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    app.registered("bob", PASSWORD).await;
    let alice = format!("Bearer {}", app.sign_in("alice", PASSWORD).await.access);
    let bob = format!("Bearer {}", app.sign_in("bob", PASSWORD).await.access);
    for endpoint in ENDPOINTS {
        let wiki = "https://WIKI.example.com/secret";
        let response = ask(&app, endpoint, "GET", wiki, &[("Authorization", &alice)]).await;
        assert_eq!(response.status(), Status::Ok, "{endpoint:?} alice on the wiki");
        let response = ask(&app, endpoint, "GET", wiki, &[("Authorization", &bob), ("Accept", HTML)]).await;
        assert_eq!(response.status(), Status::Forbidden, "{endpoint:?} bob on the wiki");
        assert_eq!(header(&response, "Remote-User"), None);
        assert!(response.into_string().await.unwrap().contains("bob may not use wiki.example.com"));
        // Another host has no rule: every signed-in user.
        let response =
            ask(&app, endpoint, "GET", "https://grafana.example.com/", &[("Authorization", &bob)]).await;
        assert_eq!(response.status(), Status::Ok, "{endpoint:?} bob on grafana");
    }
}

/// What a proxy sends exactly as written here (no URL is parsed on the way), with `credentials`.
async fn ask_verbatim<'c>(
    app: &'c TestApp,
    path: &str,
    headers: &[(&'static str, &str)],
    credentials: Option<&str>,
) -> LocalResponse<'c> {
    let mut request = app.client.get(path.to_owned()).remote("127.0.0.1:50000".parse().unwrap());
    for (name, value) in headers.iter().chain([&("Accept", HTML)]) {
        request = request.header(Header::new(*name, value.to_string()));
    }
    if let Some(credentials) = credentials {
        request = request.header(Header::new("Authorization", credentials.to_owned()));
    }
    request.dispatch().await
}

/// Signed out, bob (whom the wiki's rule leaves out) and alice (whom it admits): for a request
/// that names another host than the routed one, none gets a decision, nor a way to sign in.
async fn each_is_refused_as_a_bad_request(
    app: &TestApp,
    path: &str,
    headers: &[(&'static str, &str)],
    why: &str,
) {
    let alice = format!("Bearer {}", app.sign_in("alice", PASSWORD).await.access);
    let bob = format!("Bearer {}", app.sign_in("bob", PASSWORD).await.access);
    for (who, credentials) in [("nobody", None), ("bob", Some(bob.as_str())), ("alice", Some(&alice))] {
        let response = ask_verbatim(app, path, headers, credentials).await;
        assert_eq!(response.status(), Status::BadRequest, "{who}: {headers:?}");
        assert_eq!(header(&response, "Remote-User"), None, "{who}: {headers:?}");
        assert_eq!(location(&response), None, "{who}: {headers:?}");
        let page = response.into_string().await.unwrap();
        assert!(page.contains(why), "{who}: {headers:?}: {page}");
    }
}

async fn an_original_url_with_credentials_before_its_host_is_a_bad_request(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    app.registered("bob", PASSWORD).await;
    // nginx routed each to the wiki (`$http_host` would carry what the client wrote); read as
    // a URL, most name another host: grafana.example.com has no rule and would admit bob.
    for url in [
        "http://wiki.example.com:@grafana.example.com/",
        "http://wiki.example.com@grafana.example.com/",
        "https://wiki.example.com:8443@grafana.example.com/secret",
        "http://bob@wiki.example.com/",
        "http://alice:pw@wiki.example.com/",
        "http://@wiki.example.com/",
        "http://:@wiki.example.com/",
        "http://wiki.example.com%3A@grafana.example.com/",
    ] {
        let headers = [("X-Original-Method", "GET"), ("X-Original-URL", url)];
        each_is_refused_as_a_bad_request(&app, "/authz/auth-request", &headers, "username or password").await;
    }
    // An `@` after the host is only a path, a query or a fragment: the wiki decides.
    let alice = format!("Bearer {}", app.sign_in("alice", PASSWORD).await.access);
    let bob = format!("Bearer {}", app.sign_in("bob", PASSWORD).await.access);
    let url = "https://wiki.example.com/@grafana.example.com?next=a@grafana.example.com";
    let headers = [("X-Original-Method", "GET"), ("X-Original-URL", url)];
    let response = ask_verbatim(&app, "/authz/auth-request", &headers, Some(&alice)).await;
    assert_eq!(response.status(), Status::Ok);
    let response = ask_verbatim(&app, "/authz/auth-request", &headers, Some(&bob)).await;
    assert_eq!(response.status(), Status::Forbidden);
}

async fn forwarded_headers_that_move_the_host_are_a_bad_request(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    app.registered("bob", PASSWORD).await;
    let forwarded = |host, uri| {
        [
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", host),
            ("X-Forwarded-Uri", uri),
        ]
    };
    // A host with credentials before it, as a proxy passing the client's `Host` on would send.
    for host in [
        "wiki.example.com:@grafana.example.com",
        "wiki.example.com@grafana.example.com",
        "wiki.example.com:443@grafana.example.com",
        "@wiki.example.com",
        "bob@wiki.example.com",
    ] {
        let headers = forwarded(host, "/");
        each_is_refused_as_a_bad_request(&app, "/authz/forward-auth", &headers, "username or password").await;
    }
    // A URI that is not a path would join the host: `wiki.example.com` + `@grafana.example.com/`.
    for uri in [
        "@grafana.example.com/",
        ":@grafana.example.com/",
        ".evil.test/",
        "grafana/",
        "?edit=1",
        "#top",
        "https://grafana.example.com/",
        "*",
    ] {
        let headers = forwarded("wiki.example.com", uri);
        each_is_refused_as_a_bad_request(&app, "/authz/forward-auth", &headers, "X-Forwarded-Uri").await;
    }
    // An `@` in the path is only a path: the wiki decides.
    let alice = format!("Bearer {}", app.sign_in("alice", PASSWORD).await.access);
    let bob = format!("Bearer {}", app.sign_in("bob", PASSWORD).await.access);
    let headers = forwarded("wiki.example.com", "/@grafana.example.com/?next=a@grafana.example.com");
    let response = ask_verbatim(&app, "/authz/forward-auth", &headers, Some(&alice)).await;
    assert_eq!(response.status(), Status::Ok);
    let response = ask_verbatim(&app, "/authz/forward-auth", &headers, Some(&bob)).await;
    assert_eq!(response.status(), Status::Forbidden);
}

async fn a_revoked_session_stops_passing_at_once(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let token = app.sign_in("alice", PASSWORD).await.access;
    let auth = format!("Bearer {token}");
    let url = "https://wiki.example.com/";
    assert_eq!(
        ask(&app, Endpoint::ForwardAuth, "GET", url, &[("Authorization", &auth)]).await.status(),
        Status::Ok
    );
    assert_eq!(app.logout(&token, "").await.status(), Status::NoContent);
    for endpoint in ENDPOINTS {
        let response = ask(&app, endpoint, "GET", url, &[("Authorization", &auth)]).await;
        assert_eq!(response.status(), Status::Unauthorized, "{endpoint:?}");
    }
}

async fn with_secure_cookies_only_https_apps_are_returned_to(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let mut csrf = csrf_from(&app, "/login").await;
    for (rd, back) in
        [("http://wiki.example.com/", "/profile"), ("https://wiki.example.com/", "https://wiki.example.com/")]
    {
        let fields =
            [("csrf_token", csrf.as_str()), ("username", "alice"), ("password", PASSWORD), ("rd", rd)];
        let response = post_form(&app, "/login", &fields).await;
        assert_eq!(location(&response).as_deref(), Some(back), "rd={rd}");
        drop(response);
        // Signed in now, the form is sent again with a token of this session (the profile's).
        csrf = csrf_from(&app, "/profile").await;
    }
}

async fn a_cookie_domain_scopes_the_session_cookies_and_signing_out_clears_them_there(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let csrf = csrf_from(&app, "/login").await;
    let fields = [("csrf_token", csrf.as_str()), ("username", "alice"), ("password", PASSWORD)];
    let response = post_form(&app, "/login", &fields).await;
    assert_eq!(response.status(), Status::SeeOther);
    for name in [TOKEN_COOKIE, REFRESH_COOKIE] {
        let set = set_cookie(&response, name).unwrap_or_else(|| panic!("{name} is set"));
        assert!(has_attribute(&set, "Domain=example.com"), "{set}");
        assert!(has_attribute(&set, "Secure") && has_attribute(&set, "HttpOnly"), "{set}");
    }
    // The CSRF and device cookies stay MiniAuth's own.
    for name in [common::CSRF_COOKIE, common::SECURE_CSRF_COOKIE, miniauth::web::DEVICE_COOKIE] {
        if let Some(set) = set_cookie(&response, name) {
            assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
        }
    }
    // Signing out clears them in the same scope, or the browser would keep them.
    drop(response);
    let token = common::browser::cookie(&app, TOKEN_COOKIE).unwrap();
    let csrf = csrf_from(&app, "/profile").await;
    let signed_out = app
        .client
        .post("/logout")
        .cookie(Cookie::new(TOKEN_COOKIE, token.clone()))
        .header(rocket::http::ContentType::Form)
        .body(form_body(&[("csrf_token", csrf.as_str())]))
        .dispatch()
        .await;
    assert_eq!(signed_out.status(), Status::SeeOther);
    for name in [TOKEN_COOKIE, REFRESH_COOKIE] {
        let cleared = set_cookie(&signed_out, name).unwrap_or_else(|| panic!("{name} is cleared"));
        assert!(has_attribute(&cleared, "Domain=example.com"), "{cleared}");
        assert!(has_attribute(&cleared, "Max-Age=0"), "{cleared}");
    }
    let auth = format!("Bearer {token}");
    let after =
        ask(&app, Endpoint::ForwardAuth, "GET", "https://wiki.example.com/", &[("Authorization", &auth)])
            .await;
    assert_eq!(after.status(), Status::Unauthorized);
}

/// An app polling in the background (a dashboard refreshing, a wiki autosaving) sends the
/// browser's cookies without a page load that would renew the access token: past the token's
/// lifetime it still passes while the session lives, and stops once the session ends. A bearer
/// token (an API client's) must not have expired.
async fn a_browsers_background_requests_pass_while_its_session_lives(app: TestApp) {
    app.registered("alice", PASSWORD).await;
    let tokens = app.sign_in("alice", PASSWORD).await;
    // Until the token has expired for the API (its lifetime and the clock leeway).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while app.token_works(&tokens.access).await {
        assert!(std::time::Instant::now() < deadline, "the access token never expired");
        rocket::tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let cookie = format!("{TOKEN_COOKIE}={}", tokens.access);
    let xhr =
        [("Cookie", cookie.as_str()), ("Accept", "application/json"), ("X-Requested-With", "XMLHttpRequest")];
    let url = "https://wiki.example.com/api/autosave";
    for endpoint in ENDPOINTS {
        for method in ["GET", "POST"] {
            let response = ask(&app, endpoint, method, url, &xhr).await;
            assert_eq!(response.status(), Status::Ok, "{endpoint:?} {method} past the token's lifetime");
            assert_eq!(header(&response, "Remote-User").as_deref(), Some("alice"));
        }
        let auth = format!("Bearer {}", tokens.access);
        let response = ask(&app, endpoint, "GET", url, &[("Authorization", &auth)]).await;
        assert_eq!(response.status(), Status::Unauthorized, "{endpoint:?}: an expired bearer token");
    }
    // A token of the session with its signature changed is nobody's.
    let (rest, signature) = tokens.access.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{TOKEN_COOKIE}={rest}.{flipped}{}", &signature[1..]);
    let response =
        ask(&app, Endpoint::AuthRequest, "GET", url, &[("Cookie", &forged), ("Accept", "application/json")])
            .await;
    assert_eq!(response.status(), Status::Unauthorized);
    // Signed out (through the refresh token's renewal, as a page would): refused at once.
    let renewed = common::Tokens::of(&common::expect(app.refresh(&tokens.refresh).await, Status::Ok).await);
    assert_eq!(app.logout(&renewed.access, "").await.status(), Status::NoContent);
    for endpoint in ENDPOINTS {
        let response = ask(&app, endpoint, "GET", url, &xhr).await;
        assert_eq!(response.status(), Status::Unauthorized, "{endpoint:?} after signing out");
    }
}

/// Someone without an account follows the sign-in page's "Create an account": where they were
/// going (a protected app's `rd`, or `next`) goes with them, and the new account lands there.
async fn a_new_user_signs_up_from_the_sign_in_page_and_is_brought_back(app: TestApp) {
    let wanted = "https://photos.example.com/albums?sort=new";
    let encoded = common::browser::percent_encode(wanted);
    let html = app.client.get(format!("/login?rd={encoded}")).dispatch().await.into_string().await.unwrap();
    let link = format!("/register?rd={encoded}");
    assert_eq!(link_to(&html, "Create an account"), link, "the sign-up link drops rd");
    let response = app.client.get(link.clone()).dispatch().await;
    let csp = header(&response, "Content-Security-Policy").unwrap();
    assert!(csp.contains("form-action 'self' http://example.com:*"), "the sign-up form may lead back: {csp}");
    let html = response.into_string().await.unwrap();
    let kept = common::browser::input_tag(&html, "rd");
    assert_eq!(common::browser::attribute(kept, "value").as_deref(), Some(wanted), "{kept}");
    assert_eq!(link_to(&html, "Sign in"), format!("/login?rd={encoded}"), "the way back to sign in keeps rd");
    let csrf = csrf_from(&app, &link).await;
    // A refused form keeps it too.
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("username", "x"),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
        ("rd", wanted),
    ];
    let again = post_form(&app, "/register", &fields).await;
    assert_eq!(again.status(), Status::UnprocessableEntity);
    let html = again.into_string().await.unwrap();
    let kept = common::browser::input_tag(&html, "rd");
    assert_eq!(common::browser::attribute(kept, "value").as_deref(), Some(wanted), "{kept}");
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("username", "newcomer"),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
        ("rd", wanted),
    ];
    let signed_up = post_form(&app, "/register", &fields).await;
    assert_eq!(signed_up.status(), Status::SeeOther);
    assert_eq!(location(&signed_up).as_deref(), Some(wanted));
    let token = common::browser::cookie(&app, TOKEN_COOKIE).expect("the session cookie");
    let cookie = format!("{TOKEN_COOKIE}={token}");
    let response =
        ask(&app, Endpoint::ForwardAuth, "GET", wanted, &[("Accept", HTML), ("Cookie", &cookie)]).await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(header(&response, "Remote-User").as_deref(), Some("newcomer"));
    // Signed in already: the sign-up page sends the browser on.
    let response = app.client.get(link).dispatch().await;
    assert_eq!(location(&response).as_deref(), Some(wanted));
    // Signed out (the session ends; its cookies stay behind, refused).
    assert_eq!(app.logout(&token, "").await.status(), Status::NoContent);

    // `next` likewise; an address elsewhere is dropped, and the profile is where one lands.
    let csrf = csrf_from(&app, "/register?next=/account/password&rd=https://evil.example.net/").await;
    let html = app
        .client
        .get("/register?next=/account/password&rd=https://evil.example.net/")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(!html.contains("evil.example.net"), "{html}");
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("username", "another"),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
        ("next", "/account/password"),
        ("rd", "https://evil.example.net/"),
    ];
    let signed_up = post_form(&app, "/register", &fields).await;
    assert_eq!(location(&signed_up).as_deref(), Some("/account/password"));
}

/// The address of the page's link whose text is `text`, as a browser reads it.
fn link_to(html: &str, text: &str) -> String {
    let end = html.rfind(&format!(">{text}</a>")).unwrap_or_else(|| panic!("no link {text:?} in\n{html}"));
    let tag = &html[html[..end].rfind("<a ").expect("an <a> tag")..end];
    common::browser::unescape_html(&common::browser::attribute(tag, "href").expect("an href"))
}
