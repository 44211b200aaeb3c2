//! The one error every store returns.
//!
//! [`StoreError::from`] sorts a database error once, here, so no store decides it again:
//! a database that cannot be reached, is out of connections, or is shutting down is
//! [`StoreError::Unavailable`] (an outage: 503 with Retry-After, never a 500); a unique key
//! that refused a write is [`StoreError::Duplicate`] (the caller says what it means); a stored
//! word this code cannot read is [`StoreError::Corrupt`], naming its table and column, never a
//! silent default.

use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, has no free connection in time, or is shutting down.
    /// Retrying later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A unique key or primary key refused the write.
    #[error("a unique key refused the write: {0}")]
    Duplicate(#[source] sqlx::Error),
    /// A stored value this version cannot read.
    #[error("{table}.{column} holds {value:?}, which is not a value this version knows")]
    Corrupt { table: &'static str, column: &'static str, value: String },
    /// Another request under the same Idempotency-Key is still running (see [`crate::keyed`]).
    #[error("a request with this Idempotency-Key is still being processed")]
    KeyHeld,
    /// A request under the same Idempotency-Key committed while this one ran: its record
    /// answers this one (see [`crate::keyed`]).
    #[error("a request with this Idempotency-Key was answered meanwhile")]
    Answered,
    /// Any other database error: a bug.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    pub fn is_duplicate(&self) -> bool {
        matches!(self, StoreError::Duplicate(_))
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if unavailable(&error) {
            return StoreError::Unavailable(error);
        }
        if matches!(&error, sqlx::Error::Database(db) if db.is_unique_violation()) {
            return StoreError::Duplicate(error);
        }
        StoreError::Database(error)
    }
}

/// Whether an error says the database is away or overloaded rather than that the statement
/// is wrong.
fn unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // PostgreSQL: connection exceptions (class 08), too many connections, shutting
            // down or starting up, a serialization failure or deadlock (retry the request).
            Some(code) if code.starts_with("08") => true,
            Some("53300" | "57P01" | "57P02" | "57P03" | "40001" | "40P01") => true,
            // SQLite: the database stayed locked past the busy timeout.
            Some("5" | "6" | "261" | "517") => true,
            _ => false,
        },
        _ => false,
    }
}

/// Reads a stored word as `T`; a word `T` does not know is [`StoreError::Corrupt`], naming
/// where it was read from.
pub fn decode<T: FromStr>(table: &'static str, column: &'static str, value: &str) -> Result<T, StoreError> {
    value.parse().map_err(|_| StoreError::Corrupt { table, column, value: value.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_word_names_its_table_and_column() {
        let error = decode::<u8>("payments", "method", "bitcoin").unwrap_err();
        assert_eq!(error.to_string(), "payments.method holds \"bitcoin\", which is not a value this version knows");
        assert_eq!(decode::<u8>("payments", "method", "7").unwrap(), 7);
    }

    #[test]
    fn an_exhausted_pool_is_an_outage() {
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::from(sqlx::Error::Io(std::io::Error::other("reset"))).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
    }
}
