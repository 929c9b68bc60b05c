//! Values that cross the boundary, parsed once into types that cannot hold a bad value, and the
//! rules (with their messages) that every door — pages and API alike — applies to them.

mod device;
mod email;
mod methods;
pub mod oauth;
mod password;
mod public_url;
mod username;

pub use device::device_name;
pub use email::{key as email_key, Email, EMAIL_MAX};
pub use methods::Methods;
pub use password::{NewPassword, PasswordPolicy, PASSWORD_MAX_BYTES};
pub use public_url::PublicUrl;
pub use username::{username_pattern, username_rule, Username, USERNAME_MAX, USERNAME_MIN};

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, FieldErrors};

/// The message for a field left empty, wherever it is.
pub const REQUIRED: &str = "This field is required.";
/// The message for a "repeat the password" field that does not repeat it.
pub const PASSWORDS_DIFFER: &str = "The passwords do not match.";

/// A user account as it is shown: the name as typed, when it was created (unix seconds), the
/// email address, if any, with whether its owner confirmed it, the groups the user is in
/// (their names, in the order of their keys), and their second factor, as the database had
/// them when the user was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub created_at: i64,
    pub email: Option<String>,
    pub email_confirmed: bool,
    pub groups: Vec<String>,
    /// Two-step sign-in with an authenticator app is on.
    pub totp: bool,
    /// Recovery codes not used yet.
    pub recovery_codes_left: i64,
    /// Passkeys registered.
    pub passkeys: i64,
}

impl User {
    /// The second factors the user has, as the API names them: `totp`, `passkey`.
    pub fn second_factors(&self) -> Vec<&'static str> {
        let mut factors = Vec::new();
        if self.totp {
            factors.push("totp");
        }
        if self.passkeys > 0 {
            factors.push("passkey");
        }
        factors
    }

    /// A password alone does not sign this user in.
    pub fn has_second_factor(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

/// A live session as its owner sees it in the list: when it began, was last used and ends
/// (unix seconds), the client's `User-Agent` and the device it names, where it signed in from,
/// and whether it is the session of the request asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub user_agent: String,
    /// The device, as people name it ("Chrome on Linux").
    pub device: String,
    /// Where it signed in from: an IPv4 address or an IPv6 /64.
    pub address: String,
    pub current: bool,
    /// How it signed in: "password", or "password + code".
    pub methods: &'static str,
}

/// Whom a password reset request is about: a username or an email address, either in any case
/// (neither need exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Username(String),
    Email(String),
}

/// The broken rules of one request, field by field: every field is checked, then all of them
/// are reported at once.
#[derive(Default)]
pub struct Fields(FieldErrors);

impl Fields {
    /// Keeps the messages of a failed rule under `field`; gives the value when it passed.
    pub fn check<T>(&mut self, field: &'static str, result: Result<T, Vec<String>>) -> Option<T> {
        result.map_err(|messages| self.0.entry(field).or_default().extend(messages)).ok()
    }

    /// `value`, when it is not empty.
    pub fn required<'v>(&mut self, field: &'static str, value: &'v str) -> Option<&'v str> {
        self.check(field, not_empty(value))
    }

    /// The parsed value when every rule passed, else every message at once.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, Error> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(Error::Validation(self.0)),
        }
    }
}

/// `value`, unless it is empty (a 422 that names `field`).
pub fn required<'v>(field: &'static str, value: &'v str) -> Result<&'v str, Error> {
    not_empty(value).map_err(|messages| Error::Validation([(field, messages)].into()))
}

fn not_empty(value: &str) -> Result<&str, Vec<String>> {
    match value.is_empty() {
        true => Err(vec![REQUIRED.into()]),
        false => Ok(value),
    }
}

/// A new password as typed, with the page's "repeat the password" field (the API asks only
/// once: `None`); kept secret until the rules read it, on the password workers.
pub struct TypedPassword {
    password: SecretString,
    repeated: Option<SecretString>,
}

impl TypedPassword {
    pub fn new(password: &str, repeated: Option<&str>) -> Self {
        TypedPassword { password: password.into(), repeated: repeated.map(SecretString::from) }
    }

    /// The rules of a new password for `username`, and the repeat field must repeat it.
    fn check(
        &self,
        fields: &mut Fields,
        names: [&'static str; 2],
        username: &str,
        policy: &PasswordPolicy,
    ) -> Option<NewPassword> {
        let password = self.password.expose_secret();
        let new = fields.check(names[0], NewPassword::parse(password, username, policy));
        if self.repeated.as_ref().is_some_and(|repeated| repeated.expose_secret() != password) {
            fields.check(names[1], Err::<(), _>(vec![PASSWORDS_DIFFER.into()]));
        }
        new
    }
}

/// A form that chooses a new password (a sign-up, a change, a reset): what gets hashed.
pub trait ChoosesPassword {
    fn new_password(&self) -> &NewPassword;
}

/// A sign-up that passed every rule.
#[derive(Debug)]
pub struct NewAccount {
    pub username: Username,
    pub password: NewPassword,
}

impl NewAccount {
    /// Checks every field and reports all broken rules at once.
    pub fn parse(username: &str, password: &TypedPassword, policy: &PasswordPolicy) -> Result<Self, Error> {
        let mut fields = Fields::default();
        let name = fields.check("username", Username::parse(username).map_err(|e| vec![e]));
        let password = password.check(&mut fields, ["password", "password_confirm"], username, policy);
        fields.finish(name.zip(password).map(|(username, password)| NewAccount { username, password }))
    }
}

impl ChoosesPassword for NewAccount {
    fn new_password(&self) -> &NewPassword {
        &self.password
    }
}

/// A password change that passed every rule the request alone can show; the current password
/// is checked against the account later.
pub struct PasswordChange {
    pub current: SecretString,
    pub new: NewPassword,
}

impl PasswordChange {
    pub fn parse(
        username: &str,
        current: &SecretString,
        new: &TypedPassword,
        policy: &PasswordPolicy,
    ) -> Result<Self, Error> {
        let mut fields = Fields::default();
        let current = fields.required("current_password", current.expose_secret()).map(SecretString::from);
        let new = new.check(&mut fields, NEW_PASSWORD_FIELDS, username, policy);
        fields.finish(current.zip(new).map(|(current, new)| PasswordChange { current, new }))
    }
}

impl ChoosesPassword for PasswordChange {
    fn new_password(&self) -> &NewPassword {
        &self.new
    }
}

/// The fields of a changed or reset password.
const NEW_PASSWORD_FIELDS: [&str; 2] = ["new_password", "new_password_confirm"];

/// A new password through a reset link: the rules of a new password, and the page's "repeat
/// password" field.
pub struct PasswordReset {
    pub new: NewPassword,
}

impl PasswordReset {
    pub fn parse(username: &str, new: &TypedPassword, policy: &PasswordPolicy) -> Result<Self, Error> {
        let mut fields = Fields::default();
        let new = new.check(&mut fields, NEW_PASSWORD_FIELDS, username, policy);
        fields.finish(new.map(|new| PasswordReset { new }))
    }
}

impl ChoosesPassword for PasswordReset {
    fn new_password(&self) -> &NewPassword {
        &self.new
    }
}
