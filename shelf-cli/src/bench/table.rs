//! The table `shelf bench` prints: one line per workload and row, with the
//! ratios that answer "what does the shelf cost over its engine" and "how
//! does it compare with CPython".

use std::io::Write;

use super::WORKLOAD_HELP;
use crate::report::{BackendResult, Report, RowKind};

/// The CPython row of the same file format as a shelf row's backend.
pub(crate) fn same_format<'r>(r: &'r Report, row: &BackendResult) -> Option<&'r BackendResult> {
    let python = match row.engine.as_str() {
        "dumb" => "python-dumb",
        "gnu" => "python-gnu",
        "sqlite" => "python-sqlite3",
        _ => return None,
    };
    r.row(python)
}

/// The raw engine's row (or the server's own benchmark) under a shelf row.
pub(crate) fn raw_of<'r>(r: &'r Report, row: &BackendResult) -> Option<&'r BackendResult> {
    r.results.iter().find(|x| matches!(x.kind, RowKind::Raw | RowKind::Reference) && x.engine == row.engine)
}

/// Whether a row stores pickles, so comparing it with CPython is like for
/// like.
fn pickled(row: &BackendResult) -> bool {
    row.protocol.starts_with("pickle")
}

fn ratio(row: &BackendResult, other: Option<&BackendResult>, workload: &str) -> String {
    let (Some(t), Some(o)) = (row.timing(workload), other.and_then(|o| o.timing(workload))) else {
        return "-".to_owned();
    };
    format!("{:.2}x", t.ops_per_sec / o.ops_per_sec)
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

/// Prints the table of `r` for the workloads `selected`.
pub(super) fn print(r: &Report, selected: &[String], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "shelf bench: n={} value size={} B seed={} ({} build, {} cores), ops/s: higher is better",
        r.n, r.value_size, r.seed, r.build, r.cores
    )?;
    let reference = r.python_reference();
    let ref_name = reference.map_or("python".to_owned(), |p| p.backend.clone());
    writeln!(
        out,
        "{:<10} {:<16} {:<8} {:>9} {:>10} {:>7} {:>8} {:>8}",
        "workload",
        "backend",
        "protocol",
        "ops/s",
        "time",
        "vs raw",
        format!("vs {}", ref_name.strip_prefix("python-").unwrap_or(&ref_name)),
        "vs same"
    )?;
    for w in selected {
        for b in &r.results {
            let Some(t) = b.timing(w) else { continue };
            let shelf_row = b.kind == RowKind::Shelf;
            let vs_raw = if shelf_row { ratio(b, raw_of(r, b), w) } else { "-".to_owned() };
            let (vs_ref, vs_same) = if shelf_row && pickled(b) {
                (ratio(b, reference, w), ratio(b, same_format(r, b), w))
            } else {
                ("-".to_owned(), "-".to_owned())
            };
            writeln!(
                out,
                "{:<10} {:<16} {:<8} {:>9} {:>8.1}ms {:>7} {:>8} {:>8}",
                w,
                b.backend,
                b.protocol,
                human_rate(t.ops_per_sec),
                t.seconds * 1e3,
                vs_raw,
                vs_ref,
                vs_same
            )?;
        }
    }
    writeln!(
        out,
        "{:<10} {:<16} {:<8} {:>12} {:>14}",
        "size", "backend", "protocol", "after sync", "after compact"
    )?;
    for b in &r.results {
        if b.bytes_after_sync.is_none() && b.bytes_after_compact.is_none() {
            continue;
        }
        writeln!(
            out,
            "{:<10} {:<16} {:<8} {:>12} {:>14}",
            "",
            b.backend,
            b.protocol,
            b.bytes_after_sync.map_or("-".to_owned(), human_bytes),
            b.bytes_after_compact.map_or("unsupported".to_owned(), human_bytes)
        )?;
    }
    for (w, help) in WORKLOAD_HELP {
        if selected.iter().any(|s| s == w) {
            writeln!(out, "{w:<10} = {help}")?;
        }
    }
    writeln!(
        out,
        "vs raw     = ops/s over the raw engine's row of this run (redb-raw, sled-raw, sqlite-raw, redis-benchmark)"
    )?;
    match reference {
        Some(p) => writeln!(
            out,
            "{:<10} = pickle rows only: ops/s over CPython's shelve on dbm.{} (pickle, this run)",
            format!("vs {}", p.backend.strip_prefix("python-").unwrap_or(&p.backend)),
            p.backend.strip_prefix("python-").unwrap_or(&p.backend)
        )?,
        None => writeln!(out, "vs python  = no CPython row ran (see below)")?,
    }
    writeln!(
        out,
        "vs same    = pickle rows only: over CPython's shelve on the same file format (dumb, gnu, sqlite3)"
    )?;
    // How get-2t ran is the same for every row: said once.
    let mut modes: Vec<&str> = Vec::new();
    for b in &r.results {
        for n in &b.notes {
            if let Some(mode) = n.strip_prefix("get-2t: ") {
                if !modes.contains(&mode) {
                    modes.push(mode);
                }
                continue;
            }
            writeln!(out, "note ({} {}): {n}", b.backend, b.protocol)?;
        }
    }
    for mode in modes {
        writeln!(out, "get-2t ran with {mode}")?;
    }
    for s in &r.skipped {
        writeln!(out, "{} row skipped: {}", s.row, s.why)?;
    }
    if !r.targets.is_empty() {
        writeln!(out, "targets (issues 15 and 14), ops/s ratios in this run:")?;
        for t in &r.targets {
            writeln!(
                out,
                "  {:<44} {:>7.2}x  (at least {:.2}x) {}",
                t.what,
                t.ratio,
                t.at_least,
                if t.met { "met" } else { "MISSED" }
            )?;
        }
    }
    writeln!(out, "wall time: {:.1} s", r.wall_seconds)?;
    Ok(())
}
