//! What a protocol costs per value: encoding and decoding a 100-byte
//! `bytes` value (the `shelf bench` workload's values) with each protocol,
//! typed and as the dynamic `Value`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_bytes::ByteBuf;
use shelf_core::{Protocol, Value};

fn codecs(c: &mut Criterion) {
    let value = ByteBuf::from(vec![7u8; 100]);
    let mut g = c.benchmark_group("100-byte bytes value");
    for protocol in [Protocol::Bincode, Protocol::Json, Protocol::pickle()] {
        let name = protocol.name();
        let bytes = protocol.encode(&value).unwrap();
        g.bench_function(format!("{name} encode"), |b| {
            b.iter(|| black_box(protocol.encode(&value).unwrap()))
        });
        g.bench_function(format!("{name} decode"), |b| {
            b.iter(|| black_box(protocol.decode::<ByteBuf>(&bytes).unwrap()))
        });
        if protocol != Protocol::Bincode {
            // bincode is not self-describing: no dynamic form.
            g.bench_function(format!("{name} decode as Value"), |b| {
                b.iter(|| black_box(protocol.decode::<Value>(&bytes).unwrap()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
