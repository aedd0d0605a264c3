//! GDBM's file format (gdbmdefs.h, gdbmconst.h of GDBM 1.23): the header,
//! the directory, the hash buckets and their elements, and the hash.
//!
//! Every structure is a C struct of `int`s and `off_t`s laid out by the
//! compiler: the 64-bit variants pad an `int` before an `off_t`. Offsets
//! below are those of x86-64 (little-endian) for the 64-bit variants and of
//! a 32-bit `off_t` build for the 32-bit ones.

use crate::error::Damage;

/// Original magic: files of GDBM before 1.9, read by a 64-bit GDBM with
/// its own (64-bit) offsets.
pub const OMAGIC: u32 = 0x1357_9ace;
/// Standard format, 32-bit offsets.
pub const MAGIC32: u32 = 0x1357_9acd;
/// Standard format, 64-bit offsets: what Debian's libgdbm writes.
pub const MAGIC64: u32 = 0x1357_9acf;
/// Extended ("numsync") format, 32-bit offsets.
pub const NUMSYNC32: u32 = 0x1357_9ad0;
/// Extended ("numsync") format, 64-bit offsets.
pub const NUMSYNC64: u32 = 0x1357_9ad1;

/// GDBM_HASH_BITS: hash values have 31 bits.
pub const HASH_BITS: u32 = 31;
/// SMALL: key bytes kept in a bucket element.
pub const SMALL: usize = 4;
/// BUCKET_AVAIL: avail entries of a bucket.
pub const BUCKET_AVAIL: usize = 6;
/// IGNORE_SIZE: freed regions this small are not worth an avail entry.
pub const IGNORE_SIZE: u64 = 4;
/// The block size of new files: GDBM's, from `st_blksize` on ext4 and tmpfs.
pub const NEW_BLOCK_SIZE: u32 = 4096;

/// What the first four bytes of a file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    /// A variant this backend reads and writes.
    Supported(Layout),
    /// A GDBM file this backend does not open (byte-swapped).
    Unsupported(&'static str),
    /// Not GDBM.
    Foreign,
}

/// Reads the magic number at the start of a file.
pub fn magic(first: [u8; 4]) -> Magic {
    let native = u32::from_le_bytes(first);
    let swapped = u32::from_be_bytes(first);
    match native {
        OMAGIC | MAGIC64 => Magic::Supported(Layout { off64: true, numsync: false, magic: native }),
        MAGIC32 => Magic::Supported(Layout { off64: false, numsync: false, magic: native }),
        NUMSYNC64 => Magic::Supported(Layout { off64: true, numsync: true, magic: native }),
        NUMSYNC32 => Magic::Supported(Layout { off64: false, numsync: true, magic: native }),
        _ if matches!(swapped, OMAGIC | MAGIC32 | MAGIC64 | NUMSYNC32 | NUMSYNC64) => {
            Magic::Unsupported("a big-endian (byte-swapped) GDBM file")
        }
        _ => Magic::Foreign,
    }
}

/// The sizes and offsets of one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// `off_t` is 8 bytes (else 4).
    pub off64: bool,
    /// The extended header (gdbm_ext_header) follows the standard one.
    pub numsync: bool,
    /// The magic number, written back unchanged.
    pub magic: u32,
}

impl Layout {
    /// The layout of files this backend creates: what Debian's libgdbm
    /// writes on x86-64.
    pub const NEW: Layout = Layout { off64: true, numsync: false, magic: MAGIC64 };

    /// sizeof(off_t).
    pub fn off(self) -> usize {
        if self.off64 { 8 } else { 4 }
    }
    /// sizeof(gdbm_file_header).
    pub fn header_len(self) -> usize {
        if self.off64 { 40 } else { 32 }
    }
    /// Where the avail_block starts in block 0.
    pub fn avail_at(self) -> usize {
        self.header_len() + if self.numsync { 32 } else { 0 }
    }
    /// offsetof(avail_block, av_table).
    pub fn avail_table_at(self) -> usize {
        if self.off64 { 16 } else { 12 }
    }
    /// sizeof(avail_elem).
    pub fn avail_elem(self) -> usize {
        if self.off64 { 16 } else { 8 }
    }
    /// offsetof(hash_bucket, bucket_bits).
    fn bucket_bits_at(self) -> usize {
        if self.off64 { 104 } else { 52 }
    }
    /// offsetof(hash_bucket, h_table).
    pub fn table_at(self) -> usize {
        self.bucket_bits_at() + 8
    }
    /// sizeof(bucket_element).
    pub fn elem_len(self) -> usize {
        if self.off64 { 24 } else { 20 }
    }
    /// bucket_element_count(bucket_size): sizeof(hash_bucket) counts one
    /// element.
    pub fn bucket_elems(self, bucket_size: u32) -> Option<u32> {
        let fixed = (self.table_at() + self.elem_len()) as u32;
        Some((bucket_size.checked_sub(fixed)?) / self.elem_len() as u32 + 1)
    }

    fn get_off(self, b: &[u8], at: usize) -> u64 {
        if self.off64 { u64_at(b, at) } else { u64::from(u32_at(b, at)) }
    }
    fn put_off(self, b: &mut [u8], at: usize, v: u64) {
        if self.off64 {
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        } else {
            b[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
        }
    }
    /// The largest offset the variant can hold.
    pub fn max_off(self) -> u64 {
        if self.off64 { i64::MAX as u64 } else { i32::MAX as u64 }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    u32_at(b, at) as i32
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// GDBM's `_gdbm_hash` (hash.c): note the `char` of the key is signed on
/// x86, so bytes from 0x80 are sign-extended before the shift.
pub fn hash(key: &[u8]) -> u32 {
    let mut value = 0x238F_13AFu32.wrapping_mul(key.len() as u32);
    for (index, &byte) in key.iter().enumerate() {
        let shift = (index as u32).wrapping_mul(5) % 24;
        let c = i32::from(byte as i8) as u32;
        value = value.wrapping_add(c << shift) & 0x7FFF_FFFF;
    }
    1_103_515_243u32.wrapping_mul(value).wrapping_add(12345) & 0x7FFF_FFFF
}

/// An entry of an avail table: a free region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avail {
    /// Its size in bytes.
    pub size: u32,
    /// Its file address.
    pub adr: u64,
}

/// The file header with the header's avail table (block 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The variant.
    pub layout: Layout,
    /// The block size.
    pub block_size: u32,
    /// The directory's address.
    pub dir: u64,
    /// The directory's size in bytes.
    pub dir_size: u32,
    /// The directory's address bits.
    pub dir_bits: u32,
    /// A bucket's size in bytes.
    pub bucket_size: u32,
    /// The elements of a bucket.
    pub bucket_elems: u32,
    /// The end of allocated space.
    pub next_block: u64,
    /// The extended header's 32 bytes (numsync files), kept as read.
    pub ext: Option<[u8; 32]>,
    /// avail_block.size: the capacity of the table.
    pub avail_size: u32,
    /// avail_block.next_block: a chained avail block (kept, never followed).
    pub avail_next: u64,
    /// The free regions, sorted by size as GDBM keeps them.
    pub avail: Vec<Avail>,
}

impl Header {
    /// The header of a new, empty database (gdbmopen.c), with its one
    /// bucket at block 2 and the directory at block 1.
    pub fn new(layout: Layout, block_size: u32) -> Header {
        let off = layout.off() as u32;
        let mut dir_size = 8 * off;
        let mut dir_bits = 3;
        while dir_size < block_size && dir_bits < HASH_BITS - 3 {
            dir_size <<= 1;
            dir_bits += 1;
        }
        let block_size = dir_size;
        let avail_bytes = block_size as usize - layout.avail_at() - layout.avail_table_at();
        Header {
            layout,
            block_size,
            dir: u64::from(block_size),
            dir_size,
            dir_bits,
            bucket_size: block_size,
            bucket_elems: layout.bucket_elems(block_size).unwrap_or(1),
            next_block: 3 * u64::from(block_size),
            ext: layout.numsync.then_some([0; 32]),
            avail_size: (avail_bytes / layout.avail_elem()) as u32,
            avail_next: 0,
            avail: Vec::new(),
        }
    }

    /// Bytes of block 0 the header and its avail table take.
    pub fn len(&self) -> usize {
        self.layout.avail_at()
            + self.layout.avail_table_at()
            + self.avail_size as usize * self.layout.avail_elem()
    }

    /// The number of directory entries.
    pub fn dir_count(&self) -> usize {
        self.dir_size as usize / self.layout.off()
    }

    /// Parses block 0 (`bytes` holds at least the first block, `file_len`
    /// is the file's length), with GDBM's own checks (validate_header_std,
    /// gdbm_avail_block_validate) and a few more that keep reads bounded.
    pub fn parse(bytes: &[u8], file_len: u64) -> Result<Header, Damage> {
        let bad = |what: &str| Damage::Header(what.to_owned());
        let first: [u8; 4] =
            bytes.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("shorter than a header"))?;
        let layout = match magic(first) {
            Magic::Supported(l) => l,
            Magic::Unsupported(what) => return Err(Damage::Unsupported(what)),
            Magic::Foreign => return Err(bad("no GDBM magic number")),
        };
        if bytes.len() < layout.avail_at() + layout.avail_table_at() {
            return Err(bad("shorter than a header"));
        }
        let o = layout.off();
        let block_size = i32_at(bytes, 4);
        let dir = layout.get_off(bytes, 8);
        let at = 8 + o;
        let (dir_size, dir_bits, bucket_size, bucket_elems) =
            (i32_at(bytes, at), i32_at(bytes, at + 4), i32_at(bytes, at + 8), i32_at(bytes, at + 12));
        let next_block = layout.get_off(bytes, at + 16);
        if !(512..=1 << 24).contains(&block_size)
            || (block_size as usize) < layout.avail_at() + layout.avail_table_at() + 2 * layout.avail_elem()
        {
            return Err(bad(&format!("block size {block_size} out of range")));
        }
        if !(3..=(HASH_BITS as i32 - 3)).contains(&dir_bits) || dir_size as i64 != (o as i64) << dir_bits {
            return Err(bad(&format!("directory of {dir_size} bytes does not match its {dir_bits} bits")));
        }
        if (dir_size as i64) < block_size as i64 && dir_size < (o as i32) << (HASH_BITS - 3) {
            return Err(bad("directory smaller than a block"));
        }
        if dir == 0 || dir.checked_add(dir_size as u64).is_none_or(|end| end > file_len) {
            return Err(bad(&format!(
                "directory at {dir} (+{dir_size}) outside the file of {file_len} bytes"
            )));
        }
        if bucket_size <= (layout.table_at() + layout.elem_len()) as i32 || bucket_size > 1 << 24 {
            return Err(bad(&format!("bucket size {bucket_size} out of range")));
        }
        if layout.bucket_elems(bucket_size as u32) != Some(bucket_elems as u32) {
            return Err(bad(&format!("{bucket_elems} elements do not fit a bucket of {bucket_size} bytes")));
        }
        let ext = layout.numsync.then(|| {
            let mut e = [0u8; 32];
            e.copy_from_slice(&bytes[layout.header_len()..layout.header_len() + 32]);
            e
        });
        let a = layout.avail_at();
        let (avail_size, avail_count) = (i32_at(bytes, a), i32_at(bytes, a + 4));
        let avail_next = layout.get_off(bytes, a + 8);
        let room = (block_size as usize - a - layout.avail_table_at()) / layout.avail_elem();
        if avail_size <= 1 || avail_size as usize > room || avail_count < 0 || avail_count > avail_size {
            return Err(bad(&format!("avail table of {avail_count}/{avail_size} entries out of range")));
        }
        let avail = parse_avail(
            layout,
            &bytes[a + layout.avail_table_at()..],
            avail_count as usize,
            u64::from(bucket_size as u32),
            next_block,
        )
        .ok_or_else(|| bad("an avail entry outside the file"))?;
        Ok(Header {
            layout,
            block_size: block_size as u32,
            dir,
            dir_size: dir_size as u32,
            dir_bits: dir_bits as u32,
            bucket_size: bucket_size as u32,
            bucket_elems: bucket_elems as u32,
            next_block,
            ext,
            avail_size: avail_size as u32,
            avail_next,
            avail,
        })
    }

    /// The bytes of [`len`](Self::len) this header occupies.
    pub fn to_bytes(&self) -> Vec<u8> {
        let l = self.layout;
        let o = l.off();
        let mut b = vec![0u8; self.len()];
        put_u32(&mut b, 0, l.magic);
        put_u32(&mut b, 4, self.block_size);
        l.put_off(&mut b, 8, self.dir);
        let at = 8 + o;
        put_u32(&mut b, at, self.dir_size);
        put_u32(&mut b, at + 4, self.dir_bits);
        put_u32(&mut b, at + 8, self.bucket_size);
        put_u32(&mut b, at + 12, self.bucket_elems);
        l.put_off(&mut b, at + 16, self.next_block);
        if let Some(ext) = &self.ext {
            b[l.header_len()..l.header_len() + 32].copy_from_slice(ext);
        }
        let a = l.avail_at();
        put_u32(&mut b, a, self.avail_size);
        put_u32(&mut b, a + 4, self.avail.len() as u32);
        l.put_off(&mut b, a + 8, self.avail_next);
        write_avail(l, &mut b[a + l.avail_table_at()..], &self.avail);
        b
    }

    /// Counts a commit in a numsync file (GDBM does at every sync).
    pub fn count_sync(&mut self) {
        if let Some(ext) = &mut self.ext {
            let n = u32_at(ext, 4).wrapping_add(1);
            put_u32(ext, 4, n);
        }
    }

    /// Gives a freed region to GDBM's header avail table when there is
    /// room (kept sorted by size, as `_gdbm_put_av_elem` keeps it);
    /// otherwise it stays unused until `compact`.
    pub fn free(&mut self, adr: u64, size: u64) {
        if size <= IGNORE_SIZE || size > i32::MAX as u64 || self.avail.len() >= self.avail_size as usize {
            return;
        }
        let elem = Avail { size: size as u32, adr };
        let at = self.avail.partition_point(|a| a.size < elem.size);
        self.avail.insert(at, elem);
    }
}

fn parse_avail(l: Layout, b: &[u8], count: usize, min: u64, next_block: u64) -> Option<Vec<Avail>> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = i * l.avail_elem();
        let size = i32_at(b, at);
        let adr = l.get_off(b, at + if l.off64 { 8 } else { 4 });
        let ok = size >= 0 && adr >= min && adr.checked_add(size as u64).is_some_and(|e| e <= next_block);
        if !ok {
            return None;
        }
        out.push(Avail { size: size as u32, adr });
    }
    Some(out)
}

fn write_avail(l: Layout, b: &mut [u8], avail: &[Avail]) {
    for (i, a) in avail.iter().enumerate() {
        let at = i * l.avail_elem();
        put_u32(b, at, a.size);
        l.put_off(b, at + if l.off64 { 8 } else { 4 }, a.adr);
    }
}

/// A bucket element: one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element {
    /// The key's 31-bit hash.
    pub hash: u32,
    /// The key's first (up to) four bytes.
    pub key_start: [u8; SMALL],
    /// Where the key is stored, the value right after it.
    pub ptr: u64,
    /// The key's length.
    pub key_size: u32,
    /// The value's length.
    pub data_size: u32,
}

impl Element {
    /// The element of `key` stored at `ptr`.
    pub fn new(hash: u32, key: &[u8], ptr: u64, data_size: u32) -> Element {
        let mut key_start = [0u8; SMALL];
        let n = key.len().min(SMALL);
        key_start[..n].copy_from_slice(&key[..n]);
        Element { hash, key_start, ptr, key_size: key.len() as u32, data_size }
    }

    /// Whether `key` (of hash `hash`) may be this element's, from what the
    /// bucket holds (the stored key decides).
    pub fn may_be(&self, hash: u32, key: &[u8]) -> bool {
        let n = key.len().min(SMALL);
        self.hash == hash && self.key_size as usize == key.len() && self.key_start[..n] == key[..n]
    }

    /// Bytes of the key and value.
    pub fn record_len(&self) -> u64 {
        u64::from(self.key_size) + u64::from(self.data_size)
    }
}

/// A hash bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's avail entries (kept as read).
    pub avail: Vec<Avail>,
    /// The hash bits that lead here.
    pub bits: u32,
    /// The count the bucket records (written anew from the slots).
    pub stored_count: u32,
    /// The slots; `None` is a free one (hash_value -1).
    pub table: Vec<Option<Element>>,
}

impl Bucket {
    /// An empty bucket of `elems` slots.
    pub fn new(bits: u32, elems: u32) -> Bucket {
        Bucket { avail: Vec::new(), bits, stored_count: 0, table: vec![None; elems as usize] }
    }

    /// The keys it holds.
    pub fn count(&self) -> usize {
        self.table.iter().filter(|e| e.is_some()).count()
    }

    /// Parses a bucket of `h.bucket_size` bytes, with GDBM's checks
    /// (_gdbm_get_bucket); elements are checked where they are read.
    pub fn parse(h: &Header, b: &[u8]) -> Result<Bucket, String> {
        let l = h.layout;
        let av_count = i32_at(b, 0);
        if !(0..=BUCKET_AVAIL as i32).contains(&av_count) {
            return Err(format!("{av_count} avail entries"));
        }
        let avail = parse_avail(
            l,
            &b[if l.off64 { 8 } else { 4 }..],
            av_count as usize,
            u64::from(h.bucket_size),
            h.next_block,
        )
        .ok_or("an avail entry outside the file")?;
        let bits = i32_at(b, l.bucket_bits_at());
        let count = i32_at(b, l.bucket_bits_at() + 4);
        if bits < 0 || bits as u32 > h.dir_bits {
            return Err(format!("{bits} hash bits where the directory has {}", h.dir_bits));
        }
        if count < 0 || count as u32 > h.bucket_elems {
            return Err(format!("a count of {count}"));
        }
        let mut table = Vec::with_capacity(h.bucket_elems as usize);
        for i in 0..h.bucket_elems as usize {
            let at = l.table_at() + i * l.elem_len();
            let hash = i32_at(b, at);
            if hash == -1 {
                table.push(None);
                continue;
            }
            let mut key_start = [0u8; SMALL];
            key_start.copy_from_slice(&b[at + 4..at + 8]);
            let ptr = l.get_off(b, at + 8);
            let sizes = at + 8 + l.off();
            let (key_size, data_size) = (i32_at(b, sizes), i32_at(b, sizes + 4));
            // Sizes and places are checked where the entry is read
            // (gdbm_bucket_element_valid_p does the same), so one bad
            // element does not hide the others of its bucket.
            let e = Element {
                hash: hash as u32,
                key_start,
                ptr,
                key_size: key_size as u32,
                data_size: data_size as u32,
            };
            table.push(Some(e));
        }
        Ok(Bucket { avail, bits: bits as u32, stored_count: count as u32, table })
    }

    /// The bucket's `h.bucket_size` bytes.
    pub fn to_bytes(&self, h: &Header) -> Vec<u8> {
        let l = h.layout;
        let mut b = vec![0u8; h.bucket_size as usize];
        put_u32(&mut b, 0, self.avail.len() as u32);
        write_avail(l, &mut b[if l.off64 { 8 } else { 4 }..], &self.avail);
        put_u32(&mut b, l.bucket_bits_at(), self.bits);
        put_u32(&mut b, l.bucket_bits_at() + 4, self.count() as u32);
        for (i, slot) in self.table.iter().enumerate() {
            let at = l.table_at() + i * l.elem_len();
            match slot {
                None => put_u32(&mut b, at, u32::MAX),
                Some(e) => {
                    put_u32(&mut b, at, e.hash);
                    b[at + 4..at + 8].copy_from_slice(&e.key_start);
                    l.put_off(&mut b, at + 8, e.ptr);
                    put_u32(&mut b, at + 8 + l.off(), e.key_size);
                    put_u32(&mut b, at + 12 + l.off(), e.data_size);
                }
            }
        }
        b
    }
}

/// Parses the directory: `h.dir_count()` bucket addresses, each of a
/// bucket within the file.
pub fn parse_dir(h: &Header, b: &[u8], file_len: u64) -> Result<Vec<u64>, Damage> {
    let l = h.layout;
    (0..h.dir_count())
        .map(|i| {
            let adr = l.get_off(b, i * l.off());
            if adr < u64::from(h.block_size)
                || adr.checked_add(u64::from(h.bucket_size)).is_none_or(|e| e > file_len)
            {
                Err(Damage::Header(format!("directory entry {i} points to {adr}, outside the file")))
            } else {
                Ok(adr)
            }
        })
        .collect()
}

/// The directory's bytes.
pub fn dir_to_bytes(h: &Header, dir: &[u64]) -> Vec<u8> {
    let l = h.layout;
    let mut b = vec![0u8; dir.len() * l.off()];
    for (i, adr) in dir.iter().enumerate() {
        l.put_off(&mut b, i * l.off(), *adr);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_header_is_what_libgdbm_writes() {
        let h = Header::new(Layout::NEW, 4096);
        assert_eq!((h.dir_size, h.dir_bits, h.bucket_elems, h.avail_size), (4096, 9, 166, 252));
        let again = Header::parse(&h.to_bytes(), 3 * 4096).unwrap();
        assert_eq!(again, h);
    }

    #[test]
    fn magics() {
        assert!(matches!(magic(MAGIC64.to_le_bytes()), Magic::Supported(l) if l.off64 && !l.numsync));
        assert!(matches!(magic(MAGIC64.to_be_bytes()), Magic::Unsupported(_)));
        assert_eq!(magic(*b"SQLi"), Magic::Foreign);
    }
}
