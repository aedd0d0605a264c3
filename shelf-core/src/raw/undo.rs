//! Reading the records of an undo journal: the bytes a commit is about to
//! overwrite in place, saved first so that a crash mid-commit can be rolled
//! back (dumb's and gnu's journals). Each backend keeps its own magic,
//! header and checksum; the spans are read here.

/// Reads a little-endian `u64` from the front of `rest`, advancing it;
/// `None` when fewer than eight bytes are left (a torn journal).
pub fn take_u64(rest: &mut &[u8]) -> Option<u64> {
    let (n, tail) = rest.split_first_chunk::<8>()?;
    *rest = tail;
    Some(u64::from_le_bytes(*n))
}

/// Reads `count` spans, each `position, length, bytes`, from the front of
/// `rest`, advancing it; `None` when the record is torn.
pub fn take_spans(rest: &mut &[u8], count: u64) -> Option<Vec<(u64, Vec<u8>)>> {
    let mut spans = Vec::new();
    for _ in 0..count {
        let pos = take_u64(rest)?;
        let len = usize::try_from(take_u64(rest)?).ok()?;
        if rest.len() < len {
            return None;
        }
        let (data, tail) = rest.split_at(len);
        *rest = tail;
        spans.push((pos, data.to_vec()));
    }
    Some(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_back_and_a_torn_record_is_none() {
        let mut bytes = Vec::new();
        for (pos, data) in [(7u64, &b"abc"[..]), (512, b"")] {
            bytes.extend_from_slice(&pos.to_le_bytes());
            bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
            bytes.extend_from_slice(data);
        }
        let mut rest = &bytes[..];
        assert_eq!(take_spans(&mut rest, 2), Some(vec![(7, b"abc".to_vec()), (512, Vec::new())]));
        assert!(rest.is_empty());
        for cut in 0..bytes.len() {
            let mut rest = &bytes[..cut];
            assert_eq!(take_spans(&mut rest, 2), None, "cut at {cut}");
        }
    }
}
