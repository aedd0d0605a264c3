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
//! Within one process, `flock` would refuse a reader its writer's file
//! too (the lock belongs to an open file, not to a process), so a
//! read-only open finds a writable handle of the same process on the same
//! file (a process-wide table keyed by the file's device and inode) and
//! shares its engine: every read takes the engine's lock shared, every
//! write exclusive, so a reader never sees a change half-made. Such a
//! reader sees each write of the writer at once, synced or not (one
//! engine, as one handle would); its listings are collected under one
//! shared lock rather than streamed, so a listing it keeps open never
//! stalls the writer. When the writer closes (syncing as ever) the
//! readers keep the engine, and the file's lock turns shared, as theirs
//! would be: other processes may then read, and no writer, of this
//! process or another, opens until the last reader closes. A second
//! writable open in the process is refused as in another process
//! ([`OpenError::Locked`]). A compaction (a new file renamed in) is
//! followed by the readers that share the engine. After a commit that
//! failed part-way, readers sharing the engine read what the writer had
//! written; the file itself is rolled back at the next writable open.
//!
//! Handles are `Send + Sync`: reads (`get`, `get_many` under one lock,
//! listings, `len`, `check(false)`) run in parallel on several threads,
//! the bucket cache behind a lock of its own.
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
mod read;
mod share;
mod write;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use shelf_core::raw::{BackendOptions, Lifecycle, OpenBackend, Probe, apply_one_by_one, retry_while_locked};
use shelf_core::{
    BatchOp, Capabilities, CheckReport, Error, KvBackend, KvIter, KvKeys, OpenError, StorageStats,
};

use engine::Engine;
use error::GnuError;
use share::Shared;

/// The backend's registry name.
pub const NAME: &str = "gnu";

/// A database in GDBM's format (CPython's `dbm.gnu`).
#[derive(Debug)]
pub struct GnuBackend {
    /// The engine, shared with the readers of this process that joined a
    /// writer's (see the crate docs, "Locks"); `None` once closed.
    shared: Option<Arc<Shared>>,
    life: Lifecycle,
    /// This handle joined another handle's engine (a reader beside the
    /// writer of this process): its listings are collected, never held
    /// open across the writer's changes.
    joined: bool,
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

// Handles are shared between threads (`Arc<Shelf>`): reads take the
// engine's lock shared, writes exclusive.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<GnuBackend>();
};

impl GnuBackend {
    /// The shared engine of an open handle.
    fn shared(&self) -> Result<&Shared, Error> {
        self.life.live()?;
        self.shared.as_deref().ok_or(Error::Closed)
    }

    fn writable(&self, op: &'static str) -> Result<&Shared, Error> {
        self.life.writable(op)?;
        if self.poisoned {
            return Err(Error::Backend {
                backend: NAME,
                operation: "write after a failed commit",
                source: "a commit failed part-way; reopen the database to roll it back".into(),
            });
        }
        self.shared.as_deref().ok_or(Error::Closed)
    }

    /// Runs a change on the engine, exclusive; a failure poisons the
    /// handle (unless `harmless` says it changed nothing).
    fn change<T>(
        &mut self,
        op: &'static str,
        f: impl FnOnce(&mut Engine) -> Result<T, GnuError>,
        harmless: impl FnOnce(&GnuError) -> bool,
    ) -> Result<T, Error> {
        let result = f(&mut self.writable(op)?.write());
        if let Err(e) = &result
            && !harmless(e)
        {
            self.poisoned = true;
        }
        result.map_err(Error::from)
    }

    /// Every entry, read with `read`: streamed under the engine's shared
    /// lock, or, for a reader that joined a writer of this process,
    /// collected under it (a lock held by a listing the caller keeps open
    /// would stall the writer, on the caller's own thread perhaps).
    fn listing<T: 'static>(
        &self,
        read: read::ReadElement<T>,
    ) -> Result<Box<dyn Iterator<Item = Result<T, Error>> + '_>, Error> {
        let listing = read::Listing::new(self.shared()?.read(), read);
        if self.joined {
            return Ok(Box::new(listing.collect::<Vec<_>>().into_iter()));
        }
        Ok(Box::new(listing))
    }

    /// Opens a handle: a reader joins the engine of a writer of this
    /// process on the same file (the file's `flock` would refuse it),
    /// otherwise the file is opened and locked as libgdbm does.
    fn open_handle(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        let life = Lifecycle::new(options.flag);
        let handle = |shared, joined| GnuBackend { shared: Some(shared), life, joined, poisoned: false };
        if options.flag.is_writable() {
            let shared = Shared::new(open::open(path, options)?, true);
            share::register(&shared);
            return Ok(handle(shared, false));
        }
        // Each attempt looks for a writer of this process again: one may
        // have registered while this open waited for the lock.
        let mut at_once = options.clone();
        at_once.lock_timeout = None;
        retry_while_locked(path, options, || {
            if let Some(shared) = share::writer_of(path) {
                return Ok(Some(handle(shared, true)));
            }
            match open::open(path, &at_once) {
                Ok(engine) => Ok(Some(handle(Shared::new(engine, false), false))),
                Err(OpenError::Locked { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
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
        Self::open_handle(path, options)
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
        Ok(self.shared()?.read().get(key)?)
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        // One lock for the whole batch.
        let engine = self.shared()?.read();
        keys.iter().map(|k| engine.get(k).map_err(Error::from)).collect()
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        Ok(self.shared()?.read().find(key)?.is_some())
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.change("insert", |e| e.insert(key, value), |e| matches!(e, GnuError::Limit(_)))
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.change("remove", |e| e.remove(key), |_| false)
    }

    fn len(&self) -> Result<usize, Error> {
        Ok(self.shared()?.read().key_count()? as usize)
    }

    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        self.listing(read::key_of)
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        self.listing(read::record_of)
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.life.live()?;
        if self.life.is_read_only() || !self.shared()?.read().changed() {
            return Ok(());
        }
        self.change("flush", Engine::commit, |_| false)
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.life.is_closed() {
            return Ok(());
        }
        let flushed = if self.life.is_read_only() || self.poisoned { Ok(()) } else { self.flush() };
        self.life.close();
        let Some(shared) = self.shared.take() else { return flushed };
        if !self.life.is_read_only() {
            shared.leave_writer();
            // Readers of this process that joined keep the engine, and its
            // file's lock: shared from now on, as theirs would be.
            let _ = shared.read().file.try_lock_shared();
        }
        if let Some(last) = Arc::into_inner(shared) {
            // The lock goes with the descriptor: unlock now, not when a
            // forked child closes its copy.
            let _ = last.into_engine().file.unlock();
        }
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
        let r = self.change("compact", check::compact, |_| false);
        // A new file was renamed in: readers of this process find it there.
        if let Some(shared) = &self.shared {
            share::register(shared);
        }
        r
    }

    fn check(&mut self, repair: bool) -> Result<CheckReport, Error> {
        if !repair {
            return Ok(check::inspect(&self.shared()?.read()));
        }
        let r = self.change("repair", |e| check::check(e, true), |_| false);
        if let Some(shared) = &self.shared {
            share::register(shared);
        }
        r
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        let engine = self.shared()?.read();
        // What compact gives back is not known without reading every
        // bucket (space beyond the avail tables is not recorded).
        Ok(StorageStats::new(engine.len(), None, vec![engine.path.clone()]))
    }
}

impl Drop for GnuBackend {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
