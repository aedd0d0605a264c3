//! The raw-engine rows: redb, sled and SQLite through their own APIs, with
//! the same keys, values and orders as the shelf rows, no shelf in between,
//! so the table can show what the shelf costs on top of its engine.
//!
//! Each does what a careful user of the engine would: writes in one
//! transaction (or one flush) per workload, gets from one read
//! transaction, values read in place where the engine lends them. SQLite
//! runs as backend-sqlite and CPython's dbm.sqlite3 run it (WAL,
//! `synchronous=FULL`, their `Dict` table).

use std::path::Path;
use std::time::{Duration, Instant};

use super::parallel::two_threads;
use super::{Data, best_of, timing};
use crate::error::CliError;
use crate::report::{BackendResult, RowKind, Timing};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An engine with a raw row.
#[derive(Debug, Clone, Copy)]
pub(super) enum Engine {
    Redb,
    Sled,
    Sqlite,
}

impl Engine {
    /// The raw engine under backend `name`, if it has a row.
    pub(super) fn of(name: &str) -> Option<Engine> {
        match name {
            "redb" => Some(Engine::Redb),
            "sled" => Some(Engine::Sled),
            "sqlite" => Some(Engine::Sqlite),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Engine::Redb => "redb",
            Engine::Sled => "sled",
            Engine::Sqlite => "sqlite",
        }
    }
}

/// What a raw run gathers.
#[derive(Default)]
struct Run {
    timings: Vec<Timing>,
    bytes_after_sync: Option<u64>,
    bytes_after_compact: Option<u64>,
    notes: Vec<String>,
}

impl Run {
    fn time<T>(
        &mut self,
        workload: &str,
        ops: usize,
        f: impl FnOnce() -> Result<T, BoxError>,
    ) -> Result<T, BoxError> {
        let start = Instant::now();
        let r = f()?;
        self.timings.push(timing(workload, ops as u64, start.elapsed()));
        Ok(r)
    }

    /// A read workload, per [`best_of`]: `f` returns the values found.
    fn read(
        &mut self,
        workload: &str,
        ops: usize,
        mut f: impl FnMut() -> Result<u64, BoxError>,
    ) -> Result<u64, BoxError> {
        let (found, d) = best_of(|| {
            let start = Instant::now();
            let found = f()?;
            Ok::<_, BoxError>((found, start.elapsed()))
        })?;
        self.timings.push(timing(workload, ops as u64, d));
        Ok(found)
    }

    /// `get-2t`, from the result of [`two_threads`].
    fn two(&mut self, data: &Data, r: Result<(u64, Duration), CliError>) -> Result<(), BoxError> {
        let (found, d) = r.map_err(|e| e.message)?;
        expect("get-2t", found, 2 * data.n())?;
        self.timings.push(timing("get-2t", found, d));
        Ok(())
    }
}

fn expect(workload: &str, got: u64, want: usize) -> Result<(), BoxError> {
    if got == want as u64 {
        Ok(())
    } else {
        Err(format!("{workload} found {got} of {want} values intact").into())
    }
}

/// Runs the raw row of `engine` in `dir`.
pub(super) fn run(engine: Engine, dir: &Path, data: &Data) -> Result<BackendResult, CliError> {
    let name = format!("{}-raw", engine.name());
    let bar = crate::db::progress(None, &name);
    let mut run = Run::default();
    let done = match engine {
        Engine::Redb => redb_row(&dir.join("db"), data, &mut run),
        Engine::Sled => sled_row(&dir.join("db"), data, &mut run),
        Engine::Sqlite => sqlite_row(&dir.join("db"), data, &mut run),
    };
    bar.finish_and_clear();
    done.map_err(|e| CliError::env(format!("bench of {name}: {e}")))?;
    if run.bytes_after_sync.is_none() {
        run.bytes_after_sync = Some(crate::db::size_on_disk(dir));
    }
    Ok(BackendResult {
        backend: name,
        kind: RowKind::Raw,
        engine: engine.name().to_owned(),
        protocol: "-".to_owned(),
        timings: run.timings,
        bytes_after_sync: run.bytes_after_sync,
        bytes_after_compact: run.bytes_after_compact,
        notes: run.notes,
        row_seconds: None,
    })
}

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("bench");

fn redb_row(path: &Path, data: &Data, run: &mut Run) -> Result<(), BoxError> {
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
    let n = data.n();
    let size = data.value_size;
    let write =
        |db: &redb::Database, pairs: &mut dyn Iterator<Item = (&[u8], &[u8])>| -> Result<(), BoxError> {
            let txn = db.begin_write()?;
            {
                let mut t = txn.open_table(REDB_TABLE)?;
                for (k, v) in pairs {
                    t.insert(k, v)?;
                }
            }
            txn.commit()?;
            Ok(())
        };
    let read = |db: &redb::Database, order: &[usize]| -> Result<u64, BoxError> {
        let txn = db.begin_read()?;
        let t = txn.open_table(REDB_TABLE)?;
        let mut found = 0u64;
        for &i in order {
            found += u64::from(t.get(data.keys[i].as_bytes())?.is_some_and(|g| g.value().len() == size));
        }
        Ok(found)
    };

    let db = run.time("insert", n, || {
        let db = redb::Database::create(path)?;
        write(&db, &mut data.keys.iter().map(|k| k.as_bytes()).zip(data.values.iter().map(|v| &v[..])))?;
        Ok(db)
    })?;
    let found = run.read("get", n, || read(&db, &data.order))?;
    expect("get", found, n)?;
    run.two(
        data,
        best_of(|| two_threads(|order| read(&db, order).map_err(|e| CliError::env(e.to_string())), data)),
    )?;
    run.time("overwrite", n, || {
        write(&db, &mut data.order.iter().map(|&i| (data.keys[i].as_bytes(), &data.fresh[i][..])))
    })?;
    let seen = run.read("iterate", n, || {
        let txn = db.begin_read()?;
        let t = txn.open_table(REDB_TABLE)?;
        let mut seen = 0u64;
        for item in t.iter()? {
            let (_, v) = item?;
            seen += u64::from(v.value().len() == size);
        }
        Ok(seen)
    })?;
    expect("iterate", seen, n)?;
    drop(db);
    let (mut db, len) = run.time("reopen", n, || {
        let db = redb::Database::open(path)?;
        let len = db.begin_read()?.open_table(REDB_TABLE)?.len()?;
        Ok((db, len))
    })?;
    expect("reopen", len, n)?;
    run.time("delete", n / 2, || {
        let txn = db.begin_write()?;
        {
            let mut t = txn.open_table(REDB_TABLE)?;
            for &i in &data.order[..n / 2] {
                t.remove(data.keys[i].as_bytes())?;
            }
        }
        txn.commit()?;
        Ok(())
    })?;
    let dir = path.parent().unwrap_or(path);
    run.bytes_after_sync = Some(crate::db::size_on_disk(dir));
    db.compact()?;
    run.bytes_after_compact = Some(crate::db::size_on_disk(dir));
    Ok(())
}

/// How long a dropped sled database may keep its lock (its background
/// threads let go a moment later).
const SLED_RELEASE: Duration = Duration::from_secs(5);

fn sled_row(path: &Path, data: &Data, run: &mut Run) -> Result<(), BoxError> {
    let n = data.n();
    let size = data.value_size;
    let read = |t: &sled::Tree, order: &[usize]| -> Result<u64, BoxError> {
        let mut found = 0u64;
        for &i in order {
            found += u64::from(t.get(data.keys[i].as_bytes())?.is_some_and(|v| v.len() == size));
        }
        Ok(found)
    };
    let open = || -> Result<(sled::Db, sled::Tree), BoxError> {
        let db = sled::Config::new().path(path).open()?;
        let t = db.open_tree("bench")?;
        Ok((db, t))
    };

    let (db, t) = run.time("insert", n, || {
        let (db, t) = open()?;
        for (k, v) in data.keys.iter().zip(&data.values) {
            t.insert(k.as_bytes(), &v[..])?;
        }
        db.flush()?;
        Ok((db, t))
    })?;
    let found = run.read("get", n, || read(&t, &data.order))?;
    expect("get", found, n)?;
    run.two(
        data,
        best_of(|| two_threads(|order| read(&t, order).map_err(|e| CliError::env(e.to_string())), data)),
    )?;
    run.time("overwrite", n, || {
        for &i in &data.order {
            t.insert(data.keys[i].as_bytes(), &data.fresh[i][..])?;
        }
        db.flush()?;
        Ok(())
    })?;
    let seen = run.read("iterate", n, || {
        let mut seen = 0u64;
        for item in t.iter() {
            let (_, v) = item?;
            seen += u64::from(v.len() == size);
        }
        Ok(seen)
    })?;
    expect("iterate", seen, n)?;
    drop((t, db));
    shelf::raw::wait_for_release(&path.join("db"), SLED_RELEASE);
    let (db, t, len) = run.time("reopen", n, || {
        let (db, t) = open()?;
        let len = t.len();
        Ok((db, t, len))
    })?;
    expect("reopen", len as u64, n)?;
    run.time("delete", n / 2, || {
        for &i in &data.order[..n / 2] {
            t.remove(data.keys[i].as_bytes())?;
        }
        db.flush()?;
        Ok(())
    })?;
    drop((t, db));
    shelf::raw::wait_for_release(&path.join("db"), SLED_RELEASE);
    Ok(())
}

/// backend-sqlite's and CPython's table.
const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS Dict (key BLOB UNIQUE NOT NULL, value BLOB NOT NULL)";
const SQLITE_UPSERT: &str = "INSERT INTO Dict (key, value) VALUES (?1, ?2) \
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value";

fn sqlite_row(path: &Path, data: &Data, run: &mut Run) -> Result<(), BoxError> {
    let n = data.n();
    let size = data.value_size;
    let open = || -> Result<rusqlite::Connection, BoxError> {
        let c = rusqlite::Connection::open(path)?;
        c.query_row("PRAGMA journal_mode = wal", [], |_| Ok(()))?;
        c.pragma_update(None, "synchronous", "FULL")?;
        c.execute(SQLITE_SCHEMA, [])?;
        Ok(c)
    };
    let write = |c: &mut rusqlite::Connection, pairs: &mut dyn Iterator<Item = (&[u8], &[u8])>| {
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(SQLITE_UPSERT)?;
            for (k, v) in pairs {
                st.execute((k, v))?;
            }
        }
        tx.commit()?;
        Ok::<(), BoxError>(())
    };
    let read = |c: &rusqlite::Connection, order: &[usize]| -> Result<u64, BoxError> {
        let mut st = c.prepare_cached("SELECT length(value) FROM Dict WHERE key = ?1")?;
        let mut found = 0u64;
        for &i in order {
            let len: Option<i64> = st
                .query_row([data.keys[i].as_bytes()], |r| r.get(0))
                .map(Some)
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
            found += u64::from(len == Some(size as i64));
        }
        Ok(found)
    };

    let mut c = run.time("insert", n, || {
        let mut c = open()?;
        write(&mut c, &mut data.keys.iter().map(|k| k.as_bytes()).zip(data.values.iter().map(|v| &v[..])))?;
        Ok(c)
    })?;
    let found = run.read("get", n, || read(&c, &data.order))?;
    expect("get", found, n)?;
    // A connection is not Sync: a connection per thread, as SQLite is used.
    let readers = best_of(|| {
        super::parallel::separate_readers_with(
            || open().map_err(|e| CliError::env(e.to_string())),
            |c: rusqlite::Connection, order| read(&c, order).map_err(|e| CliError::env(e.to_string())),
            data,
        )
        .and_then(|r| r)
    });
    run.two(data, readers)?;
    run.time("overwrite", n, || {
        write(&mut c, &mut data.order.iter().map(|&i| (data.keys[i].as_bytes(), &data.fresh[i][..])))
    })?;
    let seen = run.read("iterate", n, || {
        let mut st = c.prepare("SELECT key, value FROM Dict")?;
        let mut rows = st.query([])?;
        let mut seen = 0u64;
        while let Some(r) = rows.next()? {
            let v = r.get_ref(1)?.as_blob()?;
            seen += u64::from(v.len() == size);
        }
        Ok(seen)
    })?;
    expect("iterate", seen, n)?;
    drop(c);
    let (c, len) = run.time("reopen", n, || {
        let c = open()?;
        let len: i64 = c.query_row("SELECT COUNT(*) FROM Dict", [], |r| r.get(0))?;
        Ok((c, len))
    })?;
    expect("reopen", len as u64, n)?;
    let mut c = c;
    run.time("delete", n / 2, || {
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached("DELETE FROM Dict WHERE key = ?1")?;
            for &i in &data.order[..n / 2] {
                st.execute([data.keys[i].as_bytes()])?;
            }
        }
        tx.commit()?;
        Ok(())
    })?;
    let dir = path.parent().unwrap_or(path);
    run.bytes_after_sync = Some(crate::db::size_on_disk(dir));
    c.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?;
    run.bytes_after_compact = Some(crate::db::size_on_disk(dir));
    run.notes.push("WAL, synchronous=FULL, one transaction per write workload".to_owned());
    Ok(())
}
