//! Opening: the probe, locks on the database file itself (as libgdbm
//! takes them), creation, flag `n`, recovery of an interrupted commit.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use shelf_core::raw::{BackendOptions, LockKind, Probe, lock_file};
use shelf_core::{Flag, OpenError};

use crate::engine::Engine;
use crate::error::GnuError;
use crate::format::{self, Layout, Magic, NEW_BLOCK_SIZE};
use crate::journal;

/// What is at `path`: any GDBM magic number (all variants, so that open
/// can say which one it refuses) is [`Probe::Mine`].
pub fn probe(path: &Path) -> Probe {
    let Ok(meta) = fs::metadata(path) else {
        return if fs::symlink_metadata(path).is_ok() { Probe::Foreign } else { Probe::Absent };
    };
    if !meta.is_file() {
        return Probe::Foreign;
    }
    let mut first = [0u8; 4];
    match File::open(path).and_then(|mut f| f.read_exact(&mut first)) {
        Ok(()) if format::magic(first) != Magic::Foreign => Probe::Mine,
        _ => Probe::Foreign,
    }
}

/// A temporary name beside the database, unique in this process and
/// among processes.
fn temp_path(path: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".shelf-gnu-tmp-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    PathBuf::from(s)
}

/// Removes temporary files dead processes left beside the database (a
/// creation or compaction killed half-way).
fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (Some(journal::parent(path)), path.file_name()) else { return };
    let Ok(entries) = fs::read_dir(&dir) else { return };
    let prefix = format!("{}.shelf-gnu-tmp-", name.to_string_lossy());
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else { continue };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn identity_of(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Opens the file at `path` and locks it, retrying when the file was
/// replaced (a compaction or flag `n` renamed another over it) while the
/// lock was awaited: the lock must be on the file the name leads to.
fn open_locked(path: &Path, writable: bool, options: &BackendOptions) -> Result<Option<File>, OpenError> {
    for _ in 0..100 {
        let file = match OpenOptions::new().read(true).write(writable).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(OpenError::io(path, e)),
        };
        let kind = if writable { LockKind::Exclusive } else { LockKind::Shared };
        lock_file(&file, kind, path, path, options)?;
        if journal::identity(&file).ok() == identity_of(path) {
            return Ok(Some(file));
        }
    }
    Err(OpenError::Locked { path: path.to_owned() })
}

/// Builds an empty database in a temporary file, locked; the caller moves
/// it into place.
fn build_empty(
    path: &Path,
    layout: Layout,
    block_size: u32,
    mode: u32,
) -> Result<(PathBuf, Engine), GnuError> {
    let tmp = temp_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(GnuError::io(&tmp))?;
    if file.try_lock().is_err() {
        return Err(GnuError::Io { path: tmp, source: io::Error::other("a new file is locked") });
    }
    let mut engine = Engine::create(tmp.clone(), file, layout, block_size, mode);
    if let Err(e) = engine.commit() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok((tmp, engine))
}

/// Opens (or creates, per the flag) the GDBM file at `path`.
pub fn open(path: &Path, options: &BackendOptions) -> Result<Engine, OpenError> {
    let flag = options.flag;
    let writable = flag.is_writable();
    for _ in 0..100 {
        match probe(path) {
            Probe::Foreign => return Err(OpenError::Undetectable { path: path.to_owned() }),
            Probe::Absent if !flag.creates() => {
                return Err(OpenError::NotFound { path: path.to_owned(), flag: flag.as_char() });
            }
            Probe::Absent => {
                let (tmp, mut engine) = build_empty(path, Layout::NEW, NEW_BLOCK_SIZE, options.mode)?;
                // A link fails where a name exists: another creator won.
                // Where links are not supported, a rename (racy only
                // against another creator at the same instant).
                let linked = match fs::hard_link(&tmp, path) {
                    Err(e)
                        if e.kind() != io::ErrorKind::AlreadyExists
                            && fs::symlink_metadata(path).is_err() =>
                    {
                        fs::rename(&tmp, path)
                    }
                    other => other,
                };
                let _ = fs::remove_file(&tmp);
                match linked {
                    Ok(()) => {
                        journal::sync_parent(path).map_err(|e| OpenError::io(path, e))?;
                        engine.path = path.to_owned();
                        engine.fresh = false;
                        return Ok(engine);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(OpenError::io(path, e)),
                }
            }
            Probe::Mine => {
                let Some(file) = open_locked(path, writable, options)? else { continue };
                if flag == Flag::New {
                    return Ok(renew(path, file, options)?);
                }
                return Ok(open_existing(path, file, writable, options.mode)?);
            }
        }
    }
    Err(OpenError::Locked { path: path.to_owned() })
}

/// Flag `n` on a GDBM file: an empty database of the same variant and
/// block size (a fresh one where the old header is unreadable) renamed
/// over it, so a crash leaves the old file or the new one.
fn renew(path: &Path, old: File, options: &BackendOptions) -> Result<Engine, GnuError> {
    let (layout, block_size) =
        match Engine::load(path.to_owned(), old.try_clone().map_err(GnuError::io(path))?, None, options.mode)
        {
            Ok(e) => (Layout { numsync: e.header.layout.numsync, ..e.header.layout }, e.header.block_size),
            Err(_) => (Layout::NEW, NEW_BLOCK_SIZE),
        };
    let mode = old.metadata().map(|m| m.mode() & 0o7777).unwrap_or(options.mode);
    let (tmp, mut engine) = build_empty(path, layout, block_size, mode)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(GnuError::io(path)(e));
    }
    let _ = journal::discard(&journal::path_of(path));
    journal::sync_parent(path).map_err(GnuError::io(path))?;
    drop(old);
    engine.path = path.to_owned();
    engine.fresh = false;
    Ok(engine)
}

fn open_existing(path: &Path, file: File, writable: bool, mode: u32) -> Result<Engine, GnuError> {
    let journal_path = journal::path_of(path);
    let id = journal::identity(&file).map_err(GnuError::io(path))?;
    let pending = journal::read(&journal_path, id).map_err(GnuError::io(&journal_path))?;
    if !writable {
        return Engine::load(path.to_owned(), file, pending, mode);
    }
    remove_stale_temps(path);
    match pending {
        Some(j) => journal::roll_back(&journal_path, &file, &j).map_err(GnuError::io(path))?,
        None => journal::discard(&journal_path).map_err(GnuError::io(&journal_path))?,
    }
    Engine::load(path.to_owned(), file, None, mode)
}

/// Rewrites the database into a temporary file, entry by entry, and
/// renames it over the old one (GDBM's `gdbm_reorganize`); `keep` decides
/// which entries survive (all of them, for a compaction). Returns the new
/// engine, locked, in place.
pub fn rebuild(
    old: &Engine,
    entries: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), GnuError>>,
) -> Result<Engine, GnuError> {
    let path = old.path.clone();
    let mode = old.file.metadata().map(|m| m.mode() & 0o7777).unwrap_or(old.mode);
    let (tmp, mut engine) = build_empty(&path, old.header.layout, old.header.block_size, mode)?;
    if let Some(ext) = old.header.ext {
        engine.header.ext = Some(ext);
    }
    let built = (|| {
        for entry in entries {
            let (k, v) = entry?;
            engine.insert(&k, &v)?;
        }
        engine.header_dirty = true;
        engine.commit()?;
        fs::rename(&tmp, &path).map_err(GnuError::io(&path))?;
        journal::sync_parent(&path).map_err(GnuError::io(&path))
    })();
    if let Err(e) = built {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    engine.path = path;
    engine.fresh = false;
    engine.mode = old.mode;
    Ok(engine)
}
