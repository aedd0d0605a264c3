//! The redb backend against redb itself: 100k inserts (16-byte keys,
//! 100-byte values) then a durable sync, and 100k random gets, each through
//! `RedbBackend`, through a `Shelf<RedbBackend>` (bincode byte-array values), and with
//! redb's own API in one write transaction / one read transaction; gets
//! also from a file written before value checksums, to show their cost.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use backend_redb::RedbBackend;
use criterion::{BatchSize, Bencher, Criterion, criterion_group, criterion_main};
use redb::{Database, ReadableDatabase, TableDefinition};
use shelf_core::raw::{BackendOptions, bench_fill, bench_get_all, bench_keys, bench_value};
use shelf_core::{Flag, Protocol, Shelf, ShelfOptions};

const N: u64 = 100_000;
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shelf");

fn raw_fill(path: &Path, keys: &[[u8; 16]]) -> Database {
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

fn backend_fill(path: &Path, keys: &[[u8; 16]]) -> RedbBackend {
    let mut db = RedbBackend::open(path, &BackendOptions::with_flag(Flag::New)).unwrap();
    bench_fill(&mut db, keys).unwrap();
    db
}

/// Times `fill` of a fresh directory, made (and removed) outside the timing.
fn in_fresh_dir<T>(b: &mut Bencher<'_>, fill: impl Fn(&Path) -> T) {
    b.iter_batched(
        || tempfile::tempdir().unwrap(),
        |dir| (fill(&dir.path().join("db")), dir),
        BatchSize::PerIteration,
    );
}

fn insert_then_sync(c: &mut Criterion) {
    let keys = bench_keys(N);
    let mut g = c.benchmark_group("redb insert 100k then sync");
    g.sample_size(10);
    g.bench_function("raw redb, one transaction", |b| in_fresh_dir(b, |p| raw_fill(p, &keys)));
    g.bench_function("RedbBackend", |b| in_fresh_dir(b, |p| backend_fill(p, &keys)));
    g.bench_function("Shelf<RedbBackend>", |b| {
        in_fresh_dir(b, |p| {
            let backend = RedbBackend::open(p, &BackendOptions::with_flag(Flag::New)).unwrap();
            let mut shelf = Shelf::new(backend, ShelfOptions::new(Some(Protocol::Bincode))).unwrap();
            for (i, k) in keys.iter().enumerate() {
                shelf.insert(k, &serde_bytes::ByteArray::new(bench_value(i))).unwrap();
            }
            shelf.sync().unwrap();
            shelf
        })
    });
    g.finish();
}

fn random_get(c: &mut Criterion) {
    let keys = bench_keys(N);
    let mut order = keys.clone();
    order.reverse();
    let mut g = c.benchmark_group("redb random get 100k");
    g.sample_size(10);
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_fill(&dir.path().join("raw"), &keys);
    g.bench_function("raw redb, one read transaction", |b| {
        b.iter(|| {
            let txn = raw.begin_read().unwrap();
            let t = txn.open_table(TABLE).unwrap();
            for k in &order {
                black_box(t.get(k.as_slice()).unwrap().map(|v| v.value().to_vec()));
            }
        });
    });
    let backend = backend_fill(&dir.path().join("backend"), &keys);
    g.bench_function("RedbBackend", |b| b.iter(|| bench_get_all(&backend, &order).unwrap()));
    // The same reads of a file written before value checksums (plain
    // values, no format record): the cost of verifying them, side by side.
    let legacy_path = dir.path().join("legacy");
    drop(raw_fill(&legacy_path, &keys));
    let legacy = RedbBackend::open(&legacy_path, &BackendOptions::with_flag(Flag::Read)).unwrap();
    g.bench_function("RedbBackend, file without checksums", |b| {
        b.iter(|| bench_get_all(&legacy, &order).unwrap())
    });
    g.finish();
}

fn open_existing(c: &mut Criterion) {
    let keys = bench_keys(N);
    let mut g = c.benchmark_group("redb open a 100k-entry file");
    g.sample_size(10);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(raw_fill(&path, &keys));
    g.bench_function("raw redb", |b| b.iter(|| black_box(Database::open(&path).unwrap())));
    g.bench_function("RedbBackend, flag w (verifies the file)", |b| {
        b.iter(|| black_box(RedbBackend::open(&path, &BackendOptions::with_flag(Flag::Write)).unwrap()))
    });
    g.bench_function("RedbBackend, flag r", |b| {
        b.iter(|| black_box(RedbBackend::open(&path, &BackendOptions::with_flag(Flag::Read)).unwrap()))
    });
    g.finish();
}

/// The checksum a get verifies, alone: one 16-byte key and 100-byte value.
fn value_checksum(c: &mut Criterion) {
    let key = [b'k'; 16];
    let sealed = shelf_core::raw::seal(&key, &bench_value(7));
    c.bench_function("redb verify one value checksum (16-byte key, 100-byte value)", |b| {
        b.iter(|| black_box(shelf_core::raw::unseal(black_box(&key), black_box(&sealed)).is_some()))
    });
}

criterion_group!(benches, insert_then_sync, random_get, open_existing, value_checksum);
criterion_main!(benches);
