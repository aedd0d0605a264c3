//! The crash test's writer and checker: a worker process writes batches and
//! prints each batch number once `sync()` has returned; the test kills it
//! with SIGKILL at random moments and checks that every batch reported as
//! synced is there, exactly, and that no value is torn.

use std::io::Write;

use serde_bytes::ByteBuf;
use shelf::{Flag, OpenOptions, Protocol};

/// The key of entry `i` of batch `b` in round `r` (a valid `dir` key too).
pub fn key(r: u64, b: u64, i: u64) -> String {
    format!("r{r}-b{b}-k{i}")
}

/// The value of a key: distinct per key, of varying size (some spanning
/// several 512-byte blocks), so a torn or misplaced value shows.
pub fn value(r: u64, b: u64, i: u64) -> ByteBuf {
    let head = format!("{r}:{b}:{i}:");
    let len = 20 + ((r * 7919 + b * 104_729 + i * 31) % 3000) as usize;
    let mut v = head.into_bytes();
    let fill = (r + b + i) as u8;
    v.resize(len, fill);
    ByteBuf::from(v)
}

/// The value batch `b + 1` overwrites key `(r, b, 0)` with: shorter than
/// [`value`] (so the dumb backend writes it in place, as CPython does) and
/// marked, so an old index reading new bytes (a torn value) shows.
pub fn overwritten(r: u64, b: u64, i: u64) -> ByteBuf {
    let mut v = value(r, b, i).into_vec();
    v.truncate(v.len() - 9);
    v.insert(0, b'#');
    ByteBuf::from(v)
}

/// The protocol every crash test uses, so values decode on any backend.
pub const PROTOCOL: Protocol = Protocol::Bincode;

/// The worker's loop (see `shelf-test-worker crash-writer`).
///
/// # Errors
/// Any open, write or sync error, as text.
pub fn write_batches(backend: &str, path: &str, round: u64, batches: u64, keys: u64) -> Result<(), String> {
    let mut db = OpenOptions::new()
        .backend(backend)
        .protocol(PROTOCOL)
        .flag(Flag::Create)
        .open(path)
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for b in 0..batches {
        for i in 0..keys {
            db.insert(key(round, b, i), &value(round, b, i)).map_err(|e| e.to_string())?;
        }
        // Overwrite a key of the previous batch (in place on dumb): a
        // crash in the middle must not tear anything synced.
        if b > 0 {
            db.insert(key(round, b - 1, 0), &overwritten(round, b - 1, 0)).map_err(|e| e.to_string())?;
        }
        db.sync().map_err(|e| e.to_string())?;
        writeln!(out, "synced {b}").and_then(|()| out.flush()).map_err(|e| e.to_string())?;
    }
    db.close().map_err(|e| e.to_string())
}
