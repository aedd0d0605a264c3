//! Pickle decoding of arbitrary bytes: Ok or Err, never a panic, never
//! code run, for the dynamic and typed paths.
//! The body lives in `shelf_tests::fuzzing`, shared with the regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shelf_tests::fuzzing::pickle_decode(data));
