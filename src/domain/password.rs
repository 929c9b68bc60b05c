//! Passwords: 8–72 bytes (bcrypt reads at most 72, so longer ones are refused, never cut).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

pub const PASSWORD_MIN_BYTES: usize = 8;
pub const PASSWORD_MAX_BYTES: usize = 72;

/// A password that meets the rules for a new password. Its `Debug` never shows it.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(input: &str, username: &str) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        if input.len() < PASSWORD_MIN_BYTES {
            errors.push(format!("Password must be at least {PASSWORD_MIN_BYTES} characters long."));
        }
        if input.len() > PASSWORD_MAX_BYTES {
            errors.push(format!(
                "Password must be at most {PASSWORD_MAX_BYTES} bytes long \
                 (accented letters and symbols count as several)."
            ));
        }
        if !username.is_empty() && input.eq_ignore_ascii_case(username) {
            errors.push("Password must not be the same as the username.".into());
        }
        match errors.is_empty() {
            true => Ok(NewPassword(input.into())),
            false => Err(errors),
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_bytes() {
        assert!(NewPassword::parse(&"a".repeat(72), "bob").is_ok());
        assert!(NewPassword::parse(&"a".repeat(73), "bob").is_err());
        // 36 two-byte characters are 72 bytes; 37 are 74.
        assert!(NewPassword::parse(&"é".repeat(36), "bob").is_ok());
        assert!(NewPassword::parse(&"é".repeat(37), "bob").is_err());
        assert!(NewPassword::parse("1234567", "bob").is_err());
    }

    #[test]
    fn must_differ_from_the_username() {
        assert!(NewPassword::parse("alice1234", "Alice1234").is_err());
        assert!(NewPassword::parse("alice1234", "alice").is_ok());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = NewPassword::parse("hunter2hunter2", "bob").unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}
