//! The redb databases this process holds open for writing, by file identity.
//!
//! redb locks its file for the whole process (an exclusive `flock` for a
//! writable database), so a second redb open of the same file in this
//! process fails even for reading. A read-only handle opened beside a
//! writable one therefore shares the writer's [`redb::Database`] (MVCC: its
//! read transactions see what the writer has committed), found here by the
//! file's device and inode. Entries are weak: the table never keeps a
//! database open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::Database;
use shelf_core::Error;
pub(crate) use shelf_core::raw::FileId;
use shelf_core::raw::{InProcess, WriterSlot};

use crate::{clean, err};

/// One writable redb database of this process, shared by every handle of
/// the process on its file.
pub(crate) struct Shared {
    pub(crate) db: Database,
    path: PathBuf,
    id: Option<FileId>,
    /// Whether a writable handle holds the database: a second writable
    /// open of the file waits for it, as redb's own lock makes another
    /// process wait.
    writer: WriterSlot,
    /// Bumped after every commit, so that a handle's cached read
    /// transaction, which shows the file as it was, is taken afresh.
    generation: AtomicU64,
    /// Whether the database was opened in single-process mode, where the
    /// clean close is recorded on the file (see [`clean`]).
    record_clean_close: bool,
}

/// The databases open for writing in this process.
static OPEN: InProcess<Shared> = InProcess::new();

impl Shared {
    /// Wraps a database just opened; `writer` tells whether a writable
    /// handle holds it, `id` where other handles of this process find it
    /// (`None`: not shared, as in multi-process mode).
    pub(crate) fn new(db: Database, path: &Path, id: Option<FileId>, writer: bool) -> Arc<Shared> {
        let shared = Arc::new(Shared {
            db,
            path: path.to_owned(),
            id,
            writer: WriterSlot::new(writer),
            generation: AtomicU64::new(0),
            record_clean_close: id.is_some(),
        });
        if let Some(id) = id {
            OPEN.register(id, &shared);
        }
        shared
    }

    /// The database of this process open on the file `id`, if any.
    pub(crate) fn find(id: FileId) -> Option<Arc<Shared>> {
        OPEN.find(id)
    }

    /// Makes a writable handle the holder of this database: false when
    /// another writable handle holds it.
    pub(crate) fn claim_writer(&self) -> bool {
        self.writer.claim()
    }

    /// The number of commits made through this database since it was
    /// opened.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Records a commit (see [`Self::generation`]).
    pub(crate) fn committed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Runs `f` on the database alone: `None` when a handle opened beside
    /// this one shares it (redb's check and compaction need the database to
    /// themselves). Other handles of the process do not find the database
    /// meanwhile (an open beside it waits, as for any lock).
    pub(crate) fn exclusive<T>(this: &mut Arc<Shared>, f: impl FnOnce(&mut Database) -> T) -> Option<T> {
        let id = this.id;
        if let Some(id) = id {
            // The table's weak reference would make `get_mut` fail.
            OPEN.forget(id);
        }
        let result = Arc::get_mut(this).map(|s| f(&mut s.db));
        if let Some(id) = id {
            OPEN.register(id, this);
        }
        result
    }

    /// Lets go of one handle's share: the last one closes the database
    /// (then records the clean close on the file), an earlier one leaves
    /// it open for the others. `writer` tells whether the handle was the
    /// writable one.
    pub(crate) fn release(this: Arc<Shared>, writer: bool) -> Result<(), Error> {
        if writer {
            this.writer.release();
        }
        match Arc::try_unwrap(this) {
            Ok(shared) => {
                let Shared { db, path, record_clean_close, .. } = shared;
                db.close().map_err(err("close"))?;
                if record_clean_close {
                    clean::record(&path);
                }
                Ok(())
            }
            // Another handle still reads through it; the last one closes.
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shelf_core::raw::BackendOptions;
    use shelf_core::{Flag, KvBackend, OpenError};

    use crate::RedbBackend;

    fn opts(flag: Flag) -> BackendOptions {
        let mut o = BackendOptions::with_flag(flag);
        o.lock_timeout = Some(Duration::from_millis(100));
        o
    }

    #[test]
    fn a_reader_beside_the_writer_sees_what_it_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = RedbBackend::open(&path, &opts(Flag::Create)).unwrap();
        w.insert(b"a", b"1").unwrap();
        w.flush().unwrap();
        let r = RedbBackend::open(&path, &opts(Flag::Read)).expect("a reader beside the writer");
        assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        // Not synced yet: the reader sees the file as committed.
        w.insert(b"b", b"2").unwrap();
        assert_eq!(r.get(b"b").unwrap(), None);
        assert_eq!(r.len().unwrap(), 1);
        // Each sync shows in the reader's next read transaction.
        w.flush().unwrap();
        assert_eq!(r.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(r.len().unwrap(), 2);
        assert!(w.remove(b"a").unwrap());
        w.flush().unwrap();
        assert_eq!(r.get(b"a").unwrap(), None);
        assert_eq!(r.keys().unwrap().collect::<Result<Vec<_>, _>>().unwrap(), [b"b".to_vec()]);
        // A second reader beside both.
        let r2 = RedbBackend::open(&path, &opts(Flag::Read)).unwrap();
        assert_eq!(r2.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn dropping_the_writer_leaves_the_reader_working() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = RedbBackend::open(&path, &opts(Flag::Create)).unwrap();
        w.insert(b"k", b"v").unwrap();
        w.flush().unwrap();
        let mut r = RedbBackend::open(&path, &opts(Flag::Read)).unwrap();
        w.insert(b"unsynced", b"x").unwrap();
        w.close().unwrap();
        drop(w);
        // close synced the rest; the reader keeps reading the database.
        assert_eq!(r.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(r.get(b"unsynced").unwrap().as_deref(), Some(&b"x"[..]));
        // A new writer of this process takes the database the reader holds.
        let mut w2 = RedbBackend::open(&path, &opts(Flag::Write)).expect("a writer after the first closed");
        w2.insert(b"k", b"w").unwrap();
        w2.flush().unwrap();
        assert_eq!(r.get(b"k").unwrap().as_deref(), Some(&b"w"[..]));
        // The last handle closes redb's database: the file opens again.
        w2.close().unwrap();
        r.close().unwrap();
        drop((w2, r));
        let again = RedbBackend::open(&path, &opts(Flag::Write)).unwrap();
        assert_eq!(again.get(b"k").unwrap().as_deref(), Some(&b"w"[..]));
    }

    #[test]
    fn a_second_writer_is_still_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let w = RedbBackend::open(&path, &opts(Flag::Create)).unwrap();
        let r = RedbBackend::open(&path, &opts(Flag::Read)).unwrap();
        for flag in [Flag::Write, Flag::Create, Flag::New] {
            match RedbBackend::open(&path, &opts(flag)) {
                Err(OpenError::Locked { .. }) => {}
                other => panic!("a second writer (flag {flag}): expected Locked, got {other:?}"),
            }
        }
        drop(r);
        drop(w);
        RedbBackend::open(&path, &opts(Flag::Write)).expect("the lock went with the writer");
    }

    #[test]
    fn maintenance_waits_for_the_readers_beside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = RedbBackend::open(&path, &opts(Flag::Create)).unwrap();
        w.insert(b"k", b"v").unwrap();
        let r = RedbBackend::open(&path, &opts(Flag::Read)).unwrap();
        let e = w.compact().unwrap_err();
        assert!(e.to_string().contains("compact"), "{e}");
        assert!(w.check(true).is_err());
        drop(r);
        w.compact().unwrap();
        assert!(w.check(true).unwrap().is_clean());
        assert_eq!(w.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn readers_on_several_threads_share_one_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = RedbBackend::open(&path, &opts(Flag::Create)).unwrap();
        for i in 0..1000u32 {
            w.insert(&i.to_be_bytes(), &i.to_le_bytes()).unwrap();
        }
        w.flush().unwrap();
        let w = &w;
        std::thread::scope(|s| {
            for t in 0..2u32 {
                s.spawn(move || {
                    for i in (t..1000).step_by(2) {
                        assert_eq!(w.get(&i.to_be_bytes()).unwrap(), Some(i.to_le_bytes().to_vec()));
                    }
                });
            }
        });
    }
}
