//! The static registry of backends: CPython dbm's `_names` list, one
//! `#[cfg(feature)]` line per backend. Its order is the preference for new
//! databases.

use std::path::Path;

use shelf_core::raw::{BackendOptions, OpenBackend, Probe};
use shelf_core::{Capabilities, KvBackend, MemoryBackend, OpenError};

use crate::KNOWN_BACKENDS;

/// A backend's opener, as the registry stores it.
pub type OpenFn = fn(&Path, &BackendOptions) -> Result<Box<dyn KvBackend>, OpenError>;

/// A compiled-in backend: its name, its probe for `whichdb`, its opener.
#[derive(Debug)]
#[non_exhaustive]
pub struct BackendInfo {
    /// The registry name.
    pub name: &'static str,
    /// One line saying what it is.
    pub description: &'static str,
    /// What is at a path, for `whichdb`.
    pub probe: fn(&Path) -> Probe,
    /// Opens the database at a path.
    pub open: OpenFn,
    /// What the backend can do, known without opening anything.
    pub capabilities: Capabilities,
    /// The files that make up a database at a path, in the order to move
    /// them (see [`OpenBackend::files`]).
    pub files: fn(&Path) -> Vec<std::path::PathBuf>,
}

fn open_boxed<B: OpenBackend>(
    path: &Path,
    options: &BackendOptions,
) -> Result<Box<dyn KvBackend>, OpenError> {
    Ok(Box::new(B::open(path, options)?))
}

const fn entry<B: OpenBackend>(description: &'static str) -> BackendInfo {
    BackendInfo {
        name: B::NAME,
        description,
        probe: B::probe,
        open: open_boxed::<B>,
        capabilities: B::CAPABILITIES,
        files: B::files,
    }
}

static BACKENDS: &[BackendInfo] = &[
    #[cfg(feature = "redb")]
    entry::<backend_redb::RedbBackend>("redb 4: an embedded copy-on-write B-tree in one file, ACID"),
    #[cfg(feature = "sled")]
    entry::<backend_sled::SledBackend>("sled 0.34: an embedded log-structured engine in a directory"),
    #[cfg(feature = "dumb")]
    entry::<backend_dumb::DumbBackend>(
        "CPython's dbm.dumb files (NAME.dat, NAME.dir), readable by Python's shelve",
    ),
    #[cfg(feature = "dir")]
    entry::<backend_dir::DirBackend>("a directory of one file per key, compatible with Python's pickleshare"),
    entry::<MemoryBackend>("in-memory map, gone on close (Python's Shelf(dict))"),
];

/// The compiled-in backends, in order of preference for new databases.
pub fn backends() -> &'static [BackendInfo] {
    BACKENDS
}

/// The backend registered under `name`.
///
/// # Errors
/// [`OpenError::BackendDisabled`] for a known backend whose feature is off,
/// [`OpenError::UnknownBackend`] listing the available ones otherwise.
pub fn find_backend(name: &str) -> Result<&'static BackendInfo, OpenError> {
    if let Some(info) = BACKENDS.iter().find(|b| b.name == name) {
        return Ok(info);
    }
    if KNOWN_BACKENDS.contains(&name) {
        return Err(OpenError::BackendDisabled { name: name.to_owned() });
    }
    Err(OpenError::UnknownBackend {
        name: name.to_owned(),
        available: BACKENDS.iter().map(|b| b.name).collect::<Vec<_>>().join(", "),
    })
}
