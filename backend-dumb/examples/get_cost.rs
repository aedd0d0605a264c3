//! Instructions per get, for callgrind: builds 100,000 keys of 100-byte
//! values (the keys of `shelf bench`), then gets every key once, in a
//! random order, through the path named on the command line, inside a
//! function callgrind can be told to count alone:
//!
//! ```text
//! cargo build --release -p backend-dumb --example get_cost
//! valgrind --tool=callgrind --toggle-collect='get_cost::once' \
//!     target/release/examples/get_cost dumb
//! ```
//!
//! Paths: `hashmap` (a `HashMap<Vec<u8>,Vec<u8>>` get + clone), `dumb`
//! (`DumbBackend::get`), `dumb-ro` (the same through a read-only handle),
//! `shelf-msgpack` / `shelf-bincode` (`Shelf::get::<ByteBuf>`),
//! `shelf-bytes` (`Shelf::get_bytes`, msgpack). The total divided by
//! 100,000 is the cost of one get.

use std::collections::HashMap;
use std::hint::black_box;

use backend_dumb::DumbBackend;
use serde_bytes::ByteBuf;
use shelf_core::raw::BackendOptions;
use shelf_core::{Flag, KvBackend, Protocol, Shelf};

const N: usize = 100_000;

fn key(i: usize) -> String {
    format!("key{i:08}")
}

fn value(i: usize) -> Vec<u8> {
    (0..100).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// A get through one path, shared by the threads of a timed round.
type Get<'a> = dyn Fn(&[u8]) -> usize + Sync + 'a;

/// Every key once: `get` is what callgrind counts (`--toggle-collect`).
/// With `GET_COST_ROUNDS=n` in the environment, `n` more rounds are timed
/// and the best round printed (for A/B runs of two builds, and best-of-n
/// on a machine others use); with `GET_COST_THREADS=t` each timed round
/// runs on `t` threads sharing the handle, each getting every key.
fn run(keys: &[Vec<u8>], get: &Get<'_>) -> usize {
    let found = once(keys, get);
    let var = |name: &str| std::env::var(name).ok().and_then(|r| r.parse::<usize>().ok());
    let rounds = var("GET_COST_ROUNDS").unwrap_or(0);
    let threads = var("GET_COST_THREADS").unwrap_or(1).max(1);
    let best = (0..rounds)
        .map(|_| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    s.spawn(move || {
                        // Each thread starts at its own place in the order.
                        let (a, b) = keys.split_at(t * keys.len() / threads);
                        black_box(once(b, get) + once(a, get));
                    });
                }
            });
            start.elapsed()
        })
        .min();
    if let Some(best) = best {
        let gets = (keys.len() * threads) as f64;
        println!(
            "best of {rounds} rounds on {threads} thread(s): {:.1} ns per get per thread, {:.3} M gets/s in all",
            best.as_nanos() as f64 / keys.len() as f64,
            gets / best.as_secs_f64() / 1e6
        );
    }
    found
}

#[inline(never)]
fn once(keys: &[Vec<u8>], get: &Get<'_>) -> usize {
    keys.iter().map(|k| get(k)).sum()
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "dumb".to_owned());
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut order: Vec<usize> = (0..N).map(|i| (i * 48_271 + 11) % N).collect();
    order.dedup();
    let keys: Vec<Vec<u8>> = order.iter().map(|&i| key(i).into_bytes()).collect();
    let found = match which.as_str() {
        "hashmap" => {
            let map: HashMap<Vec<u8>, Vec<u8>> = (0..N).map(|i| (key(i).into_bytes(), value(i))).collect();
            run(&keys, &|k| black_box(map.get(k).cloned()).map_or(0, |v| v.len()))
        }
        "dumb" | "dumb-ro" => {
            let path = dir.path().join("raw");
            let mut db = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::New)).expect("open");
            for i in 0..N {
                db.insert(key(i).as_bytes(), &value(i)).expect("insert");
            }
            db.flush().expect("flush");
            if which == "dumb-ro" {
                db.close().expect("close");
                db = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::Read)).expect("open");
            }
            run(&keys, &|k| black_box(db.get(k).expect("get")).map_or(0, |v| v.len()))
        }
        shelf => {
            let protocol = if shelf == "shelf-bincode" { Protocol::Bincode } else { Protocol::MessagePack };
            let backend = DumbBackend::open(&dir.path().join("shelf"), &BackendOptions::with_flag(Flag::New))
                .expect("open");
            let mut s = Shelf::with_backend(backend, protocol).expect("shelf");
            for i in 0..N {
                s.insert(key(i), &ByteBuf::from(value(i))).expect("insert");
            }
            s.sync().expect("sync");
            if shelf == "shelf-bytes" {
                run(&keys, &|k| black_box(s.get_bytes(k).expect("get")).map_or(0, |v| v.len()))
            } else {
                run(&keys, &|k| black_box(s.get::<ByteBuf>(k).expect("get")).map_or(0, |v| v.len()))
            }
        }
    };
    println!("{which}: {} gets, {found} bytes", keys.len());
}
