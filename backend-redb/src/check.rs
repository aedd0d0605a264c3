//! Maintenance: `check` (a read-only audit of shelf's checksums, or redb's
//! own repairing check followed by dropping the entries that fail) and
//! `compact`.

use redb::{DatabaseError, ReadableTable, ReadableTableMetadata, StorageError};
use shelf_core::raw::{self, show_key};
use shelf_core::{CheckReport, Error};

use crate::open::file_size;
use crate::shared::Shared;
use crate::snapshot::Handle;
use crate::{DATA, NAME, RedbBackend, backend_err, err};

/// Why redb's check or compaction cannot run: they need the database to
/// themselves.
#[derive(Debug, thiserror::Error)]
#[error("a read-only handle of this process shares the database; close it first")]
struct SharedWithReader;

/// [`SharedWithReader`] as shelf's error, naming the operation.
fn not_alone(operation: &'static str) -> Error {
    Error::Backend { backend: NAME, operation, source: Box::new(SharedWithReader) }
}

/// What an audit of the file found: the number of sound entries, one line
/// per problem, and the keys whose checksum failed.
struct Audit {
    good: u64,
    problems: Vec<String>,
    bad: Vec<Vec<u8>>,
}

impl RedbBackend {
    /// [`KvBackend::check`](shelf_core::KvBackend::check): with `repair =
    /// false` only reads (redb's own check, `Database::check_integrity`,
    /// repairs what it finds, so it runs only with `repair = true`).
    pub(crate) fn check_file(&mut self, repair: bool) -> Result<CheckReport, Error> {
        if !repair {
            let Audit { good, problems, .. } = self.audit()?;
            return Ok(CheckReport::new(good, problems, false));
        }
        self.life.writable("check")?;
        self.commit(false)?;
        self.invalidate();
        let Some(Handle::Db(shared)) = self.handle.as_mut() else {
            return Err(Error::read_only("check"));
        };
        let path = self.damage.path().display().to_string();
        let checked = Shared::exclusive(shared, |db| raw::shield(|| db.check_integrity()))
            .ok_or_else(|| not_alone("check the file"))?
            .unwrap_or_else(|message| Err(DatabaseError::Storage(StorageError::Corrupted(message))));
        let mut problems = Vec::new();
        let mut repaired = false;
        match checked {
            Ok(true) => {}
            Ok(false) => {
                problems.push(format!("{path}: redb's page checksums did not match; redb repaired the file"));
                repaired = true;
            }
            Err(DatabaseError::Storage(StorageError::Corrupted(detail))) => {
                problems.push(format!("{path}: corrupted beyond repair: {detail}"));
                return Ok(CheckReport::new(0, problems, false));
            }
            Err(e) => return Err(backend_err("check the file")(e.into())),
        }
        self.committed();
        let Audit { good, problems: found, bad } = self.audit()?;
        problems.extend(found);
        if !bad.is_empty() {
            // Entries whose checksum fails cannot be trusted: drop them,
            // in one durable commit, and name them.
            self.drop_entries(&bad)?;
            repaired = true;
        }
        Ok(CheckReport::new(good, problems, repaired).with_dropped_keys(bad))
    }

    /// Removes `keys` from the file in one durable commit.
    fn drop_entries(&mut self, keys: &[Vec<u8>]) -> Result<(), Error> {
        let Some(db) = self.handle.as_ref().and_then(Handle::db) else {
            return Err(Error::read_only("check"));
        };
        let txn = db.begin_write().map_err(err("begin a write transaction"))?;
        {
            let mut data = txn.open_table(DATA).map_err(err("open the data table"))?;
            for k in keys {
                data.remove(k.as_slice()).map_err(err("remove"))?;
            }
        }
        txn.commit().map_err(err("commit"))?;
        self.committed();
        Ok(())
    }

    /// Walks every entry and metadata value of the file (not the
    /// overlay), verifying checksums, order and the table's count.
    fn audit(&self) -> Result<Audit, Error> {
        let shown = self.damage.path().display().to_string();
        self.damage.shield("check the file", || {
            let snap = self.fresh_snapshot()?;
            let mut audit = Audit { good: 0, problems: Vec::new(), bad: Vec::new() };
            for (table, name) in [(&snap.data, "entries"), (&snap.meta, "metadata")] {
                let Some(t) = table else { continue };
                let expected = t.len().map_err(err("count the entries"))?;
                let (mut seen, mut last): (u64, Option<Vec<u8>>) = (0, None);
                for item in t.iter().map_err(err("read a range"))? {
                    let (k, v) = match item {
                        Ok(pair) => pair,
                        Err(e) => {
                            audit.problems.push(format!("{shown}: redb failed to read the {name}: {e}"));
                            break;
                        }
                    };
                    seen += 1;
                    let key = k.value();
                    if last.as_deref().is_some_and(|l| l >= key) {
                        audit
                            .problems
                            .push(format!("{shown}: {name} out of order at key {:?}", show_key(key)));
                    }
                    last = Some(key.to_vec());
                    if snap.form.is_sealed() && raw::unseal(key, v.value()).is_none() {
                        audit
                            .problems
                            .push(format!("{shown}: the checksum of key {:?} does not match", show_key(key)));
                        if name == "entries" {
                            audit.bad.push(key.to_vec());
                        }
                    } else if name == "entries" {
                        audit.good += 1;
                    }
                }
                if seen != expected {
                    audit
                        .problems
                        .push(format!("{shown}: the {name} table counts {expected} but holds {seen}"));
                }
            }
            Ok(audit)
        })
    }

    /// [`KvBackend::compact`](shelf_core::KvBackend::compact): commits, then
    /// lets redb compact until it has nothing more to give back.
    pub(crate) fn compact_file(&mut self) -> Result<u64, Error> {
        self.commit(false)?;
        self.invalidate();
        let path = self.damage.path().to_owned();
        let before = file_size(&path);
        let Some(Handle::Db(shared)) = self.handle.as_mut() else {
            return Err(Error::read_only("compact"));
        };
        let damage = &self.damage;
        let compacted = Shared::exclusive(shared, |db| {
            damage.shield("compact", || {
                while db.compact().map_err(err("compact"))? {}
                Ok(())
            })
        });
        compacted.ok_or_else(|| not_alone("compact"))??;
        self.committed();
        Ok(before.saturating_sub(file_size(&path)))
    }
}

#[cfg(test)]
mod tests {
    use redb::TableDefinition;
    use shelf_core::raw::BackendOptions;
    use shelf_core::{Flag, KvBackend};

    use super::*;

    #[test]
    fn check_false_only_reads_and_check_true_drops_what_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut b = RedbBackend::open(&path, &BackendOptions::with_flag(Flag::Create)).unwrap();
        for k in [&b"a"[..], b"b", b"c"] {
            b.insert(k, b"value").unwrap();
        }
        b.close().unwrap();
        // A value whose checksum does not match, written past the backend.
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shelf");
            txn.open_table(table).unwrap().insert(&b"b"[..], &b"garbage"[..]).unwrap();
        }
        txn.commit().unwrap();
        drop(db);

        let mut b = RedbBackend::open(&path, &BackendOptions::with_flag(Flag::Write)).unwrap();
        let before = std::fs::read(&path).unwrap();
        let report = b.check(false).unwrap();
        assert_eq!(report.good_entries, 2);
        assert!(report.problems.iter().any(|p| p.contains("checksum of key")), "{:?}", report.problems);
        assert!(!report.repaired && report.dropped_keys.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), before, "check(false) changed the file");

        let report = b.check(true).unwrap();
        assert!(report.repaired);
        assert_eq!(report.dropped_keys, [b"b".to_vec()]);
        assert_eq!(b.keys().unwrap().collect::<Result<Vec<_>, _>>().unwrap(), [b"a".to_vec(), b"c".to_vec()]);
        assert!(b.check(false).unwrap().problems.is_empty());
    }
}
