//! Writes: CPython's layout rule (an overwrite that fits its blocks goes in
//! place, anything else is appended), the buffers that keep an insert free
//! of system calls, and the commit that makes them durable.

use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use shelf_core::raw::{show_key, write_counter};
use shelf_core::{Error, KvBackend};

use crate::index::{self, Index};
use crate::paths::{for_writing, fsync_dir, io_err, remove_if_present};
use crate::{BLOCK_SIZE, DumbBackend, WRITE_BUFFER, WRITE_CHUNK, align, blocks, fault, format, journal};

impl DumbBackend {
    /// `insert`, once the guard has let it through.
    pub(crate) fn insert_value(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        if key.len() > index::MAX_KEY_LEN {
            return Err(Error::InvalidKey { key: show_key(key), reason: "longer than 4 GiB".to_owned() });
        }
        self.modified = true;
        let existing = self.st.get_mut().index.get(key);
        let pos = match existing {
            Some((pos, siz))
                if blocks(value.len() as u64) <= blocks(siz) && self.may_overwrite_in_place(pos) =>
            {
                // The last value may grow within its block: write_at
                // extends the length.
                self.write_at(pos, value)?;
                pos
            }
            _ => self.append_value(value)?,
        };
        let st = self.st.get_mut();
        st.index.set(key, pos, value.len() as u64);
        if st.overlay_bytes >= WRITE_BUFFER {
            // Bound the memory held: commit, now that the index names the
            // new value (an early commit is harmless; applying the
            // overwrites without committing would leave the journal open).
            self.flush()?;
        }
        Ok(())
    }

    /// `flush` of a writer with something to commit.
    pub(crate) fn commit_writes(&mut self) -> Result<(), Error> {
        // A failed append leaves the buffer to retry; past this point a
        // failure may have changed bytes the committed index names, so it
        // poisons the handle (reopening rolls back through the journal).
        self.write_out()?;
        let result = self.commit();
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Writes `data` at `pos` of the logical `.dat`: to the file below
    /// `disk_len`, into the buffer above it.
    fn write_at(&mut self, pos: u64, data: &[u8]) -> Result<(), Error> {
        let st = self.st.get_mut();
        let split = usize::try_from(st.disk_len.saturating_sub(pos)).unwrap_or(usize::MAX).min(data.len());
        let (low, high) = data.split_at(split);
        if !low.is_empty() {
            match st.overlay.get_mut(&pos) {
                // A shorter overwrite of the same value leaves the rest of
                // the earlier one behind it, as CPython's file would.
                Some(old) if old.len() >= low.len() => old[..low.len()].copy_from_slice(low),
                Some(old) => {
                    st.overlay_bytes += low.len() - old.len();
                    *old = low.to_vec();
                }
                None => {
                    st.overlay_bytes += low.len();
                    st.overlay.insert(pos, low.to_vec());
                }
            }
        }
        if !high.is_empty() {
            let from = (pos + split as u64 - st.disk_len) as usize;
            if st.pending.len() < from + high.len() {
                st.pending.resize(from + high.len(), 0);
            }
            st.pending[from..from + high.len()].copy_from_slice(high);
        }
        Ok(())
    }

    /// Writes the buffered in-place overwrites to `.dat`, after saving the
    /// bytes they replace in an undo journal (see [`journal`]): an
    /// overwrite changes bytes the committed index names, so a crash
    /// before the new index is in place must be able to put them back.
    /// Nearby overwrites are gathered into one span (read, patched,
    /// written back), so random overwrites cost a few large writes rather
    /// than one small one each.
    fn apply_overlay(&mut self) -> Result<(), Error> {
        const GAP: u64 = 64 << 10;
        const MAX_SPAN: u64 = 8 << 20;
        let st = self.st.get_mut();
        if st.overlay.is_empty() {
            return Ok(());
        }
        // Kept until written: on failure the overlay still serves reads.
        let mut writes: Vec<(u64, &[u8])> = st.overlay.iter().map(|(p, v)| (*p, &v[..])).collect();
        writes.sort_unstable_by_key(|(pos, _)| *pos);
        let dat = &self.paths.dat;
        // (start, old bytes, new bytes) per span.
        // Per span: its offset and its bytes, read, then patched.
        let mut spans: Vec<(u64, Vec<u8>)> = Vec::new();
        // Per overwrite: the bytes it replaces (what the journal keeps).
        let mut undo: Vec<(u64, Vec<u8>)> = Vec::with_capacity(writes.len());
        let mut i = 0;
        while i < writes.len() {
            let start = writes[i].0;
            let mut end = start + writes[i].1.len() as u64;
            let mut j = i + 1;
            while j < writes.len() && writes[j].0 <= end + GAP && writes[j].0 - start < MAX_SPAN {
                end = end.max(writes[j].0 + writes[j].1.len() as u64);
                j += 1;
            }
            let mut buf = vec![0u8; (end - start) as usize];
            st.dat.read_exact_at(&mut buf, start).map_err(io_err(dat))?;
            for (pos, bytes) in &writes[i..j] {
                let at = (pos - start) as usize;
                undo.push((*pos, buf[at..at + bytes.len()].to_vec()));
            }
            // In offset order, so where two overlap the later offset wins,
            // as applying them one by one would.
            for (pos, bytes) in &writes[i..j] {
                let at = (pos - start) as usize;
                buf[at..at + bytes.len()].copy_from_slice(bytes);
            }
            spans.push((start, buf));
            i = j;
        }
        let undo_refs: Vec<(u64, &[u8])> = undo.iter().map(|(p, old)| (*p, &old[..])).collect();
        if let Err(e) = journal::write(&self.paths.journal, &self.paths.dir, &undo_refs, self.mode) {
            // Nothing was overwritten yet: a torn journal is only litter.
            let _ = journal::discard(&self.paths.journal);
            return Err(e);
        }
        let parent = self.paths.parent();
        fsync_dir(&parent).map_err(io_err(&parent))?;
        for (start, buf) in &spans {
            fault::write_at(&st.dat, buf, *start).map_err(io_err(dat))?;
        }
        drop(writes);
        st.overlay.clear();
        st.overlay_bytes = 0;
        Ok(())
    }

    /// Writes the buffered appends to `.dat`.
    fn write_out(&mut self) -> Result<(), Error> {
        let st = self.st.get_mut();
        if st.pending.is_empty() {
            return Ok(());
        }
        fault::write_at(&st.dat, &st.pending, st.disk_len).map_err(io_err(&self.paths.dat))?;
        fault::start_writeback(&st.dat, st.disk_len, st.pending.len());
        st.disk_len += st.pending.len() as u64;
        st.outgrown();
        st.pending.clear();
        if st.pending.capacity() > 2 * WRITE_BUFFER {
            st.pending.shrink_to(WRITE_BUFFER);
        }
        Ok(())
    }

    /// CPython's `_addval`: pad `.dat` to a block boundary and append.
    fn append_value(&mut self, value: &[u8]) -> Result<u64, Error> {
        let st = self.st.get_mut();
        let pos = align(st.dat_len());
        if value.len() >= WRITE_BUFFER {
            // Large values go straight to the file, not through the buffer.
            self.write_out()?;
            let st = self.st.get_mut();
            let pad = (pos - st.disk_len) as usize;
            fault::write_at(&st.dat, &[0u8; BLOCK_SIZE as usize][..pad], st.disk_len)
                .map_err(io_err(&self.paths.dat))?;
            fault::write_at(&st.dat, value, pos).map_err(io_err(&self.paths.dat))?;
            st.disk_len = pos + value.len() as u64;
            st.outgrown();
            return Ok(pos);
        }
        let start = (pos - st.disk_len) as usize;
        st.pending.resize(start, 0);
        st.pending.extend_from_slice(value);
        if st.pending.len() >= WRITE_CHUNK {
            self.write_out()?;
        }
        Ok(pos)
    }

    /// Whether the old value at `pos` may be overwritten in place.
    fn may_overwrite_in_place(&mut self, pos: u64) -> bool {
        let st = self.st.get_mut();
        // A value handed out by get_shared is a view of a map: never
        // change bytes under it.
        if st.map.get().is_some_and(|m| Arc::strong_count(m) > 1 && pos < m.len() as u64) {
            return false;
        }
        st.retired.retain(|w| w.strong_count() > 0);
        if st.retired.iter().any(|w| w.upgrade().is_some_and(|m| pos < m.len() as u64)) {
            return false;
        }
        if !self.in_place {
            // Readers in other processes hold shared locks on `.dat`.
            self.in_place = st.dat.try_lock().is_ok();
        }
        self.in_place
    }

    /// Writes `index` to `target` as CPython's `.dir` text, fsynced.
    pub(crate) fn write_index(&self, target: &Path, index: &Index) -> Result<(), Error> {
        let file = for_writing(self.mode).truncate(true).open(target).map_err(io_err(target))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let mut line = Vec::with_capacity(64);
        for (key, pos, siz) in index.iter() {
            line.clear();
            format::write_line(&mut line, key, pos, siz);
            fault::point().and_then(|()| out.write_all(&line)).map_err(io_err(target))?;
        }
        let file = out.into_inner().map_err(|e| Error::io(target, e.into_error()))?;
        fault::sync(&file).map_err(io_err(target))
    }

    /// The commit proper (see `flush`).
    fn commit(&mut self) -> Result<(), Error> {
        self.apply_overlay()?;
        let st = self.st.get_mut();
        // Values first: the index must never name bytes not yet on disk.
        fault::sync(&st.dat).map_err(io_err(&self.paths.dat))?;
        let written = self
            .write_index(&self.paths.dir_tmp, &self.st.read().index)
            .and_then(|()| self.keep_bak())
            .and_then(|()| {
                fault::rename(&self.paths.dir_tmp, &self.paths.dir).map_err(io_err(&self.paths.dir))
            });
        if let Err(e) = written {
            // Never part of the database: leave nothing behind (a full
            // disk is the usual cause, and the next try writes it anew).
            let _ = fs::remove_file(&self.paths.dir_tmp);
            return Err(e);
        }
        let parent = self.paths.parent();
        fsync_dir(&parent).map_err(io_err(&parent))?;
        // The new index is in place: the undo journal is void. (If this
        // removal is lost, the journal names the old `.dir`, which is gone,
        // and recovery discards it.)
        journal::discard(&self.paths.journal).map_err(io_err(&self.paths.journal))?;
        self.modified = false;
        self.bump_commit()?;
        self.release_in_place();
        Ok(())
    }

    /// Keeps CPython's `.bak` (the previous index) as a hard link to the
    /// current `.dir`, so `.dir` itself is replaced in one rename and never
    /// missing. With no `.dir` (CPython's rename window, or a crash in it)
    /// the `.bak` is the index this writer adopted: it stays.
    fn keep_bak(&self) -> Result<(), Error> {
        if !self.paths.dir.exists() {
            return Ok(());
        }
        remove_if_present(&self.paths.bak).map_err(io_err(&self.paths.bak))?;
        if fs::hard_link(&self.paths.dir, &self.paths.bak).is_err() {
            fs::copy(&self.paths.dir, &self.paths.bak).map_err(io_err(&self.paths.bak))?;
        }
        Ok(())
    }

    /// Counts a commit, which tells readers to reload the index.
    pub(crate) fn bump_commit(&mut self) -> Result<(), Error> {
        if let Some(f) = &self.commit {
            // A writer holds the lock, so the count it read at open (and
            // has kept since) is the file's.
            let st = self.st.get_mut();
            let next = st.seen.wrapping_add(1);
            fault::point().and_then(|()| write_counter(f, next)).map_err(io_err(&self.paths.commit))?;
            fault::sync(f).map_err(io_err(&self.paths.commit))?;
            st.seen = next;
        }
        Ok(())
    }

    /// Ends an in-place epoch: lets readers in again.
    pub(crate) fn release_in_place(&mut self) {
        if self.in_place {
            let _ = self.st.get_mut().dat.unlock();
            self.in_place = false;
        }
    }
}
