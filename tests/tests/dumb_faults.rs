//! I/O faults on the dumb backend: for every N, the N-th write, fsync or
//! rename of a workload fails (ENOSPC or EIO). The failing operation must
//! return an error, and after reopening the database must hold exactly the
//! state of the last successful sync, or (where the failure came after the
//! new index was in place, or a later sync succeeded) every write applied,
//! with `check()` clean.

use std::collections::BTreeMap;

use backend_dumb::DumbBackend;
use backend_dumb::fault;
use shelf_core::raw::BackendOptions;
use shelf_core::{Error, Flag, KvBackend};
use shelf_tests::Collected;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

fn value(b: u32, i: u32, len: usize) -> Vec<u8> {
    let mut v = format!("{b}:{i}:").into_bytes();
    v.resize(len, (b * 7 + i) as u8);
    v
}

/// Applies the workload, keeping `current` (every write that returned Ok)
/// and `synced` (the state at the last successful flush).
fn workload(db: &mut DumbBackend, current: &mut Model, synced: &mut Model) -> Result<(), Error> {
    for b in 0..4u32 {
        for i in 0..12u32 {
            let k = format!("b{b}k{i}").into_bytes();
            let v = value(b, i, 100 + (i as usize * 211) % 1400);
            db.insert(&k, &v)?;
            current.insert(k, v);
        }
        if b > 0 {
            for i in 0..4u32 {
                // Shorter: in place, as CPython does it.
                let k = format!("b{}k{i}", b - 1).into_bytes();
                let v = value(b + 100, i, 20 + i as usize);
                db.insert(&k, &v)?;
                current.insert(k, v);
            }
            // Longer than its blocks: appended.
            let k = format!("b{}k5", b - 1).into_bytes();
            let v = value(b + 200, 5, 3000);
            db.insert(&k, &v)?;
            current.insert(k, v);
            let k = format!("b{}k6", b - 1).into_bytes();
            db.remove(&k)?;
            current.remove(&k);
        }
        db.flush()?;
        *synced = current.clone();
    }
    Ok(())
}

fn state(db: &DumbBackend) -> Model {
    db.keys().collected().unwrap().into_iter().map(|k| (k.clone(), db.get(&k).unwrap().unwrap())).collect()
}

#[test]
fn every_failing_write_fsync_or_rename_keeps_what_was_synced() {
    let mut faults_hit = 0;
    for n in 1.. {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        DumbBackend::open(&path, &BackendOptions::with_flag(Flag::New)).unwrap().close().unwrap();
        let errno = if n % 2 == 0 { ENOSPC } else { EIO };
        let (mut current, mut synced) = (Model::new(), Model::new());
        let mut db = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::Write)).unwrap();
        fault::arm(n, errno);
        let result = workload(&mut db, &mut current, &mut synced);
        let fired = fault::operations() >= n;
        fault::disarm();
        match (&result, fired) {
            (Ok(()), false) => {
                assert!(faults_hit > 10, "the workload did only {faults_hit} faultable operations");
                eprintln!("{faults_hit} faults injected; the workload has {} operations", n - 1);
                return;
            }
            (Ok(()), true) => panic!("fault {n} (errno {errno}) fired but no operation returned an error"),
            (Err(e), _) => {
                assert!(fired, "operation failed without a fault: {e}");
                faults_hit += 1;
            }
        }
        // Dropping the handle commits what it can (or nothing, if the
        // failed commit poisoned it); reopening rolls back a torn commit.
        drop(db);
        let mut db = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::Write))
            .unwrap_or_else(|e| panic!("fault {n}: the database does not reopen: {e}"));
        let got = state(&db);
        assert!(
            got == synced || got == current,
            "fault {n} (errno {errno}, {:?}): reopened state is neither the synced one nor the full one",
            result.err()
        );
        let report = db.check(false).unwrap();
        assert!(report.is_clean(), "fault {n}: check found {:?}", report.problems);
        db.close().unwrap();
    }
}
