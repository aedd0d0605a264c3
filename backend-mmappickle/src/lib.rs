//! The `mmappickle` backend of shelf: files of Python's
//! [mmappickle](https://pypi.org/project/mmappickle/) 1.0, byte for byte,
//! with numpy arrays read as zero-copy views of the mapped file.
//!
//! ## Capabilities
//! persistent, python_format (values are pickles), multi_process,
//! compact (mmappickle's `vacuum`), check (its `fsck`), commit_number (the
//! one in the header). No metadata, no ordered keys, batches applied one by
//! one. Keys are at most 255 bytes once stored (`SHORT_BINUNICODE`).
//!
//! ## On-disk format
//! One file that is itself one pickle (`pickle.load` returns the dict):
//! - header, 24 bytes: `PROTO 4`, `FRAME 13`, `BININT 1 POP` (version),
//!   `BININT <commit> POP` (the commit number, at offset 18), `MARK`;
//! - one entry per write: `FRAME <len>`, `SHORT_BINUNICODE <key>`, the
//!   value as a pickle fragment, `BININT <max memo index> POP`, then
//!   `NEWTRUE POP` (valid) or `POP POP` (deleted: flipped in place);
//! - terminator: `FRAME 2`, `DICT`, `STOP`.
//!
//! Beside it, only while [`KvBackend::compact`] runs: `NAME.shelf-compact`,
//! the new file before its rename (removed by the next writer's open if a
//! crash left it).
//!
//! A write appends an entry over the terminator and writes it again after
//! (one `pwrite`), then clears the old entry's flag, then bumps the commit
//! number, under an exclusive `flock` of the file: what mmapdict's
//! `__setitem__` does, except that the old entry is cleared after the new
//! one is whole (mmapdict clears it first), so a crash between leaves the
//! old value or two valid entries, of which the later wins (as in
//! mmapdict's reading). Keys that are not UTF-8 are stored as Python's
//! `surrogateescape` decodes them (then Python's `pickle.load` reads them,
//! mmapdict's `keys()` cannot). How values map to fragments is in
//! `fragment.rs`; arrays in [`NdArray`].
//!
//! ## Durability
//! Writes go to the file at once (other processes see them at their next
//! operation); [`KvBackend::flush`] fsyncs. A process killed mid-append
//! leaves a torn entry at the end: every scan stops before it, and the
//! next writer cuts it off and rewrites the terminator (mmappickle's
//! `fsck`), so the file always opens and nothing flushed is lost.
//!
//! ## Several processes
//! Every operation takes an `flock` of the file (shared to read, exclusive
//! to write; mmapdict takes an exclusive one for everything, so both
//! exclude each other's writes) and rereads the index when the commit
//! number, the length or the file changed. [`KvBackend::compact`] writes a
//! new file and renames it over the old (crash-safe, unlike `vacuum`'s
//! shifting in place); like `vacuum`, it must run with no other process
//! holding the file open: a Python mmapdict keeps its handle on the old
//! file (shelf handles notice the rename and reopen). Array views handed
//! out stay valid until a Python `vacuum` truncates the file under them.
//! Handles of one process are as independent as those of two (a reader
//! beside a writer, even a second writer, works).
//!
//! ## Threads
//! A handle is `Send + Sync`. Its reads run in parallel: each checks the
//! index against the file under a shared `flock` (one thread of the
//! handle at a time, briefly: a `flock` belongs to the open file, not to
//! a thread), rereading it when the file changed, then reads the entries
//! under the index's shared lock without holding the `flock` (a complete
//! entry's bytes never change; see `lock.rs`). [`KvBackend::get_many`]
//! checks the index once for the whole batch.
//!
//! ## Damage
//! Bytes that are no entry (not a torn end) make `open` fail with
//! [`OpenError::Corrupted`], unless opened with `salvage`: then the
//! entries before them are read, and `check(true)` cuts the file there as
//! `fsck` does.

mod check;
mod format;
mod fragment;
mod lock;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use memmap2::Mmap;
use shelf_core::raw::{
    BackendOptions, Lifecycle, LockKind, OpenBackend, Probe, apply_one_by_one, lock_file, show_key,
};
use shelf_core::{
    ArrayOwner, BatchOp, Capabilities, CheckReport, Error, Flag, KvBackend, KvIter, KvKeys, OpenError,
    SharedBytes, StorageStats,
};

use format::{Entry, Scan, Tail};
pub use shelf_core::{ArrayOrder, NdArray};

/// The registry name.
pub const NAME: &str = "mmappickle";

/// A database in one mmappickle 1.0 file.
pub struct MmapPickleBackend {
    path: PathBuf,
    life: Lifecycle,
    salvage: bool,
    /// The index, shared by reads, exclusive for writes and rereads.
    st: RwLock<State>,
    /// Readers of the handle check the file one at a time (see
    /// `lock.rs`).
    turn: Mutex<()>,
}

// Handles are shared between threads (`Arc<Shelf>`): reads run in
// parallel, under the file's shared `flock` and the index's read lock.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<MmapPickleBackend>();
};

struct State {
    file: File,
    /// The inode the handle has open (a compaction renames a new one in).
    ino: u64,
    /// The length and commit number the index was read at.
    len: u64,
    commit: i32,
    map: Option<Arc<Mmap>>,
    scan: Scan,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
    Error::Corrupted { path: path.to_owned(), detail: detail.into() }
}

/// A fresh file: header with commit number 0 and the terminator.
fn fresh_file() -> Vec<u8> {
    let mut f = format::header(0).to_vec();
    f.extend_from_slice(&format::TERMINATOR);
    f
}

/// Maps `file` (at least a header long).
#[allow(unsafe_code)]
fn map_file(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: the map is read-only. The file is shared with other
    // processes, which only append, flip flag bytes and rewrite the commit
    // number under the lock, or (Python's vacuum) truncate it, which the
    // crate docs warn about as mmappickle's do.
    unsafe { Mmap::map(file) }
}

/// Releases the file's lock when an operation ends, error or not.
struct Unlock<'a>(&'a File);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl MmapPickleBackend {
    /// Reads the file's index when it changed since the last operation
    /// (the caller holds the lock). A writer (`repair`) cuts a torn end.
    fn refresh(&self, st: &mut State, repair: bool) -> Result<(), Error> {
        let meta = st.file.metadata().map_err(io_err(&self.path))?;
        let mut commit = [0u8; 4];
        if meta.len() >= format::HEADER_LEN as u64 {
            st.file.read_exact_at(&mut commit, format::COMMIT_AT).map_err(io_err(&self.path))?;
        }
        let commit = i32::from_le_bytes(commit);
        // Unchanged since the last scan: a torn end is kept for readers and
        // cut by the next writer.
        let must_cut = repair && st.scan.tail == Tail::Torn;
        if meta.len() == st.len && commit == st.commit && st.map.is_some() && !must_cut {
            return Ok(());
        }
        let map = Arc::new(map_file(&st.file).map_err(io_err(&self.path))?);
        if let Some(p) = format::header_problem(&map) {
            return Err(corrupt(&self.path, p));
        }
        let scan = format::scan(&map);
        match &scan.tail {
            Tail::Damaged(d) if !self.salvage => return Err(corrupt(&self.path, d.clone())),
            Tail::Torn if repair => {
                st.file.set_len(scan.end).map_err(io_err(&self.path))?;
                st.file.write_all_at(&format::TERMINATOR, scan.end).map_err(io_err(&self.path))?;
                st.len = scan.end + format::TERMINATOR.len() as u64;
                st.commit = format::commit_of(&map);
                st.scan = Scan { tail: Tail::Clean, ..scan };
                st.map = None;
                return Ok(());
            }
            _ => {}
        }
        st.len = meta.len();
        st.commit = format::commit_of(&map);
        st.scan = scan;
        st.map = Some(map);
        Ok(())
    }

    fn fragment_of(&self, st: &State, key: &[u8]) -> Result<Option<(Arc<Mmap>, Entry)>, Error> {
        let Some(e) = st.scan.live.get(key).copied() else { return Ok(None) };
        Ok(Some((self.map_for(st, e.end())?, e)))
    }

    /// Appends an entry for `key` holding the fragment `parts` make, then
    /// clears the old one and bumps the commit number (the caller holds
    /// the lock). The pieces go straight to the file: a large array is not
    /// copied into one buffer first.
    fn append(&self, st: &mut State, key: &[u8], parts: &[&[u8]], memo: i32) -> Result<(), Error> {
        self.intact(st)?;
        let stored_key = format::encode_key(key);
        if stored_key.len() > 255 {
            return Err(Error::InvalidKey {
                key: show_key(key),
                reason: format!("mmappickle keys are at most 255 bytes of UTF-8 ({} here)", stored_key.len()),
            });
        }
        let data_len: usize = parts.iter().map(|p| p.len()).sum();
        let (head, tail) = format::entry_parts(&stored_key, data_len, memo);
        let at = st.scan.end;
        let mut pos = at;
        let mut put = |bytes: &[u8]| -> Result<(), Error> {
            st.file.write_all_at(bytes, pos).map_err(io_err(&self.path))?;
            pos += bytes.len() as u64;
            Ok(())
        };
        put(&head)?;
        for p in parts {
            put(p)?;
        }
        // The trailer and the terminator in one write: the entry is whole
        // only once its trailer is.
        put(&[&tail[..], &format::TERMINATOR].concat())?;
        let data_start = at + head.len() as u64;
        let e = Entry { offset: at, data_start, data_end: data_start + data_len as u64 };
        if let Some(old) = st.scan.live.insert(key.to_vec(), e) {
            st.file.write_all_at(b"0", old.flag_at()).map_err(io_err(&self.path))?;
            st.scan.dead_bytes += old.end() - old.offset;
        }
        st.scan.end = e.end();
        st.scan.memo_max = st.scan.memo_max.max(memo);
        st.len = st.scan.end + format::TERMINATOR.len() as u64;
        self.bump(st)
    }

    /// Refuses to write into a file with damage after its entries (opened
    /// with `salvage`): the write would overwrite the damaged bytes.
    fn intact(&self, st: &State) -> Result<(), Error> {
        match &st.scan.tail {
            Tail::Damaged(d) => Err(corrupt(&self.path, format!("{d}; run check(repair) before writing"))),
            _ => Ok(()),
        }
    }

    /// mmapdict's `commit_number += 1`.
    fn bump(&self, st: &mut State) -> Result<(), Error> {
        st.commit = st.commit.checked_add(1).unwrap_or(1);
        st.file.write_all_at(&st.commit.to_le_bytes(), format::COMMIT_AT).map_err(io_err(&self.path))
    }

    /// The array stored under `key`, its data a view of the memory-mapped
    /// file (no copy, whatever its size); `Ok(None)` when the key is
    /// absent.
    ///
    /// # Errors
    /// [`Error::Corrupted`] when the value starts as an array but its
    /// bytes are damaged; [`Error::InvalidKey`] when the value is no array.
    pub fn get_array(&self, key: &[u8]) -> Result<Option<NdArray>, Error> {
        self.reading(|st| {
            let Some((map, e)) = self.fragment_of(st, key)? else { return Ok(None) };
            let owner: ArrayOwner = map;
            match NdArray::from_fragment_in(&owner, e.data_start as usize, e.data_end as usize) {
                Some(Ok(a)) => Ok(Some(a)),
                Some(Err(d)) => Err(corrupt(&self.path, format!("the array under {:?}: {d}", show_key(key)))),
                None => Err(Error::InvalidKey {
                    key: show_key(key),
                    reason: "its value is no numpy array".into(),
                }),
            }
        })
    }

    /// Stores `array` under `key` as mmappickle's numpy pickler writes it
    /// (then Python's mmapdict maps it in place).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an array mmappickle cannot store (F order,
    /// a dimension beyond `i32`) or a key too long; I/O errors.
    pub fn insert_array(&mut self, key: &[u8], array: &NdArray) -> Result<(), Error> {
        self.life.writable("insert")?;
        let parts =
            array.fragment_parts().map_err(|reason| Error::InvalidKey { key: show_key(key), reason })?;
        let parts: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        // mmappickle's array picklers return 0 as their max memo index.
        self.locked(LockKind::Exclusive, |st| self.append(st, key, &parts, 0))
    }

    /// The address range of the current memory map, for checking that a
    /// view lies inside it (tests of zero-copy reads).
    pub fn mapped_range(&self) -> Option<std::ops::Range<usize>> {
        let st = self.state();
        st.map.as_ref().map(|m| {
            let p = m.as_ptr() as usize;
            p..p + m.len()
        })
    }

    fn create(path: &Path, options: &BackendOptions) -> Result<File, OpenError> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(options.mode)
            .open(path)
            .map_err(|e| OpenError::io(path, e))?;
        Ok(f)
    }
}

/// Whether `bytes` is a file being created: empty or a prefix of a fresh
/// file (a creator writes it in one `pwrite` under the lock).
fn is_unborn(bytes: &[u8]) -> bool {
    bytes.len() < fresh_file().len() && fresh_file().starts_with(bytes)
}

fn probe(path: &Path) -> Probe {
    let Ok(meta) = std::fs::metadata(path) else {
        return if std::fs::symlink_metadata(path).is_ok() { Probe::Foreign } else { Probe::Absent };
    };
    if !meta.is_file() {
        return Probe::Foreign;
    }
    let mut head = [0u8; format::HEADER_LEN];
    match File::open(path).and_then(|f| f.read_exact_at(&mut head, 0)) {
        Ok(()) if format::header_problem(&head).is_none() => Probe::Mine,
        _ => Probe::Foreign,
    }
}

impl OpenBackend for MmapPickleBackend {
    const NAME: &'static str = NAME;
    const CAPABILITIES: Capabilities = {
        let mut c = Capabilities::NONE;
        c.persistent = true;
        c.python_format = true;
        c.multi_process = true;
        c.compact = true;
        c.check = true;
        c.commit_number = true;
        c
    };

    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        let flag = options.flag;
        let exists = std::fs::symlink_metadata(path).is_ok();
        if exists && probe(path) == Probe::Foreign {
            let meta = std::fs::metadata(path).map_err(|e| OpenError::io(path, e))?;
            // An empty file (or one a creator is writing) may become one
            // (mmapdict writes a header into a file under 2 bytes long).
            let unborn = meta.is_file()
                && meta.len() < fresh_file().len() as u64
                && std::fs::read(path).is_ok_and(|b| is_unborn(&b));
            if !unborn || !flag.is_writable() {
                if meta.is_dir() {
                    return Err(OpenError::io(path, std::io::Error::from(std::io::ErrorKind::IsADirectory)));
                }
                File::open(path).map_err(|e| OpenError::io(path, e))?;
                return Err(OpenError::Undetectable { path: path.to_owned() });
            }
        }
        if !exists && !flag.creates() {
            return Err(OpenError::NotFound { path: path.to_owned(), flag: flag.as_char() });
        }
        let file = if flag.is_writable() {
            Self::create(path, options)?
        } else {
            File::open(path).map_err(|e| OpenError::io(path, e))?
        };
        let kind = if flag.is_writable() { LockKind::Exclusive } else { LockKind::Shared };
        lock_file(&file, kind, path, path, options)?;
        let unlock = Unlock(&file);
        let len = file.metadata().map_err(|e| OpenError::io(path, e))?.len();
        let mut head = vec![0u8; (len as usize).min(fresh_file().len())];
        file.read_exact_at(&mut head, 0).map_err(|e| OpenError::io(path, e))?;
        if flag == Flag::New || (len < fresh_file().len() as u64 && is_unborn(&head)) {
            if !flag.is_writable() {
                return Err(OpenError::Undetectable { path: path.to_owned() });
            }
            file.set_len(0).map_err(|e| OpenError::io(path, e))?;
            file.write_all_at(&fresh_file(), 0).map_err(|e| OpenError::io(path, e))?;
        }
        if flag.is_writable() {
            // A compaction's temporary file left by a crash: its writer
            // held this lock, so no compaction is running now.
            let _ = std::fs::remove_file(check::temporary(path));
        }
        drop(unlock);
        let ino = file.metadata().map_err(|e| OpenError::io(path, e))?.ino();
        let backend = MmapPickleBackend {
            path: path.to_owned(),
            life: Lifecycle::new(flag),
            salvage: options.salvage,
            turn: Mutex::new(()),
            st: RwLock::new(State {
                file,
                ino,
                len: u64::MAX,
                commit: 0,
                map: None,
                scan: format::scan(&fresh_file()),
            }),
        };
        let kind = if flag.is_writable() { LockKind::Exclusive } else { LockKind::Shared };
        backend.locked(kind, |_| Ok(())).map_err(|e| match e {
            Error::Corrupted { path, detail } => OpenError::Corrupted { path, detail },
            Error::Io { path, source } => OpenError::Io { path, source },
            other => OpenError::Backend { backend: NAME, path: path.to_owned(), source: Box::new(other) },
        })?;
        Ok(backend)
    }

    fn probe(path: &Path) -> Probe {
        probe(path)
    }
}

impl KvBackend for MmapPickleBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.reading(|st| {
            Ok(self
                .fragment_of(st, key)?
                .map(|(map, e)| fragment::decode(&map[e.data_start as usize..e.data_end as usize])))
        })
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        // One pass under one lock: the index is checked against the file
        // once for the whole batch.
        self.reading(|st| {
            keys.iter()
                .map(|key| {
                    Ok(self
                        .fragment_of(st, key)?
                        .map(|(map, e)| fragment::decode(&map[e.data_start as usize..e.data_end as usize])))
                })
                .collect()
        })
    }

    fn get_shared(&self, key: &[u8]) -> Result<Option<SharedBytes>, Error> {
        self.reading(|st| {
            let Some((map, e)) = self.fragment_of(st, key)? else { return Ok(None) };
            let (s, t) = (e.data_start as usize, e.data_end as usize);
            match fragment::escaped_range(&map[s..t]) {
                Some((a, b)) => {
                    let owner: ArrayOwner = map;
                    SharedBytes::slice_of(owner, s + a, s + b)
                        .map(Some)
                        .map_err(|_| corrupt(&self.path, "a value runs past the map"))
                }
                None => Ok(Some(SharedBytes::from(fragment::decode(&map[s..t])))),
            }
        })
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        self.reading(|st| Ok(st.scan.live.contains_key(key)))
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.life.writable("insert")?;
        self.locked(LockKind::Exclusive, |st| {
            let start = u32::try_from(st.scan.memo_max.max(1)).unwrap_or(1);
            let (fragment, next) = fragment::encode(value, start);
            self.append(st, key, &[&fragment], i32::try_from(next).unwrap_or(i32::MAX))
        })
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.life.writable("remove")?;
        self.locked(LockKind::Exclusive, |st| {
            self.intact(st)?;
            let Some(old) = st.scan.live.remove(key) else { return Ok(false) };
            st.file.write_all_at(b"0", old.flag_at()).map_err(io_err(&self.path))?;
            st.scan.dead_bytes += old.end() - old.offset;
            self.bump(st)?;
            Ok(true)
        })
    }

    fn len(&self) -> Result<usize, Error> {
        self.reading(|st| Ok(st.scan.live.len()))
    }

    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        let keys: Vec<Vec<u8>> = self.reading(|st| {
            let mut live: Vec<_> = st.scan.live.iter().map(|(k, e)| (e.offset, k.clone())).collect();
            live.sort_unstable();
            Ok(live.into_iter().map(|(_, k)| k).collect())
        })?;
        Ok(Box::new(keys.into_iter().map(Ok)))
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        let pairs = self.reading(|st| {
            let mut live: Vec<_> = st.scan.live.iter().map(|(k, e)| (*e, k.clone())).collect();
            live.sort_unstable_by_key(|(e, _)| e.offset);
            let end = live.iter().map(|(e, _)| e.end()).max().unwrap_or(0);
            let map = self.map_for(st, end)?;
            Ok(live
                .into_iter()
                .map(|(e, k)| Ok((k, fragment::decode(&map[e.data_start as usize..e.data_end as usize]))))
                .collect::<Vec<_>>())
        })?;
        Ok(Box::new(pairs.into_iter()))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.life.live()?;
        if self.life.is_read_only() {
            return Ok(());
        }
        self.state().file.sync_data().map_err(io_err(&self.path))
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.life.is_closed() {
            return Ok(());
        }
        let flushed = self.flush();
        self.life.close();
        self.st.get_mut().unwrap_or_else(PoisonError::into_inner).map = None;
        flushed
    }

    fn metadata(&self, _name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.life.live()?;
        Ok(None)
    }

    fn set_metadata(&mut self, _name: &str, _value: &[u8]) -> Result<(), Error> {
        self.life.writable("set_metadata")?;
        Err(Error::Unsupported { backend: NAME, operation: "metadata" })
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        self.life.writable("apply_batch")?;
        apply_one_by_one(self, ops)
    }

    fn compact(&mut self) -> Result<u64, Error> {
        self.life.writable("compact")?;
        self.locked(LockKind::Exclusive, |st| check::compact(&self.path, st))
    }

    fn check(&mut self, repair: bool) -> Result<CheckReport, Error> {
        if repair {
            self.life.writable("check")?;
        }
        let kind = if repair { LockKind::Exclusive } else { LockKind::Shared };
        let salvage = std::mem::replace(&mut self.salvage, true);
        let res = self.locked(kind, |st| check::check(&self.path, st, repair));
        self.salvage = salvage;
        let report = res?;
        if repair {
            // Reread what the repair left.
            self.st.get_mut().unwrap_or_else(PoisonError::into_inner).len = u64::MAX;
        }
        Ok(report)
    }

    fn commit_number(&self) -> Result<u64, Error> {
        self.reading(|st| Ok(u64::from(st.commit.max(0).unsigned_abs())))
    }

    fn stats(&self) -> Result<StorageStats, Error> {
        self.reading(|st| Ok(StorageStats::new(st.len, Some(st.scan.dead_bytes), vec![self.path.clone()])))
    }
}
