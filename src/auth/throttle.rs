//! Throttling of password guessing and of sign-ups, in the database so that every instance
//! shares it. A password check counts per (username, address), per address and per username
//! before it runs, atomically, so parallel guesses cannot get more checks than a limit allows;
//! a check that passes gives its count back. A counter that reaches its limit blocks what it
//! counts, and a blocked check is refused before bcrypt runs. A client that has signed in to
//! the account before (a device token, or a live session) is not held back by the per-username limit, so that strangers'
//! guesses never lock the owner out. Every block ends: none outlives its window.
//!
//! Each instance remembers the blocks it has seen for a few seconds ([`SeenBlocks`]), so that a
//! storm of requests from a blocked address is refused without a query each.

use std::collections::HashMap;
use std::sync::Mutex;

use super::ClientAddress;
use crate::domain::Username;
use crate::error::{Error, Result};
use crate::store::throttle::{self as store, Count, Counter, Kind};
use crate::store::{Event, Store};

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

/// Whose failures a password check counts under: the username as typed, lower-cased (unknown
/// names count too; a name that could never exist counts only against the address), and the
/// client's address.
#[derive(Clone)]
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

/// A password check counted by [`Throttle::begin`], to settle once it has run.
pub struct Counted {
    attempt: Attempt,
    counts: Vec<(Kind, Count)>,
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
    pub db: &'a Store,
    pub limits: &'a Limits,
    pub seen: &'a SeenBlocks,
}

impl Throttle<'_> {
    /// Counts a password check about to run, on each of its counters at once, and refuses it
    /// (`429`, with the seconds until what is in its way has ended) when one of them is blocked
    /// or the count passes its limit. Counting first, in one atomic statement, is what keeps
    /// parallel guesses within the limits: each takes a number, and only the numbers within
    /// every limit get a check. `known`: the client signed in to this account before, so the
    /// per-username limit does not hold it back. The check's outcome then goes to
    /// [`Throttle::failed`] or [`Throttle::succeeded`].
    pub async fn begin(&self, attempt: &Attempt, known: bool, now: i64) -> Result<Counted> {
        self.refuse_seen(attempt, now)?;
        // A client that is blocked already is refused on a read: a storm of blocked guesses
        // writes nothing.
        let blocks = store::blocks(self.db, &attempt.username, &attempt.address, now).await?;
        let blocked = blocks
            .into_iter()
            .filter_map(|(kind, until)| self.in_way(attempt, kind, until, true, known, now))
            .max();
        if let Some(until) = blocked {
            return Err(Error::TooManyAttempts { retry_after: until - now });
        }
        let counters: Vec<_> = [Kind::Pair, Kind::Address, Kind::User]
            .into_iter()
            .filter(|kind| self.limit(*kind) > 0 && (*kind == Kind::Address || !attempt.username.is_empty()))
            .map(|kind| (attempt.counter(kind), self.window(kind)))
            .collect();
        let counts = store::count(self.db, &counters, now).await?;
        // Blocked meanwhile, or past the limit with this count.
        let refused_until = counts
            .iter()
            .filter_map(|(kind, count)| {
                let blocked = count.blocked_until > now;
                let until = match blocked {
                    true => count.blocked_until,
                    false if count.count > self.limit(*kind) => count.window_start + self.window(*kind),
                    false => return None,
                };
                self.in_way(attempt, *kind, until, blocked, known, now)
            })
            .max();
        let counted = Counted { attempt: attempt.clone(), counts };
        match refused_until {
            Some(until) => {
                // No check runs: its numbers are given back.
                let counters: Vec<_> =
                    counted.counts.iter().map(|(kind, _)| attempt.counter(*kind)).collect();
                store::uncount(self.db, &counters).await?;
                Err(Error::TooManyAttempts { retry_after: until - now })
            }
            None => Ok(counted),
        }
    }

    /// Refuses a check whose pair or address this instance saw blocked lately, without a query:
    /// what a sign-in asks first, before it looks anything up.
    pub fn refuse_seen(&self, attempt: &Attempt, now: i64) -> Result<()> {
        let remembered = [Kind::Pair, Kind::Address].map(|kind| self.seen.until(attempt.counter(kind), now));
        match remembered.into_iter().flatten().max() {
            Some(until) => Err(Error::TooManyAttempts { retry_after: until - now }),
            None => Ok(()),
        }
    }

    /// A counted check failed: it stays counted, and a counter at its limit is blocked (the
    /// pair and the address for `login_block_seconds`, a username for the rest of its hour).
    /// The failure (`event`) is recorded with the blocks it leads to.
    pub async fn failed(&self, counted: Counted, now: i64, event: Event) -> Result<()> {
        let blocks: Vec<_> = counted
            .counts
            .iter()
            .filter(|(kind, count)| count.count >= self.limit(*kind))
            .map(|(kind, count)| {
                let until = match kind {
                    Kind::User => count.window_start + HOUR,
                    _ => now + self.limits.block_seconds,
                };
                (counted.attempt.counter(*kind), until)
            })
            .collect();
        store::fail(self.db, &blocks, event).await?;
        for (counter, until) in blocks {
            if counter.kind != Kind::User {
                self.seen.remember(counter, until, now);
            }
        }
        Ok(())
    }

    /// A counted check passed: its pair's counter is cleared, and the address and the username
    /// take back its count (only failures count against them).
    pub async fn succeeded(&self, counted: Counted) -> Result<()> {
        let attempt = &counted.attempt;
        if !attempt.username.is_empty() {
            store::clear(self.db, attempt.counter(Kind::Pair)).await?;
        }
        let others: Vec<_> = counted
            .counts
            .iter()
            .filter(|(kind, _)| *kind != Kind::Pair)
            .map(|(kind, _)| attempt.counter(*kind))
            .collect();
        store::uncount(self.db, &others).await
    }

    /// A password check passed that does not finish a sign-in (a second factor waits): its count
    /// is taken back from every counter, and nothing is cleared, so wrong codes after it keep
    /// counting against the pair until a code is right.
    pub async fn passed_first_step(&self, counted: Counted) -> Result<()> {
        let all: Vec<_> = counted.counts.iter().map(|(kind, _)| counted.attempt.counter(*kind)).collect();
        store::uncount(self.db, &all).await
    }

    /// When a counter that holds checks back until `until` lets this one through again: `None`
    /// when it does not hold this client back (the per-username limit, for a known client).
    /// A pair or address block (`blocked`, in the database) is remembered on the way.
    fn in_way(
        &self,
        attempt: &Attempt,
        kind: Kind,
        until: i64,
        blocked: bool,
        known: bool,
        now: i64,
    ) -> Option<i64> {
        if blocked && kind != Kind::User {
            self.seen.remember(attempt.counter(kind), until, now);
        }
        (!(known && kind == Kind::User)).then_some(until)
    }

    /// A password counter's limit (`0`: off).
    fn limit(&self, kind: Kind) -> i64 {
        match kind {
            Kind::Pair => self.limits.pair,
            Kind::Address => self.limits.address,
            _ => self.limits.user_hour,
        }
    }

    /// A password counter's window, in seconds.
    fn window(&self, kind: Kind) -> i64 {
        match kind {
            Kind::User => HOUR,
            _ => self.limits.block_seconds,
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
    db: &Store,
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
async fn hourly(db: &Store, counters: &[(Counter<'_>, i64)], now: i64) -> Result<Option<i64>> {
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
