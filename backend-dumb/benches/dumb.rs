//! Per-operation costs of the dumb backend, and the zero-copy read:
//! `get_shared` of a 1 MiB, 10 MiB and 100 MiB value takes the same time
//! (no bytes are copied), while `get` grows with the size.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use backend_dumb::DumbBackend;
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use shelf_core::raw::BackendOptions;
use shelf_core::{Flag, KvBackend};

const N: u64 = 100_000;

fn key(i: u64) -> [u8; 16] {
    let mut k = [b'0'; 16];
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn insert_then_sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("dumb");
    g.sample_size(10);
    g.bench_function("insert 100k then sync", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let mut db =
                    DumbBackend::open(&dir.path().join("db"), &BackendOptions::with_flag(Flag::New)).unwrap();
                for i in 0..N {
                    db.insert(&key(i), &[7u8; 100]).unwrap();
                }
                db.flush().unwrap();
                dir
            },
            BatchSize::PerIteration,
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let mut db = DumbBackend::open(&dir.path().join("db"), &BackendOptions::with_flag(Flag::New)).unwrap();
    for i in 0..N {
        db.insert(&key(i), &[7u8; 100]).unwrap();
    }
    db.flush().unwrap();
    // A fixed pseudo-random order (an LCG over 0..N).
    let order: Vec<u64> = (0..N).map(|i| (i * 48_271 + 11) % N).collect();
    g.bench_function("random get 100k", |b| {
        b.iter(|| {
            for &i in &order {
                black_box(db.get(&key(i)).unwrap());
            }
        });
    });
    g.finish();
}

fn zero_copy(c: &mut Criterion) {
    let mut g = c.benchmark_group("dumb large value");
    g.sample_size(20);
    let dir = tempfile::tempdir().unwrap();
    let mut db = DumbBackend::open(&dir.path().join("db"), &BackendOptions::with_flag(Flag::New)).unwrap();
    let sizes = [1usize << 20, 10 << 20, 100 << 20];
    for &size in &sizes {
        db.insert(format!("v{size}").as_bytes(), &vec![0x5a; size]).unwrap();
    }
    db.flush().unwrap();
    for &size in &sizes {
        let k = format!("v{size}");
        g.bench_with_input(BenchmarkId::new("get_shared", size >> 20), &k, |b, k| {
            b.iter(|| black_box(db.get_shared(k.as_bytes()).unwrap().unwrap().len()));
        });
        g.bench_with_input(BenchmarkId::new("get (copy)", size >> 20), &k, |b, k| {
            b.iter(|| black_box(db.get(k.as_bytes()).unwrap().unwrap().len()));
        });
    }
    g.finish();
}

criterion_group!(benches, insert_then_sync, zero_copy);
criterion_main!(benches);
