//! Any `T: Serialize` to a [`Value`]: how typed values reach the one pickle
//! writer, mapped onto Python's types as serde-pickle mapped them (so
//! shelves written before read back the same), and how [`Value`]'s own
//! Python types survive serde without `Any` (see [`hint`]).

use num_bigint::BigInt;
use serde::ser::{self, Serialize};

use super::{Value, ValueError};

/// Names of the newtype structs through which [`Value`] tells a serializer
/// which Python type a serde shape stands for. Every other serializer
/// (serde_json, bincode) treats a newtype struct as its content, so their
/// output is what it would be without the hint; [`ValueSerializer`] reads
/// the name and rebuilds the exact variant. The names are no Rust
/// identifiers, so no user type can collide with them (the technique of
/// serde_json's `RawValue`).
pub(crate) mod hint {
    /// A `tuple`, serialized as a serde tuple.
    pub(crate) const TUPLE: &str = "$shelf::private::tuple";
    /// A `set`, serialized as a sequence.
    pub(crate) const SET: &str = "$shelf::private::set";
    /// A `frozenset`, serialized as a sequence.
    pub(crate) const FROZENSET: &str = "$shelf::private::frozenset";
    /// A `bytearray`, serialized as bytes.
    pub(crate) const BYTEARRAY: &str = "$shelf::private::bytearray";
    /// An `int` beyond 64 bits, serialized as an `i128` or a decimal string.
    pub(crate) const BIGINT: &str = "$shelf::private::bigint";
    /// A placeholder global, serialized as `{"$global:NAME": args}`.
    pub(crate) const GLOBAL: &str = "$shelf::private::global";
    /// [`Value`](super::Value) itself, asked for by its `Deserialize`: a
    /// deserializer that knows Python's types answers with tagged variants.
    pub(crate) const VALUE: &str = "$shelf::private::Value";
}

/// Converts any serializable value to a [`Value`], the way the pickle
/// protocol stores it: structs and maps become dicts, tuples tuples,
/// sequences lists, `()` and `None` Python's `None`, a unit enum variant
/// its name, other variants a one-key dict `{variant: content}`.
///
/// # Errors
/// A custom `Serialize` impl's own error.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ValueError> {
    value.serialize(ValueSerializer)
}

/// The serializer behind [`to_value`].
pub(crate) struct ValueSerializer;

fn int_from_i128(i: i128) -> Value {
    match i64::try_from(i) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::BigInt(BigInt::from(i)),
    }
}

/// Rebuilds the variant a [`hint`] names from the serde shape it carried.
fn hinted(name: &str, inner: Value) -> Result<Value, ValueError> {
    Ok(match (name, inner) {
        (hint::TUPLE, Value::Tuple(items) | Value::List(items)) => Value::Tuple(items),
        (hint::SET, Value::List(items) | Value::Tuple(items)) => Value::Set(items),
        (hint::FROZENSET, Value::List(items) | Value::Tuple(items)) => Value::FrozenSet(items),
        (hint::BYTEARRAY, Value::Bytes(b)) => Value::ByteArray(b),
        (hint::BIGINT, Value::Str(s)) => {
            Value::BigInt(s.parse().map_err(|_| ValueError(format!("not an integer: {s:?}")))?)
        }
        (hint::BIGINT, v @ (Value::Int(_) | Value::BigInt(_))) => v,
        (hint::GLOBAL, Value::Dict(mut pairs)) if pairs.len() == 1 => match pairs.pop() {
            Some((Value::Str(key), args)) if key.starts_with("$global:") => {
                Value::Global { name: key["$global:".len()..].to_owned(), args: Box::new(args) }
            }
            _ => return Err(ValueError("malformed placeholder global".into())),
        },
        (name, inner) => match super::python::from_hint(name, inner.clone()) {
            Some(rebuilt) => rebuilt.map_err(ValueError)?,
            None => inner,
        },
    })
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = VariantBuilder<SeqBuilder>;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = VariantBuilder<MapBuilder>;

    fn serialize_bool(self, v: bool) -> Result<Value, ValueError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        Ok(Value::Int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, ValueError> {
        Ok(int_from_i128(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        Ok(int_from_i128(v.into()))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, ValueError> {
        Ok(match i128::try_from(v) {
            Ok(i) => int_from_i128(i),
            Err(_) => Value::BigInt(BigInt::from(v)),
        })
    }
    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        Ok(Value::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ValueError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::None)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ValueError> {
        Ok(Value::None)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ValueError> {
        Ok(Value::Str(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        hinted(name, value.serialize(self)?)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        Ok(Value::Dict(vec![(Value::Str(variant.to_owned()), value.serialize(self)?)]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder { items: Vec::with_capacity(len.unwrap_or(0).min(4096)), tuple: false })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder { items: Vec::with_capacity(len.min(4096)), tuple: true })
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<SeqBuilder, ValueError> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<SeqBuilder>, ValueError> {
        // A list, as serde-pickle wrote `{variant: [...]}`.
        let inner = SeqBuilder { items: Vec::with_capacity(len.min(4096)), tuple: false };
        Ok(VariantBuilder { variant, inner })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, ValueError> {
        Ok(MapBuilder { pairs: Vec::with_capacity(len.unwrap_or(0).min(4096)), key: None })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapBuilder, ValueError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<MapBuilder>, ValueError> {
        Ok(VariantBuilder { variant, inner: self.serialize_map(Some(len))? })
    }
}

/// A list or tuple being built.
pub(crate) struct SeqBuilder {
    items: Vec<Value>,
    tuple: bool,
}

impl SeqBuilder {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn finish(self) -> Value {
        if self.tuple { Value::Tuple(self.items) } else { Value::List(self.items) }
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

/// A dict being built.
pub(crate) struct MapBuilder {
    pairs: Vec<(Value, Value)>,
    key: Option<Value>,
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ValueError> {
        self.key = Some(key.serialize(ValueSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        let key = self.key.take().ok_or_else(|| ValueError("a map value came before its key".into()))?;
        self.pairs.push((key, value.serialize(ValueSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Dict(self.pairs))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.pairs.push((Value::Str(key.to_owned()), value.serialize(ValueSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Dict(self.pairs))
    }
}

/// A tuple or struct variant: `{variant: content}`.
pub(crate) struct VariantBuilder<I> {
    variant: &'static str,
    inner: I,
}

impl VariantBuilder<SeqBuilder> {
    fn wrap(self) -> Value {
        Value::Dict(vec![(Value::Str(self.variant.to_owned()), self.inner.finish())])
    }
}

impl ser::SerializeTupleVariant for VariantBuilder<SeqBuilder> {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.inner.push(value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.wrap())
    }
}

impl ser::SerializeStructVariant for VariantBuilder<MapBuilder> {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, value)
    }
    fn end(self) -> Result<Value, ValueError> {
        let content = ser::SerializeStruct::end(self.inner)?;
        Ok(Value::Dict(vec![(Value::Str(self.variant.to_owned()), content)]))
    }
}

impl ser::Error for ValueError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}
