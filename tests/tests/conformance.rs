//! The conformance suite, run for every backend in the workspace: through
//! its static type, and through the registry as `Box<dyn KvBackend>`.

use backend_dir::DirBackend;
use backend_dumb::DumbBackend;
use backend_gnu::GnuBackend;
use backend_sqlite::SqliteBackend;
use shelf::MemoryBackend;
use shelf_tests::{Dynamic, Static, conformance_suite};

conformance_suite!(memory, Static::<MemoryBackend>::new());
conformance_suite!(memory_dyn, Dynamic("memory"));
conformance_suite!(dir, Static::<DirBackend>::new());
conformance_suite!(dir_dyn, Dynamic("dir"));
conformance_suite!(dumb, Static::<DumbBackend>::new());
conformance_suite!(dumb_dyn, Dynamic("dumb"));
conformance_suite!(mmappickle, Static::<backend_mmappickle::MmapPickleBackend>::new());
conformance_suite!(mmappickle_dyn, Dynamic("mmappickle"));
conformance_suite!(redb_dyn, Dynamic("redb"));
conformance_suite!(sled_dyn, Dynamic("sled"));
conformance_suite!(sqlite, Static::<SqliteBackend>::new());
conformance_suite!(sqlite_dyn, Dynamic("sqlite"));
conformance_suite!(gnu, Static::<GnuBackend>::new());
conformance_suite!(gnu_dyn, Dynamic("gnu"));
