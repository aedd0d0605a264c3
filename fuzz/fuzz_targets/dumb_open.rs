//! Opening, salvaging, checking and compacting a dumb database made of
//! arbitrary `.dir` and `.dat` bytes.
//! The body lives in `shelf_tests::fuzzing`, shared with the regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shelf_tests::fuzzing::dumb_open(data));
