//! One measured step of the criterion bench, alone, for instruction counts
//! under callgrind (steadier than time on a busy machine): the setup runs
//! outside the functions named `measured_*`, which callgrind is told to
//! count.
//!
//! ```sh
//! cargo build --release -p backend-redb --example instructions
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_*' \
//!     target/release/examples/instructions raw-get [N]
//! ```
//! Steps: `raw-get`, `backend-get`, `shelf-get` (100k gets),
//! `shelf-get-pickle`, `shelf-get-msgpack` (100k gets of a `ByteBuf`, as
//! `shelf bench` does, in either protocol), `raw-insert`,
//! `backend-insert`, `shelf-insert` (100k inserts and a durable commit),
//! `raw-open`, `backend-open` (reopening a cleanly closed 100k-entry file).

use std::hint::black_box;
use std::path::Path;

#[path = "../benches/common/mod.rs"]
mod common;

use backend_redb::RedbBackend;
use redb::{Database, ReadableDatabase};
use serde_bytes::ByteArray;
use shelf_core::raw::{BackendOptions, bench_keys};
use shelf_core::{Flag, KvBackend, Protocol, Shelf};

use common::{TABLE, backend_fill, raw_fill, shelf_fill};

/// Keys per step, unless the second argument says otherwise (`shelf
/// bench` uses 20,000).
const N: u64 = 100_000;
type Keys = [[u8; 16]];

#[inline(never)]
fn measured_raw_insert(path: &Path, keys: &Keys) -> Database {
    raw_fill(path, keys)
}

#[inline(never)]
fn measured_backend_insert(path: &Path, keys: &Keys) -> RedbBackend {
    backend_fill(path, keys)
}

#[inline(never)]
fn measured_shelf_insert(path: &Path, keys: &Keys) -> Shelf<RedbBackend> {
    shelf_fill(path, keys, Protocol::Bincode)
}

#[inline(never)]
fn measured_raw_get(db: &Database, keys: &Keys) {
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(TABLE).unwrap();
    for k in keys {
        black_box(t.get(k.as_slice()).unwrap().map(|v| v.value().to_vec()));
    }
}

#[inline(never)]
fn measured_backend_get(b: &RedbBackend, keys: &Keys) {
    for k in keys {
        black_box(b.get(k).unwrap());
    }
}

#[inline(never)]
fn measured_shelf_get(s: &Shelf<RedbBackend>, keys: &Keys) {
    for k in keys {
        black_box(s.get::<ByteArray<100>>(k).unwrap());
    }
}

/// The `shelf bench` get: a `ByteBuf` out of a shelf in `protocol`.
#[inline(never)]
fn measured_shelf_get_bytebuf(s: &Shelf<RedbBackend>, keys: &Keys) {
    for k in keys {
        black_box(s.get::<serde_bytes::ByteBuf>(k).unwrap());
    }
}

#[inline(never)]
fn measured_raw_open(path: &Path) {
    drop(black_box(Database::open(path).unwrap()));
}

#[inline(never)]
fn measured_backend_open(path: &Path) {
    drop(black_box(RedbBackend::open(path, &BackendOptions::with_flag(Flag::Write)).unwrap()));
}

fn main() {
    let step = std::env::args().nth(1).unwrap_or_default();
    let n = std::env::args().nth(2).map_or(N, |a| a.parse().expect("the second argument: a count of keys"));
    let keys = bench_keys(n);
    let mut order = keys.clone();
    order.reverse();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    match step.as_str() {
        "raw-insert" => drop(measured_raw_insert(&path, &keys)),
        "backend-insert" => drop(measured_backend_insert(&path, &keys)),
        "shelf-insert" => drop(measured_shelf_insert(&path, &keys)),
        "raw-get" => measured_raw_get(&raw_fill(&path, &keys), &order),
        "backend-get" => measured_backend_get(&backend_fill(&path, &keys), &order),
        "shelf-get" => measured_shelf_get(&shelf_fill(&path, &keys, Protocol::Bincode), &order),
        "shelf-get-pickle" => {
            measured_shelf_get_bytebuf(&shelf_fill(&path, &keys, Protocol::pickle()), &order)
        }
        "shelf-get-msgpack" => {
            measured_shelf_get_bytebuf(&shelf_fill(&path, &keys, Protocol::msgpack()), &order)
        }
        "raw-open" => {
            drop(raw_fill(&path, &keys));
            measured_raw_open(&path);
        }
        "backend-open" => {
            drop(backend_fill(&path, &keys));
            measured_backend_open(&path);
        }
        other => {
            eprintln!("unknown step {other:?}: see the file's docs");
            std::process::exit(2);
        }
    }
}
