//! The command's errors and the exit code each kind maps to.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | not found: a missing key or a missing database |
//! | 2 | usage or unsupported: bad arguments, unknown backend or protocol, an operation the backend lacks, a refused overwrite |
//! | 3 | data error: corrupt or undecodable stored data, malformed input |
//! | 4 | environment: a locked database, permissions, other i/o failures |
//! | 5 | internal error: a panic reached `main` (a bug; printed in one line, see `main.rs`) |
//!
//! Code 4 is ours: a locked database or a permission problem is neither the
//! user's syntax nor bad data, and scripts want to retry it differently.

use std::fmt;

use shelf::{Error, OpenError};

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exit 1: a missing key or database.
    NotFound = 1,
    /// Exit 2: usage or unsupported.
    Usage = 2,
    /// Exit 3: corrupt, undecodable or malformed data.
    Data = 3,
    /// Exit 4: locks, permissions, i/o.
    Env = 4,
}

/// A failure of a command: its kind and the whole message, already naming
/// the path, key or line it concerns.
#[derive(Debug)]
pub struct CliError {
    /// Decides the exit code.
    pub kind: Kind,
    /// The message printed after `shelf: `.
    pub message: String,
}

impl CliError {
    /// A failure of the given kind.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        CliError { kind, message: message.into() }
    }

    /// Exit 1.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }

    /// Exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    /// Exit 3.
    pub fn data(message: impl Into<String>) -> Self {
        Self::new(Kind::Data, message)
    }

    /// Exit 4.
    pub fn env(message: impl Into<String>) -> Self {
        Self::new(Kind::Env, message)
    }

    /// The process exit code.
    pub fn code(&self) -> i32 {
        self.kind as i32
    }

    /// The same failure with `context` put in front of its message.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An error's message followed by those of its sources, `: `-separated,
/// since our errors do not repeat their source's text.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn io_kind(e: &std::io::Error) -> Kind {
    match e.kind() {
        std::io::ErrorKind::NotFound => Kind::NotFound,
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => Kind::Data,
        _ => Kind::Env,
    }
}

impl From<OpenError> for CliError {
    fn from(e: OpenError) -> Self {
        let kind = match &e {
            OpenError::NotFound { .. } => Kind::NotFound,
            OpenError::UnknownBackend { .. }
            | OpenError::BackendDisabled { .. }
            | OpenError::BackendMismatch { .. }
            | OpenError::ProtocolMismatch { .. }
            | OpenError::InvalidFlag(_)
            | OpenError::UnknownProtocol(_)
            | OpenError::Unsupported { .. } => Kind::Usage,
            OpenError::Undetectable { .. }
            | OpenError::Corrupted { .. }
            | OpenError::UnsupportedFormat { .. } => Kind::Data,
            OpenError::Io { source, .. } => io_kind(source),
            // Locked, engine errors, and variants added later.
            _ => Kind::Env,
        };
        CliError::new(kind, chain(&e))
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::ReadOnly { .. } | Error::Unsupported { .. } => Kind::Usage,
            Error::InvalidPattern { .. } => Kind::Usage,
            Error::Encode { .. }
            | Error::Decode { .. }
            | Error::KeyNotUtf8 { .. }
            | Error::Corrupted { .. }
            | Error::InvalidKey { .. } => Kind::Data,
            Error::Io { source, .. } => io_kind(source),
            _ => Kind::Env,
        };
        CliError::new(kind, chain(&e))
    }
}
