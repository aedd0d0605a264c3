//! The `Shelf` cases: one per row of the README's Python-to-Rust table,
//! then pickleshare's and mmappickle's features, on every backend.

use std::collections::BTreeMap;

use serde_bytes::ByteBuf;
use shelf::{Error, Flag, OpenError, OpenOptions, Protocol, Shelf, Value};

use super::caps_of;
use crate::{Collected, Scratch, Subject, skip};

fn shelf_fresh<S: Subject>(s: &S) -> (Scratch, Shelf<S::B>) {
    let scratch = Scratch::new();
    let shelf =
        s.open_shelf(&scratch.path, &OpenOptions::new()).unwrap_or_else(|e| panic!("{}: {e}", s.name()));
    (scratch, shelf)
}

fn shelf_reopen<S: Subject>(s: &S, scratch: &Scratch, options: &OpenOptions) -> Shelf<S::B> {
    s.open_shelf(&scratch.path, options).unwrap_or_else(|e| panic!("{}: reopen: {e}", s.name()))
}

fn persistent<S: Subject>(s: &S, case: &str) -> bool {
    let p = caps_of(s).persistent;
    if !p {
        skip(case, s.name(), "not persistent: nothing to reopen");
    }
    p
}

/// `s[k]` and `s[k] = v`.
pub fn shelf_getitem_setitem<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.insert("k", &1i64).unwrap();
    assert_eq!(sh.get::<i64>("k").unwrap(), Some(1));
    sh.insert("k", &2i64).unwrap();
    assert_eq!(sh.get::<i64>("k").unwrap(), Some(2));
    assert_eq!(sh.get::<i64>("missing").unwrap(), None);
    sh.insert(String::from("owned"), &"text".to_string()).unwrap();
    assert_eq!(sh.get::<String>("owned").unwrap().as_deref(), Some("text"));
}

/// `del s[k]`.
pub fn shelf_delitem<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.insert("k", &1i64).unwrap();
    assert!(sh.remove("k").unwrap());
    assert_eq!(sh.get::<i64>("k").unwrap(), None);
    assert!(!sh.remove("k").unwrap(), "a missing key reports false (Python: KeyError)");
}

/// `k in s`.
pub fn shelf_contains<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    assert!(!sh.contains_key("k").unwrap());
    sh.insert("k", &()).unwrap();
    assert!(sh.contains_key("k").unwrap());
}

/// `len(s)` and `bool(s)`.
pub fn shelf_len_and_bool<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    assert_eq!(sh.len().unwrap(), 0);
    assert!(sh.is_empty().unwrap());
    sh.insert("a", &1i64).unwrap();
    sh.insert("b", &1i64).unwrap();
    sh.insert("a", &2i64).unwrap();
    assert_eq!(sh.len().unwrap(), 2);
    assert!(!sh.is_empty().unwrap());
}

/// `for k in s` and `s.keys()`.
pub fn shelf_iteration_and_keys<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    for k in ["b", "a", "c"] {
        sh.insert(k, &k.to_string()).unwrap();
    }
    let mut keys = sh.keys().collected().unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b", "c"]);
    let mut raw = sh.keys_raw().collected().unwrap();
    raw.sort();
    assert_eq!(raw, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
}

/// `s.values()` and `s.items()`.
pub fn shelf_values_and_items<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.update([("a", 1i64), ("b", 2), ("c", 3)]).unwrap();
    let mut values = sh.values::<i64>().collected().unwrap();
    values.sort();
    assert_eq!(values, [1, 2, 3]);
    let items: BTreeMap<String, i64> = sh.items::<i64>().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(items, [("a".to_string(), 1), ("b".to_string(), 2), ("c".to_string(), 3)].into());
}

/// `s.get(k, default)`.
pub fn shelf_get_with_default<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    assert_eq!(sh.get_or("k", 7i64).unwrap(), 7);
    sh.insert("k", &1i64).unwrap();
    assert_eq!(sh.get_or("k", 7i64).unwrap(), 1);
}

/// `s.pop(k)` and `s.pop(k, default)`.
pub fn shelf_pop<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.insert("k", &5i64).unwrap();
    assert_eq!(sh.pop::<i64>("k").unwrap(), Some(5));
    assert!(!sh.contains_key("k").unwrap());
    assert_eq!(sh.pop::<i64>("k").unwrap(), None);
    assert_eq!(sh.pop_or("k", 9i64).unwrap(), 9);
}

/// `s.popitem()`.
pub fn shelf_popitem<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.update([("a", 1i64), ("b", 2)]).unwrap();
    let mut got = vec![sh.pop_item::<i64>().unwrap().unwrap(), sh.pop_item::<i64>().unwrap().unwrap()];
    got.sort();
    assert_eq!(got, [("a".to_string(), 1), ("b".to_string(), 2)]);
    assert_eq!(sh.pop_item::<i64>().unwrap(), None);
    assert!(sh.is_empty().unwrap());
}

/// `s.setdefault(k, default)`.
pub fn shelf_setdefault<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    assert_eq!(sh.set_default("k", 1i64).unwrap(), 1);
    assert_eq!(sh.set_default("k", 2i64).unwrap(), 1);
    assert_eq!(sh.get::<i64>("k").unwrap(), Some(1));
}

/// `s.update(pairs)`.
pub fn shelf_update<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.insert("a", &0i64).unwrap();
    sh.update(vec![("a".to_string(), 1i64), ("b".to_string(), 2)]).unwrap();
    assert_eq!(sh.get::<i64>("a").unwrap(), Some(1));
    assert_eq!(sh.get::<i64>("b").unwrap(), Some(2));
}

/// `get_many`, `insert_many` and `remove_many`: one call to the backend,
/// the same result as key by key, the writeback cache seen, nothing
/// stored when one value does not encode.
pub fn shelf_batch_calls<S: Subject>(s: &S) {
    let scratch = Scratch::new();
    let mut sh = s.open_shelf(&scratch.path, OpenOptions::new().writeback(true)).unwrap();
    let pairs: Vec<(String, i64)> = (0..20).map(|i| (format!("k{i}"), i)).collect();
    sh.insert_many(pairs.clone()).unwrap();
    let keys = ["k0", "k7", "missing", "k19", "k0"];
    let got: Vec<Option<i64>> = sh.get_many(&keys).unwrap();
    assert_eq!(got, [Some(0), Some(7), None, Some(19), Some(0)]);
    let one_by_one: Vec<Option<i64>> = keys.iter().map(|k| sh.get(k).unwrap()).collect();
    assert_eq!(got, one_by_one);
    // A value changed in the writeback cache is what get_many returns.
    *sh.get_mut::<i64>("k7").unwrap().unwrap() = 70;
    assert_eq!(sh.get_many::<i64, _>(&["k7"]).unwrap(), [Some(70)]);
    sh.remove_many(&["k0", "k7", "missing"]).unwrap();
    assert_eq!(sh.len().unwrap(), 18);
    assert_eq!(sh.get_many::<i64, _>(&["k0", "k7", "k1"]).unwrap(), [None, None, Some(1)]);
    // A value that cannot be encoded stores nothing of the batch.
    struct Fails;
    impl serde::Serialize for Fails {
        fn serialize<Z: serde::Serializer>(&self, _: Z) -> Result<Z::Ok, Z::Error> {
            Err(serde::ser::Error::custom("refuses to be stored"))
        }
    }
    let res = sh.insert_many([("new1", None), ("new2", Some(Fails))]);
    assert!(matches!(res, Err(Error::Encode { .. })), "{res:?}");
    assert_eq!(sh.get::<Option<i64>>("new1").unwrap(), None, "nothing of a failed batch is stored");
    sh.close().unwrap();
    assert!(matches!(sh.get_many::<i64, _>(&["k1"]), Err(Error::Closed)));
    assert!(matches!(sh.insert_many(Vec::<(String, i64)>::new()), Err(Error::Closed)));
    assert!(matches!(sh.remove_many::<&str>(&[]), Err(Error::Closed)));
}

/// `s.clear()`.
pub fn shelf_clear<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.clear().unwrap();
    sh.update([("a", 1i64), ("b", 2), ("c", 3)]).unwrap();
    sh.clear().unwrap();
    assert!(sh.is_empty().unwrap());
    assert_eq!(sh.keys().collected().unwrap(), Vec::<String>::new());
}

/// `s.sync()`, then a reopen sees everything.
pub fn shelf_sync_then_reopen<S: Subject>(s: &S) {
    let (scratch, mut sh) = shelf_fresh(s);
    sh.update([("a", 1i64), ("b", 2)]).unwrap();
    sh.remove("b").unwrap();
    sh.sync().unwrap();
    sh.sync().unwrap();
    if !persistent(s, "shelf_sync_then_reopen") {
        return;
    }
    sh.close().unwrap();
    let sh = shelf_reopen(s, &scratch, OpenOptions::new().flag(Flag::Read));
    assert_eq!(sh.keys().collected().unwrap(), ["a"]);
    assert_eq!(sh.get::<i64>("a").unwrap(), Some(1));
}

/// `s.close()`: every later operation is `Error::Closed`; close and sync
/// again are no-ops.
pub fn shelf_close_then_closed<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.insert("k", &1i64).unwrap();
    sh.close().unwrap();
    assert!(sh.is_closed());
    assert!(matches!(sh.get::<i64>("k"), Err(Error::Closed)));
    assert!(matches!(sh.insert("k", &1i64), Err(Error::Closed)));
    assert!(matches!(sh.remove("k"), Err(Error::Closed)));
    assert!(matches!(sh.contains_key("k"), Err(Error::Closed)));
    assert!(matches!(sh.len(), Err(Error::Closed)));
    assert!(matches!(sh.keys(), Err(Error::Closed)));
    assert!(matches!(sh.items::<i64>().map(|_| ()), Err(Error::Closed)));
    assert!(matches!(sh.clear(), Err(Error::Closed)));
    assert_eq!(Error::Closed.to_string(), "invalid operation on closed shelf");
    sh.close().unwrap();
    sh.sync().unwrap();
}

/// The context manager: dropping a shelf closes it (and so syncs it).
pub fn shelf_drop_closes<S: Subject>(s: &S) {
    let (scratch, mut sh) = shelf_fresh(s);
    sh.insert("k", &1i64).unwrap();
    drop(sh);
    if !persistent(s, "shelf_drop_closes") {
        return;
    }
    let sh = shelf_reopen(s, &scratch, &OpenOptions::new());
    assert_eq!(sh.get::<i64>("k").unwrap(), Some(1));
}

/// `writeback=True`: in-place changes are written on sync and on close.
pub fn shelf_writeback_persists<S: Subject>(s: &S) {
    let scratch = Scratch::new();
    let mut sh = s.open_shelf(&scratch.path, OpenOptions::new().writeback(true)).unwrap();
    sh.insert("xs", &vec![1i64, 2]).unwrap();
    sh.insert("ys", &vec![1i64]).unwrap();
    sh.get_mut::<Vec<i64>>("xs").unwrap().unwrap().push(3);
    assert_eq!(sh.get::<Vec<i64>>("xs").unwrap().unwrap(), [1, 2, 3], "reads see the cached value");
    assert_eq!(sh.cached_len(), 1);
    assert!(sh.get_mut::<Vec<i64>>("missing").unwrap().is_none());
    assert!(matches!(sh.get_mut::<String>("xs"), Err(Error::CacheTypeMismatch { .. })));
    sh.sync().unwrap();
    assert_eq!(sh.cached_len(), 0, "sync empties the cache");
    assert_eq!(sh.get::<Vec<i64>>("xs").unwrap().unwrap(), [1, 2, 3]);
    sh.get_mut::<Vec<i64>>("ys").unwrap().unwrap().push(9);
    if !persistent(s, "shelf_writeback_persists (reopen part)") {
        sh.close().unwrap();
        return;
    }
    sh.close().unwrap();
    let sh = shelf_reopen(s, &scratch, &OpenOptions::new());
    assert_eq!(sh.get::<Vec<i64>>("xs").unwrap().unwrap(), [1, 2, 3]);
    assert_eq!(sh.get::<Vec<i64>>("ys").unwrap().unwrap(), [1, 9], "close writes the cache back");
}

/// Without writeback, mutating a value read changes nothing stored (the
/// Python docs' `d['xx'].append(4)` example), and `get_mut` says why.
pub fn shelf_without_writeback_mutation_is_lost<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.insert("xx", &vec![0i64, 1, 2]).unwrap();
    let mut xx: Vec<i64> = sh.get("xx").unwrap().unwrap();
    xx.push(4);
    assert_eq!(sh.get::<Vec<i64>>("xx").unwrap().unwrap(), [0, 1, 2]);
    assert!(matches!(sh.get_mut::<Vec<i64>>("xx"), Err(Error::WritebackDisabled { .. })));
    sh.insert("xx", &xx).unwrap();
    assert_eq!(sh.get::<Vec<i64>>("xx").unwrap().unwrap(), [0, 1, 2, 4]);
}

/// Flag `r` on a shelf: reads work, every write is `Error::ReadOnly`.
pub fn shelf_read_only<S: Subject>(s: &S) {
    let (scratch, mut sh) = shelf_fresh(s);
    sh.insert("k", &1i64).unwrap();
    if !persistent(s, "shelf_read_only") {
        return;
    }
    sh.close().unwrap();
    let mut sh = shelf_reopen(s, &scratch, OpenOptions::new().flag(Flag::Read).writeback(true));
    assert_eq!(sh.get::<i64>("k").unwrap(), Some(1));
    assert!(matches!(sh.insert("k", &2i64), Err(Error::ReadOnly { .. })));
    assert!(matches!(sh.remove("k"), Err(Error::ReadOnly { .. })));
    assert!(matches!(sh.remove("missing"), Err(Error::ReadOnly { .. })));
    assert!(matches!(sh.get_mut::<i64>("k"), Err(Error::ReadOnly { .. })));
    assert!(matches!(sh.clear(), Err(Error::ReadOnly { .. })));
    assert!(matches!(sh.insert_many([("k", 3i64)]), Err(Error::ReadOnly { .. })));
    // The refusal names the database (its path, or its URL without
    // credentials), whatever the backend knows of it.
    let shown = sh.insert("k", &2i64).unwrap_err().to_string();
    let named = sh.path().display().to_string();
    assert!(!named.is_empty() && shown.starts_with(&named), "{}: {shown}", s.name());
    sh.sync().unwrap();
    sh.close().unwrap();
}

/// Empty values of several types.
pub fn shelf_empty_values<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.insert("s", &String::new()).unwrap();
    sh.insert("v", &Vec::<i64>::new()).unwrap();
    sh.insert("b", &ByteBuf::new()).unwrap();
    sh.insert("u", &()).unwrap();
    assert_eq!(sh.get::<String>("s").unwrap().as_deref(), Some(""));
    assert_eq!(sh.get::<Vec<i64>>("v").unwrap(), Some(vec![]));
    assert_eq!(sh.get::<ByteBuf>("b").unwrap(), Some(ByteBuf::new()));
    assert_eq!(sh.get::<()>("u").unwrap(), Some(()));
}

/// A 10 MiB value survives a reopen.
pub fn shelf_large_value<S: Subject>(s: &S) {
    let (scratch, mut sh) = shelf_fresh(s);
    let big: ByteBuf = ByteBuf::from((0..10 << 20).map(|i: u32| (i % 251) as u8).collect::<Vec<u8>>());
    sh.insert("big", &big).unwrap();
    sh.insert("small", &1i64).unwrap();
    assert_eq!(sh.get::<ByteBuf>("big").unwrap().as_ref(), Some(&big));
    if !persistent(s, "shelf_large_value (reopen part)") {
        return;
    }
    sh.close().unwrap();
    let sh = shelf_reopen(s, &scratch, &OpenOptions::new());
    assert_eq!(sh.get::<ByteBuf>("big").unwrap().as_ref(), Some(&big));
    assert_eq!(sh.get::<i64>("small").unwrap(), Some(1));
}

/// UTF-8 keys work as strings; binary keys through the raw-bytes path.
pub fn shelf_unicode_and_binary_keys<S: Subject>(s: &S) {
    let (scratch, mut sh) = shelf_fresh(s);
    let path_keys = sh.capabilities().unwrap().path_keys;
    let texts: &[&str] = if path_keys {
        &["é", "☃", "日本", "a\nb", "tab\tquote'\"", "\u{10ffff}", "dir/sub/key"]
    } else {
        &["é", "☃", "日本", "", "a\nb", "tab\tquote'\"", "\u{10ffff}"]
    };
    for (i, k) in texts.iter().enumerate() {
        sh.insert(k, &(i as i64)).unwrap();
    }
    let mut keys = sh.keys().collected().unwrap();
    keys.sort();
    let mut expected: Vec<String> = texts.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(keys, expected);
    if path_keys {
        let res = sh.insert(&b"\xff\xfe raw"[..], &99i64);
        assert!(matches!(res, Err(Error::InvalidKey { .. })), "a binary key is no path: {res:?}");
        skip("shelf_unicode_and_binary_keys (binary part)", s.name(), "keys are paths");
        return;
    }
    sh.insert(&b"\xff\xfe raw"[..], &99i64).unwrap();
    assert_eq!(sh.get::<i64>(&b"\xff\xfe raw"[..]).unwrap(), Some(99));
    assert!(
        matches!(sh.keys().collected(), Err(Error::KeyNotUtf8 { .. })),
        "a binary key cannot be a String"
    );
    assert_eq!(sh.keys_raw().collected().unwrap().len(), texts.len() + 1);
    if !persistent(s, "shelf_unicode_and_binary_keys (reopen part)") {
        return;
    }
    sh.close().unwrap();
    let sh = shelf_reopen(s, &scratch, &OpenOptions::new());
    for (i, k) in texts.iter().enumerate() {
        assert_eq!(sh.get::<i64>(k).unwrap(), Some(i as i64), "key {k:?}");
    }
    assert_eq!(sh.get::<i64>(&b"\xff\xfe raw"[..]).unwrap(), Some(99));
}

/// A shelf records its protocol where the backend keeps metadata; opening
/// it with another is `OpenError::ProtocolMismatch`.
pub fn shelf_protocol_mismatch<S: Subject>(s: &S) {
    let caps = caps_of(s);
    if !(caps.metadata && caps.persistent) {
        return skip("shelf_protocol_mismatch", s.name(), "keeps no metadata or does not persist");
    }
    let scratch = Scratch::new();
    let mut sh = s.open_shelf(&scratch.path, OpenOptions::new().protocol(Protocol::Json)).unwrap();
    sh.insert("k", &1i64).unwrap();
    sh.close().unwrap();
    drop(sh);
    match s.open_shelf(&scratch.path, OpenOptions::new().protocol(Protocol::Bincode)) {
        Err(OpenError::ProtocolMismatch { stored, requested, .. }) => {
            assert_eq!((stored.as_str(), requested.as_str()), ("json", "bincode"));
        }
        other => panic!("expected ProtocolMismatch, got {:?}", other.map(|_| ())),
    }
    let sh = shelf_reopen(s, &scratch, &OpenOptions::new());
    assert_eq!(sh.protocol(), Protocol::Json, "the recorded protocol is used when none is asked");
    assert_eq!(sh.get::<i64>("k").unwrap(), Some(1));
}

/// One shelf holds values of different types; `Value` reads any of them
/// with a self-describing protocol.
pub fn shelf_mixed_types_and_dynamic_value<S: Subject>(s: &S) {
    let scratch = Scratch::new();
    let mut sh = s.open_shelf(&scratch.path, OpenOptions::new().protocol(Protocol::Json)).unwrap();
    sh.insert("int", &42i64).unwrap();
    sh.insert("str", &"text").unwrap();
    sh.insert("list", &vec![1.5f64, 2.5]).unwrap();
    sh.insert("map", &BTreeMap::from([("a".to_string(), true)])).unwrap();
    assert_eq!(sh.get::<i64>("int").unwrap(), Some(42));
    assert_eq!(sh.get::<String>("str").unwrap().as_deref(), Some("text"));
    assert!(matches!(sh.get::<i64>("str"), Err(Error::Decode { .. })), "a wrong type is a decode error");
    assert_eq!(sh.get::<Value>("int").unwrap(), Some(Value::Int(42)));
    assert_eq!(
        sh.get::<Value>("list").unwrap(),
        Some(Value::List(vec![Value::Float(1.5), Value::Float(2.5)]))
    );
    assert_eq!(
        sh.get::<Value>("map").unwrap(),
        Some(Value::Dict(vec![(Value::Str("a".into()), Value::Bool(true))]))
    );
    sh.insert("dyn", &Value::List(vec![Value::None, Value::Str("x".into())])).unwrap();
    assert_eq!(sh.get::<(Option<i64>, String)>("dyn").unwrap(), Some((None, "x".to_string())));
}

/// BsdDbShelf's cursor: `first`, `last`, `next`, `previous`,
/// `set_location`, and prefix iteration, where keys are ordered.
pub fn shelf_ordered_cursor<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    if !sh.capabilities().unwrap().ordered_keys {
        assert!(matches!(sh.first::<i64>(), Err(Error::Unsupported { .. })));
        return skip("shelf_ordered_cursor", s.name(), "keys are not ordered");
    }
    assert_eq!(sh.first::<i64>().unwrap(), None);
    sh.update([("b", 2i64), ("a", 1), ("c", 3), ("ab", 12)]).unwrap();
    let k = |r: Option<(Vec<u8>, i64)>| r.map(|(k, v)| (String::from_utf8(k).unwrap(), v));
    assert_eq!(k(sh.first().unwrap()), Some(("a".into(), 1)));
    assert_eq!(k(sh.last().unwrap()), Some(("c".into(), 3)));
    assert_eq!(k(sh.next_after("a").unwrap()), Some(("ab".into(), 12)));
    assert_eq!(k(sh.previous("b").unwrap()), Some(("ab".into(), 12)));
    assert_eq!(k(sh.previous("a").unwrap()), None);
    assert_eq!(k(sh.set_location("aa").unwrap()), Some(("ab".into(), 12)));
    assert_eq!(k(sh.set_location("b").unwrap()), Some(("b".into(), 2)));
    assert_eq!(k(sh.set_location("d").unwrap()), None);
    let pre = sh.prefix::<i64>("a").unwrap();
    assert_eq!(pre, [(b"a".to_vec(), 1), (b"ab".to_vec(), 12)]);
}

/// `transaction`: all-or-nothing where the backend can, refused where not.
pub fn shelf_transaction<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.insert("gone", &0i64).unwrap();
    if !sh.capabilities().unwrap().atomic_batch {
        let res = sh.transaction(|tx| tx.insert("a", &1i64));
        assert!(matches!(res, Err(Error::Unsupported { .. })), "{res:?}");
        assert!(!sh.contains_key("a").unwrap());
        return skip("shelf_transaction", s.name(), "batches are not atomic");
    }
    let n = sh
        .transaction(|tx| {
            tx.insert("a", &1i64)?;
            tx.insert("b", &2i64)?;
            tx.remove("gone");
            Ok(tx.len())
        })
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(sh.get::<i64>("a").unwrap(), Some(1));
    assert!(!sh.contains_key("gone").unwrap());
    let failed = sh.transaction(|tx| {
        tx.insert("c", &3i64)?;
        tx.remove("a");
        Err::<(), _>(Error::Timeout { what: "a test".into(), seconds: 0.0 })
    });
    assert!(failed.is_err());
    assert!(!sh.contains_key("c").unwrap(), "nothing of a failed transaction is applied");
    assert!(sh.contains_key("a").unwrap());
}

/// Random operation sequences checked against a `BTreeMap`.
pub fn model_matches_btreemap<S: Subject>(s: &S) {
    crate::model::run(s);
}

// ---- pickleshare and mmappickle features, on every shelf ----

/// pickleshare's `keys(globpat)`.
pub fn shelf_keys_matching<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    for k in ["a", "ab", "b", "paths/are/ok/key", "paths/x", "paths/y.txt"] {
        sh.insert(k, &1i64).unwrap();
    }
    let m = |p: &str| {
        let mut v = sh.keys_matching(p).unwrap();
        v.sort();
        v
    };
    assert_eq!(m("a*"), ["a", "ab"]);
    assert_eq!(m("paths/*"), ["paths/x", "paths/y.txt"], "* does not cross /");
    assert_eq!(m("paths/**"), ["paths/are/ok/key", "paths/x", "paths/y.txt"]);
    assert_eq!(m("?"), ["a", "b"]);
    assert_eq!(m("*.txt"), Vec::<String>::new());
    assert!(matches!(sh.keys_matching("[unclosed"), Err(Error::InvalidPattern { .. })));
}

/// pickleshare's `waitget`: present at once, or a timeout naming the key.
pub fn shelf_wait_get<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    sh.insert("here", &5i64).unwrap();
    assert_eq!(sh.wait_get::<i64>("here", std::time::Duration::from_millis(1)).unwrap(), 5);
    let start = std::time::Instant::now();
    match sh.wait_get::<i64>("never", std::time::Duration::from_millis(60)) {
        Err(Error::Timeout { what, .. }) => assert!(what.contains("never"), "{what}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(start.elapsed() >= std::time::Duration::from_millis(60));
}

/// pickleshare's `hset`/`hget`/`hdict`/`hcompress`, with a stable hash.
pub fn shelf_hashed_categories<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    for i in 0..300i64 {
        sh.hset("cat", &format!("k{i}"), &i).unwrap();
    }
    assert!(sh.len().unwrap() <= 256, "300 entries live in at most 256 buckets");
    assert_eq!(sh.hget::<i64>("cat", "k7", true).unwrap(), Some(7));
    assert_eq!(sh.hget::<i64>("cat", "missing", true).unwrap(), None);
    let all = sh.hdict::<i64>("cat").unwrap();
    assert_eq!(all.len(), 300);
    assert_eq!(all["k299"], 299);
    sh.hcompress::<i64>("cat").unwrap();
    assert_eq!(sh.keys().collected().unwrap(), ["cat/xx"]);
    assert_eq!(sh.hget::<i64>("cat", "k7", true).unwrap(), None, "fast_only misses compressed entries");
    assert_eq!(sh.hget::<i64>("cat", "k7", false).unwrap(), Some(7));
    sh.hset("cat", "k7", &700i64).unwrap();
    assert_eq!(sh.hdict::<i64>("cat").unwrap()["k7"], 700, "a later hset wins over the compressed bucket");
    assert_eq!(shelf::hash_bucket("k7"), shelf::hash_bucket("k7"));
}

/// pickleshare's `getlink`.
pub fn shelf_link<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    {
        let mut lnk = sh.link("myobjects/test");
        lnk.insert("foo", &2i64).unwrap();
        let first: i64 = lnk.get("foo").unwrap().unwrap();
        lnk.insert("bar", &(first + 5)).unwrap();
        assert!(lnk.contains_key("bar").unwrap());
        let mut keys = lnk.keys().unwrap();
        keys.sort();
        assert_eq!(keys, ["bar", "foo"]);
        lnk.link("deeper").insert("x", &1i64).unwrap();
        assert!(lnk.remove("foo").unwrap());
    }
    assert_eq!(sh.get::<i64>("myobjects/test/bar").unwrap(), Some(7));
    assert_eq!(sh.get::<i64>("myobjects/test/deeper/x").unwrap(), Some(1));
    assert!(!sh.contains_key("myobjects/test/foo").unwrap());
}

/// mmappickle's `commit_number`: grows with every synced change.
pub fn shelf_commit_number<S: Subject>(s: &S) {
    let (_scratch, mut sh) = shelf_fresh(s);
    if !sh.capabilities().unwrap().commit_number {
        assert!(matches!(sh.commit_number(), Err(Error::Unsupported { .. })));
        return skip("shelf_commit_number", s.name(), "no commit numbers");
    }
    sh.sync().unwrap();
    let before = sh.commit_number().unwrap();
    sh.insert("k", &1i64).unwrap();
    sh.sync().unwrap();
    let after = sh.commit_number().unwrap();
    assert!(after > before, "commit number {before} -> {after}");
    sh.sync().unwrap();
    assert!(sh.commit_number().unwrap() >= after);
}
