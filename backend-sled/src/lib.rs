//! The sled backend of shelf: a [sled](https://docs.rs/sled) 0.34
//! database directory, with keys kept in byte order.
//!
//! ## Capabilities
//! Persistent, ordered keys ([`KvBackend::range`] streams from sled),
//! metadata and atomic batches ([`sled::Batch`]). Keys and values are any
//! bytes, the empty key and the empty value included. One process holds
//! the directory at a time (sled locks its `db` file): an open from
//! another process fails with [`OpenError::Locked`], so `multi_process` is
//! false and asking for it is refused with [`OpenError::Unsupported`].
//! Within one process, handles on one directory share one `sled::Db`
//! (found through a process-wide table keyed by the directory's device
//! and inode, holding it weakly: the last handle's close closes sled):
//! any number of read-only handles and at most one writable handle at a
//! time, so a second writable open fails with [`OpenError::Locked`] as in
//! two processes. A reader beside the writer sees every write of the
//! writer at once, flushed or not (they are one engine), and keeps
//! working after the writer closes; such a reader does not check a full
//! listing against a count (the entries change under it; see Damage).
//! The handle is `Send + Sync`: sled's trees take concurrent reads.
//! No compaction, integrity check or commit
//! numbers: sled 0.34 offers nothing that would make them honest.
//! [`KvBackend::len`] walks the tree (sled does not count its entries).
//!
//! Flag `r` is enforced by this backend: sled has no read-only mode, so it
//! opens its files read-write (and takes the lock) even then, but every
//! write through the handle is refused with [`Error::ReadOnly`]. On a
//! read-only file system (or a directory this process may not write), flag
//! `r` copies the directory into a private temporary directory (under
//! `$TMPDIR`, removed at close) and reads the copy: it costs a copy of the
//! files at open. Flags `w`, `c` and `n` there fail with [`OpenError::Io`]
//! naming the path and the cause ("Read-only file system").
//! `options.mode` is not applied: sled creates its files itself.
//!
//! ## On-disk format
//! sled's own: a directory holding `conf` (the configuration), `db` (the
//! log-structured page store), `blobs/` and, after a while, `snap.*`
//! snapshot files, plus shelf's marker file [`MARKER_FILE`]. Two trees:
//! `shelf` holds the entries, key bytes to value bytes, and `shelf_meta`
//! the metadata, the name's UTF-8 bytes to the value. sled's default tree
//! is left empty.
//!
//! The metadata tree holds a marker under [`MARKER_KEY`], written and
//! flushed when the database is created: an existing directory without it
//! is refused with [`OpenError::Corrupted`] (sled recovers a garbage log as
//! an empty database, which must not pass for the shelf that was there).
//! Its value is the layout:
//! - layout 2 (written since value checksums): every stored value, entries
//!   and metadata, ends with a checksum over its key and value
//!   ([`shelf_core::raw::seal`]), verified on every read; the metadata tree
//!   also holds the state record under [`STATE_KEY`] (the number of
//!   entries, the flush generation, and whether writes may have followed
//!   the last flush), and the directory holds [`MARKER_FILE`] with the
//!   generation of the last completed flush;
//! - layout 1 (`"1"`, written before): values as given, no state record.
//!   Such a database stays readable and writable in layout 1 (its values
//!   are not rewritten); flag `n` starts it afresh in layout 2, and
//!   `shelf convert` copies it into a new one.
//!
//! [`probe`] recognises a directory holding `conf` and `db` with either
//! [`MARKER_FILE`] or a `conf` in sled's own format (text, then a CRC-32).
//! A directory holding [`MARKER_FILE`] whose `conf` or `db` is gone is
//! broken: the probe calls it foreign and [`SledBackend::open`] reports
//! [`OpenError::Corrupted`] naming what is missing; nothing writes into it.
//!
//! ## Damage
//! What a layout 2 database guarantees when its files were damaged (a
//! flipped byte anywhere, say):
//! - a read never returns a changed value: a value, or the key it is
//!   stored under, that does not match its checksum is [`Error::Corrupted`]
//!   naming the key (a damaged key that no longer matches the key asked
//!   for reads as absent; a full listing reports it);
//! - a listing over every key (`iter`, `keys`, `len`, `range` unbounded at
//!   both ends) that ends must have yielded as many entries as the handle
//!   counts, or it ends with [`Error::Corrupted`]: never a shorter list.
//!   The count is exact from the open on, kept by every write of the
//!   handle, when the last session ended with a flush (or close); after a
//!   crash, a writable open recounts (so damage and crash together go
//!   undetected) and a read-only open does not check the count, nor does a
//!   read-only handle whose engine a writable handle of the process shares
//!   or shared;
//! - sled stops recovering its log at the first damaged message, silently
//!   dropping every write after it: the open compares the generation of the
//!   recovered state record with [`MARKER_FILE`]'s and reports
//!   [`OpenError::Corrupted`] when a completed flush was lost;
//! - a panic inside sled is caught, printing nothing, and becomes
//!   [`Error::Corrupted`].
//!
//! Layout 1 databases have none of this beyond sled's own checks.
//!
//! ## Durability
//! Writes go straight to sled, which buffers them and writes its log in the
//! background (about every 500 ms). [`KvBackend::flush`] calls
//! [`sled::Tree::flush`] on the `Db`, which writes every dirty buffer of every tree and
//! fsyncs the `db` file before it returns, so every write before `flush` is
//! recovered after a crash. A crash may also keep some later writes (those
//! the background flusher wrote), but never part of a batch: sled recovers a
//! batch whole or not at all.

mod open;
mod read;
mod share;
mod state;

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shelf_core::raw::{BackendOptions, Damage, Lifecycle, OpenBackend, Probe, ValueForm, range_is_empty};
use shelf_core::{BatchOp, Capabilities, Error, KvBackend, KvIter, KvKeys, KvRange, OpenError, StorageStats};

pub use open::probe;
use share::Open;
/// The engine, re-exported so a program (or a test) can open the directory
/// with the very version this backend writes.
pub use sled;
pub use state::{MARKER_FILE, MARKER_MAGIC, STATE_KEY};

/// The backend's registry name.
pub const NAME: &str = "sled";

/// The tree of entries.
pub const DATA_TREE: &str = "shelf";

/// The tree of metadata.
pub const META_TREE: &str = "shelf_meta";

/// The key of the marker every shelf sled database holds in its metadata
/// tree (not UTF-8, so no metadata name can take it).
pub const MARKER_KEY: &[u8] = b"\xffshelf:sled";

/// The marker's value in layout 1 (values without checksums).
const LAYOUT_1: &[u8] = b"1";

/// The marker's value in layout 2 (sealed, like every value of it).
const LAYOUT_2: &[u8] = b"2";

/// The longest [`KvBackend::close`] waits for sled's threads to let go of
/// the lock.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// sled's errors as shelf's, naming the operation: the one conversion.
fn err(operation: &'static str) -> impl FnOnce(sled::Error) -> Error {
    move |e| Error::Backend { backend: NAME, operation, source: Box::new(e) }
}

/// A shelf backend over one sled database directory.
pub struct SledBackend {
    /// The directory, and how its damage is reported.
    damage: Damage,
    /// `None` once closed; shared with the other handles of this process
    /// on the directory.
    open: Option<Arc<Open>>,
    life: Lifecycle,
    /// Layout 2 (sealed): values carry checksums and the state record is
    /// kept.
    form: ValueForm,
    /// The exact number of entries, where known (see the crate docs).
    count: Option<u64>,
    /// The generation of the last flush (layout 2).
    generation: u64,
    /// A state record saying "not clean" is in the log since the last flush.
    dirty: bool,
    /// The private copy read on a read-only file system; dropped after the
    /// handle (fields drop in order), which removes it.
    copy: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SledBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledBackend")
            .field("path", &self.damage.path())
            .field("open", &self.open.is_some())
            .field("read_only", &self.life.is_read_only())
            .field("sealed", &self.form.is_sealed())
            .field("copy", &self.copy.as_ref().map(|d| d.path().to_owned()))
            .finish()
    }
}

impl SledBackend {
    /// The database directory.
    pub fn path(&self) -> &Path {
        self.damage.path()
    }

    /// The sled handle, whatever the lifecycle says (`close` still flushes
    /// through it).
    fn handle(&self) -> Result<&Open, Error> {
        self.open.as_deref().ok_or(Error::Closed)
    }

    /// The sled handle of an open backend.
    fn engine(&self) -> Result<&Open, Error> {
        self.life.live()?;
        self.handle()
    }

    /// The sled handle of an open, writable backend.
    fn engine_for(&self, operation: &'static str) -> Result<&Open, Error> {
        self.life.writable(operation)?;
        self.handle()
    }
}

impl OpenBackend for SledBackend {
    const NAME: &'static str = NAME;
    const CAPABILITIES: Capabilities = {
        let mut c = Capabilities::NONE;
        c.persistent = true;
        c.ordered_keys = true;
        c.metadata = true;
        c.atomic_batch = true;
        c
    };

    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        SledBackend::open(path, options)
    }

    fn probe(path: &Path) -> Probe {
        probe(path)
    }
}

impl KvBackend for SledBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let open = self.engine()?;
        let stored =
            self.damage.shield("read a value", || open.data.get(key).map_err(err("read a value")))?;
        stored.map(|v| self.opened(key, v)).transpose()
    }

    fn get_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, Error> {
        let open = self.engine()?;
        let stored =
            self.damage.shield("read a value", || open.data.get(key).map_err(err("read a value")))?;
        let Some(stored) = stored else { return Ok(false) };
        // sled hands out a reference-counted buffer: lent as it is, checked.
        f(self.form.open(key, &stored, &self.damage)?);
        Ok(true)
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        let open = self.engine()?;
        self.damage.shield("read a value", || open.data.contains_key(key).map_err(err("read a value")))
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.life.writable("insert")?;
        self.before_write()?;
        let open = self.engine_for("insert")?;
        let stored = self.form.store(key, value);
        let old = self.damage.shield("insert", || open.data.insert(key, stored).map_err(err("insert")))?;
        if old.is_none() {
            self.count = self.count.map(|n| n + 1);
        }
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.life.writable("remove")?;
        self.before_write()?;
        let open = self.engine_for("remove")?;
        let old = self.damage.shield("remove", || open.data.remove(key).map_err(err("remove")))?;
        if old.is_some() {
            self.count = self.count.map(|n| n.saturating_sub(1));
        }
        Ok(old.is_some())
    }

    fn len(&self) -> Result<usize, Error> {
        self.count_entries()
    }

    fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.walk(Bound::Unbounded, Bound::Unbounded)?.next().transpose()?.is_none())
    }

    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        Ok(Box::new(self.walk(Bound::Unbounded, Bound::Unbounded)?.map(|r| r.map(|(k, _)| k))))
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        Ok(Box::new(self.walk(Bound::Unbounded, Bound::Unbounded)?))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.life.live()?;
        if self.life.is_read_only() {
            return Ok(());
        }
        self.flush_all()
    }

    fn close(&mut self) -> Result<(), Error> {
        if !self.life.close() {
            return Ok(());
        }
        let flushed = if self.life.is_read_only() { Ok(()) } else { self.flush_all() };
        // Dropping the last handle stops sled's flusher; its thread pool
        // may hold the `db` file (and its lock) a moment longer.
        self.release();
        self.copy = None;
        flushed
    }

    fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let open = self.engine()?;
        let stored = self
            .damage
            .shield("read metadata", || open.meta.get(name.as_bytes()).map_err(err("read metadata")))?;
        stored.map(|v| self.opened(name.as_bytes(), v)).transpose()
    }

    fn set_metadata(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        let open = self.engine_for("set metadata")?;
        let stored = self.form.store(name.as_bytes(), value);
        self.damage.shield("set metadata", || {
            open.meta.insert(name.as_bytes(), stored).map(drop).map_err(err("set metadata"))
        })
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        self.life.writable("apply a batch")?;
        self.before_write()?;
        let open = self.engine_for("apply a batch")?;
        // The change in the number of entries: each key's presence before
        // the batch, then the batch's ops in order.
        let mut present: std::collections::BTreeMap<&[u8], bool> = std::collections::BTreeMap::new();
        let mut delta: i64 = 0;
        let mut batch = sled::Batch::default();
        for op in ops {
            let k = match *op {
                BatchOp::Insert(k, _) | BatchOp::Remove(k) => k,
            };
            let here = match present.get(k) {
                Some(&h) => h,
                None if self.count.is_some() => self
                    .damage
                    .shield("read a value", || open.data.contains_key(k).map_err(err("read a value")))?,
                None => false,
            };
            match *op {
                BatchOp::Insert(k, v) => {
                    delta += !here as i64;
                    present.insert(k, true);
                    batch.insert(k, self.form.store(k, v));
                }
                BatchOp::Remove(k) => {
                    delta -= here as i64;
                    present.insert(k, false);
                    batch.remove(k);
                }
            }
        }
        self.damage.shield("apply a batch", || open.data.apply_batch(batch).map_err(err("apply a batch")))?;
        self.count = self.count.map(|n| n.saturating_add_signed(delta));
        Ok(())
    }

    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        self.life.live()?;
        if range_is_empty(lower, upper) {
            return Ok(Box::new(std::iter::empty()));
        }
        self.walk(lower, upper)
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        self.life.live()?;
        let path = self.damage.path();
        let mut files = Vec::new();
        let bytes = read::walk_files(path, &mut files).map_err(|e| Error::io(path, e))?;
        files.sort();
        // sled does not tell how much of its log is garbage.
        Ok(StorageStats::new(bytes, None, files))
    }
}

// The handle is shared between threads (`Arc<Shelf>`): sled's trees are.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<SledBackend>();
};

impl Drop for SledBackend {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
#[cfg(test)]
mod tests {
    use shelf_core::Flag;

    use super::*;

    #[test]
    fn a_created_directory_is_recognised_and_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        assert_eq!(probe(&path), Probe::Absent);
        let mut b = SledBackend::open(&path, &BackendOptions::with_flag(Flag::Create)).unwrap();
        assert_eq!(probe(&path), Probe::Mine);
        b.insert(b"", b"").unwrap();
        assert_eq!(b.get(b"").unwrap(), Some(Vec::new()));
        assert_eq!(b.metadata("protocol").unwrap(), None);
        assert_eq!(
            b.keys().unwrap().collect::<Result<Vec<_>, _>>().unwrap(),
            [Vec::<u8>::new()],
            "the marker is no key"
        );
        b.close().unwrap();
        let b = SledBackend::open(&path, &BackendOptions::with_flag(Flag::Read)).unwrap();
        assert_eq!(b.len().unwrap(), 1);
        assert_eq!(probe(dir.path()), Probe::Foreign);
    }

    fn opts(flag: Flag) -> BackendOptions {
        let mut o = BackendOptions::with_flag(flag);
        o.lock_timeout = Some(Duration::from_millis(100));
        o
    }

    #[test]
    fn a_reader_beside_the_writer_shares_its_engine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = SledBackend::open(&path, &opts(Flag::Create)).unwrap();
        w.insert(b"a", b"1").unwrap();
        w.flush().unwrap();
        let r = SledBackend::open(&path, &opts(Flag::Read)).unwrap();
        assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1"[..]), "synced data");
        w.insert(b"b", b"2").unwrap();
        assert_eq!(r.get(b"b").unwrap().as_deref(), Some(&b"2"[..]), "written data, one engine");
        w.flush().unwrap();
        assert_eq!(r.len().unwrap(), 2, "the reader's listing follows the writer's");
        let second = SledBackend::open(&path, &opts(Flag::Write));
        assert!(matches!(second, Err(OpenError::Locked { .. })), "{:?}", second.map(|_| ()));
        assert!(matches!(r.get(b"a"), Ok(Some(_))), "a refused writer leaves the reader alone");
        drop(w);
        assert_eq!(r.get(b"b").unwrap().as_deref(), Some(&b"2"[..]), "the reader outlives the writer");
        assert_eq!(r.keys().unwrap().collect::<Result<Vec<_>, _>>().unwrap().len(), 2);
        // The writer's place is free again: a new writer joins the reader.
        let mut w2 = SledBackend::open(&path, &opts(Flag::Write)).unwrap();
        w2.insert(b"c", b"3").unwrap();
        assert_eq!(r.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
        w2.close().unwrap();
        drop(r);
        // The last handle closed sled: the directory opens again, alone.
        let again = SledBackend::open(&path, &opts(Flag::Read)).unwrap();
        assert_eq!(again.len().unwrap(), 3);
    }

    #[test]
    fn readers_share_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = SledBackend::open(&path, &opts(Flag::Create)).unwrap();
        for i in 0..100u32 {
            w.insert(&i.to_le_bytes(), &i.to_be_bytes()).unwrap();
        }
        w.flush().unwrap();
        let w = std::sync::Arc::new(w);
        let seen: Vec<usize> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let w = &w;
                    s.spawn(move || {
                        (0..100u32).filter(|i| w.get(&i.to_le_bytes()).unwrap().is_some()).count()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(seen, [100, 100]);
    }

    #[test]
    fn an_unmarked_sled_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = sled::open(&path).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
        drop(db);
        shelf_core::raw::wait_for_release(&path.join("db"), RELEASE_WAIT);
        let res = SledBackend::open(&path, &BackendOptions::with_flag(Flag::Write));
        assert!(matches!(res, Err(OpenError::Corrupted { .. })), "{:?}", res.map(|_| ()));
    }
}
