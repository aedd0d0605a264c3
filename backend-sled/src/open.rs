//! Opening a directory: recognising it, taking sled's lock (with the
//! toolkit's retries), reading a private copy where the file system is
//! read-only, and learning the layout (or, at creation and for flag `n`,
//! starting afresh).

use std::fs;
use std::io::{ErrorKind, Read};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use shelf_core::raw::{
    self, BackendOptions, Damage, FileId, Lifecycle, Probe, ValueForm, retry_while_locked,
};
use shelf_core::{Error, Flag, OpenError};

use crate::share::{self, Open};
use crate::state::{MARKER_FILE, STATE_KEY, State, read_marker, write_marker};
use crate::{DATA_TREE, LAYOUT_1, LAYOUT_2, MARKER_KEY, META_TREE, NAME, RELEASE_WAIT, SledBackend};

/// What is at `path` for this backend: a directory holding sled's `conf`
/// and `db` files and either shelf's [`MARKER_FILE`] or a `conf` in sled's
/// format is [`Probe::Mine`]; nothing is [`Probe::Absent`]; anything else
/// (a file, an empty or other directory, a broken sled directory) is
/// [`Probe::Foreign`].
pub fn probe(path: &Path) -> Probe {
    match fs::metadata(path) {
        Err(_) => Probe::Absent,
        Ok(m) if !m.is_dir() => Probe::Foreign,
        Ok(_) => {
            let conf = path.join("conf");
            let whole = conf.is_file() && path.join("db").is_file();
            if whole && (path.join(MARKER_FILE).is_file() || is_sled_conf(&conf)) {
                Probe::Mine
            } else {
                Probe::Foreign
            }
        }
    }
}

/// Whether `conf` is a sled 0.34 configuration: `segment_size: ...` text,
/// then the CRC-32 of that text (config.rs, `write_config`).
fn is_sled_conf(conf: &Path) -> bool {
    let mut bytes = Vec::new();
    let read = fs::File::open(conf).and_then(|f| f.take(4096).read_to_end(&mut bytes));
    if read.is_err() || bytes.len() <= 4 {
        return false;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    body.starts_with(b"segment_size: ") && crc32fast::hash(body).to_le_bytes() == crc
}

/// What a broken shelf sled directory lacks: its marker file is there but
/// sled's `conf` or `db` is not.
fn missing_parts(path: &Path) -> Option<String> {
    if !path.join(MARKER_FILE).is_file() {
        return None;
    }
    let missing: Vec<&str> = ["conf", "db"].into_iter().filter(|f| !path.join(f).is_file()).collect();
    (!missing.is_empty()).then(|| {
        format!("a shelf sled database missing sled's {}; nothing will write into it", missing.join(" and "))
    })
}

fn is_lock_error(e: &sled::Error) -> bool {
    // sled 0.34 reports a held lock as an `Io` error of kind `Other` whose
    // message starts so (config.rs, `try_lock`).
    matches!(e, sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock"))
}

/// sled's open errors as shelf's (a held lock is not one: it is retried).
fn open_error(path: &Path, e: sled::Error) -> OpenError {
    let path = path.to_owned();
    match e {
        sled::Error::Corruption { at, .. } => OpenError::Corrupted {
            path,
            detail: match at {
                Some(at) => format!("sled found corrupted data at {at:?}"),
                None => "sled found corrupted data".to_owned(),
            },
        },
        sled::Error::Io(source) => OpenError::Io { path, source },
        other => OpenError::Backend { backend: NAME, path, source: Box::new(other) },
    }
}

/// Whether this process cannot write the database's `db` file because the
/// file system is read-only or permissions forbid it.
fn cannot_write(path: &Path) -> bool {
    match fs::OpenOptions::new().read(true).write(true).open(path.join("db")) {
        Err(e) => matches!(e.kind(), ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied),
        Ok(_) => false,
    }
}

/// A private copy of the directory at `path`, for reading where sled
/// cannot write (it opens its files read-write whatever the flag).
fn private_copy(path: &Path) -> Result<tempfile::TempDir, OpenError> {
    let temp = tempfile::Builder::new()
        .prefix("shelf-sled-ro-")
        .tempdir()
        .map_err(|e| OpenError::io(std::env::temp_dir(), e))?;
    copy_dir(path, &temp.path().join("db")).map_err(|e| OpenError::io(path, e))?;
    Ok(temp)
}

/// Copies the directory `from` into `to` (files and subdirectories).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

impl SledBackend {
    /// Opens the sled directory at `path` with dbm's flags: `r` and `w` need
    /// it to exist; `c` creates it; `n` empties an existing one. A path
    /// holding anything but a sled database is never touched.
    ///
    /// # Errors
    /// [`OpenError::NotFound`] for `r`/`w` on a missing directory,
    /// [`OpenError::Undetectable`] for a path that holds something else,
    /// [`OpenError::Locked`] when another handle holds the directory (after
    /// waiting `options.lock_timeout`), [`OpenError::Unsupported`] for
    /// `multi_process`, [`OpenError::Corrupted`] for damaged files or a
    /// broken directory, [`OpenError::Io`] for a writing flag on a read-only
    /// file system, and engine errors.
    pub fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        if options.multi_process {
            return Err(OpenError::Unsupported {
                backend: NAME,
                operation: "multi_process (sled locks its directory to one handle)".to_owned(),
            });
        }
        let mut created = false;
        match probe(path) {
            Probe::Foreign => {
                return Err(match missing_parts(path) {
                    Some(detail) => OpenError::Corrupted { path: path.to_owned(), detail },
                    None => OpenError::Undetectable { path: path.to_owned() },
                });
            }
            Probe::Absent if !options.flag.creates() => {
                return Err(OpenError::NotFound { path: path.to_owned(), flag: options.flag.as_char() });
            }
            Probe::Absent => created = true,
            Probe::Mine => {}
        }
        let life = Lifecycle::new(options.flag);
        let copy = if life.is_read_only() && cannot_write(path) { Some(private_copy(path)?) } else { None };
        let engine_path = copy.as_ref().map_or_else(|| path.to_owned(), |t| t.path().join("db"));
        let damage = Damage::new(path, NAME);
        let writer = !life.is_read_only();
        let attempt = || {
            // Another handle of this process holds the directory: share
            // its engine (sled would refuse a second open in the process).
            // A private copy is this handle's alone; otherwise the
            // directory's identity (once it exists: a new database's only
            // after the open) finds and records the shared engine.
            let id = || if copy.is_none() { FileId::of(path).ok() } else { None };
            if let Some(open) = id().and_then(|id| share::OPEN.find(id)) {
                return Ok((!writer || open.writer.claim()).then_some(open));
            }
            let Some(open) = Self::try_open(&engine_path, &damage)? else { return Ok(None) };
            let open = Arc::new(open);
            if writer {
                open.writer.claim();
            }
            if let Some(id) = id() {
                share::OPEN.register(id, &open);
            }
            Ok(Some(open))
        };
        let open = match retry_while_locked(path, options, attempt) {
            Ok(o) => o,
            Err(e) => {
                if created && !matches!(e, OpenError::Locked { .. }) && probe(path) != Probe::Mine {
                    // Leave nothing behind of a database that never opened
                    // (but never remove one another handle holds).
                    let _ = fs::remove_dir_all(path);
                }
                return Err(e);
            }
        };
        let mut backend = SledBackend {
            damage,
            open: Some(open),
            life,
            form: ValueForm::Plain,
            count: None,
            generation: 0,
            dirty: false,
            copy,
        };
        let started = if options.flag == Flag::New || created {
            backend.start_afresh(created)
        } else {
            backend.learn_layout()
        };
        if let Err(e) = started {
            backend.life.close();
            backend.release();
            return Err(e);
        }
        Ok(backend)
    }

    /// One attempt at sled's open: `Ok(None)` while the directory is locked.
    fn try_open(engine_path: &Path, damage: &Damage) -> Result<Option<Open>, OpenError> {
        let opened = damage.shield_open("the database", || -> Result<Open, sled::Error> {
            let db = sled::Config::new().path(engine_path).open()?;
            let data = db.open_tree(DATA_TREE)?;
            let meta = db.open_tree(META_TREE)?;
            Ok(Open::new(db, data, meta))
        })?;
        match opened {
            Ok(o) => Ok(Some(o)),
            Err(e) if is_lock_error(&e) => Ok(None),
            Err(e) => Err(open_error(damage.path(), e)),
        }
    }

    /// Creation and flag `n`: empties the trees and writes layout 2's
    /// marker, state record and marker file, durably.
    fn start_afresh(&mut self, created: bool) -> Result<(), OpenError> {
        let path = self.damage.path().to_owned();
        let fail =
            |e: sled::Error| OpenError::Backend { backend: NAME, path: path.clone(), source: Box::new(e) };
        let open = self.open.as_ref().ok_or(OpenError::Io {
            path: path.clone(),
            source: std::io::Error::other("the sled handle is gone"),
        })?;
        // The generation keeps growing across flag `n`, so that a stale
        // marker file never outranks the fresh log.
        let generation = read_marker(&path).unwrap_or(0) + 1;
        let state = State { count: 0, generation, clean: true };
        let done = raw::shield(|| -> Result<(), sled::Error> {
            if !created {
                open.data.clear()?;
                open.meta.clear()?;
            }
            open.meta.insert(MARKER_KEY, raw::seal(MARKER_KEY, LAYOUT_2))?;
            open.meta.insert(STATE_KEY, state.encode())?;
            open.db.flush()?;
            Ok(())
        });
        match done {
            Ok(r) => r.map_err(fail)?,
            Err(m) => {
                return Err(OpenError::Corrupted {
                    path,
                    detail: format!("sled failed to start afresh: {m}"),
                });
            }
        }
        write_marker(&path, generation).map_err(|e| OpenError::io(path.join(MARKER_FILE), e))?;
        self.form = ValueForm::Sealed;
        self.count = Some(0);
        self.generation = generation;
        Ok(())
    }

    /// An existing database: reads its marker and, in layout 2, its state
    /// record, checked against the marker file.
    fn learn_layout(&mut self) -> Result<(), OpenError> {
        let path = self.damage.path().to_owned();
        let corrupted = |detail: String| OpenError::Corrupted { path: path.clone(), detail };
        let open = self.open.as_ref().ok_or_else(|| corrupted("the sled handle is gone".to_owned()))?;
        let read = raw::shield(|| -> Result<_, sled::Error> {
            Ok((open.meta.get(MARKER_KEY)?, open.meta.get(STATE_KEY)?))
        });
        let (marker, state) = match read {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return Err(corrupted(format!("sled could not read the metadata: {e}"))),
            Err(m) => return Err(corrupted(format!("sled could not read the metadata ({m})"))),
        };
        let Some(marker) = marker else {
            return Err(corrupted(
                "no shelf marker in the sled log: it is damaged, or it was not written by shelf (flag 'n' \
                 starts it afresh)"
                    .to_owned(),
            ));
        };
        if &*marker == LAYOUT_1 {
            return Ok(());
        }
        if raw::unseal(MARKER_KEY, &marker) != Some(LAYOUT_2) {
            return Err(corrupted(
                "shelf's marker in the sled log is damaged or of an unknown layout".to_owned(),
            ));
        }
        let state = state
            .as_deref()
            .and_then(State::decode)
            .ok_or_else(|| corrupted("the state record in the sled log is missing or damaged".to_owned()))?;
        let flushed = read_marker(&path)?;
        if state.generation < flushed {
            return Err(corrupted(format!(
                "sled recovered the state of flush {} but flush {flushed} had completed: its log lost \
                 writes to damage",
                state.generation
            )));
        }
        self.form = ValueForm::Sealed;
        self.generation = state.generation;
        if state.clean {
            self.count = Some(state.count);
        } else if !self.life.is_read_only() {
            // A crash after writes: count afresh (the walk verifies every
            // checksum), and record a clean state at the next flush.
            let mut n = 0;
            for item in self.walk(Bound::Unbounded, Bound::Unbounded).map_err(|e| corrupted(e.to_string()))? {
                item.map_err(|e| match e {
                    Error::Corrupted { detail, .. } => corrupted(detail),
                    e => corrupted(e.to_string()),
                })?;
                n += 1;
            }
            self.count = Some(n);
            self.dirty = true;
        }
        Ok(())
    }

    /// Lets go of the engine: the writer's place, then the handle. The
    /// last handle of the process closes sled and waits for its threads
    /// to let go of the lock.
    pub(crate) fn release(&mut self) {
        if let Some(open) = self.open.take() {
            if !self.life.is_read_only() {
                open.writer.release();
            }
            if let Some(last) = Arc::into_inner(open) {
                drop(last);
                raw::wait_for_release(&self.engine_path().join("db"), RELEASE_WAIT);
            }
        }
    }

    /// The directory sled works in: the database's, or the private copy.
    fn engine_path(&self) -> PathBuf {
        self.copy.as_ref().map_or_else(|| self.damage.path().to_owned(), |t| t.path().join("db"))
    }
}
