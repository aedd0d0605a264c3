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
//!   undetected) and a read-only open does not check the count;
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

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shelf_core::raw::{self, Shielded, Walk};
use shelf_core::raw::{BackendOptions, OpenBackend, Probe, range_is_empty, show_key};
use shelf_core::{BatchOp, Capabilities, Error, Flag, KvBackend, KvIter, KvRange, OpenError, StorageStats};

/// The engine, re-exported so a program (or a test) can open the directory
/// with the very version this backend writes.
pub use sled;

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

/// The key of the state record in the metadata tree of a layout 2
/// database: the number of entries, the flush generation and a clean flag
/// (see the crate docs, "Damage").
pub const STATE_KEY: &[u8] = b"\xffshelf:state";

/// The marker file inside a layout 2 database directory: [`MARKER_MAGIC`],
/// the generation of the last completed flush (eight little-endian bytes)
/// and a CRC-32 of both (four little-endian bytes).
pub const MARKER_FILE: &str = "shelf-sled";

/// The first bytes of [`MARKER_FILE`].
pub const MARKER_MAGIC: &[u8] = b"shelf-sled\n";

/// The marker file being replaced: written, synced, then renamed over
/// [`MARKER_FILE`]; one left by a crash is overwritten by the next flush.
const MARKER_TEMP: &str = "shelf-sled.tmp";

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
    /// Layout 2: values carry checksums and the state record is kept.
    sealed: bool,
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
            .field("sealed", &self.sealed)
            .field("copy", &self.copy.as_ref().map(|d| d.path().to_owned()))
            .finish()
    }
}

/// What is at `path` for this backend: a directory holding sled's `conf`
/// and `db` files and either shelf's [`MARKER_FILE`] or a `conf` in sled's
/// format is [`Probe::Mine`]; nothing is [`Probe::Absent`]; anything else
/// (a file, an empty or other directory, a broken sled directory) is
/// [`Probe::Foreign`].
pub fn probe(path: &Path) -> Probe {
    match fs::metadata(path) {
        Err(_) => Probe::Absent,
        Ok(m) if !m.is_dir() => Probe::Foreign,
        Ok(_) => {
            let conf = path.join("conf");
            let whole = conf.is_file() && path.join("db").is_file();
            if whole && (path.join(MARKER_FILE).is_file() || is_sled_conf(&conf)) {
                Probe::Mine
            } else {
                Probe::Foreign
            }
        }
    }
}

/// Whether `conf` is a sled 0.34 configuration: `segment_size: ...` text,
/// then the CRC-32 of that text (config.rs, `write_config`).
fn is_sled_conf(conf: &Path) -> bool {
    let mut bytes = Vec::new();
    let read = fs::File::open(conf).and_then(|f| f.take(4096).read_to_end(&mut bytes));
    if read.is_err() || bytes.len() <= 4 {
        return false;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    body.starts_with(b"segment_size: ") && crc32fast::hash(body).to_le_bytes() == crc
}

/// What a broken shelf sled directory lacks: its marker file is there but
/// sled's `conf` or `db` is not.
fn missing_parts(path: &Path) -> Option<String> {
    if !path.join(MARKER_FILE).is_file() {
        return None;
    }
    let missing: Vec<&str> = ["conf", "db"].into_iter().filter(|f| !path.join(f).is_file()).collect();
    (!missing.is_empty()).then(|| {
        format!("a shelf sled database missing sled's {}; nothing will write into it", missing.join(" and "))
    })
}

/// Reads the generation in [`MARKER_FILE`] (0 when the file is absent).
fn read_marker(dir: &Path) -> Result<u64, OpenError> {
    let file = dir.join(MARKER_FILE);
    let bytes = match fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(OpenError::io(file, e)),
    };
    let sound = bytes.len() == MARKER_MAGIC.len() + 12 && bytes.starts_with(MARKER_MAGIC);
    let (body, crc) = bytes.split_at(bytes.len().saturating_sub(4));
    if !sound || crc32fast::hash(body).to_le_bytes() != crc {
        return Err(OpenError::Corrupted { path: file, detail: "shelf's marker file is damaged".to_owned() });
    }
    let generation = body[MARKER_MAGIC.len()..].try_into().map(u64::from_le_bytes).unwrap_or(0);
    Ok(generation)
}

/// Replaces [`MARKER_FILE`] with one holding `generation`.
fn write_marker(dir: &Path, generation: u64) -> std::io::Result<()> {
    let mut body = MARKER_MAGIC.to_vec();
    body.extend_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    let temp = dir.join(MARKER_TEMP);
    let mut f = fs::File::create(&temp)?;
    f.write_all(&body)?;
    f.sync_all()?;
    fs::rename(&temp, dir.join(MARKER_FILE))
}

/// The state record of a layout 2 database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    count: u64,
    generation: u64,
    clean: bool,
}

impl State {
    fn encode(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(17);
        b.extend_from_slice(&self.count.to_le_bytes());
        b.extend_from_slice(&self.generation.to_le_bytes());
        b.push(self.clean as u8);
        raw::seal(STATE_KEY, &b)
    }

    fn decode(stored: &[u8]) -> Option<State> {
        let b = raw::unseal(STATE_KEY, stored)?;
        if b.len() != 17 || b[16] > 1 {
            return None;
        }
        Some(State {
            count: u64::from_le_bytes(b[..8].try_into().ok()?),
            generation: u64::from_le_bytes(b[8..16].try_into().ok()?),
            clean: b[16] == 1,
        })
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

/// Whether this process cannot write the database's `db` file because the
/// file system is read-only or permissions forbid it.
fn cannot_write(path: &Path) -> bool {
    match fs::OpenOptions::new().read(true).write(true).open(path.join("db")) {
        Err(e) => matches!(e.kind(), ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied),
        Ok(_) => false,
    }
}

/// Copies the directory `from` into `to` (files and subdirectories).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
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
    /// `multi_process`, [`OpenError::Corrupted`] for damaged files or a
    /// broken directory, [`OpenError::Io`] for a writing flag on a read-only
    /// file system, and engine errors.
    pub fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        if options.multi_process {
            return Err(OpenError::Unsupported {
                backend: NAME,
                what: "multi_process (sled locks its directory to one handle)".to_owned(),
            });
        }
        let mut created = false;
        match probe(path) {
            Probe::Foreign => {
                return Err(match missing_parts(path) {
                    Some(detail) => OpenError::Corrupted { path: path.to_owned(), detail },
                    None => OpenError::Undetectable { path: path.to_owned() },
                });
            }
            Probe::Absent if !options.flag.creates() => {
                return Err(OpenError::NotFound { path: path.to_owned(), flag: options.flag.as_char() });
            }
            Probe::Absent => created = true,
            Probe::Mine => {}
        }
        let read_only = options.flag == Flag::Read;
        // sled opens its files read-write whatever the flag: where it cannot
        // write, read a private copy.
        let copy = if read_only && cannot_write(path) {
            let temp = tempfile::Builder::new()
                .prefix("shelf-sled-ro-")
                .tempdir()
                .map_err(|e| OpenError::io(std::env::temp_dir(), e))?;
            copy_dir(path, &temp.path().join("db")).map_err(|e| OpenError::io(path, e))?;
            Some(temp)
        } else {
            None
        };
        let engine_path = copy.as_ref().map_or_else(|| path.to_owned(), |t| t.path().join("db"));
        let deadline = options.lock_deadline();
        let result = loop {
            match Self::try_open(&engine_path, path) {
                Ok(o) => break Ok(o),
                Err(Attempt::Failed(e)) => break Err(e),
                Err(Attempt::Locked) if Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY.min(deadline.saturating_duration_since(Instant::now())));
                }
                Err(Attempt::Locked) => break Err(OpenError::Locked { path: path.to_owned() }),
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
        let mut backend = SledBackend {
            path: path.to_owned(),
            open: Some(open),
            read_only,
            sealed: false,
            count: None,
            generation: 0,
            dirty: false,
            copy,
        };
        let started = if options.flag == Flag::New || created {
            backend.start_afresh(created)
        } else {
            backend.learn_layout()
        };
        if let Err(e) = started {
            backend.release();
            return Err(e);
        }
        Ok(backend)
    }

    fn try_open(engine_path: &Path, path: &Path) -> Result<Open, Attempt> {
        let opened = raw::shield(|| -> Result<Open, sled::Error> {
            let db = sled::Config::new().path(engine_path).open()?;
            let data = db.open_tree(DATA_TREE)?;
            let meta = db.open_tree(META_TREE)?;
            Ok(Open { db, data, meta })
        });
        match opened {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(map_open_error(path, e)),
            Err(message) => Err(Attempt::Failed(OpenError::Corrupted {
                path: path.to_owned(),
                detail: format!("sled could not read the database ({message})"),
            })),
        }
    }

    /// Creation and flag `n`: empties the trees and writes layout 2's
    /// marker, state record and marker file, durably.
    fn start_afresh(&mut self, created: bool) -> Result<(), OpenError> {
        let path = self.path.clone();
        let fail =
            |e: sled::Error| OpenError::Backend { backend: NAME, path: path.clone(), source: Box::new(e) };
        let open = self.open.as_ref().ok_or(OpenError::Io {
            path: path.clone(),
            source: std::io::Error::other("the sled handle is gone"),
        })?;
        // The generation keeps growing across flag `n`, so that a stale
        // marker file never outranks the fresh log.
        let generation = read_marker(&path).unwrap_or(0) + 1;
        let state = State { count: 0, generation, clean: true };
        let done = raw::shield(|| -> Result<(), sled::Error> {
            if !created {
                open.data.clear()?;
                open.meta.clear()?;
            }
            open.meta.insert(MARKER_KEY, raw::seal(MARKER_KEY, LAYOUT_2))?;
            open.meta.insert(STATE_KEY, state.encode())?;
            open.db.flush()?;
            Ok(())
        });
        match done {
            Ok(r) => r.map_err(fail)?,
            Err(m) => {
                return Err(OpenError::Corrupted {
                    path,
                    detail: format!("sled failed to start afresh: {m}"),
                });
            }
        }
        write_marker(&path, generation).map_err(|e| OpenError::io(path.join(MARKER_FILE), e))?;
        self.sealed = true;
        self.count = Some(0);
        self.generation = generation;
        Ok(())
    }

    /// An existing database: reads its marker and, in layout 2, its state
    /// record, checked against the marker file.
    fn learn_layout(&mut self) -> Result<(), OpenError> {
        let path = self.path.clone();
        let corrupted = |detail: String| OpenError::Corrupted { path: path.clone(), detail };
        let open = self.open.as_ref().ok_or_else(|| corrupted("the sled handle is gone".to_owned()))?;
        let read = raw::shield(|| -> Result<_, sled::Error> {
            Ok((open.meta.get(MARKER_KEY)?, open.meta.get(STATE_KEY)?))
        });
        let (marker, state) = match read {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return Err(corrupted(format!("sled could not read the metadata: {e}"))),
            Err(m) => return Err(corrupted(format!("sled could not read the metadata ({m})"))),
        };
        let Some(marker) = marker else {
            return Err(corrupted(
                "no shelf marker in the sled log: it is damaged, or it was not written by shelf (flag 'n' \
                 starts it afresh)"
                    .to_owned(),
            ));
        };
        if &*marker == LAYOUT_1 {
            return Ok(());
        }
        if raw::unseal(MARKER_KEY, &marker) != Some(LAYOUT_2) {
            return Err(corrupted(
                "shelf's marker in the sled log is damaged or of an unknown layout".to_owned(),
            ));
        }
        let state = state
            .as_deref()
            .and_then(State::decode)
            .ok_or_else(|| corrupted("the state record in the sled log is missing or damaged".to_owned()))?;
        let flushed = read_marker(&path)?;
        if state.generation < flushed {
            return Err(corrupted(format!(
                "sled recovered the state of flush {} but flush {flushed} had completed: its log lost \
                 writes to damage",
                state.generation
            )));
        }
        self.sealed = true;
        self.generation = state.generation;
        if state.clean {
            self.count = Some(state.count);
        } else if !self.read_only {
            // A crash after writes: count afresh (the walk verifies every
            // checksum), and record a clean state at the next flush.
            let mut n = 0;
            for item in self.walk(Bound::Unbounded, Bound::Unbounded).map_err(|e| corrupted(e.to_string()))? {
                item.map_err(|e| match e {
                    Error::Corrupted { detail, .. } => corrupted(detail),
                    e => corrupted(e.to_string()),
                })?;
                n += 1;
            }
            self.count = Some(n);
            self.dirty = true;
        }
        Ok(())
    }

    /// Drops the sled handle and waits for its threads to let go of the lock.
    fn release(&mut self) {
        if let Some(open) = self.open.take() {
            drop(open);
            wait_for_release(&self.engine_path().join("db"));
        }
    }

    /// The directory sled works in: the database's, or the private copy.
    fn engine_path(&self) -> PathBuf {
        self.copy.as_ref().map_or_else(|| self.path.clone(), |t| t.path().join("db"))
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

    fn corrupted(&self, detail: String) -> Error {
        Error::Corrupted { path: self.path.clone(), detail }
    }

    /// Runs `f`, turning a panic inside sled (a damaged log can make it give
    /// up on a tree walk) into [`Error::Corrupted`], printing nothing.
    fn shield<T>(&self, operation: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        raw::shield(f).unwrap_or_else(|m| Err(self.corrupted(format!("sled failed to {operation}: {m}"))))
    }

    /// The value inside a stored form, its checksum verified in layout 2.
    fn opened(&self, key: &[u8], stored: sled::IVec) -> Result<Vec<u8>, Error> {
        if !self.sealed {
            return Ok(stored.to_vec());
        }
        match raw::unseal(key, &stored) {
            Some(v) => Ok(v.to_vec()),
            None => {
                Err(self
                    .corrupted(format!("the checksum of key {:?} does not match its bytes", show_key(key))))
            }
        }
    }

    /// The stored form of a value.
    fn stored(&self, key: &[u8], value: &[u8]) -> Vec<u8> {
        if self.sealed { raw::seal(key, value) } else { value.to_vec() }
    }

    /// Before a write that may change the entries: in layout 2, a state
    /// record saying "not clean" goes into the log ahead of it, so a crash
    /// before the next flush is not mistaken for damage.
    fn before_write(&mut self) -> Result<(), Error> {
        if !self.sealed || self.dirty {
            return Ok(());
        }
        let open = self.writable("write")?;
        let state = State { count: self.count.unwrap_or(0), generation: self.generation, clean: false };
        self.shield("write the state record", || {
            open.meta.insert(STATE_KEY, state.encode()).map(drop).map_err(err("write the state record"))
        })?;
        self.dirty = true;
        Ok(())
    }

    /// Flushes sled; in layout 2, after writes, with a clean state record
    /// and then a marker file of the new generation.
    fn flush_all(&mut self) -> Result<(), Error> {
        let open = self.live()?;
        if !(self.sealed && self.dirty) {
            // sled's flush writes every dirty buffer and fsyncs the `db` file.
            return self.shield("flush", || open.db.flush().map(drop).map_err(err("flush")));
        }
        let count =
            self.count.ok_or_else(|| self.corrupted("the number of entries is unknown".to_owned()))?;
        let generation = self.generation + 1;
        let state = State { count, generation, clean: true };
        self.shield("write the state record", || {
            open.meta.insert(STATE_KEY, state.encode()).map(drop).map_err(err("write the state record"))
        })?;
        // From here on the log's last state record is clean: the next write
        // must write a "not clean" one again, even if this flush fails.
        self.dirty = false;
        self.generation = generation;
        let open = self.live()?;
        self.shield("flush", || open.db.flush().map(drop).map_err(err("flush")))?;
        write_marker(&self.path, generation).map_err(|e| Error::io(self.path.join(MARKER_FILE), e))
    }

    /// The entries within the bounds, each checksum verified, shielded from
    /// sled's panics, in order, and (over every key, with a known count)
    /// complete.
    fn walk(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        let open = self.live()?;
        let whole = matches!((lower, upper), (Bound::Unbounded, Bound::Unbounded));
        let iter = open.data.range::<Vec<u8>, _>((owned_bound(lower), owned_bound(upper)));
        let items = iter.map(move |item| {
            let (k, v) = item.map_err(err("read a range"))?;
            let value = self.opened(&k, v)?;
            Ok((k.to_vec(), value))
        });
        let path = self.path.clone();
        let shielded = Shielded::new(items, move |m| Error::Corrupted {
            path: path.clone(),
            detail: format!("sled failed to read a range: {m}"),
        });
        let path = self.path.clone();
        let expected = if whole { self.count } else { None };
        Ok(Box::new(Walk::new(shielded, expected, move |detail| Error::Corrupted {
            path: path.clone(),
            detail,
        })))
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
        let open = self.live()?;
        let stored = self.shield("read a value", || open.data.get(key).map_err(err("read a value")))?;
        stored.map(|v| self.opened(key, v)).transpose()
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        let open = self.live()?;
        self.shield("read a value", || open.data.contains_key(key).map_err(err("read a value")))
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.writable("insert")?;
        self.before_write()?;
        let open = self.writable("insert")?;
        let stored = self.stored(key, value);
        let old = self.shield("insert", || open.data.insert(key, stored).map_err(err("insert")))?;
        if old.is_none() {
            self.count = self.count.map(|n| n + 1);
        }
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.writable("remove")?;
        self.before_write()?;
        let open = self.writable("remove")?;
        let old = self.shield("remove", || open.data.remove(key).map_err(err("remove")))?;
        if old.is_some() {
            self.count = self.count.map(|n| n.saturating_sub(1));
        }
        Ok(old.is_some())
    }

    fn len(&self) -> Result<usize, Error> {
        // sled counts by walking the tree too; the checked walk cannot loop,
        // and it verifies the count the handle keeps.
        let mut n = 0;
        for item in self.walk(Bound::Unbounded, Bound::Unbounded)? {
            item?;
            n += 1;
        }
        Ok(n)
    }

    fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.walk(Bound::Unbounded, Bound::Unbounded)?.next().transpose()?.is_none())
    }

    fn keys(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.walk(Bound::Unbounded, Bound::Unbounded)?.map(|r| r.map(|(k, _)| k)).collect()
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        Ok(Box::new(self.walk(Bound::Unbounded, Bound::Unbounded)?))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.live()?;
        if self.read_only {
            return Ok(());
        }
        self.flush_all()
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.open.is_none() {
            return Ok(());
        }
        let flushed = if self.read_only { Ok(()) } else { self.flush_all() };
        // Dropping the last handle stops sled's flusher; its thread pool
        // may hold the `db` file (and its lock) a moment longer.
        self.release();
        self.copy = None;
        flushed
    }

    fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let open = self.live()?;
        let stored =
            self.shield("read metadata", || open.meta.get(name.as_bytes()).map_err(err("read metadata")))?;
        stored.map(|v| self.opened(name.as_bytes(), v)).transpose()
    }

    fn set_metadata(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        let open = self.writable("set metadata")?;
        let stored = self.stored(name.as_bytes(), value);
        self.shield("set metadata", || {
            open.meta.insert(name.as_bytes(), stored).map(drop).map_err(err("set metadata"))
        })
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        self.writable("apply a batch")?;
        self.before_write()?;
        let open = self.writable("apply a batch")?;
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
                None if self.count.is_some() => {
                    self.shield("read a value", || open.data.contains_key(k).map_err(err("read a value")))?
                }
                None => false,
            };
            match *op {
                BatchOp::Insert(k, v) => {
                    delta += !here as i64;
                    present.insert(k, true);
                    batch.insert(k, self.stored(k, v));
                }
                BatchOp::Remove(k) => {
                    delta -= here as i64;
                    present.insert(k, false);
                    batch.remove(k);
                }
            }
        }
        self.shield("apply a batch", || open.data.apply_batch(batch).map_err(err("apply a batch")))?;
        self.count = self.count.map(|n| n.saturating_add_signed(delta));
        Ok(())
    }

    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        self.live()?;
        if range_is_empty(lower, upper) {
            return Ok(Box::new(std::iter::empty()));
        }
        self.walk(lower, upper)
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
