//! Email addresses: optional, at most 254 characters, checked by lettre's address parser (the
//! one that sends the mail), unique regardless of case.

use std::str::FromStr;

pub const EMAIL_MAX: usize = 254;

/// A valid address, kept as typed. Uniqueness compares [`Email::key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(lettre::Address);

impl Email {
    /// Takes the address exactly as given (pages trim what people type before it gets here).
    pub fn parse(input: &str) -> Result<Self, String> {
        if input.is_empty() {
            return Err(super::REQUIRED.into());
        }
        if input.chars().count() > EMAIL_MAX {
            return Err(format!("An email address has at most {EMAIL_MAX} characters."));
        }
        lettre::Address::from_str(input)
            .map(Email)
            .map_err(|_| "Enter an email address such as name@example.com.".into())
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    pub fn address(&self) -> &lettre::Address {
        &self.0
    }

    /// The form two addresses are compared in: `Ann@Example.com` and `ann@example.com` are one.
    pub fn key(&self) -> String {
        key(self.as_str())
    }
}

/// The comparison form of an address (or of what someone typed as one).
pub fn key(address: &str) -> String {
    address.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::{Email, EMAIL_MAX};

    #[test]
    fn addresses_are_parsed_not_pattern_matched() {
        for good in ["ann@example.com", "Ann.Lee+tag@sub.example.org", "a@localhost"] {
            assert!(Email::parse(good).is_ok(), "{good} was refused");
        }
        for bad in
            ["", "ann", "ann@", "@example.com", "ann@@example.com", "ann @example.com", "ann@exa mple.com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn at_most_254_characters_and_compared_regardless_of_case() {
        let label = |n: usize| "d".repeat(n);
        let longest = format!("a@{}.{}.{}.{}", label(63), label(63), label(63), label(60));
        assert_eq!(longest.len(), EMAIL_MAX);
        assert!(Email::parse(&longest).is_ok());
        let too_long = format!("{longest}d");
        assert_eq!(
            Email::parse(&too_long),
            Err(format!("An email address has at most {EMAIL_MAX} characters."))
        );
        let email = Email::parse("Ann@Example.COM");
        assert_eq!(email.map(|e| e.key()), Ok("ann@example.com".to_owned()));
    }
}
