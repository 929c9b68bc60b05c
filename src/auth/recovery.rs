//! Recovery by email, written once for the pages and the API: an optional address,
//! confirmed by a link mailed to it, and one-time links that set a new password.
//!
//! A reset request gets the same answer at once, whatever it names: the request itself only
//! counts the client's address and queues the rest for a background task, which looks the
//! account up, counts its mails and queues the link, in the order the requests came. Links are
//! built from `public_url`, never from the request. Every token is 256 random bits, stored as a
//! hash, and spent by its use.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use rocket::tokio::sync::mpsc;

use super::accounts::{random_token, token_hash};
use super::throttle::{self, Limits};
use super::{Accounts, Client, SignedInUser};
use crate::domain::{Email, Lookup, PasswordReset, PublicUrl, TypedPassword, User};
use crate::error::{duration, Error, Result};
use crate::mail::{Kind, Letter, Mailer};
use crate::store::recovery::{self as store, NewToken};
use crate::store::{EventKind, Store};

/// Reset requests waiting for the background task; beyond this, new ones are dropped (counted,
/// and logged).
const WAITING_MAX: usize = 256;
/// Seconds between two log lines about dropped reset requests: a flood is one line now and then
/// with the running count, not one line per request.
const DROPS_LOGGED_EVERY: i64 = 10;

/// How long the links in mails work: `reset_token_ttl` and `confirm_token_ttl`.
#[derive(Debug, Clone, Copy)]
pub struct LinkLifetimes {
    pub reset: std::time::Duration,
    pub confirm: std::time::Duration,
}

/// What recovery needs at run time, built once from the settings.
pub struct Recovery {
    mailer: Mailer,
    links: Links,
    confirm_ttl: i64,
    requests: mpsc::Sender<(Lookup, i64)>,
    dropped: Drops,
}

/// Reset requests dropped because the queue was full, since start.
#[derive(Default)]
struct Drops {
    count: AtomicU64,
    /// When the count was last logged (unix seconds).
    logged_at: AtomicI64,
}

impl Drops {
    /// Counts one more; the count to log now, when a line is due (the first drop, then at most
    /// one line every [`DROPS_LOGGED_EVERY`] seconds).
    fn record(&self, now: i64) -> Option<u64> {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let logged_at = self.logged_at.load(Ordering::Relaxed);
        let due = count == 1 || now - logged_at >= DROPS_LOGGED_EVERY;
        let claimed = due
            && self.logged_at.compare_exchange(logged_at, now, Ordering::Relaxed, Ordering::Relaxed).is_ok();
        claimed.then_some(count)
    }
}

/// Where the links in mails point: `public_url`, then the page.
#[derive(Clone)]
struct Links(PublicUrl);

impl Links {
    fn to(&self, path: &str, token: &str) -> String {
        format!("{}?token={token}", self.0.at(path))
    }
}

impl Recovery {
    /// Starts the task that answers reset requests (it needs the async runtime).
    pub fn start(
        public_url: &PublicUrl,
        lifetimes: LinkLifetimes,
        db: &Store,
        limits: Limits,
        mailer: Mailer,
    ) -> Recovery {
        let links = Links(public_url.clone());
        let (requests, waiting) = mpsc::channel(WAITING_MAX);
        let resets = Resets {
            db: db.clone(),
            limits,
            mailer: mailer.clone(),
            links: links.clone(),
            ttl: crate::store::seconds(lifetimes.reset),
        };
        rocket::tokio::spawn(resets.run(waiting));
        let confirm_ttl = crate::store::seconds(lifetimes.confirm);
        Recovery { mailer, links, confirm_ttl, requests, dropped: Drops::default() }
    }
}

/// The page a confirmation link opens.
const CONFIRM_PATH: &str = "/email/confirm";
/// The page a reset link opens.
const RESET_PATH: &str = "/password-reset/new";

impl Accounts {
    /// Sets or changes the user's address, unconfirmed, and mails a confirmation link to it.
    /// The address they have already confirmed (in any case) changes nothing. The mail is
    /// skipped, silently, past the hourly limits and for an address another account confirmed.
    pub async fn set_email(&self, me: &SignedInUser, input: &str, client: &Client) -> Result<User> {
        let email = Email::parse(input).map_err(|message| Error::field("email", message))?;
        let unchanged = me.user.email.as_deref().map(crate::domain::email_key) == Some(email.key());
        if unchanged && me.user.email_confirmed {
            return Ok(me.user.clone());
        }
        let recovery = &self.recovery;
        let (token, now) = (random_token(), crate::store::now());
        let stored = NewToken { hash: &token_hash(&token), now, expires_at: now + recovery.confirm_ttl };
        let event = client.event(EventKind::EmailChanged, &me.user);
        store::set_email(&self.db, me.user.id, &email, stored, event).await?;
        // An address another account has confirmed cannot be confirmed here: no link is mailed
        // to it, and the answer is the same as for any other (it tells nobody whose it is).
        if store::confirmed_elsewhere(&self.db, me.user.id, &email).await? {
            log::info!("email: an address confirmed by another account was added; no link is mailed");
        } else if throttle::mail_allowed(
            &self.db,
            &self.limits,
            Some(&me.user.username),
            Some(&client.address.to_string()),
            now,
        )
        .await?
        {
            recovery.mailer.send(Letter {
                to: email.clone(),
                kind: Kind::Confirm,
                username: me.user.username.clone(),
                link: recovery.links.to(CONFIRM_PATH, &token),
                valid_for: duration(recovery.confirm_ttl),
            });
        }
        Ok(User { email: Some(email.as_str().to_owned()), email_confirmed: false, ..me.user.clone() })
    }

    /// Removes the user's address; the links mailed to it stop working.
    pub async fn remove_email(&self, me: &SignedInUser, client: &Client) -> Result<()> {
        store::remove_email(&self.db, me.user.id, client.event(EventKind::EmailRemoved, &me.user)).await
    }

    /// Confirms the address a confirmation link was mailed to (if it is still the user's).
    pub async fn confirm_email(&self, token: &str, client: &Client) -> Result<()> {
        let (hash, event) = (token_hash(token.trim()), client.stranger_event(EventKind::EmailConfirmed));
        match store::confirm_email(&self.db, &hash, crate::store::now(), event).await? {
            true => Ok(()),
            false => Err(Error::InvalidLink),
        }
    }

    /// Asks for a reset link for the account a username or an address names. Answers the same
    /// at once in every case; the lookup and the mail happen in the background.
    pub async fn request_password_reset(&self, lookup: Lookup, client: &Client) -> Result<()> {
        let now = crate::store::now();
        let address = client.address.to_string();
        if !throttle::mail_allowed(&self.db, &self.limits, None, Some(&address), now).await? {
            log::info!("password reset: this address asked too often this hour; nothing is sent");
            return Ok(());
        }
        let recovery = &self.recovery;
        if let Err(e) = recovery.requests.try_send((lookup, now)) {
            if let Some(count) = recovery.dropped.record(now) {
                log::warn!(
                    "password reset: requests are being dropped ({e}): {count} since start; \
                     a flood of reset requests from many addresses, or a stalled database"
                );
            }
        }
        Ok(())
    }

    /// The user a reset link works for: the page checks before it shows the form.
    pub async fn reset_link_user(&self, token: &str) -> Result<User> {
        self.reset_link_owner(&token_hash(token.trim())).await
    }

    async fn reset_link_owner(&self, token_hash: &str) -> Result<User> {
        let user = store::find_reset_token(&self.db, token_hash, crate::store::now()).await?;
        user.ok_or(Error::InvalidLink)
    }

    /// Sets a new password through a reset link (the same rules as sign-up), spends the link
    /// and signs out every session. Returns the user, whom the page then signs in.
    pub async fn reset_password(
        &self,
        token: &str,
        (new, confirmation): (&str, Option<&str>),
        client: &Client,
    ) -> Result<User> {
        let token_hash = token_hash(token.trim());
        let user = self.reset_link_owner(&token_hash).await?;
        let (username, new) = (user.username.clone(), TypedPassword::new(new, confirmation));
        let policy = self.password_policy;
        let parse = move || PasswordReset::parse(&username, &new, &policy);
        let (_, hash) = self.hasher.choose(parse, async |_| Ok(())).await?;
        let now = crate::store::now();
        let event = client.event(EventKind::PasswordReset, &user);
        match store::reset_password(&self.db, &token_hash, (user.id, &hash), now, event).await? {
            true => Ok(user),
            false => Err(Error::InvalidLink),
        }
    }
}

/// The background task that answers reset requests, one at a time.
struct Resets {
    db: Store,
    limits: Limits,
    mailer: Mailer,
    links: Links,
    ttl: i64,
}

impl Resets {
    async fn run(self, mut waiting: mpsc::Receiver<(Lookup, i64)>) {
        while let Some((lookup, asked_at)) = waiting.recv().await {
            if let Err(e) = self.answer(&lookup, asked_at).await {
                log::error!("password reset: {}", e.cause());
            }
        }
    }

    /// Mails a link when the account exists and has a confirmed address, within its hourly
    /// limit of mails; a newer link voids the older ones.
    async fn answer(&self, lookup: &Lookup, asked_at: i64) -> Result<()> {
        let Some(user) = store::find_confirmed(&self.db, lookup).await? else {
            return Ok(());
        };
        if !throttle::mail_allowed(&self.db, &self.limits, Some(&user.username), None, asked_at).await? {
            log::info!("password reset: the account had its mails for this hour; nothing is sent");
            return Ok(());
        }
        let Some(to) = user.email.as_deref().and_then(|email| Email::parse(email).ok()) else {
            return Err(Error::internal("a confirmed address no longer parses"));
        };
        let token = random_token();
        let stored = NewToken { hash: &token_hash(&token), now: asked_at, expires_at: asked_at + self.ttl };
        if !store::insert_reset_token(&self.db, user.id, to.as_str(), stored).await? {
            log::info!("password reset: the address changed while the link was prepared; nothing is sent");
            return Ok(());
        }
        self.mailer.send(Letter {
            to,
            kind: Kind::Reset,
            username: user.username,
            link: self.links.to(RESET_PATH, &token),
            valid_for: duration(self.ttl),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dropped_request_is_counted_and_a_flood_is_logged_now_and_then() {
        let drops = Drops::default();
        assert_eq!(drops.record(1_000), Some(1), "the first drop is logged at once");
        for _ in 0..500 {
            assert_eq!(drops.record(1_005), None, "within the interval: counted, not logged");
        }
        assert_eq!(drops.record(1_000 + DROPS_LOGGED_EVERY), Some(502), "then the running count");
        assert_eq!(drops.record(1_000 + DROPS_LOGGED_EVERY), None);
        assert_eq!(drops.count.load(Ordering::Relaxed), 503);
    }
}
