//! Read snapshots of the file: the redb handle, the cached read
//! transaction of a single-process handle, and what a read needs of the
//! backend.

use std::sync::{Mutex, PoisonError};

use redb::{ReadOnlyDatabase, ReadOnlyTable, ReadTransaction, ReadableDatabase, TableError};
use shelf_core::Error;
use shelf_core::raw::{Damage, ValueForm};

use crate::FORMAT_KEY;
use crate::{DATA, META, RedbBackend, backend_err, err};

/// A table of a read snapshot.
pub(crate) type Table = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The open redb handle: writable, or read-only (flag `r`).
pub(crate) enum Handle {
    Rw(redb::Database),
    Ro(ReadOnlyDatabase),
}

impl Handle {
    fn begin_read(&self) -> Result<ReadTransaction, redb::TransactionError> {
        match self {
            Handle::Rw(db) => db.begin_read(),
            Handle::Ro(db) => db.begin_read(),
        }
    }

    /// Closes the database.
    pub(crate) fn close(self) -> Result<(), Error> {
        match self {
            Handle::Rw(db) => db.close().map_err(err("close")),
            Handle::Ro(db) => db.close().map_err(err("close")),
        }
    }
}

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
    pub(crate) cache: &'a Mutex<Option<Snapshot>>,
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

    /// Runs `f` on a snapshot of the file: the cached one, or a fresh one in
    /// multi-process mode. A panic inside redb (a file damaged outside redb
    /// can make it index out of a page) becomes [`Error::Corrupted`].
    pub(crate) fn with_snapshot<T>(&self, f: impl FnOnce(&Snapshot) -> Result<T, Error>) -> Result<T, Error> {
        if self.multi_process {
            return self.damage.shield("read", || f(&self.fresh_snapshot()?));
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let result = self.damage.shield("read", || {
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
