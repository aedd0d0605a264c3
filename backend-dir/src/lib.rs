//! The `dir` backend of shelf: a directory holding one file per key,
//! compatible with Python's pickleshare 0.7.5.
//!
//! A key is a relative path below the root (`paths/are/ok/key` makes
//! subdirectories) and the file holds the value's bytes; with the pickle
//! protocol each file is a pickle, so a directory written by
//! `pickleshare.PickleShareDB` opens here and one written here opens there.
//! Many processes may read and write one directory at once, and each sees
//! the others' writes as soon as they are made.
//!
//! ## Capabilities
//! Persistent, multi-process, Python format (values are pickles unless
//! another protocol is named), commit numbers. Keys are paths
//! ([`Capabilities::path_keys`]): a key that would escape the root (`..`, an
//! absolute path), an empty key or component, a NUL byte, a key that is not
//! UTF-8, or one with a component starting with `.shelf-` (reserved for
//! shelf's own files) is refused with [`Error::InvalidKey`]; a file whose
//! name is not UTF-8 is not a key and is not listed. No metadata is kept,
//! so the protocol is not recorded. Keys are not ordered; `keys` lists them
//! sorted.
//!
//! ## Ownership
//! The backend claims ([`Probe::Mine`]) only a directory it can prove is a
//! database of its own: one holding its marker `ROOT/.shelf-dir`, or a
//! pickleshare directory shelf did not create, where every regular file
//! below the root (symlinks never followed) is a pickle of protocol 2 to 5
//! and nothing else (no other file, no symlink, no special file) is there.
//! A plain folder, a Git checkout or another engine's directory is
//! [`Probe::Foreign`] and is never opened, written or emptied. An empty
//! directory (or one holding only empty directories) is [`Probe::Absent`]:
//! flag `c` or `n` adopts it by writing the marker, `r` and `w` find no
//! database there. Every writable open writes the marker if it is missing,
//! moves a legacy `ROOT.shelf-commit` into it, and removes temporary files
//! left by killed writers. The `ROOT.shelf-commit` file older versions of
//! shelf left beside a directory is no proof on its own: they wrote it
//! beside any folder they were pointed at, so a folder with it but with
//! other files than pickles stays [`Probe::Foreign`]. Flag `n` removes key files only (regular files
//! below the root), never the marker, a symlink or anything outside.
//!
//! ## Confinement
//! Every file operation is resolved beneath the root with `cap-std` (on
//! Linux, `openat2` with `RESOLVE_BENEATH`), so no symlink or `..` inside
//! the root, and no rename racing an operation, makes shelf read or write
//! outside it. Symlinks that stay inside the root are followed, as
//! pickleshare follows them; a key whose path leads out of the root
//! through a symlink is refused by `get`, `contains`, `insert` and
//! `remove` with [`Error::InvalidKey`] naming it. `keys`, `iter` and `len`
//! never follow symlinks: a symlink is not a key (pickleshare, which
//! follows them, may list more keys than shelf). Hard links cannot be told
//! from ordinary files: a file hard-linked into the root from outside is a
//! key like any other, and writing its key replaces the link (a rename),
//! leaving the outside file as it was; removing it unlinks the root's name
//! only.
//!
//! ## On-disk format
//! `ROOT/KEY` holds the value's bytes, nothing else. `ROOT/.shelf-dir`, the
//! marker, holds the commit number as a 14-byte pickle (protocol 2, a
//! nine-byte `LONG1`, little-endian), so pickleshare, which lists every
//! file under the root as a key, sees one extra key `.shelf-dir` whose
//! value is an `int`. Temporary files `ROOT/.shelf-PID-N.tmp` exist while a
//! value is being written, and a killed writer's are removed by the next
//! writable open.
//!
//! ## Durability
//! Better than pickleshare, which writes values in place so a concurrent
//! reader can see a torn value (why it needs `waitget`): a value is written
//! to a temporary file in the root and renamed over the key, so a reader
//! sees the old value or the new one, never a mix, and a crash never leaves
//! a half-written value under a key. Writes are visible at once and
//! durable at [`KvBackend::flush`], which makes every file written since
//! the last flush durable (one `syncfs(2)` of the file system on Linux
//! when more than 64 were written, else an fsync each), then fsyncs
//! their directories and counts a commit in the marker (in place, under a
//! lock). A crash before `flush` may lose recent
//! writes (the rename may not have reached the disk) but never tears a
//! value.
//!
//! ## Limits
//! Corruption inside a value cannot be detected (there is no checksum; the
//! format is pickleshare's). A FIFO swapped in for a key file between the
//! listing and the read makes that read wait for a writer.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use shelf_core::raw::{BackendOptions, Lifecycle, OpenBackend, Probe};
use shelf_core::{BatchOp, Capabilities, Error, Flag, KvBackend, KvIter, KvKeys, OpenError, StorageStats};

mod marker;
mod scan;
mod sync;
mod tmp;

use marker::MarkerError;
use scan::Scan;
use sync::Dirty;
use tmp::RESERVED_PREFIX;

/// The backend's registry name.
pub const NAME: &str = "dir";

/// The marker file shelf writes inside every directory it creates.
pub const MARKER: &str = marker::MARKER;

/// The longest file name Linux file systems take.
const NAME_MAX: usize = 255;

/// Why a key that resolves out of the root is refused.
const ESCAPES: &str = "it leads outside the root through a symlink";

/// A pickleshare-compatible directory of one file per key.
#[derive(Debug)]
pub struct DirBackend {
    root: PathBuf,
    /// The root, opened once: every path is resolved beneath it.
    dir: Dir,
    /// Closed / read-only guard.
    state: Lifecycle,
    mode: u32,
    /// Files and directories written since the last flush, to make
    /// durable then.
    dirty: Dirty,
    /// The root opened for reading, for `syncfs` (writable handles only).
    whole_fs: Option<File>,
}

// The lead's `KvBackend: Send + Sync` bound: reads take `&self` and touch
// no interior state, so a handle is shared between threads as it is.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<DirBackend>();
};

/// What is at `path` for this backend (see the crate docs, "Ownership"):
/// [`Probe::Mine`] for a directory with shelf's marker or only pickles
/// below it; [`Probe::Absent`] for nothing
/// or an empty directory; [`Probe::Foreign`] for anything else. Reads
/// only.
pub fn probe(path: &Path) -> Probe {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Probe::Foreign,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Probe::Absent,
        // Something is there that cannot be looked at: never claim it.
        Err(_) => return Probe::Foreign,
    }
    let Ok(dir) = Dir::open_ambient_dir(path, ambient_authority()) else { return Probe::Foreign };
    if marker::present(&dir) {
        return Probe::Mine;
    }
    match scan::scan(&dir) {
        Scan::Pickles => Probe::Mine,
        Scan::Empty => Probe::Absent,
        // A shelf in another process may have made its marker and written a
        // first non-pickle value since we looked.
        Scan::Other if marker::present(&dir) => Probe::Mine,
        Scan::Other => Probe::Foreign,
    }
}

/// Whether `e` is cap-std's refusal of a path that resolves out of the
/// root (the kernel's `EXDEV` from `RESOLVE_BENEATH`, or cap-std's own
/// check): a `PermissionDenied` that carries no OS error code, unlike a
/// real `EACCES`.
fn is_escape(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied && e.raw_os_error().is_none()
}

/// A missing key: nothing at the path, or a file where a directory of the
/// path should be.
pub(crate) fn is_missing(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

fn open_failed(path: &Path, source: Error) -> OpenError {
    match source {
        // A damaged marker: the database is damaged, not the engine failing.
        Error::Corrupted { path, detail } => OpenError::Corrupted { path, detail },
        source => OpenError::Backend { backend: NAME, path: path.to_owned(), source: Box::new(source) },
    }
}

impl DirBackend {
    /// Opens the directory at `path` with dbm's flags: `r` and `w` need a
    /// database there; `c` creates one (or adopts an empty directory); `n`
    /// empties one first, removing every key file.
    ///
    /// # Errors
    /// [`OpenError::NotFound`]; [`OpenError::Undetectable`] when a file, or
    /// a directory that is not a database of this backend, is at `path`
    /// (nothing is then written); I/O errors naming the path.
    pub fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        match probe(path) {
            Probe::Foreign => return Err(OpenError::Undetectable { path: path.to_owned() }),
            Probe::Absent if !options.flag.creates() => {
                return Err(OpenError::NotFound { path: path.to_owned(), flag: options.flag.as_char() });
            }
            Probe::Absent => std::fs::create_dir_all(path).map_err(|e| OpenError::io(path, e))?,
            Probe::Mine => {}
        }
        let dir = Dir::open_ambient_dir(path, ambient_authority()).map_err(|e| OpenError::io(path, e))?;
        let mut backend = DirBackend {
            root: path.to_owned(),
            dir,
            state: Lifecycle::new(options.flag),
            mode: options.mode,
            dirty: Dirty::default(),
            whole_fs: None,
        };
        if options.flag.is_writable() {
            backend.claim().map_err(|e| open_failed(path, e))?;
            // Opened before any write of this handle, so `syncfs` reports
            // every write-back error since.
            backend.whole_fs = Some(sync::whole_fs_handle(&backend.dir).map_err(|e| OpenError::io(path, e))?);
        }
        if options.flag == Flag::New {
            for key in backend.walk().map_err(|e| open_failed(path, e))? {
                backend.remove(&key).map_err(|e| open_failed(path, e))?;
            }
        }
        Ok(backend)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes the directory provably ours at a writable open: the marker
    /// (holding a legacy commit number, if any), and no temporary files
    /// left by killed writers.
    fn claim(&mut self) -> Result<(), Error> {
        marker::ensure(&self.dir, self.mode, 0).map_err(|e| Error::io(self.root.join(MARKER), e))?;
        marker::migrate_legacy(&self.dir, &self.root, self.mode).map_err(|e| self.marker_err(e))?;
        // A damaged marker would fail the first flush: say so now.
        marker::read(&self.dir).map_err(|e| self.marker_err(e))?;
        tmp::remove_stale(&self.dir).map_err(|e| Error::io(&self.root, e))?;
        Ok(())
    }

    fn marker_err(&self, e: MarkerError) -> Error {
        let path = self.root.join(MARKER);
        match e {
            MarkerError::Io(e) => Error::io(path, e),
            MarkerError::Damaged(detail) => Error::Corrupted { path, detail },
        }
    }

    /// The file of `key`, relative to the root, refusing keys that are no
    /// safe relative path. (Where the path then leads is cap-std's to
    /// confine; this only keeps the key's own text well-formed.)
    fn rel_path(key: &[u8]) -> Result<PathBuf, Error> {
        let bad = |reason: &str| Error::InvalidKey {
            key: shelf_core::raw::show_key(key),
            reason: reason.to_owned(),
        };
        let text =
            std::str::from_utf8(key).map_err(|_| bad("a dir key must be UTF-8 (it is a file name)"))?;
        if text.is_empty() {
            return Err(bad("a dir key cannot be empty"));
        }
        if text.contains('\0') {
            return Err(bad("a dir key cannot contain NUL"));
        }
        if text.starts_with('/') || text.ends_with('/') {
            return Err(bad("a dir key cannot start or end with '/'"));
        }
        let mut path = PathBuf::new();
        for part in text.split('/') {
            match part {
                "" => return Err(bad("a dir key cannot have an empty path component")),
                "." | ".." => return Err(bad("a dir key cannot have '.' or '..' components")),
                p if p.len() > NAME_MAX => {
                    return Err(bad("a dir key component is longer than 255 bytes, the file name limit"));
                }
                // Any component, not only the last: listings skip reserved
                // names, so a key below one would never be listed.
                p if p.starts_with(RESERVED_PREFIX) => {
                    return Err(bad("names starting with '.shelf-' are reserved for shelf's own files"));
                }
                _ => path.push(part),
            }
        }
        Ok(path)
    }

    /// The error for an operation on `key` that failed with `e`.
    fn key_err(&self, key: &[u8], rel: &Path, e: io::Error) -> Error {
        if is_escape(&e) {
            Error::InvalidKey { key: shelf_core::raw::show_key(key), reason: ESCAPES.to_owned() }
        } else {
            Error::io(self.root.join(rel), e)
        }
    }

    /// Refuses `key` when its path resolves out of the root.
    fn check_inside(&self, key: &[u8], rel: &Path) -> Result<(), Error> {
        match self.dir.metadata(rel) {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(self.key_err(key, rel, e)),
        }
    }

    /// Writes `value` to a temporary file in the root and renames it over
    /// `rel`, so readers in any process see the old or the new value whole.
    fn write_atomically(&mut self, key: &[u8], rel: &Path, value: &[u8]) -> Result<(), Error> {
        self.check_inside(key, rel)?;
        let parent = rel.parent().unwrap_or(Path::new("")).to_owned();
        if !parent.as_os_str().is_empty() {
            self.dir.create_dir_all(&parent).map_err(|e| self.key_err(key, &parent, e))?;
        }
        let (tmp, f) = tmp::create(&self.dir, self.mode).map_err(|e| Error::io(&self.root, e))?;
        let written = (|| {
            use std::io::Write;
            (&f).write_all(value).map_err(|e| Error::io(self.root.join(&tmp), e))?;
            self.dir.rename(&tmp, &self.dir, rel).map_err(|e| self.key_err(key, rel, e))
        })();
        drop(f);
        if written.is_err() {
            let _ = self.dir.remove_file(&tmp);
        }
        written?;
        self.dirty.wrote(rel, &parent);
        Ok(())
    }

    /// Every key below the root, sorted: regular files whose names are
    /// UTF-8 and not reserved. Symlinks are never followed nor listed.
    fn walk(&self) -> Result<Vec<Vec<u8>>, Error> {
        let mut keys = Vec::new();
        let root = self.dir.try_clone().map_err(|e| Error::io(&self.root, e))?;
        let mut stack = vec![(root, String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let here = self.root.join(&prefix);
            let entries = match dir.entries() {
                Ok(e) => e,
                Err(e) => return Err(Error::io(&here, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&here, e))?;
                let Ok(name) = entry.file_name().into_string() else { continue };
                if name.starts_with(RESERVED_PREFIX) {
                    continue;
                }
                let key = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
                let kind = match entry.file_type() {
                    Ok(k) => k,
                    // Removed by another process since the listing.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(self.root.join(&key), e)),
                };
                if kind.is_dir() {
                    match entry.open_dir() {
                        Ok(sub) => stack.push((sub, key)),
                        // Removed, or swapped for something else, meanwhile.
                        Err(e) if is_missing(&e) => {}
                        Err(e) => return Err(Error::io(self.root.join(&key), e)),
                    }
                } else if kind.is_file() {
                    keys.push(key.into_bytes());
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// The bytes of the file at `rel`; `None` when there is none (or a
    /// directory is there: `paths` when `paths/x` is a key).
    fn read_value(&self, rel: &Path) -> io::Result<Option<Vec<u8>>> {
        let f = match self.dir.open(rel) {
            Ok(f) => f.into_std(),
            Err(e) if is_missing(&e) || e.kind() == io::ErrorKind::IsADirectory => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = f.metadata()?;
        if meta.is_dir() {
            return Ok(None);
        }
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file"));
        }
        let mut buf = Vec::new();
        match (&f).read_to_end(&mut buf) {
            Ok(_) => Ok(Some(buf)),
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn bump_commit(&self) -> Result<(), Error> {
        // A marker removed by hand since the open is made again.
        marker::ensure(&self.dir, self.mode, 0).map_err(|e| Error::io(self.root.join(MARKER), e))?;
        marker::update(&self.dir, |n| n.saturating_add(1)).map_err(|e| self.marker_err(e))?;
        Ok(())
    }
}

impl OpenBackend for DirBackend {
    const NAME: &'static str = NAME;
    const CAPABILITIES: Capabilities = {
        let mut c = Capabilities::NONE;
        c.persistent = true;
        c.python_format = true;
        c.multi_process = true;
        c.commit_number = true;
        c.path_keys = true;
        c
    };

    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        DirBackend::open(path, options)
    }

    fn probe(path: &Path) -> Probe {
        probe(path)
    }
}

impl KvBackend for DirBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.state.live()?;
        let rel = Self::rel_path(key)?;
        self.read_value(&rel).map_err(|e| self.key_err(key, &rel, e))
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        self.state.live()?;
        let rel = Self::rel_path(key)?;
        match self.dir.metadata(&rel) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(self.key_err(key, &rel, e)),
        }
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.state.writable("insert")?;
        let rel = Self::rel_path(key)?;
        self.write_atomically(key, &rel, value)
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.state.writable("remove")?;
        let rel = Self::rel_path(key)?;
        if !self.contains(key)? {
            return Ok(false);
        }
        // Unlinks the name inside the root (a symlink that stays inside is
        // removed itself, never its target).
        match self.dir.remove_file(&rel) {
            Ok(()) => {
                self.dirty.removed(rel.parent().unwrap_or(Path::new("")));
                Ok(true)
            }
            // Another process removed it first: as pickleshare, it won.
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(self.key_err(key, &rel, e)),
        }
    }

    fn len(&self) -> Result<usize, Error> {
        self.state.live()?;
        Ok(self.walk()?.len())
    }

    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        self.state.live()?;
        Ok(Box::new(self.walk()?.into_iter().map(Ok)))
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        self.state.live()?;
        let keys = self.walk()?;
        Ok(Box::new(keys.into_iter().filter_map(move |k| {
            let rel = match Self::rel_path(&k) {
                Ok(rel) => rel,
                Err(e) => return Some(Err(e)),
            };
            // A key removed by another process since the listing is
            // skipped; any other failure to read it is reported, naming it.
            match self.read_value(&rel) {
                Ok(Some(v)) => Some(Ok((k, v))),
                Ok(None) => None,
                Err(e) => Some(Err(self.key_err(&k, &rel, e))),
            }
        })))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.state.live()?;
        if self.dirty.is_empty() {
            return Ok(());
        }
        self.dirty
            .sync(&self.dir, self.whole_fs.as_ref())
            .map_err(|e| Error::io(self.root.join(e.rel), e.source))?;
        self.bump_commit()
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.state.is_closed() {
            return Ok(());
        }
        let flushed = if self.state.is_read_only() { Ok(()) } else { self.flush() };
        self.state.close();
        flushed
    }

    fn metadata(&self, _name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.state.live()?;
        Ok(None)
    }

    fn set_metadata(&mut self, _name: &str, _value: &[u8]) -> Result<(), Error> {
        self.state.writable("set metadata")?;
        Err(Error::Unsupported {
            backend: NAME,
            operation: "metadata (the directory stays plain pickleshare)",
        })
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        // Not atomic: each operation is its own rename or unlink.
        self.state.writable("apply a batch")?;
        shelf_core::raw::apply_one_by_one(self, ops)
    }

    fn commit_number(&self) -> Result<u64, Error> {
        self.state.live()?;
        match marker::read(&self.dir).map_err(|e| self.marker_err(e))? {
            Some(n) => Ok(n),
            // A directory of an older shelf opened read-only (so not
            // migrated), or a pickleshare directory never written by shelf.
            None => Ok(marker::read_legacy(&self.root).unwrap_or(0)),
        }
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        self.state.live()?;
        let mut bytes = 0;
        let mut files = Vec::new();
        for k in self.walk()? {
            let rel = Self::rel_path(&k)?;
            bytes += self.dir.symlink_metadata(&rel).map(|m| m.len()).unwrap_or(0);
            files.push(self.root.join(rel));
        }
        if let Ok(m) = self.dir.symlink_metadata(MARKER) {
            bytes += m.len();
            files.push(self.root.join(MARKER));
        }
        Ok(StorageStats::new(bytes, None, files))
    }
}

impl Drop for DirBackend {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
