//! Compaction: the live values packed into a new `.dat` and `.dir` under
//! temporary names, swapped in only when whole, and the recovery of a
//! swap a crash interrupted.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use shelf_core::{Error, KvBackend};

use crate::index::Index;
use crate::paths::{Paths, for_writing, fsync_dir, io_err, remove_if_present};
use crate::{BLOCK_SIZE, DumbBackend, align, fault, format};

impl DumbBackend {
    /// `compact`, once the guard has let it through.
    pub(crate) fn compact_files(&mut self) -> Result<u64, Error> {
        // Commit first: the figures are then those of the files on disk.
        self.flush()?;
        let before = self.bytes_on_disk()?;
        // 1. The live values and their index, under temporary names.
        let (new_dat, fresh) = match self.write_compacted() {
            Ok(done) => done,
            Err(e) => {
                self.remove_compaction_files();
                return Err(e);
            }
        };
        let parent = self.paths.parent();
        // 2. Swap `.dat`: till then the old database is untouched.
        let swapped = fsync_dir(&parent).map_err(io_err(&parent)).and_then(|()| {
            fault::rename(&self.paths.dat_compact, &self.paths.dat).map_err(io_err(&self.paths.dat))
        });
        if let Err(e) = swapped {
            self.remove_compaction_files();
            return Err(e);
        }
        self.release_in_place();
        let after_dat = new_dat.metadata().map(|m| m.len()).unwrap_or(0);
        let st = self.st.get_mut();
        st.index = fresh;
        st.dat = Arc::new(new_dat);
        st.disk_len = after_dat;
        st.pending.clear();
        // Compaction copied the overwritten values; the old file is gone.
        st.overlay.clear();
        st.overlay_bytes = 0;
        st.map = OnceLock::new();
        // 3. Swap `.dir`. A crash before it is finished by the next open
        // (see `recover_compaction`); readers read `.dir.shelf-compact`.
        let finished = fsync_dir(&parent)
            .and_then(|()| fault::rename(&self.paths.dir_compact, &self.paths.dir))
            .map_err(io_err(&self.paths.dir))
            .and_then(|()| {
                // The old `.bak` names offsets in the old `.dat`.
                remove_if_present(&self.paths.bak).map_err(io_err(&self.paths.bak))
            })
            .and_then(|()| fsync_dir(&parent).map_err(io_err(&parent)));
        if let Err(e) = finished {
            self.poisoned = true;
            return Err(e);
        }
        self.modified = false;
        self.bump_commit()?;
        let after = self.bytes_on_disk()?;
        Ok(before.saturating_sub(after))
    }

    /// What `compact` would reclaim: the `.dat` and `.dir` bytes of the
    /// index now, less those of the live values packed as a fresh CPython
    /// database packs them.
    pub(crate) fn reclaimable(&self) -> u64 {
        let st = self.st.read();
        let (mut end, mut dir_now, mut dir_packed) = (0u64, 0u64, 0u64);
        let mut line = Vec::with_capacity(64);
        for (key, pos, siz) in st.index.iter() {
            let at = align(end);
            line.clear();
            format::write_line(&mut line, key, pos, siz);
            dir_now += line.len() as u64;
            line.clear();
            format::write_line(&mut line, key, at, siz);
            dir_packed += line.len() as u64;
            end = at + siz;
        }
        (st.dat_len() + dir_now).saturating_sub(end + dir_packed)
    }

    /// The lengths of `.dat` and `.dir` on disk.
    fn bytes_on_disk(&self) -> Result<u64, Error> {
        let mut total = 0;
        for p in [&self.paths.dat, &self.paths.dir] {
            match fs::metadata(p) {
                Ok(m) => total += m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p, e)),
            }
        }
        Ok(total)
    }

    /// Writes the live values, packed in index order, to
    /// `.dat.shelf-compact` and their index to `.dir.shelf-compact`, both
    /// fsynced.
    fn write_compacted(&mut self) -> Result<(File, Index), Error> {
        let target = &self.paths.dat_compact;
        let new_dat =
            for_writing(self.mode).read(true).truncate(true).open(target).map_err(io_err(target))?;
        let mut fresh = Index::default();
        let entries: Vec<(Vec<u8>, u64, u64)> =
            self.st.get_mut().index.iter().map(|(k, p, s)| (k.to_vec(), p, s)).collect();
        let mut out = BufWriter::with_capacity(1 << 20, &new_dat);
        let mut end = 0u64;
        for (key, pos, siz) in entries {
            let value = self.read_value(&self.st.read(), &key, pos, siz)?;
            let at = align(end);
            fault::point()
                .and_then(|()| out.write_all(&[0u8; BLOCK_SIZE as usize][..(at - end) as usize]))
                .and_then(|()| out.write_all(&value))
                .map_err(io_err(target))?;
            fresh.set(&key, at, siz);
            end = at + siz;
        }
        out.flush().map_err(io_err(target))?;
        drop(out);
        fault::sync(&new_dat).map_err(io_err(target))?;
        self.write_index(&self.paths.dir_compact, &fresh)?;
        Ok((new_dat, fresh))
    }

    /// Removes what a failed compaction wrote (never part of the database).
    fn remove_compaction_files(&self) {
        for p in [&self.paths.dat_compact, &self.paths.dir_compact] {
            let _ = fs::remove_file(p);
        }
    }
}

/// Finishes or undoes a compaction a crash interrupted (see `compact`).
pub(crate) fn recover_compaction(paths: &Paths) -> Result<(), (PathBuf, io::Error)> {
    if paths.dat_compact.exists() {
        // Stopped before `.dat` was swapped: the old files are whole.
        for p in [&paths.dat_compact, &paths.dir_compact] {
            remove_if_present(p).map_err(|e| (p.clone(), e))?;
        }
    } else if paths.dir_compact.exists() {
        // `.dat` was swapped; its index is complete (fsynced before).
        fault::rename(&paths.dir_compact, &paths.dir).map_err(|e| (paths.dir.clone(), e))?;
    }
    Ok(())
}
