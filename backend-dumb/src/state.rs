//! The handle's state and how threads share it.
//!
//! A writer changes its state only through `&mut self` (every write of
//! the contract takes it), so its readers, on any number of threads, read
//! the state with no lock at all. A read-only handle reloads the index
//! under `&self` when another process commits: its state sits behind a
//! sharded reader-writer lock, reads taking the shared side of their
//! thread's shard (a cache line no other thread writes, so readers on
//! different cores do not contend as on one `RwLock`'s counter) and the
//! reload the exclusive side of all of them.
//! Either way a read changes nothing but the lazily made memory map
//! ([`State::map`], a `OnceLock`).

use std::collections::HashMap;
use std::fs::File;
use std::ops::Deref;
use std::sync::{Arc, OnceLock, PoisonError, Weak};

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};

use memmap2::Mmap;

use crate::index::Index;

/// What the backend reads and writes.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) index: Index,
    pub(crate) dat: Arc<File>,
    /// Bytes of `.dat` written to the file; beyond it, `pending` holds the
    /// rest (appends are buffered, so an insert costs no system call).
    pub(crate) disk_len: u64,
    pub(crate) pending: Vec<u8>,
    /// In-place overwrites of bytes below `disk_len`, by value offset, not
    /// yet written: applied together, in offset order, at `flush` (one
    /// small `pwrite` each would cost more than the whole value).
    pub(crate) overlay: HashMap<u64, Vec<u8>>,
    pub(crate) overlay_bytes: usize,
    /// The map of `.dat` (see [`State::map`]); empty until a read needs
    /// it and again once it no longer reaches `disk_len`.
    pub(crate) map: OnceLock<Arc<Mmap>>,
    /// Earlier maps that values handed out by `get_shared` may still view.
    pub(crate) retired: Vec<Weak<Mmap>>,
    /// The commit number the index was read at.
    pub(crate) seen: u64,
}

impl State {
    /// The state of a freshly opened `.dat` of `dat_len` bytes, nothing
    /// buffered, not yet mapped.
    pub(crate) fn new(index: Index, dat: Arc<File>, dat_len: u64, seen: u64) -> Self {
        State {
            index,
            dat,
            disk_len: dat_len,
            pending: Vec::new(),
            overlay: HashMap::new(),
            overlay_bytes: 0,
            map: OnceLock::new(),
            retired: Vec::new(),
            seen,
        }
    }

    /// The logical length of `.dat`: what is on disk plus what is buffered.
    pub(crate) fn dat_len(&self) -> u64 {
        self.disk_len + self.pending.len() as u64
    }

    /// The map of `.dat`, made by the first read that needs it (on any
    /// thread: `OnceLock`), of the file as it is then. Not made at open or
    /// eagerly after writes: a `.dat` cut short by another program before
    /// the map is made gives a map that ends where the file does, and
    /// reads past it go to `pread`, which reports the damage, instead of
    /// faulting. `None` for an empty `.dat` or when mapping fails (reads
    /// then `pread`, and the next read tries to map again).
    #[inline]
    pub(crate) fn map(&self) -> Option<&Arc<Mmap>> {
        if let Some(map) = self.map.get() {
            return Some(map);
        }
        self.map_now()
    }

    #[cold]
    fn map_now(&self) -> Option<&Arc<Mmap>> {
        if self.disk_len == 0 {
            return None;
        }
        #[allow(unsafe_code)]
        // SAFETY: the map is read-only and `.dat` only grows while we have
        // it open: this backend never truncates it (compaction writes a new
        // file), CPython never does either, and bytes under a map that is
        // shared are never overwritten in place (see
        // `may_overwrite_in_place`). Another program truncating the file
        // would make reads of a map made before fault, as with any mapped
        // file.
        let map = unsafe { Mmap::map(&*self.dat) }.ok()?;
        // Another thread may have mapped it meanwhile: either map serves.
        let _ = self.map.set(Arc::new(map));
        self.map.get()
    }

    /// Forgets the map once it no longer reaches `disk_len` (called where
    /// `disk_len` grows), so the next read maps the file afresh. A map
    /// that values handed out by `get_shared` still view is retired, not
    /// forgotten (see `may_overwrite_in_place`).
    pub(crate) fn outgrown(&mut self) {
        if self.map.get().is_some_and(|m| (m.len() as u64) < self.disk_len)
            && let Some(old) = self.map.take()
            && Arc::strong_count(&old) > 1
        {
            self.retired.push(Arc::downgrade(&old));
        }
    }
}

/// A writer's state, owned outright, or a read-only handle's, behind a
/// lock (see the module docs).
#[derive(Debug)]
pub(crate) enum Shared {
    /// A writer's: changed only through `&mut`.
    Owned(State),
    /// A read-only handle's: reloaded under `&self`.
    Locked(ShardedLock<State>),
}

/// A read view of the state: the state itself, or a read guard.
pub(crate) enum View<'a> {
    Owned(&'a State),
    Locked(ShardedLockReadGuard<'a, State>),
}

impl Deref for View<'_> {
    type Target = State;

    #[inline]
    fn deref(&self) -> &State {
        match self {
            View::Owned(st) => st,
            View::Locked(guard) => guard,
        }
    }
}

impl Shared {
    /// `Owned` for a writer, `Locked` for a read-only handle.
    pub(crate) fn new(st: State, read_only: bool) -> Self {
        if read_only { Shared::Locked(ShardedLock::new(st)) } else { Shared::Owned(st) }
    }

    /// The state to read. A lock poisoned by a panic elsewhere is taken
    /// anyway: a reload assigns whole fields only after it succeeded.
    #[inline]
    pub(crate) fn read(&self) -> View<'_> {
        match self {
            Shared::Owned(st) => View::Owned(st),
            Shared::Locked(lock) => View::Locked(lock.read().unwrap_or_else(PoisonError::into_inner)),
        }
    }

    /// The state to reload under `&self`: only a read-only handle's.
    pub(crate) fn reload(&self) -> Option<ShardedLockWriteGuard<'_, State>> {
        match self {
            Shared::Owned(_) => None,
            Shared::Locked(lock) => Some(lock.write().unwrap_or_else(PoisonError::into_inner)),
        }
    }

    /// The state to change through `&mut`.
    pub(crate) fn get_mut(&mut self) -> &mut State {
        match self {
            Shared::Owned(st) => st,
            Shared::Locked(lock) => lock.get_mut().unwrap_or_else(PoisonError::into_inner),
        }
    }
}
