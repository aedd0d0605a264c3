//! The `dumb` backend of shelf: CPython's `dbm.dumb` file format, byte for
//! byte, so a shelf Python wrote opens here and one written here opens in
//! Python.
//!
//! ## Capabilities
//! Persistent, a Python format (values are pickles unless told otherwise),
//! compaction ([`KvBackend::compact`]), integrity checks
//! ([`KvBackend::check`]) and commit numbers. Keys are kept in insertion
//! order, not byte order, so there is no range; there is no metadata (a
//! shelf written here is a plain CPython shelf), and batches are applied
//! one by one, not atomically. One writer at a time (`multi_process` is
//! false); readers run beside it (see "Locks" below).
//!
//! ## On-disk format (CPython's)
//! A database `NAME` is three files:
//! - `NAME.dat`: the values, each starting at a multiple of 512 bytes, NUL
//!   padding before it;
//! - `NAME.dir`: the index, Latin-1 text, one line per key:
//!   `repr(key.decode('latin-1')), repr((pos, siz))` as in `'key', (0, 5)`;
//! - `NAME.bak`: the index before the last commit.
//!
//! New keys are appended to `.dat`; an overwrite whose 512-byte block count
//! does not grow is written in place, otherwise appended, exactly as
//! CPython does, so the same operations give the same bytes. The index is
//! written in dict order (insertion order; an overwrite keeps its place).
//!
//! Beside them this backend keeps `NAME.shelf-commit`, eight bytes holding
//! the commit number, which is also the writers' lock file. CPython ignores
//! it. A commit writes `NAME.dir.shelf-tmp`, in-place overwrites keep an
//! undo journal `NAME.shelf-journal`, and a compaction uses
//! `NAME.dat.shelf-compact` and `NAME.dir.shelf-compact` while it runs. A
//! failed commit or compaction (a full disk) removes its temporary files;
//! after a crash the next writer open rolls back or finishes what they
//! hold and removes them.
//!
//! ## Beside CPython: `.bak`
//! CPython's `_commit` (3.11 to 3.13) deletes `.bak`, renames `.dir` to
//! `.bak`, then writes a new `.dir` in place through an 8 KiB buffer; it
//! takes no lock. A reader can so meet `.dir` missing, empty, or cut
//! short. CPython itself never reads `.bak` (its `_update` fails on a
//! missing `.dir` with `r`/`w`, and with `c` starts an empty index).
//! This backend:
//! - detects `NAME.dat` with no `.dir` but a `.bak` that is a dumb index as
//!   a dumb database ([`probe`]);
//! - as a reader, waits up to [`SETTLE_WAIT`] for a `.dir` that is missing,
//!   changing, cut short, or shorter than `.bak` while fresh, then reads
//!   `.bak` when it is whole; a `.dir` that stays cut short without
//!   changing is damage, reported as [`OpenError::Corrupted`];
//! - as a writer, adopts `.bak` when `.dir` is missing, writes `.dir` from
//!   it and keeps `.bak`.
//!
//! Values CPython overwrites in place can still be read half-old by an
//! index that names the old size: CPython's format cannot tell.
//!
//! ## Flag `n`
//! Like CPython's, it deletes the database's files, but only when they are
//! a dumb database (or absent): a `NAME.dat` beside no index, or a
//! `NAME.dir` that is not a dumb index (ndbm's), is refused with
//! [`OpenError::Undetectable`] and left untouched.
//!
//! ## Better than CPython, still readable by it
//! - The index is kept in memory (80 to 130 bytes plus the key per entry,
//!   as the hash table's doubling falls; a key of up to 16 bytes and its
//!   value's place sit in the hash slot, so a get reads one slot, then the
//!   value) and `.dat` stays open and memory-mapped; CPython reopens
//!   `.dat` on every get and set.
//!   [`KvBackend::get_shared`] hands out slices of the map without
//!   copying.
//! - Commits are crash-safe: `.dat` is fsynced, the index is written to a
//!   temporary file, fsynced and renamed over `.dir`, and the directory is
//!   fsynced. `flush` does nothing when nothing changed. CPython instead
//!   rewrites `.dir` in place (a crash can leave it empty) and rewrites the
//!   whole index on every delete.
//! - Parsing `.dir` never evaluates anything: a line that is not a
//!   `key, (pos, siz)` literal is [`OpenError::Corrupted`] naming the file
//!   and line, and so is an entry pointing past the end of `.dat`.
//!   [`BackendOptions::salvage`] opens such a database anyway, skipping the
//!   bad entries, for [`KvBackend::check`] to report and repair.
//! - Locks: a writer (`w`, `c`, `n`) holds an exclusive lock on
//!   `NAME.shelf-commit`, so a second writer gets [`OpenError::Locked`] (or
//!   waits up to [`BackendOptions::lock_timeout`]). Readers (`r`) hold a
//!   shared lock on `.dat` and run alongside each other and alongside the
//!   writer; they reload the index when the commit number changes.
//! - [`KvBackend::compact`] reclaims the space deletes and grown values
//!   leave behind; [`KvBackend::check`] reports entries past the end of
//!   `.dat`, overlapping entries and unparseable lines.
//!
//! ## Threads
//! The backend is `Send + Sync`: reads through `&self` run in parallel on
//! any number of threads. A writer's reads take no lock at all (its state
//! changes only through `&mut self`); a read-only handle's take the shared
//! side of a sharded reader-writer lock (one cache line per thread), whose
//! exclusive side reloads the index after another process commits.
//! [`KvBackend::get_many`] reads all its keys under one reload check and
//! one lock. Figures: `docs/performance-dumb.md` in the repository.
//!
//! ## Concurrency with readers
//! An in-place overwrite could be seen half-written by a reader in another
//! process that still uses the old index. So the writer overwrites in place
//! only while it holds an exclusive lock on `.dat`, which it takes with the
//! first in-place write after a commit and keeps until the next commit;
//! when readers hold their shared lock it appends instead (the files stay
//! CPython-readable, only the layout differs). A reader that opens while a
//! writer holds that lock waits for the writer's next commit up to the lock
//! timeout. In the same process, a value handed out by `get_shared` is
//! never overwritten in place either.
//!
//! A compaction renames a new `.dat`, then a new `.dir`, over the old
//! ones. A reader reads the index that belongs to the `.dat` it holds
//! (retrying if `.dat` was replaced meanwhile) and locks a new `.dat`
//! before reading its index; if the writer already overwrites in place in
//! it, the reader keeps the old pair, which nothing changes, until the
//! writer's next commit.
//!
//! ## Durability
//! Writes are visible at once and durable at [`KvBackend::flush`]. A crash
//! before it loses the writes since the last flush, and nothing else: the
//! index on disk always names values that were fsynced before it. An
//! in-place overwrite reaches `.dat` before the flush that records it,
//! which is CPython's layout rule, so a crash between the two can leave the
//! old index pointing at new bytes of the same key; use `compact` first, or
//! the redb backend, where that matters.
//!
//! CPython processes take no locks: do not let one write a database this
//! backend has open for writing.
//!
//! ## Damage
//! CPython's format has no checksums. Detected: a `.dir` line that does not
//! parse, an entry past the end of `.dat` ([`OpenError::Corrupted`] at open,
//! [`shelf_core::Error::Corrupted`] naming the key at read), and entries
//! that overlap ([`KvBackend::check`]). Not detected: changed bytes inside a
//! value, which read back as a different value.

mod check;
mod compact;
pub mod fault;
mod format;
mod index;
mod journal;
mod load;
mod open;
mod paths;
mod read;
mod state;
mod write;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use shelf_core::raw::{BackendOptions, Lifecycle, OpenBackend, Probe, apply_one_by_one, read_counter};
use shelf_core::{
    BatchOp, Capabilities, CheckReport, Error, KvBackend, KvIter, KvKeys, OpenError, SharedBytes,
    StorageStats,
};

pub use format::{Line, parse_line, write_line};
pub use open::{SETTLE_WAIT, probe};
use paths::{Paths, io_err};
use state::Shared;

/// The backend's registry name.
pub const NAME: &str = "dumb";

/// CPython's `_BLOCKSIZE`: values start at multiples of it.
pub const BLOCK_SIZE: u64 = 512;

/// In-place overwrites are buffered in memory up to this many bytes
/// before the handle commits them; a value this large or larger is
/// written to `.dat` directly, not through the append buffer.
pub const WRITE_BUFFER: usize = 4 << 20;

/// Appended values are buffered up to this many bytes, then written to
/// `.dat` in one `pwrite` (and always at `flush`), and the kernel is asked
/// to start writing them to the disk at once (`sync_file_range`). The
/// commit's `fdatasync` then waits only for the last chunk: at 1 MiB the
/// sync of 20,000 inserts took 4-6 ms instead of 15-17 ms here
/// (`examples/sync_cost.rs`, docs/performance-dumb.md).
pub const WRITE_CHUNK: usize = 1 << 20;

pub(crate) fn blocks(siz: u64) -> u64 {
    siz.div_ceil(BLOCK_SIZE)
}

pub(crate) fn align(pos: u64) -> u64 {
    pos.div_ceil(BLOCK_SIZE) * BLOCK_SIZE
}

/// A database in CPython's `dbm.dumb` format.
#[derive(Debug)]
pub struct DumbBackend {
    paths: Paths,
    /// Closed / read-only: the toolkit's guard, so the errors read as in
    /// every backend.
    life: Lifecycle,
    mode: u32,
    /// The index and the data file's buffers and map (see [`state`]).
    st: Shared,
    /// `NAME.shelf-commit`: the writer's lock and the commit number.
    commit: Option<File>,
    /// A read-only handle's map of the commit number, so the check every
    /// read makes costs no system call (see `current`).
    commit_map: std::sync::OnceLock<memmap2::Mmap>,
    modified: bool,
    /// Set when a commit failed part-way: writes are refused until the
    /// database is reopened (which rolls the commit back).
    poisoned: bool,
    /// Whether this writer holds the exclusive `.dat` lock that allows
    /// in-place overwrites (see the crate docs).
    in_place: bool,
    /// What a salvaging open skipped, for `check`.
    salvaged: Salvaged,
}

/// What a salvaging open skipped.
#[derive(Debug, Default, Clone)]
struct Salvaged {
    /// One line per bad `.dir` line.
    problems: Vec<String>,
    /// The keys of lines that parsed but whose values are lost.
    keys: Vec<Vec<u8>>,
}

impl DumbBackend {
    /// The toolkit's write guard, and beyond it this backend's own: a
    /// handle whose commit failed part-way writes nothing more.
    fn writable(&self, operation: &'static str) -> Result<(), Error> {
        self.life.writable(operation)?;
        if self.poisoned {
            return Err(Error::Backend {
                backend: NAME,
                operation,
                source: format!(
                    "a commit to {} failed part-way; close and reopen the database, which rolls it back \
                     to the last commit",
                    self.paths.base.display()
                )
                .into(),
            });
        }
        Ok(())
    }
}

impl OpenBackend for DumbBackend {
    const NAME: &'static str = NAME;
    const CAPABILITIES: Capabilities = {
        let mut c = Capabilities::NONE;
        c.persistent = true;
        c.python_format = true;
        c.compact = true;
        c.check = true;
        c.commit_number = true;
        c
    };

    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        DumbBackend::open(path, options)
    }

    fn probe(path: &Path) -> Probe {
        probe(path)
    }

    /// `.dat` first, `.dir` last: a database is detected by its `.dir`, so
    /// a move interrupted between the two leaves nothing that looks whole.
    fn files(path: &Path) -> Vec<PathBuf> {
        let paths = Paths::new(path);
        vec![paths.dat, paths.dir]
    }
}

impl KvBackend for DumbBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let st = self.current()?;
        match st.index.get(key) {
            Some((pos, siz)) => self.read_value(&st, key, pos, siz).map(Some),
            None => Ok(None),
        }
    }

    fn get_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, Error> {
        let st = self.current()?;
        match st.index.get(key) {
            Some(at) => self.with_value(&st, key, at, f).map(|()| true),
            None => Ok(false),
        }
    }

    /// One reload check, one lock (for a read-only handle), one pass.
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let st = self.current()?;
        keys.iter()
            .map(|key| match st.index.get(key) {
                Some((pos, siz)) => self.read_value(&st, key, pos, siz).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    fn get_shared(&self, key: &[u8]) -> Result<Option<SharedBytes>, Error> {
        let st = self.current()?;
        self.shared_value(&st, key)
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        Ok(self.current()?.index.get(key).is_some())
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.writable("insert")?;
        self.insert_value(key, value)
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.writable("remove")?;
        let found = self.st.get_mut().index.remove(key).is_some();
        self.modified |= found;
        Ok(found)
    }

    fn len(&self) -> Result<usize, Error> {
        Ok(self.current()?.index.len())
    }

    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        // A snapshot: a read-only handle's index may be reloaded (another
        // process committed) while the caller walks.
        let keys: Vec<Vec<u8>> = self.current()?.index.iter().map(|(k, _, _)| k.to_vec()).collect();
        Ok(Box::new(keys.into_iter().map(Ok)))
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        let st = self.current()?;
        Ok(self.values(&st))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.life.live()?;
        if self.life.is_read_only() || !self.modified {
            return Ok(());
        }
        self.writable("sync")?;
        self.commit_writes()
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.life.is_closed() {
            return Ok(());
        }
        let result = if self.poisoned { Ok(()) } else { self.flush() };
        self.release_in_place();
        self.life.close();
        // Dropping the files releases the locks; keep `st` (it is cheap to
        // leave) but forget the index's memory.
        let st = self.st.get_mut();
        st.index.clear();
        st.map = std::sync::OnceLock::new();
        self.commit = None;
        self.commit_map = std::sync::OnceLock::new();
        result
    }

    fn metadata(&self, _name: &str) -> Result<Option<Vec<u8>>, Error> {
        // No metadata: a shelf written here is a plain CPython shelf.
        self.life.live()?;
        Ok(None)
    }

    fn set_metadata(&mut self, _name: &str, _value: &[u8]) -> Result<(), Error> {
        self.writable("set metadata")?;
        Err(Error::Unsupported { backend: NAME, operation: "metadata" })
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        // Not atomic (capabilities say so): applied one by one.
        self.writable("apply a batch")?;
        apply_one_by_one(self, ops)
    }

    /// Packs the live values into a new `.dat` and `.dir`, put in place
    /// only when both are whole. Returns the bytes reclaimed: how much the
    /// summed lengths of `NAME.dat` and `NAME.dir` (the files
    /// [`OpenBackend::files`] lists) went down, measured after the
    /// commit of pending writes that compaction starts with. The `.bak`
    /// it removes (it names offsets of the old `.dat`) is not counted.
    ///
    /// A failure (a full disk) before the new `.dat` is in place removes
    /// the new files and leaves the database as it was; a failure after it
    /// poisons the handle, and the next open finishes the swap.
    fn compact(&mut self) -> Result<u64, Error> {
        self.writable("compact")?;
        self.compact_files()
    }

    fn check(&mut self, repair: bool) -> Result<CheckReport, Error> {
        self.life.live()?;
        if repair {
            self.writable("repair")?;
        }
        self.check_index(repair)
    }

    fn commit_number(&self) -> Result<u64, Error> {
        self.life.live()?;
        match &self.commit {
            Some(f) => read_counter(f).map_err(io_err(&self.paths.commit)),
            None => Ok(0),
        }
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        self.life.live()?;
        let mut files = Vec::new();
        let mut bytes = 0;
        for p in [&self.paths.dat, &self.paths.dir, &self.paths.bak, &self.paths.commit] {
            if let Ok(m) = fs::metadata(p) {
                bytes += m.len();
                files.push(p.clone());
            }
        }
        Ok(StorageStats::new(bytes, Some(self.reclaimable()), files))
    }
}

impl Drop for DumbBackend {
    fn drop(&mut self) {
        // Like CPython's __del__ = close: a dropped writer commits.
        let _ = self.close();
    }
}

// Readers on several threads share one handle (`Arc<Shelf>` in a web
// service): keep the backend `Send + Sync`.
const _: fn() = || {
    fn s<T: Send + Sync>() {}
    s::<DumbBackend>();
};
