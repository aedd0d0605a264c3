//! Builds a dumb database of 1,000,000 keys of 16 bytes (100-byte values),
//! then reopens it in a fresh process and reports the time to open and the
//! process's peak memory (VmHWM), which is the index's footprint plus the
//! program: `cargo run --release -p backend-dumb --example million_keys`.

use std::path::Path;
use std::time::Instant;

use backend_dumb::DumbBackend;
use shelf_core::raw::BackendOptions;
use shelf_core::{Flag, KvBackend};

const KEYS: u64 = 1_000_000;

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
    let args: Vec<String> = std::env::args().collect();
    if let [_, cmd, path] = &args[..]
        && cmd == "reopen"
    {
        let start = Instant::now();
        let db = DumbBackend::open(Path::new(path), &BackendOptions::with_flag(Flag::Read))?;
        let n = db.len()?;
        let took = start.elapsed();
        println!("reopen: {n} keys in {:.3} s, peak RSS {:.1} MiB", took.as_secs_f64(), peak_rss_mib());
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("million");
    let start = Instant::now();
    let mut db = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::New))?;
    let value = [7u8; 100];
    for i in 0..KEYS {
        db.insert(format!("{i:016}").as_bytes(), &value)?;
    }
    db.close()?;
    println!(
        "build: {KEYS} keys in {:.3} s, peak RSS {:.1} MiB",
        start.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    let status = std::process::Command::new(std::env::current_exe()?).arg("reopen").arg(&path).status()?;
    if !status.success() {
        return Err(format!("reopen process failed: {status}").into());
    }
    Ok(())
}
