//! Changes: inserts, removes and bucket splits as GDBM makes them
//! (gdbmstore.c, gdbmdelete.c, bucket.c), and the journaled commit.
//!
//! Space is only ever appended: new records, buckets and directories go
//! at the end of the file, and what a change frees is given to GDBM's
//! header avail table (so libgdbm reuses it) while it has room. So the
//! bytes a commit overwrites in place are the header, changed buckets and
//! the directory, and only those go to the undo journal.

use std::os::unix::fs::FileExt;
use std::sync::PoisonError;

use crate::engine::{Engine, UNCOUNTED};
use crate::error::GnuError;
use crate::format::{self, Bucket, Element, HASH_BITS};
use crate::journal;

/// Appended bytes held in memory before an insert commits on its own:
/// bytes past `next_block` would make libgdbm ask for recovery, so they
/// are never written before the header that covers them.
const TAIL_LIMIT: usize = 16 << 20;

impl Engine {
    /// Whether anything changed since the last commit.
    pub fn changed(&self) -> bool {
        self.header_dirty || self.dir_dirty || !self.dirty.is_empty() || !self.tail.is_empty()
    }

    /// Appends `bytes` to the logical file; returns their address.
    fn append(&mut self, bytes: &[u8]) -> Result<u64, GnuError> {
        let adr = self.len();
        if adr.checked_add(bytes.len() as u64).is_none_or(|e| e > self.header.layout.max_off()) {
            return Err(GnuError::Limit(format!(
                "{} would grow past the offsets of its format",
                self.path.display()
            )));
        }
        self.tail.extend_from_slice(bytes);
        Ok(adr)
    }

    fn reserve(&mut self, len: usize) -> Result<u64, GnuError> {
        self.append(&vec![0u8; len])
    }

    fn free(&mut self, adr: u64, size: u64) {
        self.header.free(adr, size);
        self.header_dirty = true;
    }

    /// Stores `value` under `key`; commits when the unwritten appends
    /// reach [`TAIL_LIMIT`] (earlier durability is allowed, unbounded
    /// memory is not).
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), GnuError> {
        self.insert_in_memory(key, value)?;
        if self.tail.len() >= TAIL_LIMIT {
            self.commit()?;
        }
        Ok(())
    }

    fn insert_in_memory(&mut self, key: &[u8], value: &[u8]) -> Result<(), GnuError> {
        // GDBM keeps sizes in C ints, the record's too.
        if key.len().checked_add(value.len()).is_none_or(|n| n > i32::MAX as usize) {
            return Err(GnuError::Limit(format!(
                "a key and value of {} bytes: GDBM's limit is 2 GiB",
                key.len().saturating_add(value.len())
            )));
        }
        let hash = format::hash(key);
        let found = self.find(key)?;
        let mut record = Vec::with_capacity(key.len() + value.len());
        record.extend_from_slice(key);
        record.extend_from_slice(value);
        let ptr = self.append(&record)?;
        let elem = Element::new(hash, key, ptr, value.len() as u32);
        if let Some((adr, slot, old)) = found {
            self.bucket_mut(adr)?.table[slot] = Some(elem);
            self.dirty.insert(adr);
            self.free(old.ptr, old.record_len());
            return Ok(());
        }
        loop {
            let adr = self.dir[self.dir_index(hash)];
            let bucket = self.bucket_mut(adr)?;
            let n = bucket.table.len();
            let home = hash as usize % n;
            if let Some(slot) = (0..n).map(|i| (home + i) % n).find(|&s| bucket.table[s].is_none()) {
                bucket.table[slot] = Some(elem);
                self.dirty.insert(adr);
                let c = *self.count.get_mut();
                if c != UNCOUNTED {
                    *self.count.get_mut() = c + 1;
                }
                return Ok(());
            }
            // A bucket full of this very hash cannot be split apart: say
            // so now rather than doubling the directory to its limit.
            if bucket.table.iter().flatten().all(|e| e.hash == hash) {
                return Err(GnuError::Limit(format!(
                    "{}: more keys share one hash than a bucket holds",
                    self.path.display()
                )));
            }
            self.split(adr, hash)?;
        }
    }

    /// Splits the full bucket at `adr` (reached by `hash`) in two by its
    /// next hash bit, doubling the directory first when the bucket uses
    /// all its bits (`_gdbm_split_bucket`). The first half stays at `adr`.
    fn split(&mut self, adr: u64, hash: u32) -> Result<(), GnuError> {
        let old = self.bucket_mut(adr)?.clone();
        if old.bits >= self.header.dir_bits {
            // dir_size is a C int.
            let max_bits = if self.header.layout.off64 { 27 } else { 28 };
            if self.header.dir_bits >= max_bits {
                return Err(GnuError::Limit(format!(
                    "{}: more keys share a hash than a bucket holds",
                    self.path.display()
                )));
            }
            let doubled: Vec<u64> = self.dir.iter().flat_map(|&a| [a, a]).collect();
            let new_dir = self.reserve(doubled.len() * self.header.layout.off())?;
            let (old_dir, old_size) = (self.header.dir, u64::from(self.header.dir_size));
            self.dir = doubled;
            self.header.dir = new_dir;
            self.header.dir_size *= 2;
            self.header.dir_bits += 1;
            self.free(old_dir, old_size);
            self.dir_dirty = true;
        }
        let bits = old.bits + 1;
        let elems = self.header.bucket_elems;
        let mut halves = [Bucket::new(bits, elems), Bucket::new(bits, elems)];
        halves[0].avail = old.avail.clone();
        for e in old.table.iter().flatten() {
            let half = &mut halves[((e.hash >> (HASH_BITS - bits)) & 1) as usize];
            let n = half.table.len();
            let home = e.hash as usize % n;
            if let Some(slot) = (0..n).map(|i| (home + i) % n).find(|&s| half.table[s].is_none()) {
                half.table[slot] = Some(*e);
            }
        }
        let adr1 = self.reserve(self.header.bucket_size as usize)?;
        let span = 1usize << (self.header.dir_bits - old.bits);
        let start = self.dir_index(hash) & !(span - 1);
        for (i, a) in self.dir[start..start + span].iter_mut().enumerate() {
            *a = if i < span / 2 { adr } else { adr1 };
        }
        self.dir_dirty = true;
        let [b0, b1] = halves;
        let buckets = self.buckets.get_mut().unwrap_or_else(PoisonError::into_inner);
        buckets.insert(adr, b0);
        buckets.insert(adr1, b1);
        self.dirty.insert(adr);
        self.dirty.insert(adr1);
        Ok(())
    }

    /// Removes `key`; returns whether it was there. The slots after it in
    /// its cluster move up as `gdbm_delete` moves them, so every key stays
    /// reachable from its home slot.
    pub fn remove(&mut self, key: &[u8]) -> Result<bool, GnuError> {
        let Some((adr, slot, old)) = self.find(key)? else { return Ok(false) };
        let bucket = self.bucket_mut(adr)?;
        let n = bucket.table.len();
        bucket.table[slot] = None;
        let mut last = slot;
        let mut at = (slot + 1) % n;
        while at != last {
            let Some(e) = bucket.table[at] else { break };
            let home = e.hash as usize % n;
            if (last < at && (home <= last || home > at)) || (last > at && home <= last && home > at) {
                bucket.table[last] = Some(e);
                bucket.table[at] = None;
                last = at;
            }
            at = (at + 1) % n;
        }
        self.dirty.insert(adr);
        self.free(old.ptr, old.record_len());
        let c = *self.count.get_mut();
        if c != UNCOUNTED {
            *self.count.get_mut() = c.saturating_sub(1);
        }
        Ok(true)
    }

    /// Makes every change durable: the bytes to overwrite are saved in the
    /// undo journal first (see `journal`), then the new bytes written and
    /// fsynced, then the journal removed.
    pub fn commit(&mut self) -> Result<(), GnuError> {
        if !self.changed() {
            return Ok(());
        }
        // GDBM wants the directory strictly inside the file.
        if self.header.dir + u64::from(self.header.dir_size) >= self.len() {
            let block = self.header.block_size as usize;
            let pad = self.reserve(block)?;
            self.free(pad, block as u64);
        }
        self.header.next_block = self.len();
        self.header.count_sync();
        let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
        let buckets = self.buckets.get_mut().unwrap_or_else(PoisonError::into_inner);
        for adr in &self.dirty {
            if let Some(b) = buckets.get_mut(adr) {
                b.stored_count = b.count() as u32;
                writes.push((*adr, b.to_bytes(&self.header)));
            }
        }
        if self.dir_dirty {
            writes.push((self.header.dir, format::dir_to_bytes(&self.header, &self.dir)));
        }
        writes.push((0, self.header.to_bytes()));
        // Writes into the unwritten tail go there; the rest are in place.
        let mut in_place = Vec::new();
        for (off, bytes) in writes {
            if off >= self.disk_len {
                let at = (off - self.disk_len) as usize;
                self.tail[at..at + bytes.len()].copy_from_slice(&bytes);
            } else {
                in_place.push((off, bytes));
            }
        }
        let journal_path = journal::path_of(&self.path);
        if !self.fresh {
            let mut old = Vec::new();
            for (off, bytes) in &in_place {
                let end = (off + bytes.len() as u64).min(self.committed_len);
                if *off < end {
                    let mut buf = vec![0u8; (end - off) as usize];
                    self.file.read_exact_at(&mut buf, *off).map_err(GnuError::io(&self.path))?;
                    old.push((*off, buf));
                }
            }
            let id = journal::identity(&self.file).map_err(GnuError::io(&self.path))?;
            journal::write(&journal_path, id, self.committed_len, &old, self.mode)
                .map_err(GnuError::io(&journal_path))?;
        }
        let io = GnuError::io(&self.path);
        let written = (|| {
            self.file.write_all_at(&self.tail, self.disk_len)?;
            for (off, bytes) in &in_place {
                self.file.write_all_at(bytes, *off)?;
            }
            self.file.sync_all()
        })();
        written.map_err(io)?;
        if !self.fresh {
            journal::discard(&journal_path).map_err(GnuError::io(&journal_path))?;
        }
        self.disk_len += self.tail.len() as u64;
        self.tail.clear();
        self.committed_len = self.disk_len;
        self.dirty.clear();
        self.dir_dirty = false;
        self.header_dirty = false;
        Ok(())
    }
}
