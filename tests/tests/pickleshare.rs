//! The `dir` backend against the real pickleshare 0.7.5, both ways, and the
//! pickleshare features across real processes.

use std::process::Command;
use std::time::Duration;

use shelf::{Flag, OpenOptions, Protocol, Value, WhichDb};
use shelf_tests::Collected;
use shelf_tests::Scratch;
use shelf_tests::python::Python;

const WORKER: &str = env!("CARGO_BIN_EXE_shelf-test-worker");

fn pickleshare_or_skip(case: &str) -> Option<Python> {
    let py = Python::default_or_skip(case)?;
    match py.run("import pickleshare; print(pickleshare.__version__)", &[]) {
        Ok(v) => {
            assert_eq!(v.trim(), "0.7.5", "the tests are written against pickleshare 0.7.5");
            Some(py)
        }
        Err(e) => {
            shelf_tests::skip(
                case,
                "pickleshare",
                &format!("cannot import pickleshare (pip install pickleshare): {e}"),
            );
            None
        }
    }
}

#[test]
fn pickleshare_writes_rust_reads() {
    let Some(py) = pickleshare_or_skip("pickleshare_writes_rust_reads") else { return };
    let scratch = Scratch::new();
    let script = "import sys\nfrom pickleshare import PickleShareDB\ndb = PickleShareDB(sys.argv[1])\n\
                  db['hello'] = 15\ndb['aku ankka'] = [1, 2, 313]\ndb['paths/are/ok/key'] = [1, (5, 46)]\n\
                  db['text'] = u'\\xe9\\u2603'\ndb['bytes'] = b'\\x00\\xff'\n";
    py.run(script, &[scratch.path.to_str().unwrap()]).unwrap();
    assert_eq!(shelf::whichdb(&scratch.path), WhichDb::Backend("dir"));
    let db = OpenOptions::new().flag(Flag::Read).open(&scratch.path).unwrap();
    assert_eq!(db.protocol().family(), "pickle", "a pickleshare directory opens with pickle by itself");
    let mut keys = db.keys().collected().unwrap();
    keys.sort();
    assert_eq!(keys, ["aku ankka", "bytes", "hello", "paths/are/ok/key", "text"]);
    assert_eq!(db.get::<i64>("hello").unwrap(), Some(15));
    assert_eq!(db.get::<Vec<i64>>("aku ankka").unwrap(), Some(vec![1, 2, 313]));
    assert_eq!(
        db.get::<Value>("paths/are/ok/key").unwrap(),
        Some(Value::List(vec![Value::Int(1), Value::Tuple(vec![Value::Int(5), Value::Int(46)])]))
    );
    assert_eq!(db.get::<String>("text").unwrap().as_deref(), Some("é☃"));
    assert_eq!(db.get::<Value>("bytes").unwrap(), Some(Value::Bytes(vec![0, 0xff])));
    assert_eq!(db.keys_matching("paths/*/ok/*").unwrap(), ["paths/are/ok/key"]);
}

#[test]
fn rust_writes_pickleshare_reads() {
    let Some(py) = pickleshare_or_skip("rust_writes_pickleshare_reads") else { return };
    let scratch = Scratch::new();
    let mut db = OpenOptions::new().backend("dir").protocol(Protocol::pickle()).open(&scratch.path).unwrap();
    db.insert("hello", &15i64).unwrap();
    db.insert("aku ankka", &vec![1i64, 2, 313]).unwrap();
    db.insert(
        "paths/are/ok/key",
        &Value::List(vec![Value::Int(1), Value::Tuple(vec![Value::Int(5), Value::Int(46)])]),
    )
    .unwrap();
    db.link("myobjects/test").insert("foo", &2i64).unwrap();
    db.close().unwrap();
    let script = "import sys\nfrom pickleshare import PickleShareDB\ndb = PickleShareDB(sys.argv[1])\n\
                  assert db['hello'] == 15\nassert db['aku ankka'] == [1, 2, 313]\n\
                  assert db['paths/are/ok/key'] == [1, (5, 46)]\n\
                  assert sorted(db.keys()) == ['.shelf-dir', 'aku ankka', 'hello', 'myobjects/test/foo', 'paths/are/ok/key'], db.keys()\n\
                  assert isinstance(db['.shelf-dir'], int), 'the marker is a pickled int (the commit number)'\n\
                  assert db.keys('paths/*') == [], db.keys('paths/*')\n\
                  lnk = db.getlink('myobjects/test')\nassert lnk.foo == 2\nprint('ok')\n";
    assert_eq!(py.run(script, &[scratch.path.to_str().unwrap()]).unwrap().trim(), "ok");
}

#[test]
fn keys_escaping_the_root_are_refused() {
    let scratch = Scratch::new();
    let mut db = OpenOptions::new().backend("dir").open(&scratch.path).unwrap();
    for bad in ["../escape", "/etc/passwd", "a/../../b", "nul\0byte", "", "a//b"] {
        match db.insert(bad, &1i64) {
            Err(shelf::Error::InvalidKey { key, .. }) => assert_eq!(key, bad),
            other => panic!("key {bad:?}: expected InvalidKey, got {other:?}"),
        }
    }
    assert!(!scratch.dir.path().join("escape").exists());
}

#[test]
fn four_processes_share_one_directory_without_torn_values() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(&scratch.path).unwrap();
    let n = 150;
    let children: Vec<_> = (0..4)
        .map(|id| {
            Command::new(WORKER)
                .args(["dir-mix", scratch.path.to_str().unwrap(), &id.to_string(), &n.to_string()])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a worker saw a torn value or failed (see its stderr)");
    }
    let db = OpenOptions::new().flag(Flag::Read).open(&scratch.path).unwrap();
    assert_eq!(db.keys_matching("p*/k*").unwrap().len(), 4 * n);
    assert_eq!(db.keys_matching("shared/*").unwrap().len(), 10);
    for key in db.keys().collected().unwrap() {
        let v: serde_bytes::ByteBuf = db.get(&key).unwrap().unwrap();
        assert!(v.len() == 64 * 1024 && v.iter().all(|b| *b == v[0]), "torn value at {key}");
    }
}

#[test]
fn wait_get_sees_another_process_write() {
    let scratch = Scratch::new();
    let db = OpenOptions::new().backend("dir").protocol(Protocol::pickle()).open(&scratch.path).unwrap();
    let mut child = Command::new(WORKER)
        .args(["write-later", "dir", scratch.path.to_str().unwrap(), "ready", "go", "300"])
        .spawn()
        .unwrap();
    let got: String = db.wait_get("ready", Duration::from_secs(20)).unwrap();
    assert_eq!(got, "go");
    assert!(child.wait().unwrap().success());
}

#[test]
fn hget_finds_what_another_process_hset() {
    let scratch = Scratch::new();
    let status = Command::new(WORKER)
        .args(["hset", "dir", scratch.path.to_str().unwrap(), "cat", "50"])
        .status()
        .unwrap();
    assert!(status.success());
    let db = OpenOptions::new().backend("dir").open(&scratch.path).unwrap();
    for i in 0..50i64 {
        assert_eq!(db.hget::<i64>("cat", &format!("k{i}"), true).unwrap(), Some(i), "k{i}");
    }
}

#[test]
fn commit_number_changes_when_another_process_commits() {
    let scratch = Scratch::new();
    let mut db = OpenOptions::new().backend("dir").open(&scratch.path).unwrap();
    db.insert("k", &1i64).unwrap();
    db.sync().unwrap();
    let before = db.commit_number().unwrap();
    let status = Command::new(WORKER)
        .args(["write-later", "dir", scratch.path.to_str().unwrap(), "other", "x", "0"])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(db.commit_number().unwrap() > before);
    assert!(db.contains_key("other").unwrap(), "the other process's write is visible at once");
}
