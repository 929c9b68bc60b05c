//! Values that cross the boundary, parsed once into types that cannot hold a bad value.

mod password;
mod username;

pub use password::{NewPassword, PASSWORD_MAX_BYTES, PASSWORD_MIN_BYTES};
pub use username::{Username, USERNAME_MAX, USERNAME_MIN};

use crate::error::{Error, FieldErrors};

/// A registration request that passed every rule.
#[derive(Debug)]
pub struct NewAccount {
    pub username: Username,
    pub password: NewPassword,
}

impl NewAccount {
    /// Checks every field and reports all broken rules at once. `confirmation` is the
    /// "repeat password" field of the page (the API has none).
    pub fn parse(username: &str, password: &str, confirmation: Option<&str>) -> Result<Self, Error> {
        let mut errors = FieldErrors::new();
        let parsed_username = Username::parse(username).map_err(|e| errors.insert("username", vec![e]));
        let parsed_password =
            NewPassword::parse(password, username.trim()).map_err(|e| errors.insert("password", e));
        if confirmation.is_some_and(|c| c != password) {
            errors.insert("password_confirm", vec!["The passwords do not match.".into()]);
        }
        match (parsed_username, parsed_password) {
            (Ok(username), Ok(password)) if errors.is_empty() => Ok(NewAccount { username, password }),
            _ => Err(Error::Validation(errors)),
        }
    }
}
