//! `shelf bench`: the same workloads on every registered persistent backend,
//! beside the engines under them and the formats CPython users run.
//!
//! The rows, in order, per backend: its shelf with the protocol it picks by
//! itself (pickle for Python formats, msgpack or bincode elsewhere); the
//! same shelf with pickle, where that is not already its protocol, so every
//! backend is compared with CPython like for like; and its raw engine
//! through the engine's own API (redb, sled, SQLite through rusqlite), so
//! the shelf's overhead is a column. Then CPython's `shelve` over each
//! `dbm` format some Python on the machine has (`dumb` always, `gnu` and
//! `sqlite3` where an interpreter has them), run by `python/bench_shelve.py`
//! with the same N, value size and seed. The redis backend runs on a
//! `redis-server` the bench starts on a free loopback port (or at `--url`),
//! beside `redis-benchmark -P 64` on the same server.
//!
//! Each row gets a fresh database in its own temporary directory, so the
//! bytes on disk are simply the bytes in that directory. Values are random
//! bytes (`serde_bytes::ByteBuf`).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use shelf::Protocol;

use crate::error::CliError;
use crate::report::{BackendResult, Report, Skipped, Target, Timing};
use crate::rng::Rng;

mod parallel;
mod python;
mod raw;
mod redis;
mod shelf_row;
mod table;

/// The workloads, in the order they run (each builds on the state the one
/// before left).
pub const WORKLOADS: &[&str] =
    &["insert", "get", "get-2t", "get-many", "overwrite", "iterate", "reopen", "delete"];

/// What each workload measures, for the table's legend.
const WORKLOAD_HELP: &[(&str, &str)] = &[
    ("insert", "insert N keys, then sync"),
    ("get", "N gets in random order, one at a time (reads: the best of up to 3 runs within 0.3 s)"),
    ("get-2t", "2 threads each doing N random gets at once; ops = 2N"),
    ("get-many", "one get_many of all N keys (raw: redis-benchmark -P 64 -t get)"),
    ("overwrite", "N overwrites in random order, then sync"),
    ("iterate", "every key and value"),
    ("reopen", "keys in the reopened database / time to open it and count them"),
    ("delete", "N/2 deletes, then sync"),
];

/// How long a write workload of a CPython row, and our delete workload,
/// may run before it stops and reports the rate so far (dbm.dumb rewrites
/// its index on every delete; dbm.sqlite3 commits every assignment).
const BUDGET: Duration = Duration::from_secs(2);

/// Options of `shelf bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Keys per workload (`--n` is an older spelling, still accepted).
    #[arg(short = 'n', long = "keys", alias = "n", value_name = "N", default_value_t = 20_000)]
    pub n: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Comma-separated backends (default: every registered persistent backend;
    /// redis when `redis-server` is on PATH or `--url` is given).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub backends: Option<Vec<String>>,
    /// Comma-separated workloads to report: insert, get, get-2t, get-many, overwrite,
    /// iterate, reopen, delete (the ones before a chosen one still run, untimed in the
    /// report, to set up its state).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub workloads: Option<Vec<String>>,
    /// Seed of the values and of the random key orders.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write every figure as JSON to FILE (`-`: to stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
    /// Draw ops/s per workload per row as an SVG bar chart to FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Skip the CPython rows.
    #[arg(long)]
    pub no_python: bool,
    /// Skip the raw-engine rows (and redis-benchmark).
    #[arg(long)]
    pub no_raw: bool,
    /// Skip the pickle rows of backends whose own protocol is not pickle.
    #[arg(long)]
    pub no_pickle: bool,
    /// Where backends that live at URLs run (`--backends redis --url
    /// redis://127.0.0.1:6379/0?namespace=bench`); the namespace is emptied.
    /// Without it the bench starts its own `redis-server`.
    #[arg(long, value_name = "URL", value_parser = crate::db::parse_location)]
    pub url: Option<std::path::PathBuf>,
}

/// The keys, values and orders every row uses: made once from the seed.
struct Data {
    keys: Vec<String>,
    values: Vec<Vec<u8>>,
    /// The values of the overwrite workload.
    fresh: Vec<Vec<u8>>,
    /// A random order of the indexes (gets, overwrites, deletes).
    order: Vec<usize>,
    /// Another, for the second reader thread.
    order2: Vec<usize>,
    value_size: usize,
}

impl Data {
    fn new(args: &BenchArgs) -> Data {
        let n = args.n;
        let mut rng = Rng(args.seed);
        let keys = (0..n).map(|i| format!("key{i:08}")).collect();
        let values = (0..n).map(|_| rng.bytes(args.value_size)).collect();
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        let fresh = (0..n).map(|_| rng.bytes(args.value_size)).collect();
        let mut order2 = order.clone();
        rng.shuffle(&mut order2);
        Data { keys, values, fresh, order, order2, value_size: args.value_size }
    }

    fn n(&self) -> usize {
        self.keys.len()
    }
}

/// A read workload (get, get-2t, get-many, iterate) runs up to this many
/// times, while its runs so far took less than [`REPEAT_WITHIN`], and the
/// fastest run counts: one run on a shared machine swings by 2x, and the
/// fast rows cost little to repeat (a slow row runs once).
const READ_RUNS: usize = 3;

/// See [`READ_RUNS`].
const REPEAT_WITHIN: Duration = Duration::from_millis(300);

/// How long one run of `get` or `get-2t` (one get at a time) may take
/// before it stops and reports the rate so far: a network backend pays a
/// round trip per get, and N of them say no more than a second's worth.
const READ_BUDGET: Duration = Duration::from_secs(1);

/// Runs a read workload per [`READ_RUNS`]; each run returns the operations
/// it did (fewer than asked when it stopped at its budget) and its time.
/// Returns the run with the best rate.
fn best_of<E>(mut run: impl FnMut() -> Result<(u64, Duration), E>) -> Result<(u64, Duration), E> {
    let rate = |ops: u64, d: Duration| ops as f64 / d.as_secs_f64().max(1e-9);
    let (mut ops, mut best) = run()?;
    let mut spent = best;
    for _ in 1..READ_RUNS {
        if spent >= REPEAT_WITHIN {
            break;
        }
        let (o, d) = run()?;
        spent += d;
        if rate(o, d) > rate(ops, best) {
            (ops, best) = (o, d);
        }
    }
    Ok((ops, best))
}

fn timed<T>(f: impl FnOnce() -> Result<T, CliError>) -> Result<(T, Duration), CliError> {
    let start = Instant::now();
    let r = f()?;
    Ok((r, start.elapsed()))
}

fn timing(workload: &str, ops: u64, d: Duration) -> Timing {
    let seconds = d.as_secs_f64().max(1e-9);
    Timing { workload: workload.to_owned(), ops, seconds, ops_per_sec: ops as f64 / seconds }
}

fn temp_dir() -> Result<tempfile::TempDir, CliError> {
    tempfile::tempdir().map_err(|e| CliError::env(format!("bench: cannot make a temp dir: {e}")))
}

/// The default backends: every registered one whose data survives the
/// process (memory is left out: it would measure a `BTreeMap`), those at
/// paths first, then those at URLs (redis).
fn persistent_backends() -> Vec<String> {
    shelf::backends()
        .iter()
        .chain(shelf::url_backends())
        .filter(|b| b.capabilities.persistent)
        .map(|b| b.name.to_owned())
        .collect()
}

/// Checks the options; returns the workloads to report and the backends.
fn plan(args: &BenchArgs) -> Result<(Vec<String>, Vec<String>), CliError> {
    if args.n < 2 {
        return Err(CliError::usage("bench: --n must be at least 2"));
    }
    let selected: Vec<String> = match &args.workloads {
        Some(ws) => {
            for w in ws {
                if !WORKLOADS.contains(&w.as_str()) {
                    return Err(CliError::usage(format!(
                        "bench: unknown workload {w:?} (available: {})",
                        WORKLOADS.join(", ")
                    )));
                }
            }
            ws.clone()
        }
        None => WORKLOADS.iter().map(|w| (*w).to_owned()).collect(),
    };
    let names = match &args.backends {
        Some(b) => {
            for name in b {
                if !shelf::find_backend(name)?.capabilities.persistent {
                    return Err(CliError::usage(format!(
                        "bench: backend '{name}' keeps nothing on disk, so reopen and sizes would mean nothing"
                    )));
                }
            }
            b.clone()
        }
        None => persistent_backends(),
    };
    if names.is_empty() && args.no_python {
        return Err(CliError::usage("bench: nothing to run (no persistent backend registered, --no-python)"));
    }
    Ok((selected, names))
}

/// Where a backend's shelf lives for the bench: a path in a fresh temporary
/// directory, or a URL (`--url`, or a server the bench started).
enum Place {
    Dir(tempfile::TempDir),
    Url(PathBuf),
}

/// The rows of one backend: its shelf, its pickle shelf, its raw engine.
fn backend_rows(
    name: &str,
    args: &BenchArgs,
    data: &Data,
    server: &mut Option<Result<redis::Server, String>>,
    results: &mut Vec<BackendResult>,
    skipped: &mut Vec<Skipped>,
) -> Result<(), CliError> {
    let info = shelf::find_backend(name)?;
    let url = if info.schemes.is_empty() {
        None
    } else if let Some(url) = &args.url {
        Some(url.clone())
    } else {
        // Started once, at the first backend that needs it.
        match server.get_or_insert_with(redis::Server::start) {
            Ok(s) => Some(PathBuf::from(s.url("bench"))),
            Err(why) => {
                skipped.push(Skipped { row: name.to_owned(), why: why.clone() });
                return Ok(());
            }
        }
    };
    let place = || -> Result<Place, CliError> {
        Ok(match &url {
            Some(u) => Place::Url(u.clone()),
            None => Place::Dir(temp_dir()?),
        })
    };
    let row = with_wall(|| shelf_row::run(name, None, &place()?, data))?;
    let own_pickle = row.protocol.starts_with("pickle");
    results.push(row);
    if own_pickle {
        // Its own row is the like-for-like one already.
    } else if args.no_pickle {
        skipped.push(Skipped { row: format!("{name} (pickle)"), why: "--no-pickle".to_owned() });
    } else {
        results.push(with_wall(|| shelf_row::run(name, Some(Protocol::pickle()), &place()?, data))?);
    }
    if args.no_raw {
        return Ok(());
    }
    if let Some(engine) = raw::Engine::of(name) {
        let dir = temp_dir()?;
        results.push(with_wall(|| raw::run(engine, dir.path(), data))?);
    } else if !info.schemes.is_empty() {
        match server.as_ref() {
            Some(Ok(s)) => match with_wall(|| s.redis_benchmark(data)) {
                Ok(row) => results.push(row),
                Err(why) => skipped.push(Skipped { row: "redis-benchmark".to_owned(), why }),
            },
            _ => skipped.push(Skipped {
                row: "redis-benchmark".to_owned(),
                why: "runs only against the server the bench starts itself (not --url)".to_owned(),
            }),
        }
    }
    Ok(())
}

/// `shelf bench`.
pub fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let start = Instant::now();
    let (selected, names) = plan(args)?;
    let data = Data::new(args);
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    // Stopped when dropped: on success, on an error and on a panic
    // unwinding through here (ctrl-c reaches it as SIGINT, as its process
    // group's).
    let mut server = None;
    for name in &names {
        backend_rows(name, args, &data, &mut server, &mut results, &mut skipped)?;
    }
    drop(server);
    if args.no_python {
        skipped.push(Skipped { row: "python".to_owned(), why: "--no-python".to_owned() });
    } else {
        for format in python::FORMATS {
            let dir = temp_dir()?;
            match with_wall(|| python::run(format, args, dir.path())) {
                Ok(r) => results.push(r),
                Err(why) => skipped.push(Skipped { row: format!("python-{format}"), why }),
            }
        }
    }
    for r in &mut results {
        r.timings.retain(|t| selected.contains(&t.workload));
    }
    let report = Report {
        n: args.n,
        value_size: args.value_size,
        seed: args.seed,
        build: if cfg!(debug_assertions) { "debug" } else { "release" },
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        wall_seconds: start.elapsed().as_secs_f64(),
        results,
        skipped,
        targets: Vec::new(),
    };
    let mut report = report;
    report.targets = targets(&report);
    let out_err = |e: std::io::Error| CliError::env(format!("cannot write output: {e}"));
    let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
    match &args.json {
        // `--json -`: the JSON on stdout instead of the table, for scripts.
        Some(p) if p.as_os_str() == "-" => out.write_all(text.as_bytes()).map_err(out_err)?,
        Some(p) => {
            table::print(&report, &selected, out).map_err(out_err)?;
            std::fs::write(p, text)
                .map_err(|e| CliError::env(format!("cannot write {}: {e}", p.display())))?;
        }
        None => table::print(&report, &selected, out).map_err(out_err)?,
    }
    if let Some(p) = &args.plot {
        crate::plot::bar_chart(&report, &selected, p)?;
    }
    Ok(())
}

/// The targets of issue 15 (speed) and issue 14 (redis) that the rows of
/// `r` can check, each as "ops/s of A over ops/s of B, at least X".
fn targets(r: &Report) -> Vec<Target> {
    let rate = |row: Option<&BackendResult>, w: &str| row.and_then(|b| b.timing(w)).map(|t| t.ops_per_sec);
    let mut out = Vec::new();
    let mut check = |what: String, a: Option<f64>, b: Option<f64>, at_least: f64| {
        if let (Some(a), Some(b)) = (a, b) {
            let ratio = a / b;
            out.push(Target { what, ratio, at_least, met: ratio >= at_least });
        }
    };
    // "<= 1.10x the time" is ">= 1/1.10 of the throughput".
    let time_110 = 1.0 / 1.10;
    for engine in ["redb", "sled"] {
        let raw = r.row(&format!("{engine}-raw"));
        check(
            format!("{engine} get vs {engine}-raw"),
            rate(r.shelf_row(engine, false), "get"),
            rate(raw, "get"),
            time_110,
        );
    }
    let redb_raw = r.row("redb-raw");
    check(
        "redb insert+sync vs redb-raw".into(),
        rate(r.shelf_row("redb", false), "insert"),
        rate(redb_raw, "insert"),
        time_110,
    );
    if let Some(gnu) = r.row("python-gnu") {
        for backend in ["dumb", "redb"] {
            let row = r.shelf_row(backend, true);
            check(
                format!("{backend} get vs python-gnu (pickle)"),
                rate(row, "get"),
                rate(Some(gnu), "get"),
                5.0,
            );
            check(
                format!("{backend} insert+sync vs python-gnu (pickle)"),
                rate(row, "insert"),
                rate(Some(gnu), "insert"),
                10.0,
            );
        }
    }
    for backend in ["redb", "dumb"] {
        let row = r.shelf_row(backend, false);
        check(format!("{backend} get-2t vs get"), rate(row, "get-2t"), rate(row, "get"), 1.7);
    }
    let redis = r.shelf_row("redis", false);
    let bench = r.row("redis-benchmark");
    check(
        "redis insert+sync vs redis-benchmark SET".into(),
        rate(redis, "insert"),
        rate(bench, "insert"),
        0.4,
    );
    check(
        "redis get-many vs redis-benchmark GET".into(),
        rate(redis, "get-many"),
        rate(bench, "get-many"),
        0.4,
    );
    out
}

/// Runs one row, recording its whole wall time in it.
fn with_wall<E>(row: impl FnOnce() -> Result<BackendResult, E>) -> Result<BackendResult, E> {
    let start = Instant::now();
    let mut r = row()?;
    r.row_seconds = Some(start.elapsed().as_secs_f64());
    Ok(r)
}

/// The bytes below `dir`, for a row that keeps its database there.
fn size_of(place: &Place) -> Option<u64> {
    match place {
        Place::Dir(d) => Some(crate::db::size_on_disk(d.path())),
        Place::Url(_) => None,
    }
}

/// Where the database of a row is: `dir/db`, or the URL.
fn location(place: &Place) -> PathBuf {
    match place {
        Place::Dir(d) => d.path().join("db"),
        Place::Url(u) => u.clone(),
    }
}

/// A row's name for messages: `redb`, `redb (pickle)`.
fn row_label(name: &str, protocol: Option<&Protocol>) -> String {
    match protocol {
        Some(p) => format!("{name} ({})", p.name()),
        None => name.to_owned(),
    }
}

/// Runs `work` on `items`, stopping once `BUDGET` has passed; returns how
/// many it did.
fn within_budget<T>(
    items: impl IntoIterator<Item = T>,
    mut work: impl FnMut(T) -> Result<(), CliError>,
) -> Result<usize, CliError> {
    let start = Instant::now();
    let mut done = 0;
    for item in items {
        work(item)?;
        done += 1;
        if start.elapsed() > BUDGET {
            break;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_has_help() {
        for w in WORKLOADS {
            assert!(WORKLOAD_HELP.iter().any(|(name, _)| name == w), "{w}");
        }
        assert_eq!(WORKLOAD_HELP.len(), WORKLOADS.len());
    }
}
