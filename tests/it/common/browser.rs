//! What a browser does with the pages: the tracked client keeps cookies like a browser, fetches a
//! page, takes the CSRF token from its form and posts `application/x-www-form-urlencoded`
//! bodies. Also what a test reads back: `Set-Cookie` headers, the cookies held, the forms and
//! fields of a page, and an expired copy of an access token.

use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::LocalResponse;
use rocket::serde::json::json;

use super::{jwt_payload, now, user_agent, TestApp};

/// Percent-encodes one value of an `application/x-www-form-urlencoded` body.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Undoes the HTML escaping Tera applies to attribute values.
pub fn unescape_html(value: &str) -> String {
    value
        .replace("&#x2F;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The whole `<input …>` tag whose `name` is `name`.
pub fn input_tag<'h>(html: &'h str, name: &str) -> &'h str {
    let marker = format!("name=\"{name}\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("no input named {name} in:\n{html}"));
    let start = html[..at].rfind("<input").expect("an <input> tag");
    let end = at + html[at..].find('>').expect("the end of the <input> tag");
    &html[start..=end]
}

/// The value of attribute `attribute` in a tag, unescaped; `None` when it is absent.
pub fn attribute(tag: &str, attribute: &str) -> Option<String> {
    let marker = format!(" {attribute}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = start + tag[start..].find('"')?;
    Some(unescape_html(&tag[start..end]))
}

/// The hidden `csrf_token` of the first form on the page.
pub fn csrf_token(html: &str) -> String {
    let tag = input_tag(html, "csrf_token");
    assert_eq!(attribute(tag, "type").as_deref(), Some("hidden"), "{tag}");
    let token = attribute(tag, "value").expect("csrf_token has a value");
    assert!(!token.is_empty(), "empty csrf_token");
    token
}

pub async fn get_page(app: &TestApp, uri: &str) -> (Status, String) {
    let response = app.client.get(uri.to_owned()).dispatch().await;
    let status = response.status();
    (status, response.into_string().await.unwrap_or_default())
}

/// Fetches a page that must answer 200 and returns the CSRF token of its form.
pub async fn csrf_from(app: &TestApp, uri: &str) -> String {
    let (status, html) = get_page(app, uri).await;
    assert_eq!(status, Status::Ok, "GET {uri}");
    csrf_token(&html)
}

/// The CSRF token the pages give a browser that carries `access` as its token cookie (a token
/// is bound to the session it was issued for).
pub async fn csrf_of_session(app: &TestApp, access: &str) -> String {
    let cookie = rocket::http::Cookie::new(super::TOKEN_COOKIE, access.to_owned());
    let response = app.client.get("/profile").cookie(cookie).dispatch().await;
    assert_eq!(response.status(), Status::Ok, "GET /profile with the token cookie");
    csrf_token(&response.into_string().await.unwrap_or_default())
}

/// Fetches a page that must answer 200 with HTML whose form carries a CSRF token; returns the
/// HTML.
pub async fn form_page(app: &TestApp, uri: &str) -> String {
    let response = app.client.get(uri.to_owned()).dispatch().await;
    assert_eq!(response.status(), Status::Ok, "GET {uri}");
    assert_html(&response);
    let html = response.into_string().await.unwrap();
    csrf_token(&html);
    html
}

pub async fn post_form<'c>(app: &'c TestApp, uri: &str, fields: &[(&str, &str)]) -> LocalResponse<'c> {
    app.client.post(uri.to_owned()).header(ContentType::Form).body(form_body(fields)).dispatch().await
}

/// The text of the error shown beside field `name`, if any.
pub fn field_error(html: &str, name: &str) -> Option<String> {
    let marker = format!("id=\"{name}-error\"");
    let start = html.find(&marker)?;
    let end = start + html[start..].find("</p>")?;
    Some(html[start..end].to_owned())
}

/// Fills in and sends the registration form, as a visitor of `/register` would.
pub async fn submit_register<'c>(
    app: &'c TestApp,
    username: &str,
    password: &str,
    confirm: &str,
) -> LocalResponse<'c> {
    let csrf = csrf_from(app, "/register").await;
    send_register(app, &csrf, username, password, confirm).await
}

async fn send_register<'c>(
    app: &'c TestApp,
    csrf: &str,
    username: &str,
    password: &str,
    confirm: &str,
) -> LocalResponse<'c> {
    let fields =
        [("csrf_token", csrf), ("username", username), ("password", password), ("password_confirm", confirm)];
    post_form(app, "/register", &fields).await
}

/// Creates an account through the registration page: the client (this browser) is signed in
/// afterwards, holding the cookies. Returns the CSRF token its forms carry.
pub async fn sign_up(app: &TestApp, username: &str, password: &str) -> String {
    let csrf = csrf_from(app, "/register").await;
    let response = send_register(app, &csrf, username, password, password).await;
    assert_eq!(response.status(), Status::SeeOther, "registering {username}");
    assert_eq!(location(&response).as_deref(), Some("/profile"));
    drop(response);
    // The token is bound to the session: the signed-in pages carry another one.
    csrf_from(app, "/profile").await
}

/// Fills in and sends the sign-in form (with `next` when given).
pub async fn submit_login<'c>(
    app: &'c TestApp,
    username: &str,
    password: &str,
    next: Option<&str>,
) -> LocalResponse<'c> {
    let csrf = csrf_from(app, "/login").await;
    send_login(app, &csrf, username, password, next, None).await
}

async fn send_login<'c>(
    app: &'c TestApp,
    csrf: &str,
    username: &str,
    password: &str,
    next: Option<&str>,
    agent: Option<&str>,
) -> LocalResponse<'c> {
    let mut fields = vec![("csrf_token", csrf), ("username", username), ("password", password)];
    fields.extend(next.map(|next| ("next", next)));
    let mut request = app.client.post("/login").header(ContentType::Form).body(form_body(&fields));
    if let Some(agent) = agent {
        request = request.header(user_agent(agent));
    }
    request.dispatch().await
}

/// Signs an existing account in through the sign-in page, from a browser that sends `agent` as
/// its `User-Agent`: the client (this browser) holds the cookies afterwards. Returns the CSRF
/// token its forms carry.
pub async fn sign_in_on_the_page(app: &TestApp, username: &str, password: &str, agent: &str) -> String {
    let csrf = csrf_from(app, "/login").await;
    let response = send_login(app, &csrf, username, password, None, Some(agent)).await;
    assert_eq!(response.status(), Status::SeeOther, "signing in {username} on the page");
    assert_eq!(location(&response).as_deref(), Some("/profile"));
    drop(response);
    csrf_from(app, "/profile").await
}

pub fn location(response: &LocalResponse<'_>) -> Option<String> {
    response.headers().get_one("Location").map(str::to_owned)
}

/// The raw `Set-Cookie` header that sets `name`, if the response has one.
pub fn set_cookie(response: &LocalResponse<'_>, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    response.headers().get("Set-Cookie").find(|header| header.starts_with(&prefix)).map(str::to_owned)
}

/// The attributes of a `Set-Cookie` header after `name=value`, e.g. `["HttpOnly", "Path=/"]`.
pub fn cookie_attributes(header: &str) -> Vec<String> {
    header.split(';').skip(1).map(|part| part.trim().to_owned()).collect()
}

pub fn has_attribute(header: &str, wanted: &str) -> bool {
    cookie_attributes(header).iter().any(|attribute| attribute.eq_ignore_ascii_case(wanted))
}

/// The value a `Set-Cookie` header gives its cookie.
pub fn cookie_value(header: &str) -> &str {
    let pair = header.split(';').next().unwrap_or_default();
    pair.split_once('=').map_or("", |(_, value)| value.trim())
}

/// Asserts that the response tells the browser to forget cookie `name`: expired and emptied.
pub fn assert_cleared(response: &LocalResponse<'_>, name: &str) {
    let cleared = set_cookie(response, name).unwrap_or_else(|| panic!("{name} is not cleared"));
    let expired = has_attribute(&cleared, "Max-Age=0")
        || cookie_attributes(&cleared).iter().any(|a| a.starts_with("Expires=") && !a.contains("9999"));
    assert!(expired, "{name} is not expired: {cleared}");
    assert!(cookie_value(&cleared).is_empty(), "{name} is not emptied: {cleared}");
}

/// A cookie the client (the browser) holds.
pub fn cookie(app: &TestApp, name: &str) -> Option<String> {
    app.client.cookies().get(name).map(|cookie| cookie.value().to_owned())
}

/// A token for the session of `original`, signed with the server's own key but expired an
/// hour ago: what a browser holds after a while away.
pub async fn expired_copy_of(app: &TestApp, original: &str) -> String {
    let claims = jwt_payload(original);
    let now = now();
    let expired = json!({
        "sub": claims["sub"].as_str().expect("sub is a string"),
        "sid": claims["sid"].as_str().expect("sid is a string"),
        "iat": now - 7200,
        "exp": now - 3600,
        "iss": "miniauth",
        "aud": "miniauth",
    });
    app.signing_key().await.sign(&expired)
}

pub async fn revoked_sessions(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL").await
}

pub fn assert_html(response: &LocalResponse<'_>) {
    let content_type = response.content_type().expect("a content type").to_string();
    assert!(content_type.starts_with("text/html"), "got {content_type}");
}

/// Missing, empty, garbage, and a real token with one character changed.
pub fn forged_tokens(real: &str) -> Vec<Option<String>> {
    let mut tampered: Vec<char> = real.chars().collect();
    tampered[0] = if tampered[0] == 'A' { 'B' } else { 'A' };
    vec![None, Some(String::new()), Some("not-a-token".into()), Some(tampered.into_iter().collect())]
}
