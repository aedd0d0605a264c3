//! The connection: one server or a cluster behind one interface, every wait
//! bounded by the URL's timeout, and the engine's errors turned into
//! shelf's once, here, naming the host (never the password) and the key.

use redis::cluster::{ClusterClient, ClusterConnection, ClusterPipeline};
use redis::cluster_routing::{AggregateOp, MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use std::collections::HashMap;

use redis::{Cmd, FromRedisValue, RedisError, Value};
use shelf_core::raw::show_key;
use shelf_core::{Error, OpenError};

use crate::url::RedisUrl;

/// What went wrong, as the source of shelf's [`Error::Backend`] and
/// [`OpenError::Backend`]: the host, what was being done, the key, and the
/// client's message scrubbed of the password. The client's error is not
/// kept as a source, so nothing below it can show the credentials.
#[derive(Debug, thiserror::Error)]
#[error("redis at {host}: {what}{key}: {detail}")]
pub(crate) struct Fault {
    host: String,
    what: &'static str,
    key: String,
    detail: String,
}

/// An open connection.
pub(crate) enum Conn {
    /// A standalone server (or a replica-less primary).
    Single(redis::Connection),
    /// A cluster; the client routes each command to the node of its slot
    /// and follows MOVED/ASK redirections itself.
    Cluster(Box<ClusterConnection>),
}

/// The URL and the connection, with the reconnecting and the error wording.
pub(crate) struct Link {
    pub(crate) url: RedisUrl,
    conn: Conn,
    /// The last operation lost a reply: reconnect before the next.
    broken: bool,
}

fn scrub(url: &RedisUrl, text: String) -> String {
    match url.secret() {
        Some(secret) => text.replace(secret, "***"),
        None => text,
    }
}

/// A fault on `url`, for messages.
pub(crate) fn fault(url: &RedisUrl, what: &'static str, key: Option<&[u8]>, e: &RedisError) -> Fault {
    let mut detail = e.to_string();
    if e.is_timeout() {
        detail = format!("timed out after {:.1}s ({detail})", url.timeout.as_secs_f64());
    }
    Fault {
        host: url.host_redacted(),
        what,
        key: key.map(|k| format!(" of key {:?}", show_key(k))).unwrap_or_default(),
        detail: scrub(url, detail),
    }
}

/// An open error for `url`.
pub(crate) fn open_fault(url: &RedisUrl, what: &'static str, e: &RedisError) -> OpenError {
    OpenError::Backend {
        backend: crate::NAME,
        path: url.to_string().into(),
        source: Box::new(fault(url, what, None, e)),
    }
}

/// A reply that is not what the protocol promises, as an error (never a
/// panic).
pub(crate) fn bad_reply(url: &RedisUrl, what: &'static str, detail: String) -> Error {
    Error::Backend {
        backend: crate::NAME,
        operation: what,
        source: Box::new(Fault {
            host: url.host_redacted(),
            what,
            key: String::new(),
            detail: scrub(url, detail),
        }),
    }
}

fn single_now(url: &RedisUrl) -> Result<redis::Connection, RedisError> {
    let client = redis::Client::open(url.connection_url())?;
    let conn = client.get_connection_with_timeout(url.timeout)?;
    conn.set_read_timeout(Some(url.timeout))?;
    conn.set_write_timeout(Some(url.timeout))?;
    Ok(conn)
}

/// A connection to the node of `url`, within its timeout as a whole.
pub(crate) fn single(url: &RedisUrl) -> Result<redis::Connection, RedisError> {
    let u = url.clone();
    bounded(url, move || single_now(&u), |e| e)
}

/// Runs `job` (a connect) on a thread of its own and gives up on it after
/// the URL's timeout. The client bounds each of its waits, but a connect
/// is several (the connection's setup pipeline reads a reply per command,
/// each with the whole timeout; then `INFO`): against a server that
/// accepts and never answers, a thread is the one way to keep the whole
/// connect within the timeout. The abandoned thread ends by itself once
/// its own waits run out.
fn bounded<T: Send + 'static, E: Send + 'static>(
    url: &RedisUrl,
    job: impl FnOnce() -> Result<T, E> + Send + 'static,
    failed: fn(RedisError) -> E,
) -> Result<T, E> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new().name("shelf-redis-connect".to_owned()).spawn(move || {
        let _ = tx.send(job());
    });
    if let Err(e) = spawned {
        return Err(failed(RedisError::from(e)));
    }
    match rx.recv_timeout(url.timeout) {
        Ok(result) => result,
        Err(_) => Err(failed(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the server accepted the connection but did not complete the handshake",
        )))),
    }
}

/// A pipeline on one connection that stops at the first reply that does
/// not come: the client's own pipeline reads every remaining reply, each
/// with the whole timeout, so a frozen server would cost one timeout per
/// command. The caller drops the connection after an error here (its
/// replies are out of step).
fn pipeline_single(c: &mut redis::Connection, cmds: &[Cmd], atomic: bool) -> Result<Vec<Value>, RedisError> {
    let mut p = redis::pipe();
    if atomic {
        p.atomic();
    }
    for cmd in cmds {
        p.add_command(cmd.clone());
    }
    c.send_packed_command(&p.get_packed_pipeline())?;
    let expected = if atomic { cmds.len() + 2 } else { cmds.len() };
    let mut replies = Vec::with_capacity(expected);
    for _ in 0..expected {
        replies.push(c.recv_response()?);
    }
    let replies = if atomic {
        // MULTI's OK, a QUEUED per command (or the error that aborted the
        // transaction), then EXEC's array of replies.
        let exec = replies.pop();
        for r in replies {
            r.extract_error()?;
        }
        match exec.map(Value::extract_error).transpose()? {
            Some(Value::Array(items)) => items,
            other => {
                return Err(RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "EXEC did not answer an array",
                    format!("{other:?}"),
                )));
            }
        }
    } else {
        replies
    };
    replies.into_iter().map(Value::extract_error).collect()
}

fn cluster(url: &RedisUrl) -> Result<ClusterConnection, RedisError> {
    let client = ClusterClient::builder(vec![url.connection_url()])
        .connection_timeout(url.timeout)
        .response_timeout(url.timeout)
        .retries(3)
        .build()?;
    client.get_connection()
}

impl Conn {
    /// Connects to the node of `url` and, when it says `cluster_enabled:1`,
    /// to the whole cluster through it.
    fn connect(url: &RedisUrl) -> Result<Conn, (&'static str, RedisError)> {
        let u = url.clone();
        bounded(url, move || Conn::connect_now(&u), |e| ("connect", e))
    }

    fn connect_now(url: &RedisUrl) -> Result<Conn, (&'static str, RedisError)> {
        let mut first = single_now(url).map_err(|e| ("connect", e))?;
        let info: String =
            redis::cmd("INFO").arg("cluster").query(&mut first).map_err(|e| ("read INFO", e))?;
        let clustered = info.lines().any(|l| l.trim() == "cluster_enabled:1");
        if !clustered {
            return Ok(Conn::Single(first));
        }
        if url.db != 0 {
            let e = RedisError::from((redis::ErrorKind::Client, "a cluster has only database 0"));
            return Err(("select a database", e));
        }
        cluster(url).map(|c| Conn::Cluster(Box::new(c))).map_err(|e| ("connect to the cluster", e))
    }
}

impl Link {
    /// Connects, within the URL's timeout.
    pub(crate) fn open(url: RedisUrl) -> Result<Link, OpenError> {
        let conn = Conn::connect(&url).map_err(|(what, e)| open_fault(&url, what, &e))?;
        Ok(Link { url, conn, broken: false })
    }

    /// Whether the connection is to a cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// Runs `op`, and once more on a fresh connection when the first one
    /// had dropped (a restarted server). Every command shelf sends is
    /// idempotent but the commit counter's INCR, which a retry may bump
    /// twice: harmless, the number only has to grow.
    fn retrying<T>(
        &mut self,
        mut op: impl FnMut(&mut Conn) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let standalone = matches!(self.conn, Conn::Single(_));
        if self.broken && standalone {
            self.conn = Conn::Single(single(&self.url)?);
            self.broken = false;
        }
        let result = match op(&mut self.conn) {
            // Not after a timeout: the server is there but slow or frozen,
            // and a second try would double the wait.
            Err(e) if standalone && !e.is_timeout() && (e.is_connection_dropped() || e.is_io_error()) => {
                self.conn = Conn::Single(single(&self.url)?);
                op(&mut self.conn)
            }
            other => other,
        };
        // A reply that did not come leaves the connection out of step (or
        // gone): the next operation starts on a fresh one.
        if let Err(e) = &result
            && standalone
            && (e.is_timeout() || e.is_io_error() || e.is_connection_dropped())
        {
            self.broken = true;
        }
        result
    }

    /// One command.
    pub(crate) fn query<T: FromRedisValue>(
        &mut self,
        what: &'static str,
        key: Option<&[u8]>,
        cmd: &Cmd,
    ) -> Result<T, Error> {
        self.retrying(|c| match c {
            Conn::Single(c) => cmd.query(c),
            Conn::Cluster(c) => cmd.query(c),
        })
        .map_err(|e| self.error(what, key, &e))
    }

    /// Commands sent together: one round trip per node. `atomic` wraps them
    /// in MULTI/EXEC on a single server; a cluster pipeline cannot be
    /// atomic (its commands go to several nodes).
    pub(crate) fn pipeline(
        &mut self,
        what: &'static str,
        cmds: &[Cmd],
        atomic: bool,
    ) -> Result<Vec<Value>, Error> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        self.retrying(|c| match c {
            Conn::Single(c) => pipeline_single(c, cmds, atomic),
            Conn::Cluster(c) => {
                let mut p = ClusterPipeline::with_capacity(cmds.len());
                for cmd in cmds {
                    p.add_command(cmd.clone());
                }
                p.query(c)
            }
        })
        .map_err(|e| self.error(what, None, &e))
    }

    /// `CONFIG GET` of `names` on the node of the URL (on a cluster, over a
    /// connection of its own: `CONFIG` is not routed by the cluster client).
    pub(crate) fn node_config(&mut self, names: &[&str]) -> Result<HashMap<String, String>, Error> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg(names);
        match &mut self.conn {
            Conn::Single(_) => self.query("read the server's settings", None, &cmd),
            Conn::Cluster(_) => {
                let mut node = single(&self.url).map_err(|e| self.error("connect", None, &e))?;
                cmd.query(&mut node).map_err(|e| self.error("read the server's settings", None, &e))
            }
        }
    }

    /// `WAIT replicas timeout` on the server, or on every master of a
    /// cluster; the fewest replicas any of them reached.
    pub(crate) fn wait_replicas(&mut self, replicas: u32) -> Result<i64, Error> {
        let millis = u64::try_from(self.url.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(millis);
        let result = match &mut self.conn {
            Conn::Single(c) => cmd.query(c),
            Conn::Cluster(c) => c
                .route_command(
                    &cmd,
                    RoutingInfo::MultiNode((
                        MultipleNodeRoutingInfo::AllMasters,
                        Some(ResponsePolicy::Aggregate(AggregateOp::Min)),
                    )),
                )
                .and_then(|v| i64::from_redis_value(v).map_err(RedisError::from)),
        };
        result.map_err(|e| self.error("wait for replicas", None, &e))
    }

    fn error(&self, what: &'static str, key: Option<&[u8]>, e: &RedisError) -> Error {
        let f = fault(&self.url, what, key, e);
        if e.is_timeout() {
            return Error::Timeout { what: f.to_string(), seconds: self.url.timeout.as_secs_f64() };
        }
        Error::Backend { backend: crate::NAME, operation: what, source: Box::new(f) }
    }
}
