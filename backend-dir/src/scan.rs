//! Recognising a pickleshare directory that shelf did not create: every
//! regular file below the root is a pickle, and nothing else is there.

use std::io;
use std::os::unix::fs::FileExt;

use cap_std::fs::Dir;
use shelf_core::raw::opcodes::{PROTO, STOP};

use crate::tmp::RESERVED_PREFIX;

/// The shortest pickle of protocol 2 or later: PROTO, version, one
/// opcode (`N`, None), STOP.
const SHORTEST: u64 = 4;

/// What a directory holds, for the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// No file at all (subdirectories, even nested, hold nothing either).
    Empty,
    /// At least one file, and every one a pickle.
    Pickles,
    /// Something else: a file that is not a pickle, a symlink, a special
    /// file, or a part that could not be read.
    Other,
}

/// Walks `dir` without following symlinks (directories are opened beneath
/// the root) and stops at the first thing that is not a pickle. Names
/// starting with `.shelf-` are shelf's own (temporary files of a writer
/// at work) and are skipped, as they never are keys.
pub(crate) fn scan(dir: &Dir) -> Scan {
    match walk(dir) {
        Ok(found) => found,
        Err(_) => Scan::Other,
    }
}

fn walk(root: &Dir) -> io::Result<Scan> {
    let mut any = false;
    let mut stack = vec![root.try_clone()?];
    while let Some(dir) = stack.pop() {
        for entry in dir.entries()? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.starts_with(RESERVED_PREFIX)) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.open_dir()?);
            } else if kind.is_file() {
                let f = entry.open()?.into_std();
                // Checked on the open file: the entry may have been
                // swapped since it was listed.
                let meta = f.metadata()?;
                if !meta.is_file() || !is_pickle(&f, meta.len())? {
                    return Ok(Scan::Other);
                }
                any = true;
            } else {
                return Ok(Scan::Other);
            }
        }
    }
    Ok(if any { Scan::Pickles } else { Scan::Empty })
}

/// Whether the file looks like a pickle of protocol 2 to 5, as pickleshare
/// writes (protocol 2): PROTO and its version first, STOP last.
fn is_pickle(f: &std::fs::File, len: u64) -> io::Result<bool> {
    if len < SHORTEST {
        return Ok(false);
    }
    let mut head = [0u8; 2];
    f.read_exact_at(&mut head, 0)?;
    let mut tail = [0u8; 1];
    f.read_exact_at(&mut tail, len - 1)?;
    Ok(head[0] == PROTO && (2..=5).contains(&head[1]) && tail[0] == STOP)
}
