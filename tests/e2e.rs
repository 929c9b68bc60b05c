//! The pages in a real browser, driven as a person would: headless Chromium through chromedriver
//! (Debian's `chromium` and `chromium-driver`), against the real binary on a free port.
//!
//! Run with `cargo test --features e2e --test e2e`. Screenshots of every page, at a desktop and a
//! phone width, land in `<target>/e2e-screenshots/<page>-<width>.png` to be looked at.
#![cfg(feature = "e2e")]

#[path = "it/common/mod.rs"]
mod common;

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{free_port, Server, JSON};
use common::{Backend, TestDatabase, CSRF_COOKIE, TOKEN_COOKIE};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long any one page may take to appear.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The window sizes every page is photographed at: a desktop and a phone.
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// The longest name allowed (32 characters): the header, the profile and the forms must still fit
/// a phone.
const USERNAME: &str = "Walter.Hartwell.White-Heisenberg";
const PASSWORD: &str = "correct horse battery";

/// Waits until something accepts connections on `port`, or panics with `what` after 20 s.
fn wait_for_port(port: u16, what: &str, mut log: impl FnMut() -> String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start:\n{}", log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// chromedriver on a free port, in a process group of its own so that dropping the guard (also
/// during a panic) ends it and every browser it started.
struct ChromeDriver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: install Debian's chromium and chromium-driver"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let driver = ChromeDriver { child, port, profile: tempfile::tempdir().unwrap() };
        wait_for_port(port, "chromedriver", String::new);
        driver
    }

    async fn connect(&self) -> Client {
        let profile = self.profile.path().display();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    format!("--user-data-dir={profile}"),
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a browser session from chromedriver")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any browser left behind by a failed test.
        Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status().ok();
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// `<target>/e2e-screenshots`, emptied once per run.
fn screenshot_dir() -> PathBuf {
    static EMPTIED: std::sync::Once = std::sync::Once::new();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("e2e-screenshots");
    EMPTIED.call_once(|| {
        std::fs::remove_dir_all(&dir).ok();
    });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The browser and the server, with the helpers a test needs to look at a page.
struct Browser {
    client: Client,
    base: String,
    screenshots: PathBuf,
    /// The server's outbox, where its mail goes.
    outbox: PathBuf,
}

impl Browser {
    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    /// Waits until the page shows `marker` (an XPath), then checks that the browser is at `path`
    /// (with its query) and that the document came with HTTP `status`.
    async fn arrive(&self, marker: &str, path: &str, status: u64) {
        if let Err(e) = self.client.wait().at_most(PAGE_TIMEOUT).for_element(Locator::XPath(marker)).await {
            let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let source = self.client.source().await.unwrap_or_default();
            panic!("waiting for {marker} (expected {path}): {e}\nat {url}:\n{source}");
        }
        let url = self.client.current_url().await.unwrap();
        let at = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        assert_eq!(at, path, "the browser is at {url}");
        let got = self.js("return performance.getEntriesByType('navigation')[0].responseStatus").await;
        assert_eq!(got, json!(status), "HTTP status of {path}");
    }

    /// The link to `path` in the `count`th message of the outbox (waiting for it).
    async fn mailed_link(&self, count: usize, path: &str) -> String {
        let mails = common::mail::wait_for_mails(&self.outbox, count).await;
        common::mail::link(&mails[count - 1], &format!("{}{path}?token=", self.base))
    }

    async fn text(&self, css: &str) -> String {
        self.element(css).await.text().await.unwrap()
    }

    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    async fn value(&self, css: &str) -> String {
        self.element(css).await.prop("value").await.unwrap().unwrap_or_default()
    }

    /// Types into a field as a person would: clears it, then presses the keys.
    async fn type_into(&self, css: &str, text: &str) {
        let field = self.element(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.element(css).await.click().await.unwrap();
    }

    async fn document_cookie(&self) -> String {
        self.js("return document.cookie").await.as_str().unwrap().to_owned()
    }

    /// Checks that the page looks styled and fits the window, then saves
    /// `<name>-<width>.png` of the whole page at the desktop and the phone size.
    async fn screenshots(&self, name: &str) {
        for (width, height) in [PHONE, DESKTOP] {
            self.resize(width, height).await;
            let metrics = self
                .js("const card = document.querySelector('.card');
                     const brand = document.querySelector('.brand').getBoundingClientRect();
                     const nav = document.querySelector('.site-nav').getBoundingClientRect();
                     return {
                       header_rows: nav.top < brand.bottom && brand.top < nav.bottom ? 1 : 2,
                       inner: window.innerWidth,
                       scroll: document.documentElement.scrollWidth,
                       page: document.documentElement.scrollHeight,
                       sheets: document.styleSheets.length,
                       radius: card ? getComputedStyle(card).borderTopLeftRadius : null,
                     };")
                .await;
            assert_eq!(metrics["inner"], json!(width), "{name}: window width {metrics}");
            assert!(
                metrics["scroll"].as_u64().unwrap() <= u64::from(width),
                "{name}: the page is wider than a {width} px window: {metrics}"
            );
            assert_eq!(metrics["sheets"], json!(1), "{name}: the stylesheet did not load: {metrics}");
            assert_eq!(metrics["header_rows"], json!(1), "{name}: the header wraps at {width} px: {metrics}");
            assert_eq!(metrics["radius"], json!("12px"), "{name}: the card is not styled: {metrics}");
            // The whole page in one picture: grow the window to the page's height.
            let page = metrics["page"].as_u64().unwrap() as u32;
            if page > height {
                self.resize(width, page).await;
            }
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(self.screenshots.join(format!("{name}-{width}.png")), png).unwrap();
        }
    }

    /// Sets the viewport (not the outer window) to `width` × `height`.
    async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
        let inner = self.js("return [window.innerWidth, window.innerHeight]").await;
        let (dw, dh) =
            (width as i64 - inner[0].as_i64().unwrap(), height as i64 - inner[1].as_i64().unwrap());
        if dw != 0 || dh != 0 {
            self.client
                .set_window_size((width as i64 + dw) as u32, (height as i64 + dh) as u32)
                .await
                .unwrap();
        }
    }
}

/// Runs `flow` against a fresh server in a fresh browser, closing the browser session whether or
/// not the flow panics, and failing with the flow's panic and the server's log.
async fn with_browser<F, Fut>(flow: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    with_browser_and(&[], flow).await
}

/// [`with_browser`], with the server's environment extended by `env`.
async fn with_browser_and<F, Fut>(env: &[(&str, &str)], flow: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    with_server(Server::start, env, flow).await
}

/// [`with_browser`], with the server at `http://localhost:<port>`: a named host, as browsers
/// need for passkeys.
async fn with_browser_on_localhost<F, Fut>(flow: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    with_server(Server::start_on_localhost, &[], flow).await
}

async fn with_server<F, Fut>(start: fn(&Path, &[(&str, &str)]) -> Server, env: &[(&str, &str)], flow: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(Backend::Sqlite);
    let server = start(dir.path(), &[&[database.env()], env].concat());
    let driver = ChromeDriver::start();
    let client = driver.connect().await;
    let outbox = dir.path().join("data/outbox");
    let browser =
        Browser { client: client.clone(), base: server.url(""), screenshots: screenshot_dir(), outbox };
    let outcome = rocket::tokio::spawn(flow(browser)).await;
    client.close().await.ok();
    drop(driver);
    if let Err(e) = outcome {
        eprintln!("server log:\n{}", server.log());
        std::panic::resume_unwind(e.into_panic());
    }
}

#[rocket::async_test]
async fn a_person_registers_signs_out_and_signs_back_in() {
    with_browser(|b| async move {
        // The landing page offers both ways in.
        b.goto("/").await;
        b.arrive("//h1[normalize-space()='MiniAuth']", "/", 200).await;
        assert_eq!(b.client.title().await.unwrap(), "MiniAuth");
        b.element("main a[href='/login']").await;
        b.screenshots("landing").await;

        // "Create account" leads to the form.
        b.click("main a[href='/register']").await;
        b.arrive("//h1[normalize-space()='Create your account']", "/register", 200).await;
        for (id, autocomplete) in
            [("username", "username"), ("password", "new-password"), ("password_confirm", "new-password")]
        {
            let field = b.element(&format!("#{id}")).await;
            assert_eq!(field.attr("autocomplete").await.unwrap().as_deref(), Some(autocomplete));
            let label = b.text(&format!("label[for='{id}']")).await;
            assert!(!label.is_empty(), "#{id} has no label");
        }
        assert_eq!(b.js("return document.activeElement.id").await, json!("username"), "autofocus");
        b.screenshots("register").await;

        // The browser itself refuses a too-short name before anything is sent.
        b.type_into("#username", "al").await;
        assert_eq!(b.js("return document.querySelector('#username').validity.tooShort").await, json!(true));

        // A form the browser accepts but the server refuses: a message beside each bad field,
        // the username kept, both passwords emptied.
        b.type_into("#username", USERNAME).await;
        b.type_into("#password", &USERNAME.to_lowercase()).await;
        b.type_into("#password_confirm", "something else").await;
        b.click("form[action='/register'] button[type=submit]").await;
        b.arrive("//p[@class='field__error']", "/register", 422).await;
        assert_eq!(b.value("#username").await, USERNAME);
        assert_eq!(b.value("#password").await, "");
        assert_eq!(b.value("#password_confirm").await, "");
        assert_eq!(b.text("#password-error").await, "Password must not contain the username.");
        assert_eq!(b.text("#password_confirm-error").await, "The passwords do not match.");
        assert!(b.client.find(Locator::Id("username-error")).await.is_err(), "the username was fine");
        let invalid = b.element("#password").await.attr("aria-invalid").await.unwrap();
        assert_eq!(invalid.as_deref(), Some("true"));
        assert_eq!(b.js("return document.activeElement.id").await, json!("password"), "focus on what to fix");
        b.screenshots("register-errors").await;

        // Corrected: signed in and on the profile.
        b.type_into("#password", PASSWORD).await;
        b.type_into("#password_confirm", PASSWORD).await;
        b.click("form[action='/register'] button[type=submit]").await;
        b.arrive("//h1[normalize-space()='Your profile']", "/profile", 200).await;
        let details = b.text(".details").await;
        assert!(details.contains(USERNAME) && details.contains("Member since"), "{details}");
        assert_eq!(b.text(".site-nav__user").await, USERNAME);

        // The token cookie is there, but scripts cannot see it.
        let token = b.client.get_named_cookie(TOKEN_COOKIE).await.expect("the token cookie is set");
        assert_eq!(token.http_only(), Some(true));
        let visible = b.document_cookie().await;
        assert!(!visible.contains(TOKEN_COOKIE), "document.cookie shows the token: {visible}");
        assert!(!visible.contains(CSRF_COOKIE), "document.cookie shows the CSRF secret: {visible}");
        b.screenshots("profile").await;

        // The landing page now knows who is there.
        b.goto("/").await;
        b.arrive("//p[@class='hero__status']", "/", 200).await;
        assert_eq!(b.text(".hero__status").await, format!("Signed in as {USERNAME}"));
        b.element("main a[href='/profile']").await;
        b.screenshots("landing-signed-in").await;

        // Signed in from a second device too: its card offers "Sign out", this browser's does
        // not (the header's button signs this browser out), and "Sign out everywhere else".
        let port = b.base.rsplit(':').next().unwrap().parse().unwrap();
        let credentials = json!({ "username": USERNAME, "password": PASSWORD }).to_string();
        let device =
            [JSON, ("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148")];
        let (status, _, _) = Server::request_to(port, "POST", "/auth/login", &device, &credentials).unwrap();
        assert_eq!(status, 200);
        b.goto("/profile").await;
        b.arrive("//h1[normalize-space()='Your profile']", "/profile", 200).await;
        assert_eq!(b.client.find_all(Locator::Css(".session")).await.unwrap().len(), 2);
        assert!(b.client.find(Locator::Css(".session--current form")).await.is_err(), "a second sign-out");
        b.element(".session:not(.session--current) form[action$='/revoke'] button").await;
        b.element("form[action='/account/sessions/revoke-others'] button").await;
        assert_eq!(b.client.find_all(Locator::Css("form[action='/logout']")).await.unwrap().len(), 1);
        assert_eq!(b.text(".profile-head__status").await, format!("Signed in as {USERNAME}"));
        b.screenshots("profile-two-sessions").await;

        // Signing out with the header's button lands on the sign-in page with a notice.
        b.click(".site-nav form[action='/logout'] button[type=submit]").await;
        b.arrive("//div[contains(@class, 'alert--success')]", "/login", 200).await;
        assert_eq!(b.text(".alert--success").await, "You have been signed out.");
        assert!(b.client.get_named_cookie(TOKEN_COOKIE).await.is_err(), "the token cookie is gone");
        assert!(b.client.find(Locator::Css(".site-nav__user")).await.is_err());
        b.screenshots("login-signed-out").await;

        // The profile is now behind the sign-in page, which remembers where the person was going.
        b.goto("/profile").await;
        b.arrive("//h1[normalize-space()='Sign in']", "/login?next=%2Fprofile", 200).await;
        assert!(b.client.find(Locator::Css(".alert")).await.is_err(), "the notice was shown once");
        assert_eq!(b.value("input[name='next']").await, "/profile");
        assert_eq!(b.js("return document.activeElement.id").await, json!("username"), "autofocus");
        b.screenshots("login").await;

        // A wrong password: one message, the username kept, the password emptied.
        b.type_into("#username", USERNAME).await;
        b.type_into("#password", "not the password").await;
        b.click("form[action='/login'] button[type=submit]").await;
        b.arrive("//div[contains(@class, 'alert--error')]", "/login", 401).await;
        assert_eq!(b.text(".alert--error").await, "Invalid username or password.");
        assert_eq!(b.value("#username").await, USERNAME);
        assert_eq!(b.value("#password").await, "");
        assert_eq!(b.value("input[name='next']").await, "/profile");
        assert_eq!(
            b.js("return document.activeElement.id").await,
            json!("password"),
            "focus on what to retype"
        );
        b.screenshots("login-error").await;

        // The right one: back on the page that was asked for.
        b.type_into("#password", PASSWORD).await;
        b.click("form[action='/login'] button[type=submit]").await;
        b.arrive("//h1[normalize-space()='Your profile']", "/profile", 200).await;
        assert!(!b.document_cookie().await.contains(TOKEN_COOKIE));

        // An unknown page: a friendly page with the right status.
        b.goto("/no-such-page").await;
        b.arrive("//p[contains(@class, 'error-page__code')]", "/no-such-page", 404).await;
        assert!(b.text(".error-page__code").await.contains("404"));
        b.element("main a[href='/']").await;
        b.screenshots("not-found").await;
    })
    .await;
}

#[rocket::async_test]
async fn a_person_who_forgot_the_password_gets_back_in_through_a_mailed_link() {
    with_browser(|b| async move {
        // Signed up, with an address added on the profile.
        b.sign_up("alice").await;
        assert!(b.text("#email").await.contains("None"), "no address yet");
        b.click("main a[href='/account/email']").await;
        b.arrive("//h1[normalize-space()='Your email address']", "/account/email", 200).await;
        let field = b.element("#email").await;
        assert_eq!(field.attr("type").await.unwrap().as_deref(), Some("email"));
        assert_eq!(field.attr("autocomplete").await.unwrap().as_deref(), Some("email"));
        b.screenshots("email").await;
        b.type_into("#email", "alice@example.com").await;
        b.click("form[action='/account/email'] button[type=submit]").await;
        b.arrive("//div[contains(@class, 'alert--success')]", "/profile", 200).await;
        assert!(b.text(".alert--success").await.contains("alice@example.com"));
        assert!(b.text("#email").await.contains("Unconfirmed"), "{}", b.text("#email").await);
        b.screenshots("profile-unconfirmed").await;

        // The confirmation link from the mail: a page with a button, then confirmed.
        let link = b.mailed_link(1, "/email/confirm").await;
        b.client.goto(&link).await.unwrap();
        b.arrive("//h1[normalize-space()='Confirm your email address']", &link[b.base.len()..], 200).await;
        b.screenshots("confirm-email").await;
        b.click("form[action='/email/confirm'] button[type=submit]").await;
        b.arrive("//div[contains(@class, 'alert--success')]", "/profile", 200).await;
        assert!(b.text("#email").await.contains("Confirmed"), "{}", b.text("#email").await);

        // Signed out, the password forgotten: "Forgot your password?" on the sign-in page.
        b.click(".site-nav form[action='/logout'] button[type=submit]").await;
        b.arrive("//h1[normalize-space()='Sign in']", "/login", 200).await;
        b.click("main a[href='/password-reset']").await;
        b.arrive("//h1[normalize-space()='Forgot your password?']", "/password-reset", 200).await;
        b.screenshots("forgot").await;
        b.type_into("#account", "alice@example.com").await;
        b.click("form[action='/password-reset'] button[type=submit]").await;
        b.arrive("//h1[normalize-space()='Check your mail']", "/password-reset", 200).await;
        b.screenshots("reset-sent").await;

        // The reset link: a new password, and signed in with a notice.
        let link = b.mailed_link(2, "/password-reset/new").await;
        b.client.goto(&link).await.unwrap();
        b.arrive("//h1[normalize-space()='Choose a new password']", &link[b.base.len()..], 200).await;
        b.screenshots("reset").await;
        b.type_into("#new_password", "a brand new passphrase").await;
        b.type_into("#new_password_confirm", "a brand new passphrase").await;
        b.click("form[action='/password-reset/new'] button[type=submit]").await;
        b.arrive("//div[contains(@class, 'alert--success')]", "/profile", 200).await;
        assert!(b.text(".alert--success").await.contains("Your password has been changed"));
        assert_eq!(b.text(".site-nav__user").await, "alice");

        // The link is spent: opening it again says so.
        b.client.goto(&link).await.unwrap();
        b.arrive("//p[contains(@class, 'error-page__code')]", &link[b.base.len()..], 400).await;
        assert!(b.text(".error-page__detail").await.contains("already used"));

        // The new password signs in; the old one does not.
        let port = b.base.rsplit(':').next().unwrap().parse().unwrap();
        for (password, status) in [(PASSWORD, 401), ("a brand new passphrase", 200)] {
            let credentials = json!({ "username": "alice", "password": password }).to_string();
            let (got, _, _) = Server::request_to(port, "POST", "/auth/login", &[JSON], &credentials).unwrap();
            assert_eq!(got, status, "{password}");
        }
    })
    .await;
}

/// Two-step sign-in set up from the page, the key read off it as a person's app would, then a
/// sign-out and a sign-in with a code.
#[rocket::async_test]
async fn a_person_turns_on_two_step_sign_in_and_signs_in_with_a_code() {
    with_browser(|b| async move {
        b.sign_up("alice").await;
        assert!(b.text("#two-factor").await.contains("Off"), "{}", b.text("#two-factor").await);

        // The password, then the app's QR code and key.
        b.click("#two-factor a[href='/account/two-factor']").await;
        b.arrive("//h1[normalize-space()='Two-step sign-in']", "/account/two-factor", 200).await;
        b.type_into("#password", PASSWORD).await;
        b.click("form[action='/account/two-factor'] button[type=submit]").await;
        b.arrive("//code[@id='secret']", "/account/two-factor", 200).await;
        b.element(".qr svg").await;
        b.screenshots("two-factor-setup").await;
        let secret: String = b.text("#secret").await.split_whitespace().collect();
        let code = b.element("#code").await;
        assert_eq!(code.attr("autocomplete").await.unwrap().as_deref(), Some("one-time-code"));
        b.type_into("#code", &common::totp_code(&secret, common::now())).await;
        b.click("form[action='/account/two-factor/confirm'] button[type=submit]").await;

        // The recovery codes, once, with a download.
        b.arrive("//h1[normalize-space()='Your recovery codes']", "/account/two-factor/confirm", 200).await;
        let codes = b.text("#recovery-codes").await;
        assert_eq!(codes.lines().filter(|line| !line.trim().is_empty()).count(), 10, "{codes}");
        b.element("a[download='miniauth-recovery-codes.txt']").await;
        b.element(".site-nav form[action='/logout'] button[type=submit]").await;
        b.screenshots("recovery-codes").await;
        b.click("main a.btn--primary[href='/profile']").await;
        b.arrive("//h1[normalize-space()='Your profile']", "/profile", 200).await;
        assert!(b.text("#two-factor").await.contains("On"), "{}", b.text("#two-factor").await);

        // Signed out, then in: the password leads to the code page.
        b.sign_out().await;
        b.sign_in_with_password("alice").await;
        b.arrive("//h1[normalize-space()='Two-step sign-in']", "/login/code", 200).await;
        let field = b.element("#code").await;
        assert_eq!(field.attr("autocomplete").await.unwrap().as_deref(), Some("one-time-code"));
        assert_eq!(field.attr("inputmode").await.unwrap().as_deref(), Some("numeric"));
        b.element("main a[href='/login/code?recovery=true']").await;
        b.screenshots("login-code").await;
        // Nothing signed the browser in yet; the sign-in waits for its code.
        b.goto("/profile").await;
        b.arrive("//h1[normalize-space()='Sign in']", "/login?next=%2Fprofile", 200).await;
        b.goto("/login/code").await;
        b.arrive("//h1[normalize-space()='Two-step sign-in']", "/login/code", 200).await;
        b.type_into("#code", &common::totp_code(&secret, common::now() + 30)).await;
        b.click("form[action='/login/code'] button[type=submit]").await;
        b.arrive("//h1[normalize-space()='Your profile']", "/profile", 200).await;
        assert!(b.text(".sessions").await.contains("with password + code"), "{}", b.text(".sessions").await);
    })
    .await;
}

/// A WebDriver command fantoccini has no helper for, sent as it is: the W3C WebAuthn
/// extension's (chromedriver's virtual authenticators), or chromedriver's DevTools passage.
#[derive(Debug)]
struct SessionCommand {
    path: &'static str,
    body: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for SessionCommand {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/{}", session.unwrap_or_default(), self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

impl Browser {
    /// Creates an account `name` (password [`PASSWORD`]) on the sign-up page: signed in, on the
    /// profile.
    async fn sign_up(&self, name: &str) {
        self.goto("/register").await;
        self.arrive("//h1[normalize-space()='Create your account']", "/register", 200).await;
        self.type_into("#username", name).await;
        self.type_into("#password", PASSWORD).await;
        self.type_into("#password_confirm", PASSWORD).await;
        self.click("form[action='/register'] button[type=submit]").await;
        self.arrive("//h1[normalize-space()='Your profile']", "/profile", 200).await;
    }

    /// Signs out with the header's button: on the sign-in page.
    async fn sign_out(&self) {
        self.click(".site-nav form[action='/logout'] button[type=submit]").await;
        self.arrive("//h1[normalize-space()='Sign in']", "/login", 200).await;
    }

    /// Types `name` and [`PASSWORD`] into the sign-in page and sends them.
    async fn sign_in_with_password(&self, name: &str) {
        self.type_into("#username", name).await;
        self.type_into("#password", PASSWORD).await;
        self.click("form[action='/login'] button[type=submit]").await;
    }

    /// A virtual platform authenticator (like a laptop's fingerprint reader): it keeps
    /// discoverable credentials, verifies the user and answers at once.
    async fn add_virtual_authenticator(&self) -> String {
        let body = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
            "automaticPresenceSimulation": true,
        });
        let added = self.client.issue_cmd(SessionCommand { path: "webauthn/authenticator", body }).await;
        added.expect("chromedriver adds a virtual authenticator").as_str().unwrap().to_owned()
    }

    /// Runs `source` in every page from now on, before the page's own scripts; its id.
    async fn before_every_page(&self, source: &str) -> String {
        let body = json!({ "cmd": "Page.addScriptToEvaluateOnNewDocument", "params": { "source": source } });
        let added = self.client.issue_cmd(SessionCommand { path: "goog/cdp/execute", body }).await;
        added.expect("chromedriver passes DevTools commands")["identifier"].as_str().unwrap().to_owned()
    }

    async fn no_longer_before_every_page(&self, identifier: &str) {
        let body = json!({ "cmd": "Page.removeScriptToEvaluateOnNewDocument", "params": { "identifier": identifier } });
        self.client.issue_cmd(SessionCommand { path: "goog/cdp/execute", body }).await.unwrap();
    }
}

/// Passkeys in a real browser with Chromium's virtual authenticator: added from the passkeys
/// page (the browser's dialog, a name), then, signed out, the passkey button signs in with no
/// username or password.
#[rocket::async_test]
async fn a_person_adds_a_passkey_and_signs_in_with_it() {
    with_browser_on_localhost(|b| async move {
        assert!(b.base.starts_with("http://localhost:"), "{}", b.base);
        b.add_virtual_authenticator().await;
        b.sign_up("alice").await;
        assert!(b.text("#passkeys").await.contains("None"), "{}", b.text("#passkeys").await);

        // The passkeys page: the script shows the form; a name, then the browser's dialog.
        b.click("#passkeys a[href='/account/passkeys']").await;
        b.arrive("//h1[normalize-space()='Passkeys']", "/account/passkeys", 200).await;
        b.element("#passkey-add:not([hidden])").await;
        b.screenshots("passkeys-empty").await;
        b.type_into("#name", "Laptop").await;
        b.click("#passkey-add button[type=submit]").await;
        // The first second factor: the recovery codes, once.
        b.arrive("//h1[normalize-space()='Your recovery codes']", "/account/passkeys", 200).await;
        b.click("main a.btn--primary[href='/profile']").await;
        b.arrive("//h1[normalize-space()='Your profile']", "/profile", 200).await;
        assert!(b.text("#passkeys").await.contains("1 passkey"), "{}", b.text("#passkeys").await);
        b.goto("/account/passkeys").await;
        b.arrive("//strong[normalize-space()='Laptop']", "/account/passkeys", 200).await;
        b.screenshots("passkeys").await;

        // Signed out, the sign-in page offers the passkey; no username, no password. (The
        // virtual authenticator answers the autofill's request at once, with no one to choose:
        // the browser is told it has no autofill, to press the button.)
        let no_autofill = b
            .before_every_page("PublicKeyCredential.isConditionalMediationAvailable = async () => false;")
            .await;
        b.sign_out().await;
        let username = b.element("#username").await;
        assert_eq!(username.attr("autocomplete").await.unwrap().as_deref(), Some("username webauthn"));
        b.element("#passkey-sign-in:not([hidden])").await;
        b.screenshots("login-passkey").await;
        b.click("#passkey-sign-in button").await;
        b.arrive("//h1[normalize-space()='Your profile']", "/profile", 200).await;
        assert!(b.text(".sessions").await.contains("with passkey"), "{}", b.text(".sessions").await);

        // After a password, the passkey is the second step.
        b.sign_out().await;
        b.sign_in_with_password("alice").await;
        b.arrive("//h1[normalize-space()='Two-step sign-in']", "/login/code", 200).await;
        b.element("#passkey-second-step:not([hidden])").await;
        b.screenshots("login-code-passkey").await;
        b.click("#passkey-second-step button").await;
        b.arrive("//h1[normalize-space()='Your profile']", "/profile", 200).await;
        assert!(b.text(".sessions").await.contains("password + passkey"), "{}", b.text(".sessions").await);

        // With the autofill, the sign-in page signs in with the passkey as it opens.
        b.no_longer_before_every_page(&no_autofill).await;
        b.click(".site-nav form[action='/logout'] button[type=submit]").await;
        b.arrive("//h1[normalize-space()='Your profile']", "/profile", 200).await;
        let sessions = b.text(".sessions").await;
        assert!(sessions.contains("with passkey") && !sessions.contains("password"), "{sessions}");
    })
    .await;
}

/// Forward auth in a real browser: an app behind nginx (the README's configuration) sends the
/// signed-out visitor to MiniAuth's sign-in page, which brings them back to the very address they
/// asked for, where the app knows who they are; signed out on MiniAuth, the app sends them to
/// sign in again.
#[rocket::async_test]
async fn a_person_opens_an_app_behind_nginx_signs_in_and_is_back_at_the_app() {
    let env = [
        ("ROCKET_TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#),
        ("ROCKET_FORWARD_AUTH_DOMAINS", r#"["127.0.0.1"]"#),
        ("ROCKET_FORWARD_AUTH", r#"{hosts={"127.0.0.1"={any_signed_in=true}}}"#),
    ];
    with_browser_and(&env, |b| async move {
        let miniauth: u16 = b.base.rsplit(':').next().unwrap().parse().unwrap();
        let account = json!({ "username": "alice", "password": PASSWORD }).to_string();
        let (status, _, _) =
            Server::request_to(miniauth, "POST", "/auth/register", &[JSON], &account).unwrap();
        assert_eq!(status, 201);
        let dir = tempfile::tempdir().unwrap();
        let (_app, app_port) = common::proxy::start_app();
        let (_nginx, port) = common::proxy::start_nginx(dir.path(), miniauth, app_port);
        let app = format!("http://127.0.0.1:{port}/dashboard?panel=2");

        // Signed out: the app's address leads to the sign-in page, which remembers it.
        b.client.goto(&app).await.unwrap();
        let mut sign_in = url::Url::parse("http://127.0.0.1/login").unwrap();
        sign_in.query_pairs_mut().append_pair("rd", &app);
        let expected = &sign_in.as_str()["http://127.0.0.1".len()..];
        b.arrive("//h1[normalize-space()='Sign in']", expected, 200).await;
        assert_eq!(b.client.current_url().await.unwrap().port(), Some(miniauth));
        b.type_into("#username", "alice").await;
        b.type_into("#password", PASSWORD).await;
        b.click("form[action='/login'] button[type=submit]").await;

        // Back at the app, which was told who signed in.
        b.arrive("//pre", "/dashboard?panel=2", 200).await;
        assert_eq!(b.client.current_url().await.unwrap().as_str(), app);
        let echo: Value = serde_json::from_str(&b.text("pre").await).unwrap();
        assert_eq!(echo["headers"]["remote-user"], json!(["alice"]), "{echo}");

        // Signed out on MiniAuth: the app sends the browser to sign in again.
        b.goto("/profile").await;
        b.arrive("//h1[normalize-space()='Your profile']", "/profile", 200).await;
        b.click(".site-nav form[action='/logout'] button[type=submit]").await;
        b.arrive("//div[contains(@class, 'alert--success')]", "/login", 200).await;
        b.client.goto(&app).await.unwrap();
        b.arrive("//h1[normalize-space()='Sign in']", expected, 200).await;
    })
    .await;
}

/// A Python with Authlib (and requests): `MINIAUTH_TEST_PYTHON` when set (CI installs both
/// there), else a virtualenv under `target/` made once.
fn python_with_authlib() -> PathBuf {
    let ready = |python: &Path| {
        Command::new(python).args(["-c", "import authlib, requests"]).status().is_ok_and(|s| s.success())
    };
    if let Some(python) = std::env::var_os("MINIAUTH_TEST_PYTHON").map(PathBuf::from) {
        if ready(&python) {
            return python;
        }
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-oidc-rp");
    let python = venv.join("bin/python");
    if !ready(&python) {
        assert!(Command::new("python3").arg("-m").arg("venv").arg(&venv).status().unwrap().success());
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "authlib", "requests"])
            .status()
            .expect("pip runs");
        assert!(installed.success(), "pip install authlib requests failed");
    }
    python
}

/// `examples/oidc_rp.py`, a relying party written with Authlib, on `port`; stopped when dropped.
struct RelyingParty(Child);

impl RelyingParty {
    fn start(issuer: &str, client: &Value, port: u16, tamper: bool) -> RelyingParty {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/oidc_rp.py");
        let mut command = Command::new(python_with_authlib());
        command.arg(script).args(["--issuer", issuer, "--port", &port.to_string()]);
        command.args(["--client-id", client["client_id"].as_str().unwrap()]);
        command.args(["--client-secret", client["client_secret"].as_str().unwrap()]);
        if tamper {
            command.arg("--tamper");
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("python runs");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)
            .unwrap();
        assert_eq!(line.trim(), format!("listening {port}"), "the relying party did not start");
        RelyingParty(child)
    }
}

impl Drop for RelyingParty {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// "Sign in with MiniAuth" with a real third-party client: an app written with Authlib sends
/// the browser to MiniAuth, which signs the person in and asks for consent, and the app, back
/// with a code, checks the ID token against MiniAuth's published keys and shows who signed in.
/// The same app, made to corrupt the ID token's signature, refuses the sign-in; and signing out
/// from the app ends the MiniAuth session too.
#[rocket::async_test]
async fn a_person_signs_in_to_an_app_with_miniauth() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(Backend::Sqlite);
    let server = Server::start_on_localhost(dir.path(), &[database.env()]);
    let account = json!({ "username": "alice", "password": PASSWORD }).to_string();
    assert_eq!(server.request("POST", "/auth/register", &[JSON], &account).0, 201);
    let (app_port, forger_port) = (free_port(), free_port());
    let client: Value = serde_json::from_str(&server.admin(&[
        "client",
        "create",
        "Test RP",
        "--redirect-uri",
        &format!("http://localhost:{app_port}/callback"),
        "--redirect-uri",
        &format!("http://localhost:{forger_port}/callback"),
        "--post-logout-redirect-uri",
        &format!("http://localhost:{app_port}/"),
        "--json",
    ]))
    .unwrap();
    let issuer = server.url("");
    let _app = RelyingParty::start(&issuer, &client, app_port, false);
    let _forger = RelyingParty::start(&issuer, &client, forger_port, true);
    let driver = ChromeDriver::start();
    let browser_client = driver.connect().await;
    let outbox = dir.path().join("data/outbox");
    let b = Browser { client: browser_client.clone(), base: issuer, screenshots: screenshot_dir(), outbox };
    let outcome = rocket::tokio::spawn(async move {
        let app = format!("http://localhost:{app_port}");
        b.client.goto(&format!("{app}/")).await.unwrap();
        b.client.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
        // MiniAuth's sign-in page, then the consent page naming the app and what it will see.
        b.client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css("form[action='/login']"))
            .await
            .unwrap();
        b.sign_in_with_password("alice").await;
        b.client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::XPath("//h1[normalize-space()='Allow Test RP?']"))
            .await
            .unwrap();
        let scopes = b.text("#scopes").await;
        assert!(scopes.contains("Your username") && scopes.contains("groups"), "{scopes}");
        b.screenshots("consent").await;
        b.click("button[name=decision][value=allow]").await;
        // Back at the app, which verified the ID token and read userinfo.
        b.client.wait().at_most(PAGE_TIMEOUT).for_element(Locator::Css("#user")).await.unwrap();
        assert_eq!(b.text("#user").await, "Signed in as alice");
        assert_eq!(b.client.current_url().await.unwrap().port(), Some(app_port));

        // The forger corrupts the ID token's signature: the same library refuses it. (Consent
        // is remembered and the browser signed in: MiniAuth sends it straight back.)
        b.client.goto(&format!("http://localhost:{forger_port}/login")).await.unwrap();
        b.client.wait().at_most(PAGE_TIMEOUT).for_element(Locator::Css("#error")).await.unwrap();
        let error = b.text("#error").await;
        assert!(error.contains("signature"), "{error}");
        let status = b.js("return performance.getEntriesByType('navigation')[0].responseStatus").await;
        assert_eq!(status, json!(401));

        // Signing out from the app ends the MiniAuth session too, and comes back to the app.
        b.client.goto(&format!("{app}/")).await.unwrap();
        b.click("#sign-out").await;
        b.client.wait().at_most(PAGE_TIMEOUT).for_element(Locator::Css("#signed-out")).await.unwrap();
        b.goto("/profile").await;
        b.arrive("//h1[normalize-space()='Sign in']", "/login?next=%2Fprofile", 200).await;
    })
    .await;
    browser_client.close().await.ok();
    drop(driver);
    if let Err(e) = outcome {
        eprintln!("server log:\n{}", server.log());
        std::panic::resume_unwind(e.into_panic());
    }
}
