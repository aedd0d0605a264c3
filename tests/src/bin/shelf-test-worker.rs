//! A worker process for the multi-process and crash tests: the tests start
//! it as a real process (never a thread) through `CARGO_BIN_EXE_shelf-test-worker`.
//!
//! Usage: `shelf-test-worker COMMAND ARGS...`, where COMMAND is one of
//! - `dir-mix ROOT ID N`: writes N private keys `pID/kI` and N writes to ten
//!   shared keys of the `dir` backend, reading shared keys back between
//!   writes; fails on any torn value;
//! - `write-later BACKEND PATH KEY VALUE DELAY_MS`: sleeps, then writes one
//!   key (for `wait_get`);
//! - `hset BACKEND PATH CATEGORY N`: `hset`s N entries `kI = I`;
//! - `crash-writer BACKEND PATH ROUND BATCHES KEYS`: writes BATCHES batches
//!   of KEYS keys (`rR-bB-kI`, values from [`shelf_tests::crash::value`]),
//!   calling `sync()` after each and printing `synced B` once it returns,
//!   until killed;
//! - `dumb-compact PATH KEYS`: rewrites KEYS keys of the dumb database at
//!   PATH with values from [`dumb_compact_value`] (growing, so each round
//!   leaves space to reclaim), round after round: `sync`, prints `synced R`,
//!   `compact`, prints `compacted R`, until killed.

use std::process::ExitCode;
use std::time::Duration;

use serde_bytes::ByteBuf;
use shelf::{Flag, OpenOptions, Protocol};

/// A value whose every byte is the same tag: a torn read (a mix of two
/// writes) shows up as two tags or a wrong length.
pub fn tagged(tag: u8, len: usize) -> ByteBuf {
    ByteBuf::from(vec![tag; len])
}

/// Whether `v` is a whole value written by [`tagged`].
pub fn is_whole(v: &[u8], len: usize) -> bool {
    v.len() == len && v.iter().all(|b| *b == v[0])
}

/// The value of key `k` in round `r` of `dumb-compact`: names both, and
/// its length changes with the round (so values move and leave garbage).
pub fn dumb_compact_value(k: u64, r: u64) -> Vec<u8> {
    let mut v = format!("k{k}:r{r}:").into_bytes();
    v.resize(200 + ((r % 4) * 700) as usize + (k % 5) as usize * 3, b'a' + (r % 26) as u8);
    v
}

fn dumb_compact(path: &str, keys: u64) -> Result<(), String> {
    use shelf_core::KvBackend;
    use shelf_core::raw::BackendOptions;
    use std::io::Write;
    let mut db = backend_dumb::DumbBackend::open(path.as_ref(), &BackendOptions::with_flag(Flag::Create))
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for r in 0.. {
        for k in 0..keys {
            db.insert(format!("k{k}").as_bytes(), &dumb_compact_value(k, r)).map_err(|e| e.to_string())?;
        }
        db.flush().map_err(|e| e.to_string())?;
        writeln!(out, "synced {r}").and_then(|()| out.flush()).map_err(|e| e.to_string())?;
        db.compact().map_err(|e| e.to_string())?;
        writeln!(out, "compacted {r}").and_then(|()| out.flush()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let arg = |i: usize| args.get(i).cloned().ok_or_else(|| format!("missing argument {i}"));
    let num = |i: usize| -> Result<u64, String> { arg(i)?.parse().map_err(|e| format!("argument {i}: {e}")) };
    match arg(0)?.as_str() {
        "dir-mix" => {
            let (root, id, n) = (arg(1)?, num(2)?, num(3)?);
            let mut db = OpenOptions::new()
                .backend("dir")
                .protocol(Protocol::pickle())
                .open(&root)
                .map_err(|e| e.to_string())?;
            const LEN: usize = 64 * 1024;
            for i in 0..n {
                let tag = (id * 31 + i) as u8;
                db.insert(format!("p{id}/k{i}"), &tagged(tag, LEN)).map_err(|e| e.to_string())?;
                db.insert(format!("shared/k{}", i % 10), &tagged(tag, LEN)).map_err(|e| e.to_string())?;
                let other = format!("shared/k{}", (i + 5) % 10);
                if let Some(v) = db.get::<ByteBuf>(&other).map_err(|e| e.to_string())?
                    && !is_whole(&v, LEN)
                {
                    return Err(format!("torn value read at {other}: {} bytes", v.len()));
                }
            }
            db.close().map_err(|e| e.to_string())
        }
        "write-later" => {
            let (backend, path, key, value, delay) = (arg(1)?, arg(2)?, arg(3)?, arg(4)?, num(5)?);
            std::thread::sleep(Duration::from_millis(delay));
            let mut db = OpenOptions::new().backend(backend).open(&path).map_err(|e| e.to_string())?;
            db.insert(&key, &value).map_err(|e| e.to_string())?;
            db.close().map_err(|e| e.to_string())
        }
        "hset" => {
            let (backend, path, category, n) = (arg(1)?, arg(2)?, arg(3)?, num(4)?);
            let mut db = OpenOptions::new()
                .backend(backend)
                .flag(Flag::Create)
                .open(&path)
                .map_err(|e| e.to_string())?;
            for i in 0..n {
                db.hset(&category, &format!("k{i}"), &(i as i64)).map_err(|e| e.to_string())?;
            }
            db.close().map_err(|e| e.to_string())
        }
        "crash-writer" => {
            let (backend, path, round, batches, keys) = (arg(1)?, arg(2)?, num(3)?, num(4)?, num(5)?);
            shelf_tests::crash::write_batches(&backend, &path, round, batches, keys)
        }
        "dumb-compact" => dumb_compact(&arg(1)?, num(2)?),
        "dump" => {
            use shelf_core::KvBackend as _;
            let (backend, path) = (arg(1)?, arg(2)?);
            let db = OpenOptions::new()
                .backend(backend)
                .flag(Flag::Read)
                .open(&path)
                .map_err(|e| e.to_string())?;
            let raw = db.backend().map_err(|e| e.to_string())?;
            let mut n = 0;
            for item in raw.iter().map_err(|e| e.to_string())? {
                item.map_err(|e| e.to_string())?;
                n += 1;
            }
            println!("{n} entries");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shelf-test-worker {}: {e}", args.join(" "));
            ExitCode::FAILURE
        }
    }
}
