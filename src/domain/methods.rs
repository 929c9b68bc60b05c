//! How a session signed in.

/// How a session signed in, as RFC 8176 names the methods (`amr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Methods {
    /// The password alone.
    Password,
    /// The password, then a code (an authenticator app's, or a recovery code).
    PasswordAndCode,
    /// The password, then a passkey (`synced`: one the authenticator says is backed up,
    /// a software key, rather than one bound to its hardware).
    PasswordAndPasskey { synced: bool },
    /// A passkey alone, with user verification (a fingerprint, a face or a PIN): two factors.
    Passkey { synced: bool },
}

impl Methods {
    const ALL: [Methods; 6] = [
        Methods::Password,
        Methods::PasswordAndCode,
        Methods::PasswordAndPasskey { synced: false },
        Methods::PasswordAndPasskey { synced: true },
        Methods::Passkey { synced: false },
        Methods::Passkey { synced: true },
    ];

    /// The `amr` claim.
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Methods::Password => &["pwd"],
            Methods::PasswordAndCode => &["pwd", "otp", "mfa"],
            Methods::PasswordAndPasskey { synced: false } => &["pwd", "hwk", "mfa"],
            Methods::PasswordAndPasskey { synced: true } => &["pwd", "swk", "mfa"],
            Methods::Passkey { synced: false } => &["hwk", "user", "mfa"],
            Methods::Passkey { synced: true } => &["swk", "user", "mfa"],
        }
    }

    /// As a session stores them: space-separated.
    pub fn stored(self) -> &'static str {
        match self {
            Methods::Password => "pwd",
            Methods::PasswordAndCode => "pwd otp mfa",
            Methods::PasswordAndPasskey { synced: false } => "pwd hwk mfa",
            Methods::PasswordAndPasskey { synced: true } => "pwd swk mfa",
            Methods::Passkey { synced: false } => "hwk user mfa",
            Methods::Passkey { synced: true } => "swk user mfa",
        }
    }

    /// A session's stored methods (anything unknown without `mfa` is a password alone).
    pub fn parse(stored: &str) -> Methods {
        match Methods::ALL.into_iter().find(|methods| methods.stored() == stored) {
            Some(methods) => methods,
            None if stored.split(' ').any(|method| method == "mfa") => Methods::PasswordAndCode,
            None => Methods::Password,
        }
    }

    /// How the session list names them.
    pub fn label(self) -> &'static str {
        match self {
            Methods::Password => "password",
            Methods::PasswordAndCode => "password + code",
            Methods::PasswordAndPasskey { .. } => "password + passkey",
            Methods::Passkey { .. } => "passkey",
        }
    }
}
