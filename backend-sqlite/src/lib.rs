//! The `sqlite` backend of shelf: CPython 3.13's `dbm.sqlite3` files, read
//! and written byte-compatibly through SQLite itself (`rusqlite` with its
//! bundled SQLite; no system library needed).
//!
//! A shelf made by CPython 3.13's plain `shelve.open("x")` (whose default
//! for new databases is `dbm.sqlite3`) opens here with pickle, without
//! naming it, and one written here with pickle opens in `shelve.open`.
//!
//! ## Capabilities
//!
//! - `persistent`, `ordered_keys` (keys are BLOBs, which SQLite compares
//!   with `memcmp` and then by length: byte order; listings walk the
//!   UNIQUE index on `key`).
//! - `python_format`: values are pickles when no protocol is recorded, as
//!   in every shelf CPython made.
//! - `atomic_batch`: a batch is a savepoint inside the write transaction.
//! - `multi_process`: SQLite's own locks, shared with CPython. Readers never
//!   wait (WAL). A writer waits for another writer's lock up to the lock
//!   timeout (5 s without one, CPython's default), then fails with
//!   `Error::Timeout`. The write lock is held from a handle's first
//!   unsynced write until its `flush` (its `sync`), so a CPython process
//!   writing beside a shelf process waits for that sync, and gives up with
//!   `sqlite3.OperationalError: database is locked` after its own 5 s: a
//!   shelf sharing a database with CPython should sync promptly.
//! - `compact` (`VACUUM`), `check` (`PRAGMA integrity_check`; `check(false)`
//!   reads only), `commit_number`, `metadata`.
//! - Handles are `Send + Sync`. A handle has one SQLite connection (its
//!   open write transaction makes its own unsynced writes visible to its
//!   reads, which another connection could not see), behind a mutex:
//!   reads from several threads take turns, a listing holds it one page
//!   (512 rows) at a time, and [`KvBackend::get_many`] runs its lookups
//!   under one lock and one read transaction (one snapshot) with one
//!   prepared statement. Parallel readers open handles of their own
//!   (a reader beside a writer, in this process or another, sees what the
//!   writer synced, at its next statement).
//!
//! ## On-disk format
//!
//! One SQLite 3 file at exactly the given path, as `Lib/dbm/sqlite3.py`
//! makes it: table `Dict (key BLOB UNIQUE NOT NULL, value BLOB NOT NULL)`
//! created with CPython's own statement, keys and values bound as BLOBs
//! and written with CPython's `REPLACE INTO ... CAST(? AS BLOB)`, looked up
//! with its `WHERE key = CAST(? AS BLOB)`. shelve encodes `str` keys as
//! UTF-8 bytes before `dbm.sqlite3` sees them, so shelf's byte keys and
//! CPython's keys are the same BLOBs. A TEXT key column (early drafts of
//! `dbm.sqlite3`) is accepted; rows whose key is stored as TEXT rather than
//! BLOB are listed but, as in CPython, not found by a lookup.
//!
//! The journal is WAL, set by CPython on every open and by shelf likewise.
//! shelf keeps its own rows in a second table, `shelf_meta (name, value)`,
//! which `dbm.sqlite3` never names and `dbm.whichdb` never reads (it reads
//! the 16-byte header): the commit counter, user metadata (`meta:NAME`),
//! and `shelf:created` in databases shelf created. The table appears in a
//! database CPython made at shelf's first commit there. A protocol is
//! recorded only in a database shelf created (or emptied with flag `n`):
//! in one CPython made, recording pickle is a no-op (pickle is what an
//! unrecorded Python-format shelf means) and any other protocol is
//! refused, as CPython would go on writing pickles beside it.
//!
//! **Detection** (`probe`): the 16-byte header `SQLite format 3\0` and a
//! `Dict` table of the shape above. Any other SQLite file is `Foreign`:
//! never written, never emptied (flag `n` refuses it). The probe reads
//! the file with `immutable=1` when no `-wal` is beside it (nothing is
//! created), and through a read-only connection over the existing
//! `-wal`/`-shm` when another connection is using the database.
//!
//! **Files**: while open, SQLite's own `NAME-wal` and `NAME-shm` lie
//! beside the file; the last connection to close checkpoints the WAL and
//! removes both, so a closed shelf is its one file. Flag `r` opens a
//! read-write connection with `query_only` on for that reason (a
//! read-only SQLite connection cannot remove them, which is why CPython's
//! flag `r` leaves them behind); on a read-only file system it falls back
//! to `immutable=1`.
//!
//! ## Durability
//!
//! Unsynced writes go into one open transaction (`BEGIN IMMEDIATE` at the
//! first write), visible to this handle at once; `flush` commits it with
//! the commit counter bumped inside. `synchronous = FULL`: in WAL mode
//! SQLite then syncs the WAL at every commit, so a flush that returned
//! survives power loss; `NORMAL` (WAL's usual setting) syncs only at
//! checkpoints, so a returned commit could be rolled back by a power cut.
//! A process killed mid-transaction leaves the last commit intact.
//! Creating a database makes the file (empty, with the requested mode, as
//! CPython's `Path.touch` does) and then its tables in one transaction: a
//! process killed between the two leaves an empty file, which neither
//! shelf nor CPython's `whichdb` recognises (`shelf` refuses to touch it;
//! delete it to start again).
//!
//! ## Damage
//!
//! SQLite checks pages, not values: a damaged page header, a broken B-tree
//! or a bad file header is `Error::Corrupted` (SQLite's `SQLITE_CORRUPT`
//! or `SQLITE_NOTADB`) on the operation that meets it, and
//! `PRAGMA integrity_check` (`check`) finds B-tree and index damage
//! anywhere. A flipped byte inside a stored value or key is NOT detected:
//! values carry no checksum (the format is CPython's, which has none), so
//! such a value reads back changed. A key or value stored as another SQL
//! type than BLOB or TEXT is reported, never returned as bytes.

mod check;
mod error;
mod format;
mod open;
mod read;
mod write;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use shelf_core::raw::{BackendOptions, Lifecycle, OpenBackend, Probe, Walk, owned_bound, range_is_empty};
use shelf_core::{
    BatchOp, Capabilities, CheckReport, Error, KvBackend, KvIter, KvKeys, KvRange, OpenError, StorageStats,
};

use crate::error::{SqlError, Tag};

/// The registry name.
pub const NAME: &str = "sqlite";

/// A shelf backend over a `dbm.sqlite3` file.
pub struct SqliteBackend {
    /// `None` once closed. rusqlite's `Connection` is `Send` but not
    /// `Sync` (one SQLite connection runs one statement at a time), so
    /// reads on several threads take turns on it.
    conn: Option<Mutex<Connection>>,
    path: PathBuf,
    life: Lifecycle,
    /// How long writes wait for another connection's write lock.
    busy: Duration,
    /// Whether shelf created the database (see the crate docs: only then
    /// is a protocol recorded).
    shelf_made: bool,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend").field("path", &self.path).field("life", &self.life).finish()
    }
}

/// `path` with `suffix` appended to its file name (SQLite's `-wal`, `-shm`).
pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    path.with_file_name(name)
}

impl SqliteBackend {
    /// The connection of an open handle, locked: never call another
    /// method that locks it while holding it.
    fn conn(&self) -> Result<MutexGuard<'_, Connection>, Error> {
        self.life.live()?;
        self.conn.as_ref().map(lock).ok_or(Error::Closed)
    }

    /// The connection's lock, for listings that take it page by page.
    fn conn_lock(&self) -> Result<&Mutex<Connection>, Error> {
        self.life.live()?;
        self.conn.as_ref().ok_or(Error::Closed)
    }

    /// An SQLite error as shelf's.
    fn err(&self, e: SqlError) -> Error {
        e.into_error(&self.path, self.busy)
    }

    fn pager(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        let conn = self.conn_lock()?;
        let pager = read::Pager::new(conn, &self.path, self.busy, owned_bound(lo), owned_bound(hi), true);
        let path = self.path.clone();
        // The pages come in key order by construction; Walk turns an index
        // that yields them otherwise (damage) into an error.
        Ok(Box::new(Walk::new(pager, None, move |detail| Error::Corrupted { path: path.clone(), detail })))
    }
}

impl OpenBackend for SqliteBackend {
    const NAME: &'static str = NAME;
    const CAPABILITIES: Capabilities = {
        let mut c = Capabilities::NONE;
        c.persistent = true;
        c.ordered_keys = true;
        c.metadata = true;
        c.python_format = true;
        c.multi_process = true;
        c.atomic_batch = true;
        c.compact = true;
        c.check = true;
        c.commit_number = true;
        c
    };

    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        open::open(path, options)
    }

    fn probe(path: &Path) -> Probe {
        open::probe(path)
    }
}

impl KvBackend for SqliteBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let c = self.conn()?;
        read::lookup(&c, &self.path, key).map_err(|e| e.into_error(&self.path, self.busy))
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let c = self.conn()?;
        read::lookup_many(&c, &self.path, keys).map_err(|e| e.into_error(&self.path, self.busy))
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        let c = self.conn()?;
        c.prepare_cached(format::HAS_KEY)
            .and_then(|mut s| s.exists([key]))
            .tag("look up a key")
            .map_err(|e| self.err(e))
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.life.writable("insert")?;
        self.put(key, value)
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.life.writable("remove")?;
        self.delete(key)
    }

    fn len(&self) -> Result<usize, Error> {
        let c = self.conn()?;
        let n: i64 =
            c.query_row(format::GET_SIZE, [], |r| r.get(0)).tag("count keys").map_err(|e| self.err(e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        // Paged through the key index, keys only, in byte order: no
        // statement stays open (nor the connection locked) between pages.
        let conn = self.conn_lock()?;
        let pager = read::Pager::new(conn, &self.path, self.busy, Bound::Unbounded, Bound::Unbounded, false);
        Ok(Box::new(pager.map(|r| r.map(|(k, _)| k))))
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        Ok(Box::new(self.pager(Bound::Unbounded, Bound::Unbounded)?))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.life.live()?;
        self.commit()
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.life.is_closed() {
            return Ok(());
        }
        let committed = self.commit();
        self.life.close();
        if let Some(conn) = self.conn.take().map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner)) {
            // The last connection to close checkpoints the WAL and removes
            // `-wal` and `-shm`.
            conn.close().map_err(|(_, e)| self.err(SqlError::new("close", e)))?;
        }
        committed
    }

    fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.life.live()?;
        self.get_meta(name)
    }

    fn set_metadata(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.life.writable("set metadata")?;
        self.put_meta(name, value)
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        self.life.writable("apply a batch")?;
        self.batch(ops)
    }

    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        self.life.live()?;
        if range_is_empty(lower, upper) {
            return Ok(Box::new(std::iter::empty()));
        }
        self.pager(lower, upper)
    }

    fn compact(&mut self) -> Result<u64, Error> {
        self.life.writable("compact")?;
        self.run_compact()
    }

    fn check(&mut self, repair: bool) -> Result<CheckReport, Error> {
        if repair {
            self.life.writable("repair")?;
        } else {
            self.life.live()?;
        }
        self.run_check(repair)
    }

    fn commit_number(&self) -> Result<u64, Error> {
        self.commits()
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        self.sizes()
    }
}

// Handles are shared between threads (`Arc<Shelf>`); see `conn`.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<SqliteBackend>();
};

/// A connection's lock. A panic while it was held (a bug, never user
/// input) leaves SQLite's own state whole: SQLite rolls back what a
/// statement left unfinished, so a poisoned lock is taken as it is.
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for SqliteBackend {
    /// Closing commits what is pending, as `close` does (dbm semantics:
    /// a shelf dropped without `close` keeps its writes).
    fn drop(&mut self) {
        let _ = self.close();
    }
}
