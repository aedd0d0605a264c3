//! The sled backend against sled itself: 100k inserts (16-byte keys,
//! 100-byte values) then a flush, and 100k random gets, through
//! `SledBackend` and with sled's own API; gets also from a database written
//! before value checksums, to show their cost.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::any::Any;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use backend_sled::SledBackend;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use shelf_core::raw::{BackendOptions, bench_fill, bench_get_all, bench_keys, bench_value, wait_for_release};
use shelf_core::{Flag, Protocol, Shelf, ShelfOptions};

const N: u64 = 100_000;

fn raw_fill(path: &Path, keys: &[[u8; 16]]) -> (sled::Db, sled::Tree) {
    let db = sled::open(path).unwrap();
    let t = db.open_tree("shelf").unwrap();
    for (i, k) in keys.iter().enumerate() {
        t.insert(k, &bench_value(i)[..]).unwrap();
    }
    db.flush().unwrap();
    (db, t)
}

fn backend_fill(path: &Path, keys: &[[u8; 16]]) -> SledBackend {
    let mut db = SledBackend::open(path, &BackendOptions::with_flag(Flag::New)).unwrap();
    bench_fill(&mut db, keys).unwrap();
    db
}

/// Fills the database at a path, returning what must be dropped after the
/// timing.
type Fill<'a> = &'a dyn Fn(&Path) -> Box<dyn Any>;

fn insert_then_sync(c: &mut Criterion) {
    let keys = bench_keys(N);
    let mut g = c.benchmark_group("sled insert 100k then flush");
    g.sample_size(10);
    // Each in a fresh directory, made (and removed) outside the timing.
    let fills: [(&str, Fill<'_>); 2] = [
        ("raw sled", &|p| Box::new(raw_fill(p, &keys))),
        ("SledBackend", &|p| Box::new(backend_fill(p, &keys))),
    ];
    for (name, fill) in fills {
        g.bench_function(name, |b| {
            b.iter_batched(tempdir, |dir| (fill(&dir.path().join("db")), dir), BatchSize::PerIteration)
        });
    }
    g.finish();
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn random_get(c: &mut Criterion) {
    let keys = bench_keys(N);
    let mut order = keys.clone();
    order.reverse();
    let mut g = c.benchmark_group("sled random get 100k");
    g.sample_size(10);
    let dir = tempfile::tempdir().unwrap();
    let (_raw_db, raw) = raw_fill(&dir.path().join("raw"), &keys);
    g.bench_function("raw sled", |b| {
        b.iter(|| {
            for k in &order {
                black_box(raw.get(k).unwrap().map(|v| v.to_vec()));
            }
        });
    });
    let backend = backend_fill(&dir.path().join("backend"), &keys);
    g.bench_function("SledBackend", |b| b.iter(|| bench_get_all(&backend, &order).unwrap()));
    drop(backend);
    // Through a shelf, as an application reads: bincode, a 100-byte array.
    let shelf_path = dir.path().join("shelf");
    let mut shelf = Shelf::new(
        SledBackend::open(&shelf_path, &BackendOptions::with_flag(Flag::New)).unwrap(),
        ShelfOptions::new(Some(Protocol::Bincode)),
    )
    .unwrap();
    for (i, k) in keys.iter().enumerate() {
        shelf.insert(k, &serde_bytes::ByteArray::new(bench_value(i))).unwrap();
    }
    shelf.sync().unwrap();
    g.bench_function("Shelf<SledBackend>", |b| {
        b.iter(|| {
            for k in &order {
                black_box(shelf.get::<serde_bytes::ByteArray<100>>(k).unwrap());
            }
        })
    });
    drop(shelf);
    // The same reads of a database written before value checksums (layout
    // "1", plain values): the cost of verifying them, side by side.
    let legacy_path = dir.path().join("legacy");
    {
        let (db, _) = raw_fill(&legacy_path, &keys);
        let meta = db.open_tree(backend_sled::META_TREE).unwrap();
        meta.insert(backend_sled::MARKER_KEY, b"1").unwrap();
        db.flush().unwrap();
    }
    // sled's threads let go of the lock shortly after the drop.
    wait_for_release(&legacy_path.join("db"), Duration::from_secs(2));
    let legacy = SledBackend::open(&legacy_path, &BackendOptions::with_flag(Flag::Read)).unwrap();
    g.bench_function("SledBackend, database without checksums", |b| {
        b.iter(|| bench_get_all(&legacy, &order).unwrap())
    });
    g.finish();
}

criterion_group!(benches, insert_then_sync, random_get);
criterion_main!(benches);
