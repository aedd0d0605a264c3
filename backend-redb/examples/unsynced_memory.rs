//! Inserts 1,000,000 keys of 100-byte values into a redb shelf backend
//! before a single `flush`, and reports the process's peak memory (VmHWM):
//! the pending writes are bounded ([`backend_redb::DEFAULT_OVERLAY_BYTES`]:
//! past it the open write transaction is committed, not durably), so the
//! peak stays near that bound plus redb's own pages and cache, not the
//! 116 MB of data written (138 MiB measured on the project's VM). `cargo run --release -p backend-redb --example unsynced_memory`.

use std::time::Instant;

use backend_redb::RedbBackend;
use shelf_core::raw::BackendOptions;
use shelf_core::{Flag, KvBackend};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    kb / 1024.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let start = Instant::now();
    let mut db = RedbBackend::open(&dir.path().join("db.redb"), &BackendOptions::with_flag(Flag::New))?;
    let value = [7u8; 100];
    for i in 0..1_000_000u64 {
        db.insert(format!("{i:016}").as_bytes(), &value)?;
    }
    let before_sync = peak_rss_mib();
    db.flush()?;
    println!(
        "1000000 inserts of 100 B then one flush: {:.2} s; peak RSS before the flush {:.1} MiB, after {:.1} MiB \
         (bound of pending writes {} MiB)",
        start.elapsed().as_secs_f64(),
        before_sync,
        peak_rss_mib(),
        backend_redb::DEFAULT_OVERLAY_BYTES >> 20
    );
    Ok(())
}
