//! The redb backend of shelf: one [redb](https://docs.rs/redb) database
//! file, with keys kept in byte order.
//!
//! ## Capabilities
//! Persistent, ordered keys ([`KvBackend::range`] streams from the file),
//! metadata, atomic batches, compaction ([`Database::compact`](redb::Database::compact)), integrity
//! checks ([`Database::check_integrity`](redb::Database::check_integrity)) and commit numbers. Keys and
//! values are any bytes, the empty key and the empty value included. With
//! [`BackendOptions::multi_process`] the file is opened in redb's
//! [`ConcurrencyMode::MultiWriter`](redb::ConcurrencyMode::MultiWriter), so several processes may read and write
//! it at once (each sees the others' writes once they are flushed); without
//! it one writable handle holds the file alone and a second writable open
//! fails with [`OpenError::Locked`]. Flag `r` opens the file read-only:
//! several readers may share it; a writer in another process excludes
//! them, and a reader opened beside a writer of the same process shares
//! that writer's redb database (redb locks the file for the whole process),
//! reading what the writer has committed (each sync shows in the reader's
//! next read). Reads take `&self`: one handle serves readers on several
//! threads at once (redb's MVCC).
//!
//! ## On-disk format
//! A plain redb 4 file (it starts with redb's magic number, which
//! [`probe`] looks for; redb locks the file itself, so no other file is
//! ever made beside it; a file this backend closed cleanly carries the
//! extended attribute `user.shelf.redb.clean`, see "Damage"). Two tables,
//! both `&[u8] -> &[u8]`:
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
//!   verifies branch checksums only at a writable open of a file changed
//!   since its clean close, after a crash, and in `check`);
//! - a writable open verifies every page checksum of redb's
//!   ([`Builder::set_check_integrity_on_open`](redb::Builder::set_check_integrity_on_open); about 10 ms for a 15 MB
//!   file) and refuses a damaged file with [`OpenError::Corrupted`] or
//!   [`OpenError::Backend`], unless the file is exactly as this backend's
//!   last clean close left it: redb recorded the clean shutdown inside the
//!   file, and the backend stamped it after the close with an extended
//!   attribute (`user.shelf.redb.clean`: inode, size and modification
//!   time), which every writable open removes. Such a reopen costs what
//!   redb's own open costs. A crash, a write or copy since, or a file
//!   system without user extended attributes means a full verification
//!   (redb also repairs, verifying first, any file it did not close
//!   cleanly); damage that keeps the modification time (a disk's silent
//!   bit rot) is met by the value checksums at read and by `check`;
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
//! In single-process mode writes go straight into an open redb write
//! transaction, which this handle's reads consult (so they are visible at
//! once, read-your-writes) and which costs no I/O until it commits; in
//! multi-process mode they go to an in-memory overlay instead, committed
//! in one transaction. Either reaches the file: at [`KvBackend::flush`]
//! (and [`KvBackend::close`]) in a durable commit
//! ([`Durability::Immediate`](redb::Durability::Immediate), fsynced before
//! `flush` returns), and earlier whenever the pending writes outgrow their
//! bound ([`DEFAULT_OVERLAY_BYTES`] bytes of keys and values or
//! [`DEFAULT_OVERLAY_OPS`] writes, see [`RedbBackend::set_overlay_bound`])
//! in a non-durable one ([`Durability::None`](redb::Durability::None); in
//! multi-process mode, where redb refuses non-durable commits, a durable
//! one). A crash loses what was not flushed, never part of a flush: redb's
//! commits are all-or-nothing, and a batch ([`KvBackend::apply_batch`])
//! always lands in a single commit. A failed commit, or a batch that fails
//! half-way for a reason other than a size redb refuses (checked first),
//! drops the open write transaction: the writes since the last commit are
//! lost as in a crash. redb recovers an interrupted file on the next
//! writable open.
//!
//! ## Reads and other details
//! Reads of a single-process handle share one cached read transaction
//! (behind a read-write lock, so threads read in parallel), taken afresh
//! after every commit of the database; in multi-process mode each read
//! takes a fresh one, so other processes' flushed writes show at once.
//! [`KvBackend::get_many`] reads every key in one read transaction. `len`
//! is O(1) in single-process mode and O(pending writes) in multi-process
//! mode. Flag `n` deletes the entries and the metadata in one durable
//! commit (the commit number keeps growing). A created file gets
//! `options.mode` (less the umask). `compact` and `check(true)` need the
//! database to themselves: they fail while a read-only handle of the
//! process shares it.

mod check;
mod clean;
mod format;
mod open;
mod overlay;
mod read;
mod shared;
mod snapshot;
mod txn;
mod write;

use std::collections::BTreeMap;
use std::fs;
use std::ops::Bound;
use std::path::Path;

use redb::TableDefinition;
use shelf_core::raw::{BackendOptions, Damage, Lifecycle, OpenBackend, Probe, ValueForm, range_is_empty};
use shelf_core::{
    BatchOp, Capabilities, CheckReport, Error, KvBackend, KvIter, KvKeys, KvRange, OpenError, StorageStats,
};

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

pub use open::{MAGIC, probe};
/// The engine, re-exported so a program (or a test) can open the file with
/// the very version this backend writes.
pub use redb;

use overlay::Overlay;
use snapshot::{Cache, Handle};
use txn::Writing;

/// The backend's registry name.
pub const NAME: &str = "redb";

/// Default bound of the pending writes (the open write transaction's, or
/// the overlay's in multi-process mode), in bytes of keys and values: past
/// it, they are committed (not durably) to the file.
pub const DEFAULT_OVERLAY_BYTES: usize = 64 << 20;

/// Default bound of the pending writes, in writes: past it, they are
/// committed (not durably) to the file.
pub const DEFAULT_OVERLAY_OPS: usize = 1_000_000;

/// The table of entries.
const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shelf");

/// The table of metadata and the commit number.
const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shelf_meta");

/// redb's errors as shelf's, naming the operation: the one conversion.
fn backend_err(operation: &'static str) -> impl FnOnce(redb::Error) -> Error {
    move |e| Error::Backend { backend: NAME, operation, source: Box::new(e) }
}

/// [`backend_err`] for any of redb's specific error types.
fn err<E: Into<redb::Error>>(operation: &'static str) -> impl FnOnce(E) -> Error {
    move |e| backend_err(operation)(e.into())
}

/// A shelf backend over one redb file.
///
/// Writes go straight into an open write transaction (into an overlay in
/// multi-process mode); reads see them there, and otherwise read a cached
/// read transaction (a fresh one per read in multi-process mode, so other
/// processes' commits show). Reads take `&self` and run in parallel on
/// several threads (redb's MVCC).
pub struct RedbBackend {
    /// The file, and how its damage is reported.
    damage: Damage,
    /// `None` once closed.
    handle: Option<Handle>,
    life: Lifecycle,
    multi_process: bool,
    /// Whether the file's values carry checksums ([`FORMAT_KEY`]).
    form: ValueForm,
    /// A read-only handle on a blank file: each snapshot looks for the
    /// format record a writer may have written since.
    format_pending: bool,
    /// Single-process mode: the write transaction holding the writes since
    /// the last commit.
    writing: Option<Writing>,
    /// Writes in `writing`, and their bytes, against the bound.
    pending_ops: usize,
    pending_bytes: usize,
    /// A sealed value on its way into the write transaction, kept to save
    /// an allocation per write.
    scratch: Vec<u8>,
    /// Multi-process mode: the writes since the last commit.
    overlay: Overlay,
    meta_overlay: BTreeMap<String, Vec<u8>>,
    /// A non-durable commit happened since the last durable one.
    undurable: bool,
    max_bytes: usize,
    max_ops: usize,
    cache: Cache,
}

/// The bound the lead's `KvBackend: Send + Sync` needs, checked here.
const _: fn() = || {
    fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<RedbBackend>();
};

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.damage.path())
            .field("open", &self.handle.is_some())
            .field("read_only", &self.life.is_read_only())
            .field("multi_process", &self.multi_process)
            .field("pending", &self.pending())
            .finish()
    }
}

impl RedbBackend {
    /// The database file.
    pub fn path(&self) -> &Path {
        self.damage.path()
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
        self.life.live()?;
        self.value(key)
    }

    fn get_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, Error> {
        self.life.live()?;
        self.value_with(key, f)
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.life.live()?;
        self.values(keys)
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        self.life.live()?;
        self.present(key)
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.life.writable("insert")?;
        self.put(key, Some(value))?;
        self.maybe_spill()
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.life.writable("remove")?;
        let was = self.put(key, None)?;
        self.maybe_spill()?;
        Ok(was)
    }

    fn len(&self) -> Result<usize, Error> {
        self.life.live()?;
        self.count()
    }

    fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        self.life.live()?;
        Ok(Box::new(self.merged(Bound::Unbounded, Bound::Unbounded)?.map(|r| r.map(|(k, _)| k))))
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        self.life.live()?;
        Ok(Box::new(self.merged(Bound::Unbounded, Bound::Unbounded)?))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.life.live()?;
        if self.life.is_read_only() {
            return Ok(());
        }
        self.commit(false)
    }

    fn close(&mut self) -> Result<(), Error> {
        if !self.life.close() {
            return Ok(());
        }
        let writer = !self.life.is_read_only();
        let flushed = if writer { self.commit(false) } else { Ok(()) };
        self.abort();
        self.invalidate();
        let closed = self.handle.take().map_or(Ok(()), |h| h.close(writer));
        self.overlay.clear();
        self.meta_overlay.clear();
        flushed.and(closed)
    }

    fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.life.live()?;
        if let Some(v) = self.meta_overlay.get(name) {
            return Ok(Some(v.clone()));
        }
        self.with_snapshot(|s| self.db_get(s, &s.meta, name.as_bytes()))
    }

    fn set_metadata(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.life.writable("set metadata")?;
        self.meta_overlay.insert(name.to_owned(), value.to_vec());
        Ok(())
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        self.life.writable("apply a batch")?;
        // The whole batch lands in one commit: the bound is looked at only
        // after it.
        self.put_batch(ops)?;
        self.maybe_spill()
    }

    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        self.life.live()?;
        if range_is_empty(lower, upper) {
            return Ok(Box::new(std::iter::empty()));
        }
        self.merged(lower, upper)
    }

    fn compact(&mut self) -> Result<u64, Error> {
        self.life.writable("compact")?;
        self.compact_file()
    }

    fn check(&mut self, repair: bool) -> Result<CheckReport, Error> {
        self.life.live()?;
        self.check_file(repair)
    }

    fn commit_number(&self) -> Result<u64, Error> {
        self.life.live()?;
        self.damage.shield("read the commit number", || {
            let snap = self.fresh_snapshot()?;
            match &snap.meta {
                None => Ok(0),
                Some(meta) => self.stored_commit_number(snap.form, meta),
            }
        })
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        self.life.live()?;
        let path = self.damage.path();
        let bytes = fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        // redb does not tell how much a compaction would give back.
        Ok(StorageStats::new(bytes, None, vec![path.to_owned()]))
    }
}

impl Drop for RedbBackend {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
#[cfg(test)]
mod tests {
    use shelf_core::Flag;

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
        assert_eq!(
            b.keys().unwrap().collect::<Result<Vec<_>, _>>().unwrap(),
            [b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
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

    #[test]
    fn a_clean_close_is_trusted_until_the_file_changes() {
        let (dir, mut b) = fresh();
        let path = dir.path().join("db");
        let value = b"a value that is easy to find on disk".to_vec();
        for i in 0..100u32 {
            b.insert(&i.to_be_bytes(), &value).unwrap();
        }
        b.close().unwrap();
        drop(b);
        if !clean::is_clean(&path) {
            eprintln!("skip: the file system of {} keeps no user extended attributes", path.display());
            return;
        }
        let b = RedbBackend::open(&path, &BackendOptions::with_flag(Flag::Write)).unwrap();
        assert!(!clean::is_clean(&path), "a writable handle may change the file: no stamp while it is open");
        drop(b);
        assert!(clean::is_clean(&path), "stamped again at the clean close");
        // A flip in a value, written outside redb after the clean close:
        // the writable open verifies every page and refuses the file.
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.windows(value.len()).position(|w| w == value.as_slice()).unwrap();
        bytes[at + 3] ^= 0x20;
        fs::write(&path, &bytes).unwrap();
        assert!(!clean::is_clean(&path));
        assert!(RedbBackend::open(&path, &BackendOptions::with_flag(Flag::Write)).is_err());
    }
}
