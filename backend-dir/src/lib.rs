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
//! UTF-8, or one whose last component starts with `.shelf-` (reserved for
//! temporary files) is refused with [`Error::InvalidKey`]. No metadata is
//! kept, so the directory stays a plain pickleshare database, and the
//! protocol is not recorded. Keys are not ordered; `keys` lists them sorted.
//!
//! ## On-disk format
//! `ROOT/KEY` holds the value's bytes, nothing else. The commit number lives
//! beside the directory, in `ROOT.shelf-commit` (eight little-endian
//! bytes), so that pickleshare, which treats every file under the root as a
//! key, never sees it.
//!
//! ## Durability
//! Better than pickleshare, which writes values in place so a concurrent
//! reader can see a torn value (why it needs `waitget`): a value is written
//! to a temporary file in the same directory and renamed over the key, so a
//! reader sees the old value or the new one, never a mix, and a crash never
//! leaves a half-written value under a key. Writes are visible at once and
//! durable at [`KvBackend::flush`], which fsyncs every file written since
//! the last flush and their directories. A crash before `flush` may lose
//! recent writes (the rename may not have reached the disk) but never tears
//! a value.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use shelf_core::{
    BackendOptions, BatchOp, Capabilities, Error, Flag, KvBackend, KvIter, OpenBackend, OpenError, Probe,
    StorageStats,
};

/// The backend's registry name.
pub const NAME: &str = "dir";

/// Names starting with this are ours (temporary files), never keys.
const RESERVED_PREFIX: &str = ".shelf-";

/// The longest file name Linux file systems take.
const NAME_MAX: usize = 255;

/// Makes temporary file names unique within the process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A pickleshare-compatible directory of one file per key.
#[derive(Debug)]
pub struct DirBackend {
    root: PathBuf,
    read_only: bool,
    closed: bool,
    mode: u32,
    /// Files and directories written since the last flush, to fsync then.
    dirty: BTreeSet<PathBuf>,
}

/// What is at `path` for this backend: a directory is a pickleshare
/// database (pickleshare's own rule: every file below it is a key), unless
/// it is a sled database (a `conf` and a `db` file inside).
pub fn probe(path: &Path) -> Probe {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            if path.join("conf").is_file() && path.join("db").is_file() {
                Probe::Foreign
            } else {
                Probe::Mine
            }
        }
        Ok(_) => Probe::Foreign,
        Err(_) => Probe::Absent,
    }
}

fn commit_file(root: &Path) -> PathBuf {
    let mut name = root.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "db".into());
    name.push(".shelf-commit");
    root.with_file_name(name)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::io(path, source)
}

impl DirBackend {
    /// Opens the directory at `path` with dbm's flags: `r` and `w` need it
    /// to exist; `c` creates it; `n` empties it first, removing every key
    /// (every file below it, as pickleshare's `clear()` would).
    ///
    /// # Errors
    /// [`OpenError::NotFound`], [`OpenError::Undetectable`] when a file or a
    /// sled database is at `path`, I/O errors naming the path.
    pub fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        match probe(path) {
            Probe::Foreign => return Err(OpenError::Undetectable { path: path.to_owned() }),
            Probe::Absent if !options.flag.creates() => {
                return Err(OpenError::NotFound { path: path.to_owned(), flag: options.flag.as_char() });
            }
            Probe::Absent => {
                fs::create_dir_all(path).map_err(|e| OpenError::io(path, e))?;
            }
            Probe::Mine => {}
        }
        let mut backend = DirBackend {
            root: path.to_owned(),
            read_only: options.flag == Flag::Read,
            closed: false,
            mode: options.mode,
            dirty: BTreeSet::new(),
        };
        if options.flag == Flag::New {
            let keys = backend.keys().map_err(|e| OpenError::Backend {
                backend: NAME,
                path: path.to_owned(),
                source: Box::new(e),
            })?;
            for key in keys {
                backend.remove(&key).map_err(|e| OpenError::Backend {
                    backend: NAME,
                    path: path.to_owned(),
                    source: Box::new(e),
                })?;
            }
        }
        Ok(backend)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn live(&self) -> Result<(), Error> {
        if self.closed { Err(Error::Closed) } else { Ok(()) }
    }

    fn writable(&self, operation: &'static str) -> Result<(), Error> {
        self.live()?;
        if self.read_only { Err(Error::ReadOnly { operation }) } else { Ok(()) }
    }

    /// The file of `key`, refusing keys that are no safe relative path.
    fn path_of(&self, key: &[u8]) -> Result<PathBuf, Error> {
        let bad =
            |reason: &str| Error::InvalidKey { key: shelf_core::show_key(key), reason: reason.to_owned() };
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
        let mut path = self.root.clone();
        for part in text.split('/') {
            match part {
                "" => return Err(bad("a dir key cannot have an empty path component")),
                "." | ".." => return Err(bad("a dir key cannot have '.' or '..' components")),
                p if p.len() > NAME_MAX => {
                    return Err(bad("a dir key component is longer than 255 bytes, the file name limit"));
                }
                _ => path.push(part),
            }
        }
        // Belt and braces: what we built must stay below the root.
        if !Path::new(text).components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad("a dir key must stay below the root"));
        }
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(RESERVED_PREFIX)) {
            return Err(bad("names starting with '.shelf-' are reserved for temporary files"));
        }
        Ok(path)
    }

    /// Writes `value` to a temporary file beside `path` and renames it into
    /// place, so readers in any process see the old or the new value whole.
    fn write_atomically(&mut self, path: &Path, value: &[u8]) -> Result<(), Error> {
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        // Short and independent of the key, so any key whose name fits the
        // file system's limit also has a temporary name that fits.
        let tmp = dir.join(format!(
            "{RESERVED_PREFIX}{}-{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.mode)
                .open(&tmp)
                .map_err(io_err(&tmp))?;
            f.write_all(value).map_err(io_err(&tmp))?;
            fs::rename(&tmp, path).map_err(io_err(path))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        self.dirty.insert(path.to_owned());
        self.dirty.insert(dir);
        Ok(())
    }

    /// Every key below the root, sorted, skipping our temporary files.
    fn walk(&self) -> Result<Vec<Vec<u8>>, Error> {
        let mut keys = Vec::new();
        let mut stack = vec![(self.root.clone(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                // Another process removed a subdirectory meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound && dir != self.root => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(io_err(&dir))?;
                let Ok(name) = entry.file_name().into_string() else { continue };
                if name.starts_with(RESERVED_PREFIX) {
                    continue;
                }
                let kind = entry.file_type().map_err(io_err(&entry.path()))?;
                let key = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
                if kind.is_dir() {
                    stack.push((entry.path(), key));
                } else if kind.is_file() {
                    keys.push(key.into_bytes());
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn read_value(path: &Path) -> Result<Option<Vec<u8>>, Error> {
        let mut f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        if f.metadata().map_err(io_err(path))?.is_dir() {
            return Ok(None);
        }
        let mut buf = Vec::new();
        match f.read_to_end(&mut buf) {
            Ok(_) => Ok(Some(buf)),
            // A directory opened as a file: `paths` when `paths/x` is a key.
            Err(e) if e.raw_os_error() == Some(21) => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn bump_commit(&self) -> Result<(), Error> {
        let path = commit_file(&self.root);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(self.mode)
            .open(&path)
            .map_err(io_err(&path))?;
        // The lock makes read-increment-write atomic across processes.
        f.lock().map_err(io_err(&path))?;
        let mut buf = [0u8; 8];
        let n = f.read(&mut buf).map_err(io_err(&path))?;
        let current = if n == 8 { u64::from_le_bytes(buf) } else { 0 };
        f.write_all_at(&(current + 1).to_le_bytes(), 0).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))?;
        Ok(())
    }
}

impl OpenBackend for DirBackend {
    const NAME: &'static str = NAME;

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
        let mut c = Capabilities::NONE;
        c.persistent = true;
        c.python_format = true;
        c.multi_process = true;
        c.commit_number = true;
        c.path_keys = true;
        c
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.live()?;
        Self::read_value(&self.path_of(key)?)
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        self.live()?;
        Ok(self.path_of(key)?.is_file())
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.writable("insert")?;
        let path = self.path_of(key)?;
        self.write_atomically(&path, value)
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.writable("remove")?;
        let path = self.path_of(key)?;
        if !path.is_file() {
            return Ok(false);
        }
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    self.dirty.insert(dir.to_owned());
                }
                Ok(true)
            }
            // Another process removed it first: as pickleshare, it won.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn len(&self) -> Result<usize, Error> {
        self.live()?;
        Ok(self.walk()?.len())
    }

    fn keys(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.live()?;
        self.walk()
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        self.live()?;
        let keys = self.walk()?;
        Ok(Box::new(keys.into_iter().filter_map(move |k| {
            // A key removed by another process since the listing is skipped.
            match self.path_of(&k).and_then(|p| Self::read_value(&p)) {
                Ok(Some(v)) => Some(Ok((k, v))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        })))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.live()?;
        if self.dirty.is_empty() {
            return Ok(());
        }
        for path in std::mem::take(&mut self.dirty) {
            match File::open(&path) {
                Ok(f) => f.sync_all().map_err(io_err(&path))?,
                // Removed since by us or by another process: nothing to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        self.bump_commit()
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.closed {
            return Ok(());
        }
        let flushed = if self.read_only { Ok(()) } else { self.flush() };
        self.closed = true;
        flushed
    }

    fn metadata(&self, _name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.live()?;
        Ok(None)
    }

    fn set_metadata(&mut self, _name: &str, _value: &[u8]) -> Result<(), Error> {
        self.writable("set metadata")?;
        Err(Error::Unsupported {
            backend: NAME,
            operation: "metadata (the directory stays plain pickleshare)",
        })
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        // Not atomic: each operation is its own rename or unlink.
        self.writable("apply a batch")?;
        shelf_core::apply_one_by_one(self, ops)
    }

    fn commit_number(&self) -> Result<u64, Error> {
        self.live()?;
        let path = commit_file(&self.root);
        match fs::read(&path) {
            Ok(b) if b.len() == 8 => Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
            Ok(_) => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        self.live()?;
        let mut bytes = 0;
        let mut files = Vec::new();
        for k in self.walk()? {
            let p = self.path_of(&k)?;
            bytes += fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            files.push(p);
        }
        Ok(StorageStats::new(bytes, None, files))
    }
}

impl Drop for DirBackend {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
