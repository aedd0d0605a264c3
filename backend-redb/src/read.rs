//! Reading: a value from a snapshot (a miss confirmed by a seek), the
//! number of entries, and listings merged with the overlay.

use std::ops::Bound;

use redb::ReadableTableMetadata;
use shelf_core::raw::show_key;
use shelf_core::{Error, KvRange};

use crate::snapshot::{Snapshot, Table};
use crate::{RedbBackend, err};

impl RedbBackend {
    /// The value of `key` in `table` of `snap`, its checksum verified.
    pub(crate) fn db_get(
        &self,
        snap: &Snapshot,
        table: &Option<Table>,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, Error> {
        let Some(t) = table else { return Ok(None) };
        if let Some(g) = t.get(key).map_err(err("read a value"))? {
            return Ok(Some(snap.form.open(key, g.value(), &self.damage)?.to_vec()));
        }
        if !snap.form.is_sealed() {
            return Ok(None);
        }
        // A miss is confirmed by a range seek, which steps over leaf
        // boundaries: a damaged branch page that sends the lookup to the
        // wrong leaf often shows here (redb checks branch checksums only at
        // a writable open and `check`).
        let next = t.range::<&[u8]>(key..).map_err(err("read a value"))?.next();
        match next.transpose().map_err(err("read a value"))? {
            Some((k, _)) if k.value() == key => Err(self.damage.corrupted(format!(
                "redb's index misses key {:?}, which a scan finds: a branch page is damaged",
                show_key(key)
            ))),
            _ => Ok(None),
        }
    }

    pub(crate) fn db_contains(table: &Option<Table>, key: &[u8]) -> Result<bool, Error> {
        match table {
            None => Ok(false),
            Some(t) => Ok(t.get(key).map_err(err("read a value"))?.is_some()),
        }
    }

    /// Whether `key` is present now, counting the overlay.
    pub(crate) fn present(&self, key: &[u8]) -> Result<bool, Error> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.is_some()),
            None => self.with_snapshot(|s| Self::db_contains(&s.data, key)),
        }
    }

    /// The number of entries, counting the overlay.
    pub(crate) fn count(&self) -> Result<usize, Error> {
        if !self.multi_process {
            let base = self.with_snapshot(|s| match &s.data {
                None => Ok(0),
                Some(t) => t.len().map_err(err("count the entries")),
            })?;
            return Ok((base as i128 + self.len_delta as i128).max(0) as usize);
        }
        // Another process may have changed any key since the overlay took
        // it: resolve each against one fresh snapshot.
        self.with_snapshot(|snap| {
            let Some(t) = &snap.data else {
                return Ok(self.overlay.writes().filter(|(_, v)| v.is_some()).count());
            };
            let mut n = t.len().map_err(err("count the entries"))? as i128;
            for (k, v) in self.overlay.writes() {
                let in_db = t.get(k).map_err(err("read a value"))?.is_some();
                n += v.is_some() as i128 - in_db as i128;
            }
            Ok(n.max(0) as usize)
        })
    }

    /// The entries of the file within the bounds, merged with the overlay.
    pub(crate) fn merged<'a>(
        &'a self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
    ) -> Result<KvRange<'a>, Error> {
        let db: KvRange<'static> = self.with_snapshot(|s| match &s.data {
            None => Ok(Box::new(std::iter::empty()) as KvRange<'static>),
            Some(t) => {
                let r = t.range::<&[u8]>((lower, upper)).map_err(err("read a range"))?;
                let (damage, form) = (self.damage.clone(), s.form);
                let items = r.map(move |item| {
                    let (k, v) = item.map_err(err("read a range"))?;
                    let value = form.open(k.value(), v.value(), &damage)?.to_vec();
                    Ok((k.value().to_vec(), value))
                });
                // A walk over every key must yield as many entries as the
                // table counts: damage that drops entries is an error.
                let whole = matches!((lower, upper), (Bound::Unbounded, Bound::Unbounded));
                let expected = if whole { Some(t.len().map_err(err("count the entries"))?) } else { None };
                Ok(Box::new(self.damage.listing(items, expected, "read a range")) as KvRange<'static>)
            }
        })?;
        Ok(self.overlay.merge(db, lower, upper))
    }
}
