//! The sled backend against sled itself: 100k inserts (16-byte keys,
//! 100-byte values) then a flush, and 100k random gets, through
//! `SledBackend` and with sled's own API; gets also from a database written
//! before value checksums, to show their cost.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use backend_sled::SledBackend;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use shelf_core::raw::BackendOptions;
use shelf_core::{Flag, KvBackend};

const N: u64 = 100_000;

/// 16-byte keys in a scrambled order (a bijection of 0..N).
fn keys() -> Vec<[u8; 16]> {
    (0..N)
        .map(|i| {
            let x = (i * 48_271 + 11) % N;
            let mut k = [b'k'; 16];
            k[8..].copy_from_slice(&x.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            k
        })
        .collect()
}

fn value(i: usize) -> [u8; 100] {
    [i as u8; 100]
}

fn raw_fill(path: &Path, keys: &[[u8; 16]]) -> (sled::Db, sled::Tree) {
    let db = sled::open(path).unwrap();
    let t = db.open_tree("shelf").unwrap();
    for (i, k) in keys.iter().enumerate() {
        t.insert(k, &value(i)[..]).unwrap();
    }
    db.flush().unwrap();
    (db, t)
}

fn backend_fill(path: &Path, keys: &[[u8; 16]]) -> SledBackend {
    let mut db = SledBackend::open(path, &BackendOptions::with_flag(Flag::New)).unwrap();
    for (i, k) in keys.iter().enumerate() {
        db.insert(k, &value(i)).unwrap();
    }
    db.flush().unwrap();
    db
}

fn insert_then_sync(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("sled insert 100k then flush");
    g.sample_size(10);
    g.bench_function("raw sled", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| (raw_fill(&dir.path().join("db"), &keys), dir),
            BatchSize::PerIteration,
        );
    });
    g.bench_function("SledBackend", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| (backend_fill(&dir.path().join("db"), &keys), dir),
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

fn random_get(c: &mut Criterion) {
    let keys = keys();
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
    g.bench_function("SledBackend", |b| {
        b.iter(|| {
            for k in &order {
                black_box(backend.get(k).unwrap());
            }
        });
    });
    // The same reads of a database written before value checksums (layout
    // "1", plain values): the cost of verifying them, side by side.
    let legacy_path = dir.path().join("legacy");
    {
        let (db, _) = raw_fill(&legacy_path, &keys);
        let meta = db.open_tree(backend_sled::META_TREE).unwrap();
        meta.insert(backend_sled::MARKER_KEY, b"1").unwrap();
        db.flush().unwrap();
    }
    let legacy = loop {
        // sled's threads let go of the lock shortly after the drop.
        match SledBackend::open(&legacy_path, &BackendOptions::with_flag(Flag::Read)) {
            Ok(b) => break b,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    };
    g.bench_function("SledBackend, database without checksums", |b| {
        b.iter(|| {
            for k in &order {
                black_box(legacy.get(k).unwrap());
            }
        });
    });
    g.finish();
}

criterion_group!(benches, insert_then_sync, random_get);
criterion_main!(benches);
