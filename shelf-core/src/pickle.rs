//! The pickle protocol: our own codec, one decoder and one encoder for
//! every value. The decoder is a pickle VM modelled on CPython's
//! `Lib/pickle.py` `_Unpickler` that builds a [`Value`]; a typed value is
//! read from that. The encoder writes what CPython's `pickle.dumps(v, 2 to
//! 5)` writes for a [`Value`]; a typed value is first mapped onto one
//! ([`to_value`](crate::value::to_value)), so typed values and `Value`s are
//! written alike.

mod decode;
mod encode;
pub mod opcodes;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::BoxError;
use crate::value::Value;

/// Options of the pickle protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PickleOptions {
    /// The pickle protocol written: 3 (readable by every CPython 3, the
    /// default), 2 (readable by CPython 2.7 too), 4 (CPython 3.4+, the
    /// default of 3.8 to 3.13) or 5 (CPython 3.8+, the default of 3.14).
    /// Other numbers write the nearest of these. Reading accepts 0 to 5.
    pub version: u8,
    /// Decode a pickle that names a class shelf does not know (a user's
    /// class, an `enum` member) to [`Value::Opaque`], which keeps its exact
    /// bytes, instead of failing. Nothing is ever imported or called
    /// either way.
    pub placeholder_globals: bool,
}

impl Default for PickleOptions {
    fn default() -> Self {
        PickleOptions { version: 3, placeholder_globals: false }
    }
}

impl PickleOptions {
    /// Pickle protocol 2, readable by CPython 2.7.
    pub fn v2() -> Self {
        PickleOptions { version: 2, ..Self::default() }
    }

    /// The pickle protocols shelf writes.
    pub const VERSIONS: std::ops::RangeInclusive<u8> = 2..=5;

    /// Writes pickle protocol `version`, clamped to [`VERSIONS`](Self::VERSIONS)
    /// (so a shelf of protocol 0 or 1 pickles gets protocol 2, which every
    /// CPython reads).
    pub fn with_version(self, version: u8) -> Self {
        PickleOptions { version: version.clamp(*Self::VERSIONS.start(), *Self::VERSIONS.end()), ..self }
    }

    /// Decode globals to placeholders instead of failing.
    pub fn with_placeholder_globals(self) -> Self {
        PickleOptions { placeholder_globals: true, ..self }
    }
}

fn decode_options(o: &PickleOptions) -> decode::DecodeOptions {
    decode::DecodeOptions { placeholder_globals: o.placeholder_globals }
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, o: &PickleOptions) -> Result<Vec<u8>, BoxError> {
    // Room for a small value's pickle at once, not five doublings.
    let mut out = Vec::with_capacity(128);
    encode_into(value, o, &mut out)?;
    Ok(out)
}

pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    o: &PickleOptions,
    out: &mut Vec<u8>,
) -> Result<(), BoxError> {
    // A single scalar (the usual shelf value: bytes, a str, a number) is
    // pickled straight from the borrowed value; anything else through
    // the `Value` it maps onto.
    if let Some(done) = encode::encode_scalar_into(value, o.version, out) {
        return Ok(done?);
    }
    let value = crate::value::to_value(value)?;
    Ok(encode::encode_into(&value, o.version, out)?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], o: &PickleOptions) -> Result<T, BoxError> {
    // Not serde-pickle's decoder: it panics on some inputs (sorting a set
    // holding a NaN, found by fuzzing) and recurses without bound on deep
    // nesting. The Value deserializer maps Python's types onto serde's as
    // serde-pickle did, so shelves written through it read the same.
    let value = decode::decode(bytes, decode_options(o))?;
    Ok(value.deserialize_into::<T>()?)
}

pub(crate) fn encode_value(value: &Value, o: &PickleOptions) -> Result<Vec<u8>, BoxError> {
    Ok(encode::encode(value, o.version)?)
}

pub(crate) fn decode_value(bytes: &[u8], o: &PickleOptions) -> Result<Value, BoxError> {
    Ok(decode::decode(bytes, decode_options(o))?)
}

/// The protocol a stored pickle was written with (see
/// [`Protocol::detect_pickle_version`](crate::Protocol::detect_pickle_version)).
pub(crate) fn detect_version(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [opcodes::PROTO, v, ..] if *v <= 5 => Some(*v),
        [opcodes::PROTO, ..] => None,
        // Protocols 0 and 1 start with an opcode of theirs and end with
        // STOP (CPython's own pickles never carry trailing bytes).
        [first, .., opcodes::STOP] if opcodes::is_protocol_0_or_1(*first) => Some(0),
        [opcodes::STOP] => None,
        _ => None,
    }
}
