//! `check` as mmappickle's `fsck`, `compact` as its `vacuum`.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use shelf_core::raw::show_key;
use shelf_core::{ArrayOwner, CheckReport, Error, NdArray};

use crate::format::{self, Tail};
use crate::{State, corrupt, fragment, io_err, map_file};

/// Scans the whole file; reports a torn end, damage, and values that are
/// no well-formed fragment. With `repair`, cuts the file after the last
/// whole entry and rewrites the terminator (as `fsck` does), and clears the
/// flag of entries whose value is damaged (their keys are the dropped
/// keys).
pub(crate) fn check(path: &Path, st: &mut State, repair: bool) -> Result<CheckReport, Error> {
    let map = Arc::new(map_file(&st.file).map_err(io_err(path))?);
    if let Some(p) = format::header_problem(&map) {
        return Err(corrupt(path, p));
    }
    let scan = format::scan(&map);
    let name = path.display();
    let mut problems = Vec::new();
    match &scan.tail {
        Tail::Clean => {}
        Tail::Torn => problems.push(format!(
            "{name}: a torn entry at offset {} ({} bytes up to the end of the file)",
            scan.end,
            map.len() as u64 - scan.end
        )),
        Tail::Damaged(d) => problems.push(format!(
            "{name}: {d}; {} bytes from offset {} cannot be read",
            map.len() as u64 - scan.end,
            scan.end
        )),
    }
    let owner: ArrayOwner = map.clone();
    let mut bad = Vec::new();
    for (key, e) in &scan.live {
        let (s, t) = (e.data_start as usize, e.data_end as usize);
        let problem = match NdArray::from_fragment_in(&owner, s, t) {
            Some(Ok(_)) => None,
            Some(Err(d)) => Some(d),
            None if fragment::escaped_range(&map[s..t]).is_some() => None,
            None => fragment::walk(&map[s..t]).err(),
        };
        if let Some(d) = problem {
            problems.push(format!("{name}: the value of {:?} at offset {}: {d}", show_key(key), e.offset));
            bad.push((key.clone(), *e));
        }
    }
    let good = (scan.live.len() - bad.len()) as u64;
    if !repair || problems.is_empty() {
        return Ok(CheckReport::new(good, problems, false));
    }
    for (_, e) in &bad {
        st.file.write_all_at(b"0", e.flag_at()).map_err(io_err(path))?;
    }
    if scan.tail != Tail::Clean {
        st.file.set_len(scan.end).map_err(io_err(path))?;
        st.file.write_all_at(&format::TERMINATOR, scan.end).map_err(io_err(path))?;
    }
    let commit = format::commit_of(&map).checked_add(1).unwrap_or(1);
    st.file.write_all_at(&commit.to_le_bytes(), format::COMMIT_AT).map_err(io_err(path))?;
    st.file.sync_data().map_err(io_err(path))?;
    st.map = None;
    st.len = u64::MAX;
    let dropped = bad.into_iter().map(|(k, _)| k).collect();
    Ok(CheckReport::new(good, problems, true).with_dropped_keys(dropped))
}

/// The file a compaction writes before renaming it over `path`.
pub(crate) fn temporary(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".shelf-compact");
    path.with_file_name(name)
}

/// Writes the live entries, in file order, to a new file renamed over the
/// old: `vacuum`'s result (its commit number 0, or 1 when it was 0), made
/// crash-safe. Returns the bytes given back; does nothing (as `vacuum`)
/// when nothing is deleted.
pub(crate) fn compact(path: &Path, st: &mut State) -> Result<u64, Error> {
    if st.scan.dead_bytes == 0 && st.scan.tail == Tail::Clean {
        return Ok(0);
    }
    if let Tail::Damaged(d) = &st.scan.tail {
        return Err(corrupt(path, format!("{d}; run check(repair) before compacting")));
    }
    let map = map_file(&st.file).map_err(io_err(path))?;
    let mut live: Vec<_> = st.scan.live.values().copied().collect();
    live.sort_unstable_by_key(|e| e.offset);
    let commit = if st.commit == 0 { 1 } else { 0 };
    let tmp = temporary(path);
    let mode = st.file.metadata().map_err(io_err(path))?.mode();
    let out = OpenOptions::new()
        .write(true)
        .read(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    let written = (|| -> Result<u64, Error> {
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777))
            .map_err(io_err(&tmp))?;
        let mut at = 0u64;
        let mut put = |bytes: &[u8]| -> Result<(), Error> {
            out.write_all_at(bytes, at).map_err(io_err(&tmp))?;
            at += bytes.len() as u64;
            Ok(())
        };
        put(&format::header(commit))?;
        for e in &live {
            let bytes = map
                .get(e.offset as usize..e.end() as usize)
                .ok_or_else(|| corrupt(path, "index past map"))?;
            put(bytes)?;
        }
        put(&format::TERMINATOR)?;
        out.sync_all().map_err(io_err(&tmp))?;
        Ok(at)
    })();
    let new_len = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    // The new file is whole and synced: rename it in, sync the directory.
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    let old_len = st.len;
    // Follow the new file; keep the lock on the old one until it is dropped.
    st.ino = u64::MAX;
    st.len = u64::MAX;
    st.map = None;
    Ok(old_len.saturating_sub(new_len))
}
