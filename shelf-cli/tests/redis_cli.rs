//! The real `shelf` binary against a 3-master Redis Cluster this file
//! starts on free loopback ports: a shelf loaded from a dump and one
//! converted from a redb file through one node's URL, read back through
//! another node's URL with `keys`, `get`, `dump` and `info`, and converted
//! back to a file. Skips with a printed reason without `redis-server`.

mod common;

// The server helpers of the shelf-tests crate, by path: shelf-tests
// depends on shelf-cli, so shelf-cli's tests cannot depend on it.
#[allow(dead_code)]
#[path = "../../tests/src/redis_server.rs"]
mod redis_server;

use std::collections::BTreeSet;
use std::path::Path;

use common::{expect, run, run_in, stdout};
use redis_server::{RedisCluster, raw_command, unavailable};
use serde_json::{Value, json};

/// The dump every shelf here starts from: values of every JSON shape,
/// keys with spaces, unicode and punctuation.
fn source_dump() -> Value {
    let mut m = serde_json::Map::new();
    for i in 0..400 {
        let v = match i % 5 {
            0 => json!(i),
            1 => json!(format!("text {i} ✓")),
            2 => json!([i, "two", 3.5, null, true]),
            3 => json!({"n": i, "nested": {"list": [1, 2, 3], "s": "x"}}),
            _ => json!(-(i as i64) * 1_000_000_007),
        };
        m.insert(format!("key {i}/ü:{}", i % 7), v);
    }
    Value::Object(m)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// `shelf dump LOCATION` parsed.
fn dump_of(location: &str) -> Value {
    let o = run(&["dump", location]);
    expect(&o, 0);
    serde_json::from_str(&stdout(&o)).expect("dump prints JSON")
}

/// The keys `shelf keys --json LOCATION` lists.
fn keys_of(location: &str) -> BTreeSet<String> {
    let o = run(&["keys", "--json", location]);
    expect(&o, 0);
    serde_json::from_str(&stdout(&o)).expect("keys --json prints a JSON array")
}

/// The keys each master holds (DBSIZE), all of them together.
fn keys_per_master(cluster: &RedisCluster) -> Vec<u64> {
    cluster
        .masters()
        .into_iter()
        .map(|port| {
            let reply = raw_command(port, "DBSIZE").unwrap_or_default();
            reply.trim().trim_start_matches(':').parse().unwrap_or(0)
        })
        .collect()
}

#[test]
fn a_shelf_loaded_through_one_node_reads_back_through_another() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: redis_cli on redis: {why}");
        return;
    }
    let cluster = RedisCluster::start(3, 0, &[]);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let want = source_dump();
    let dump_file = dir.path().join("dump.json");
    std::fs::write(&dump_file, serde_json::to_string(&want).expect("JSON")).expect("write the dump");
    let at = |node: usize, ns: &str| cluster.nodes[node].url(&format!("namespace={ns}"));

    // 1. `shelf load` from a dump, into the cluster through node 0.
    let loaded = at(0, "cli-load");
    expect(&run(&["load", &loaded, "--in", p(&dump_file)]), 0);

    // 2. `shelf convert` from a redb file, through node 1.
    let redb = dir.path().join("source.redb");
    expect(&run(&["load", p(&redb), "--backend", "redb", "--in", p(&dump_file)]), 0);
    let converted = at(1, "cli-convert");
    let o = run(&["convert", p(&redb), &converted, "--backend", "redis"]);
    expect(&o, 0);
    assert!(stdout(&o).contains("converted 400 keys"), "{}", stdout(&o));

    // The cluster holds them spread over all three masters.
    let spread = keys_per_master(&cluster);
    assert_eq!(spread.len(), 3, "{spread:?}");
    assert!(spread.iter().all(|n| *n > 20), "keys not on every master: {spread:?}");

    // 3. Read back through node 2, another node than either writer's.
    for ns in ["cli-load", "cli-convert"] {
        let reader = at(2, ns);
        let o = run(&["whichdb", &reader]);
        expect(&o, 0);
        assert_eq!(stdout(&o).trim(), "redis");
        let want_keys: BTreeSet<String> = want.as_object().expect("an object").keys().cloned().collect();
        assert_eq!(keys_of(&reader), want_keys, "{ns}: keys");
        for key in ["key 3/ü:3", "key 0/ü:0", "key 399/ü:0"] {
            let o = run(&["get", &reader, key]);
            expect(&o, 0);
            let got: Value = serde_json::from_str(&stdout(&o)).expect("get prints JSON");
            assert_eq!(got, want[key], "{ns}: {key}");
        }
        expect(&run(&["get", &reader, "no such key"]), 1);
        assert_eq!(dump_of(&reader), want, "{ns}: dump");
    }

    // 4. `shelf info` of a redis shelf: what durability means on this
    // server, and no made-up byte count.
    let o = run(&["info", &at(2, "cli-load")]);
    expect(&o, 0);
    let info = stdout(&o);
    assert!(info.contains("redis") && info.contains("400"), "{info}");
    assert!(info.contains("appendonly no"), "no durability line: {info}");
    assert!(!info.contains("bytes on disk: 0"), "{info}");
    assert!(info.lines().any(|l| l.starts_with("bytes on disk") && l.contains("unknown")), "{info}");

    // 5. `shelf convert` back from the cluster to files of two backends.
    for backend in ["redb", "dumb"] {
        let back = dir.path().join(format!("back-{backend}"));
        let o = run(&["convert", &at(2, "cli-convert"), p(&back), "--backend", backend]);
        expect(&o, 0);
        assert_eq!(dump_of(p(&back)), want, "back to {backend}");
    }

    // 6. A write through one node is seen through another at once.
    expect(&run_in(&["set", &at(0, "cli-load"), "added", "-"], "{\"through\": \"node 0\"}"), 0);
    let o = run(&["get", &at(1, "cli-load"), "added"]);
    expect(&o, 0);
    assert_eq!(serde_json::from_str::<Value>(&stdout(&o)).expect("JSON"), json!({"through": "node 0"}));
}
