//! All-or-nothing groups of writes, on backends with atomic batches.

use serde::Serialize;

use super::{Shelf, encode_with};
use crate::backend::{BatchOp, KvBackend};
use crate::error::Error;
use crate::protocol::Protocol;

impl<B: KvBackend> Shelf<B> {
    /// Applies several inserts and removes all-or-nothing, on backends whose
    /// capabilities include `atomic_batch`. Nothing is written if `f` fails.
    ///
    /// # Errors
    /// [`Error::Unsupported`] where batches are not atomic; the error of `f`;
    /// backend errors.
    pub fn transaction<R>(
        &mut self,
        f: impl FnOnce(&mut Transaction) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let backend = self.backend()?;
        if !backend.capabilities().atomic_batch {
            return Err(Error::Unsupported { backend: backend.name(), operation: "atomic transactions" });
        }
        let mut tx = Transaction { protocol: self.protocol, ops: Vec::new() };
        let result = f(&mut tx)?;
        let ops: Vec<BatchOp<'_>> = tx
            .ops
            .iter()
            .map(|(k, v)| match v {
                Some(v) => BatchOp::Insert(k, v),
                None => BatchOp::Remove(k),
            })
            .collect();
        self.write(|b| b.apply_batch(&ops))?;
        for (k, _) in &tx.ops {
            self.cache.remove(k);
        }
        Ok(result)
    }
}

/// The operations of a [`Shelf::transaction`], applied together when the
/// closure returns `Ok`.
#[derive(Debug)]
pub struct Transaction {
    protocol: Protocol,
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Transaction {
    /// Stages `s[key] = value`.
    ///
    /// # Errors
    /// [`Error::Encode`].
    pub fn insert<T: Serialize + ?Sized>(&mut self, key: impl AsRef<[u8]>, value: &T) -> Result<(), Error> {
        let key = key.as_ref();
        let bytes = encode_with(&self.protocol, key, value)?;
        self.ops.push((key.to_vec(), Some(bytes)));
        Ok(())
    }

    /// Stages `del s[key]` (a missing key is no error).
    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.ops.push((key.as_ref().to_vec(), None));
    }

    /// How many operations are staged.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
