//! Python's [`shelve`](https://docs.python.org/3/library/shelve.html) for
//! Rust: a persistent dictionary from string (or byte) keys to serde values,
//! stored by a backend chosen when the shelf is opened: an embedded engine
//! (redb, the default), the very files Python's `shelve` writes, a
//! directory, Redis, or memory.
//!
//! # Open, use, close
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Point { x: i32, y: i32 }
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("points");
//! let mut db = shelf::open(&path)?;                // shelve.open(path): flag 'c'
//! db.insert("origin", &Point { x: 0, y: 0 })?;     // db["origin"] = ...
//! db.insert("count", &2u32)?;                      // values of any serde type
//! assert_eq!(db.get::<Point>("origin")?, Some(Point { x: 0, y: 0 }));
//! assert_eq!(db.get::<u32>("missing")?, None);     // Python raises KeyError
//! assert!(db.contains_key("count")?);
//! db.close()?;                                     // durable; later calls: Error::Closed
//!
//! // Reopened: the backend and protocol are found in the files.
//! let db = shelf::open(&path)?;
//! for (key, value) in &db {
//!     // New shelves store MessagePack, which describes itself: any value
//!     // reads as a `shelf::Value` without knowing the type that wrote it.
//!     println!("{key} = {:?}", value?);
//! }
//! let keys: Vec<String> = db.keys()?.collect::<Result<_, _>>()?; // lazy, like a stream
//! assert_eq!(keys.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The method names are `HashMap`'s where the meaning is the same
//! (`get`, `insert`, `remove`, `contains_key`, `len`, `keys`, `values`,
//! `iter`) and Python's otherwise (`sync`, `pop`, `set_default`,
//! `update`). A call returns `Result`, because a disk can fail where memory
//! cannot. [`OpenOptions`] takes `shelve.open`'s other arguments and the
//! backend:
//!
//! ```
//! use shelf::{Flag, OpenOptions, Protocol};
//! # let dir = tempfile::tempdir()?;
//! let mut db = OpenOptions::new()
//!     .flag(Flag::Create)            // 'r', 'w', 'c' or 'n', as dbm
//!     .backend("sqlite")             // by name; detected when the database exists
//!     .protocol(Protocol::json())    // recorded in the shelf where the backend can
//!     .writeback(true)               // get_mut hands out values that sync() writes
//!     .open(dir.path().join("data.sqlite3"))?;
//! db.insert("xs", &vec![1, 2, 3])?;
//! if let Some(xs) = db.get_mut::<Vec<i32>>("xs")? {
//!     xs.push(4);
//! }
//! db.sync()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Shelves Python wrote
//!
//! A shelf made by Python opens without naming its format: [`whichdb`]
//! recognises the files, and the pickle protocol is found from the values.
//! Decoding a pickle never runs code; values are read as your serde types
//! or as [`Value`], which keeps Python's types apart (tuple, set,
//! `datetime`, big integers...).
//!
//! | Python wrote it with | files | backend | protocol |
//! |---|---|---|---|
//! | `shelve.open` on CPython 3.13 and later | `dbm.sqlite3` | `sqlite` | pickle |
//! | `shelve.open` on 3.0 to 3.12 with `_gdbm` (most Linux distributions) | `dbm.gnu` | `gnu` | pickle |
//! | `shelve.open` without `_gdbm` and `_dbm` (pyenv builds, Windows), or `dbm.dumb` | `NAME.dat`, `NAME.dir` | `dumb` | pickle |
//! | pickleshare's `PickleShareDB` | a directory of files | `dir` | pickle |
//! | mmappickle's `mmapdict` (numpy arrays) | one file | `mmappickle` | pickle |
//! | `shelve.open` on macOS (`dbm.ndbm`) | `NAME.db` | none: opening it prints a Python command that converts it to `dbm.dumb` | |
//!
//! Each opens for writing as well, and what Rust writes there with pickle
//! (the default protocol of these backends) Python reads back.
//!
//! ```no_run
//! // After Python ran: with shelve.open("inventory") as db: db["apples"] = {"count": 3}
//! let db = shelf::open("inventory")?;
//! let apples: shelf::Value = db.get("apples")?.expect("written by Python");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Choosing a backend
//!
//! Each backend is a cargo feature (on by default unless marked) and a
//! registry name for [`OpenOptions::backend`]; [`backends`] lists those
//! compiled in, in the preference order for new databases.
//!
//! | backend | choose it for |
//! |---|---|
//! | `redb` | new data used from Rust: one file, ACID commits, checksummed entries, the default |
//! | `sqlite` | sharing a live shelf with CPython 3.13+ or other processes (SQLite's locking) |
//! | `gnu`, `dumb` | shelves older Pythons read and write (`dbm.gnu`, `dbm.dumb`, byte for byte) |
//! | `dir` | one file per key, pickleshare's layout; many processes reading and writing |
//! | `mmappickle` | numpy arrays as zero-copy views of a memory-mapped file |
//! | `redis` (feature `redis`, off by default) | several processes on several machines: opened by URL, `redis://host/0?namespace=app` |
//! | `sled` (feature `sled`, off by default) | comparing engines; sled 0.34 is unmaintained |
//! | `memory` | tests, and Python's `Shelf(dict)` |
//!
//! Code written against [`DynShelf`] (what [`open`] returns) runs on any
//! of them, so the engine can be configuration. [`OpenOptions::open_as`]
//! picks one statically instead, without boxing.
//!
//! # Choosing a protocol
//!
//! The protocol turns values into bytes. A shelf records it where its
//! backend keeps metadata, and reopening uses it: only new shelves take the
//! default.
//!
//! | protocol | for | read back as [`Value`] |
//! |---|---|---|
//! | [`Protocol::msgpack()`] | the default for new non-Python shelves: compact, structs stored with field names (a struct can gain `#[serde(default)]` fields), read by Python's `msgpack` and the `shelf` command | yes |
//! | [`Protocol::bincode()`] | the fastest and smallest; needs the exact Rust type to read | no |
//! | [`Protocol::pickle()`] | sharing values with Python; the default of the Python formats | yes |
//! | [`Protocol::json()`] | values people read and edit | yes |
//!
//! # Durability
//!
//! Writes are visible at once and durable at [`Shelf::sync`] (and at
//! [`Shelf::close`], and when the shelf is dropped, which ignores errors:
//! call `close` to see them). Once `sync` has returned, the data survives
//! the process being killed at any instant; a crash before it may lose the
//! writes since the last sync, but never makes the database unopenable or
//! mixes old and new bytes within a value. The crash tests kill every
//! persistent backend with SIGKILL to check exactly this.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! let mut db = shelf::open(dir.path().join("orders"))?;
//! db.update([("a1", 10), ("a2", 20)])?;
//! db.sync()?; // from here on, both survive a crash
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A damaged database is an error naming the file (and the key where it
//! can), never a changed value or a shortened listing. A database opened
//! with flag `r` is never written, and a file that no backend recognises is
//! never overwritten, not even with flag `n`.
//!
//! # Async
//!
//! With the feature `tokio`, `AsyncShelf` has the same methods, async, each
//! running on tokio's blocking pool; it is cheap to clone, so one open
//! shelf can be a web service's shared state:
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let shelf = shelf::AsyncShelf::open(dir.path().join("db")).await?;
//! shelf.insert("hits", 1u64).await?;
//! assert_eq!(shelf.get::<u64>("hits").await?, Some(1));
//! shelf.close().await?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! # More
//!
//! - Examples: `cargo run -p shelf --example NAME` with `python_migration`,
//!   `writeback`, `web_service` and `switch_engine` (in `shelf/examples/`).
//! - The `shelf` command (crate `shelf-cli`) inspects, edits, dumps, loads,
//!   converts, checks and benchmarks shelves from a shell.
//! - The README: the full table from Python's `shelve` to this crate, each
//!   backend's files and guarantees; `docs/performance.md` and
//!   `docs/reliability.md` hold the measurements.
//! - Writing a backend: [`KvBackend`] (its `# Contract`) and [`raw`].

// The README's Rust examples still run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use shelf_core::raw;
use shelf_core::raw::{BackendOptions, OpenBackend, Probe};
pub use shelf_core::{
    BatchOp, BoxError, Capabilities, CheckReport, DEFAULT_FACTORIES, Date, DateTime, Error, Flag, KvBackend,
    KvIter, KvPair, KvRange, Link, MemoryBackend, Opaque, OpenError, PYTHON_TAGS, PickleOptions, Protocol,
    PyObject, SharedBytes, Shelf, ShelfOptions, StorageStats, Time, TimeDelta, Transaction, TzInfo, Value,
    ValueError, hash_bucket, to_value,
};
// numpy arrays: the typed value of the mmappickle backend.
pub use shelf_core::{ArrayOrder, NdArray};

#[cfg(feature = "tokio")]
mod asynchronous;
mod foreign;
mod registry;
#[cfg(feature = "tokio")]
pub use asynchronous::{AsyncShelf, TASK_BACKEND, TaskError};

pub use foreign::ForeignFormat;
use foreign::foreign_format;

pub use registry::{BackendInfo, OpenFn, ProbeUrlFn, backends, find_backend, url_backends};

/// Every backend name shelf knows, compiled in or not, so a name whose
/// feature is off gets [`OpenError::BackendDisabled`] rather than "unknown".
pub const KNOWN_BACKENDS: &[&str] =
    &["redb", "sled", "sqlite", "gnu", "dumb", "dir", "redis", "mmappickle", "memory"];

/// Every URL scheme a backend of shelf serves, compiled in or not, with
/// the backend's name, so a URL whose backend's feature is off gets
/// [`OpenError::BackendDisabled`] rather than being taken for a path.
pub const KNOWN_SCHEMES: &[(&str, &str)] = &[("redis", "redis"), ("rediss", "redis")];

/// Where a database is: a path, or a URL whose scheme a backend claims
/// (`redis://host:6379/0?namespace=app`). Every function that takes a path
/// ([`open`], [`OpenOptions::open`], [`whichdb`]) takes a URL in the same
/// argument and tells them apart with [`Location::new`]. Displays without
/// credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A file or directory.
    Path(PathBuf),
    /// A URL of a backend's scheme.
    Url {
        /// The scheme, such as `redis`.
        scheme: String,
        /// The whole URL as given (credentials included: never shown).
        url: String,
    },
}

impl Location {
    /// A URL when `path` is UTF-8 of the form `SCHEME://...` with a scheme
    /// in [`KNOWN_SCHEMES`] or claimed by a compiled-in backend; a path
    /// otherwise (`./redis://x` names a path).
    pub fn new(path: impl AsRef<Path>) -> Location {
        let path = path.as_ref();
        if let Some(text) = path.to_str()
            && let Some((scheme, _)) = text.split_once("://")
            && (KNOWN_SCHEMES.iter().any(|(s, _)| *s == scheme)
                || url_backends().iter().any(|b| b.schemes.contains(&scheme)))
        {
            let url = stashed(text).unwrap_or_else(|| text.to_owned());
            return Location::Url { scheme: scheme.to_owned(), url };
        }
        Location::Path(path.to_owned())
    }

    /// The form a backend's opener receives: the path, or the URL as a path.
    pub fn as_path(&self) -> &Path {
        match self {
            Location::Path(p) => p,
            Location::Url { url, .. } => Path::new(url),
        }
    }

    /// Whether this is a URL.
    pub fn is_url(&self) -> bool {
        matches!(self, Location::Url { .. })
    }

    /// The compiled-in backend that serves a URL's scheme (`None` for a
    /// path).
    ///
    /// # Errors
    /// [`OpenError::BackendDisabled`] for a known scheme whose backend's
    /// feature is off.
    pub fn url_backend(&self) -> Result<Option<&'static BackendInfo>, OpenError> {
        let Location::Url { scheme, .. } = self else { return Ok(None) };
        if let Some(info) = url_backends().iter().find(|b| b.schemes.contains(&scheme.as_str())) {
            return Ok(Some(info));
        }
        let name = KNOWN_SCHEMES.iter().find(|(s, _)| s == scheme).map_or(scheme.as_str(), |(_, b)| b);
        Err(OpenError::BackendDisabled { name: name.to_owned() })
    }
}

/// Shows the path, or the URL with any `user:password@` as `***@`.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Path(p) => write!(f, "{}", p.display()),
            Location::Url { url, .. } => f.write_str(&redact_url(url)),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Path(p) => f.debug_tuple("Path").field(p).finish(),
            Location::Url { .. } => f.debug_tuple("Url").field(&self.to_string()).finish(),
        }
    }
}

/// URLs whose credentials [`hide_credentials`] took out, by their shown form.
static STASH: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

fn stashed(shown: &str) -> Option<String> {
    let stash = STASH.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    stash.iter().find(|(s, _)| s == shown).map(|(_, full)| full.clone())
}

/// For programs that print the locations they are given (shelf's CLI):
/// returns `location` with its credentials shown as `***@`, and remembers
/// the whole URL so that opening the returned form in this process
/// ([`Location::new`], hence [`open`], [`whichdb`]) uses the credentials.
/// Every message that quotes the returned form is then free of them. A
/// path, or a URL without credentials, comes back unchanged.
pub fn hide_credentials(location: &str) -> String {
    let shown = redact_url(location);
    if shown != location && Location::new(location).is_url() {
        let mut stash = STASH.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        stash.retain(|(s, _)| *s != shown);
        stash.push((shown.clone(), location.to_owned()));
        return shown;
    }
    location.to_owned()
}

/// `url` with its `user:password@` (if any) replaced by `***@`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

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
    /// A format CPython's `dbm.whichdb` names that no backend here opens
    /// (`dbm.ndbm`): [`as_str`](Self::as_str) is CPython's name for it, and
    /// opening it is [`OpenError::UnsupportedFormat`] with a command that
    /// converts it.
    Unsupported(ForeignFormat),
}

impl WhichDb {
    /// The backend name, `"missing"` or `"unknown"`: the word `shelf whichdb`
    /// prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            WhichDb::Missing => "missing",
            WhichDb::Unknown => "unknown",
            WhichDb::Backend(name) => name,
            WhichDb::Unsupported(format) => format.name,
        }
    }
}

/// Which backend's database is at `path`, by each compiled-in backend's own
/// probe (file names, magic bytes), in registry order. Reads only.
///
/// A URL is asked about over the network (see [`whichdb_at`]); when its
/// server does not answer, this answers [`WhichDb::Unknown`].
pub fn whichdb(path: impl AsRef<Path>) -> WhichDb {
    let path = path.as_ref();
    if Location::new(path).is_url() {
        return whichdb_at(path).unwrap_or(WhichDb::Unknown);
    }
    let mut foreign = false;
    for info in backends().iter().filter(|b| b.schemes.is_empty()) {
        match (info.probe)(path) {
            Probe::Mine => return WhichDb::Backend(info.name),
            Probe::Foreign => foreign = true,
            Probe::Absent => {}
        }
    }
    if let Some(format) = foreign_format(path) {
        return WhichDb::Unsupported(format);
    }
    if foreign || path.symlink_metadata().is_ok() { WhichDb::Unknown } else { WhichDb::Missing }
}

/// Like [`whichdb`], but a URL's server that cannot be asked is an error:
/// the backend of its scheme connects (within the URL's timeout, a few
/// seconds by default) and answers whether the URL holds a database
/// ([`WhichDb::Backend`]) or not ([`WhichDb::Missing`]).
///
/// # Errors
/// A URL that does not parse, a server that does not answer, a scheme
/// whose backend is not compiled in.
pub fn whichdb_at(path: impl AsRef<Path>) -> Result<WhichDb, OpenError> {
    let location = Location::new(path);
    let Some(info) = location.url_backend()? else { return Ok(whichdb(location.as_path())) };
    let Location::Url { url, .. } = &location else { return Ok(WhichDb::Unknown) };
    Ok(match (info.probe_url)(url)? {
        Probe::Mine => WhichDb::Backend(info.name),
        Probe::Foreign => WhichDb::Unknown,
        Probe::Absent => WhichDb::Missing,
    })
}

/// Opens the shelf at `path` like Python's `shelve.open(path)`: flag `c`,
/// the protocol the shelf records (else the backend's default), no
/// writeback, the backend detected at the path or, for a new database, the
/// first in the preference order ([`backends`]). `path` may be a URL
/// (see [`Location`]): `shelf::open("redis://127.0.0.1:6379/0?namespace=app")`.
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

    fn shelf_options(&self, location: &Location) -> ShelfOptions {
        let options =
            ShelfOptions::new(self.protocol).writeback(self.writeback).read_only(self.flag == Flag::Read);
        match location {
            Location::Path(path) => options.path(path),
            // Messages name the URL without its credentials.
            Location::Url { .. } => options.path(location.to_string()),
        }
    }

    /// The backend of a URL's scheme; a named backend must be that one.
    fn choose_for_url(&self, location: &Location) -> Result<Option<&'static BackendInfo>, OpenError> {
        let Some(info) = location.url_backend()? else { return Ok(None) };
        if let Some(name) = &self.backend
            && find_backend(name)?.name != info.name
        {
            return Err(OpenError::BackendMismatch {
                path: location.to_string().into(),
                found: info.name.to_owned(),
                requested: name.clone(),
            });
        }
        Ok(Some(info))
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
            WhichDb::Unsupported(f) => Err(OpenError::UnsupportedFormat {
                path: path.to_owned(),
                format: f.name,
                hint: f.conversion_hint(path),
            }),
            WhichDb::Missing if !self.flag.creates() => {
                Err(OpenError::NotFound { path: path.to_owned(), flag: self.flag.as_char() })
            }
            WhichDb::Missing => backends().iter().find(|b| b.schemes.is_empty()).ok_or_else(|| {
                OpenError::UnknownBackend { name: "(default)".into(), available: String::new() }
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
        let location = Location::new(path);
        let info = match self.choose_for_url(&location)? {
            Some(info) => info,
            None => self.choose(location.as_path())?,
        };
        let backend = (info.open)(location.as_path(), &self.backend_options())?;
        Shelf::new(backend, self.shelf_options(&location))
    }

    /// Opens the shelf at `path` with the backend type `B`, chosen
    /// statically: no registry, no boxing.
    ///
    /// # Errors
    /// As [`open`](Self::open), less the registry's errors.
    pub fn open_as<B: OpenBackend>(&self, path: impl AsRef<Path>) -> Result<Shelf<B>, OpenError> {
        let location = Location::new(path);
        let path = location.as_path();
        if B::probe(path) == Probe::Foreign {
            return Err(OpenError::Undetectable { path: path.to_owned() });
        }
        let backend = B::open(path, &self.backend_options())?;
        Shelf::new(backend, self.shelf_options(&location))
    }
}

#[cfg(test)]
mod location_tests {
    use super::*;

    #[test]
    fn urls_of_known_schemes_are_urls_and_the_rest_paths() {
        assert!(Location::new("redis://127.0.0.1:6379/0?namespace=app").is_url());
        assert!(!Location::new("./redis://x").is_url());
        assert!(!Location::new("ftp://host/x").is_url(), "no backend claims ftp");
        assert!(!Location::new("/tmp/db").is_url());
        let loc = Location::new("redis://user:pw@h:1/0?namespace=a");
        assert_eq!(loc.to_string(), "redis://***@h:1/0?namespace=a");
        assert!(!format!("{loc:?}").contains("pw"));
    }

    #[test]
    fn hidden_credentials_are_used_but_never_shown() {
        let shown = hide_credentials("redis://u:secret@h:2/0?namespace=b");
        assert_eq!(shown, "redis://***@h:2/0?namespace=b");
        let Location::Url { url, .. } = Location::new(&shown) else { panic!("not a URL") };
        assert_eq!(url, "redis://u:secret@h:2/0?namespace=b");
        assert_eq!(hide_credentials("/a/path"), "/a/path");
    }
}
