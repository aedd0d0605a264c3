//! The writer's open: take the lock, clear what flag `n` replaces, undo or
//! finish what a crash left, then load the index (or adopt CPython's
//! `.bak`).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use shelf_core::raw::{BackendOptions, Lifecycle, LockKind, lock_file, read_counter};
use shelf_core::{Flag, OpenError};

use crate::compact::recover_compaction;
use crate::index::Index;
use crate::journal;
use crate::load::load_index;
use crate::paths::{Paths, for_writing, open_err, remove_if_present};
use crate::state::{Shared, State};
use crate::{DumbBackend, NAME, Salvaged};

/// Opens `paths` for writing (flags `w`, `c`, `n`), once
/// [`admit`](super::admit) has found them this backend's.
pub(super) fn open(paths: Paths, options: &BackendOptions) -> Result<DumbBackend, OpenError> {
    // The lock comes first, before any file is touched: from here on
    // nobody else changes the files.
    let commit = lock(&paths, options)?;
    if options.flag == Flag::New {
        clear(&paths)?;
    }
    recover(&paths)?;
    let dat = read_write(&paths.dat, options.mode)?;
    let seen = read_counter(&commit).map_err(open_err(&paths.commit))?;
    let dat_len = dat.metadata().map_err(open_err(&paths.dat))?.len();
    let (index, salvaged, adopted) = load(&paths, options, dat_len)?;
    let path = paths.base.clone();
    let mut backend = DumbBackend {
        paths,
        life: Lifecycle::new(options.flag),
        mode: options.mode,
        st: Shared::new(State::new(index, Arc::new(dat), dat_len, seen), false),
        commit: Some(commit),
        commit_map: std::sync::OnceLock::new(),
        modified: adopted,
        poisoned: false,
        in_place: false,
        salvaged,
    };
    if backend.modified {
        // Write `.dir` now so the new database is detectable (and opens)
        // even if this process dies before its first sync.
        backend.commit_writes().map_err(|e| OpenError::Backend {
            backend: NAME,
            path,
            source: Box::new(e),
        })?;
    }
    Ok(backend)
}

/// Opens `path` for reading and writing, creating it when missing.
fn read_write(path: &Path, mode: u32) -> Result<File, OpenError> {
    for_writing(mode).read(true).truncate(false).open(path).map_err(open_err(path))
}

/// Takes the writers' lock: an exclusive lock on `NAME.shelf-commit`,
/// whose bytes are also the commit number.
fn lock(paths: &Paths, options: &BackendOptions) -> Result<File, OpenError> {
    let file = read_write(&paths.commit, options.mode)?;
    lock_file(&file, LockKind::Exclusive, &paths.base, &paths.commit, options)?;
    Ok(file)
}

/// Flag `n`: deletes the database's files ([`admit`](super::admit) has
/// made sure they are a dumb database's).
fn clear(paths: &Paths) -> Result<(), OpenError> {
    for p in [&paths.dat, &paths.bak, &paths.dir, &paths.dat_compact, &paths.dir_compact, &paths.journal] {
        remove_if_present(p).map_err(open_err(p))?;
    }
    Ok(())
}

/// Finishes or undoes what a crashed writer left: a compaction, in-place
/// overwrites not yet committed, an index never renamed into place.
fn recover(paths: &Paths) -> Result<(), OpenError> {
    recover_compaction(paths).map_err(|(p, e)| OpenError::io(p, e))?;
    journal::recover(&paths.journal, &paths.dir, &paths.dat)?;
    // An index a crashed commit was writing: never renamed, so never part
    // of the database.
    remove_if_present(&paths.dir_tmp).map_err(open_err(&paths.dir_tmp))
}

/// The index to start from: `.dir`, else CPython's `.bak`, else (for the
/// flags that create) an empty one. The last flag says the index is not on
/// disk as `.dir` yet, so the open writes it.
fn load(paths: &Paths, options: &BackendOptions, dat_len: u64) -> Result<(Index, Salvaged, bool), OpenError> {
    let (source, adopted) = if paths.dir.exists() {
        (&paths.dir, false)
    } else if paths.bak.exists() {
        // CPython renames `.dir` to `.bak` before writing a new `.dir`; a
        // crash between the two leaves only `.bak`.
        (&paths.bak, true)
    } else if options.flag.creates() {
        return Ok((Index::default(), Salvaged::default(), true));
    } else {
        return Err(OpenError::NotFound { path: paths.base.clone(), flag: options.flag.as_char() });
    };
    let loaded = load_index(source, &paths.dat, &|| Ok(dat_len), options.salvage).map_err(|e| e.error)?;
    Ok((loaded.index, Salvaged { problems: loaded.problems, keys: loaded.dropped }, adopted))
}
