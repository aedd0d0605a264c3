//! Writes: buffered in the handle (read-your-writes), sent pipelined, and
//! the sync's commit counter and `WAIT`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::Cmd;
use shelf_core::Error;

use crate::expiry::{encode_plain, encode_until};
use crate::{CHUNK, PENDING_LIMIT, RedisBackend, State, layout};

/// An unsent write.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    /// Insert this value.
    Put(Vec<u8>),
    /// Insert this value, gone at this instant.
    PutUntil(Vec<u8>, Instant),
    /// Remove the key.
    Remove,
}

impl Pending {
    /// The value a reader of this handle sees now.
    pub(crate) fn visible(&self) -> Option<&[u8]> {
        match self {
            Pending::Put(v) => Some(v),
            Pending::PutUntil(v, until) if Instant::now() < *until => Some(v),
            Pending::PutUntil(..) | Pending::Remove => None,
        }
    }
}

/// One bucket's share of the pending writes.
#[derive(Default)]
struct BucketWrites<'a> {
    sets: Vec<(&'a [u8], Cow<'a, [u8]>)>,
    deadlines: Vec<(&'a [u8], u64)>,
    dels: Vec<&'a [u8]>,
}

impl RedisBackend {
    /// Sends the pending writes (without the sync's counter and WAIT).
    pub(crate) fn send(&self, st: &mut State) -> Result<(), Error> {
        if st.pending.is_empty() {
            return Ok(());
        }
        // The server's time now, for the deadlines of expiring entries; a
        // round trip only the first time a handle writes one.
        let has_deadlines = st.pending.values().any(|p| matches!(p, Pending::PutUntil(..)));
        let server_now = if has_deadlines { Some(st.server_now()?) } else { None };
        let now = Instant::now();
        let mut by_bucket: HashMap<u32, BucketWrites<'_>> = HashMap::new();
        for (k, p) in &st.pending {
            let w = by_bucket.entry(layout::bucket_of(k, self.buckets)).or_default();
            match p {
                Pending::Put(v) => w.sets.push((k, self.stored_plain(v))),
                Pending::PutUntil(v, until) => {
                    let left = until.saturating_duration_since(now);
                    match server_now {
                        // Expired before it was sent: the insert replaced
                        // whatever was there, then went.
                        Some(_) if left.is_zero() => w.dels.push(k),
                        Some(base) => {
                            let at = base.saturating_add(ms_ceil(left));
                            w.sets.push((k, Cow::Owned(encode_until(v, at))));
                            w.deadlines.push((k, at));
                        }
                        None => w.dels.push(k),
                    }
                }
                Pending::Remove => w.dels.push(k),
            }
        }
        let mut cmds = Vec::new();
        for (b, w) in &by_bucket {
            let bucket = layout::bucket_key(&self.namespace, *b);
            for chunk in w.sets.chunks(CHUNK) {
                let mut c = redis::cmd("HSET");
                c.arg(&bucket);
                for (k, v) in chunk {
                    c.arg(*k).arg(v.as_ref());
                }
                cmds.push(c);
            }
            for chunk in w.deadlines.chunks(CHUNK) {
                let mut c = redis::cmd("ZADD");
                c.arg(layout::index_key(&self.namespace, *b));
                for (k, at) in chunk {
                    c.arg(*at).arg(*k);
                }
                cmds.push(c);
            }
            for chunk in w.dels.chunks(CHUNK) {
                let mut c = redis::cmd("HDEL");
                c.arg(&bucket);
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

    /// What is stored for a plain value: escaped where it could be read as
    /// a header (never on a shelf of the untagged format 1).
    fn stored_plain<'a>(&self, v: &'a [u8]) -> Cow<'a, [u8]> {
        if self.tagged { encode_plain(v) } else { Cow::Borrowed(v) }
    }

    pub(crate) fn queue(&mut self, key: &[u8], write: Pending) -> Result<(), Error> {
        let st = self.state_mut();
        st.pending.insert(key.to_vec(), write);
        if st.pending.len() >= PENDING_LIMIT {
            let mut st = self.state();
            self.send(&mut st)?;
        }
        Ok(())
    }

    pub(crate) fn sync(&self) -> Result<(), Error> {
        let mut st = self.state();
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

    /// The commands that empty the shelf (flag `n`): one `DEL` per key,
    /// since a cluster refuses one `DEL` of keys in several slots.
    pub(crate) fn empty_commands(ns: &str, buckets: u32) -> Vec<Cmd> {
        let keys = (0..buckets).flat_map(|i| [layout::bucket_key(ns, i), layout::index_key(ns, i)]);
        keys.chain(std::iter::once(layout::meta_key(ns)))
            .map(|key| {
                let mut d = redis::cmd("DEL");
                d.arg(key);
                d
            })
            .collect()
    }
}

/// `d` in whole milliseconds, rounded up (an entry never expires early).
fn ms_ceil(d: Duration) -> u64 {
    let ms = d.as_micros().div_ceil(1000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}
