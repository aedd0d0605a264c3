//! The `dumb` backend of shelf: CPython's `dbm.dumb` file format, byte for
//! byte, so a shelf Python wrote opens here and one written here opens in
//! Python.
//!
//! ## On-disk format (CPython's)
//! A database `NAME` is three files:
//! - `NAME.dat`: the values, each starting at a multiple of 512 bytes, NUL
//!   padding before it;
//! - `NAME.dir`: the index, Latin-1 text, one line per key:
//!   `repr(key.decode('latin-1')), repr((pos, siz))` as in `'key', (0, 5)`;
//! - `NAME.bak`: the index before the last commit.
//!
//! New keys are appended to `.dat`; an overwrite whose 512-byte block count
//! does not grow is written in place, otherwise appended, exactly as
//! CPython does, so the same operations give the same bytes. The index is
//! written in dict order (insertion order; an overwrite keeps its place).
//!
//! Beside them this backend keeps `NAME.shelf-commit`, eight bytes holding
//! the commit number, which is also the writers' lock file. CPython ignores
//! it. A commit writes `NAME.dir.shelf-tmp`, in-place overwrites keep an
//! undo journal `NAME.shelf-journal`, and a compaction uses
//! `NAME.dat.shelf-compact` and `NAME.dir.shelf-compact` while it runs. A
//! failed commit or compaction (a full disk) removes its temporary files;
//! after a crash the next writer open rolls back or finishes what they
//! hold and removes them.
//!
//! ## Beside CPython: `.bak`
//! CPython's `_commit` (3.11 to 3.13) deletes `.bak`, renames `.dir` to
//! `.bak`, then writes a new `.dir` in place through an 8 KiB buffer; it
//! takes no lock. A reader can so meet `.dir` missing, empty, or cut
//! short. CPython itself never reads `.bak` (its `_update` fails on a
//! missing `.dir` with `r`/`w`, and with `c` starts an empty index).
//! This backend:
//! - detects `NAME.dat` with no `.dir` but a `.bak` that is a dumb index as
//!   a dumb database ([`probe`]);
//! - as a reader, waits up to [`SETTLE_WAIT`] for a `.dir` that is missing,
//!   changing, cut short, or shorter than `.bak` while fresh, then reads
//!   `.bak` when it is whole; a `.dir` that stays cut short without
//!   changing is damage, reported as [`OpenError::Corrupted`];
//! - as a writer, adopts `.bak` when `.dir` is missing, writes `.dir` from
//!   it and keeps `.bak`.
//!
//! Values CPython overwrites in place can still be read half-old by an
//! index that names the old size: CPython's format cannot tell.
//!
//! ## Flag `n`
//! Like CPython's, it deletes the database's files, but only when they are
//! a dumb database (or absent): a `NAME.dat` beside no index, or a
//! `NAME.dir` that is not a dumb index (ndbm's), is refused with
//! [`OpenError::Undetectable`] and left untouched.
//!
//! ## Better than CPython, still readable by it
//! - The index is kept in memory (about 45 bytes plus the key per entry)
//!   and `.dat` stays open and memory-mapped; CPython reopens `.dat` on
//!   every get and set. [`KvBackend::get_shared`] hands out slices of the
//!   map without copying.
//! - Commits are crash-safe: `.dat` is fsynced, the index is written to a
//!   temporary file, fsynced and renamed over `.dir`, and the directory is
//!   fsynced. `flush` does nothing when nothing changed. CPython instead
//!   rewrites `.dir` in place (a crash can leave it empty) and rewrites the
//!   whole index on every delete.
//! - Parsing `.dir` never evaluates anything: a line that is not a
//!   `key, (pos, siz)` literal is [`OpenError::Corrupted`] naming the file
//!   and line, and so is an entry pointing past the end of `.dat`.
//!   [`BackendOptions::salvage`] opens such a database anyway, skipping the
//!   bad entries, for [`KvBackend::check`] to report and repair.
//! - Locks: a writer (`w`, `c`, `n`) holds an exclusive lock on
//!   `NAME.shelf-commit`, so a second writer gets [`OpenError::Locked`] (or
//!   waits up to [`BackendOptions::lock_timeout`]). Readers (`r`) hold a
//!   shared lock on `.dat` and run alongside each other and alongside the
//!   writer; they reload the index when the commit number changes.
//! - [`KvBackend::compact`] reclaims the space deletes and grown values
//!   leave behind; [`KvBackend::check`] reports entries past the end of
//!   `.dat`, overlapping entries and unparseable lines.
//!
//! ## Concurrency with readers
//! An in-place overwrite could be seen half-written by a reader in another
//! process that still uses the old index. So the writer overwrites in place
//! only while it holds an exclusive lock on `.dat`, which it takes with the
//! first in-place write after a commit and keeps until the next commit;
//! when readers hold their shared lock it appends instead (the files stay
//! CPython-readable, only the layout differs). A reader that opens while a
//! writer holds that lock waits for the writer's next commit up to the lock
//! timeout. In the same process, a value handed out by `get_shared` is
//! never overwritten in place either.
//!
//! A compaction renames a new `.dat`, then a new `.dir`, over the old
//! ones. A reader reads the index that belongs to the `.dat` it holds
//! (retrying if `.dat` was replaced meanwhile) and locks a new `.dat`
//! before reading its index; if the writer already overwrites in place in
//! it, the reader keeps the old pair, which nothing changes, until the
//! writer's next commit.
//!
//! ## Durability
//! Writes are visible at once and durable at [`KvBackend::flush`]. A crash
//! before it loses the writes since the last flush, and nothing else: the
//! index on disk always names values that were fsynced before it. An
//! in-place overwrite reaches `.dat` before the flush that records it,
//! which is CPython's layout rule, so a crash between the two can leave the
//! old index pointing at new bytes of the same key; use `compact` first, or
//! the redb backend, where that matters.
//!
//! CPython processes take no locks: do not let one write a database this
//! backend has open for writing.

pub mod fault;
mod format;
mod index;
mod journal;

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::Mmap;
use shelf_core::raw::{BackendOptions, OpenBackend, Probe, show_key};
use shelf_core::{
    BatchOp, Capabilities, CheckReport, Error, Flag, KvBackend, KvIter, OpenError, SharedBytes, StorageStats,
};

pub use format::{Line, parse_line, write_line};
use index::Index;

/// The backend's registry name.
pub const NAME: &str = "dumb";

/// CPython's `_BLOCKSIZE`: values start at multiples of it.
pub const BLOCK_SIZE: u64 = 512;

/// Appended values are buffered in memory up to this many bytes before
/// they are written to `.dat` (and always at `flush`).
pub const WRITE_BUFFER: usize = 4 << 20;

fn blocks(siz: u64) -> u64 {
    siz.div_ceil(BLOCK_SIZE)
}

fn align(pos: u64) -> u64 {
    pos.div_ceil(BLOCK_SIZE) * BLOCK_SIZE
}

/// The files of one database.
#[derive(Debug, Clone)]
struct Paths {
    base: PathBuf,
    dat: PathBuf,
    dir: PathBuf,
    bak: PathBuf,
    commit: PathBuf,
    dir_tmp: PathBuf,
    dat_compact: PathBuf,
    dir_compact: PathBuf,
    journal: PathBuf,
}

impl Paths {
    fn new(base: &Path) -> Self {
        let with = |ext: &str| {
            let mut s = base.as_os_str().to_os_string();
            s.push(ext);
            PathBuf::from(s)
        };
        Paths {
            base: base.to_owned(),
            dat: with(".dat"),
            dir: with(".dir"),
            bak: with(".bak"),
            commit: with(".shelf-commit"),
            dir_tmp: with(".dir.shelf-tmp"),
            dat_compact: with(".dat.shelf-compact"),
            dir_compact: with(".dir.shelf-compact"),
            journal: with(".shelf-journal"),
        }
    }

    fn parent(&self) -> PathBuf {
        match self.base.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }
}

/// `dbm.whichdb`'s test: `NAME.dat` exists and `NAME.dir` is empty or
/// starts with a quote. A `.dat` without such a `.dir` is someone else's
/// file ([`Probe::Foreign`]), unless `.dir` is missing and `NAME.bak` is a
/// whole dumb index: CPython's `_commit` renames `.dir` to `.bak` before it
/// writes a new `.dir`, so a reader can meet that state beside a CPython
/// writer (or after a crash in it). CPython's own `whichdb` says `None`
/// there; this backend reads `.bak`, as its open does.
pub fn probe(path: &Path) -> Probe {
    let paths = Paths::new(path);
    if fs::metadata(&paths.dat).is_err() {
        return Probe::Absent;
    }
    // A few tries see through a commit in progress: `.dir` renamed away
    // after it was looked for, `.bak` unlinked by the next commit.
    for _ in 0..4 {
        let file = match File::open(&paths.dir) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::read(&paths.bak) {
                Ok(text) if is_index_text(&text) => return Probe::Mine,
                Ok(_) => return Probe::Foreign,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => return Probe::Foreign,
            },
            Err(_) => return Probe::Foreign,
        };
        let Ok(meta) = file.metadata() else { return Probe::Foreign };
        if !meta.is_file() {
            return Probe::Foreign;
        }
        if meta.len() == 0 {
            return Probe::Mine;
        }
        let mut first = [0u8; 1];
        return match file.read_exact_at(&mut first, 0) {
            Ok(()) if matches!(first[0], b'\'' | b'"') => Probe::Mine,
            _ => Probe::Foreign,
        };
    }
    Probe::Foreign
}

/// Whether `text` is a dumb index: every line a `key, (pos, siz)` entry or
/// blank, except perhaps a last line cut short (a crash mid-write).
fn is_index_text(text: &[u8]) -> bool {
    // `dbm.whichdb`'s test first: a non-empty index starts with a quote.
    if text.first().is_some_and(|b| !matches!(b, b'\'' | b'"')) {
        return false;
    }
    let mut lines = format::lines(text).peekable();
    while let Some((_, line)) = lines.next() {
        let ok = format::parse_simple(line).is_some() || format::parse_line(line).is_ok();
        if !ok && (lines.peek().is_some() || text.ends_with(b"\n")) {
            return false;
        }
    }
    true
}

/// Whether an index file at `path` is absent or a dumb index (flag `n`
/// deletes only those).
fn absent_or_index(path: &Path) -> bool {
    match fs::read(path) {
        Ok(text) => is_index_text(&text),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// A creation by this backend killed before it wrote `.dir`: an empty
/// `.dat`, no index, and the `.shelf-commit` file it creates first.
fn interrupted_creation(paths: &Paths) -> bool {
    fs::metadata(&paths.dat).is_ok_and(|m| m.is_file() && m.len() == 0)
        && fs::symlink_metadata(&paths.dir).is_err()
        && fs::symlink_metadata(&paths.bak).is_err()
        && paths.commit.is_file()
}

/// What can change under `&self` (a reader reloads the index when another
/// process commits).
#[derive(Debug)]
struct State {
    index: Index,
    dat: Arc<File>,
    /// Bytes of `.dat` written to the file; beyond it, `pending` holds the
    /// rest (appends are buffered, so an insert costs no system call).
    disk_len: u64,
    pending: Vec<u8>,
    /// In-place overwrites of bytes below `disk_len`, by value offset, not
    /// yet written: applied together, in offset order, at `flush` (one
    /// small `pwrite` each would cost more than the whole value).
    overlay: std::collections::HashMap<u64, Vec<u8>>,
    overlay_bytes: usize,
    map: Option<Arc<Mmap>>,
    /// Earlier maps that values handed out by `get_shared` may still view.
    retired: Vec<std::sync::Weak<Mmap>>,
    /// The commit number the index was read at.
    seen: u64,
}

impl State {
    /// The logical length of `.dat`: what is on disk plus what is buffered.
    fn dat_len(&self) -> u64 {
        self.disk_len + self.pending.len() as u64
    }

    /// The state of a freshly opened `.dat` of `dat_len` bytes, nothing
    /// buffered.
    fn new(index: Index, dat: Arc<File>, dat_len: u64, seen: u64) -> Self {
        State {
            index,
            dat,
            disk_len: dat_len,
            pending: Vec::new(),
            overlay: std::collections::HashMap::new(),
            overlay_bytes: 0,
            map: None,
            retired: Vec::new(),
            seen,
        }
    }
}

/// A database in CPython's `dbm.dumb` format.
#[derive(Debug)]
pub struct DumbBackend {
    paths: Paths,
    read_only: bool,
    closed: bool,
    mode: u32,
    st: RefCell<State>,
    /// `NAME.shelf-commit`: the writer's lock and the commit number.
    commit: Option<File>,
    modified: bool,
    /// Set when a commit failed part-way: writes are refused until the
    /// database is reopened (which rolls the commit back).
    poisoned: bool,
    /// Whether this writer holds the exclusive `.dat` lock that allows
    /// in-place overwrites (see the crate docs).
    in_place: bool,
    /// What a salvaging open skipped, for `check`.
    salvaged: Salvaged,
}

/// What a salvaging open skipped.
#[derive(Debug, Default, Clone)]
struct Salvaged {
    /// One line per bad `.dir` line.
    problems: Vec<String>,
    /// The keys of lines that parsed but whose values are lost.
    keys: Vec<Vec<u8>>,
}

fn corrupted(path: &Path, detail: String) -> OpenError {
    OpenError::Corrupted { path: path.to_owned(), detail }
}

fn open_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |e| OpenError::io(path, e)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Takes a lock with `try_op`, retrying until
/// [`BackendOptions::lock_deadline`]; `Locked` after it.
fn lock_with_timeout(
    base: &Path,
    file_path: &Path,
    options: &BackendOptions,
    mut try_op: impl FnMut() -> Result<(), fs::TryLockError>,
) -> Result<(), OpenError> {
    let deadline = options.lock_deadline();
    let mut pause = Duration::from_millis(1);
    loop {
        match try_op() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::Error(e)) => return Err(OpenError::io(file_path, e)),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(fs::TryLockError::WouldBlock) => return Err(OpenError::Locked { path: base.to_owned() }),
        }
    }
}

fn read_counter(file: &File) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    match file.read_exact_at(&mut buf, 0) {
        Ok(()) => Ok(u64::from_le_bytes(buf)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(e),
    }
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    fault::sync(&File::open(dir)?)
}

/// The result of reading a `.dir` file.
struct LoadedIndex {
    index: Index,
    problems: Vec<String>,
    /// Keys whose lines parsed but whose values are lost (a salvaging
    /// open skipped them), for `check` to name.
    dropped: Vec<Vec<u8>>,
    /// The length of `.dat` the entries were checked against.
    dat_len: u64,
    /// The file's last line has no line end: CPython may be writing it.
    unterminated: bool,
    /// The file changed while it was read (its size or mtime moved).
    changed: bool,
    /// The file as it was opened.
    stamp: Stamp,
}

/// Why [`load_index`] failed.
struct IndexError {
    error: OpenError,
    /// The bad line was the file's last one (a write cut short looks so).
    last_line: bool,
}

impl From<OpenError> for IndexError {
    fn from(error: OpenError) -> Self {
        IndexError { error, last_line: false }
    }
}

/// What tells one state of a file from another: identity, size, mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// When the file was last written or renamed.
    fn latest(&self) -> (i64, i64) {
        self.mtime.max(self.ctime)
    }

    /// Written or renamed less than `within` ago (a program may still be
    /// writing it).
    fn fresh(&self, within: Duration) -> bool {
        let latest = self.latest();
        let nanos = i128::from(latest.0) * 1_000_000_000 + i128::from(latest.1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
        now - nanos < i128::try_from(within.as_nanos()).unwrap_or(i128::MAX)
    }
}

fn stamp(path: &Path) -> io::Result<Stamp> {
    fs::metadata(path).map(|m| Stamp::of(&m))
}

/// Reads the index at `dir_path`, checking each entry against the length
/// of `.dat` that `dat_len` gives. It is asked for after `.dir` is opened:
/// every value a `.dir` names was written before that `.dir` was renamed
/// into place, so a writer committing meanwhile cannot make its entries
/// point past the length seen.
/// Strict: the first bad line is an error naming the file and line.
/// Salvaging: bad lines are skipped and listed.
fn load_index(
    dir_path: &Path,
    dat_path: &Path,
    dat_len: &dyn Fn() -> Result<u64, OpenError>,
    salvage: bool,
) -> Result<LoadedIndex, IndexError> {
    let file = File::open(dir_path).map_err(open_err(dir_path))?;
    let dat_len = dat_len()?;
    let start = Stamp::of(&file.metadata().map_err(open_err(dir_path))?);
    // Lines of short keys take 30 to 40 bytes: size the index once rather
    // than rehash it as it grows (an overestimate costs a little memory).
    let guess = usize::try_from(start.len / 30).unwrap_or(0);
    let mut index = Index::with_capacity(guess, guess * 16);
    let mut problems = Vec::new();
    let mut dropped = Vec::new();
    let mut reader = BufReader::with_capacity(1 << 16, &file);
    let mut chunk = Vec::new();
    let mut number = 0usize;
    let mut unterminated = false;
    loop {
        chunk.clear();
        let n = reader.read_until(b'\n', &mut chunk).map_err(open_err(dir_path))?;
        if n == 0 {
            break;
        }
        if chunk.last() == Some(&b'\n') {
            chunk.pop();
            unterminated = false;
        } else {
            unterminated = true;
        }
        // A `\n`-terminated chunk may still hold `\r` line breaks
        // (universal newlines); an empty chunk is one blank line.
        let mut pieces = format::lines(&chunk).peekable();
        if pieces.peek().is_none() {
            number += 1;
            continue;
        }
        while let Some((_, line)) = pieces.next() {
            number += 1;
            if let Some((key, pos, siz)) = format::parse_simple(line)
                && pos.checked_add(siz).is_some_and(|end| end <= dat_len)
            {
                index.set(key, pos, siz);
                continue;
            }
            let (problem, lost) = match format::parse_line(line) {
                Ok(Line::Blank) => continue,
                Ok(Line::Entry { key, pos, siz }) => match pos.checked_add(siz) {
                    Some(end) if end <= dat_len => {
                        if key.len() > index::MAX_KEY_LEN {
                            (format!("key of {} bytes is too long", key.len()), None)
                        } else {
                            index.set(&key, pos, siz);
                            continue;
                        }
                    }
                    _ => (
                        format!(
                            "key {} points past the end of {} ({pos} + {siz} > {dat_len} bytes)",
                            show_key(&key),
                            dat_path.display()
                        ),
                        Some(key),
                    ),
                },
                Err(reason) => (reason, None),
            };
            if !salvage {
                let last_line =
                    pieces.peek().is_none() && reader.fill_buf().map(|b| b.is_empty()).unwrap_or(false);
                let error = corrupted(dir_path, format!("line {number}: {problem}"));
                return Err(IndexError { error, last_line });
            }
            if let Some(key) = lost {
                // A later line wins, as in a dict: an earlier line of the
                // same key must not stand in for the lost value.
                index.remove(&key);
                dropped.push(key);
            }
            problems.push(format!("{}:{number}: {problem}", dir_path.display()));
        }
    }
    let end = file.metadata().map(|m| Stamp::of(&m)).map_err(open_err(dir_path))?;
    Ok(LoadedIndex { index, problems, dropped, dat_len, unterminated, changed: end != start, stamp: start })
}

/// The line of `.dir` that holds `key`'s entry (its last one), for an error
/// message; `None` when it cannot be found (the file changed meanwhile).
fn dir_line_of(dir_path: &Path, key: &[u8]) -> Option<usize> {
    let text = fs::read(dir_path).ok()?;
    let mut found = None;
    for (number, line) in format::lines(&text) {
        let hit = match format::parse_simple(line) {
            Some((k, _, _)) => k == key,
            None => matches!(format::parse_line(line), Ok(Line::Entry { key: k, .. }) if k == key),
        };
        if hit {
            found = Some(number);
        }
    }
    found
}

/// Whether `file` is the file now at `path` (a compaction renames a new
/// `.dat` over the old one).
fn is_current(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// How long a reader waits for a `.dir` that another program is rewriting
/// (CPython's `_commit`) to settle, before it falls back to `.bak`.
pub const SETTLE_WAIT: Duration = Duration::from_millis(200);

/// A `.dir` (or `.bak`) changed less than this long ago may be in the
/// middle of a CPython commit; an older one is taken as it is at once.
const FRESH: Duration = Duration::from_secs(1);

/// CPython writes `.dir` through an 8 KiB buffer: a longer index can be
/// seen cut at a line end between two writes, which parses as whole.
const CPYTHON_CHUNK: u64 = 8192;

/// What a reader met at `.dir` that a CPython commit in progress leaves
/// (`_commit` renames `.dir` to `.bak`, then writes a new `.dir` in place).
enum Flux {
    /// No `.dir`: the rename window, or a crash in it.
    Missing(OpenError),
    /// Parses, but is empty beside a non-empty `.bak`, or its last line has
    /// no line end: maybe a `.dir` not yet (fully) written.
    Suspect(LoadedIndex),
    /// The last line does not parse: a line cut short.
    Torn(OpenError),
    /// The file changed while it was read.
    Changing,
    /// Not CPython's doing (a compaction renamed its index meanwhile):
    /// try again, with nothing to fall back to.
    Retry,
}

/// Reads `.bak` for a reader whose `.dir` is missing or did not settle:
/// CPython's `.bak` is the whole index of the previous commit. `None` when
/// there is no whole `.bak`.
fn load_bak(paths: &Paths, dat_len: &dyn Fn() -> Result<u64, OpenError>) -> Option<LoadedIndex> {
    match load_index(&paths.bak, &paths.dat, dat_len, false) {
        Ok(loaded) if !loaded.changed => Some(loaded),
        _ => None,
    }
}

/// A reader's `.dat` and the index that goes with it, while a writer may
/// commit or compact. A compaction renames a new `.dat` over the old one,
/// then a new `.dir` (till then `NAME.dir.shelf-compact`): so the index is
/// read from the `.dir` that belongs to the `.dat` in hand, and all is
/// tried again with the new `.dat` when it was replaced meanwhile. `lock`
/// takes the reader's shared lock on a newly opened `.dat` before its
/// index is read, so the writer cannot overwrite in place what that index
/// names (its error is returned).
///
/// A CPython writer takes no lock and rewrites `.dir` in place (see
/// [`Flux`]): a reader that meets a `.dir` in that state retries for up to
/// [`SETTLE_WAIT`], then falls back to `.bak` when it is whole. A `.dir`
/// that stays torn without changing is damage, reported as such (a
/// salvaging open skips all this: it reads what is there, for `check`).
fn load_for_reader(
    paths: &Paths,
    mut dat: Arc<File>,
    salvage: bool,
    lock: &dyn Fn(&File) -> Result<(), OpenError>,
) -> Result<(Arc<File>, LoadedIndex), OpenError> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let settle_deadline = started + SETTLE_WAIT;
    let mut pause = Duration::from_millis(1);
    // The `.dir` last seen, and whether it was seen to change: a torn
    // `.dir` that changes is being written; one that does not is damage.
    let mut last_seen: Option<Stamp> = None;
    let mut moved = false;
    loop {
        let from_compaction = paths.dir_compact.exists() && !paths.dat_compact.exists();
        // A compaction swapped `.dat` and has not (or never will, after a
        // crash) renamed its index over `.dir`.
        let src = if from_compaction { &paths.dir_compact } else { &paths.dir };
        let watch = !from_compaction && !salvage;
        let bak_len = || fs::metadata(&paths.bak).map_or(0, |m| m.len());
        // `.bak` is looked at before and after `.dir` is read: the next
        // commit may delete it meanwhile.
        let bak_before = if watch { bak_len() } else { 0 };
        let seen = if watch { stamp(&paths.dir).ok() } else { None };
        if let (Some(a), Some(b)) = (last_seen, seen)
            && a != b
        {
            moved = true;
        }
        last_seen = seen.or(last_seen);
        let dat_len = || dat.metadata().map(|m| m.len()).map_err(open_err(&paths.dat));
        let result = load_index(src, &paths.dat, &dat_len, salvage);
        // A `.dir.shelf-compact` beside a `.dat.shelf-compact` is the next
        // compaction's, not the index of this `.dat`.
        let settled = src != &paths.dir_compact || !paths.dat_compact.exists();
        let current = settled && is_current(&dat, &paths.dat);
        // The compaction renamed its index over `.dir` meanwhile.
        let vanished = |e: &OpenError| match e {
            OpenError::Io { path, source } => {
                path == &paths.dir_compact && source.kind() == io::ErrorKind::NotFound
            }
            _ => false,
        };
        // The `.dir` read (the path may name another file by now).
        let read = match &result {
            Ok(loaded) => Some(loaded.stamp),
            Err(_) => seen,
        };
        let fresh = read.is_some_and(|s| s.fresh(FRESH));
        // This backend's writer renames a whole `.dir` into place, then
        // bumps the commit number: a `.dir` no newer than that is whole.
        let ours = read.is_some_and(|d| stamp(&paths.commit).is_ok_and(|c| c.latest() >= d.latest()));
        let outcome = match result {
            Ok(loaded) if watch && !ours => {
                let bak_len = bak_before.max(bak_len());
                let dir_len = loaded.stamp.len;
                if loaded.changed {
                    Err(Flux::Changing)
                } else if fresh && (loaded.unterminated || dir_len == 0 || dir_len < bak_len) {
                    // Empty, or shorter than the previous index: maybe a
                    // `.dir` CPython has not finished writing (or a
                    // delete, which a short wait tells apart: it stays).
                    Err(Flux::Suspect(loaded))
                } else if dir_len >= CPYTHON_CHUNK && loaded.stamp.fresh(Duration::from_millis(50)) && {
                    // Cut at a line end between two of CPython's writes?
                    // The next write comes within microseconds.
                    std::thread::sleep(Duration::from_millis(2));
                    stamp(&paths.dir).ok() != Some(loaded.stamp)
                } {
                    Err(Flux::Changing)
                } else {
                    Ok(loaded)
                }
            }
            Ok(loaded) => Ok(loaded),
            Err(e)
                if watch
                    && matches!(&e.error, OpenError::Io { path, source }
                        if path == &paths.dir && source.kind() == io::ErrorKind::NotFound) =>
            {
                Err(Flux::Missing(e.error))
            }
            Err(e) if watch && e.last_line && fresh => Err(Flux::Torn(e.error)),
            Err(e) => {
                if (current && !vanished(&e.error)) || Instant::now() >= deadline {
                    return Err(e.error);
                }
                Err(Flux::Retry)
            }
        };
        if current {
            let now = Instant::now();
            // A `.bak` left long ago by a crash in the rename window is
            // all there is: no need to wait for a `.dir`.
            let stale_bak =
                matches!(outcome, Err(Flux::Missing(_))) && stamp(&paths.bak).is_ok_and(|s| !s.fresh(FRESH));
            match outcome {
                Ok(loaded) => return Ok((dat, loaded)),
                Err(Flux::Retry) if now >= deadline => {
                    return Err(OpenError::Locked { path: paths.base.clone() });
                }
                Err(Flux::Retry) => {}
                Err(flux) if now >= settle_deadline || stale_bak => {
                    let bak = load_bak(paths, &dat_len);
                    match flux {
                        Flux::Missing(e) => match bak {
                            Some(loaded) => return Ok((dat, loaded)),
                            // `.bak` went too: the next commit began.
                            None if paths.dir.exists() && now < deadline => {}
                            None => return Err(e),
                        },
                        Flux::Suspect(loaded) => {
                            return Ok((dat, if moved { bak.unwrap_or(loaded) } else { loaded }));
                        }
                        Flux::Torn(e) => match bak {
                            Some(loaded) if moved => return Ok((dat, loaded)),
                            _ => return Err(e),
                        },
                        Flux::Changing => match bak {
                            Some(loaded) => return Ok((dat, loaded)),
                            None if now < deadline => {}
                            None => {
                                let detail = "the index kept changing while it was read".to_owned();
                                return Err(corrupted(&paths.dir, detail));
                            }
                        },
                        Flux::Retry => {}
                    }
                }
                Err(_) => {}
            }
        } else if Instant::now() >= deadline {
            return Err(OpenError::Locked { path: paths.base.clone() });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
        if !current {
            let fresh = File::open(&paths.dat).map_err(open_err(&paths.dat))?;
            lock(&fresh)?;
            dat = Arc::new(fresh);
        }
    }
}

impl DumbBackend {
    /// Opens (or creates, per `options.flag`) the database whose files are
    /// `path.dat` and `path.dir`.
    ///
    /// # Errors
    /// [`OpenError::NotFound`] for `r`/`w` without a database,
    /// [`OpenError::Locked`] when another writer holds it,
    /// [`OpenError::Corrupted`] naming the file and line of a bad index
    /// entry (unless `options.salvage`), I/O errors naming the file.
    pub fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        let paths = Paths::new(path);
        let read_only = options.flag == Flag::Read;
        let exists = fs::metadata(&paths.dat).is_ok();
        if !exists && !options.flag.creates() {
            return Err(OpenError::NotFound { path: path.to_owned(), flag: options.flag.as_char() });
        }
        let found = probe(path);
        if options.flag == Flag::New {
            // `n` deletes the files: only when they are a dumb database
            // (or none at all), never someone else's `NAME.dat` or an ndbm
            // `NAME.dir`. (CPython's `_create` deletes whatever is there.)
            let ours = match found {
                Probe::Mine | Probe::Absent => absent_or_index(&paths.dir) && absent_or_index(&paths.bak),
                _ => interrupted_creation(&paths),
            };
            if !ours {
                return Err(OpenError::Undetectable { path: path.to_owned() });
            }
        } else if exists && found != Probe::Mine && !interrupted_creation(&paths) {
            // A `.dat` beside a `.dir` that is not ours (or no `.dir`, with
            // no `.bak` to recover from): someone else's files. Salvaging,
            // the caller has named this backend for an index damaged from
            // its first byte, and `check` reports every line.
            let salvageable = options.salvage && (paths.dir.is_file() || paths.bak.is_file());
            if !salvageable {
                return Err(OpenError::Undetectable { path: path.to_owned() });
            }
        } else if !exists && (!absent_or_index(&paths.dir) || !absent_or_index(&paths.bak)) {
            // No `.dat`, but a `NAME.dir` that is not a dumb index (ndbm's
            // is binary): creating `.dat` beside it would claim it.
            return Err(OpenError::Undetectable { path: path.to_owned() });
        }

        // Writers lock first, before touching any file.
        let commit = if read_only {
            File::open(&paths.commit).ok()
        } else {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(options.mode)
                .open(&paths.commit)
                .map_err(open_err(&paths.commit))?;
            lock_with_timeout(path, &paths.commit, options, || f.try_lock())?;
            Some(f)
        };

        let mut modified = false;
        if options.flag == Flag::New {
            for p in
                [&paths.dat, &paths.bak, &paths.dir, &paths.dat_compact, &paths.dir_compact, &paths.journal]
            {
                match fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(OpenError::io(p, e)),
                }
            }
        }
        if !read_only {
            recover_compaction(&paths).map_err(|(p, e)| OpenError::io(p, e))?;
            journal::recover(&paths.journal, &paths.dir, &paths.dat)?;
            // An index a crashed commit was writing: never renamed, so
            // never part of the database.
            match fs::remove_file(&paths.dir_tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(OpenError::io(&paths.dir_tmp, e));
                }
                _ => {}
            }
        }
        let dat = if read_only {
            File::open(&paths.dat).map_err(open_err(&paths.dat))?
        } else {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(options.mode)
                .open(&paths.dat)
                .map_err(open_err(&paths.dat))?
        };
        if read_only {
            // Readers announce themselves with a shared lock on `.dat`, so
            // the writer does not overwrite values in place under them.
            lock_with_timeout(path, &paths.dat, options, || dat.try_lock_shared())?;
            // Checked under the lock: a writer's journal lives only while
            // it holds `.dat` exclusively, so one seen now is left by a crash.
            if journal::pending(&paths.journal, &paths.dir) {
                return Err(corrupted(
                    &paths.journal,
                    "a commit was interrupted; open the database once for writing to roll it back".to_owned(),
                ));
            }
        }
        let seen = match &commit {
            Some(f) => read_counter(f).map_err(open_err(&paths.commit))?,
            None => 0,
        };
        if read_only {
            let lock = |f: &File| lock_with_timeout(path, &paths.dat, options, || f.try_lock_shared());
            let (dat, loaded) = load_for_reader(&paths, Arc::new(dat), options.salvage, &lock)?;
            let salvaged = Salvaged { problems: loaded.problems, keys: loaded.dropped };
            let dat_len = loaded.dat_len;
            return Ok(DumbBackend {
                paths,
                read_only,
                closed: false,
                mode: options.mode,
                st: RefCell::new(State::new(loaded.index, dat, dat_len, seen)),
                commit,
                modified: false,
                poisoned: false,
                in_place: false,
                salvaged,
            });
        }

        // A writer: nobody else changes the files now.
        let dat_len = dat.metadata().map_err(open_err(&paths.dat))?.len();
        let dir_source = if fs::metadata(&paths.dir).is_ok() {
            Some(paths.dir.clone())
        } else if fs::metadata(&paths.bak).is_ok() {
            // CPython renames `.dir` to `.bak` before writing a new `.dir`;
            // a crash between the two leaves only `.bak`.
            modified = true;
            Some(paths.bak.clone())
        } else if options.flag.creates() {
            modified = true;
            None
        } else {
            return Err(OpenError::NotFound { path: path.to_owned(), flag: options.flag.as_char() });
        };
        let (index, salvaged) = match dir_source {
            Some(src) => {
                let loaded =
                    load_index(&src, &paths.dat, &|| Ok(dat_len), options.salvage).map_err(|e| e.error)?;
                (loaded.index, Salvaged { problems: loaded.problems, keys: loaded.dropped })
            }
            None => (Index::default(), Salvaged::default()),
        };

        let mut backend = DumbBackend {
            paths,
            read_only,
            closed: false,
            mode: options.mode,
            st: RefCell::new(State::new(index, Arc::new(dat), dat_len, seen)),
            commit,
            modified,
            poisoned: false,
            in_place: false,
            salvaged,
        };
        if backend.modified {
            // Write `.dir` now so the new database is detectable (and
            // opens) even if this process dies before its first sync.
            backend.flush().map_err(|e| OpenError::Backend {
                backend: NAME,
                path: path.to_owned(),
                source: Box::new(e),
            })?;
        }
        Ok(backend)
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.closed { Err(Error::Closed) } else { Ok(()) }
    }

    fn check_writable(&self, operation: &'static str) -> Result<(), Error> {
        self.check_open()?;
        if self.read_only {
            return Err(Error::ReadOnly { operation });
        }
        if self.poisoned {
            return Err(Error::Backend {
                backend: NAME,
                operation,
                source: format!(
                    "a commit to {} failed part-way; close and reopen the database, which rolls it back \
                     to the last commit",
                    self.paths.base.display()
                )
                .into(),
            });
        }
        Ok(())
    }

    /// For a reader: reloads the index when a writer has committed since
    /// it was read. Writers exclude each other, so they never need to.
    fn refresh(&self) -> Result<(), Error> {
        self.check_open()?;
        if !self.read_only {
            return Ok(());
        }
        let Some(commit) = &self.commit else { return Ok(()) };
        let now = read_counter(commit).map_err(io_err(&self.paths.commit))?;
        if now == self.st.borrow().seen {
            return Ok(());
        }
        let mut st = self.st.borrow_mut();
        // After a compaction the writer may already overwrite in place in
        // the new `.dat` (it held no reader's lock): then keep reading the
        // old pair, which nobody changes, until the writer commits.
        let lock = |f: &File| match f.try_lock_shared() {
            Ok(()) => Ok(()),
            Err(fs::TryLockError::WouldBlock) => Err(OpenError::Locked { path: self.paths.base.clone() }),
            Err(fs::TryLockError::Error(e)) => Err(OpenError::io(&self.paths.dat, e)),
        };
        let (dat, loaded) = match load_for_reader(&self.paths, st.dat.clone(), false, &lock) {
            Ok(found) => found,
            Err(OpenError::Locked { .. }) => return Ok(()),
            Err(OpenError::Corrupted { path, detail }) => return Err(Error::Corrupted { path, detail }),
            Err(OpenError::Io { path, source }) => return Err(Error::Io { path, source }),
            Err(other) => {
                let source = Box::new(other);
                return Err(Error::Backend { backend: NAME, operation: "reload the index", source });
            }
        };
        if !Arc::ptr_eq(&dat, &st.dat) {
            // A compaction replaced `.dat`: follow it to the new file.
            st.dat = dat;
            st.map = None;
        }
        st.disk_len = loaded.dat_len;
        st.index = loaded.index;
        st.seen = now;
        Ok(())
    }

    fn read_value(&self, st: &mut State, key: &[u8], pos: u64, siz: u64) -> Result<Vec<u8>, Error> {
        let end = self.value_end(st, key, pos, siz)?;
        let mut out =
            Vec::with_capacity(usize::try_from(siz).map_err(|_| self.past_end(key, pos, siz, st.dat_len()))?);
        if pos < st.disk_len {
            let on_disk = end.min(st.disk_len);
            if st.map.as_ref().is_none_or(|m| (m.len() as u64) < on_disk) && !self.map_is_shared(st) {
                self.remap(st)?;
            }
            match &st.map {
                Some(map) if on_disk <= map.len() as u64 => {
                    out.extend_from_slice(&map[pos as usize..on_disk as usize]);
                }
                _ => {
                    out.resize((on_disk - pos) as usize, 0);
                    st.dat.read_exact_at(&mut out, pos).map_err(|e| {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            self.past_end(key, pos, siz, st.dat_len())
                        } else {
                            Error::io(&self.paths.dat, e)
                        }
                    })?;
                }
            }
        }
        if end > st.disk_len {
            let from = (pos.max(st.disk_len) - st.disk_len) as usize;
            out.extend_from_slice(&st.pending[from..(end - st.disk_len) as usize]);
        }
        if let Some(newer) = st.overlay.get(&pos) {
            let n = newer.len().min(out.len());
            out[..n].copy_from_slice(&newer[..n]);
        }
        Ok(out)
    }

    /// Whether values handed out by `get_shared` still view the map (then
    /// it is kept, not replaced, so their bytes stay where they are).
    fn map_is_shared(&self, st: &State) -> bool {
        st.map.as_ref().is_some_and(|m| Arc::strong_count(m) > 1)
    }

    /// Maps what is on disk of `.dat` afresh.
    fn remap(&self, st: &mut State) -> Result<(), Error> {
        if st.disk_len == 0 {
            st.map = None;
            return Ok(());
        }
        #[allow(unsafe_code)]
        // SAFETY: the map is read-only and `.dat` only grows while we have
        // it open: this backend never truncates it (compaction writes a new
        // file), CPython never does either, and bytes under a map that is
        // shared are never overwritten in place (see
        // `may_overwrite_in_place`). Another program truncating the file
        // would make reads fault, as with any mapped file.
        let map = unsafe { Mmap::map(&*st.dat) }.map_err(io_err(&self.paths.dat))?;
        if let Some(old) = st.map.replace(Arc::new(map))
            && Arc::strong_count(&old) > 1
        {
            st.retired.push(Arc::downgrade(&old));
        }
        Ok(())
    }

    /// Writes `data` at `pos` of the logical `.dat`: to the file below
    /// `disk_len`, into the buffer above it.
    fn write_at(&mut self, pos: u64, data: &[u8]) -> Result<(), Error> {
        let st = self.st.get_mut();
        let split = usize::try_from(st.disk_len.saturating_sub(pos)).unwrap_or(usize::MAX).min(data.len());
        let (low, high) = data.split_at(split);
        if !low.is_empty() {
            match st.overlay.get_mut(&pos) {
                // A shorter overwrite of the same value leaves the rest of
                // the earlier one behind it, as CPython's file would.
                Some(old) if old.len() >= low.len() => old[..low.len()].copy_from_slice(low),
                Some(old) => {
                    st.overlay_bytes += low.len() - old.len();
                    *old = low.to_vec();
                }
                None => {
                    st.overlay_bytes += low.len();
                    st.overlay.insert(pos, low.to_vec());
                }
            }
        }
        if !high.is_empty() {
            let from = (pos + split as u64 - st.disk_len) as usize;
            if st.pending.len() < from + high.len() {
                st.pending.resize(from + high.len(), 0);
            }
            st.pending[from..from + high.len()].copy_from_slice(high);
        }
        Ok(())
    }

    /// Writes the buffered in-place overwrites to `.dat`, after saving the
    /// bytes they replace in an undo journal (see [`journal`]): an
    /// overwrite changes bytes the committed index names, so a crash
    /// before the new index is in place must be able to put them back.
    /// Nearby overwrites are gathered into one span (read, patched,
    /// written back), so random overwrites cost a few large writes rather
    /// than one small one each.
    fn apply_overlay(&mut self) -> Result<(), Error> {
        const GAP: u64 = 64 << 10;
        const MAX_SPAN: u64 = 8 << 20;
        let st = self.st.get_mut();
        if st.overlay.is_empty() {
            return Ok(());
        }
        // Kept until written: on failure the overlay still serves reads.
        let mut writes: Vec<(u64, &[u8])> = st.overlay.iter().map(|(p, v)| (*p, &v[..])).collect();
        writes.sort_unstable_by_key(|(pos, _)| *pos);
        let dat = &self.paths.dat;
        // (start, old bytes, new bytes) per span.
        // Per span: its offset and its bytes, read, then patched.
        let mut spans: Vec<(u64, Vec<u8>)> = Vec::new();
        // Per overwrite: the bytes it replaces (what the journal keeps).
        let mut undo: Vec<(u64, Vec<u8>)> = Vec::with_capacity(writes.len());
        let mut i = 0;
        while i < writes.len() {
            let start = writes[i].0;
            let mut end = start + writes[i].1.len() as u64;
            let mut j = i + 1;
            while j < writes.len() && writes[j].0 <= end + GAP && writes[j].0 - start < MAX_SPAN {
                end = end.max(writes[j].0 + writes[j].1.len() as u64);
                j += 1;
            }
            let mut buf = vec![0u8; (end - start) as usize];
            st.dat.read_exact_at(&mut buf, start).map_err(io_err(dat))?;
            for (pos, bytes) in &writes[i..j] {
                let at = (pos - start) as usize;
                undo.push((*pos, buf[at..at + bytes.len()].to_vec()));
            }
            // In offset order, so where two overlap the later offset wins,
            // as applying them one by one would.
            for (pos, bytes) in &writes[i..j] {
                let at = (pos - start) as usize;
                buf[at..at + bytes.len()].copy_from_slice(bytes);
            }
            spans.push((start, buf));
            i = j;
        }
        let undo_refs: Vec<(u64, &[u8])> = undo.iter().map(|(p, old)| (*p, &old[..])).collect();
        if let Err(e) = journal::write(&self.paths.journal, &self.paths.dir, &undo_refs, self.mode) {
            // Nothing was overwritten yet: a torn journal is only litter.
            let _ = journal::discard(&self.paths.journal);
            return Err(e);
        }
        let parent = self.paths.parent();
        fsync_dir(&parent).map_err(io_err(&parent))?;
        for (start, buf) in &spans {
            fault::write_at(&st.dat, buf, *start).map_err(io_err(dat))?;
        }
        drop(writes);
        st.overlay.clear();
        st.overlay_bytes = 0;
        Ok(())
    }

    /// Writes the buffered appends to `.dat`.
    fn write_out(&mut self) -> Result<(), Error> {
        let st = self.st.get_mut();
        if st.pending.is_empty() {
            return Ok(());
        }
        fault::write_at(&st.dat, &st.pending, st.disk_len).map_err(io_err(&self.paths.dat))?;
        st.disk_len += st.pending.len() as u64;
        st.pending.clear();
        if st.pending.capacity() > 2 * WRITE_BUFFER {
            st.pending.shrink_to(WRITE_BUFFER);
        }
        Ok(())
    }

    fn value_end(&self, st: &State, key: &[u8], pos: u64, siz: u64) -> Result<u64, Error> {
        match pos.checked_add(siz) {
            Some(end) if end <= st.dat_len() => Ok(end),
            _ => Err(self.past_end(key, pos, siz, st.dat_len())),
        }
    }

    /// A value cut short: an error naming the key and, where it can be
    /// found, its `.dir` line (iterations stop on it, never skip it).
    fn past_end(&self, key: &[u8], pos: u64, siz: u64, len: u64) -> Error {
        let line = match dir_line_of(&self.paths.dir, key) {
            Some(n) => format!(" (line {n} of {})", self.paths.dir.display()),
            None => String::new(),
        };
        Error::Corrupted {
            path: self.paths.dat.clone(),
            detail: format!("key {}{line} points past the end ({pos} + {siz} > {len} bytes)", show_key(key)),
        }
    }

    /// CPython's `_addval`: pad `.dat` to a block boundary and append.
    fn append_value(&mut self, value: &[u8]) -> Result<u64, Error> {
        let st = self.st.get_mut();
        let pos = align(st.dat_len());
        if value.len() >= WRITE_BUFFER {
            // Large values go straight to the file, not through the buffer.
            self.write_out()?;
            let st = self.st.get_mut();
            let pad = (pos - st.disk_len) as usize;
            fault::write_at(&st.dat, &[0u8; BLOCK_SIZE as usize][..pad], st.disk_len)
                .map_err(io_err(&self.paths.dat))?;
            fault::write_at(&st.dat, value, pos).map_err(io_err(&self.paths.dat))?;
            st.disk_len = pos + value.len() as u64;
            return Ok(pos);
        }
        let start = (pos - st.disk_len) as usize;
        st.pending.resize(start, 0);
        st.pending.extend_from_slice(value);
        if st.pending.len() >= WRITE_BUFFER {
            self.write_out()?;
        }
        Ok(pos)
    }

    /// Whether the old value at `pos` may be overwritten in place.
    fn may_overwrite_in_place(&mut self, pos: u64) -> bool {
        let st = self.st.get_mut();
        // A value handed out by get_shared is a view of a map: never
        // change bytes under it.
        if st.map.as_ref().is_some_and(|m| Arc::strong_count(m) > 1 && pos < m.len() as u64) {
            return false;
        }
        st.retired.retain(|w| w.strong_count() > 0);
        if st.retired.iter().any(|w| w.upgrade().is_some_and(|m| pos < m.len() as u64)) {
            return false;
        }
        if !self.in_place {
            // Readers in other processes hold shared locks on `.dat`.
            self.in_place = st.dat.try_lock().is_ok();
        }
        self.in_place
    }

    fn write_index(&self, target: &Path, index: &Index) -> Result<(), Error> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(self.mode)
            .open(target)
            .map_err(io_err(target))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let mut line = Vec::with_capacity(64);
        for (key, pos, siz) in index.iter() {
            line.clear();
            format::write_line(&mut line, key, pos, siz);
            fault::point().and_then(|()| out.write_all(&line)).map_err(io_err(target))?;
        }
        let file = out.into_inner().map_err(|e| Error::io(target, e.into_error()))?;
        fault::sync(&file).map_err(io_err(target))
    }

    /// The commit proper (see `flush`).
    fn commit(&mut self) -> Result<(), Error> {
        self.apply_overlay()?;
        let st = self.st.get_mut();
        // Values first: the index must never name bytes not yet on disk.
        fault::sync(&st.dat).map_err(io_err(&self.paths.dat))?;
        let written = self
            .write_index(&self.paths.dir_tmp, &self.st.borrow().index)
            .and_then(|()| self.keep_bak())
            .and_then(|()| {
                fault::rename(&self.paths.dir_tmp, &self.paths.dir).map_err(io_err(&self.paths.dir))
            });
        if let Err(e) = written {
            // Never part of the database: leave nothing behind (a full
            // disk is the usual cause, and the next try writes it anew).
            let _ = fs::remove_file(&self.paths.dir_tmp);
            return Err(e);
        }
        let parent = self.paths.parent();
        fsync_dir(&parent).map_err(io_err(&parent))?;
        // The new index is in place: the undo journal is void. (If this
        // removal is lost, the journal names the old `.dir`, which is gone,
        // and recovery discards it.)
        journal::discard(&self.paths.journal).map_err(io_err(&self.paths.journal))?;
        self.modified = false;
        self.bump_commit()?;
        self.release_in_place();
        Ok(())
    }

    /// Keeps CPython's `.bak` (the previous index) as a hard link to the
    /// current `.dir`, so `.dir` itself is replaced in one rename and never
    /// missing. With no `.dir` (CPython's rename window, or a crash in it)
    /// the `.bak` is the index this writer adopted: it stays.
    fn keep_bak(&self) -> Result<(), Error> {
        if !self.paths.dir.exists() {
            return Ok(());
        }
        match fs::remove_file(&self.paths.bak) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&self.paths.bak, e)),
        }
        if fs::hard_link(&self.paths.dir, &self.paths.bak).is_err() {
            fs::copy(&self.paths.dir, &self.paths.bak).map_err(io_err(&self.paths.bak))?;
        }
        Ok(())
    }

    fn bump_commit(&mut self) -> Result<(), Error> {
        if let Some(f) = &self.commit {
            // A writer holds the lock, so the count it read at open (and
            // has kept since) is the file's.
            let st = self.st.get_mut();
            let next = st.seen.wrapping_add(1);
            fault::write_at(f, &next.to_le_bytes(), 0).map_err(io_err(&self.paths.commit))?;
            fault::sync(f).map_err(io_err(&self.paths.commit))?;
            st.seen = next;
        }
        Ok(())
    }

    /// Ends an in-place epoch: lets readers in again.
    fn release_in_place(&mut self) {
        if self.in_place {
            let _ = self.st.get_mut().dat.unlock();
            self.in_place = false;
        }
    }

    /// What `compact` would reclaim: the `.dat` and `.dir` bytes of the
    /// index now, less those of the live values packed as a fresh CPython
    /// database packs them.
    fn reclaimable(&self) -> u64 {
        let st = self.st.borrow();
        let (mut end, mut dir_now, mut dir_packed) = (0u64, 0u64, 0u64);
        let mut line = Vec::with_capacity(64);
        for (key, pos, siz) in st.index.iter() {
            let at = align(end);
            line.clear();
            format::write_line(&mut line, key, pos, siz);
            dir_now += line.len() as u64;
            line.clear();
            format::write_line(&mut line, key, at, siz);
            dir_packed += line.len() as u64;
            end = at + siz;
        }
        (st.dat_len() + dir_now).saturating_sub(end + dir_packed)
    }

    /// The lengths of `.dat` and `.dir` on disk.
    fn bytes_on_disk(&self) -> Result<u64, Error> {
        let mut total = 0;
        for p in [&self.paths.dat, &self.paths.dir] {
            match fs::metadata(p) {
                Ok(m) => total += m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p, e)),
            }
        }
        Ok(total)
    }

    /// Writes the live values, packed in index order, to
    /// `.dat.shelf-compact` and their index to `.dir.shelf-compact`, both
    /// fsynced.
    fn write_compacted(&mut self) -> Result<(File, Index), Error> {
        let target = &self.paths.dat_compact;
        let new_dat = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(self.mode)
            .open(target)
            .map_err(io_err(target))?;
        let mut fresh = Index::default();
        let entries: Vec<(Vec<u8>, u64, u64)> =
            self.st.get_mut().index.iter().map(|(k, p, s)| (k.to_vec(), p, s)).collect();
        let mut out = BufWriter::with_capacity(1 << 20, &new_dat);
        let mut end = 0u64;
        for (key, pos, siz) in entries {
            let value = self.read_value(&mut self.st.borrow_mut(), &key, pos, siz)?;
            let at = align(end);
            fault::point()
                .and_then(|()| out.write_all(&[0u8; BLOCK_SIZE as usize][..(at - end) as usize]))
                .and_then(|()| out.write_all(&value))
                .map_err(io_err(target))?;
            fresh.set(&key, at, siz);
            end = at + siz;
        }
        out.flush().map_err(io_err(target))?;
        drop(out);
        fault::sync(&new_dat).map_err(io_err(target))?;
        self.write_index(&self.paths.dir_compact, &fresh)?;
        Ok((new_dat, fresh))
    }

    /// Removes what a failed compaction wrote (never part of the database).
    fn remove_compaction_files(&self) {
        for p in [&self.paths.dat_compact, &self.paths.dir_compact] {
            let _ = fs::remove_file(p);
        }
    }
}

/// Finishes or undoes a compaction a crash interrupted (see `compact`).
fn recover_compaction(paths: &Paths) -> Result<(), (PathBuf, io::Error)> {
    if paths.dat_compact.exists() {
        // Stopped before `.dat` was swapped: the old files are whole.
        for p in [&paths.dat_compact, &paths.dir_compact] {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err((p.clone(), e)),
            }
        }
    } else if paths.dir_compact.exists() {
        // `.dat` was swapped; its index is complete (fsynced before).
        fault::rename(&paths.dir_compact, &paths.dir).map_err(|e| (paths.dir.clone(), e))?;
    }
    Ok(())
}

impl OpenBackend for DumbBackend {
    const NAME: &'static str = NAME;
    const CAPABILITIES: Capabilities = {
        let mut c = Capabilities::NONE;
        c.persistent = true;
        c.python_format = true;
        c.compact = true;
        c.check = true;
        c.commit_number = true;
        c
    };

    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        DumbBackend::open(path, options)
    }

    fn probe(path: &Path) -> Probe {
        probe(path)
    }

    /// `.dat` first, `.dir` last: a database is detected by its `.dir`, so
    /// a move interrupted between the two leaves nothing that looks whole.
    fn files(path: &Path) -> Vec<PathBuf> {
        let paths = Paths::new(path);
        vec![paths.dat, paths.dir]
    }
}

impl KvBackend for DumbBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.refresh()?;
        let mut st = self.st.borrow_mut();
        match st.index.get(key) {
            Some((pos, siz)) => self.read_value(&mut st, key, pos, siz).map(Some),
            None => Ok(None),
        }
    }

    fn get_shared(&self, key: &[u8]) -> Result<Option<SharedBytes>, Error> {
        self.refresh()?;
        let mut st = self.st.borrow_mut();
        let Some((pos, siz)) = st.index.get(key) else { return Ok(None) };
        let end = self.value_end(&st, key, pos, siz)?;
        if end > st.disk_len || st.overlay.contains_key(&pos) {
            // Not written to the file yet: a copy from the buffers.
            return self.read_value(&mut st, key, pos, siz).map(|v| Some(v.into()));
        }
        if st.map.as_ref().is_none_or(|m| (m.len() as u64) < end) {
            // A map that values still view is left to them; a new one is
            // made beside it.
            self.remap(&mut st)?;
        }
        let Some(map) = st.map.clone() else { return Ok(None) };
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = map;
        let bytes = SharedBytes::slice_of(owner, pos as usize, end as usize)
            .map_err(|len| self.past_end(key, pos, siz, len as u64))?;
        Ok(Some(bytes))
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        self.refresh()?;
        Ok(self.st.borrow().index.get(key).is_some())
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.check_writable("insert")?;
        if key.len() > index::MAX_KEY_LEN {
            return Err(Error::InvalidKey { key: show_key(key), reason: "longer than 4 GiB".to_owned() });
        }
        self.modified = true;
        let existing = self.st.get_mut().index.get(key);
        let pos = match existing {
            Some((pos, siz))
                if blocks(value.len() as u64) <= blocks(siz) && self.may_overwrite_in_place(pos) =>
            {
                // The last value may grow within its block: write_at
                // extends the length.
                self.write_at(pos, value)?;
                pos
            }
            _ => self.append_value(value)?,
        };
        let st = self.st.get_mut();
        st.index.set(key, pos, value.len() as u64);
        if st.overlay_bytes >= WRITE_BUFFER {
            // Bound the memory held: commit, now that the index names the
            // new value (an early commit is harmless; applying the
            // overwrites without committing would leave the journal open).
            self.flush()?;
        }
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.check_writable("remove")?;
        let found = self.st.get_mut().index.remove(key).is_some();
        self.modified |= found;
        Ok(found)
    }

    fn len(&self) -> Result<usize, Error> {
        self.refresh()?;
        Ok(self.st.borrow().index.len())
    }

    fn keys(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.refresh()?;
        Ok(self.st.borrow().index.iter().map(|(k, _, _)| k.to_vec()).collect())
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        self.refresh()?;
        let entries: Vec<(Vec<u8>, u64, u64)> =
            self.st.borrow().index.iter().map(|(k, p, s)| (k.to_vec(), p, s)).collect();
        Ok(Box::new(entries.into_iter().map(move |(k, pos, siz)| {
            let mut st = self.st.borrow_mut();
            let v = self.read_value(&mut st, &k, pos, siz)?;
            Ok((k, v))
        })))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.check_open()?;
        if self.read_only || !self.modified {
            return Ok(());
        }
        self.check_writable("sync")?;
        // A failed append leaves the buffer to retry; past this point a
        // failure may have changed bytes the committed index names, so it
        // poisons the handle (reopening rolls back through the journal).
        self.write_out()?;
        let result = self.commit();
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.closed {
            return Ok(());
        }
        let result = if self.poisoned { Ok(()) } else { self.flush() };
        self.release_in_place();
        self.closed = true;
        // Dropping the files releases the locks; keep `st` (it is cheap to
        // leave) but forget the index's memory.
        self.st.get_mut().index.clear();
        self.st.get_mut().map = None;
        self.commit = None;
        result
    }

    fn metadata(&self, _name: &str) -> Result<Option<Vec<u8>>, Error> {
        // No metadata: a shelf written here is a plain CPython shelf.
        self.check_open()?;
        Ok(None)
    }

    fn set_metadata(&mut self, _name: &str, _value: &[u8]) -> Result<(), Error> {
        self.check_writable("set metadata")?;
        Err(Error::Unsupported { backend: NAME, operation: "metadata" })
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        // Not atomic (capabilities say so): applied one by one.
        self.check_writable("apply a batch")?;
        shelf_core::raw::apply_one_by_one(self, ops)
    }

    /// Packs the live values into a new `.dat` and `.dir`, put in place
    /// only when both are whole. Returns the bytes reclaimed: how much the
    /// summed lengths of `NAME.dat` and `NAME.dir` (the files
    /// [`OpenBackend::files`] lists) went down, measured after the
    /// commit of pending writes that compaction starts with. The `.bak`
    /// it removes (it names offsets of the old `.dat`) is not counted.
    ///
    /// A failure (a full disk) before the new `.dat` is in place removes
    /// the new files and leaves the database as it was; a failure after it
    /// poisons the handle, and the next open finishes the swap.
    fn compact(&mut self) -> Result<u64, Error> {
        self.check_writable("compact")?;
        // Commit first: the figures are then those of the files on disk.
        self.flush()?;
        let before = self.bytes_on_disk()?;
        // 1. The live values and their index, under temporary names.
        let (new_dat, fresh) = match self.write_compacted() {
            Ok(done) => done,
            Err(e) => {
                self.remove_compaction_files();
                return Err(e);
            }
        };
        let parent = self.paths.parent();
        // 2. Swap `.dat`: till then the old database is untouched.
        let swapped = fsync_dir(&parent).map_err(io_err(&parent)).and_then(|()| {
            fault::rename(&self.paths.dat_compact, &self.paths.dat).map_err(io_err(&self.paths.dat))
        });
        if let Err(e) = swapped {
            self.remove_compaction_files();
            return Err(e);
        }
        self.release_in_place();
        let after_dat = new_dat.metadata().map(|m| m.len()).unwrap_or(0);
        let st = self.st.get_mut();
        st.index = fresh;
        st.dat = Arc::new(new_dat);
        st.disk_len = after_dat;
        st.pending.clear();
        // Compaction copied the overwritten values; the old file is gone.
        st.overlay.clear();
        st.overlay_bytes = 0;
        st.map = None;
        // 3. Swap `.dir`. A crash before it is finished by the next open
        // (see `recover_compaction`); readers read `.dir.shelf-compact`.
        let finished = fsync_dir(&parent)
            .and_then(|()| fault::rename(&self.paths.dir_compact, &self.paths.dir))
            .map_err(io_err(&self.paths.dir))
            .and_then(|()| {
                // The old `.bak` names offsets in the old `.dat`.
                match fs::remove_file(&self.paths.bak) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(&self.paths.bak, e)),
                    _ => Ok(()),
                }
            })
            .and_then(|()| fsync_dir(&parent).map_err(io_err(&parent)));
        if let Err(e) = finished {
            self.poisoned = true;
            return Err(e);
        }
        self.modified = false;
        self.bump_commit()?;
        let after = self.bytes_on_disk()?;
        Ok(before.saturating_sub(after))
    }

    fn check(&mut self, repair: bool) -> Result<CheckReport, Error> {
        self.check_open()?;
        if repair {
            self.check_writable("repair")?;
        }
        let mut problems = self.salvaged.problems.clone();
        let mut bad: Vec<Vec<u8>> = Vec::new();
        {
            let st = self.st.borrow();
            let mut spans: Vec<(u64, u64, usize, &[u8])> = Vec::new();
            for (order, (key, pos, siz)) in st.index.iter().enumerate() {
                match pos.checked_add(siz) {
                    Some(end) if end <= st.dat_len() => {
                        if siz > 0 {
                            spans.push((pos, end, order, key));
                        }
                    }
                    _ => {
                        problems.push(format!(
                            "{}: key {} points past the end of {} ({pos} + {siz} > {} bytes)",
                            self.paths.dir.display(),
                            show_key(key),
                            self.paths.dat.display(),
                            st.dat_len()
                        ));
                        bad.push(key.to_vec());
                    }
                }
            }
            spans.sort_unstable();
            // The entry reaching furthest so far, to compare each next one with.
            let mut reach: Option<(u64, usize, &[u8])> = None;
            for &(pos, end, order, key) in &spans {
                if let Some((r_end, r_order, r_key)) = reach
                    && pos < r_end
                {
                    problems.push(format!(
                        "{}: keys {} and {} overlap in {}",
                        self.paths.dir.display(),
                        show_key(r_key),
                        show_key(key),
                        self.paths.dat.display()
                    ));
                    // The one written earlier (earlier in the index) is the
                    // one whose bytes were overwritten.
                    bad.push(if r_order < order { r_key.to_vec() } else { key.to_vec() });
                }
                if reach.is_none_or(|(r_end, _, _)| end > r_end) {
                    reach = Some((end, order, key));
                }
            }
        }
        bad.sort();
        bad.dedup();
        let good = self.st.borrow().index.len() - bad.len();
        let repaired = repair && !problems.is_empty();
        if !repaired {
            return Ok(CheckReport::new(good as u64, problems, false));
        }
        for key in &bad {
            self.st.get_mut().index.remove(key);
        }
        // The repaired index is written under a temporary name and renamed
        // over `.dir` (see `commit`): a crash leaves the old or the new one.
        self.modified = true;
        self.flush()?;
        // Dropped: the entries removed now, and those the salvaging open
        // already left out (a later entry of the same key may stand).
        let mut dropped = bad;
        let st = self.st.get_mut();
        dropped.extend(self.salvaged.keys.drain(..).filter(|k| st.index.get(k).is_none()));
        dropped.sort();
        dropped.dedup();
        self.salvaged = Salvaged::default();
        Ok(CheckReport::new(good as u64, problems, true).with_dropped_keys(dropped))
    }

    fn commit_number(&self) -> Result<u64, Error> {
        self.check_open()?;
        match &self.commit {
            Some(f) => read_counter(f).map_err(io_err(&self.paths.commit)),
            None => Ok(0),
        }
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        self.check_open()?;
        let mut files = Vec::new();
        let mut bytes = 0;
        for p in [&self.paths.dat, &self.paths.dir, &self.paths.bak, &self.paths.commit] {
            if let Ok(m) = fs::metadata(p) {
                bytes += m.len();
                files.push(p.clone());
            }
        }
        Ok(StorageStats::new(bytes, Some(self.reclaimable()), files))
    }
}

impl Drop for DumbBackend {
    fn drop(&mut self) {
        // Like CPython's __del__ = close: a dropped writer commits.
        let _ = self.close();
    }
}
