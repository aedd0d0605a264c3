//! The default protocol, MessagePack, against Python's own `msgpack`
//! package: what a shelf stores reads in Python as the same data (structs
//! as dicts keyed by field name), and what Python packs reads back as the
//! same [`Value`]. Skips with a reason where python3 has no `msgpack`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shelf::{OpenOptions, Protocol, Value};
use shelf_tests::Scratch;
use shelf_tests::python::Python;

/// python3 with the msgpack package, or `None` with the reason printed.
fn python(case: &str) -> Option<Python> {
    let py = Python::default_or_skip(case)?;
    match py.run("import msgpack", &[]) {
        Ok(_) => Some(py),
        Err(e) => {
            shelf_tests::skip(case, "msgpack", &format!("python3 has no msgpack package: {e}"));
            None
        }
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Order {
    id: u64,
    customer: String,
    lines: Vec<(String, u32)>,
    note: Option<String>,
    price: f64,
    #[serde(with = "serde_bytes")]
    digest: Vec<u8>,
    tags: BTreeMap<String, i64>,
}

fn order() -> Order {
    Order {
        id: 7,
        customer: "Zoë".into(),
        lines: vec![("apple".into(), 3), ("pear".into(), 1)],
        note: None,
        price: 12.5,
        digest: vec![0, 1, 254, 255],
        tags: BTreeMap::from([("a".into(), -1), ("big".into(), i64::MAX)]),
    }
}

#[test]
fn python_reads_what_a_default_shelf_stores() {
    let Some(py) = python("python_reads_what_a_default_shelf_stores") else { return };
    let scratch = Scratch::new();
    let path = scratch.dir.path().join("orders.redb");
    let mut s = OpenOptions::new().backend("redb").open(&path).expect("open");
    assert_eq!(s.protocol(), Protocol::MessagePack, "new shelves default to MessagePack");
    s.insert("o", &order()).expect("insert");
    let bytes = s.get_bytes("o").expect("get").expect("present");
    let file = scratch.dir.path().join("o.msgpack");
    std::fs::write(&file, &bytes).expect("write");
    let script = r#"
import sys, msgpack
with open(sys.argv[1], "rb") as f:
    v = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
assert v == {
    "id": 7, "customer": "Zoë", "lines": [["apple", 3], ["pear", 1]], "note": None,
    "price": 12.5, "digest": b"\x00\x01\xfe\xff", "tags": {"a": -1, "big": 2**63 - 1},
}, v
print("ok")
"#;
    let out = py.run(script, &[file.to_str().expect("utf-8 path")]).expect("python reads the value");
    assert_eq!(out.trim(), "ok");
}

#[test]
fn what_python_packs_reads_back_as_the_same_value_and_type() {
    let Some(py) = python("what_python_packs_reads_back_as_the_same_value_and_type") else { return };
    let scratch = Scratch::new();
    let file = scratch.dir.path().join("py.msgpack");
    let script = r#"
import sys, msgpack
order = {"id": 7, "customer": "Zoë", "lines": [["apple", 3], ["pear", 1]], "note": None,
         "price": 12.5, "digest": b"\x00\x01\xfe\xff", "tags": {"a": -1, "big": 2**63 - 1}}
with open(sys.argv[1], "wb") as f:
    f.write(msgpack.packb(order, use_bin_type=True))
"#;
    py.run(script, &[file.to_str().expect("utf-8 path")]).expect("python packs");
    let bytes = std::fs::read(&file).expect("read");
    let p = Protocol::msgpack();
    assert_eq!(p.decode::<Order>(&bytes).expect("a typed read"), order());
    let v = p.decode_value(&bytes).expect("a dynamic read");
    let Value::Dict(pairs) = &v else { panic!("a dict, got {v:?}") };
    let get = |name: &str| pairs.iter().find(|(k, _)| *k == Value::Str(name.into())).map(|(_, v)| v.clone());
    assert_eq!(get("digest"), Some(Value::Bytes(vec![0, 1, 254, 255])));
    assert_eq!(get("note"), Some(Value::None));
    assert_eq!(get("customer"), Some(Value::Str("Zoë".into())));
    // Stored again as a Value, it is the same bytes Python wrote.
    assert_eq!(p.encode_value(&v).expect("encode"), bytes);
}
