//! Usernames: 3–32 characters of `A–Z a–z 0–9 _ . -`, unique regardless of case.

use std::fmt;

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;

/// The rule as a regular expression (unanchored: an HTML `pattern` is anchored by the browser;
/// JSON Schema's is anchored with `^…$`). `\-` is a literal dash in either dialect.
pub fn username_pattern() -> String {
    format!(r"[A-Za-z0-9_.\-]{{{USERNAME_MIN},{USERNAME_MAX}}}")
}

/// The rule as the sign-up form explains it.
pub fn username_rule() -> String {
    format!("{USERNAME_MIN}–{USERNAME_MAX} characters: letters, digits, _ . -")
}

/// A valid username, kept as typed. Uniqueness compares [`Username::canonical`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Takes the name exactly as given: a name with surrounding spaces breaks the alphabet rule
    /// (pages trim what people type before it gets here).
    pub fn parse(input: &str) -> Result<Self, String> {
        if input.is_empty() {
            return Err(super::REQUIRED.into());
        }
        if !input.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return Err("Username may contain only letters, digits, '_', '.' and '-'.".into());
        }
        if !(USERNAME_MIN..=USERNAME_MAX).contains(&input.len()) {
            return Err(format!("Username must be {USERNAME_MIN}–{USERNAME_MAX} characters long."));
        }
        Ok(Username(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two usernames are compared in: `Alice` and `alice` are the same name.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet_and_keeps_case() {
        let name = Username::parse("Al_i.c-e9").unwrap();
        assert_eq!(name.as_str(), "Al_i.c-e9");
        assert_eq!(name.canonical(), "al_i.c-e9");
    }

    #[test]
    fn rejects_short_long_and_foreign_characters() {
        for bad in ["", "ab", " abc", "abc ", &"a".repeat(33), "al ice", "alice!", "émile", "a/b", "ali\0ce"]
        {
            assert!(Username::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
    }
}
