//! Reading a `.dir` index into memory, checking each entry against the
//! length of `.dat`.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use shelf_core::OpenError;
use shelf_core::raw::show_key;

use crate::format::{self, Line};
use crate::index::{self, Index};
use crate::paths::{corrupted, open_err};

/// The result of reading a `.dir` file.
pub(crate) struct LoadedIndex {
    pub(crate) index: Index,
    pub(crate) problems: Vec<String>,
    /// Keys whose lines parsed but whose values are lost (a salvaging
    /// open skipped them), for `check` to name.
    pub(crate) dropped: Vec<Vec<u8>>,
    /// The length of `.dat` the entries were checked against.
    pub(crate) dat_len: u64,
    /// The file's last line has no line end: CPython may be writing it.
    pub(crate) unterminated: bool,
    /// The file changed while it was read (its size or mtime moved).
    pub(crate) changed: bool,
    /// The file as it was opened.
    pub(crate) stamp: Stamp,
}

/// Why [`load_index`] failed.
pub(crate) struct IndexError {
    pub(crate) error: OpenError,
    /// The bad line was the file's last one (a write cut short looks so).
    pub(crate) last_line: bool,
}

impl From<OpenError> for IndexError {
    fn from(error: OpenError) -> Self {
        IndexError { error, last_line: false }
    }
}

/// What tells one state of a file from another: identity, size, mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    pub(crate) len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// When the file was last written or renamed.
    pub(crate) fn latest(&self) -> (i64, i64) {
        self.mtime.max(self.ctime)
    }

    /// Written or renamed less than `within` ago (a program may still be
    /// writing it).
    pub(crate) fn fresh(&self, within: Duration) -> bool {
        let latest = self.latest();
        let nanos = i128::from(latest.0) * 1_000_000_000 + i128::from(latest.1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
        now - nanos < i128::try_from(within.as_nanos()).unwrap_or(i128::MAX)
    }
}

pub(crate) fn stamp(path: &Path) -> io::Result<Stamp> {
    fs::metadata(path).map(|m| Stamp::of(&m))
}

/// Reads the index at `dir_path`, checking each entry against the length
/// of `.dat` that `dat_len` gives. It is asked for after `.dir` is opened:
/// every value a `.dir` names was written before that `.dir` was renamed
/// into place, so a writer committing meanwhile cannot make its entries
/// point past the length seen.
/// Strict: the first bad line is an error naming the file and line.
/// Salvaging: bad lines are skipped and listed.
pub(crate) fn load_index(
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
pub(crate) fn dir_line_of(dir_path: &Path, key: &[u8]) -> Option<usize> {
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
