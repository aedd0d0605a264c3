//! The file's format record and the commit number: which files carry
//! checksums, how a blank file gets the current format, and how a file
//! that lost its record to damage is told from one written before
//! checksums.

use redb::{ReadableTable, ReadableTableMetadata};
use shelf_core::Error;
use shelf_core::raw::{self, ValueForm};

use crate::snapshot::Handle;
use crate::{COMMIT_KEY, FORMAT_KEY, FORMAT_SEALED};
use crate::{DATA, META, RedbBackend, err};

/// What a file's format record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Values carry checksums.
    Sealed,
    /// Written before checksums: plain values.
    Unsealed,
    /// No table yet: nothing was ever committed.
    Blank,
}

impl RedbBackend {
    /// Learns the format of an existing file from its format record. A file
    /// without one was written before checksums, unless its values say
    /// otherwise: a sealed commit number (twelve bytes) or a first entry
    /// whose checksum matches mean the record was lost to damage.
    pub(crate) fn detect_format(&mut self) -> Result<Format, Error> {
        let format = self.damage.shield("read the format", || self.read_format())?;
        if format == Format::Sealed {
            self.form = ValueForm::Sealed;
            self.invalidate();
        }
        Ok(format)
    }

    /// The file's format (see [`Self::detect_format`]).
    fn read_format(&self) -> Result<Format, Error> {
        let snap = self.fresh_snapshot()?;
        if snap.data.is_none() && snap.meta.is_none() {
            return Ok(Format::Blank);
        }
        let damaged = |detail: &str| self.damage.corrupted(detail);
        if let Some(meta) = &snap.meta {
            if let Some(g) = meta.get(FORMAT_KEY).map_err(err("read the format"))? {
                return match raw::unseal(FORMAT_KEY, g.value()) {
                    Some(FORMAT_SEALED) => Ok(Format::Sealed),
                    Some(_) => Err(damaged("the format record names a format this version does not know")),
                    None => Err(damaged("the checksum of the format record does not match")),
                };
            }
            let commit = meta.get(COMMIT_KEY).map_err(err("read the commit number"))?;
            if commit.is_some_and(|g| g.value().len() != 8) {
                return Err(damaged("the format record is missing but the commit number is sealed"));
            }
        }
        // The first and the last entry: one flip cannot damage both and
        // the format record.
        if let Some(data) = &snap.data {
            let first = data.first().map_err(err("read the first entry"))?;
            let last = data.last().map_err(err("read the last entry"))?;
            for (k, v) in first.iter().chain(last.iter()) {
                if raw::unseal(k.value(), v.value()).is_some() {
                    return Err(damaged("the format record is missing but the entries carry checksums"));
                }
            }
        }
        Ok(Format::Unsealed)
    }

    /// Writes the format record into a blank file, durably, unless another
    /// handle wrote anything first.
    pub(crate) fn init_format(&mut self) -> Result<(), Error> {
        let Some(db) = self.handle.as_ref().and_then(Handle::db) else {
            return Err(Error::read_only("initialise the file"));
        };
        self.damage.shield("initialise the file", || {
            let txn = db.begin_write().map_err(err("begin a write transaction"))?;
            {
                let data = txn.open_table(DATA).map_err(err("create the data table"))?;
                let mut meta = txn.open_table(META).map_err(err("create the metadata table"))?;
                let blank = data.is_empty().map_err(err("count the entries"))?
                    && meta.is_empty().map_err(err("count the metadata"))?;
                if blank {
                    meta.insert(FORMAT_KEY, raw::seal(FORMAT_KEY, FORMAT_SEALED).as_slice())
                        .map_err(err("write the format"))?;
                }
            }
            txn.commit().map_err(err("commit"))
        })?;
        self.committed();
        Ok(())
    }

    /// The commit number stored in `meta` (0 when absent), whose values
    /// are stored in `form`.
    pub(crate) fn stored_commit_number(
        &self,
        form: ValueForm,
        meta: &impl ReadableTable<&'static [u8], &'static [u8]>,
    ) -> Result<u64, Error> {
        let Some(g) = meta.get(COMMIT_KEY).map_err(err("read the commit number"))? else {
            return Ok(0);
        };
        let bytes = form.open(COMMIT_KEY, g.value(), &self.damage)?;
        bytes
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| self.damage.corrupted(format!("the commit number has {} bytes, not 8", bytes.len())))
    }
}
