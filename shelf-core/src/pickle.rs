//! The pickle protocol, on serde-pickle: conversions between its value
//! model and ours, so Python types survive a round trip.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_pickle::{DeOptions, HashableValue, SerOptions, Value as PValue};

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

pub(crate) fn encode<T: Serialize>(value: &T, o: &PickleOptions) -> Result<Vec<u8>, BoxError> {
    Ok(serde_pickle::to_vec(value, ser_options(o))?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], o: &PickleOptions) -> Result<T, BoxError> {
    Ok(serde_pickle::from_slice(bytes, de_options(o))?)
}

pub(crate) fn encode_value(value: &Value, o: &PickleOptions) -> Result<Vec<u8>, BoxError> {
    Ok(serde_pickle::value_to_vec(&to_pickle(value)?, ser_options(o))?)
}

pub(crate) fn decode_value(bytes: &[u8], o: &PickleOptions) -> Result<Value, BoxError> {
    Ok(from_pickle(serde_pickle::value_from_slice(bytes, de_options(o))?))
}

fn to_pickle(v: &Value) -> Result<PValue, BoxError> {
    Ok(match v {
        Value::None => PValue::None,
        Value::Bool(b) => PValue::Bool(*b),
        Value::Int(i) => PValue::I64(*i),
        Value::BigInt(b) => PValue::Int(b.clone()),
        Value::Float(f) => PValue::F64(*f),
        Value::Str(s) => PValue::String(s.clone()),
        Value::Bytes(b) | Value::ByteArray(b) => PValue::Bytes(b.clone()),
        Value::List(items) => PValue::List(items.iter().map(to_pickle).collect::<Result<_, _>>()?),
        Value::Tuple(items) => PValue::Tuple(items.iter().map(to_pickle).collect::<Result<_, _>>()?),
        Value::Set(items) => PValue::Set(hashables(items)?),
        Value::FrozenSet(items) => PValue::FrozenSet(hashables(items)?),
        Value::Dict(pairs) => PValue::Dict(
            pairs
                .iter()
                .map(|(k, v)| Ok((to_pickle(k)?.into_hashable()?, to_pickle(v)?)))
                .collect::<Result<_, BoxError>>()?,
        ),
        Value::Global { name, .. } => {
            return Err(format!("cannot pickle the placeholder of global {name}").into());
        }
    })
}

fn hashables(items: &[Value]) -> Result<std::collections::BTreeSet<HashableValue>, BoxError> {
    items.iter().map(|i| Ok(to_pickle(i)?.into_hashable()?)).collect()
}

fn from_pickle(v: PValue) -> Value {
    match v {
        PValue::None => Value::None,
        PValue::Bool(b) => Value::Bool(b),
        PValue::I64(i) => Value::Int(i),
        PValue::Int(b) => match i64::try_from(&b) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::BigInt(b),
        },
        PValue::F64(f) => Value::Float(f),
        PValue::Bytes(b) => Value::Bytes(b),
        PValue::String(s) => Value::Str(s),
        PValue::List(items) => Value::List(items.into_iter().map(from_pickle).collect()),
        PValue::Tuple(items) => Value::Tuple(items.into_iter().map(from_pickle).collect()),
        PValue::Set(items) => Value::Set(items.into_iter().map(|h| from_pickle(h.into_value())).collect()),
        PValue::FrozenSet(items) => {
            Value::FrozenSet(items.into_iter().map(|h| from_pickle(h.into_value())).collect())
        }
        PValue::Dict(pairs) => Value::Dict(
            pairs.into_iter().map(|(k, v)| (from_pickle(k.into_value()), from_pickle(v))).collect(),
        ),
    }
}
