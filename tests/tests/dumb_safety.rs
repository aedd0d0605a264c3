//! The dumb backend never destroys, leaves litter or misreads (issue 10):
//! beside a real CPython writer (which rewrites `.dir` in place, with
//! `.dir` missing for a moment), on a full tmpfs, under SIGKILL during a
//! compaction, against files that are not a dumb database, and when a
//! value is cut short.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backend_dumb::DumbBackend;
use shelf_core::raw::{BackendOptions, Probe};
use shelf_core::{Flag, KvBackend, OpenError};
use shelf_tests::python::Python;
use shelf_tests::{Rng, Scratch};

const WORKER: &str = env!("CARGO_BIN_EXE_shelf-test-worker");

fn file(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(ext);
    PathBuf::from(s)
}

fn open(path: &Path, flag: Flag) -> Result<DumbBackend, OpenError> {
    DumbBackend::open(path, &BackendOptions::with_flag(flag))
}

/// Every file in `dir`, by name, with its bytes (the writers' lock file
/// `db.shelf-commit` left out: opening a writer creates it).
fn snapshot(dir: &Path) -> Snapshot {
    Snapshot(
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap_or_default())
            })
            .filter(|(name, _)| !name.ends_with(".shelf-commit"))
            .collect(),
    )
}

/// Files and their bytes; shown as names and lengths (bytes are long).
#[derive(PartialEq, Eq)]
struct Snapshot(BTreeMap<String, Vec<u8>>);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (k, v.len()))).finish()
    }
}

/// Names in `dir` that are a dumb temporary file.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".shelf-compact") || n.ends_with(".shelf-tmp"))
        .collect()
}

// ---------------------------------------------------------------------------
// Beside CPython.

/// CPython's writer loop: rewrites every key with a value of fixed width
/// (so `dbm.dumb` overwrites in place) naming the key and a generation,
/// and commits with `sync()`, until the time is up; prints the last
/// generation.
const CPYTHON_WRITER: &str = r#"
import sys, time, dbm.dumb
path, secs, nkeys = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
db = dbm.dumb.open(path, 'c')
for i in range(nkeys):
    db['k%d' % i] = ('k%d=%08d' % (i, 0)).encode()
db.sync()
print('ready', flush=True)
gen = 0
end = time.time() + secs
while time.time() < end:
    gen += 1
    for i in range(nkeys):
        db['k%d' % i] = ('k%d=%08d' % (i, gen)).encode()
    db.sync()
db.close()
print(gen, flush=True)
"#;

/// What a value read beside the writer must be: `k{i}={gen:08}`.
fn check_value(i: usize, value: Option<Vec<u8>>) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("k{i} missing"))?;
    let text = String::from_utf8(value).map_err(|e| format!("k{i}: not text: {e}"))?;
    let generation = text
        .strip_prefix(&format!("k{i}="))
        .filter(|g| g.len() == 8)
        .and_then(|g| g.parse::<u64>().ok())
        .ok_or_else(|| format!("k{i}: a value never written: {text:?}"))?;
    Ok(generation)
}

/// Opens (as `shelf get` does: detect, then open read-only) and reads
/// every key, in a loop, while CPython commits; no attempt may fail.
fn beside_cpython_writer(nkeys: usize) {
    let case = format!("reader_beside_a_cpython_writer ({nkeys} keys)");
    let Some(py) = Python::default_or_skip(&case) else { return };
    let _ = py;
    let scratch = Scratch::new();
    let mut child = Command::new("python3")
        .args(["-c", CPYTHON_WRITER, scratch.path.to_str().unwrap(), "3", &nkeys.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "{case}: the writer did not start");
    let mut rng = Rng(nkeys as u64);
    let (mut attempts, mut failures) = (0u64, Vec::new());
    let mut highest = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        attempts += 1;
        let result = (|| -> Result<u64, String> {
            if backend_dumb::probe(&scratch.path) != Probe::Mine {
                return Err("probe: not a dumb database".into());
            }
            if shelf::whichdb(&scratch.path) != shelf::WhichDb::Backend("dumb") {
                return Err(format!("whichdb: {:?}", shelf::whichdb(&scratch.path)));
            }
            let db = open(&scratch.path, Flag::Read).map_err(|e| format!("open: {e}"))?;
            if db.len().map_err(|e| e.to_string())? != nkeys {
                return Err(format!("{} keys, not {nkeys}", db.len().unwrap_or(0)));
            }
            let mut top = 0;
            for _ in 0..5 {
                let i = rng.below(nkeys as u64) as usize;
                let v = db.get(format!("k{i}").as_bytes()).map_err(|e| format!("get k{i}: {e}"))?;
                top = top.max(check_value(i, v)?);
            }
            Ok(top)
        })();
        match result {
            Ok(top) => highest = highest.max(top),
            Err(e) => failures.push(e),
        }
    }
    line.clear();
    out.read_line(&mut line).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{case}: the CPython writer failed");
    let generations: u64 = line.trim().parse().unwrap_or_else(|_| panic!("{case}: writer said {line:?}"));
    eprintln!("{case}: {attempts} opens, CPython committed {generations} times, failures {}", failures.len());
    assert!(generations > 5, "{case}: the writer committed only {generations} times");
    assert!(highest > 0, "{case}: never saw a value CPython rewrote");
    assert!(highest <= generations, "{case}: read generation {highest} > {generations}");
    assert!(
        failures.is_empty(),
        "{case}: {} of {attempts} failed, first: {:?}",
        failures.len(),
        &failures[..1]
    );
}

#[test]
fn reader_beside_a_cpython_writer_small_index() {
    beside_cpython_writer(40);
}

#[test]
fn reader_beside_a_cpython_writer_index_over_8k() {
    // CPython writes `.dir` through an 8 KiB buffer: cut at any point.
    beside_cpython_writer(700);
}

/// CPython's state between `_commit`'s rename of `.dir` to `.bak` and
/// its new `.dir` (or a crash there): detected as dumb; readers and
/// writers use `.bak`; a writer writes `.dir` again and keeps `.bak`.
#[test]
fn dir_missing_bak_present_is_read_from_bak() {
    let scratch = Scratch::new();
    let mut db = open(&scratch.path, Flag::New).unwrap();
    for i in 0..20u32 {
        db.insert(format!("k{i}").as_bytes(), format!("v{i}").as_bytes()).unwrap();
    }
    db.close().unwrap();
    fs::rename(file(&scratch.path, ".dir"), file(&scratch.path, ".bak")).unwrap();
    let bak = fs::read(file(&scratch.path, ".bak")).unwrap();
    assert_eq!(backend_dumb::probe(&scratch.path), Probe::Mine);
    assert_eq!(shelf::whichdb(&scratch.path), shelf::WhichDb::Backend("dumb"));
    let before = snapshot(scratch.dir.path());
    let db = open(&scratch.path, Flag::Read).unwrap();
    assert_eq!(db.len().unwrap(), 20);
    assert_eq!(db.get(b"k7").unwrap().as_deref(), Some(&b"v7"[..]));
    drop(db);
    assert_eq!(snapshot(scratch.dir.path()), before, "a reader changed files");
    // Through the facade (what `shelf get` does).
    let s = shelf::OpenOptions::new().flag(Flag::Read).open(&scratch.path).unwrap();
    assert_eq!(s.backend().unwrap().get(b"k3").unwrap().as_deref(), Some(&b"v3"[..]));
    drop(s);

    let mut db = open(&scratch.path, Flag::Write).unwrap();
    assert_eq!(db.len().unwrap(), 20, "the writer lost the index");
    db.close().unwrap();
    assert_eq!(fs::read(file(&scratch.path, ".bak")).unwrap(), bak, "the writer changed or deleted .bak");
    assert_eq!(fs::read(file(&scratch.path, ".dir")).unwrap(), bak, "the writer did not write .dir back");
    if let Some(py) = Python::default_or_skip("dir_missing_bak_present_is_read_from_bak") {
        let got = py
            .run(
                "import sys, dbm.dumb\nprint(len(dbm.dumb.open(sys.argv[1], 'r')))\n",
                &[scratch.path.to_str().unwrap()],
            )
            .unwrap();
        assert_eq!(got.trim(), "20");
    }

    // A `.bak` that is not a dumb index is not ours.
    let other = Scratch::new();
    fs::write(file(&other.path, ".dat"), b"data").unwrap();
    fs::write(file(&other.path, ".bak"), b"\x00\x01 a backup of something\n").unwrap();
    assert_eq!(backend_dumb::probe(&other.path), Probe::Foreign);
}

// ---------------------------------------------------------------------------
// Flag `n` and files that are not ours.

/// A file a case plants: its extension and its bytes.
type Planted<'a> = (&'a str, &'a [u8]);

#[test]
fn flag_n_refuses_what_is_not_a_dumb_database() {
    let cases: &[(&str, &[Planted])] = &[
        ("foreign .dat alone", &[(".dat", b"someone's data")]),
        ("foreign .dat, ndbm-like .dir", &[(".dat", b"data"), (".dir", b"\x00\x00\x01\x02binary")]),
        ("ndbm .dir and .pag, no .dat", &[(".dir", b"\x00\x00\x01\x02binary"), (".pag", b"\x00page")]),
        (
            "a .dir of text that is not an index",
            &[(".dat", b""), (".dir", b"'k' is a key\nnot (an index)\n")],
        ),
    ];
    for (case, files) in cases {
        let scratch = Scratch::new();
        for (ext, bytes) in *files {
            fs::write(file(&scratch.path, ext), bytes).unwrap();
        }
        let before = snapshot(scratch.dir.path());
        for flag in [Flag::New, Flag::Create] {
            match open(&scratch.path, flag) {
                Err(OpenError::Undetectable { path }) => assert_eq!(path, scratch.path, "{case}"),
                // `c` takes a `.dir` starting with a quote for a damaged
                // dumb index (CPython's whichdb does): refused all the same.
                Err(OpenError::Corrupted { .. }) if flag == Flag::Create && case.contains("text") => {}
                other => panic!("{case}: flag {flag}: {other:?}"),
            }
            assert_eq!(snapshot(scratch.dir.path()), before, "{case}: flag {flag} touched files");
        }
        let err = shelf::OpenOptions::new().backend("dumb").flag(Flag::New).open(&scratch.path).map(drop);
        assert!(err.is_err(), "{case}: the facade replaced it");
        assert_eq!(snapshot(scratch.dir.path()), before, "{case}: the facade touched files");
    }
    // A dumb database is replaced by `n`, as CPython's is.
    let scratch = Scratch::new();
    let mut db = open(&scratch.path, Flag::New).unwrap();
    db.insert(b"old", b"value").unwrap();
    db.close().unwrap();
    let db = open(&scratch.path, Flag::New).unwrap();
    assert_eq!(db.len().unwrap(), 0);
}

// ---------------------------------------------------------------------------
// check, compact and their figures.

/// A database whose `.dir` names `ghost` past the end of `.dat` and two
/// keys overlapping, beside six good keys.
fn damaged(scratch: &Scratch) {
    let mut db = open(&scratch.path, Flag::New).unwrap();
    for i in 0..6u32 {
        db.insert(format!("good{i}").as_bytes(), &vec![b'a' + i as u8; 300]).unwrap();
    }
    db.close().unwrap();
    let dir = file(&scratch.path, ".dir");
    let mut text = fs::read(&dir).unwrap();
    text.extend_from_slice(b"'ghost', (1048576, 10)\n'twin', (512, 100)\n");
    fs::write(&dir, text).unwrap();
}

#[test]
fn check_changes_nothing_and_repair_names_dropped_keys() {
    let scratch = Scratch::new();
    damaged(&scratch);
    let before = snapshot(scratch.dir.path());
    let mut o = BackendOptions::with_flag(Flag::Read);
    o.salvage = true;
    let mut db = DumbBackend::open(&scratch.path, &o).unwrap();
    let report = db.check(false).unwrap();
    assert_eq!(report.problems.len(), 2, "{report:?}");
    assert!(report.dropped_keys.is_empty() && !report.repaired);
    drop(db);
    assert_eq!(snapshot(scratch.dir.path()), before, "a read-only check changed files");

    let mut o = BackendOptions::with_flag(Flag::Write);
    o.salvage = true;
    let mut db = DumbBackend::open(&scratch.path, &o).unwrap();
    let report = db.check(false).unwrap();
    assert!(!report.repaired && report.dropped_keys.is_empty(), "{report:?}");
    assert_eq!(snapshot(scratch.dir.path()), before, "check(false) on a writer changed files");
    let report = db.check(true).unwrap();
    assert!(report.repaired, "{report:?}");
    // `twin` overlaps `good1`, written earlier: `good1`'s bytes are the
    // ones overwritten, so it is the one dropped.
    assert_eq!(report.dropped_keys, vec![b"ghost".to_vec(), b"good1".to_vec()], "{report:?}");
    db.close().unwrap();
    let db = open(&scratch.path, Flag::Read).unwrap();
    assert!(db.get(b"ghost").unwrap().is_none());
    assert_eq!(db.get(b"twin").unwrap().map(|v| v.len()), Some(100));
    assert!(leftovers(scratch.dir.path()).is_empty(), "{:?}", leftovers(scratch.dir.path()));
}

#[test]
fn compact_reports_what_the_files_lost() {
    let scratch = Scratch::new();
    let mut db = open(&scratch.path, Flag::New).unwrap();
    for round in 0..3u32 {
        for i in 0..200u32 {
            db.insert(format!("key{i:04}").as_bytes(), &vec![b'x'; 100 + (round as usize) * 600]).unwrap();
        }
    }
    for i in (0..200u32).step_by(3) {
        db.remove(format!("key{i:04}").as_bytes()).unwrap();
    }
    let size = || {
        ["dat", "dir"]
            .iter()
            .map(|e| fs::metadata(file(&scratch.path, &format!(".{e}"))).unwrap().len())
            .sum::<u64>()
    };
    db.flush().unwrap();
    let promised = db.stats().unwrap().reclaimable_bytes;
    let before = size();
    let reclaimed = db.compact().unwrap();
    let after = size();
    assert_eq!(reclaimed, before - after, "reclaimed {reclaimed}, files {before} -> {after}");
    assert_eq!(promised, Some(reclaimed), "stats promised another figure");
    assert_eq!(db.stats().unwrap().reclaimable_bytes, Some(0));
    assert_eq!(db.len().unwrap(), 133);
    db.close().unwrap();
    assert!(leftovers(scratch.dir.path()).is_empty());
}

/// A value cut short (here `.dat` truncated under an open reader) stops
/// an iteration with an error naming the key and its `.dir` line.
#[test]
fn a_value_cut_short_stops_iteration_with_key_and_line() {
    let scratch = Scratch::new();
    let mut db = open(&scratch.path, Flag::New).unwrap();
    for i in 0..10u32 {
        db.insert(format!("k{i}").as_bytes(), &vec![b'v'; 600]).unwrap();
    }
    db.close().unwrap();
    let db = open(&scratch.path, Flag::Read).unwrap();
    // k7's value starts at 7 * 1024: cut it in the middle.
    fs::OpenOptions::new()
        .write(true)
        .open(file(&scratch.path, ".dat"))
        .unwrap()
        .set_len(7 * 1024 + 100)
        .unwrap();
    let results: Vec<_> = db.iter().unwrap().collect();
    let ok = results.iter().take_while(|r| r.is_ok()).count();
    assert_eq!(ok, 7, "the values before k7 read");
    let err = results[7].as_ref().expect_err("k7 read whole").to_string();
    assert!(err.contains("k7") && err.contains("line 8"), "{err}");
}

// ---------------------------------------------------------------------------
// A full disk and SIGKILL during compaction.

/// A small tmpfs, unmounted on drop (also when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(case: &str, size: &str) -> Option<Tmpfs> {
        let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        if !root {
            shelf_tests::skip(case, "dumb", "needs root to mount a tmpfs");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.path().to_str().unwrap()])
            .status();
        if !status.is_ok_and(|s| s.success()) {
            shelf_tests::skip(case, "dumb", "mount -t tmpfs failed");
            return None;
        }
        Some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn compact_on_a_full_disk_leaves_the_database_and_no_litter() {
    let case = "compact_on_a_full_disk_leaves_the_database_and_no_litter";
    let Some(fs_) = Tmpfs::mount(case, "2m") else { return };
    let path = fs_.dir.path().join("db");
    let mut db = open(&path, Flag::New).unwrap();
    let mut want = BTreeMap::new();
    for i in 0..300u32 {
        let v = vec![(i % 251) as u8; 1000 + (i as usize % 7) * 100];
        db.insert(format!("k{i}").as_bytes(), &v).unwrap();
        want.insert(format!("k{i}").into_bytes(), v);
    }
    for i in (0..300u32).step_by(4) {
        db.remove(format!("k{i}").as_bytes()).unwrap();
        want.remove(format!("k{i}").as_bytes());
    }
    db.flush().unwrap();
    // Fill the disk, leaving less room than the compacted `.dat` needs.
    let mut filler = fs::File::create(fs_.dir.path().join("filler")).unwrap();
    while filler.write_all(&[0u8; 4096]).is_ok() {}
    let _ = filler.sync_all();
    drop(filler);
    let err = db.compact().expect_err("compact succeeded on a full disk");
    let detail = format!("{err:?}");
    assert!(detail.contains("StorageFull") || detail.contains("code: 28"), "not ENOSPC: {detail}");
    assert!(leftovers(fs_.dir.path()).is_empty(), "litter: {:?}", leftovers(fs_.dir.path()));
    for (k, v) in &want {
        assert_eq!(db.get(k).unwrap().as_deref(), Some(&v[..]), "after the failed compact");
    }
    drop(db);
    let db = open(&path, Flag::Write).unwrap();
    assert_eq!(db.len().unwrap(), want.len());
    for (k, v) in &want {
        assert_eq!(db.get(k).unwrap().as_deref(), Some(&v[..]), "reopened");
    }
    assert!(leftovers(fs_.dir.path()).is_empty(), "litter: {:?}", leftovers(fs_.dir.path()));
}

/// The worker's values (`dumb_compact_value` in shelf-test-worker).
fn compact_value(k: u64, r: u64) -> Vec<u8> {
    let mut v = format!("k{k}:r{r}:").into_bytes();
    v.resize(200 + ((r % 4) * 700) as usize + (k % 5) as usize * 3, b'a' + (r % 26) as u8);
    v
}

#[test]
fn sigkill_during_compact_leaves_a_whole_database_and_no_litter() {
    const KEYS: u64 = 300;
    let seed = std::env::var("SHELF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_c0de);
    let mut rng = Rng(seed);
    let mut litter_seen = 0;
    for attempt in 0..8 {
        let scratch = Scratch::new();
        let mut child = Command::new(WORKER)
            .args(["dumb-compact", scratch.path.to_str().unwrap(), &KEYS.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "synced 0", "attempt {attempt}: the worker did not sync");
        std::thread::sleep(Duration::from_millis(5 + rng.below(120)));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let synced: u64 = (line + &rest)
            .lines()
            .filter_map(|l| l.strip_prefix("synced ").and_then(|n| n.parse().ok()))
            .max()
            .unwrap();
        if !leftovers(scratch.dir.path()).is_empty() {
            litter_seen += 1;
        }
        // Before any writer cleans up: a reader sees one whole round.
        let check = |db: &DumbBackend, who: &str| {
            let first = db.get(b"k0").unwrap().unwrap();
            let r: u64 = String::from_utf8_lossy(&first)
                .split(':')
                .nth(1)
                .and_then(|s| s.strip_prefix('r'))
                .and_then(|s| s.parse().ok())
                .unwrap();
            assert!(r == synced || r == synced + 1, "attempt {attempt}, {who}: round {r}, synced {synced}");
            assert_eq!(db.len().unwrap(), KEYS as usize, "attempt {attempt}, {who}");
            for k in 0..KEYS {
                let got = db.get(format!("k{k}").as_bytes()).unwrap();
                assert_eq!(got, Some(compact_value(k, r)), "attempt {attempt}, {who}: k{k}");
            }
        };
        match open(&scratch.path, Flag::Read) {
            Ok(db) => check(&db, "reader"),
            // Killed in a commit that overwrote values in place: a reader
            // cannot roll it back and says so (the writer open below does).
            Err(OpenError::Corrupted { path, .. }) if path == file(&scratch.path, ".shelf-journal") => {}
            Err(e) => panic!("attempt {attempt}: reader: {e}"),
        }
        let mut db = open(&scratch.path, Flag::Write).unwrap();
        assert!(
            leftovers(scratch.dir.path()).is_empty(),
            "the writer open left {:?}",
            leftovers(scratch.dir.path())
        );
        check(&db, "writer");
        assert!(db.check(false).unwrap().is_clean());
        db.close().unwrap();
    }
    eprintln!("sigkill during compact: {litter_seen} of 8 kills left temporary files, all cleaned");
}
