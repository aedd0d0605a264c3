//! Formats CPython's `dbm.whichdb` recognises that no backend here opens:
//! `dbm.ndbm` (a `NAME.pag` and `NAME.dir` pair, or Berkeley DB's
//! `NAME.db`). They are named, so a user learns what the file is and how to
//! get the data out, instead of "not a database any backend recognises".

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A format shelf recognises but cannot open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignFormat {
    /// CPython's name for it, as `dbm.whichdb` returns it.
    pub name: &'static str,
    /// What it is, in a few words.
    pub what: &'static str,
}

impl ForeignFormat {
    /// A one-line Python command that copies the database at `path` into a
    /// `dbm.dumb` database at `PATH-dumb`, which shelf opens (and CPython
    /// too). Run with the Python that wrote it (the one whose `dbm.ndbm`
    /// reads it).
    pub fn conversion_hint(&self, path: &Path) -> String {
        let p = path.display().to_string().replace('\\', "\\\\").replace('\'', "\\'");
        format!(
            "python3 -c \"import dbm, dbm.dumb; s = dbm.open('{p}', 'r'); d = dbm.dumb.open('{p}-dumb', 'c'); \
             [d.__setitem__(k, s[k]) for k in s.keys()]; d.close(); s.close()\""
        )
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Berkeley DB's magic numbers (hash, btree, queue), at byte 12 of the
/// metadata page, in either byte order.
const BERKELEY_MAGICS: [u32; 3] = [0x0006_1561, 0x0005_3162, 0x0004_2253];

fn is_berkeley_db(path: &Path) -> bool {
    let mut head = [0u8; 16];
    let Ok(mut f) = File::open(path) else { return false };
    if f.read_exact(&mut head).is_err() {
        return false;
    }
    let word = [head[12], head[13], head[14], head[15]];
    let (le, be) = (u32::from_le_bytes(word), u32::from_be_bytes(word));
    BERKELEY_MAGICS.iter().any(|m| *m == le || *m == be)
}

/// The foreign format at `path`, by CPython's `dbm.whichdb` rules for
/// ndbm: `NAME.pag` and `NAME.dir` both present, or a `NAME.db` that is a
/// Berkeley DB file (CPython opens it with `dbm.ndbm` to be sure; shelf
/// reads Berkeley DB's magic number instead).
pub fn foreign_format(path: &Path) -> Option<ForeignFormat> {
    let ndbm =
        ForeignFormat { name: "dbm.ndbm", what: "a Unix ndbm database (or Berkeley DB's emulation of one)" };
    if with_suffix(path, ".pag").is_file() && with_suffix(path, ".dir").is_file() {
        return Some(ndbm);
    }
    if is_berkeley_db(&with_suffix(path, ".db")) {
        return Some(ndbm);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndbm_pairs_and_berkeley_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("db");
        assert_eq!(foreign_format(&base), None);
        std::fs::write(with_suffix(&base, ".pag"), b"").unwrap();
        assert_eq!(foreign_format(&base), None, "a .pag alone is nothing");
        std::fs::write(with_suffix(&base, ".dir"), b"").unwrap();
        assert_eq!(foreign_format(&base).map(|f| f.name), Some("dbm.ndbm"));
        let other = dir.path().join("bdb");
        let mut page = vec![0u8; 512];
        page[12..16].copy_from_slice(&0x0006_1561u32.to_le_bytes());
        std::fs::write(with_suffix(&other, ".db"), &page).unwrap();
        assert_eq!(foreign_format(&other).map(|f| f.name), Some("dbm.ndbm"));
        std::fs::write(with_suffix(&other, ".db"), b"SQLite format 3\0 and more bytes").unwrap();
        assert_eq!(foreign_format(&other), None, "any other .db is not ndbm");
        assert!(
            ForeignFormat { name: "dbm.ndbm", what: "" }.conversion_hint(&base).contains("dbm.dumb.open")
        );
    }
}
