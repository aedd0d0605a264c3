//! Opening: refusing what is not a dumb database, then the reader's path
//! ([`reader`]) or the writer's ([`writer`]).

mod reader;
mod writer;

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use shelf_core::raw::{BackendOptions, Probe};
use shelf_core::{Flag, OpenError};

use crate::DumbBackend;
use crate::format;
use crate::paths::Paths;

pub use reader::SETTLE_WAIT;

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
        admit(&paths, options)?;
        if options.flag == Flag::Read { reader::open(paths, options) } else { writer::open(paths, options) }
    }
}

/// Refuses to open what is not this backend's to open: a database that is
/// not there for `r`/`w`, and files that are someone else's, which flag `n`
/// would delete and the other flags would claim.
fn admit(paths: &Paths, options: &BackendOptions) -> Result<(), OpenError> {
    let path = &paths.base;
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
            _ => interrupted_creation(paths),
        };
        if !ours {
            return Err(OpenError::Undetectable { path: path.to_owned() });
        }
    } else if exists && found != Probe::Mine && !interrupted_creation(paths) {
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
    Ok(())
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
