//! The sled backend of shelf: a [sled](https://docs.rs/sled) 0.34
//! database directory, with keys kept in byte order.
//!
//! ## Capabilities
//! Persistent, ordered keys ([`KvBackend::range`] streams from sled),
//! metadata and atomic batches ([`sled::Batch`]). Keys and values are any
//! bytes, the empty key and the empty value included. One handle holds the
//! directory at a time (sled locks its `db` file): a second open, in this
//! process or another, fails with [`OpenError::Locked`], so
//! `multi_process` is false and asking for it is refused with
//! [`OpenError::Unsupported`]. No compaction, integrity check or commit
//! numbers: sled 0.34 offers nothing that would make them honest.
//! [`KvBackend::len`] walks the tree (sled does not count its entries).
//!
//! Flag `r` is enforced by this backend: sled has no read-only mode, so it
//! opens its files read-write (and takes the lock) even then, but every
//! write through the handle is refused with [`Error::ReadOnly`].
//! `options.mode` is not applied: sled creates its files itself.
//!
//! ## On-disk format
//! sled's own: a directory holding `conf` (the configuration), `db` (the
//! log-structured page store), `blobs/` and, after a while, `snap.*`
//! snapshot files. [`probe`] recognises a directory with `conf` and `db`.
//! Two trees: `shelf` holds the entries, key bytes to value bytes, and
//! `shelf_meta` the metadata, the name's UTF-8 bytes to the value. sled's
//! default tree is left empty. The metadata tree also holds a marker,
//! [`MARKER_KEY`], written and flushed when the database is created: an
//! existing directory without it is refused with [`OpenError::Corrupted`]
//! (sled recovers a garbage log as an empty database, which must not pass
//! for the shelf that was there). Flag `n` starts such a directory afresh.
//!
//! ## Durability
//! Writes go straight to sled, which buffers them and writes its log in the
//! background (about every 500 ms). [`KvBackend::flush`] calls
//! [`sled::Tree::flush`] on the `Db`, which writes every dirty buffer of every tree and
//! fsyncs the `db` file before it returns, so every write before `flush` is
//! recovered after a crash. A crash may also keep some later writes (those
//! the background flusher wrote), but never part of a batch: sled recovers a
//! batch whole or not at all.

use std::fs;
use std::ops::Bound;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shelf_core::{
    BackendOptions, BatchOp, Capabilities, Error, Flag, KvBackend, KvIter, KvRange, OpenBackend, OpenError,
    Probe, StorageStats, range_is_empty,
};

/// The backend's registry name.
pub const NAME: &str = "sled";

/// The tree of entries.
pub const DATA_TREE: &str = "shelf";

/// The tree of metadata.
pub const META_TREE: &str = "shelf_meta";

/// The key of the marker every shelf sled database holds in its metadata
/// tree (not UTF-8, so no metadata name can take it).
pub const MARKER_KEY: &[u8] = b"\xffshelf:sled";

/// The marker's value: the version of this layout.
const MARKER_VALUE: &[u8] = b"1";

/// How long to sleep between two attempts on a locked directory.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// The longest [`KvBackend::close`] waits for sled's threads to let go of
/// the lock.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// A shelf backend over one sled database directory.
pub struct SledBackend {
    path: PathBuf,
    open: Option<Open>,
    read_only: bool,
}

/// The sled handle and its two trees.
struct Open {
    db: sled::Db,
    data: sled::Tree,
    meta: sled::Tree,
}

impl std::fmt::Debug for SledBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledBackend")
            .field("path", &self.path)
            .field("open", &self.open.is_some())
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// What is at `path` for this backend: a directory holding sled's `conf`
/// and `db` files is [`Probe::Mine`]; nothing is [`Probe::Absent`]; anything
/// else (a file, an empty or other directory) is [`Probe::Foreign`].
pub fn probe(path: &Path) -> Probe {
    match fs::metadata(path) {
        Err(_) => Probe::Absent,
        Ok(m) if m.is_dir() && path.join("conf").is_file() && path.join("db").is_file() => Probe::Mine,
        Ok(_) => Probe::Foreign,
    }
}

fn err(operation: &'static str) -> impl FnOnce(sled::Error) -> Error {
    move |e| Error::Backend { backend: NAME, operation, source: Box::new(e) }
}

/// Why one attempt to open failed.
enum Attempt {
    Locked,
    Failed(OpenError),
}

fn is_lock_error(e: &sled::Error) -> bool {
    // sled 0.34 reports a held lock as an `Io` error of kind `Other` whose
    // message starts so (config.rs, `try_lock`).
    matches!(e, sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock"))
}

fn map_open_error(path: &Path, e: sled::Error) -> Attempt {
    if is_lock_error(&e) {
        return Attempt::Locked;
    }
    match e {
        sled::Error::Corruption { at, .. } => Attempt::Failed(OpenError::Corrupted {
            path: path.to_owned(),
            detail: match at {
                Some(at) => format!("sled found corrupted data at {at:?}"),
                None => "sled found corrupted data".to_owned(),
            },
        }),
        sled::Error::Io(source) => Attempt::Failed(OpenError::Io { path: path.to_owned(), source }),
        other => Attempt::Failed(OpenError::Backend {
            backend: NAME,
            path: path.to_owned(),
            source: Box::new(other),
        }),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "sled panicked".to_owned()
    }
}

/// The total size of the files below `dir`, and the files.
fn walk_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += walk_files(&entry.path(), files)?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
            files.push(entry.path());
        }
    }
    Ok(total)
}

/// Waits (at most [`RELEASE_WAIT`]) until no one holds the lock of the
/// `db` file, so that a close is followed by a successful open: sled's
/// background threads drop their handle of the file shortly after the
/// database itself.
fn wait_for_release(db_file: &Path) {
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        let Ok(f) = fs::File::open(db_file) else { return };
        match f.try_lock() {
            Ok(()) => {
                let _ = f.unlock();
                return;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            Err(_) => return,
        }
    }
}

fn owned_bound(b: Bound<&[u8]>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl SledBackend {
    /// Opens the sled directory at `path` with dbm's flags: `r` and `w` need
    /// it to exist; `c` creates it; `n` empties an existing one. A path
    /// holding anything but a sled database is never touched.
    ///
    /// # Errors
    /// [`OpenError::NotFound`] for `r`/`w` on a missing directory,
    /// [`OpenError::Undetectable`] for a path that holds something else,
    /// [`OpenError::Locked`] when another handle holds the directory (after
    /// waiting `options.lock_timeout`), [`OpenError::Unsupported`] for
    /// `multi_process`, [`OpenError::Corrupted`] for damaged files, and
    /// engine errors.
    pub fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        if options.multi_process {
            return Err(OpenError::Unsupported {
                backend: NAME,
                what: "multi_process (sled locks its directory to one handle)".to_owned(),
            });
        }
        let mut created = false;
        match probe(path) {
            Probe::Foreign => return Err(OpenError::Undetectable { path: path.to_owned() }),
            Probe::Absent if !options.flag.creates() => {
                return Err(OpenError::NotFound { path: path.to_owned(), flag: options.flag.as_char() });
            }
            Probe::Absent => created = true,
            Probe::Mine => {}
        }
        let deadline = Some(options.lock_deadline());
        let result = loop {
            match Self::try_open(path) {
                Ok(o) => break Ok(o),
                Err(Attempt::Failed(e)) => break Err(e),
                Err(Attempt::Locked) => match deadline {
                    Some(d) if Instant::now() < d => {
                        std::thread::sleep(LOCK_RETRY.min(d.saturating_duration_since(Instant::now())));
                    }
                    _ => break Err(OpenError::Locked { path: path.to_owned() }),
                },
            }
        };
        let open = match result {
            Ok(o) => o,
            Err(e) => {
                if created && !matches!(e, OpenError::Locked { .. }) && probe(path) != Probe::Mine {
                    // Leave nothing behind of a database that never opened
                    // (but never remove one another handle holds).
                    let _ = fs::remove_dir_all(path);
                }
                return Err(e);
            }
        };
        let fail =
            |e: sled::Error| OpenError::Backend { backend: NAME, path: path.to_owned(), source: Box::new(e) };
        if options.flag == Flag::New || created {
            let fresh = if created { Ok(()) } else { open.data.clear().and_then(|()| open.meta.clear()) };
            fresh
                .and_then(|()| open.meta.insert(MARKER_KEY, MARKER_VALUE))
                .and_then(|_| open.db.flush())
                .map_err(fail)?;
        } else {
            let marked = catch_unwind(AssertUnwindSafe(|| open.meta.get(MARKER_KEY)));
            if !matches!(marked, Ok(Ok(Some(_)))) {
                drop(open);
                wait_for_release(&path.join("db"));
                return Err(OpenError::Corrupted {
                    path: path.to_owned(),
                    detail: "no shelf marker in the sled log: it is damaged, or it was not written by shelf \
                             (flag 'n' starts it afresh)"
                        .to_owned(),
                });
            }
        }
        Ok(SledBackend { path: path.to_owned(), open: Some(open), read_only: options.flag == Flag::Read })
    }

    fn try_open(path: &Path) -> Result<Open, Attempt> {
        let opened = catch_unwind(AssertUnwindSafe(|| -> Result<Open, sled::Error> {
            let db = sled::Config::new().path(path).open()?;
            let data = db.open_tree(DATA_TREE)?;
            let meta = db.open_tree(META_TREE)?;
            Ok(Open { db, data, meta })
        }));
        match opened {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(map_open_error(path, e)),
            Err(payload) => Err(Attempt::Failed(OpenError::Corrupted {
                path: path.to_owned(),
                detail: format!("sled could not read the database ({})", panic_message(payload.as_ref())),
            })),
        }
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn live(&self) -> Result<&Open, Error> {
        self.open.as_ref().ok_or(Error::Closed)
    }

    fn writable(&self, operation: &'static str) -> Result<&Open, Error> {
        let open = self.live()?;
        if self.read_only { Err(Error::ReadOnly { operation }) } else { Ok(open) }
    }
}

impl OpenBackend for SledBackend {
    const NAME: &'static str = NAME;

    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        SledBackend::open(path, options)
    }

    fn probe(path: &Path) -> Probe {
        probe(path)
    }
}

/// Runs `f`, turning a panic inside sled (a damaged log can make it give
/// up on a tree walk) into [`Error::Corrupted`].
fn shield<T>(path: &Path, operation: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(Error::Corrupted {
            path: path.to_owned(),
            detail: format!("sled failed to {operation}: {}", panic_message(payload.as_ref())),
        })
    })
}

/// A sled range, checked: each step is shielded from sled's panics, and
/// keys must come strictly ascending from the front and strictly
/// descending from the back. A damaged tree can make sled walk in circles;
/// this turns that into one [`Error::Corrupted`] item, then the end.
struct Checked {
    inner: sled::Iter,
    path: PathBuf,
    front: Option<sled::IVec>,
    back: Option<sled::IVec>,
    done: bool,
}

impl Checked {
    fn new(inner: sled::Iter, path: &Path) -> Self {
        Checked { inner, path: path.to_owned(), front: None, back: None, done: false }
    }

    fn step(&mut self, forward: bool) -> Option<Result<shelf_core::KvPair, Error>> {
        if self.done {
            return None;
        }
        let inner = &mut self.inner;
        let item = catch_unwind(AssertUnwindSafe(|| if forward { inner.next() } else { inner.next_back() }));
        let corrupt = |detail: String| Error::Corrupted { path: self.path.clone(), detail };
        let result = match item {
            Err(payload) => {
                Err(corrupt(format!("sled failed to read a range: {}", panic_message(payload.as_ref()))))
            }
            Ok(None) => return None,
            Ok(Some(Err(e))) => Err(err("read a range")(e)),
            Ok(Some(Ok((k, v)))) => {
                let (last, other) =
                    if forward { (&self.front, &self.back) } else { (&self.back, &self.front) };
                let in_order = last.as_ref().is_none_or(|l| if forward { k > *l } else { k < *l });
                let not_crossed = other.as_ref().is_none_or(|o| if forward { k < *o } else { k > *o });
                if in_order && not_crossed {
                    let pair = (k.to_vec(), v.to_vec());
                    if forward {
                        self.front = Some(k)
                    } else {
                        self.back = Some(k)
                    }
                    Ok(pair)
                } else {
                    Err(corrupt(format!(
                        "sled's tree yields keys out of order (at {:?})",
                        shelf_core::show_key(&k)
                    )))
                }
            }
        };
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
}

impl Iterator for Checked {
    type Item = Result<shelf_core::KvPair, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

impl DoubleEndedIterator for Checked {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl KvBackend for SledBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::NONE;
        c.persistent = true;
        c.ordered_keys = true;
        c.metadata = true;
        c.atomic_batch = true;
        c
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let open = self.live()?;
        shield(&self.path, "read a value", || {
            Ok(open.data.get(key).map_err(err("read a value"))?.map(|v| v.to_vec()))
        })
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        let open = self.live()?;
        shield(&self.path, "read a value", || open.data.contains_key(key).map_err(err("read a value")))
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let open = self.writable("insert")?;
        shield(&self.path, "insert", || open.data.insert(key, value).map(drop).map_err(err("insert")))
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        let open = self.writable("remove")?;
        shield(&self.path, "remove", || Ok(open.data.remove(key).map_err(err("remove"))?.is_some()))
    }

    fn len(&self) -> Result<usize, Error> {
        // sled counts by walking the tree too; the checked walk cannot loop.
        let open = self.live()?;
        let mut n = 0;
        for item in Checked::new(open.data.iter(), &self.path) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    fn is_empty(&self) -> Result<bool, Error> {
        let open = self.live()?;
        Ok(Checked::new(open.data.iter(), &self.path).next().transpose()?.is_none())
    }

    fn keys(&self) -> Result<Vec<Vec<u8>>, Error> {
        let open = self.live()?;
        Checked::new(open.data.iter(), &self.path).map(|r| r.map(|(k, _)| k)).collect()
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        Ok(Box::new(Checked::new(self.live()?.data.iter(), &self.path)))
    }

    fn flush(&mut self) -> Result<(), Error> {
        let open = self.live()?;
        if self.read_only {
            return Ok(());
        }
        // sled's flush writes every dirty buffer and fsyncs the `db` file.
        shield(&self.path, "flush", || open.db.flush().map(drop).map_err(err("flush")))
    }

    fn close(&mut self) -> Result<(), Error> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let flushed = if self.read_only {
            Ok(())
        } else {
            shield(&self.path, "flush", || open.db.flush().map(drop).map_err(err("flush")))
        };
        // Dropping the last handle stops sled's flusher; its thread pool
        // may hold the `db` file (and its lock) a moment longer.
        drop(open);
        wait_for_release(&self.path.join("db"));
        flushed
    }

    fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let open = self.live()?;
        shield(&self.path, "read metadata", || {
            Ok(open.meta.get(name.as_bytes()).map_err(err("read metadata"))?.map(|v| v.to_vec()))
        })
    }

    fn set_metadata(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        let open = self.writable("set metadata")?;
        shield(&self.path, "set metadata", || {
            open.meta.insert(name.as_bytes(), value).map(drop).map_err(err("set metadata"))
        })
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        let open = self.writable("apply a batch")?;
        let mut batch = sled::Batch::default();
        for op in ops {
            match *op {
                BatchOp::Insert(k, v) => batch.insert(k, v),
                BatchOp::Remove(k) => batch.remove(k),
            }
        }
        shield(&self.path, "apply a batch", || open.data.apply_batch(batch).map_err(err("apply a batch")))
    }

    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        let open = self.live()?;
        if range_is_empty(lower, upper) {
            return Ok(Box::new(std::iter::empty()));
        }
        let iter = open.data.range::<Vec<u8>, _>((owned_bound(lower), owned_bound(upper)));
        Ok(Box::new(Checked::new(iter, &self.path)))
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        self.live()?;
        let mut files = Vec::new();
        let bytes = walk_files(&self.path, &mut files).map_err(|e| Error::io(&self.path, e))?;
        files.sort();
        Ok(StorageStats::new(bytes, None, files))
    }
}

impl Drop for SledBackend {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(b.keys().unwrap(), [Vec::<u8>::new()], "the marker is no key");
        b.close().unwrap();
        let b = SledBackend::open(&path, &BackendOptions::with_flag(Flag::Read)).unwrap();
        assert_eq!(b.len().unwrap(), 1);
        assert_eq!(probe(dir.path()), Probe::Foreign);
    }

    #[test]
    fn an_unmarked_sled_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = sled::open(&path).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
        drop(db);
        wait_for_release(&path.join("db"));
        let res = SledBackend::open(&path, &BackendOptions::with_flag(Flag::Write));
        assert!(matches!(res, Err(OpenError::Corrupted { .. })), "{:?}", res.map(|_| ()));
    }
}
