//! Unit tests of handles beside each other: a reader beside the writer in
//! one process, and reads on several threads through one handle.

use std::time::Duration;

use shelf_core::raw::{BackendOptions, OpenBackend};
use shelf_core::{Flag, KvBackend};

use crate::MmapPickleBackend;

fn open(path: &std::path::Path, flag: Flag) -> MmapPickleBackend {
    let mut o = BackendOptions::with_flag(flag);
    o.lock_timeout = Some(Duration::from_millis(100));
    MmapPickleBackend::open(path, &o).unwrap()
}

#[test]
fn a_reader_beside_the_writer_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut w = open(&path, Flag::Create);
    w.insert(b"a", b"1").unwrap();
    w.flush().unwrap();
    let r = open(&path, Flag::Read);
    assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1"[..]), "synced data");
    w.insert(b"b", b"2").unwrap();
    w.remove(b"a").unwrap();
    w.flush().unwrap();
    assert_eq!(r.get_many(&[b"a", b"b"]).unwrap(), [None, Some(b"2".to_vec())], "later syncs");
    // mmappickle shares the file between writers too (per-operation
    // locks): a second writer works beside the first.
    let mut w2 = open(&path, Flag::Write);
    w2.insert(b"c", b"3").unwrap();
    assert_eq!(w.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
    drop(w);
    drop(w2);
    assert_eq!(r.keys().unwrap().collect::<Result<Vec<_>, _>>().unwrap(), [b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(r.len().unwrap(), 2, "the reader outlives the writers");
}

#[test]
fn reads_run_on_several_threads_beside_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut w = open(&path, Flag::Create);
    for i in 0..300u32 {
        w.insert(&i.to_be_bytes(), &i.to_le_bytes()).unwrap();
    }
    let r = open(&path, Flag::Read);
    let found: Vec<usize> = std::thread::scope(|s| {
        let r = &r;
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(move || {
                    let mut n = 0;
                    for round in 0..5u32 {
                        let keys: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_be_bytes().to_vec()).collect();
                        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
                        let got = r.get_many(&refs).unwrap();
                        assert!(got.iter().all(Option::is_some), "round {round}");
                        n = got.len();
                    }
                    n
                })
            })
            .collect();
        // The writer goes on meanwhile: the readers reread its index.
        for i in 300..400u32 {
            w.insert(&i.to_be_bytes(), b"new").unwrap();
        }
        readers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(found, [300, 300]);
    assert_eq!(r.len().unwrap(), 400);
}
