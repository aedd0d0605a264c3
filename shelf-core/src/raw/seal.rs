//! Value checksums, for engines whose stored format is shelf's own.

/// Bytes [`seal`] adds to a value.
pub const SEAL_LEN: usize = 4;

/// The checksum of an entry: CRC-32 (the IEEE polynomial of zlib, computed
/// with `crc32fast`, SIMD where the CPU has it) over the key's length
/// (eight little-endian bytes), the key and the value. The length keeps
/// `("ab", "c")` and `("a", "bc")` apart.
pub fn checksum(key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(value);
    h.finalize()
}

/// Appends `value` and its [`checksum`] (four little-endian bytes) to `out`:
/// the stored form of an entry whose engine does not check values itself.
pub fn seal_into(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.reserve(value.len() + SEAL_LEN);
    out.extend_from_slice(value);
    out.extend_from_slice(&checksum(key, value).to_le_bytes());
}

/// `value` followed by its checksum (see [`seal_into`]).
pub fn seal(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + SEAL_LEN);
    seal_into(key, value, &mut out);
    out
}

/// The value inside a stored form written by [`seal`], when its checksum
/// matches `key` and the value; `None` when the bytes were damaged (or
/// belong to another key).
pub fn unseal<'a>(key: &[u8], stored: &'a [u8]) -> Option<&'a [u8]> {
    let split = stored.len().checked_sub(SEAL_LEN)?;
    let (value, sum) = stored.split_at(split);
    let sum = u32::from_le_bytes(sum.try_into().ok()?);
    (checksum(key, value) == sum).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_detect_every_single_byte_change() {
        let stored = seal(b"key", b"value");
        assert_eq!(unseal(b"key", &stored), Some(&b"value"[..]));
        assert_eq!(unseal(b"kex", &stored), None);
        for i in 0..stored.len() {
            for bit in 0..8 {
                let mut s = stored.clone();
                s[i] ^= 1 << bit;
                assert_eq!(unseal(b"key", &s), None, "byte {i} bit {bit}");
            }
        }
        assert_eq!(unseal(b"k", b"abc"), None, "shorter than a seal");
        assert_eq!(unseal(b"", &seal(b"", b"")), Some(&b""[..]));
    }
}
