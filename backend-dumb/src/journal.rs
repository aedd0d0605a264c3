//! The undo journal that makes CPython's in-place overwrites crash-safe.
//!
//! CPython overwrites a value in place when its block count does not grow,
//! so the bytes the committed index names change before the new index is
//! written: a crash in between would leave the old index reading new (or,
//! for a shorter value, mixed) bytes. Before such writes this backend saves
//! the bytes they replace in `NAME.shelf-journal`, fsynced, together with
//! the identity (device, inode) of the `.dir` file that was current. A
//! commit renames a new file over `.dir`, so on the next open:
//! - a complete journal whose `.dir` is still the current one means the
//!   commit did not happen: the old bytes are written back, and the
//!   database is exactly as at the last commit;
//! - a journal naming another `.dir`, or an incomplete one (the crash came
//!   while it was written, before any overwrite), is discarded.
//!
//! Layout: `SHELFJ1\n`, dir device (u64), dir inode (u64), span count
//! (u64), then per span its offset (u64), length (u64) and bytes, then an
//! 64-bit checksum of everything before it (see `checksum`); integers
//! little-endian.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use shelf_core::raw::{take_spans, take_u64};
use shelf_core::{Error, OpenError};

const MAGIC: &[u8; 8] = b"SHELFJ1\n";

/// A checksum that catches a journal cut short or half written: eight
/// bytes at a time (a byte-wise hash cost more than the writes it
/// protects), the tail zero-padded.
fn checksum(state: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut h = state;
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(23);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(word) ^ rest.len() as u64)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(23);
    }
    h
}

const CHECKSUM_SEED: u64 = 0xcbf2_9ce4_8422_2325;

fn dir_identity(dir: &Path) -> (u64, u64) {
    fs::metadata(dir).map(|m| (m.dev(), m.ino())).unwrap_or((0, 0))
}

/// Writes and fsyncs a journal holding `spans` (offset, old bytes) for the
/// current `.dir`. The journal is built in memory (it holds at most the
/// bytes of one buffer of overwrites) so the checksum covers it in one pass.
pub fn write(path: &Path, dir: &Path, spans: &[(u64, &[u8])], mode: u32) -> Result<(), Error> {
    let err = |e| Error::io(path, e);
    let (dev, ino) = dir_identity(dir);
    let size = 40 + spans.iter().map(|(_, b)| 16 + b.len()).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(MAGIC);
    for n in [dev, ino, spans.len() as u64] {
        body.extend_from_slice(&n.to_le_bytes());
    }
    for (pos, bytes) in spans {
        body.extend_from_slice(&pos.to_le_bytes());
        body.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        body.extend_from_slice(bytes);
    }
    let sum = checksum(CHECKSUM_SEED, &body);
    body.extend_from_slice(&sum.to_le_bytes());
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path).map_err(err)?;
    crate::fault::point().and_then(|()| file.write_all(&body)).map_err(err)?;
    crate::fault::sync(&file).map_err(err)
}

/// Removes the journal (after a commit).
pub fn discard(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A parsed, complete journal.
struct Journal {
    dev: u64,
    ino: u64,
    spans: Vec<(u64, Vec<u8>)>,
}

fn read(path: &Path) -> io::Result<Option<Journal>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(parse(&bytes))
}

fn parse(bytes: &[u8]) -> Option<Journal> {
    let body_len = bytes.len().checked_sub(8)?;
    let (body, sum) = bytes.split_at(body_len);
    if checksum(CHECKSUM_SEED, body).to_le_bytes() != sum || !body.starts_with(MAGIC) {
        return None;
    }
    let mut rest = &body[MAGIC.len()..];
    let (dev, ino, count) = (take_u64(&mut rest)?, take_u64(&mut rest)?, take_u64(&mut rest)?);
    let spans = take_spans(&mut rest, count)?;
    Some(Journal { dev, ino, spans })
}

/// Whether a journal would roll back bytes under the current `.dir` (a
/// reader cannot do it, and must not read until a writer has).
pub fn pending(path: &Path, dir: &Path) -> bool {
    matches!(read(path), Ok(Some(j)) if (j.dev, j.ino) == dir_identity(dir))
}

/// Rolls back an interrupted commit, or discards a void journal (see the
/// module docs). Called by a writer, under its lock, before reading `.dir`.
pub fn recover(path: &Path, dir: &Path, dat: &Path) -> Result<(), OpenError> {
    let journal = read(path).map_err(|e| OpenError::io(path, e))?;
    if let Some(j) = journal
        && (j.dev, j.ino) == dir_identity(dir)
    {
        let file = OpenOptions::new().write(true).open(dat).map_err(|e| OpenError::io(dat, e))?;
        for (pos, bytes) in &j.spans {
            file.write_all_at(bytes, *pos).map_err(|e| OpenError::io(dat, e))?;
        }
        file.sync_all().map_err(|e| OpenError::io(dat, e))?;
    }
    discard(path).map_err(|e| OpenError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_back_only_for_the_same_index() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, dir, dat) = (tmp.path().join("j"), tmp.path().join("d.dir"), tmp.path().join("d.dat"));
        fs::write(&dir, b"").unwrap();
        fs::write(&dat, b"AAAABBBB").unwrap();
        write(&j, &dir, &[(4, b"BBBB")], 0o644).unwrap();
        fs::write(&dat, b"AAAAxx").unwrap();
        assert!(pending(&j, &dir));
        recover(&j, &dir, &dat).unwrap();
        assert_eq!(fs::read(&dat).unwrap(), b"AAAABBBB");
        assert!(!j.exists());

        // A committed index (a new .dir file): the journal is void.
        write(&j, &dir, &[(0, b"ZZ")], 0o644).unwrap();
        fs::write(tmp.path().join("new"), b"").unwrap();
        fs::rename(tmp.path().join("new"), &dir).unwrap();
        assert!(!pending(&j, &dir));
        recover(&j, &dir, &dat).unwrap();
        assert_eq!(fs::read(&dat).unwrap(), b"AAAABBBB");

        // A torn journal is discarded.
        write(&j, &dir, &[(0, b"ZZ")], 0o644).unwrap();
        let mut torn = fs::read(&j).unwrap();
        torn.truncate(torn.len() - 3);
        fs::write(&j, torn).unwrap();
        recover(&j, &dir, &dat).unwrap();
        assert_eq!(fs::read(&dat).unwrap(), b"AAAABBBB");
    }
}
