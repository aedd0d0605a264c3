//! The serializer of [`encode_scalar_into`](super::encode_scalar_into): a
//! typed value that is one scalar goes straight to the pickler, borrowed,
//! with the calls `Pickler::save` makes for the same [`Value`]
//! (`crate::value::Value`) that `to_value` would build. Anything else
//! answers [`NotScalar::Compound`] before writing a byte.

use std::fmt;

use serde::ser::{self, Impossible, Serialize};

use super::{NEWFALSE, NEWTRUE, NONE, Pickler};

/// Why the fast path did not write the value.
#[derive(Debug)]
pub(crate) enum NotScalar {
    /// Not a single scalar: the `Value` path writes it.
    Compound,
    /// A scalar the pickler refused (a `str` over 4 GiB below protocol
    /// 4), or a `Serialize` impl's own error: the encode fails.
    Failed(String),
}

impl fmt::Display for NotScalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotScalar::Compound => f.write_str("not a single scalar"),
            NotScalar::Failed(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for NotScalar {}

impl ser::Error for NotScalar {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NotScalar::Failed(msg.to_string())
    }
}

/// Serializes one scalar into the pickler.
pub(crate) struct Scalar<'p>(pub(crate) &'p mut Pickler);

type Compound = Impossible<(), NotScalar>;

impl Scalar<'_> {
    fn int(self, i: i64) -> Result<(), NotScalar> {
        self.0.save_int(i);
        Ok(())
    }
}

/// `serialize_*` of the integer types that always fit `i64`: a pickle int.
macro_rules! small_ints {
    ($($method:ident: $t:ty),*) => {
        $(fn $method(self, v: $t) -> Result<(), NotScalar> {
            self.int(v.into())
        })*
    };
}

impl<'p> ser::Serializer for Scalar<'p> {
    type Ok = ();
    type Error = NotScalar;
    type SerializeSeq = Compound;
    type SerializeTuple = Compound;
    type SerializeTupleStruct = Compound;
    type SerializeTupleVariant = Compound;
    type SerializeMap = Compound;
    type SerializeStruct = Compound;
    type SerializeStructVariant = Compound;

    fn serialize_bool(self, v: bool) -> Result<(), NotScalar> {
        self.0.out.push(if v { NEWTRUE } else { NEWFALSE });
        Ok(())
    }
    small_ints!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32
    );
    fn serialize_u64(self, v: u64) -> Result<(), NotScalar> {
        // Beyond i64 the `Value` is a big int: its path writes it.
        i64::try_from(v).map_err(|_| NotScalar::Compound).and_then(|i| self.int(i))
    }
    fn serialize_i128(self, _: i128) -> Result<(), NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_u128(self, _: u128) -> Result<(), NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_f32(self, v: f32) -> Result<(), NotScalar> {
        self.0.save_float(v.into());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), NotScalar> {
        self.0.save_float(v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), NotScalar> {
        self.0.save_str(v.encode_utf8(&mut [0; 4])).map_err(NotScalar::Failed)
    }
    fn serialize_str(self, v: &str) -> Result<(), NotScalar> {
        self.0.save_str(v).map_err(NotScalar::Failed)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), NotScalar> {
        self.0.save_bytes(v).map_err(NotScalar::Failed)
    }
    fn serialize_none(self) -> Result<(), NotScalar> {
        self.0.out.push(NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), NotScalar> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), NotScalar> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), NotScalar> {
        self.serialize_none()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotScalar> {
        // `to_value` maps some newtypes by name (Python's own types).
        Err(NotScalar::Compound)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound, NotScalar> {
        Err(NotScalar::Compound)
    }
}
