//! The pickle protocol: our own codec for [`Value`] ([`decode`](self::decode)
//! and [`encode`](self::encode)); typed values are decoded through [`Value`]
//! (serde-pickle panics on some inputs) and encoded with serde-pickle.
//!
//! serde-pickle's value model has no `bytearray` and cannot name a global it
//! refused, so the dynamic path does not go through it: the decoder is a
//! pickle VM modelled on CPython's `Lib/pickle.py` `_Unpickler`, the encoder
//! writes what CPython's `pickle.dumps(v, 2 or 3)` writes.

mod decode;
mod encode;
mod opcodes;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_pickle::SerOptions;

use crate::error::BoxError;
use crate::protocol::PickleOptions;
use crate::value::Value;

fn ser_options(o: &PickleOptions) -> SerOptions {
    if o.version <= 2 { SerOptions::new().proto_v2() } else { SerOptions::new() }
}

fn decode_options(o: &PickleOptions) -> decode::DecodeOptions {
    decode::DecodeOptions { placeholder_globals: o.placeholder_globals }
}

pub(crate) fn encode<T: Serialize>(value: &T, o: &PickleOptions) -> Result<Vec<u8>, BoxError> {
    Ok(serde_pickle::to_vec(value, ser_options(o))?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], o: &PickleOptions) -> Result<T, BoxError> {
    // Through our own decoder, not serde-pickle's: serde-pickle panics on
    // some inputs (sorting a set holding a NaN, found by fuzzing) and
    // recurses without bound on deep nesting. The Value deserializer maps
    // Python's types onto serde's as serde-pickle does.
    let value = decode::decode(bytes, decode_options(o))?;
    Ok(value.deserialize_into::<T>()?)
}

pub(crate) fn encode_value(value: &Value, o: &PickleOptions) -> Result<Vec<u8>, BoxError> {
    Ok(encode::encode(value, o.version)?)
}

pub(crate) fn decode_value(bytes: &[u8], o: &PickleOptions) -> Result<Value, BoxError> {
    Ok(decode::decode(bytes, decode_options(o))?)
}
