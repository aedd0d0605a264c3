//! The bodies of the fuzz targets in `fuzz/`, shared with the regression
//! test that replays every input the fuzzers ever crashed on
//! (`tests/fuzz-regressions/<target>/*`). Each takes arbitrary bytes and
//! must return without panicking; errors are the expected outcome.

use std::path::Path;

use shelf_core::raw::BackendOptions;
use shelf_core::{Flag, KvBackend, PickleOptions, Protocol, Value};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` calls them.
pub const TARGETS: &[(&str, Target)] = &[
    ("pickle_decode", pickle_decode),
    ("whichdb", whichdb),
    ("dumb_dir_parse", dumb_dir_parse),
    ("dumb_open", dumb_open),
    ("cli_json", cli_json),
    ("mmappickle_open", mmappickle_open),
    ("gnu_open", gnu_open),
    ("sqlite_open", sqlite_open),
];

/// Pickle decoding, dynamic and typed, strict and with placeholders; and
/// whatever decodes (Python's classes, kept pickles of unknown ones) is
/// written again in every protocol and must read back.
pub fn pickle_decode(data: &[u8]) {
    let strict = Protocol::Pickle(PickleOptions::default());
    let lenient = Protocol::Pickle(PickleOptions::default().with_placeholder_globals());
    let _ = strict.decode_value(data);
    let _ = strict.decode::<Value>(data);
    let _ = strict.decode::<Vec<(String, i64)>>(data);
    let _ = strict.decode::<std::collections::BTreeSet<String>>(data);
    // The serde forms of Python's classes: a date as text, a deque as a list.
    let _ = strict.decode::<String>(data);
    let _ = strict.decode::<std::collections::BTreeMap<String, Vec<String>>>(data);
    let _ = lenient.decode::<Value>(data);
    if let Ok(v) = lenient.decode_value(data) {
        for version in PickleOptions::VERSIONS {
            let p =
                Protocol::Pickle(PickleOptions::default().with_placeholder_globals().with_version(version));
            if let Ok(bytes) = p.encode_value(&v) {
                let back = p.decode_value(&bytes);
                assert!(
                    back.is_ok(),
                    "protocol {version}: our own pickle of {v:?} does not decode: {back:?}"
                );
            }
        }
    }
}

/// `whichdb` and a read-only open on arbitrary files: the input is split
/// into a file at the path, or `PATH.dir`/`PATH.dat`, or a sled-like
/// directory.
pub fn whichdb(data: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let (a, rest) = data.split_at(data.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    match a.first() {
        Some(x) if x % 3 == 0 => {
            std::fs::create_dir(&path).expect("dir");
            std::fs::write(path.join("conf"), b).expect("conf");
            std::fs::write(path.join("db"), c).expect("db");
        }
        Some(x) if x % 3 == 1 => {
            std::fs::write(dir.path().join("db.dir"), b).expect("dir file");
            std::fs::write(dir.path().join("db.dat"), c).expect("dat file");
        }
        _ => std::fs::write(&path, data).expect("file"),
    }
    let _ = shelf::whichdb(&path);
    let _ = shelf::OpenOptions::new().flag(Flag::Read).open(&path).map(|s| s.len());
}

/// The dumb `.dir` line parser on arbitrary text, and the writer's
/// round trip for whatever key it yields.
pub fn dumb_dir_parse(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        if let Ok(backend_dumb::Line::Entry { key, pos, siz }) = backend_dumb::parse_line(line) {
            let mut written = Vec::new();
            backend_dumb::write_line(&mut written, &key, pos, siz);
            written.pop();
            assert_eq!(
                backend_dumb::parse_line(&written),
                Ok(backend_dumb::Line::Entry { key, pos, siz }),
                "what we write must read back"
            );
        }
    }
}

/// Opening a dumb database from arbitrary `.dir` and `.dat` bytes (the
/// first byte says where to split), strictly and salvaging, then reading,
/// checking, repairing and compacting it.
pub fn dumb_open(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else { return };
    let at = rest.len() * usize::from(split) / 255;
    let (dir_bytes, dat_bytes) = rest.split_at(at);
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    std::fs::write(tmp.path().join("db.dir"), dir_bytes).expect("dir file");
    std::fs::write(tmp.path().join("db.dat"), dat_bytes).expect("dat file");
    if let Ok(b) = backend_dumb::DumbBackend::open(&path, &BackendOptions::with_flag(Flag::Read)) {
        read_all(&b);
    }
    let mut o = BackendOptions::with_flag(Flag::Write);
    o.salvage = true;
    if let Ok(mut b) = backend_dumb::DumbBackend::open(&path, &o) {
        read_all(&b);
        let _ = b.check(true);
        let _ = b.compact();
        read_all(&b);
        let _ = b.close();
        let strict = backend_dumb::DumbBackend::open(&path, &BackendOptions::with_flag(Flag::Read));
        assert!(strict.is_ok(), "a repaired database must open: {:?}", strict.err());
    }
}

fn read_all(b: &dyn KvBackend) {
    if let Ok(keys) = b.keys() {
        for k in keys.flatten() {
            let _ = b.get(&k);
            let _ = b.get_shared(&k);
        }
    }
    if let Ok(it) = b.iter() {
        for _ in it {}
    }
}

/// The CLI's JSON loader (what `shelf load` reads) into a memory shelf,
/// with each protocol.
pub fn cli_json(data: &[u8]) {
    for protocol in [Protocol::Json, Protocol::Bincode, Protocol::Pickle(PickleOptions::default())] {
        let Ok(mut s) =
            shelf::OpenOptions::new().backend("memory").protocol(protocol).open(Path::new("fuzz"))
        else {
            return;
        };
        let _ = shelf_cli::commands::load_into(&mut s, Box::new(data), "fuzz input", Path::new("fuzz"));
    }
}

/// Opening an mmappickle file from arbitrary bytes (after a valid header
/// when the first byte is even, so the fuzzer reaches the entries),
/// strictly and salvaging, reading every value and array, then checking,
/// repairing and compacting it: a repaired file must open strictly.
pub fn mmappickle_open(data: &[u8]) {
    use backend_mmappickle::MmapPickleBackend;
    use shelf_core::raw::OpenBackend;
    let Some((&first, rest)) = data.split_first() else { return };
    let mut file = Vec::new();
    if first % 2 == 0 {
        file.extend_from_slice(
            b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00J\x01\x00\x00\x000J\x00\x00\x00\x000(",
        );
    }
    file.extend_from_slice(rest);
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    std::fs::write(&path, &file).expect("file");
    let read_arrays = |b: &MmapPickleBackend| {
        for k in b.keys().into_iter().flatten().flatten() {
            let _ = b.get_array(&k);
        }
    };
    if let Ok(b) = MmapPickleBackend::open(&path, &BackendOptions::with_flag(Flag::Read)) {
        read_all(&b);
        read_arrays(&b);
    }
    let mut o = BackendOptions::with_flag(Flag::Write);
    o.salvage = true;
    if let Ok(mut b) = MmapPickleBackend::open(&path, &o) {
        read_all(&b);
        read_arrays(&b);
        let _ = b.check(true);
        let _ = b.compact();
        read_all(&b);
        let _ = b.close();
        let strict = MmapPickleBackend::open(&path, &BackendOptions::with_flag(Flag::Read));
        assert!(strict.is_ok(), "a repaired file must open: {:?}", strict.err().map(|e| e.to_string()));
    }
}

/// A small GDBM file written by the gnu backend, built once: the fuzzer
/// patches it, so its mutations reach the buckets and records behind a
/// sound header.
fn gnu_template() -> &'static [u8] {
    static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| template_file::<backend_gnu::GnuBackend>(24, 3))
}

/// The one file of a database of `B` holding `n` keys (with bytes past
/// 0x80) and values of `i * value_step` bytes, written by the backend.
fn template_file<B: shelf_core::raw::OpenBackend>(n: u8, value_step: usize) -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    let mut b = B::open(&path, &BackendOptions::with_flag(Flag::Create)).expect("create");
    for i in 0..n {
        b.insert(&[b'k', i, 0x80 + i], &vec![i; usize::from(i) * value_step]).expect("insert");
    }
    b.close().expect("close");
    std::fs::read(&path).expect("read back")
}

/// The file a fuzz input stands for: with an even first byte, the rest is a
/// list of (offset: u16, byte) patches over `template` (so mutations reach
/// past a sound header); otherwise the rest is the whole file.
fn patched_or_whole(data: &[u8], template: &[u8]) -> Option<Vec<u8>> {
    let (&first, rest) = data.split_first()?;
    if first % 2 != 0 {
        return Some(rest.to_vec());
    }
    let mut file = template.to_vec();
    for patch in rest.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([patch[0], patch[1]])) % file.len();
        file[at] = patch[2];
    }
    Some(file)
}

/// Opening a GDBM file (the gnu backend's parser of the header, the
/// directory, buckets and records) from arbitrary bytes: with an even first
/// byte, the rest is a list of (offset: u16, byte) patches over a sound
/// file; otherwise the rest is the whole file. Read everything, then as a
/// writer check, write, repair and compact: a repaired file must open.
pub fn gnu_open(data: &[u8]) {
    use backend_gnu::GnuBackend;
    use shelf_core::raw::OpenBackend;
    let Some(file) = patched_or_whole(data, gnu_template()) else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    std::fs::write(&path, &file).expect("file");
    if let Ok(b) = GnuBackend::open(&path, &BackendOptions::with_flag(Flag::Read)) {
        read_all(&b);
    }
    if let Ok(mut b) = GnuBackend::open(&path, &BackendOptions::with_flag(Flag::Write)) {
        read_all(&b);
        let _ = b.check(false);
        let _ = b.insert(b"fuzz", b"value");
        let _ = b.remove(b"k\x01\x81");
        let repaired = b.check(true).map(|r| r.repaired);
        let _ = b.compact();
        read_all(&b);
        let closed = b.close();
        if repaired.is_ok() && closed.is_ok() {
            let again = GnuBackend::open(&path, &BackendOptions::with_flag(Flag::Read));
            assert!(again.is_ok(), "a checked and repaired database must open: {:?}", again.err());
        }
    }
}

/// A small `dbm.sqlite3` file written by the sqlite backend, built once
/// (its WAL checkpointed into the file by the close): the fuzzer patches
/// it, so its mutations reach the B-tree pages behind a sound header.
fn sqlite_template() -> &'static [u8] {
    static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| template_file::<backend_sqlite::SqliteBackend>(40, 7))
}

/// Opening a `dbm.sqlite3` file (SQLite's page parsing, the backend's
/// schema check and paged listings) from arbitrary bytes: with an even
/// first byte, the rest is a list of (offset: u16, byte) patches over a
/// sound file; otherwise the rest is the whole file. Probe, read
/// everything, then as a writer check, write, repair and compact.
pub fn sqlite_open(data: &[u8]) {
    use backend_sqlite::SqliteBackend;
    use shelf_core::raw::OpenBackend;
    let Some(file) = patched_or_whole(data, sqlite_template()) else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    std::fs::write(&path, &file).expect("file");
    let _ = SqliteBackend::probe(&path);
    if let Ok(b) = SqliteBackend::open(&path, &BackendOptions::with_flag(Flag::Read)) {
        read_all(&b);
        let _ = b.range(std::ops::Bound::Included(b"k"), std::ops::Bound::Unbounded).map(|r| r.rev().count());
    }
    if let Ok(mut b) = SqliteBackend::open(&path, &BackendOptions::with_flag(Flag::Write)) {
        read_all(&b);
        let _ = b.check(false);
        let _ = b.insert(b"fuzz", b"value");
        let _ = b.remove(b"k\x01\x81");
        let _ = b.check(true);
        let _ = b.compact();
        read_all(&b);
        let _ = b.close();
    }
}
