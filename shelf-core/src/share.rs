//! What pickleshare and mmappickle add to shelve, on every shelf: glob
//! keys, `wait_get`, hashed categories, linked namespaces, commit numbers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::KvBackend;
use crate::error::{Error, show_key};
use crate::shelf::Shelf;

/// The bucket of a key in a hashed category: two hex digits, like
/// pickleshare's `gethashfile`, but from a stable hash (32-bit FNV-1a of the
/// key's UTF-8 bytes). pickleshare uses Python's per-process randomized
/// `hash()`, so its `hget` in one process misses what `hset` wrote in
/// another; this one gives the same bucket in every process and run.
pub fn hash_bucket(key: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:02x}", h % 256)
}

/// The bucket `hcompress` merges a category into (pickleshare's name).
const COMPRESSED_BUCKET: &str = "xx";

fn glob_matcher(pattern: &str) -> Result<globset::GlobMatcher, Error> {
    // `literal_separator`: `*` stops at `/`, as pathlib's glob does for
    // pickleshare's `keys(globpat)`; `**` crosses directories.
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::InvalidPattern { pattern: pattern.to_owned(), reason: e.kind().to_string() })
}

impl<B: KvBackend> Shelf<B> {
    /// pickleshare's `keys(globpat)`: the UTF-8 keys matching a glob, where
    /// `*` does not cross `/` and `**` does.
    ///
    /// # Errors
    /// [`Error::InvalidPattern`]; backend errors. Keys that are not UTF-8
    /// never match.
    pub fn keys_matching(&self, pattern: &str) -> Result<Vec<String>, Error> {
        let matcher = glob_matcher(pattern)?;
        let mut matched = Vec::new();
        for key in self.keys_raw()? {
            if let Ok(k) = String::from_utf8(key?)
                && matcher.is_match(&k)
            {
                matched.push(k);
            }
        }
        Ok(matched)
    }

    /// pickleshare's `waitget`: the value of `key` once it exists, polling
    /// with backoff (10 ms doubling to 500 ms) until `timeout`.
    ///
    /// Another process's write is seen as soon as the backend shows it to
    /// this handle: at once on `dir` (one file per key) and on `redb` in
    /// multi-process mode; backends that load their index at open (dumb)
    /// see it after a reopen.
    ///
    /// # Errors
    /// [`Error::Timeout`] naming the key; decode and backend errors.
    pub fn wait_get<T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<T, Error> {
        let key = key.as_ref();
        let start = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(v) = self.get(key)? {
                return Ok(v);
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(Error::Timeout {
                    what: format!("key {:?}", show_key(key)),
                    seconds: waited.as_secs_f64(),
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    fn bucket_key(category: &str, key: &str) -> String {
        format!("{category}/{}", hash_bucket(key))
    }

    /// pickleshare's `hset`: stores `value` under `key` in the hashed
    /// `category`, a dict of many small entries kept in 256 buckets
    /// (`category/00` … `category/ff`), so a category of thousands of
    /// entries is a few hundred keys. A category holds values of one type;
    /// use [`Value`](crate::Value) for mixed types.
    ///
    /// # Errors
    /// Decode errors when the bucket holds another type; backend errors.
    pub fn hset<T>(&mut self, category: &str, key: &str, value: &T) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned + Clone,
    {
        let bucket = Self::bucket_key(category, key);
        let mut entries: BTreeMap<String, T> = self.get(&bucket)?.unwrap_or_default();
        entries.insert(key.to_owned(), value.clone());
        self.insert(&bucket, &entries)
    }

    /// pickleshare's `hget`: the value of `key` in `category`. With
    /// `fast_only` false, a key missing from its bucket is also looked for
    /// in the whole category (it may have been compressed into `xx`).
    ///
    /// # Errors
    /// As [`hset`](Self::hset).
    pub fn hget<T: DeserializeOwned>(
        &self,
        category: &str,
        key: &str,
        fast_only: bool,
    ) -> Result<Option<T>, Error> {
        let bucket = Self::bucket_key(category, key);
        let mut entries: Option<BTreeMap<String, T>> = self.get(&bucket)?;
        if let Some(v) = entries.as_mut().and_then(|e| e.remove(key)) {
            return Ok(Some(v));
        }
        if fast_only {
            return Ok(None);
        }
        Ok(self.hdict::<T>(category)?.remove(key))
    }

    /// pickleshare's `hdict`: every entry of `category`, the compressed
    /// bucket first so later `hset`s win over it.
    ///
    /// # Errors
    /// As [`hset`](Self::hset).
    pub fn hdict<T: DeserializeOwned>(&self, category: &str) -> Result<BTreeMap<String, T>, Error> {
        let mut buckets = self.keys_matching(&format!("{}/*", globset_escape(category)))?;
        buckets.sort();
        if let Some(pos) = buckets.iter().position(|b| b.ends_with(&format!("/{COMPRESSED_BUCKET}"))) {
            let xx = buckets.remove(pos);
            buckets.insert(0, xx);
        }
        let mut all = BTreeMap::new();
        for bucket in buckets {
            let entries: BTreeMap<String, T> = self.get(&bucket)?.unwrap_or_default();
            all.extend(entries);
        }
        Ok(all)
    }

    /// pickleshare's `hcompress`: merges every bucket of `category` into
    /// one (`category/xx`), so `hdict` reads one key. Afterwards `hget` with
    /// `fast_only` misses the compressed entries, as in pickleshare.
    ///
    /// # Errors
    /// As [`hset`](Self::hset).
    pub fn hcompress<T>(&mut self, category: &str) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned,
    {
        let all: BTreeMap<String, T> = self.hdict(category)?;
        let buckets = self.keys_matching(&format!("{}/*", globset_escape(category)))?;
        let xx = format!("{category}/{COMPRESSED_BUCKET}");
        self.insert(&xx, &all)?;
        for bucket in buckets.iter().filter(|b| **b != xx) {
            self.remove(bucket)?;
        }
        Ok(())
    }

    /// pickleshare's `getlink`: a view whose keys are relative to
    /// `prefix` (`link.get("foo")` reads `prefix/foo`).
    pub fn link(&mut self, prefix: &str) -> Link<'_, B> {
        Link { shelf: self, prefix: prefix.trim_end_matches('/').to_owned() }
    }

    /// mmappickle's `commit_number`: a number that grows whenever any process
    /// commits a change, so a process can tell cheaply that its view is
    /// stale.
    ///
    /// # Errors
    /// [`Error::Unsupported`] where the backend has no commit numbers.
    pub fn commit_number(&self) -> Result<u64, Error> {
        self.backend()?.commit_number()
    }
}

/// Escapes glob metacharacters so a category name matches only itself.
fn globset_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\' | '!') {
            out.push('[');
            out.push(c);
            out.push(']');
        } else {
            out.push(c);
        }
    }
    out
}

/// A view of a shelf's keys under a prefix: pickleshare's `PickleShareLink`
/// (`lnk.foo = 2` is `link.insert("foo", &2)`).
#[derive(Debug)]
pub struct Link<'a, B: KvBackend> {
    shelf: &'a mut Shelf<B>,
    prefix: String,
}

impl<B: KvBackend> Link<'_, B> {
    fn full(&self, key: &str) -> String {
        format!("{}/{key}", self.prefix)
    }

    /// The prefix, without a trailing `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `lnk.key`.
    ///
    /// # Errors
    /// As [`Shelf::get`].
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.shelf.get(self.full(key))
    }

    /// `lnk.key = value`.
    ///
    /// # Errors
    /// As [`Shelf::insert`].
    pub fn insert<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        let full = self.full(key);
        self.shelf.insert(full, value)
    }

    /// Removes `prefix/key`.
    ///
    /// # Errors
    /// As [`Shelf::remove`].
    pub fn remove(&mut self, key: &str) -> Result<bool, Error> {
        let full = self.full(key);
        self.shelf.remove(full)
    }

    /// Whether `prefix/key` exists.
    ///
    /// # Errors
    /// As [`Shelf::contains_key`].
    pub fn contains_key(&self, key: &str) -> Result<bool, Error> {
        self.shelf.contains_key(self.full(key))
    }

    /// The keys directly under the prefix, relative to it (what
    /// pickleshare's link `repr` lists).
    ///
    /// # Errors
    /// As [`Shelf::keys_matching`].
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        let start = self.prefix.len() + 1;
        Ok(self
            .shelf
            .keys_matching(&format!("{}/*", globset_escape(&self.prefix)))?
            .into_iter()
            .map(|k| k[start..].to_owned())
            .collect())
    }

    /// A link to a deeper prefix.
    pub fn link(&mut self, sub: &str) -> Link<'_, B> {
        let prefix = self.full(sub.trim_end_matches('/'));
        Link { shelf: self.shelf, prefix }
    }
}
