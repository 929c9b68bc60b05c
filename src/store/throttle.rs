//! Queries on `throttle`: counters of failed password checks and of sign-ups, each over a
//! fixed window that opens with its first count, and the blocks they lead to.

use sqlx::{AnyPool, FromRow};

use super::{Event, EventKind, Store};
use crate::error::Result;

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Failed password checks of one username from one address.
    Pair,
    /// Failed password checks from one address, whatever the name.
    Address,
    /// Failed password checks of one username, from anywhere.
    User,
    /// Accounts created from one address.
    Register,
    /// Mails (confirmation, reset links) sent to one account.
    MailAccount,
    /// Password reset requests and address changes from one address.
    MailAddress,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Pair => "pair",
            Kind::Address => "address",
            Kind::User => "user",
            Kind::Register => "register",
            Kind::MailAccount => "mail_account",
            Kind::MailAddress => "mail_address",
        }
    }

    /// Whose sign-ins a block of this counter holds back, as the throttling event says.
    fn scope(self) -> &'static str {
        match self {
            Kind::Pair => "this name from this address",
            Kind::Address | Kind::Register | Kind::MailAddress => "this address",
            Kind::User | Kind::MailAccount => "this name from anywhere",
        }
    }

    fn parse(kind: &str) -> Option<Kind> {
        [Kind::Pair, Kind::Address, Kind::User, Kind::Register, Kind::MailAccount, Kind::MailAddress]
            .into_iter()
            .find(|k| k.as_str() == kind)
    }
}

/// One counter: its kind, and the (lower-cased) username and address it is about, `""` for
/// the part a kind does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter<'a> {
    pub kind: Kind,
    pub username: &'a str,
    pub address: &'a str,
}

/// A counter's state after a count.
#[derive(Debug, Clone, Copy, FromRow)]
pub struct Count {
    pub count: i64,
    pub window_start: i64,
    /// Unix seconds; in the past when the counter does not block.
    pub blocked_until: i64,
}

/// The blocks still in force among the counters of a password check: `(kind, blocked_until)`.
/// `username` and `address` select the pair, the address and the username counters.
pub async fn blocks(db: &AnyPool, username: &str, address: &str, now: i64) -> Result<Vec<(Kind, i64)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, blocked_until FROM throttle WHERE blocked_until > $3 AND ( \
           (kind = 'pair' AND username = $1 AND address = $2) \
           OR (kind = 'address' AND username = '' AND address = $2) \
           OR (kind = 'user' AND username = $1 AND address = ''))",
    )
    .bind(username)
    .bind(address)
    .bind(now)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().filter_map(|(kind, until)| Some((Kind::parse(&kind)?, until))).collect())
}

/// Counts one more on each counter, whose window lasts the seconds given with it (a window
/// that is over starts again with this count), in one statement: one write however many
/// counters. Returns each counter's kind as it now stands.
pub async fn count(db: &Store, counters: &[(Counter<'_>, i64)], now: i64) -> Result<Vec<(Kind, Count)>> {
    let (db, _turn) = db.write().await?;
    if counters.is_empty() {
        return Ok(Vec::new());
    }
    // A new row's window is [window_start, expires_at): `excluded` carries now and the window.
    let rows: Vec<String> = (0..counters.len())
        .map(|i| format!("(${}, ${}, ${}, $1, 1, ${})", 4 * i + 2, 4 * i + 3, 4 * i + 4, 4 * i + 5))
        .collect();
    let sql = format!(
        "INSERT INTO throttle (kind, username, address, window_start, count, expires_at) VALUES {} \
         ON CONFLICT (kind, username, address) DO UPDATE SET \
           count = CASE WHEN {over} THEN 1 ELSE throttle.count + 1 END, \
           window_start = CASE WHEN {over} THEN excluded.window_start ELSE throttle.window_start END, \
           expires_at = CASE WHEN {over} THEN excluded.expires_at ELSE throttle.expires_at END \
         RETURNING kind, count, window_start, blocked_until",
        rows.join(", "),
        over =
            "throttle.window_start + (excluded.expires_at - excluded.window_start) <= excluded.window_start",
    );
    /// A counter as counted: its kind and state.
    #[derive(FromRow)]
    struct Counted {
        kind: String,
        #[sqlx(flatten)]
        count: Count,
    }
    let mut query = sqlx::query_as::<_, Counted>(&sql).bind(now);
    for (counter, window) in counters {
        query =
            query.bind(counter.kind.as_str()).bind(counter.username).bind(counter.address).bind(now + window);
    }
    let counted = query.fetch_all(db).await?;
    Ok(counted.into_iter().filter_map(|counted| Some((Kind::parse(&counted.kind)?, counted.count))).collect())
}

/// Takes back one count from each counter (a check that was counted before it ran, and passed).
pub async fn uncount(db: &Store, counters: &[Counter<'_>]) -> Result<()> {
    let (db, _turn) = db.write().await?;
    for counter in counters {
        sqlx::query(
            "UPDATE throttle SET count = count - 1 \
             WHERE kind = $1 AND username = $2 AND address = $3 AND count > 0",
        )
        .bind(counter.kind.as_str())
        .bind(counter.username)
        .bind(counter.address)
        .execute(db)
        .await?;
    }
    Ok(())
}

/// Records a failed password or code check (`failure`), and blocks each of `blocks` until its
/// time (unix seconds; its row is kept at least as long), each newly blocked one recorded as a
/// throttling event, in one transaction.
pub async fn fail(db: &Store, blocks: &[(Counter<'_>, i64)], failure: Event) -> Result<()> {
    let mut change = db.change().await?;
    let mut events = Vec::with_capacity(1 + blocks.len());
    for (counter, until) in blocks {
        let done = sqlx::query(
            "UPDATE throttle SET blocked_until = $4, expires_at = $4 \
             WHERE kind = $1 AND username = $2 AND address = $3 AND blocked_until < $4",
        )
        .bind(counter.kind.as_str())
        .bind(counter.username)
        .bind(counter.address)
        .bind(*until)
        .execute(&mut *change)
        .await?;
        if done.rows_affected() > 0 {
            let mut blocked = failure.clone().with("scope", counter.kind.scope()).with("until", *until);
            blocked.kind = EventKind::SignInThrottled;
            events.push(blocked);
        }
    }
    events.insert(0, failure);
    change.commit(&events).await
}

/// Forgets a counter (a success clears its pair).
pub async fn clear(db: &Store, counter: Counter<'_>) -> Result<()> {
    let (db, _turn) = db.write().await?;
    sqlx::query("DELETE FROM throttle WHERE kind = $1 AND username = $2 AND address = $3")
        .bind(counter.kind.as_str())
        .bind(counter.username)
        .bind(counter.address)
        .execute(db)
        .await?;
    Ok(())
}

/// A counter as an operator sees it.
#[derive(FromRow)]
pub struct Entry {
    pub kind: String,
    pub username: String,
    pub address: String,
    pub count: i64,
    pub window_start: i64,
    /// Unix seconds; in the past when the counter does not block.
    pub blocked_until: i64,
}

/// Every counter still in force at `now` (window or block not over), blocks first.
pub async fn list(db: &AnyPool, now: i64) -> Result<Vec<Entry>> {
    let entries = sqlx::query_as(
        "SELECT kind, username, address, count, window_start, blocked_until FROM throttle \
         WHERE expires_at > $1 ORDER BY blocked_until DESC, kind, username, address",
    )
    .bind(now)
    .fetch_all(db)
    .await?;
    Ok(entries)
}

/// Forgets every counter of a (lower-cased) username or of an address (as counted), or every
/// counter when both are `None`, recording `event` (with how many). Returns how many.
pub async fn clear_matching(
    db: &Store,
    username: Option<&str>,
    address: Option<&str>,
    event: Event,
) -> Result<u64> {
    let mut change = db.change().await?;
    let done = match (username, address) {
        (None, None) => sqlx::query("DELETE FROM throttle").execute(&mut *change).await?,
        (username, address) => {
            sqlx::query(
                "DELETE FROM throttle WHERE (username = $1 AND $1 <> '') OR (address = $2 AND $2 <> '')",
            )
            .bind(username.unwrap_or_default())
            .bind(address.unwrap_or_default())
            .execute(&mut *change)
            .await?
        }
    };
    let cleared = done.rows_affected();
    change.commit(&[event.with("cleared", cleared)]).await?;
    Ok(cleared)
}
