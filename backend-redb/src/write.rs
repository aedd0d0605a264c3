//! Writing: staging writes in the overlay, spilling it past its bound, and
//! committing it (or, for flag `n`, clearing the file) in one redb write
//! transaction.

use redb::Durability;
use shelf_core::Error;
use shelf_core::raw::{self, ValueForm};

use crate::snapshot::{Handle, Reader};
use crate::{COMMIT_KEY, FORMAT_KEY, FORMAT_SEALED};
use crate::{DATA, META, RedbBackend, err};

impl RedbBackend {
    /// Sets the bound of the write overlay: once it holds more than
    /// `max_bytes` bytes of keys and values (plus a small per-entry
    /// overhead) or more than `max_ops` entries, its writes are committed to
    /// the file, not durably (durably in multi-process mode). The defaults
    /// are [`DEFAULT_OVERLAY_BYTES`](crate::DEFAULT_OVERLAY_BYTES) and
    /// [`DEFAULT_OVERLAY_OPS`](crate::DEFAULT_OVERLAY_OPS).
    ///
    /// # Errors
    /// Errors of the commit the new bound may cause.
    pub fn set_overlay_bound(&mut self, max_bytes: usize, max_ops: usize) -> Result<(), Error> {
        self.max_bytes = max_bytes;
        self.max_ops = max_ops;
        if !self.life.is_closed() && !self.life.is_read_only() {
            self.maybe_spill()?;
        }
        Ok(())
    }

    /// The number of writes waiting in the overlay.
    pub fn pending(&self) -> usize {
        self.overlay.len() + self.meta_overlay.len()
    }

    /// Puts one write in the overlay (no spill). `known_in_db` saves the
    /// lookup of a key whose presence in the file the caller knows.
    pub(crate) fn stage(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        known_in_db: Option<bool>,
    ) -> Result<(), Error> {
        let multi = self.multi_process;
        // Not `self.reader()`: the overlay is borrowed mutably beside it.
        let reader = Reader {
            handle: self.handle.as_ref(),
            cache: &self.cache,
            multi_process: multi,
            form: self.form,
            format_pending: self.format_pending,
            damage: &self.damage,
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

    /// Commits the overlay, not durably, once it outgrows its bound.
    pub(crate) fn maybe_spill(&mut self) -> Result<(), Error> {
        if self.overlay.len() > self.max_ops || self.overlay.bytes() > self.max_bytes {
            self.commit(!self.multi_process)?;
        }
        Ok(())
    }

    /// Writes the overlay to the file in one transaction; `lazy` makes it
    /// non-durable. Does nothing when there is nothing to write and nothing
    /// to make durable.
    pub(crate) fn commit(&mut self, lazy: bool) -> Result<(), Error> {
        let damage = self.damage.clone();
        damage.shield("commit", || self.commit_unshielded(lazy))
    }

    fn commit_unshielded(&mut self, lazy: bool) -> Result<(), Error> {
        let changed = !self.overlay.is_empty() || !self.meta_overlay.is_empty();
        if !changed && (lazy || !self.undurable) {
            return Ok(());
        }
        // A cached read transaction would keep the pages this commit frees.
        self.invalidate();
        let Some(Handle::Rw(db)) = self.handle.as_ref() else {
            return Err(Error::ReadOnly { operation: "commit" });
        };
        let mut txn = db.begin_write().map_err(err("begin a write transaction"))?;
        let durability = if lazy { Durability::None } else { Durability::Immediate };
        txn.set_durability(durability).map_err(err("set the durability"))?;
        let form = self.form;
        let mut buf = Vec::new();
        // The stored form of a value: sealed with its key in a sealed file.
        let mut store = |k: &[u8], v: &'_ [u8]| -> Vec<u8> {
            buf.clear();
            form.store_into(k, v, &mut buf);
            std::mem::take(&mut buf)
        };
        {
            let mut data = txn.open_table(DATA).map_err(err("open the data table"))?;
            for (k, value) in self.overlay.writes() {
                match value {
                    Some(v) => {
                        data.insert(k, store(k, v).as_slice()).map_err(err("insert"))?;
                    }
                    None => {
                        data.remove(k).map_err(err("remove"))?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(err("open the metadata table"))?;
            for (name, v) in &self.meta_overlay {
                let stored = store(name.as_bytes(), v);
                meta.insert(name.as_bytes(), stored.as_slice()).map_err(err("set metadata"))?;
            }
            if changed {
                let current = self.stored_commit_number(form, &meta)?;
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
    pub(crate) fn clear_all(&mut self, seal: bool) -> Result<(), Error> {
        let Some(Handle::Rw(db)) = self.handle.as_ref() else {
            return Err(Error::ReadOnly { operation: "clear" });
        };
        let form = if seal { ValueForm::Sealed } else { self.form };
        let txn = db.begin_write().map_err(err("begin a write transaction"))?;
        txn.delete_table(DATA).map_err(err("delete the data table"))?;
        {
            txn.open_table(DATA).map_err(err("create the data table"))?;
            let mut meta = txn.open_table(META).map_err(err("open the metadata table"))?;
            // A damaged counter must not stop a fresh start.
            let current = self.stored_commit_number(self.form, &meta).unwrap_or(0);
            meta.retain(|_, _| false).map_err(err("clear the metadata"))?;
            let counter = (current + 1).to_le_bytes();
            meta.insert(COMMIT_KEY, form.store(COMMIT_KEY, &counter).as_slice())
                .map_err(err("write the commit number"))?;
            if form.is_sealed() {
                meta.insert(FORMAT_KEY, raw::seal(FORMAT_KEY, FORMAT_SEALED).as_slice())
                    .map_err(err("write the format"))?;
            }
        }
        txn.commit().map_err(err("commit"))?;
        self.form = form;
        self.invalidate();
        Ok(())
    }
}
