//! The database: one pool over SQLite or PostgreSQL (chosen by the URL at run time), the
//! embedded migrations, and one function per query.

/// The names of the groups of the user whose id is the SQL expression `$user_id`, as one
/// comma-separated text (NULL for none), in the order of their keys. Names follow the username
/// rule, so none holds a comma.
macro_rules! groups_of {
    ($user_id:literal) => {
        concat!(
            "(SELECT string_agg(g.name, ',' ORDER BY g.name_key) FROM group_members m \
             JOIN user_groups g ON g.id = m.group_id WHERE m.user_id = ",
            $user_id,
            ")"
        )
    };
}

pub mod events;
pub mod groups;
pub mod invitations;
pub mod keys;
pub mod oauth;
pub mod passkeys;
mod pool;
pub mod purge;
pub mod recovery;
pub mod second_factor;
mod session_check;
pub mod sessions;
pub mod throttle;
pub mod users;

use sqlx::any::AnyRow;
use sqlx::{Row, TypeInfo, ValueRef};

pub use events::{Event, Kind as EventKind};
pub use pool::{stage, Backend, Change, Db, DbPool, Store};
pub use session_check::SessionChecker;

/// Now, as stored: unix seconds, UTC.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A duration as stored times count it: whole seconds (past 30,000 years, capped, so that a
/// time plus it never overflows).
pub fn seconds(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX).min(1 << 40)
}

/// A column that may hold NULL, read into an `Option`. sqlx 0.7's Any driver decodes no NULL
/// into an `Option` by itself (its values never report that they are null), but it keeps a
/// NULL's type, named `NULL`: that is what is read here.
pub fn nullable<T>(row: &AnyRow, column: &str) -> sqlx::Result<Option<T>>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    if row.try_get_raw(column)?.type_info().name() == "NULL" {
        return Ok(None);
    }
    row.try_get(column).map(Some)
}

/// Whether the database is reachable.
pub async fn ping(db: &sqlx::AnyPool) -> Result<(), crate::error::Error> {
    sqlx::query("SELECT 1").execute(db).await?;
    Ok(())
}
