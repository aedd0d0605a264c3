//! Opening, checking, writing and compacting a dbm.sqlite3 file made of
//! arbitrary bytes, or of a sound file with patched bytes.
//! The body lives in `shelf_tests::fuzzing`, shared with the regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shelf_tests::fuzzing::sqlite_open(data));
