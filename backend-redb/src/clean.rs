//! The clean-close record: what lets a writable open skip the verification
//! of every page checksum.
//!
//! redb records a clean shutdown inside the file (the allocator state it
//! writes at close, with two-phase commit): an open that does not find it
//! repairs the file, verifying every page checksum first. What redb cannot
//! know is whether the file was changed *outside* redb after that clean
//! close (a stray write, a copy over it). So, after closing a database it
//! wrote, this backend stamps the file with an extended attribute holding
//! its inode, size and modification time, read back after the close. A
//! writable open whose file still carries a matching stamp was last
//! written by redb's clean close, and is trusted as redb trusts it (about
//! 0.4 ms instead of 10 ms for 15 MB); without one (a crash, a write or
//! copy since, a file system without user extended attributes, a file
//! written by another program) the open verifies every page as before.
//! The stamp is removed by every writable open, before any write.
//!
//! What a stamp cannot see: damage that leaves the modification time as it
//! was (a disk's silent bit rot, a tool that restores timestamps, or, on a
//! kernel without fine-grained timestamps (Linux before 6.13), a rewrite
//! of the same size within the clock tick of the close). Those still meet
//! shelf's value checksums at every read, and `check`.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{XattrFlags, getxattr, removexattr, setxattr};

/// The extended attribute's name (the `user` namespace: writable by whoever
/// may write the file).
const ATTR: &str = "user.shelf.redb.clean";

/// The stamp's version, first in its bytes.
const VERSION: &[u8; 4] = b"rc1\0";

/// The stamp's length: version, inode, size, modification time (seconds
/// and nanoseconds).
const LEN: usize = 4 + 8 + 8 + 8 + 4;

/// The stamp of a file with these metadata, all little-endian.
fn stamp(m: &Metadata) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[..4].copy_from_slice(VERSION);
    out[4..12].copy_from_slice(&m.ino().to_le_bytes());
    out[12..20].copy_from_slice(&m.size().to_le_bytes());
    out[20..28].copy_from_slice(&m.mtime().to_le_bytes());
    out[28..32].copy_from_slice(&(m.mtime_nsec() as u32).to_le_bytes());
    out
}

/// Whether the file at `path` is as redb's last clean close left it.
pub(crate) fn is_clean(path: &Path) -> bool {
    let Ok(m) = std::fs::metadata(path) else { return false };
    let mut found = [0u8; LEN + 1];
    match getxattr(path, ATTR, &mut found[..]) {
        Ok(n) => n == LEN && found[..LEN] == stamp(&m),
        Err(_) => false,
    }
}

/// Stamps the file at `path`, just closed cleanly by redb; errors (a file
/// system without user extended attributes, a read-only one) only mean the
/// next writable open verifies the file.
pub(crate) fn record(path: &Path) {
    if let Ok(m) = std::fs::metadata(path) {
        let _ = setxattr(path, ATTR, &stamp(&m), XattrFlags::empty());
    }
}

/// Removes the stamp: the file is open for writing, so it may change, or
/// a crash may leave it for redb to recover.
pub(crate) fn forget(path: &Path) {
    let _ = removexattr(path, ATTR);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_matches_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"redb's bytes").unwrap();
        assert!(!is_clean(&path), "no stamp yet");
        record(&path);
        if !is_clean(&path) {
            eprintln!("skip: the file system of {} keeps no user extended attributes", path.display());
            return;
        }
        // Same size, rewritten in place: the modification time moves.
        std::fs::write(&path, b"redb's bytez").unwrap();
        assert!(!is_clean(&path), "a write after the stamp");
        record(&path);
        assert!(is_clean(&path));
        forget(&path);
        assert!(!is_clean(&path), "forgotten");
    }
}
