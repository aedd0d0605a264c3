//! Where an insert-then-sync of `shelf bench`'s first workload goes: N keys
//! of 100-byte values through `Shelf<DumbBackend>` with pickle, timed in
//! phases (the inserts, then `sync`), beside the floor the file system
//! sets: writing a file of the `.dat`'s size and `fdatasync`ing it.
//!
//! ```text
//! cargo run --release -p backend-dumb --example sync_cost -- [N] [ROUNDS]
//! ```
//!
//! Defaults: N = 20,000 (the bench's), 5 rounds; prints each round and
//! the best. The figures are in docs/performance-dumb.md.

use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use shelf_core::{Flag, Protocol, Shelf, ShelfOptions};

use backend_dumb::DumbBackend;
use shelf_core::raw::BackendOptions;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(20_000, |a| a.parse().expect("N: a count of keys"));
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("ROUNDS: a count"));
    let keys: Vec<String> = (0..n).map(|i| format!("key{i:08}")).collect();
    let values: Vec<ByteBuf> =
        (0..n).map(|i| ByteBuf::from(shelf_core::raw::bench_value(i).to_vec())).collect();
    let mut best = [Duration::MAX; 4];
    println!("{n} keys, 100-byte values, pickle; ms per round");
    println!("{:>8} {:>8} {:>8} {:>10} {:>10}", "insert", "sync", "total", "fs write", "fs sync");
    for _ in 0..rounds {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let path = dir.path().join("db");
        let backend = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::New)).expect("open");
        let mut shelf =
            Shelf::new(backend, ShelfOptions::new(Some(Protocol::pickle()))).expect("a shelf over dumb");
        let t0 = Instant::now();
        for (k, v) in keys.iter().zip(&values) {
            shelf.insert(k, v).expect("insert");
        }
        let t1 = Instant::now();
        shelf.sync().expect("sync");
        let t2 = Instant::now();
        shelf.close().expect("close");
        // The floor: the same number of bytes as `.dat`, written and
        // fdatasynced in one piece.
        let dat_len = std::fs::metadata(path.with_extension("dat")).expect("the .dat").len() as usize;
        let mut f = File::create(dir.path().join("floor")).expect("a scratch file");
        let bytes = vec![7u8; dat_len];
        let t3 = Instant::now();
        f.write_all(&bytes).expect("write");
        let t4 = Instant::now();
        f.sync_data().expect("fdatasync");
        let t5 = Instant::now();
        let round = [t1 - t0, t2 - t1, t4 - t3, t5 - t4];
        for (b, r) in best.iter_mut().zip(round) {
            *b = (*b).min(r);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>10.2}   (.dat {dat_len} bytes)",
            ms(round[0]),
            ms(round[1]),
            ms(round[0] + round[1]),
            ms(round[2]),
            ms(round[3])
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "best: insert {:.2} ms, sync {:.2} ms; floor: write {:.2} ms + fdatasync {:.2} ms",
        ms(best[0]),
        ms(best[1]),
        ms(best[2]),
        ms(best[3])
    );
}
