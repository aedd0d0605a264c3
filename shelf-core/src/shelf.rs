//! [`Shelf`]: Python's `shelve.Shelf` over any [`KvBackend`].

use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{BatchOp, Capabilities, KvBackend};
use crate::error::{Error, OpenError, show_key};
use crate::pickle::PickleOptions;
use crate::protocol::Protocol;

/// The metadata entry that records a shelf's protocol.
mod ordered;
mod transaction;

pub use transaction::Transaction;

const PROTOCOL_META: &str = "protocol";

/// How a [`Shelf`] treats its values, beyond what the backend decides.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ShelfOptions {
    /// The protocol asked for; `None` takes the one the shelf records, else
    /// pickle for Python formats, else [`Protocol::MessagePack`].
    pub protocol: Option<Protocol>,
    /// CPython's `writeback`: values handed out by [`Shelf::get_mut`] are
    /// cached and written back on [`Shelf::sync`] and [`Shelf::close`].
    pub writeback: bool,
    /// The database's path, used in error messages.
    pub path: PathBuf,
    /// The shelf was opened with flag `r`: writes are refused before they
    /// reach the backend, and so is [`Shelf::get_mut`].
    pub read_only: bool,
}

impl ShelfOptions {
    /// Options asking for `protocol`, without writeback.
    pub fn new(protocol: Option<Protocol>) -> Self {
        ShelfOptions { protocol, ..Self::default() }
    }

    /// Turns writeback on or off.
    pub fn writeback(mut self, on: bool) -> Self {
        self.writeback = on;
        self
    }

    /// Marks the shelf read-only (flag `r`).
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// Sets the path shown in error messages.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = path.into();
        self
    }
}

/// A value in the writeback cache, kept as its own type so a shelf can cache
/// values of different types under different keys.
trait Cached: Send + Sync {
    fn encode(&self, protocol: &Protocol, key: &[u8]) -> Result<Vec<u8>, Error>;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Serialize + Any + Send + Sync> Cached for T {
    fn encode(&self, protocol: &Protocol, key: &[u8]) -> Result<Vec<u8>, Error> {
        encode_with(protocol, key, self)
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Encodes the value of `key`, naming both in the error: the one place an
/// [`Error::Encode`] is made.
fn encode_with<T: Serialize + ?Sized>(protocol: &Protocol, key: &[u8], value: &T) -> Result<Vec<u8>, Error> {
    protocol.encode(value).map_err(|source| Error::Encode {
        key: show_key(key),
        protocol: protocol.name(),
        source,
    })
}

/// A stored key as a `String`: the one place an [`Error::KeyNotUtf8`] is
/// made.
fn utf8_key(key: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(key).map_err(|e| Error::KeyNotUtf8 { key: show_key(e.as_bytes()) })
}

/// The largest encode buffer a shelf keeps between inserts.
const SCRATCH_KEPT: usize = 1 << 20;

/// How many stored values [`python_shelf_protocol`] looks at.
const PROTOCOL_SAMPLE: usize = 256;

/// The pickle protocol to write into a Python shelf that records none: the
/// highest version among its first [`PROTOCOL_SAMPLE`] values (CPython 2.7's
/// shelves hold protocol 0, so they get 2, the lowest written, and stay
/// readable there; a 3.8+ shelf holds 4), or the default for an empty one.
/// A value that is no pickle, or a backend that fails to list, changes
/// nothing: reading it will say what is wrong.
fn python_shelf_protocol<B: KvBackend + ?Sized>(backend: &B) -> Protocol {
    let Ok(values) = backend.iter() else { return Protocol::pickle() };
    let highest = values
        .take(PROTOCOL_SAMPLE)
        .filter_map(|item| item.ok().and_then(|(_, v)| Protocol::detect_pickle_version(&v)))
        .max();
    match highest {
        Some(v) => Protocol::Pickle(PickleOptions::default().with_version(v)),
        None => Protocol::pickle(),
    }
}

/// A persistent dictionary of serialized values: Python's `shelve.Shelf`.
///
/// Keys are anything that is `AsRef<[u8]>`: `&str` and `String` for the
/// usual UTF-8 keys (shelve's default `keyencoding`), `&[u8]` and `Vec<u8>`
/// for raw bytes. Values are any serde type; one shelf may hold different
/// types under different keys, and [`Value`](crate::Value) reads any value
/// of a self-describing protocol.
///
/// # Writeback
///
/// As in Python, a value read from a shelf is a copy: mutating it changes
/// nothing stored.
///
/// ```
/// use shelf_core::{MemoryBackend, Protocol, Shelf};
/// let mut s = Shelf::with_backend(MemoryBackend::new(), Protocol::Json)?;
/// s.insert("xs", &vec![1, 2, 3])?;
/// let mut xs: Vec<i32> = s.get("xs")?.unwrap();
/// xs.push(4); // mutates a copy only
/// assert_eq!(s.get::<Vec<i32>>("xs")?.unwrap(), [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// With writeback on, [`get_mut`](Self::get_mut) hands out a cached value
/// that is written back on [`sync`](Self::sync) or [`close`](Self::close),
/// which then empty the cache. Unlike CPython, which re-pickles every value
/// it ever read, only the values handed out mutably are cached and written.
/// The cache holds each such value once, decoded, until the next sync;
/// [`uncache`](Self::uncache) writes entries back early and frees them.
///
/// ```
/// use shelf_core::{MemoryBackend, Shelf, ShelfOptions};
/// let mut s = Shelf::new(MemoryBackend::new(), ShelfOptions::default().writeback(true))?;
/// s.insert("xs", &vec![1, 2, 3])?;
/// s.get_mut::<Vec<i32>>("xs")?.unwrap().push(4);
/// s.sync()?;
/// assert_eq!(s.get::<Vec<i32>>("xs")?.unwrap(), [1, 2, 3, 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Closing
///
/// After [`close`](Self::close) every operation returns [`Error::Closed`]
/// (CPython's `ValueError: invalid operation on closed shelf`); a second
/// `close` or `sync` does nothing. Dropping a shelf closes it, ignoring
/// errors: call `close` to see them.
pub struct Shelf<B: KvBackend = Box<dyn KvBackend>> {
    backend: Option<B>,
    protocol: Protocol,
    writeback: bool,
    read_only: bool,
    cache: HashMap<Vec<u8>, Box<dyn Cached>>,
    path: PathBuf,
    /// The buffer [`insert`](Self::insert) encodes into, kept between
    /// calls so an insert allocates nothing for its bytes.
    scratch: Vec<u8>,
}

impl<B: KvBackend> std::fmt::Debug for Shelf<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shelf")
            .field("backend", &self.backend.as_ref().map(|b| b.name()))
            .field("protocol", &self.protocol)
            .field("writeback", &self.writeback)
            .field("cached", &self.cache.len())
            .field("path", &self.path)
            .finish()
    }
}

impl<B: KvBackend> Shelf<B> {
    /// Wraps an open backend, settling the protocol: the one the shelf
    /// records (asking for another is [`OpenError::ProtocolMismatch`]), else
    /// the one asked for, else pickle for Python formats, else MessagePack. A
    /// writable shelf whose backend keeps metadata records its protocol.
    ///
    /// # Errors
    /// [`OpenError::ProtocolMismatch`], or a backend error reading or
    /// writing the record.
    pub fn new(mut backend: B, options: ShelfOptions) -> Result<Self, OpenError> {
        let caps = backend.capabilities();
        let path = options.path;
        let meta_err =
            |e: Error| OpenError::Backend { backend: "shelf", path: path.clone(), source: Box::new(e) };
        let stored = if caps.metadata { backend.metadata(PROTOCOL_META).map_err(meta_err)? } else { None };
        let protocol = match stored {
            Some(bytes) => {
                let name = String::from_utf8_lossy(&bytes).into_owned();
                let stored = Protocol::from_record(&name).map_err(|_| OpenError::Corrupted {
                    path: path.clone(),
                    detail: format!("unknown protocol {name:?} recorded in the shelf's metadata"),
                })?;
                match options.protocol {
                    Some(asked) if asked.family() != stored.family() => {
                        return Err(OpenError::ProtocolMismatch {
                            path,
                            stored: stored.name().to_owned(),
                            requested: asked.name().to_owned(),
                        });
                    }
                    // bincode's record names the configuration the bytes
                    // were written with: asking for "bincode" must not read
                    // an older varint shelf as fixint.
                    Some(_) if stored.family() == "bincode" => stored,
                    // The record names the family; the options (say, pickle
                    // version 2) come from the caller.
                    Some(asked) => asked,
                    None => stored,
                }
            }
            None => {
                let p = match options.protocol {
                    Some(p) => p,
                    None if caps.python_format => python_shelf_protocol(&backend),
                    None => Protocol::MessagePack,
                };
                if caps.metadata && !options.read_only {
                    match backend.set_metadata(PROTOCOL_META, p.record_name().as_bytes()) {
                        Ok(()) | Err(Error::ReadOnly { .. }) => {}
                        Err(e) => return Err(meta_err(e)),
                    }
                }
                p
            }
        };
        Ok(Shelf {
            backend: Some(backend),
            protocol,
            writeback: options.writeback,
            read_only: options.read_only,
            cache: HashMap::new(),
            path,
            scratch: Vec::new(),
        })
    }

    /// Wraps a backend with the given protocol and no writeback.
    ///
    /// # Errors
    /// As [`Shelf::new`].
    pub fn with_backend(backend: B, protocol: Protocol) -> Result<Self, OpenError> {
        Self::new(backend, ShelfOptions::new(Some(protocol)))
    }

    /// The protocol values are stored with.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether writeback is on.
    pub fn is_writeback(&self) -> bool {
        self.writeback
    }

    /// The path the shelf was opened from (empty for memory).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.backend.is_none()
    }

    /// The backend, for its own operations (compact, check, stats).
    ///
    /// # Errors
    /// [`Error::Closed`] after close.
    pub fn backend(&self) -> Result<&B, Error> {
        self.backend.as_ref().ok_or(Error::Closed)
    }

    /// The backend, mutably.
    ///
    /// # Errors
    /// [`Error::Closed`] after close.
    pub fn backend_mut(&mut self) -> Result<&mut B, Error> {
        self.backend.as_mut().ok_or(Error::Closed)
    }

    /// Runs a write on the backend, naming this shelf's path in a
    /// read-only refusal (backends do not all know their path).
    pub(crate) fn write<R>(&mut self, f: impl FnOnce(&mut B) -> Result<R, Error>) -> Result<R, Error> {
        let backend = self.backend.as_mut().ok_or(Error::Closed)?;
        f(backend).map_err(|e| e.at_path(&self.path))
    }

    /// The backend's capabilities.
    ///
    /// # Errors
    /// [`Error::Closed`] after close.
    pub fn capabilities(&self) -> Result<Capabilities, Error> {
        Ok(self.backend()?.capabilities())
    }

    fn encode<T: Serialize + ?Sized>(&self, key: &[u8], value: &T) -> Result<Vec<u8>, Error> {
        encode_with(&self.protocol, key, value)
    }

    fn decode<T: DeserializeOwned>(&self, key: &[u8], bytes: &[u8]) -> Result<T, Error> {
        self.protocol.decode(bytes).map_err(|source| Error::Decode {
            key: show_key(key),
            protocol: self.protocol.name(),
            source,
        })
    }

    /// Drops `key`'s writeback copy, if any. Checked for emptiness first:
    /// `HashMap::remove` hashes the key (SipHash, about 220 instructions
    /// for a short key) even when the map is empty, as it is on every
    /// write of a shelf without writeback.
    #[inline]
    fn forget_cached(&mut self, key: &[u8]) {
        if !self.cache.is_empty() {
            self.cache.remove(key);
        }
    }

    /// The stored bytes of `key`, the writeback cache first.
    fn current_bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let backend = self.backend()?;
        match self.cache.get(key) {
            Some(cached) => cached.encode(&self.protocol, key).map(Some),
            None => backend.get(key),
        }
    }

    /// `s[key]`: the value stored under `key`, or `None`.
    ///
    /// # Errors
    /// [`Error::Decode`] when the stored value is not a `T`; backend errors.
    pub fn get<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>, Error> {
        let key = key.as_ref();
        let backend = self.backend()?;
        if let Some(cached) = self.cache.get(key) {
            return self.decode(key, &cached.encode(&self.protocol, key)?).map(Some);
        }
        // Decoded straight from the backend's bytes, borrowed where it can
        // lend them: no intermediate copy of the stored value.
        let mut decoded = None;
        backend.get_with(key, &mut |bytes| decoded = Some(self.decode(key, bytes)))?;
        decoded.transpose()
    }

    /// `s.get(key, default)`.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn get_or<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>, default: T) -> Result<T, Error> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// The stored bytes of `key`, undecoded.
    ///
    /// # Errors
    /// Backend errors.
    pub fn get_bytes(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, Error> {
        self.current_bytes(key.as_ref())
    }

    /// The stored bytes of `key` without copying them where the backend can
    /// (mmappickle's memory-mapped values; the dumb backend maps its data
    /// file), undecoded. A value in the writeback cache is encoded afresh.
    ///
    /// # Errors
    /// Backend errors.
    pub fn get_shared(&self, key: impl AsRef<[u8]>) -> Result<Option<crate::SharedBytes>, Error> {
        let key = key.as_ref();
        if self.cache.contains_key(key) {
            return Ok(self.current_bytes(key)?.map(crate::SharedBytes::from));
        }
        self.backend()?.get_shared(key)
    }

    /// A mutable reference to the value of `key`, cached and written back on
    /// [`sync`](Self::sync) or [`close`](Self::close). Needs writeback.
    ///
    /// # Errors
    /// [`Error::WritebackDisabled`] without writeback (the change would be
    /// lost silently, as in Python); [`Error::CacheTypeMismatch`] when the key
    /// is cached as another type; [`Error::ReadOnly`] on a read-only shelf.
    ///
    /// `T: 'static` (unlike every other method) because the cache keeps the
    /// value, as its own type, until the next sync.
    pub fn get_mut<T>(&mut self, key: impl AsRef<[u8]>) -> Result<Option<&mut T>, Error>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let key = key.as_ref();
        self.backend()?;
        if !self.writeback {
            return Err(Error::WritebackDisabled { key: show_key(key) });
        }
        if self.read_only {
            // A change made through the reference could never be saved.
            return Err(Error::ReadOnly { operation: "get_mut", path: self.path.clone() });
        }
        if !self.cache.contains_key(key) {
            let Some(bytes) = self.backend()?.get(key)? else { return Ok(None) };
            let value: T = self.decode(key, &bytes)?;
            self.cache.insert(key.to_vec(), Box::new(value));
        }
        match self.cache.get_mut(key) {
            Some(cached) => match cached.as_any_mut().downcast_mut::<T>() {
                Some(v) => Ok(Some(v)),
                None => Err(Error::CacheTypeMismatch { key: show_key(key) }),
            },
            None => Ok(None),
        }
    }

    /// `s[key] = value`.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::Encode`], backend errors.
    pub fn insert<T: Serialize + ?Sized>(&mut self, key: impl AsRef<[u8]>, value: &T) -> Result<(), Error> {
        let key = key.as_ref();
        let mut bytes = std::mem::take(&mut self.scratch);
        bytes.clear();
        let stored = self
            .protocol
            .encode_into(value, &mut bytes)
            .map_err(|source| Error::Encode { key: show_key(key), protocol: self.protocol.name(), source })
            .and_then(|()| self.write(|b| b.insert(key, &bytes)));
        // Kept for the next insert, unless one huge value grew it.
        if bytes.capacity() <= SCRATCH_KEPT {
            self.scratch = bytes;
        }
        stored?;
        // The cached copy is now stale; the stored value wins.
        self.forget_cached(key);
        Ok(())
    }

    /// Stores `value` under `key` to expire after `ttl`, through the
    /// backend's native expiry (`capabilities().expiry`).
    ///
    /// # Errors
    /// [`Error::Unsupported`] where the backend has no expiry; as
    /// [`insert`](Self::insert) otherwise.
    pub fn insert_with_ttl<T: Serialize + ?Sized>(
        &mut self,
        key: impl AsRef<[u8]>,
        value: &T,
        ttl: std::time::Duration,
    ) -> Result<(), Error> {
        let key = key.as_ref();
        let bytes = self.encode(key, value)?;
        self.write(|b| b.insert_with_ttl(key, &bytes, ttl))?;
        self.forget_cached(key);
        Ok(())
    }

    /// `del s[key]`: removes `key`, returning whether it was present.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] (even when the key is missing, as CPython),
    /// backend errors.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        let key = key.as_ref();
        let present = self.write(|b| b.remove(key))?;
        self.forget_cached(key);
        Ok(present)
    }

    /// `key in s`.
    ///
    /// # Errors
    /// Backend errors.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        self.backend()?.contains(key.as_ref())
    }

    /// `len(s)`.
    ///
    /// # Errors
    /// Backend errors.
    pub fn len(&self) -> Result<usize, Error> {
        self.backend()?.len()
    }

    /// `not s`.
    ///
    /// # Errors
    /// Backend errors.
    pub fn is_empty(&self) -> Result<bool, Error> {
        self.backend()?.is_empty()
    }

    /// `s.keys()`, as strings, lazily: keys stream from the backend (a
    /// million keys, or a remote store, are never all in memory at once).
    /// `shelf.keys()?.collect::<Result<Vec<_>, _>>()` makes Python's
    /// `list(s)`.
    ///
    /// # Errors
    /// [`Error::Closed`]; the iterator yields [`Error::KeyNotUtf8`] for a
    /// key that is not UTF-8 (use [`keys_raw`](Self::keys_raw)) and backend
    /// errors.
    pub fn keys(&self) -> Result<impl Iterator<Item = Result<String, Error>> + '_, Error> {
        Ok(self.keys_raw()?.map(|k| utf8_key(k?)))
    }

    /// Every key as raw bytes, lazily.
    ///
    /// # Errors
    /// [`Error::Closed`]; the iterator yields backend errors.
    pub fn keys_raw(&self) -> Result<crate::KvKeys<'_>, Error> {
        self.backend()?.keys()
    }

    /// `s.items()`: every key with its value decoded as `T`, lazily.
    ///
    /// # Errors
    /// The iterator yields [`Error::KeyNotUtf8`], [`Error::Decode`] or
    /// backend errors per item.
    pub fn items<T: DeserializeOwned>(
        &self,
    ) -> Result<impl Iterator<Item = Result<(String, T), Error>> + '_, Error> {
        Ok(self.items_raw::<T>()?.map(|item| {
            let (k, v) = item?;
            Ok((utf8_key(k)?, v))
        }))
    }

    /// Every raw key with its value decoded as `T`, lazily.
    ///
    /// # Errors
    /// As [`items`](Self::items).
    pub fn items_raw<T: DeserializeOwned>(
        &self,
    ) -> Result<impl Iterator<Item = Result<(Vec<u8>, T), Error>> + '_, Error> {
        let iter = self.backend()?.iter()?;
        Ok(iter.map(move |item| self.decode_pair(item?)))
    }

    /// Decodes a stored pair, letting the writeback cache override it.
    fn decode_pair<T: DeserializeOwned>(&self, (k, v): (Vec<u8>, Vec<u8>)) -> Result<(Vec<u8>, T), Error> {
        let value = if self.cache.contains_key(&k) {
            match self.current_bytes(&k)? {
                Some(bytes) => self.decode(&k, &bytes)?,
                None => self.decode(&k, &v)?,
            }
        } else {
            self.decode(&k, &v)?
        };
        Ok((k, value))
    }

    /// `s.values()`, decoded as `T`, lazily.
    ///
    /// # Errors
    /// As [`items`](Self::items).
    pub fn values<T: DeserializeOwned>(&self) -> Result<impl Iterator<Item = Result<T, Error>> + '_, Error> {
        Ok(self.items_raw::<T>()?.map(|r| r.map(|(_, v)| v)))
    }

    /// Every entry as `(key, value)` with the value as a dynamic
    /// [`Value`](crate::Value), lazily: what `for (k, v) in &shelf` walks
    /// (see [`Iter`]).
    pub fn iter(&self) -> Iter<'_> {
        let walk = self.backend().and_then(|b| b.iter());
        match walk {
            Ok(pairs) => {
                // Each entry keeps its own decode error: the walk goes on.
                let items = pairs.map(move |item| {
                    item.map(|(k, v)| {
                        let value = self.decode_pair::<crate::Value>((k.clone(), v)).map(|(_, v)| v);
                        (k, value)
                    })
                });
                Iter { items: Some(Box::new(items)), failed: None }
            }
            Err(e) => Iter { items: None, failed: Some(e) },
        }
    }

    /// `s.pop(key)`: removes `key` and returns its value.
    ///
    /// # Errors
    /// As [`get`](Self::get) and [`remove`](Self::remove).
    pub fn pop<T: DeserializeOwned>(&mut self, key: impl AsRef<[u8]>) -> Result<Option<T>, Error> {
        let key = key.as_ref();
        let value = self.get(key)?;
        if value.is_some() {
            self.remove(key)?;
        }
        Ok(value)
    }

    /// `s.pop(key, default)`.
    ///
    /// # Errors
    /// As [`pop`](Self::pop).
    pub fn pop_or<T: DeserializeOwned>(&mut self, key: impl AsRef<[u8]>, default: T) -> Result<T, Error> {
        Ok(self.pop(key)?.unwrap_or(default))
    }

    /// `s.popitem()`: removes and returns the first key in iteration order
    /// with its value; `None` when empty (Python raises `KeyError`).
    ///
    /// # Errors
    /// As [`pop`](Self::pop) and [`keys`](Self::keys).
    pub fn pop_item<T: DeserializeOwned>(&mut self) -> Result<Option<(String, T)>, Error> {
        let first = self.backend()?.iter()?.next().transpose()?;
        let Some((key, _)) = first else { return Ok(None) };
        let name = utf8_key(key.clone())?;
        Ok(self.pop(&key)?.map(|v| (name, v)))
    }

    /// `s.setdefault(key, default)`: the value of `key`, first storing
    /// `default` when the key is missing.
    ///
    /// # Errors
    /// As [`get`](Self::get) and [`insert`](Self::insert).
    pub fn set_default<T: Serialize + DeserializeOwned>(
        &mut self,
        key: impl AsRef<[u8]>,
        default: T,
    ) -> Result<T, Error> {
        let key = key.as_ref();
        if let Some(v) = self.get(key)? {
            return Ok(v);
        }
        self.insert(key, &default)?;
        Ok(default)
    }

    /// The values of `keys` decoded as `T`, in order: one call to the
    /// backend ([`KvBackend::get_many`]: one round trip per node for a
    /// network backend, one lock for a file backend).
    ///
    /// # Errors
    /// As [`get`](Self::get), for the first key that fails.
    pub fn get_many<T: DeserializeOwned, K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<T>>, Error> {
        let keys: Vec<&[u8]> = keys.iter().map(AsRef::as_ref).collect();
        let stored = self.backend()?.get_many(&keys)?;
        keys.iter()
            .zip(stored)
            .map(|(key, bytes)| {
                let bytes = match self.cache.get(*key) {
                    Some(cached) => Some(cached.encode(&self.protocol, key)?),
                    None => bytes,
                };
                bytes.map(|b| self.decode(key, &b)).transpose()
            })
            .collect()
    }

    /// Stores every pair in one batch ([`KvBackend::apply_batch`]): all or
    /// nothing where the backend's batches are atomic, one pass over the
    /// backend elsewhere. Every value is encoded before anything is
    /// written, so a value that does not encode stores nothing.
    ///
    /// # Errors
    /// [`Error::Encode`] (nothing stored), [`Error::ReadOnly`], backend
    /// errors.
    pub fn insert_many<K, T, I>(&mut self, pairs: I) -> Result<(), Error>
    where
        K: AsRef<[u8]>,
        T: Serialize,
        I: IntoIterator<Item = (K, T)>,
    {
        let encoded: Vec<(K, Vec<u8>)> = pairs
            .into_iter()
            .map(|(k, v)| {
                let bytes = self.encode(k.as_ref(), &v)?;
                Ok((k, bytes))
            })
            .collect::<Result<_, Error>>()?;
        if encoded.is_empty() {
            return self.backend().map(|_| ());
        }
        let ops: Vec<BatchOp<'_>> = encoded.iter().map(|(k, v)| BatchOp::Insert(k.as_ref(), v)).collect();
        self.write(|b| b.apply_batch(&ops))?;
        for (k, _) in &encoded {
            self.forget_cached(k.as_ref());
        }
        Ok(())
    }

    /// `s.update(pairs)`: Python's name for [`insert_many`](Self::insert_many).
    ///
    /// # Errors
    /// As [`insert_many`](Self::insert_many).
    pub fn update<K, T, I>(&mut self, pairs: I) -> Result<(), Error>
    where
        K: AsRef<[u8]>,
        T: Serialize,
        I: IntoIterator<Item = (K, T)>,
    {
        self.insert_many(pairs)
    }

    /// Removes every key of `keys` in one batch, as
    /// [`insert_many`](Self::insert_many) stores; missing keys are no error.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], backend errors.
    pub fn remove_many<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> Result<(), Error> {
        if keys.is_empty() {
            return self.backend().map(|_| ());
        }
        let ops: Vec<BatchOp<'_>> = keys.iter().map(|k| BatchOp::Remove(k.as_ref())).collect();
        self.write(|b| b.apply_batch(&ops))?;
        for k in keys {
            self.forget_cached(k.as_ref());
        }
        Ok(())
    }

    /// `s.clear()`: removes every key.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] on a non-empty read-only shelf; backend errors.
    pub fn clear(&mut self) -> Result<(), Error> {
        let keys = self.keys_raw()?.collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Ok(());
        }
        let ops: Vec<BatchOp<'_>> = keys.iter().map(|k| BatchOp::Remove(k)).collect();
        self.write(|b| b.apply_batch(&ops))?;
        self.cache.clear();
        Ok(())
    }

    /// Writes cached entries back to the backend without flushing.
    fn write_back(&mut self) -> Result<(), Error> {
        if self.cache.is_empty() {
            return Ok(());
        }
        let protocol = self.protocol;
        let backend = self.backend.as_mut().ok_or(Error::Closed)?;
        for (key, cached) in &self.cache {
            let bytes = cached.encode(&protocol, key)?;
            backend.insert(key, &bytes).map_err(|e| e.at_path(&self.path))?;
        }
        // Only now: if a write failed, the cache still holds every change.
        self.cache.clear();
        Ok(())
    }

    /// `s.sync()`: writes the writeback cache back, empties it, and makes
    /// every write durable (the backend's flush). Does nothing once closed.
    ///
    /// # Errors
    /// Encode and backend errors; the cache is kept when a write fails.
    pub fn sync(&mut self) -> Result<(), Error> {
        if self.backend.is_none() {
            return Ok(());
        }
        self.write_back()?;
        self.backend_mut()?.flush()
    }

    /// Writes back the cached values of `keys` and frees them.
    ///
    /// # Errors
    /// As [`sync`](Self::sync), without the flush.
    pub fn uncache<K: AsRef<[u8]>>(&mut self, keys: impl IntoIterator<Item = K>) -> Result<(), Error> {
        let protocol = self.protocol;
        for key in keys {
            let key = key.as_ref();
            if let Some(cached) = self.cache.get(key) {
                let bytes = cached.encode(&protocol, key)?;
                self.write(|b| b.insert(key, &bytes))?;
                self.cache.remove(key);
            }
        }
        Ok(())
    }

    /// Writes back every cached value and frees the cache.
    ///
    /// # Errors
    /// As [`uncache`](Self::uncache).
    pub fn uncache_all(&mut self) -> Result<(), Error> {
        self.write_back()
    }

    /// How many values the writeback cache holds.
    pub fn cached_len(&self) -> usize {
        self.cache.len()
    }

    /// `s.close()`: syncs, then releases the backend. Later operations return
    /// [`Error::Closed`]; closing again does nothing. As CPython's
    /// `Shelf.close`, the shelf is closed even when the sync fails, and the
    /// first error is returned.
    ///
    /// # Errors
    /// Errors of the final sync or of the backend's close.
    pub fn close(&mut self) -> Result<(), Error> {
        if self.backend.is_none() {
            return Ok(());
        }
        let synced = self.sync();
        self.cache.clear();
        let closed = match self.backend.take() {
            Some(mut backend) => backend.close(),
            None => Ok(()),
        };
        synced.and(closed)
    }
}

/// The iterator of `for (key, value) in &shelf`: every entry with its key as
/// a string and its value as a [`Value`](crate::Value), streamed from the
/// backend.
///
/// A stored entry can fail to read where a `HashMap` entry cannot, so the
/// value is a `Result`: `for (k, v) in &shelf { let v = v?; ... }`. An
/// entry whose value does not decode, or whose key is not UTF-8 (shown
/// lossily, with [`Error::KeyNotUtf8`]), is yielded with its error and the
/// walk goes on; an error of the walk itself (a closed shelf, an I/O error
/// half-way) is yielded once with an empty key, and ends it.
///
/// ```
/// use shelf_core::{MemoryBackend, Protocol, Shelf, Value};
/// let mut s = Shelf::with_backend(MemoryBackend::new(), Protocol::MessagePack)?;
/// s.insert("a", &1)?;
/// for (key, value) in &s {
///     assert_eq!((key.as_str(), value?), ("a", Value::Int(1)));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Iter<'a> {
    items: Option<Entries<'a>>,
    failed: Option<Error>,
}

/// What [`Iter`] walks: each stored entry, its value decoded on its own.
type Entries<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Result<crate::Value, Error>), Error>> + 'a>;

impl std::fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter").field("done", &self.items.is_none()).finish()
    }
}

impl Iterator for Iter<'_> {
    type Item = (String, Result<crate::Value, Error>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.items = None;
            return Some((String::new(), Err(e)));
        }
        match self.items.as_mut()?.next()? {
            Ok((k, v)) => Some(match String::from_utf8(k) {
                Ok(k) => (k, v),
                Err(e) => {
                    let shown = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    (shown, Err(Error::KeyNotUtf8 { key: show_key(e.as_bytes()) }))
                }
            }),
            Err(e) => {
                self.items = None;
                Some((String::new(), Err(e)))
            }
        }
    }
}

impl<'a, B: KvBackend> IntoIterator for &'a Shelf<B> {
    type Item = (String, Result<crate::Value, Error>);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<B: KvBackend> Drop for Shelf<B> {
    fn drop(&mut self) {
        // Best effort, like CPython's `Shelf.__del__`; `close()` reports errors.
        let _ = self.close();
    }
}
