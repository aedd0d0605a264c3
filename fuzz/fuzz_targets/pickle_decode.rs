//! Pickle decoding of arbitrary bytes: Ok or Err, never a panic, never
//! code run, for both the dynamic and a typed path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shelf_core::{PickleOptions, Protocol, Value};

fuzz_target!(|data: &[u8]| {
    let strict = Protocol::Pickle(PickleOptions::default());
    let lenient = Protocol::Pickle(PickleOptions::default().with_placeholder_globals());
    let _ = strict.decode_value(data);
    let _ = lenient.decode_value(data);
    let _ = strict.decode::<Value>(data);
    let _ = strict.decode::<Vec<(String, i64)>>(data);
});
