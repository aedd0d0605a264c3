//! One engine shared by the handles of this process on one file: the
//! writer's, which a reader of the same process joins.
//!
//! GDBM's rule is one writer or many readers, enforced with `flock`, and
//! `flock` locks belong to an open file, not to a process: a reader of
//! this process opening the file anew would be refused by its own
//! writer's lock. So a reader joins the writer's engine instead, through
//! a process-wide table of writers keyed by the file's identity. Every
//! read takes the engine's lock shared and every write takes it
//! exclusive, so a reader never sees a change half-made; between
//! processes the `flock` rule stands unchanged.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use shelf_core::raw::{FileId, InProcess, WriterSlot};

use crate::engine::Engine;

/// An engine and whether a writable handle holds it.
#[derive(Debug)]
pub(crate) struct Shared {
    engine: RwLock<Engine>,
    /// A writable handle holds the engine (readers join only then).
    writer: WriterSlot,
}

impl Shared {
    /// An engine held by one handle, writable or not.
    pub(crate) fn new(engine: Engine, writer: bool) -> Arc<Shared> {
        Arc::new(Shared { engine: RwLock::new(engine), writer: WriterSlot::new(writer) })
    }

    /// The engine for reading: shared with the other readers. A panic of
    /// another holder leaves nothing half-changed that a read could
    /// mistake (changes are committed whole or rolled back by a reopen),
    /// so a poisoned lock is taken as it is.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Engine> {
        self.engine.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The engine for a change: exclusive.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Engine> {
        self.engine.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The engine itself, once no other handle holds it.
    pub(crate) fn into_engine(self) -> Engine {
        self.engine.into_inner().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writable handle lets go (at close).
    pub(crate) fn leave_writer(&self) {
        self.writer.release();
    }
}

/// The engines of this process, by file identity.
static OPEN: InProcess<Shared> = InProcess::new();

/// The engine a writable handle of this process holds on the file at
/// `path`, if any.
pub(crate) fn writer_of(path: &Path) -> Option<Arc<Shared>> {
    OPEN.find(FileId::of(path).ok()?).filter(|s| s.writer.is_held())
}

/// Records a writer's engine under the identity of its file (again after
/// a compaction, which renames a new file in).
pub(crate) fn register(shared: &Arc<Shared>) {
    let Ok(id) = FileId::of_file(&shared.read().file) else { return };
    OPEN.register(id, shared);
}
