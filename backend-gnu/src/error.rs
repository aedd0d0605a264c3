//! The backend's own errors, converted once into shelf's at the boundary.

use std::io;
use std::path::{Path, PathBuf};

use shelf_core::{Error, OpenError};

/// What is wrong with a file's contents.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    /// The header or directory (block 0, the directory) is not sound.
    #[error("bad GDBM header: {0}")]
    Header(String),
    /// A GDBM file of a variant this backend does not open.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A bucket is not sound.
    #[error("bad hash bucket at offset {adr}: {what}")]
    Bucket {
        /// The bucket's address.
        adr: u64,
        /// What is wrong.
        what: String,
    },
    /// A key or value cannot be where its bucket says.
    #[error("{0}")]
    Entry(String),
}

/// An error of the engine.
#[derive(Debug, thiserror::Error)]
pub enum GnuError {
    /// An I/O error on a file.
    #[error("i/o error on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The database file is damaged.
    #[error("{path} is corrupted: {damage}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        damage: Damage,
    },
    /// Something the format cannot hold.
    #[error("{0}")]
    Limit(String),
}

impl GnuError {
    /// An I/O error on `path`.
    pub fn io(path: &Path) -> impl FnOnce(io::Error) -> GnuError + '_ {
        move |source| GnuError::Io { path: path.to_owned(), source }
    }

    /// Damage in `path`.
    pub fn damaged(path: &Path, damage: Damage) -> GnuError {
        GnuError::Damaged { path: path.to_owned(), damage }
    }
}

impl From<GnuError> for Error {
    fn from(e: GnuError) -> Error {
        match e {
            GnuError::Io { path, source } => Error::Io { path, source },
            GnuError::Damaged { damage: Damage::Unsupported(what), .. } => {
                Error::Unsupported { backend: crate::NAME, operation: what }
            }
            GnuError::Damaged { path, damage } => Error::Corrupted { path, detail: damage.to_string() },
            GnuError::Limit(what) => {
                Error::Backend { backend: crate::NAME, operation: "write", source: what.into() }
            }
        }
    }
}

impl From<GnuError> for OpenError {
    fn from(e: GnuError) -> OpenError {
        match e {
            GnuError::Io { path, source } => OpenError::Io { path, source },
            GnuError::Damaged { damage: Damage::Unsupported(what), .. } => {
                OpenError::Unsupported { backend: crate::NAME, operation: what.to_owned() }
            }
            GnuError::Damaged { path, damage } => OpenError::Corrupted { path, detail: damage.to_string() },
            GnuError::Limit(what) => {
                OpenError::Backend { backend: crate::NAME, path: PathBuf::new(), source: what.into() }
            }
        }
    }
}
