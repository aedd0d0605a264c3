//! Engines shared by the handles of one process: the plumbing of contract
//! `second_reader_in_one_process`.
//!
//! Engines that lock their files with `flock` (redb, sled, GDBM) refuse a
//! second open of the same file in the same process, readers included,
//! since `flock` belongs to an open file, not to a process. A read-only
//! handle opened beside a writer therefore joins the writer's engine,
//! found in a process-wide table by the file's identity (device and
//! inode, so two paths to one file find each other). The table holds
//! `Weak` references: it never keeps a database open, and the last
//! handle's drop closes the engine as before.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// A file's or directory's identity: its device and inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of what is at `path` (symlinks followed).
    ///
    /// # Errors
    /// The I/O error of reading its metadata (a missing file).
    #[cfg(unix)]
    pub fn of(path: &Path) -> io::Result<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(FileId { dev: m.dev(), ino: m.ino() })
    }

    /// The identity of an open file.
    ///
    /// # Errors
    /// The I/O error of reading its metadata.
    #[cfg(unix)]
    pub fn of_file(file: &std::fs::File) -> io::Result<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = file.metadata()?;
        Ok(FileId { dev: m.dev(), ino: m.ino() })
    }
}

/// The engines of type `T` this process has open, by [`FileId`]: one
/// `static` per backend (`static OPEN: InProcess<Shared> =
/// InProcess::new();`).
#[derive(Debug)]
pub struct InProcess<T> {
    table: Mutex<BTreeMap<FileId, Weak<T>>>,
}

impl<T> InProcess<T> {
    /// An empty table (`const`, for a `static`).
    pub const fn new() -> Self {
        InProcess { table: Mutex::new(BTreeMap::new()) }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<FileId, Weak<T>>> {
        // A panic while the lock was held leaves a map of weak pointers,
        // each valid or dead: nothing half-changed to mistake.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The engine another handle of this process has open on `id`.
    pub fn find(&self, id: FileId) -> Option<Arc<T>> {
        self.table().get(&id).and_then(Weak::upgrade)
    }

    /// Records an engine under `id`, replacing what was there (after a
    /// compaction renames a new file in, say, under the new identity),
    /// and forgets the entries of engines since closed.
    pub fn register(&self, id: FileId, engine: &Arc<T>) {
        let mut table = self.table();
        table.retain(|_, w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(engine)));
        table.insert(id, Arc::downgrade(engine));
    }

    /// Forgets `id` (an engine that must not be joined meanwhile).
    pub fn forget(&self, id: FileId) {
        self.table().remove(&id);
    }
}

impl<T> Default for InProcess<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a writable handle holds a shared engine: at most one at a time,
/// so two writers in one process conflict as two processes do.
#[derive(Debug, Default)]
pub struct WriterSlot {
    held: AtomicBool,
    ever: AtomicBool,
}

impl WriterSlot {
    /// A slot, held from the start when `held` (the engine was opened by a
    /// writer).
    pub fn new(held: bool) -> Self {
        WriterSlot { held: AtomicBool::new(held), ever: AtomicBool::new(held) }
    }

    /// Takes the slot: false when another writable handle holds it.
    pub fn claim(&self) -> bool {
        let won = !self.held.swap(true, Ordering::AcqRel);
        if won {
            self.ever.store(true, Ordering::Release);
        }
        won
    }

    /// Gives the slot back (the writer closed).
    pub fn release(&self) {
        self.held.store(false, Ordering::Release);
    }

    /// Whether a writable handle holds the slot now.
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Whether a writable handle ever held it: the entries may have changed
    /// under a reader since it counted them.
    pub fn was_ever_held(&self) -> bool {
        self.ever.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_finds_live_engines_only_and_one_writer_at_a_time() {
        static OPEN: InProcess<WriterSlot> = InProcess::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let id = FileId::of(&path).unwrap();
        assert_eq!(FileId::of_file(&std::fs::File::open(&path).unwrap()).unwrap(), id);
        assert!(OPEN.find(id).is_none());
        let engine = Arc::new(WriterSlot::new(true));
        OPEN.register(id, &engine);
        let joined = OPEN.find(id).expect("found while open");
        assert!(!joined.claim(), "a second writer is refused");
        engine.release();
        assert!(joined.claim() && joined.was_ever_held());
        drop((engine, joined));
        assert!(OPEN.find(id).is_none(), "the table keeps nothing open");
    }
}
