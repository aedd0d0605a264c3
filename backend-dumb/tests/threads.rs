//! Readers on several threads sharing one handle, and `get_many`.

use std::sync::atomic::{AtomicBool, Ordering};

use backend_dumb::DumbBackend;
use shelf_core::raw::BackendOptions;
use shelf_core::{Flag, KvBackend};

fn key(i: usize) -> Vec<u8> {
    // Short keys live in the hash slot, long ones in the arena: both.
    if i.is_multiple_of(3) {
        format!("a-key-longer-than-sixteen-bytes-{i}").into_bytes()
    } else {
        format!("k{i}").into_bytes()
    }
}

/// A value that names its key and version, so a reader can tell a whole
/// value from a torn or misplaced one: `key|version|` repeated to `len`.
fn value(i: usize, version: u32, len: usize) -> Vec<u8> {
    let unit = format!("{}|{version}|", String::from_utf8_lossy(&key(i)));
    unit.bytes().cycle().take(len.max(unit.len())).collect()
}

/// The version of a whole value of key `i`, or a panic naming what is wrong.
fn version_of(i: usize, v: &[u8]) -> u32 {
    let text = String::from_utf8(v.to_vec()).expect("a value is text");
    let mut parts = text.split('|');
    let k = parts.next().unwrap();
    assert_eq!(k.as_bytes(), key(i), "value of another key");
    let version: u32 = parts.next().unwrap().parse().unwrap();
    assert_eq!(v, value(i, version, v.len()), "a torn value of key {i}");
    version
}

const N: usize = 600;

/// Values on disk, in the append buffer and overwritten in place (the
/// overlay) are all read right on two threads at once, by `get`,
/// `get_many` and `get_shared`.
#[test]
fn two_threads_read_one_writer_handle() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = DumbBackend::open(&dir.path().join("db"), &BackendOptions::with_flag(Flag::New)).unwrap();
    for i in 0..N {
        db.insert(&key(i), &value(i, 0, 40 + i % 300)).unwrap();
    }
    db.flush().unwrap();
    for i in (0..N).step_by(2) {
        // Same block count: in place, buffered in the overlay until flush.
        db.insert(&key(i), &value(i, 1, 40 + i % 300)).unwrap();
    }
    for i in N..N + 100 {
        db.insert(&key(i), &value(i, 0, 100)).unwrap();
    }
    let want = |i: usize| -> Option<u32> {
        match i {
            _ if i >= N + 100 => None,
            _ if i >= N => Some(0),
            _ => Some(u32::from(i.is_multiple_of(2))),
        }
    };
    let check = |db: &DumbBackend| {
        std::thread::scope(|s| {
            for t in 0..2 {
                s.spawn(move || {
                    for round in 0..3 {
                        let ids: Vec<usize> =
                            (0..N + 150).map(|j| (j * 7 + t * 31 + round) % (N + 150)).collect();
                        for &i in &ids {
                            let got = db.get(&key(i)).unwrap();
                            assert_eq!(got.as_deref().map(|v| version_of(i, v)), want(i), "key {i}");
                            let shared = db.get_shared(&key(i)).unwrap();
                            assert_eq!(shared.as_deref(), got.as_deref(), "get_shared of key {i}");
                        }
                        let keys: Vec<Vec<u8>> = ids.iter().map(|&i| key(i)).collect();
                        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
                        let many = db.get_many(&refs).unwrap();
                        assert_eq!(many.len(), ids.len());
                        for (&i, got) in ids.iter().zip(&many) {
                            assert_eq!(
                                got.as_deref().map(|v| version_of(i, v)),
                                want(i),
                                "get_many, key {i}"
                            );
                        }
                    }
                });
            }
        });
    };
    check(&db);
    db.flush().unwrap();
    check(&db);
    assert!(db.get_many(&[]).unwrap().is_empty());
}

/// A read-only handle read on two threads while a writer handle on the
/// same files commits: every value read is whole, versions never go back
/// for a thread, and once the writer is done every thread sees its last
/// commit (the reload happens under the handle's lock, on any thread).
#[test]
fn two_threads_read_a_read_only_handle_beside_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut writer = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::New)).unwrap();
    const KEYS: usize = 200;
    const COMMITS: u32 = 30;
    for i in 0..KEYS {
        writer.insert(&key(i), &value(i, 0, 64)).unwrap();
    }
    writer.flush().unwrap();
    let reader = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::Read)).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..2 {
            let (reader, done) = (&reader, &done);
            s.spawn(move || {
                let mut seen = vec![0u32; KEYS];
                loop {
                    // A round begun after the writer finished sees its
                    // last commit.
                    let last = done.load(Ordering::Acquire);
                    for i in (0..KEYS).map(|j| (j + t * 50) % KEYS) {
                        let v = reader.get(&key(i)).unwrap().expect("a key never removed");
                        let version = version_of(i, &v);
                        assert!(version >= seen[i], "key {i} went back from {} to {version}", seen[i]);
                        seen[i] = version;
                    }
                    let extra = reader.get_many(&[b"never-written".as_slice(), &key(t)]).unwrap();
                    assert!(extra[0].is_none());
                    version_of(t, extra[1].as_deref().unwrap());
                    if last {
                        break;
                    }
                }
                assert!(seen.iter().all(|&v| v == COMMITS), "thread {t} did not see the last commit");
            });
        }
        for version in 1..=COMMITS {
            for i in 0..KEYS {
                // Growing values are appended; the reader's shared lock
                // keeps the writer from overwriting in place anyway.
                writer.insert(&key(i), &value(i, version, 64 + version as usize * 20)).unwrap();
            }
            writer.flush().unwrap();
        }
        done.store(true, Ordering::Release);
    });
}

/// The read-only handle checks the commit number through a map of the
/// commit file: a commit made after that map exists is seen by the very
/// next read.
#[test]
fn a_read_only_handle_sees_the_next_commit_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut writer = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::New)).unwrap();
    writer.insert(b"a", b"1").unwrap();
    writer.flush().unwrap();
    let reader = DumbBackend::open(&path, &BackendOptions::with_flag(Flag::Read)).unwrap();
    for round in 0..20u32 {
        assert_eq!(reader.get(b"a").unwrap(), Some(round.max(1).to_string().into_bytes()));
        writer.insert(b"a", (round + 1).to_string().as_bytes()).unwrap();
        writer.insert(format!("new{round}").as_bytes(), b"x").unwrap();
        writer.flush().unwrap();
        assert_eq!(
            reader.get(format!("new{round}").as_bytes()).unwrap(),
            Some(b"x".to_vec()),
            "round {round}"
        );
        assert_eq!(reader.commit_number().unwrap(), writer.commit_number().unwrap());
    }
}
