//! The open database: the header, the directory and the buckets in memory
//! (buckets loaded on first use), and every read.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::error::{Damage, GnuError};
use crate::format::{self, Bucket, Element, HASH_BITS, Header};
use crate::journal::Journal;

/// Clean buckets kept in memory before the cache is emptied.
const CACHE_BUCKETS: usize = 4096;

/// [`Engine::count`] before the keys were counted (no file holds so many).
pub const UNCOUNTED: u64 = u64::MAX;

/// A GDBM file, open.
#[derive(Debug)]
pub struct Engine {
    /// The database file's path.
    pub path: PathBuf,
    /// The database file.
    pub file: File,
    /// Block 0.
    pub header: Header,
    /// The directory: bucket addresses.
    pub dir: Vec<u64>,
    /// Loaded buckets by address (dirty ones stay until the commit).
    /// Behind a lock of its own: reads, which share the engine, fill it.
    pub buckets: RwLock<HashMap<u64, Bucket>>,
    /// Addresses of changed buckets.
    pub dirty: BTreeSet<u64>,
    /// Whether the directory or the header changed.
    pub dir_dirty: bool,
    /// Whether the header changed.
    pub header_dirty: bool,
    /// The file's length at the last commit: what a rollback restores.
    pub committed_len: u64,
    /// Bytes in the file; the logical file goes on with `tail`.
    pub disk_len: u64,
    /// Appended bytes not yet written.
    pub tail: Vec<u8>,
    /// A reader's view of an interrupted commit: the old bytes.
    pub overlay: Vec<(u64, Vec<u8>)>,
    /// The number of keys, once counted ([`UNCOUNTED`] until then).
    pub count: AtomicU64,
    /// A file built from nothing (a creation or compaction in a temporary
    /// file): commits need no journal.
    pub fresh: bool,
    /// Permission bits for the journal.
    pub mode: u32,
}

impl Engine {
    /// Opens an existing file: `journal` is an interrupted commit a reader
    /// reads through (a writer has rolled it back already).
    pub fn load(path: PathBuf, file: File, journal: Option<Journal>, mode: u32) -> Result<Engine, GnuError> {
        let file_len = file.metadata().map_err(GnuError::io(&path))?.len();
        let (disk_len, overlay) = match journal {
            Some(j) => (j.old_len.min(file_len), j.spans),
            None => (file_len, Vec::new()),
        };
        let mut e = Engine {
            path,
            file,
            header: Header::new(format::Layout::NEW, format::NEW_BLOCK_SIZE),
            dir: Vec::new(),
            buckets: RwLock::new(HashMap::new()),
            dirty: BTreeSet::new(),
            dir_dirty: false,
            header_dirty: false,
            committed_len: disk_len,
            disk_len,
            tail: Vec::new(),
            overlay,
            count: AtomicU64::new(UNCOUNTED),
            fresh: false,
            mode,
        };
        let path = e.path.clone();
        let damaged = |d| GnuError::damaged(&path, d);
        if disk_len < 64 {
            return Err(damaged(Damage::Header(format!("a file of {disk_len} bytes"))));
        }
        let start = e.read_at(0, 8)?;
        let block_size = u32::from_le_bytes([start[4], start[5], start[6], start[7]]);
        // The magic first, so a foreign or byte-swapped file says so.
        match format::magic([start[0], start[1], start[2], start[3]]) {
            format::Magic::Supported(_) => {}
            format::Magic::Unsupported(what) => return Err(damaged(Damage::Unsupported(what))),
            format::Magic::Foreign => return Err(damaged(Damage::Header("no GDBM magic number".into()))),
        }
        if !(512..=1 << 24).contains(&block_size) || u64::from(block_size) > disk_len {
            return Err(damaged(Damage::Header(format!(
                "block size {block_size} in a file of {disk_len} bytes"
            ))));
        }
        let bytes = e.read_at(0, block_size as usize)?;
        e.header = Header::parse(&bytes, disk_len).map_err(damaged)?;
        let dir_bytes = e.read_at(e.header.dir, e.header.dir_size as usize)?;
        e.dir =
            format::parse_dir(&e.header, &dir_bytes, disk_len).map_err(|d| GnuError::damaged(&e.path, d))?;
        Ok(e)
    }

    /// The logical length of the file.
    pub fn len(&self) -> u64 {
        self.disk_len + self.tail.len() as u64
    }

    /// `len` bytes at `off`, from the file (through a reader's overlay) or
    /// the unwritten tail.
    pub fn read_at(&self, off: u64, len: usize) -> Result<Vec<u8>, GnuError> {
        let end = off.checked_add(len as u64).filter(|&e| e <= self.len()).ok_or_else(|| {
            GnuError::damaged(
                &self.path,
                Damage::Entry(format!(
                    "{len} bytes at offset {off} lie past the end of the file ({})",
                    self.len()
                )),
            )
        })?;
        let mut buf = vec![0u8; len];
        let on_disk = end.min(self.disk_len).saturating_sub(off) as usize;
        if on_disk > 0 {
            self.file.read_exact_at(&mut buf[..on_disk], off).map_err(GnuError::io(&self.path))?;
            for (pos, old) in &self.overlay {
                let (s, e) = (*pos.max(&off), (pos + old.len() as u64).min(off + on_disk as u64));
                if s < e {
                    buf[(s - off) as usize..(e - off) as usize]
                        .copy_from_slice(&old[(s - pos) as usize..(e - pos) as usize]);
                }
            }
        }
        if on_disk < len {
            let from = (off + on_disk as u64 - self.disk_len) as usize;
            buf[on_disk..].copy_from_slice(&self.tail[from..from + len - on_disk]);
        }
        Ok(buf)
    }

    /// The directory index of a hash.
    pub fn dir_index(&self, hash: u32) -> usize {
        (hash >> (HASH_BITS - self.header.dir_bits)) as usize
    }

    /// Runs `f` on the bucket at `adr`, loading it first.
    pub fn with_bucket<T>(&self, adr: u64, f: impl FnOnce(&Bucket) -> T) -> Result<T, GnuError> {
        if let Some(b) = self.buckets.read().unwrap_or_else(PoisonError::into_inner).get(&adr) {
            return Ok(f(b));
        }
        let bytes = self.read_at(adr, self.header.bucket_size as usize)?;
        let b = Bucket::parse(&self.header, &bytes)
            .map_err(|what| GnuError::damaged(&self.path, Damage::Bucket { adr, what }))?;
        let out = f(&b);
        let mut cache = self.buckets.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_BUCKETS {
            cache.retain(|a, _| self.dirty.contains(a));
        }
        cache.insert(adr, b);
        Ok(out)
    }

    /// The bucket at `adr`, loaded, for a change (the caller marks it dirty).
    pub fn bucket_mut(&mut self, adr: u64) -> Result<&mut Bucket, GnuError> {
        self.with_bucket(adr, |_| ())?;
        self.buckets.get_mut().unwrap_or_else(PoisonError::into_inner).get_mut(&adr).ok_or_else(|| {
            GnuError::damaged(&self.path, Damage::Bucket { adr, what: "vanished from the cache".into() })
        })
    }

    /// The value of `key`: one read of the key and value together.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, GnuError> {
        let (_, candidates) = self.candidates(key)?;
        for (_, e) in candidates {
            let mut record = self.read_at(e.ptr, e.record_len() as usize)?;
            if record[..e.key_size as usize] == *key {
                return Ok(Some(record.split_off(e.key_size as usize)));
            }
        }
        Ok(None)
    }

    /// Where `key` is: its bucket's address, its slot and its element.
    pub fn find(&self, key: &[u8]) -> Result<Option<(u64, usize, Element)>, GnuError> {
        let (adr, candidates) = self.candidates(key)?;
        for (slot, e) in candidates {
            if self.read_at(e.ptr, e.key_size as usize)? == key {
                return Ok(Some((adr, slot, e)));
            }
        }
        Ok(None)
    }

    /// The bucket of `key` and the slots whose hash, size and first bytes
    /// match it, in probe order (the first free slot ends the probe, as
    /// in `_gdbm_findkey`).
    fn candidates(&self, key: &[u8]) -> Result<(u64, Vec<(usize, Element)>), GnuError> {
        let hash = format::hash(key);
        let adr = self.dir[self.dir_index(hash)];
        let candidates = self.with_bucket(adr, |b| {
            let n = b.table.len();
            let mut out = Vec::new();
            let home = hash as usize % n;
            for i in 0..n {
                let slot = (home + i) % n;
                match b.table[slot] {
                    None => break,
                    Some(e) if e.may_be(hash, key) => out.push((slot, e)),
                    Some(_) => {}
                }
            }
            out
        })?;
        Ok((adr, candidates))
    }

    /// The value of an element.
    pub fn value_of(&self, e: &Element) -> Result<Vec<u8>, GnuError> {
        self.read_at(e.ptr.saturating_add(u64::from(e.key_size)), e.data_size as usize)
    }

    /// The key and value of an element.
    pub fn record_of(&self, e: &Element) -> Result<(Vec<u8>, Vec<u8>), GnuError> {
        let mut key = self.read_at(e.ptr, e.record_len() as usize)?;
        let value = key.split_off(e.key_size as usize);
        Ok((key, value))
    }

    /// Every bucket's address once, in directory order (GDBM's
    /// `gdbm_firstkey`/`gdbm_nextkey` order).
    pub fn bucket_order(&self) -> Vec<u64> {
        let mut seen = HashSet::new();
        self.dir.iter().copied().filter(|a| seen.insert(*a)).collect()
    }

    /// The elements of the bucket at `adr`, in slot order.
    pub fn elements(&self, adr: u64) -> Result<Vec<Element>, GnuError> {
        self.with_bucket(adr, |b| b.table.iter().flatten().copied().collect())
    }

    /// The number of keys (counted once, then kept up to date).
    pub fn key_count(&self) -> Result<u64, GnuError> {
        let n = self.count.load(Ordering::Relaxed);
        if n != UNCOUNTED {
            return Ok(n);
        }
        let mut n = 0u64;
        for adr in self.bucket_order() {
            n += self.with_bucket(adr, |b| b.count() as u64)?;
        }
        self.count.store(n, Ordering::Relaxed);
        Ok(n)
    }
}

impl Engine {
    /// An empty database in `file` (empty), laid out as libgdbm lays out a
    /// new one: the header in block 0, the directory in block 1, the one
    /// bucket in block 2. Nothing is written before [`commit`](Self::commit).
    pub fn create(path: PathBuf, file: File, layout: format::Layout, block_size: u32, mode: u32) -> Engine {
        let header = Header::new(layout, block_size);
        let block = u64::from(header.block_size);
        let bucket = Bucket::new(0, header.bucket_elems);
        let dir = vec![2 * block; header.dir_count()];
        let mut buckets = HashMap::new();
        buckets.insert(2 * block, bucket);
        Engine {
            path,
            file,
            dir,
            buckets: RwLock::new(buckets),
            dirty: BTreeSet::from([2 * block]),
            dir_dirty: true,
            header_dirty: true,
            committed_len: 0,
            disk_len: 0,
            tail: vec![0u8; 3 * block as usize],
            overlay: Vec::new(),
            count: AtomicU64::new(0),
            fresh: true,
            mode,
            header,
        }
    }
}
