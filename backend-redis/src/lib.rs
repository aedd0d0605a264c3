//! The `redis` backend of shelf: a shelf on a Redis server or a Redis
//! Cluster, shared by every process on every machine that can reach it.
//!
//! Opened by URL: `redis://[user:password@]host[:port][/db][?options]`
//! (`rediss://` is parsed but needs a TLS build of the `redis` crate,
//! which this one is not). Options:
//! - `namespace=NAME` (default `default`): shelves on one server or
//!   cluster are isolated by namespace;
//! - `timeout=SECONDS` (default 3): every connect, reply and `WAIT` is
//!   bounded by it;
//! - `replicas=N` (or `wait=N`): a sync waits with `WAIT` until N replicas
//!   have every write, and fails when they do not within the timeout.
//!
//! One URL form serves a standalone server and a cluster: the backend asks
//! the node it is given (`INFO cluster`) and, when `cluster_enabled:1`,
//! discovers the rest of the cluster from it.
//!
//! ## Capabilities
//! persistent, metadata, multi_process (any number of clients on any
//! number of machines), commit_number (one counter, bumped by every sync
//! of any client that wrote). Not ordered_keys (hashes have no order), not
//! compact or check (the server's business). Not atomic_batch: on a
//! standalone server a sync (with the batches since the last one) is one
//! `MULTI`/`EXEC` and so is all-or-nothing, but on a cluster the writes go
//! to several nodes and a sync can be applied on some and not others.
//!
//! ## Layout
//! See [`layout`](crate::layout): 64 hashes (`shelf:{ns/I}`) hold the
//! entries, each in its own hash slot, so in a cluster a shelf's keys land
//! on every master; `len` sums their `HLEN` in one pipelined round trip per
//! node; `keys` and `iter` walk them with `HSCAN` (bounded memory: one
//! page, plus one bucket's keys to drop the duplicates `HSCAN` may give).
//! Metadata and the commit counter are separate keys.
//!
//! ## Durability
//! Writes are buffered in the handle (read-your-writes) and sent pipelined
//! at [`flush`](KvBackend::flush), which returns when the server (every
//! node concerned) acknowledged them; with `replicas=N`, when N replicas
//! also have them. What survives a server crash beyond that is the
//! server's configuration: with `appendonly yes` and `appendfsync always`
//! an acknowledged write is on disk; with `appendfsync everysec` (Redis's
//! default when AOF is on) up to a second can be lost; with AOF off only
//! what the last RDB snapshot holds survives a restart.
//! [`RedisBackend::durability`] reads the server's settings and says which.
//! Writes may reach the server before a sync when more than
//! 50,000 are pending (bounded memory).

mod conn;
pub mod layout;
mod url;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use redis::{Cmd, Value};
use shelf_core::raw::{BackendOptions, Lifecycle, OpenBackend, Probe};
use shelf_core::{BatchOp, Capabilities, Error, Flag, KvBackend, KvIter, KvKeys, KvPair, OpenError};

use conn::{Link, bad_reply};
pub use url::{DEFAULT_NAMESPACE, DEFAULT_TIMEOUT, RedisUrl, SCHEMES, UrlError, redact};

/// The registry name.
pub const NAME: &str = "redis";

/// Pending writes beyond which they are sent before a sync, so an
/// unsynced load does not hold everything in memory.
const PENDING_LIMIT: usize = 50_000;

/// Fields per HSET/HDEL/HMGET command, so no one command is huge.
const CHUNK: usize = 1000;

/// Keys per HSCAN page.
const PAGE: usize = 1000;

/// A pending insert, borrowed.
type Pair<'a> = (&'a [u8], &'a [u8]);

struct State {
    link: Link,
    /// Unsent writes: `Some(value)` to insert, `None` to remove.
    pending: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Writes were sent since the last sync (the commit counter is due).
    sent: bool,
}

/// A shelf backend on Redis or Redis Cluster (see the crate docs).
pub struct RedisBackend {
    state: RefCell<State>,
    life: Lifecycle,
    namespace: String,
    buckets: u32,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend").field("url", &self.state.borrow().link.url).finish_non_exhaustive()
    }
}

/// Whether a shelf is at `url`: asks the server (within the URL's
/// timeout) whether the namespace holds one.
///
/// # Errors
/// A URL that does not parse, a server that does not answer.
pub fn probe_url(url: &str) -> Result<Probe, OpenError> {
    let url = parse(url)?;
    let mut link = Link::open(url.clone())?;
    let exists: bool =
        link.query("probe", None, redis::cmd("EXISTS").arg(layout::meta_key(&url.namespace))).map_err(
            |e| OpenError::Backend { backend: NAME, path: url.to_string().into(), source: Box::new(e) },
        )?;
    Ok(if exists { Probe::Mine } else { Probe::Absent })
}

fn parse(text: &str) -> Result<RedisUrl, OpenError> {
    RedisUrl::parse(text).map_err(|e| OpenError::Backend {
        backend: NAME,
        path: redact(text).into(),
        source: Box::new(e),
    })
}

fn location_text(path: &Path) -> Result<&str, OpenError> {
    path.to_str().ok_or_else(|| OpenError::Backend {
        backend: NAME,
        path: path.to_owned(),
        source: "a redis location is a redis:// URL, not a path".into(),
    })
}

impl RedisBackend {
    /// Opens the shelf at `url` (see the crate docs for its form).
    ///
    /// # Errors
    /// A bad URL, a server that does not answer within the timeout, a
    /// failed authentication, [`OpenError::NotFound`] for flags `r`/`w`
    /// where the namespace holds no shelf, [`OpenError::Corrupted`] for a
    /// metadata hash of another format.
    pub fn open_url(url: &str, options: &BackendOptions) -> Result<Self, OpenError> {
        let url = parse(url)?;
        let shown = url.to_string();
        let ns = url.namespace.clone();
        let mut link = Link::open(url)?;
        let wrap =
            |e: Error| OpenError::Backend { backend: NAME, path: shown.clone().into(), source: Box::new(e) };
        let meta = layout::meta_key(&ns);
        let stored: HashMap<String, String> =
            link.query("read the metadata", None, redis::cmd("HGETALL").arg(&meta)).map_err(wrap)?;
        if stored.is_empty() && !options.flag.creates() {
            return Err(OpenError::NotFound { path: shown.into(), flag: options.flag.as_char() });
        }
        let mut buckets = layout::BUCKETS;
        if !stored.is_empty() {
            if stored.get("format").map(String::as_str) != Some(layout::FORMAT) {
                return Err(OpenError::Corrupted {
                    path: shown.into(),
                    detail: format!("{meta} is not a {} metadata hash", layout::FORMAT),
                });
            }
            buckets = match stored.get("buckets").and_then(|b| b.parse().ok()) {
                Some(b) if b > 0 => b,
                _ => {
                    return Err(OpenError::Corrupted {
                        path: shown.into(),
                        detail: format!("{meta} has no valid bucket count"),
                    });
                }
            };
        }
        if options.flag == Flag::New {
            let dels: Vec<Cmd> = (0..buckets)
                .map(|i| {
                    let mut c = redis::cmd("DEL");
                    c.arg(layout::bucket_key(&ns, i));
                    c
                })
                .chain(std::iter::once({
                    let mut c = redis::cmd("DEL");
                    c.arg(&meta);
                    c
                }))
                .collect();
            link.pipeline("empty the shelf", &dels, false).map_err(wrap)?;
            buckets = layout::BUCKETS;
        }
        if stored.is_empty() || options.flag == Flag::New {
            link.query::<()>(
                "create the shelf",
                None,
                redis::cmd("HSET").arg(&meta).arg("format").arg(layout::FORMAT).arg("buckets").arg(buckets),
            )
            .map_err(wrap)?;
            link.query::<i64>(
                "bump the commit number",
                None,
                redis::cmd("INCR").arg(layout::commit_key(&ns)),
            )
            .map_err(wrap)?;
        }
        Ok(RedisBackend {
            state: RefCell::new(State { link, pending: HashMap::new(), sent: false }),
            life: Lifecycle::new(options.flag),
            namespace: ns,
            buckets,
        })
    }

    /// Whether the handle is connected to a cluster.
    pub fn is_cluster(&self) -> bool {
        self.state.borrow().link.is_cluster()
    }

    /// The URL, without credentials.
    pub fn location(&self) -> String {
        self.state.borrow().link.url.to_string()
    }

    /// The server keys that hold this shelf's entries (for tools and tests
    /// that look at where the data lives).
    pub fn bucket_keys(&self) -> Vec<String> {
        (0..self.buckets).map(|i| layout::bucket_key(&self.namespace, i)).collect()
    }

    /// What a sync guarantees on this server, from its `appendonly` and
    /// `appendfsync` settings (on a cluster, those of the node in the URL).
    ///
    /// # Errors
    /// A server that does not answer.
    pub fn durability(&self) -> Result<String, Error> {
        let mut st = self.state.borrow_mut();
        let info: String = st.link.query("read INFO", None, redis::cmd("INFO").arg("persistence"))?;
        let aof = info.lines().any(|l| l.trim() == "aof_enabled:1");
        let replicas = st.link.url.replicas;
        let fsync: Vec<String> = match &st.link.is_cluster() {
            // CONFIG is not routable in a cluster; INFO said enough.
            true => Vec::new(),
            false => {
                st.link.query("read CONFIG", None, redis::cmd("CONFIG").arg("GET").arg("appendfsync"))?
            }
        };
        let mode = fsync.get(1).map_or("unknown", String::as_str);
        let what = match (aof, mode) {
            (true, "always") => "a synced write is on the server's disk (appendonly yes, appendfsync always)".to_owned(),
            (true, m) => format!("a synced write is in the server's memory and its AOF (appendfsync {m}): a server crash may lose up to a second of writes"),
            (false, _) => "a synced write is in the server's memory only (appendonly no): a server restart keeps only what the last RDB snapshot holds".to_owned(),
        };
        Ok(if replicas > 0 { format!("{what}; and on {replicas} replica(s) (WAIT)") } else { what })
    }

    /// The values of `keys`, in order: one round trip per node (one `HMGET`
    /// per bucket), not one per key.
    ///
    /// # Errors
    /// [`Error::Closed`], a server that does not answer.
    pub fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.life.live()?;
        let mut st = self.state.borrow_mut();
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut by_bucket: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            match st.pending.get(*k) {
                Some(v) => out[i].clone_from(v),
                None => by_bucket.entry(layout::bucket_of(k, self.buckets)).or_default().push(i),
            }
        }
        let mut cmds = Vec::new();
        let mut slots: Vec<&[usize]> = Vec::new();
        for (bucket, idx) in &by_bucket {
            for chunk in idx.chunks(CHUNK) {
                let mut c = redis::cmd("HMGET");
                c.arg(layout::bucket_key(&self.namespace, *bucket));
                for &i in chunk {
                    c.arg(keys[i]);
                }
                cmds.push(c);
                slots.push(chunk);
            }
        }
        let replies = st.link.pipeline("get many keys", &cmds, false)?;
        for (reply, idx) in replies.into_iter().zip(slots) {
            let values: Vec<Option<Vec<u8>>> = redis::from_redis_value(reply)
                .map_err(|e| bad_reply(&st.link.url, "get many keys", e.to_string()))?;
            if values.len() != idx.len() {
                return Err(bad_reply(
                    &st.link.url,
                    "get many keys",
                    format!("HMGET gave {} values for {} keys", values.len(), idx.len()),
                ));
            }
            for (v, &i) in values.into_iter().zip(idx) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Sends the pending writes (without the sync's counter and WAIT).
    fn send(&self, st: &mut State) -> Result<(), Error> {
        if st.pending.is_empty() {
            return Ok(());
        }
        let mut sets: HashMap<u32, Vec<Pair<'_>>> = HashMap::new();
        let mut dels: HashMap<u32, Vec<&[u8]>> = HashMap::new();
        for (k, v) in &st.pending {
            let b = layout::bucket_of(k, self.buckets);
            match v {
                Some(v) => sets.entry(b).or_default().push((k, v)),
                None => dels.entry(b).or_default().push(k),
            }
        }
        let mut cmds = Vec::new();
        for (b, pairs) in &sets {
            for chunk in pairs.chunks(CHUNK) {
                let mut c = redis::cmd("HSET");
                c.arg(layout::bucket_key(&self.namespace, *b));
                for (k, v) in chunk {
                    c.arg(*k).arg(*v);
                }
                cmds.push(c);
            }
        }
        for (b, keys) in &dels {
            for chunk in keys.chunks(CHUNK) {
                let mut c = redis::cmd("HDEL");
                c.arg(layout::bucket_key(&self.namespace, *b));
                for k in chunk {
                    c.arg(*k);
                }
                cmds.push(c);
            }
        }
        let atomic = !st.link.is_cluster();
        st.link.pipeline("write", &cmds, atomic)?;
        st.pending.clear();
        st.sent = true;
        Ok(())
    }

    fn queue(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), Error> {
        let st = self.state.get_mut();
        st.pending.insert(key.to_vec(), value.map(<[u8]>::to_vec));
        if st.pending.len() >= PENDING_LIMIT {
            let mut st = self.state.borrow_mut();
            self.send(&mut st)?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), Error> {
        let mut st = self.state.borrow_mut();
        self.send(&mut st)?;
        if !st.sent {
            return Ok(());
        }
        st.link.query::<i64>(
            "bump the commit number",
            None,
            redis::cmd("INCR").arg(layout::commit_key(&self.namespace)),
        )?;
        st.sent = false;
        let want = st.link.url.replicas;
        if want > 0 {
            let got = st.link.wait_replicas(want)?;
            if got < i64::from(want) {
                return Err(Error::Timeout {
                    what: format!(
                        "{want} replica(s) of redis at {} to acknowledge the sync ({got} did)",
                        st.link.url.host_redacted()
                    ),
                    seconds: st.link.url.timeout.as_secs_f64(),
                });
            }
        }
        Ok(())
    }

    fn server_has(&self, key: &[u8]) -> Result<bool, Error> {
        let bucket = layout::bucket_key(&self.namespace, layout::bucket_of(key, self.buckets));
        self.state.borrow_mut().link.query(
            "check a key",
            Some(key),
            redis::cmd("HEXISTS").arg(bucket).arg(key),
        )
    }

    /// One HSCAN page of bucket `bucket` from `cursor`: the next cursor
    /// (0 at the end) and the pairs.
    fn page(&self, bucket: u32, cursor: u64) -> Result<(u64, Vec<KvPair>), Error> {
        let mut st = self.state.borrow_mut();
        let key = layout::bucket_key(&self.namespace, bucket);
        let reply: Value = st.link.query(
            "scan the keys",
            None,
            redis::cmd("HSCAN").arg(&key).arg(cursor).arg("COUNT").arg(PAGE),
        )?;
        let (next, flat): (String, Vec<Vec<u8>>) = redis::from_redis_value(reply)
            .map_err(|e| bad_reply(&st.link.url, "scan the keys", e.to_string()))?;
        let next = next.parse().map_err(|_| {
            bad_reply(&st.link.url, "scan the keys", format!("HSCAN cursor {next:?} is not a number"))
        })?;
        if flat.len() % 2 != 0 {
            return Err(bad_reply(
                &st.link.url,
                "scan the keys",
                format!("HSCAN of {key} gave an odd count"),
            ));
        }
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok((next, pairs))
    }
}

/// Walks the buckets page by page; drops the duplicates HSCAN may yield
/// (it can, when a hash is resized mid-scan) with the set of one bucket.
struct Scan<'a> {
    backend: &'a RedisBackend,
    bucket: u32,
    cursor: u64,
    started: bool,
    buffer: std::vec::IntoIter<KvPair>,
    seen: HashSet<Vec<u8>>,
    failed: bool,
}

impl Iterator for Scan<'_> {
    type Item = Result<KvPair, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if let Some((k, v)) = self.buffer.next() {
                if self.seen.insert(k.clone()) {
                    return Some(Ok((k, v)));
                }
                continue;
            }
            if self.started && self.cursor == 0 {
                self.bucket += 1;
                self.started = false;
                self.seen.clear();
            }
            if self.bucket >= self.backend.buckets {
                return None;
            }
            match self.backend.page(self.bucket, self.cursor) {
                Ok((next, pairs)) => {
                    self.cursor = next;
                    self.started = true;
                    self.buffer = pairs.into_iter();
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl KvBackend for RedisBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        <Self as OpenBackend>::CAPABILITIES
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.life.live()?;
        if let Some(v) = self.state.borrow().pending.get(key) {
            return Ok(v.clone());
        }
        let bucket = layout::bucket_key(&self.namespace, layout::bucket_of(key, self.buckets));
        self.state.borrow_mut().link.query("get", Some(key), redis::cmd("HGET").arg(bucket).arg(key))
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        self.life.live()?;
        if let Some(v) = self.state.borrow().pending.get(key) {
            return Ok(v.is_some());
        }
        self.server_has(key)
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.life.writable("insert")?;
        self.queue(key, Some(value))
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.life.writable("remove")?;
        let present = match self.state.get_mut().pending.get(key) {
            Some(v) => v.is_some(),
            None => self.server_has(key)?,
        };
        if present {
            self.queue(key, None)?;
        }
        Ok(present)
    }

    fn len(&self) -> Result<usize, Error> {
        self.life.live()?;
        let mut st = self.state.borrow_mut();
        self.send(&mut st)?;
        let cmds: Vec<Cmd> = (0..self.buckets)
            .map(|i| {
                let mut c = redis::cmd("HLEN");
                c.arg(layout::bucket_key(&self.namespace, i));
                c
            })
            .collect();
        let replies = st.link.pipeline("count the keys", &cmds, false)?;
        let mut total: usize = 0;
        for r in replies {
            let n: usize = redis::from_redis_value(r)
                .map_err(|e| bad_reply(&st.link.url, "count the keys", e.to_string()))?;
            total = total.saturating_add(n);
        }
        Ok(total)
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        RedisBackend::get_many(self, keys)
    }

    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        Ok(Box::new(self.iter()?.map(|r| r.map(|(k, _)| k))))
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        self.life.live()?;
        self.send(&mut self.state.borrow_mut())?;
        Ok(Box::new(Scan {
            backend: self,
            bucket: 0,
            cursor: 0,
            started: false,
            buffer: Vec::new().into_iter(),
            seen: HashSet::new(),
            failed: false,
        }))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.life.live()?;
        if self.life.is_read_only() {
            return Ok(());
        }
        self.sync()
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.life.is_closed() {
            return Ok(());
        }
        let result = if self.life.is_read_only() { Ok(()) } else { self.sync() };
        self.life.close();
        result
    }

    fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.life.live()?;
        let meta = layout::meta_key(&self.namespace);
        self.state.borrow_mut().link.query(
            "read metadata",
            Some(name.as_bytes()),
            redis::cmd("HGET").arg(meta).arg(layout::meta_field(name)),
        )
    }

    fn set_metadata(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.life.writable("set metadata")?;
        let meta = layout::meta_key(&self.namespace);
        self.state.get_mut().link.query(
            "write metadata",
            Some(name.as_bytes()),
            redis::cmd("HSET").arg(meta).arg(layout::meta_field(name)).arg(value),
        )
    }

    fn apply_batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        self.life.writable("apply a batch")?;
        // Into the pending writes: sent with the next sync, which is one
        // MULTI/EXEC on a standalone server.
        for op in ops {
            match op {
                BatchOp::Insert(k, v) => self.queue(k, Some(v))?,
                BatchOp::Remove(k) => {
                    self.remove(k)?;
                }
            }
        }
        Ok(())
    }

    fn commit_number(&self) -> Result<u64, Error> {
        self.life.live()?;
        let n: Option<u64> = self.state.borrow_mut().link.query(
            "read the commit number",
            None,
            redis::cmd("GET").arg(layout::commit_key(&self.namespace)),
        )?;
        Ok(n.unwrap_or(0))
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        // A dropped handle sends what it holds, as the file backends'
        // drop flushes; an error here has nowhere to go.
        if !self.life.is_closed() && !self.life.is_read_only() {
            let _ = self.sync();
        }
    }
}

impl OpenBackend for RedisBackend {
    const NAME: &'static str = NAME;

    const CAPABILITIES: Capabilities = {
        let mut c = Capabilities::NONE;
        c.persistent = true;
        c.metadata = true;
        c.multi_process = true;
        c.commit_number = true;
        c
    };

    /// `path` is the URL (the registry hands a location over as a path).
    fn open(path: &Path, options: &BackendOptions) -> Result<Self, OpenError> {
        Self::open_url(location_text(path)?, options)
    }

    /// No network here: a path is never a redis database, and a URL is
    /// asked about by [`probe_url`], which can say why it could not.
    fn probe(_path: &Path) -> Probe {
        Probe::Absent
    }

    fn files(_path: &Path) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
}
