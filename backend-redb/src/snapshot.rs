//! Read snapshots of the file: the redb handle, the cached read
//! transaction of a single-process handle (taken afresh after a commit of
//! the database it reads), and what a read needs of the backend.

use std::sync::{Arc, PoisonError, RwLock};

use redb::{ReadOnlyDatabase, ReadOnlyTable, ReadTransaction, ReadableDatabase, TableError};
use shelf_core::Error;
use shelf_core::raw::{Damage, ValueForm};

use crate::FORMAT_KEY;
use crate::shared::Shared;
use crate::{DATA, META, RedbBackend, backend_err, err};

/// A table of a read snapshot.
pub(crate) type Table = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The open redb handle.
pub(crate) enum Handle {
    /// A writable redb database: this handle's own, or, for a read-only
    /// handle opened beside a writable one of this process, that one's
    /// (see [`Shared`]).
    Db(Arc<Shared>),
    /// redb's read-only database (flag `r`, no writer in this process).
    Ro(ReadOnlyDatabase),
}

impl Handle {
    fn begin_read(&self) -> Result<ReadTransaction, redb::TransactionError> {
        match self {
            Handle::Db(shared) => shared.db.begin_read(),
            Handle::Ro(db) => db.begin_read(),
        }
    }

    /// The number of commits through the database (0 for a read-only
    /// one, which nothing in this process writes).
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Handle::Db(shared) => shared.generation(),
            Handle::Ro(_) => 0,
        }
    }

    /// The writable database, when this is one.
    pub(crate) fn db(&self) -> Option<&redb::Database> {
        match self {
            Handle::Db(shared) => Some(&shared.db),
            Handle::Ro(_) => None,
        }
    }

    /// Closes this handle's share of the database; `writer` tells whether
    /// it was the writable handle.
    pub(crate) fn close(self, writer: bool) -> Result<(), Error> {
        match self {
            Handle::Db(shared) => Shared::release(shared, writer),
            Handle::Ro(db) => db.close().map_err(err("close")),
        }
    }
}

/// A snapshot kept for the next reads, with the generation of the
/// database it was taken at.
pub(crate) struct Cached {
    generation: u64,
    snap: Snapshot,
}

/// The cache of a single-process handle's read snapshot: shared by
/// readers on several threads (`RwLock`), replaced after a commit.
pub(crate) type Cache = RwLock<Option<Cached>>;

/// A read snapshot of the file: the two tables, or `None` where a table does
/// not exist yet.
pub(crate) struct Snapshot {
    pub(crate) data: Option<Table>,
    pub(crate) meta: Option<Table>,
    /// How the file stores its values.
    pub(crate) form: ValueForm,
}

/// What reads need of the backend, borrowed apart from the overlay so a
/// write can look the file up while it holds the overlay.
pub(crate) struct Reader<'a> {
    pub(crate) handle: Option<&'a Handle>,
    pub(crate) cache: &'a Cache,
    pub(crate) multi_process: bool,
    pub(crate) form: ValueForm,
    pub(crate) format_pending: bool,
    pub(crate) damage: &'a Damage,
}

impl Reader<'_> {
    pub(crate) fn fresh_snapshot(&self) -> Result<Snapshot, Error> {
        let handle = self.handle.ok_or(Error::Closed)?;
        let txn = handle.begin_read().map_err(err("begin a read transaction"))?;
        let data = table_or_none(txn.open_table(DATA))?;
        let meta = table_or_none(txn.open_table(META))?;
        // A read-only handle opened on a blank file learns its format from
        // the first snapshot that has one (another process initialised it).
        let sealed = self.form.is_sealed()
            || (self.format_pending
                && match &meta {
                    Some(m) => m.get(FORMAT_KEY).map_err(err("read the format"))?.is_some(),
                    None => false,
                });
        if data.is_none() && sealed {
            // Created with the file and never deleted since (flag `n`
            // recreates it in the same commit).
            return Err(self.damage.corrupted("redb no longer finds the table of entries"));
        }
        let form = if sealed { ValueForm::Sealed } else { ValueForm::Plain };
        Ok(Snapshot { data, meta, form })
    }

    /// Runs `f` on a snapshot of the file: the cached one (taken afresh
    /// once the database has committed since), or a fresh one in
    /// multi-process mode. A panic inside redb (a file damaged outside redb
    /// can make it index out of a page) becomes [`Error::Corrupted`], and
    /// drops the cached snapshot.
    pub(crate) fn with_snapshot<T>(&self, f: impl FnOnce(&Snapshot) -> Result<T, Error>) -> Result<T, Error> {
        if self.multi_process {
            return self.damage.shield("read", || f(&self.fresh_snapshot()?));
        }
        let generation = self.handle.map_or(0, Handle::generation);
        {
            let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = cache.as_ref().filter(|c| c.generation == generation) {
                let result = self.damage.shield("read", || f(&c.snap));
                if matches!(result, Err(Error::Corrupted { .. })) {
                    drop(cache);
                    *self.cache.write().unwrap_or_else(PoisonError::into_inner) = None;
                }
                return result;
            }
        }
        let snap = self.damage.shield("read", || self.fresh_snapshot())?;
        let result = self.damage.shield("read", || f(&snap));
        if !matches!(result, Err(Error::Corrupted { .. })) {
            *self.cache.write().unwrap_or_else(PoisonError::into_inner) = Some(Cached { generation, snap });
        }
        result
    }
}

fn table_or_none(r: Result<Table, TableError>) -> Result<Option<Table>, Error> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(backend_err("open a table")(e.into())),
    }
}

impl RedbBackend {
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader {
            handle: self.handle.as_ref(),
            cache: &self.cache,
            multi_process: self.multi_process,
            form: self.form,
            format_pending: self.format_pending,
            damage: &self.damage,
        }
    }

    pub(crate) fn fresh_snapshot(&self) -> Result<Snapshot, Error> {
        self.reader().fresh_snapshot()
    }

    /// Runs `f` on a snapshot of the file (see [`Reader::with_snapshot`]).
    pub(crate) fn with_snapshot<T>(&self, f: impl FnOnce(&Snapshot) -> Result<T, Error>) -> Result<T, Error> {
        self.reader().with_snapshot(f)
    }

    /// Drops the cached read transaction, which would keep the pages a
    /// commit frees and show the file as it was.
    pub(crate) fn invalidate(&mut self) {
        *self.cache.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
    }
}
