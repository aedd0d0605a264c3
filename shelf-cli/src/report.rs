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

/// Every figure of one backend (or of the Python row).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendResult {
    /// The backend's name (`python-dumb` for the reference row).
    pub backend: String,
    /// The protocol values were stored with.
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
    /// One entry per backend, the Python row last.
    pub results: Vec<BackendResult>,
    /// Why the Python row is missing, if it is.
    pub python_skipped: Option<String>,
}
