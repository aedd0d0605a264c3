//! Protocols: the serialization formats a shelf stores values in (the word
//! is shelve's). Adding one is a local change: a variant here, its name, and
//! its arms in `encode`/`decode`/`encode_value`/`decode_value`.

use std::any::{Any, TypeId};
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{BoxError, OpenError};
use crate::pickle;
use crate::value::Value;

/// The largest value bincode will decode, in bytes: without a limit a
/// damaged length prefix could ask for an allocation of exabytes.
const BINCODE_LIMIT: usize = 1 << 31;

type BincodeConfig = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<BINCODE_LIMIT>,
>;

const fn bincode_config() -> BincodeConfig {
    bincode::config::standard().with_limit::<BINCODE_LIMIT>()
}

/// Options of the pickle protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PickleOptions {
    /// The pickle protocol written: 3 (readable by every CPython 3, the
    /// default) or 2 (readable by CPython 2.7 too). Reading accepts 0 to 5.
    pub version: u8,
    /// Decode a class instance or other global to [`Value::Global`] instead
    /// of failing. Nothing is ever imported or called either way.
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

    /// Decode globals to placeholders instead of failing.
    pub fn with_placeholder_globals(self) -> Self {
        PickleOptions { placeholder_globals: true, ..self }
    }
}

/// A serialization format for values.
///
/// | protocol | self-describing | readable by Python | notes |
/// |---|---|---|---|
/// | `Bincode` | no | no | compact and fast; the default |
/// | `Json` | yes | yes (`json`) | tuples, sets and bytes read back as lists |
/// | `Pickle` | yes | yes (`pickle`, `shelve`) | CPython's own format |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// bincode 2 (standard configuration: little-endian, varint integers).
    #[default]
    Bincode,
    /// JSON (serde_json).
    Json,
    /// Python's pickle (serde-pickle).
    Pickle(PickleOptions),
}

impl Protocol {
    /// Every protocol name, as `FromStr` accepts them.
    pub const NAMES: &'static [&'static str] = &["bincode", "json", "pickle"];

    /// The pickle protocol with default options.
    pub fn pickle() -> Self {
        Protocol::Pickle(PickleOptions::default())
    }

    /// The protocol's name, as stored in a shelf's metadata.
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Bincode => "bincode",
            Protocol::Json => "json",
            Protocol::Pickle(_) => "pickle",
        }
    }

    /// Whether values can be read without knowing their type (into [`Value`]).
    pub fn is_self_describing(&self) -> bool {
        !matches!(self, Protocol::Bincode)
    }

    /// Serializes a value. [`Value`] goes through [`encode_value`](Self::encode_value)
    /// so Python types (tuple, set, bytearray) survive.
    pub fn encode<T: Serialize + Any>(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        if let Some(v) = (value as &dyn Any).downcast_ref::<Value>() {
            return self.encode_value(v);
        }
        Ok(match self {
            Protocol::Bincode => bincode::serde::encode_to_vec(value, bincode_config())?,
            Protocol::Json => serde_json::to_vec(value)?,
            Protocol::Pickle(o) => pickle::encode(value, o)?,
        })
    }

    /// Deserializes a value of type `T`. Asking for [`Value`] decodes the
    /// dynamic form (see [`decode_value`](Self::decode_value)).
    pub fn decode<T: DeserializeOwned + Any>(&self, bytes: &[u8]) -> Result<T, BoxError> {
        if TypeId::of::<T>() == TypeId::of::<Value>() {
            let boxed: Box<dyn Any> = Box::new(self.decode_value(bytes)?);
            return boxed.downcast::<T>().map(|b| *b).map_err(|_| "dynamic value type confusion".into());
        }
        Ok(match self {
            Protocol::Bincode => {
                let (value, used) = bincode::serde::decode_from_slice(bytes, bincode_config())?;
                if used != bytes.len() {
                    return Err(
                        format!("{} trailing bytes after the bincode value", bytes.len() - used).into()
                    );
                }
                value
            }
            Protocol::Json => serde_json::from_slice(bytes)?,
            Protocol::Pickle(o) => pickle::decode(bytes, o)?,
        })
    }

    /// Serializes a dynamic value.
    pub fn encode_value(&self, value: &Value) -> Result<Vec<u8>, BoxError> {
        Ok(match self {
            Protocol::Bincode => bincode::serde::encode_to_vec(value, bincode_config())?,
            Protocol::Json => serde_json::to_vec(value)?,
            Protocol::Pickle(o) => pickle::encode_value(value, o)?,
        })
    }

    /// Deserializes any value of a self-describing protocol; bincode is not
    /// one and fails.
    pub fn decode_value(&self, bytes: &[u8]) -> Result<Value, BoxError> {
        match self {
            Protocol::Bincode => {
                Err("bincode is not self-describing: read a concrete type, not Value".into())
            }
            Protocol::Json => Ok(serde_json::from_slice(bytes)?),
            Protocol::Pickle(o) => pickle::decode_value(bytes, o),
        }
    }
}

impl FromStr for Protocol {
    type Err = OpenError;

    /// Parses `bincode`, `json`, `pickle` (protocol 3), `pickle2` or `pickle3`.
    fn from_str(s: &str) -> Result<Self, OpenError> {
        match s {
            "bincode" => Ok(Protocol::Bincode),
            "json" => Ok(Protocol::Json),
            "pickle" | "pickle3" => Ok(Protocol::pickle()),
            "pickle2" => Ok(Protocol::Pickle(PickleOptions::v2())),
            other => Err(OpenError::UnknownProtocol(other.to_owned())),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
