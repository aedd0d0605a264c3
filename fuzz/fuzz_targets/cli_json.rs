//! The CLI's JSON loader (`shelf load`) on arbitrary input.
//! The body lives in `shelf_tests::fuzzing`, shared with the regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shelf_tests::fuzzing::cli_json(data));
