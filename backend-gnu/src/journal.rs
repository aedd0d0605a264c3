//! The undo journal that makes commits crash-safe without changing GDBM's
//! format: before a commit overwrites bytes of the file in place (the
//! header, buckets, the directory), the bytes it replaces and the file's
//! committed length are saved in `NAME.shelf-gnu-journal`, fsynced. The
//! journal exists only while a commit is in flight: removing it (and
//! fsyncing the directory) is the commit point.
//!
//! On open, a complete journal naming the database file's identity
//! (device, inode) means a commit was interrupted: a writer writes the
//! old bytes back and cuts the file to its old length; a reader reads
//! through the journal (see `Overlay`) without changing anything. An
//! incomplete journal (the crash came while it was written, before any
//! byte of the database changed) or one naming another file is void.
//!
//! Layout: `SHELFGJ1`, device, inode, old length, span count, then per
//! span its offset, length and bytes, then a CRC-32 (eight bytes) of
//! everything before it; integers little-endian u64.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use shelf_core::raw::{checksum, take_spans, take_u64};

const MAGIC: &[u8; 8] = b"SHELFGJ1";

/// The journal's path beside the database.
pub fn path_of(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_os_string();
    s.push(".shelf-gnu-journal");
    PathBuf::from(s)
}

/// The parent directory of `path`, for fsyncs.
pub fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// fsyncs the directory holding `path`, so a created, renamed or removed
/// name is durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    File::open(parent(path))?.sync_all()
}

/// A parsed, complete journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// The database file's identity.
    pub id: (u64, u64),
    /// The committed length before the interrupted commit.
    pub old_len: u64,
    /// The bytes overwritten: (offset, old bytes).
    pub spans: Vec<(u64, Vec<u8>)>,
}

/// Writes the journal of a commit and makes it durable (file and name).
pub fn write(
    path: &Path,
    id: (u64, u64),
    old_len: u64,
    spans: &[(u64, Vec<u8>)],
    mode: u32,
) -> io::Result<()> {
    let size = 48 + spans.iter().map(|(_, b)| 16 + b.len()).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(MAGIC);
    for n in [id.0, id.1, old_len, spans.len() as u64] {
        body.extend_from_slice(&n.to_le_bytes());
    }
    for (pos, bytes) in spans {
        body.extend_from_slice(&pos.to_le_bytes());
        body.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        body.extend_from_slice(bytes);
    }
    let sum = u64::from(checksum(MAGIC, &body));
    body.extend_from_slice(&sum.to_le_bytes());
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
    file.write_all(&body)?;
    file.sync_all()?;
    sync_parent(path)
}

/// Removes the journal and makes the removal durable: the commit point.
pub fn discard(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The journal at `path` when it is complete and belongs to the file
/// `id`; `None` when there is none or it is void.
pub fn read(path: &Path, id: (u64, u64)) -> io::Result<Option<Journal>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(parse(&bytes).filter(|j| j.id == id))
}

/// Parses a journal; `None` when it is torn or not one.
pub fn parse(bytes: &[u8]) -> Option<Journal> {
    let body_len = bytes.len().checked_sub(8)?;
    let (body, sum) = bytes.split_at(body_len);
    if u64::from(checksum(MAGIC, body)).to_le_bytes() != sum || !body.starts_with(MAGIC) {
        return None;
    }
    let mut rest = &body[MAGIC.len()..];
    let (dev, ino, old_len, count) =
        (take_u64(&mut rest)?, take_u64(&mut rest)?, take_u64(&mut rest)?, take_u64(&mut rest)?);
    let spans = take_spans(&mut rest, count)?;
    Some(Journal { id: (dev, ino), old_len, spans })
}

/// The identity of an open file.
pub fn identity(file: &File) -> io::Result<(u64, u64)> {
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}

/// Rolls the database file back to the journal's state and removes the
/// journal (a writer, under its exclusive lock).
pub fn roll_back(journal_path: &Path, file: &File, j: &Journal) -> io::Result<()> {
    for (pos, bytes) in &j.spans {
        file.write_all_at(bytes, *pos)?;
    }
    file.set_len(j.old_len)?;
    file.sync_all()?;
    discard(journal_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_journal_is_void() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        write(&p, (1, 2), 10, &[(3, b"abc".to_vec())], 0o644).unwrap();
        let j = read(&p, (1, 2)).unwrap().unwrap();
        assert_eq!(j.old_len, 10);
        assert_eq!(read(&p, (1, 3)).unwrap(), None, "another file's journal");
        let mut torn = fs::read(&p).unwrap();
        torn.truncate(torn.len() - 1);
        assert_eq!(parse(&torn), None);
    }
}
