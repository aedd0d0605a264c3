//! Temporary files `ROOT/.shelf-<pid>-<n>.tmp`: each value is written to
//! one and renamed over its key; a killed writer leaves its temporary file
//! behind, and the next writable open removes it.
//!
//! A writer holds an exclusive `flock` on its temporary file from the
//! moment it makes it until it has renamed it, so a cleaner can tell a
//! file in use from a left-over one without trusting process ids alone:
//! a pid may be reused, or belong to another pid namespace sharing the
//! directory.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};

/// The prefix of every name shelf reserves; never a key.
pub(crate) const RESERVED_PREFIX: &str = ".shelf-";

const SUFFIX: &str = ".tmp";

/// Makes temporary file names unique within the process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// An unlocked temporary file of a live process is taken as left over
/// only when older than this: it covers the instant between making the
/// file and locking it.
const GRACE: Duration = Duration::from_secs(60);

/// A new, exclusively locked temporary file in `dir` (created, never
/// opened if it exists), with its name. Short and independent of the key,
/// so any key whose name fits the file system also has a temporary name
/// that fits.
pub(crate) fn create(dir: &Dir, mode: u32) -> io::Result<(String, File)> {
    let name = format!(
        "{RESERVED_PREFIX}{}-{}{SUFFIX}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let f = dir.open_with(&name, OpenOptions::new().write(true).create_new(true).mode(mode))?.into_std();
    if let Err(e) = f.lock() {
        let _ = dir.remove_file(&name);
        return Err(e);
    }
    Ok((name, f))
}

/// The pid in a temporary file's name, for exact matches of
/// `.shelf-<pid>-<n>.tmp` only.
pub(crate) fn parse(name: &str) -> Option<u32> {
    let middle = name.strip_prefix(RESERVED_PREFIX)?.strip_suffix(SUFFIX)?;
    let (pid, n) = middle.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` is running, by `/proc`; without a `/proc` to ask,
/// every process is taken as running (the lock and age rule still apply).
fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

/// Removes left-over temporary files in `dir`: those no process holds
/// locked whose writer is gone, or which are older than a minute. Returns
/// how many were removed. Names that are not exact matches of the pattern
/// are never touched.
pub(crate) fn remove_stale(dir: &Dir) -> io::Result<usize> {
    let mut removed = 0;
    for entry in dir.entries()? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(parse) else { continue };
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let f = match dir.open(&name) {
            Ok(f) => f.into_std(),
            // Renamed into place or cleaned by someone else meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match f.try_lock() {
            Ok(()) => {}
            // Its writer is at work.
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let old = f
            .metadata()?
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > GRACE);
        if old || !alive(pid) {
            match dir.remove_file(&name) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_names_match() {
        assert_eq!(parse(".shelf-12-0.tmp"), Some(12));
        for name in
            [".shelf-12-0.tmp~", ".shelf--0.tmp", ".shelf-12-.tmp", ".shelf-1a-0.tmp", ".shelf-dir", "x.tmp"]
        {
            assert_eq!(parse(name), None, "{name}");
        }
    }
}
