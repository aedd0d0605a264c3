//! The redb backend of shelf: one [redb](https://docs.rs/redb) database
//! file, with keys kept in byte order.
//!
//! ## Capabilities
//! Persistent, ordered keys ([`KvBackend::range`] streams from the file),
//! metadata, atomic batches, compaction ([`Database::compact`]), integrity
//! checks ([`Database::check_integrity`]) and commit numbers. Keys and
//! values are any bytes, the empty key and the empty value included. With
//! [`BackendOptions::multi_process`] the file is opened in redb's
//! [`ConcurrencyMode::MultiWriter`], so several processes may read and write
//! it at once (each sees the others' writes once they are flushed); without
//! it one handle holds the file alone and a second open fails with
//! [`OpenError::Locked`]. Flag `r` opens the file read-only: several readers
//! may share it, a writer excludes them.
//!
//! ## On-disk format
//! A plain redb 4 file (it starts with redb's magic number, which
//! [`probe`] looks for; redb locks the file itself, so no other file is
//! ever made beside it). Two tables, both `&[u8] -> &[u8]`:
//! - `shelf`: the entries, key bytes to stored value;
//! - `shelf_meta`: the metadata, the name's UTF-8 bytes to the stored
//!   value, plus the commit number under the key [`COMMIT_KEY`] (eight
//!   little-endian bytes) and the format record under [`FORMAT_KEY`],
//!   neither of which is UTF-8, so they never collide with a name.
//!
//! In the current format (the format record holds [`FORMAT_SEALED`],
//! written when the file is created) every stored value, entries and
//! metadata alike, is the value followed by a checksum over its key and
//! value ([`shelf_core::raw::seal`]: CRC-32, four little-endian bytes).
//! A file written before checksums has no format record and plain values:
//! it stays readable and writable as it is (its values are not rewritten;
//! flag `n` in single-process mode starts it afresh in the current format,
//! and `shelf convert` copies it into a new file). A file without a format
//! record whose commit number or first or last entry carries a valid seal
//! lost its record to damage and is refused with [`OpenError::Corrupted`].
//!
//! Any redb program can read the file with those two table definitions.
//!
//! ## Damage
//! For a file in the current format:
//! - a read never returns a changed value: a value (or its key) that does
//!   not match its checksum is [`Error::Corrupted`] naming the key;
//! - a listing over every key (`iter`, `keys`, `range` unbounded at both
//!   ends) that ends must have yielded as many entries as redb's count of
//!   the table, in strictly ascending order, or it ends with
//!   [`Error::Corrupted`]: never a shorter list ([`KvBackend::len`] is
//!   redb's count, read in O(1), and not walked; a listing checks it);
//! - a get that misses is confirmed by a range seek; a damaged branch page
//!   can still make a get on a read-only handle miss a present key (redb
//!   verifies branch checksums only at a writable open and in `check`);
//! - a writable open verifies every page checksum of redb's
//!   ([`Builder::set_check_integrity_on_open`]; about 10 ms for a 15 MB
//!   file) and refuses a damaged file with [`OpenError::Corrupted`] or
//!   [`OpenError::Backend`];
//! - a panic inside redb is caught without printing anything and becomes
//!   [`Error::Corrupted`] (or [`OpenError::Corrupted`]) with redb's message.
//!
//! [`KvBackend::check`] with `repair = false` only reads: it walks the file
//! verifying every checksum, the order and the counts (redb's own check
//! repairs, so it runs only with `repair = true`, which then also drops
//! the entries whose checksum fails and names them in
//! [`CheckReport::dropped_keys`]).
//!
//! ## Durability
//! Writes go to an in-memory overlay that every read of this handle
//! consults first, so they are visible at once and cost no I/O. They reach
//! the file in one write transaction: at [`KvBackend::flush`] (and
//! [`KvBackend::close`]) a durable one ([`Durability::Immediate`], fsynced
//! before `flush` returns), and earlier whenever the overlay outgrows its
//! bound ([`DEFAULT_OVERLAY_BYTES`] bytes of keys and values or
//! [`DEFAULT_OVERLAY_OPS`] entries, see [`RedbBackend::set_overlay_bound`])
//! a non-durable one ([`Durability::None`]; in multi-process mode, where redb
//! refuses non-durable commits, a durable one). A crash loses what was not
//! flushed, never part of a flush: redb's commits are all-or-nothing, and a
//! batch ([`KvBackend::apply_batch`]) always lands in a single commit.
//! redb recovers an interrupted file on the next writable open.
//!
//! ## Reads and other details
//! Reads of a single-process handle share one cached read transaction,
//! dropped at every commit; in multi-process mode each read takes a fresh
//! one, so other processes' flushed writes show at once. `len` is
//! O(1) in single-process mode and O(pending writes) in multi-process mode.
//! Flag `n` deletes the entries and the metadata in one durable commit (the
//! commit number keeps growing). A created file gets `options.mode` (less
//! the umask).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::ops::Bound;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redb::{
    Builder, ConcurrencyMode, Database, DatabaseError, Durability, ReadOnlyDatabase, ReadOnlyTable,
    ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, StorageError, TableDefinition,
    TableError,
};
use shelf_core::raw::{self, Shielded, Walk};
use shelf_core::raw::{BackendOptions, OpenBackend, Probe, range_is_empty, show_key};
use shelf_core::{
    BatchOp, Capabilities, CheckReport, Error, Flag, KvBackend, KvIter, KvPair, KvRange, OpenError,
    StorageStats,
};

/// The engine, re-exported so a program (or a test) can open the file with
/// the very version this backend writes.
pub use redb;

/// The backend's registry name.
pub const NAME: &str = "redb";

/// The table of entries.
const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shelf");

/// The table of metadata and the commit number.
const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shelf_meta");

/// The key of the commit number in the `shelf_meta` table: not UTF-8, so no
/// metadata name can take it.
pub const COMMIT_KEY: &[u8] = b"\xffshelf:commit";

/// The key of the format record in the `shelf_meta` table (not UTF-8, like
/// [`COMMIT_KEY`]): present, sealed, with the value [`FORMAT_SEALED`] in a
/// file whose values carry checksums; absent in a file written before them.
pub const FORMAT_KEY: &[u8] = b"\xffshelf:format";

/// The format whose every stored value (entries and metadata) ends with a
/// checksum ([`shelf_core::raw::seal`]).
pub const FORMAT_SEALED: &[u8] = b"2";

/// The first bytes of every redb file (redb's `MAGICNUMBER`).
pub const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Default bound of the write overlay, in bytes of keys and values: past
/// it, the pending writes are committed (not durably) to the file.
pub const DEFAULT_OVERLAY_BYTES: usize = 64 << 20;

/// Default bound of the write overlay, in entries: past it, the pending
/// writes are committed (not durably) to the file.
pub const DEFAULT_OVERLAY_OPS: usize = 1_000_000;

/// Bytes counted per overlay entry on top of its key and value, for the
/// map's own bookkeeping.
const ENTRY_OVERHEAD: usize = 48;

/// How long to sleep between two attempts on a locked file.
const LOCK_RETRY: Duration = Duration::from_millis(20);

type Table = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Where a pending value lies in the overlay's arena.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
}

/// The pending writes: each key's new value (`None` for a remove), the
/// values kept end to end in one arena so a write costs no allocation of
/// its own. An overwrite that fits reuses its value's place; a longer one
/// is appended (the arena counts toward the bound, so it stays bounded).
#[derive(Debug, Default)]
struct Overlay {
    map: BTreeMap<Vec<u8>, Option<Span>>,
    arena: Vec<u8>,
    key_bytes: usize,
}

impl Overlay {
    fn slice(&self, span: Span) -> &[u8] {
        &self.arena[span.start..span.start + span.len]
    }

    /// `Some(value or None for a remove)` when the overlay holds `key`.
    fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.map.get(key).map(|s| s.map(|s| self.slice(s)))
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Memory held, as counted against the bound.
    fn bytes(&self) -> usize {
        self.arena.len() + self.key_bytes + self.map.len() * ENTRY_OVERHEAD
    }

    fn clear(&mut self) {
        self.map.clear();
        self.arena.clear();
        self.key_bytes = 0;
    }

    fn push(arena: &mut Vec<u8>, v: &[u8]) -> Span {
        let start = arena.len();
        arena.extend_from_slice(v);
        Span { start, len: v.len() }
    }

    /// Records a write; `in_db` tells, for a key new to the overlay, whether
    /// the file holds it. Returns the change in the number of keys.
    fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        in_db: impl FnOnce() -> Result<bool, Error>,
    ) -> Result<isize, Error> {
        use std::collections::btree_map::Entry;
        match self.map.entry(key.to_vec()) {
            Entry::Occupied(mut e) => {
                let old = *e.get();
                let new = match (old, value) {
                    (Some(old), Some(v)) if v.len() <= old.len => {
                        self.arena[old.start..old.start + v.len()].copy_from_slice(v);
                        Some(Span { start: old.start, len: v.len() })
                    }
                    (_, Some(v)) => Some(Self::push(&mut self.arena, v)),
                    (_, None) => None,
                };
                *e.get_mut() = new;
                Ok(value.is_some() as isize - old.is_some() as isize)
            }
            Entry::Vacant(e) => {
                let in_db = in_db()?;
                self.key_bytes += key.len();
                e.insert(value.map(|v| Self::push(&mut self.arena, v)));
                Ok(value.is_some() as isize - in_db as isize)
            }
        }
    }
}

/// What reads need of the backend, borrowed apart from the overlay so a
/// write can look the file up while it holds the overlay.
struct Reader<'a> {
    handle: Option<&'a Handle>,
    cache: &'a Mutex<Option<Snapshot>>,
    multi_process: bool,
    sealed: bool,
    format_pending: bool,
    path: &'a Path,
}

impl Reader<'_> {
    fn fresh_snapshot(&self) -> Result<Snapshot, Error> {
        let handle = self.handle.ok_or(Error::Closed)?;
        let txn = handle.begin_read().map_err(err("begin a read transaction"))?;
        let data = table_or_none(txn.open_table(DATA))?;
        let meta = table_or_none(txn.open_table(META))?;
        // A read-only handle opened on a blank file learns its format from
        // the first snapshot that has one (another process initialised it).
        let sealed = self.sealed
            || (self.format_pending
                && match &meta {
                    Some(m) => m.get(FORMAT_KEY).map_err(err("read the format"))?.is_some(),
                    None => false,
                });
        if data.is_none() && sealed {
            // Created with the file and never deleted since (flag `n`
            // recreates it in the same commit).
            return Err(Error::Corrupted {
                path: self.path.to_owned(),
                detail: "redb no longer finds the table of entries".to_owned(),
            });
        }
        Ok(Snapshot { data, meta, sealed })
    }

    /// Runs `f` on a snapshot of the file: the cached one, or a fresh one in
    /// multi-process mode. A panic inside redb (a file damaged outside redb
    /// can make it index out of a page) becomes [`Error::Corrupted`].
    fn with_snapshot<T>(&self, f: impl FnOnce(&Snapshot) -> Result<T, Error>) -> Result<T, Error> {
        if self.multi_process {
            return shield(self.path, "read", || f(&self.fresh_snapshot()?));
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let result = shield(self.path, "read", || {
            if cache.is_none() {
                *cache = Some(self.fresh_snapshot()?);
            }
            match cache.as_ref() {
                Some(snap) => f(snap),
                None => f(&self.fresh_snapshot()?),
            }
        });
        if matches!(result, Err(Error::Corrupted { .. })) {
            *cache = None;
        }
        result
    }
}

/// A read snapshot of the file: the two tables, or `None` where a table does
/// not exist yet.
struct Snapshot {
    data: Option<Table>,
    meta: Option<Table>,
    /// Whether the file's values carry checksums.
    sealed: bool,
}

/// What a file's format record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Values carry checksums.
    Sealed,
    /// Written before checksums: plain values.
    Unsealed,
    /// No table yet: nothing was ever committed.
    Blank,
}

/// The open redb handle: writable, or read-only (flag `r`).
enum Handle {
    Rw(Database),
    Ro(ReadOnlyDatabase),
}

impl Handle {
    fn begin_read(&self) -> Result<ReadTransaction, redb::TransactionError> {
        match self {
            Handle::Rw(db) => db.begin_read(),
            Handle::Ro(db) => db.begin_read(),
        }
    }
}

/// A shelf backend over one redb file.
///
/// Reads consult the write overlay, then a cached read transaction (a fresh
/// one per read in multi-process mode, so other processes' commits show).
pub struct RedbBackend {
    path: PathBuf,
    handle: Option<Handle>,
    read_only: bool,
    multi_process: bool,
    /// Whether the file's values carry checksums ([`FORMAT_KEY`]).
    sealed: bool,
    /// A read-only handle on a blank file: each snapshot looks for the
    /// format record a writer may have written since.
    format_pending: bool,
    overlay: Overlay,
    meta_overlay: BTreeMap<String, Vec<u8>>,
    /// Keys added minus keys removed by the overlay (single-process mode).
    len_delta: isize,
    /// A non-durable commit happened since the last durable one.
    undurable: bool,
    max_bytes: usize,
    max_ops: usize,
    cache: Mutex<Option<Snapshot>>,
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.path)
            .field("open", &self.handle.is_some())
            .field("read_only", &self.read_only)
            .field("multi_process", &self.multi_process)
            .field("pending", &self.overlay.len())
            .finish()
    }
}

/// What is at `path` for this backend: a file starting with redb's magic
/// number is [`Probe::Mine`]; any other file (an empty one included) or a
/// directory is [`Probe::Foreign`]; nothing is [`Probe::Absent`].
pub fn probe(path: &Path) -> Probe {
    match fs::metadata(path) {
        Err(_) => Probe::Absent,
        Ok(m) if !m.is_file() => Probe::Foreign,
        Ok(_) => {
            let mut head = [0u8; MAGIC.len()];
            match fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)) {
                Ok(()) if head == MAGIC => Probe::Mine,
                _ => Probe::Foreign,
            }
        }
    }
}

/// Why one attempt to open failed.
enum Attempt {
    Locked,
    Failed(OpenError),
}

fn backend_err(operation: &'static str) -> impl FnOnce(redb::Error) -> Error {
    move |e| Error::Backend { backend: NAME, operation, source: Box::new(e) }
}

fn err<E: Into<redb::Error>>(operation: &'static str) -> impl FnOnce(E) -> Error {
    move |e| backend_err(operation)(e.into())
}

fn map_open_error(path: &Path, e: DatabaseError) -> Attempt {
    match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => Attempt::Locked,
        DatabaseError::Storage(StorageError::Corrupted(detail)) => {
            Attempt::Failed(OpenError::Corrupted { path: path.to_owned(), detail })
        }
        DatabaseError::Storage(StorageError::Io(source)) => {
            Attempt::Failed(OpenError::Io { path: path.to_owned(), source })
        }
        other => Attempt::Failed(OpenError::Backend {
            backend: NAME,
            path: path.to_owned(),
            source: Box::new(other),
        }),
    }
}

/// Runs one redb open, turning a panic inside redb into corruption.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, DatabaseError>) -> Result<T, Attempt> {
    match raw::shield(f) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(map_open_error(path, e)),
        Err(message) => Err(Attempt::Failed(OpenError::Corrupted {
            path: path.to_owned(),
            detail: format!("redb could not read the file ({message})"),
        })),
    }
}

/// Runs `f`, turning a panic inside redb into [`Error::Corrupted`] (printing
/// nothing).
fn shield<T>(path: &Path, operation: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    raw::shield(f).unwrap_or_else(|message| Err(corrupted(path, operation, &message)))
}

fn corrupted(path: &Path, operation: &str, message: &str) -> Error {
    Error::Corrupted { path: path.to_owned(), detail: format!("redb failed to {operation}: {message}") }
}

/// The value inside a stored form: checked and stripped of its checksum in
/// a sealed file, as stored in a file written before checksums.
fn opened<'a>(path: &Path, sealed: bool, key: &[u8], stored: &'a [u8]) -> Result<&'a [u8], Error> {
    if !sealed {
        return Ok(stored);
    }
    raw::unseal(key, stored).ok_or_else(|| Error::Corrupted {
        path: path.to_owned(),
        detail: format!("the checksum of key {:?} does not match its bytes", show_key(key)),
    })
}

fn builder(multi_process: bool, verify: bool) -> Builder {
    let mut b = Builder::new();
    b.set_concurrency_mode(if multi_process {
        ConcurrencyMode::MultiWriter
    } else {
        ConcurrencyMode::ExclusiveWriter
    });
    b.set_check_integrity_on_open(verify);
    b
}

fn file_size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn table_or_none(r: Result<Table, TableError>) -> Result<Option<Table>, Error> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(backend_err("open a table")(e.into())),
    }
}

impl RedbBackend {
    /// Opens the redb file at `path` with dbm's flags: `r` and `w` need it to
    /// exist; `c` creates it (with permission bits `options.mode`); `n`
    /// empties an existing one. A file that is not a redb database is never
    /// touched.
    ///
    /// # Errors
    /// [`OpenError::NotFound`] for `r`/`w` on a missing file,
    /// [`OpenError::Undetectable`] for a file or directory that is no redb
    /// database, [`OpenError::Locked`] when another process or handle holds
    /// the file (after waiting `options.lock_timeout`),
    /// [`OpenError::Corrupted`] for a damaged file, and engine errors.
    pub fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        let mut created = false;
        match probe(path) {
            Probe::Foreign => return Err(OpenError::Undetectable { path: path.to_owned() }),
            Probe::Absent if !options.flag.creates() => {
                return Err(OpenError::NotFound { path: path.to_owned(), flag: options.flag.as_char() });
            }
            Probe::Absent => {
                match OpenOptions::new().write(true).create_new(true).mode(options.mode).open(path) {
                    Ok(_) => created = true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(OpenError::io(path, e)),
                }
            }
            Probe::Mine => {}
        }
        let deadline = Some(options.lock_deadline());
        let result = loop {
            match Self::try_open(path, options, created) {
                Ok(b) => break Ok(b),
                Err(Attempt::Failed(e)) => break Err(e),
                Err(Attempt::Locked) => match deadline {
                    Some(d) if Instant::now() < d => {
                        std::thread::sleep(LOCK_RETRY.min(d.saturating_duration_since(Instant::now())));
                    }
                    _ => break Err(OpenError::Locked { path: path.to_owned() }),
                },
            }
        };
        if result.is_err() && created && file_size(path) == 0 {
            let _ = fs::remove_file(path);
        }
        let mut backend = result?;
        let fail = |e: Error| match e {
            Error::Corrupted { path, detail } => OpenError::Corrupted { path, detail },
            e => OpenError::Backend { backend: NAME, path: path.to_owned(), source: Box::new(e) },
        };
        if backend.detect_format().map_err(fail)? == Format::Blank {
            // A new file (or one created and never written, by a crash or
            // by another process an instant ago): the current format.
            if backend.read_only {
                backend.format_pending = true;
            } else {
                backend.init_format().map_err(fail)?;
                backend.detect_format().map_err(fail)?;
            }
        }
        if options.flag == Flag::New && !created {
            // Another handle may be reading the file in multi-process mode,
            // in the format it learnt at its open: keep that one there.
            backend.clear_all(!options.multi_process).map_err(fail)?;
        }
        Ok(backend)
    }

    fn try_open(path: &Path, options: &BackendOptions, created: bool) -> Result<Self, Attempt> {
        let multi = options.multi_process;
        let handle = if options.flag == Flag::Read {
            match guarded(path, || builder(multi, false).open_read_only(path)) {
                Ok(db) => Handle::Ro(db),
                // Not shut down cleanly: a writable open repairs it; writes
                // stay refused.
                Err(Attempt::Failed(OpenError::Backend { .. })) => {
                    Handle::Rw(guarded(path, || builder(multi, true).open(path))?)
                }
                Err(e) => return Err(e),
            }
        } else {
            let db = guarded(path, || {
                if created { builder(multi, false).create(path) } else { builder(multi, true).open(path) }
            })?;
            Handle::Rw(db)
        };
        Ok(RedbBackend {
            path: path.to_owned(),
            handle: Some(handle),
            read_only: options.flag == Flag::Read,
            multi_process: multi,
            // Set by `open` once the file's format is known.
            sealed: false,
            format_pending: false,
            overlay: Overlay::default(),
            meta_overlay: BTreeMap::new(),
            len_delta: 0,
            undurable: false,
            max_bytes: DEFAULT_OVERLAY_BYTES,
            max_ops: DEFAULT_OVERLAY_OPS,
            cache: Mutex::new(None),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the bound of the write overlay: once it holds more than
    /// `max_bytes` bytes of keys and values (plus a small per-entry
    /// overhead) or more than `max_ops` entries, its writes are committed to
    /// the file, not durably (durably in multi-process mode). The defaults
    /// are [`DEFAULT_OVERLAY_BYTES`] and [`DEFAULT_OVERLAY_OPS`].
    ///
    /// # Errors
    /// Errors of the commit the new bound may cause.
    pub fn set_overlay_bound(&mut self, max_bytes: usize, max_ops: usize) -> Result<(), Error> {
        self.max_bytes = max_bytes;
        self.max_ops = max_ops;
        if self.handle.is_some() && !self.read_only {
            self.maybe_spill()?;
        }
        Ok(())
    }

    /// The number of writes waiting in the overlay.
    pub fn pending(&self) -> usize {
        self.overlay.len() + self.meta_overlay.len()
    }

    fn live(&self) -> Result<&Handle, Error> {
        self.handle.as_ref().ok_or(Error::Closed)
    }

    fn writable(&self, operation: &'static str) -> Result<(), Error> {
        self.live()?;
        if self.read_only { Err(Error::ReadOnly { operation }) } else { Ok(()) }
    }

    fn reader(&self) -> Reader<'_> {
        Reader {
            handle: self.handle.as_ref(),
            cache: &self.cache,
            multi_process: self.multi_process,
            sealed: self.sealed,
            format_pending: self.format_pending,
            path: &self.path,
        }
    }

    fn fresh_snapshot(&self) -> Result<Snapshot, Error> {
        self.reader().fresh_snapshot()
    }

    /// Runs `f` on a snapshot of the file (see [`Reader::with_snapshot`]).
    fn with_snapshot<T>(&self, f: impl FnOnce(&Snapshot) -> Result<T, Error>) -> Result<T, Error> {
        self.reader().with_snapshot(f)
    }

    /// Runs `f`, turning a panic inside redb into [`Error::Corrupted`].
    fn shielded<T>(&self, operation: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        shield(&self.path, operation, f)
    }

    fn invalidate(&mut self) {
        *self.cache.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The value of `key` in `table` of `snap`, its checksum verified.
    fn db_get(&self, snap: &Snapshot, table: &Option<Table>, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match table {
            None => Ok(None),
            Some(t) => match t.get(key).map_err(err("read a value"))? {
                Some(g) => Ok(Some(opened(&self.path, snap.sealed, key, g.value())?.to_vec())),
                None if !snap.sealed => Ok(None),
                None => {
                    // A miss is confirmed by a range seek, which steps over
                    // leaf boundaries: a damaged branch page that sends the
                    // lookup to the wrong leaf often shows here (redb checks
                    // branch checksums only at a writable open and `check`).
                    let next = t.range::<&[u8]>(key..).map_err(err("read a value"))?.next();
                    match next.transpose().map_err(err("read a value"))? {
                        Some((k, _)) if k.value() == key => Err(Error::Corrupted {
                            path: self.path.clone(),
                            detail: format!(
                                "redb's index misses key {:?}, which a scan finds: a branch page is damaged",
                                show_key(key)
                            ),
                        }),
                        _ => Ok(None),
                    }
                }
            },
        }
    }

    fn db_contains(table: &Option<Table>, key: &[u8]) -> Result<bool, Error> {
        match table {
            None => Ok(false),
            Some(t) => Ok(t.get(key).map_err(err("read a value"))?.is_some()),
        }
    }

    /// Whether `key` is present now, counting the overlay.
    fn present(&self, key: &[u8]) -> Result<bool, Error> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.is_some()),
            None => self.with_snapshot(|s| Self::db_contains(&s.data, key)),
        }
    }

    /// Puts one write in the overlay (no spill). `known_in_db` saves the
    /// lookup of a key whose presence in the file the caller knows.
    fn stage(&mut self, key: &[u8], value: Option<&[u8]>, known_in_db: Option<bool>) -> Result<(), Error> {
        let multi = self.multi_process;
        let reader = Reader {
            handle: self.handle.as_ref(),
            cache: &self.cache,
            multi_process: multi,
            sealed: self.sealed,
            format_pending: self.format_pending,
            path: &self.path,
        };
        let delta = self.overlay.put(key, value, || match known_in_db {
            Some(b) => Ok(b),
            // Not used: len() resolves every key afresh in this mode.
            None if multi => Ok(false),
            None => reader.with_snapshot(|s| Self::db_contains(&s.data, key)),
        })?;
        self.len_delta += delta;
        Ok(())
    }

    fn maybe_spill(&mut self) -> Result<(), Error> {
        if self.overlay.len() > self.max_ops || self.overlay.bytes() > self.max_bytes {
            self.commit(!self.multi_process)?;
        }
        Ok(())
    }

    /// Writes the overlay to the file in one transaction; `lazy` makes it
    /// non-durable. Does nothing when there is nothing to write and nothing
    /// to make durable.
    fn commit(&mut self, lazy: bool) -> Result<(), Error> {
        let path = self.path.clone();
        shield(&path, "commit", || self.commit_unshielded(lazy))
    }

    fn commit_unshielded(&mut self, lazy: bool) -> Result<(), Error> {
        let changed = !self.overlay.is_empty() || !self.meta_overlay.is_empty();
        if !changed && (lazy || !self.undurable) {
            return Ok(());
        }
        let Some(Handle::Rw(db)) = self.handle.as_ref() else {
            return Err(Error::ReadOnly { operation: "commit" });
        };
        // A cached read transaction would keep the pages this commit frees.
        *self.cache.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
        let mut txn = db.begin_write().map_err(err("begin a write transaction"))?;
        let durability = if lazy { Durability::None } else { Durability::Immediate };
        txn.set_durability(durability).map_err(err("set the durability"))?;
        let sealed = self.sealed;
        let mut buf = Vec::new();
        // The stored form of a value: sealed with its key in a sealed file.
        let mut store = |k: &[u8], v: &'_ [u8]| -> Vec<u8> {
            buf.clear();
            if sealed {
                raw::seal_into(k, v, &mut buf);
            } else {
                buf.extend_from_slice(v);
            }
            std::mem::take(&mut buf)
        };
        {
            let mut data = txn.open_table(DATA).map_err(err("open the data table"))?;
            for (k, span) in &self.overlay.map {
                match span {
                    Some(span) => {
                        let stored = store(k, self.overlay.slice(*span));
                        data.insert(k.as_slice(), stored.as_slice()).map_err(err("insert"))?;
                    }
                    None => {
                        data.remove(k.as_slice()).map_err(err("remove"))?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(err("open the metadata table"))?;
            for (name, v) in &self.meta_overlay {
                let stored = store(name.as_bytes(), v);
                meta.insert(name.as_bytes(), stored.as_slice()).map_err(err("set metadata"))?;
            }
            if changed {
                let current = read_counter(&self.path, sealed, &meta)?;
                let stored = store(COMMIT_KEY, &(current + 1).to_le_bytes());
                meta.insert(COMMIT_KEY, stored.as_slice()).map_err(err("write the commit number"))?;
            }
        }
        txn.commit().map_err(err("commit"))?;
        self.overlay.clear();
        self.meta_overlay.clear();
        self.len_delta = 0;
        self.undurable = lazy;
        Ok(())
    }

    /// Flag `n` (and creation): drops every entry and every metadata value
    /// (the commit number keeps growing), durably, leaving the file in the
    /// sealed format when `seal`, in its current one otherwise.
    fn clear_all(&mut self, seal: bool) -> Result<(), Error> {
        let Some(Handle::Rw(db)) = self.handle.as_ref() else {
            return Err(Error::ReadOnly { operation: "clear" });
        };
        let sealed = self.sealed || seal;
        let txn = db.begin_write().map_err(err("begin a write transaction"))?;
        txn.delete_table(DATA).map_err(err("delete the data table"))?;
        {
            txn.open_table(DATA).map_err(err("create the data table"))?;
            let mut meta = txn.open_table(META).map_err(err("open the metadata table"))?;
            // A damaged counter must not stop a fresh start.
            let current = read_counter(&self.path, self.sealed, &meta).unwrap_or(0);
            meta.retain(|_, _| false).map_err(err("clear the metadata"))?;
            let counter = (current + 1).to_le_bytes();
            let store = |k: &[u8], v: &[u8]| if sealed { raw::seal(k, v) } else { v.to_vec() };
            meta.insert(COMMIT_KEY, store(COMMIT_KEY, &counter).as_slice())
                .map_err(err("write the commit number"))?;
            if sealed {
                meta.insert(FORMAT_KEY, raw::seal(FORMAT_KEY, FORMAT_SEALED).as_slice())
                    .map_err(err("write the format"))?;
            }
        }
        txn.commit().map_err(err("commit"))?;
        self.sealed = sealed;
        self.invalidate();
        Ok(())
    }

    /// Walks every entry and metadata value of the file (not the
    /// overlay), verifying checksums, order and the table's count: the
    /// number of sound entries, one line per problem, and the keys whose
    /// checksum failed.
    #[allow(clippy::type_complexity)]
    fn audit(&self) -> Result<(u64, Vec<String>, Vec<Vec<u8>>), Error> {
        let path = self.path.clone();
        let shown = path.display().to_string();
        let outcome = raw::shield(|| -> Result<_, Error> {
            let snap = self.fresh_snapshot()?;
            let (mut good, mut problems, mut bad) = (0u64, Vec::new(), Vec::new());
            for (table, name) in [(&snap.data, "entries"), (&snap.meta, "metadata")] {
                let Some(t) = table else { continue };
                let expected = t.len().map_err(err("count the entries"))?;
                let (mut seen, mut last): (u64, Option<Vec<u8>>) = (0, None);
                for item in t.iter().map_err(err("read a range"))? {
                    let (k, v) = match item {
                        Ok(pair) => pair,
                        Err(e) => {
                            problems.push(format!("{shown}: redb failed to read the {name}: {e}"));
                            break;
                        }
                    };
                    seen += 1;
                    let key = k.value();
                    if last.as_deref().is_some_and(|l| l >= key) {
                        problems.push(format!("{shown}: {name} out of order at key {:?}", show_key(key)));
                    }
                    last = Some(key.to_vec());
                    if snap.sealed && raw::unseal(key, v.value()).is_none() {
                        problems
                            .push(format!("{shown}: the checksum of key {:?} does not match", show_key(key)));
                        if name == "entries" {
                            bad.push(key.to_vec());
                        }
                    } else if name == "entries" {
                        good += 1;
                    }
                }
                if seen != expected {
                    problems.push(format!("{shown}: the {name} table counts {expected} but holds {seen}"));
                }
            }
            Ok((good, problems, bad))
        });
        outcome.unwrap_or_else(|message| Err(corrupted(&path, "check the file", &message)))
    }

    /// Learns the format of an existing file from its format record. A file
    /// without one was written before checksums, unless its values say
    /// otherwise: a sealed commit number (twelve bytes) or a first entry
    /// whose checksum matches mean the record was lost to damage.
    fn detect_format(&mut self) -> Result<Format, Error> {
        let path = self.path.clone();
        let format = shield(&path, "read the format", || self.read_format())?;
        if format == Format::Sealed {
            self.sealed = true;
            self.invalidate();
        }
        Ok(format)
    }

    /// The file's format (see [`Self::detect_format`]).
    fn read_format(&self) -> Result<Format, Error> {
        let snap = self.fresh_snapshot()?;
        if snap.data.is_none() && snap.meta.is_none() {
            return Ok(Format::Blank);
        }
        let path = &self.path;
        let damaged = |detail: &str| Error::Corrupted { path: path.to_owned(), detail: detail.to_owned() };
        if let Some(meta) = &snap.meta {
            if let Some(g) = meta.get(FORMAT_KEY).map_err(err("read the format"))? {
                return match raw::unseal(FORMAT_KEY, g.value()) {
                    Some(FORMAT_SEALED) => Ok(Format::Sealed),
                    Some(_) => Err(damaged("the format record names a format this version does not know")),
                    None => Err(damaged("the checksum of the format record does not match")),
                };
            }
            let commit = meta.get(COMMIT_KEY).map_err(err("read the commit number"))?;
            if commit.is_some_and(|g| g.value().len() != 8) {
                return Err(damaged("the format record is missing but the commit number is sealed"));
            }
        }
        // The first and the last entry: one flip cannot damage both and
        // the format record.
        if let Some(data) = &snap.data {
            let first = data.first().map_err(err("read the first entry"))?;
            let last = data.last().map_err(err("read the last entry"))?;
            for (k, v) in first.iter().chain(last.iter()) {
                if raw::unseal(k.value(), v.value()).is_some() {
                    return Err(damaged("the format record is missing but the entries carry checksums"));
                }
            }
        }
        Ok(Format::Unsealed)
    }

    /// Writes the format record into a blank file, durably, unless another
    /// handle wrote anything first.
    fn init_format(&mut self) -> Result<(), Error> {
        let Some(Handle::Rw(db)) = self.handle.as_ref() else {
            return Err(Error::ReadOnly { operation: "initialise the file" });
        };
        let path = self.path.clone();
        shield(&path, "initialise the file", || {
            let txn = db.begin_write().map_err(err("begin a write transaction"))?;
            {
                let data = txn.open_table(DATA).map_err(err("create the data table"))?;
                let mut meta = txn.open_table(META).map_err(err("create the metadata table"))?;
                let blank = data.is_empty().map_err(err("count the entries"))?
                    && meta.is_empty().map_err(err("count the metadata"))?;
                if blank {
                    meta.insert(FORMAT_KEY, raw::seal(FORMAT_KEY, FORMAT_SEALED).as_slice())
                        .map_err(err("write the format"))?;
                }
            }
            txn.commit().map_err(err("commit"))
        })?;
        self.invalidate();
        Ok(())
    }

    /// The entries of the file within the bounds, merged with the overlay.
    fn merged<'a>(&'a self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'a>, Error> {
        let db: KvRange<'static> = self.with_snapshot(|s| match &s.data {
            None => Ok(Box::new(std::iter::empty()) as KvRange<'static>),
            Some(t) => {
                let r = t.range::<&[u8]>((lower, upper)).map_err(err("read a range"))?;
                let (path, sealed) = (self.path.clone(), s.sealed);
                let items = r.map(move |item| {
                    let (k, v) = item.map_err(err("read a range"))?;
                    let value = opened(&path, sealed, k.value(), v.value())?.to_vec();
                    Ok((k.value().to_vec(), value))
                });
                let path = self.path.clone();
                let shielded = Shielded::new(items, move |m: String| corrupted(&path, "read a range", &m));
                // A walk over every key must yield as many entries as the
                // table counts: damage that drops entries is an error.
                let whole = matches!((lower, upper), (Bound::Unbounded, Bound::Unbounded));
                let expected = if whole { Some(t.len().map_err(err("count the entries"))?) } else { None };
                let path = self.path.clone();
                let walk = Walk::new(shielded, expected, move |detail| Error::Corrupted {
                    path: path.clone(),
                    detail,
                });
                Ok(Box::new(walk) as KvRange<'static>)
            }
        })?;
        if self.overlay.is_empty() {
            return Ok(db);
        }
        let over = self.overlay.map.range::<[u8], _>((lower, upper));
        Ok(Box::new(Merge {
            db,
            over,
            arena: &self.overlay.arena,
            db_front: None,
            db_back: None,
            over_front: None,
            over_back: None,
        }))
    }
}

/// The commit number stored in `meta` (0 when absent).
fn read_counter(
    path: &Path,
    sealed: bool,
    meta: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<u64, Error> {
    let Some(g) = meta.get(COMMIT_KEY).map_err(err("read the commit number"))? else {
        return Ok(0);
    };
    let bytes = opened(path, sealed, COMMIT_KEY, g.value())?;
    bytes.try_into().map(u64::from_le_bytes).map_err(|_| Error::Corrupted {
        path: path.to_owned(),
        detail: format!("the commit number has {} bytes, not 8", bytes.len()),
    })
}

type OverItem<'a> = (&'a Vec<u8>, &'a Option<Span>);

/// The file's entries merged with the overlay's, in key order from both
/// ends: an overlay entry hides the file's entry of the same key, and an
/// overlay remove hides it altogether.
struct Merge<'a, O> {
    db: KvRange<'static>,
    over: O,
    arena: &'a [u8],
    db_front: Option<Result<KvPair, Error>>,
    db_back: Option<Result<KvPair, Error>>,
    over_front: Option<OverItem<'a>>,
    over_back: Option<OverItem<'a>>,
}

impl<'a, O: DoubleEndedIterator<Item = OverItem<'a>>> Merge<'a, O> {
    fn step(&mut self, forward: bool) -> Option<Result<KvPair, Error>> {
        loop {
            let (db_slot, db_other, over_slot, over_other) = if forward {
                (&mut self.db_front, &mut self.db_back, &mut self.over_front, &mut self.over_back)
            } else {
                (&mut self.db_back, &mut self.db_front, &mut self.over_back, &mut self.over_front)
            };
            if db_slot.is_none() {
                *db_slot =
                    if forward { self.db.next() } else { self.db.next_back() }.or_else(|| db_other.take());
            }
            if over_slot.is_none() {
                *over_slot = if forward { self.over.next() } else { self.over.next_back() }
                    .or_else(|| over_other.take());
            }
            if let Some(Err(_)) = db_slot {
                return db_slot.take();
            }
            let db_key = db_slot.as_ref().and_then(|r| r.as_ref().ok()).map(|(k, _)| k.as_slice());
            let over_key = over_slot.as_ref().map(|(k, _)| k.as_slice());
            let take_over = match (db_key, over_key) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(d), Some(o)) => {
                    if d == o {
                        *db_slot = None;
                        true
                    } else {
                        (o < d) == forward
                    }
                }
            };
            if take_over {
                let (k, span) = over_slot.take()?;
                match span {
                    Some(s) => return Some(Ok((k.clone(), self.arena[s.start..s.start + s.len].to_vec()))),
                    None => continue,
                }
            }
            return db_slot.take();
        }
    }
}

impl<'a, O: DoubleEndedIterator<Item = OverItem<'a>>> Iterator for Merge<'a, O> {
    type Item = Result<KvPair, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

impl<'a, O: DoubleEndedIterator<Item = OverItem<'a>>> DoubleEndedIterator for Merge<'a, O> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl OpenBackend for RedbBackend {
    const NAME: &'static str = NAME;
    const CAPABILITIES: Capabilities = {
        let mut c = Capabilities::NONE;
        c.persistent = true;
        c.ordered_keys = true;
        c.metadata = true;
        c.multi_process = true;
        c.atomic_batch = true;
        c.compact = true;
        c.check = true;
        c.commit_number = true;
        c
    };

    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        RedbBackend::open(path, options)
    }

    fn probe(path: &Path) -> Probe {
        probe(path)
    }
}

impl KvBackend for RedbBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Self::CAPABILITIES;
        // Several processes only in multi-process mode (the overlay is
        // committed and snapshots reopened there).
        c.multi_process = self.multi_process;
        c
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.live()?;
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.map(<[u8]>::to_vec));
        }
        self.with_snapshot(|s| self.db_get(s, &s.data, key))
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        self.live()?;
        self.present(key)
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.writable("insert")?;
        self.stage(key, Some(value), None)?;
        self.maybe_spill()
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.writable("remove")?;
        let (was, in_db) = match self.overlay.get(key) {
            Some(v) => (v.is_some(), None),
            None => {
                let in_db = self.with_snapshot(|s| Self::db_contains(&s.data, key))?;
                (in_db, Some(in_db))
            }
        };
        if !was {
            return Ok(false);
        }
        self.stage(key, None, in_db)?;
        self.maybe_spill()?;
        Ok(true)
    }

    fn len(&self) -> Result<usize, Error> {
        self.live()?;
        if !self.multi_process {
            let base = self.with_snapshot(|s| match &s.data {
                None => Ok(0),
                Some(t) => t.len().map_err(err("count the entries")),
            })?;
            return Ok((base as i128 + self.len_delta as i128).max(0) as usize);
        }
        // Another process may have changed any key since the overlay took
        // it: resolve each against one fresh snapshot.
        self.with_snapshot(|snap| {
            let Some(t) = &snap.data else {
                return Ok(self.overlay.map.values().filter(|s| s.is_some()).count());
            };
            let mut n = t.len().map_err(err("count the entries"))? as i128;
            for (k, span) in &self.overlay.map {
                let in_db = t.get(k.as_slice()).map_err(err("read a value"))?.is_some();
                n += span.is_some() as i128 - in_db as i128;
            }
            Ok(n.max(0) as usize)
        })
    }

    fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    fn keys(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.live()?;
        self.merged(Bound::Unbounded, Bound::Unbounded)?.map(|r| r.map(|(k, _)| k)).collect()
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        self.live()?;
        Ok(Box::new(self.merged(Bound::Unbounded, Bound::Unbounded)?))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.live()?;
        if self.read_only {
            return Ok(());
        }
        self.commit(false)
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.handle.is_none() {
            return Ok(());
        }
        let flushed = if self.read_only { Ok(()) } else { self.commit(false) };
        self.invalidate();
        let closed = match self.handle.take() {
            Some(Handle::Rw(db)) => db.close().map_err(err("close")),
            Some(Handle::Ro(db)) => db.close().map_err(err("close")),
            None => Ok(()),
        };
        self.overlay.clear();
        self.meta_overlay.clear();
        flushed.and(closed)
    }

    fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.live()?;
        if let Some(v) = self.meta_overlay.get(name) {
            return Ok(Some(v.clone()));
        }
        self.with_snapshot(|s| self.db_get(s, &s.meta, name.as_bytes()))
    }

    fn set_metadata(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.writable("set metadata")?;
        self.meta_overlay.insert(name.to_owned(), value.to_vec());
        Ok(())
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        self.writable("apply a batch")?;
        // Every lookup first, so a failure leaves the overlay untouched;
        // the whole batch then lands in one commit.
        let mut known: BTreeMap<&[u8], bool> = BTreeMap::new();
        if !self.multi_process {
            for op in ops {
                let k = match *op {
                    BatchOp::Insert(k, _) | BatchOp::Remove(k) => k,
                };
                if !self.overlay.map.contains_key(k) && !known.contains_key(k) {
                    let in_db = self.with_snapshot(|s| Self::db_contains(&s.data, k))?;
                    known.insert(k, in_db);
                }
            }
        }
        for op in ops {
            match *op {
                BatchOp::Insert(k, v) => self.stage(k, Some(v), known.get(k).copied())?,
                BatchOp::Remove(k) => {
                    let here = match self.overlay.get(k) {
                        Some(v) => v.is_some(),
                        None => known.get(k).copied().unwrap_or(true),
                    };
                    if here {
                        self.stage(k, None, known.get(k).copied())?;
                    }
                }
            }
        }
        self.maybe_spill()
    }

    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        self.live()?;
        if range_is_empty(lower, upper) {
            return Ok(Box::new(std::iter::empty()));
        }
        self.merged(lower, upper)
    }

    fn compact(&mut self) -> Result<u64, Error> {
        self.writable("compact")?;
        self.commit(false)?;
        self.invalidate();
        let before = file_size(&self.path);
        let Some(Handle::Rw(db)) = self.handle.as_mut() else {
            return Err(Error::ReadOnly { operation: "compact" });
        };
        shield(&self.path, "compact", || {
            while db.compact().map_err(err("compact"))? {}
            Ok(())
        })?;
        Ok(before.saturating_sub(file_size(&self.path)))
    }

    fn check(&mut self, repair: bool) -> Result<CheckReport, Error> {
        self.live()?;
        if !repair {
            // Reads only: redb's own check (`Database::check_integrity`)
            // repairs what it finds, so `check(false)` walks the file
            // instead, verifying every checksum of shelf's.
            let (good, problems, _) = self.audit()?;
            return Ok(CheckReport::new(good, problems, false));
        }
        self.writable("check")?;
        self.commit(false)?;
        self.invalidate();
        let Some(Handle::Rw(db)) = self.handle.as_mut() else {
            return Err(Error::ReadOnly { operation: "check" });
        };
        let path = self.path.display().to_string();
        let checked = raw::shield(|| db.check_integrity())
            .unwrap_or_else(|message| Err(DatabaseError::Storage(StorageError::Corrupted(message))));
        let mut problems = Vec::new();
        let mut repaired = false;
        match checked {
            Ok(true) => {}
            Ok(false) => {
                problems.push(format!("{path}: redb's page checksums did not match; redb repaired the file"));
                repaired = true;
            }
            Err(DatabaseError::Storage(StorageError::Corrupted(detail))) => {
                problems.push(format!("{path}: corrupted beyond repair: {detail}"));
                return Ok(CheckReport::new(0, problems, false));
            }
            Err(e) => return Err(backend_err("check the file")(e.into())),
        }
        self.invalidate();
        let (good, found, bad) = self.audit()?;
        problems.extend(found);
        if !bad.is_empty() {
            // Entries whose checksum fails cannot be trusted: drop them,
            // in one durable commit, and name them.
            let Some(Handle::Rw(db)) = self.handle.as_ref() else {
                return Err(Error::ReadOnly { operation: "check" });
            };
            let txn = db.begin_write().map_err(err("begin a write transaction"))?;
            {
                let mut data = txn.open_table(DATA).map_err(err("open the data table"))?;
                for k in &bad {
                    data.remove(k.as_slice()).map_err(err("remove"))?;
                }
            }
            txn.commit().map_err(err("commit"))?;
            self.invalidate();
            repaired = true;
        }
        Ok(CheckReport::new(good, problems, repaired).with_dropped_keys(bad))
    }

    fn commit_number(&self) -> Result<u64, Error> {
        self.shielded("read the commit number", || {
            let snap = self.fresh_snapshot()?;
            match &snap.meta {
                None => Ok(0),
                Some(meta) => read_counter(&self.path, snap.sealed, meta),
            }
        })
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        self.live()?;
        let bytes = fs::metadata(&self.path).map_err(|e| Error::io(&self.path, e))?.len();
        // redb does not tell how much a compaction would give back.
        Ok(StorageStats::new(bytes, None, vec![self.path.clone()]))
    }
}

impl Drop for RedbBackend {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (tempfile::TempDir, RedbBackend) {
        let dir = tempfile::tempdir().unwrap();
        let b = RedbBackend::open(&dir.path().join("db"), &BackendOptions::with_flag(Flag::Create)).unwrap();
        (dir, b)
    }

    #[test]
    fn a_created_file_starts_with_the_magic_number() {
        let (dir, b) = fresh();
        drop(b);
        let path = dir.path().join("db");
        assert_eq!(probe(&path), Probe::Mine);
        assert_eq!(&fs::read(&path).unwrap()[..MAGIC.len()], &MAGIC);
        assert_eq!(probe(&dir.path().join("missing")), Probe::Absent);
        assert_eq!(probe(dir.path()), Probe::Foreign);
    }

    #[test]
    fn the_overlay_merges_with_the_file() {
        let (_dir, mut b) = fresh();
        b.insert(b"a", b"1").unwrap();
        b.insert(b"b", b"2").unwrap();
        b.insert(b"d", b"4").unwrap();
        b.flush().unwrap();
        assert_eq!(b.pending(), 0);
        assert!(b.remove(b"a").unwrap());
        assert!(!b.remove(b"a").unwrap());
        b.insert(b"c", b"3").unwrap();
        b.insert(b"d", b"40").unwrap();
        assert_eq!(b.len().unwrap(), 3);
        assert_eq!(b.keys().unwrap(), [b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]);
        let back: Vec<_> =
            b.range(Bound::Unbounded, Bound::Unbounded).unwrap().rev().map(|r| r.unwrap()).collect();
        assert_eq!(back[0], (b"d".to_vec(), b"40".to_vec()));
        assert_eq!(back.len(), 3);
        let mut both = b.range(Bound::Unbounded, Bound::Unbounded).unwrap();
        assert_eq!(both.next().unwrap().unwrap().0, b"b");
        assert_eq!(both.next_back().unwrap().unwrap().0, b"d");
        assert_eq!(both.next().unwrap().unwrap().0, b"c");
        assert!(both.next().is_none() && both.next_back().is_none());
    }

    #[test]
    fn a_small_bound_spills_without_losing_anything() {
        let (_dir, mut b) = fresh();
        b.set_overlay_bound(usize::MAX, 3).unwrap();
        let before = b.commit_number().unwrap();
        for i in 0..10u8 {
            b.insert(&[i], &[i]).unwrap();
        }
        assert!(b.pending() <= 4);
        assert!(b.commit_number().unwrap() > before);
        assert_eq!(b.len().unwrap(), 10);
        assert_eq!(b.get(&[7]).unwrap(), Some(vec![7]));
    }
}
