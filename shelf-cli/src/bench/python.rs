//! The CPython rows: `shelve` over each `dbm` format some CPython on the
//! machine has, run by `python/bench_shelve.py`.
//!
//! Interpreters are tried in this order, each asked once which formats it
//! has: `python3` on PATH, Debian's `/usr/bin/python3` (dbm.gnu with the
//! python3-gdbm package), `python3.14` and `python3.13` on PATH, then every
//! pyenv version, newest first (`PYENV_VERSION=3.13.0 pyenv exec python3`).
//! Each format runs on the first interpreter that has it: `dumb` on any
//! CPython 3.9 or later, `gnu` on one built with `_gdbm`, `sqlite3` on
//! CPython 3.13 or later.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::{BUDGET, BenchArgs};
use crate::report::BackendResult;

/// The formats, in the order their rows run.
pub(super) const FORMATS: [&str; 3] = ["dumb", "gnu", "sqlite3"];

/// The script, shipped in the binary so `bench` works from any directory;
/// written to the row's temporary directory and run there.
const SCRIPT: &str = include_str!("../../python/bench_shelve.py");

/// Asks an interpreter which formats it has (`random.randbytes`, which the
/// script uses, is 3.9's).
const PROBE: &str = r"import sys, importlib
ok = []
if sys.version_info >= (3, 9):
    for f in ('dumb', 'gnu', 'sqlite3'):
        try:
            importlib.import_module('dbm.' + f)
            ok.append(f)
        except Exception:
            pass
print(sys.version.split()[0], ' '.join(ok))
";

/// One CPython to run.
#[derive(Debug, Clone)]
struct Python {
    /// How the report names it: `python3`, `/usr/bin/python3`, `pyenv 3.13.0`.
    label: String,
    program: String,
    args: Vec<String>,
    pyenv_version: Option<String>,
}

impl Python {
    fn on_path(program: &str) -> Python {
        Python { label: program.to_owned(), program: program.to_owned(), args: vec![], pyenv_version: None }
    }

    fn pyenv(version: &str) -> Python {
        Python {
            label: format!("pyenv {version}"),
            program: "pyenv".to_owned(),
            args: vec!["exec".to_owned(), "python3".to_owned()],
            pyenv_version: Some(version.to_owned()),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        if let Some(v) = &self.pyenv_version {
            c.env("PYENV_VERSION", v);
        }
        c
    }
}

/// An interpreter that answered the probe: its version and formats.
#[derive(Debug, Clone)]
struct Found {
    python: Python,
    version: String,
    formats: Vec<String>,
}

/// The interpreters, each probed once per process, in preference order;
/// and the label of every candidate tried.
fn interpreters() -> &'static (Vec<Found>, Vec<String>) {
    static FOUND: OnceLock<(Vec<Found>, Vec<String>)> = OnceLock::new();
    FOUND.get_or_init(|| {
        let mut candidates: Vec<Python> = ["python3", "/usr/bin/python3", "python3.14", "python3.13"]
            .iter()
            .map(|p| Python::on_path(p))
            .collect();
        if let Ok(o) = Command::new("pyenv").args(["versions", "--bare"]).output()
            && o.status.success()
        {
            let mut versions: Vec<Vec<u32>> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().split('.').map(|p| p.parse().ok()).collect::<Option<Vec<u32>>>())
                .filter(|v| v.first() == Some(&3))
                .collect();
            versions.sort_by(|a, b| b.cmp(a));
            candidates.extend(
                versions
                    .iter()
                    .map(|v| Python::pyenv(&v.iter().map(u32::to_string).collect::<Vec<_>>().join("."))),
            );
        }
        let mut found = Vec::new();
        let mut tried = Vec::new();
        let mut missing: Vec<&str> = FORMATS.to_vec();
        for python in candidates {
            if missing.is_empty() {
                break;
            }
            tried.push(python.label.clone());
            let Ok(o) = python.command().args(["-c", PROBE]).output() else { continue };
            if !o.status.success() {
                continue;
            }
            let text = String::from_utf8_lossy(&o.stdout);
            let mut words = text.split_whitespace();
            let version = words.next().unwrap_or("?").to_owned();
            let formats: Vec<String> = words.map(str::to_owned).collect();
            missing.retain(|f| !formats.iter().any(|g| g == f));
            found.push(Found { python, version, formats });
        }
        (found, tried)
    })
}

/// Why no interpreter has `format`.
fn missing_reason(format: &str, tried: &[String]) -> String {
    let what = match format {
        "gnu" => "no CPython here has dbm.gnu (Debian: apt-get install python3-gdbm)",
        "sqlite3" => "no CPython 3.13 or later here (dbm.sqlite3 is 3.13's)",
        _ => "no CPython 3.9 or later here",
    };
    if tried.is_empty() { what.to_owned() } else { format!("{what}; tried {}", tried.join(", ")) }
}

/// Runs the row of `format`; `Err` says why it was skipped.
pub(super) fn run(format: &str, args: &BenchArgs, dir: &Path) -> Result<BackendResult, String> {
    let (found, tried) = interpreters();
    let Some(f) = found.iter().find(|f| f.formats.iter().any(|g| g == format)) else {
        return Err(missing_reason(format, tried));
    };
    let script = dir.join("bench_shelve.py");
    std::fs::write(&script, SCRIPT).map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let bar = crate::db::progress(None, &format!("python-{format}"));
    bar.enable_steady_tick(Duration::from_millis(100));
    let output = f
        .python
        .command()
        .arg(&script)
        .args(["--format", format, "--n", &args.n.to_string()])
        .args(["--value-size", &args.value_size.to_string(), "--seed", &args.seed.to_string()])
        .args(["--budget", &BUDGET.as_secs_f64().to_string(), "--dir"])
        .arg(dir)
        .output();
    bar.finish_and_clear();
    let output = output.map_err(|e| format!("cannot run {}: {e}", f.python.label))?;
    if !output.status.success() {
        return Err(format!(
            "{} (CPython {}) failed on {} ({}): {}",
            f.python.label,
            f.version,
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("{} printed JSON we cannot read: {e}", f.python.label))
}
