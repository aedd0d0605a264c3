//! The gnu backend against the real program: Debian's `/usr/bin/python3`
//! with `python3-gdbm` (libgdbm 1.23) writes GDBM files with `dbm.gnu` and
//! `shelve`, shelf reads and writes them, CPython reads them back; 20,000
//! keys both ways; a CPython writer and a shelf writer exclude each other.
//! Every case skips, saying why, where that Python or its `dbm.gnu` is
//! missing (`.ci/run` installs `python3-gdbm`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use backend_gnu::GnuBackend;
use shelf::raw::{BackendOptions, OpenBackend};
use shelf::{Flag, KvBackend, OpenError, Value};
use shelf_tests::skip;

const PYTHON: &str = "/usr/bin/python3";

/// Runs `script` under Debian's Python with `args`; stdout, or the error.
fn python(script: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| format!("cannot start {PYTHON}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{PYTHON} failed: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Whether Debian's Python with `dbm.gnu` is here; prints why not.
fn have_gnu(case: &str) -> bool {
    match python("import dbm.gnu", &[]) {
        Ok(_) => true,
        Err(e) => {
            skip(case, "gnu", &format!("no dbm.gnu ({e}); install python3-gdbm"));
            false
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// The entries both sides generate: text and binary keys (bytes from
/// 0x80 hash differently where `char` is signed), empty and long values.
fn entries(n: usize, tag: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (0..n)
        .map(|i| {
            let key = if i % 3 == 0 {
                let mut k = vec![(i % 256) as u8, (i * 7 % 256) as u8, 0xff, 0x80];
                k.extend_from_slice(format!("-{i}").as_bytes());
                k
            } else {
                format!("{tag}-key-{i}").into_bytes()
            };
            let value = format!("{tag}:{i};").repeat(i % 40).into_bytes();
            (key, value)
        })
        .collect()
}

/// The same entries, as a Python expression.
const PY_ENTRIES: &str = r#"
def entries(n, tag):
    out = {}
    for i in range(n):
        if i % 3 == 0:
            k = bytes([i % 256, i * 7 % 256, 0xff, 0x80]) + b"-%d" % i
        else:
            k = ("%s-key-%d" % (tag, i)).encode()
        out[k] = (("%s:%d;" % (tag, i)) * (i % 40)).encode()
    return out
"#;

/// Every entry of the GDBM file, as CPython reads it: `hexkey hexvalue`
/// lines, and `dbm.whichdb`'s answer first.
const PY_DUMP: &str = r#"
import dbm, dbm.gnu, sys
print(dbm.whichdb(sys.argv[1]))
db = dbm.gnu.open(sys.argv[1], "r")
k = db.firstkey()
while k is not None:
    print(k.hex(), db[k].hex())
    k = db.nextkey(k)
db.close()
"#;

fn python_dump(path: &Path) -> (String, BTreeMap<Vec<u8>, Vec<u8>>) {
    let out = python(PY_DUMP, &[path_str(path)]).unwrap_or_else(|e| panic!("CPython reads back: {e}"));
    let mut lines = out.lines();
    let which = lines.next().unwrap_or_default().to_owned();
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    };
    let map = lines
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (unhex(k), unhex(v))
        })
        .collect();
    (which, map)
}

fn contents(b: &GnuBackend) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let map: BTreeMap<_, _> = b.iter().expect("iter").map(|r| r.expect("entry")).collect();
    assert_eq!(map.len(), b.len().unwrap(), "len agrees with the listing");
    map
}

fn open(path: &Path, flag: Flag) -> GnuBackend {
    GnuBackend::open(path, &BackendOptions::with_flag(flag)).unwrap_or_else(|e| panic!("open {flag}: {e}"))
}

/// libgdbm's own structural walk: `gdbmtool recover force` on a copy
/// reads every bucket and key with libgdbm's checks; none may fail.
fn gdbmtool_recovers_all(path: &Path, keys: usize) {
    let copy = path.with_extension("recover-copy");
    std::fs::copy(path, &copy).unwrap();
    let out = match Command::new("gdbmtool").arg(&copy).args(["recover", "force", "summary"]).output() {
        Ok(out) => out,
        Err(e) => return skip("gdbmtool_recovers_all", "gnu", &format!("no gdbmtool: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&format!("Keys recovered: {keys}, failed: 0, duplicate: 0")), "{text}");
    assert!(text.contains("Buckets recovered:") && text.contains("failed: 0\n"), "{text}");
    let _ = std::fs::remove_file(&copy);
    let _ = std::fs::remove_file(path.with_extension("recover-copy~"));
}

/// Python writes with dbm.gnu; shelf reads, changes, and Python reads
/// the result back; `whichdb` still says dbm.gnu.
fn round_trip(n: usize) {
    let case = format!("gnu_round_trip_{n}");
    if !have_gnu(&case) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.gdbm");
    let script = format!(
        "{PY_ENTRIES}\nimport dbm.gnu, sys\ndb = dbm.gnu.open(sys.argv[1], 'n')\nfor k, v in entries({n}, 'py').items():\n    db[k] = v\ndb.close()\n"
    );
    python(&script, &[path_str(&path)]).unwrap();
    let mut want = entries(n, "py");

    let mut b = open(&path, Flag::Write);
    assert_eq!(contents(&b), want, "shelf reads what CPython wrote");
    let report = b.check(false).unwrap();
    assert!(report.is_clean(), "check on CPython's file: {:?}", report.problems);
    assert_eq!(report.good_entries, want.len() as u64);
    for (k, v) in &want {
        assert_eq!(b.get(k).unwrap().as_ref(), Some(v));
    }
    // Changes of every kind: new keys (enough to split buckets and grow
    // the directory), overwrites shorter and longer, removes.
    for (k, v) in entries(n, "rs") {
        b.insert(&k, &v).unwrap();
        want.insert(k, v);
    }
    let keys: Vec<Vec<u8>> = want.keys().cloned().collect();
    for (i, k) in keys.iter().enumerate() {
        match i % 5 {
            0 => {
                assert!(b.remove(k).unwrap());
                want.remove(k);
            }
            1 => {
                let v = vec![b'x'; i % 700];
                b.insert(k, &v).unwrap();
                want.insert(k.clone(), v);
            }
            _ => {}
        }
    }
    b.close().unwrap();
    drop(b);

    gdbmtool_recovers_all(&path, want.len());
    let (which, got) = python_dump(&path);
    assert_eq!(which, "dbm.gnu", "CPython's whichdb after shelf wrote");
    assert_eq!(got.len(), want.len(), "CPython counts what shelf left");
    assert!(got == want, "CPython reads back what shelf wrote");

    // CPython writes on top (reusing the space shelf freed) and
    // reorganizes; shelf reads the result.
    let script = format!(
        "{PY_ENTRIES}\nimport dbm.gnu, sys\ndb = dbm.gnu.open(sys.argv[1], 'w')\nfor k, v in entries({n}, 'py2').items():\n    db[k] = v\ndb.reorganize()\ndb.close()\n"
    );
    python(&script, &[path_str(&path)]).unwrap();
    want.extend(entries(n, "py2"));
    let mut b = open(&path, Flag::Read);
    assert!(contents(&b) == want, "shelf reads CPython's later writes and reorganize");
    let report = b.check(false).unwrap();
    assert!(report.is_clean(), "check after CPython's reorganize: {:?}", report.problems);
}

#[test]
fn cpython_and_shelf_share_a_gnu_file() {
    round_trip(300);
}

#[test]
fn twenty_thousand_keys_from_cpython() {
    round_trip(20_000);
}

#[test]
fn twenty_thousand_keys_from_shelf() {
    if !have_gnu("twenty_thousand_keys_from_shelf") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let want = entries(20_000, "rs");
    let mut b = open(&path, Flag::Create);
    for (k, v) in &want {
        b.insert(k, v).unwrap();
    }
    b.flush().unwrap();
    // A compaction is GDBM's reorganize: the result must read too.
    b.compact().unwrap();
    b.close().unwrap();
    drop(b);
    gdbmtool_recovers_all(&path, want.len());
    let (which, got) = python_dump(&path);
    assert_eq!(which, "dbm.gnu");
    assert!(got == want, "CPython reads 20,000 keys shelf wrote ({} of {})", got.len(), want.len());
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("new.db")], "a closed gnu shelf is its one file");
}

#[test]
fn shelve_shelves_open_with_pickle_both_ways() {
    if !have_gnu("shelve_shelves_open_with_pickle_both_ways") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let explicit = dir.path().join("explicit");
    let plain = dir.path().join("plain");
    let script = r#"
import dbm, dbm.gnu, shelve, sys
with shelve.Shelf(dbm.gnu.open(sys.argv[1], "c")) as s:
    s["apples"] = {"count": 3, "tags": ("red", "sweet")}
    s["n"] = 12345678901234567890
with shelve.open(sys.argv[2]) as s:          # the default dbm: gnu here
    s["apples"] = [1, 2.5, None, b"raw"]
print(dbm.whichdb(sys.argv[2]))
"#;
    let out = python(script, &[path_str(&explicit), path_str(&plain)]).unwrap();
    assert_eq!(out.trim(), "dbm.gnu", "plain shelve.open made a gnu shelf");
    let explicit_apples = Value::Dict(vec![
        (Value::from("count"), Value::from(3i64)),
        (Value::from("tags"), Value::Tuple(vec![Value::from("red"), Value::from("sweet")])),
    ]);
    let plain_apples =
        Value::List(vec![Value::from(1i64), Value::Float(2.5), Value::None, Value::Bytes(b"raw".to_vec())]);
    for (path, want) in [(&explicit, explicit_apples), (&plain, plain_apples)] {
        assert_eq!(shelf::whichdb(path), shelf::WhichDb::Backend("gnu"), "{}", path.display());
        let mut db = shelf::open(path).unwrap_or_else(|e| panic!("shelf opens {}: {e}", path.display()));
        let apples: Value = db.get("apples").unwrap().expect("written by CPython");
        assert_eq!(apples, want, "{}", path.display());
        db.insert("pears", &Value::List(vec![Value::from("green"), Value::from(5i64)])).unwrap();
        db.close().unwrap();
    }
    let check = r#"
import dbm, shelve, sys
with shelve.open(sys.argv[1], "r") as s:
    assert s["apples"] == {"count": 3, "tags": ("red", "sweet")}, s["apples"]
    assert s["n"] == 12345678901234567890
    assert s["pears"] == ["green", 5], s["pears"]
with shelve.open(sys.argv[2], "r") as s:
    assert s["apples"] == [1, 2.5, None, b"raw"]
    assert s["pears"] == ["green", 5]
print(dbm.whichdb(sys.argv[1]), dbm.whichdb(sys.argv[2]))
"#;
    let out = python(check, &[path_str(&explicit), path_str(&plain)]).unwrap();
    assert_eq!(out.trim(), "dbm.gnu dbm.gnu");
}

/// A CPython process that holds the file open as a writer until told to
/// close it.
const PY_HOLD: &str = r#"
import dbm.gnu, sys
db = dbm.gnu.open(sys.argv[1], sys.argv[2])
print("open", flush=True)
sys.stdin.readline()
db.close()
"#;

#[test]
fn cpython_and_shelf_writers_exclude_each_other() {
    if !have_gnu("cpython_and_shelf_writers_exclude_each_other") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked");
    let mut b = open(&path, Flag::Create);
    b.insert(b"k", b"v").unwrap();
    b.flush().unwrap();
    // shelf holds it: CPython cannot open it, to write or to read.
    for flag in ["w", "r"] {
        let err =
            python("import dbm.gnu, sys; dbm.gnu.open(sys.argv[1], sys.argv[2])", &[path_str(&path), flag])
                .expect_err("CPython opened a file a shelf writer holds");
        assert!(err.contains("Resource temporarily unavailable") || err.contains("lock"), "{err}");
    }
    b.close().unwrap();
    drop(b);

    for (py_flag, shelf_flag) in [("w", Flag::Write), ("r", Flag::Write), ("w", Flag::Read)] {
        let mut child = Command::new(PYTHON)
            .arg("-c")
            .arg(PY_HOLD)
            .args([path_str(&path), py_flag])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "open");
        let mut options = BackendOptions::with_flag(shelf_flag);
        options.lock_timeout = Some(Duration::from_millis(100));
        match GnuBackend::open(&path, &options) {
            Err(OpenError::Locked { .. }) => {}
            other => panic!("CPython holds it ({py_flag}), shelf opened {shelf_flag}: {other:?}"),
        }
        child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
        assert!(child.wait().unwrap().success());
    }
    // Readers share.
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(PY_HOLD)
        .args([path_str(&path), "r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let r = open(&path, Flag::Read);
    assert_eq!(r.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    assert!(child.wait().unwrap().success());
}

/// The numsync (extended) variant, made by `gdbmtool upgrade` from a file
/// CPython wrote: shelf reads and writes it in its own variant, keeps its
/// sync counter counting, and CPython's libgdbm reads it back.
#[test]
fn numsync_files_stay_numsync() {
    if !have_gnu("numsync_files_stay_numsync") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("numsync.db");
    let script = format!(
        "{PY_ENTRIES}\nimport dbm.gnu, sys\ndb = dbm.gnu.open(sys.argv[1], 'n')\nfor k, v in entries(500, 'py').items():\n    db[k] = v\ndb.close()\n"
    );
    python(&script, &[path_str(&path)]).unwrap();
    match Command::new("gdbmtool").arg(&path).arg("upgrade").output() {
        Ok(out) if out.status.success() => {}
        other => return skip("numsync_files_stay_numsync", "gnu", &format!("gdbmtool upgrade: {other:?}")),
    }
    let magic = |p: &Path| std::fs::read(p).unwrap()[..4].to_vec();
    let numsync = |p: &Path| u32::from_le_bytes(std::fs::read(p).unwrap()[44..48].try_into().unwrap());
    assert_eq!(magic(&path), 0x1357_9ad1u32.to_le_bytes());
    let before = numsync(&path);
    let mut want = entries(500, "py");
    let mut b = open(&path, Flag::Write);
    assert_eq!(contents(&b), want);
    for (k, v) in entries(300, "rs") {
        b.insert(&k, &v).unwrap();
        want.insert(k, v);
    }
    b.close().unwrap();
    drop(b);
    assert_eq!(magic(&path), 0x1357_9ad1u32.to_le_bytes(), "still the numsync variant");
    assert_eq!(numsync(&path), before.wrapping_add(1), "one commit counted");
    let script = "import dbm.gnu, sys\ndb = dbm.gnu.open(sys.argv[1], 'r')\nprint(len(db.keys()))\n";
    let out = python(script, &[path_str(&path)]).unwrap();
    assert_eq!(out.trim(), want.len().to_string(), "CPython's libgdbm reads the numsync file shelf wrote");
}
