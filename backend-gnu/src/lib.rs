//! The `gnu` backend of shelf: GDBM's file format, read and written in
//! pure Rust (no libgdbm), so a shelf CPython's `dbm.gnu` wrote opens here
//! and one written here opens in `dbm.gnu` and `shelve.open`.
//!
//! ## Capabilities
//! persistent; `python_format` (values are pickles when the shelf records
//! no protocol: GDBM has no place for metadata, so `metadata` is false, as
//! for `dumb`); not ordered (GDBM's hash order, the order `dbm.gnu`'s
//! `keys()` gives); not `multi_process` (one writer or many readers, as
//! libgdbm locks); `compact` (GDBM's reorganize: the live entries are
//! rewritten into a temporary file renamed over the database); `check`
//! (every structure and entry, see Damage); no commit numbers (GDBM's
//! standard format has no place for one).
//!
//! ## On-disk format
//! One file, exactly at the given path: GDBM's standard format as libgdbm
//! 1.23 writes it (gdbmdefs.h): block 0 holds the header and the avail
//! table of free regions, a directory of `2^dir_bits` bucket addresses
//! indexed by the top bits of a key's 31-bit hash, hash buckets (small
//! open-addressing tables of elements: hash, first four key bytes, the
//! address of the key and value stored together, their sizes) and the
//! records. New files are what Debian's libgdbm writes on x86-64: the
//! 64-bit offset variant (magic `0x13579acf`), little-endian, 4096-byte
//! blocks, never the extended "numsync" format (CPython's `whichdb` does
//! not know it). Existing files of the 32-bit offset variant (`0x13579acd`),
//! the original magic (`0x13579ace`, read with 64-bit offsets as a 64-bit
//! libgdbm reads it) and both numsync variants (whose sync counter is
//! kept counting) are read and written in their own variant; a
//! byte-swapped (big-endian) file is refused with
//! [`OpenError::Unsupported`] naming it.
//!
//! This backend appends every new record, bucket and directory at the end
//! of the file and gives the space a change frees to GDBM's header avail
//! table (libgdbm reuses it; when the table is full the space waits for
//! [`KvBackend::compact`]); it never allocates from the avail tables
//! itself, so a commit overwrites in place only the header, changed
//! buckets and the directory.
//!
//! ## Locks
//! libgdbm 1.23 locks the database file itself with `flock` (falling
//! back to `lockf`/`fcntl` only where `flock` is unavailable): shared for
//! a reader, exclusive for a writer, without waiting. This backend takes
//! the same `flock` on the same file, so a CPython `dbm.gnu` writer and a
//! shelf writer exclude each other, and readers exclude writers. A
//! second opener retries for [`BackendOptions::lock_timeout`] (libgdbm
//! fails at once).
//!
//! ## Durability
//! Writes are visible at once and durable at [`KvBackend::flush`]: the
//! bytes the commit will overwrite are saved in an undo journal
//! `NAME.shelf-gnu-journal` (fsynced, with its directory entry), the new
//! bytes are written and the file fsynced, then the journal is removed
//! and the directory fsynced: that removal is the commit point. The
//! journal exists only while a commit is in flight. After a crash (even
//! power loss) the next writer writes the old bytes back and cuts the
//! file to its old length; a reader reads through the journal without
//! changing anything. So nothing synced is lost, nothing half-written is
//! read, and the file always opens. Creation and flag `n` build the new
//! file under a temporary name and link or rename it into place.
//!
//! Unwritten appends are held in memory until the commit (bytes past the
//! header's `next_block` would make libgdbm refuse the file as needing
//! recovery); an insert that brings them to 16 MiB commits on its own, so
//! memory stays bounded and such writes become durable early.
//!
//! libgdbm does not know the journal: a CPython process that opens a file
//! left by a crash of a shelf writer in the middle of a commit, before any
//! shelf process reopened it, may see that commit half-applied.
//!
//! ## Damage
//! Detected and reported as [`Error::Corrupted`] / [`OpenError::Corrupted`],
//! never a panic: a header whose sizes disagree (GDBM's own checks:
//! block, directory and bucket sizes, directory bits, the avail table's
//! count and entries within the file), a directory entry outside the
//! file, a bucket with a bad count, bit depth or avail table, an element
//! whose key and value lie past the end of the file. Every read is
//! bounded by the file's length, so damage cannot cause an unbounded
//! allocation, and every loop by the directory's or a bucket's size.
//! [`KvBackend::check`] also reads every key and finds elements whose
//! stored key does not hash to them, directory ranges that disagree with
//! a bucket's bit depth, and records that overlap; `check(true)` rebuilds
//! the file from the entries that are sound and names the keys it drops.
//! A value changed on disk inside its own bytes is not detectable: GDBM
//! keeps no checksums.

mod check;
mod engine;
mod error;
mod format;
mod journal;
mod open;
mod write;

#[cfg(test)]
mod tests;

use std::path::Path;

use shelf_core::raw::{BackendOptions, Lifecycle, OpenBackend, Probe, apply_one_by_one};
use shelf_core::{
    BatchOp, Capabilities, CheckReport, Error, KvBackend, KvIter, KvKeys, OpenError, StorageStats,
};

use engine::Engine;
use error::GnuError;

/// The backend's registry name.
pub const NAME: &str = "gnu";

/// A database in GDBM's format (CPython's `dbm.gnu`).
#[derive(Debug)]
pub struct GnuBackend {
    engine: Engine,
    life: Lifecycle,
    /// Set when a commit failed part-way: writes are refused until the
    /// database is reopened (which rolls the commit back).
    poisoned: bool,
}

const CAPABILITIES: Capabilities = {
    let mut c = Capabilities::NONE;
    c.persistent = true;
    c.python_format = true;
    c.compact = true;
    c.check = true;
    c
};

impl GnuBackend {
    fn writable(&self, op: &'static str) -> Result<(), Error> {
        self.life.writable(op)?;
        if self.poisoned {
            return Err(Error::Backend {
                backend: NAME,
                operation: "write after a failed commit",
                source: "a commit failed part-way; reopen the database to roll it back".into(),
            });
        }
        Ok(())
    }

    fn guard<T>(&mut self, result: Result<T, GnuError>) -> Result<T, Error> {
        if result.is_err() {
            self.poisoned = true;
        }
        result.map_err(Error::from)
    }
}

impl OpenBackend for GnuBackend {
    const NAME: &'static str = NAME;
    const CAPABILITIES: Capabilities = CAPABILITIES;

    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        if options.multi_process && options.flag.is_writable() {
            return Err(OpenError::Unsupported {
                backend: NAME,
                operation: "multi_process writers (GDBM allows one writer or many readers)".into(),
            });
        }
        let engine = open::open(path, options)?;
        Ok(GnuBackend { engine, life: Lifecycle::new(options.flag), poisoned: false })
    }

    fn probe(path: &Path) -> Probe {
        open::probe(path)
    }
}

impl KvBackend for GnuBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.life.live()?;
        Ok(self.engine.get(key)?)
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        self.life.live()?;
        Ok(self.engine.find(key)?.is_some())
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.writable("insert")?;
        match self.engine.insert(key, value) {
            Err(GnuError::Limit(what)) => Err(Error::from(GnuError::Limit(what))),
            other => self.guard(other),
        }
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.writable("remove")?;
        let r = self.engine.remove(key);
        self.guard(r)
    }

    fn len(&self) -> Result<usize, Error> {
        self.life.live()?;
        Ok(self.engine.key_count()? as usize)
    }

    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        self.life.live()?;
        let mut keys = Vec::new();
        for adr in self.engine.bucket_order() {
            for e in self.engine.elements(adr)? {
                keys.push(self.engine.read_at(e.ptr, e.key_size as usize)?);
            }
        }
        Ok(Box::new(keys.into_iter().map(Ok)))
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        self.life.live()?;
        let engine = &self.engine;
        let buckets = engine.bucket_order();
        let iter = buckets.into_iter().flat_map(move |adr| -> Box<dyn Iterator<Item = Result<_, Error>>> {
            match engine.elements(adr) {
                Ok(elems) => {
                    Box::new(elems.into_iter().map(move |e| engine.record_of(&e).map_err(Error::from)))
                }
                Err(e) => Box::new(std::iter::once(Err(Error::from(e)))),
            }
        });
        Ok(Box::new(iter))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.life.live()?;
        if self.life.is_read_only() || !self.engine.changed() {
            return Ok(());
        }
        self.writable("flush")?;
        let r = self.engine.commit();
        self.guard(r)
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.life.is_closed() {
            return Ok(());
        }
        let flushed = if self.life.is_read_only() || self.poisoned { Ok(()) } else { self.flush() };
        self.life.close();
        // The lock goes with the descriptor: unlock now, not at drop.
        let _ = self.engine.file.unlock();
        flushed
    }

    fn metadata(&self, _name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.life.live()?;
        Ok(None)
    }

    fn set_metadata(&mut self, _name: &str, _value: &[u8]) -> Result<(), Error> {
        self.writable("set metadata")?;
        Err(Error::Unsupported { backend: NAME, operation: "metadata" })
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        self.writable("apply a batch")?;
        apply_one_by_one(self, ops)
    }

    fn compact(&mut self) -> Result<u64, Error> {
        self.writable("compact")?;
        let r = check::compact(&mut self.engine);
        self.guard(r)
    }

    fn check(&mut self, repair: bool) -> Result<CheckReport, Error> {
        self.life.live()?;
        if repair {
            self.writable("repair")?;
        }
        let r = check::check(&mut self.engine, repair);
        self.guard(r)
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        self.life.live()?;
        // What compact gives back is not known without reading every
        // bucket (space beyond the avail tables is not recorded).
        Ok(StorageStats::new(self.engine.len(), None, vec![self.engine.path.clone()]))
    }
}

impl Drop for GnuBackend {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
