//! Reading: values with their checksums verified, and listings shielded
//! from sled's panics and checked against the handle's count.

use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use shelf_core::raw::owned_bound;
use shelf_core::{Error, KvRange};

use crate::{SledBackend, err};

impl SledBackend {
    /// The value inside a stored form, its checksum verified in layout 2.
    pub(crate) fn opened(&self, key: &[u8], stored: sled::IVec) -> Result<Vec<u8>, Error> {
        self.form.open(key, &stored, &self.damage).map(<[u8]>::to_vec)
    }

    /// The entries within the bounds, each checksum verified, shielded from
    /// sled's panics, in order, and (over every key, with a known count)
    /// complete.
    pub(crate) fn walk(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<KvRange<'_>, Error> {
        let open = self.engine()?;
        let whole = matches!((lower, upper), (Bound::Unbounded, Bound::Unbounded));
        let iter = open.data.range::<Vec<u8>, _>((owned_bound(lower), owned_bound(upper)));
        let items = iter.map(move |item| {
            let (k, v) = item.map_err(err("read a range"))?;
            let value = self.opened(&k, v)?;
            Ok((k.to_vec(), value))
        });
        // A reader sharing its engine with a writer of this process (now
        // or earlier) cannot know the count: the entries change under it.
        let counted = !self.life.is_read_only() || !open.writer.was_ever_held();
        let expected = if whole && counted { self.count } else { None };
        Ok(Box::new(self.damage.listing(items, expected, "read a range")))
    }

    /// The number of entries, by a checked walk (sled counts by walking the
    /// tree too; this walk cannot loop, and it verifies the handle's count).
    pub(crate) fn count_entries(&self) -> Result<usize, Error> {
        let mut n = 0;
        for item in self.walk(Bound::Unbounded, Bound::Unbounded)? {
            item?;
            n += 1;
        }
        Ok(n)
    }
}

/// The total size of the files below `dir`, and the files.
pub(crate) fn walk_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += walk_files(&entry.path(), files)?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
            files.push(entry.path());
        }
    }
    Ok(total)
}
