//! Ownership: a backend claims only what it can prove it wrote, probes are
//! mutually exclusive, and nothing that is not a database of the backend
//! asked for is ever written or removed, whatever the flag.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use shelf::raw::Probe;
use shelf::{Flag, OpenOptions, Protocol, WhichDb};
use shelf_tests::Scratch;

/// Every compiled-in backend that keeps data on disk.
fn persistent_backends() -> Vec<&'static shelf::BackendInfo> {
    shelf::backends().iter().filter(|b| b.name != "memory").collect()
}

/// Everything below `root` (which may be a file or a directory), as
/// relative path -> (kind, mode, content), symlinks not followed: two equal
/// snapshots mean nothing was created, removed or changed.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (char, u32, Vec<u8>)> {
    fn walk(base: &Path, p: &Path, out: &mut BTreeMap<PathBuf, (char, u32, Vec<u8>)>) {
        let Ok(m) = std::fs::symlink_metadata(p) else { return };
        let rel = p.strip_prefix(base).unwrap_or(p).to_owned();
        let mode = m.permissions().mode();
        if m.file_type().is_symlink() {
            let target = std::fs::read_link(p).unwrap_or_default();
            out.insert(rel, ('l', mode, target.into_os_string().into_encoded_bytes()));
        } else if m.is_dir() {
            out.insert(rel, ('d', mode, Vec::new()));
            let mut entries: Vec<_> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
            entries.sort();
            for e in entries {
                walk(base, &e, out);
            }
        } else {
            out.insert(rel, ('f', mode, std::fs::read(p).unwrap_or_default()));
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A folder a user keeps: text files, a subfolder, a hidden file.
fn plain_folder(at: &Path) {
    std::fs::create_dir_all(at.join("src")).unwrap();
    std::fs::write(at.join("notes.txt"), b"my notes\n").unwrap();
    std::fs::write(at.join("src/main.rs"), b"fn main() {}\n").unwrap();
    std::fs::write(at.join(".hidden"), b"secret\n").unwrap();
}

/// A Git checkout: the real thing where `git` is installed, else the files
/// `git init` makes.
fn git_checkout(at: &Path) {
    plain_folder(at);
    let made = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(at)
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        std::fs::create_dir_all(at.join(".git/objects/info")).unwrap();
        std::fs::create_dir_all(at.join(".git/refs/heads")).unwrap();
        std::fs::write(at.join(".git/HEAD"), b"ref: refs/heads/main\n").unwrap();
        std::fs::write(at.join(".git/config"), b"[core]\n\trepositoryformatversion = 0\n").unwrap();
    }
}

/// Tries the facade's detection and every backend with every flag on
/// `path`: each must fail, and nothing may change (the whole scratch folder
/// for detection; the path itself for backends named explicitly, since a
/// backend whose files sit beside the path, dumb's NAME.dat and NAME.dir,
/// may rightly create those).
fn nothing_touches(what: &str, scratch: &Path, path: &Path) {
    let before = snapshot(scratch);
    let found = shelf::whichdb(path);
    assert!(!matches!(found, WhichDb::Backend(_)), "{what}: whichdb took it for {found:?}");
    for flag in [Flag::Read, Flag::Write, Flag::Create, Flag::New] {
        let opened = OpenOptions::new().flag(flag).open(path);
        assert!(opened.is_err(), "{what}: detected open with flag {flag} succeeded");
    }
    assert_eq!(snapshot(scratch), before, "{what}: detection created, changed or removed something");
    let before = snapshot(path);
    for flag in [Flag::Read, Flag::Write, Flag::Create, Flag::New] {
        for info in persistent_backends().into_iter().filter(|i| (i.files)(path).iter().any(|f| f == path)) {
            let opened = OpenOptions::new().flag(flag).backend(info.name).open(path);
            assert!(opened.is_err(), "{what}: backend {} with flag {flag} opened it", info.name);
        }
    }
    assert_eq!(snapshot(path), before, "{what}: a backend created, changed or removed something");
}

#[test]
fn a_plain_folder_is_nobodys_database() {
    let scratch = Scratch::new();
    plain_folder(&scratch.path);
    for info in persistent_backends() {
        assert_ne!((info.probe)(&scratch.path), Probe::Mine, "{} claims a plain folder", info.name);
    }
    nothing_touches("a plain folder", scratch.dir.path(), &scratch.path);
}

#[test]
fn a_git_checkout_is_nobodys_database() {
    let scratch = Scratch::new();
    git_checkout(&scratch.path);
    for info in persistent_backends() {
        assert_ne!((info.probe)(&scratch.path), Probe::Mine, "{} claims a Git checkout", info.name);
    }
    nothing_touches("a Git checkout", scratch.dir.path(), &scratch.path);
}

#[test]
fn a_broken_sled_directory_is_nobodys_database() {
    if shelf::find_backend("sled").is_err() {
        shelf_tests::skip("a_broken_sled_directory_is_nobodys_database", "sled", "feature off");
        return;
    }
    for lost in ["conf", "db"] {
        let scratch = Scratch::new();
        let mut db = OpenOptions::new().backend("sled").protocol(Protocol::Json).open(&scratch.path).unwrap();
        db.insert("k", &1i64).unwrap();
        db.close().unwrap();
        drop(db);
        std::fs::remove_file(scratch.path.join(lost)).unwrap();
        for info in persistent_backends() {
            assert_ne!(
                (info.probe)(&scratch.path),
                Probe::Mine,
                "{} claims a sled directory without its {lost}",
                info.name
            );
        }
        nothing_touches(&format!("a sled directory without {lost}"), scratch.dir.path(), &scratch.path);
    }
}

#[test]
fn probes_are_mutually_exclusive() {
    for maker in persistent_backends() {
        for protocol in [Protocol::pickle(), Protocol::Json, Protocol::Bincode] {
            let scratch = Scratch::new();
            let mut db = OpenOptions::new()
                .backend(maker.name)
                .protocol(protocol)
                .open(&scratch.path)
                .unwrap_or_else(|e| panic!("{}: {e}", maker.name));
            db.insert("alpha", &shelf::Value::from("one")).unwrap();
            db.insert("beta", &shelf::Value::from(2i64)).unwrap();
            db.close().unwrap();
            drop(db);
            let claims: Vec<&str> = persistent_backends()
                .into_iter()
                .filter(|info| (info.probe)(&scratch.path) == Probe::Mine)
                .map(|info| info.name)
                .collect();
            assert_eq!(
                claims,
                [maker.name],
                "a {} database ({}) is claimed by {claims:?}",
                maker.name,
                protocol.name()
            );
            assert_eq!(shelf::whichdb(&scratch.path), WhichDb::Backend(maker.name));
        }
    }
}

#[test]
fn flag_n_never_replaces_another_backends_database() {
    for maker in persistent_backends() {
        let scratch = Scratch::new();
        let mut db =
            OpenOptions::new().backend(maker.name).protocol(Protocol::pickle()).open(&scratch.path).unwrap();
        db.insert("kept", &shelf::Value::from(1i64)).unwrap();
        db.close().unwrap();
        drop(db);
        let before = snapshot(scratch.dir.path());
        for other in persistent_backends().into_iter().filter(|o| o.name != maker.name) {
            let opened = OpenOptions::new().flag(Flag::New).backend(other.name).open(&scratch.path);
            assert!(opened.is_err(), "flag n with backend {} replaced a {} database", other.name, maker.name);
        }
        assert_eq!(snapshot(scratch.dir.path()), before, "a {} database was touched", maker.name);
    }
}
