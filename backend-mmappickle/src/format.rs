//! mmappickle 1.0's file layout (`mmappickle/dict.py`): the header, the
//! entries and the terminator, and the scan that reads them.

use std::collections::HashMap;

use shelf_core::raw::opcodes::{BININT, FRAME, NEWTRUE, POP, SHORT_BINUNICODE};

/// `PROTO 4`, `FRAME 13`, `BININT 1 POP`, `BININT <commit> POP`, `MARK`.
pub(crate) const HEADER_LEN: usize = 24;
/// Where the commit number (`<i4`) lies in the header.
pub(crate) const COMMIT_AT: u64 = 18;
/// `FRAME 2`, `DICT`, `STOP`: what makes `pickle.load` return the dict.
pub(crate) const TERMINATOR: [u8; 11] = [0x95, 2, 0, 0, 0, 0, 0, 0, 0, b'd', b'.'];

/// The header of a new file with commit number `commit`.
pub(crate) fn header(commit: i32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = 0x80;
    h[1] = 4;
    h[2] = FRAME;
    h[3..11].copy_from_slice(&13u64.to_le_bytes());
    h[11] = BININT;
    h[12..16].copy_from_slice(&1i32.to_le_bytes());
    h[16] = POP;
    h[17] = BININT;
    h[18..22].copy_from_slice(&commit.to_le_bytes());
    h[22] = POP;
    h[23] = b'(';
    h
}

/// `_header.is_valid`: why `bytes` (the file's start) is no mmappickle
/// header, or `None` when it is one.
pub(crate) fn header_problem(bytes: &[u8]) -> Option<&'static str> {
    let h = match bytes.get(..HEADER_LEN) {
        Some(h) => h,
        None => return Some("shorter than an mmappickle header"),
    };
    if h[0] != 0x80 || h[1] != 4 {
        return Some("not a pickle of protocol 4");
    }
    if h[2] != FRAME {
        return Some("the pickle does not start with a FRAME");
    }
    if h[3..11] != 13u64.to_le_bytes() {
        return Some("the first FRAME is not 13 bytes long");
    }
    if h[11] != BININT || h[16] != POP {
        return Some("the header has no BININT <version> POP");
    }
    if h[12..16] != 1i32.to_le_bytes() {
        return Some("the header's version is not 1");
    }
    if h[17] != BININT || h[22] != POP {
        return Some("the header has no BININT <commit_number> POP");
    }
    if h[23] != b'(' {
        return Some("the header does not end with a MARK");
    }
    None
}

/// The commit number in a valid header.
pub(crate) fn commit_of(header: &[u8]) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&header[18..22]);
    i32::from_le_bytes(b)
}

/// A key's bytes as stored (`SHORT_BINUNICODE`, at most 255 bytes): UTF-8
/// as is; other bytes as Python's `surrogateescape` would decode them
/// (each byte that is no UTF-8 becomes U+DC80..U+DCFF), written with
/// `surrogatepass` as mmappickle writes keys.
pub(crate) fn encode_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len());
    for chunk in key.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        for b in chunk.invalid() {
            let cp = 0xdc00u32 + u32::from(*b);
            out.extend_from_slice(&[
                0xe0 | (cp >> 12) as u8,
                0x80 | ((cp >> 6) & 0x3f) as u8,
                0x80 | (cp & 0x3f) as u8,
            ]);
        }
    }
    out
}

/// The key bytes a stored key stands for (the inverse of [`encode_key`]);
/// `None` for bytes that are neither UTF-8 nor escapes.
pub(crate) fn decode_key(stored: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(stored.len());
    let mut i = 0;
    while i < stored.len() {
        let rest = &stored[i..];
        if rest.len() >= 3 && rest[0] == 0xed && (0xb2..=0xb3).contains(&rest[1]) && (rest[2] & 0xc0) == 0x80
        {
            let cp = ((u32::from(rest[0]) & 0x0f) << 12)
                | ((u32::from(rest[1]) & 0x3f) << 6)
                | (u32::from(rest[2]) & 0x3f);
            if (0xdc80..=0xdcff).contains(&cp) {
                out.push((cp - 0xdc00) as u8);
                i += 3;
                continue;
            }
        }
        let valid_to = match std::str::from_utf8(rest) {
            Ok(_) => rest.len(),
            Err(e) if e.valid_up_to() > 0 => e.valid_up_to(),
            Err(_) => return None,
        };
        // Copy valid UTF-8 up to the next escape (which from_utf8 refuses).
        out.extend_from_slice(&rest[..valid_to]);
        i += valid_to;
    }
    // An escape must stand for a byte that is no UTF-8 where it is: else
    // two stored keys would stand for one key.
    (encode_key(&out) == stored).then_some(out)
}

/// An entry's bytes around `data_len` bytes of data: the frame and key
/// before, the max memo index and valid flag after.
pub(crate) fn entry_parts(stored_key: &[u8], data_len: usize, memo_max: i32) -> (Vec<u8>, [u8; 8]) {
    let frame_len = (2 + stored_key.len() + data_len + 8) as u64;
    let mut head = Vec::with_capacity(11 + stored_key.len());
    head.push(FRAME);
    head.extend_from_slice(&frame_len.to_le_bytes());
    head.push(SHORT_BINUNICODE);
    head.push(stored_key.len() as u8);
    head.extend_from_slice(stored_key);
    let mut tail = [BININT, 0, 0, 0, 0, POP, NEWTRUE, POP];
    tail[1..5].copy_from_slice(&memo_max.to_le_bytes());
    (head, tail)
}

/// An entry's bytes: frame, key, `data`, max memo index, valid flag.
#[cfg(test)]
pub(crate) fn entry(stored_key: &[u8], data: &[u8], memo_max: i32) -> Vec<u8> {
    let (head, tail) = entry_parts(stored_key, data.len(), memo_max);
    [&head[..], data, &tail].concat()
}

/// Where one entry lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The entry's first byte (its `FRAME`).
    pub(crate) offset: u64,
    /// The data: from here...
    pub(crate) data_start: u64,
    /// ...to here.
    pub(crate) data_end: u64,
}

impl Entry {
    /// The flag byte (`NEWTRUE` valid, `POP` deleted).
    pub(crate) fn flag_at(&self) -> u64 {
        self.data_end + 6
    }
    /// One past the entry's last byte.
    pub(crate) fn end(&self) -> u64 {
        self.data_end + 8
    }
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tail {
    /// At the terminator, the file's last bytes.
    Clean,
    /// At an entry or terminator cut short by the end of the file: a torn
    /// append, cut back here by a writer (as `fsck` would).
    Torn,
    /// At bytes that are no entry: damage, with its description.
    Damaged(String),
}

/// What a scan of a whole file found.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    /// The live entries by key (the last valid entry of a key wins, as in
    /// mmapdict's `_kv`).
    pub(crate) live: HashMap<Vec<u8>, Entry>,
    /// Every entry's key, valid or not, in file order (for `check`).
    pub(crate) all: Vec<(Vec<u8>, Entry, bool)>,
    /// The largest max memo index of any entry (mmapdict starts the next
    /// value's memo there, and at least at 1).
    pub(crate) memo_max: i32,
    /// Where the scan stopped: the terminator's offset when clean.
    pub(crate) end: u64,
    /// Bytes of deleted entries (what `vacuum` gives back).
    pub(crate) dead_bytes: u64,
    /// How the scan ended.
    pub(crate) tail: Tail,
}

/// Reads every entry of `file` (the whole file's bytes; its header was
/// validated).
pub(crate) fn scan(file: &[u8]) -> Scan {
    let mut s = Scan {
        live: HashMap::new(),
        all: Vec::new(),
        memo_max: 1,
        end: HEADER_LEN as u64,
        dead_bytes: 0,
        tail: Tail::Clean,
    };
    let len = file.len();
    let mut pos = HEADER_LEN;
    loop {
        s.end = pos as u64;
        let rest = &file[pos..];
        if rest == TERMINATOR {
            return s;
        }
        if rest.len() < 11 {
            s.tail = if TERMINATOR.starts_with(rest) || rest.first().is_none_or(|b| *b == FRAME) {
                Tail::Torn
            } else {
                Tail::Damaged(format!("stray bytes at offset {pos}"))
            };
            return s;
        }
        if rest[0] != FRAME {
            s.tail = Tail::Damaged(format!("no FRAME at offset {pos}"));
            return s;
        }
        let frame_len = u64::from_le_bytes(rest[1..9].try_into().unwrap_or([0xff; 8]));
        let end = (pos as u64 + 9).checked_add(frame_len);
        let Some(end) = end.filter(|e| *e <= len as u64) else {
            // A frame running past the end of the file: a torn append.
            s.tail = Tail::Torn;
            return s;
        };
        let end = end as usize;
        if frame_len == 2 && rest[9] == b'd' {
            s.tail = Tail::Damaged(format!("a terminator at offset {pos} with {} bytes after it", len - end));
            return s;
        }
        if rest[9] != SHORT_BINUNICODE {
            s.tail = Tail::Damaged(format!("an entry at offset {pos} does not start with its key"));
            return s;
        }
        let key_len = usize::from(rest[10]);
        if (frame_len as usize) < 2 + key_len + 8 {
            s.tail = Tail::Damaged(format!("the entry at offset {pos} is shorter than its key"));
            return s;
        }
        let data_start = pos + 11 + key_len;
        let data_end = end - 8;
        let t = &file[data_end..end];
        if t[0] != BININT || t[5] != POP || !(t[6] == NEWTRUE || t[6] == POP) || t[7] != POP {
            s.tail =
                Tail::Damaged(format!("the entry at offset {pos} does not end with its memo index and flag"));
            return s;
        }
        let Some(key) = decode_key(&file[pos + 11..data_start]) else {
            s.tail = Tail::Damaged(format!("the key of the entry at offset {pos} is not UTF-8"));
            return s;
        };
        let memo = i32::from_le_bytes(t[1..5].try_into().unwrap_or([0; 4]));
        s.memo_max = s.memo_max.max(memo);
        let e = Entry { offset: pos as u64, data_start: data_start as u64, data_end: data_end as u64 };
        let valid = t[6] == NEWTRUE;
        if valid {
            if let Some(old) = s.live.insert(key.clone(), e) {
                // Two valid entries for one key: an overwrite cut short
                // between its append and the old entry's flag. The later
                // one is the value (mmapdict reads it too); the earlier
                // is space to give back.
                s.dead_bytes += old.end() - old.offset;
            }
        } else {
            s.dead_bytes += e.end() - e.offset;
        }
        s.all.push((key, e, valid));
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_surrogate_escapes() {
        for k in [&b""[..], b"a", b"\x00\xff binary \x7f\xad", "é☃日本".as_bytes(), b"\xed\xb2\x80"] {
            let s = encode_key(k);
            assert!(std::str::from_utf8(k).is_err() || s == k);
            assert_eq!(decode_key(&s).as_deref(), Some(k), "{k:?}");
        }
    }

    #[test]
    fn a_new_file_is_a_valid_header_and_terminator() {
        let mut f = header(0).to_vec();
        assert_eq!(header_problem(&f), None);
        f.extend_from_slice(&TERMINATOR);
        assert_eq!(scan(&f).tail, Tail::Clean);
        f.truncate(HEADER_LEN);
        f.extend_from_slice(&entry(b"k", b"K\x01", 1));
        f.extend_from_slice(&TERMINATOR);
        let s = scan(&f);
        assert_eq!((s.tail, s.live.len()), (Tail::Clean, 1));
        f.truncate(f.len() - 14);
        assert_eq!(scan(&f).tail, Tail::Torn);
    }
}
