//! Sharing shelves with CPython, tested against the real interpreters: Python
//! writes with `shelve` over `dbm.dumb` and Rust reads; Rust writes with the
//! dumb backend and the pickle protocol and Python's `shelve` reads.

use shelf::{Flag, OpenOptions, PickleOptions, Protocol, Value, WhichDb};
use shelf_tests::Scratch;
use shelf_tests::python::Python;

/// The values both sides agree on, as a Python literal table.
const PY_VALUES: &str = r#"
l = [1]
VALUES = {
    'none': None, 'true': True, 'false': False, 'int': 42, 'neg': -7,
    'big': 2**70, 'negbig': -(2**70), 'float': 1.5, 'str': 'é☃日本',
    'bytes': b'\x00\xff', 'empty_bytes': b'', 'bytearray': bytearray(b'ab'),
    'list': [1, 'a', None], 'tuple': (1, 2), 'tuple1': (1,), 'empty_tuple': (),
    'dict': {'a': 1, 'b': [1, 2]}, 'dict_odd_keys': {1: 'x', (1, 2): None},
    'set': {1, 2}, 'frozenset': frozenset([3]), 'nested': {'k': [(1, {'x': b'y'})]},
    'shared': [l, l],
    'v511': b'x' * 511, 'v512': b'x' * 512, 'v513': b'x' * 513, 'v5m': b'z' * (5 << 20),
}
KEYS = ['é', '☃', '日本', 'both\'"', "single'", 'double"', 'back\\slash', 'new\nline',
        'tab\t', 'nul\x00', '\x7f', '\xad', '', 'k' * 10240]
"#;

/// The same table in Rust.
fn values() -> Vec<(&'static str, Value)> {
    use Value::*;
    let big: num_bigint::BigInt = num_bigint::BigInt::from(1u8) << 70usize;
    vec![
        ("none", None),
        ("true", Bool(true)),
        ("false", Bool(false)),
        ("int", Int(42)),
        ("neg", Int(-7)),
        ("big", BigInt(big.clone())),
        ("negbig", BigInt(-big)),
        ("float", Float(1.5)),
        ("str", Str("é☃日本".into())),
        ("bytes", Bytes(vec![0, 0xff])),
        ("empty_bytes", Bytes(vec![])),
        ("bytearray", ByteArray(b"ab".to_vec())),
        ("list", List(vec![Int(1), Str("a".into()), None])),
        ("tuple", Tuple(vec![Int(1), Int(2)])),
        ("tuple1", Tuple(vec![Int(1)])),
        ("empty_tuple", Tuple(vec![])),
        ("dict", Dict(vec![(Str("a".into()), Int(1)), (Str("b".into()), List(vec![Int(1), Int(2)]))])),
        ("dict_odd_keys", Dict(vec![(Int(1), Str("x".into())), (Tuple(vec![Int(1), Int(2)]), None)])),
        ("set", Set(vec![Int(1), Int(2)])),
        ("frozenset", FrozenSet(vec![Int(3)])),
        (
            "nested",
            Dict(vec![(
                Str("k".into()),
                List(vec![Tuple(vec![Int(1), Dict(vec![(Str("x".into()), Bytes(b"y".to_vec()))])])]),
            )]),
        ),
        ("shared", List(vec![List(vec![Int(1)]), List(vec![Int(1)])])),
        ("v511", Bytes(vec![b'x'; 511])),
        ("v512", Bytes(vec![b'x'; 512])),
        ("v513", Bytes(vec![b'x'; 513])),
        ("v5m", Bytes(vec![b'z'; 5 << 20])),
    ]
}

fn keys() -> Vec<String> {
    [
        "é",
        "☃",
        "日本",
        "both'\"",
        "single'",
        "double\"",
        "back\\slash",
        "new\nline",
        "tab\t",
        "nul\0",
        "\x7f",
        "\u{ad}",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once("k".repeat(10240)))
    .collect()
}

/// Sets come back in Python's iteration order; compare them as sorted.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Set(items) | Value::FrozenSet(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            items.sort_by_key(|i| format!("{i:?}"));
            if matches!(v, Value::Set(_)) { Value::Set(items) } else { Value::FrozenSet(items) }
        }
        Value::List(items) => Value::List(items.iter().map(normalized).collect()),
        Value::Tuple(items) => Value::Tuple(items.iter().map(normalized).collect()),
        Value::Dict(pairs) => {
            Value::Dict(pairs.iter().map(|(k, v)| (normalized(k), normalized(v))).collect())
        }
        other => other.clone(),
    }
}

fn check_rust_reads(path: &std::path::Path, who: &str) {
    assert_eq!(shelf::whichdb(path), WhichDb::Backend("dumb"), "{who}'s shelf is detected as dumb");
    // No protocol named: a CPython dumb shelf opens with pickle by itself.
    let db =
        OpenOptions::new().flag(Flag::Read).open(path).unwrap_or_else(|e| panic!("open {who}'s shelf: {e}"));
    assert_eq!(db.protocol().family(), "pickle", "the version is whichever the shelf uses");
    for (k, expected) in values() {
        let got: Value = db.get(k).unwrap_or_else(|e| panic!("{who}: key {k}: {e}")).expect(k);
        assert_eq!(normalized(&got), normalized(&expected), "{who}: key {k}");
    }
    for (i, k) in keys().iter().enumerate() {
        assert_eq!(db.get::<i64>(format!("key:{k}")).unwrap(), Some(i as i64), "{who}: key {k:?}");
    }
    assert_eq!(db.len().unwrap(), values().len() + keys().len());
}

#[test]
fn python_writes_rust_reads_every_protocol() {
    let Some(py) = Python::default_or_skip("python_writes_rust_reads_every_protocol") else { return };
    for proto in 0..=5 {
        let scratch = Scratch::new();
        let script = format!(
            "{PY_VALUES}\nimport shelve, sys, dbm.dumb\n\
             with shelve.Shelf(dbm.dumb.open(sys.argv[1], 'n'), protocol={proto}) as s:\n\
             \x20   for k, v in VALUES.items(): s[k] = v\n\
             \x20   for i, k in enumerate(KEYS): s['key:' + k] = i\n"
        );
        py.run(&script, &[scratch.path.to_str().unwrap()]).unwrap();
        check_rust_reads(&scratch.path, &format!("python3 protocol {proto}"));
    }
}

fn rust_writes(path: &std::path::Path, options: PickleOptions) {
    let mut db = OpenOptions::new()
        .backend("dumb")
        .protocol(Protocol::Pickle(options))
        .flag(Flag::New)
        .open(path)
        .unwrap();
    for (k, v) in values() {
        db.insert(k, &v).unwrap();
    }
    for (i, k) in keys().iter().enumerate() {
        db.insert(format!("key:{k}"), &(i as i64)).unwrap();
    }
    db.close().unwrap();
}

const PY_CHECK: &str = r#"
import shelve, sys
bad = []
with shelve.open(sys.argv[1], 'r') as s:
    for k, v in VALUES.items():
        got = s[k]
        if got != v or type(got) is not type(v):
            bad.append((k, repr(got)[:80], repr(v)[:80]))
    for i, k in enumerate(KEYS):
        if s['key:' + k] != i:
            bad.append((k, s['key:' + k], i))
    if len(s) != len(VALUES) + len(KEYS):
        bad.append(('len', len(s)))
    shared = s['shared']
if bad:
    sys.exit('mismatches: %r' % bad)
print('ok')
"#;

#[test]
fn rust_writes_python_reads() {
    let Some(py) = Python::default_or_skip("rust_writes_python_reads") else { return };
    for options in [PickleOptions::default(), PickleOptions::v2()] {
        let scratch = Scratch::new();
        rust_writes(&scratch.path, options);
        let out = py.run(&format!("{PY_VALUES}\n{PY_CHECK}"), &[scratch.path.to_str().unwrap()]).unwrap();
        assert_eq!(out.trim(), "ok", "pickle protocol {}", options.version);
    }
}

/// A script both CPython 2.7 and 3.x run: values that mean the same in both.
const PY_PORTABLE: &str = r#"# -*- coding: utf-8 -*-
import sys, shelve
try:
    import dbm.dumb as dumb
except ImportError:
    import dumbdbm as dumb
path, proto, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
V = {'int': 42, 'big': 2**70, 'float': 1.5, 'text': u'\xe9\u2603', 'list': [1, u'a', None],
     'tuple': (1, 2), 'dict': {u'a': 1}, 'set': set([1, 2]), 'frozenset': frozenset([3]),
     'bool': True, 'none': None}
if mode == 'write':
    s = shelve.Shelf(dumb.open(path, 'n'), protocol=proto)
    try:
        for k in V: s[k] = V[k]
    finally:
        s.close()
else:
    s = shelve.Shelf(dumb.open(path, 'r'))
    try:
        bad = [k for k in V if s[k] != V[k] or type(s[k]) is not type(V[k])]
        if sorted(s.keys()) != sorted(V.keys()): bad.append('keys')
    finally:
        s.close()
    if bad: sys.exit('mismatches: %r' % bad)
    print('ok')
"#;

fn portable_values() -> Vec<(&'static str, Value)> {
    use Value::*;
    vec![
        ("int", Int(42)),
        ("big", BigInt(num_bigint::BigInt::from(1u8) << 70usize)),
        ("float", Float(1.5)),
        ("text", Str("é☃".into())),
        ("list", List(vec![Int(1), Str("a".into()), None])),
        ("tuple", Tuple(vec![Int(1), Int(2)])),
        ("dict", Dict(vec![(Str("a".into()), Int(1))])),
        ("set", Set(vec![Int(1), Int(2)])),
        ("frozenset", FrozenSet(vec![Int(3)])),
        ("bool", Bool(true)),
        ("none", None),
    ]
}

fn other_cpython_both_ways(prefix: &str, proto: u8) {
    let case = format!("cpython_{prefix}_both_ways");
    let Some(py) = Python::pyenv_or_skip(prefix, &case) else { return };
    let scratch = Scratch::new();
    let path = scratch.path.to_str().unwrap();
    py.run(PY_PORTABLE, &[path, &proto.to_string(), "write"]).unwrap();
    let db = OpenOptions::new().flag(Flag::Read).open(&scratch.path).unwrap();
    for (k, expected) in portable_values() {
        let got: Value = db.get(k).unwrap().unwrap_or_else(|| panic!("{case}: {k} missing"));
        assert_eq!(normalized(&got), normalized(&expected), "{case}: key {k}");
    }
    drop(db);
    let mut db = OpenOptions::new()
        .backend("dumb")
        .flag(Flag::New)
        .protocol(Protocol::Pickle(if proto <= 2 { PickleOptions::v2() } else { PickleOptions::default() }))
        .open(&scratch.path)
        .unwrap();
    for (k, v) in portable_values() {
        db.insert(k, &v).unwrap();
    }
    db.close().unwrap();
    let out = py.run(PY_PORTABLE, &[path, &proto.to_string(), "read"]).unwrap();
    assert_eq!(out.trim(), "ok", "{case}");
}

#[test]
fn cpython_2_7_protocol_2_both_ways() {
    other_cpython_both_ways("2.7", 2);
}

#[test]
fn cpython_3_6_protocol_3_both_ways() {
    other_cpython_both_ways("3.6", 3);
}

#[test]
fn cpython_3_13_dumb_forced_both_ways() {
    other_cpython_both_ways("3.13", 3);
}

/// Writing into a Python shelf keeps the highest pickle protocol its values
/// use: a CPython 2.7 shelf (protocol 0 values) gets protocol 2, which 2.7
/// reads, and a 3.8+ shelf (protocol 4) keeps 4.
#[test]
fn writes_keep_the_pickle_protocol_the_shelf_uses() {
    use shelf::KvBackend as _;
    for (existing, expected) in [(&b"(lp0\nI1\na."[..], 2u8), (&b"\x80\x04K\x01."[..], 4)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("py");
        let mut raw = shelf::OpenOptions::new()
            .backend("dumb")
            .protocol(shelf::Protocol::pickle())
            .open(&path)
            .unwrap();
        raw.backend_mut().unwrap().insert(b"old", existing).unwrap();
        raw.close().unwrap();
        drop(raw);
        let mut db = shelf::open(&path).unwrap();
        assert_eq!(
            db.protocol(),
            shelf::Protocol::Pickle(shelf::PickleOptions::default().with_version(expected))
        );
        db.insert("new", &vec![1i64, 2]).unwrap();
        let bytes = db.get_bytes("new").unwrap().unwrap();
        assert_eq!(&bytes[..2], &[0x80, expected], "written with protocol {expected}");
        assert!(db.get::<Value>("old").unwrap().is_some(), "the old value still reads");
    }
}
