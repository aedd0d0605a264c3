//! The contract rules about a database's files and the processes that open
//! it: locking, damage, `check(false)`, `stats` and the capabilities known
//! without opening. Each case is named after its MUST line in
//! `KvBackend`'s `# Contract`.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

use shelf::raw::BackendOptions;
use shelf::{Capabilities, Flag, KvBackend, OpenError};

use super::{open_fresh, reopen};
use crate::{Scratch, Subject, flag_options, skip};

/// How long a second writer waits for the first one's lock: short, so the
/// case is fast, and longer than the toolkit's grace period.
const SHORT_LOCK_TIMEOUT: Duration = Duration::from_millis(100);

/// Every regular file at or below `roots` (symlinks are not followed),
/// sorted: what "every file of a database" means for the cases below.
fn regular_files(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = roots.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if meta.is_dir() {
            let entries = std::fs::read_dir(&p).unwrap_or_else(|e| panic!("list {}: {e}", p.display()));
            stack.extend(entries.map(|e| e.expect("directory entry").path()));
        } else if meta.is_file() {
            out.push(p);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The bytes of every regular file at or below `roots`, by path.
fn snapshot(roots: &[PathBuf]) -> BTreeMap<PathBuf, Vec<u8>> {
    regular_files(roots)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// A database with a few entries, overwrites and removes (so engines that
/// log have superseded records), flushed and closed.
fn written_database<S: Subject>(s: &S) -> Scratch {
    let (scratch, mut b) = open_fresh(s);
    for i in 0..40u32 {
        let key = format!("key{i}");
        b.insert(key.as_bytes(), &vec![i as u8; 50 + 20 * i as usize]).unwrap();
    }
    for i in 0..10u32 {
        b.insert(format!("key{i}").as_bytes(), b"overwritten").unwrap();
        b.remove(format!("key{}", 39 - i).as_bytes()).unwrap();
    }
    b.flush().unwrap();
    b.close().unwrap();
    drop(b);
    scratch
}

/// Contract `second_writer_is_locked`.
pub fn second_writer_is_locked<S: Subject>(s: &S) {
    let (scratch, mut first) = open_fresh(s);
    let caps = first.capabilities();
    if !caps.persistent {
        return skip("second_writer_is_locked", s.name(), "not persistent: no path to open twice");
    }
    first.insert(b"first", b"1").unwrap();
    first.flush().unwrap();
    let mut options = flag_options(Flag::Write);
    options.lock_timeout = Some(SHORT_LOCK_TIMEOUT);
    if caps.multi_process {
        let mut second = s
            .open_backend(&scratch.path, &options)
            .unwrap_or_else(|e| panic!("{}: multi_process, yet a second writer failed: {e}", s.name()));
        assert_eq!(second.get(b"first").unwrap().as_deref(), Some(&b"1"[..]), "the second sees the first");
        second.insert(b"second", b"2").unwrap();
        second.flush().unwrap();
        assert_eq!(first.get(b"second").unwrap().as_deref(), Some(&b"2"[..]), "the first sees the second");
        second.close().unwrap();
        first.close().unwrap();
        return;
    }
    for flag in [Flag::Write, Flag::Create] {
        options.flag = flag;
        match s.open_backend(&scratch.path, &options) {
            Err(OpenError::Locked { .. }) => {}
            Err(other) => panic!("{}: a second writer (flag {flag}): expected Locked, got {other}", s.name()),
            Ok(_) => panic!("{}: a second writer (flag {flag}) opened beside the first", s.name()),
        }
    }
    // The refused writers changed nothing, and the lock goes with the first.
    first.insert(b"after", b"3").unwrap();
    first.close().unwrap();
    drop(first);
    let b = reopen(s, &scratch, Flag::Write);
    assert_eq!(b.get(b"first").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(b.get(b"after").unwrap().as_deref(), Some(&b"3"[..]));
}

/// New contents for a file, from its old contents and a seed.
type Damage = fn(&[u8], u64) -> Vec<u8>;

/// Ways of damaging a file, by name.
const DAMAGE: &[(&str, Damage)] = &[
    ("zeros", |old, _| vec![0; old.len().max(512)]),
    ("random bytes", |old, seed| crate::Rng(seed).bytes(old.len().max(512))),
    ("truncated to half", |old, _| old[..old.len() / 2].to_vec()),
];

/// Reads everything a backend will show, keeping errors as data: what a
/// damaged database must answer without panicking.
fn read_everything(b: &impl KvBackend) {
    let _ = b.len();
    let _ = b.is_empty();
    let _ = b.keys();
    if let Ok(iter) = b.iter() {
        // An iterator over damage may repeat an error forever: stop at a
        // bound well above what the database held.
        iter.take(1000).for_each(drop);
    }
    for i in 0..40u32 {
        let key = format!("key{i}");
        let _ = b.get(key.as_bytes());
        let _ = b.contains(key.as_bytes());
    }
    let _ = b.stats();
}

/// Contract `damaged_files_are_errors_not_panics`.
pub fn damaged_files_are_errors_not_panics<S: Subject>(s: &S) {
    let caps = s.static_capabilities();
    if !caps.persistent {
        return skip("damaged_files_are_errors_not_panics", s.name(), "not persistent: no files to damage");
    }
    if s.files(std::path::Path::new("db")).is_empty() {
        return skip(
            "damaged_files_are_errors_not_panics",
            s.name(),
            "a server keeps no files here: its bad replies and damaged keys are a table of their own",
        );
    }
    // Which damage and flag the body is at, for the failure message.
    let mut step = String::new();
    let body = || {
        let mut seed = 0x5eed;
        for (damage, make) in DAMAGE {
            for flag in [Flag::Read, Flag::Write, Flag::Create, Flag::New] {
                step = format!("files {damage}, flag {flag}");
                let scratch = written_database(s);
                let files = regular_files(&s.files(&scratch.path));
                assert!(!files.is_empty(), "{}: no files for a written database", s.name());
                for f in &files {
                    seed += 1;
                    let old = std::fs::read(f).unwrap();
                    std::fs::write(f, make(&old, seed)).unwrap();
                }
                let mut options = BackendOptions::with_flag(flag);
                options.lock_timeout = Some(SHORT_LOCK_TIMEOUT);
                // Opening may fail (that is the point) or succeed on what
                // survives; either way, reading must not panic.
                if let Ok(mut b) = s.open_backend(&scratch.path, &options) {
                    read_everything(&b);
                    if flag.is_writable() {
                        let _ = b.insert(b"new", b"value");
                        let _ = b.flush();
                    }
                    let _ = b.close();
                }
            }
        }
    };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(body)) {
        panic!(
            "{}: a damaged database ({step}) made the backend panic: {}",
            s.name(),
            shelf::raw::panic_message(&*payload)
        );
    }
}

/// Contract `check_false_changes_nothing`.
pub fn check_false_changes_nothing<S: Subject>(s: &S) {
    if !s.static_capabilities().check {
        return skip("check_false_changes_nothing", s.name(), "no check");
    }
    // A sound database, then one with a byte flipped in the middle of each
    // file (opened in salvage mode where the backend has one), where a
    // check that repairs would have something to change.
    for damaged in [false, true] {
        let scratch = written_database(s);
        if damaged {
            for f in regular_files(&s.files(&scratch.path)) {
                let mut bytes = std::fs::read(&f).unwrap();
                if let Some(mid) = bytes.len().checked_sub(1).map(|last| last / 2) {
                    bytes[mid] ^= 0x5a;
                }
                std::fs::write(&f, bytes).unwrap();
            }
        }
        let mut options = BackendOptions::with_flag(Flag::Write);
        options.salvage = damaged;
        let mut b = match s.open_backend(&scratch.path, &options) {
            Ok(b) => b,
            Err(e) if damaged => {
                skip("check_false_changes_nothing (damaged part)", s.name(), &format!("does not open: {e}"));
                continue;
            }
            Err(e) => panic!("{}: reopen: {e}", s.name()),
        };
        if !b.capabilities().check {
            continue;
        }
        // The whole scratch directory: a check must not add files either.
        let before = snapshot(&[scratch.dir.path().to_owned()]);
        let report = b.check(false);
        if !damaged {
            let report = report.unwrap_or_else(|e| panic!("{}: check of a sound database: {e}", s.name()));
            assert!(report.is_clean() && !report.repaired, "{}: {report:?}", s.name());
        } else if let Ok(report) = &report {
            assert!(!report.repaired, "{}: check(false) says it repaired: {report:?}", s.name());
        }
        let after = snapshot(&[scratch.dir.path().to_owned()]);
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert!(
            changed.is_empty(),
            "{}: check(false) on a {} database changed {changed:?}",
            s.name(),
            if damaged { "damaged" } else { "sound" }
        );
        let _ = b.close();
    }
}

/// Contract `stats_are_honest`.
pub fn stats_are_honest<S: Subject>(s: &S) {
    let (scratch, mut b) = open_fresh(s);
    let caps = b.capabilities();
    for i in 0..20u32 {
        b.insert(format!("key{i}").as_bytes(), &[i as u8; 300]).unwrap();
    }
    b.flush().unwrap();
    let stats = match b.stats() {
        Err(shelf::Error::Unsupported { .. }) => {
            return skip("stats_are_honest", s.name(), "stats unsupported");
        }
        other => other.unwrap_or_else(|e| panic!("{}: stats: {e}", s.name())),
    };
    let Some(bytes) = stats.bytes_on_disk else {
        assert!(
            stats.reclaimable_bytes.is_none(),
            "{}: reclaimable bytes of an unknown size: {stats:?}",
            s.name()
        );
        return skip("stats_are_honest (figures part)", s.name(), "sizes unknown (None)");
    };
    assert!(caps.persistent, "{}: not persistent, yet {bytes} bytes on disk", s.name());
    // The database's files, with any others stats names (a counter file
    // beside them): the figure may count those, and nothing else.
    let mut counted = s.files(&scratch.path);
    counted.extend(stats.files.iter().cloned());
    counted.sort();
    counted.dedup();
    let on_disk: u64 = regular_files(&counted)
        .iter()
        .map(|p| std::fs::symlink_metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(bytes > 0, "{}: a database of 20 entries counts 0 bytes on disk", s.name());
    assert!(bytes <= on_disk, "{}: stats counts {bytes} bytes, its files hold {on_disk}", s.name());
    if let Some(reclaimable) = stats.reclaimable_bytes {
        assert!(reclaimable <= bytes, "{}: {reclaimable} reclaimable of {bytes}", s.name());
    }
    for f in &stats.files {
        assert!(
            std::fs::symlink_metadata(f).is_ok(),
            "{}: stats names {}, which is not there",
            s.name(),
            f.display()
        );
    }
}

/// The capabilities on in `wide` but not in `narrow`.
fn wider(wide: &Capabilities, narrow: &Capabilities) -> Vec<&'static str> {
    wide.fields()
        .into_iter()
        .zip(narrow.fields())
        .filter(|((_, w), (_, n))| *w && !*n)
        .map(|((name, _), _)| name)
        .collect()
}

/// Contract `capabilities_match_the_registry`.
pub fn capabilities_match_the_registry<S: Subject>(s: &S) {
    let known = s.static_capabilities();
    if let Ok(info) = shelf::find_backend(s.name()) {
        assert_eq!(info.capabilities, known, "{}: the registry and the type disagree", s.name());
    }
    let (scratch, mut b) = open_fresh(s);
    let extra = wider(&b.capabilities(), &known);
    assert!(extra.is_empty(), "{}: an open handle claims {extra:?} beyond its static capabilities", s.name());
    b.insert(b"k", b"v").unwrap();
    b.close().unwrap();
    drop(b);
    // The other ways to open, where the backend takes them.
    let mut shared = flag_options(Flag::Write);
    shared.multi_process = true;
    for (what, options) in [("read-only", flag_options(Flag::Read)), ("multi_process", shared)] {
        if !known.persistent {
            break;
        }
        match s.open_backend(&scratch.path, &options) {
            Ok(mut b) => {
                let extra = wider(&b.capabilities(), &known);
                assert!(
                    extra.is_empty(),
                    "{}: a {what} handle claims {extra:?} beyond its static ones",
                    s.name()
                );
                b.close().unwrap();
            }
            Err(e) => skip("capabilities_match_the_registry", s.name(), &format!("a {what} open fails: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_walks_directories_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a"), b"1").unwrap();
        std::fs::write(root.join("sub/b"), b"2").unwrap();
        std::fs::write(dir.path().join("outside"), b"3").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("link")).unwrap();
        assert_eq!(regular_files(std::slice::from_ref(&root)), [root.join("a"), root.join("sub/b")]);
        assert_eq!(regular_files(&[dir.path().join("missing")]), Vec::<PathBuf>::new());
    }
}
