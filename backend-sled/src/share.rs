//! Handles of one process on one directory share one `sled::Db`: sled
//! refuses a second open of a directory in a process (its `db` file lock
//! is taken per open), so a reader beside a writer joins the writer's
//! engine through the toolkit's process-wide table
//! ([`shelf_core::raw::InProcess`]), keyed by the directory's identity.

use shelf_core::raw::{InProcess, WriterSlot};

/// The sled handle and its two trees, shared by the handles of this
/// process on one directory.
pub(crate) struct Open {
    pub(crate) db: sled::Db,
    pub(crate) data: sled::Tree,
    pub(crate) meta: sled::Tree,
    /// The writable handle's place: at most one at a time.
    pub(crate) writer: WriterSlot,
}

impl Open {
    /// A freshly opened engine, not yet in the table.
    pub(crate) fn new(db: sled::Db, data: sled::Tree, meta: sled::Tree) -> Self {
        Open { db, data, meta, writer: WriterSlot::new(false) }
    }
}

/// The engines open in this process, by directory identity.
pub(crate) static OPEN: InProcess<Open> = InProcess::new();
