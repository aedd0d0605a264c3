//! The engine's errors, converted once into shelf's at the boundary.

use std::path::Path;
use std::time::Duration;

use rusqlite::ffi::ErrorCode;
use shelf_core::{Error, OpenError};

use crate::NAME;

/// An error from SQLite, with what the backend was doing when it came.
#[derive(Debug, thiserror::Error)]
#[error("sqlite failed to {op}")]
pub(crate) struct SqlError {
    /// What the backend was doing.
    pub(crate) op: &'static str,
    /// SQLite's own error.
    #[source]
    pub(crate) source: rusqlite::Error,
}

/// What an SQLite error means to shelf.
enum Kind {
    /// The file is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
    Corrupt,
    /// Another connection holds the lock (`SQLITE_BUSY`, `SQLITE_LOCKED`).
    Busy,
    /// Anything else.
    Other,
}

impl SqlError {
    /// Wraps `source`, met while doing `op`.
    pub(crate) fn new(op: &'static str, source: rusqlite::Error) -> Self {
        SqlError { op, source }
    }

    fn kind(&self) -> Kind {
        match self.source.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Kind::Corrupt,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Kind::Busy,
            _ => Kind::Other,
        }
    }

    /// Whether another connection holds the lock.
    pub(crate) fn is_busy(&self) -> bool {
        matches!(self.kind(), Kind::Busy)
    }

    /// The error of an operation on the database at `path`, whose writes
    /// wait `busy` for another connection's lock.
    pub(crate) fn into_error(self, path: &Path, busy: Duration) -> Error {
        match self.kind() {
            Kind::Corrupt => Error::Corrupted { path: path.to_owned(), detail: self.source.to_string() },
            Kind::Busy => Error::Timeout {
                what: format!(
                    "the write lock of {} (held by another connection) to {}",
                    path.display(),
                    self.op
                ),
                seconds: busy.as_secs_f64(),
            },
            Kind::Other => Error::Backend { backend: NAME, operation: self.op, source: Box::new(self) },
        }
    }

    /// The error of opening the database at `path`.
    pub(crate) fn into_open_error(self, path: &Path) -> OpenError {
        match self.kind() {
            Kind::Corrupt => OpenError::Corrupted { path: path.to_owned(), detail: self.source.to_string() },
            Kind::Busy => OpenError::Locked { path: path.to_owned() },
            Kind::Other => {
                OpenError::Backend { backend: NAME, path: path.to_owned(), source: Box::new(self) }
            }
        }
    }
}

/// An SQLite error, or one of shelf's already made.
#[derive(Debug)]
pub(crate) enum SqlOr {
    /// From SQLite.
    Sql(SqlError),
    /// Already shelf's.
    Shelf(Error),
}

impl From<SqlError> for SqlOr {
    fn from(e: SqlError) -> Self {
        SqlOr::Sql(e)
    }
}

impl From<Error> for SqlOr {
    fn from(e: Error) -> Self {
        SqlOr::Shelf(e)
    }
}

impl SqlOr {
    /// As shelf's error.
    pub(crate) fn into_error(self, path: &Path, busy: Duration) -> Error {
        match self {
            SqlOr::Sql(e) => e.into_error(path, busy),
            SqlOr::Shelf(e) => e,
        }
    }
}

/// `Result::map_err` shorthand: tags an SQLite error with its operation.
pub(crate) trait Tag<T> {
    /// Tags the error with `op`.
    fn tag(self, op: &'static str) -> Result<T, SqlError>;
}

impl<T> Tag<T> for Result<T, rusqlite::Error> {
    fn tag(self, op: &'static str) -> Result<T, SqlError> {
        self.map_err(|e| SqlError::new(op, e))
    }
}
