//! Opening a file: recognising it, creating it, taking redb's lock (with
//! the toolkit's retries), learning its format and, for flag `n`,
//! starting afresh.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use redb::{Builder, ConcurrencyMode, DatabaseError, StorageError};
use shelf_core::raw::{BackendOptions, Damage, Lifecycle, Probe, ValueForm, retry_while_locked};
use shelf_core::{Flag, OpenError};

use crate::clean;
use crate::format::Format;
use crate::overlay::Overlay;
use crate::shared::{FileId, Shared};
use crate::snapshot::{Cache, Handle};
use crate::{DEFAULT_OVERLAY_BYTES, DEFAULT_OVERLAY_OPS, NAME, RedbBackend};

/// The first bytes of every redb file (redb's `MAGICNUMBER`).
pub const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// What is at `path` for this backend: a file starting with redb's magic
/// number is [`Probe::Mine`]; any other file (an empty one included) or a
/// directory is [`Probe::Foreign`]; nothing is [`Probe::Absent`].
pub fn probe(path: &Path) -> Probe {
    match fs::metadata(path) {
        Err(_) => Probe::Absent,
        Ok(m) if !m.is_file() => Probe::Foreign,
        Ok(_) => {
            let mut head = [0u8; MAGIC.len()];
            match fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)) {
                Ok(()) if head == MAGIC => Probe::Mine,
                _ => Probe::Foreign,
            }
        }
    }
}

/// Runs one redb open, shielded: `Ok(None)` while another handle holds the
/// file, so that [`retry_while_locked`] tries again.
fn attempt<T>(damage: &Damage, f: impl FnOnce() -> Result<T, DatabaseError>) -> Result<Option<T>, OpenError> {
    let path = damage.path().to_owned();
    match damage.shield_open("the file", f)? {
        Ok(v) => Ok(Some(v)),
        Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => Ok(None),
        Err(DatabaseError::Storage(StorageError::Corrupted(detail))) => {
            Err(OpenError::Corrupted { path, detail })
        }
        Err(DatabaseError::Storage(StorageError::Io(source))) => Err(OpenError::Io { path, source }),
        Err(other) => Err(OpenError::Backend { backend: NAME, path, source: Box::new(other) }),
    }
}

fn builder(multi_process: bool, verify: bool) -> Builder {
    let mut b = Builder::new();
    b.set_concurrency_mode(if multi_process {
        ConcurrencyMode::MultiWriter
    } else {
        ConcurrencyMode::ExclusiveWriter
    });
    b.set_check_integrity_on_open(verify);
    b
}

/// The size of the file at `path` (0 when it cannot be read).
pub(crate) fn file_size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

impl RedbBackend {
    /// Opens the redb file at `path` with dbm's flags: `r` and `w` need it to
    /// exist; `c` creates it (with permission bits `options.mode`); `n`
    /// empties an existing one. A file that is not a redb database is never
    /// touched.
    ///
    /// # Errors
    /// [`OpenError::NotFound`] for `r`/`w` on a missing file,
    /// [`OpenError::Undetectable`] for a file or directory that is no redb
    /// database, [`OpenError::Locked`] when another process or handle holds
    /// the file (after waiting `options.lock_timeout`),
    /// [`OpenError::Corrupted`] for a damaged file, and engine errors.
    pub fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        let mut created = false;
        match probe(path) {
            Probe::Foreign => return Err(OpenError::Undetectable { path: path.to_owned() }),
            Probe::Absent if !options.flag.creates() => {
                return Err(OpenError::NotFound { path: path.to_owned(), flag: options.flag.as_char() });
            }
            Probe::Absent => {
                match OpenOptions::new().write(true).create_new(true).mode(options.mode).open(path) {
                    Ok(_) => created = true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(OpenError::io(path, e)),
                }
            }
            Probe::Mine => {}
        }
        let damage = Damage::new(path, NAME);
        let result = retry_while_locked(path, options, || Self::try_open(&damage, options, created));
        if result.is_err() && created && file_size(path) == 0 {
            let _ = fs::remove_file(path);
        }
        let mut backend = result?;
        if backend.detect_format().map_err(|e| damage.at_open(e))? == Format::Blank {
            // A new file (or one created and never written, by a crash or
            // by another process an instant ago): the current format.
            if backend.life.is_read_only() {
                backend.format_pending = true;
            } else {
                backend.init_format().map_err(|e| damage.at_open(e))?;
                backend.detect_format().map_err(|e| damage.at_open(e))?;
            }
        }
        if options.flag == Flag::New && !created {
            // Another handle may be reading the file in multi-process mode,
            // in the format it learnt at its open: keep that one there.
            backend.clear_all(!options.multi_process).map_err(|e| damage.at_open(e))?;
        }
        Ok(backend)
    }

    /// One attempt at redb's open: `Ok(None)` while the file is locked.
    fn try_open(damage: &Damage, options: &BackendOptions, created: bool) -> Result<Option<Self>, OpenError> {
        let (path, multi) = (damage.path(), options.multi_process);
        let read_only = options.flag == Flag::Read;
        // Single-process mode: a database this process already holds open
        // for writing is shared (redb would refuse a second open of the
        // file in the process); a second writable handle waits, as for
        // another process's.
        let id = if multi { None } else { Some(FileId::of(path).map_err(|e| OpenError::io(path, e))?) };
        if let Some(shared) = id.and_then(Shared::find) {
            if !read_only && !shared.claim_writer() {
                return Ok(None);
            }
            return Ok(Some(Self::with_handle(damage, options, Handle::Db(shared))));
        }
        let handle = if read_only {
            match attempt(damage, || builder(multi, false).open_read_only(path)) {
                Ok(Some(db)) => Handle::Ro(db),
                // Not shut down cleanly: a writable open repairs it (and
                // verifies every page); writes stay refused.
                Err(OpenError::Backend { .. }) => match Self::open_writable(damage, multi, true)? {
                    Some(db) => Handle::Db(Shared::new(db, path, id, false)),
                    None => return Ok(None),
                },
                Ok(None) => return Ok(None),
                Err(e) => return Err(e),
            }
        } else {
            let db = if created {
                attempt(damage, || builder(multi, false).create(path))?
            } else {
                // A file that still carries the stamp of redb's clean
                // close (single-process mode) is trusted as redb trusts
                // it; any other is verified page by page.
                Self::open_writable(damage, multi, multi || !clean::is_clean(path))?
            };
            match db {
                Some(db) => Handle::Db(Shared::new(db, path, id, true)),
                None => return Ok(None),
            }
        };
        Ok(Some(Self::with_handle(damage, options, handle)))
    }

    /// redb's writable open of an existing file, verifying every page
    /// checksum when `verify` (redb verifies them anyway when the file was
    /// not shut down cleanly). The clean-close stamp goes: from here on
    /// the file may change.
    fn open_writable(
        damage: &Damage,
        multi: bool,
        verify: bool,
    ) -> Result<Option<redb::Database>, OpenError> {
        let path = damage.path();
        let db = attempt(damage, || builder(multi, verify).open(path))?;
        if db.is_some() {
            clean::forget(path);
        }
        Ok(db)
    }

    fn with_handle(damage: &Damage, options: &BackendOptions, handle: Handle) -> Self {
        RedbBackend {
            damage: damage.clone(),
            handle: Some(handle),
            life: Lifecycle::new(options.flag),
            multi_process: options.multi_process,
            // Set by `open` once the file's format is known.
            form: ValueForm::Plain,
            format_pending: false,
            writing: None,
            pending_ops: 0,
            pending_bytes: 0,
            scratch: Vec::new(),
            overlay: Overlay::default(),
            meta_overlay: BTreeMap::new(),
            undurable: false,
            max_bytes: DEFAULT_OVERLAY_BYTES,
            max_ops: DEFAULT_OVERLAY_OPS,
            cache: Cache::default(),
        }
    }
}
