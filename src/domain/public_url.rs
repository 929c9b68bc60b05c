//! `public_url`: the address people and services reach MiniAuth at, from which every link it
//! gives out is built (never from a request's `Host`).

use std::fmt;

use url::Url;

/// An absolute http(s) address with a host, at most a path, and no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    url: Url,
    /// The address as text, without a trailing slash: a page's path follows it.
    base: String,
}

impl PublicUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let wrong = |why: &str| {
            Err(format!("public_url must be {why}, as in https://auth.example.com, not {text:?}"))
        };
        let Ok(url) = Url::parse(text) else {
            return wrong("an absolute address");
        };
        if !matches!(url.scheme(), "http" | "https") {
            return wrong("an http:// or https:// address");
        }
        if url.host_str().is_none_or(str::is_empty) || url.query().is_some() || url.fragment().is_some() {
            return wrong("a host with, at most, a path");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return wrong("an address without a user or password");
        }
        let base = url.as_str().trim_end_matches('/').to_owned();
        Ok(PublicUrl { url, base })
    }

    /// The address itself.
    pub fn as_url(&self) -> &Url {
        &self.url
    }

    /// The host, lower-case, without its port.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The address of one of MiniAuth's own paths (`/login`).
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_address_without_a_doubled_slash() {
        for (written, login) in [
            ("https://auth.example.com", "https://auth.example.com/login"),
            ("https://auth.example.com/", "https://auth.example.com/login"),
            ("https://example.com/auth/", "https://example.com/auth/login"),
        ] {
            assert_eq!(PublicUrl::parse(written).unwrap().at("/login"), login);
        }
    }

    #[test]
    fn addresses_that_cannot_be_a_base_are_refused() {
        for written in ["auth.example.com", "ftp://x.test", "https://x.test/?a=b", "https://u:p@x.test"] {
            assert!(PublicUrl::parse(written).is_err(), "{written}");
        }
    }
}
