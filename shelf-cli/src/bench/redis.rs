//! The `redis-server` the bench starts for the redis rows, and the
//! `redis-benchmark -P 64` row measured on it in the same run.
//!
//! The server listens on 127.0.0.1 only, on a port that was free a moment
//! before (redis refuses port 0), keeps nothing on disk (`--save ''`,
//! `--appendonly no`) and is stopped when the [`Server`] is dropped: after
//! the rows, on an error, on a panic. A watchdog shell kills it when the
//! bench process is gone however it ended (SIGKILL included); ctrl-c
//! reaches it directly, as a member of the bench's process group.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Data, timing};
use crate::report::{BackendResult, RowKind};

/// How long the server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server`.
pub(super) struct Server {
    port: u16,
    child: Child,
    watchdog: Option<Child>,
    /// Its working directory, removed after it stops.
    _dir: tempfile::TempDir,
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free loopback port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| format!("no free loopback port: {e}"))
}

/// Whether the server on `port` answers PING.
fn pong(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// The fewest requests redis-benchmark is asked to time (see
/// `redis_benchmark`).
const MIN_REQUESTS: usize = 20_000;

impl Server {
    /// Starts a server; `Err` says why there is none (no `redis-server` on
    /// PATH, or it did not come up).
    pub(super) fn start() -> Result<Server, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "yes", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "redis-server is not on PATH".to_owned(),
                _ => format!("cannot start redis-server: {e}"),
            })?;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 0.5; done; kill -9 {pid} 2>/dev/null",
                me = std::process::id(),
                pid = child.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let mut server = Server { port, child, watchdog, _dir: dir };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if pong(port) {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("redis-server on port {port} exited at start ({status})"));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server on port {port} did not answer within {} s",
                    START_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The URL of a namespace on this server.
    pub(super) fn url(&self, namespace: &str) -> String {
        format!("redis://127.0.0.1:{}/0?namespace={namespace}", self.port)
    }

    /// `redis-benchmark -P 64 -t set,get -n max(N, MIN_REQUESTS) -d SIZE -r N -q` on this
    /// server: SET's rate as `insert` and GET's as `get-many`, the rows the
    /// shelf's pipelined insert+sync and its get_many compare with.
    pub(super) fn redis_benchmark(&self, data: &Data) -> Result<BackendResult, String> {
        let n = data.n().to_string();
        // redis-benchmark times in whole milliseconds: a few hundred
        // pipelined requests take under one and print "inf requests per
        // second". The rate is measured over at least MIN_REQUESTS (the
        // row's time is N over that rate, as for any N).
        let requests = data.n().max(MIN_REQUESTS).to_string();
        let args = [
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-P",
            "64",
            "-t",
            "set,get",
            "-n",
            &requests,
            "-d",
            &data.value_size.to_string(),
            "-r",
            &n,
            "-q",
        ];
        let out =
            Command::new("redis-benchmark").args(args).stdin(Stdio::null()).output().map_err(|e| match e
                .kind()
            {
                std::io::ErrorKind::NotFound => "redis-benchmark is not on PATH".to_owned(),
                _ => format!("cannot run redis-benchmark: {e}"),
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "redis-benchmark failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let rate = |test: &str| -> Result<f64, String> {
            // "SET: 123456.79 requests per second, p50=0.2 msec" after
            // \r-separated progress lines.
            text.split(['\r', '\n'])
                .filter_map(|l| l.trim().strip_prefix(test)?.strip_prefix(':'))
                .filter(|rest| rest.contains("requests per second"))
                .filter_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
                .next_back()
                .filter(|r| r.is_finite() && *r > 0.0)
                .ok_or_else(|| format!("redis-benchmark printed no {test} rate: {}", text.trim()))
        };
        let timings = [("insert", rate("SET")?), ("get-many", rate("GET")?)]
            .into_iter()
            .map(|(w, r)| timing(w, data.n() as u64, Duration::from_secs_f64(data.n() as f64 / r)))
            .collect();
        Ok(BackendResult {
            backend: "redis-benchmark".to_owned(),
            kind: RowKind::Reference,
            engine: "redis".to_owned(),
            protocol: "-".to_owned(),
            timings,
            bytes_after_sync: None,
            bytes_after_compact: None,
            notes: vec![format!("redis-benchmark {}", args.join(" "))],
            row_seconds: None,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = &mut self.watchdog {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
