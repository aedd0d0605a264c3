//! Reads: a value's bytes come from the memory map of `.dat`, the append
//! buffer and the in-place overwrites not yet written, the newest winning.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use memmap2::Mmap;
use shelf_core::raw::show_key;
use shelf_core::{Error, KvIter, SharedBytes};

use crate::load::dir_line_of;
use crate::paths::io_err;
use crate::{DumbBackend, State};

impl DumbBackend {
    /// `get_shared`: a slice of the map where the value is on disk, a copy
    /// where it is still buffered.
    pub(crate) fn shared_value(&self, key: &[u8]) -> Result<Option<SharedBytes>, Error> {
        let mut st = self.st.borrow_mut();
        let Some((pos, siz)) = st.index.get(key) else { return Ok(None) };
        let end = self.value_end(&st, key, pos, siz)?;
        if end > st.disk_len || st.overlay.contains_key(&pos) {
            // Not written to the file yet: a copy from the buffers.
            return self.read_value(&mut st, key, pos, siz).map(|v| Some(v.into()));
        }
        if st.map.as_ref().is_none_or(|m| (m.len() as u64) < end) {
            // A map that values still view is left to them; a new one is
            // made beside it.
            self.remap(&mut st)?;
        }
        let Some(map) = st.map.clone() else { return Ok(None) };
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = map;
        let bytes = SharedBytes::slice_of(owner, pos as usize, end as usize)
            .map_err(|len| self.past_end(key, pos, siz, len as u64))?;
        Ok(Some(bytes))
    }

    /// `iter`: the entries as the index holds them now, each value read
    /// when the iteration reaches it (an error there ends the iteration,
    /// it never skips the entry).
    pub(crate) fn values(&self) -> KvIter<'_> {
        let entries: Vec<(Vec<u8>, u64, u64)> =
            self.st.borrow().index.iter().map(|(k, p, s)| (k.to_vec(), p, s)).collect();
        Box::new(entries.into_iter().map(move |(k, pos, siz)| {
            let mut st = self.st.borrow_mut();
            let v = self.read_value(&mut st, &k, pos, siz)?;
            Ok((k, v))
        }))
    }

    pub(crate) fn read_value(
        &self,
        st: &mut State,
        key: &[u8],
        pos: u64,
        siz: u64,
    ) -> Result<Vec<u8>, Error> {
        let end = self.value_end(st, key, pos, siz)?;
        let mut out =
            Vec::with_capacity(usize::try_from(siz).map_err(|_| self.past_end(key, pos, siz, st.dat_len()))?);
        if pos < st.disk_len {
            let on_disk = end.min(st.disk_len);
            if st.map.as_ref().is_none_or(|m| (m.len() as u64) < on_disk) && !self.map_is_shared(st) {
                self.remap(st)?;
            }
            match &st.map {
                Some(map) if on_disk <= map.len() as u64 => {
                    out.extend_from_slice(&map[pos as usize..on_disk as usize]);
                }
                _ => {
                    out.resize((on_disk - pos) as usize, 0);
                    st.dat.read_exact_at(&mut out, pos).map_err(|e| {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            self.past_end(key, pos, siz, st.dat_len())
                        } else {
                            Error::io(&self.paths.dat, e)
                        }
                    })?;
                }
            }
        }
        if end > st.disk_len {
            let from = (pos.max(st.disk_len) - st.disk_len) as usize;
            out.extend_from_slice(&st.pending[from..(end - st.disk_len) as usize]);
        }
        if let Some(newer) = st.overlay.get(&pos) {
            let n = newer.len().min(out.len());
            out[..n].copy_from_slice(&newer[..n]);
        }
        Ok(out)
    }

    /// Whether values handed out by `get_shared` still view the map (then
    /// it is kept, not replaced, so their bytes stay where they are).
    fn map_is_shared(&self, st: &State) -> bool {
        st.map.as_ref().is_some_and(|m| Arc::strong_count(m) > 1)
    }

    /// Maps what is on disk of `.dat` afresh.
    pub(crate) fn remap(&self, st: &mut State) -> Result<(), Error> {
        if st.disk_len == 0 {
            st.map = None;
            return Ok(());
        }
        #[allow(unsafe_code)]
        // SAFETY: the map is read-only and `.dat` only grows while we have
        // it open: this backend never truncates it (compaction writes a new
        // file), CPython never does either, and bytes under a map that is
        // shared are never overwritten in place (see
        // `may_overwrite_in_place`). Another program truncating the file
        // would make reads fault, as with any mapped file.
        let map = unsafe { Mmap::map(&*st.dat) }.map_err(io_err(&self.paths.dat))?;
        if let Some(old) = st.map.replace(Arc::new(map))
            && Arc::strong_count(&old) > 1
        {
            st.retired.push(Arc::downgrade(&old));
        }
        Ok(())
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
