//! redb and sled under damage: a flipped byte anywhere in their files never
//! reads back as a changed value or a shortened listing, no engine panic
//! escapes or prints, databases written before checksums still read, a
//! broken sled directory is left alone, and both read on a read-only file
//! system.
//!
//! The flip positions are a seeded random sample plus every byte of some
//! value and key regions (found by searching the file for their bytes); the
//! seed is printed, and `SHELF_SAFETY_SEED` replays one.

use std::path::{Path, PathBuf};
use std::process::Command;

use backend_redb::RedbBackend;
use backend_sled::SledBackend;
use shelf_core::raw::{BackendOptions, OpenBackend, Probe, show_key};
use shelf_core::{Error, Flag, KvBackend, OpenError};
use shelf_tests::Collected;
use shelf_tests::{Rng, Scratch};

const N: usize = 300;

fn opts(flag: Flag) -> BackendOptions {
    BackendOptions::with_flag(flag)
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:04}").into_bytes()
}

/// Distinct values, so a value read under the wrong key shows too.
fn value(i: usize) -> Vec<u8> {
    format!("value {i:04} of the safety test; every byte counts {i:04}").into_bytes()
}

fn expected() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..N).map(|i| (key(i), value(i))).collect()
}

fn fill<B: OpenBackend>(path: &Path) {
    let mut b = B::open(path, &opts(Flag::Create)).unwrap();
    for (k, v) in expected() {
        b.insert(&k, &v).unwrap();
    }
    b.set_metadata("protocol", b"bincode").unwrap();
    b.close().unwrap();
}

fn seed() -> u64 {
    let seed = std::env::var("SHELF_SAFETY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("engine_safety: SHELF_SAFETY_SEED={seed}");
    seed
}

/// Every position of the first `count` occurrences of each needle.
fn regions(bytes: &[u8], needles: &[Vec<u8>], count: usize) -> Vec<usize> {
    let mut at = Vec::new();
    for needle in needles {
        let hits = bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle.as_slice());
        for (start, _) in hits.take(count) {
            at.extend(start..start + needle.len());
        }
    }
    at
}

/// What one damaged database did.
#[derive(Debug, Default)]
struct Tally {
    refused: usize,
    get_errors: usize,
    missing: usize,
    listing_errors: usize,
    whole: usize,
    silent_misses: usize,
}

/// Reads everything of a damaged database, asserting the rule: a get is
/// the original value, an error, or absent; a full listing is all of it,
/// exactly, or ends in an error. Returns whether a get missed a key that
/// the listing did not report (a damaged index, the caller checks who else
/// notices it).
fn read_all(b: &dyn KvBackend, what: &str, tally: &mut Tally) -> bool {
    let want = expected();
    let mut missing = Vec::new();
    for (k, v) in &want {
        match b.get(k) {
            Ok(Some(got)) => {
                assert_eq!(&got, v, "{what}: get({}) returned a changed value", show_key(k));
            }
            Ok(None) => missing.push(show_key(k)),
            Err(_) => tally.get_errors += 1,
        }
    }
    if let Ok(Some(p)) = b.metadata("protocol") {
        assert_eq!(p, b"bincode", "{what}: metadata changed");
    }
    let listed: Result<Vec<_>, Error> = b.iter().and_then(|it| it.collect());
    let keys = b.keys().collected();
    let len = b.len();
    match &listed {
        Ok(all) => {
            assert!(
                all == &want,
                "{what}: a listing without error must be whole ({} of {N} entries)",
                all.len()
            );
            tally.whole += 1;
        }
        Err(_) => tally.listing_errors += 1,
    }
    if let Ok(keys) = keys {
        assert_eq!(keys.len(), N, "{what}: keys() without error must list every key");
    }
    if let Ok(len) = len
        && listed.is_ok()
    {
        assert_eq!(len, N, "{what}: len");
    }
    if !missing.is_empty() {
        tally.missing += 1;
        if listed.is_ok() {
            tally.silent_misses += 1;
            eprintln!("{what}: get found no {:?} yet the listing reported no damage", missing);
            return true;
        }
    }
    false
}

// ---- redb ----

#[test]
fn redb_flipped_bytes_never_read_back_as_other_data() {
    let scratch = Scratch::new();
    let pristine = scratch.dir.path().join("pristine.redb");
    fill::<RedbBackend>(&pristine);
    let original = std::fs::read(&pristine).unwrap();
    let mut rng = Rng(seed());
    let mut at: Vec<usize> = (0..200).map(|_| rng.below(original.len() as u64) as usize).collect();
    let values: Vec<Vec<u8>> = [0, 150, 299].iter().map(|&i| value(i)).collect();
    let keys: Vec<Vec<u8>> = [0, 151, 299].iter().map(|&i| key(i)).collect();
    let found = regions(&original, &values, 1).len();
    assert!(found > 0, "the values are stored as written");
    at.extend(regions(&original, &values, 1).into_iter().step_by(2));
    at.extend(regions(&original, &keys, 1));
    let mut tally = Tally::default();
    for &pos in &at {
        let mut bytes = original.clone();
        bytes[pos] ^= 1 << rng.below(8);
        for flag in [Flag::Read, Flag::Write] {
            std::fs::write(&scratch.path, &bytes).unwrap();
            let what = format!("redb, flag {flag}, flip at byte {pos} of {}", bytes.len());
            let silent_miss = match RedbBackend::open(&scratch.path, &opts(flag)) {
                Err(_) => {
                    tally.refused += 1;
                    false
                }
                Ok(b) => read_all(&b, &what, &mut tally),
            };
            if silent_miss {
                // A damaged branch page that only lookups meet: redb's page
                // checksums, verified at every writable open, must catch it.
                assert_eq!(flag, Flag::Read, "{what}: a writable open verifies every page");
                std::fs::write(&scratch.path, &bytes).unwrap();
                assert!(
                    RedbBackend::open(&scratch.path, &opts(Flag::Write)).is_err(),
                    "{what}: writable open"
                );
            }
        }
    }
    eprintln!("redb: {} flips: {tally:?}", at.len());
    assert!(tally.get_errors + tally.listing_errors + tally.refused > 0, "some flips must be noticed");
}

#[test]
fn redb_value_checksums_name_the_key_and_check_does_not_repair() {
    let scratch = Scratch::new();
    fill::<RedbBackend>(&scratch.path);
    let mut bytes = std::fs::read(&scratch.path).unwrap();
    let v = value(42);
    let start = bytes.windows(v.len()).position(|w| w == v.as_slice()).expect("value 42 on disk");
    bytes[start + 3] ^= 0x20;
    std::fs::write(&scratch.path, &bytes).unwrap();
    // redb verifies its own page checksums at a writable open (and
    // refuses this file there); a read-only open reads, and shelf's value
    // checksums catch the flip.
    assert!(RedbBackend::open(&scratch.path, &opts(Flag::Write)).is_err());
    let mut b = RedbBackend::open(&scratch.path, &opts(Flag::Read)).unwrap();
    match b.get(&key(42)) {
        Err(Error::Corrupted { detail, .. }) => assert!(detail.contains("key-0042"), "{detail}"),
        other => panic!("a damaged value must be Corrupted, got {other:?}"),
    }
    assert_eq!(b.get(&key(41)).unwrap(), Some(value(41)), "the other values still read");
    assert!(matches!(b.keys().collected(), Err(Error::Corrupted { .. })));
    let report = b.check(false).unwrap();
    assert!(!report.is_clean() && !report.repaired, "{report:?}");
    assert!(report.problems.iter().any(|p| p.contains("key-0042")), "{report:?}");
    b.close().unwrap();
    drop(b);
    assert!(std::fs::read(&scratch.path).unwrap() == bytes, "check(false) changed the file");
}

#[test]
fn redb_check_repair_drops_and_names_entries_whose_checksum_fails() {
    use backend_redb::redb::{Database, TableDefinition};
    const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shelf");
    let scratch = Scratch::new();
    fill::<RedbBackend>(&scratch.path);
    // A value whose checksum fails though redb's own pages are sound (as
    // after damage in memory before a commit, or a foreign writer).
    {
        let db = Database::open(&scratch.path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(DATA).unwrap().insert(key(7).as_slice(), b"not sealed at all".as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let before = std::fs::read(&scratch.path).unwrap();
    let mut b = RedbBackend::open(&scratch.path, &opts(Flag::Read)).unwrap();
    assert!(matches!(b.get(&key(7)), Err(Error::Corrupted { .. })));
    let report = b.check(false).unwrap();
    assert!(!report.is_clean() && !report.repaired && report.dropped_keys.is_empty(), "{report:?}");
    assert_eq!(report.good_entries, (N - 1) as u64);
    b.close().unwrap();
    drop(b);
    assert!(std::fs::read(&scratch.path).unwrap() == before, "check(false) changed the file");
    let mut b = RedbBackend::open(&scratch.path, &opts(Flag::Write)).unwrap();
    let report = b.check(true).unwrap();
    assert!(report.repaired, "{report:?}");
    assert_eq!(report.dropped_keys, vec![key(7)]);
    assert_eq!(b.len().unwrap(), N - 1);
    assert_eq!(b.keys().collected().unwrap().len(), N - 1);
    assert!(b.check(false).unwrap().is_clean());
}

/// Flips bytes until redb panics inside the library (the shield names it in
/// the error), then dumps that file through the facade in a real process:
/// its stderr must show no `panicked at`.
#[test]
fn a_redb_panic_prints_nothing() {
    let scratch = Scratch::new();
    let pristine = scratch.dir.path().join("pristine.redb");
    fill::<RedbBackend>(&pristine);
    let original = std::fs::read(&pristine).unwrap();
    let mut rng = Rng(seed());
    let mut panicking = None;
    'search: for _ in 0..3000 {
        let mut bytes = original.clone();
        let pos = rng.below(original.len().min(64 * 1024) as u64) as usize;
        bytes[pos] ^= 0xff;
        std::fs::write(&scratch.path, &bytes).unwrap();
        let detail = match RedbBackend::open(&scratch.path, &opts(Flag::Read)) {
            Err(OpenError::Corrupted { detail, .. }) => detail,
            Err(_) => continue,
            Ok(b) => match b.iter().and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
                Err(Error::Corrupted { detail, .. }) => detail,
                _ => continue,
            },
        };
        if detail.contains("redb failed to") || detail.contains("redb could not read the file") {
            panicking = Some(bytes);
            break 'search;
        }
    }
    let Some(bytes) = panicking else {
        shelf_tests::skip("a_redb_panic_prints_nothing", "redb", "no flip in the sample made redb panic");
        return;
    };
    std::fs::write(&scratch.path, &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shelf-test-worker"))
        .args(["dump", "redb"])
        .arg(&scratch.path)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a damaged file is an error: {stderr}");
    assert!(stderr.contains("corrupted"), "{stderr}");
    assert!(!stderr.contains("panicked at") && !stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn a_redb_file_without_checksums_still_reads() {
    use backend_redb::redb::{Database, TableDefinition};
    const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shelf");
    const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shelf_meta");
    let scratch = Scratch::new();
    // What the backend wrote before checksums: plain values, an 8-byte
    // commit number, no format record.
    {
        let db = Database::create(&scratch.path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut data = txn.open_table(DATA).unwrap();
            for (k, v) in expected() {
                data.insert(k.as_slice(), v.as_slice()).unwrap();
            }
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(b"protocol".as_slice(), b"bincode".as_slice()).unwrap();
            meta.insert(backend_redb::COMMIT_KEY, 1u64.to_le_bytes().as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let b = RedbBackend::open(&scratch.path, &opts(Flag::Read)).unwrap();
    assert_eq!(b.iter().unwrap().collect::<Result<Vec<_>, _>>().unwrap(), expected());
    assert_eq!(b.metadata("protocol").unwrap().as_deref(), Some(&b"bincode"[..]));
    assert_eq!(b.commit_number().unwrap(), 1);
    drop(b);
    let mut w = RedbBackend::open(&scratch.path, &opts(Flag::Write)).unwrap();
    w.insert(b"new", b"value").unwrap();
    w.close().unwrap();
    drop(w);
    let b = RedbBackend::open(&scratch.path, &opts(Flag::Read)).unwrap();
    assert_eq!(b.get(b"new").unwrap().as_deref(), Some(&b"value"[..]));
    assert_eq!(b.get(&key(7)).unwrap(), Some(value(7)));
    assert_eq!(b.commit_number().unwrap(), 2);
    drop(b);
    // A checksummed file that lost its format record is not taken for an
    // old one (its values would read with their checksums attached).
    let sealed = scratch.dir.path().join("sealed.redb");
    fill::<RedbBackend>(&sealed);
    {
        let db = Database::open(&sealed).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().remove(backend_redb::FORMAT_KEY).unwrap();
        txn.commit().unwrap();
    }
    let res = RedbBackend::open(&sealed, &opts(Flag::Read));
    assert!(matches!(res, Err(OpenError::Corrupted { .. })), "{:?}", res.map(|_| ()));
}

// ---- sled ----

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_below(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out.sort();
    out
}

/// Fills a sled database in three sessions (so the log holds several
/// flushes, as a shelf used over time does).
fn fill_sled(path: &Path) {
    let want = expected();
    for (session, chunk) in want.chunks(N / 3 + 1).enumerate() {
        let flag = if session == 0 { Flag::Create } else { Flag::Write };
        let mut b = SledBackend::open(path, &opts(flag)).unwrap();
        for (k, v) in chunk {
            b.insert(k, v).unwrap();
        }
        if session == 0 {
            b.set_metadata("protocol", b"bincode").unwrap();
        }
        b.close().unwrap();
    }
}

#[test]
fn sled_flipped_bytes_never_read_back_as_other_data() {
    let scratch = Scratch::new();
    let pristine = scratch.dir.path().join("pristine");
    fill_sled(&pristine);
    let files = files_below(&pristine);
    let mut rng = Rng(seed());
    let mut tally = Tally::default();
    let mut flips = 0;
    for file in &files {
        let original = std::fs::read(file).unwrap();
        if original.is_empty() {
            continue;
        }
        let rel = file.strip_prefix(&pristine).unwrap();
        // The log is where the data is: most flips go there; every byte
        // of the small files.
        let mut at: Vec<usize> = if original.len() <= 64 {
            (0..original.len()).collect()
        } else {
            let used = original.iter().rposition(|b| *b != 0).unwrap_or(0) + 1;
            (0..120).map(|_| rng.below(used as u64) as usize).collect()
        };
        let values: Vec<Vec<u8>> = [0, 150, 299].iter().map(|&i| value(i)).collect();
        at.extend(regions(&original, &values, 1).into_iter().step_by(3));
        at.extend(regions(&original, &[key(151)], 1));
        for pos in at {
            flips += 1;
            let _ = std::fs::remove_dir_all(&scratch.path);
            copy_dir(&pristine, &scratch.path);
            let mut bytes = original.clone();
            bytes[pos] ^= 1 << rng.below(8);
            std::fs::write(scratch.path.join(rel), &bytes).unwrap();
            let what = format!("sled, flip at byte {pos} of {}", rel.display());
            match SledBackend::open(&scratch.path, &opts(Flag::Read)) {
                Err(e) => {
                    assert!(
                        matches!(e, OpenError::Corrupted { .. } | OpenError::Backend { .. }),
                        "{what}: a damaged database is refused as such: {e}"
                    );
                    tally.refused += 1;
                }
                Ok(mut b) => {
                    read_all(&b, &what, &mut tally);
                    let _ = b.close();
                }
            }
        }
    }
    eprintln!("sled: {flips} flips over {} files: {tally:?}", files.len());
    assert!(tally.get_errors + tally.listing_errors + tally.refused > 0, "some flips must be noticed");
}

#[test]
fn sled_lost_flushes_are_reported_not_a_shorter_listing() {
    let scratch = Scratch::new();
    fill_sled(&scratch.path);
    // Damage the log where the second session's entries lie: sled stops
    // recovering there, silently dropping what follows.
    let db = scratch.path.join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    let v = value(150);
    let at = bytes.windows(v.len()).position(|w| w == v.as_slice()).expect("value 150 in the log");
    bytes[at + 5] ^= 0x01;
    std::fs::write(&db, &bytes).unwrap();
    match SledBackend::open(&scratch.path, &opts(Flag::Read)) {
        Err(e) => assert!(matches!(e, OpenError::Corrupted { .. }), "{e}"),
        Ok(b) => {
            let listed: Result<Vec<_>, _> = b.iter().unwrap().collect();
            match listed {
                Ok(all) => assert_eq!(all, expected(), "a listing without error is whole"),
                Err(e) => assert!(matches!(e, Error::Corrupted { .. }), "{e}"),
            }
        }
    }
}

#[test]
fn sled_without_checksums_still_reads() {
    let scratch = Scratch::new();
    // What the backend wrote before checksums: layout "1", plain values.
    {
        let db = backend_sled::sled::open(&scratch.path).unwrap();
        let data = db.open_tree(backend_sled::DATA_TREE).unwrap();
        let meta = db.open_tree(backend_sled::META_TREE).unwrap();
        for (k, v) in expected() {
            data.insert(k, v).unwrap();
        }
        meta.insert(b"protocol", b"bincode").unwrap();
        meta.insert(backend_sled::MARKER_KEY, b"1").unwrap();
        db.flush().unwrap();
    }
    // sled's threads let go of the lock shortly after the drop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let b = loop {
        match SledBackend::open(&scratch.path, &opts(Flag::Read)) {
            Err(OpenError::Locked { .. }) if std::time::Instant::now() < deadline => {}
            other => break other.unwrap(),
        }
    };
    assert_eq!(backend_sled::probe(&scratch.path), Probe::Mine, "sled's own conf is recognised");
    assert_eq!(b.iter().unwrap().collect::<Result<Vec<_>, _>>().unwrap(), expected());
    assert_eq!(b.metadata("protocol").unwrap().as_deref(), Some(&b"bincode"[..]));
    drop(b);
    let mut w = SledBackend::open(&scratch.path, &opts(Flag::Write)).unwrap();
    w.insert(b"new", b"value").unwrap();
    w.close().unwrap();
    drop(w);
    let b = SledBackend::open(&scratch.path, &opts(Flag::Read)).unwrap();
    assert_eq!(b.get(b"new").unwrap().as_deref(), Some(&b"value"[..]));
    assert_eq!(b.len().unwrap(), N + 1);
}

#[test]
fn a_broken_sled_directory_is_left_alone() {
    for lost in ["conf", "db"] {
        let scratch = Scratch::new();
        fill::<SledBackend>(&scratch.path);
        std::fs::remove_file(scratch.path.join(lost)).unwrap();
        let before: Vec<(PathBuf, Vec<u8>)> =
            files_below(&scratch.path).into_iter().map(|f| (f.clone(), std::fs::read(&f).unwrap())).collect();
        assert_eq!(backend_sled::probe(&scratch.path), Probe::Foreign, "without {lost}");
        for flag in [Flag::Read, Flag::Write, Flag::Create, Flag::New] {
            match SledBackend::open(&scratch.path, &opts(flag)) {
                Err(OpenError::Corrupted { detail, .. }) => assert!(detail.contains(lost), "{detail}"),
                other => panic!("without {lost}, flag {flag}: {:?}", other.map(|_| ())),
            }
        }
        let after: Vec<(PathBuf, Vec<u8>)> =
            files_below(&scratch.path).into_iter().map(|f| (f.clone(), std::fs::read(&f).unwrap())).collect();
        assert!(before == after, "without {lost}: the directory changed");
    }
    // A plain folder is no sled database, whatever the flag.
    let scratch = Scratch::new();
    std::fs::create_dir(&scratch.path).unwrap();
    std::fs::write(scratch.path.join("notes.txt"), b"mine").unwrap();
    for flag in [Flag::Read, Flag::Write, Flag::Create, Flag::New] {
        let res = SledBackend::open(&scratch.path, &opts(flag));
        assert!(matches!(res, Err(OpenError::Undetectable { .. })), "flag {flag}: {:?}", res.map(|_| ()));
    }
    assert_eq!(std::fs::read(scratch.path.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(std::fs::read_dir(&scratch.path).unwrap().count(), 1);
}

// ---- read-only file systems ----

/// A read-only bind mount of a directory, unmounted on drop (also when the
/// test fails).
struct ReadOnlyMount {
    at: PathBuf,
}

impl ReadOnlyMount {
    /// Mounts `src` read-only at `at`, or says why it cannot.
    fn new(src: &Path, at: &Path) -> Result<Self, String> {
        let uid = Command::new("id").arg("-u").output().map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not root: bind mounts need root".to_owned());
        }
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let run = |args: &[&std::ffi::OsStr]| -> Result<(), String> {
            let out = Command::new("mount").args(args).output().map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("mount failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
            }
        };
        run(&["--bind".as_ref(), src.as_os_str(), at.as_os_str()])?;
        let mount = ReadOnlyMount { at: at.to_owned() };
        run(&["-o".as_ref(), "remount,bind,ro".as_ref(), at.as_os_str()])?;
        Ok(mount)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

#[test]
fn both_engines_read_on_a_read_only_file_system() {
    let scratch = Scratch::new();
    let src = scratch.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    fill::<RedbBackend>(&src.join("r.redb"));
    fill::<SledBackend>(&src.join("s.sled"));
    let mount = match ReadOnlyMount::new(&src, &scratch.dir.path().join("ro")) {
        Ok(m) => m,
        Err(why) => {
            shelf_tests::skip("both_engines_read_on_a_read_only_file_system", "redb, sled", &why);
            return;
        }
    };
    let ro = mount.at.clone();
    assert!(std::fs::write(ro.join("probe"), b"x").is_err(), "the mount is read-only");
    let r = RedbBackend::open(&ro.join("r.redb"), &opts(Flag::Read)).unwrap();
    assert_eq!(r.iter().unwrap().collect::<Result<Vec<_>, _>>().unwrap(), expected());
    drop(r);
    let copies = || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter(|e| {
                e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("shelf-sled-ro-"))
            })
            .count()
    };
    let before = copies();
    let mut s = SledBackend::open(&ro.join("s.sled"), &opts(Flag::Read)).unwrap();
    assert_eq!(copies(), before + 1, "sled reads a private copy");
    assert_eq!(s.iter().unwrap().collect::<Result<Vec<_>, _>>().unwrap(), expected());
    assert_eq!(s.get(&key(5)).unwrap(), Some(value(5)));
    assert!(matches!(s.insert(b"k", b"v"), Err(Error::ReadOnly { .. })));
    s.close().unwrap();
    assert_eq!(copies(), before, "the private copy is removed at close");
    // Writing flags fail, naming the path and the cause.
    match SledBackend::open(&ro.join("s.sled"), &opts(Flag::Write)) {
        Err(e @ OpenError::Io { .. }) => {
            let shown =
                format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default());
            assert!(shown.contains("s.sled") && shown.contains("Read-only file system"), "{shown}");
        }
        other => panic!("sled with flag w on a read-only file system: {:?}", other.map(|_| ())),
    }
    assert!(RedbBackend::open(&ro.join("r.redb"), &opts(Flag::Write)).is_err());
    drop(mount);
    // Nothing changed in the source, and the private copy is gone.
    let s = SledBackend::open(&src.join("s.sled"), &opts(Flag::Read)).unwrap();
    assert_eq!(s.len().unwrap(), N);
}

#[test]
fn a_reader_of_a_blank_redb_file_learns_the_format_a_writer_gives_it() {
    let scratch = Scratch::new();
    // Created and never written (a crash right after creation, or another
    // process an instant ago): no tables, no format record.
    drop(backend_redb::redb::Database::create(&scratch.path).unwrap());
    let mut multi = opts(Flag::Read);
    multi.multi_process = true;
    let reader = RedbBackend::open(&scratch.path, &multi).unwrap();
    assert_eq!(reader.get(b"k").unwrap(), None);
    multi.flag = Flag::Write;
    let mut writer = RedbBackend::open(&scratch.path, &multi).unwrap();
    writer.insert(b"k", b"v").unwrap();
    writer.flush().unwrap();
    assert_eq!(reader.get(b"k").unwrap().as_deref(), Some(&b"v"[..]), "no checksum bytes attached");
    assert_eq!(
        reader.iter().unwrap().collect::<Result<Vec<_>, _>>().unwrap(),
        vec![(b"k".to_vec(), b"v".to_vec())]
    );
}

#[test]
fn redb_refuses_flag_n_on_what_it_did_not_write_and_makes_no_file_beside() {
    let scratch = Scratch::new();
    let foreign = scratch.dir.path().join("notes.txt");
    std::fs::write(&foreign, b"not a database").unwrap();
    let empty = scratch.dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let folder = scratch.dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    for path in [&foreign, &empty, &folder] {
        for flag in [Flag::Read, Flag::Write, Flag::Create, Flag::New] {
            let res = RedbBackend::open(path, &opts(flag));
            assert!(
                matches!(res, Err(OpenError::Undetectable { .. })),
                "{path:?} flag {flag}: {:?}",
                res.map(|_| ())
            );
        }
    }
    assert_eq!(std::fs::read(&foreign).unwrap(), b"not a database");
    assert_eq!(std::fs::read(&empty).unwrap(), b"");
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0);
    // redb locks its one file itself: no lock or temporary file beside it,
    // while open or after.
    let b = RedbBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(scratch.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(), ["db", "empty", "folder", "notes.txt"]);
    drop(b);
    assert_eq!(names(), ["db", "empty", "folder", "notes.txt"]);
}
