//! The files of one database, and the small conversions of their I/O
//! errors that every part of the backend uses.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use shelf_core::{Error, OpenError};

use crate::fault;

/// The files of one database.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) base: PathBuf,
    pub(crate) dat: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) bak: PathBuf,
    pub(crate) commit: PathBuf,
    pub(crate) dir_tmp: PathBuf,
    pub(crate) dat_compact: PathBuf,
    pub(crate) dir_compact: PathBuf,
    pub(crate) journal: PathBuf,
}

impl Paths {
    pub(crate) fn new(base: &Path) -> Self {
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

    pub(crate) fn parent(&self) -> PathBuf {
        match self.base.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }
}

pub(crate) fn corrupted(path: &Path, detail: String) -> OpenError {
    OpenError::Corrupted { path: path.to_owned(), detail }
}

pub(crate) fn open_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |e| OpenError::io(path, e)
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Makes renames and creations in `dir` durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    fault::sync(&File::open(dir)?)
}

/// Removes the file at `path` when it is there: what crash recovery and
/// flag `n` do to files that may or may not have been written.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Options that open a file for writing, created with the database's
/// permission bits when missing; callers add reading and truncation.
pub(crate) fn for_writing(mode: u32) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create(true).mode(mode);
    options
}
