//! The reader's open and reload: a shared lock on `.dat`, then the index
//! that belongs to that `.dat`, read while a writer of this backend may
//! commit or compact and a CPython writer may be rewriting `.dir` in place.
//!
//! The wait for a `.dir` that CPython is rewriting (and the fall back to
//! `.bak`) is CPython's `dbm.dumb` only, so it lives here rather than in
//! the toolkit.

use std::fs::{self, File, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shelf_core::raw::{BackendOptions, Lifecycle, LockKind, lock_file, read_counter};
use shelf_core::{Error, OpenError};

use crate::journal;
use crate::load::{LoadedIndex, Stamp, load_index, stamp};
use crate::paths::{Paths, corrupted, io_err, open_err};
use crate::state::{Shared, State, View};
use crate::{DumbBackend, NAME, Salvaged};

/// Opens `paths` for reading (flag `r`), once [`admit`](super::admit) has
/// found them this backend's.
pub(super) fn open(paths: Paths, options: &BackendOptions) -> Result<DumbBackend, OpenError> {
    // No writer may exist yet: then the commit number is 0 until one does.
    let commit = File::open(&paths.commit).ok();
    let dat = File::open(&paths.dat).map_err(open_err(&paths.dat))?;
    // Readers announce themselves with a shared lock on `.dat`, so the
    // writer does not overwrite values in place under them.
    let lock = |f: &File| lock_file(f, LockKind::Shared, &paths.base, &paths.dat, options);
    lock(&dat)?;
    // Checked under the lock: a writer's journal lives only while it holds
    // `.dat` exclusively, so one seen now is left by a crash.
    if journal::pending(&paths.journal, &paths.dir) {
        return Err(corrupted(
            &paths.journal,
            "a commit was interrupted; open the database once for writing to roll it back".to_owned(),
        ));
    }
    let seen = match &commit {
        Some(f) => read_counter(f).map_err(open_err(&paths.commit))?,
        None => 0,
    };
    let (dat, loaded) = load_for_reader(&paths, Arc::new(dat), options.salvage, &lock)?;
    let salvaged = Salvaged { problems: loaded.problems, keys: loaded.dropped };
    let dat_len = loaded.dat_len;
    Ok(DumbBackend {
        paths,
        life: Lifecycle::new(options.flag),
        mode: options.mode,
        st: Shared::new(State::new(loaded.index, dat, dat_len, seen), true),
        commit,
        commit_map: std::sync::OnceLock::new(),
        modified: false,
        poisoned: false,
        in_place: false,
        salvaged,
    })
}

impl DumbBackend {
    /// The state to read: for a read-only handle, first reloaded when a
    /// writer has committed since the index was read (writers exclude
    /// each other, so a writer's is always current). One lock taken in
    /// the usual case, none for a writer.
    #[inline]
    pub(crate) fn current(&self) -> Result<View<'_>, Error> {
        self.life.live()?;
        let Some(commit) = self.commit.as_ref().filter(|_| self.life.is_read_only()) else {
            return Ok(self.st.read());
        };
        let now = self.commit_now(commit)?;
        let st = self.st.read();
        if st.seen == now {
            return Ok(st);
        }
        drop(st);
        self.reload(now)?;
        Ok(self.st.read())
    }

    /// Reloads a read-only handle's index (and follows a compaction to a
    /// new `.dat`) as of commit `now`.
    #[cold]
    fn reload(&self, now: u64) -> Result<(), Error> {
        let Some(mut st) = self.st.reload() else { return Ok(()) };
        if st.seen == now {
            // Another thread reloaded meanwhile.
            return Ok(());
        }
        // After a compaction the writer may already overwrite in place in
        // the new `.dat` (it held no reader's lock): then keep reading the
        // old pair, which nobody changes, until the writer commits.
        let lock = |f: &File| match f.try_lock_shared() {
            Ok(()) => Ok(()),
            Err(TryLockError::WouldBlock) => Err(OpenError::Locked { path: self.paths.base.clone() }),
            Err(TryLockError::Error(e)) => Err(OpenError::io(&self.paths.dat, e)),
        };
        let (dat, loaded) = match load_for_reader(&self.paths, st.dat.clone(), false, &lock) {
            Ok(found) => found,
            Err(OpenError::Locked { .. }) => return Ok(()),
            Err(OpenError::Corrupted { path, detail }) => return Err(Error::Corrupted { path, detail }),
            Err(OpenError::Io { path, source }) => return Err(Error::Io { path, source }),
            Err(other) => {
                let source = Box::new(other);
                return Err(Error::Backend { backend: NAME, operation: "reload the index", source });
            }
        };
        if !Arc::ptr_eq(&dat, &st.dat) {
            // A compaction replaced `.dat`: follow it to the new file.
            st.dat = dat;
            st.map = std::sync::OnceLock::new();
        }
        st.disk_len = loaded.dat_len;
        st.outgrown();
        st.index = loaded.index;
        st.seen = now;
        Ok(())
    }
}

impl DumbBackend {
    /// The commit number in `commit`, read through a map of its eight
    /// bytes once the file has them: every read of a read-only handle
    /// checks it, and a `pread` per get cost more than the get (and made
    /// threads contend on the file's reference count in the kernel). A
    /// shared map sees the writer's `pwrite` at once, as `pread` would.
    #[inline]
    fn commit_now(&self, commit: &File) -> Result<u64, Error> {
        if let Some(map) = self.commit_map.get() {
            return Ok(mapped_counter(map));
        }
        self.map_commit(commit)
    }

    /// `commit_now` until the commit file is mapped: `pread`, then a map
    /// once the file holds its 8 bytes.
    #[cold]
    fn map_commit(&self, commit: &File) -> Result<u64, Error> {
        let now = read_counter(commit).map_err(io_err(&self.paths.commit))?;
        if commit.metadata().is_ok_and(|m| m.len() >= 8) {
            #[allow(unsafe_code)]
            // SAFETY: read-only, 8 bytes of a file that has them and is
            // never truncated (see above); reads are volatile.
            if let Ok(map) = unsafe { memmap2::MmapOptions::new().len(8).map(commit) } {
                let _ = self.commit_map.set(map);
            }
        }
        Ok(now)
    }
}

/// The commit number in a map of the commit file's 8 bytes.
#[allow(unsafe_code)]
fn mapped_counter(map: &memmap2::Mmap) -> u64 {
    if map.len() < 8 {
        return 0;
    }
    // Volatile: another process writes these bytes. A read torn by a
    // concurrent write differs from the number seen, which only costs a
    // reload (that finds the next number again).
    // SAFETY: the map holds 8 bytes (checked above) and its owner keeps it
    // alive; `[u8; 8]` needs no alignment; the file is never truncated
    // (the writer only `pwrite`s its 8 bytes, flag `n` keeps the file).
    let word = unsafe { std::ptr::read_volatile(map.as_ptr().cast::<[u8; 8]>()) };
    u64::from_le_bytes(word)
}

/// Whether `file` is the file now at `path` (a compaction renames a new
/// `.dat` over the old one).
fn is_current(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// How long a reader waits for a `.dir` that another program is rewriting
/// (CPython's `_commit`) to settle, before it falls back to `.bak`.
pub const SETTLE_WAIT: Duration = Duration::from_millis(200);

/// A `.dir` (or `.bak`) changed less than this long ago may be in the
/// middle of a CPython commit; an older one is taken as it is at once.
const FRESH: Duration = Duration::from_secs(1);

/// CPython writes `.dir` through an 8 KiB buffer: a longer index can be
/// seen cut at a line end between two writes, which parses as whole.
const CPYTHON_CHUNK: u64 = 8192;

/// What a reader met at `.dir` that a CPython commit in progress leaves
/// (`_commit` renames `.dir` to `.bak`, then writes a new `.dir` in place).
enum Flux {
    /// No `.dir`: the rename window, or a crash in it.
    Missing(OpenError),
    /// Parses, but is empty beside a non-empty `.bak`, or its last line has
    /// no line end: maybe a `.dir` not yet (fully) written.
    Suspect(Box<LoadedIndex>),
    /// The last line does not parse: a line cut short.
    Torn(OpenError),
    /// The file changed while it was read.
    Changing,
    /// Not CPython's doing (a compaction renamed its index meanwhile):
    /// try again, with nothing to fall back to.
    Retry,
}

/// Reads `.bak` for a reader whose `.dir` is missing or did not settle:
/// CPython's `.bak` is the whole index of the previous commit. `None` when
/// there is no whole `.bak`.
fn load_bak(paths: &Paths, dat_len: &dyn Fn() -> Result<u64, OpenError>) -> Option<LoadedIndex> {
    match load_index(&paths.bak, &paths.dat, dat_len, false) {
        Ok(loaded) if !loaded.changed => Some(loaded),
        _ => None,
    }
}

/// A reader's `.dat` and the index that goes with it, while a writer may
/// commit or compact. A compaction renames a new `.dat` over the old one,
/// then a new `.dir` (till then `NAME.dir.shelf-compact`): so the index is
/// read from the `.dir` that belongs to the `.dat` in hand, and all is
/// tried again with the new `.dat` when it was replaced meanwhile. `lock`
/// takes the reader's shared lock on a newly opened `.dat` before its
/// index is read, so the writer cannot overwrite in place what that index
/// names (its error is returned).
///
/// A CPython writer takes no lock and rewrites `.dir` in place (see
/// [`Flux`]): a reader that meets a `.dir` in that state retries for up to
/// [`SETTLE_WAIT`], then falls back to `.bak` when it is whole. A `.dir`
/// that stays torn without changing is damage, reported as such (a
/// salvaging open skips all this: it reads what is there, for `check`).
fn load_for_reader(
    paths: &Paths,
    mut dat: Arc<File>,
    salvage: bool,
    lock: &dyn Fn(&File) -> Result<(), OpenError>,
) -> Result<(Arc<File>, LoadedIndex), OpenError> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let settle_deadline = started + SETTLE_WAIT;
    let mut pause = Duration::from_millis(1);
    // The `.dir` last seen, and whether it was seen to change: a torn
    // `.dir` that changes is being written; one that does not is damage.
    let mut last_seen: Option<Stamp> = None;
    let mut moved = false;
    loop {
        let from_compaction = paths.dir_compact.exists() && !paths.dat_compact.exists();
        // A compaction swapped `.dat` and has not (or never will, after a
        // crash) renamed its index over `.dir`.
        let src = if from_compaction { &paths.dir_compact } else { &paths.dir };
        let watch = !from_compaction && !salvage;
        let bak_len = || fs::metadata(&paths.bak).map_or(0, |m| m.len());
        // `.bak` is looked at before and after `.dir` is read: the next
        // commit may delete it meanwhile.
        let bak_before = if watch { bak_len() } else { 0 };
        let seen = if watch { stamp(&paths.dir).ok() } else { None };
        if let (Some(a), Some(b)) = (last_seen, seen)
            && a != b
        {
            moved = true;
        }
        last_seen = seen.or(last_seen);
        let dat_len = || dat.metadata().map(|m| m.len()).map_err(open_err(&paths.dat));
        let result = load_index(src, &paths.dat, &dat_len, salvage);
        // A `.dir.shelf-compact` beside a `.dat.shelf-compact` is the next
        // compaction's, not the index of this `.dat`.
        let settled = src != &paths.dir_compact || !paths.dat_compact.exists();
        let current = settled && is_current(&dat, &paths.dat);
        // The compaction renamed its index over `.dir` meanwhile.
        let vanished = |e: &OpenError| match e {
            OpenError::Io { path, source } => {
                path == &paths.dir_compact && source.kind() == io::ErrorKind::NotFound
            }
            _ => false,
        };
        // The `.dir` read (the path may name another file by now).
        let read = match &result {
            Ok(loaded) => Some(loaded.stamp),
            Err(_) => seen,
        };
        let fresh = read.is_some_and(|s| s.fresh(FRESH));
        // This backend's writer renames a whole `.dir` into place, then
        // bumps the commit number: a `.dir` no newer than that is whole.
        let ours = read.is_some_and(|d| stamp(&paths.commit).is_ok_and(|c| c.latest() >= d.latest()));
        let outcome = match result {
            Ok(loaded) if watch && !ours => judge(paths, loaded, fresh, bak_before.max(bak_len())),
            Ok(loaded) => Ok(loaded),
            Err(e)
                if watch
                    && matches!(&e.error, OpenError::Io { path, source }
                        if path == &paths.dir && source.kind() == io::ErrorKind::NotFound) =>
            {
                Err(Flux::Missing(e.error))
            }
            Err(e) if watch && e.last_line && fresh => Err(Flux::Torn(e.error)),
            Err(e) => {
                if (current && !vanished(&e.error)) || Instant::now() >= deadline {
                    return Err(e.error);
                }
                Err(Flux::Retry)
            }
        };
        if current {
            let now = Instant::now();
            // A `.bak` left long ago by a crash in the rename window is
            // all there is: no need to wait for a `.dir`.
            let stale_bak =
                matches!(outcome, Err(Flux::Missing(_))) && stamp(&paths.bak).is_ok_and(|s| !s.fresh(FRESH));
            match outcome {
                Ok(loaded) => return Ok((dat, loaded)),
                Err(Flux::Retry) if now >= deadline => {
                    return Err(OpenError::Locked { path: paths.base.clone() });
                }
                Err(Flux::Retry) => {}
                Err(flux) if now >= settle_deadline || stale_bak => {
                    let bak = load_bak(paths, &dat_len);
                    if let Some(done) = after_settling(paths, flux, bak, moved, now < deadline) {
                        return done.map(|loaded| (dat, loaded));
                    }
                }
                Err(_) => {}
            }
        } else if Instant::now() >= deadline {
            return Err(OpenError::Locked { path: paths.base.clone() });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
        if !current {
            let fresh = File::open(&paths.dat).map_err(open_err(&paths.dat))?;
            lock(&fresh)?;
            dat = Arc::new(fresh);
        }
    }
}

/// Whether a `.dir` that parsed may be one CPython has not finished
/// writing (`bak_len`: the longest `.bak` seen around the read).
fn judge(paths: &Paths, loaded: LoadedIndex, fresh: bool, bak_len: u64) -> Result<LoadedIndex, Flux> {
    let dir_len = loaded.stamp.len;
    if loaded.changed {
        Err(Flux::Changing)
    } else if fresh && (loaded.unterminated || dir_len == 0 || dir_len < bak_len) {
        // Empty, or shorter than the previous index: maybe a `.dir` CPython
        // has not finished writing (or a delete, which a short wait tells
        // apart: it stays).
        Err(Flux::Suspect(Box::new(loaded)))
    } else if dir_len >= CPYTHON_CHUNK && loaded.stamp.fresh(Duration::from_millis(50)) && {
        // Cut at a line end between two of CPython's writes? The next
        // write comes within microseconds.
        std::thread::sleep(Duration::from_millis(2));
        stamp(&paths.dir).ok() != Some(loaded.stamp)
    } {
        Err(Flux::Changing)
    } else {
        Ok(loaded)
    }
}

/// What a reader makes of `flux` once the wait for CPython is over: the
/// whole `.bak` where one stands in for `.dir`, the `.dir` as it is, or an
/// error; `None` to keep trying (a new commit began, and `more_time` is
/// left before the deadline). `moved`: `.dir` was seen to change, so a
/// torn or short one is being written rather than damaged.
fn after_settling(
    paths: &Paths,
    flux: Flux,
    bak: Option<LoadedIndex>,
    moved: bool,
    more_time: bool,
) -> Option<Result<LoadedIndex, OpenError>> {
    match flux {
        Flux::Missing(e) => match bak {
            Some(loaded) => Some(Ok(loaded)),
            // `.bak` went too: the next commit began.
            None if paths.dir.exists() && more_time => None,
            None => Some(Err(e)),
        },
        Flux::Suspect(loaded) => Some(Ok(if moved { bak.unwrap_or(*loaded) } else { *loaded })),
        Flux::Torn(e) => match bak {
            Some(loaded) if moved => Some(Ok(loaded)),
            _ => Some(Err(e)),
        },
        Flux::Changing => match bak {
            Some(loaded) => Some(Ok(loaded)),
            None if more_time => None,
            None => Some(Err(corrupted(&paths.dir, "the index kept changing while it was read".to_owned()))),
        },
        Flux::Retry => None,
    }
}
