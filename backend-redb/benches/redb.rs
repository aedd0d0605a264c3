//! shelf over redb against redb itself, side by side in one run (16-byte
//! keys, 100-byte values, 100,000 of them):
//! - random gets: redb's own get in one read transaction (the value copied
//!   out, as any caller that keeps it does), `RedbBackend::get`,
//!   `get_many`, and `Shelf<RedbBackend>::get` (bincode byte arrays);
//! - 100k inserts then a durable sync: redb in one write transaction,
//!   `RedbBackend`, `Shelf<RedbBackend>`;
//! - reopening a cleanly closed file: `redb::Database::open`, then
//!   `RedbBackend` with flag `w` (trusting the clean close), with flag `w`
//!   on a file changed since (verifying every page), and with flag `r`;
//! - gets from 2 threads against 1, through one handle and through redb;
//! - gets from a file written before value checksums, and one checksum
//!   alone, to show what the checksums cost.
//!
//! `cargo bench -p backend-redb -- --warm-up-time 1 --measurement-time 3`;
//! figures and instruction counts in docs/performance-redb.md.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use backend_redb::RedbBackend;
use criterion::{BatchSize, Bencher, Criterion, Throughput, criterion_group, criterion_main};
use redb::{Database, ReadableDatabase};
use shelf_core::raw::{BackendOptions, bench_get_all, bench_keys, bench_value};
use shelf_core::{Flag, KvBackend, Protocol};

mod common;

use common::{TABLE, backend_fill, raw_fill, shelf_fill};

const N: u64 = 100_000;

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
    g.bench_function("Shelf<RedbBackend>", |b| in_fresh_dir(b, |p| shelf_fill(p, &keys, Protocol::Bincode)));
    g.finish();
}

fn random_get(c: &mut Criterion) {
    let keys = bench_keys(N);
    let mut order = keys.clone();
    order.reverse();
    let mut g = c.benchmark_group("redb random get 100k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
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
    let refs: Vec<&[u8]> = order.iter().map(|k| k.as_slice()).collect();
    g.bench_function("RedbBackend get_many", |b| b.iter(|| black_box(backend.get_many(&refs).unwrap())));
    drop(backend);
    let shelf = shelf_fill(&dir.path().join("shelf"), &keys, Protocol::Bincode);
    g.bench_function("Shelf<RedbBackend>", |b| {
        b.iter(|| {
            for k in &order {
                black_box(shelf.get::<serde_bytes::ByteArray<100>>(k).unwrap());
            }
        })
    });
    drop(shelf);
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

/// Times `open`, one at a time, each result closed after its timing.
fn timed_open<T>(b: &mut Bencher<'_>, open: impl Fn() -> T) {
    b.iter_batched(|| (), |()| open(), BatchSize::PerIteration);
}

fn reopen(c: &mut Criterion) {
    let keys = bench_keys(N);
    let mut g = c.benchmark_group("redb reopen a cleanly closed 100k-entry file");
    g.sample_size(20);
    let dir = tempfile::tempdir().unwrap();
    // One file each: a raw redb close rewrites the header, which a shelf
    // handle must then take for a change made outside it.
    let (raw_path, path) = (dir.path().join("raw"), dir.path().join("shelf"));
    drop(raw_fill(&raw_path, &keys));
    drop(backend_fill(&path, &keys));
    // The opens are timed, the closes (an fsync each, whose time on a
    // shared disk varies more than everything else) are not.
    g.bench_function("raw redb Database::open", |b| timed_open(b, || Database::open(&raw_path).unwrap()));
    g.bench_function("RedbBackend, flag w", |b| {
        timed_open(b, || RedbBackend::open(&path, &BackendOptions::with_flag(Flag::Write)).unwrap())
    });
    g.bench_function("RedbBackend, flag w, file changed since (verifies every page)", |b| {
        b.iter_batched(
            // Stamps the file anew, then touches it as another program would.
            || {
                drop(RedbBackend::open(&path, &BackendOptions::with_flag(Flag::Write)).unwrap());
                let f = std::fs::File::options().append(true).open(&path).unwrap();
                f.set_modified(std::time::SystemTime::now()).unwrap();
            },
            |()| RedbBackend::open(&path, &BackendOptions::with_flag(Flag::Write)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("RedbBackend, flag r", |b| {
        timed_open(b, || RedbBackend::open(&path, &BackendOptions::with_flag(Flag::Read)).unwrap())
    });
    g.finish();
}

/// 100k gets split over `threads` threads.
fn spread(threads: usize, keys: &[[u8; 16]], get: impl Fn(&[[u8; 16]]) + Sync) {
    let chunk = keys.len().div_ceil(threads);
    std::thread::scope(|s| {
        for part in keys.chunks(chunk) {
            let get = &get;
            s.spawn(move || get(part));
        }
    });
}

fn parallel_get(c: &mut Criterion) {
    let keys = bench_keys(N);
    let mut g = c.benchmark_group("redb 100k gets from 1 and 2 threads");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_fill(&dir.path().join("raw"), &keys);
    let backend = backend_fill(&dir.path().join("backend"), &keys);
    for threads in [1, 2] {
        g.bench_function(format!("raw redb, {threads} thread(s), a read transaction each"), |b| {
            b.iter(|| {
                spread(threads, &keys, |part| {
                    let txn = raw.begin_read().unwrap();
                    let t = txn.open_table(TABLE).unwrap();
                    for k in part {
                        black_box(t.get(k.as_slice()).unwrap().map(|v| v.value().to_vec()));
                    }
                })
            })
        });
        g.bench_function(format!("RedbBackend, {threads} thread(s), one handle"), |b| {
            b.iter(|| {
                spread(threads, &keys, |part| {
                    black_box(bench_get_all(&backend, part).unwrap());
                })
            })
        });
    }
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

criterion_group!(benches, random_get, insert_then_sync, reopen, parallel_get, value_checksum);
criterion_main!(benches);
