//! The redis backend against `redis-benchmark -P 64` on the same machine in
//! the same run: pipelined insert+sync of 100,000 keys of 100 bytes against
//! `-t set`, and a multi-get of the same keys against `-t get`. Starts its
//! own `redis-server` on a free loopback port; prints why it skipped when
//! there is none. `cargo bench -p backend-redis`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backend_redis::RedisBackend;
use shelf_core::KvBackend;
use shelf_core::raw::BackendOptions;

const N: usize = 100_000;

/// Requests per second `redis-benchmark` reports for `test`.
fn redis_benchmark(port: u16, test: &str) -> Option<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-P", "64", "-t", test, "-n", &N.to_string()])
        .args(["-d", "100", "-r", &N.to_string(), "-q"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "SET: 1234567.00 requests per second, p50=..." (after \r progress lines).
    let line = text.split(['\r', '\n']).rfind(|l| l.contains("requests per second"))?;
    line.split_once(':')?.1.split_whitespace().next()?.parse().ok()
}

fn main() {
    if Command::new("redis-benchmark").arg("--version").output().is_err() {
        eprintln!("skipped: vs_redis_benchmark: redis-benchmark is not on PATH");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
    let Ok(port) = port else { return eprintln!("skipped: no free port") };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let url = format!("redis://127.0.0.1:{port}/0?namespace=bench");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut db = loop {
        match RedisBackend::open_url(&url, &BackendOptions::default()) {
            Ok(db) => break db,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("open: {e}"),
        }
    };
    let keys: Vec<Vec<u8>> = (0..N).map(|i| format!("key:{i:012}").into_bytes()).collect();
    let value = vec![b'x'; 100];
    let mut best_set = f64::MAX;
    let mut best_get = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for k in &keys {
            db.insert(k, &value).expect("insert");
        }
        db.flush().expect("sync");
        best_set = best_set.min(t.elapsed().as_secs_f64());
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let t = Instant::now();
        let got = db.get_many(&refs).expect("get_many");
        best_get = best_get.min(t.elapsed().as_secs_f64());
        assert!(got.iter().all(|v| v.as_deref() == Some(&value[..])));
    }
    let shelf_set = N as f64 / best_set;
    let shelf_get = N as f64 / best_get;
    let bench_set = redis_benchmark(port, "set");
    let bench_get = redis_benchmark(port, "get");
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "{:<44} {:>14} {:>22} {:>7}",
        "operation (100,000 keys of 100 bytes)", "shelf ops/s", "redis-benchmark -P 64", "ratio"
    );
    for (what, ours, theirs) in [
        ("insert + sync (pipelined)", shelf_set, bench_set),
        ("get_many (one HMGET per bucket)", shelf_get, bench_get),
    ] {
        let (theirs_s, ratio) = match theirs {
            Some(t) => (format!("{t:.0}"), format!("{:.0}%", 100.0 * ours / t)),
            None => ("(failed)".into(), "-".into()),
        };
        println!("{what:<44} {ours:>14.0} {theirs_s:>22} {ratio:>7}");
    }
}
