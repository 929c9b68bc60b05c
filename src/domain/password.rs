//! New passwords: long enough (a setting, 8 by default), at most 72 bytes (bcrypt reads no more,
//! so longer ones are refused, never cut), without the username, and not easily guessed — judged
//! by zxcvbn, a well-kept strength estimator with its bundled lists of common passwords, words
//! and names, against a minimum score (a setting, 3 by default).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zxcvbn::Score;

pub const PASSWORD_MAX_BYTES: usize = 72;

/// The rules a new password must meet; from the settings `password_min_length` and
/// `password_min_score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct PasswordPolicy {
    /// Fewest bytes (each ASCII character is one).
    pub min_length: usize,
    /// Lowest zxcvbn score, 0–4: 3 means "safe from an online attack that guesses 10^10 times";
    /// 0 turns the estimator off.
    pub min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_length: 8, min_score: 3 }
    }
}

impl PasswordPolicy {
    /// What makes a good password, for the forms.
    pub fn advice(&self) -> String {
        let guess = match self.min_score {
            0 => "",
            _ => {
                "; common passwords and easy patterns are refused, and a few uncommon words make a strong one"
            }
        };
        format!("{}–{PASSWORD_MAX_BYTES} characters, without your username{guess}.", self.min_length)
    }
}

/// A password that meets the rules for a new password. Its `Debug` never shows it.
pub struct NewPassword(SecretString);

impl NewPassword {
    /// Every rule the password breaks, each with a message that says why.
    pub fn parse(input: &str, username: &str, policy: &PasswordPolicy) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        if input.len() < policy.min_length {
            errors.push(format!("Password must be at least {} characters long.", policy.min_length));
        }
        if input.len() > PASSWORD_MAX_BYTES {
            errors.push(format!(
                "Password must be at most {PASSWORD_MAX_BYTES} bytes long \
                 (accented letters and symbols count as several)."
            ));
        }
        if !username.is_empty() && input.to_lowercase().contains(&username.to_lowercase()) {
            errors.push("Password must not contain the username.".into());
        }
        // Only a password of acceptable length reaches the estimator: its cost grows with the
        // length, and 72 bytes bound it (see `examples/password_strength.rs`).
        if errors.is_empty() {
            errors.extend(too_easy(input, username, policy.min_score));
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

/// Why the password is too easy to guess, when zxcvbn scores it below `min_score`.
fn too_easy(input: &str, username: &str, min_score: u8) -> Option<String> {
    let minimum = Score::try_from(min_score.min(4)).unwrap_or(Score::Three);
    let estimate = zxcvbn::zxcvbn(input, &[username]);
    if min_score == 0 || estimate.score() >= minimum {
        return None;
    }
    let feedback = estimate.feedback();
    let why = match (feedback.and_then(|f| f.warning()), feedback.and_then(|f| f.suggestions().first())) {
        (Some(warning), _) => warning.to_string(),
        (None, Some(suggestion)) => suggestion.to_string(),
        (None, None) => "Add another word or two; uncommon words are better.".into(),
    };
    Some(format!("This password is too easy to guess. {why}"))
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: PasswordPolicy = PasswordPolicy { min_length: 8, min_score: 3 };
    const LENGTH_ONLY: PasswordPolicy = PasswordPolicy { min_length: 8, min_score: 0 };

    #[test]
    fn length_is_counted_in_bytes() {
        assert!(NewPassword::parse(&"a".repeat(72), "bob", &LENGTH_ONLY).is_ok());
        assert!(NewPassword::parse(&"a".repeat(73), "bob", &LENGTH_ONLY).is_err());
        // 36 two-byte characters are 72 bytes; 37 are 74.
        assert!(NewPassword::parse(&"é".repeat(36), "bob", &LENGTH_ONLY).is_ok());
        assert!(NewPassword::parse(&"é".repeat(37), "bob", &LENGTH_ONLY).is_err());
        assert!(NewPassword::parse("1234567", "bob", &LENGTH_ONLY).is_err());
    }

    #[test]
    fn the_minimum_length_is_the_policys() {
        let long = PasswordPolicy { min_length: 12, min_score: 0 };
        assert!(NewPassword::parse("elevenchars", "bob", &long).is_err());
        assert!(NewPassword::parse("twelve chars", "bob", &long).is_ok());
    }

    #[test]
    fn must_not_contain_the_username() {
        assert!(NewPassword::parse("alice1234", "Alice1234", &LENGTH_ONLY).is_err());
        assert!(NewPassword::parse("my-ALICE-password", "alice", &LENGTH_ONLY).is_err());
        assert!(NewPassword::parse("alic3 in wonderland", "alice", &LENGTH_ONLY).is_ok());
    }

    #[test]
    fn common_and_easily_guessed_passwords_are_refused_saying_why() {
        for weak in ["password", "password1", "qwertyuiop", "aaaaaaaaaa", "abcdefgh1234", "iloveyou"] {
            let errors =
                NewPassword::parse(weak, "bob", &POLICY).err().unwrap_or_else(|| panic!("{weak} passed"));
            assert!(errors[0].starts_with("This password is too easy to guess. "), "{weak}: {errors:?}");
        }
        let errors = NewPassword::parse("password", "bob", &POLICY).unwrap_err();
        assert!(errors[0].contains("common password"), "{errors:?}");
        for strong in ["correct horse battery", "Tr0mbone-Lantern-Quietly", "a new long passphrase"] {
            assert!(NewPassword::parse(strong, "bob", &POLICY).is_ok(), "{strong} was refused");
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = NewPassword::parse("hunter2hunter2", "bob", &LENGTH_ONLY).unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}
