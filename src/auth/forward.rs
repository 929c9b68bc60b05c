//! Forward auth: a reverse proxy asks, before each request to an app it protects, whether the
//! visitor may pass. What the visitor asked for comes from the proxy's headers, believed only
//! from `trusted_proxies`; the answer depends on the protected domains (`forward_auth_domains`),
//! the per-host rules and who is signed in. The same list decides where the sign-in page may
//! send a visitor back to (`rd`), so MiniAuth never redirects to a host it does not protect.

use std::collections::BTreeMap;

use url::{Host, Url};

use super::Methods;
use crate::domain::{PublicUrl, User, Username};

/// The request a proxy asks about.
#[derive(Debug, Clone)]
pub struct Original {
    pub method: String,
    pub url: Url,
    /// Whether a person's browser made it: a `GET` or `HEAD` that accepts HTML.
    pub browser: bool,
}

impl Original {
    /// The original request from its method, address and `Accept` header; the address must be
    /// an absolute http(s) URL with a host and nothing before it: a URL with a username or a
    /// password (`http://app.test:@other.test/`) names a host the proxy did not route to, so
    /// deciding on it would apply another host's rules.
    pub fn new(method: &str, url: &str, accept: Option<&str>) -> Result<Self, String> {
        // The parser drops an empty userinfo (`http://@host/`), so the text is read as sent.
        let authority = url.split_once("://").map_or("", |(_, rest)| rest);
        if authority.split(['/', '\\', '?', '#']).next().unwrap_or_default().contains('@') {
            return Err(format!("{url:?} carries a username or password before its host"));
        }
        let url = Url::parse(url).map_err(|_| format!("{url:?} is not an absolute address"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{url} is not an http(s) address with a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{url} carries a username or password before its host"));
        }
        let method = method.trim().to_ascii_uppercase();
        let accepts_html = accept.is_some_and(|accept| {
            accept.split(',').any(|media| {
                let media = media.split(';').next().unwrap_or_default().trim();
                media.eq_ignore_ascii_case("text/html") || media.eq_ignore_ascii_case("application/xhtml+xml")
            })
        });
        let browser = matches!(method.as_str(), "GET" | "HEAD") && accepts_html;
        Ok(Original { method, url, browser })
    }

    /// The host asked about, lower-case, without its port.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }
}

/// What the proxy is told.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Signed in and allowed: pass, naming the user.
    Allow,
    /// Not allowed here (a host rule), or a host MiniAuth does not protect: why.
    Forbid(String),
    /// A signed-out browser: send it to this sign-in address, which brings it back.
    SignIn(String),
    /// Signed out, not a browser: a bearer challenge (`invalid_token` when one was bad).
    Challenge { invalid_token: bool },
}

/// Who a host rule lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Admits {
    /// Everyone signed in (`any_signed_in = true`).
    AnySignedIn,
    /// These users, and the members of these groups, only, by canonical name (none: nobody).
    Members { users: Vec<String>, groups: Vec<String> },
}

/// A host's rule: whom it admits, and whether only after two-step sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    admits: Admits,
    /// Only sessions that signed in with a second factor pass (`amr` holds `mfa`).
    second_factor: bool,
}

/// One host's rule as the settings write it: the usernames and the groups it admits, whether
/// it admits anyone signed in, and whether it asks for two-step sign-in.
pub struct WrittenRule<'a> {
    pub host: &'a str,
    pub users: &'a [String],
    pub groups: &'a [String],
    pub any_signed_in: bool,
    pub second_factor: bool,
}

/// The forward-auth policy, built once from the settings.
#[derive(Debug, Clone)]
pub struct ForwardAuth {
    /// Protected domains, lower-case: each covers itself and its subdomains.
    domains: Vec<String>,
    /// Hosts with a rule → whom they admit. A rule covers its host and the hosts below it that
    /// have no rule of their own.
    rules: BTreeMap<String, Rule>,
    /// `<public_url>/login`, where signed-out browsers go.
    login: Url,
    /// Return only to https addresses (when cookies are `Secure`, an http app never sees them).
    https_only: bool,
}

impl ForwardAuth {
    /// The policy of the settings `forward_auth_domains`, `forward_auth.hosts` (host → the
    /// usernames and groups it admits, and whether it admits anyone signed in) and
    /// `cookie_secure`, or what is wrong with them.
    pub fn new<'a>(
        domains: &[String],
        rules: impl IntoIterator<Item = WrittenRule<'a>>,
        public_url: &PublicUrl,
        https_only: bool,
    ) -> Result<Self, String> {
        let domains = domains
            .iter()
            .map(|entry| domain("forward_auth_domains", entry))
            .collect::<Result<Vec<_>, _>>()?;
        let mut admitted = BTreeMap::new();
        for WrittenRule { host, users, groups, any_signed_in, second_factor } in rules {
            let key = domain("forward_auth.hosts", host)?;
            if !covers(&domains, &key) {
                return Err(format!(
                    "forward_auth.hosts.{host:?} is not under forward_auth_domains, so it is never protected"
                ));
            }
            let names = |list: &[String], field: &str| {
                list.iter()
                    .map(|name| Username::parse(name).map(|name| name.canonical()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("forward_auth.hosts.{host:?}.{field}: {e}"))
            };
            let admits = match (any_signed_in, users.is_empty() && groups.is_empty()) {
                (true, true) => Admits::AnySignedIn,
                (true, false) => {
                    return Err(format!(
                        "forward_auth.hosts.{host:?}: any_signed_in = true admits everyone signed in, \
                         so it cannot also list users or groups: keep one or the other"
                    ))
                }
                (false, _) => {
                    Admits::Members { users: names(users, "users")?, groups: names(groups, "groups")? }
                }
            };
            admitted.insert(key, Rule { admits, second_factor });
        }
        let login = Url::parse(&public_url.at("/login"))
            .map_err(|_| format!("public_url {public_url:?} is not an address"))?;
        Ok(ForwardAuth { domains, rules: admitted, login, https_only })
    }

    /// The protected domains with no rule of their own or above them: their hosts admit
    /// everyone signed in, by default.
    pub fn unruled(&self) -> Vec<&str> {
        self.domains.iter().filter(|domain| self.rule(domain).is_none()).map(String::as_str).collect()
    }

    /// The users the rules list by name, each with the host of its rule (canonical names).
    pub fn listed_users(&self) -> impl Iterator<Item = (&str, &str)> {
        self.listed(|users, _| users)
    }

    /// The groups the rules list, each with the host of its rule (canonical names).
    pub fn listed_groups(&self) -> impl Iterator<Item = (&str, &str)> {
        self.listed(|_, groups| groups)
    }

    fn listed<'a>(
        &'a self,
        pick: impl Fn(&'a [String], &'a [String]) -> &'a [String] + 'a,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.rules.iter().flat_map(move |(host, rule)| {
            let names = match &rule.admits {
                Admits::Members { users, groups } => pick(users, groups),
                Admits::AnySignedIn => &[],
            };
            names.iter().map(move |name| (host.as_str(), name.as_str()))
        })
    }

    /// The rule of `host`: its own, else that of the nearest domain above it that has one.
    fn rule(&self, host: &str) -> Option<&Rule> {
        if let Some(rule) = self.rules.get(host) {
            return Some(rule);
        }
        // An address has no domains above it.
        if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
            return None;
        }
        let mut name = host;
        while let Some((_, parent)) = name.split_once('.') {
            if let Some(rule) = self.rules.get(parent) {
                return Some(rule);
            }
            name = parent;
        }
        None
    }

    /// The protected domains the session cookies never reach: those outside their scope. A
    /// browser signed in at MiniAuth is not recognised there, and goes back and forth between
    /// the app and the sign-in page.
    pub fn beyond_the_cookies(&self, cookies: &CookieScope) -> Vec<String> {
        let scope = [cookies.reach.clone()];
        self.domains.iter().filter(|host| !covers(&scope, host)).cloned().collect()
    }

    /// What to tell the proxy about `original`, asked by `user` in a session that signed in by
    /// `methods` (or by someone not signed in, `invalid_token` when the credentials sent were
    /// bad).
    pub fn decide(&self, original: &Original, user: Result<(&User, Methods), bool>) -> Decision {
        let host = original.host();
        if !covers(&self.domains, host) {
            return Decision::Forbid(format!("{host} is not among the domains MiniAuth protects."));
        }
        match user {
            Ok((user, _)) if !self.admits(host, user) => {
                Decision::Forbid(format!("{} may not use {host}.", user.username))
            }
            // Admitted, but not by this session: a browser signs in again, with its code.
            Ok((_, Methods::Password)) if self.needs_second_factor(host) => match original.browser {
                true => Decision::SignIn(self.sign_in(&original.url)),
                false => Decision::Forbid(format!("{host} asks for two-step sign-in: sign in with a code.")),
            },
            Ok(_) => Decision::Allow,
            Err(_) if original.browser => Decision::SignIn(self.sign_in(&original.url)),
            Err(invalid_token) => Decision::Challenge { invalid_token },
        }
    }

    /// Whether the rule of `host` asks for two-step sign-in.
    pub fn needs_second_factor(&self, host: &str) -> bool {
        self.rule(host).is_some_and(|rule| rule.second_factor)
    }

    /// Whether `rd` (an address the sign-in page returns to) is a host whose rule asks for
    /// two-step sign-in.
    pub fn returns_to_second_factor(&self, rd: &str) -> bool {
        Url::parse(rd)
            .ok()
            .and_then(|url| url.host_str().map(|host| self.needs_second_factor(host)))
            .unwrap_or(false)
    }

    fn admits(&self, host: &str, user: &User) -> bool {
        match self.rule(host).map(|rule| &rule.admits) {
            Some(Admits::Members { users, groups }) => {
                let named = |names: &[String], name: &str| names.iter().any(|n| n.eq_ignore_ascii_case(name));
                named(users, &user.username) || user.groups.iter().any(|group| named(groups, group))
            }
            Some(Admits::AnySignedIn) | None => true,
        }
    }

    /// The sign-in page, coming back to `url` afterwards.
    fn sign_in(&self, url: &Url) -> String {
        let mut login = self.login.clone();
        login.query_pairs_mut().append_pair("rd", url.as_str());
        login.into()
    }

    /// The addresses the sign-in form may lead to besides MiniAuth itself, as a CSP source list
    /// (for `form-action`, which browsers apply to the redirect after the form too): every
    /// protected host, on any port, over the schemes `rd` may use. Empty without protected hosts.
    pub fn form_targets(&self) -> String {
        let schemes: &[&str] = if self.https_only { &["https"] } else { &["http", "https"] };
        let mut sources = Vec::new();
        for domain in &self.domains {
            for scheme in schemes {
                sources.push(format!("{scheme}://{domain}:*"));
                if Host::parse(domain).is_ok_and(|host| matches!(host, Host::Domain(_))) {
                    sources.push(format!("{scheme}://*.{domain}:*"));
                }
            }
        }
        sources.join(" ")
    }

    /// `rd` as an address to send a signed-in visitor back to, when it is one: http(s) (https
    /// only with `Secure` cookies), no credentials, a protected host.
    pub fn return_to(&self, rd: &str) -> Option<String> {
        let url = Url::parse(rd).ok()?;
        let scheme_ok = match url.scheme() {
            "https" => true,
            "http" => !self.https_only,
            _ => false,
        };
        let host = url.host_str()?;
        let plain = url.username().is_empty() && url.password().is_none();
        (scheme_ok && plain && covers(&self.domains, host)).then(|| url.into())
    }
}

/// Whether `host` is one of `domains` or below one.
fn covers(domains: &[String], host: &str) -> bool {
    domains.iter().any(|domain| {
        host == domain || host.strip_suffix(domain.as_str()).is_some_and(|sub| sub.ends_with('.'))
    })
}

/// A host name (or address) of a setting, lower-case and without a leading dot.
fn domain(setting: &str, entry: &str) -> Result<String, String> {
    let bare = entry.trim().trim_start_matches('.');
    match Host::parse(bare) {
        Ok(host) if !bare.is_empty() && !bare.contains(['/', ':', '*']) => Ok(host.to_string()),
        _ => Err(format!("{setting}: {entry:?} is not a host name, as in example.com")),
    }
}

/// Where the session cookies go: `Secure` or not, and the domain they are scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieScope {
    /// `cookie_secure`: sent over https only.
    pub secure: bool,
    /// `cookie_domain`, lower-case; `None`: host-only cookies.
    pub domain: Option<String>,
    /// The hosts the cookies reach (with their subdomains when `domain` is set).
    reach: String,
}

impl CookieScope {
    /// The scope of `cookie_secure` and `cookie_domain`, which must be a host name that
    /// `public_url` is (or is below), since browsers refuse a cookie for a domain the page
    /// setting it is not part of.
    pub fn parse(secure: bool, domain_setting: Option<&str>, public_url: &PublicUrl) -> Result<Self, String> {
        let Some(entry) = domain_setting else {
            return Ok(CookieScope { secure, domain: None, reach: public_url.host().to_owned() });
        };
        let scope = domain("cookie_domain", entry)?;
        match covers(std::slice::from_ref(&scope), public_url.host()) {
            true => Ok(CookieScope { secure, domain: Some(scope.clone()), reach: scope }),
            false => Err(format!(
                "cookie_domain {entry:?} must be the host of public_url ({public_url}) or a parent of it"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(
        domains: &[&str],
        rules: &[(&str, &[&str])],
        cookie_secure: bool,
    ) -> Result<ForwardAuth, String> {
        let domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        let rules: Vec<(&str, Vec<String>)> = rules
            .iter()
            .map(|(host, users)| (*host, users.iter().map(|u| u.to_string()).collect()))
            .collect();
        // `["*"]` stands for `any_signed_in = true`, `@name` for the group `name`.
        let rules: Vec<(&str, Vec<String>, Vec<String>, bool)> = rules
            .iter()
            .map(|(host, names)| match names.as_slice() {
                [any] if any == "*" => (*host, vec![], vec![], true),
                names => {
                    let (groups, users): (Vec<String>, Vec<String>) =
                        names.iter().cloned().partition(|name| name.starts_with('@'));
                    let groups = groups.iter().map(|group| group[1..].to_owned()).collect();
                    (*host, users, groups, false)
                }
            })
            .collect();
        let rules = rules.iter().map(|(host, users, groups, any_signed_in)| WrittenRule {
            host,
            users,
            groups,
            any_signed_in: *any_signed_in,
            second_factor: false,
        });
        ForwardAuth::new(&domains, rules, &public_url(), cookie_secure)
    }

    fn public_url() -> PublicUrl {
        PublicUrl::parse("https://auth.example.com").unwrap()
    }

    fn user(name: &str) -> User {
        User { id: 7, username: name.into(), ..User::default() }
    }

    fn member(name: &str, groups: &[&str]) -> User {
        User { groups: groups.iter().map(|group| group.to_string()).collect(), ..user(name) }
    }

    fn original(method: &str, url: &str, accept: &str) -> Result<Original, String> {
        Original::new(method, url, Some(accept))
    }

    #[test]
    fn a_domain_covers_itself_and_its_subdomains_only() -> Result<(), String> {
        let forward = policy(&[".Example.com", "apps.test"], &[], true)?;
        let alice = user("alice");
        for url in ["https://example.com/", "https://wiki.example.com/x", "https://a.b.apps.test:8443/"] {
            let asked = original("GET", url, "*/*")?;
            assert_eq!(
                forward.decide(&asked, Ok((&alice, Methods::PasswordAndCode))),
                Decision::Allow,
                "{url}"
            );
        }
        for url in ["https://badexample.com/", "https://example.com.evil.test/", "https://test/"] {
            let asked = original("GET", url, "*/*")?;
            assert!(
                matches!(forward.decide(&asked, Ok((&alice, Methods::PasswordAndCode))), Decision::Forbid(_)),
                "{url}"
            );
        }
        Ok(())
    }

    #[test]
    fn signed_out_browsers_go_to_sign_in_and_everything_else_is_challenged() -> Result<(), String> {
        let forward = policy(&["example.com"], &[], true)?;
        let page =
            original("GET", "https://wiki.example.com/a?b=c&d", "text/html,application/xhtml+xml;q=0.9")?;
        assert_eq!(
            forward.decide(&page, Err(false)),
            Decision::SignIn(
                "https://auth.example.com/login?rd=https%3A%2F%2Fwiki.example.com%2Fa%3Fb%3Dc%26d".into()
            )
        );
        let post = original("POST", "https://wiki.example.com/a", "text/html")?;
        assert_eq!(forward.decide(&post, Err(false)), Decision::Challenge { invalid_token: false });
        let api = original("GET", "https://wiki.example.com/api", "application/json")?;
        assert_eq!(forward.decide(&api, Err(true)), Decision::Challenge { invalid_token: true });
        Ok(())
    }

    #[test]
    fn an_original_address_with_credentials_before_its_host_is_refused() {
        for url in [
            "https://app.test:@sub.app.test/",
            "https://@sub.app.test/",
            "https://bob@app.test/",
            "https://bob:pw@app.test/x",
            "http://app.test%3A@sub.app.test/",
        ] {
            assert!(original("GET", url, "*/*").is_err_and(|e| e.contains("username or password")), "{url}");
        }
        assert!(original("GET", "https://app.test/a@b?c=d@e#f@g", "*/*").is_ok());
        // A backslash ends the host as a slash does: the host is app.test, as routed.
        assert_eq!(
            original("GET", "https://app.test\\@sub.app.test/", "*/*").map(|o| o.host().to_owned()),
            Ok("app.test".into())
        );
    }

    #[test]
    fn a_host_rule_admits_only_its_users() -> Result<(), String> {
        let forward = policy(&["example.com"], &[("Wiki.example.com", &["Alice"])], true)?;
        let wiki = original("GET", "https://wiki.example.com/", "*/*")?;
        assert_eq!(forward.decide(&wiki, Ok((&user("ALICE"), Methods::PasswordAndCode))), Decision::Allow);
        assert!(matches!(
            forward.decide(&wiki, Ok((&user("bob"), Methods::PasswordAndCode))),
            Decision::Forbid(_)
        ));
        let other = original("GET", "https://grafana.example.com/", "*/*")?;
        assert_eq!(forward.decide(&other, Ok((&user("bob"), Methods::PasswordAndCode))), Decision::Allow);
        Ok(())
    }

    #[test]
    fn a_host_rule_admits_the_members_of_its_groups_and_its_users() -> Result<(), String> {
        let forward = policy(&["example.com"], &[("photos.example.com", &["@Family", "carol"])], true)?;
        let photos = original("GET", "https://photos.example.com/", "*/*")?;
        let admitted =
            |user: &User| forward.decide(&photos, Ok((user, Methods::PasswordAndCode))) == Decision::Allow;
        assert!(admitted(&member("alice", &["family"])));
        assert!(admitted(&member("alice", &["friends", "FAMILY"])));
        assert!(admitted(&user("Carol")));
        assert!(!admitted(&member("bob", &["friends"])));
        assert!(!admitted(&user("bob")));
        assert_eq!(forward.listed_groups().collect::<Vec<_>>(), vec![("photos.example.com", "family")]);
        assert_eq!(forward.listed_users().collect::<Vec<_>>(), vec![("photos.example.com", "carol")]);
        Ok(())
    }

    #[test]
    fn a_rule_with_second_factor_admits_only_sessions_that_used_one() -> Result<(), String> {
        let domains = ["example.com".to_owned()];
        let names = ["family".to_owned()];
        let rules = [
            WrittenRule {
                host: "vault.example.com",
                users: &[],
                groups: &names,
                any_signed_in: false,
                second_factor: true,
            },
            WrittenRule {
                host: "example.com",
                users: &[],
                groups: &[],
                any_signed_in: true,
                second_factor: false,
            },
        ];
        let forward = ForwardAuth::new(&domains, rules, &public_url(), true)?;
        let (alice, bob) = (member("alice", &["family"]), member("bob", &[]));
        let page = original("GET", "https://vault.example.com/", "text/html")?;
        let api = original("GET", "https://vault.example.com/api", "application/json")?;
        assert_eq!(forward.decide(&page, Ok((&alice, Methods::PasswordAndCode))), Decision::Allow);
        // A password-only session: the browser signs in again (with its code), an API call is refused.
        assert!(matches!(forward.decide(&page, Ok((&alice, Methods::Password))), Decision::SignIn(_)));
        assert!(
            matches!(forward.decide(&api, Ok((&alice, Methods::Password))), Decision::Forbid(why) if why.contains("two-step"))
        );
        // Not admitted is not admitted, whatever the session.
        assert!(matches!(forward.decide(&page, Ok((&bob, Methods::PasswordAndCode))), Decision::Forbid(_)));
        // The rule's flag is its own: the other hosts take a password alone.
        let wiki = original("GET", "https://wiki.example.com/", "text/html")?;
        assert_eq!(forward.decide(&wiki, Ok((&bob, Methods::Password))), Decision::Allow);
        assert!(forward.returns_to_second_factor("https://vault.example.com/x"));
        assert!(!forward.returns_to_second_factor("https://wiki.example.com/x"));
        Ok(())
    }

    #[test]
    fn a_rule_covers_the_hosts_below_it_that_have_none_of_their_own() -> Result<(), String> {
        let forward = policy(
            &["example.com", "apps.test", "10.0.0.1"],
            &[("example.com", &["alice"]), ("wiki.example.com", &["*"]), ("10.0.0.1", &["alice"])],
            true,
        )?;
        let decide = |url: &str, name: &str| -> Result<bool, String> {
            Ok(forward.decide(&original("GET", url, "*/*")?, Ok((&user(name), Methods::PasswordAndCode)))
                == Decision::Allow)
        };
        for url in ["https://example.com/", "https://grafana.example.com/", "https://a.b.example.com/"] {
            assert!(decide(url, "alice")? && !decide(url, "bob")?, "{url}");
        }
        for url in ["https://wiki.example.com/", "https://en.wiki.example.com/"] {
            assert!(decide(url, "bob")?, "{url}");
        }
        assert!(decide("https://10.0.0.1/", "alice")? && !decide("https://10.0.0.1/", "bob")?);
        // No rule at or above apps.test: everyone signed in, by default.
        assert!(decide("https://x.apps.test/", "bob")?);
        assert_eq!(forward.unruled(), vec!["apps.test"]);
        Ok(())
    }

    #[test]
    fn a_rule_admits_anyone_signed_in_or_listed_users_and_groups_never_both() {
        let domains = ["example.com".to_owned()];
        let names = ["alice".to_owned()];
        for (users, groups) in [(&names[..], &[][..]), (&[][..], &names[..])] {
            let rule =
                WrittenRule { host: "example.com", users, groups, any_signed_in: true, second_factor: false };
            let refused = ForwardAuth::new(&domains, [rule], &public_url(), true);
            assert!(refused.is_err_and(|e| e.contains("any_signed_in") && e.contains("example.com")));
        }
        let nobody = policy(&["example.com"], &[("example.com", &[])], true).unwrap();
        let asked = original("GET", "https://example.com/", "*/*").unwrap();
        assert!(matches!(
            nobody.decide(&asked, Ok((&user("alice"), Methods::PasswordAndCode))),
            Decision::Forbid(_)
        ));
        assert!(nobody.unruled().is_empty());
    }

    #[test]
    fn return_addresses_are_protected_hosts_over_the_right_scheme() -> Result<(), String> {
        let secure = policy(&["example.com"], &[], true)?;
        assert_eq!(
            secure.return_to("https://wiki.example.com/p?q=1").as_deref(),
            Some("https://wiki.example.com/p?q=1")
        );
        for rd in [
            "http://wiki.example.com/",
            "https://evil.test/",
            "https://wiki.example.com.evil.test/",
            "https://user:pw@wiki.example.com/",
            "javascript:alert(1)",
            "//wiki.example.com/",
            "/profile",
            "",
        ] {
            assert_eq!(secure.return_to(rd), None, "{rd}");
        }
        let plain = policy(&["example.com"], &[], false)?;
        assert!(plain.return_to("http://wiki.example.com/").is_some());
        Ok(())
    }

    #[test]
    fn the_sign_in_form_may_lead_to_every_protected_host_and_nowhere_else() -> Result<(), String> {
        let secure = policy(&["example.com", "10.0.0.5"], &[], true)?;
        assert_eq!(secure.form_targets(), "https://example.com:* https://*.example.com:* https://10.0.0.5:*");
        let plain = policy(&["example.com"], &[], false)?;
        assert_eq!(
            plain.form_targets(),
            "http://example.com:* http://*.example.com:* https://example.com:* https://*.example.com:*"
        );
        assert_eq!(policy(&[], &[], true)?.form_targets(), "");
        Ok(())
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let refused = |result: Result<ForwardAuth, String>, name: &str| {
            assert!(result.as_ref().is_err_and(|e| e.contains(name)), "{result:?}");
        };
        refused(policy(&["https://example.com"], &[], true), "forward_auth_domains");
        refused(policy(&["*.example.com"], &[], true), "forward_auth_domains");
        refused(policy(&["example.com"], &[("wiki.other.test", &["alice"])], true), "forward_auth.hosts");
        refused(policy(&["example.com"], &[("wiki.example.com", &["a b"])], true), "users");
    }

    #[test]
    fn protected_domains_outside_the_cookies_scope_are_named() -> Result<(), String> {
        let forward = policy(&["example.com", "wiki.example.com", "apps.test"], &[], true)?;
        let scope = |domain: Option<&str>| CookieScope::parse(true, domain, &public_url());
        assert_eq!(forward.beyond_the_cookies(&scope(Some("example.com"))?), ["apps.test"]);
        // Host-only cookies reach only MiniAuth's own host.
        assert_eq!(
            forward.beyond_the_cookies(&scope(None)?),
            ["example.com", "wiki.example.com", "apps.test"]
        );
        let same_host = policy(&["auth.example.com"], &[], true)?;
        assert!(same_host.beyond_the_cookies(&scope(None)?).is_empty());
        Ok(())
    }

    #[test]
    fn the_cookie_domain_must_hold_the_public_host() {
        let with =
            |domain: &str| CookieScope::parse(true, Some(domain), &public_url()).map(|scope| scope.domain);
        assert_eq!(with(".example.com"), Ok(Some("example.com".into())));
        assert_eq!(with("auth.example.com"), Ok(Some("auth.example.com".into())));
        assert!(with("other.test").is_err());
        assert!(with("ample.com").is_err());
    }
}
