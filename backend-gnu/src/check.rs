//! `check` (every structure and entry) and `compact` (GDBM's reorganize).

use std::collections::HashMap;

use shelf_core::CheckReport;
use shelf_core::raw::show_key;

use crate::engine::Engine;
use crate::error::GnuError;
use crate::format::{self, HASH_BITS};
use crate::open;

/// Rewrites the live entries into a new file renamed over the old one;
/// returns the bytes given back.
pub fn compact(engine: &mut Engine) -> Result<u64, GnuError> {
    engine.commit()?;
    let before = engine.len();
    let mut entries = Vec::new();
    for adr in engine.bucket_order() {
        for e in engine.elements(adr)? {
            entries.push(e);
        }
    }
    let old = &*engine;
    let new = open::rebuild(old, entries.into_iter().map(|e| old.record_of(&e)))?;
    let after = new.len();
    *engine = new;
    Ok(before.saturating_sub(after))
}

/// What a check found: sound entries and problems.
struct Found {
    good: Vec<format::Element>,
    problems: Vec<String>,
    /// Keys of entries that are unsound but whose key could be read.
    bad_keys: Vec<Vec<u8>>,
}

fn survey(engine: &Engine) -> Found {
    let mut found = Found { good: Vec::new(), problems: Vec::new(), bad_keys: Vec::new() };
    let h = &engine.header;
    // Where each bucket is referenced from: it must be one aligned run of
    // 2^(dir_bits - bits) entries.
    let mut runs: HashMap<u64, (usize, usize)> = HashMap::new();
    for (i, adr) in engine.dir.iter().enumerate() {
        let run = runs.entry(*adr).or_insert((i, 0));
        if run.0 + run.1 != i {
            found.problems.push(format!("directory entry {i}: bucket {adr} is also referenced elsewhere"));
        }
        run.1 += 1;
    }
    // Regions in use, to find overlaps: (start, end, what).
    let block = u64::from(h.block_size);
    let mut regions: Vec<(u64, u64, String)> =
        vec![(0, block, "the header".into()), (h.dir, h.dir + u64::from(h.dir_size), "the directory".into())];
    for adr in engine.bucket_order() {
        regions.push((adr, adr + u64::from(h.bucket_size), format!("bucket {adr}")));
        let (start, count) = runs.get(&adr).copied().unwrap_or((0, 0));
        let bucket = match engine.with_bucket(adr, Clone::clone) {
            Ok(b) => b,
            Err(e) => {
                found.problems.push(e.to_string());
                continue;
            }
        };
        let span = 1usize << (h.dir_bits - bucket.bits.min(h.dir_bits));
        if count != span || start % span != 0 {
            found.problems.push(format!(
                "bucket {adr}: {count} directory entries from {start} where its {} bits need {span}, aligned",
                bucket.bits
            ));
        }
        if bucket.stored_count as usize != bucket.count() {
            found.problems.push(format!(
                "bucket {adr}: a count of {} for {} entries",
                bucket.stored_count,
                bucket.count()
            ));
        }
        let n = bucket.table.len();
        for (slot, e) in bucket.table.iter().enumerate() {
            let Some(e) = e else { continue };
            let key = match engine.read_at(e.ptr, e.key_size as usize) {
                Ok(k) => k,
                Err(err) => {
                    found.problems.push(format!("bucket {adr} slot {slot}: {err}"));
                    continue;
                }
            };
            let hash = format::hash(&key);
            let home = hash as usize % n;
            let reachable =
                (0..n).map(|i| (home + i) % n).take_while(|&s| bucket.table[s].is_some()).any(|s| s == slot);
            let here = (hash >> (HASH_BITS - h.dir_bits)) as usize;
            let problem = if hash != e.hash || !e.may_be(hash, &key) {
                Some("its stored hash or key start does not match the key")
            } else if !(start..start + count).contains(&here) {
                Some("its hash leads to another bucket")
            } else if !reachable {
                Some("a lookup cannot reach its slot")
            } else if engine.value_of(e).is_err() {
                Some("its value lies past the end of the file")
            } else {
                None
            };
            match problem {
                Some(p) => {
                    found.problems.push(format!("bucket {adr} slot {slot}: key {:?}: {p}", show_key(&key)));
                    found.bad_keys.push(key);
                }
                None => {
                    regions.push((
                        e.ptr,
                        e.ptr + e.record_len(),
                        format!("the entry of key {:?}", show_key(&key)),
                    ));
                    found.good.push(*e);
                }
            }
        }
    }
    regions.retain(|r| r.1 > r.0);
    regions.sort();
    for pair in regions.windows(2) {
        if pair[1].0 < pair[0].1 {
            found.problems.push(format!("{} and {} overlap at offset {}", pair[0].2, pair[1].2, pair[1].0));
        }
    }
    found
}

/// Checks the database without changing it.
pub fn inspect(engine: &Engine) -> CheckReport {
    let found = survey(engine);
    CheckReport::new(found.good.len() as u64, found.problems, false)
}

/// Checks the database; with `repair`, rebuilds it from the sound entries.
pub fn check(engine: &mut Engine, repair: bool) -> Result<CheckReport, GnuError> {
    if repair {
        engine.commit()?;
    }
    let found = survey(engine);
    let good = found.good.len() as u64;
    if !repair || found.problems.is_empty() {
        return Ok(CheckReport::new(good, found.problems, false));
    }
    let old = &*engine;
    let new = open::rebuild(old, found.good.iter().map(|e| old.record_of(e)))?;
    *engine = new;
    // Only keys the rebuilt file lacks were dropped (a key can be sound
    // in one slot and damaged in another).
    let mut dropped = Vec::new();
    for k in found.bad_keys {
        if engine.find(&k)?.is_none() && !dropped.contains(&k) {
            dropped.push(k);
        }
    }
    Ok(CheckReport::new(good, found.problems, true).with_dropped_keys(dropped))
}
