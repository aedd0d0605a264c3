//! Batches and ranges: what a backend without atomic batches or with an
//! engine that panics on empty ranges needs.

use std::ops::Bound;

use crate::backend::{BatchOp, KvBackend};
use crate::error::Error;

/// Applies `ops` in order through `insert` and `remove`: the
/// [`KvBackend::apply_batch`] of a backend whose batches are not atomic.
///
/// # Errors
/// The first failing operation's; those before it stay applied.
pub fn apply_one_by_one<B: KvBackend + ?Sized>(backend: &mut B, ops: &[BatchOp<'_>]) -> Result<(), Error> {
    for op in ops {
        match *op {
            BatchOp::Insert(k, v) => backend.insert(k, v)?,
            BatchOp::Remove(k) => {
                backend.remove(k)?;
            }
        }
    }
    Ok(())
}

/// Whether the bounds describe no key at all (start after end, or equal
/// with either side excluded). `BTreeMap::range` panics on those, and so do
/// some engines, so backends check first.
pub fn range_is_empty(lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
    use Bound::*;
    match (lower, upper) {
        (Included(a), Included(b)) => a > b,
        (Included(a), Excluded(b)) | (Excluded(a), Included(b)) | (Excluded(a), Excluded(b)) => a >= b,
        _ => false,
    }
}

/// Owned copies of borrowed bounds, for iterators that outlive the call.
pub fn owned_bound(b: Bound<&[u8]>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ranges() {
        use Bound::*;
        assert!(range_is_empty(Included(b"b"), Included(b"a")));
        assert!(range_is_empty(Included(b"a"), Excluded(b"a")));
        assert!(!range_is_empty(Included(b"a"), Included(b"a")));
        assert!(!range_is_empty(Unbounded, Excluded(b"a")));
    }
}
