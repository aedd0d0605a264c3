//! The conformance suite of shelf: one set of cases, written once as
//! generic functions, stamped out per backend by [`conformance_suite!`].
//!
//! Every backend runs it twice: through its static type ([`Static`]) and
//! through the registry as `Box<dyn KvBackend>` ([`Dynamic`]), so
//! `cargo test redb::get_returns_inserted` names both the rule and the
//! backend. A case a backend cannot run (no persistence, no ordered keys)
//! prints why it skipped; it never passes silently.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use shelf::raw::{BackendOptions, OpenBackend};
use shelf::{Capabilities, Flag, KvBackend, OpenError, OpenOptions, Shelf};

pub mod cases;
pub mod crash;
pub mod fuzzing;
pub mod model;
pub mod python;
pub mod redis_server;

/// Something the suite can open: a backend type or a registry name.
pub trait Subject {
    /// The backend type the shelves hold.
    type B: KvBackend;

    /// The backend's registry name.
    fn name(&self) -> &'static str;

    /// Opens the raw backend at `path`.
    ///
    /// # Errors
    /// The backend's open errors.
    fn open_backend(&self, path: &Path, options: &BackendOptions) -> Result<Self::B, OpenError>;

    /// Opens a shelf at `path` the way a user would.
    ///
    /// # Errors
    /// The facade's open errors.
    fn open_shelf(&self, path: &Path, options: &OpenOptions) -> Result<Shelf<Self::B>, OpenError>;

    /// What the backend says it can do without opening anything: its
    /// `OpenBackend::CAPABILITIES`, or the registry's copy of them.
    fn static_capabilities(&self) -> Capabilities;

    /// The files and directories that make up a database at `path`
    /// (`OpenBackend::files`, or the registry's `BackendInfo::files`).
    fn files(&self, path: &Path) -> Vec<PathBuf>;
}

/// A backend chosen statically, by type.
pub struct Static<B>(PhantomData<fn() -> B>);

impl<B> Static<B> {
    /// The subject for `B`.
    pub const fn new() -> Self {
        Static(PhantomData)
    }
}

impl<B> Default for Static<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: OpenBackend> Subject for Static<B> {
    type B = B;

    fn name(&self) -> &'static str {
        B::NAME
    }

    fn open_backend(&self, path: &Path, options: &BackendOptions) -> Result<B, OpenError> {
        B::open(path, options)
    }

    fn open_shelf(&self, path: &Path, options: &OpenOptions) -> Result<Shelf<B>, OpenError> {
        options.open_as::<B>(path)
    }

    fn static_capabilities(&self) -> Capabilities {
        B::CAPABILITIES
    }

    fn files(&self, path: &Path) -> Vec<PathBuf> {
        B::files(path)
    }
}

/// A backend chosen at run time by its registry name, used as
/// `Box<dyn KvBackend>` through `shelf::OpenOptions::open`.
pub struct Dynamic(pub &'static str);

impl Subject for Dynamic {
    type B = Box<dyn KvBackend>;

    fn name(&self) -> &'static str {
        self.0
    }

    fn open_backend(&self, path: &Path, options: &BackendOptions) -> Result<Self::B, OpenError> {
        (shelf::find_backend(self.0)?.open)(path, options)
    }

    fn open_shelf(&self, path: &Path, options: &OpenOptions) -> Result<Shelf<Self::B>, OpenError> {
        options.clone().backend(self.0).open(path)
    }

    /// # Panics
    /// When the name is not registered (a broken test table).
    fn static_capabilities(&self) -> Capabilities {
        self.info().capabilities
    }

    /// # Panics
    /// When the name is not registered (a broken test table).
    fn files(&self, path: &Path) -> Vec<PathBuf> {
        (self.info().files)(path)
    }
}

impl Dynamic {
    /// The registry's entry for the name.
    ///
    /// # Panics
    /// When the name is not registered (a broken test table).
    pub fn info(&self) -> &'static shelf::BackendInfo {
        shelf::find_backend(self.0).unwrap_or_else(|e| panic!("backend {}: {e}", self.0))
    }
}

/// A scratch directory and a database path inside it.
pub struct Scratch {
    /// Removed on drop.
    pub dir: tempfile::TempDir,
    /// `dir/db`: where the case's database lives.
    pub path: std::path::PathBuf,
}

impl Scratch {
    /// A fresh scratch directory.
    ///
    /// # Panics
    /// When no temporary directory can be made (a broken test machine).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = dir.path().join("db");
        Scratch { dir, path }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Opens options with `flag`.
pub fn flag_options(flag: Flag) -> BackendOptions {
    BackendOptions::with_flag(flag)
}

/// Prints why a case did not run for a backend, so no skip is silent.
/// It writes to stderr directly, which the test harness does not capture,
/// so the reason shows in every `cargo test` run.
pub fn skip(case: &str, backend: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {case} on {backend}: {why}");
}

/// Stamps out one `#[test]` per conformance case for a subject, in a module
/// named after the backend: `conformance_suite!(redb, Static::<RedbBackend>::new());`.
#[macro_export]
macro_rules! conformance_suite {
    ($module:ident, $subject:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_cases!($subject;
                get_returns_inserted,
                get_missing_is_none,
                insert_overwrites,
                remove_reports_presence,
                contains_matches_get,
                len_counts_keys,
                keys_and_iter_agree,
                flush_makes_durable,
                close_is_idempotent,
                read_only_refuses_writes,
                flag_semantics,
                metadata_is_separate,
                ordered_range,
                batch_applies_in_order,
                capabilities_are_honest,
                second_writer_is_locked,
                damaged_files_are_errors_not_panics,
                check_false_changes_nothing,
                stats_are_honest,
                capabilities_match_the_registry,
                get_with_matches_get,
                get_many_matches_get,
                second_reader_in_one_process,
                readers_run_beside_a_writer,
                expiry_is_honest,
                shelf_getitem_setitem,
                shelf_delitem,
                shelf_contains,
                shelf_len_and_bool,
                shelf_iteration_and_keys,
                shelf_values_and_items,
                shelf_get_with_default,
                shelf_pop,
                shelf_popitem,
                shelf_setdefault,
                shelf_update,
                shelf_batch_calls,
                shelf_clear,
                shelf_sync_then_reopen,
                shelf_close_then_closed,
                shelf_drop_closes,
                shelf_writeback_persists,
                shelf_without_writeback_mutation_is_lost,
                shelf_read_only,
                shelf_empty_values,
                shelf_large_value,
                shelf_unicode_and_binary_keys,
                shelf_protocol_mismatch,
                shelf_mixed_types_and_dynamic_value,
                shelf_ordered_cursor,
                shelf_transaction,
                shelf_keys_matching,
                shelf_wait_get,
                shelf_hashed_categories,
                shelf_link,
                shelf_commit_number,
                model_matches_btreemap
            );
        }
    };
}

/// Helper of [`conformance_suite!`]: one `#[test]` per named case, each
/// skipping with the printed reason where the subject cannot be had.
#[macro_export]
macro_rules! conformance_cases {
    ($subject:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                match $crate::MaybeSubject::available($subject) {
                    Ok(subject) => $crate::cases::$case(&subject),
                    Err(why) => $crate::skip(stringify!($case), "this subject", &why),
                }
            }
        )*
    };
}

/// What [`conformance_suite!`] takes: a [`Subject`], or a `Result` of one
/// whose error says why it cannot be had (a server that cannot be
/// started), so a network backend runs the one shared list of cases.
pub trait MaybeSubject {
    /// The subject.
    type S: Subject;
    /// The subject, or why there is none.
    ///
    /// # Errors
    /// The reason to print when skipping.
    fn available(self) -> Result<Self::S, String>;
}

impl<S: Subject> MaybeSubject for S {
    type S = S;
    fn available(self) -> Result<S, String> {
        Ok(self)
    }
}

impl<S: Subject> MaybeSubject for Result<S, String> {
    type S = S;
    fn available(self) -> Result<S, String> {
        self
    }
}

/// The seeded generator of the bench, for tests whose random choices
/// must be reproducible from a logged seed.
pub use shelf_cli::rng::Rng;

/// Collects a streamed listing (the contract's and the shelf's `keys`,
/// `keys_raw` and `values` are lazy) into a `Vec`, for tests that compare
/// whole listings: `b.keys().collected()?`.
pub trait Collected<T> {
    /// Every item, or the first error (of the call or of an item).
    fn collected(self) -> Result<Vec<T>, shelf::Error>;
}

impl<T, I: Iterator<Item = Result<T, shelf::Error>>> Collected<T> for Result<I, shelf::Error> {
    fn collected(self) -> Result<Vec<T>, shelf::Error> {
        self?.collect()
    }
}
