//! Reading: a value (through the open write transaction when this handle
//! has one, from a snapshot otherwise; a miss confirmed by a seek), the
//! number of entries, and listings (merged with the overlay in
//! multi-process mode).

use std::ops::Bound;

use redb::{ReadableTable, ReadableTableMetadata};
use shelf_core::raw::{Damage, ValueForm, show_key};
use shelf_core::{Error, KvPair, KvRange};

use crate::snapshot::{Snapshot, Table};
use crate::{RedbBackend, err};

/// A table of entries or metadata, in a snapshot or a write transaction.
pub(crate) trait Bytes: ReadableTable<&'static [u8], &'static [u8]> {}
impl<T: ReadableTable<&'static [u8], &'static [u8]>> Bytes for T {}

impl RedbBackend {
    /// The value of `key` in `t`, whose values are stored in `form`, its
    /// checksum verified.
    pub(crate) fn value_in(
        &self,
        form: ValueForm,
        t: &impl Bytes,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, Error> {
        let mut out = None;
        self.value_in_with(form, t, key, &mut |v| out = Some(v.to_vec()))?;
        Ok(out)
    }

    /// Hands the value of `key` in `t` to `f` as a slice of redb's value
    /// guard, its checksum verified, without copying it; whether the key
    /// is present.
    pub(crate) fn value_in_with(
        &self,
        form: ValueForm,
        t: &impl Bytes,
        key: &[u8],
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, Error> {
        if let Some(g) = t.get(key).map_err(err("read a value"))? {
            f(form.open(key, g.value(), &self.damage)?);
            return Ok(true);
        }
        if !form.is_sealed() {
            return Ok(false);
        }
        // A miss is confirmed by a range seek, which steps over leaf
        // boundaries: a damaged branch page that sends the lookup to the
        // wrong leaf often shows here (redb checks branch checksums only at
        // an open that verifies the file, and `check`).
        let next = t.range::<&[u8]>(key..).map_err(err("read a value"))?.next();
        match next.transpose().map_err(err("read a value"))? {
            Some((k, _)) if k.value() == key => Err(self.damage.corrupted(format!(
                "redb's index misses key {:?}, which a scan finds: a branch page is damaged",
                show_key(key)
            ))),
            _ => Ok(false),
        }
    }

    /// The value of `key` in `table` of `snap`, its checksum verified.
    pub(crate) fn db_get(
        &self,
        snap: &Snapshot,
        table: &Option<Table>,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, Error> {
        match table {
            None => Ok(None),
            Some(t) => self.value_in(snap.form, t, key),
        }
    }

    pub(crate) fn db_contains(table: &Option<Table>, key: &[u8]) -> Result<bool, Error> {
        match table {
            None => Ok(false),
            Some(t) => Ok(t.get(key).map_err(err("read a value"))?.is_some()),
        }
    }

    /// The value of `key` now: the overlay's (multi-process mode), the open
    /// write transaction's, or the file's.
    pub(crate) fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        if let Some(w) = &self.writing {
            return self.damage.shield("read", || self.value_in(self.form, w.table(), key));
        }
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.map(<[u8]>::to_vec));
        }
        self.with_snapshot(|s| self.db_get(s, &s.data, key))
    }

    /// [`value`](Self::value), handed to `f` without a copy where it comes
    /// from the file (the overlay's values are lent as they are).
    pub(crate) fn value_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, Error> {
        if let Some(w) = &self.writing {
            return self.damage.shield("read", || self.value_in_with(self.form, w.table(), key, f));
        }
        if let Some(v) = self.overlay.get(key) {
            let Some(v) = v else { return Ok(false) };
            f(v);
            return Ok(true);
        }
        self.with_snapshot(|s| match &s.data {
            None => Ok(false),
            Some(t) => self.value_in_with(s.form, t, key, f),
        })
    }

    /// The values of `keys`, from one snapshot (or the open write
    /// transaction).
    pub(crate) fn values(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if let Some(w) = &self.writing {
            return self
                .damage
                .shield("read", || keys.iter().map(|k| self.value_in(self.form, w.table(), k)).collect());
        }
        self.with_snapshot(|s| {
            keys.iter()
                .map(|k| match self.overlay.get(k) {
                    Some(v) => Ok(v.map(<[u8]>::to_vec)),
                    None => self.db_get(s, &s.data, k),
                })
                .collect()
        })
    }

    /// Whether `key` is present now.
    pub(crate) fn present(&self, key: &[u8]) -> Result<bool, Error> {
        if let Some(w) = &self.writing {
            return self.damage.shield("read", || w.contains(key));
        }
        match self.overlay.get(key) {
            Some(v) => Ok(v.is_some()),
            None => self.with_snapshot(|s| Self::db_contains(&s.data, key)),
        }
    }

    /// The number of entries now.
    pub(crate) fn count(&self) -> Result<usize, Error> {
        if let Some(w) = &self.writing {
            return self.damage.shield("count the entries", || w.len()).map(|n| n as usize);
        }
        if self.overlay.is_empty() {
            return self.with_snapshot(|s| match &s.data {
                None => Ok(0),
                Some(t) => t.len().map(|n| n as usize).map_err(err("count the entries")),
            });
        }
        // Multi-process mode: another process may have changed any key
        // since the overlay took it, so each is resolved against one fresh
        // snapshot.
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

    /// The entries within the bounds: of the open write transaction, or of
    /// the file merged with the overlay.
    pub(crate) fn merged<'a>(
        &'a self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
    ) -> Result<KvRange<'a>, Error> {
        // A walk over every key must yield as many entries as the table
        // counts: damage that drops entries is an error.
        let whole = matches!((lower, upper), (Bound::Unbounded, Bound::Unbounded));
        if let Some(w) = &self.writing {
            return self.damage.shield("read a range", || {
                let t = w.table();
                let expected = if whole { Some(t.len().map_err(err("count the entries"))?) } else { None };
                let range = t.range::<&[u8]>((lower, upper)).map_err(err("read a range"))?;
                let items = pairs(range, self.form, &self.damage);
                Ok(Box::new(self.damage.listing(items, expected, "read a range")) as KvRange<'a>)
            });
        }
        let db: KvRange<'static> = self.with_snapshot(|s| match &s.data {
            None => Ok(Box::new(std::iter::empty()) as KvRange<'static>),
            Some(t) => {
                let expected = if whole { Some(t.len().map_err(err("count the entries"))?) } else { None };
                // The snapshot's own range, which does not borrow the table.
                let range = t.range::<&[u8]>((lower, upper)).map_err(err("read a range"))?;
                let items = pairs(range, s.form, &self.damage);
                Ok(Box::new(self.damage.listing(items, expected, "read a range")) as KvRange<'static>)
            }
        })?;
        Ok(self.overlay.merge(db, lower, upper))
    }
}

/// The entries of `range` as owned pairs, their checksums verified.
fn pairs<'r>(
    range: redb::Range<'r, &'static [u8], &'static [u8]>,
    form: ValueForm,
    damage: &Damage,
) -> impl DoubleEndedIterator<Item = Result<KvPair, Error>> + use<'r> {
    let damage = damage.clone();
    range.map(move |item| {
        let (k, v) = item.map_err(err("read a range"))?;
        let value = form.open(k.value(), v.value(), &damage)?.to_vec();
        Ok((k.value().to_vec(), value))
    })
}
