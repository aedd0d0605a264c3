//! A [`Value`] as a serde `Deserializer`: how a typed value is read from
//! the dynamic one (the pickle protocol decodes to a `Value` first), and
//! the tagged form in which a `Value` read as a `Value` keeps Python's
//! types.

use serde::de::{self, Deserializer, Visitor};

use super::ser::hint;
use super::{PyObject, Value, ValueError, python};

impl Value {
    /// Reads this value as a `T`, the way serde-pickle maps Python's types
    /// onto serde's: a `dict` is a map or a struct, a `list`, `tuple` or
    /// `set` a sequence, `bytes` bytes (or a sequence of `u8`), `None` a
    /// unit or `Option::None`; an enum is `'Variant'` or
    /// `{'Variant': value}`.
    ///
    /// # Errors
    /// When the value does not fit `T`.
    pub fn deserialize_into<T: de::DeserializeOwned>(self) -> Result<T, ValueError> {
        T::deserialize(self)
    }

    fn unexpected(&self) -> de::Unexpected<'_> {
        match self {
            Value::None => de::Unexpected::Unit,
            Value::Bool(b) => de::Unexpected::Bool(*b),
            Value::Int(i) => de::Unexpected::Signed(*i),
            Value::Float(f) => de::Unexpected::Float(*f),
            Value::Str(s) => de::Unexpected::Str(s),
            Value::Bytes(b) | Value::ByteArray(b) => de::Unexpected::Bytes(b),
            Value::List(_) | Value::Tuple(_) | Value::Set(_) | Value::FrozenSet(_) => de::Unexpected::Seq,
            Value::Dict(_) => de::Unexpected::Map,
            Value::BigInt(_) => de::Unexpected::Other("a big integer"),
            Value::Global { .. } => de::Unexpected::Other("a placeholder of a Python global"),
            Value::Object(_) => de::Unexpected::Other("a Python object"),
            Value::Opaque(_) => de::Unexpected::Other("a pickle of an unknown class"),
        }
    }
}

impl<'de> de::IntoDeserializer<'de, ValueError> for Value {
    type Deserializer = Value;
    fn into_deserializer(self) -> Value {
        self
    }
}

impl<'de> Deserializer<'de> for Value {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        match self {
            Value::None => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(b),
            Value::Int(i) => v.visit_i64(i),
            Value::BigInt(b) => match i128::try_from(&b) {
                Ok(i) => v.visit_i128(i),
                Err(_) => match u128::try_from(&b) {
                    Ok(u) => v.visit_u128(u),
                    Err(_) => Err(ValueError(format!("integer {b} does not fit in 128 bits"))),
                },
            },
            Value::Float(f) => v.visit_f64(f),
            Value::Str(s) => v.visit_string(s),
            Value::Bytes(b) | Value::ByteArray(b) => v.visit_byte_buf(b),
            Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
                v.visit_seq(de::value::SeqDeserializer::new(items.into_iter()))
            }
            Value::Dict(pairs) => v.visit_map(de::value::MapDeserializer::new(pairs.into_iter())),
            Value::Global { name, .. } => {
                Err(ValueError(format!("a placeholder of global {name} cannot be read as a Rust value")))
            }
            // A deque reads as its items alone; every other object as its
            // serde form (a date as its ISO text, a Decimal as its text).
            Value::Object(PyObject::Deque { items, .. }) => {
                v.visit_seq(de::value::SeqDeserializer::new(items.into_iter()))
            }
            Value::Object(o) => python::to_hint(&o).1.deserialize_any(v),
            Value::Opaque(o) => Err(ValueError(format!(
                "the pickle holds an object of class {}, which shelf does not decode, so it cannot be read \
                 as a Rust value (read it as shelf::Value to keep its pickle bytes)",
                o.class()
            ))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        match self {
            Value::None => v.visit_none(),
            other => v.visit_some(other),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        match self {
            Value::None => v.visit_unit(),
            Value::Tuple(items) | Value::List(items) if items.is_empty() => v.visit_unit(),
            other => Err(de::Error::invalid_type(other.unexpected(), &"None")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, ValueError> {
        if name == hint::VALUE {
            // `Value` itself is asked for: keep Python's types.
            return v.visit_newtype_struct(Tagged(self));
        }
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        match self {
            // `Vec<u8>` from Python `bytes`.
            Value::Bytes(b) | Value::ByteArray(b) => {
                v.visit_seq(de::value::SeqDeserializer::new(b.into_iter()))
            }
            other => other.deserialize_any(v),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, ValueError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Value::Str(variant) => v.visit_enum(de::value::StringDeserializer::<ValueError>::new(variant)),
            Value::Dict(mut pairs) if pairs.len() == 1 => {
                let Some((key, value)) = pairs.pop() else {
                    return Err(ValueError("empty enum dict".into()));
                };
                v.visit_enum(EnumValue { key, value: Some(value) })
            }
            // serde-pickle's older ('Variant', value) form.
            Value::Tuple(mut items) | Value::List(mut items) if (1..=2).contains(&items.len()) => {
                let value = if items.len() == 2 { items.pop() } else { None };
                let key = items.remove(0);
                v.visit_enum(EnumValue { key, value })
            }
            other => Err(de::Error::invalid_type(other.unexpected(), &"an enum variant")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf map struct identifier ignored_any
    }
}

/// A [`Value`] read as a [`Value`]: like the plain deserializer, but the
/// types serde has no shape for come as tagged enum variants (named by
/// [`hint`]) that [`ValueVisitor::visit_enum`] turns back into them.
struct Tagged(Value);

impl<'de> de::IntoDeserializer<'de, ValueError> for Tagged {
    type Deserializer = Tagged;
    fn into_deserializer(self) -> Tagged {
        self
    }
}

impl<'de> Deserializer<'de> for Tagged {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        let (tag, content) = match self.0 {
            Value::Tuple(items) => (hint::TUPLE, Value::List(items)),
            Value::Set(items) => (hint::SET, Value::List(items)),
            Value::FrozenSet(items) => (hint::FROZENSET, Value::List(items)),
            Value::ByteArray(b) => (hint::BYTEARRAY, Value::Bytes(b)),
            Value::BigInt(b) => (hint::BIGINT, Value::Str(b.to_string())),
            Value::Global { name, args } => (hint::GLOBAL, Value::List(vec![Value::Str(name), *args])),
            Value::Object(o) => python::to_hint(&o),
            Value::Opaque(o) => (python::hint::OPAQUE, python::opaque_hint(&o)),
            Value::List(items) => {
                return v.visit_seq(de::value::SeqDeserializer::new(items.into_iter().map(Tagged)));
            }
            Value::Dict(pairs) => {
                let pairs = pairs.into_iter().map(|(k, x)| (Tagged(k), Tagged(x)));
                return v.visit_map(de::value::MapDeserializer::new(pairs));
            }
            plain => return plain.deserialize_any(v),
        };
        v.visit_enum(TaggedEnum { tag, content })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, ValueError> {
        v.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct seq tuple tuple_struct map struct
        enum identifier ignored_any
    }
}

struct TaggedEnum {
    tag: &'static str,
    content: Value,
}

impl<'de> de::EnumAccess<'de> for TaggedEnum {
    type Error = ValueError;
    type Variant = Tagged;

    fn variant_seed<S: de::DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Tagged), ValueError> {
        let tag = seed.deserialize(de::value::StrDeserializer::<ValueError>::new(self.tag))?;
        Ok((tag, Tagged(self.content)))
    }
}

impl<'de> de::VariantAccess<'de> for Tagged {
    type Error = ValueError;

    fn unit_variant(self) -> Result<(), ValueError> {
        Err(de::Error::custom("a tagged Python value has content"))
    }

    fn newtype_variant_seed<S: de::DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, ValueError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _v: V) -> Result<V::Value, ValueError> {
        Err(de::Error::custom("a tagged Python value is a newtype variant"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, ValueError> {
        Err(de::Error::custom("a tagged Python value is a newtype variant"))
    }
}

struct EnumValue {
    key: Value,
    value: Option<Value>,
}

impl<'de> de::EnumAccess<'de> for EnumValue {
    type Error = ValueError;
    type Variant = VariantValue;

    fn variant_seed<S: de::DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, VariantValue), ValueError> {
        let variant = seed.deserialize(self.key)?;
        Ok((variant, VariantValue(self.value)))
    }
}

struct VariantValue(Option<Value>);

impl<'de> de::VariantAccess<'de> for VariantValue {
    type Error = ValueError;

    fn unit_variant(self) -> Result<(), ValueError> {
        Ok(())
    }

    fn newtype_variant_seed<S: de::DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, ValueError> {
        seed.deserialize(self.0.unwrap_or(Value::None))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, ValueError> {
        self.0.unwrap_or(Value::None).deserialize_seq(v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ValueError> {
        self.0.unwrap_or(Value::None).deserialize_any(v)
    }
}
