//! The `sqlite` backend against the real CPython 3.13 (pyenv), never
//! against our memory of `Lib/dbm/sqlite3.py`: shelves written by plain
//! `shelve.open` open here with pickle, take writes, and read back in
//! CPython; `dbm.whichdb` still says `dbm.sqlite3`; a CPython process and
//! this (shelf) process share one shelf at once; 20,000 keys both ways.
//! Without pyenv's 3.13 every case prints why and skips.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shelf::{Flag, OpenOptions, Protocol, Value, WhichDb};
use shelf_tests::Collected;
use shelf_tests::python::Python;

fn python(case: &str) -> Option<Python> {
    Python::pyenv_or_skip("3.13", case)
}

/// The names in `dir`, sorted: a closed shelf is its one file.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn s(text: &str) -> Value {
    Value::Str(text.into())
}

/// Writes with CPython's plain `shelve.open`, then reads and writes here,
/// then CPython reads everything back and `dbm.whichdb` still says
/// `dbm.sqlite3`; no protocol is recorded in CPython's file.
#[test]
fn cpython_shelf_opens_here_takes_writes_and_reads_back_in_cpython() {
    let Some(py) = python("cpython_shelf_round_trip") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory");
    let p = path.to_str().unwrap();
    let out = py
        .run(
            r#"
import dbm, shelve, sys
with shelve.open(sys.argv[1]) as db:
    db["apples"] = {"count": 3, "tags": ("red", "sweet")}
    db["big"] = 2**100
    db["bytes"] = b"\x00\xff"
    db["ключ"] = "значение"
    db["gone"] = None
    db["over"] = 1
print(dbm.whichdb(sys.argv[1]))
"#,
            &[p],
        )
        .unwrap();
    assert_eq!(out.trim(), "dbm.sqlite3");
    assert_eq!(shelf::whichdb(&path), WhichDb::Backend("sqlite"));

    let mut db = shelf::open(&path).unwrap();
    assert_eq!(db.protocol().family(), "pickle", "pickle detected without naming it");
    assert_eq!(
        db.get::<Value>("apples").unwrap(),
        Some(Value::Dict(vec![
            (s("count"), Value::Int(3)),
            (s("tags"), Value::Tuple(vec![s("red"), s("sweet")])),
        ]))
    );
    assert_eq!(db.get::<Value>("bytes").unwrap(), Some(Value::Bytes(vec![0, 0xff])));
    assert_eq!(db.get::<String>("ключ").unwrap().as_deref(), Some("значение"));
    assert!(matches!(db.get::<Value>("big").unwrap(), Some(Value::BigInt(_)) | Some(Value::Int(_))));
    let mut keys = db.keys().collected().unwrap();
    keys.sort();
    assert_eq!(keys, ["apples", "big", "bytes", "gone", "over", "ключ"]);
    db.insert(
        "pears",
        &Value::Dict(vec![(s("count"), Value::Int(5)), (s("tags"), Value::Tuple(vec![s("green")]))]),
    )
    .unwrap();
    db.insert("over", &2i64).unwrap();
    assert!(db.remove("gone").unwrap());
    db.insert("ünï", &vec![1i64, 2, 3]).unwrap();
    db.close().unwrap();
    assert_eq!(listing(dir.path()), ["inventory"], "a closed shelf is its one file");

    let out = py
        .run(
            r#"
import dbm, shelve, sqlite3, sys
with shelve.open(sys.argv[1], "r") as db:
    assert db["pears"] == {"count": 5, "tags": ("green",)}, db["pears"]
    assert db["over"] == 2
    assert "gone" not in db
    assert db["ünï"] == [1, 2, 3]
    assert db["apples"] == {"count": 3, "tags": ("red", "sweet")}
    assert db["big"] == 2**100 and db["bytes"] == b"\x00\xff" and db["ключ"] == "значение"
    assert sorted(db.keys()) == sorted(["apples", "big", "bytes", "ключ", "over", "pears", "ünï"]), list(db.keys())
with shelve.open(sys.argv[1], "w") as db:
    db["from_python_again"] = 7
cx = sqlite3.connect(sys.argv[1])
names = [r[0] for r in cx.execute("SELECT name FROM shelf_meta")]
assert "meta:protocol" not in names, names
assert cx.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
types = set(r for r in cx.execute("SELECT DISTINCT typeof(key), typeof(value) FROM Dict"))
assert types == {("blob", "blob")}, types
cx.close()
print(dbm.whichdb(sys.argv[1]))
"#,
            &[p],
        )
        .unwrap();
    assert_eq!(out.trim(), "dbm.sqlite3", "CPython's whichdb after shelf wrote");
    let db = OpenOptions::new().flag(Flag::Read).open(&path).unwrap();
    assert_eq!(db.get::<i64>("from_python_again").unwrap(), Some(7));
    drop(db);
    assert_eq!(listing(dir.path()), ["inventory"], "flag r leaves no -wal/-shm behind");
}

/// A shelf created here (pickle, the default of a Python format) opens
/// in CPython's plain `shelve.open`; another protocol cannot be recorded
/// in a file CPython made.
#[test]
fn shelf_made_here_opens_in_cpython_and_protocols_stay_pickle() {
    let Some(py) = python("shelf_made_here_opens_in_cpython") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("made");
    let mut db = OpenOptions::new().backend("sqlite").open(&path).unwrap();
    assert_eq!(db.protocol().family(), "pickle");
    db.insert("n", &41i64).unwrap();
    db.insert("t", &Value::Tuple(vec![Value::Int(1), s("x")])).unwrap();
    db.close().unwrap();
    assert_eq!(listing(dir.path()), ["made"]);
    let out = py
        .run(
            r#"
import dbm, shelve, sys
with shelve.open(sys.argv[1]) as db:
    assert db["n"] == 41 and db["t"] == (1, "x"), dict(db)
    db["n"] = 42
print(dbm.whichdb(sys.argv[1]))
"#,
            &[path.to_str().unwrap()],
        )
        .unwrap();
    assert_eq!(out.trim(), "dbm.sqlite3");
    let db = shelf::open(&path).unwrap();
    assert_eq!(db.get::<i64>("n").unwrap(), Some(42));
    drop(db);

    // A shelf CPython made refuses a recorded JSON protocol (its values
    // must stay pickles) and changes nothing.
    let cpy = dir.path().join("cpy");
    py.run(
        "import shelve, sys\nwith shelve.open(sys.argv[1]) as db: db['a'] = 1\n",
        &[cpy.to_str().unwrap()],
    )
    .unwrap();
    let before = std::fs::read(&cpy).unwrap();
    let refused = OpenOptions::new().protocol(Protocol::Json).open(&cpy);
    assert!(refused.is_err(), "json recorded in CPython's shelf");
    assert_eq!(std::fs::read(&cpy).unwrap(), before);
    assert_eq!(listing(dir.path()), ["cpy", "made"]);
}

/// 20,000 keys written by CPython read here, and 20,000 written here
/// read by CPython. On tmpfs where there is one: CPython commits every
/// assignment with a sync, which takes minutes on a real disk.
#[test]
fn twenty_thousand_keys_both_ways() {
    let Some(py) = python("twenty_thousand_keys_both_ways") else { return };
    let dir = match tempfile::tempdir_in("/dev/shm") {
        Ok(d) => d,
        Err(e) => {
            shelf_tests::skip(
                "twenty_thousand_keys_both_ways (tmpfs)",
                "sqlite",
                &format!("no /dev/shm ({e}); on disk"),
            );
            tempfile::tempdir().unwrap()
        }
    };
    const N: i64 = 20_000;
    let from_py = dir.path().join("from_py");
    py.run(
        "import shelve, sys\nwith shelve.open(sys.argv[1]) as db:\n    for i in range(int(sys.argv[2])): db['k%d' % i] = ('v', i)\n",
        &[from_py.to_str().unwrap(), &N.to_string()],
    )
    .unwrap();
    let db = shelf::open(&from_py).unwrap();
    assert_eq!(db.len().unwrap(), N as usize);
    let mut seen = 0;
    for item in db.items::<(String, i64)>().unwrap() {
        let (k, (tag, i)) = item.unwrap();
        assert_eq!((k, tag.as_str()), (format!("k{i}"), "v"));
        seen += 1;
    }
    assert_eq!(seen, N);
    drop(db);

    let from_rs = dir.path().join("from_rs");
    let mut db = OpenOptions::new().backend("sqlite").open(&from_rs).unwrap();
    let start = Instant::now();
    for i in 0..N {
        db.insert(format!("k{i}"), &vec![i, -i]).unwrap();
    }
    db.close().unwrap();
    eprintln!("sqlite: 20,000 inserts and one sync in {:?}", start.elapsed());
    assert_eq!(listing(dir.path()), ["from_py", "from_rs"], "closed shelves are one file each");
    let out = py
        .run(
            r#"
import dbm, shelve, sys
n = int(sys.argv[2])
with shelve.open(sys.argv[1], "r") as db:
    assert len(db) == n, len(db)
    for i in range(n):
        assert db["k%d" % i] == [i, -i]
print(dbm.whichdb(sys.argv[1]))
"#,
            &[from_rs.to_str().unwrap(), &N.to_string()],
        )
        .unwrap();
    // (CPython's flag "r" is a read-only SQLite connection, which leaves
    // `-wal`/`-shm` behind: its own doing, not looked at here.)
    assert_eq!(out.trim(), "dbm.sqlite3");
}

/// The CPython side of the shared-shelf test: writes `py-i` for every i,
/// then waits until it sees every `rs-i` this process wrote, checks their
/// values, and reports.
const PY_PEER: &str = r#"
import shelve, sys, time
path, n = sys.argv[1], int(sys.argv[2])
with shelve.open(path, "w") as db:
    print("ready", flush=True)
    for i in range(n):
        db["py-%d" % i] = {"from": "python", "i": i}
    deadline = time.time() + 60
    while True:
        missing = [i for i in range(n) if ("rs-%d" % i) not in db]
        if not missing:
            break
        if time.time() > deadline:
            sys.exit("python never saw rs-%d" % missing[0])
        time.sleep(0.01)
    for i in range(n):
        assert db["rs-%d" % i] == ("rust", i), db["rs-%d" % i]
    print("saw all", len(db), flush=True)
"#;

/// A CPython process and this shelf process use one sqlite shelf at once:
/// both write, and each reads every synced write of the other. The shelf
/// side syncs after every write, so CPython's writers (which wait for the
/// lock up to 5 s) never wait long.
#[test]
fn a_cpython_process_and_a_shelf_process_share_one_shelf() {
    let Some(py) = python("a_cpython_process_and_a_shelf_process_share_one_shelf") else { return };
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let path = dir.path().join("shared");
    OpenOptions::new().backend("sqlite").open(&path).unwrap().close().unwrap();
    const N: usize = 300;
    let mut child = Command::new("pyenv")
        .args(["exec", "python", "-", path.to_str().unwrap(), &N.to_string()])
        .env("PYENV_VERSION", py.version.clone().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(PY_PEER.as_bytes()).unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));

    let mut db = OpenOptions::new().flag(Flag::Write).open(&path).unwrap();
    for i in 0..N {
        db.insert(format!("rs-{i}"), &Value::Tuple(vec![s("rust"), Value::Int(i as i64)])).unwrap();
        db.sync().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = (0..N).filter(|i| db.contains_key(format!("py-{i}")).unwrap()).count();
        if seen == N {
            break;
        }
        assert!(Instant::now() < deadline, "shelf saw {seen} of {N} CPython writes");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Python's dicts keep insertion order, and pickles keep it too.
    let want = |i: usize| vec![(s("from"), s("python")), (s("i"), Value::Int(i as i64))];
    for i in 0..N {
        let Some(Value::Dict(got)) = db.get::<Value>(format!("py-{i}")).unwrap() else {
            panic!("py-{i} is not a dict")
        };
        assert_eq!(got, want(i));
    }
    db.close().unwrap();
    let out = child.wait_with_output().unwrap();
    let said: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(out.status.success(), "CPython failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(said, [format!("saw all {}", 2 * N)]);
    assert_eq!(listing(dir.path()), ["shared"], "the last to close removes -wal and -shm");
}

/// An SQLite file without CPython's `Dict` table is another program's:
/// not recognised, never written (flag `c`, `w` or `n`), and probing it
/// creates nothing beside it.
#[test]
fn other_sqlite_files_are_never_touched() {
    let Some(py) = python("other_sqlite_files_are_never_touched") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    py.run(
        "import sqlite3, sys\ncx = sqlite3.connect(sys.argv[1])\ncx.execute('CREATE TABLE t (key BLOB, value BLOB)')\ncx.commit()\ncx.close()\n",
        &[path.to_str().unwrap()],
    )
    .unwrap();
    let before = std::fs::read(&path).unwrap();
    assert_eq!(shelf::whichdb(&path), WhichDb::Unknown);
    for flag in [Flag::Create, Flag::Write, Flag::New, Flag::Read] {
        let res = OpenOptions::new().backend("sqlite").flag(flag).open(&path);
        assert!(res.is_err(), "flag {flag} opened another program's SQLite file");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(listing(dir.path()), ["app.db"], "nothing created beside it");
}

/// Probing a shelf that CPython holds open (its `-wal` beside it) still
/// says `sqlite`, and probing a closed one creates no `-wal`/`-shm`.
#[test]
fn probing_creates_nothing_and_sees_a_shelf_in_use() {
    let Some(py) = python("probing_creates_nothing") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("db");
    let release = dir.path().join("release");
    let mut child = Command::new("pyenv")
        .args(["exec", "python", "-", path.to_str().unwrap(), release.to_str().unwrap()])
        .env("PYENV_VERSION", py.version.clone().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"import os, shelve, sys, time\ndb = shelve.open(sys.argv[1])\ndb['k'] = 1\nprint('open', flush=True)\n\
              while not os.path.exists(sys.argv[2]): time.sleep(0.01)\ndb.close()\n",
        )
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("open"));
    assert!(dir.path().join("db-wal").exists(), "CPython holds the shelf open in WAL mode");
    assert_eq!(shelf::whichdb(&path), WhichDb::Backend("sqlite"), "while CPython holds it open");
    std::fs::write(&release, b"").unwrap();
    assert!(child.wait().unwrap().success());
    std::fs::remove_file(&release).unwrap();
    assert_eq!(listing(dir.path()), ["db"]);
    assert_eq!(shelf::whichdb(&path), WhichDb::Backend("sqlite"));
    assert_eq!(listing(dir.path()), ["db"], "the probe created nothing");
}

/// Damage is an error, never a panic or a silent success: a broken header
/// and scribbled pages.
#[test]
fn damage_is_an_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut db = OpenOptions::new().backend("sqlite").open(&path).unwrap();
    for i in 0..2000 {
        db.insert(format!("key{i:05}"), &vec![i; 20]).unwrap();
    }
    db.close().unwrap();
    let good = std::fs::read(&path).unwrap();
    // Every page after the first, scribbled: the B-tree pages break.
    let mut bad = good.clone();
    let page = 4096;
    for at in (page..bad.len()).step_by(page) {
        bad[at..at + 16].copy_from_slice(&[0xa5; 16]);
    }
    std::fs::write(&path, &bad).unwrap();
    let outcome = std::panic::catch_unwind(|| match OpenOptions::new().backend("sqlite").open(&path) {
        Err(_) => true,
        Ok(mut db) => {
            let listed: Result<Vec<_>, _> = db.items::<Value>().unwrap_or_else(|_| panic!("items")).collect();
            let checked = db.backend_mut().unwrap().check(false).unwrap();
            listed.is_err() && !checked.is_clean()
        }
    });
    assert_eq!(outcome.ok(), Some(true), "scribbled pages are reported");
}

/// Python's `dbm.sqlite3` can use a file checked and compacted here.
#[test]
fn compact_and_check_keep_the_shelf_cpython_readable() {
    let Some(py) = python("compact_and_check") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut db = OpenOptions::new().backend("sqlite").open(&path).unwrap();
    for i in 0..500i64 {
        db.insert(format!("k{i}"), &vec![i; 50]).unwrap();
    }
    db.sync().unwrap();
    for i in 0..450i64 {
        db.remove(format!("k{i}")).unwrap();
    }
    db.sync().unwrap();
    let before = std::fs::read(&path).unwrap();
    let report = db.backend_mut().unwrap().check(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.good_entries, 50);
    assert_eq!(std::fs::read(&path).unwrap(), before, "check(false) changes nothing");
    let reclaimed = db.backend_mut().unwrap().compact().unwrap();
    assert!(reclaimed > 0, "VACUUM gave back nothing");
    db.close().unwrap();
    let out = py
        .run(
            "import shelve, sys\nwith shelve.open(sys.argv[1], 'r') as db:\n    print(len(db), db['k499'][0])\n",
            &[path.to_str().unwrap()],
        )
        .unwrap();
    assert_eq!(out.trim(), "50 499");
}

/// The lock behaviour the crate docs state: a shelf's unsynced writes hold
/// SQLite's write lock, so a CPython writer waits (up to its 5 s busy
/// timeout) until the shelf syncs, then succeeds; readers never wait.
#[test]
fn a_cpython_writer_waits_for_the_shelf_sync() {
    let Some(py) = python("a_cpython_writer_waits_for_the_shelf_sync") else { return };
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let path = dir.path().join("db");
    let mut db = OpenOptions::new().backend("sqlite").open(&path).unwrap();
    db.insert("held", &1i64).unwrap();
    let mut child = Command::new("pyenv")
        .args(["exec", "python", "-", path.to_str().unwrap()])
        .env("PYENV_VERSION", py.version.clone().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            br#"
import shelve, sys, time
with shelve.open(sys.argv[1], "w") as db:
    print("held" in db, flush=True)
    t = time.monotonic()
    db["py"] = 2
    print("%.3f" % (time.monotonic() - t), flush=True)
"#,
        )
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(
        lines.next().and_then(Result::ok).as_deref(),
        Some("False"),
        "a reader does not wait, and sees no unsynced write"
    );
    std::thread::sleep(Duration::from_millis(800));
    db.sync().unwrap();
    let waited: f64 = lines.next().and_then(Result::ok).and_then(|l| l.trim().parse().ok()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!((0.3..5.0).contains(&waited), "CPython's write waited {waited} s for the sync");
    assert_eq!(db.get::<i64>("py").unwrap(), Some(2));
    db.close().unwrap();
}
