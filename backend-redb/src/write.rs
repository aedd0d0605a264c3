//! Writing: straight into the open write transaction (single-process
//! mode) or into the overlay (multi-process mode), committing past the
//! bound of pending writes, the commit itself, and, for flag `n`, clearing
//! the file.

use redb::{Durability, StorageError};
use shelf_core::raw::{self, SEAL_LEN, ValueForm};
use shelf_core::{BatchOp, Error};

use crate::snapshot::Handle;
use crate::txn::{self, Writing};
use crate::{COMMIT_KEY, FORMAT_KEY, FORMAT_SEALED};
use crate::{DATA, META, RedbBackend, err};

/// Bytes counted per pending write on top of its key and value, for the
/// engine's own bookkeeping.
const ENTRY_OVERHEAD: usize = 48;

/// The open write transaction in `slot`, begun on `handle`'s database if
/// there is none (fields apart, so the caller keeps the others).
fn begin<'w>(handle: Option<&Handle>, slot: &'w mut Option<Writing>) -> Result<&'w mut Writing, Error> {
    let w = match slot.take() {
        Some(w) => w,
        None => {
            let db = handle.and_then(Handle::db).ok_or(Error::read_only("write"))?;
            Writing::begin(db.begin_write().map_err(err("begin a write transaction"))?)?
        }
    };
    Ok(slot.insert(w))
}

/// The stored length of a value of `len` bytes in `form`.
fn stored_len(form: ValueForm, len: usize) -> usize {
    if form.is_sealed() { len + SEAL_LEN } else { len }
}

impl RedbBackend {
    /// Sets the bound of pending writes (the open write transaction's in
    /// single-process mode, the overlay's in multi-process mode): once they
    /// hold more than `max_bytes` bytes of keys and values (plus a small
    /// per-entry overhead) or more than `max_ops` writes, they are
    /// committed to the file, not durably (durably in multi-process mode).
    /// The defaults are [`DEFAULT_OVERLAY_BYTES`](crate::DEFAULT_OVERLAY_BYTES)
    /// and [`DEFAULT_OVERLAY_OPS`](crate::DEFAULT_OVERLAY_OPS).
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

    /// The number of writes not committed yet.
    pub fn pending(&self) -> usize {
        self.pending_ops + self.overlay.len() + self.meta_overlay.len()
    }

    /// Stores (`Some`) or removes (`None`) `key`: whether it was present
    /// before. No spill.
    pub(crate) fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<bool, Error> {
        if self.multi_process {
            return self.stage(key, value);
        }
        let form = self.form;
        let w = begin(self.handle.as_ref(), &mut self.writing)?;
        let buf = &mut self.scratch;
        let result = raw::shield(|| match value {
            Some(v) => w.insert(form, key, v, buf).map(|()| true),
            None => w.remove(key),
        });
        let was = match result {
            Ok(r) => r?,
            Err(message) => {
                // A panic inside redb left the transaction in no known
                // state: abort it, with the writes since the last commit.
                self.abort();
                return Err(self.damage.failed("write", &message));
            }
        };
        if value.is_some() || was {
            self.pending_ops += 1;
            self.pending_bytes += key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD;
        }
        Ok(was)
    }

    /// Multi-process mode: puts one write in the overlay. Whether the key
    /// was there is known only for a remove (another process may change
    /// the file meanwhile: `len` resolves every key afresh).
    fn stage(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<bool, Error> {
        let was = match value {
            Some(_) => false,
            None => match self.overlay.get(key) {
                Some(v) => v.is_some(),
                None => self.with_snapshot(|s| Self::db_contains(&s.data, key))?,
            },
        };
        if value.is_some() || was {
            self.overlay.put(key, value, || Ok(false))?;
        }
        Ok(was)
    }

    /// Applies a batch so that it lands in one commit: lengths redb would
    /// refuse are refused before anything is written; a failure past that
    /// (an I/O error, a panic in redb) aborts the open write transaction,
    /// so nothing of the batch stays, with the writes since the last
    /// commit.
    pub(crate) fn put_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        for op in ops {
            if let BatchOp::Insert(k, v) = *op {
                let stored = stored_len(self.form, v.len());
                if !txn::fits(k.len(), stored) {
                    return Err(err("insert")(StorageError::ValueTooLarge(k.len() + stored)));
                }
            }
        }
        if self.multi_process {
            // The overlay takes every write or, on an error, none: its
            // lookups come first.
            let mut known = Vec::with_capacity(ops.len());
            for op in ops {
                known.push(match *op {
                    BatchOp::Insert(..) => false,
                    BatchOp::Remove(k) => match self.overlay.get(k) {
                        Some(v) => v.is_some(),
                        None => self.with_snapshot(|s| Self::db_contains(&s.data, k))?,
                    },
                });
            }
            for (op, was) in ops.iter().zip(known) {
                match *op {
                    BatchOp::Insert(k, v) => {
                        self.overlay.put(k, Some(v), || Ok(false))?;
                    }
                    BatchOp::Remove(k) if was => {
                        self.overlay.put(k, None, || Ok(false))?;
                    }
                    BatchOp::Remove(_) => {}
                }
            }
            return Ok(());
        }
        for op in ops {
            let result = match *op {
                BatchOp::Insert(k, v) => self.put(k, Some(v)),
                BatchOp::Remove(k) => self.put(k, None),
            };
            if let Err(e) = result {
                self.abort();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Drops the open write transaction (redb aborts it) and its writes.
    pub(crate) fn abort(&mut self) {
        self.writing = None;
        self.pending_ops = 0;
        self.pending_bytes = 0;
    }

    /// Commits the pending writes, not durably, once they outgrow their
    /// bound.
    pub(crate) fn maybe_spill(&mut self) -> Result<(), Error> {
        let (ops, bytes) = if self.multi_process {
            (self.overlay.len(), self.overlay.bytes())
        } else {
            (self.pending_ops, self.pending_bytes)
        };
        if ops > self.max_ops || bytes > self.max_bytes {
            self.commit(!self.multi_process)?;
        }
        Ok(())
    }

    /// Writes the pending writes to the file in one transaction; `lazy`
    /// makes it non-durable. Does nothing when there is nothing to write
    /// and nothing to make durable.
    pub(crate) fn commit(&mut self, lazy: bool) -> Result<(), Error> {
        let damage = self.damage.clone();
        let result = damage.shield("commit", || self.commit_unshielded(lazy));
        if result.is_err() {
            // A failed commit consumed the transaction: what it held is
            // lost, as in a crash before the flush.
            self.abort();
        }
        result
    }

    fn commit_unshielded(&mut self, lazy: bool) -> Result<(), Error> {
        let changed = self.pending_ops > 0 || !self.overlay.is_empty() || !self.meta_overlay.is_empty();
        if !changed && (lazy || !self.undurable) {
            // A transaction that only looked (a remove of an absent key).
            self.abort();
            return Ok(());
        }
        // A cached read transaction would keep the pages this commit frees.
        self.invalidate();
        let Some(db) = self.handle.as_ref().and_then(Handle::db) else {
            return Err(Error::read_only("commit"));
        };
        let mut txn = match self.writing.take() {
            Some(w) => w.finish(),
            None => db.begin_write().map_err(err("begin a write transaction"))?,
        };
        let durability = if lazy { Durability::None } else { Durability::Immediate };
        txn.set_durability(durability).map_err(err("set the durability"))?;
        let form = self.form;
        let mut buf = Vec::new();
        {
            if !self.overlay.is_empty() {
                let mut data = txn.open_table(DATA).map_err(err("open the data table"))?;
                for (k, value) in self.overlay.writes() {
                    match value {
                        Some(v) => {
                            buf.clear();
                            form.store_into(k, v, &mut buf);
                            data.insert(k, buf.as_slice()).map_err(err("insert"))?;
                        }
                        None => {
                            data.remove(k).map_err(err("remove"))?;
                        }
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(err("open the metadata table"))?;
            for (name, v) in &self.meta_overlay {
                buf.clear();
                form.store_into(name.as_bytes(), v, &mut buf);
                meta.insert(name.as_bytes(), buf.as_slice()).map_err(err("set metadata"))?;
            }
            if changed {
                let current = self.stored_commit_number(form, &meta)?;
                buf.clear();
                form.store_into(COMMIT_KEY, &(current + 1).to_le_bytes(), &mut buf);
                meta.insert(COMMIT_KEY, buf.as_slice()).map_err(err("write the commit number"))?;
            }
        }
        txn.commit().map_err(err("commit"))?;
        self.overlay.clear();
        self.meta_overlay.clear();
        self.pending_ops = 0;
        self.pending_bytes = 0;
        self.undurable = lazy;
        self.committed();
        Ok(())
    }

    /// After a commit: drops the cached snapshot and tells the handles
    /// sharing the database to take theirs afresh.
    pub(crate) fn committed(&mut self) {
        self.invalidate();
        if let Some(Handle::Db(shared)) = &self.handle {
            shared.committed();
        }
    }

    /// Flag `n` (and creation): drops every entry and every metadata value
    /// (the commit number keeps growing), durably, leaving the file in the
    /// sealed format when `seal`, in its current one otherwise.
    pub(crate) fn clear_all(&mut self, seal: bool) -> Result<(), Error> {
        let Some(db) = self.handle.as_ref().and_then(Handle::db) else {
            return Err(Error::read_only("clear"));
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
        self.committed();
        Ok(())
    }
}
