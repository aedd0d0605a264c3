//! Reads: CPython's lookups, and listings paged through the `key` index
//! so that a walk holds no statement open between items.

use std::collections::VecDeque;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use shelf_core::raw::show_key;
use shelf_core::{Error, KvPair};

use crate::error::{SqlOr, Tag};

/// Rows fetched per page of a listing.
const PAGE: usize = 512;

/// The bytes of a stored key or value. CPython stores both as BLOBs
/// (`CAST(? AS BLOB)`); TEXT is taken as its bytes (early drafts of
/// `dbm.sqlite3` had a TEXT key column). Anything else was not written by
/// `dbm.sqlite3` or shelf.
pub(crate) fn bytes_of(v: ValueRef<'_>, what: &str, path: &Path) -> Result<Vec<u8>, Error> {
    match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => Ok(b.to_vec()),
        other => Err(Error::Corrupted {
            path: path.to_owned(),
            detail: format!("{what} is stored as {}, not as a BLOB", other.data_type()),
        }),
    }
}

/// One lookup with CPython's `LOOKUP_KEY`.
pub(crate) fn lookup(conn: &Connection, path: &Path, key: &[u8]) -> Result<Option<Vec<u8>>, SqlOr> {
    let mut stmt = conn.prepare_cached(crate::format::LOOKUP_KEY).tag("get")?;
    let mut rows = stmt.query([key]).tag("get")?;
    match rows.next().tag("get")? {
        None => Ok(None),
        Some(row) => {
            let v = row.get_ref(0).tag("get")?;
            Ok(Some(bytes_of(v, &format!("the value of key {:?}", show_key(key)), path)?))
        }
    }
}

/// Lookups of several keys under one lock and one read transaction (one
/// snapshot, one acquisition of SQLite's read lock), with CPython's
/// `LOOKUP_KEY` prepared once. Inside the handle's open write
/// transaction, the lookups run in it (and see its writes).
pub(crate) fn lookup_many(
    conn: &Connection,
    path: &Path,
    keys: &[&[u8]],
) -> Result<Vec<Option<Vec<u8>>>, SqlOr> {
    let own = conn.is_autocommit() && keys.len() > 1;
    if own {
        conn.execute_batch("BEGIN DEFERRED").tag("begin a read")?;
    }
    let found = (|| {
        let mut stmt = conn.prepare_cached(crate::format::LOOKUP_KEY).tag("get")?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let mut rows = stmt.query([key]).tag("get")?;
            out.push(match rows.next().tag("get")? {
                None => None,
                Some(row) => {
                    let v = row.get_ref(0).tag("get")?;
                    Some(bytes_of(v, &format!("the value of key {:?}", show_key(key)), path)?)
                }
            });
        }
        Ok(out)
    })();
    if own {
        // A read transaction ends the same whether it read or failed; the
        // read's own error comes first.
        let ended = conn.execute_batch("COMMIT").tag("end a read");
        let found = found?;
        ended?;
        return Ok(found);
    }
    found
}

/// Entries within bounds, fetched a page at a time from either end with
/// `ORDER BY key` (the UNIQUE index), each page narrowing the window still
/// to fetch, so the two ends never overlap. The connection is locked for
/// one page at a time, so other reads of the handle run between pages.
pub(crate) struct Pager<'a> {
    conn: &'a Mutex<Connection>,
    /// Values are fetched too (otherwise keys only, with empty values).
    values: bool,
    path: &'a Path,
    busy: Duration,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    /// The window between `lo` and `hi` holds nothing more.
    exhausted: bool,
    /// Fetched from the front, ascending.
    front: VecDeque<KvPair>,
    /// Fetched from the back, descending.
    back: VecDeque<KvPair>,
    failed: bool,
}

impl<'a> Pager<'a> {
    /// Entries of `conn` within the bounds.
    pub(crate) fn new(
        conn: &'a Mutex<Connection>,
        path: &'a Path,
        busy: Duration,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        values: bool,
    ) -> Self {
        Pager {
            conn,
            values,
            path,
            busy,
            lo,
            hi,
            exhausted: false,
            front: VecDeque::new(),
            back: VecDeque::new(),
            failed: false,
        }
    }

    /// Fetches the next page from the front (`ascending`) or the back.
    fn fetch(&mut self, ascending: bool) -> Result<Vec<KvPair>, SqlOr> {
        let mut sql =
            String::from(if self.values { "SELECT key, value FROM Dict" } else { "SELECT key FROM Dict" });
        let mut params: Vec<&[u8]> = Vec::new();
        let mut conds = Vec::new();
        match &self.lo {
            Bound::Included(k) => {
                conds.push("key >= ?");
                params.push(k);
            }
            Bound::Excluded(k) => {
                conds.push("key > ?");
                params.push(k);
            }
            Bound::Unbounded => {}
        }
        match &self.hi {
            Bound::Included(k) => {
                conds.push("key <= ?");
                params.push(k);
            }
            Bound::Excluded(k) => {
                conds.push("key < ?");
                params.push(k);
            }
            Bound::Unbounded => {}
        }
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        sql.push_str(if ascending { " ORDER BY key ASC" } else { " ORDER BY key DESC" });
        sql.push_str(&format!(" LIMIT {PAGE}"));
        let op = "list entries";
        let conn = crate::lock(self.conn);
        let mut stmt = conn.prepare_cached(&sql).tag(op)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params)).tag(op)?;
        let mut page = Vec::new();
        while let Some(row) = rows.next().tag(op)? {
            let k = bytes_of(row.get_ref(0).tag(op)?, "a key", self.path)?;
            let v = if self.values {
                let what = format!("the value of key {:?}", show_key(&k));
                bytes_of(row.get_ref(1).tag(op)?, &what, self.path)?
            } else {
                Vec::new()
            };
            page.push((k, v));
        }
        Ok(page)
    }

    fn step(&mut self, forward: bool) -> Option<Result<KvPair, Error>> {
        if self.failed {
            return None;
        }
        let own = if forward { self.front.pop_front() } else { self.back.pop_front() };
        if let Some(pair) = own {
            return Some(Ok(pair));
        }
        if !self.exhausted {
            match self.fetch(forward) {
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e.into_error(self.path, self.busy)));
                }
                Ok(page) => {
                    if page.len() < PAGE {
                        self.exhausted = true;
                    } else if let Some((k, _)) = page.last() {
                        let edge = Bound::Excluded(k.clone());
                        if forward { self.lo = edge } else { self.hi = edge }
                    }
                    let buf = if forward { &mut self.front } else { &mut self.back };
                    buf.extend(page);
                    if let Some(pair) = buf.pop_front() {
                        return Some(Ok(pair));
                    }
                }
            }
        }
        // The window is empty: what is left was fetched by the other end.
        let other = if forward { self.back.pop_back() } else { self.front.pop_back() };
        other.map(Ok)
    }
}

impl Iterator for Pager<'_> {
    type Item = Result<KvPair, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

impl DoubleEndedIterator for Pager<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}
