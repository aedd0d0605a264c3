//! The open write transaction of a single-process handle: writes go
//! straight into it (no copy into an overlay first) and this handle's reads
//! see them there, until a commit makes them the file's.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use self_cell::self_cell;
use shelf_core::Error;
use shelf_core::raw::{ValueForm, seal_into};

use crate::{DATA, err};

/// redb's table of entries inside a write transaction.
pub(crate) type DataTable<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;

self_cell!(
    /// A write transaction with its table of entries, opened once: opening
    /// a table costs about as much as an insert, so it is not done per
    /// write.
    pub(crate) struct Writing {
        owner: WriteTransaction,
        #[covariant]
        dependent: DataTable,
    }
);

/// redb's largest value (and key) length, `MAX_VALUE_LENGTH` in its source.
const MAX_VALUE_LENGTH: usize = 3 * 1024 * 1024 * 1024;

/// redb's largest key and value lengths together, `MAX_PAIR_LENGTH` in its
/// source.
const MAX_PAIR_LENGTH: usize = 3 * 1024 * 1024 * 1024 + 768 * 1024 * 1024;

impl Writing {
    /// Begins writing in `txn`.
    pub(crate) fn begin(txn: WriteTransaction) -> Result<Writing, Error> {
        Writing::try_new(txn, |txn| txn.open_table(DATA)).map_err(err("open the data table"))
    }

    /// The table of entries, with what this transaction wrote.
    pub(crate) fn table(&self) -> &DataTable<'_> {
        self.borrow_dependent()
    }

    /// Closes the table and hands the transaction back, to commit it.
    pub(crate) fn finish(self) -> WriteTransaction {
        self.into_owner()
    }

    /// Stores `value` under `key` in `form` (sealed in `buf`, which is
    /// kept between calls so a write allocates nothing of its own).
    pub(crate) fn insert(
        &mut self,
        form: ValueForm,
        key: &[u8],
        value: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let stored = match form {
            ValueForm::Plain => value,
            ValueForm::Sealed => {
                buf.clear();
                seal_into(key, value, buf);
                buf.as_slice()
            }
        };
        // `insert`, not `insert_reserve`: redb's reserve zero-fills a
        // fresh allocation of the value's length first.
        self.with_dependent_mut(|_, table| table.insert(key, stored).map(drop).map_err(err("insert")))
    }

    /// Removes `key`: whether it was present.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.with_dependent_mut(|_, table| Ok(table.remove(key).map_err(err("remove"))?.is_some()))
    }

    /// Whether `key` is present.
    pub(crate) fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        Ok(self.table().get(key).map_err(err("read a value"))?.is_some())
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> Result<u64, Error> {
        self.table().len().map_err(err("count the entries"))
    }
}

/// Whether redb takes an entry of these lengths (stored form): checked
/// before a batch writes anything, so a batch redb would refuse half-way
/// changes nothing.
pub(crate) fn fits(key_len: usize, stored_len: usize) -> bool {
    key_len <= MAX_VALUE_LENGTH && stored_len <= MAX_VALUE_LENGTH && key_len + stored_len <= MAX_PAIR_LENGTH
}
