//! [`Value`]: a dynamic value covering Python's data model as pickle
//! encodes it, for reading any value of a self-describing protocol.

use std::fmt;

use num_bigint::BigInt;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeTuple, Serializer};

mod array;
mod convert;
mod datetime;
mod pytext;
mod python;
mod read;
mod ser;

pub use array::{ArrayOrder, ArrayOwner, NdArray};
pub use datetime::{Date, DateTime, Time, TimeDelta, TzInfo};
pub(crate) use pytext::{fraction, is_decimal_text, normalize_posix_path, parse_fraction, posix_parts};
pub use python::{DEFAULT_FACTORIES, Opaque, PyObject, TAGS as PYTHON_TAGS};
use ser::hint;
pub use ser::to_value;

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
    /// An object of one of the Python classes shelf knows (`datetime`,
    /// `Decimal`, `UUID`, `OrderedDict`, ...; see [`PyObject`]).
    Object(PyObject),
    /// A pickle naming a class or function shelf does not decode, kept as
    /// its exact bytes; only made when the protocol was asked for
    /// placeholders ([`PickleOptions::placeholder_globals`](crate::PickleOptions)),
    /// and written back unchanged.
    Opaque(Opaque),
    /// A global with arguments: the placeholder the pickle decoder made
    /// before [`Value::Opaque`]. The decoder no longer makes it; kept so
    /// code matching on it compiles, and refused by the pickle writer.
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
            Value::Object(o) => o.class_name(),
            Value::Opaque(_) => "pickle",
            Value::Global { .. } => "global",
        }
    }
}

impl Value {
    /// A placeholder for a pickle naming classes shelf does not decode
    /// (see [`Opaque`]).
    pub fn opaque(globals: Vec<String>, bytes: Vec<u8>) -> Value {
        Value::Opaque(Opaque { globals, bytes })
    }

    /// The Python object a [`PyObject::tagged_form`] stands for, as a
    /// `Value`; `None` when `tag` is not one of [`PYTHON_TAGS`].
    pub fn from_python_tag(tag: &str, content: Value) -> Option<Result<Value, String>> {
        PYTHON_TAGS.contains(&tag).then(|| PyObject::from_tagged_form(tag, content).map(Value::Object))
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
/// serde tuples, `bytearray` bytes and big integers `i128` where they fit
/// (else their decimal string). Each Python type a serde shape cannot name
/// is wrapped in a newtype struct whose private name says which it is:
/// serde_json and bincode write only the content, while the pickle
/// protocol's serializer ([`to_value`]) rebuilds the exact variant, so a
/// `Value` and a typed value go through the same pickle writer.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::None => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::BigInt(b) => s.serialize_newtype_struct(hint::BIGINT, &BigIntShape(b)),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::ByteArray(b) => s.serialize_newtype_struct(hint::BYTEARRAY, &BytesShape(b)),
            Value::List(items) => SeqShape(items).serialize(s),
            Value::Set(items) => s.serialize_newtype_struct(hint::SET, &SeqShape(items)),
            Value::FrozenSet(items) => s.serialize_newtype_struct(hint::FROZENSET, &SeqShape(items)),
            Value::Tuple(items) => s.serialize_newtype_struct(hint::TUPLE, &TupleShape(items)),
            Value::Dict(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::Global { name, args } => {
                s.serialize_newtype_struct(hint::GLOBAL, &GlobalShape(name, args))
            }
            Value::Object(o) => {
                let (name, content) = python::to_hint(o);
                s.serialize_newtype_struct(name, &content)
            }
            Value::Opaque(o) => s.serialize_newtype_struct(python::hint::OPAQUE, &python::opaque_hint(o)),
        }
    }
}

struct BigIntShape<'a>(&'a BigInt);

impl Serialize for BigIntShape<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match i128::try_from(self.0) {
            Ok(i) => s.serialize_i128(i),
            Err(_) => s.serialize_str(&self.0.to_string()),
        }
    }
}

struct BytesShape<'a>(&'a [u8]);

impl Serialize for BytesShape<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct SeqShape<'a>(&'a [Value]);

impl Serialize for SeqShape<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

struct TupleShape<'a>(&'a [Value]);

impl Serialize for TupleShape<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut tup = s.serialize_tuple(self.0.len())?;
        for item in self.0 {
            tup.serialize_element(item)?;
        }
        tup.end()
    }
}

struct GlobalShape<'a>(&'a str, &'a Value);

impl Serialize for GlobalShape<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(&format!("$global:{}", self.0), self.1)?;
        map.end()
    }
}

/// Reads any self-describing value. A deserializer that knows Python's
/// types (the pickle protocol's, through [`Value`] itself) keeps them
/// apart: asked for the private [`hint::VALUE`] newtype, it answers with
/// tagged variants that only such a deserializer produces. Any other
/// deserializer sees a newtype struct and hands over its content.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(hint::VALUE, ValueVisitor)
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
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    /// The tagged forms [`Tagged`] gives for Python's types.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        use de::VariantAccess;
        let (tag, variant): (String, A::Variant) = data.variant()?;
        let bad = |what: &str| de::Error::custom(format!("malformed tagged {what}"));
        Ok(match tag.as_str() {
            hint::TUPLE => Value::Tuple(variant.newtype_variant()?),
            hint::SET => Value::Set(variant.newtype_variant()?),
            hint::FROZENSET => Value::FrozenSet(variant.newtype_variant()?),
            hint::BYTEARRAY => match variant.newtype_variant()? {
                Value::Bytes(b) => Value::ByteArray(b),
                _ => return Err(bad("bytearray")),
            },
            hint::BIGINT => match variant.newtype_variant()? {
                Value::Str(s) => Value::BigInt(s.parse().map_err(|_| bad("int"))?),
                _ => return Err(bad("int")),
            },
            hint::GLOBAL => match variant.newtype_variant()? {
                Value::List(mut parts) if parts.len() == 2 => match (parts.pop(), parts.pop()) {
                    (Some(args), Some(Value::Str(name))) => Value::Global { name, args: Box::new(args) },
                    _ => return Err(bad("global")),
                },
                _ => return Err(bad("global")),
            },
            other => match python::from_hint(other, variant.newtype_variant()?) {
                Some(rebuilt) => rebuilt.map_err(de::Error::custom)?,
                None => return Err(de::Error::custom("enums are not part of the dynamic value model")),
            },
        })
    }
}

/// Why a [`Value`] could not be read as the requested type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

impl de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Point {
        x: i32,
        y: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Shape {
        Empty,
        Circle(f64),
        Rect { w: u8, h: u8 },
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn reads_structs_options_and_numbers() {
        let v = Value::Dict(vec![(s("x"), Value::Int(3)), (s("y"), Value::None)]);
        assert_eq!(v.deserialize_into::<Point>().unwrap(), Point { x: 3, y: None });
        assert_eq!(Value::Int(3).deserialize_into::<f64>().unwrap(), 3.0);
        assert!(Value::Int(300).deserialize_into::<u8>().is_err(), "out of range is an error");
        let big = Value::BigInt(num_bigint::BigInt::from(u64::MAX) + 1u8);
        assert_eq!(big.deserialize_into::<u128>().unwrap(), u128::from(u64::MAX) + 1);
    }

    #[test]
    fn reads_bytes_sequences_and_tuples() {
        assert_eq!(Value::Bytes(vec![1, 2]).deserialize_into::<Vec<u8>>().unwrap(), [1, 2]);
        let t = Value::Tuple(vec![Value::Int(1), s("a")]);
        assert_eq!(t.deserialize_into::<(i64, String)>().unwrap(), (1, "a".to_string()));
        let set = Value::Set(vec![Value::Int(2), Value::Int(1)]);
        assert_eq!(set.deserialize_into::<std::collections::BTreeSet<i64>>().unwrap().len(), 2);
        assert_eq!(Value::None.deserialize_into::<()>().unwrap(), ());
    }

    #[test]
    fn reads_enums_in_serde_pickle_forms() {
        assert_eq!(s("Empty").deserialize_into::<Shape>().unwrap(), Shape::Empty);
        let circle = Value::Dict(vec![(s("Circle"), Value::Float(1.5))]);
        assert_eq!(circle.deserialize_into::<Shape>().unwrap(), Shape::Circle(1.5));
        let rect = Value::Dict(vec![(
            s("Rect"),
            Value::Dict(vec![(s("w"), Value::Int(2)), (s("h"), Value::Int(3))]),
        )]);
        assert_eq!(rect.deserialize_into::<Shape>().unwrap(), Shape::Rect { w: 2, h: 3 });
        let compat = Value::Tuple(vec![s("Circle"), Value::Float(2.0)]);
        assert_eq!(compat.deserialize_into::<Shape>().unwrap(), Shape::Circle(2.0));
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        assert!(Value::List(vec![]).deserialize_into::<Point>().is_err());
        assert!(
            Value::Global { name: "datetime.date".into(), args: Box::new(Value::None) }
                .deserialize_into::<i64>()
                .unwrap_err()
                .to_string()
                .contains("datetime.date")
        );
        assert!(Value::Dict(vec![]).deserialize_into::<Shape>().is_err());
    }

    /// Every variant, nested, with the types serde has no shape for.
    fn every_python_type() -> Value {
        let big: BigInt = BigInt::from(2u8).pow(100);
        Value::Dict(vec![
            (s("tuple"), Value::Tuple(vec![Value::Int(1), s("a"), Value::Tuple(vec![])])),
            (s("set"), Value::Set(vec![Value::Int(1), Value::Int(2)])),
            (s("frozenset"), Value::FrozenSet(vec![s("x")])),
            (s("bytearray"), Value::ByteArray(vec![0, 255])),
            (s("bytes"), Value::Bytes(vec![1, 2])),
            (s("big"), Value::BigInt(big.clone())),
            (s("negbig"), Value::BigInt(-big)),
            (
                Value::Tuple(vec![Value::Int(1), Value::Int(2)]),
                Value::List(vec![Value::None, Value::Bool(true)]),
            ),
            (
                s("global"),
                Value::Global { name: "mod.Cls".into(), args: Box::new(Value::Tuple(vec![Value::Int(3)])) },
            ),
            (s("float"), Value::Float(1.5)),
        ])
    }

    #[test]
    fn to_value_of_a_value_is_the_same_value() {
        let v = every_python_type();
        assert_eq!(to_value(&v).unwrap(), v);
    }

    #[test]
    fn a_value_read_as_a_value_keeps_pythons_types() {
        let v = every_python_type();
        assert_eq!(v.clone().deserialize_into::<Value>().unwrap(), v);
        // Nested in a typed struct too.
        #[derive(Debug, serde::Deserialize, PartialEq)]
        struct Holder {
            inner: Value,
        }
        let holder = Value::Dict(vec![(s("inner"), v.clone())]);
        assert_eq!(holder.deserialize_into::<Holder>().unwrap(), Holder { inner: v });
    }

    #[test]
    fn json_sees_only_the_content_of_the_hints() {
        let v = Value::Dict(vec![
            (s("t"), Value::Tuple(vec![Value::Int(1), Value::Int(2)])),
            (s("s"), Value::Set(vec![Value::Int(3)])),
            (s("b"), Value::ByteArray(vec![7])),
            (s("n"), Value::BigInt(BigInt::from(u64::MAX) * 4u8)),
        ]);
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(text, r#"{"t":[1,2],"s":[3],"b":[7],"n":73786976294838206460}"#);
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back.type_name(), "dict");
        // A JSON object that looks like a tag is only a dict.
        let tag = format!(r#"{{"{}":[1]}}"#, hint::TUPLE);
        let read: Value = serde_json::from_str(&tag).unwrap();
        assert_eq!(read, Value::Dict(vec![(s(hint::TUPLE), Value::List(vec![Value::Int(1)]))]));
    }

    #[test]
    fn typed_values_map_as_serde_pickle_mapped_them() {
        #[derive(serde::Serialize)]
        enum E {
            Unit,
            New(u8),
            Tup(u8, u8),
            Rec { a: u8 },
        }
        #[derive(serde::Serialize)]
        struct S {
            x: i32,
            t: (u8, char),
            o: Option<u8>,
            es: Vec<E>,
            u: (),
            big: u128,
        }
        let v = to_value(&S {
            x: -1,
            t: (1, 'c'),
            o: None,
            es: vec![E::Unit, E::New(1), E::Tup(1, 2), E::Rec { a: 3 }],
            u: (),
            big: u128::MAX,
        })
        .unwrap();
        let d = |k: &str, v: Value| Value::Dict(vec![(s(k), v)]);
        assert_eq!(
            v,
            Value::Dict(vec![
                (s("x"), Value::Int(-1)),
                (s("t"), Value::Tuple(vec![Value::Int(1), s("c")])),
                (s("o"), Value::None),
                (
                    s("es"),
                    Value::List(vec![
                        s("Unit"),
                        d("New", Value::Int(1)),
                        d("Tup", Value::List(vec![Value::Int(1), Value::Int(2)])),
                        d("Rec", Value::Dict(vec![(s("a"), Value::Int(3))])),
                    ])
                ),
                (s("u"), Value::None),
                (s("big"), Value::BigInt(BigInt::from(u128::MAX))),
            ])
        );
    }
}
