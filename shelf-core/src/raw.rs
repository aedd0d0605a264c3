//! The implementor's toolkit: plumbing that backends share, so that a
//! backend crate holds only its engine (the idea of OpenDAL's `raw`
//! module). Users of shelf have no need of it; backend authors use
//! `shelf_core::raw::...`.
//!
//! - [`OpenBackend`] and [`Probe`]: what the registry needs from a backend
//!   type, [`BackendOptions`] what its `open` receives.
//! - [`Lifecycle`]: the closed / read-only guard, one error wording for all.
//! - Locks with a deadline: [`retry_while_locked`], [`lock_file`],
//!   [`wait_for_release`], [`LOCK_GRACE`].
//! - Panic shielding, for engines that panic on damaged files:
//!   [`shield`] runs a closure, [`Shielded`] an iterator, and a panic
//!   caught there prints nothing.
//! - Value checksums, for engines whose stored format is shelf's own:
//!   [`seal`] appends a checksum over the key and the value, [`unseal`]
//!   verifies and strips it.
//! - [`Damage`] and [`ValueForm`], for engines that keep shelf's value
//!   format: values stored sealed or plain, and checksum failures, broken
//!   listings and engine panics reported alike as corruption.
//! - [`Walk`], which turns a listing that cannot be whole (keys out of
//!   order, fewer or more entries than the engine counts) into an error.
//! - The commit counter file ([`read_counter`], [`write_counter`]).
//! - Batches and ranges: [`apply_one_by_one`] for backends without atomic
//!   batches, [`range_is_empty`] and [`owned_bound`].
//! - Undo journals' records: [`take_u64`], [`take_spans`].
//! - [`opcodes`]: pickle's opcodes, for engines that read or write a
//!   pickle's framing themselves (pickleshare's files, mmappickle's).
//! - Engines shared by the handles of one process ([`InProcess`],
//!   [`FileId`], [`WriterSlot`]): a reader beside a writer joins its engine
//!   where the engine's file lock would refuse a second open.
//! - [`show_key`], how an error message shows a key.
//! - The benchmarks' workload: [`bench_keys`], [`bench_value`],
//!   [`bench_fill`], [`bench_get_all`], the same for every engine.

mod batch;
mod counter;
mod damage;
mod lifecycle;
mod lock;
mod process;
mod seal;
mod shield;
mod undo;
mod walk;
mod workload;

pub use crate::backend::{BackendOptions, OpenBackend, Probe};
pub use crate::error::show_key;
pub use crate::pickle::opcodes;
pub use batch::{apply_one_by_one, owned_bound, range_is_empty};
pub use counter::{read_counter, write_counter};
pub use damage::{Damage, ValueForm};
pub use lifecycle::Lifecycle;
pub use lock::{LOCK_GRACE, LockKind, lock_file, retry_while_locked, wait_for_release};
pub use process::{FileId, InProcess, WriterSlot};
pub use seal::{SEAL_LEN, checksum, seal, seal_into, unseal};
pub use shield::{Shielded, panic_message, shield};
pub use undo::{take_spans, take_u64};
pub use walk::Walk;
pub use workload::{bench_fill, bench_get_all, bench_keys, bench_value};
