//! The in-memory backend: Python's `shelve.Shelf(dict)`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use crate::backend::{
    BackendOptions, BatchOp, Capabilities, Flag, KvBackend, KvIter, KvKeys, KvRange, OpenBackend, Probe,
};
use crate::error::{Error, OpenError};
use crate::raw::{Lifecycle, range_is_empty};

/// A backend that keeps everything in a `BTreeMap` and forgets it on close.
///
/// ## Capabilities
/// Ordered keys, metadata and atomic batches; nothing persists, so
/// `persistent` is false and `flush` does nothing.
#[derive(Debug)]
pub struct MemoryBackend {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
    state: Lifecycle,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend { map: BTreeMap::new(), meta: BTreeMap::new(), state: Lifecycle::new(Flag::Create) }
    }
}

impl MemoryBackend {
    /// An empty, writable map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A read-only view of the given entries (for tests of flag `r`).
    pub fn read_only(map: BTreeMap<Vec<u8>, Vec<u8>>) -> Self {
        MemoryBackend { map, meta: BTreeMap::new(), state: Lifecycle::new(Flag::Read) }
    }
}

impl KvBackend for MemoryBackend {
    fn name(&self) -> &'static str {
        <Self as OpenBackend>::NAME
    }

    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.state.live()?;
        Ok(self.map.get(key).cloned())
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        self.state.live()?;
        Ok(self.map.contains_key(key))
    }

    fn get_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, Error> {
        self.state.live()?;
        let Some(v) = self.map.get(key) else { return Ok(false) };
        f(v);
        Ok(true)
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.state.writable("insert")?;
        self.map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.state.writable("remove")?;
        Ok(self.map.remove(key).is_some())
    }

    fn len(&self) -> Result<usize, Error> {
        self.state.live()?;
        Ok(self.map.len())
    }

    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        self.state.live()?;
        Ok(Box::new(self.map.keys().map(|k| Ok(k.clone()))))
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        self.state.live()?;
        Ok(Box::new(self.map.iter().map(|(k, v)| Ok((k.clone(), v.clone())))))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.state.live()
    }

    fn close(&mut self) -> Result<(), Error> {
        self.state.close();
        Ok(())
    }

    fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.state.live()?;
        Ok(self.meta.get(name).cloned())
    }

    fn set_metadata(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.state.writable("set metadata")?;
        self.meta.insert(name.to_owned(), value.to_vec());
        Ok(())
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        // Nothing below can fail once the checks pass, so this is atomic.
        self.state.writable("apply a batch")?;
        for op in ops {
            match *op {
                BatchOp::Insert(k, v) => {
                    self.map.insert(k.to_vec(), v.to_vec());
                }
                BatchOp::Remove(k) => {
                    self.map.remove(k);
                }
            }
        }
        Ok(())
    }

    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        self.state.live()?;
        // BTreeMap::range panics on an inverted or empty-exclusive range;
        // such a range simply holds nothing.
        if range_is_empty(lower, upper) {
            return Ok(Box::new(std::iter::empty()));
        }
        let iter = self.map.range::<[u8], _>((lower, upper)).map(|(k, v)| Ok((k.clone(), v.clone())));
        Ok(Box::new(iter))
    }
}

impl OpenBackend for MemoryBackend {
    const NAME: &'static str = "memory";
    const CAPABILITIES: Capabilities =
        Capabilities { ordered_keys: true, metadata: true, atomic_batch: true, ..Capabilities::NONE };

    /// There is never an existing database, so flags `r` and `w` fail with
    /// [`OpenError::NotFound`] (as `dbm.open` does on a missing file).
    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        match options.flag {
            Flag::Read | Flag::Write => {
                Err(OpenError::NotFound { path: path.to_owned(), flag: options.flag.as_char() })
            }
            Flag::Create | Flag::New => Ok(Self::new()),
        }
    }

    /// A memory database is never on disk.
    fn probe(_path: &Path) -> Probe {
        Probe::Absent
    }
}
