//! The core of shelf: a persistent dictionary of serialized values with
//! Python `shelve` semantics, over any [`KvBackend`].
//!
//! Most users depend on the `shelf` facade, which adds `open()`, backend
//! detection and the registry of backends. This crate holds what every
//! backend and the facade share:
//!
//! - [`KvBackend`], the byte-level contract, with [`Capabilities`];
//! - [`Shelf`], which turns bytes into serde values and keeps the writeback
//!   cache, the closed state and the flags;
//! - [`Protocol`], the serialization formats, and [`Value`], a dynamic value
//!   covering Python's data model;
//! - [`Error`] and [`OpenError`];
//! - [`MemoryBackend`], Python's `Shelf(dict)`;
//! - [`raw`], the toolkit backend authors build on (nothing there is needed
//!   to use a shelf).

mod backend;
mod error;
mod memory;
mod pickle;
mod protocol;
pub mod raw;
mod share;
mod shelf;
mod value;

pub use backend::{
    BatchOp, Capabilities, CheckReport, Flag, KvBackend, KvIter, KvKeys, KvPair, KvRange, SharedBytes,
    StorageStats,
};
pub use error::{BoxError, Error, OpenError};
pub use memory::MemoryBackend;
// numpy arrays: the typed value of the mmappickle backend.
pub use pickle::PickleOptions;
pub use protocol::Protocol;
pub use share::{Link, hash_bucket};
pub use shelf::{Shelf, ShelfOptions, Transaction};
pub use value::{ArrayOrder, ArrayOwner, NdArray};
pub use value::{
    DEFAULT_FACTORIES, Date, DateTime, Opaque, PYTHON_TAGS, PyObject, Time, TimeDelta, TzInfo, Value,
    ValueError, to_value,
};
