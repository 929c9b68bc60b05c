//! The values of OpenID Connect's authorization code flow, parsed once: scopes, redirect
//! addresses, `prompt`, and the PKCE proof (RFC 7636, `S256` only).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use url::Url;

/// The scopes MiniAuth knows. `openid` is required; others asked for are left out.
pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];

/// The claims an ID token and userinfo may carry, as discovery lists them.
pub const CLAIMS: [&str; 12] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "preferred_username",
    "email",
    "email_verified",
    "groups",
];

/// The scopes of a request, in MiniAuth's order, each once; unknown ones dropped (as OpenID
/// Connect asks).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Vec<&'static str>);

impl Scopes {
    /// The scopes of a space-separated `scope` parameter.
    pub fn parse(text: &str) -> Scopes {
        let asked: Vec<&str> = text.split(' ').filter(|s| !s.is_empty()).collect();
        Scopes(SCOPES.into_iter().filter(|known| asked.contains(known)).collect())
    }

    pub fn has(&self, scope: &str) -> bool {
        self.0.contains(&scope)
    }

    /// Every scope of `self` is in `other`.
    pub fn within(&self, other: &Scopes) -> bool {
        self.0.iter().all(|scope| other.has(scope))
    }

    /// The union of both.
    pub fn with(&self, other: &Scopes) -> Scopes {
        Scopes(SCOPES.into_iter().filter(|scope| self.has(scope) || other.has(scope)).collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().copied()
    }

    /// Space-separated, as stored and as the token endpoint answers.
    pub fn to_text(&self) -> String {
        self.0.join(" ")
    }

    /// What a person allows an app when it asks for these scopes, one line each.
    pub fn described(&self) -> Vec<&'static str> {
        self.iter()
            .filter_map(|scope| match scope {
                "openid" => Some("Who you are: your account's id here"),
                "profile" => Some("Your username"),
                "email" => Some("Your email address, once you have confirmed it"),
                "groups" => Some("The groups you are in"),
                "offline_access" => Some("Staying connected while you are away (until you revoke it)"),
                _ => None,
            })
            .collect()
    }
}

/// Why a redirect address cannot be registered.
pub fn redirect_uri(text: &str) -> Result<String, String> {
    let wrong = |why: &str| Err(format!("{text:?} is not a redirect address: {why}"));
    let Ok(url) = Url::parse(text) else {
        return wrong("it must be an absolute address, like https://app.example.com/callback");
    };
    if url.fragment().is_some() {
        return wrong("it may not have a fragment (#…)");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return wrong("it may not hold a user or password");
    }
    match url.scheme() {
        "https" if url.host_str().is_some_and(|host| !host.is_empty()) => Ok(text.to_owned()),
        "http" if is_loopback(&url) => Ok(text.to_owned()),
        "http" => {
            wrong("plain http is allowed only on this machine (localhost, 127.0.0.1, [::1]): use https")
        }
        _ => wrong("it must be https (or http on localhost)"),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `address` with `pairs` added to its query (an address that already has a query keeps it).
pub fn with_query(address: &str, pairs: &[(&str, &str)]) -> String {
    match Url::parse(address) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in pairs {
                    query.append_pair(name, value);
                }
            }
            url.to_string()
        }
        Err(_) => address.to_owned(),
    }
}

/// `prompt`: what the app asks of the sign-in page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Answer without showing any page (`login_required`, `consent_required`).
    pub none: bool,
    /// Sign in again, even when signed in.
    pub login: bool,
    /// Ask for consent again, even when given.
    pub consent: bool,
}

impl Prompt {
    /// The space-separated values; `none` with any other is refused, as are unknown values.
    pub fn parse(text: &str) -> Result<Prompt, String> {
        let mut prompt = Prompt::default();
        for value in text.split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                // One account per browser: choosing is signing in again.
                "select_account" => prompt.login = true,
                other => return Err(format!("prompt {other:?} is not supported")),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err("prompt=none cannot be combined with another value".into());
        }
        Ok(prompt)
    }
}

/// A `code_challenge` of `S256`: the base64url SHA-256 of a verifier (43 characters).
pub fn code_challenge(text: &str) -> Result<&str, String> {
    let ok = text.len() == 43 && URL_SAFE_NO_PAD.decode(text).is_ok_and(|bytes| bytes.len() == 32);
    ok.then_some(text).ok_or_else(|| "code_challenge must be the base64url SHA-256 of the verifier".into())
}

/// Whether `verifier` (43–128 unreserved characters, RFC 7636) is the one `challenge` was
/// made from.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_keep_the_known_ones_in_order_once() {
        let scopes = Scopes::parse("email  openid weird email groups");
        assert_eq!(scopes.to_text(), "openid email groups");
        assert!(Scopes::parse("openid").within(&scopes));
        assert!(!Scopes::parse("openid profile").within(&scopes));
        assert_eq!(scopes.with(&Scopes::parse("profile")).to_text(), "openid profile email groups");
    }

    #[test]
    fn redirect_addresses_are_https_or_loopback_http() {
        for good in [
            "https://app.example.com/cb",
            "http://localhost:3000/cb",
            "http://127.0.0.1/cb?x=1",
            "http://[::1]:8/cb",
        ] {
            assert_eq!(redirect_uri(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "app.example.com/cb",
            "http://app.example.com/cb",
            "https://app.example.com/cb#x",
            "ftp://x/cb",
            "https://u:p@x/cb",
        ] {
            assert!(redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_query_is_added_to_the_one_there() {
        assert_eq!(with_query("https://a.test/cb?x=1", &[("code", "a b")]), "https://a.test/cb?x=1&code=a+b");
    }

    #[test]
    fn prompt_none_stands_alone() {
        assert!(Prompt::parse("none").unwrap().none);
        assert!(Prompt::parse("login consent").unwrap().login);
        assert!(Prompt::parse("none login").is_err());
        assert!(Prompt::parse("bogus").is_err());
    }

    #[test]
    fn pkce_s256_as_rfc_7636_gives_it() {
        // RFC 7636, appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(code_challenge(challenge), Ok(challenge));
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", challenge));
        assert!(!verifier_matches("short", challenge));
        assert!(code_challenge("plain-verifier").is_err());
    }
}
