// Over 700 lines: two engines' suites and their engine-specific cases, sharing one set of process and damage helpers.
//! The redb and sled backends: the conformance suite, and what is particular
//! to each engine (detection, locking, multiple processes, damaged files,
//! ordered ranges, atomic batches, the redb write overlay).
//!
//! The two-process tests run this test binary again as the second process:
//! [`child_process`] does nothing unless [`CHILD_ENV`] names a role.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::ops::Bound;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backend_redb::RedbBackend;
use backend_sled::SledBackend;
use shelf_core::raw::{BackendOptions, OpenBackend, Probe};
use shelf_core::{BatchOp, Error, Flag, KvBackend, OpenError};
use shelf_tests::Collected;
use shelf_tests::{Rng, Scratch, Static, conformance_suite};

conformance_suite!(redb, Static::<RedbBackend>::new());
conformance_suite!(sled, Static::<SledBackend>::new());

/// The variable that turns a run of this binary into a child process.
const CHILD_ENV: &str = "SHELF_ENGINES_CHILD";

fn opts(flag: Flag) -> BackendOptions {
    BackendOptions::with_flag(flag)
}

fn multi(flag: Flag) -> BackendOptions {
    let mut o = BackendOptions::with_flag(flag);
    o.multi_process = true;
    o
}

fn timeout(flag: Flag, d: Duration) -> BackendOptions {
    let mut o = BackendOptions::with_flag(flag);
    o.lock_timeout = Some(d);
    o
}

// ---- the second process ----

/// A second process, started by [`spawn`]: runs the role named in
/// [`CHILD_ENV`] and exits; as an ordinary test it does nothing.
#[test]
fn child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let args: Vec<&str> = spec.split('\u{1f}').collect();
    let out = |line: &str| {
        let mut o = std::io::stdout();
        writeln!(o, "{line}").unwrap();
        o.flush().unwrap();
    };
    let wait_for_parent = || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    };
    match args[0] {
        // Holds the database until the parent closes our stdin.
        "hold" => {
            let path = Path::new(args[2]);
            let mut b: Box<dyn KvBackend> = match args[1] {
                "redb" => Box::new(RedbBackend::open(path, &opts(Flag::Create)).unwrap()),
                _ => Box::new(SledBackend::open(path, &opts(Flag::Create)).unwrap()),
            };
            b.insert(b"held", b"yes").unwrap();
            b.flush().unwrap();
            out("ready");
            wait_for_parent();
            b.close().unwrap();
        }
        // Inserts N keys `pID-I` in multi-process mode, syncing every 500.
        "mp-insert" => {
            let (path, id, n): (&Path, &str, u64) = (Path::new(args[1]), args[2], args[3].parse().unwrap());
            let mut b = RedbBackend::open(path, &multi(Flag::Create)).unwrap();
            out("ready");
            for i in 0..n {
                b.insert(format!("p{id}-{i:06}").as_bytes(), format!("value {id} {i}").as_bytes()).unwrap();
                if i % 500 == 499 {
                    b.flush().unwrap();
                }
            }
            b.close().unwrap();
        }
        // Writes one key in multi-process mode and syncs, then reads a key
        // the parent writes, then waits.
        "mp-write" => {
            let path = Path::new(args[1]);
            let mut b = RedbBackend::open(path, &multi(Flag::Write)).unwrap();
            b.insert(args[2].as_bytes(), args[3].as_bytes()).unwrap();
            b.flush().unwrap();
            out("synced");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            let seen = b.get(line.trim().as_bytes()).unwrap();
            out(&format!("seen {}", seen.map(|v| String::from_utf8(v).unwrap()).unwrap_or_default()));
            wait_for_parent();
            b.close().unwrap();
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Starts this binary as a second process with the given role.
fn spawn(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, args.join("\u{1f}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child process")
}

/// Reads the child's stdout until a line starting with `want`, skipping
/// the test harness's own lines.
fn expect_line(lines: &mut impl Iterator<Item = std::io::Result<String>>, want: &str) -> String {
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with(want) {
            return line;
        }
    }
    panic!("the child ended before printing {want:?}");
}

fn finish(mut child: Child) {
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "the child process failed: {status}");
}

// ---- detection ----

#[test]
fn probe_recognises_each_engine_and_nothing_else() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let (redb_path, sled_path, other) = (dir.join("r.db"), dir.join("s.db"), dir.join("notes.txt"));
    assert_eq!(backend_redb::probe(&redb_path), Probe::Absent);
    assert_eq!(backend_sled::probe(&sled_path), Probe::Absent);
    RedbBackend::open(&redb_path, &opts(Flag::Create)).unwrap().close().unwrap();
    SledBackend::open(&sled_path, &opts(Flag::Create)).unwrap().close().unwrap();
    std::fs::write(&other, b"some text, not a database").unwrap();
    assert_eq!(backend_redb::probe(&redb_path), Probe::Mine);
    assert_eq!(<RedbBackend as OpenBackend>::probe(&redb_path), Probe::Mine);
    assert_eq!(backend_sled::probe(&sled_path), Probe::Mine);
    assert_eq!(<SledBackend as OpenBackend>::probe(&sled_path), Probe::Mine);
    // Each engine's database is foreign to the other, as is a text file.
    assert_eq!(backend_redb::probe(&sled_path), Probe::Foreign);
    assert_eq!(backend_sled::probe(&redb_path), Probe::Foreign);
    assert_eq!(backend_redb::probe(&other), Probe::Foreign);
    assert_eq!(backend_sled::probe(&other), Probe::Foreign);
    // An empty file and an empty directory are nobody's.
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(backend_redb::probe(&empty), Probe::Foreign);
    let empty_dir = dir.join("empty-dir");
    std::fs::create_dir(&empty_dir).unwrap();
    assert_eq!(backend_redb::probe(&empty_dir), Probe::Foreign);
    assert_eq!(backend_sled::probe(&empty_dir), Probe::Foreign);
    // Flag c never takes over a foreign path.
    for flag in [Flag::Create, Flag::New, Flag::Write, Flag::Read] {
        assert!(matches!(RedbBackend::open(&other, &opts(flag)), Err(OpenError::Undetectable { .. })));
        assert!(matches!(SledBackend::open(&other, &opts(flag)), Err(OpenError::Undetectable { .. })));
        assert!(matches!(RedbBackend::open(&empty, &opts(flag)), Err(OpenError::Undetectable { .. })));
        assert!(matches!(SledBackend::open(&empty_dir, &opts(flag)), Err(OpenError::Undetectable { .. })));
    }
    assert_eq!(std::fs::read(&other).unwrap(), b"some text, not a database");
    assert_eq!(std::fs::read(&empty).unwrap(), b"");
    assert_eq!(std::fs::read_dir(&empty_dir).unwrap().count(), 0);
}

#[test]
fn whichdb_names_each_engine() {
    let scratch = Scratch::new();
    let (r, s) = (scratch.dir.path().join("r"), scratch.dir.path().join("s"));
    RedbBackend::open(&r, &opts(Flag::Create)).unwrap().close().unwrap();
    SledBackend::open(&s, &opts(Flag::Create)).unwrap().close().unwrap();
    let names: Vec<&str> = shelf::backends().iter().map(|b| b.name).collect();
    if names.contains(&"redb") {
        assert!(format!("{:?}", shelf::whichdb(&r)).contains("redb"), "{:?}", shelf::whichdb(&r));
    }
    if names.contains(&"sled") {
        assert!(format!("{:?}", shelf::whichdb(&s)).contains("sled"), "{:?}", shelf::whichdb(&s));
    }
}

// ---- locking ----

fn assert_locked<T>(res: Result<T, OpenError>, path: &Path) {
    match res {
        Err(OpenError::Locked { path: p }) => assert_eq!(p, path),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("expected Locked, but the second open succeeded"),
    }
}

#[test]
fn redb_second_handle_is_locked() {
    let scratch = Scratch::new();
    let mut first = RedbBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    first.insert(b"k", b"v").unwrap();
    // A second writer is locked out; a reader in the same process is not
    // (contract `second_reader_in_one_process`).
    for flag in [Flag::Create, Flag::Write, Flag::New] {
        assert_locked(RedbBackend::open(&scratch.path, &opts(flag)), &scratch.path);
    }
    let start = Instant::now();
    assert_locked(
        RedbBackend::open(&scratch.path, &timeout(Flag::Write, Duration::from_millis(150))),
        &scratch.path,
    );
    assert!(start.elapsed() >= Duration::from_millis(150), "lock_timeout is waited out");
    // A handle closed by another thread meanwhile is waited for.
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        first.close().unwrap();
    });
    let second = RedbBackend::open(&scratch.path, &timeout(Flag::Write, Duration::from_secs(10))).unwrap();
    closer.join().unwrap();
    assert_eq!(second.get(b"k").unwrap().as_deref(), Some(&b"v"[..]), "the first handle flushed at close");
}

#[test]
fn redb_readers_share_and_exclude_writers() {
    let scratch = Scratch::new();
    let mut w = RedbBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    w.insert(b"k", b"v").unwrap();
    w.close().unwrap();
    let r1 = RedbBackend::open(&scratch.path, &opts(Flag::Read)).unwrap();
    let r2 = RedbBackend::open(&scratch.path, &opts(Flag::Read)).unwrap();
    assert_eq!(r1.get(b"k").unwrap(), r2.get(b"k").unwrap());
    assert_locked(RedbBackend::open(&scratch.path, &opts(Flag::Write)), &scratch.path);
}

#[test]
fn sled_second_handle_is_locked() {
    let scratch = Scratch::new();
    let mut first = SledBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    first.insert(b"k", b"v").unwrap();
    // A second writer is locked out; a reader in the same process is not
    // (contract `second_reader_in_one_process`).
    for flag in [Flag::Create, Flag::Write, Flag::New] {
        assert_locked(SledBackend::open(&scratch.path, &opts(flag)), &scratch.path);
    }
    assert_locked(
        SledBackend::open(&scratch.path, &timeout(Flag::Write, Duration::from_millis(100))),
        &scratch.path,
    );
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        first.close().unwrap();
    });
    let second = SledBackend::open(&scratch.path, &timeout(Flag::Write, Duration::from_secs(10))).unwrap();
    closer.join().unwrap();
    assert_eq!(second.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn sled_refuses_multi_process() {
    let scratch = Scratch::new();
    assert!(matches!(
        SledBackend::open(&scratch.path, &multi(Flag::Create)),
        Err(OpenError::Unsupported { .. })
    ));
    assert!(!scratch.path.exists(), "nothing is created");
}

fn locked_by_another_process(engine: &str) {
    let scratch = Scratch::new();
    let path = scratch.path.to_str().unwrap();
    let mut child = spawn(&["hold", engine, path]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    expect_line(&mut lines, "ready");
    let open = |o: &BackendOptions| -> Result<Box<dyn KvBackend>, OpenError> {
        match engine {
            "redb" => RedbBackend::open(&scratch.path, o).map(|b| Box::new(b) as Box<dyn KvBackend>),
            _ => SledBackend::open(&scratch.path, o).map(|b| Box::new(b) as Box<dyn KvBackend>),
        }
    };
    assert_locked(open(&opts(Flag::Write)), &scratch.path);
    assert_locked(open(&opts(Flag::Read)), &scratch.path);
    // Closing the child's stdin makes it close the database; a timeout
    // waits for that.
    drop(child.stdin.take());
    let b = open(&timeout(Flag::Write, Duration::from_secs(20))).unwrap();
    assert_eq!(b.get(b"held").unwrap().as_deref(), Some(&b"yes"[..]));
    finish(child);
}

#[test]
fn redb_locked_by_another_process() {
    locked_by_another_process("redb");
}

#[test]
fn sled_locked_by_another_process() {
    locked_by_another_process("sled");
}

// ---- redb multi-process ----

#[test]
fn redb_multi_process_writers_all_land() {
    let scratch = Scratch::new();
    let mut b = RedbBackend::open(&scratch.path, &multi(Flag::Create)).unwrap();
    assert!(b.capabilities().multi_process);
    b.close().unwrap();
    drop(b);
    let path = scratch.path.to_str().unwrap();
    const N: u64 = 10_000;
    let children: Vec<Child> =
        ["a", "b"].iter().map(|id| spawn(&["mp-insert", path, id, &N.to_string()])).collect();
    for child in children {
        finish(child);
    }
    let b = RedbBackend::open(&scratch.path, &opts(Flag::Read)).unwrap();
    assert_eq!(b.len().unwrap(), 2 * N as usize);
    for id in ["a", "b"] {
        for i in [0, 1, N / 2, N - 1] {
            let v = b.get(format!("p{id}-{i:06}").as_bytes()).unwrap();
            assert_eq!(v, Some(format!("value {id} {i}").into_bytes()));
        }
    }
    assert!(b.commit_number().unwrap() >= 2 * N / 500, "one commit per sync at least");
}

#[test]
fn redb_multi_process_sees_other_process_sync() {
    let scratch = Scratch::new();
    let mut mine = RedbBackend::open(&scratch.path, &multi(Flag::Create)).unwrap();
    mine.insert(b"before", b"0").unwrap();
    mine.flush().unwrap();
    let before = mine.commit_number().unwrap();
    let mut child = spawn(&["mp-write", scratch.path.to_str().unwrap(), "from-child", "hello"]);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    expect_line(&mut lines, "synced");
    assert_eq!(mine.get(b"from-child").unwrap().as_deref(), Some(&b"hello"[..]));
    assert!(mine.contains(b"from-child").unwrap());
    assert_eq!(mine.len().unwrap(), 2, "len sees the other process's key");
    assert!(mine.commit_number().unwrap() > before, "the commit number shows the other process's commit");
    let keys = mine.keys().collected().unwrap();
    assert_eq!(keys, vec![b"before".to_vec(), b"from-child".to_vec()]);
    // And the other way round.
    mine.insert(b"from-parent", b"hi").unwrap();
    mine.flush().unwrap();
    writeln!(stdin, "from-parent").unwrap();
    stdin.flush().unwrap();
    assert_eq!(expect_line(&mut lines, "seen"), "seen hi");
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
    mine.close().unwrap();
}

#[test]
fn redb_multi_process_handles_share_in_process() {
    let scratch = Scratch::new();
    let mut a = RedbBackend::open(&scratch.path, &multi(Flag::Create)).unwrap();
    let mut b = RedbBackend::open(&scratch.path, &multi(Flag::Write)).unwrap();
    a.insert(b"a", b"1").unwrap();
    assert_eq!(b.get(b"a").unwrap(), None, "not synced yet");
    a.flush().unwrap();
    assert_eq!(b.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    b.insert(b"b", b"2").unwrap();
    b.remove(b"a").unwrap();
    b.flush().unwrap();
    assert_eq!(a.keys().collected().unwrap(), vec![b"b".to_vec()]);
    // A single-process open is refused while they hold the file.
    assert_locked(RedbBackend::open(&scratch.path, &opts(Flag::Write)), &scratch.path);
    a.close().unwrap();
    b.close().unwrap();
}

// ---- damaged files ----

/// Opens a damaged database with every flag that keeps files and reads all
/// it can; the test fails on a panic, whatever the outcome.
fn poke<B: OpenBackend>(path: &Path) -> Vec<String> {
    let mut outcomes = Vec::new();
    for flag in [Flag::Read, Flag::Write] {
        match B::open(path, &opts(flag)) {
            Err(e) => outcomes.push(format!("{flag}: {e}")),
            Ok(mut b) => {
                let _ = b.len();
                if let Ok(it) = b.iter() {
                    for _ in it {}
                }
                let _ = b.get(b"k00042");
                let _ = b.close();
                outcomes.push(format!("{flag}: opened"));
            }
        }
    }
    outcomes
}

#[test]
fn redb_garbage_is_an_error_not_a_panic() {
    let scratch = Scratch::new();
    // redb's magic, then garbage: it claims to be redb, so it is opened and refused.
    let mut bytes = backend_redb::MAGIC.to_vec();
    let mut rng = Rng(7);
    bytes.extend((0..20_000).map(|_| rng.next_u64() as u8));
    std::fs::write(&scratch.path, &bytes).unwrap();
    assert_eq!(backend_redb::probe(&scratch.path), Probe::Mine);
    for flag in [Flag::Read, Flag::Write, Flag::Create, Flag::New] {
        let res = RedbBackend::open(&scratch.path, &opts(flag));
        assert!(
            matches!(
                res,
                Err(OpenError::Corrupted { .. } | OpenError::Backend { .. } | OpenError::Io { .. })
            ),
            "flag {flag}: {:?}",
            res.map(|_| ())
        );
    }
    // Just the magic number.
    std::fs::write(&scratch.path, backend_redb::MAGIC).unwrap();
    for flag in [Flag::Read, Flag::Write] {
        assert!(RedbBackend::open(&scratch.path, &opts(flag)).is_err(), "flag {flag}");
    }
}

fn filled_redb(path: &Path) {
    let mut b = RedbBackend::open(path, &opts(Flag::Create)).unwrap();
    for i in 0..2000u32 {
        b.insert(format!("k{i:05}").as_bytes(), &vec![i as u8; 50 + (i % 300) as usize]).unwrap();
    }
    b.set_metadata("protocol", b"bincode").unwrap();
    b.close().unwrap();
}

#[test]
fn redb_bit_flips_are_errors_not_panics() {
    let scratch = Scratch::new();
    let pristine = scratch.dir.path().join("pristine");
    filled_redb(&pristine);
    let original = std::fs::read(&pristine).unwrap();
    let mut rng = Rng(42);
    let mut refused = 0;
    for round in 0..40 {
        let mut bytes = original.clone();
        // Some flips in the header, the rest anywhere.
        let at = if round < 8 { rng.below(512) } else { rng.below(bytes.len() as u64) } as usize;
        bytes[at] ^= 1 << rng.below(8);
        std::fs::write(&scratch.path, &bytes).unwrap();
        let outcomes = std::panic::catch_unwind(|| poke::<RedbBackend>(&scratch.path))
            .unwrap_or_else(|_| panic!("round {round}: a flipped bit at offset {at} panicked"));
        refused += outcomes.iter().filter(|o| !o.ends_with("opened")).count();
    }
    assert!(refused > 0, "some flips must be noticed");
}

#[test]
fn sled_garbage_is_an_error_not_a_panic() {
    let scratch = Scratch::new();
    let mut b = SledBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    for i in 0..500u32 {
        b.insert(format!("k{i:05}").as_bytes(), &[i as u8; 100]).unwrap();
    }
    b.close().unwrap();
    drop(b);
    let conf = scratch.path.join("conf");
    let db = scratch.path.join("db");
    let (conf_bytes, db_bytes) = (std::fs::read(&conf).unwrap(), std::fs::read(&db).unwrap());
    // Garbage configuration.
    std::fs::write(&conf, b"this is not sled's configuration at all").unwrap();
    let res = SledBackend::open(&scratch.path, &opts(Flag::Write));
    assert!(res.is_err(), "a garbage conf must not open");
    std::fs::write(&conf, &conf_bytes).unwrap();
    // Garbage log.
    let mut rng = Rng(3);
    let garbage: Vec<u8> = (0..db_bytes.len().max(4096)).map(|_| rng.next_u64() as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let outcomes = std::panic::catch_unwind(|| poke::<SledBackend>(&scratch.path))
        .unwrap_or_else(|_| panic!("a garbage db file panicked"));
    assert!(outcomes.iter().all(|o| o.contains("corrupted")), "a garbage log is refused: {outcomes:?}");
    assert!(matches!(
        SledBackend::open(&scratch.path, &opts(Flag::Create)),
        Err(OpenError::Corrupted { .. })
    ));
    // Flag n starts it afresh.
    let mut fresh = SledBackend::open(&scratch.path, &opts(Flag::New)).unwrap();
    assert_eq!(fresh.len().unwrap(), 0);
    fresh.close().unwrap();
    drop(fresh);
    SledBackend::open(&scratch.path, &opts(Flag::Write)).unwrap().close().unwrap();
    // Flipped bits in the log.
    for round in 0..10 {
        let mut bytes = db_bytes.clone();
        let at = rng.below(bytes.len() as u64) as usize;
        bytes[at] ^= 1 << rng.below(8);
        std::fs::write(&db, &bytes).unwrap();
        std::panic::catch_unwind(|| poke::<SledBackend>(&scratch.path))
            .unwrap_or_else(|_| panic!("round {round}: a flipped bit at offset {at} panicked"));
    }
}

// ---- ordered ranges ----

fn bound(kind: u64, key: &[u8]) -> Bound<&[u8]> {
    match kind {
        0 => Bound::Unbounded,
        1 => Bound::Included(key),
        _ => Bound::Excluded(key),
    }
}

fn random_key(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(4) as usize;
    (0..len).map(|_| [0u8, 1, b'a', b'b', 0x7f, 0xff][rng.below(6) as usize]).collect()
}

/// Random writes (some synced, some pending) and random ranges, walked
/// from both ends in random interleavings, against a `BTreeMap`.
fn ranges_match_model(b: &mut dyn KvBackend, seed: u64) {
    let mut rng = Rng(seed);
    for k in b.keys().collected().unwrap() {
        b.remove(&k).unwrap();
    }
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for round in 0..30 {
        for _ in 0..rng.below(40) {
            let k = random_key(&mut rng);
            if rng.below(3) == 0 {
                assert_eq!(
                    b.remove(&k).unwrap(),
                    model.remove(&k).is_some(),
                    "seed {seed} round {round} remove {k:?}"
                );
            } else {
                let v = format!("{round}-{}", rng.below(1000)).into_bytes();
                b.insert(&k, &v).unwrap();
                model.insert(k, v);
            }
        }
        if rng.below(3) == 0 {
            b.flush().unwrap();
        }
        assert_eq!(b.len().unwrap(), model.len());
        let all: Vec<_> = b.iter().unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(all, model.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>());
        assert_eq!(b.keys().collected().unwrap(), model.keys().cloned().collect::<Vec<_>>());
        for _ in 0..20 {
            let (lo, hi) = (random_key(&mut rng), random_key(&mut rng));
            let (lo, hi) = (bound(rng.below(3), &lo), bound(rng.below(3), &hi));
            let expected: Vec<_> = if shelf_core::raw::range_is_empty(lo, hi) {
                Vec::new()
            } else {
                model.range::<[u8], _>((lo, hi)).map(|(k, v)| (k.clone(), v.clone())).collect()
            };
            let mut it = b.range(lo, hi).unwrap();
            let (mut front, mut back) = (Vec::new(), Vec::new());
            loop {
                let item = if rng.below(2) == 0 {
                    it.next().map(|r| (true, r))
                } else {
                    it.next_back().map(|r| (false, r))
                };
                match item {
                    Some((true, r)) => front.push(r.unwrap()),
                    Some((false, r)) => back.push(r.unwrap()),
                    None => {
                        // One end ran dry: the other must be dry too.
                        assert!(it.next().is_none() && it.next_back().is_none());
                        break;
                    }
                }
            }
            back.reverse();
            front.extend(back);
            assert_eq!(front, expected, "range {lo:?}..{hi:?}");
        }
    }
}

#[test]
fn redb_ranges_merge_pending_and_synced_writes() {
    let scratch = Scratch::new();
    let mut b = RedbBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    ranges_match_model(&mut b, 1);
    b.set_overlay_bound(1 << 20, 7).unwrap();
    ranges_match_model(&mut b, 2);
}

#[test]
fn sled_ranges_match_model() {
    let scratch = Scratch::new();
    let mut b = SledBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    ranges_match_model(&mut b, 3);
}

fn prefix_scan(b: &mut dyn KvBackend) {
    for k in ["app", "apple", "apricot", "b", "ap", "a", "apz", "aq"] {
        b.insert(k.as_bytes(), b"").unwrap();
    }
    b.insert(b"ap\xff", b"").unwrap();
    b.insert(b"ap\x00", b"").unwrap();
    let keys: Vec<Vec<u8>> =
        b.range(Bound::Included(b"ap"), Bound::Excluded(b"aq")).unwrap().map(|r| r.unwrap().0).collect();
    let expected: Vec<&[u8]> = vec![b"ap", b"ap\x00", b"app", b"apple", b"apricot", b"apz", b"ap\xff"];
    assert_eq!(keys, expected.iter().map(|k| k.to_vec()).collect::<Vec<_>>());
    let back: Vec<Vec<u8>> = b
        .range(Bound::Excluded(b"ap"), Bound::Excluded(b"aq"))
        .unwrap()
        .rev()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(back.first().map(Vec::as_slice), Some(&b"ap\xff"[..]));
    assert_eq!(back.last().map(Vec::as_slice), Some(&b"ap\x00"[..]));
}

#[test]
fn redb_prefix_order() {
    let scratch = Scratch::new();
    let mut b = RedbBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    prefix_scan(&mut b);
    b.flush().unwrap();
    prefix_scan(&mut b);
}

#[test]
fn sled_prefix_order() {
    let scratch = Scratch::new();
    let mut b = SledBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    prefix_scan(&mut b);
}

// ---- atomic batches ----

fn batch_survives_reopen<B: OpenBackend>(path: &Path) {
    let mut b = B::open(path, &opts(Flag::Create)).unwrap();
    assert!(b.capabilities().atomic_batch);
    b.insert(b"old", b"0").unwrap();
    b.flush().unwrap();
    let keys: Vec<Vec<u8>> = (0..1000u32).map(|i| format!("batch-{i:04}").into_bytes()).collect();
    let mut ops: Vec<BatchOp<'_>> = keys.iter().map(|k| BatchOp::Insert(k, b"v")).collect();
    ops.push(BatchOp::Remove(b"old"));
    ops.push(BatchOp::Remove(b"batch-0000"));
    b.apply_batch(&ops).unwrap();
    assert_eq!(b.len().unwrap(), 999);
    assert!(!b.contains(b"old").unwrap());
    b.close().unwrap();
    drop(b);
    let mut r = B::open(path, &opts(Flag::Read)).unwrap();
    assert_eq!(r.len().unwrap(), 999);
    assert_eq!(r.get(b"batch-0999").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(matches!(r.apply_batch(&[BatchOp::Insert(b"x", b"y")]), Err(Error::ReadOnly { .. })));
    assert_eq!(r.len().unwrap(), 999);
}

#[test]
fn redb_batch_is_atomic_and_durable() {
    let scratch = Scratch::new();
    batch_survives_reopen::<RedbBackend>(&scratch.path);
    // A batch larger than the overlay bound still lands in one commit.
    let mut b = RedbBackend::open(&scratch.path, &opts(Flag::Write)).unwrap();
    b.set_overlay_bound(1 << 20, 10).unwrap();
    let before = b.commit_number().unwrap();
    let keys: Vec<Vec<u8>> = (0..100u32).map(|i| format!("big-{i}").into_bytes()).collect();
    let ops: Vec<BatchOp<'_>> = keys.iter().map(|k| BatchOp::Insert(k, b"w")).collect();
    b.apply_batch(&ops).unwrap();
    assert_eq!(b.commit_number().unwrap(), before + 1, "one commit for the whole batch");
    assert_eq!(b.pending(), 0);
    assert_eq!(b.len().unwrap(), 1099);
}

#[test]
fn sled_batch_is_atomic_and_durable() {
    let scratch = Scratch::new();
    batch_survives_reopen::<SledBackend>(&scratch.path);
}

// ---- the redb overlay ----

#[test]
fn redb_overlay_bound_spills_and_keeps_everything() {
    let scratch = Scratch::new();
    let mut b = RedbBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    b.set_overlay_bound(4096, 100).unwrap();
    let start = b.commit_number().unwrap();
    let mut model = BTreeMap::new();
    let mut rng = Rng(9);
    for i in 0..5000u64 {
        let k = format!("key-{:04}", rng.below(1500)).into_bytes();
        if i % 5 == 4 {
            assert_eq!(b.remove(&k).unwrap(), model.remove(&k).is_some(), "step {i}");
        } else {
            let v = vec![i as u8; (i % 90) as usize];
            b.insert(&k, &v).unwrap();
            model.insert(k, v);
        }
        assert!(b.pending() <= 101, "the overlay stays within its bound");
        if i % 250 == 0 {
            assert_eq!(b.len().unwrap(), model.len(), "step {i}");
        }
    }
    assert!(b.commit_number().unwrap() > start + 10, "the overlay spilled");
    assert_eq!(b.len().unwrap(), model.len());
    for (k, v) in &model {
        assert_eq!(b.get(k).unwrap().as_ref(), Some(v));
    }
    let all: BTreeMap<_, _> = b.iter().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(all, model);
    b.close().unwrap();
    drop(b);
    let r = RedbBackend::open(&scratch.path, &opts(Flag::Read)).unwrap();
    assert_eq!(r.iter().unwrap().map(|r| r.unwrap()).collect::<BTreeMap<_, _>>(), model);
}

#[test]
fn redb_unflushed_writes_are_not_durable_until_flush() {
    let scratch = Scratch::new();
    let mut b = RedbBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    b.insert(b"k", b"v").unwrap();
    assert_eq!(b.pending(), 1);
    let before = b.commit_number().unwrap();
    b.flush().unwrap();
    assert_eq!(b.pending(), 0);
    assert_eq!(b.commit_number().unwrap(), before + 1);
    b.flush().unwrap();
    assert_eq!(b.commit_number().unwrap(), before + 1, "an empty flush commits nothing");
}

#[test]
fn redb_maintenance() {
    let scratch = Scratch::new();
    let mut b = RedbBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    for i in 0..3000u32 {
        b.insert(format!("k{i}").as_bytes(), &[7u8; 1000]).unwrap();
    }
    b.flush().unwrap();
    for i in 0..3000u32 {
        b.remove(format!("k{i}").as_bytes()).unwrap();
    }
    b.insert(b"kept", b"1").unwrap();
    let stats = b.stats().unwrap();
    assert!(stats.bytes_on_disk.is_some_and(|b| b > 3_000_000), "{stats:?}");
    assert_eq!(stats.files, vec![scratch.path.clone()]);
    let reclaimed = b.compact().unwrap();
    assert!(reclaimed > 0, "compaction gives back the removed entries' space");
    assert!(b.stats().unwrap().bytes_on_disk < stats.bytes_on_disk, "compact shrank the file");
    let report = b.check(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.good_entries, 1);
    assert_eq!(b.keys().collected().unwrap(), vec![b"kept".to_vec()]);
    b.close().unwrap();
    drop(b);
    let mut r = RedbBackend::open(&scratch.path, &opts(Flag::Read)).unwrap();
    assert!(matches!(r.compact(), Err(Error::ReadOnly { .. })));
    assert_eq!(r.get(b"kept").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn redb_flag_n_clears_data_and_metadata_but_not_the_commit_number() {
    let scratch = Scratch::new();
    let mut b = RedbBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    b.insert(b"k", b"v").unwrap();
    b.set_metadata("protocol", b"json").unwrap();
    b.close().unwrap();
    let n = RedbBackend::open(&scratch.path, &opts(Flag::Read)).unwrap().commit_number().unwrap();
    let b = RedbBackend::open(&scratch.path, &opts(Flag::New)).unwrap();
    assert_eq!(b.len().unwrap(), 0);
    assert_eq!(b.metadata("protocol").unwrap(), None);
    assert!(b.commit_number().unwrap() > n);
}

#[test]
fn sled_flag_n_and_stats() {
    let scratch = Scratch::new();
    let mut b = SledBackend::open(&scratch.path, &opts(Flag::Create)).unwrap();
    b.insert(b"k", b"v").unwrap();
    b.set_metadata("protocol", b"json").unwrap();
    b.flush().unwrap();
    let stats = b.stats().unwrap();
    assert!(stats.bytes_on_disk.is_some_and(|b| b > 0));
    assert!(stats.files.contains(&scratch.path.join("db")), "{stats:?}");
    b.close().unwrap();
    drop(b);
    let b = SledBackend::open(&scratch.path, &opts(Flag::New)).unwrap();
    assert_eq!(b.len().unwrap(), 0);
    assert_eq!(b.metadata("protocol").unwrap(), None);
}

#[test]
fn redb_mode_applies_to_a_created_file() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new();
    let mut o = opts(Flag::Create);
    o.mode = 0o600;
    RedbBackend::open(&scratch.path, &o).unwrap().close().unwrap();
    let mode = std::fs::metadata(&scratch.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
