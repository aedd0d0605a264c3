//! The file format: CPython's `Lib/dbm/sqlite3.py` statements, word for
//! word, and the checks that tell its files from other SQLite files.

use std::io::Read;
use std::path::Path;

use rusqlite::Connection;

use crate::error::{SqlError, Tag};

/// The 16 bytes every SQLite 3 file starts with (CPython's `whichdb`
/// checks exactly these).
pub(crate) const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// CPython's `BUILD_TABLE`, as `dbm.sqlite3` runs it on every open with
/// flag `c` or `n`.
pub(crate) const BUILD_TABLE: &str = "
  CREATE TABLE IF NOT EXISTS Dict (
    key BLOB UNIQUE NOT NULL,
    value BLOB NOT NULL
  )
";
/// CPython's `GET_SIZE`.
pub(crate) const GET_SIZE: &str = "SELECT COUNT (key) FROM Dict";
/// CPython's `LOOKUP_KEY`: keys are compared as BLOBs, so the key bytes
/// shelve encodes (UTF-8 of a `str`) and the BLOB bound here are one key.
pub(crate) const LOOKUP_KEY: &str = "SELECT value FROM Dict WHERE key = CAST(? AS BLOB)";
/// Presence only, with `LOOKUP_KEY`'s comparison.
pub(crate) const HAS_KEY: &str = "SELECT 1 FROM Dict WHERE key = CAST(? AS BLOB)";
/// CPython's `STORE_KV`.
pub(crate) const STORE_KV: &str = "REPLACE INTO Dict (key, value) VALUES (CAST(? AS BLOB), CAST(? AS BLOB))";
/// CPython's `DELETE_KEY`.
pub(crate) const DELETE_KEY: &str = "DELETE FROM Dict WHERE key = CAST(? AS BLOB)";
// CPython's `ITER_KEYS` ("SELECT key FROM Dict") is paged here in byte
// order instead (`read::Pager`): the UNIQUE index on `key` gives it
// without sorting; BLOBs compare with `memcmp`, then by length.

/// shelf's own table, beside `Dict`: CPython's `dbm.sqlite3` names only
/// `Dict` in its statements, and `whichdb` reads only the header, so an
/// extra table disturbs neither.
pub(crate) const BUILD_META: &str =
    "CREATE TABLE IF NOT EXISTS shelf_meta (name TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)";
/// The row marking a database that shelf created (or emptied with flag
/// `n`): only there may a protocol other than pickle be recorded.
pub(crate) const CREATED: &str = "shelf:created";
/// The row counting commits made through shelf.
pub(crate) const COMMITS: &str = "shelf:commits";
/// User metadata rows are named with this prefix, apart from shelf's own.
pub(crate) const META_PREFIX: &str = "meta:";
/// Bumps the commit counter (in the committing transaction).
pub(crate) const BUMP_COMMITS: &str = "INSERT INTO shelf_meta (name, value) VALUES ('shelf:commits', 1) \
     ON CONFLICT (name) DO UPDATE SET value = value + 1";

/// Whether the file at `path` starts with the SQLite header. Reads 16
/// bytes; a short or unreadable file is not SQLite.
pub(crate) fn has_header(path: &Path) -> bool {
    let mut buf = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut buf)).is_ok() && &buf == HEADER
}

/// What the schema of an SQLite file holds, as far as shelf cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schema {
    /// A `Dict` table of CPython's shape (a `TEXT` key column accepted).
    Dict,
    /// No `Dict` table of that shape: another program's database.
    Other,
}

/// Whether `table` exists.
pub(crate) fn table_exists(conn: &Connection, table: &str) -> Result<bool, SqlError> {
    conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?")
        .and_then(|mut s| s.exists([table]))
        .tag("read the schema")
}

/// Reads the schema: is there a `Dict` table as CPython creates it? Its
/// columns must be exactly `key` (BLOB, or TEXT as in early drafts of
/// `dbm.sqlite3`) and `value` (BLOB), both NOT NULL, with a UNIQUE index on
/// `key` alone (CPython's `REPLACE INTO` relies on it).
pub(crate) fn schema(conn: &Connection) -> Result<Schema, SqlError> {
    if !table_exists(conn, "Dict")? {
        return Ok(Schema::Other);
    }
    let op = "read the schema";
    let mut cols = conn.prepare("SELECT name, type, \"notnull\" FROM pragma_table_info('Dict')").tag(op)?;
    let cols: Vec<(String, String, bool)> = cols
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .tag(op)?
        .collect::<Result<_, _>>()
        .tag(op)?;
    let shape_ok = match &cols[..] {
        [(k, kt, knn), (v, vt, vnn)] => {
            k.eq_ignore_ascii_case("key")
                && (kt.eq_ignore_ascii_case("BLOB") || kt.eq_ignore_ascii_case("TEXT"))
                && *knn
                && v.eq_ignore_ascii_case("value")
                && vt.eq_ignore_ascii_case("BLOB")
                && *vnn
        }
        _ => false,
    };
    if !shape_ok {
        return Ok(Schema::Other);
    }
    let mut idx = conn
        .prepare(
            "SELECT COUNT(*) FROM pragma_index_list('Dict') AS l \
             WHERE l.\"unique\" = 1 \
             AND (SELECT COUNT(*) FROM pragma_index_info(l.name)) = 1 \
             AND (SELECT name FROM pragma_index_info(l.name)) = 'key' COLLATE NOCASE",
        )
        .tag(op)?;
    let unique: i64 = idx.query_row([], |r| r.get(0)).tag(op)?;
    Ok(if unique > 0 { Schema::Dict } else { Schema::Other })
}

/// A `file:` URI for `path` with the given query, every byte outside
/// RFC 3986's unreserved set (and `/`) percent-encoded, so any file name
/// survives SQLite's URI parsing.
pub(crate) fn uri(path: &Path, query: &str) -> String {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut out = String::from("file:");
    for &b in abs.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push('?');
    out.push_str(query);
    out
}
