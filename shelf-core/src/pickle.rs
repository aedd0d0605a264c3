//! The pickle protocol: our own codec for [`Value`] ([`decode`](self::decode)
//! and [`encode`](self::encode)), serde-pickle for typed values.
//!
//! serde-pickle's value model has no `bytearray` and cannot name a global it
//! refused, so the dynamic path does not go through it: the decoder is a
//! pickle VM modelled on CPython's `Lib/pickle.py` `_Unpickler`, the encoder
//! writes what CPython's `pickle.dumps(v, 2 or 3)` writes.

mod decode;
mod encode;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_pickle::{DeOptions, SerOptions};

use crate::error::BoxError;
use crate::protocol::PickleOptions;
use crate::value::Value;

fn ser_options(o: &PickleOptions) -> SerOptions {
    if o.version <= 2 { SerOptions::new().proto_v2() } else { SerOptions::new() }
}

fn de_options(o: &PickleOptions) -> DeOptions {
    // CPython 2 `str` is bytes (STRING opcodes); decoding them as UTF-8 is
    // what Python 3's `pickle.load(encoding='utf-8')`-style reading of
    // shelves written by 2.7 expects for text keys and values.
    let d = DeOptions::new().decode_strings();
    if o.placeholder_globals { d.replace_unresolved_globals() } else { d }
}

fn decode_options(o: &PickleOptions) -> decode::DecodeOptions {
    decode::DecodeOptions { placeholder_globals: o.placeholder_globals }
}

pub(crate) fn encode<T: Serialize>(value: &T, o: &PickleOptions) -> Result<Vec<u8>, BoxError> {
    Ok(serde_pickle::to_vec(value, ser_options(o))?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], o: &PickleOptions) -> Result<T, BoxError> {
    match serde_pickle::from_slice(bytes, de_options(o)) {
        Ok(v) => Ok(v),
        Err(e) if refused_global(&e) => {
            // serde-pickle cannot say which global it refused; our decoder can.
            match decode::decode(bytes, decode_options(o)) {
                Err(ours @ decode::DecodeError::Global { .. }) => Err(ours.into()),
                _ => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn refused_global(e: &serde_pickle::Error) -> bool {
    use serde_pickle::{Error, ErrorCode};
    matches!(
        e,
        Error::Eval(ErrorCode::UnresolvedGlobal | ErrorCode::UnsupportedGlobal(..), _)
            | Error::Syntax(ErrorCode::UnresolvedGlobal | ErrorCode::UnsupportedGlobal(..))
    )
}

pub(crate) fn encode_value(value: &Value, o: &PickleOptions) -> Result<Vec<u8>, BoxError> {
    Ok(encode::encode(value, o.version)?)
}

pub(crate) fn decode_value(bytes: &[u8], o: &PickleOptions) -> Result<Value, BoxError> {
    Ok(decode::decode(bytes, decode_options(o))?)
}
