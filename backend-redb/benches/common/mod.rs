//! The fills shared by the criterion bench (`benches/redb.rs`) and the
//! callgrind example (`examples/instructions.rs`), so both measure the
//! same work: the bench's keys and values written through redb itself,
//! through `RedbBackend`, and through a `Shelf` over it.

use std::path::Path;

use backend_redb::RedbBackend;
use redb::{Database, TableDefinition};
use shelf_core::raw::{BackendOptions, bench_fill, bench_value};
use shelf_core::{Flag, Protocol, Shelf, ShelfOptions};

/// The table the raw rows use.
pub const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shelf");

/// A new redb file at `path` with every key, in one write transaction.
pub fn raw_fill(path: &Path, keys: &[[u8; 16]]) -> Database {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(TABLE).unwrap();
        for (i, k) in keys.iter().enumerate() {
            t.insert(k.as_slice(), bench_value(i).as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
    db
}

/// A new `RedbBackend` at `path` with every key, flushed.
pub fn backend_fill(path: &Path, keys: &[[u8; 16]]) -> RedbBackend {
    let mut db = RedbBackend::open(path, &BackendOptions::with_flag(Flag::New)).unwrap();
    bench_fill(&mut db, keys).unwrap();
    db
}

/// A new shelf in `protocol` at `path` with every value as bytes, synced.
pub fn shelf_fill(path: &Path, keys: &[[u8; 16]], protocol: Protocol) -> Shelf<RedbBackend> {
    let backend = RedbBackend::open(path, &BackendOptions::with_flag(Flag::New)).unwrap();
    let mut shelf = Shelf::new(backend, ShelfOptions::new(Some(protocol))).unwrap();
    for (i, k) in keys.iter().enumerate() {
        shelf.insert(k, &serde_bytes::ByteArray::new(bench_value(i))).unwrap();
    }
    shelf.sync().unwrap();
    shelf
}
