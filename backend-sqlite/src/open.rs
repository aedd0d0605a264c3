//! Opening and probing: flags as CPython's `dbm.sqlite3` applies them,
//! and the checks that keep shelf's hands off every other SQLite file.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::ffi::ErrorCode;
use rusqlite::{Connection, OpenFlags};
use shelf_core::raw::{BackendOptions, Lifecycle, Probe, retry_while_locked};
use shelf_core::{Flag, OpenError};

use crate::SqliteBackend;
use crate::error::{SqlError, Tag};
use crate::format::{self, BUILD_META, BUILD_TABLE, CREATED, Schema};

/// How long writes wait for another connection's write lock when no lock
/// timeout is asked for: CPython's `sqlite3.connect` default, so a shelf
/// process and a CPython process wait for each other alike.
pub(crate) const DEFAULT_BUSY: Duration = Duration::from_secs(5);

/// Runs `attempt` until no other connection holds the lock, within the
/// options' lock deadline (SQLite's own busy handler is off while opening,
/// so the deadline is the toolkit's, as in every backend).
fn retrying<T>(
    path: &Path,
    options: &BackendOptions,
    mut attempt: impl FnMut() -> Result<T, SqlError>,
) -> Result<T, OpenError> {
    retry_while_locked(path, options, || match attempt() {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_busy() => Ok(None),
        Err(e) => Err(e.into_open_error(path)),
    })
}

/// Opens a connection by URI (`query` holds `mode=` and the like).
fn connect(path: &Path, query: &str, read_write: bool) -> Result<Connection, OpenError> {
    let access =
        if read_write { OpenFlags::SQLITE_OPEN_READ_WRITE } else { OpenFlags::SQLITE_OPEN_READ_ONLY };
    let conn = Connection::open_with_flags(
        format::uri(path, query),
        access | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .tag("open the database")
    .map_err(|e| e.into_open_error(path))?;
    // rusqlite sets a busy timeout of its own; while opening, the toolkit's
    // deadline decides instead.
    conn.busy_timeout(Duration::ZERO).tag("set the busy timeout").map_err(|e| e.into_open_error(path))?;
    Ok(conn)
}

/// The SQLite error of a connection that cannot read because the file or
/// its directory is read-only (no `-shm` can be made beside it).
fn is_unwritable(e: &SqlError) -> bool {
    matches!(
        e.source.sqlite_error_code(),
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied)
    )
}

/// What is at `path`: `Mine` for an SQLite file with CPython's `Dict`
/// table, `Foreign` for anything else that exists, `Absent` when nothing
/// does. Changes nothing and creates nothing (see the crate docs).
pub(crate) fn probe(path: &Path) -> Probe {
    let Ok(meta) = std::fs::metadata(path) else {
        return if path.symlink_metadata().is_ok() { Probe::Foreign } else { Probe::Absent };
    };
    if !meta.is_file() || !format::has_header(path) {
        return Probe::Foreign;
    }
    // No `-wal` beside the file: no connection is open and the main file
    // holds every commit, so `immutable=1` reads it without creating the
    // `-wal`/`-shm` a normal read-only connection would leave behind.
    // With a `-wal`, another connection is (or was) using the database and
    // its files are already there: a plain read-only connection reads
    // through them.
    let in_use = crate::sidecar(path, "-wal").exists();
    let query = if in_use { "mode=ro" } else { "immutable=1" };
    let schema = connect(path, query, false).ok().map(|c| format::schema(&c));
    match schema {
        Some(Ok(Schema::Dict)) => Probe::Mine,
        Some(Ok(Schema::Other)) => Probe::Foreign,
        // The header is SQLite's but the schema cannot be read (damage,
        // or a writer mid-recovery): `open` checks the schema again and
        // reports what it finds, never writing a file without `Dict`.
        Some(Err(_)) | None => Probe::Mine,
    }
}

/// Opens the database at `path` per the options' flag.
pub(crate) fn open(path: &Path, options: &BackendOptions) -> Result<SqliteBackend, OpenError> {
    let flag = options.flag;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(OpenError::Undetectable { path: path.to_owned() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !flag.creates() {
                return Err(OpenError::NotFound { path: path.to_owned(), flag: flag.as_char() });
            }
            return create(path, options);
        }
        Err(e) => return Err(OpenError::io(path, e)),
    }
    if !format::has_header(path) {
        return Err(OpenError::Undetectable { path: path.to_owned() });
    }
    // Flag `r` opens read-write too, with `query_only` on: a read-only
    // SQLite connection cannot remove the `-wal`/`-shm` it creates, so
    // CPython's flag `r` leaves them beside the file; this one, when it is
    // the last connection, removes them as writers do. Where the file or
    // its directory cannot be written (a read-only mount), `immutable=1`
    // reads the file as it is, as no one can be changing it there.
    let mut conn = connect(path, "mode=rw", true)?;
    if flag == Flag::Read {
        conn.pragma_update(None, "query_only", true)
            .tag("set query_only")
            .map_err(|e| e.into_open_error(path))?;
    }
    let schema = match retrying(path, options, || format::schema(&conn)) {
        Err(OpenError::Backend { .. }) if flag == Flag::Read => {
            conn = connect(path, "immutable=1", false)?;
            retrying(path, options, || format::schema(&conn))?
        }
        Err(OpenError::Backend { source, .. })
            if source.downcast_ref::<SqlError>().is_some_and(is_unwritable) =>
        {
            return Err(OpenError::Unsupported {
                backend: crate::NAME,
                operation: format!("writing {}: the file or its directory is read-only", path.display()),
            });
        }
        other => other?,
    };
    if schema != Schema::Dict {
        // Another program's SQLite database: never written, never emptied.
        return Err(OpenError::Undetectable { path: path.to_owned() });
    }
    let mut backend = SqliteBackend::new(conn, path, options);
    if flag.is_writable() {
        backend.set_up(options)?;
        if flag == Flag::New {
            backend.start_empty(options)?;
        }
    }
    backend.shelf_made = backend.read_created().map_err(|e| e.into_open_error(path))?;
    backend.arm_busy_timeout().map_err(|e| e.into_open_error(path))?;
    Ok(backend)
}

/// Creates a new database at `path` (missing until now): the file with
/// the options' mode, as CPython's `Path.touch(mode=mode)` does, then
/// CPython's table and shelf's, in one transaction.
fn create(path: &Path, options: &BackendOptions) -> Result<SqliteBackend, OpenError> {
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(options.mode).open(path) {
        Ok(_) => {}
        // Created by another process meanwhile: open what it made.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut existing = options.clone();
            existing.flag = Flag::Write;
            return open(path, &existing);
        }
        Err(e) => return Err(OpenError::io(path, e)),
    }
    let made = (|| {
        let conn = connect(path, "mode=rw", true)?;
        let mut backend = SqliteBackend::new(conn, path, options);
        backend.set_up(options)?;
        let c = backend.conn_for_open()?;
        retrying(path, options, || {
            c.execute_batch(&format!(
                "BEGIN IMMEDIATE; {BUILD_TABLE}; {BUILD_META}; \
                 INSERT OR REPLACE INTO shelf_meta (name, value) VALUES ('{CREATED}', 1); COMMIT;"
            ))
            .tag("create the tables")
            .inspect_err(|_| {
                let _ = c.execute_batch("ROLLBACK");
            })
        })?;
        backend.shelf_made = true;
        backend.arm_busy_timeout().map_err(|e| e.into_open_error(path))?;
        Ok(backend)
    })();
    if made.is_err() {
        // The file is the empty one made above: leave nothing behind.
        let _ = std::fs::remove_file(path);
    }
    made
}

impl SqliteBackend {
    /// A handle on an open connection, not yet set up.
    pub(crate) fn new(conn: Connection, path: &Path, options: &BackendOptions) -> Self {
        SqliteBackend {
            conn: Some(std::sync::Mutex::new(conn)),
            path: path.to_owned(),
            life: Lifecycle::new(options.flag),
            busy: options.lock_timeout.unwrap_or(DEFAULT_BUSY),
            shelf_made: false,
        }
    }

    /// The connection while opening (never closed then, nor shared).
    fn conn_for_open(&mut self) -> Result<&mut Connection, OpenError> {
        let conn = self.conn.as_mut().map(|m| m.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner));
        conn.ok_or_else(|| OpenError::Unsupported {
            backend: crate::NAME,
            operation: "opening a closed handle".into(),
        })
    }

    /// A writable connection's settings: CPython's WAL journal, and
    /// `synchronous = FULL` so that a committed flush survives power loss
    /// (NORMAL, WAL's usual setting, syncs only at checkpoints: a commit
    /// could be lost, though never torn).
    fn set_up(&mut self, options: &BackendOptions) -> Result<(), OpenError> {
        let path = self.path.clone();
        let c = self.conn_for_open()?;
        // CPython: "This is an optimization only; it's ok if it fails."
        // Only a lock is worth waiting for.
        retrying(&path, options, || {
            match c.query_row("PRAGMA journal_mode = wal", [], |r| r.get::<_, String>(0)) {
                Ok(_) => Ok(()),
                Err(e) => {
                    let e = SqlError::new("set the WAL journal", e);
                    if e.is_busy() { Err(e) } else { Ok(()) }
                }
            }
        })?;
        c.pragma_update(None, "synchronous", "FULL")
            .tag("set synchronous")
            .map_err(|e| e.into_open_error(&path))
    }

    /// Flag `n` on an existing `Dict` database: everything removed in one
    /// transaction (CPython unlinks and recreates the file; one
    /// transaction keeps other connections' view whole). The commit
    /// counter is kept, so commit numbers still only grow.
    fn start_empty(&mut self, options: &BackendOptions) -> Result<(), OpenError> {
        let path = self.path.clone();
        let c = self.conn_for_open()?;
        retrying(&path, options, || {
            c.execute_batch(&format!(
                "BEGIN IMMEDIATE; DELETE FROM Dict; {BUILD_META}; \
                 DELETE FROM shelf_meta WHERE name != '{commits}'; \
                 INSERT INTO shelf_meta (name, value) VALUES ('{CREATED}', 1); {bump}; COMMIT;",
                commits = format::COMMITS,
                bump = format::BUMP_COMMITS,
            ))
            .tag("empty the database (flag n)")
            .inspect_err(|_| {
                let _ = c.execute_batch("ROLLBACK");
            })
        })
    }

    /// Whether shelf created this database (so it may record a protocol).
    fn read_created(&self) -> Result<bool, SqlError> {
        let Some(c) = self.conn.as_ref().map(crate::lock) else { return Ok(false) };
        if !format::table_exists(&c, "shelf_meta")? {
            return Ok(false);
        }
        c.prepare_cached("SELECT 1 FROM shelf_meta WHERE name = ?")
            .and_then(|mut s| s.exists([CREATED]))
            .tag("read shelf_meta")
    }

    /// From now on, writes wait for another connection's lock as long as
    /// the options' lock timeout (CPython's 5 s without one).
    fn arm_busy_timeout(&self) -> Result<(), SqlError> {
        match self.conn.as_ref().map(crate::lock) {
            Some(c) => c.busy_timeout(self.busy).tag("set the busy timeout"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use shelf_core::KvBackend;

    use super::*;

    #[test]
    fn probes_tell_missing_foreign_and_mine_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        assert_eq!(probe(&path), Probe::Absent);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(probe(&path), Probe::Foreign, "an empty file is not proof of anything");
        std::fs::write(&path, b"SQLite format 2\0 and more").unwrap();
        assert_eq!(probe(&path), Probe::Foreign);
        std::fs::remove_file(&path).unwrap();
        let mut b = open(&path, &BackendOptions::default()).unwrap();
        b.close().unwrap();
        assert_eq!(probe(&path), Probe::Mine);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no -wal/-shm after close or probe");
        let missing = dir.path().join("missing");
        let err = open(&missing, &BackendOptions::with_flag(Flag::Read)).unwrap_err();
        assert!(matches!(err, OpenError::NotFound { .. }), "{err}");
        assert!(!missing.exists());
    }

    #[test]
    fn a_python_made_file_records_no_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("py");
        // What CPython's dbm.sqlite3 leaves: the Dict table alone, WAL.
        let c = Connection::open(&path).unwrap();
        c.query_row("PRAGMA journal_mode = wal", [], |_| Ok(())).unwrap();
        c.execute_batch(BUILD_TABLE).unwrap();
        drop(c);
        let mut b = open(&path, &BackendOptions::with_flag(Flag::Write)).unwrap();
        b.set_metadata("protocol", b"pickle").unwrap();
        assert!(matches!(b.set_metadata("protocol", b"json"), Err(shelf_core::Error::Unsupported { .. })));
        b.flush().unwrap();
        assert_eq!(b.metadata("protocol").unwrap(), None);
        b.insert(b"k", b"v").unwrap();
        b.set_metadata("other", b"x").unwrap();
        b.close().unwrap();
        let b = open(&path, &BackendOptions::with_flag(Flag::Read)).unwrap();
        assert_eq!(b.metadata("other").unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(b.metadata("protocol").unwrap(), None);
        assert!(b.commit_number().unwrap() > 0);
    }

    fn with_timeout(flag: Flag) -> BackendOptions {
        let mut o = BackendOptions::with_flag(flag);
        o.lock_timeout = Some(Duration::from_millis(100));
        o
    }

    #[test]
    fn a_reader_beside_the_writer_in_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = open(&path, &with_timeout(Flag::Create)).unwrap();
        w.insert(b"a", b"1").unwrap();
        w.flush().unwrap();
        let r = open(&path, &with_timeout(Flag::Read)).unwrap();
        assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1"[..]), "synced data");
        w.insert(b"b", b"2").unwrap();
        assert_eq!(r.get(b"b").unwrap(), None, "a connection of its own: unsynced writes are the writer's");
        assert_eq!(
            w.get_many(&[b"a", b"b", b"c"]).unwrap(),
            [Some(b"1".to_vec()), Some(b"2".to_vec()), None]
        );
        // A second writer opens (SQLite's locks are per write), but its
        // write waits for the first one's transaction, then gives up.
        let mut w2 = open(&path, &with_timeout(Flag::Write)).unwrap();
        assert!(matches!(w2.insert(b"x", b"y"), Err(shelf_core::Error::Timeout { .. })));
        w2.close().unwrap();
        w.flush().unwrap();
        assert_eq!(
            r.get_many(&[b"b", b"a"]).unwrap(),
            [Some(b"2".to_vec()), Some(b"1".to_vec())],
            "later syncs"
        );
        drop(w);
        assert_eq!(r.keys().unwrap().collect::<Result<Vec<_>, _>>().unwrap(), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(r.len().unwrap(), 2, "the reader outlives the writer");
    }

    #[test]
    fn reads_share_the_handle_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = open(&path, &BackendOptions::default()).unwrap();
        for i in 0..600u32 {
            w.insert(&i.to_be_bytes(), &i.to_le_bytes()).unwrap();
        }
        w.flush().unwrap();
        let found: Vec<usize> = std::thread::scope(|s| {
            let w = &w;
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(move || {
                        // Listings lock page by page: gets run between.
                        let keys = w.keys().unwrap();
                        keys.map(|k| w.get(&k.unwrap()).unwrap().map_or(0, |_| 1)).sum()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(found, [600, 600]);
    }

    #[test]
    fn uris_escape_every_odd_byte() {
        let u = format::uri(Path::new("/tmp/a b?c#d%e"), "mode=ro");
        assert_eq!(u, "file:/tmp/a%20b%3Fc%23d%25e?mode=ro");
    }
}
