//! The read path against what users compare it with (issue 15): a random
//! get of 100,000 keys of 100-byte values, beside a `HashMap<Vec<u8>,
//! Vec<u8>>` get + clone, through the backend and through a `Shelf`; and
//! gets on one and two threads sharing one handle, beside the same for the
//! `HashMap` (how far this machine scales at all).
//!
//! Run short: `cargo bench -p backend-dumb --bench read -- --warm-up-time 1
//! --measurement-time 3`. Figures: docs/performance-dumb.md.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use backend_dumb::DumbBackend;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_bytes::ByteBuf;
use shelf_core::raw::BackendOptions;
use shelf_core::{Flag, KvBackend, Protocol, Shelf};

const N: usize = 100_000;

/// The keys of `shelf bench`.
fn key(i: usize) -> String {
    format!("key{i:08}")
}

/// The shared benchmark value of key `i` (`raw::bench_value`), owned.
fn value(i: usize) -> Vec<u8> {
    shelf_core::raw::bench_value(i).to_vec()
}

/// A fixed random order of 0..N (Fisher-Yates over an LCG).
fn order() -> Vec<usize> {
    let mut o: Vec<usize> = (0..N).collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in (1..N).rev() {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        o.swap(i, (x >> 33) as usize % (i + 1));
    }
    o
}

/// The data every bench reads: keys in random order, the map, and a
/// writer and a read-only handle on one dumb database.
struct Data {
    keys: Vec<Vec<u8>>,
    map: HashMap<Vec<u8>, Vec<u8>>,
    writer: DumbBackend,
    reader: DumbBackend,
    _dir: tempfile::TempDir,
}

fn data() -> Data {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw");
    let mut writer = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::New)).unwrap();
    let mut map = HashMap::new();
    for i in 0..N {
        writer.insert(key(i).as_bytes(), &value(i)).unwrap();
        map.insert(key(i).into_bytes(), value(i));
    }
    writer.flush().unwrap();
    let reader = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::Read)).unwrap();
    let keys = order().into_iter().map(|i| key(i).into_bytes()).collect();
    Data { keys, map, writer, reader, _dir: dir }
}

fn get_vs_hashmap(c: &mut Criterion) {
    let d = data();
    let mut g = c.benchmark_group("random get 100k");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("HashMap get+clone", |b| {
        b.iter(|| {
            for k in &d.keys {
                black_box(d.map.get(k.as_slice()).cloned());
            }
        });
    });
    g.bench_function("dumb get (writer handle)", |b| {
        b.iter(|| {
            for k in &d.keys {
                black_box(d.writer.get(k).unwrap());
            }
        });
    });
    g.bench_function("dumb get (read-only handle)", |b| {
        b.iter(|| {
            for k in &d.keys {
                black_box(d.reader.get(k).unwrap());
            }
        });
    });
    g.bench_function("dumb get_many 100 x 1000", |b| {
        let refs: Vec<&[u8]> = d.keys.iter().map(Vec::as_slice).collect();
        b.iter(|| {
            for chunk in refs.chunks(100) {
                black_box(d.writer.get_many(chunk).unwrap());
            }
        });
    });
    for protocol in [Protocol::MessagePack, Protocol::Bincode] {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            DumbBackend::open(&dir.path().join("shelf"), &BackendOptions::with_flag(Flag::New)).unwrap();
        let mut shelf = Shelf::with_backend(backend, protocol).unwrap();
        for i in 0..N {
            shelf.insert(key(i), &ByteBuf::from(value(i))).unwrap();
        }
        shelf.sync().unwrap();
        g.bench_function(format!("Shelf<dumb> get::<ByteBuf> ({})", protocol.name()), |b| {
            b.iter(|| {
                for k in &d.keys {
                    black_box(shelf.get::<ByteBuf>(k).unwrap());
                }
            });
        });
        g.bench_function(format!("Shelf<dumb> get_bytes ({})", protocol.name()), |b| {
            b.iter(|| {
                for k in &d.keys {
                    black_box(shelf.get_bytes(k).unwrap());
                }
            });
        });
    }
    g.finish();
}

/// One get, of the map or a backend.
type Get<'a> = dyn Fn(&[u8]) + Sync + 'a;

/// Time for each of `threads` threads to get every key once (the slowest
/// thread's end), `iters` times.
fn on_threads(threads: usize, iters: u64, get: &Get<'_>, keys: &[Vec<u8>]) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || {
                    // Each thread walks the order from its own place.
                    let from = t * keys.len() / threads;
                    for k in keys[from..].iter().chain(&keys[..from]) {
                        get(k);
                    }
                });
            }
        });
        total += start.elapsed();
    }
    total
}

fn parallel(c: &mut Criterion) {
    let d = data();
    let mut g = c.benchmark_group("parallel get 100k per thread");
    g.sample_size(10);
    let map = |k: &[u8]| {
        black_box(d.map.get(k).cloned());
    };
    let writer = |k: &[u8]| {
        black_box(d.writer.get(k).unwrap());
    };
    let reader = |k: &[u8]| {
        black_box(d.reader.get(k).unwrap());
    };
    let cases: [(&str, &Get<'_>); 3] =
        [("HashMap", &map), ("dumb writer handle", &writer), ("dumb read-only handle", &reader)];
    // Interleaved, so the machine's load falls alike on 1 and 2 threads.
    for (name, get) in cases {
        for threads in [1usize, 2] {
            g.throughput(Throughput::Elements((threads * N) as u64));
            g.bench_function(format!("{name}, {threads} thread(s)"), |b| {
                b.iter_custom(|iters| on_threads(threads, iters, get, &d.keys));
            });
        }
    }
    g.finish();
}

criterion_group!(benches, get_vs_hashmap, parallel);
criterion_main!(benches);
