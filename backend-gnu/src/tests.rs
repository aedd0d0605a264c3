//! Unit tests of the engine: recovery from an interrupted commit, and
//! damage that must be an error, never a panic or a hang.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use shelf_core::raw::{BackendOptions, OpenBackend};
use shelf_core::{Flag, KvBackend};

use crate::{GnuBackend, journal};

fn open(path: &Path, flag: Flag) -> GnuBackend {
    GnuBackend::open(path, &BackendOptions::with_flag(flag)).unwrap()
}

fn contents(b: &GnuBackend) -> BTreeMap<Vec<u8>, Vec<u8>> {
    b.iter().unwrap().map(|r| r.unwrap()).collect()
}

fn fill(b: &mut GnuBackend, tag: &str, n: usize) {
    for i in 0..n {
        b.insert(format!("{tag}{i}").as_bytes(), format!("value {tag} {i}").repeat(i % 9).as_bytes())
            .unwrap();
    }
}

/// The state a commit killed after its writes and before removing its
/// journal leaves: the new bytes in the file, the journal of the old.
#[test]
fn an_interrupted_commit_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut b = open(&path, Flag::Create);
    fill(&mut b, "a", 400);
    b.close().unwrap();
    drop(b);
    let old = fs::read(&path).unwrap();
    let old_contents = contents(&open(&path, Flag::Read));

    let mut b = open(&path, Flag::Write);
    fill(&mut b, "b", 600);
    for i in 0..200 {
        b.remove(format!("a{i}").as_bytes()).unwrap();
    }
    b.close().unwrap();
    drop(b);
    let new = fs::read(&path).unwrap();
    assert!(new.len() > old.len());
    // The journal the commit wrote: every old byte it overwrote.
    let spans: Vec<(u64, Vec<u8>)> = (0..old.len())
        .step_by(512)
        .filter(|&at| old[at..(at + 512).min(old.len())] != new[at..(at + 512).min(old.len())])
        .map(|at| (at as u64, old[at..(at + 512).min(old.len())].to_vec()))
        .collect();
    assert!(!spans.is_empty());
    let file = fs::File::open(&path).unwrap();
    let id = journal::identity(&file).unwrap();
    let jpath = journal::path_of(&path);
    journal::write(&jpath, id, old.len() as u64, &spans, 0o644).unwrap();

    // A reader reads the old state through the journal, changing nothing.
    let r = open(&path, Flag::Read);
    assert_eq!(contents(&r), old_contents, "a reader sees the last commit");
    drop(r);
    assert!(jpath.exists(), "a reader leaves the journal");
    assert_eq!(fs::read(&path).unwrap(), new);

    // A writer rolls it back.
    let w = open(&path, Flag::Write);
    assert_eq!(contents(&w), old_contents);
    drop(w);
    assert!(!jpath.exists(), "the journal is gone once rolled back");
    assert_eq!(fs::read(&path).unwrap(), old, "byte for byte the last commit");

    // A torn journal is void: nothing of the database changed yet.
    journal::write(&jpath, id, old.len() as u64, &spans, 0o644).unwrap();
    let mut torn = fs::read(&jpath).unwrap();
    torn.truncate(torn.len() - 5);
    fs::write(&jpath, torn).unwrap();
    let w = open(&path, Flag::Write);
    assert_eq!(contents(&w), old_contents);
    drop(w);
    assert!(!jpath.exists());
    assert_eq!(fs::read(&path).unwrap(), old);
}

/// Reads everything, keeping errors as data.
fn read_everything(path: &Path) {
    let Ok(b) = GnuBackend::open(path, &BackendOptions::with_flag(Flag::Read)) else { return };
    let _ = b.len();
    let _ = b.keys();
    if let Ok(iter) = b.iter() {
        for item in iter.take(10_000) {
            let _ = item;
        }
    }
    for i in 0..50 {
        let _ = b.get(format!("a{i}").as_bytes());
    }
}

#[test]
fn flipped_bytes_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut b = open(&path, Flag::Create);
    fill(&mut b, "a", 500);
    b.close().unwrap();
    drop(b);
    let good = fs::read(&path).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // The header, the directory, the first bucket's start, and anywhere.
    for round in 0..200 {
        let mut bad = good.clone();
        let at = match round % 4 {
            0 => next() as usize % 128,
            1 => 4096 + next() as usize % 64,
            2 => 8192 + next() as usize % 256,
            _ => next() as usize % bad.len(),
        };
        bad[at] ^= 1 << (next() % 8);
        if round % 7 == 0 {
            bad[at] = 0xff;
        }
        fs::write(&path, &bad).unwrap();
        read_everything(&path);
        if let Ok(mut w) = GnuBackend::open(&path, &BackendOptions::with_flag(Flag::Write)) {
            let _ = w.check(false);
            let _ = w.insert(b"new", b"value");
            let _ = w.check(true);
        }
    }
}

#[test]
fn check_repairs_by_dropping_what_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut b = open(&path, Flag::Create);
    fill(&mut b, "a", 50);
    b.close().unwrap();
    drop(b);
    // Point one element past the end of the file: find the first used
    // slot of the bucket at block 2 and break its data pointer.
    let mut bytes = fs::read(&path).unwrap();
    let table = 8192 + 112;
    let slot = (0..166).find(|i| bytes[table + i * 24..table + i * 24 + 4] != [0xff; 4]).unwrap();
    let ptr = table + slot * 24 + 8;
    bytes[ptr..ptr + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let mut w = open(&path, Flag::Write);
    let listed = w.keys().and_then(|k| k.collect::<Result<Vec<_>, _>>());
    assert!(listed.is_err(), "a listing over damage is an error");
    let report = w.check(false).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.good_entries, 49);
    let report = w.check(true).unwrap();
    assert!(report.repaired);
    assert_eq!(w.len().unwrap(), 49);
    let after = w.check(false).unwrap();
    assert!(after.is_clean(), "{:?}", after.problems);
}

#[test]
fn compact_gives_back_space_and_keeps_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut b = open(&path, Flag::Create);
    fill(&mut b, "a", 2000);
    for i in 0..1500 {
        b.remove(format!("a{i}").as_bytes()).unwrap();
    }
    b.flush().unwrap();
    let before = contents(&b);
    let freed = b.compact().unwrap();
    assert!(freed > 0);
    assert_eq!(contents(&b), before);
    b.insert(b"after", b"compact").unwrap();
    b.close().unwrap();
    drop(b);
    let r = open(&path, Flag::Read);
    assert_eq!(r.get(b"after").unwrap().as_deref(), Some(&b"compact"[..]));
    assert_eq!(r.len().unwrap(), 501);
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
}

/// The 32-bit offset variant (libgdbm built without large files): read
/// and written in its own layout.
#[test]
fn the_32_bit_variant_reads_and_writes() {
    use crate::engine::Engine;
    use crate::format::{Layout, MAGIC32};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db32");
    let file = fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
    let layout = Layout { off64: false, numsync: false, magic: MAGIC32 };
    let mut e = Engine::create(path.clone(), file, layout, 1024, 0o644);
    e.commit().unwrap();
    drop(e);
    assert_eq!(fs::read(&path).unwrap()[..4], MAGIC32.to_le_bytes());
    let mut b = open(&path, Flag::Write);
    fill(&mut b, "a", 3000);
    b.remove(b"a7").unwrap();
    b.close().unwrap();
    drop(b);
    let r = open(&path, Flag::Read);
    assert_eq!(r.len().unwrap(), 2999);
    assert_eq!(r.get(b"a10").unwrap(), Some(b"value a 10".to_vec()));
    assert_eq!(fs::read(&path).unwrap()[..4], MAGIC32.to_le_bytes());
}

fn with_timeout(flag: Flag) -> BackendOptions {
    let mut o = BackendOptions::with_flag(flag);
    o.lock_timeout = Some(std::time::Duration::from_millis(100));
    o
}

/// GDBM's one-writer-or-many-readers rule holds between processes
/// (`flock` on another open file description stands for another
/// process); within one, a reader joins the writer's engine.
#[test]
fn a_reader_beside_the_writer_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut w = GnuBackend::open(&path, &with_timeout(Flag::Create)).unwrap();
    fill(&mut w, "a", 50);
    w.flush().unwrap();
    let r = GnuBackend::open(&path, &with_timeout(Flag::Read)).unwrap();
    assert_eq!(r.get(b"a7").unwrap(), Some(b"value a 7".repeat(7)), "synced data");
    assert_eq!(r.len().unwrap(), 50);
    // Another process (another open file) is still refused either lock.
    let other = fs::File::open(&path).unwrap();
    assert!(other.try_lock_shared().is_err(), "a reader elsewhere waits for the writer");
    fill(&mut w, "b", 300);
    w.remove(b"a7").unwrap();
    w.flush().unwrap();
    assert_eq!(r.len().unwrap(), 349, "later syncs are visible");
    assert_eq!(r.get(b"a7").unwrap(), None);
    assert_eq!(r.keys().unwrap().count(), 349);
    assert_eq!(contents(&r).len(), 349);
    let second = GnuBackend::open(&path, &with_timeout(Flag::Write));
    assert!(matches!(second, Err(shelf_core::OpenError::Locked { .. })), "{:?}", second.map(|_| ()));
    assert_eq!(
        r.get_many(&[b"b1", b"zz", b"b2"]).unwrap(),
        [Some(b"value b 1".to_vec()), None, Some(b"value b 2".repeat(2))]
    );
    // The writer goes; the reader keeps the engine and a shared lock.
    w.insert(b"last", b"word").unwrap();
    drop(w);
    assert_eq!(r.get(b"last").unwrap(), Some(b"word".to_vec()), "the writer's close synced it");
    assert!(other.try_lock_shared().is_ok(), "readers elsewhere may come now");
    other.unlock().unwrap();
    assert!(other.try_lock().is_err(), "but no writer while this reader reads");
    let late = GnuBackend::open(&path, &with_timeout(Flag::Write));
    assert!(matches!(late, Err(shelf_core::OpenError::Locked { .. })), "readers exclude writers");
    drop(r);
    assert!(other.try_lock().is_ok(), "the last handle let go of the lock");
    other.unlock().unwrap();
    let again = open(&path, Flag::Read);
    assert_eq!(again.len().unwrap(), 350);
}

/// A compaction renames a new file in: a reader of the process follows,
/// and later readers find the writer under the new file's identity.
#[test]
fn a_joined_reader_follows_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut w = GnuBackend::open(&path, &with_timeout(Flag::Create)).unwrap();
    fill(&mut w, "a", 200);
    for i in 0..100 {
        w.remove(format!("a{i}").as_bytes()).unwrap();
    }
    let r = GnuBackend::open(&path, &with_timeout(Flag::Read)).unwrap();
    w.compact().unwrap();
    assert_eq!(r.len().unwrap(), 100);
    let r2 = GnuBackend::open(&path, &with_timeout(Flag::Read)).unwrap();
    assert_eq!(r2.get(b"a150").unwrap(), Some(b"value a 150".repeat(6)));
    w.insert(b"new", b"v").unwrap();
    assert_eq!(r2.get(b"new").unwrap(), Some(b"v".to_vec()));
}

/// Reads run on several threads at once through one handle.
#[test]
fn reads_run_in_parallel_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut w = open(&path, Flag::Create);
    fill(&mut w, "a", 500);
    let w = std::sync::Arc::new(w);
    let found: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let w = &w;
                s.spawn(move || {
                    (0..500).filter(|i| w.get(format!("a{i}").as_bytes()).unwrap().is_some()).count()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(found, [500, 500, 500]);
}
