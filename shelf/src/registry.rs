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
    /// The URL schemes whose locations this backend serves (`redis`,
    /// `rediss`); empty for a backend that lives at paths.
    pub schemes: &'static [&'static str],
    /// Asks the server at a URL whether a database of this backend is
    /// there (for `whichdb`); bounded by the URL's timeout. Backends that
    /// live at paths answer [`Probe::Absent`].
    pub probe_url: ProbeUrlFn,
}

/// A backend's URL probe, as the registry stores it.
pub type ProbeUrlFn = fn(&str) -> Result<Probe, OpenError>;

fn no_url(_url: &str) -> Result<Probe, OpenError> {
    Ok(Probe::Absent)
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
        schemes: &[],
        probe_url: no_url,
    }
}

/// The entry of a backend that lives at URLs of `schemes`: its
/// [`OpenBackend::open`] receives the URL as the path.
#[cfg(feature = "redis")]
const fn url_entry<B: OpenBackend>(
    schemes: &'static [&'static str],
    probe_url: ProbeUrlFn,
    description: &'static str,
) -> BackendInfo {
    let mut info = entry::<B>(description);
    info.schemes = schemes;
    info.probe_url = probe_url;
    info
}

static BACKENDS: &[BackendInfo] = &[
    #[cfg(feature = "redb")]
    entry::<backend_redb::RedbBackend>("redb 4: an embedded copy-on-write B-tree in one file, ACID"),
    #[cfg(feature = "sled")]
    entry::<backend_sled::SledBackend>("sled 0.34: an embedded log-structured engine in a directory"),
    #[cfg(feature = "sqlite")]
    entry::<backend_sqlite::SqliteBackend>(
        "CPython 3.13's dbm.sqlite3 (one SQLite file), readable by Python's shelve",
    ),
    #[cfg(feature = "gnu")]
    entry::<backend_gnu::GnuBackend>("GDBM's file format (CPython's dbm.gnu), readable by Python's shelve"),
    #[cfg(feature = "dumb")]
    entry::<backend_dumb::DumbBackend>(
        "CPython's dbm.dumb files (NAME.dat, NAME.dir), readable by Python's shelve",
    ),
    #[cfg(feature = "dir")]
    entry::<backend_dir::DirBackend>("a directory of one file per key, compatible with Python's pickleshare"),
    #[cfg(feature = "mmappickle")]
    entry::<backend_mmappickle::MmapPickleBackend>(
        "one mmappickle 1.0 file (a pickled dict), numpy arrays as zero-copy views",
    ),
    entry::<MemoryBackend>("in-memory map, gone on close (Python's Shelf(dict))"),
];

/// The backends that live at URLs rather than paths, each claiming its
/// schemes. Kept apart from [`backends`], whose callers open databases at
/// paths (tables of tests, `shelf bench`'s default): a server is not a
/// path; [`find_backend`] finds both.
static URL_BACKENDS: &[BackendInfo] = &[
    #[cfg(feature = "redis")]
    url_entry::<backend_redis::RedisBackend>(
        backend_redis::SCHEMES,
        backend_redis::probe_url,
        "a Redis server or Redis Cluster (redis://host:port/db?namespace=NAME), shared across machines",
    ),
];

/// The compiled-in backends that live at paths, in order of preference
/// for new databases.
pub fn backends() -> &'static [BackendInfo] {
    BACKENDS
}

/// The compiled-in backends that live at URLs (see [`BackendInfo::schemes`]).
pub fn url_backends() -> &'static [BackendInfo] {
    URL_BACKENDS
}

/// The backend registered under `name`.
///
/// # Errors
/// [`OpenError::BackendDisabled`] for a known backend whose feature is off,
/// [`OpenError::UnknownBackend`] listing the available ones otherwise.
pub fn find_backend(name: &str) -> Result<&'static BackendInfo, OpenError> {
    if let Some(info) = BACKENDS.iter().chain(URL_BACKENDS).find(|b| b.name == name) {
        return Ok(info);
    }
    if KNOWN_BACKENDS.contains(&name) {
        return Err(OpenError::BackendDisabled { name: name.to_owned() });
    }
    Err(OpenError::UnknownBackend {
        name: name.to_owned(),
        available: BACKENDS.iter().chain(URL_BACKENDS).map(|b| b.name).collect::<Vec<_>>().join(", "),
    })
}
