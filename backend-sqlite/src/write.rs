//! Writes: one open transaction holds every unsynced write until
//! `flush` commits it, with the commit counter bumped inside it.

use shelf_core::{BatchOp, Error};

use crate::SqliteBackend;
use crate::error::{SqlError, Tag};
use crate::format::{self, BUILD_META, BUMP_COMMITS, DELETE_KEY, META_PREFIX, STORE_KV};

impl SqliteBackend {
    /// Opens the write transaction unless one is open. `BEGIN IMMEDIATE`
    /// takes SQLite's write lock at once (waiting up to the busy timeout
    /// for another writer), so the transaction can never fail later for
    /// a snapshot gone stale, as a deferred one upgraded to write can.
    fn begin(&self) -> Result<(), Error> {
        let c = self.conn()?;
        if c.is_autocommit() {
            c.execute_batch("BEGIN IMMEDIATE").tag("begin a write transaction").map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Stores one entry with CPython's `STORE_KV`.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.begin()?;
        let c = self.conn()?;
        c.prepare_cached(STORE_KV)
            .and_then(|mut s| s.execute([key, value]))
            .tag("insert")
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Removes one entry with CPython's `DELETE_KEY`; whether it was there.
    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.begin()?;
        let c = self.conn()?;
        let n = c
            .prepare_cached(DELETE_KEY)
            .and_then(|mut s| s.execute([key]))
            .tag("remove")
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Applies `ops` under a savepoint inside the write transaction: all
    /// of them, or (on an error) none.
    pub(crate) fn batch(&mut self, ops: &[BatchOp<'_>]) -> Result<(), Error> {
        self.begin()?;
        let c = self.conn()?;
        c.execute_batch("SAVEPOINT shelf_batch").tag("begin a batch").map_err(|e| self.err(e))?;
        let applied = ops.iter().try_for_each(|op| -> Result<(), SqlError> {
            match *op {
                BatchOp::Insert(k, v) => c.prepare_cached(STORE_KV).and_then(|mut s| s.execute([k, v])),
                BatchOp::Remove(k) => c.prepare_cached(DELETE_KEY).and_then(|mut s| s.execute([k])),
            }
            .map(drop)
            .tag("apply a batch")
        });
        let end = if applied.is_ok() {
            "RELEASE shelf_batch"
        } else {
            "ROLLBACK TO shelf_batch; RELEASE shelf_batch"
        };
        let ended = c.execute_batch(end).tag("end a batch");
        applied.and(ended).map_err(|e| self.err(e))
    }

    /// Commits the write transaction, if one is open, with the commit
    /// counter bumped in it: the durability point (`synchronous = FULL`
    /// syncs the WAL before the commit returns).
    pub(crate) fn commit(&mut self) -> Result<(), Error> {
        let c = self.conn()?;
        if c.is_autocommit() {
            return Ok(());
        }
        let done = c.execute_batch(&format!("{BUILD_META}; {BUMP_COMMITS}; COMMIT")).tag("commit");
        done.map_err(|e| self.err(e))
    }

    /// Sets a user metadata value (see the crate docs on the protocol
    /// record of a shelf CPython made).
    pub(crate) fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        if name == PROTOCOL_META && !self.shelf_made {
            // A shelf CPython made holds pickles, and CPython will go on
            // writing pickles into it: pickle needs no record (it is what
            // an unrecorded Python-format shelf means), and any other
            // protocol would leave values CPython cannot read.
            return if value == b"pickle" {
                Ok(())
            } else {
                Err(Error::Unsupported {
                    backend: crate::NAME,
                    operation: "recording a protocol other than pickle in a dbm.sqlite3 shelf that CPython made \
                                (its values must stay pickles; convert it to a new shelf instead)",
                })
            };
        }
        self.begin()?;
        let c = self.conn()?;
        c.execute_batch(BUILD_META)
            .and_then(|()| {
                c.prepare_cached(
                    "INSERT OR REPLACE INTO shelf_meta (name, value) VALUES (?, CAST(? AS BLOB))",
                )
                .and_then(|mut s| s.execute((format!("{META_PREFIX}{name}"), value)))
            })
            .tag("set metadata")
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A user metadata value.
    pub(crate) fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let c = self.conn()?;
        let op = "read metadata";
        if !format::table_exists(&c, "shelf_meta").map_err(|e| self.err(e))? {
            return Ok(None);
        }
        let mut stmt = c
            .prepare_cached("SELECT value FROM shelf_meta WHERE name = ?")
            .tag(op)
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([format!("{META_PREFIX}{name}")]).tag(op).map_err(|e| self.err(e))?;
        match rows.next().tag(op).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(row) => {
                let v = row.get_ref(0).tag(op).map_err(|e| self.err(e))?;
                crate::read::bytes_of(v, &format!("metadata {name:?}"), &self.path).map(Some)
            }
        }
    }
}

/// The metadata name shelf's `Shelf` records its protocol under.
const PROTOCOL_META: &str = "protocol";
