//! What a protocol costs per value: encoding and decoding a 100-byte
//! `bytes` value (the `shelf bench` workload's values) and a small struct
//! with each protocol, typed and as the dynamic `Value`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use shelf_core::{Protocol, Value};

/// A record as an application stores it: named fields of several types.
#[derive(Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    lines: Vec<(String, u32)>,
    total: f64,
    paid: bool,
}

fn protocols() -> [Protocol; 4] {
    [Protocol::msgpack(), Protocol::bincode(), Protocol::json(), Protocol::pickle()]
}

fn group<T: Serialize + DeserializeOwned>(c: &mut Criterion, title: &str, value: &T) {
    let mut g = c.benchmark_group(title);
    for protocol in protocols() {
        let name = protocol.name();
        let bytes = protocol.encode(value).unwrap();
        let mut buf = Vec::new();
        g.bench_function(format!("{name} encode"), |b| {
            b.iter(|| {
                buf.clear();
                protocol.encode_into(value, &mut buf).unwrap();
                black_box(buf.len())
            })
        });
        g.bench_function(format!("{name} decode"), |b| {
            b.iter(|| black_box(protocol.decode::<T>(&bytes).unwrap()))
        });
        if protocol.is_self_describing() {
            // bincode is not self-describing: no dynamic form.
            g.bench_function(format!("{name} decode as Value"), |b| {
                b.iter(|| black_box(protocol.decode::<Value>(&bytes).unwrap()))
            });
        }
    }
    g.finish();
}

fn codecs(c: &mut Criterion) {
    group(c, "100-byte bytes value", &ByteBuf::from(vec![7u8; 100]));
    let order = Order {
        id: 7,
        customer: "Zoë Example".into(),
        lines: vec![("apple".into(), 3), ("pear".into(), 1), ("plum".into(), 12)],
        total: 12.5,
        paid: true,
    };
    group(c, "5-field struct", &order);
}

criterion_group!(benches, codecs);
criterion_main!(benches);
