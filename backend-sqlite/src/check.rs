//! Whole-database work: `PRAGMA integrity_check`, `VACUUM`, sizes, and
//! the commit number.

use shelf_core::raw::show_key;
use shelf_core::{CheckReport, Error, StorageStats};

use crate::SqliteBackend;
use crate::error::Tag;
use crate::format::{self, COMMITS, GET_SIZE};

/// Problems listed at most by one check (SQLite's own default for
/// `integrity_check` is 100 too).
const MAX_PROBLEMS: usize = 100;

impl SqliteBackend {
    /// SQLite's page-level check, plus shelf's: every key and value a BLOB
    /// (or TEXT), as `dbm.sqlite3` stores them. Reads only.
    fn problems(&self) -> Result<(u64, Vec<String>), Error> {
        let c = self.conn()?;
        let mut problems = Vec::new();
        let file = self.path.display();
        let checked = c
            .prepare(&format!("PRAGMA integrity_check({MAX_PROBLEMS})"))
            .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>())
            .tag("check integrity");
        match checked {
            Ok(lines) => {
                problems.extend(lines.into_iter().filter(|l| l != "ok").map(|l| format!("{file}: {l}")))
            }
            // A file too damaged to check at all is one problem, reported.
            Err(e) => {
                problems.push(format!("{file}: {}", e.source));
                return Ok((0, problems));
            }
        }
        let odd = c
            .prepare(&format!(
                "SELECT key, typeof(key), typeof(value) FROM Dict \
                 WHERE typeof(key) NOT IN ('blob', 'text') OR typeof(value) NOT IN ('blob', 'text') \
                 LIMIT {MAX_PROBLEMS}"
            ))
            .and_then(|mut s| {
                s.query_map([], |r| {
                    let k = match r.get_ref(0)? {
                        rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => {
                            show_key(b)
                        }
                        other => format!("{other:?}"),
                    };
                    Ok(format!(
                        "{file}: key {k:?} ({}) holds a {} value, not a BLOB",
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .tag("check value types");
        let odd_rows = match odd {
            Ok(lines) => {
                let n = lines.len() as u64;
                problems.extend(lines);
                n
            }
            Err(e) => {
                problems.push(format!("{file}: {}", e.source));
                return Ok((0, problems));
            }
        };
        // Rows of the wrong type are the entries that are not sound; page
        // damage is not counted per entry (SQLite does not say which).
        match c.query_row(GET_SIZE, [], |r| r.get::<_, i64>(0)).tag("count keys") {
            Ok(total) => Ok((u64::try_from(total).unwrap_or(0).saturating_sub(odd_rows), problems)),
            Err(e) => {
                problems.push(format!("{file}: {}", e.source));
                Ok((0, problems))
            }
        }
    }

    /// `check(repair)`: `PRAGMA integrity_check`; a repair rebuilds the
    /// indexes (`REINDEX`, which fixes what SQLite reports about them) and
    /// checks again. Nothing is dropped, so no key is ever named dropped.
    pub(crate) fn run_check(&mut self, repair: bool) -> Result<CheckReport, Error> {
        let (good, problems) = self.problems()?;
        if !repair || problems.is_empty() {
            return Ok(CheckReport::new(good, problems, false));
        }
        self.commit()?;
        let reindexed = self.conn()?.execute_batch("REINDEX").tag("rebuild the indexes");
        reindexed.map_err(|e| self.err(e))?;
        let (_, after) = self.problems()?;
        Ok(CheckReport::new(good, problems, after.is_empty()))
    }

    /// The database's size in bytes: pages times page size.
    fn logical_size(&self) -> Result<u64, Error> {
        let c = self.conn()?;
        let count: i64 = c
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .tag("read the size")
            .map_err(|e| self.err(e))?;
        let size: i64 = c
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .tag("read the size")
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(count.saturating_mul(size)).unwrap_or(0))
    }

    /// `VACUUM` after committing what is pending, then a checkpoint that
    /// truncates the WAL; the bytes the database shrank by.
    pub(crate) fn run_compact(&mut self) -> Result<u64, Error> {
        self.commit()?;
        let before = self.logical_size()?;
        {
            let c = self.conn()?;
            c.execute_batch("VACUUM").tag("vacuum").map_err(|e| self.err(e))?;
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .tag("checkpoint")
                .map_err(|e| self.err(e))?;
        }
        Ok(before.saturating_sub(self.logical_size()?))
    }

    /// Sizes: the file and its WAL on disk, free pages reclaimable.
    pub(crate) fn sizes(&self) -> Result<StorageStats, Error> {
        let c = self.conn()?;
        let free: i64 = c
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .tag("read the size")
            .map_err(|e| self.err(e))?;
        let page: i64 = c
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .tag("read the size")
            .map_err(|e| self.err(e))?;
        // The file, with SQLite's `-wal` and `-shm` while they are there.
        let files: Vec<_> =
            [self.path.clone(), crate::sidecar(&self.path, "-wal"), crate::sidecar(&self.path, "-shm")]
                .into_iter()
                .filter(|p| std::fs::metadata(p).is_ok())
                .collect();
        let bytes = files.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
        Ok(StorageStats::new(bytes, u64::try_from(free.saturating_mul(page)).ok(), files))
    }

    /// Commits through shelf (counted in `shelf_meta`) plus SQLite's
    /// `data_version`, which grows on this connection whenever another
    /// connection commits (CPython's included): a number that grows with
    /// every commit by anyone, as seen by this handle.
    pub(crate) fn commits(&self) -> Result<u64, Error> {
        let c = self.conn()?;
        let op = "read the commit number";
        let version: i64 =
            c.query_row("PRAGMA data_version", [], |r| r.get(0)).tag(op).map_err(|e| self.err(e))?;
        let ours: i64 = if format::table_exists(&c, "shelf_meta").map_err(|e| self.err(e))? {
            c.query_row("SELECT COALESCE((SELECT value FROM shelf_meta WHERE name = ?), 0)", [COMMITS], |r| {
                r.get(0)
            })
            .tag(op)
            .map_err(|e| self.err(e))?
        } else {
            0
        };
        Ok(u64::try_from(ours.saturating_add(version)).unwrap_or(0))
    }
}
