//! BsdDbShelf's cursor: walking keys in order, on backends with ordered
//! keys.

use std::ops::Bound;

use serde::de::DeserializeOwned;

use super::Shelf;
use crate::backend::KvBackend;
use crate::error::Error;

impl<B: KvBackend> Shelf<B> {
    /// Walks keys in order from the entry matching `lower`, forwards or
    /// backwards, for the cursor methods.
    fn ordered_entry<T: DeserializeOwned>(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        from_back: bool,
    ) -> Result<Option<(Vec<u8>, T)>, Error> {
        let mut range = self.backend()?.range(lower, upper)?;
        let item = if from_back { range.next_back() } else { range.next() };
        item.transpose()?.map(|pair| self.decode_pair(pair)).transpose()
    }

    /// BsdDbShelf's `first()`: the smallest key and its value. Needs
    /// ordered keys.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on backends without ordered keys.
    pub fn first<T: DeserializeOwned>(&self) -> Result<Option<(Vec<u8>, T)>, Error> {
        self.ordered_entry(Bound::Unbounded, Bound::Unbounded, false)
    }

    /// BsdDbShelf's `last()`: the largest key and its value.
    ///
    /// # Errors
    /// As [`first`](Self::first).
    pub fn last<T: DeserializeOwned>(&self) -> Result<Option<(Vec<u8>, T)>, Error> {
        self.ordered_entry(Bound::Unbounded, Bound::Unbounded, true)
    }

    /// BsdDbShelf's `next()` from `key`: the first entry after it.
    ///
    /// # Errors
    /// As [`first`](Self::first).
    pub fn next_after<T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<(Vec<u8>, T)>, Error> {
        self.ordered_entry(Bound::Excluded(key.as_ref()), Bound::Unbounded, false)
    }

    /// BsdDbShelf's `previous()` from `key`: the last entry before it.
    ///
    /// # Errors
    /// As [`first`](Self::first).
    pub fn previous<T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<(Vec<u8>, T)>, Error> {
        self.ordered_entry(Bound::Unbounded, Bound::Excluded(key.as_ref()), true)
    }

    /// BsdDbShelf's `set_location(key)`: the first entry whose key is `>=
    /// key` (CPython raises `KeyError` past the end; this returns `None`).
    ///
    /// # Errors
    /// As [`first`](Self::first).
    pub fn set_location<T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<(Vec<u8>, T)>, Error> {
        self.ordered_entry(Bound::Included(key.as_ref()), Bound::Unbounded, false)
    }

    /// Entries whose keys lie within the bounds, in key order, decoded.
    ///
    /// # Errors
    /// As [`first`](Self::first); decode errors per item.
    pub fn range<T: DeserializeOwned>(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, T)>, Error> {
        self.backend()?.range(lower, upper)?.map(|item| self.decode_pair(item?)).collect()
    }

    /// Entries whose keys start with `prefix`, in key order, decoded.
    ///
    /// # Errors
    /// As [`range`](Self::range).
    pub fn prefix<T: DeserializeOwned>(&self, prefix: impl AsRef<[u8]>) -> Result<Vec<(Vec<u8>, T)>, Error> {
        let prefix = prefix.as_ref();
        let upper = prefix_successor(prefix);
        let upper_bound = match &upper {
            Some(u) => Bound::Excluded(u.as_slice()),
            None => Bound::Unbounded,
        };
        self.range(Bound::Included(prefix), upper_bound)
    }
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` when there is none (the prefix is empty or all `0xff`).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut up = prefix.to_vec();
    while let Some(last) = up.pop() {
        if last < 0xff {
            up.push(last + 1);
            return Some(up);
        }
    }
    None
}
