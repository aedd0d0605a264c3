//! Real `redis-server` processes for the redis tests: each on a free
//! loopback port (never a fixed one), bound to 127.0.0.1 only, with its
//! data in a temporary directory, stopped on drop. A watchdog shell kills
//! the server when the test process dies, even by SIGKILL, so no server
//! outlives its test run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the redis tests cannot run here, or `None` when they can.
pub fn unavailable() -> Option<String> {
    for tool in ["redis-server", "redis-cli"] {
        match Command::new(tool).arg("--version").output() {
            Ok(o) if o.status.success() => {}
            _ => return Some(format!("{tool} is not on PATH (.ci/run installs it with apt-get)")),
        }
    }
    None
}

/// A port that was free a moment ago, with its cluster bus port (+10000)
/// free too.
fn free_port() -> u16 {
    loop {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else { continue };
        let Ok(addr) = l.local_addr() else { continue };
        let port = addr.port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Sends one inline command and returns the raw reply (for readiness and
/// cluster state checks, without the crate under test).
pub fn raw_command(port: u16, command: &str) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    // Read until the reply looks whole: a line, or a bulk string's body.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&out);
                if let Some(rest) = text.strip_prefix('$') {
                    let len: usize = rest.split("\r\n").next().and_then(|l| l.parse().ok()).unwrap_or(0);
                    if out.len() >= len + rest.find("\r\n").unwrap_or(0) + 5 {
                        break;
                    }
                } else if text.ends_with("\r\n") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// One `redis-server`.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
    watchdog: Option<Child>,
}

impl RedisServer {
    /// Starts a server with extra config `args` (`["--appendonly", "yes"]`)
    /// and waits until it answers PING.
    ///
    /// # Panics
    /// When it does not start (after checking [`unavailable`]).
    pub fn start(args: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut s = RedisServer {
            port: free_port(),
            dir,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
            watchdog: None,
        };
        s.spawn();
        s
    }

    /// The URL of this server with `query` (`namespace=x`).
    pub fn url(&self, query: &str) -> String {
        format!("redis://127.0.0.1:{}/0?{query}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--dir"])
            .arg(self.dir.path())
            .args(["--protected-mode", "yes", "--logfile", "redis.log"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 0.3; done; kill -9 {pid} 2>/dev/null",
                me = std::process::id(),
                pid = child.id()
            ))
            .stdin(Stdio::null())
            .spawn()
            .ok();
        self.child = Some(child);
        self.watchdog = watchdog;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // A server with requirepass answers -NOAUTH: up all the same.
            if raw_command(self.port, "PING")
                .is_some_and(|r| r.starts_with("+PONG") || r.starts_with("-NOAUTH"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer within 10 s", self.port);
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }

    /// Starts it again on the same port, with the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of `masters` masters with `replicas` replicas each,
/// made with `redis-cli --cluster create`.
pub struct RedisCluster {
    /// Every node, masters first as `redis-cli` assigns them.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits until every node
    /// says `cluster_state:ok` and every master has its `replicas` online.
    ///
    /// The replica wait matters to `replicas=N` URLs: `cluster_state:ok`
    /// comes before a replica's first full sync has finished, and a `WAIT`
    /// sent then counts no replica (a CI run failed on exactly that).
    ///
    /// # Panics
    /// When the cluster does not form within 30 s.
    pub fn start(masters: usize, replicas: usize, extra: &[&str]) -> RedisCluster {
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "1000",
        ];
        args.extend_from_slice(extra);
        let nodes: Vec<RedisServer> =
            (0..masters * (1 + replicas)).map(|_| RedisServer::start(&args)).collect();
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for n in &nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = cmd
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let cluster = RedisCluster { nodes };
        while Instant::now() < deadline {
            let ok = cluster
                .nodes
                .iter()
                .all(|n| raw_command(n.port, "CLUSTER INFO").is_some_and(|r| r.contains("cluster_state:ok")));
            if ok && cluster.masters().len() == masters && cluster.replicas_online(replicas) {
                return cluster;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster did not reach cluster_state:ok within 30 s");
    }

    /// Whether every master reports `replicas` replicas with
    /// `state=online` in `INFO replication`: their initial sync is done and
    /// they acknowledge `WAIT`.
    fn replicas_online(&self, replicas: usize) -> bool {
        replicas == 0
            || self.masters().into_iter().all(|port| {
                raw_command(port, "INFO replication")
                    .is_some_and(|r| r.matches("state=online").count() >= replicas)
            })
    }

    /// The URL of the first node.
    pub fn url(&self, query: &str) -> String {
        self.nodes[0].url(query)
    }

    /// The ports of the nodes that are masters now.
    pub fn masters(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| raw_command(n.port, "ROLE").is_some_and(|r| r.contains("master")))
            .map(|n| n.port)
            .collect()
    }
}
