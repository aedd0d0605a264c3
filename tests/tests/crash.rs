//! Kill -9 tests: a worker process writes and syncs batches; it is killed
//! with SIGKILL at seeded random moments; after each kill the database must
//! open, hold every batch the worker reported as synced with exactly its
//! values, hold no torn value, and pass `check()` where the backend has one.
//!
//! `SHELF_CRASH_KILLS` sets the kills per backend (default 25); the soak in
//! the README used thousands. `SHELF_CRASH_SEED` replays a run.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_bytes::ByteBuf;
use shelf::{Flag, OpenOptions};
use shelf_tests::Collected;
use shelf_tests::crash::{PROTOCOL, key, overwritten, value};
use shelf_tests::{Rng, Scratch};

const WORKER: &str = env!("CARGO_BIN_EXE_shelf-test-worker");
const KEYS_PER_BATCH: u64 = 20;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn crash_backend(backend: &str) {
    if shelf::find_backend(backend).is_err() {
        return shelf_tests::skip("crash", backend, "backend not compiled in");
    }
    let kills = env_u64("SHELF_CRASH_KILLS", 25);
    let seed = env_u64("SHELF_CRASH_SEED", 0x5eed ^ backend.len() as u64);
    eprintln!("crash {backend}: {kills} kills, seed {seed} (SHELF_CRASH_SEED to replay)");
    // Each round verifies everything synced so far, so a long soak starts a
    // fresh database every so often to stay linear in the kills.
    let per_db = env_u64("SHELF_CRASH_ROUNDS_PER_DB", 50).max(1);
    let mut rng = Rng(seed);
    let mut scratch = Scratch::new();
    let mut path = scratch.path.to_str().unwrap().to_owned();
    // synced[r] = the last batch of round r the worker reported as synced
    // (None for rounds of an earlier database).
    let mut synced: Vec<Option<u64>> = Vec::new();
    for round in 0..kills {
        if round > 0 && round % per_db == 0 {
            scratch = Scratch::new();
            path = scratch.path.to_str().unwrap().to_owned();
            synced.iter_mut().for_each(|s| *s = None);
        }
        let mut child = Command::new(WORKER)
            .args([
                "crash-writer",
                backend,
                &path,
                &round.to_string(),
                "1000000",
                &KEYS_PER_BATCH.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(b) = line.strip_prefix("synced ").and_then(|b| b.parse::<u64>().ok()) {
                    let _ = tx.send(b);
                }
            }
        });
        // Let it get going (opening may take a while), then kill it at a
        // random moment within the next stretch of batches.
        let first = rx.recv_timeout(Duration::from_secs(30));
        assert!(first.is_ok(), "{backend}: round {round}: the worker never synced a batch: {:?}", {
            let _ = child.kill();
            child.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        });
        std::thread::sleep(Duration::from_micros(rng.next_u64() % 150_000));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{backend}: the worker finished instead of being killed");
        reader.join().unwrap();
        let last = rx.try_iter().last().or(first.ok());
        synced.push(last);
        verify(backend, &path, &synced, round);
    }
}

fn verify(backend: &str, path: &str, synced: &[Option<u64>], round: u64) {
    let mut db = OpenOptions::new()
        .backend(backend)
        .protocol(PROTOCOL)
        .flag(Flag::Write)
        .open(path)
        .unwrap_or_else(|e| panic!("{backend}: after kill {round} the database does not open: {e}"));
    for (r, last) in synced.iter().enumerate() {
        let r = r as u64;
        let Some(last) = *last else { continue };
        for b in 0..=last {
            for i in 0..KEYS_PER_BATCH {
                let k = key(r, b, i);
                let got: Option<ByteBuf> =
                    db.get(&k).unwrap_or_else(|e| panic!("{backend}: after kill {round}: {k}: {e}"));
                // Batch b + 1 overwrites (r, b, 0): synced when b < last;
                // for b == last the overwrite was not synced, so either
                // whole value may be there.
                let want = if i == 0 && b < last { overwritten(r, b, i) } else { value(r, b, i) };
                let either = i == 0 && b == last && got.as_ref() == Some(&overwritten(r, b, i));
                assert!(
                    got.as_ref() == Some(&want) || either,
                    "{backend}: after kill {round}: synced key {k}: got {got:?}, want {want:?}"
                );
            }
        }
    }
    // Whatever else is there (unsynced batches that made it) must be whole.
    for k in db.keys().collected().unwrap() {
        let parts: Vec<u64> = k.split('-').filter_map(|p| p[1..].parse().ok()).collect();
        let [r, b, i] = parts[..] else { panic!("{backend}: unexpected key {k}") };
        let got: ByteBuf = db.get(&k).unwrap().unwrap();
        assert!(
            got == value(r, b, i) || (i == 0 && got == overwritten(r, b, i)),
            "{backend}: after kill {round}: torn or wrong value at {k}: {got:?}"
        );
    }
    if db.capabilities().unwrap().check {
        let report = db.backend_mut().unwrap().check(false).unwrap();
        assert!(report.is_clean(), "{backend}: after kill {round}: check() found {:?}", report.problems);
    }
    db.close().unwrap();
}

#[test]
fn crash_dir() {
    crash_backend("dir");
}

#[test]
fn crash_dumb() {
    crash_backend("dumb");
}

#[test]
fn crash_mmappickle() {
    crash_backend("mmappickle");
}

#[test]
fn crash_redb() {
    crash_backend("redb");
}

#[test]
fn crash_sled() {
    crash_backend("sled");
}

#[test]
fn crash_sqlite() {
    crash_backend("sqlite");
}

#[test]
fn crash_gnu() {
    crash_backend("gnu");
}
