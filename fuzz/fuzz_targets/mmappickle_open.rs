//! The mmappickle file parser (open, read, check, repair, compact) on arbitrary bytes.
//! The body lives in `shelf_tests::fuzzing`, shared with the regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shelf_tests::fuzzing::mmappickle_open(data));
