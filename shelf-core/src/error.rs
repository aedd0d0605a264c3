//! Errors: [`OpenError`] for opening a database, [`Error`] for operations on
//! an open one.
//!
//! Messages are lowercase, name the path or key they concern, and do not
//! repeat the text of their `#[source]`.

use std::path::PathBuf;

/// How a read-only refusal names its database: the path, or "shelf".
fn shown_or_shelf(path: &std::path::Path) -> String {
    if path.as_os_str().is_empty() { "shelf".to_owned() } else { path.display().to_string() }
}

impl Error {
    /// [`Error::ReadOnly`] refusing `operation`, for a handle that does not
    /// know its path (the shelf over it fills it in).
    pub fn read_only(operation: &'static str) -> Self {
        Error::ReadOnly { operation, path: PathBuf::new() }
    }

    /// The same error, naming `path` where it is a read-only refusal that
    /// names none yet.
    pub(crate) fn at_path(self, at: &std::path::Path) -> Self {
        match self {
            Error::ReadOnly { operation, path } if path.as_os_str().is_empty() => {
                Error::ReadOnly { operation, path: at.to_owned() }
            }
            other => other,
        }
    }
}

/// A boxed error from a storage engine, kept as the `source` of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Flag `r` or `w` was given and no database exists at the path.
    #[error("no database at {path}: flag '{flag}' does not create one (use 'c' or 'n')")]
    NotFound {
        /// The path that was looked at.
        path: PathBuf,
        /// The flag that was used.
        flag: char,
    },
    /// Another process (or another handle in this one) holds the database.
    #[error("database {path} is locked by another process or handle")]
    Locked {
        /// The locked path.
        path: PathBuf,
    },
    /// The backend name is not one this build knows.
    #[error("unknown backend '{name}' (available: {available})")]
    UnknownBackend {
        /// The name asked for.
        name: String,
        /// The names of the backends compiled in, comma-separated.
        available: String,
    },
    /// The backend exists but its cargo feature was turned off in this build.
    #[error("backend '{name}' is not compiled into this build (enable the '{name}' feature of shelf)")]
    BackendDisabled {
        /// The backend's name.
        name: String,
    },
    /// Something exists at the path but no backend recognises it; it is never
    /// overwritten (CPython's rule for flag `c`).
    #[error("{path} exists but is not a database any backend recognises; refusing to touch it")]
    Undetectable {
        /// The path.
        path: PathBuf,
    },
    /// The path holds a database format CPython knows but no backend here
    /// opens (`dbm.ndbm`); the message says how to convert it.
    #[error("{path} is a {format} database, which shelf cannot open; convert it to dbm.dumb with: {hint}")]
    UnsupportedFormat {
        /// The path.
        path: PathBuf,
        /// CPython's name for the format, such as `dbm.ndbm`.
        format: &'static str,
        /// A one-line command that converts it to a format shelf opens.
        hint: String,
    },
    /// The database at the path is of another backend than the one asked for.
    #[error("{path} is a '{found}' database, not '{requested}'")]
    BackendMismatch {
        /// The path.
        path: PathBuf,
        /// The backend detected at the path.
        found: String,
        /// The backend that was asked for.
        requested: String,
    },
    /// The shelf records that it was written with another protocol.
    #[error("{path} was written with protocol '{stored}', not '{requested}'")]
    ProtocolMismatch {
        /// The path.
        path: PathBuf,
        /// The protocol the shelf records.
        stored: String,
        /// The protocol asked for.
        requested: String,
    },
    /// A flag string other than the four dbm knows.
    #[error(
        "invalid flag '{0}': expected one of 'r' (read-only), 'w' (read-write), 'c' (create if missing), 'n' (always new)"
    )]
    InvalidFlag(String),
    /// A protocol name this build does not know.
    #[error("unknown protocol '{0}' (available: {available})", available = crate::Protocol::NAMES.join(", "))]
    UnknownProtocol(String),
    /// An option that the backend cannot honour (for example `multi_process`).
    #[error("backend '{backend}' does not support {operation}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// What was asked for (the same field name as in
        /// [`Error::Unsupported`]).
        operation: String,
    },
    /// The files exist but their contents are damaged.
    #[error("{path} is corrupted: {detail}")]
    Corrupted {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong, with the line or offset where known.
        detail: String,
    },
    /// An I/O error on a named path.
    #[error("i/o error on {path}")]
    Io {
        /// The path being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from a storage engine while opening.
    #[error("backend '{backend}' could not open {path}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// The path.
        path: PathBuf,
        /// The engine's error.
        #[source]
        source: BoxError,
    },
}

/// What went wrong in an operation on an open shelf or backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The shelf was closed (CPython: `ValueError: invalid operation on closed shelf`).
    #[error("invalid operation on closed shelf")]
    Closed,
    /// A write on a shelf opened with flag `r`.
    #[error("{} is read-only (opened with flag 'r'): cannot {operation}", shown_or_shelf(path))]
    ReadOnly {
        /// The operation that was refused.
        operation: &'static str,
        /// The database's path (empty where the handle does not know it; a
        /// [`Shelf`](crate::Shelf) fills in its own).
        path: PathBuf,
    },
    /// The backend cannot do this (see its [`Capabilities`](crate::Capabilities)).
    #[error("backend '{backend}' does not support {operation}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// `get_mut` was called on a shelf opened without writeback.
    #[error("get_mut of key {key:?} needs writeback: without it a mutated value would not be saved")]
    WritebackDisabled {
        /// The key, shown lossily.
        key: String,
    },
    /// A value could not be serialized.
    #[error("cannot encode the value for key {key:?} with protocol '{protocol}'")]
    Encode {
        /// The key, shown lossily.
        key: String,
        /// The protocol.
        protocol: &'static str,
        /// The serializer's error.
        #[source]
        source: BoxError,
    },
    /// A stored value could not be deserialized into the requested type.
    #[error("cannot decode the value of key {key:?} with protocol '{protocol}'")]
    Decode {
        /// The key, shown lossily.
        key: String,
        /// The protocol.
        protocol: &'static str,
        /// The deserializer's error.
        #[source]
        source: BoxError,
    },
    /// A stored key is not UTF-8 and was asked for as a string.
    #[error("key {key:?} is not valid UTF-8; use the raw-bytes API (keys_raw)")]
    KeyNotUtf8 {
        /// The key, shown lossily.
        key: String,
    },
    /// The cached value of a key was asked for as another type.
    #[error("key {key:?} is held in the writeback cache as another type than the one requested")]
    CacheTypeMismatch {
        /// The key, shown lossily.
        key: String,
    },
    /// Stored data is damaged.
    #[error("{path} is corrupted: {detail}")]
    Corrupted {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong, with the line or offset where known.
        detail: String,
    },
    /// A glob pattern that does not parse.
    #[error("invalid glob pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key the backend cannot store (a `dir` key that would escape its
    /// root, for one).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key, shown lossily.
        key: String,
        /// Why it is refused.
        reason: String,
    },
    /// A wait (for a lock or a key) ran out.
    #[error("timed out after {seconds:.3}s waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long was waited.
        seconds: f64,
    },
    /// An I/O error on a named path.
    #[error("i/o error on {path}")]
    Io {
        /// The path being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from a storage engine.
    #[error("backend '{backend}' failed to {operation}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// What it was doing.
        operation: &'static str,
        /// The engine's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

impl OpenError {
    /// Shorthand for [`OpenError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OpenError::Io { path: path.into(), source }
    }
}

/// Shows a key for an error message: UTF-8 as text, anything else lossily,
/// and a long key cut to its first 120 bytes with its length, so an error
/// names the key without pasting a megabyte of it.
pub fn show_key(key: &[u8]) -> String {
    const SHOWN: usize = 120;
    if key.len() <= SHOWN {
        return String::from_utf8_lossy(key).into_owned();
    }
    format!("{}… ({} bytes)", String::from_utf8_lossy(&key[..SHOWN]), key.len())
}
