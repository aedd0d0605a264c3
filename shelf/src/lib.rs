#![doc = include_str!("../../README.md")]

use std::path::Path;
use std::time::Duration;

pub use shelf_core::raw;
use shelf_core::raw::{BackendOptions, OpenBackend, Probe};
pub use shelf_core::{
    BatchOp, BoxError, Capabilities, CheckReport, DEFAULT_FACTORIES, Date, DateTime, Error, Flag, KvBackend,
    KvIter, KvPair, KvRange, Link, MemoryBackend, Opaque, OpenError, PYTHON_TAGS, PickleOptions, Protocol,
    PyObject, SharedBytes, Shelf, ShelfOptions, StorageStats, Time, TimeDelta, Transaction, TzInfo, Value,
    ValueError, hash_bucket, to_value,
};

mod registry;

pub use registry::{BackendInfo, OpenFn, backends, find_backend};

/// Every backend name shelf knows, compiled in or not, so a name whose
/// feature is off gets [`OpenError::BackendDisabled`] rather than "unknown".
pub const KNOWN_BACKENDS: &[&str] = &["redb", "sled", "dumb", "dir", "memory"];

/// A shelf whose backend was chosen at run time.
pub type DynShelf = Shelf<Box<dyn KvBackend>>;

/// What [`whichdb`] found at a path, like CPython's `dbm.whichdb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhichDb {
    /// Nothing is there (`None` in Python).
    Missing,
    /// Something is there that no backend recognises (`''` in Python).
    Unknown,
    /// A database of the named backend.
    Backend(&'static str),
}

impl WhichDb {
    /// The backend name, `"missing"` or `"unknown"`: the word `shelf whichdb`
    /// prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            WhichDb::Missing => "missing",
            WhichDb::Unknown => "unknown",
            WhichDb::Backend(name) => name,
        }
    }
}

/// Which backend's database is at `path`, by each compiled-in backend's own
/// probe (file names, magic bytes), in registry order. Reads only.
pub fn whichdb(path: impl AsRef<Path>) -> WhichDb {
    let path = path.as_ref();
    let mut foreign = false;
    for info in backends() {
        match (info.probe)(path) {
            Probe::Mine => return WhichDb::Backend(info.name),
            Probe::Foreign => foreign = true,
            Probe::Absent => {}
        }
    }
    if foreign || path.symlink_metadata().is_ok() { WhichDb::Unknown } else { WhichDb::Missing }
}

/// Opens the shelf at `path` like Python's `shelve.open(path)`: flag `c`,
/// the protocol the shelf records (else the backend's default), no
/// writeback, the backend detected at the path or, for a new database, the
/// first in the preference order ([`backends`]).
///
/// # Errors
/// See [`OpenOptions::open`].
pub fn open(path: impl AsRef<Path>) -> Result<DynShelf, OpenError> {
    OpenOptions::new().open(path)
}

/// Options for opening a shelf: `shelve.open(filename, flag, protocol,
/// writeback)` plus the backend and locking choices.
///
/// # Examples
/// ```
/// use shelf::{Flag, OpenOptions, Protocol};
/// let dir = tempfile::tempdir()?;
/// let mut s = OpenOptions::new()
///     .flag(Flag::Create)
///     .protocol(Protocol::Json)
///     .writeback(true)
///     .backend("memory")
///     .open(dir.path().join("db"))?;
/// s.insert("k", &1)?;
/// s.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    flag: Flag,
    protocol: Option<Protocol>,
    writeback: bool,
    backend: Option<String>,
    mode: Option<u32>,
    lock_timeout: Option<Duration>,
    multi_process: bool,
    salvage: bool,
}

impl OpenOptions {
    /// Flag `c`, protocol as recorded or default, no writeback, backend
    /// detected or default.
    pub fn new() -> Self {
        Self::default()
    }

    /// The dbm flag (`r`, `w`, `c`, `n`).
    pub fn flag(&mut self, flag: Flag) -> &mut Self {
        self.flag = flag;
        self
    }

    /// The protocol values are stored with. Reopening a shelf that records
    /// another protocol is [`OpenError::ProtocolMismatch`].
    pub fn protocol(&mut self, protocol: Protocol) -> &mut Self {
        self.protocol = Some(protocol);
        self
    }

    /// CPython's `writeback` (see [`Shelf`]).
    pub fn writeback(&mut self, on: bool) -> &mut Self {
        self.writeback = on;
        self
    }

    /// The backend, by registry name (`"redb"`, `"sled"`, `"dumb"`,
    /// `"memory"`, …), instead of detecting it.
    pub fn backend(&mut self, name: impl Into<String>) -> &mut Self {
        self.backend = Some(name.into());
        self
    }

    /// Permission bits for created files before the umask (default `0o666`).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = Some(mode);
        self
    }

    /// Wait up to `timeout` for another process's lock instead of failing at
    /// once with [`OpenError::Locked`].
    pub fn lock_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Share the database with other processes, where the backend can.
    pub fn multi_process(&mut self, on: bool) -> &mut Self {
        self.multi_process = on;
        self
    }

    /// Open a damaged database anyway, skipping entries that cannot be
    /// read, so that [`KvBackend::check`] can report the damage and repair the
    /// rest (the dumb backend; others ignore it).
    pub fn salvage(&mut self, on: bool) -> &mut Self {
        self.salvage = on;
        self
    }

    fn backend_options(&self) -> BackendOptions {
        let mut o = BackendOptions::with_flag(self.flag);
        if let Some(mode) = self.mode {
            o.mode = mode;
        }
        o.lock_timeout = self.lock_timeout;
        o.multi_process = self.multi_process;
        o.salvage = self.salvage;
        o
    }

    fn shelf_options(&self, path: &Path) -> ShelfOptions {
        ShelfOptions::new(self.protocol)
            .writeback(self.writeback)
            .read_only(self.flag == Flag::Read)
            .path(path)
    }

    /// Chooses the backend for `path` by CPython's rules: the detected
    /// one for an existing database; the named one or the preferred one for
    /// a new database; never a file no backend recognises.
    fn choose(&self, path: &Path) -> Result<&'static BackendInfo, OpenError> {
        if let Some(name) = &self.backend {
            let info = find_backend(name)?;
            if !info.capabilities.persistent {
                // Nothing on disk to detect or protect.
                return Ok(info);
            }
            return match whichdb(path) {
                WhichDb::Backend(found) if found != info.name => Err(OpenError::BackendMismatch {
                    path: path.to_owned(),
                    found: found.to_owned(),
                    requested: info.name.to_owned(),
                }),
                _ if (info.probe)(path) == Probe::Foreign => {
                    Err(OpenError::Undetectable { path: path.to_owned() })
                }
                _ => Ok(info),
            };
        }
        match whichdb(path) {
            WhichDb::Backend(found) => find_backend(found),
            WhichDb::Unknown => Err(OpenError::Undetectable { path: path.to_owned() }),
            WhichDb::Missing if !self.flag.creates() => {
                Err(OpenError::NotFound { path: path.to_owned(), flag: self.flag.as_char() })
            }
            WhichDb::Missing => backends().first().ok_or_else(|| OpenError::UnknownBackend {
                name: "(default)".into(),
                available: String::new(),
            }),
        }
    }

    /// Opens the shelf at `path`, choosing the backend at run time.
    ///
    /// # Errors
    /// [`OpenError::NotFound`] (`r`/`w` on a missing database),
    /// [`OpenError::Undetectable`] (a file no backend recognises),
    /// [`OpenError::UnknownBackend`] (listing the available ones),
    /// [`OpenError::BackendDisabled`], [`OpenError::BackendMismatch`],
    /// [`OpenError::Locked`], [`OpenError::ProtocolMismatch`] and the
    /// backend's own errors.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<DynShelf, OpenError> {
        let path = path.as_ref();
        let info = self.choose(path)?;
        let backend = (info.open)(path, &self.backend_options())?;
        Shelf::new(backend, self.shelf_options(path))
    }

    /// Opens the shelf at `path` with the backend type `B`, chosen
    /// statically: no registry, no boxing.
    ///
    /// # Errors
    /// As [`open`](Self::open), less the registry's errors.
    pub fn open_as<B: OpenBackend>(&self, path: impl AsRef<Path>) -> Result<Shelf<B>, OpenError> {
        let path = path.as_ref();
        if B::probe(path) == Probe::Foreign {
            return Err(OpenError::Undetectable { path: path.to_owned() });
        }
        let backend = B::open(path, &self.backend_options())?;
        Shelf::new(backend, self.shelf_options(path))
    }
}
