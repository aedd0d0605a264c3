//! The `dir` backend touches only what is its own (issue 10): folders it
//! did not make are never taken, written or emptied; nothing outside its
//! root is read or written whatever symlinks are planted inside; its
//! marker, commit number and temporary files live inside the root.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use backend_dir::{DirBackend, MARKER};
use shelf::raw::{BackendOptions, OpenBackend, Probe};
use shelf::{BatchOp, Error, Flag, KvBackend, OpenError, OpenOptions, Protocol, WhichDb};
use shelf_tests::Collected;
use shelf_tests::Scratch;
use shelf_tests::python::Python;

/// One entry of a tree, as compared before and after: kind, mode, and the
/// content (a symlink's target, a file's bytes).
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(PathBuf),
    Other(u32),
}

/// Every path below `root` (and `root` itself), never following symlinks.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let entry = if m.file_type().is_symlink() {
            Entry::Symlink(std::fs::read_link(&p).unwrap())
        } else if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            Entry::Dir(m.mode())
        } else if m.is_file() {
            Entry::File(m.mode(), std::fs::read(&p).unwrap())
        } else {
            Entry::Other(m.mode())
        };
        out.insert(p, entry);
    }
    out
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn plain_folder(root: &Path) {
    write(&root.join("notes.txt"), b"remember the milk\n");
    write(&root.join("src/main.rs"), b"fn main() {}\n");
}

/// A Git checkout: real `git init` when git is there, else its files.
fn git_checkout(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    let ran = Command::new("git").args(["init", "-q"]).current_dir(root).status();
    if !ran.is_ok_and(|s| s.success()) {
        eprintln!("git_checkout: git cannot be run, building .git by hand");
        write(&root.join(".git/HEAD"), b"ref: refs/heads/main\n");
        write(&root.join(".git/config"), b"[core]\n\trepositoryformatversion = 0\n");
        write(&root.join(".git/objects/info/packs"), b"");
        std::fs::create_dir_all(root.join(".git/refs/heads")).unwrap();
    }
    write(&root.join("README.md"), b"# project\n");
}

/// What sled leaves: `conf`, `db`, `blobs/` (here without being sled).
fn sled_like(root: &Path) {
    write(&root.join("conf"), b"segment_size: 524288\nuse_compression: false\n");
    write(&root.join("db"), &[0u8; 4096]);
    std::fs::create_dir_all(root.join("blobs")).unwrap();
}

/// A pickle of protocol 2, as pickleshare writes: `pickle.dumps(15, 2)`.
const PICKLED_15: &[u8] = b"\x80\x02K\x0f.";

fn backend_open(path: &Path, flag: Flag) -> Result<DirBackend, OpenError> {
    DirBackend::open(path, &BackendOptions::with_flag(flag))
}

fn assert_escape<T: std::fmt::Debug>(what: &str, key: &str, res: Result<T, Error>) {
    match res {
        Err(Error::InvalidKey { key: k, reason }) => {
            assert_eq!(k, key, "{what}: the error names the key");
            assert!(reason.contains("outside the root"), "{what}: {reason}");
        }
        other => panic!("{what} {key:?}: expected InvalidKey (leads outside), got {other:?}"),
    }
}

#[test]
fn folders_shelf_did_not_make_are_never_taken_or_touched() {
    type Maker = fn(&Path);
    let cases: [(&str, Maker); 3] =
        [("plain folder", plain_folder), ("git checkout", git_checkout), ("sled-like directory", sled_like)];
    for (what, make) in cases {
        let scratch = Scratch::new();
        make(&scratch.path);
        let before = snapshot(scratch.dir.path());
        assert_eq!(DirBackend::probe(&scratch.path), Probe::Foreign, "{what}");
        assert_ne!(shelf::whichdb(&scratch.path), WhichDb::Backend("dir"), "{what}");
        for flag in [Flag::Read, Flag::Write, Flag::Create, Flag::New] {
            let res = OpenOptions::new().backend("dir").flag(flag).open(&scratch.path).map(|_| ());
            assert!(res.is_err(), "{what}: --backend dir --flag {flag} opened it");
            match backend_open(&scratch.path, flag) {
                Err(OpenError::Undetectable { path }) => assert_eq!(path, scratch.path),
                other => panic!("{what}: flag {flag}: expected Undetectable, got {:?}", other.map(|_| ())),
            }
            let res = OpenOptions::new().flag(flag).open(&scratch.path).map(|_| ());
            assert!(
                what == "sled-like directory" || res.is_err(),
                "{what}: flag {flag} opened it with a detected backend"
            );
        }
        assert_eq!(snapshot(scratch.dir.path()), before, "{what}: the tree changed");
    }
}

#[test]
fn a_pickle_dir_with_one_other_file_is_foreign() {
    let scratch = Scratch::new();
    write(&scratch.path.join("a"), PICKLED_15);
    write(&scratch.path.join("deep/b"), PICKLED_15);
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Mine, "only pickles: a pickleshare directory");
    for (name, bytes) in [("notes.txt", &b"text"[..]), ("deep/x.json", b"{\"a\": 1}"), ("torn", b"\x80\x02K")]
    {
        let extra = scratch.path.join(name);
        write(&extra, bytes);
        assert_eq!(DirBackend::probe(&scratch.path), Probe::Foreign, "with {name}");
        std::fs::remove_file(&extra).unwrap();
    }
    symlink(scratch.path.join("a"), scratch.path.join("lnk")).unwrap();
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Foreign, "a symlink is not pickleshare's");
}

#[test]
fn a_file_is_foreign_and_nothing_is_absent() {
    let scratch = Scratch::new();
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Absent);
    write(&scratch.path, PICKLED_15);
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Foreign);
}

#[test]
fn an_empty_directory_is_absent_and_adopted_by_c() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path.join("empty/nested")).unwrap();
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Absent);
    for flag in [Flag::Read, Flag::Write] {
        match backend_open(&scratch.path, flag) {
            Err(OpenError::NotFound { .. }) => {}
            other => panic!("flag {flag}: expected NotFound, got {:?}", other.map(|_| ())),
        }
    }
    assert!(!scratch.path.join(MARKER).exists(), "r and w write nothing");
    let mut db = OpenOptions::new().backend("dir").flag(Flag::Create).open(&scratch.path).unwrap();
    db.insert("k", &1i64).unwrap();
    db.close().unwrap();
    assert!(scratch.path.join(MARKER).is_file());
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Mine);
}

#[test]
fn a_shelf_directory_is_mine_by_its_marker_with_any_protocol() {
    let scratch = Scratch::new();
    let mut db = OpenOptions::new().backend("dir").protocol(Protocol::Json).open(&scratch.path).unwrap();
    db.insert("a/b", &vec![1, 2]).unwrap();
    db.insert("c", &"text").unwrap();
    db.close().unwrap();
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Mine);
    assert_eq!(shelf::whichdb(&scratch.path), WhichDb::Backend("dir"));
    let db = OpenOptions::new().flag(Flag::Read).protocol(Protocol::Json).open(&scratch.path).unwrap();
    assert_eq!(db.keys().collected().unwrap(), ["a/b", "c"], "the marker is no key");
    // Without the marker the same directory is a folder of JSON files.
    drop(db);
    std::fs::remove_file(scratch.path.join(MARKER)).unwrap();
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Foreign);
}

#[test]
fn flag_n_removes_key_files_only() {
    let scratch = Scratch::new();
    let outside = scratch.dir.path().join("outside");
    write(&outside.join("keep"), b"outside");
    let mut db = backend_open(&scratch.path, Flag::Create).unwrap();
    db.insert(b"k", b"v").unwrap();
    db.insert(b"sub/k", b"v").unwrap();
    db.close().unwrap();
    symlink(&outside, scratch.path.join("lnk")).unwrap();
    symlink(outside.join("keep"), scratch.path.join("lnk_file")).unwrap();
    let outside_before = snapshot(&outside);
    let mut db = backend_open(&scratch.path, Flag::New).unwrap();
    assert_eq!(db.len().unwrap(), 0);
    db.close().unwrap();
    assert!(scratch.path.join(MARKER).is_file(), "the marker stays");
    assert!(scratch.path.join("lnk").symlink_metadata().is_ok(), "a symlink is no key file");
    assert!(scratch.path.join("lnk_file").symlink_metadata().is_ok(), "a symlink is no key file");
    assert!(!scratch.path.join("k").exists() && !scratch.path.join("sub/k").exists());
    assert_eq!(snapshot(&outside), outside_before);
}

#[test]
fn symlinks_planted_inside_never_reach_outside() {
    let scratch = Scratch::new();
    let outside = scratch.dir.path().join("outside");
    write(&outside.join("inner"), b"outside secret inner");
    write(&outside.join("file"), b"outside secret file");
    let mut db = backend_open(&scratch.path, Flag::Create).unwrap();
    db.insert(b"inside", b"\x80\x02K\x01.").unwrap();
    db.flush().unwrap();
    symlink(&outside, scratch.path.join("lnk")).unwrap();
    symlink(outside.join("file"), scratch.path.join("lnk_file")).unwrap();
    symlink("../outside", scratch.path.join("rel")).unwrap();
    symlink("inside", scratch.path.join("alias")).unwrap();
    let outside_before = snapshot(&outside);

    assert_escape("insert", "lnk/x", db.insert(b"lnk/x", b"v"));
    assert_escape("insert", "rel/x", db.insert(b"rel/x", b"v"));
    assert_escape("insert", "lnk/new/deep", db.insert(b"lnk/new/deep", b"v"));
    assert_escape("insert", "lnk_file", db.insert(b"lnk_file", b"v"));
    assert_escape("remove", "lnk/inner", db.remove(b"lnk/inner"));
    assert_escape("remove", "rel/inner", db.remove(b"rel/inner"));
    assert_escape("get", "lnk_file", db.get(b"lnk_file"));
    assert_escape("get", "lnk/inner", db.get(b"lnk/inner"));
    assert_escape("contains", "lnk_file", db.contains(b"lnk_file"));
    let batch = [BatchOp::Insert(b"ok", b"1"), BatchOp::Insert(b"lnk/batch", b"2")];
    assert_escape("apply_batch", "lnk/batch", db.apply_batch(&batch));
    assert_escape("apply_batch", "lnk/inner", db.apply_batch(&[BatchOp::Remove(b"lnk/inner")]));

    // A symlink that stays inside is followed, as pickleshare does.
    assert_eq!(db.get(b"alias").unwrap().as_deref(), Some(&b"\x80\x02K\x01."[..]));
    // Listings never follow a symlink, and never return outside content.
    let keys = db.keys().collected().unwrap();
    assert_eq!(keys, vec![b"inside".to_vec(), b"ok".to_vec()]);
    for item in db.iter().unwrap() {
        let (k, v) = item.unwrap();
        assert!(!String::from_utf8_lossy(&v).contains("outside secret"), "{k:?}");
    }
    db.flush().unwrap();
    db.close().unwrap();
    drop(db);
    let db = backend_open(&scratch.path, Flag::New).unwrap();
    drop(db);
    assert_eq!(snapshot(&outside), outside_before, "something outside the root changed");

    // The same through the shelf and the registry.
    let mut s = OpenOptions::new().backend("dir").open(&scratch.path).unwrap();
    assert!(matches!(s.insert("lnk/x", &1i64), Err(Error::InvalidKey { .. })));
    assert!(matches!(s.get::<Vec<u8>>("lnk_file"), Err(Error::InvalidKey { .. })));
    s.close().unwrap();
    assert_eq!(snapshot(&outside), outside_before, "something outside the root changed");
}

#[test]
fn commit_number_grows_inside_the_root() {
    let scratch = Scratch::new();
    let mut db = backend_open(&scratch.path, Flag::Create).unwrap();
    let first = db.commit_number().unwrap();
    db.insert(b"k", b"1").unwrap();
    db.flush().unwrap();
    db.insert(b"k", b"2").unwrap();
    db.flush().unwrap();
    assert_eq!(db.commit_number().unwrap(), first + 2);
    db.close().unwrap();
    let names: Vec<_> =
        std::fs::read_dir(scratch.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["db"], "nothing beside the root (no db.shelf-commit)");
    let marker = std::fs::read(scratch.path.join(MARKER)).unwrap();
    assert_eq!(marker.len(), 14);
    if let Some(py) = Python::default_or_skip("commit_number_grows_inside_the_root (python part)") {
        let out = py
            .run(
                "import pickle, sys\nprint(pickle.load(open(sys.argv[1], 'rb')))",
                &[scratch.path.join(MARKER).to_str().unwrap()],
            )
            .unwrap();
        assert_eq!(out.trim(), (first + 2).to_string(), "the marker is the pickled commit number");
    }
}

#[test]
fn a_legacy_commit_file_is_migrated_into_the_marker() {
    let scratch = Scratch::new();
    // An older shelf's directory with JSON values and the counter beside
    // the root: not proof enough (older versions left that file beside any
    // folder they were pointed at), so it stays unclaimed.
    write(&scratch.path.join("k"), b"[1, 2]");
    let legacy = scratch.dir.path().join("db.shelf-commit");
    std::fs::write(&legacy, 41u64.to_le_bytes()).unwrap();
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Foreign, "the legacy file alone is no proof");
    // With pickled values (pickleshare's own rule) it is a database, and the
    // count moves inside at the first writable open.
    write(&scratch.path.join("k"), b"\x80\x02K\x01.");
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Mine);
    let db = backend_open(&scratch.path, Flag::Read).unwrap();
    assert_eq!(db.commit_number().unwrap(), 41);
    drop(db);
    assert!(legacy.exists() && !scratch.path.join(MARKER).exists(), "a read-only open writes nothing");
    let mut db = backend_open(&scratch.path, Flag::Write).unwrap();
    assert!(!legacy.exists(), "migrated");
    assert_eq!(db.commit_number().unwrap(), 41);
    db.insert(b"k2", b"x").unwrap();
    db.flush().unwrap();
    assert_eq!(db.commit_number().unwrap(), 42);
    db.close().unwrap();
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Mine);
}

#[test]
fn stale_temporary_files_are_removed_at_a_writable_open() {
    let scratch = Scratch::new();
    let mut db = backend_open(&scratch.path, Flag::Create).unwrap();
    db.insert(b"k", b"v").unwrap();
    db.close().unwrap();
    drop(db);
    // A pid that is surely gone: a child that has exited and been reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let me = std::process::id();
    let root = &scratch.path;
    let dead_tmp = root.join(format!(".shelf-{dead}-0.tmp"));
    let old_tmp = root.join(format!(".shelf-{me}-999999.tmp"));
    let fresh_tmp = root.join(format!(".shelf-{me}-999998.tmp"));
    let locked_tmp = root.join(format!(".shelf-{dead}-1.tmp"));
    let not_ours = [root.join(".shelf-notes.tmp"), root.join(format!(".shelf-{dead}-0.tmp.bak"))];
    for p in [&dead_tmp, &old_tmp, &fresh_tmp, &locked_tmp].into_iter().chain(&not_ours) {
        write(p, b"half a value");
    }
    std::fs::File::options()
        .write(true)
        .open(&old_tmp)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let held = std::fs::File::open(&locked_tmp).unwrap();
    held.lock().unwrap();

    drop(backend_open(root, Flag::Read).unwrap());
    assert!(dead_tmp.exists(), "a read-only open removes nothing");
    let db = backend_open(root, Flag::Write).unwrap();
    assert!(!dead_tmp.exists(), "its writer is dead");
    assert!(!old_tmp.exists(), "unlocked and two hours old (a reused pid)");
    assert!(fresh_tmp.exists(), "a live writer's, made a moment ago");
    assert!(locked_tmp.exists(), "locked: a writer is at work");
    for p in &not_ours {
        assert!(p.exists(), "{} is no exact match of the pattern", p.display());
    }
    drop(db);
    drop(held);
}

#[test]
fn iteration_reports_unreadable_keys_and_skips_removed_ones() {
    let scratch = Scratch::new();
    let mut db = backend_open(&scratch.path, Flag::Create).unwrap();
    for k in [&b"a"[..], b"b", b"c"] {
        db.insert(k, k).unwrap();
    }
    // Removed by another process between the listing and the read: skipped.
    let mut it = db.iter().unwrap();
    std::fs::remove_file(scratch.path.join("b")).unwrap();
    let got: Vec<_> = it.by_ref().map(|r| r.unwrap().0).collect();
    assert_eq!(got, vec![b"a".to_vec(), b"c".to_vec()]);
    drop(it);

    let locked = scratch.path.join("c");
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    if std::fs::read(&locked).is_ok() {
        shelf_tests::skip(
            "iteration_reports_unreadable_keys (EACCES part)",
            "dir",
            "running as root: mode 000 does not stop reads",
        );
        return;
    }
    let res: Result<Vec<_>, _> = db.iter().unwrap().collect();
    match res {
        Err(Error::Io { path, .. }) => assert_eq!(path, locked),
        other => panic!("expected an i/o error naming {}, got {other:?}", locked.display()),
    }
}

#[test]
fn pickleshare_directories_are_still_detected() {
    let Some(py) = Python::default_or_skip("pickleshare_directories_are_still_detected") else { return };
    if let Err(e) = py.run("import pickleshare", &[]) {
        shelf_tests::skip(
            "pickleshare_directories_are_still_detected",
            "dir",
            &format!("no pickleshare: {e}"),
        );
        return;
    }
    let scratch = Scratch::new();
    let script = "import sys\nfrom pickleshare import PickleShareDB\ndb = PickleShareDB(sys.argv[1])\n\
                  db['hello'] = 15\ndb['paths/are/ok/key'] = [1, (5, 46)]\ndb['s'] = 'text'\n";
    py.run(script, &[scratch.path.to_str().unwrap()]).unwrap();
    assert_eq!(DirBackend::probe(&scratch.path), Probe::Mine);
    assert_eq!(shelf::whichdb(&scratch.path), WhichDb::Backend("dir"));
    let before = snapshot(scratch.dir.path());
    let db = OpenOptions::new().flag(Flag::Read).open(&scratch.path).unwrap();
    assert_eq!(db.get::<i64>("hello").unwrap(), Some(15));
    drop(db);
    assert_eq!(snapshot(scratch.dir.path()), before, "a read-only open writes nothing");
    let mut db = OpenOptions::new().flag(Flag::Write).open(&scratch.path).unwrap();
    db.insert("more", &2i64).unwrap();
    db.close().unwrap();
    assert!(scratch.path.join(MARKER).is_file(), "a writable open adopts the directory");
    // pickleshare sees the marker as one more key, an int it can read.
    let out = py
        .run(
            "import sys\nfrom pickleshare import PickleShareDB\ndb = PickleShareDB(sys.argv[1])\n\
             print(sorted(db.keys()), db['more'], type(db['.shelf-dir']).__name__)",
            &[scratch.path.to_str().unwrap()],
        )
        .unwrap();
    assert_eq!(out.trim(), "['.shelf-dir', 'hello', 'more', 'paths/are/ok/key', 's'] 2 int");
}

#[test]
fn the_marker_and_reserved_names_are_never_keys() {
    let scratch = Scratch::new();
    let mut db = backend_open(&scratch.path, Flag::Create).unwrap();
    for key in [MARKER, ".shelf-1-2.tmp", ".shelf-x/y", "a/.shelf-dir"] {
        match db.insert(key.as_bytes(), b"v") {
            Err(Error::InvalidKey { key: k, .. }) => assert_eq!(k, key),
            other => panic!("key {key:?}: expected InvalidKey, got {other:?}"),
        }
        assert!(matches!(db.remove(key.as_bytes()), Err(Error::InvalidKey { .. })), "{key}");
    }
    assert!(db.is_empty().unwrap(), "the marker is not listed");
    db.flush().unwrap();
    assert_eq!(std::fs::read(scratch.path.join(MARKER)).unwrap().len(), 14, "the marker is intact");
}

#[test]
fn a_damaged_marker_is_corruption_not_a_count() {
    let scratch = Scratch::new();
    backend_open(&scratch.path, Flag::Create).unwrap().close().unwrap();
    std::fs::write(scratch.path.join(MARKER), b"\x80\x02K\x01. and more bytes").unwrap();
    let db = backend_open(&scratch.path, Flag::Read).unwrap();
    assert!(matches!(db.commit_number(), Err(Error::Corrupted { .. })), "{:?}", db.commit_number());
    drop(db);
    match backend_open(&scratch.path, Flag::Write) {
        Err(OpenError::Corrupted { path, .. }) => assert_eq!(path, scratch.path.join(MARKER)),
        other => panic!("expected Corrupted naming the marker, got {:?}", other.map(|_| ())),
    }
}
