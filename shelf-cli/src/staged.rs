//! Whole-database results built under a temporary name and moved into
//! place only when complete, so that a kill at any instant leaves no target
//! (or the old one) or the complete new one, never a valid-looking partial
//! database.
//!
//! The result is built at `.NAME.shelf-convert-PID` beside the target
//! `NAME` (same directory, so renames stay on one filesystem). No backend's
//! probe of `NAME` looks at that name: dumb's files are `NAME.dat`/`NAME.dir`,
//! the others are `NAME` itself. When complete it is closed and synced, and
//! each of its files ([`BackendInfo::files`]) is renamed onto the target's,
//! in order, the last one (which makes the database detectable) last. An
//! existing target being replaced (flag `n`) is first moved aside to
//! `.NAME.shelf-old-PID`, its detectable file first, and removed once the new
//! one is in place. Temporaries of a killed run (these two patterns, of a
//! process that is gone) are removed by the next run for the same target.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use shelf::BackendInfo;

use crate::error::CliError;

/// The tag of a result being built.
const BUILD_TAG: &str = "shelf-convert";
/// The tag of a replaced database moved aside.
const OLD_TAG: &str = "shelf-old";

fn parent_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn temp_path(target: &Path, tag: &str, pid: u32) -> Result<PathBuf, CliError> {
    let name =
        target.file_name().ok_or_else(|| CliError::usage(format!("{} names no file", target.display())))?;
    let mut n = OsString::from(".");
    n.push(name);
    n.push(format!(".{tag}-{pid}"));
    Ok(parent_of(target).join(n))
}

/// The pid in a directory entry `name` if it is one of our temporaries for
/// `target` with `tag`: `.NAME.TAG-PID`, optionally followed by `.` and a
/// suffix (dbm's `.dat`, `.dir`, `.bak`, an engine's side file).
fn temp_pid(name: &str, target_name: &str, tag: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_prefix(target_name)?.strip_prefix('.')?;
    let rest = rest.strip_prefix(tag)?.strip_prefix('-')?;
    let digits = rest.split('.').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn alive(pid: u32) -> bool {
    // Linux: a running process has /proc/PID. Elsewhere (no /proc) a
    // leftover is taken as dead, as after a reboot.
    Path::new("/proc").is_dir() && Path::new("/proc").join(pid.to_string()).exists()
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes temporaries for `target` matching our patterns: those of
/// process `only` when given, else those of processes that are gone.
fn remove_temps(target: &Path, only: Option<u32>) -> io::Result<()> {
    let Some(name) = target.file_name().and_then(|n| n.to_str()) else { return Ok(()) };
    let rd = match fs::read_dir(parent_of(target)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(entry_name) = file_name.to_str() else { continue };
        for tag in [BUILD_TAG, OLD_TAG] {
            let Some(pid) = temp_pid(entry_name, name, tag) else { continue };
            let ours = match only {
                Some(p) => pid == p,
                None => pid == std::process::id() || !alive(pid),
            };
            if ours {
                remove_any(&entry.path())?;
            }
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Makes the renames durable; not every platform or filesystem can
    // open a directory for this, and the renames stand either way.
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

fn sync_tree(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_file() => {
            if let Ok(f) = fs::File::open(p) {
                let _ = f.sync_all();
            }
        }
        Ok(m) if m.is_dir() => {
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    sync_tree(&e.path());
                }
            }
            sync_dir(p);
        }
        _ => {}
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// A database being built under a temporary name for `target`. Dropped
/// without [`commit`](Self::commit), it removes what it built.
#[derive(Debug)]
pub struct Staged {
    target: PathBuf,
    tmp: PathBuf,
    backend: &'static BackendInfo,
    armed: bool,
}

impl Staged {
    /// Prepares to build a database of `backend` for `target`, removing
    /// leftovers of killed runs for the same target first.
    ///
    /// # Errors
    /// A target that names no file; failure to remove a leftover.
    pub fn new(target: &Path, backend: &'static BackendInfo) -> Result<Staged, CliError> {
        let tmp = temp_path(target, BUILD_TAG, std::process::id())?;
        remove_temps(target, None).map_err(|e| {
            CliError::env(format!(
                "cannot remove leftovers of an earlier run beside {}: {e}",
                target.display()
            ))
        })?;
        Ok(Staged { target: target.to_owned(), tmp, backend, armed: true })
    }

    /// Where to build the database.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the built database (closed by now) onto the target: the
    /// replaced database `old` (its backend, when the target holds one)
    /// aside first, then the new files in order, then the old removed.
    ///
    /// # Errors
    /// A target file in the way that is not part of `old`; i/o failures.
    pub fn commit(mut self, old: Option<&'static BackendInfo>) -> Result<(), CliError> {
        let io =
            |what: &str, p: &Path, e: io::Error| CliError::env(format!("cannot {what} {}: {e}", p.display()));
        let pid = std::process::id();
        let new_from = (self.backend.files)(&self.tmp);
        let new_to = (self.backend.files)(&self.target);
        for f in &new_from {
            sync_tree(f);
        }
        let old_files = old.map(|o| (o.files)(&self.target)).unwrap_or_default();
        // Never overwrite what is not ours: checked before anything moves.
        if let Some(f) = new_to.iter().find(|f| exists(f) && !old_files.contains(f)) {
            return Err(CliError::usage(format!(
                "{} is in the way of the new database at {} and is not part of a database being replaced; \
                 refusing to overwrite it",
                f.display(),
                self.target.display()
            )));
        }
        let mut parked = Vec::new();
        if let Some(old) = old {
            let aside = temp_path(&self.target, OLD_TAG, pid)?;
            let from = old_files;
            let to = (old.files)(&aside);
            // The detectable file first: from then on the target is no
            // database, rather than a part of one.
            for (f, t) in from.iter().zip(&to).rev() {
                if exists(f) {
                    fs::rename(f, t).map_err(|e| io("move aside", f, e))?;
                    parked.push(t.clone());
                }
            }
            sync_dir(&parent_of(&self.target));
        }
        for (f, t) in new_from.iter().zip(&new_to) {
            if exists(f) {
                fs::rename(f, t).map_err(|e| io("move into place", f, e))?;
            }
        }
        sync_dir(&parent_of(&self.target));
        self.armed = false;
        for p in &parked {
            remove_any(p).map_err(|e| io("remove the replaced", p, e))?;
        }
        // Side files the backend left beside the temporary name.
        remove_temps(&self.target, Some(pid)).map_err(|e| io("clean up beside", &self.target, e))?;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.armed {
            let _ = remove_temps(&self.target, Some(std::process::id()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_match_only_our_pattern() {
        assert_eq!(temp_pid(".db.shelf-convert-42", "db", BUILD_TAG), Some(42));
        assert_eq!(temp_pid(".db.shelf-convert-42.dat", "db", BUILD_TAG), Some(42));
        assert_eq!(temp_pid(".db.shelf-old-7.dir", "db", OLD_TAG), Some(7));
        for other in [
            "db",
            ".db",
            ".db.shelf-convert-",
            ".db.shelf-convert-x1",
            ".dbx.shelf-convert-1",
            ".db.shelf-convert-1x",
            "db.shelf-convert-1",
            ".other.shelf-convert-1",
        ] {
            assert_eq!(temp_pid(other, "db", BUILD_TAG), None, "{other}");
        }
    }
}
