//! Throttling of password guessing and of sign-ups (SPEC §10), in the database so that every
//! instance shares it. A failed password check counts per (username, address), per address and
//! per username; a counter that reaches its limit blocks what it counts, and a blocked check is
//! refused before bcrypt runs. A client that has signed in to the account before (a device
//! token, or a live session) is not held back by the per-username limit, so that strangers'
//! guesses never lock the owner out. Every block ends: none outlives its window.
//!
//! Each instance remembers the blocks it has seen for a few seconds ([`SeenBlocks`]), so that a
//! storm of requests from a blocked address is refused without a query each.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::AnyPool;

use super::ClientAddress;
use crate::config::Settings;
use crate::domain::Username;
use crate::error::{Error, Result};
use crate::store::throttle::{self as store, Counter, Kind};

/// The per-username limit counts over an hour.
const HOUR: i64 = 3600;
/// Seconds an instance trusts a block it has seen without asking the database again: an
/// operator who clears a block is obeyed by every instance that soon.
const REMEMBER: i64 = 5;
/// Blocks remembered at most (a storm from ever new addresses cannot grow the memory).
const REMEMBERED_MAX: usize = 10_000;

/// The limits, from the settings of the same names; `0` turns a limit off.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `login_max_failures_pair`: failures of one username from one address…
    pub pair: i64,
    /// `login_max_failures_address`: …and from one address, over `block_seconds`.
    pub address: i64,
    /// `login_block_seconds`: the window of those two, and how long their block lasts.
    pub block_seconds: i64,
    /// `login_max_failures_user_hour`: failures of one username an hour, from anywhere.
    pub user_hour: i64,
    /// `register_max_per_address_hour`: accounts created from one address an hour.
    pub register_hour: i64,
    /// `mail_max_per_account_hour`: mails (confirmation, reset) to one account an hour.
    pub mail_account_hour: i64,
    /// `mail_max_per_address_hour`: reset requests and address changes from one address an hour.
    pub mail_address_hour: i64,
}

impl From<&Settings> for Limits {
    fn from(settings: &Settings) -> Self {
        Limits {
            pair: settings.login_max_failures_pair as i64,
            address: settings.login_max_failures_address as i64,
            block_seconds: settings.login_block_seconds as i64,
            user_hour: settings.login_max_failures_user_hour as i64,
            register_hour: settings.register_max_per_address_hour as i64,
            mail_account_hour: settings.mail_max_per_account_hour as i64,
            mail_address_hour: settings.mail_max_per_address_hour as i64,
        }
    }
}

/// Whose failures a password check counts under: the username as typed, lower-cased (unknown
/// names count too; a name that could never exist counts only against the address), and the
/// client's address.
pub struct Attempt {
    username: String,
    address: String,
}

impl Attempt {
    pub fn new(username: &str, address: &ClientAddress) -> Attempt {
        let username = Username::parse(username).map(|name| name.canonical()).unwrap_or_default();
        Attempt { username, address: address.to_string() }
    }

    fn counter(&self, kind: Kind) -> Counter<'_> {
        let (username, address) = match kind {
            Kind::Pair => (self.username.as_str(), self.address.as_str()),
            Kind::Address | Kind::Register | Kind::MailAddress => ("", self.address.as_str()),
            Kind::User | Kind::MailAccount => (self.username.as_str(), ""),
        };
        Counter { kind, username, address }
    }
}

/// The blocks in force on a password check: of its username, and of its pair or address.
pub struct Blocks {
    now: i64,
    user: Option<i64>,
    others: Option<i64>,
}

impl Blocks {
    /// Refuses the check (`429`, with the seconds until every block in its way has ended) while
    /// one of its counters is blocked. `known`: the client signed in to this account before,
    /// so the per-username block does not apply to it.
    pub fn refuse(&self, known: bool) -> Result<()> {
        let user = if known { None } else { self.user };
        match user.max(self.others) {
            Some(until) => Err(Error::TooManyAttempts { retry_after: until - self.now }),
            None => Ok(()),
        }
    }
}

/// Pair and address blocks this instance has seen lately: `(blocked until, forget at)` by
/// counter. Only blocks that exist in the database are remembered, for at most [`REMEMBER`]
/// seconds and never past their end.
#[derive(Default)]
pub struct SeenBlocks(Mutex<HashMap<String, (i64, i64)>>);

impl SeenBlocks {
    fn key(counter: Counter<'_>) -> String {
        format!("{:?}\n{}\n{}", counter.kind, counter.username, counter.address)
    }

    fn until(&self, counter: Counter<'_>, now: i64) -> Option<i64> {
        let seen = self.0.lock().ok()?;
        seen.get(&Self::key(counter))
            .filter(|(until, forget)| *until > now && *forget > now)
            .map(|(until, _)| *until)
    }

    fn remember(&self, counter: Counter<'_>, until: i64, now: i64) {
        if let Ok(mut seen) = self.0.lock() {
            if seen.len() >= REMEMBERED_MAX {
                seen.retain(|_, (until, forget)| *until > now && *forget > now);
                if seen.len() >= REMEMBERED_MAX {
                    seen.clear();
                }
            }
            seen.insert(Self::key(counter), (until, (now + REMEMBER).min(until)));
        }
    }
}

/// The throttle over one database.
pub struct Throttle<'a> {
    pub db: &'a AnyPool,
    pub limits: &'a Limits,
    pub seen: &'a SeenBlocks,
}

impl Throttle<'_> {
    /// The blocks in force on a password check's counters.
    pub async fn blocks(&self, attempt: &Attempt, now: i64) -> Result<Blocks> {
        let remembered = [Kind::Pair, Kind::Address].map(|kind| self.seen.until(attempt.counter(kind), now));
        if let Some(until) = remembered.into_iter().flatten().max() {
            return Ok(Blocks { now, user: None, others: Some(until) });
        }
        let blocks = store::blocks(self.db, &attempt.username, &attempt.address, now).await?;
        for (kind, until) in blocks.iter().filter(|(kind, _)| *kind != Kind::User) {
            self.seen.remember(attempt.counter(*kind), *until, now);
        }
        let latest = |user: bool| {
            blocks.iter().filter(|(kind, _)| (*kind == Kind::User) == user).map(|(_, until)| *until).max()
        };
        Ok(Blocks { now, user: latest(true), others: latest(false) })
    }

    /// Counts a failed password check; a counter that reaches its limit is blocked.
    pub async fn failed(&self, attempt: &Attempt, now: i64) -> Result<()> {
        let limits = self.limits;
        let limit = |kind| match kind {
            Kind::Pair => limits.pair,
            Kind::Address => limits.address,
            _ => limits.user_hour,
        };
        let counters: Vec<_> =
            [(Kind::Pair, limits.block_seconds), (Kind::Address, limits.block_seconds), (Kind::User, HOUR)]
                .into_iter()
                .filter(|(kind, _)| {
                    limit(*kind) > 0 && (*kind == Kind::Address || !attempt.username.is_empty())
                })
                .map(|(kind, window)| (attempt.counter(kind), window))
                .collect();
        for (kind, count) in store::count(self.db, &counters, now).await? {
            if count.count >= limit(kind) {
                // The pair and the address wait out a block; a username, the rest of its hour.
                let until = match kind {
                    Kind::User => count.window_start + HOUR,
                    _ => now + limits.block_seconds,
                };
                store::block(self.db, attempt.counter(kind), until).await?;
                if kind != Kind::User {
                    self.seen.remember(attempt.counter(kind), until, now);
                }
            }
        }
        Ok(())
    }

    /// A successful check clears its pair's counter.
    pub async fn succeeded(&self, attempt: &Attempt) -> Result<()> {
        match attempt.username.is_empty() {
            true => Ok(()),
            false => store::clear(self.db, attempt.counter(Kind::Pair)).await,
        }
    }

    /// Counts an account about to be created from `address`, refusing it past the hourly limit.
    pub async fn sign_up(&self, address: &ClientAddress, now: i64) -> Result<()> {
        let address = address.to_string();
        let counter = Counter { kind: Kind::Register, username: "", address: &address };
        match hourly(self.db, &[(counter, self.limits.register_hour)], now).await? {
            Some(window_ends) => Err(Error::TooManyAttempts { retry_after: window_ends - now }),
            None => Ok(()),
        }
    }
}

/// Counts a mail to the account of `username` and a request for mail from `address`, each when
/// given; `false` once either is past its hourly limit (the mail is then not sent).
pub async fn mail_allowed(
    db: &AnyPool,
    limits: &Limits,
    username: Option<&str>,
    address: Option<&str>,
    now: i64,
) -> Result<bool> {
    let username = username.map(str::to_ascii_lowercase);
    let account = username.as_deref().map(|username| {
        (Counter { kind: Kind::MailAccount, username, address: "" }, limits.mail_account_hour)
    });
    let from = address.map(|address| {
        (Counter { kind: Kind::MailAddress, username: "", address }, limits.mail_address_hour)
    });
    let counters: Vec<_> = account.into_iter().chain(from).collect();
    Ok(hourly(db, &counters, now).await?.is_none())
}

/// Counts one more on each counter (with its limit; `0` = none, not counted) over an hour's
/// window; when one is past its limit, the end of its window.
async fn hourly(db: &AnyPool, counters: &[(Counter<'_>, i64)], now: i64) -> Result<Option<i64>> {
    let limited: Vec<(Counter<'_>, i64)> =
        counters.iter().filter(|(_, limit)| *limit > 0).map(|(counter, _)| (*counter, HOUR)).collect();
    let counted = store::count(db, &limited, now).await?;
    if counted.len() != limited.len() {
        return Err(Error::internal("a throttling counter was not counted"));
    }
    let limit_of =
        |kind| counters.iter().find(|(counter, _)| counter.kind == kind).map_or(0, |(_, limit)| *limit);
    Ok(counted
        .iter()
        .filter(|(kind, count)| count.count > limit_of(*kind))
        .map(|(_, count)| count.window_start + HOUR)
        .max())
}
