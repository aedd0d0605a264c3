//! Locks around every operation: the file's `flock` (between processes)
//! and the handle's own (between threads).
//!
//! A read holds the `flock` only while it checks the index against the
//! file (and rereads it when the file changed), one thread of the handle
//! at a time (a `flock` belongs to the open file, so one thread's unlock
//! would end another's); it then reads the entries it knows without the
//! `flock`, in parallel with the handle's other readers: the bytes of a
//! complete entry never change (writers append, flip flags outside the
//! value and bump the header's commit number; a compaction renames a new
//! file in, leaving the mapped old one whole). So a reader never holds
//! the file long enough to starve a writer.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{Arc, MutexGuard, PoisonError, RwLockReadGuard, RwLockWriteGuard};

use memmap2::Mmap;
use shelf_core::Error;
use shelf_core::raw::LockKind;

use crate::{MmapPickleBackend, State, Unlock, corrupt, format, io_err, map_file};

impl MmapPickleBackend {
    pub(crate) fn state(&self) -> RwLockReadGuard<'_, State> {
        // A panic mid-operation leaves at worst a stale index, which the
        // next operation rereads when the file says it changed; the file
        // itself is what other processes see too.
        self.st.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.st.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The turn of one reader of the handle to check the file.
    fn turn(&self) -> MutexGuard<'_, ()> {
        self.turn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows a file a compaction renamed in (by any process).
    fn follow_rename(&self) -> Result<(), Error> {
        let Ok(m) = std::fs::metadata(&self.path) else { return Ok(()) };
        if m.ino() == self.state().ino {
            return Ok(());
        }
        let mut st = self.state_mut();
        if m.ino() == st.ino {
            return Ok(());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!self.life.is_read_only())
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        st.ino = m.ino();
        st.file = file;
        st.len = u64::MAX;
        st.map = None;
        Ok(())
    }

    /// Whether the index no longer matches the file (another process, or
    /// this handle's repair, changed it).
    fn stale(&self, st: &State) -> Result<bool, Error> {
        if st.map.is_none() {
            return Ok(true);
        }
        let len = st.file.metadata().map_err(io_err(&self.path))?.len();
        let mut commit = [0u8; 4];
        if len >= format::HEADER_LEN as u64 {
            st.file.read_exact_at(&mut commit, format::COMMIT_AT).map_err(io_err(&self.path))?;
        }
        Ok(len != st.len || i32::from_le_bytes(commit) != st.commit)
    }

    /// Runs the read `f` on an index that matched the file a moment ago
    /// (checked, and reread if the file changed, under the shared
    /// `flock`), under the handle's shared lock.
    pub(crate) fn reading<T>(&self, f: impl FnOnce(&State) -> Result<T, Error>) -> Result<T, Error> {
        self.life.live()?;
        loop {
            self.follow_rename()?;
            {
                let _turn = self.turn();
                let file = self.state().file.try_clone().map_err(io_err(&self.path))?;
                // Blocks while another process writes, as libgdbm and
                // mmapdict do.
                file.lock_shared().map_err(io_err(&self.path))?;
                let _unlock = Unlock(&file);
                if self.stale(&self.state())? {
                    self.refresh(&mut self.state_mut(), false)?;
                }
            }
            let st = self.state();
            if st.map.is_none() {
                // Another thread followed a rename meanwhile: check again.
                continue;
            }
            return f(&st);
        }
    }

    /// Runs `f` under the file's lock and the handle's exclusive lock,
    /// after following a renamed file and rereading a changed index: for
    /// writes (and checks), which hold `&mut self`, so no read of the
    /// handle runs beside them.
    pub(crate) fn locked<T>(
        &self,
        kind: LockKind,
        f: impl FnOnce(&mut State) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.life.live()?;
        self.follow_rename()?;
        let mut st = self.state_mut();
        let file = st.file.try_clone().map_err(io_err(&self.path))?;
        match kind {
            LockKind::Shared => file.lock_shared(),
            LockKind::Exclusive => file.lock(),
        }
        .map_err(io_err(&self.path))?;
        let _unlock = Unlock(&file);
        self.refresh(&mut st, kind == LockKind::Exclusive)?;
        f(&mut st)
    }

    /// The map, covering at least `end`: the index's, or (rarely: the
    /// index's map was dropped) a fresh one.
    pub(crate) fn map_for(&self, st: &State, end: u64) -> Result<Arc<Mmap>, Error> {
        match &st.map {
            Some(m) if m.len() as u64 >= end => Ok(m.clone()),
            _ => {
                let m = Arc::new(map_file(&st.file).map_err(io_err(&self.path))?);
                if (m.len() as u64) < end {
                    return Err(corrupt(&self.path, "the file is shorter than its index"));
                }
                Ok(m)
            }
        }
    }
}
