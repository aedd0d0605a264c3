//! The byte-level contract every storage engine implements.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, OpenError};

/// A key-value pair as stored: raw key bytes and raw value bytes.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// An iterator over a backend's entries. Each item may fail on its own (an
/// engine can hit an I/O error half-way through a scan).
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<KvPair, Error>> + 'a>;

/// An iterator over a backend's keys, streamed where the engine can (a
/// million keys, or a remote store, are never held in memory at once by the
/// contract itself). Each item may fail on its own, as in [`KvIter`].
pub type KvKeys<'a> = Box<dyn Iterator<Item = Result<Vec<u8>, Error>> + 'a>;

/// An ordered range of entries that can be walked from both ends.
pub type KvRange<'a> = Box<dyn DoubleEndedIterator<Item = Result<KvPair, Error>> + 'a>;

/// What a backend can do, as data: callers and the conformance suite consult
/// this instead of matching on backend names (the idea of OpenDAL's
/// `Capability`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Data survives the process: reopening the same path after
    /// [`KvBackend::flush`] sees it. False for the memory backend.
    pub persistent: bool,
    /// Keys are kept in byte order and [`KvBackend::range`] works.
    pub ordered_keys: bool,
    /// [`KvBackend::metadata`] and [`KvBackend::set_metadata`] work, so a shelf
    /// can record its protocol.
    pub metadata: bool,
    /// The store is a Python format (dbm.dumb, pickleshare) whose values are
    /// pickles when no protocol is recorded.
    pub python_format: bool,
    /// Several processes may open the database at once, writers included.
    pub multi_process: bool,
    /// [`KvBackend::apply_batch`] is all-or-nothing.
    pub atomic_batch: bool,
    /// [`KvBackend::compact`] works.
    pub compact: bool,
    /// [`KvBackend::check`] works.
    pub check: bool,
    /// [`KvBackend::commit_number`] works.
    pub commit_number: bool,
    /// Keys must be relative paths: UTF-8, not empty, no empty, `.` or `..`
    /// components, no NUL, no leading or trailing `/`. Other keys are
    /// refused with [`Error::InvalidKey`]. False where any bytes are a key.
    pub path_keys: bool,
    /// [`KvBackend::insert_with_ttl`] works: entries can expire on their own,
    /// through the engine's native expiry.
    pub expiry: bool,
}

impl Capabilities {
    /// No capabilities at all; set fields from here (the struct is
    /// `#[non_exhaustive]`, so other crates cannot use a struct literal).
    pub const NONE: Capabilities = Capabilities {
        persistent: false,
        ordered_keys: false,
        metadata: false,
        python_format: false,
        multi_process: false,
        atomic_batch: false,
        compact: false,
        check: false,
        commit_number: false,
        path_keys: false,
        expiry: false,
    };

    /// Every capability by its field name, with its value, in declaration
    /// order: what `shelf info` lists. The destructuring below names every
    /// field, so a capability added to the struct without a name here does
    /// not compile.
    pub fn fields(&self) -> [(&'static str, bool); 11] {
        let Capabilities {
            persistent,
            ordered_keys,
            metadata,
            python_format,
            multi_process,
            atomic_batch,
            compact,
            check,
            commit_number,
            path_keys,
            expiry,
        } = *self;
        [
            ("persistent", persistent),
            ("ordered_keys", ordered_keys),
            ("metadata", metadata),
            ("python_format", python_format),
            ("multi_process", multi_process),
            ("atomic_batch", atomic_batch),
            ("compact", compact),
            ("check", check),
            ("commit_number", commit_number),
            ("path_keys", path_keys),
            ("expiry", expiry),
        ]
    }

    /// The names of the capabilities that are on, in declaration order.
    pub fn enabled(&self) -> impl Iterator<Item = &'static str> {
        self.fields().into_iter().filter(|(_, on)| *on).map(|(name, _)| name)
    }
}

/// How to open a database: CPython dbm's flags.
///
/// Mirrors `dbm.open(file, flag)` in CPython's `Lib/dbm/__init__.py`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flag {
    /// `r`: read-only; a missing database is an error and nothing is created.
    Read,
    /// `w`: read-write; a missing database is an error.
    Write,
    /// `c`: read-write, created if missing. An existing file of unknown type
    /// is an error, never overwritten.
    #[default]
    Create,
    /// `n`: read-write, always starting empty.
    New,
}

impl Flag {
    /// The one-letter form, as dbm spells it.
    pub fn as_char(self) -> char {
        match self {
            Flag::Read => 'r',
            Flag::Write => 'w',
            Flag::Create => 'c',
            Flag::New => 'n',
        }
    }

    /// Whether this flag allows writes.
    pub fn is_writable(self) -> bool {
        self != Flag::Read
    }

    /// Whether this flag creates a missing database.
    pub fn creates(self) -> bool {
        matches!(self, Flag::Create | Flag::New)
    }
}

impl FromStr for Flag {
    type Err = OpenError;

    fn from_str(s: &str) -> Result<Self, OpenError> {
        match s {
            "r" => Ok(Flag::Read),
            "w" => Ok(Flag::Write),
            "c" => Ok(Flag::Create),
            "n" => Ok(Flag::New),
            other => Err(OpenError::InvalidFlag(other.to_owned())),
        }
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// Options every backend's `open` receives. Backends ignore what does not
/// apply to them and refuse, with [`OpenError::Unsupported`], what they
/// cannot honour.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackendOptions {
    /// The dbm flag. The backend applies it to its own files: `r`/`w` fail
    /// with [`OpenError::NotFound`] when nothing is there, `n` starts empty.
    pub flag: Flag,
    /// Permission bits for created files, before the umask (dbm's default
    /// is `0o666`).
    pub mode: u32,
    /// How long to wait for another process's lock; `None` fails at once
    /// with [`OpenError::Locked`].
    pub lock_timeout: Option<Duration>,
    /// Share the database between processes, where the backend can.
    pub multi_process: bool,
    /// Open a damaged database anyway, skipping what cannot be read, so that
    /// [`KvBackend::check`] can report it and repair what is left. Backends
    /// without such a mode ignore it (their `open` fails on damage).
    pub salvage: bool,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            flag: Flag::Create,
            mode: 0o666,
            lock_timeout: None,
            multi_process: false,
            salvage: false,
        }
    }
}

/// How long a backend retries a lock when no timeout is asked for.
///
/// "At once" still allows this grace: a lock released by a close can linger
/// for a moment in a child the process is forking (the child holds the
/// descriptor until its exec closes it), which would otherwise make a
/// close-then-reopen fail spuriously in a program that spawns processes.
pub const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

impl BackendOptions {
    /// The instant until which a backend retries a held lock: the lock
    /// timeout, and never less than [`LOCK_GRACE`].
    pub fn lock_deadline(&self) -> std::time::Instant {
        std::time::Instant::now() + self.lock_timeout.unwrap_or(LOCK_GRACE).max(LOCK_GRACE)
    }

    /// Options with the given flag and defaults for the rest.
    pub fn with_flag(flag: Flag) -> Self {
        BackendOptions { flag, ..Self::default() }
    }
}

/// A stored value handed out without copying where the backend can: a
/// shared slice of a memory map, kept alive by reference counting, or an
/// owned buffer elsewhere. Derefs to `[u8]`.
#[derive(Clone)]
pub struct SharedBytes {
    owner: std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    end: usize,
}

impl SharedBytes {
    /// `owner.as_ref()[start..end]`, without copying.
    ///
    /// # Errors
    /// When the range is not within the owner's bytes (returned as the
    /// owner's length, for the caller's message).
    pub fn slice_of(
        owner: std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>,
        start: usize,
        end: usize,
    ) -> Result<Self, usize> {
        let len = (*owner).as_ref().len();
        if start <= end && end <= len { Ok(SharedBytes { owner, start, end }) } else { Err(len) }
    }

    /// Whether the bytes are shared with their owner (not a private copy).
    pub fn is_shared(&self) -> bool {
        std::sync::Arc::strong_count(&self.owner) > 1
    }
}

impl From<Vec<u8>> for SharedBytes {
    fn from(v: Vec<u8>) -> Self {
        let end = v.len();
        SharedBytes { owner: std::sync::Arc::new(v), start: 0, end }
    }
}

impl std::ops::Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.start..self.end]
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBytes").field("len", &(self.end - self.start)).finish()
    }
}

impl PartialEq for SharedBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

/// What a backend's probe found at a path (for `whichdb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Nothing of this backend's is at the path.
    Absent,
    /// A database of this backend is at the path.
    Mine,
    /// Something is at the place this backend would use, but it is not a
    /// database of this backend (so it must not be overwritten).
    Foreign,
}

/// One operation of an atomic batch (see [`KvBackend::apply_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOp<'a> {
    /// Insert or overwrite a key.
    Insert(&'a [u8], &'a [u8]),
    /// Remove a key if present.
    Remove(&'a [u8]),
}

/// What [`KvBackend::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Entries that are sound.
    pub good_entries: u64,
    /// One line per problem, naming the file and the line or offset.
    pub problems: Vec<String>,
    /// Whether the problems were repaired (only with `repair = true`).
    pub repaired: bool,
    /// The keys a repair dropped because their entries could not be
    /// salvaged (empty when nothing was dropped or nothing was repaired).
    /// A key whose own bytes were lost cannot be named and is counted in
    /// [`problems`](Self::problems) only.
    pub dropped_keys: Vec<Vec<u8>>,
}

impl CheckReport {
    /// A report with the given counts and problems.
    pub fn new(good_entries: u64, problems: Vec<String>, repaired: bool) -> Self {
        CheckReport { good_entries, problems, repaired, dropped_keys: Vec::new() }
    }

    /// The same report, naming the keys a repair dropped.
    pub fn with_dropped_keys(mut self, keys: Vec<Vec<u8>>) -> Self {
        self.dropped_keys = keys;
        self
    }

    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Sizes a backend knows about its storage (for `shelf info`). What a
/// backend does not know is `None`, never a zero that would read as an
/// empty database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageStats {
    /// Bytes used on disk by the database's files, where known.
    pub bytes_on_disk: Option<u64>,
    /// Bytes that [`KvBackend::compact`] could give back, where known.
    pub reclaimable_bytes: Option<u64>,
    /// The files that make up the database (empty where unknown).
    pub files: Vec<PathBuf>,
    /// What a completed [`KvBackend::flush`] survives on this database, in
    /// one sentence (a network server's persistence settings, say), where
    /// the backend knows more than its crate docs state.
    pub durability: Option<String>,
}

impl StorageStats {
    /// Stats with the given figures.
    pub fn new(bytes_on_disk: u64, reclaimable_bytes: Option<u64>, files: Vec<PathBuf>) -> Self {
        StorageStats { bytes_on_disk: Some(bytes_on_disk), reclaimable_bytes, files, durability: None }
    }

    /// The same stats with a durability sentence.
    pub fn with_durability(mut self, durability: impl Into<String>) -> Self {
        self.durability = Some(durability.into());
        self
    }

    /// Nothing known: what [`KvBackend::stats`] answers by default.
    pub fn unknown() -> Self {
        StorageStats::default()
    }
}

/// A byte-oriented key-value store: the one thing a storage engine must
/// provide to carry a [`Shelf`](crate::Shelf).
///
/// The trait is object-safe, so `Box<dyn KvBackend>` works and a backend can
/// be chosen at run time. Every backend is `Send + Sync`: reads take `&self`
/// and run in parallel where the engine allows (a shelf behind an `Arc` in
/// a web service), writes take `&mut self`. It never sees serde: keys and values are bytes.
/// The required methods are the minimum a store needs; the provided ones are
/// optional capabilities that answer [`Error::Unsupported`] unless the
/// backend overrides them and says so in [`Capabilities`].
///
/// # Contract
///
/// Each rule has a conformance test of the same name in the `tests` crate.
///
/// - `get_returns_inserted`: after `insert(k, v)`, `get(k)` MUST return
///   exactly `v`, for any bytes `k` (including the empty key) and `v`
///   (including the empty value); where `capabilities().path_keys` is
///   true, for any relative-path `k`, and any other `k` MUST be refused
///   with [`Error::InvalidKey`].
/// - `get_missing_is_none`: `get` of a key never inserted MUST be `Ok(None)`,
///   not an error.
/// - `insert_overwrites`: inserting an existing key MUST replace its value
///   and MUST NOT change `len`.
/// - `remove_reports_presence`: `remove(k)` MUST return `true` and delete the
///   entry when `k` is present, and `false` with no change when it is not.
/// - `contains_matches_get`: `contains(k)` MUST equal `get(k).is_some()`.
/// - `len_counts_keys`: `len` MUST equal the number of distinct keys present.
/// - `keys_and_iter_agree`: `keys` and `iter` MUST each yield every present
///   key exactly once, `iter` with its current value.
/// - `flush_makes_durable`: for a persistent backend, after `flush` returns,
///   closing and reopening the same path MUST show exactly the entries
///   present at the flush.
/// - `close_is_idempotent`: `close` MUST flush, and a second `close` MUST be
///   `Ok(())`. Other operations after `close` MUST return [`Error::Closed`].
/// - `read_only_refuses_writes`: a backend opened with [`Flag::Read`] MUST
///   refuse `insert`, `remove`, `apply_batch` and `set_metadata` with
///   [`Error::ReadOnly`] and change nothing.
/// - `flag_semantics`: `open` MUST follow dbm's flags: `r` and `w` fail with
///   [`OpenError::NotFound`] on a missing database and create nothing; `c`
///   creates a missing one and keeps an existing one; `n` starts empty.
/// - `metadata_is_separate`: where `capabilities().metadata` is true,
///   metadata MUST persist like data and MUST NOT appear among the keys.
/// - `ordered_range`: where `capabilities().ordered_keys` is true, `range`
///   MUST yield the entries within the bounds in ascending byte order, and
///   in descending order from the back; elsewhere it MUST return
///   [`Error::Unsupported`].
/// - `batch_applies_in_order`: `apply_batch` MUST leave the same state as
///   applying its operations one by one, and where
///   `capabilities().atomic_batch` is true, either all of them or none.
/// - `capabilities_are_honest`: an optional method whose capability is
///   false MUST return [`Error::Unsupported`].
/// - `second_writer_is_locked`: for a persistent backend, while one handle
///   is open for writing, a second writable `open` of the same path MUST
///   fail with [`OpenError::Locked`] once its `lock_timeout` has passed,
///   and change nothing; unless `capabilities().multi_process` is true,
///   where both MUST open and each MUST see the other's flushed writes.
/// - `damaged_files_are_errors_not_panics`: whatever bytes the files of a
///   database hold (zeros, random bytes, a file cut short), `open` with
///   any flag, and `len`, `keys`, `iter`, `get`, `contains` and `stats` on
///   what opens, MUST return errors or data and MUST NOT panic (an engine
///   that panics on damage is shielded with `raw::shield`, which prints
///   nothing).
/// - `check_false_changes_nothing`: where `capabilities().check` is true,
///   `check(false)` MUST leave every file byte-identical (and add none),
///   on a sound database and on a damaged one, and MUST NOT report
///   `repaired`.
/// - `stats_are_honest`: `stats` MUST either say it does not know
///   ([`Error::Unsupported`], or `bytes_on_disk: None` with
///   `reclaimable_bytes: None`) or give figures true of the files on disk:
///   more than zero for a non-empty persistent database, no more than the
///   files ([`OpenBackend::files`] and those `stats` names) hold, with
///   `reclaimable_bytes` no more than `bytes_on_disk`, naming only files
///   that exist.
/// - `get_with_matches_get`: `get_with(k, f)` MUST call `f` once with
///   exactly the bytes `get(k)` returns and answer `true`, or not call it
///   and answer `false` for a missing key.
/// - `get_many_matches_get`: `get_many(keys)` MUST return what `get` of
///   each key returns, in order (duplicates and missing keys included,
///   this handle's unflushed writes included), and [`Error::Closed`] after
///   `close`.
/// - `second_reader_in_one_process`: for a persistent backend, while one
///   handle is open for writing, a handle opened with [`Flag::Read`] in
///   the same process MUST open (two readers too), see what was flushed
///   before it opened, see later flushes in later reads, and keep working
///   after the writer closes. (Across processes each engine keeps its own
///   rule, stated in its docs.)
/// - `readers_run_beside_a_writer`: a read-only handle shared by several
///   threads (every backend is `Sync`) MUST only ever return whole values
///   of some flushed version while a writer of the same process rewrites
///   and flushes, never an older version after a newer one to one thread.
/// - `expiry_is_honest`: where `capabilities().expiry` is true, an entry
///   stored with [`insert_with_ttl`](KvBackend::insert_with_ttl) MUST be
///   there at once and gone from `get`, `contains`, `len`, `keys` and
///   `iter` after its time; elsewhere `insert_with_ttl` MUST be
///   [`Error::Unsupported`] and store nothing.
/// - `capabilities_match_the_registry`: an open handle's `capabilities()`
///   MUST NOT claim anything [`OpenBackend::CAPABILITIES`] (the registry's
///   `BackendInfo::capabilities`) does not, whatever the flag or options
///   it was opened with.
///
/// A backend SHOULD make `get` cheap (no file opened per call) and SHOULD
/// batch unsynced writes rather than commit each durably.
pub trait KvBackend: Send + Sync {
    /// The backend's registry name, such as `"redb"`.
    fn name(&self) -> &'static str;

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// The value stored under `key`, or `None`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error>;

    /// Whether `key` is present.
    fn contains(&self, key: &[u8]) -> Result<bool, Error>;

    /// Stores `value` under `key`, replacing any previous value. Visible to
    /// this handle at once; durable after [`flush`](Self::flush).
    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error>;

    /// Removes `key`; returns whether it was present.
    fn remove(&mut self, key: &[u8]) -> Result<bool, Error>;

    /// The number of keys.
    fn len(&self) -> Result<usize, Error>;

    /// Whether there are no keys.
    fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Every key, in the backend's natural order (byte order where ordered,
    /// insertion order for dumb), streamed where the engine can.
    fn keys(&self) -> Result<KvKeys<'_>, Error>;

    /// Every entry, in the same order as [`keys`](Self::keys).
    fn iter(&self) -> Result<KvIter<'_>, Error>;

    /// Makes every write so far durable: the durability point.
    fn flush(&mut self) -> Result<(), Error>;

    /// Flushes and releases the database (files, locks). Idempotent.
    fn close(&mut self) -> Result<(), Error>;

    /// A metadata value kept apart from the keys (the shelf's protocol, for
    /// one). `Ok(None)` when unset or when the backend keeps no metadata.
    fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Sets a metadata value; [`Error::Unsupported`] where
    /// `capabilities().metadata` is false.
    fn set_metadata(&mut self, name: &str, value: &[u8]) -> Result<(), Error>;

    /// Applies `ops` in order; all-or-nothing where
    /// `capabilities().atomic_batch` is true.
    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error>;

    /// Entries whose keys lie within the bounds, in ascending byte order
    /// (descending from the back). Only where `ordered_keys` is true.
    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        let _ = (lower, upper);
        Err(Error::Unsupported { backend: self.name(), operation: "ordered ranges" })
    }

    /// Rewrites storage to give back space freed by removes and overwrites;
    /// returns the bytes reclaimed. Only where `compact` is true.
    fn compact(&mut self) -> Result<u64, Error> {
        Err(Error::Unsupported { backend: self.name(), operation: "compact" })
    }

    /// Checks the stored files for damage, repairing what it can when
    /// `repair` is true. Only where `check` is true.
    fn check(&mut self, repair: bool) -> Result<CheckReport, Error> {
        let _ = repair;
        Err(Error::Unsupported { backend: self.name(), operation: "check" })
    }

    /// A number that grows whenever any process commits a change, so a
    /// reader can tell cheaply that its view is stale. Only where
    /// `commit_number` is true.
    fn commit_number(&self) -> Result<u64, Error> {
        Err(Error::Unsupported { backend: self.name(), operation: "commit numbers" })
    }

    /// Hands the value of `key` to `f` without copying it where the backend
    /// can (a borrowed view of its memory map or of the engine's value
    /// guard, valid only during the call); returns whether the key is
    /// present (`f` is not called when it is not). What `Shelf::get`
    /// decodes from, so a read allocates only the decoded value. The
    /// default copies through [`get`](Self::get).
    fn get_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, Error> {
        match self.get(key)? {
            Some(v) => {
                f(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The values of `keys`, in the same order: one round trip per node for
    /// a network backend, one lock or buffer pass for a file backend where
    /// it overrides this (the default gets them one by one).
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Stores `value` under `key` to expire after `ttl`, through the
    /// engine's native expiry. Only where `capabilities().expiry` is true.
    fn insert_with_ttl(&mut self, key: &[u8], value: &[u8], ttl: Duration) -> Result<(), Error> {
        let _ = (key, value, ttl);
        Err(Error::Unsupported { backend: self.name(), operation: "expiry" })
    }

    /// Sizes on disk, where the backend knows them
    /// ([`StorageStats::unknown`] by default: `None`, not zero).
    fn stats(&self) -> Result<StorageStats, Error> {
        Ok(StorageStats::unknown())
    }

    /// The value of `key` without copying it, where the backend can (the
    /// dumb backend hands out slices of its memory-mapped data file); a
    /// copy elsewhere.
    fn get_shared(&self, key: &[u8]) -> Result<Option<SharedBytes>, Error> {
        Ok(self.get(key)?.map(SharedBytes::from))
    }
}

/// A backend that can be opened by path: what the facade's registry and
/// static selection (`shelf::OpenOptions::open_as`) need from a backend type.
pub trait OpenBackend: KvBackend + Sized + 'static {
    /// The registry name, such as `"redb"`.
    const NAME: &'static str;

    /// What the backend can do, known without opening a database (the
    /// registry carries it, so callers never open a scratch database or
    /// match on names to learn it). An open handle's
    /// [`KvBackend::capabilities`] may be narrower where an option turns a
    /// capability on (redb's `multi_process`), never wider.
    const CAPABILITIES: Capabilities;

    /// Opens (or creates, per `options.flag`) the database at `path`.
    ///
    /// # Errors
    /// [`OpenError::NotFound`] for `r`/`w` on a missing database,
    /// [`OpenError::Locked`], [`OpenError::Undetectable`] for a foreign file,
    /// and engine errors.
    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError>;

    /// What is at `path`, for `whichdb`. Must not create or change anything.
    fn probe(path: &Path) -> Probe;

    /// The files and directories that make up a database at `path`, in the
    /// order a move must follow: moving the last one is what makes the
    /// database detectable (dbm.dumb's `.dir` after its `.dat`). Whole-database
    /// operations (`shelf convert`, `load` into a new database) build under
    /// a temporary name and move these into place only when complete.
    fn files(path: &Path) -> Vec<PathBuf> {
        vec![path.to_owned()]
    }
}

/// Forwards every method, the provided ones too: the lint makes a method
/// added to the trait without a forward here a compile error, so a boxed
/// backend never silently falls back to a default (object_store's
/// `as_ref_impl!` does the same).
#[deny(clippy::missing_trait_methods)]
impl<B: KvBackend + ?Sized> KvBackend for Box<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        (**self).get(key)
    }
    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        (**self).contains(key)
    }
    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        (**self).insert(key, value)
    }
    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        (**self).remove(key)
    }
    fn len(&self) -> Result<usize, Error> {
        (**self).len()
    }
    fn is_empty(&self) -> Result<bool, Error> {
        (**self).is_empty()
    }
    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        (**self).keys()
    }
    fn iter(&self) -> Result<KvIter<'_>, Error> {
        (**self).iter()
    }
    fn flush(&mut self) -> Result<(), Error> {
        (**self).flush()
    }
    fn close(&mut self) -> Result<(), Error> {
        (**self).close()
    }
    fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        (**self).metadata(name)
    }
    fn set_metadata(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        (**self).set_metadata(name, value)
    }
    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        (**self).apply_batch(ops)
    }
    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        (**self).range(lower, upper)
    }
    fn compact(&mut self) -> Result<u64, Error> {
        (**self).compact()
    }
    fn check(&mut self, repair: bool) -> Result<CheckReport, Error> {
        (**self).check(repair)
    }
    fn commit_number(&self) -> Result<u64, Error> {
        (**self).commit_number()
    }
    fn get_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, Error> {
        (**self).get_with(key, f)
    }
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        (**self).get_many(keys)
    }
    fn insert_with_ttl(&mut self, key: &[u8], value: &[u8], ttl: Duration) -> Result<(), Error> {
        (**self).insert_with_ttl(key, value, ttl)
    }
    fn stats(&self) -> Result<StorageStats, Error> {
        (**self).stats()
    }
    fn get_shared(&self, key: &[u8]) -> Result<Option<SharedBytes>, Error> {
        (**self).get_shared(key)
    }
}
