//! Reads: one command per `get`, one `HMGET` per bucket for `get_many`,
//! counts from one script per bucket, listings by `HSCAN` page; every
//! value passed through the expiry header check.

use std::collections::{HashMap, HashSet};

use redis::{Cmd, Value};
use shelf_core::raw::show_key;
use shelf_core::{Error, KvPair};

use crate::conn::bad_reply;
use crate::expiry::{self, HEAD, PURGE_AND_COUNT, Stored};
use crate::{CHUNK, PAGE, RedisBackend, State, layout};

impl RedisBackend {
    /// A stored value as the reader sees it: `None` once expired; a value
    /// with a header no shelf writes is [`Error::Corrupted`].
    pub(crate) fn unstore(
        &self,
        st: &mut State,
        key: &[u8],
        stored: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, Error> {
        let Some(stored) = stored else { return Ok(None) };
        if !self.tagged {
            return Ok(Some(stored));
        }
        // The server's clock is read (once per handle) only when a value
        // has a deadline.
        let mut clock: Result<u64, Error> = Ok(0);
        let seen = expiry::visible(stored, || match st.server_now() {
            Ok(now) => now,
            Err(e) => {
                clock = Err(e);
                0
            }
        });
        let seen = seen.map_err(|detail| self.damaged(st, key, detail))?;
        clock?;
        Ok(seen)
    }

    /// [`Error::Corrupted`] for the value of `key`.
    pub(crate) fn damaged(&self, st: &State, key: &[u8], detail: String) -> Error {
        let bucket = layout::bucket_key(&self.namespace, layout::bucket_of(key, self.buckets));
        Error::Corrupted {
            path: st.link.url.to_string().into(),
            detail: format!("{bucket}, key {:?}: {detail}", show_key(key)),
        }
    }

    pub(crate) fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let mut st = self.state();
        if let Some(p) = st.pending.get(key) {
            return Ok(p.visible().map(<[u8]>::to_vec));
        }
        let bucket = layout::bucket_key(&self.namespace, layout::bucket_of(key, self.buckets));
        let stored: Option<Vec<u8>> =
            st.link.query("get", Some(key), redis::cmd("HGET").arg(bucket).arg(key))?;
        self.unstore(&mut st, key, stored)
    }

    /// Whether the server holds a live entry for `key` (the first bytes of
    /// the value, not all of it, cross the network).
    pub(crate) fn server_has(&self, key: &[u8]) -> Result<bool, Error> {
        let bucket = layout::bucket_key(&self.namespace, layout::bucket_of(key, self.buckets));
        let mut st = self.state();
        if !self.tagged {
            return st.link.query("check a key", Some(key), redis::cmd("HEXISTS").arg(bucket).arg(key));
        }
        let head: Option<Vec<u8>> = st.link.query(
            "check a key",
            Some(key),
            redis::cmd("EVAL").arg(HEAD).arg(1).arg(bucket).arg(key),
        )?;
        let Some(head) = head else { return Ok(false) };
        // Only the header matters: judged on a copy cut to it.
        let probe = match expiry::decode(&head) {
            Ok(Stored::Until(_, until)) => expiry::encode_until(b"", until),
            Ok(Stored::Plain(_)) => return Ok(true),
            Err(detail) => return Err(self.damaged(&st, key, detail)),
        };
        Ok(self.unstore(&mut st, key, Some(probe))?.is_some())
    }

    /// The values of `keys`, in order: one round trip per node (one `HMGET`
    /// per bucket), not one per key.
    ///
    /// # Errors
    /// [`Error::Closed`], a server that does not answer, a damaged value.
    pub fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.life.live()?;
        let mut st = self.state();
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut by_bucket: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            match st.pending.get(*k) {
                Some(p) => out[i] = p.visible().map(<[u8]>::to_vec),
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
                out[i] = self.unstore(&mut st, keys[i], v)?;
            }
        }
        Ok(out)
    }

    /// The number of live entries: one script per bucket, pipelined (one
    /// round trip per node), that first removes the bucket's expired
    /// entries, so the count is exact.
    pub(crate) fn count(&self) -> Result<usize, Error> {
        let mut st = self.state();
        self.send(&mut st)?;
        let cmds: Vec<Cmd> = (0..self.buckets)
            .map(|i| {
                let mut c;
                if self.tagged {
                    c = redis::cmd("EVAL");
                    c.arg(PURGE_AND_COUNT)
                        .arg(2)
                        .arg(layout::bucket_key(&self.namespace, i))
                        .arg(layout::index_key(&self.namespace, i));
                } else {
                    c = redis::cmd("HLEN");
                    c.arg(layout::bucket_key(&self.namespace, i));
                }
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

    /// One HSCAN page of bucket `bucket` from `cursor`: the next cursor
    /// (0 at the end) and the live pairs.
    fn page(&self, bucket: u32, cursor: u64) -> Result<(u64, Vec<KvPair>), Error> {
        let mut st = self.state();
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
            if let Some(v) = self.unstore(&mut st, &k, Some(v))? {
                pairs.push((k, v));
            }
        }
        Ok((next, pairs))
    }
}

/// Walks the buckets page by page; drops the duplicates HSCAN may yield
/// (it can, when a hash is resized mid-scan) with the set of one bucket.
pub(crate) struct Scan<'a> {
    backend: &'a RedisBackend,
    bucket: u32,
    cursor: u64,
    started: bool,
    buffer: std::vec::IntoIter<KvPair>,
    seen: HashSet<Vec<u8>>,
    failed: bool,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(backend: &'a RedisBackend) -> Self {
        Scan {
            backend,
            bucket: 0,
            cursor: 0,
            started: false,
            buffer: Vec::new().into_iter(),
            seen: HashSet::new(),
            failed: false,
        }
    }
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
