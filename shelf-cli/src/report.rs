//! The figures of one `shelf bench` run, as `--json` writes them and the
//! table and chart read them (its own module, so the bench that fills it
//! and the chart that draws it do not import each other).

use serde::{Deserialize, Serialize};

/// One timed workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    /// The workload's name.
    pub workload: String,
    /// Operations done (keys inserted, read, deleted...).
    pub ops: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// `ops / seconds`.
    pub ops_per_sec: f64,
}

/// What a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowKind {
    /// A shelf over one of our backends.
    Shelf,
    /// An engine through its own API, no shelf (raw redb, sled, SQLite).
    Raw,
    /// CPython's `shelve` over one of its `dbm` formats.
    Python,
    /// A server's own benchmark tool (`redis-benchmark -P 64`).
    Reference,
}

/// Every figure of one row: a backend with one protocol, a raw engine, or
/// a CPython format.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendResult {
    /// The row's name: the backend's (`redb`), `redb-raw`, `python-gnu`,
    /// `redis-benchmark`.
    pub backend: String,
    /// What the row measures.
    #[serde(default = "shelf_kind")]
    pub kind: RowKind,
    /// The engine or file format under the row (`redb`, `gnu`, `dumb`,
    /// `sqlite`...): rows of one engine share it, and the chart its colour.
    #[serde(default)]
    pub engine: String,
    /// The protocol values were stored with (`-` for raw bytes).
    pub protocol: String,
    /// The timed workloads.
    pub timings: Vec<Timing>,
    /// Bytes on disk after the last sync.
    pub bytes_after_sync: Option<u64>,
    /// Bytes on disk after compact, where the backend compacts.
    pub bytes_after_compact: Option<u64>,
    /// Anything the reader of the figures should know.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Wall time of the whole row (opens, untimed setup and compaction
    /// included), in seconds: where the bench's own run time goes.
    #[serde(default)]
    pub row_seconds: Option<f64>,
}

fn shelf_kind() -> RowKind {
    RowKind::Shelf
}

impl BackendResult {
    /// The timing of `workload`, if the row ran it.
    pub fn timing(&self, workload: &str) -> Option<&Timing> {
        self.timings.iter().find(|t| t.workload == workload)
    }
}

/// A row that did not run, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    /// The row's name (`python-gnu`, `redis`).
    pub row: String,
    /// Why it did not run.
    pub why: String,
}

/// One target of the speed issues, checked on this run's rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// What is compared: `redb get vs redb-raw`.
    pub what: String,
    /// ops/s of the first over ops/s of the second.
    pub ratio: f64,
    /// The least ratio that meets the target.
    pub at_least: f64,
    /// `ratio >= at_least`.
    pub met: bool,
}

/// The whole run, as `--json` writes it.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Keys per workload.
    pub n: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// The seed.
    pub seed: u64,
    /// `release` or `debug`.
    pub build: &'static str,
    /// CPU cores the machine reports.
    pub cores: usize,
    /// Wall time of the whole run, in seconds.
    pub wall_seconds: f64,
    /// The rows: per backend its shelf row, its pickle row and its raw
    /// engine's row, then the CPython rows, then reference tools.
    pub results: Vec<BackendResult>,
    /// Rows that did not run, with the reason.
    pub skipped: Vec<Skipped>,
    /// The targets of issues 14 and 15 this run's rows can check.
    pub targets: Vec<Target>,
}

impl Report {
    /// The row called `name`.
    pub fn row(&self, name: &str) -> Option<&BackendResult> {
        self.results.iter().find(|r| r.backend == name)
    }

    /// The shelf row of `backend`: with its own protocol (`pickle: false`,
    /// its first row) or with pickle.
    pub fn shelf_row(&self, backend: &str, pickle: bool) -> Option<&BackendResult> {
        let mut rows = self.results.iter().filter(|r| r.kind == RowKind::Shelf && r.backend == backend);
        if pickle { rows.find(|r| r.protocol.starts_with("pickle")) } else { rows.next() }
    }

    /// The CPython row every pickle row is compared with: `dbm.gnu`, the
    /// format CPython's `shelve` picks on Linux before 3.13, else
    /// `dbm.sqlite3` (its pick from 3.13), else `dbm.dumb`.
    pub fn python_reference(&self) -> Option<&BackendResult> {
        ["python-gnu", "python-sqlite3", "python-dumb"].iter().find_map(|n| self.row(n))
    }
}
