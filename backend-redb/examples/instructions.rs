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

use backend_redb::RedbBackend;
use redb::{Database, ReadableDatabase, TableDefinition};
use serde_bytes::ByteArray;
use shelf_core::raw::{BackendOptions, bench_keys, bench_value};
use shelf_core::{Flag, KvBackend, Protocol, Shelf, ShelfOptions};

/// Keys per step, unless the second argument says otherwise (`shelf
/// bench` uses 20,000).
const N: u64 = 100_000;
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shelf");

type Keys = [[u8; 16]];

fn raw_insert(path: &Path, keys: &Keys) -> Database {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(TABLE).unwrap();
        for (i, k) in keys.iter().enumerate() {
            t.insert(k.as_slice(), bench_value(i).as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
    db
}

fn backend_insert(path: &Path, keys: &Keys) -> RedbBackend {
    let mut b = RedbBackend::open(path, &BackendOptions::with_flag(Flag::New)).unwrap();
    for (i, k) in keys.iter().enumerate() {
        b.insert(k, &bench_value(i)).unwrap();
    }
    b.flush().unwrap();
    b
}

fn shelf_insert(path: &Path, keys: &Keys) -> Shelf<RedbBackend> {
    let b = RedbBackend::open(path, &BackendOptions::with_flag(Flag::New)).unwrap();
    let mut s = Shelf::new(b, ShelfOptions::new(Some(Protocol::Bincode))).unwrap();
    for (i, k) in keys.iter().enumerate() {
        s.insert(k, &ByteArray::new(bench_value(i))).unwrap();
    }
    s.sync().unwrap();
    s
}

#[inline(never)]
fn measured_raw_insert(path: &Path, keys: &Keys) -> Database {
    raw_insert(path, keys)
}

#[inline(never)]
fn measured_backend_insert(path: &Path, keys: &Keys) -> RedbBackend {
    backend_insert(path, keys)
}

#[inline(never)]
fn measured_shelf_insert(path: &Path, keys: &Keys) -> Shelf<RedbBackend> {
    shelf_insert(path, keys)
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

/// A shelf in `protocol` holding the bench's values as `ByteBuf`s.
fn shelf_in(path: &Path, keys: &Keys, protocol: Protocol) -> Shelf<RedbBackend> {
    let b = RedbBackend::open(path, &BackendOptions::with_flag(Flag::New)).unwrap();
    let mut s = Shelf::new(b, ShelfOptions::new(Some(protocol))).unwrap();
    for (i, k) in keys.iter().enumerate() {
        s.insert(k, &serde_bytes::ByteBuf::from(bench_value(i).to_vec())).unwrap();
    }
    s.sync().unwrap();
    s
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
        "raw-get" => measured_raw_get(&raw_insert(&path, &keys), &order),
        "backend-get" => measured_backend_get(&backend_insert(&path, &keys), &order),
        "shelf-get" => measured_shelf_get(&shelf_insert(&path, &keys), &order),
        "shelf-get-pickle" => measured_shelf_get_bytebuf(&shelf_in(&path, &keys, Protocol::pickle()), &order),
        "shelf-get-msgpack" => {
            measured_shelf_get_bytebuf(&shelf_in(&path, &keys, Protocol::msgpack()), &order)
        }
        "raw-open" => {
            drop(raw_insert(&path, &keys));
            measured_raw_open(&path);
        }
        "backend-open" => {
            drop(backend_insert(&path, &keys));
            measured_backend_open(&path);
        }
        other => {
            eprintln!("unknown step {other:?}: see the file's docs");
            std::process::exit(2);
        }
    }
}
