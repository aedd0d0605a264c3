//! Listings: every entry in GDBM's order (`gdbm_firstkey` /
//! `gdbm_nextkey`: the directory's buckets, each in slot order), streamed
//! under the engine's shared lock.

use std::sync::RwLockReadGuard;

use shelf_core::Error;

use crate::engine::Engine;
use crate::error::GnuError;
use crate::format::Element;

/// What a listing reads of each element (its key, or key and value).
pub(crate) type ReadElement<T> = fn(&Engine, &Element) -> Result<T, GnuError>;

/// A walk over every element, holding the engine's shared lock until it
/// is dropped. Buckets are read one at a time (their addresses are taken
/// at the start), so memory stays at one bucket's elements.
pub(crate) struct Listing<'a, T> {
    engine: RwLockReadGuard<'a, Engine>,
    buckets: std::vec::IntoIter<u64>,
    elements: std::vec::IntoIter<Element>,
    read: ReadElement<T>,
    failed: bool,
}

impl<'a, T> Listing<'a, T> {
    /// A walk over the engine's elements, reading each with `read`.
    pub(crate) fn new(engine: RwLockReadGuard<'a, Engine>, read: ReadElement<T>) -> Self {
        let buckets = engine.bucket_order().into_iter();
        Listing { engine, buckets, elements: Vec::new().into_iter(), read, failed: false }
    }
}

impl<T> Iterator for Listing<'_, T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(e) = self.elements.next() {
                return Some((self.read)(&self.engine, &e).map_err(Error::from));
            }
            let adr = self.buckets.next()?;
            match self.engine.elements(adr) {
                Ok(elements) => self.elements = elements.into_iter(),
                Err(e) => {
                    // A bucket that cannot be read ends the listing with
                    // its error, never a silently shorter list.
                    self.failed = true;
                    return Some(Err(Error::from(e)));
                }
            }
        }
    }
}

/// The key of an element.
pub(crate) fn key_of(engine: &Engine, e: &Element) -> Result<Vec<u8>, GnuError> {
    engine.read_at(e.ptr, e.key_size as usize)
}

/// The key and value of an element.
pub(crate) fn record_of(engine: &Engine, e: &Element) -> Result<(Vec<u8>, Vec<u8>), GnuError> {
    engine.record_of(e)
}
