//! [`Value`]: a dynamic value covering Python's data model as pickle
//! encodes it, for reading any value of a self-describing protocol.

use std::fmt;

use num_bigint::BigInt;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeTuple, Serializer};

/// Any value a self-describing protocol (JSON, pickle) can hold.
///
/// Variants follow Python's types so a shelf shared with Python keeps them
/// apart: a tuple stays a tuple, a set a set, `bytearray` is not `bytes`.
/// JSON cannot tell most of these apart and reads back only `None`, `Bool`,
/// `Int`, `Float`, `Str`, `List` and `Dict`.
///
/// # Examples
/// ```
/// use shelf_core::{MemoryBackend, Shelf, Value};
/// let mut s = Shelf::with_backend(MemoryBackend::new(), shelf_core::Protocol::Json)?;
/// s.insert("point", &(1, "a"))?;
/// assert_eq!(s.get::<Value>("point")?, Some(Value::List(vec![Value::Int(1), Value::Str("a".into())])));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// Python's `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// An `int` that fits in 64 bits.
    Int(i64),
    /// An `int` beyond 64 bits.
    BigInt(BigInt),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `bytearray`.
    ByteArray(Vec<u8>),
    /// `list`.
    List(Vec<Value>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `dict`, in its stored order.
    Dict(Vec<(Value, Value)>),
    /// `set`.
    Set(Vec<Value>),
    /// `frozenset`.
    FrozenSet(Vec<Value>),
    /// An object of a class or function that decoding refused to resolve,
    /// kept only when the protocol was asked to decode such values to
    /// placeholders ([`PickleOptions::placeholder_globals`](crate::PickleOptions)).
    Global {
        /// The module and name of the global, such as `datetime.date`.
        name: String,
        /// The arguments it would have been called with, if any.
        args: Box<Value>,
    },
}

impl Value {
    /// The Python type name of this value (`"int"`, `"tuple"`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::ByteArray(_) => "bytearray",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::Global { .. } => "global",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Serializes through serde's data model: sets become sequences, tuples
/// serde tuples and big integers `i128` where they fit (else their decimal
/// string). The pickle protocol does not go through here: it maps every
/// variant to its own pickle type.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::None => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::BigInt(b) => match i128::try_from(b) {
                Ok(i) => s.serialize_i128(i),
                Err(_) => s.serialize_str(&b.to_string()),
            },
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) | Value::ByteArray(b) => s.serialize_bytes(b),
            Value::List(items) | Value::Set(items) | Value::FrozenSet(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Tuple(items) => {
                let mut tup = s.serialize_tuple(items.len())?;
                for item in items {
                    tup.serialize_element(item)?;
                }
                tup.end()
            }
            Value::Dict(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::Global { name, args } => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(&format!("$global:{name}"), args)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any self-describing value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map(Value::Int).unwrap_or_else(|_| Value::BigInt(BigInt::from(u))))
    }
    fn visit_i128<E>(self, i: i128) -> Result<Value, E> {
        Ok(i64::try_from(i).map(Value::Int).unwrap_or_else(|_| Value::BigInt(BigInt::from(i))))
    }
    fn visit_u128<E>(self, u: u128) -> Result<Value, E> {
        Ok(i64::try_from(u).map(Value::Int).unwrap_or_else(|_| Value::BigInt(BigInt::from(u))))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }
    fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(b.to_vec()))
    }
    fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(b))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry()? {
            pairs.push((k, v));
        }
        Ok(Value::Dict(pairs))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Value, A::Error> {
        Err(de::Error::custom("enums are not part of the dynamic value model"))
    }
}
