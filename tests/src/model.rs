//! The model test: random sequences of inserts, removes, syncs and reopens
//! on a shelf, checked step by step against a `BTreeMap` (as redb's fuzzer
//! does).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use shelf::{Flag, KvBackend, OpenOptions, Protocol};

use crate::{Scratch, Subject};

/// One step of a sequence.
#[derive(Debug, Clone)]
pub enum Op {
    /// `s[key] = value`.
    Insert(usize, Vec<u8>),
    /// `del s[key]`.
    Remove(usize),
    /// `s.sync()`.
    Sync,
    /// Close and open again (a sync, where the backend does not persist).
    Reopen,
}

/// A small key space, so operations collide.
const KEYS: &[&[u8]] =
    &[b"", b"a", b"b", b"\x00", b"\xff\xfe", "日本".as_bytes(), b"long key long key", b"'\""];

/// The same size of key space for backends whose keys are paths.
const PATH_KEYS: &[&[u8]] =
    &[b"z", b"a", b"b", b"d/x", b"d/y", "日本".as_bytes(), b"long key long key", b"'\""];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..KEYS.len(), proptest::collection::vec(any::<u8>(), 0..1200)).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => (0..KEYS.len()).prop_map(Op::Remove),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

/// Runs 24 random sequences of up to 40 steps against `s`.
///
/// # Panics
/// On the first divergence from the model, with proptest's minimal case.
pub fn run<S: Subject>(s: &S) {
    let mut runner = TestRunner::new(Config { cases: 24, failure_persistence: None, ..Config::default() });
    let result = runner.run(&proptest::collection::vec(op(), 1..40), |ops| check(s, &ops));
    if let Err(e) = result {
        panic!("{}: model test failed: {e}", s.name());
    }
}

fn check<S: Subject>(s: &S, ops: &[Op]) -> Result<(), TestCaseError> {
    let scratch = Scratch::new();
    let options = {
        let mut o = OpenOptions::new();
        o.protocol(Protocol::Bincode);
        o
    };
    let mut shelf = s.open_shelf(&scratch.path, &options).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let caps = shelf.capabilities().map_err(fail)?;
    let persistent = caps.persistent;
    let keys = if caps.path_keys { PATH_KEYS } else { KEYS };
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Insert(k, v) => {
                shelf.insert(keys[*k], v).map_err(fail)?;
                model.insert(keys[*k].to_vec(), v.clone());
            }
            Op::Remove(k) => {
                let was = shelf.remove(keys[*k]).map_err(fail)?;
                prop_assert_eq!(was, model.remove(keys[*k]).is_some());
            }
            Op::Sync => shelf.sync().map_err(fail)?,
            Op::Reopen if persistent => {
                shelf.close().map_err(fail)?;
                drop(shelf);
                let mut o = options.clone();
                o.flag(Flag::Write);
                shelf = s.open_shelf(&scratch.path, &o).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Reopen => shelf.sync().map_err(fail)?,
        }
        prop_assert_eq!(shelf.len().map_err(fail)?, model.len());
    }
    let backend = shelf.backend().map_err(fail)?;
    let mut stored: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for item in backend.iter().map_err(fail)? {
        let (k, _) = item.map_err(fail)?;
        let v: Vec<u8> = shelf.get(&k).map_err(fail)?.ok_or_else(|| TestCaseError::fail("key vanished"))?;
        stored.insert(k, v);
    }
    prop_assert_eq!(stored, model);
    shelf.close().map_err(fail)?;
    Ok(())
}

fn fail(e: shelf::Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}
