//! Invitations to sign up: a one-time link an administrator hands out, which may put the new
//! account in groups. The token carries 256 random bits and only its hash is stored; the
//! account and the spending of the invitation are one transaction (see
//! [`crate::store::invitations::sign_up`]).

use std::time::Duration;

use super::accounts::{random_token, token_hash};
use crate::domain::PublicUrl;
use crate::error::{Error, Result};
use crate::store::invitations::Standing;
use crate::store::{self, Event, Store};

/// How long an invitation works unless its maker says otherwise.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest an invitation may work: a link that is never spent should not stay good forever.
pub const LONGEST_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// A new invitation: its token exists only here, in its link.
pub struct Invitation {
    pub id: i64,
    pub token: String,
    /// `<public_url>/register?invite=<token>`.
    pub link: String,
    pub expires_at: i64,
}

/// Makes an invitation that puts its account in the groups `group_ids`, valid for `lifetime`
/// from `now`.
pub async fn invite(
    db: &Store,
    public_url: &PublicUrl,
    group_ids: &[i64],
    (lifetime, now): (Duration, i64),
    event: Event,
) -> Result<Invitation> {
    let token = random_token();
    let expires_at = now.saturating_add(store::seconds(lifetime));
    let id = store::invitations::insert(db, &token_hash(&token), group_ids, (now, expires_at), event).await?;
    let link = format!("{}?invite={token}", public_url.at("/register"));
    Ok(Invitation { id, token, link, expires_at })
}

/// Why an invitation cannot be used: it stands thus, or (`None`) it is unknown.
pub fn refusal(standing: Option<Standing>) -> Error {
    let why = match standing {
        Some(Standing::Used) => "This invitation has been used already",
        Some(Standing::Revoked) => "This invitation was withdrawn",
        Some(Standing::Expired) => "This invitation has expired",
        Some(Standing::Pending) | None => "This invitation is not valid: check that the link is complete",
    };
    Error::Forbidden(format!("{why}. Ask the administrator for a new one."))
}

/// What a sign-up without an invitation gets when registration needs one.
pub fn invitation_needed() -> Error {
    Error::Forbidden(
        "Sign-up on this server needs an invitation: ask its administrator for one, and open the link it \
         gives."
            .into(),
    )
}
