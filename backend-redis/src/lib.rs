//! The `redis` backend of shelf: a shelf on a Redis server or a Redis
//! Cluster, shared by every process on every machine that can reach it.
//!
//! Opened by URL: `redis://[user:password@]host[:port][/db][?options]`
//! (`rediss://` is parsed but needs a TLS build of the `redis` crate,
//! which this one is not). Options:
//! - `namespace=NAME` (default `default`): shelves on one server or
//!   cluster are isolated by namespace;
//! - `timeout=SECONDS` (default 3): a connect as a whole (handshake and
//!   cluster discovery included), each reply and a `WAIT` are bounded by
//!   it; a pipeline gives up at its first reply that does not come in
//!   time (one timeout, not one per command), and a connection that lost a
//!   reply is replaced before the next operation, so a late reply is never
//!   taken for the answer to another command;
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
//! of any client that wrote), expiry ([`KvBackend::insert_with_ttl`]; see
//! `## Expiry`; not on shelves of the older format `shelf-redis-1`, whose
//! handles say so in `capabilities()`). Not ordered_keys (hashes have no order), not
//! compact or check (the server's business). Not atomic_batch: on a
//! standalone server a sync (with the batches since the last one) is one
//! `MULTI`/`EXEC` and so is all-or-nothing, but on a cluster the writes go
//! to several nodes and a sync can be applied on some and not others.
//!
//! ## Layout
//! See [`layout`]: 64 hashes (`shelf:{ns/I}`) hold the
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
//! [`RedisBackend::durability`] (and so [`KvBackend::stats`], which `shelf
//! info` prints) reads the server's `appendonly`, `appendfsync` and `save`
//! settings and says which, naming the host; `stats` gives no byte count
//! (`None`: the server's memory and files are shared by every namespace).
//! Writes may reach the server before a sync when more than
//! 50,000 are pending (bounded memory).
//!
//! ## Damage
//! Keys of a namespace changed by another client are reported, never
//! guessed at and never overwritten: a bucket or deadline index of the wrong
//! type gives the server's `WRONGTYPE` as an error naming the host; a
//! metadata key that is not a hash, or a hash of another format or bucket
//! count, fails the open with [`OpenError::Corrupted`] or the server's error
//! whatever the flag (flag `n` included: it empties only what it recognises
//! as a shelf); a value whose header no shelf writes is
//! [`Error::Corrupted`] naming the bucket and the key. tests/tests/redis_bad_input.rs
//! holds the table.
//!
//! Redis before 7.4 (7.0 is what CI installs) cannot expire a field of a
//! hash (`HEXPIRE` is 7.4), and an entry in a key of its own would cost
//! `len` a scan and every miss a second lookup. So an expiring entry stays
//! in its bucket hash and carries its deadline:
//! - **The value's header.** A value stored by [`KvBackend::insert_with_ttl`]
//!   is `0xC1 0x01`, the deadline (8 bytes, big-endian ms since the epoch
//!   on the server's clock), then the value. A plain value is stored as
//!   given, unless it starts with 0xC1 (no serializer of shelf writes that
//!   byte first), then as `0xC1 0x00` and the value. Any other header is
//!   damage, reported as [`Error::Corrupted`], never guessed at.
//! - **Reads are exact without a round trip more.** `get`, `get_many`,
//!   `contains`, `keys` and `iter` fetch what they fetched before and drop
//!   a value whose deadline has passed; a plain value costs one byte
//!   compare. The server's clock is estimated once per handle with one
//!   `TIME` (this machine's clock plus the offset, off by at most half a
//!   round trip), and only when the handle first writes or reads an
//!   expiring entry: a shelf that never used a TTL never asks. `contains`
//!   runs a tiny script that answers the value's first 10 bytes, so a large
//!   value does not cross the network to say it exists.
//! - **Expired entries leave the server.** Each bucket has a deadline index
//!   (the sorted set `shelf:{ns/I}:exp`, in the bucket's slot), written in
//!   the same pipeline (on one server, the same `MULTI`) as the entry.
//!   `len` runs, per bucket and in its one pipelined round trip per node, a
//!   script that deletes the bucket's entries whose deadline has passed on
//!   the server's clock (checking each value's own header, so an entry
//!   overwritten since by a plain value or a later deadline stays) and
//!   returns its `HLEN`: the count is exact, and memory is given back at
//!   the latest on the next `len` of any client. Until then an expired
//!   entry takes server memory but is invisible to every reader.
//! - **Costs.** Plain writes: none (no index is touched). An expiring
//!   write: its 10-byte header and one `ZADD` per bucket per sync. `len`:
//!   a script instead of `HLEN` per bucket (same round trips; the script
//!   does one `TIME` and one `ZRANGEBYSCORE` more on the server). Deadlines
//!   are on the clock of one server; clients estimate it, so an entry may
//!   vanish a few ms early or late for a client whose estimate is off, and
//!   on a cluster whose nodes' clocks differ by that much. The deadline
//!   counts from `insert_with_ttl`, not from the sync that sends it.
//! - **On Redis 7.4 and later** `HEXPIRE` on the bucket field would let the
//!   server drop the entry itself; this backend does not use it yet, so
//!   one format serves every server version.

mod conn;
mod durability;
mod expiry;
pub mod layout;
mod read;
mod url;
mod write;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use shelf_core::raw::{BackendOptions, Lifecycle, OpenBackend, Probe};
use shelf_core::{BatchOp, Capabilities, Error, Flag, KvBackend, KvIter, KvKeys, OpenError, StorageStats};

use conn::Link;
pub use url::{DEFAULT_NAMESPACE, DEFAULT_TIMEOUT, RedisUrl, SCHEMES, UrlError, redact};
use write::Pending;

/// The registry name.
pub const NAME: &str = "redis";

/// Pending writes beyond which they are sent before a sync, so an
/// unsynced load does not hold everything in memory.
const PENDING_LIMIT: usize = 50_000;

/// Fields per HSET/HDEL/HMGET command, so no one command is huge.
const CHUNK: usize = 1000;

/// Keys per HSCAN page.
const PAGE: usize = 1000;

/// The connection and what the handle holds for it; behind a mutex so the
/// handle is `Sync` (readers on several threads take turns on the one
/// connection: a network round trip, not a lock, is the cost).
pub(crate) struct State {
    link: Link,
    /// Unsent writes.
    pending: HashMap<Vec<u8>, Pending>,
    /// Writes were sent since the last sync (the commit counter is due).
    sent: bool,
    /// The server's clock minus this machine's, in ms, once measured (the
    /// first time an expiring entry is written or read).
    clock_offset: Option<i64>,
}

impl State {
    /// The server's time now, in ms since the epoch, as this handle
    /// estimates it: this machine's clock plus the offset measured with
    /// one `TIME` (error: half the round trip).
    pub(crate) fn server_now(&mut self) -> Result<u64, Error> {
        let offset = match self.clock_offset {
            Some(o) => o,
            None => {
                let before = expiry::local_ms();
                let t: Vec<String> = self.link.query("read the server's clock", None, &redis::cmd("TIME"))?;
                let after = expiry::local_ms();
                let server = match t.as_slice() {
                    [s, us] => expiry::server_ms(s, us),
                    _ => None,
                }
                .ok_or_else(|| {
                    conn::bad_reply(&self.link.url, "read the server's clock", format!("TIME gave {t:?}"))
                })?;
                let o = server - before / 2 - after / 2;
                self.clock_offset = Some(o);
                o
            }
        };
        Ok(u64::try_from(expiry::local_ms().saturating_add(offset)).unwrap_or(0))
    }
}

/// A shelf backend on Redis or Redis Cluster (see the crate docs).
pub struct RedisBackend {
    state: Mutex<State>,
    life: Lifecycle,
    namespace: String,
    buckets: u32,
    /// Values carry the expiry header (format 2); false on a shelf of the
    /// untagged format 1, which is read and written as it was made.
    tagged: bool,
    /// The URL without credentials (for messages, without the lock).
    shown: String,
}

// The lead's `KvBackend: Send + Sync` must compile at once.
const _: fn() = || {
    fn s<T: Send + Sync>() {}
    s::<RedisBackend>();
};

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend").field("url", &self.shown).finish_non_exhaustive()
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
        let mut tagged = true;
        if !stored.is_empty() {
            tagged = match stored.get("format").map(String::as_str) {
                Some(layout::FORMAT) => true,
                Some(layout::FORMAT_UNTAGGED) => false,
                other => {
                    return Err(OpenError::Corrupted {
                        path: shown.into(),
                        detail: format!(
                            "{meta} is not a {} metadata hash (format {:?})",
                            layout::FORMAT,
                            other.unwrap_or("missing")
                        ),
                    });
                }
            };
            buckets = match stored.get("buckets").and_then(|b| b.parse().ok()) {
                Some(b) if b > 0 && b <= 1 << 16 => b,
                _ => {
                    return Err(OpenError::Corrupted {
                        path: shown.into(),
                        detail: format!("{meta} has no valid bucket count"),
                    });
                }
            };
        }
        if options.flag == Flag::New {
            let dels = Self::empty_commands(&ns, buckets);
            link.pipeline("empty the shelf", &dels, false).map_err(wrap)?;
            buckets = layout::BUCKETS;
            tagged = true;
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
            state: Mutex::new(State { link, pending: HashMap::new(), sent: false, clock_offset: None }),
            life: Lifecycle::new(options.flag),
            namespace: ns,
            buckets,
            tagged,
            shown,
        })
    }

    /// The state, locked. A panic while it was held (there are none on
    /// user input) leaves nothing half-done that a later call could
    /// misread: the pending map and the connection stay usable.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_mut(&mut self) -> &mut State {
        self.state.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the handle is connected to a cluster.
    pub fn is_cluster(&self) -> bool {
        self.state().link.is_cluster()
    }

    /// The URL, without credentials.
    pub fn location(&self) -> String {
        self.shown.clone()
    }

    /// The server keys that hold this shelf's entries (for tools and tests
    /// that look at where the data lives).
    pub fn bucket_keys(&self) -> Vec<String> {
        (0..self.buckets).map(|i| layout::bucket_key(&self.namespace, i)).collect()
    }

    /// What a sync survives on this server, from its `appendonly`,
    /// `appendfsync` and `save` settings (on a cluster, those of the node
    /// in the URL), in one sentence naming the host.
    ///
    /// # Errors
    /// A server that does not answer.
    pub fn durability(&self) -> Result<String, Error> {
        let mut st = self.state();
        let config = st.link.node_config(&["appendonly", "appendfsync", "save"])?;
        let settings = durability::Persistence::from_config(&config);
        Ok(settings.describe(&st.link.url.host_redacted(), st.link.url.replicas))
    }
}

impl KvBackend for RedisBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = <Self as OpenBackend>::CAPABILITIES;
        c.expiry = self.tagged;
        c
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.life.live()?;
        self.read(key)
    }

    fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        self.life.live()?;
        if let Some(p) = self.state().pending.get(key) {
            return Ok(p.visible().is_some());
        }
        self.server_has(key)
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.life.writable("insert")?;
        self.queue(key, Pending::Put(value.to_vec()))
    }

    fn insert_with_ttl(&mut self, key: &[u8], value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.life.writable("insert")?;
        if !self.tagged {
            return Err(Error::Unsupported {
                backend: NAME,
                operation: "expiry on a shelf of format shelf-redis-1 (convert it to a new namespace)",
            });
        }
        let until =
            Instant::now().checked_add(ttl).unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 40));
        self.queue(key, Pending::PutUntil(value.to_vec(), until))
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.life.writable("remove")?;
        let present = match self.state_mut().pending.get(key) {
            Some(p) => p.visible().is_some(),
            None => self.server_has(key)?,
        };
        if present {
            self.queue(key, Pending::Remove)?;
        }
        Ok(present)
    }

    fn len(&self) -> Result<usize, Error> {
        self.life.live()?;
        self.count()
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        RedisBackend::get_many(self, keys)
    }

    fn keys(&self) -> Result<KvKeys<'_>, Error> {
        Ok(Box::new(self.iter()?.map(|r| r.map(|(k, _)| k))))
    }

    fn iter(&self) -> Result<KvIter<'_>, Error> {
        self.life.live()?;
        self.send(&mut self.state())?;
        Ok(Box::new(read::Scan::new(self)))
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
        self.state().link.query(
            "read metadata",
            Some(name.as_bytes()),
            redis::cmd("HGET").arg(meta).arg(layout::meta_field(name)),
        )
    }

    fn set_metadata(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.life.writable("set metadata")?;
        let meta = layout::meta_key(&self.namespace);
        self.state_mut().link.query(
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
                BatchOp::Insert(k, v) => self.queue(k, Pending::Put(v.to_vec()))?,
                BatchOp::Remove(k) => {
                    self.remove(k)?;
                }
            }
        }
        Ok(())
    }

    fn commit_number(&self) -> Result<u64, Error> {
        self.life.live()?;
        let n: Option<u64> = self.state().link.query(
            "read the commit number",
            None,
            redis::cmd("GET").arg(layout::commit_key(&self.namespace)),
        )?;
        Ok(n.unwrap_or(0))
    }

    /// No byte count (the server's memory and files are its own, shared by
    /// every namespace): `bytes_on_disk` is `None`, never a zero; the
    /// durability sentence is read from the server.
    fn stats(&self) -> Result<StorageStats, Error> {
        self.life.live()?;
        Ok(StorageStats::unknown().with_durability(self.durability()?))
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
        c.expiry = true;
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
