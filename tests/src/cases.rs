//! The conformance cases. Each is generic over a [`Subject`]; the names of
//! the backend-level ones are the rules of `KvBackend`'s `# Contract`.
//!
//! This file holds the rules about the map itself; `files.rs` the rules
//! about the database's files and processes (locking, damage, `check`,
//! `stats`, capabilities); `shelves.rs` the `Shelf` cases.

mod files;
mod sharing;
mod shelves;

pub use files::*;
pub use sharing::*;
pub use shelves::*;

use std::collections::BTreeMap;
use std::ops::Bound;

use shelf::{BatchOp, Capabilities, Error, Flag, KvBackend, OpenError};

use crate::{Collected, Scratch, Subject, flag_options, skip};

/// Keys every backend must take: empty, binary, non-ASCII, quotes, escapes.
const KEYS: &[&[u8]] = &[
    b"a",
    b"",
    b"\x00\xff binary \x7f\xad",
    "é☃日本".as_bytes(),
    b"both 'quotes' \"here\"",
    b"line\nbreak\ttab\\slash\r",
];

/// Keys for backends whose keys are paths (`Capabilities::path_keys`).
const PATH_KEYS: &[&[u8]] = &[
    b"a",
    "é☃日本".as_bytes(),
    b"both 'quotes' \"here\"",
    b"line\nbreak\ttab\\slash\r",
    b"nested/dir/key",
    b"x\x7f\xc2\xad",
];

/// Keys no path-keyed backend may accept.
const BAD_PATH_KEYS: &[&[u8]] =
    &[b"", b"/abs", b"../up", b"a/../../b", b"a//b", b"a/", b".", b"nul\0", b"\xff\xfe"];

/// The keys a backend must take, by its capabilities.
pub fn keys_for(caps: &Capabilities) -> &'static [&'static [u8]] {
    if caps.path_keys { PATH_KEYS } else { KEYS }
}

pub(crate) fn open_fresh<S: Subject>(s: &S) -> (Scratch, S::B) {
    let scratch = Scratch::new();
    let b = s
        .open_backend(&scratch.path, &flag_options(Flag::Create))
        .unwrap_or_else(|e| panic!("{}: open a new database: {e}", s.name()));
    (scratch, b)
}

pub(crate) fn reopen<S: Subject>(s: &S, scratch: &Scratch, flag: Flag) -> S::B {
    s.open_backend(&scratch.path, &flag_options(flag))
        .unwrap_or_else(|e| panic!("{}: reopen with flag {flag}: {e}", s.name()))
}

pub(crate) fn caps_of<S: Subject>(s: &S) -> Capabilities {
    let (_scratch, b) = open_fresh(s);
    b.capabilities()
}

fn sorted(mut keys: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    keys.sort();
    keys
}

fn contents(b: &impl KvBackend) -> BTreeMap<Vec<u8>, Vec<u8>> {
    b.iter().expect("iter").map(|r| r.expect("entry")).collect()
}

/// Contract `get_returns_inserted`.
pub fn get_returns_inserted<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    let caps = b.capabilities();
    if caps.path_keys {
        for k in BAD_PATH_KEYS {
            let res = b.insert(k, b"v");
            assert!(matches!(res, Err(Error::InvalidKey { .. })), "key {k:?}: {res:?}");
            assert!(matches!(b.get(k), Ok(None) | Err(Error::InvalidKey { .. })), "key {k:?}");
        }
    }
    for (i, k) in keys_for(&caps).iter().enumerate() {
        // i = 0 stores the empty value.
        let v = vec![i as u8; i * 100];
        b.insert(k, &v).unwrap();
        assert_eq!(b.get(k).unwrap(), Some(v), "key {k:?}");
    }
    b.close().unwrap();
}

/// Contract `get_missing_is_none`.
pub fn get_missing_is_none<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    assert_eq!(b.get(b"never").unwrap(), None);
    b.insert(b"other", b"x").unwrap();
    assert_eq!(b.get(b"never").unwrap(), None);
    if !b.capabilities().path_keys {
        assert_eq!(b.get(b"").unwrap(), None);
    }
}

/// Contract `insert_overwrites`.
pub fn insert_overwrites<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    b.insert(b"k", b"first value, long enough to matter").unwrap();
    b.insert(b"k", b"2").unwrap();
    assert_eq!(b.get(b"k").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(b.len().unwrap(), 1);
    b.insert(b"k", &[7u8; 5000]).unwrap();
    assert_eq!(b.get(b"k").unwrap(), Some(vec![7u8; 5000]));
    assert_eq!(b.len().unwrap(), 1);
}

/// Contract `remove_reports_presence`.
pub fn remove_reports_presence<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    b.insert(b"k", b"v").unwrap();
    b.insert(b"keep", b"v").unwrap();
    assert!(b.remove(b"k").unwrap());
    assert_eq!(b.get(b"k").unwrap(), None);
    assert!(!b.remove(b"k").unwrap());
    assert!(!b.remove(b"never").unwrap());
    assert_eq!(b.len().unwrap(), 1);
    assert_eq!(b.get(b"keep").unwrap().as_deref(), Some(&b"v"[..]));
}

/// Contract `contains_matches_get`.
pub fn contains_matches_get<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    let keys = keys_for(&b.capabilities());
    for k in keys {
        assert!(!b.contains(k).unwrap());
        b.insert(k, b"").unwrap();
        assert!(b.contains(k).unwrap(), "key {k:?}");
        assert_eq!(b.contains(k).unwrap(), b.get(k).unwrap().is_some());
    }
    b.remove(keys[0]).unwrap();
    assert!(!b.contains(keys[0]).unwrap());
}

/// Contract `len_counts_keys`.
pub fn len_counts_keys<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    let keys = keys_for(&b.capabilities());
    assert_eq!(b.len().unwrap(), 0);
    assert!(b.is_empty().unwrap());
    for (i, k) in keys.iter().enumerate() {
        b.insert(k, b"v").unwrap();
        b.insert(k, b"again").unwrap();
        assert_eq!(b.len().unwrap(), i + 1);
    }
    assert!(!b.is_empty().unwrap());
}

/// Contract `keys_and_iter_agree`.
pub fn keys_and_iter_agree<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    let keys = keys_for(&b.capabilities());
    let mut expected = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        b.insert(k, &[i as u8]).unwrap();
        expected.insert(k.to_vec(), vec![i as u8]);
    }
    b.insert(keys[0], b"changed").unwrap();
    expected.insert(keys[0].to_vec(), b"changed".to_vec());
    let keys = b.keys().collected().unwrap();
    assert_eq!(keys.len(), expected.len(), "keys yields each key once");
    assert_eq!(sorted(keys.clone()), expected.keys().cloned().collect::<Vec<_>>());
    let pairs: Vec<_> = b.iter().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(pairs.len(), expected.len(), "iter yields each key once");
    assert_eq!(pairs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), keys, "same order as keys");
    assert_eq!(pairs.into_iter().collect::<BTreeMap<_, _>>(), expected);
}

/// Contract `flush_makes_durable`.
pub fn flush_makes_durable<S: Subject>(s: &S) {
    let (scratch, mut b) = open_fresh(s);
    let keys = keys_for(&b.capabilities());
    if !b.capabilities().persistent {
        return skip("flush_makes_durable", s.name(), "not persistent");
    }
    for (i, k) in keys.iter().enumerate() {
        b.insert(k, &vec![i as u8; 600 * i]).unwrap();
    }
    b.remove(keys[1]).unwrap();
    b.flush().unwrap();
    let before = contents(&b);
    b.close().unwrap();
    drop(b);
    let b = reopen(s, &scratch, Flag::Read);
    assert_eq!(contents(&b), before);
}

/// Contract `close_is_idempotent`.
pub fn close_is_idempotent<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    b.insert(b"k", b"v").unwrap();
    b.close().unwrap();
    b.close().unwrap();
    assert!(matches!(b.get(b"k"), Err(Error::Closed)));
    assert!(matches!(b.insert(b"k", b"v"), Err(Error::Closed)));
    assert!(matches!(b.remove(b"k"), Err(Error::Closed)));
    assert!(matches!(b.contains(b"k"), Err(Error::Closed)));
    assert!(matches!(b.len(), Err(Error::Closed)));
    assert!(matches!(b.keys(), Err(Error::Closed)));
    assert!(matches!(b.iter().map(|_| ()), Err(Error::Closed)));
    assert!(matches!(b.flush(), Err(Error::Closed)));
}

/// Contract `read_only_refuses_writes`.
pub fn read_only_refuses_writes<S: Subject>(s: &S) {
    let (scratch, mut b) = open_fresh(s);
    if !b.capabilities().persistent {
        return skip("read_only_refuses_writes", s.name(), "not persistent: nothing to reopen read-only");
    }
    b.insert(b"a", b"1").unwrap();
    b.close().unwrap();
    drop(b);
    let mut r = reopen(s, &scratch, Flag::Read);
    let ro = |res: Result<(), Error>, what: &str| {
        assert!(matches!(res, Err(Error::ReadOnly { .. })), "{what}: expected ReadOnly, got {res:?}");
    };
    ro(r.insert(b"b", b"2"), "insert");
    ro(r.remove(b"a").map(|_| ()), "remove of a present key");
    ro(r.remove(b"missing").map(|_| ()), "remove of a missing key (as CPython)");
    ro(r.apply_batch(&[BatchOp::Insert(b"c", b"3")]), "apply_batch");
    let meta = r.set_metadata("m", b"x");
    if r.capabilities().metadata {
        ro(meta, "set_metadata");
    } else {
        assert!(matches!(meta, Err(Error::Unsupported { .. } | Error::ReadOnly { .. })), "{meta:?}");
    }
    assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(r.len().unwrap(), 1);
    r.flush().unwrap();
    r.close().unwrap();
}

fn assert_not_found<T>(res: Result<T, OpenError>, flag: char) {
    match res {
        Err(OpenError::NotFound { flag: f, .. }) => assert_eq!(f, flag),
        Err(other) => panic!("flag {flag} on a missing database: expected NotFound, got {other}"),
        Ok(_) => panic!("flag {flag} on a missing database opened something"),
    }
}

/// Contract `flag_semantics`.
pub fn flag_semantics<S: Subject>(s: &S) {
    let scratch = Scratch::new();
    for flag in [Flag::Read, Flag::Write] {
        assert_not_found(s.open_backend(&scratch.path, &flag_options(flag)), flag.as_char());
        let left: Vec<_> = std::fs::read_dir(scratch.dir.path()).unwrap().collect();
        assert!(left.is_empty(), "flag {flag} created files: {left:?}");
    }
    let mut b = s.open_backend(&scratch.path, &flag_options(Flag::Create)).unwrap();
    b.insert(b"x", b"1").unwrap();
    let persistent = b.capabilities().persistent;
    b.close().unwrap();
    drop(b);
    if !persistent {
        return skip("flag_semantics (reopen part)", s.name(), "not persistent");
    }
    for flag in [Flag::Create, Flag::Write, Flag::Read] {
        let mut b = reopen(s, &scratch, flag);
        assert_eq!(b.get(b"x").unwrap().as_deref(), Some(&b"1"[..]), "flag {flag} keeps data");
        b.close().unwrap();
    }
    let mut b = reopen(s, &scratch, Flag::New);
    assert_eq!(b.len().unwrap(), 0, "flag n starts empty");
    b.close().unwrap();
}

/// Contract `metadata_is_separate`.
pub fn metadata_is_separate<S: Subject>(s: &S) {
    let (scratch, mut b) = open_fresh(s);
    let caps = b.capabilities();
    if !caps.metadata {
        assert_eq!(b.metadata("m").unwrap(), None);
        let res = b.set_metadata("m", b"v");
        assert!(matches!(res, Err(Error::Unsupported { .. })), "{res:?}");
        return skip("metadata_is_separate (persistence part)", s.name(), "keeps no metadata");
    }
    b.insert(b"k", b"v").unwrap();
    b.set_metadata("m", b"meta").unwrap();
    assert_eq!(b.metadata("m").unwrap().as_deref(), Some(&b"meta"[..]));
    assert_eq!(b.keys().collected().unwrap(), vec![b"k".to_vec()]);
    assert_eq!(b.len().unwrap(), 1);
    assert_eq!(b.get(b"m").unwrap(), None);
    if caps.persistent {
        b.close().unwrap();
        drop(b);
        let b = reopen(s, &scratch, Flag::Read);
        assert_eq!(b.metadata("m").unwrap().as_deref(), Some(&b"meta"[..]));
        assert_eq!(b.len().unwrap(), 1);
    }
}

/// Contract `ordered_range`.
pub fn ordered_range<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    if !b.capabilities().ordered_keys {
        let res = b.range(Bound::Unbounded, Bound::Unbounded).map(|_| ());
        assert!(matches!(res, Err(Error::Unsupported { .. })), "{res:?}");
        return skip("ordered_range", s.name(), "keys are not ordered");
    }
    for k in [&b"d"[..], b"b", b"a", b"c", b"", b"\xff"] {
        b.insert(k, k).unwrap();
    }
    let keys = |lo: Bound<&[u8]>, hi: Bound<&[u8]>| -> Vec<Vec<u8>> {
        b.range(lo, hi).unwrap().map(|r| r.unwrap().0).collect()
    };
    let v = |ks: &[&[u8]]| ks.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
    assert_eq!(keys(Bound::Unbounded, Bound::Unbounded), v(&[b"", b"a", b"b", b"c", b"d", b"\xff"]));
    assert_eq!(keys(Bound::Included(b"b"), Bound::Excluded(b"d")), v(&[b"b", b"c"]));
    assert_eq!(keys(Bound::Excluded(b"b"), Bound::Included(b"d")), v(&[b"c", b"d"]));
    assert_eq!(keys(Bound::Included(b"d"), Bound::Excluded(b"b")), v(&[]), "an inverted range is empty");
    assert_eq!(keys(Bound::Excluded(b"c"), Bound::Excluded(b"c")), v(&[]));
    let back: Vec<_> =
        b.range(Bound::Unbounded, Bound::Excluded(b"c")).unwrap().rev().map(|r| r.unwrap().0).collect();
    assert_eq!(back, v(&[b"b", b"a", b""]));
    let mut both = b.range(Bound::Unbounded, Bound::Unbounded).unwrap();
    assert_eq!(both.next().unwrap().unwrap().0, b"");
    assert_eq!(both.next_back().unwrap().unwrap(), (b"\xff".to_vec(), b"\xff".to_vec()));
}

/// Contract `batch_applies_in_order`.
pub fn batch_applies_in_order<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    b.insert(b"x", b"0").unwrap();
    b.insert(b"gone", b"0").unwrap();
    let ops = [
        BatchOp::Insert(b"a", b"1"),
        BatchOp::Insert(b"b", b"2"),
        BatchOp::Remove(b"a"),
        BatchOp::Insert(b"x", b"3"),
        BatchOp::Remove(b"gone"),
        BatchOp::Remove(b"never-there"),
        BatchOp::Insert(b"a", b"4"),
    ];
    b.apply_batch(&ops).unwrap();
    let expected: BTreeMap<Vec<u8>, Vec<u8>> =
        [(b"a".to_vec(), b"4".to_vec()), (b"b".to_vec(), b"2".to_vec()), (b"x".to_vec(), b"3".to_vec())]
            .into();
    assert_eq!(contents(&b), expected);
    b.apply_batch(&[]).unwrap();
    assert_eq!(contents(&b), expected);
}

/// Contract `capabilities_are_honest`.
pub fn capabilities_are_honest<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    let caps = b.capabilities();
    assert_eq!(b.name(), s.name());
    b.insert(b"k", b"v").unwrap();
    b.flush().unwrap();
    let unsupported = |res: Result<(), Error>, cap: &str, on: bool| {
        if on {
            assert!(res.is_ok(), "{cap} is claimed but failed: {res:?}");
        } else {
            assert!(matches!(res, Err(Error::Unsupported { .. })), "{cap} is not claimed: {res:?}");
        }
    };
    unsupported(b.commit_number().map(|_| ()), "commit_number", caps.commit_number);
    unsupported(b.check(false).map(|r| assert!(r.is_clean(), "{r:?}")), "check", caps.check);
    unsupported(b.compact().map(|_| ()), "compact", caps.compact);
    unsupported(b.range(Bound::Unbounded, Bound::Unbounded).map(|_| ()), "ordered_keys", caps.ordered_keys);
    unsupported(b.insert_with_ttl(b"t", b"v", std::time::Duration::from_secs(600)), "expiry", caps.expiry);
    assert_eq!(b.get(b"k").unwrap().as_deref(), Some(&b"v"[..]), "maintenance keeps data");
}
