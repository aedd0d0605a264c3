//! Where a shelf's entries and metadata live among the server's keys.
//!
//! For namespace `ns`:
//! - `shelf:{ns/I}` for I in `0..BUCKETS`: hashes holding the entries, a
//!   key's bucket chosen by FNV-1a of its bytes. The hash tag `{ns/I}` puts
//!   each bucket in its own slot, so in a cluster a shelf spreads over
//!   every master.
//!   A value is stored as given unless it expires or starts with the byte
//!   0xC1; those carry a header (see `## Expiry` in the crate docs).
//! - `shelf:{ns/I}:exp` for I in `0..BUCKETS`: a sorted set per bucket (same
//!   slot as the bucket) of the bucket's expiring keys, scored by deadline,
//!   absent where none was ever written.
//! - `shelf:{ns}:meta`: a hash of the shelf's metadata (fields `m:NAME`) and
//!   its format (`format`, `buckets`); its presence is what makes the
//!   namespace hold a shelf.
//! - `shelf:{ns}:commit`: the commit counter, INCR'd by every sync.
//!
//! A namespace has no `/`, `{` or `}` (see the URL's rules), so no two
//! namespaces share a key and no user key is a metadata key.

/// How many buckets a shelf's entries are spread over: enough that every
/// master of a cluster of a few dozen gets some, few enough that `len` (one
/// `HLEN` per bucket, pipelined) stays one small round trip per node.
pub(crate) const BUCKETS: u32 = 64;

/// The format written in the metadata hash: values carry a header where
/// they expire or start with 0xC1.
pub(crate) const FORMAT: &str = "shelf-redis-2";

/// The format of shelves made before expiry: every value stored as given
/// (read and written that way; no expiry on them).
pub(crate) const FORMAT_UNTAGGED: &str = "shelf-redis-1";

/// The key of bucket `i`.
pub(crate) fn bucket_key(ns: &str, i: u32) -> String {
    format!("shelf:{{{ns}/{i}}}")
}

/// The deadline index of bucket `i` (in the bucket's slot).
pub(crate) fn index_key(ns: &str, i: u32) -> String {
    format!("shelf:{{{ns}/{i}}}:exp")
}

/// The metadata hash.
pub(crate) fn meta_key(ns: &str) -> String {
    format!("shelf:{{{ns}}}:meta")
}

/// The commit counter.
pub(crate) fn commit_key(ns: &str) -> String {
    format!("shelf:{{{ns}}}:commit")
}

/// The field of metadata `name` in the metadata hash.
pub(crate) fn meta_field(name: &str) -> String {
    format!("m:{name}")
}

/// The bucket of `key`: FNV-1a, stable across versions and machines (the
/// std hasher is neither).
pub(crate) fn bucket_of(key: &[u8], buckets: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    u32::try_from(h % u64::from(buckets.max(1))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_namespaces_are_distinct() {
        assert_eq!(bucket_key("app", 3), "shelf:{app/3}");
        assert_eq!(meta_key("app"), "shelf:{app}:meta");
        assert_ne!(bucket_key("a", 1), meta_key("a/1"));
        assert_eq!(index_key("app", 3), "shelf:{app/3}:exp");
        let spread: std::collections::HashSet<u32> =
            (0..1000u32).map(|i| bucket_of(&i.to_le_bytes(), 64)).collect();
        assert_eq!(spread.len(), 64);
    }
}
