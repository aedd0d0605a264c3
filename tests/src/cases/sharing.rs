//! Cases of the contract that concern more than one call or more than one
//! reader: batch reads, a second read-only handle in one process, readers
//! on several threads beside a writer, and expiry.

use std::thread;
use std::time::{Duration, Instant};

use shelf::{Error, Flag, KvBackend};

use super::{open_fresh, reopen};
use crate::{Collected, Subject, flag_options, skip};

/// Contract `get_many_matches_get`.
pub fn get_many_matches_get<S: Subject>(s: &S) {
    let (scratch, mut b) = open_fresh(s);
    for i in 0..50u32 {
        b.insert(format!("k{i}").as_bytes(), format!("v{i}").as_bytes()).unwrap();
    }
    b.flush().unwrap();
    // Unsynced writes too: get_many reads this handle's own writes, as get.
    b.insert(b"k3", b"changed").unwrap();
    b.remove(b"k4").unwrap();
    b.insert(b"new", b"").unwrap();
    let names: Vec<Vec<u8>> =
        ["k0", "k3", "k4", "missing", "new", "k49", "k0"].iter().map(|k| k.as_bytes().to_vec()).collect();
    let keys: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    let one_by_one: Vec<Option<Vec<u8>>> = keys.iter().map(|k| b.get(k).unwrap()).collect();
    assert_eq!(b.get_many(&keys).unwrap(), one_by_one, "{}: get_many differs from get", s.name());
    assert_eq!(one_by_one[1].as_deref(), Some(&b"changed"[..]));
    assert_eq!(one_by_one[2], None);
    assert_eq!(b.get_many(&[]).unwrap(), Vec::<Option<Vec<u8>>>::new());
    b.close().unwrap();
    assert!(matches!(b.get_many(&keys), Err(Error::Closed)), "{}: get_many after close", s.name());
    if !b.capabilities().persistent {
        return;
    }
    drop(b);
    let b = reopen(s, &scratch, Flag::Read);
    let all: Vec<Vec<u8>> = (0..50u32).map(|i| format!("k{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
    let got = b.get_many(&refs).unwrap();
    assert_eq!(got.iter().filter(|v| v.is_some()).count(), 49, "{}: k4 was removed", s.name());
}

/// Contract `second_reader_in_one_process`.
pub fn second_reader_in_one_process<S: Subject>(s: &S) {
    let (scratch, mut writer) = open_fresh(s);
    if !writer.capabilities().persistent {
        return skip("second_reader_in_one_process", s.name(), "not persistent: no path to open twice");
    }
    writer.insert(b"a", b"1").unwrap();
    writer.flush().unwrap();
    let mut options = flag_options(Flag::Read);
    options.lock_timeout = Some(Duration::from_millis(500));
    let reader = s
        .open_backend(&scratch.path, &options)
        .unwrap_or_else(|e| panic!("{}: a read-only handle beside a writer in one process: {e}", s.name()));
    assert_eq!(
        reader.get(b"a").unwrap().as_deref(),
        Some(&b"1"[..]),
        "{}: the reader sees the sync",
        s.name()
    );
    let second = s
        .open_backend(&scratch.path, &options)
        .unwrap_or_else(|e| panic!("{}: a second read-only handle: {e}", s.name()));
    writer.insert(b"b", b"2").unwrap();
    writer.flush().unwrap();
    for r in [&reader, &second] {
        assert_eq!(r.get(b"b").unwrap().as_deref(), Some(&b"2"[..]), "{}: a later sync is seen", s.name());
        assert_eq!(r.keys().collected().unwrap().len(), 2, "{}", s.name());
    }
    writer.close().unwrap();
    drop(writer);
    assert_eq!(
        reader.get(b"a").unwrap().as_deref(),
        Some(&b"1"[..]),
        "{}: the reader outlives the writer",
        s.name()
    );
    drop((reader, second));
    let b = reopen(s, &scratch, Flag::Read);
    assert_eq!(b.len().unwrap(), 2);
}

/// How many keys [`readers_run_beside_a_writer`] rewrites.
const SHARED_KEYS: u32 = 64;

/// The value of `key` at `version`: readers check they only ever see one
/// whole version of a value, never a mix or garbage.
fn versioned(key: u32, version: u32) -> Vec<u8> {
    let mut v = format!("{key}:{version}:").into_bytes();
    v.resize(64 + (version as usize % 7) * 40, b'0' + (version % 10) as u8);
    v
}

fn check_versioned(key: u32, bytes: &[u8]) -> Result<u32, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| format!("key {key}: not UTF-8"))?;
    let mut parts = text.splitn(3, ':');
    let (k, v) = (parts.next(), parts.next());
    let version: u32 =
        v.and_then(|v| v.parse().ok()).ok_or_else(|| format!("key {key}: garbage {text:?}"))?;
    if k != Some(&key.to_string()) || bytes != versioned(key, version) {
        return Err(format!("key {key}: a torn or foreign value {text:?}"));
    }
    Ok(version)
}

/// Contract `readers_run_beside_a_writer`: one read-only handle shared by
/// two threads (the backend is `Sync`) reads while a writable handle of
/// the same process rewrites and flushes; every value read is a whole
/// version, versions never go back for a thread, and the readers finish.
pub fn readers_run_beside_a_writer<S: Subject>(s: &S)
where
    S::B: Sync,
{
    let (scratch, mut writer) = open_fresh(s);
    if !writer.capabilities().persistent {
        return skip("readers_run_beside_a_writer", s.name(), "not persistent: no second handle");
    }
    for k in 0..SHARED_KEYS {
        writer.insert(k.to_string().as_bytes(), &versioned(k, 0)).unwrap();
    }
    writer.flush().unwrap();
    let mut options = flag_options(Flag::Read);
    options.lock_timeout = Some(Duration::from_millis(500));
    let reader = s
        .open_backend(&scratch.path, &options)
        .unwrap_or_else(|e| panic!("{}: a read-only handle beside a writer: {e}", s.name()));
    let deadline = Instant::now() + Duration::from_millis(600);
    let results: Vec<Result<u64, String>> = thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|t| {
                let reader = &reader;
                scope.spawn(move || {
                    let mut seen = vec![0u32; SHARED_KEYS as usize];
                    let mut reads = 0u64;
                    while Instant::now() < deadline {
                        for k in 0..SHARED_KEYS {
                            let k = (k + t * 7) % SHARED_KEYS;
                            let v =
                                reader.get(k.to_string().as_bytes()).map_err(|e| format!("get {k}: {e}"))?;
                            let version = check_versioned(k, &v.ok_or_else(|| format!("key {k} vanished"))?)?;
                            if version < seen[k as usize] {
                                return Err(format!(
                                    "key {k}: back from version {} to {version}",
                                    seen[k as usize]
                                ));
                            }
                            seen[k as usize] = version;
                            reads += 1;
                        }
                    }
                    Ok(reads)
                })
            })
            .collect();
        let mut version = 0;
        while Instant::now() < deadline {
            version += 1;
            for k in (0..SHARED_KEYS).step_by(3) {
                writer.insert(k.to_string().as_bytes(), &versioned(k, version)).unwrap();
            }
            writer.flush().unwrap();
        }
        readers.into_iter().map(|r| r.join().unwrap_or_else(|_| Err("a reader panicked".into()))).collect()
    });
    for r in results {
        let reads = r.unwrap_or_else(|e| panic!("{}: {e}", s.name()));
        assert!(reads >= SHARED_KEYS as u64, "{}: a reader made no progress ({reads} reads)", s.name());
    }
}

/// Contract `expiry_is_honest`: where `capabilities().expiry` is true, an
/// entry stored with a time to live is there at once and gone (from `get`,
/// `contains`, `len`, `keys` and `iter`) after it; elsewhere
/// `insert_with_ttl` is `Unsupported` and stores nothing.
pub fn expiry_is_honest<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    b.insert(b"stays", b"1").unwrap();
    let ttl = Duration::from_millis(300);
    if !b.capabilities().expiry {
        assert!(
            matches!(b.insert_with_ttl(b"brief", b"2", ttl), Err(Error::Unsupported { .. })),
            "{}: expiry is not claimed",
            s.name()
        );
        assert_eq!(b.get(b"brief").unwrap(), None, "{}: a refused insert stored nothing", s.name());
        return;
    }
    b.insert_with_ttl(b"brief", b"2", ttl).unwrap();
    b.flush().unwrap();
    assert_eq!(b.get(b"brief").unwrap().as_deref(), Some(&b"2"[..]), "{}: there before its time", s.name());
    assert_eq!(b.len().unwrap(), 2);
    let start = Instant::now();
    while b.get(b"brief").unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(5), "{}: still there 5 s after a 300 ms ttl", s.name());
        thread::sleep(Duration::from_millis(50));
    }
    assert!(!b.contains(b"brief").unwrap());
    assert_eq!(b.len().unwrap(), 1, "{}: len counts an expired entry", s.name());
    assert_eq!(b.keys().collected().unwrap(), vec![b"stays".to_vec()]);
    assert_eq!(b.iter().unwrap().count(), 1);
    // A plain insert afterwards stores for good.
    b.insert(b"brief", b"3").unwrap();
    b.flush().unwrap();
    thread::sleep(ttl);
    assert_eq!(b.get(b"brief").unwrap().as_deref(), Some(&b"3"[..]), "{}: a plain insert expired", s.name());
}

/// Contract `get_with_matches_get`.
pub fn get_with_matches_get<S: Subject>(s: &S) {
    let (_scratch, mut b) = open_fresh(s);
    b.insert(b"flushed", b"one").unwrap();
    b.insert(b"empty", b"").unwrap();
    b.flush().unwrap();
    b.insert(b"pending", &[7u8; 5000]).unwrap();
    for key in [&b"flushed"[..], b"empty", b"pending", b"missing"] {
        let mut calls = Vec::new();
        let found = b.get_with(key, &mut |v| calls.push(v.to_vec())).unwrap();
        let expected = b.get(key).unwrap();
        assert_eq!(found, expected.is_some(), "{}: get_with's answer for {key:?}", s.name());
        assert_eq!(
            calls,
            expected.into_iter().collect::<Vec<_>>(),
            "{}: get_with's bytes for {key:?}",
            s.name()
        );
    }
}
