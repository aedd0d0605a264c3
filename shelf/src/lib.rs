#![doc = include_str!("../../README.md")]

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

mod foreign;
mod registry;

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
