//! `shelf bench` with a tiny N through the real binary: every kind of row
//! is there (shelf rows, their pickle rows, raw engines, CPython formats,
//! redis) or its skip reason is printed, and the figures add up. Never a
//! timing assertion: only what was measured, never how fast.

mod common;
use common::*;

use std::process::Command;

use serde_json::Value;

const N: u64 = 200;

/// Workloads every row of a path backend's shelf runs, with the ops each
/// counts.
const SHELF_WORKLOADS: &[(&str, u64)] = &[
    ("insert", N),
    ("get", N),
    ("get-2t", 2 * N),
    ("get-many", N),
    ("overwrite", N),
    ("iterate", N),
    ("reopen", N),
    ("delete", N / 2),
];

fn rows(j: &Value) -> &Vec<Value> {
    j["results"].as_array().expect("results is an array")
}

fn find<'a>(j: &'a Value, backend: &str, pickle: Option<bool>) -> Option<&'a Value> {
    rows(j).iter().find(|r| {
        r["backend"] == backend
            && pickle.is_none_or(|p| r["protocol"].as_str().is_some_and(|s| s.starts_with("pickle")) == p)
    })
}

fn skip_reason<'a>(j: &'a Value, row: &str) -> Option<&'a str> {
    j["skipped"].as_array()?.iter().find(|s| s["row"] == row)?["why"].as_str()
}

fn timing<'a>(row: &'a Value, workload: &str) -> Option<&'a Value> {
    row["timings"].as_array()?.iter().find(|t| t["workload"] == workload)
}

/// Asserts `row` measured `workload` with `ops` operations at a real rate.
#[track_caller]
fn measured(row: &Value, workload: &str, ops: u64) {
    let t = timing(row, workload).unwrap_or_else(|| panic!("{} has no {workload}: {row}", row["backend"]));
    assert_eq!(t["ops"], ops, "{} {workload}: {t}", row["backend"]);
    let rate = t["ops_per_sec"].as_f64().expect("ops_per_sec");
    let seconds = t["seconds"].as_f64().expect("seconds");
    assert!(rate.is_finite() && rate > 0.0 && seconds > 0.0, "{} {workload}: {t}", row["backend"]);
    assert!((rate * seconds - ops as f64).abs() <= 1e-6 * ops as f64 + 1e-9, "{t}");
}

fn on_path(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Whether some interpreter this test can find imports `dbm.<format>`
/// (the bench may find more; when this finds one, the bench must too).
fn python_has(format: &str) -> bool {
    let code = format!("import dbm.{format}, random; random.randbytes");
    let works = |c: &mut Command| c.args(["-c", &code]).output().is_ok_and(|o| o.status.success());
    if ["python3", "/usr/bin/python3"].iter().any(|p| works(&mut Command::new(p))) {
        return true;
    }
    let Ok(o) = Command::new("pyenv").args(["versions", "--bare"]).output() else { return false };
    String::from_utf8_lossy(&o.stdout).lines().any(|v| {
        v.trim().starts_with("3.")
            && works(Command::new("pyenv").args(["exec", "python3"]).env("PYENV_VERSION", v.trim()))
    })
}

fn bench_json(args: &[&str]) -> Value {
    let mut all = vec!["bench", "-n", "200", "--json", "-"];
    all.extend_from_slice(args);
    let o = run(&all);
    expect(&o, 0);
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

#[test]
fn default_run_has_every_kind_of_row() {
    let j = bench_json(&[]);
    assert_eq!(j["n"], N);
    assert!(j["wall_seconds"].as_f64().is_some_and(|s| s > 0.0), "{}", j["wall_seconds"]);

    // Every persistent backend at a path: its shelf row, with every workload.
    let path_backends: Vec<&str> = shelf::backends()
        .iter()
        .filter(|b| b.capabilities.persistent && b.schemes.is_empty())
        .map(|b| b.name)
        .collect();
    assert!(!path_backends.is_empty());
    for name in &path_backends {
        let row = find(&j, name, None).unwrap_or_else(|| panic!("no row for {name}"));
        assert_eq!(row["kind"], "shelf", "{row}");
        for &(w, ops) in SHELF_WORKLOADS {
            if row["notes"].to_string().contains(&format!("{w} stopped after")) {
                // A write workload stops at its time budget, saying so.
                let done = timing(row, w).and_then(|t| t["ops"].as_u64()).unwrap_or(0);
                assert!(done > 0 && done < ops, "{name} {w}: {row}");
                continue;
            }
            measured(row, w, ops);
        }
        assert!(row["bytes_after_sync"].as_u64().is_some_and(|b| b > 0), "{row}");
        // Like for like with CPython: a pickle row for every backend.
        let pickle = find(&j, name, Some(true)).unwrap_or_else(|| panic!("no pickle row for {name}"));
        measured(pickle, "insert", N);
        measured(pickle, "get", N);
    }

    // The raw engines under the shelves.
    for (backend, raw) in [("redb", "redb-raw"), ("sled", "sled-raw"), ("sqlite", "sqlite-raw")] {
        if !path_backends.contains(&backend) {
            continue;
        }
        let row = find(&j, raw, None).unwrap_or_else(|| panic!("no {raw} row"));
        assert_eq!(row["kind"], "raw");
        assert_eq!(row["engine"], backend);
        for &(w, ops) in SHELF_WORKLOADS {
            if w != "get-many" {
                measured(row, w, ops);
            }
        }
    }

    // The issues' targets, as ratios of this run's rows (whether they are
    // met depends on the machine: never asserted).
    let targets = j["targets"].as_array().expect("targets");
    for t in targets {
        assert!(t["ratio"].as_f64().is_some_and(|r| r.is_finite() && r > 0.0), "{t}");
        assert_eq!(t["met"], t["ratio"].as_f64() >= t["at_least"].as_f64(), "{t}");
    }
    if path_backends.contains(&"redb") {
        assert!(targets.iter().any(|t| t["what"] == "redb get vs redb-raw"), "{targets:?}");
        assert!(targets.iter().any(|t| t["what"] == "redb get-2t vs get"), "{targets:?}");
    }

    // CPython: a row per format, or the reason it is missing.
    for format in ["dumb", "gnu", "sqlite3"] {
        let name = format!("python-{format}");
        match find(&j, &name, None) {
            Some(row) => {
                assert_eq!(row["kind"], "python");
                assert_eq!(row["protocol"], "pickle");
                for w in ["insert", "get", "overwrite", "iterate", "reopen", "delete"] {
                    assert!(timing(row, w).is_some(), "{name} has no {w}: {row}");
                }
                measured(row, "get", timing(row, "insert").and_then(|t| t["ops"].as_u64()).unwrap_or(0));
                assert!(row["notes"].to_string().contains(&format!("dbm.{format}")), "{row}");
            }
            None => {
                let why = skip_reason(&j, &name).unwrap_or_else(|| panic!("{name}: no row and no reason"));
                assert!(!why.is_empty());
                assert!(!python_has(format), "{name} skipped ({why}) though an interpreter here has it");
            }
        }
    }

    // Redis: a server of its own, and redis-benchmark on it.
    if shelf::url_backends().iter().any(|b| b.name == "redis") {
        if on_path("redis-server") {
            let row = find(&j, "redis", None).unwrap_or_else(|| panic!("no redis row"));
            measured(row, "insert", N);
            measured(row, "get-many", N);
            assert!(find(&j, "redis", Some(true)).is_some(), "no redis pickle row");
            if on_path("redis-benchmark") {
                let rb = find(&j, "redis-benchmark", None).expect("a redis-benchmark row");
                assert_eq!(rb["kind"], "reference");
                measured(rb, "insert", N);
                measured(rb, "get-many", N);
            } else {
                assert!(skip_reason(&j, "redis-benchmark").is_some());
            }
        } else {
            assert!(skip_reason(&j, "redis").is_some_and(|w| w.contains("redis-server")), "{}", j["skipped"]);
        }
    }
}

#[test]
fn table_compares_pickle_with_pickle_and_shelf_with_raw() {
    if !shelf::backends().iter().any(|b| b.name == "redb") {
        println!("skipped: backend 'redb' is not registered");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("bench.svg");
    let o = run(&[
        "bench",
        "-n",
        "200",
        "--backends",
        "redb",
        "--workloads",
        "insert,get",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    expect(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("higher is better"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let line = |backend: &str, protocol: &str| {
        lines
            .iter()
            .find(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.first() == Some(&"get") && f.get(1) == Some(&backend) && f.get(2) == Some(&protocol)
            })
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no get line for {backend} {protocol}: {out}"))
    };
    let own = lines
        .iter()
        .find(|l| l.starts_with("get ") && l.split_whitespace().nth(1) == Some("redb"))
        .expect("a get line for redb");
    let own: Vec<&str> = own.split_whitespace().collect();
    let pickle = line("redb", "pickle");
    let raw = line("redb-raw", "-");
    // workload backend protocol ops/s time vs-raw vs-python vs-same
    assert_eq!(own.len(), 8, "{own:?}");
    assert!(own[5].ends_with('x'), "vs raw: {own:?}");
    if own[2].starts_with("pickle") {
        panic!("redb's own protocol is not pickle: {own:?}");
    }
    assert_eq!(own[6], "-", "a {} row is never compared with CPython: {own:?}", own[2]);
    assert!(pickle[5].ends_with('x'), "vs raw: {pickle:?}");
    let python = out.contains("\nget        python-");
    if python {
        assert!(pickle[6].ends_with('x'), "the pickle row is compared with CPython: {pickle:?}");
    }
    assert_eq!(raw[5], "-", "{raw:?}");
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.contains("higher is better"), "{}", &svg[..svg.len().min(300)]);
    for row in ["redb-raw", "redb (pickle)"] {
        assert!(svg.contains(row), "{row} missing from the chart's legend");
    }
}
