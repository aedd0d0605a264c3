//! Protocols: the serialization formats a shelf stores values in (the word
//! is shelve's). Adding one is a local change: a variant here, its name, and
//! its arms in `encode`/`decode`/`encode_value`/`decode_value`.

use std::str::FromStr;

use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{BoxError, OpenError};
use crate::pickle::{self, PickleOptions};
use crate::value::Value;

/// The largest value bincode will decode, in bytes: without a limit a
/// damaged length prefix could ask for an allocation of exabytes.
const BINCODE_LIMIT: usize = 1 << 31;

type BincodeConfig<I> =
    bincode::config::Configuration<bincode::config::LittleEndian, I, bincode::config::Limit<BINCODE_LIMIT>>;

/// What [`Protocol::Bincode`] writes: fixed-width integers, so a value read
/// back as an integer of another width fails instead of decoding to a
/// different number.
const fn fixint_config() -> BincodeConfig<bincode::config::Fixint> {
    bincode::config::standard().with_fixed_int_encoding().with_limit::<BINCODE_LIMIT>()
}

/// What shelves written before [`Protocol::Bincode`] moved to fixed-width
/// integers hold ([`Protocol::BincodeVarint`]).
const fn varint_config() -> BincodeConfig<bincode::config::Varint> {
    bincode::config::standard().with_limit::<BINCODE_LIMIT>()
}

/// Decodes one bincode value that must fill `bytes` exactly: trailing bytes
/// mean the value was not a `T` (or the bytes are damaged), never a shorter
/// value to return.
fn bincode_decode<T: DeserializeOwned, C: bincode::config::Config>(
    bytes: &[u8],
    config: C,
) -> Result<T, BoxError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config)?;
    if used != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the bincode value: the stored value is not of the type asked for",
            bytes.len() - used
        )
        .into());
    }
    Ok(value)
}

/// bincode's writer appending to a `Vec` (its own `VecWriter` is private).
struct Append<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for Append<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// The deepest nesting a MessagePack value may have when decoded (serde_json's
/// limit too): a damaged or hostile value cannot exhaust the stack.
const MSGPACK_DEPTH: usize = 128;

/// Decodes one MessagePack value that must fill `bytes` exactly, as
/// [`bincode_decode`] does.
fn msgpack_decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BoxError> {
    // Read from the slice itself (rmp-serde's reader of `io::Read` copies
    // every string and byte string into a buffer first).
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MSGPACK_DEPTH);
    let value = T::deserialize(&mut de)?;
    // The slice reader does not say where it stopped: a second value must
    // find nothing at all to read (an end of input, which costs no
    // allocation), else bytes trail the first.
    match serde::de::IgnoredAny::deserialize(&mut de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(value)
        }
        _ => {
            Err("trailing bytes after the MessagePack value: the stored value is damaged or not one value"
                .into())
        }
    }
}

/// A serialization format for values. Make one with the constructors
/// ([`Protocol::msgpack`], [`Protocol::bincode`], [`Protocol::json`],
/// [`Protocol::pickle`], [`Protocol::pickle_version`]) or parse a name
/// (`"msgpack".parse()`); match on the variants.
///
/// | protocol | self-describing | readable by Python | notes |
/// |---|---|---|---|
/// | `MessagePack` | yes | yes (`msgpack`) | the default for new shelves; structs as maps with field names, so a struct can gain `#[serde(default)]` fields |
/// | `Bincode` | no | no | the most compact and fastest; the exact Rust type is needed to read it |
/// | `BincodeVarint` | no | no | what `Bincode` wrote before; read old shelves with it |
/// | `Json` | yes | yes (`json`) | tuples, sets and bytes read back as lists |
/// | `Pickle` | yes | yes (`pickle`, `shelve`) | CPython's own format |
///
/// # Reading bincode as the wrong type
/// bincode stores no types, so reading a value as another type than it was
/// written with can only be caught where the bytes do not fit. `Bincode`
/// writes integers at their full width and every decode must use up exactly
/// the stored bytes, so a different width is [`Error::Decode`](crate::Error):
/// `insert(k, &2u32)` then `get::<i64>(k)` fails (4 bytes stored, 8 needed),
/// and `get::<u16>(k)` fails (2 bytes left over). Not detectable, because the
/// bytes fit both: types of the same width read as each other (`u32` as
/// `i32`, so a `u32` above 2^31 reads as a negative number; `u64` as `i64`
/// or `f64`; `u32` as `f32` or `char` where valid), a struct as a tuple or
/// another struct of the same field types, `String` as `Vec<u8>`.
/// `BincodeVarint` (integers as 1 to 9 bytes, zigzag for signed) catches even
/// less: `2u32` is one byte that reads as the `i64` 1.
///
/// Shelves record `Bincode` as `bincode-fixint` and `BincodeVarint` as
/// `bincode` (the name all shelves written before used), so both keep
/// reading as written. On backends that record no protocol (dumb, dir) a
/// shelf written before needs `BincodeVarint` (`--protocol bincode-varint`)
/// named explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// MessagePack (rmp-serde), structs written as maps with their field
    /// names: self-describing, so [`Value`], the CLI, Python's `msgpack`
    /// and other languages read it, and a struct that gains a
    /// `#[serde(default)]` field still reads its old values.
    #[default]
    MessagePack,
    /// bincode 2, little-endian with fixed-width integers (8-byte lengths).
    Bincode,
    /// bincode 2's standard configuration (little-endian, varint integers):
    /// what [`Bincode`](Self::Bincode) wrote before, kept to read those shelves.
    BincodeVarint,
    /// JSON (serde_json).
    Json,
    /// Python's pickle (serde-pickle).
    Pickle(PickleOptions),
}

impl Protocol {
    /// Every protocol name, as `FromStr` accepts them (`pickle` is
    /// `pickle3`).
    pub const NAMES: &'static [&'static str] = &[
        "msgpack",
        "bincode",
        "bincode-varint",
        "json",
        "pickle",
        "pickle2",
        "pickle3",
        "pickle4",
        "pickle5",
    ];

    /// MessagePack: the default for new shelves.
    pub fn msgpack() -> Self {
        Protocol::MessagePack
    }

    /// bincode with fixed-width integers.
    pub fn bincode() -> Self {
        Protocol::Bincode
    }

    /// JSON.
    pub fn json() -> Self {
        Protocol::Json
    }

    /// The pickle protocol with default options (pickle protocol 3, which
    /// every CPython 3 reads).
    pub fn pickle() -> Self {
        Protocol::Pickle(PickleOptions::default())
    }

    /// Pickle writing protocol `version` (clamped to 2..=5).
    pub fn pickle_version(version: u8) -> Self {
        Protocol::Pickle(PickleOptions::default().with_version(version))
    }

    /// The protocol's name, as `FromStr` accepts it and messages show it.
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::MessagePack => "msgpack",
            Protocol::Bincode => "bincode",
            Protocol::BincodeVarint => "bincode-varint",
            Protocol::Json => "json",
            Protocol::Pickle(o) => match o.version {
                ..=2 => "pickle2",
                4 => "pickle4",
                5.. => "pickle5",
                3 => "pickle",
            },
        }
    }

    /// The same protocol, decoding pickles that name classes shelf does
    /// not know to [`Value::Opaque`] placeholders (see
    /// [`PickleOptions::placeholder_globals`]); other protocols unchanged.
    /// What a tool that shows or copies values wants: nothing fails and
    /// nothing changes.
    pub fn with_placeholders(self) -> Self {
        match self {
            Protocol::Pickle(o) => Protocol::Pickle(o.with_placeholder_globals()),
            other => other,
        }
    }

    /// The pickle protocol a stored value was written with: the number
    /// after its `PROTO` opcode (2 to 5), or 0 for a pickle of protocol 0
    /// or 1 (which have no `PROTO`); `None` when `bytes` cannot be a
    /// pickle. A writer joining a shelf Python wrote keeps the highest
    /// version its values use (through
    /// [`PickleOptions::with_version`]), so a CPython 2.7 shelf stays
    /// readable by 2.7.
    pub fn detect_pickle_version(bytes: &[u8]) -> Option<u8> {
        pickle::detect_version(bytes)
    }

    /// The name recorded in a shelf's metadata. It differs from
    /// [`name`](Self::name) only for bincode: shelves written before the
    /// fixed-width configuration recorded `bincode` for varint bytes, so
    /// that record keeps meaning varint and the new one gets its own.
    pub fn record_name(&self) -> &'static str {
        match self {
            Protocol::Bincode => "bincode-fixint",
            Protocol::BincodeVarint => "bincode",
            // Any version reads every version: the record is the family.
            Protocol::Pickle(_) => "pickle",
            other => other.name(),
        }
    }

    /// The protocol a shelf's metadata names (see
    /// [`record_name`](Self::record_name)), with default options.
    ///
    /// # Errors
    /// [`OpenError::UnknownProtocol`] for a name this build does not know.
    pub fn from_record(name: &str) -> Result<Self, OpenError> {
        match name {
            "bincode" => Ok(Protocol::BincodeVarint),
            "bincode-fixint" => Ok(Protocol::Bincode),
            other => other.parse(),
        }
    }

    /// The family: `bincode` for both bincode configurations, else the
    /// name. Asking for a protocol of the family a shelf records is no
    /// mismatch; the record decides the configuration.
    pub fn family(&self) -> &'static str {
        match self {
            Protocol::Bincode | Protocol::BincodeVarint => "bincode",
            Protocol::Pickle(_) => "pickle",
            other => other.name(),
        }
    }

    /// Whether values can be read without knowing their type (into [`Value`]).
    pub fn is_self_describing(&self) -> bool {
        !matches!(self, Protocol::Bincode | Protocol::BincodeVarint)
    }

    /// Serializes a value. A [`Value`], alone or inside a typed value, keeps
    /// its Python types (tuple, set, bytearray) where the protocol has them:
    /// `Value` tells the serializer through serde itself, so no `Any` bound
    /// or type test is needed.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        if let Protocol::Pickle(o) = self {
            return pickle::encode(value, o);
        }
        let mut out = Vec::new();
        self.encode_into(value, &mut out)?;
        Ok(out)
    }

    /// Serializes a value at the end of `out`, as [`encode`](Self::encode)
    /// does: a writer that keeps one buffer allocates nothing per value.
    /// On error `out` may hold part of the value.
    pub fn encode_into<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        match self {
            Protocol::MessagePack => rmp_serde::encode::write_named(out, value)?,
            Protocol::Bincode => bincode::serde::encode_into_writer(value, Append(out), fixint_config())?,
            Protocol::BincodeVarint => {
                bincode::serde::encode_into_writer(value, Append(out), varint_config())?
            }
            Protocol::Json => serde_json::to_writer(out, value)?,
            Protocol::Pickle(o) => pickle::encode_into(value, o, out)?,
        }
        Ok(())
    }

    /// Deserializes a value of type `T`. Asking for [`Value`] (alone or
    /// inside a typed value) keeps Python's types, as
    /// [`decode_value`](Self::decode_value) does.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(match self {
            Protocol::MessagePack => msgpack_decode(bytes)?,
            Protocol::Bincode => bincode_decode(bytes, fixint_config())?,
            Protocol::BincodeVarint => bincode_decode(bytes, varint_config())?,
            Protocol::Json => serde_json::from_slice(bytes)?,
            Protocol::Pickle(o) => pickle::decode(bytes, o)?,
        })
    }

    /// Serializes a dynamic value (the same as [`encode`](Self::encode),
    /// without the detour through serde for pickle).
    pub fn encode_value(&self, value: &Value) -> Result<Vec<u8>, BoxError> {
        match self {
            Protocol::Pickle(o) => pickle::encode_value(value, o),
            other => other.encode(value),
        }
    }

    /// Deserializes any value of a self-describing protocol; bincode is not
    /// one and fails.
    pub fn decode_value(&self, bytes: &[u8]) -> Result<Value, BoxError> {
        match self {
            Protocol::Bincode | Protocol::BincodeVarint => {
                Err("bincode is not self-describing: read a concrete type, not Value".into())
            }
            Protocol::MessagePack => msgpack_decode(bytes),
            Protocol::Json => Ok(serde_json::from_slice(bytes)?),
            Protocol::Pickle(o) => pickle::decode_value(bytes, o),
        }
    }
}

impl FromStr for Protocol {
    type Err = OpenError;

    /// Parses `msgpack` (or `messagepack`), `bincode` (or
    /// `bincode-fixint`), `bincode-varint`, `json`, `pickle` (protocol 3),
    /// `pickle2`, `pickle3`, `pickle4` or `pickle5`.
    fn from_str(s: &str) -> Result<Self, OpenError> {
        match s {
            "msgpack" | "messagepack" => Ok(Protocol::MessagePack),
            "bincode" | "bincode-fixint" => Ok(Protocol::Bincode),
            "bincode-varint" => Ok(Protocol::BincodeVarint),
            "json" => Ok(Protocol::Json),
            "pickle" | "pickle3" => Ok(Protocol::pickle()),
            "pickle2" => Ok(Protocol::Pickle(PickleOptions::v2())),
            "pickle4" => Ok(Protocol::Pickle(PickleOptions::default().with_version(4))),
            "pickle5" => Ok(Protocol::Pickle(PickleOptions::default().with_version(5))),
            other => Err(OpenError::UnknownProtocol(other.to_owned())),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, MemoryBackend, Shelf};

    #[test]
    fn bincode_reads_no_integer_as_one_of_another_width() {
        let mut s = Shelf::with_backend(MemoryBackend::new(), Protocol::Bincode).unwrap();
        s.insert("n", &2u32).unwrap();
        assert!(matches!(s.get::<i64>("n"), Err(Error::Decode { .. })), "too few bytes for an i64");
        assert!(matches!(s.get::<u16>("n"), Err(Error::Decode { .. })), "bytes left over after a u16");
        assert_eq!(s.get::<u32>("n").unwrap(), Some(2));
        s.insert("big", &u64::MAX).unwrap();
        assert!(matches!(s.get::<u32>("big"), Err(Error::Decode { .. })));
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct V1 {
        name: String,
        count: u32,
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct V2 {
        name: String,
        count: u32,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[test]
    fn msgpack_is_the_default_and_reads_back_without_the_type() {
        let mut s = Shelf::new(MemoryBackend::new(), crate::ShelfOptions::default()).unwrap();
        assert_eq!(s.protocol(), Protocol::MessagePack);
        s.insert("rec", &V1 { name: "a".into(), count: 2 }).unwrap();
        // A struct that gained a defaulted field reads the old value.
        let v2: V2 = s.get("rec").unwrap().unwrap();
        assert_eq!(v2, V2 { name: "a".into(), count: 2, tags: vec![] });
        // And so does a reader with no Rust type at all: field names kept.
        let v: Value = s.get("rec").unwrap().unwrap();
        let Value::Dict(pairs) = v else { panic!("a map, got {v:?}") };
        assert_eq!(pairs[0], (Value::Str("name".into()), Value::Str("a".into())));
        assert_eq!(pairs[1], (Value::Str("count".into()), Value::Int(2)));
    }

    #[test]
    fn msgpack_refuses_trailing_bytes_deep_nesting_and_wrong_types() {
        let p = Protocol::MessagePack;
        let mut bytes = p.encode(&1u8).unwrap();
        bytes.push(0xc0);
        assert!(p.decode::<u8>(&bytes).unwrap_err().to_string().contains("trailing"));
        assert!(p.decode::<String>(&p.encode(&7u32).unwrap()).is_err());
        // 100,000 nested one-element arrays: an error, not a stack overflow.
        let deep = [vec![0x91u8; 100_000], vec![0xc0]].concat();
        assert!(p.decode_value(&deep).is_err());
        assert!(p.decode_value(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err(), "a huge array length, no bytes");
        for v in [
            Value::None,
            Value::Bool(true),
            Value::Int(-5),
            Value::Float(1.5),
            Value::Str("é".into()),
            Value::Bytes(vec![0, 255]),
            Value::List(vec![Value::Int(1), Value::Str("x".into())]),
            Value::Dict(vec![(Value::Str("k".into()), Value::List(vec![]))]),
        ] {
            assert_eq!(p.decode_value(&p.encode_value(&v).unwrap()).unwrap(), v);
        }
    }

    #[test]
    fn varint_bincode_catches_trailing_bytes_only() {
        let p = Protocol::BincodeVarint;
        let bytes = p.encode(&(1u8, 2u8)).unwrap();
        assert!(p.decode::<u8>(&bytes).is_err(), "a trailing byte is an error, not the value 1");
        // The documented blind spot: one byte fits both.
        assert_eq!(p.decode::<i64>(&p.encode(&2u32).unwrap()).unwrap(), 1);
    }

    #[test]
    fn records_keep_old_bincode_shelves_readable() {
        assert_eq!(Protocol::from_record("bincode").unwrap(), Protocol::BincodeVarint);
        assert_eq!(Protocol::from_record("bincode-fixint").unwrap(), Protocol::Bincode);
        for p in [
            Protocol::MessagePack,
            Protocol::Bincode,
            Protocol::BincodeVarint,
            Protocol::Json,
            Protocol::pickle(),
        ] {
            assert_eq!(Protocol::from_record(p.record_name()).unwrap(), p);
            assert_eq!(p.name().parse::<Protocol>().unwrap(), p);
        }
        assert_eq!("bincode".parse::<Protocol>().unwrap(), Protocol::Bincode);
        assert_eq!(Protocol::BincodeVarint.family(), Protocol::Bincode.family());
    }

    #[test]
    fn every_pickle_version_has_a_name_and_records_as_pickle() {
        for v in PickleOptions::VERSIONS {
            let p = Protocol::Pickle(PickleOptions::default().with_version(v));
            assert_eq!(p.name().parse::<Protocol>().unwrap(), p, "{v}");
            assert!(Protocol::NAMES.contains(&p.name()));
            assert_eq!(p.record_name(), "pickle");
            assert_eq!(p.family(), "pickle");
            assert_eq!(Protocol::detect_pickle_version(&p.encode(&1u8).unwrap()), Some(v));
        }
        assert_eq!(PickleOptions::default().with_version(0).version, 2);
        assert_eq!(PickleOptions::default().with_version(9).version, 5);
        assert_eq!(Protocol::detect_pickle_version(b"(lp0\nI1\na."), Some(0));
        assert_eq!(Protocol::detect_pickle_version(b"]q\x00."), Some(0));
        assert_eq!(Protocol::detect_pickle_version(b"\x80\x09N."), None);
        assert_eq!(Protocol::detect_pickle_version(b"{\"json\": 1}"), None);
        assert_eq!(Protocol::detect_pickle_version(b""), None);
    }
}
