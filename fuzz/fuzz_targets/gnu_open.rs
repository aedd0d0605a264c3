//! Opening a GDBM file (the gnu backend's parser and open) from arbitrary
//! bytes. The body lives in `shelf_tests::fuzzing`, shared with the
//! regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shelf_tests::fuzzing::gnu_open(data));
