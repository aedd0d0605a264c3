//! The marker `ROOT/.shelf-dir`: proof that shelf made the directory, and
//! the home of its commit number.
//!
//! pickleshare lists every file under the root as a key (pathlib's `rglob`
//! includes dotfiles), so the marker is itself a valid pickle: a protocol 2
//! `LONG1` of nine little-endian bytes holding the commit number. Python
//! reads it as a plain non-negative `int`. It has a fixed size, so it is
//! updated in place, under a file lock, without ever being truncated.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, OpenOptions};
use shelf_core::raw::opcodes::{LONG1, PROTO, STOP};

use crate::tmp;

/// The marker's name inside the root (reserved: never a key).
pub(crate) const MARKER: &str = ".shelf-dir";

/// Suffix of the commit file older versions kept beside the root.
const LEGACY_SUFFIX: &str = ".shelf-commit";

/// Bytes of the count: a `u64` and a zero byte, so the two's-complement
/// `LONG1` is never negative.
const COUNT_LEN: usize = 9;

/// The marker's whole size: PROTO 2, LONG1 9, nine bytes, STOP.
pub(crate) const LEN: usize = 4 + COUNT_LEN + 1;

/// The marker holding `count`.
pub(crate) fn encode(count: u64) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[..4].copy_from_slice(&[PROTO, 2, LONG1, COUNT_LEN as u8]);
    out[4..12].copy_from_slice(&count.to_le_bytes());
    // out[12] stays 0: the sign byte.
    out[LEN - 1] = STOP;
    out
}

/// The count in a marker's bytes. The one short-read rule: fewer than
/// [`LEN`] bytes (a marker from before its first write, or an empty file)
/// count as 0; anything else that is not exactly our pickle is damage.
pub(crate) fn decode(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < LEN {
        return Ok(0);
    }
    if bytes.len() > LEN {
        return Err(format!("the marker holds {} bytes, not {LEN}", bytes.len()));
    }
    if bytes[..4] != [PROTO, 2, LONG1, COUNT_LEN as u8] || bytes[12] != 0 || bytes[LEN - 1] != STOP {
        return Err("the marker is not the pickled commit number shelf writes".to_owned());
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[4..12]);
    Ok(u64::from_le_bytes(n))
}

/// Reads up to `LEN + 1` bytes from the start of `f` (one more than a
/// marker holds, to see an over-long one).
fn read_head(f: &File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; LEN + 1];
    let mut filled = 0;
    while filled < buf.len() {
        match f.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Whether the marker is there, as a regular file (a symlink or a
/// directory under its name proves nothing).
pub(crate) fn present(dir: &Dir) -> bool {
    dir.symlink_metadata(MARKER).is_ok_and(|m| m.is_file())
}

/// What went wrong with the marker, for the caller to name its path.
#[derive(Debug)]
pub(crate) enum MarkerError {
    /// An I/O error.
    Io(io::Error),
    /// The marker's bytes are not ours.
    Damaged(String),
}

impl From<io::Error> for MarkerError {
    fn from(e: io::Error) -> Self {
        MarkerError::Io(e)
    }
}

/// The commit number in the marker; `None` when there is no marker.
pub(crate) fn read(dir: &Dir) -> Result<Option<u64>, MarkerError> {
    let f = match dir.open(MARKER) {
        Ok(f) => f.into_std(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // Shared: a writer's in-place update is never seen half done.
    f.lock_shared()?;
    let head = read_head(&f)?;
    decode(&head).map(Some).map_err(MarkerError::Damaged)
}

/// Creates the marker holding `count` unless one is there. It is written
/// whole under a temporary name and hard-linked into place, which fails if
/// another process made it first: no reader ever sees a half-made marker,
/// and two creators never overwrite each other.
pub(crate) fn ensure(dir: &Dir, mode: u32, count: u64) -> io::Result<()> {
    if present(dir) {
        return Ok(());
    }
    let (name, f) = tmp::create(dir, mode)?;
    let made = (|| {
        f.write_all_at(&encode(count), 0)?;
        f.sync_all()?;
        match dir.hard_link(&name, dir, MARKER) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    })();
    let removed = dir.remove_file(&name);
    made?;
    removed?;
    sync_dir(dir)
}

/// Runs `change` on the marker's count under an exclusive lock (the lock
/// makes read-change-write atomic across processes) and writes the result
/// back in place, durably. Returns the new count.
pub(crate) fn update(dir: &Dir, change: impl FnOnce(u64) -> u64) -> Result<u64, MarkerError> {
    let f = dir.open_with(MARKER, OpenOptions::new().read(true).write(true))?.into_std();
    f.lock()?;
    let current = decode(&read_head(&f)?).map_err(MarkerError::Damaged)?;
    let next = change(current);
    if next != current {
        f.write_all_at(&encode(next), 0)?;
        f.sync_data()?;
    }
    Ok(next)
}

/// fsyncs a directory, so names made or removed in it are durable. (The
/// `Dir` itself is an `O_PATH` descriptor, which cannot be synced.)
pub(crate) fn sync_dir(dir: &Dir) -> io::Result<()> {
    dir.open(".")?.sync_all()
}

/// Where versions of shelf before the marker kept the commit number:
/// `ROOT.shelf-commit`, beside the root.
pub(crate) fn legacy_path(root: &Path) -> PathBuf {
    let mut name = root.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "db".into());
    name.push(LEGACY_SUFFIX);
    root.with_file_name(name)
}

/// The count in a legacy commit file: a regular file (not a symlink) of
/// exactly eight little-endian bytes, else `None`.
pub(crate) fn read_legacy(root: &Path) -> Option<u64> {
    let path = legacy_path(root);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    // Exactly eight bytes: the counter file's short-file rule (a count of
    // 0) does not apply to a file left by an older version, which always
    // wrote all eight; any other length is not one of ours.
    if !meta.is_file() || meta.len() != 8 {
        return None;
    }
    shelf_core::raw::read_counter(&std::fs::File::open(&path).ok()?).ok()
}

/// Moves a legacy commit number into the marker (keeping the larger of
/// the two, so the number never goes back) and removes the legacy file.
pub(crate) fn migrate_legacy(dir: &Dir, root: &Path, mode: u32) -> Result<(), MarkerError> {
    let Some(legacy) = read_legacy(root) else { return Ok(()) };
    ensure(dir, mode, legacy)?;
    update(dir, |current| current.max(legacy))?;
    match std::fs::remove_file(legacy_path(root)) {
        Ok(()) => Ok(()),
        // Another process migrated it at the same time.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_rejects_damage() {
        for n in [0, 1, 255, u64::MAX] {
            assert_eq!(decode(&encode(n)), Ok(n));
        }
        assert_eq!(decode(b""), Ok(0), "the short-read rule");
        assert_eq!(decode(&encode(7)[..10]), Ok(0), "the short-read rule");
        let mut bad = encode(7);
        bad[LEN - 1] = b'x';
        assert!(decode(&bad).is_err());
        let mut long = encode(7).to_vec();
        long.push(0);
        assert!(decode(&long).is_err());
    }

    #[test]
    fn marker_is_the_pickle_of_its_count() {
        // What CPython's pickle.dumps(1, protocol=2) would be with a
        // nine-byte LONG1: \x80\x02\x8a\x09 + LE bytes + '.'.
        assert_eq!(encode(1), *b"\x80\x02\x8a\x09\x01\x00\x00\x00\x00\x00\x00\x00\x00.");
    }
}
