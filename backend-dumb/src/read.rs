//! Reads: a value's bytes come from the memory map of `.dat`, the append
//! buffer and the in-place overwrites not yet written, the newest winning.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use shelf_core::raw::show_key;
use shelf_core::{Error, KvIter, SharedBytes};

use crate::DumbBackend;
use crate::load::dir_line_of;
use crate::state::State;

impl DumbBackend {
    /// `get_shared`: a slice of the map where the value is on disk, a copy
    /// where it is still buffered.
    pub(crate) fn shared_value(&self, st: &State, key: &[u8]) -> Result<Option<SharedBytes>, Error> {
        let Some((pos, siz)) = st.index.get(key) else { return Ok(None) };
        let end = self.value_end(st, key, pos, siz)?;
        let mapped = st.map().filter(|m| m.len() as u64 >= end);
        let Some(map) = mapped.filter(|_| end <= st.disk_len && !st.overlay.contains_key(&pos)) else {
            // Not written to the file yet (or not mapped): a copy.
            return self.read_value(st, key, pos, siz).map(|v| Some(v.into()));
        };
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = map.clone();
        let bytes = SharedBytes::slice_of(owner, pos as usize, end as usize)
            .map_err(|len| self.past_end(key, pos, siz, len as u64))?;
        Ok(Some(bytes))
    }

    /// `iter`: the entries as the index holds them now, each value read
    /// when the iteration reaches it (an error there ends the iteration,
    /// it never skips the entry).
    pub(crate) fn values(&self, st: &State) -> KvIter<'_> {
        let entries: Vec<(Vec<u8>, u64, u64)> = st.index.iter().map(|(k, p, s)| (k.to_vec(), p, s)).collect();
        Box::new(entries.into_iter().map(move |(k, pos, siz)| {
            let v = self.read_value(&self.st.read(), &k, pos, siz)?;
            Ok((k, v))
        }))
    }

    /// Hands the value at `pos` to `f`: a slice of the map in the usual
    /// case (on disk, mapped, nothing newer buffered), with no copy; else
    /// the copy [`read_value`](Self::read_value) assembles.
    #[inline]
    pub(crate) fn with_value(
        &self,
        st: &State,
        key: &[u8],
        (pos, siz): (u64, u64),
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Error> {
        let end = self.value_end(st, key, pos, siz)?;
        if end <= st.disk_len
            && st.overlay.is_empty()
            && let Some(map) = st.map()
            && end <= map.len() as u64
        {
            f(&map[pos as usize..end as usize]);
            return Ok(());
        }
        f(&self.read_value(st, key, pos, siz)?);
        Ok(())
    }

    /// The value at `pos`: one allocation of its size and one copy, from
    /// the map (`pread` for what the map lacks), the append buffer and the
    /// overwrites not yet written, the newest winning. Never changes the
    /// state: readers on several threads call it at once.
    #[inline]
    pub(crate) fn read_value(&self, st: &State, key: &[u8], pos: u64, siz: u64) -> Result<Vec<u8>, Error> {
        let end = self.value_end(st, key, pos, siz)?;
        if end <= st.disk_len
            && st.overlay.is_empty()
            && let Some(map) = st.map()
            && end <= map.len() as u64
        {
            // The usual case: on disk, mapped, nothing newer buffered.
            return Ok(map[pos as usize..end as usize].to_vec());
        }
        let mut out = Vec::with_capacity((end - pos) as usize);
        if pos < st.disk_len {
            let on_disk = end.min(st.disk_len);
            match st.map() {
                Some(map) if on_disk <= map.len() as u64 => {
                    out.extend_from_slice(&map[pos as usize..on_disk as usize]);
                }
                _ => self.pread(st, &mut out, key, pos, siz, on_disk)?,
            }
        }
        if end > st.disk_len {
            let from = (pos.max(st.disk_len) - st.disk_len) as usize;
            out.extend_from_slice(&st.pending[from..(end - st.disk_len) as usize]);
        }
        if !st.overlay.is_empty()
            && let Some(newer) = st.overlay.get(&pos)
        {
            let n = newer.len().min(out.len());
            out[..n].copy_from_slice(&newer[..n]);
        }
        Ok(out)
    }

    /// Reads `pos..on_disk` of `.dat` into `out` with `pread` (where the
    /// map does not reach: mapping failed).
    #[cold]
    fn pread(
        &self,
        st: &State,
        out: &mut Vec<u8>,
        key: &[u8],
        pos: u64,
        siz: u64,
        on_disk: u64,
    ) -> Result<(), Error> {
        out.resize((on_disk - pos) as usize, 0);
        st.dat.read_exact_at(out, pos).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.past_end(key, pos, siz, st.dat_len())
            } else {
                Error::io(&self.paths.dat, e)
            }
        })
    }

    /// The end of `key`'s value, or the error of a value cut short.
    pub(crate) fn value_end(&self, st: &State, key: &[u8], pos: u64, siz: u64) -> Result<u64, Error> {
        match pos.checked_add(siz) {
            Some(end) if end <= st.dat_len() => Ok(end),
            _ => Err(self.past_end(key, pos, siz, st.dat_len())),
        }
    }

    /// A value cut short: an error naming the key and, where it can be
    /// found, its `.dir` line (iterations stop on it, never skip it).
    pub(crate) fn past_end(&self, key: &[u8], pos: u64, siz: u64, len: u64) -> Error {
        let line = match dir_line_of(&self.paths.dir, key) {
            Some(n) => format!(" (line {n} of {})", self.paths.dir.display()),
            None => String::new(),
        };
        Error::Corrupted {
            path: self.paths.dat.clone(),
            detail: format!("key {}{line} points past the end ({pos} + {siz} > {len} bytes)", show_key(key)),
        }
    }
}
