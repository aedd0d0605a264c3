//! `shelf bench`: the same workloads on every registered persistent backend
//! and, as the reference row, on CPython's `shelve` over `dbm.dumb` (run by
//! `python/bench_shelve.py` with the same N, value size and seed).
//!
//! Each backend gets a fresh database in its own temporary directory, so
//! the bytes on disk are simply the bytes in that directory. Values are
//! random bytes (`serde_bytes::ByteBuf`), stored with the protocol the shelf
//! picks by itself: pickle for Python formats (so a dumb shelf stays
//! readable by CPython), bincode elsewhere.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;
use serde_bytes::ByteBuf;
use shelf::{DynShelf, Flag, OpenOptions};

use crate::db;
use crate::error::CliError;
use crate::report::{BackendResult, Report, Timing};
use crate::rng::Rng;

/// The workloads, in the order they run (each builds on the state the one
/// before left).
pub const WORKLOADS: &[&str] = &["insert", "get", "overwrite", "iterate", "reopen", "delete"];

/// The Python script, shipped in the binary so `bench` works from any
/// directory; written to the temp dir and run there.
const PYTHON_SCRIPT: &str = include_str!("../python/bench_shelve.py");

/// How long the delete workload may run before it stops and reports the
/// rate so far (as `DELETE_BUDGET` in the Python script).
const DELETE_BUDGET: Duration = Duration::from_secs(5);

/// The name of the reference row.
pub const PYTHON_ROW: &str = "python-dumb";

/// Options of `shelf bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Keys per workload (`--n` is an older spelling, still accepted).
    #[arg(short = 'n', long = "keys", alias = "n", value_name = "N", default_value_t = 20_000)]
    pub n: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Comma-separated backends (default: every registered persistent backend).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub backends: Option<Vec<String>>,
    /// Comma-separated workloads to report: insert, get, overwrite, iterate, reopen, delete
    /// (the ones before a chosen one still run, untimed in the report, to set up its state).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub workloads: Option<Vec<String>>,
    /// Seed of the values and of the random key orders.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write every figure as JSON to FILE (`-`: to stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
    /// Draw ops/s per workload per backend as an SVG bar chart to FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Skip the CPython reference row.
    #[arg(long)]
    pub no_python: bool,
    /// Where backends that live at URLs run (`--backends redis --url
    /// redis://127.0.0.1:6379/0?namespace=bench`); the namespace is emptied.
    #[arg(long, value_name = "URL", value_parser = crate::db::parse_location)]
    pub url: Option<std::path::PathBuf>,
}

fn key(i: usize) -> String {
    format!("key{i:08}")
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

fn sync(s: &mut DynShelf) -> Result<(), CliError> {
    Ok(s.sync()?)
}

/// Runs every workload on one backend in `dir`.
fn bench_backend(name: &str, args: &BenchArgs, dir: &Path) -> Result<BackendResult, CliError> {
    let n = args.n;
    let path = if shelf::find_backend(name)?.schemes.is_empty() {
        dir.join("db")
    } else {
        args.url
            .clone()
            .ok_or_else(|| CliError::usage(format!("bench: backend '{name}' runs on a server: give --url")))?
    };
    let ctx = |e: CliError| e.context(format!("bench of backend '{name}'"));
    let open = |flag: Flag| -> Result<DynShelf, CliError> {
        OpenOptions::new().flag(flag).backend(name).open(&path).map_err(|e| ctx(e.into()))
    };
    let mut rng = Rng(args.seed);
    let keys: Vec<String> = (0..n).map(key).collect();
    let values: Vec<ByteBuf> = (0..n).map(|_| ByteBuf::from(rng.bytes(args.value_size))).collect();
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let bar = db::progress(Some(WORKLOADS.len() as u64), name);
    let mut timings = Vec::new();

    let mut s = open(Flag::New)?;
    let protocol = s.protocol().name().to_owned();
    let caps = s.capabilities()?;

    bar.set_message(format!("{name} insert"));
    let ((), d) = timed(|| {
        for (k, v) in keys.iter().zip(&values) {
            s.insert(k, v)?;
        }
        sync(&mut s)
    })
    .map_err(ctx)?;
    timings.push(timing("insert", n as u64, d));
    bar.inc(1);

    bar.set_message(format!("{name} get"));
    let (found, d) = timed(|| {
        let mut found = 0u64;
        for &i in &order {
            let v: Option<ByteBuf> = s.get(&keys[i])?;
            found += u64::from(v.is_some_and(|v| v.len() == args.value_size));
        }
        Ok(found)
    })
    .map_err(ctx)?;
    if found != n as u64 {
        return Err(ctx(CliError::data(format!("get found {found} of {n} values intact"))));
    }
    timings.push(timing("get", n as u64, d));
    bar.inc(1);

    bar.set_message(format!("{name} overwrite"));
    let fresh: Vec<ByteBuf> = (0..n).map(|_| ByteBuf::from(rng.bytes(args.value_size))).collect();
    let ((), d) = timed(|| {
        for &i in &order {
            s.insert(&keys[i], &fresh[i])?;
        }
        sync(&mut s)
    })
    .map_err(ctx)?;
    timings.push(timing("overwrite", n as u64, d));
    bar.inc(1);

    bar.set_message(format!("{name} iterate"));
    let (seen, d) = timed(|| {
        let mut seen = 0u64;
        for item in s.items::<ByteBuf>()? {
            let (_, v) = item?;
            seen += u64::from(v.len() == args.value_size);
        }
        Ok(seen)
    })
    .map_err(ctx)?;
    if seen != n as u64 {
        return Err(ctx(CliError::data(format!("iterate saw {seen} of {n} values intact"))));
    }
    timings.push(timing("iterate", n as u64, d));
    bar.inc(1);

    bar.set_message(format!("{name} reopen"));
    s.close().map_err(|e| ctx(e.into()))?;
    let (reopened, d) = timed(|| {
        let s = open(Flag::Write)?;
        let len = s.len()?;
        Ok((s, len))
    })?;
    let (mut s, len) = reopened;
    if len != n {
        return Err(ctx(CliError::data(format!("reopened with {len} of {n} keys"))));
    }
    timings.push(timing("reopen", n as u64, d));
    bar.inc(1);

    bar.set_message(format!("{name} delete"));
    let half = n / 2;
    let mut notes = Vec::new();
    let (done, d) = timed(|| {
        let start = Instant::now();
        let mut done = 0;
        for &i in &order[..half] {
            s.remove(&keys[i])?;
            done += 1;
            // The same budget as the Python row: a store that rewrites
            // its index on every delete (dbm.dumb does) is quadratic.
            if start.elapsed() > DELETE_BUDGET {
                break;
            }
        }
        sync(&mut s)?;
        Ok(done)
    })
    .map_err(ctx)?;
    if done < half {
        notes.push(format!("delete stopped after {} s at {done} of {half} keys", DELETE_BUDGET.as_secs()));
    }
    timings.push(timing("delete", done as u64, d));
    bar.inc(1);

    let bytes_after_sync = Some(db::size_on_disk(dir));
    let bytes_after_compact = if caps.compact {
        s.backend_mut()?.compact().map_err(|e| ctx(e.into()))?;
        sync(&mut s)?;
        Some(db::size_on_disk(dir))
    } else {
        None
    };
    s.close().map_err(|e| ctx(e.into()))?;
    bar.finish_and_clear();
    Ok(BackendResult {
        backend: name.to_owned(),
        protocol,
        timings,
        bytes_after_sync,
        bytes_after_compact,
        notes,
    })
}

/// Runs the Python reference row; `Err` says why it was skipped.
fn bench_python(args: &BenchArgs, dir: &Path) -> Result<BackendResult, String> {
    let script = dir.join("bench_shelve.py");
    std::fs::write(&script, PYTHON_SCRIPT).map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let bar = db::progress(None, PYTHON_ROW);
    bar.enable_steady_tick(Duration::from_millis(100));
    let output = Command::new("python3")
        .arg(&script)
        .args(["--n", &args.n.to_string(), "--value-size", &args.value_size.to_string()])
        .args(["--seed", &args.seed.to_string(), "--dir"])
        .arg(dir)
        .output();
    bar.finish_and_clear();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("python3 not found".into()),
        Err(e) => return Err(format!("cannot run python3: {e}")),
    };
    if !output.status.success() {
        return Err(format!(
            "python3 {} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("python3 printed JSON we cannot read: {e}"))
}

/// The default backends: every registered one whose data survives the
/// process (memory is left out: it would measure a `BTreeMap`).
fn persistent_backends() -> Vec<String> {
    shelf::backends().iter().filter(|b| b.capabilities.persistent).map(|b| b.name.to_owned()).collect()
}

fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

fn human_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.1}")
    }
}

/// `shelf bench`.
pub fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
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
    let mut results = Vec::new();
    for name in &names {
        let dir =
            tempfile::tempdir().map_err(|e| CliError::env(format!("bench: cannot make a temp dir: {e}")))?;
        results.push(bench_backend(name, args, dir.path())?);
    }
    let mut python_skipped = None;
    if args.no_python {
        python_skipped = Some("--no-python".to_owned());
    } else {
        let dir =
            tempfile::tempdir().map_err(|e| CliError::env(format!("bench: cannot make a temp dir: {e}")))?;
        match bench_python(args, dir.path()) {
            Ok(r) => results.push(r),
            Err(why) => python_skipped = Some(why),
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
        results,
        python_skipped,
    };
    let out_err = |e: std::io::Error| CliError::env(format!("cannot write output: {e}"));
    let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
    match &args.json {
        // `--json -`: the JSON on stdout instead of the table, for scripts.
        Some(p) if p.as_os_str() == "-" => out.write_all(text.as_bytes()).map_err(out_err)?,
        Some(p) => {
            print_table(&report, &selected, out).map_err(out_err)?;
            std::fs::write(p, text)
                .map_err(|e| CliError::env(format!("cannot write {}: {e}", p.display())))?;
        }
        None => print_table(&report, &selected, out).map_err(out_err)?,
    }
    if let Some(p) = &args.plot {
        crate::plot::bar_chart(&report, &selected, p)?;
    }
    Ok(())
}

fn print_table(r: &Report, selected: &[String], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "shelf bench: n={} value size={} B seed={} ({} build, {} cores)",
        r.n, r.value_size, r.seed, r.build, r.cores
    )?;
    let python = r.results.iter().find(|b| b.backend == PYTHON_ROW);
    writeln!(
        out,
        "{:<10} {:<12} {:<8} {:>10} {:>10} {:>10}",
        "workload", "backend", "protocol", "ops/s", "time", "vs python"
    )?;
    for w in selected {
        for b in &r.results {
            let Some(t) = b.timings.iter().find(|t| &t.workload == w) else { continue };
            let ratio = python
                .and_then(|p| p.timings.iter().find(|pt| &pt.workload == w))
                .map_or("-".to_owned(), |pt| format!("{:.2}x", t.ops_per_sec / pt.ops_per_sec));
            writeln!(
                out,
                "{:<10} {:<12} {:<8} {:>10} {:>8.1}ms {:>10}",
                w,
                b.backend,
                b.protocol,
                human_rate(t.ops_per_sec),
                t.seconds * 1e3,
                ratio
            )?;
        }
    }
    writeln!(out, "{:<10} {:<12} {:>12} {:>14}", "size", "backend", "after sync", "after compact")?;
    for b in &r.results {
        writeln!(
            out,
            "{:<10} {:<12} {:>12} {:>14}",
            "",
            b.backend,
            b.bytes_after_sync.map_or("-".to_owned(), human_bytes),
            b.bytes_after_compact.map_or("unsupported".to_owned(), human_bytes)
        )?;
    }
    writeln!(out, "ops/s of reopen = keys in the reopened database / time to open it and count them")?;
    for b in &r.results {
        for n in &b.notes {
            writeln!(out, "note ({}): {n}", b.backend)?;
        }
    }
    if let Some(why) = &r.python_skipped {
        writeln!(out, "python row skipped: {why}")?;
    }
    Ok(())
}
