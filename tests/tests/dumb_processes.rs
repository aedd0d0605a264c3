// Over 700 lines: one scenario per locking rule, each spawning its own processes; splitting would scatter the shared worker helpers.
//! The `dumb` backend's locks and reader reloads across real processes
//! (never threads): a second writer is refused at once or waits with a
//! lock timeout; readers run alongside each other and alongside a writer;
//! a reader sees whole commits only, and new ones; a writer never
//! overwrites a value in place while a reader process has the database
//! open, and does again once it is gone.
//!
//! The other process is this test binary itself, run as
//! `current_exe --exact child_entry --nocapture` with the database path in
//! `SHELF_DUMB_CHILD`: `child_entry` then serves commands read from stdin
//! (one per line, keys and values hex-encoded) and answers each with one
//! stdout line starting with `@@`. In a normal run `child_entry` does
//! nothing.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use backend_dumb::DumbBackend;
use shelf_core::raw::BackendOptions;
use shelf_core::{Flag, KvBackend, OpenError};
use shelf_tests::Collected;
use shelf_tests::Scratch;

/// Set in a child process: the database path it works on.
const CHILD_ENV: &str = "SHELF_DUMB_CHILD";

/// How long the parent waits for any one answer before failing.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("x");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(word: &str) -> Vec<u8> {
    let digits = word.strip_prefix('x').unwrap_or_else(|| panic!("bad hex word {word:?}"));
    (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap()).collect()
}

fn options(flag: Flag, timeout_ms: u64) -> BackendOptions {
    let mut o = BackendOptions::with_flag(flag);
    if timeout_ms > 0 {
        o.lock_timeout = Some(Duration::from_millis(timeout_ms));
    }
    o
}

fn file(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(ext);
    PathBuf::from(s)
}

fn dat_len(base: &Path) -> u64 {
    fs::metadata(file(base, ".dat")).unwrap().len()
}

/// Every file in `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------
// Values that show a torn or stale read.

/// The value of `key` written at `version`: a header naming both and the
/// length, then filler derived from both, so a mix of two writes, a cut
/// value or a value under the wrong key shows.
fn versioned(key: &str, version: u64, len: usize) -> Vec<u8> {
    let mut v = format!("{key}|{version}|{len}|").into_bytes();
    let fill = filler(key, version);
    v.resize(len.max(v.len()), fill);
    v
}

fn filler(key: &str, version: u64) -> u8 {
    (key.bytes().fold(version.wrapping_mul(131), |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 251)
        as u8
}

/// The version in `value`, checking it is a whole value of `key`.
fn check_versioned(key: &str, value: &[u8]) -> Result<u64, String> {
    let text = String::from_utf8_lossy(&value[..value.len().min(64)]).into_owned();
    let mut parts = text.splitn(4, '|');
    let (k, version, len) = (parts.next(), parts.next(), parts.next());
    let bad =
        || format!("torn or foreign value under {key}: {:?}...", text.chars().take(30).collect::<String>());
    if k != Some(key) {
        return Err(bad());
    }
    let version: u64 = version.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let len: usize = len.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    if value != versioned(key, version, len) {
        return Err(format!("{} ({} bytes, header says {len})", bad(), value.len()));
    }
    Ok(version)
}

/// The writer of the commits test: at commit `i`, three of [`KEYS`] keys.
const KEYS: u64 = 40;
const COMMITS: u64 = 200;

fn written_at(commit: u64) -> [u64; 3] {
    [(commit * 3) % KEYS, (commit * 3 + 1) % KEYS, (commit * 3 + 2) % KEYS]
}

fn key_name(i: u64) -> String {
    format!("key{i:02}")
}

/// Sizes across 1, 2 and 3 blocks, so some overwrites keep their block
/// count and some grow.
fn size_at(commit: u64, key: u64) -> usize {
    [100, 600, 1000, 1100, 1500][((commit + key) % 5) as usize]
}

/// The version `key` must have at least once the reader has seen
/// `commit`: the last commit up to it that wrote the key.
fn last_write(key: u64, commit: u64) -> u64 {
    (1..=commit).rev().find(|&c| written_at(c).contains(&key)).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The child process.

/// The child process's entry point; does nothing in a normal test run.
#[test]
fn child_entry() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    serve(Path::new(&path));
}

fn serve(path: &Path) {
    let mut db: Option<DumbBackend> = None;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let w: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| -> u64 { w[i].parse().unwrap() };
        let answer = match w[0] {
            "open" => {
                let flag: Flag = w[1].parse().unwrap();
                match DumbBackend::open(path, &options(flag, num(2))) {
                    Ok(d) => {
                        db = Some(d);
                        "ok".to_owned()
                    }
                    Err(OpenError::Locked { path }) => format!("locked {}", path.display()),
                    Err(e) => format!("err {e}"),
                }
            }
            "set" => {
                db.as_mut().unwrap().insert(&unhex(w[1]), &unhex(w[2])).unwrap();
                "ok".to_owned()
            }
            "get" => match db.as_ref().unwrap().get(&unhex(w[1])) {
                Ok(Some(v)) => format!("some {}", hex(&v)),
                Ok(None) => "none".to_owned(),
                Err(e) => format!("err {e}"),
            },
            "len" => format!("len {}", db.as_ref().unwrap().len().unwrap()),
            "flush" => {
                db.as_mut().unwrap().flush().unwrap();
                "ok".to_owned()
            }
            "close" => {
                db.take().unwrap().close().unwrap();
                "ok".to_owned()
            }
            "closein" => {
                // Answer first: the parent is about to block on the lock.
                let _ = writeln!(stdout, "@@ok");
                let _ = stdout.flush();
                std::thread::sleep(Duration::from_millis(num(1)));
                db.take().unwrap().close().unwrap();
                continue;
            }
            "poll" => match poll(db.as_ref().unwrap(), num(1), Duration::from_millis(num(2))) {
                Ok(seen) => format!("ok {seen}"),
                Err(e) => format!("fail {e}"),
            },
            "watch" => {
                match watch(
                    db.as_ref().unwrap(),
                    &unhex(w[1]),
                    num(2) as usize,
                    Duration::from_millis(num(3)),
                ) {
                    Ok((reads, tags)) => format!("ok {reads} {tags}"),
                    Err(e) => format!("fail {e}"),
                }
            }
            "verify" => match verify(db.as_ref().unwrap(), Duration::from_millis(num(1))) {
                Ok((rounds, versions)) => format!("ok {rounds} {versions}"),
                Err(e) => format!("fail {e}"),
            },
            "exit" => break,
            other => format!("err unknown command {other}"),
        };
        let _ = writeln!(stdout, "@@{answer}");
        let _ = stdout.flush();
    }
    drop(db);
}

/// The reader of the commits test: polls until it has seen commit
/// `target`, checking every value it reads is whole, not older than the
/// commit it saw before reading it, not newer than the one after, and that
/// no key goes back in time. Returns how many distinct commits it saw.
fn poll(db: &DumbBackend, target: u64, limit: Duration) -> Result<usize, String> {
    let deadline = Instant::now() + limit;
    let mut seen = BTreeSet::new();
    let mut last: HashMap<u64, u64> = HashMap::new();
    let mut last_commit = 0;
    let mut last_number = 0;
    let mut round = 0u64;
    loop {
        round += 1;
        let commit_of = |db: &DumbBackend| -> Result<u64, String> {
            let v = db.get(b"commit").map_err(|e| e.to_string())?.ok_or("no commit key")?;
            String::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| "bad commit value".to_owned())
        };
        let before = commit_of(db)?;
        if before < last_commit {
            return Err(format!("commit went back from {last_commit} to {before}"));
        }
        let number = db.commit_number().map_err(|e| e.to_string())?;
        if number < last_number {
            return Err(format!("commit_number went back from {last_number} to {number}"));
        }
        last_number = number;
        seen.insert(before);
        let keys = db.keys().collected().map_err(|e| e.to_string())?;
        if keys.len() != KEYS as usize + 1 {
            return Err(format!("{} keys listed at commit {before}", keys.len()));
        }
        let mut versions = Vec::new();
        for i in 0..KEYS {
            let name = key_name(i);
            // Both read paths: pread and the shared map.
            let value = if (round + i).is_multiple_of(2) {
                db.get(name.as_bytes()).map_err(|e| e.to_string())?
            } else {
                db.get_shared(name.as_bytes()).map_err(|e| e.to_string())?.map(|v| v.to_vec())
            };
            let value = value.ok_or_else(|| format!("{name} missing at commit {before}"))?;
            let version = check_versioned(&name, &value)?;
            let floor = last_write(i, before);
            if version < floor {
                return Err(format!(
                    "{name}: version {version} read after commit {before} (at least {floor})"
                ));
            }
            if version < last.get(&i).copied().unwrap_or(0) {
                return Err(format!("{name}: went back to version {version}"));
            }
            last.insert(i, version);
            versions.push((name, version));
        }
        let after = commit_of(db)?;
        for (name, version) in versions {
            if version > after {
                return Err(format!("{name}: version {version} but commit {after} afterwards"));
            }
        }
        last_commit = after;
        seen.insert(after);
        if after >= target {
            return Ok(seen.len());
        }
        if Instant::now() > deadline {
            return Err(format!("commit {target} never seen (last {after})"));
        }
    }
}

/// Reads every key over and over for `limit`, through both read paths:
/// each value must be a whole value of its own key, and no key may go back
/// to an older version. Returns the rounds and the most versions of one
/// key seen.
fn verify(db: &DumbBackend, limit: Duration) -> Result<(u64, usize), String> {
    let deadline = Instant::now() + limit;
    let mut last: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut versions: HashMap<Vec<u8>, BTreeSet<u64>> = HashMap::new();
    let mut rounds = 0u64;
    while Instant::now() < deadline {
        rounds += 1;
        for key in db.keys().collected().map_err(|e| format!("keys: {e}"))? {
            let name = String::from_utf8(key.clone()).map_err(|_| "a key that is not UTF-8")?;
            let value = if rounds.is_multiple_of(2) {
                db.get(&key).map_err(|e| format!("get {name}: {e}"))?
            } else {
                db.get_shared(&key).map_err(|e| format!("get_shared {name}: {e}"))?.map(|v| v.to_vec())
            };
            // Keys are never removed.
            let value = value.ok_or_else(|| format!("{name} listed, then missing"))?;
            let version = check_versioned(&name, &value)?;
            let before = last.insert(key.clone(), version).unwrap_or(0);
            if version < before {
                return Err(format!("{name}: back from version {before} to {version}"));
            }
            versions.entry(key).or_default().insert(version);
        }
    }
    Ok((rounds, versions.values().map(BTreeSet::len).max().unwrap_or(0)))
}

/// Reads `key` over and over for `limit`: every read must be a whole value
/// of `len` identical bytes. Returns the reads and the distinct values seen.
fn watch(db: &DumbBackend, key: &[u8], len: usize, limit: Duration) -> Result<(u64, usize), String> {
    let deadline = Instant::now() + limit;
    let mut reads = 0u64;
    let mut tags = BTreeSet::new();
    while Instant::now() < deadline {
        let v = if reads.is_multiple_of(2) {
            db.get(key).map_err(|e| e.to_string())?
        } else {
            db.get_shared(key).map_err(|e| e.to_string())?.map(|v| v.to_vec())
        };
        let v = v.ok_or("the key vanished")?;
        if v.len() != len || v.iter().any(|&b| b != v[0]) {
            let distinct: BTreeSet<u8> = v.iter().copied().collect();
            return Err(format!("mixed value: {} bytes, bytes {distinct:?}", v.len()));
        }
        tags.insert(v[0]);
        reads += 1;
    }
    Ok((reads, tags.len()))
}

// ---------------------------------------------------------------------------
// The parent's handle on a child.

struct Child {
    proc: std::process::Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
    name: String,
}

impl Child {
    fn spawn(name: &str, path: &Path) -> Child {
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = proc.stdin.take().unwrap();
        let stdout = proc.stdout.take().unwrap();
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The first answer follows libtest's `test child_entry ... `.
                if let Some((_, answer)) = line.split_once("@@")
                    && tx.send(answer.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Child { proc, stdin, answers, name: name.to_owned() }
    }

    /// Sends a command without waiting for its answer.
    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").and_then(|()| self.stdin.flush()).unwrap();
    }

    /// The next answer.
    fn answer(&mut self) -> String {
        match self.answers.recv_timeout(ANSWER_TIMEOUT) {
            Ok(a) => a,
            Err(e) => panic!("child {}: no answer ({e})", self.name),
        }
    }

    fn cmd(&mut self, command: &str) -> String {
        self.send(command);
        self.answer()
    }

    /// Runs a command that must answer `ok`.
    fn ok(&mut self, command: &str) {
        let answer = self.cmd(command);
        assert_eq!(answer, "ok", "child {}: {command}", self.name);
    }

    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let answer = self.cmd(&format!("get {}", hex(key)));
        match answer.split_once(' ') {
            Some(("some", v)) => Some(unhex(v)),
            _ if answer == "none" => None,
            _ => panic!("child {}: get: {answer}", self.name),
        }
    }

    fn len(&mut self) -> usize {
        let answer = self.cmd("len");
        answer.strip_prefix("len ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("len: {answer}"))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "exit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.proc.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

fn open(path: &Path, flag: Flag) -> DumbBackend {
    DumbBackend::open(path, &options(flag, 0)).unwrap_or_else(|e| panic!("open {flag}: {e}"))
}

fn new_db(path: &Path, pairs: &[(&[u8], &[u8])]) {
    let mut db = open(path, Flag::New);
    for (k, v) in pairs {
        db.insert(k, v).unwrap();
    }
    db.close().unwrap();
}

fn assert_locked(result: Result<DumbBackend, OpenError>, path: &Path, what: &str) {
    match result {
        Err(OpenError::Locked { path: p }) => {
            assert_eq!(p, path, "{what}: Locked names the database");
            let message = OpenError::Locked { path: p }.to_string();
            assert!(message.contains(path.to_str().unwrap()), "{what}: {message}");
        }
        Err(e) => panic!("{what}: expected Locked, got {e:?}"),
        Ok(_) => panic!("{what}: opened a database another process writes"),
    }
}

// ---------------------------------------------------------------------------
// The cases.

#[test]
fn second_writer_is_locked_at_once_then_waits() {
    let scratch = Scratch::new();
    let path = &scratch.path;
    new_db(path, &[(b"a", b"1")]);
    let mut writer = Child::spawn("writer", path);
    writer.ok("open w 0");
    writer.ok(&format!("set {} {}", hex(b"b"), hex(b"2")));
    writer.ok("flush");
    let before = snapshot(scratch.dir.path());

    // At once, for every writing flag; `n` deletes nothing.
    for flag in [Flag::Write, Flag::Create, Flag::New] {
        let t = Instant::now();
        assert_locked(DumbBackend::open(path, &options(flag, 0)), path, &format!("flag {flag}"));
        assert!(t.elapsed() < Duration::from_secs(1), "flag {flag}: took {:?}", t.elapsed());
        assert_eq!(snapshot(scratch.dir.path()), before, "flag {flag}: a refused open changed files");
    }
    // Through the facade as well.
    let err = shelf::OpenOptions::new().flag(Flag::Write).open(path).map(drop).expect_err("facade opened it");
    assert!(matches!(&err, OpenError::Locked { path: p } if p == path), "{err:?}");

    // A timeout that runs out: Locked after waiting it.
    let t = Instant::now();
    assert_locked(DumbBackend::open(path, &options(Flag::Write, 300)), path, "300 ms timeout");
    assert!(t.elapsed() >= Duration::from_millis(300), "gave up after {:?}", t.elapsed());

    // A timeout the holder's close ends: the open waits, then succeeds and
    // sees what the holder wrote last.
    writer.ok(&format!("set {} {}", hex(b"c"), hex(b"3")));
    writer.ok("closein 400");
    let t = Instant::now();
    let db = DumbBackend::open(path, &options(Flag::Write, 30_000)).expect("waited for the lock");
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(200), "did not wait: {waited:?}");
    assert!(waited < Duration::from_secs(20), "waited {waited:?}");
    assert_eq!(db.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(db.len().unwrap(), 3);

    // The other way round: the child is refused, then waits for us.
    assert!(writer.cmd("open c 0").starts_with(&format!("locked {}", path.display())));
    writer.send("open w 30000");
    std::thread::sleep(Duration::from_millis(300));
    let mut db = db;
    db.insert(b"d", b"4").unwrap();
    db.close().unwrap();
    assert_eq!(writer.answer(), "ok", "the child's open with a timeout");
    assert_eq!(writer.get(b"d").as_deref(), Some(&b"4"[..]));
    writer.ok("close");
}

#[test]
fn readers_run_alongside_each_other_and_a_writer() {
    let scratch = Scratch::new();
    let path = &scratch.path;
    new_db(path, &[(b"a", b"1"), (b"b", b"2")]);
    let mut r1 = Child::spawn("reader 1", path);
    let mut r2 = Child::spawn("reader 2", path);
    r1.ok("open r 0");
    r2.ok("open r 0");
    assert_eq!(r1.get(b"a").as_deref(), Some(&b"1"[..]));
    assert_eq!(r2.get(b"b").as_deref(), Some(&b"2"[..]));

    // A writer opens beside them.
    let mut db = open(path, Flag::Write);
    let mut w2 = Child::spawn("second writer", path);
    assert!(w2.cmd("open w 0").starts_with("locked "), "a second writer beside a writer and readers");
    // A third reader beside the writer.
    let mut r3 = Child::spawn("reader 3", path);
    r3.ok("open r 0");

    // Uncommitted writes are invisible; committed ones appear.
    db.insert(b"c", b"3").unwrap();
    db.remove(b"a").unwrap();
    for r in [&mut r1, &mut r2, &mut r3] {
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(b"c"), None);
        assert_eq!(r.get(b"a").as_deref(), Some(&b"1"[..]));
    }
    db.flush().unwrap();
    for r in [&mut r1, &mut r2, &mut r3] {
        assert_eq!(r.get(b"c").as_deref(), Some(&b"3"[..]));
        assert_eq!(r.get(b"a"), None);
        assert_eq!(r.len(), 2);
    }
    db.close().unwrap();
    // Readers outlive the writer.
    assert_eq!(r1.get(b"b").as_deref(), Some(&b"2"[..]));
    for r in [&mut r1, &mut r2, &mut r3] {
        r.ok("close");
    }
    w2.ok("open w 0");
    w2.ok("close");
}

#[test]
fn reader_sees_whole_commits_while_writer_commits() {
    let scratch = Scratch::new();
    let path = &scratch.path;
    let mut db = open(path, Flag::New);
    for i in 0..KEYS {
        db.insert(key_name(i).as_bytes(), &versioned(&key_name(i), 0, size_at(0, i))).unwrap();
    }
    db.insert(b"commit", b"0").unwrap();
    db.flush().unwrap();

    let mut reader = Child::spawn("reader", path);
    reader.ok("open r 0");
    assert_eq!(reader.len(), KEYS as usize + 1);
    reader.send(&format!("poll {COMMITS} 60000"));
    let start = dat_len(path);
    for c in 1..=COMMITS {
        for i in written_at(c) {
            db.insert(key_name(i).as_bytes(), &versioned(&key_name(i), c, size_at(c, i))).unwrap();
        }
        db.insert(b"commit", c.to_string().as_bytes()).unwrap();
        db.flush().unwrap();
        if c % 50 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let answer = reader.answer();
    let seen: usize = answer
        .strip_prefix("ok ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the reader: {answer}"));
    assert!(seen >= 2, "the reader saw only {seen} commit(s)");
    eprintln!("reader saw {seen} of {COMMITS} commits");
    // The reader held the database open: nothing was overwritten in place.
    assert!(dat_len(path) > start);
    reader.ok("close");
    db.close().unwrap();
}

#[test]
fn no_in_place_overwrite_under_a_reader() {
    let scratch = Scratch::new();
    let path = &scratch.path;
    let value = |tag: u8| vec![tag; 700];
    let mut db = open(path, Flag::New);
    db.insert(b"v", &value(b'A')).unwrap();
    db.insert(b"after", b"keeps v from being last").unwrap();
    db.flush().unwrap();

    // Without readers: in place, `.dat` does not grow.
    let size = dat_len(path);
    db.insert(b"v", &value(b'B')).unwrap();
    db.flush().unwrap();
    assert_eq!(dat_len(path), size, "no reader: the overwrite was not in place");

    let mut reader = Child::spawn("reader", path);
    reader.ok("open r 0");
    assert_eq!(reader.get(b"v"), Some(value(b'B')));

    // Same block count, but a reader is there: appended, and the reader
    // keeps the whole old value until the commit.
    // (Appends may be buffered until the commit: sizes are checked after it.)
    let size = dat_len(path);
    db.insert(b"v", &value(b'C')).unwrap();
    assert_eq!(reader.get(b"v"), Some(value(b'B')));
    db.flush().unwrap();
    assert!(dat_len(path) > size, "overwritten in place under a reader");
    assert_eq!(reader.get(b"v"), Some(value(b'C')));

    // Many overwrites while the reader reads all the time.
    reader.send(&format!("watch {} 700 1500", hex(b"v")));
    let t = Instant::now();
    let mut tag = b'D';
    while t.elapsed() < Duration::from_millis(1200) {
        let size = dat_len(path);
        db.insert(b"v", &value(tag)).unwrap();
        db.flush().unwrap();
        assert!(dat_len(path) > size, "overwritten in place under a reader");
        tag = if tag == b'Z' { b'D' } else { tag + 1 };
    }
    let answer = reader.answer();
    assert!(answer.starts_with("ok "), "the reader: {answer}");
    let tags: usize = answer.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(tags >= 2, "the reader saw no new commit: {answer}");
    reader.ok("close");

    // The reader is gone: in place again.
    let size = dat_len(path);
    for tag in b'a'..=b'j' {
        db.insert(b"v", &value(tag)).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(dat_len(path), size, "in-place overwrites did not resume");

    // A reader arriving while the writer overwrites in place (before its
    // commit) is refused at once, or waits for the commit.
    db.insert(b"v", &value(b'k')).unwrap();
    assert_eq!(dat_len(path), size);
    assert!(reader.cmd("open r 0").starts_with("locked "), "a reader opened during an in-place write");
    reader.send("open r 30000");
    std::thread::sleep(Duration::from_millis(300));
    db.flush().unwrap();
    assert_eq!(reader.answer(), "ok");
    assert_eq!(reader.get(b"v"), Some(value(b'k')));
    reader.ok("close");
    db.close().unwrap();
}

#[test]
fn reader_follows_compactions() {
    let scratch = Scratch::new();
    let path = &scratch.path;
    let mut db = open(path, Flag::New);
    for i in 0..KEYS {
        db.insert(key_name(i).as_bytes(), &versioned(&key_name(i), 0, size_at(0, i))).unwrap();
    }
    db.flush().unwrap();
    let mut reader = Child::spawn("reader", path);
    reader.ok("open r 0");
    reader.send("verify 4000");
    // Commits that leave garbage behind, each followed at once by a
    // compaction (which replaces `.dat` and then `.dir`).
    let t = Instant::now();
    let mut round = 0;
    let mut reclaimed = 0;
    while t.elapsed() < Duration::from_millis(3500) {
        round += 1;
        for i in 0..KEYS {
            let name = key_name(i);
            db.insert(name.as_bytes(), &versioned(&name, round, size_at(round, i) + 600)).unwrap();
        }
        db.flush().unwrap();
        reclaimed += db.compact().unwrap();
    }
    let answer = reader.answer();
    assert!(answer.starts_with("ok "), "the reader, during {round} compactions: {answer}");
    assert!(reclaimed > 0);
    eprintln!("reader: {answer} (rounds, most versions of a key) over {round} compactions");
    reader.ok("close");
    db.close().unwrap();
}
