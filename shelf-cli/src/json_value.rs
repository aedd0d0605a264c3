//! The JSON form of shelf values and keys, used by `get`, `set`, `dump` and
//! `load`.
//!
//! JSON has null, booleans, numbers, strings, arrays and objects with string
//! keys. Every [`Value`] that fits those is written as itself; what JSON
//! lacks is written as an object with exactly one key, starting with `$`,
//! that names the type:
//!
//! | value | JSON |
//! |---|---|
//! | `None`, `Bool`, `Str`, `List` | `null`, `true`/`false`, `"text"`, `[...]` |
//! | `Int` | a number without a fraction or exponent |
//! | `BigInt` (outside `i64`) | `{"$int": "<decimal>"}` |
//! | `Float`, finite | a number with a fraction or exponent (`1.0`, not `1`) |
//! | `Float`, not finite | `{"$float": "nan" \| "inf" \| "-inf"}` |
//! | `Bytes` / `ByteArray` | `{"$bytes": "<base64>"}` / `{"$bytearray": "<base64>"}` |
//! | `Tuple`, `Set`, `FrozenSet` | `{"$tuple": [...]}`, `{"$set": [...]}`, `{"$frozenset": [...]}` |
//! | `Dict` with distinct string keys | an object, in the dict's order |
//! | any other `Dict` | `{"$dict": [[k, v], ...]}` |
//! | `Global` placeholder | `{"$global": ["module.name", args]}` |
//! | `datetime.date` / `time` / `datetime` | `{"$date": "2026-11-30"}`, `{"$time": "08:00:00"}`, `{"$datetime": "2026-11-30T08:00:00+00:00"}` (ISO 8601; `[Europe/Paris]`, `[tzname=X]`, `[fold=1]` annotations) |
//! | `datetime.timedelta` | `{"$timedelta": [days, seconds, microseconds]}` |
//! | `decimal.Decimal`, `uuid.UUID`, `fractions.Fraction` | `{"$decimal": "1.10"}`, `{"$uuid": "12345678-1234-5678-1234-567812345678"}`, `{"$fraction": "3/4"}` |
//! | `collections.OrderedDict` | `{"$ordereddict": [[k, v], ...]}` |
//! | `collections.deque` | `{"$deque": [...]}`, bounded `{"$deque": {"items": [...], "maxlen": n}}` |
//! | `collections.defaultdict` | `{"$defaultdict": {"factory": "list" \| null, "items": [[k, v], ...]}}` |
//! | `complex` | `{"$complex": [re, im]}` |
//! | `pathlib.PurePosixPath` / `PosixPath` | `{"$purepath": "/a/b"}` / `{"$path": "/a/b"}` |
//! | a numpy array as mmappickle pickles it (whole value only) | `{"$ndarray": {"dtype": "int32", "shape": [2, 3], "data": "<base64>"}}`, a masked one with `"mask"` (the same form); written back as the same pickle |
//! | a pickle of a class shelf does not decode (whole value only) | `{"$pickle": {"global": "mymod.Point", "globals": [...], "bytes": "<base64>"}}`, written back byte for byte |
//! | stored bytes, undecoded (top level only) | `{"$raw": "<base64>"}` |
//!
//! Escaping: a real dict with a single key that starts with `$` (say
//! `{"$bytes": "x"}` stored by a user) would read back as a tag, so it is
//! written in the `$dict` form, as is a dict with a repeated key. Objects
//! with two or more keys are always plain dicts. A single-key object whose
//! key starts with `$` but is no tag above is refused rather than guessed
//! at.
//!
//! Base64 is the standard alphabet with padding (RFC 4648 section 4).
//!
//! Keys: a dump is one JSON object whose keys are the shelf's keys. A key
//! that is UTF-8 and does not start with `$key:` is written as itself; any
//! other key (not UTF-8, or a UTF-8 key that happens to start with `$key:`)
//! is written as `"$key:<base64 of its bytes>"`, so every key round-trips.
//!
//! Integers: JSON numbers in `i64` read as `Int`; larger ones (up to
//! `u64`) and `{"$int": ...}` outside `i64` read as `BigInt`, so a `BigInt`
//! that fits in `i64` reads back as `Int`, which is how every protocol
//! decodes it anyway.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use num_bigint::BigInt;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use shelf::{NdArray, Value};

/// The prefix that marks an escaped key (see the module docs).
pub const KEY_ESCAPE: &str = "$key:";

/// A JSON document as parsed, keeping what `serde_json::Value` would lose
/// without its `preserve_order` feature: object order and repeated keys,
/// and whether a number was written as an integer.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// An integer in `u64` but beyond `i64`.
    UInt(u64),
    /// A number with a fraction or exponent, or an integer beyond `u64`.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, in document order, repeated keys kept.
    Object(Vec<(String, Json)>),
}

impl Json {
    fn tagged(tag: &str, inner: Json) -> Json {
        Json::Object(vec![(tag.to_owned(), inner)])
    }

    /// The single `$tag` and its content, when this is a one-key object
    /// whose key starts with `$`.
    pub fn as_tag(&self) -> Option<(&str, &Json)> {
        match self {
            Json::Object(pairs) if pairs.len() == 1 && pairs[0].0.starts_with('$') => {
                Some((pairs[0].0.as_str(), &pairs[0].1))
            }
            _ => None,
        }
    }

    /// This document as compact JSON text.
    pub fn to_text(&self) -> String {
        // Serializing our own tree into a String cannot fail: every float
        // reaching here is finite (see `from_value`).
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Int(i) => s.serialize_i64(*i),
            Json::UInt(u) => s.serialize_u64(*u),
            Json::Float(f) => s.serialize_f64(*f),
            Json::Str(v) => s.serialize_str(v),
            Json::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Json, E> {
        Ok(Json::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Json, E> {
        Ok(i64::try_from(u).map(Json::Int).unwrap_or(Json::UInt(u)))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Json, E> {
        Ok(Json::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::Str(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(Json::Object(pairs))
    }
}

/// Why a JSON document is not a value, with the path inside it
/// (`[2].name`-style) where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError {
    /// Where in the value, as a path from its root (`""` for the root).
    pub at: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "at {}: {}", self.at, self.reason)
        }
    }
}

impl std::error::Error for FormError {}

fn form_err(at: &str, reason: impl Into<String>) -> FormError {
    FormError { at: at.to_owned(), reason: reason.into() }
}

fn b64(bytes: &[u8]) -> Json {
    Json::Str(B64.encode(bytes))
}

/// The JSON form of a value.
pub fn from_value(v: &Value) -> Json {
    match v {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Int(*i),
        Value::BigInt(b) => match i64::try_from(b) {
            Ok(i) => Json::Int(i),
            Err(_) => Json::tagged("$int", Json::Str(b.to_string())),
        },
        Value::Float(f) if f.is_finite() => Json::Float(*f),
        Value::Float(f) => {
            let name = if f.is_nan() {
                "nan"
            } else if *f > 0.0 {
                "inf"
            } else {
                "-inf"
            };
            Json::tagged("$float", Json::Str(name.into()))
        }
        Value::Str(s) => Json::Str(s.clone()),
        Value::Bytes(b) => Json::tagged("$bytes", b64(b)),
        Value::ByteArray(b) => Json::tagged("$bytearray", b64(b)),
        Value::List(items) => Json::Array(items.iter().map(from_value).collect()),
        Value::Tuple(items) => Json::tagged("$tuple", Json::Array(items.iter().map(from_value).collect())),
        Value::Set(items) => Json::tagged("$set", Json::Array(items.iter().map(from_value).collect())),
        Value::FrozenSet(items) => {
            Json::tagged("$frozenset", Json::Array(items.iter().map(from_value).collect()))
        }
        Value::Dict(pairs) => {
            let plain: Option<Vec<(String, Json)>> = if dict_is_plain(pairs) {
                pairs
                    .iter()
                    .map(|(k, v)| match k {
                        Value::Str(s) => Some((s.clone(), from_value(v))),
                        _ => None,
                    })
                    .collect()
            } else {
                None
            };
            match plain {
                Some(pairs) => Json::Object(pairs),
                None => Json::tagged(
                    "$dict",
                    Json::Array(
                        pairs.iter().map(|(k, v)| Json::Array(vec![from_value(k), from_value(v)])).collect(),
                    ),
                ),
            }
        }
        Value::Global { name, args } => {
            Json::tagged("$global", Json::Array(vec![Json::Str(name.clone()), from_value(args)]))
        }
        Value::Object(o) => {
            let (tag, content) = o.tagged_form();
            Json::tagged(&format!("${tag}"), from_value(&content))
        }
        Value::Opaque(o) if NdArray::from_pickle(&o.bytes).is_some_and(|a| a.is_ok()) => {
            match NdArray::from_pickle(&o.bytes) {
                Some(Ok(a)) => Json::tagged("$ndarray", ndarray_json(&a)),
                _ => Json::Null,
            }
        }
        Value::Opaque(o) => Json::tagged(
            "$pickle",
            Json::Object(vec![
                ("global".into(), Json::Str(o.class().to_owned())),
                ("globals".into(), Json::Array(o.globals.iter().cloned().map(Json::Str).collect())),
                ("bytes".into(), b64(&o.bytes)),
            ]),
        ),
        // `Value` is non-exhaustive: a variant added later shows as its
        // debug form rather than failing the whole dump.
        other => Json::tagged("$unknown", Json::Str(format!("{other:?}"))),
    }
}

/// Whether a dict can be written as a plain JSON object and read back as
/// the same dict: string keys, none repeated, and not a lone `$` key that
/// would read back as a tag.
fn dict_is_plain(pairs: &[(Value, Value)]) -> bool {
    let mut seen = std::collections::HashSet::new();
    for (k, _) in pairs {
        match k {
            Value::Str(s) if seen.insert(s.as_str()) => {}
            _ => return false,
        }
    }
    !(pairs.len() == 1 && matches!(&pairs[0].0, Value::Str(s) if s.starts_with('$')))
}

/// The value a JSON form stands for. `$raw` is not a value and is refused
/// here; callers that accept it (the top level of `load` and `set`) look
/// for it first with [`raw_bytes`].
///
/// # Errors
/// A [`FormError`] naming where and what: an unknown `$` tag, a tag whose
/// content has the wrong shape, bad base64 or decimal.
pub fn to_value(j: &Json) -> Result<Value, FormError> {
    to_value_at(j, "")
}

fn to_value_at(j: &Json, at: &str) -> Result<Value, FormError> {
    Ok(match j {
        Json::Null => Value::None,
        Json::Bool(b) => Value::Bool(*b),
        Json::Int(i) => Value::Int(*i),
        Json::UInt(u) => Value::BigInt(BigInt::from(*u)),
        Json::Float(f) => Value::Float(*f),
        Json::Str(s) => Value::Str(s.clone()),
        Json::Array(items) => Value::List(items_at(items, at)?),
        Json::Object(pairs) => match j.as_tag() {
            Some((tag, inner)) => tagged_value(tag, inner, &format!("{at}.{tag}"))?,
            None => Value::Dict(
                pairs
                    .iter()
                    .map(|(k, v)| Ok((Value::Str(k.clone()), to_value_at(v, &format!("{at}.{k}"))?)))
                    .collect::<Result<_, FormError>>()?,
            ),
        },
    })
}

fn items_at(items: &[Json], at: &str) -> Result<Vec<Value>, FormError> {
    items.iter().enumerate().map(|(i, item)| to_value_at(item, &format!("{at}[{i}]"))).collect()
}

fn tagged_value(tag: &str, inner: &Json, at: &str) -> Result<Value, FormError> {
    let text = |what: &str| match inner {
        Json::Str(s) => Ok(s.as_str()),
        _ => Err(form_err(at, format!("{tag} takes {what} as a string"))),
    };
    let array = || match inner {
        Json::Array(items) => Ok(items.as_slice()),
        _ => Err(form_err(at, format!("{tag} takes an array"))),
    };
    let bytes =
        || B64.decode(text("base64")?).map_err(|e| form_err(at, format!("{tag} is not valid base64: {e}")));
    Ok(match tag {
        "$int" => {
            let s = text("a decimal integer")?;
            let b: BigInt =
                s.parse().map_err(|_| form_err(at, format!("$int {s:?} is not a decimal integer")))?;
            i64::try_from(&b).map(Value::Int).unwrap_or(Value::BigInt(b))
        }
        "$float" => match text("\"nan\", \"inf\" or \"-inf\"")? {
            "nan" => Value::Float(f64::NAN),
            "inf" => Value::Float(f64::INFINITY),
            "-inf" => Value::Float(f64::NEG_INFINITY),
            other => {
                return Err(form_err(at, format!("$float {other:?} is not \"nan\", \"inf\" or \"-inf\"")));
            }
        },
        "$bytes" => Value::Bytes(bytes()?),
        "$bytearray" => Value::ByteArray(bytes()?),
        "$tuple" => Value::Tuple(items_at(array()?, at)?),
        "$set" => Value::Set(items_at(array()?, at)?),
        "$frozenset" => Value::FrozenSet(items_at(array()?, at)?),
        "$dict" => Value::Dict(
            array()?
                .iter()
                .enumerate()
                .map(|(i, pair)| match pair {
                    Json::Array(kv) if kv.len() == 2 => Ok((
                        to_value_at(&kv[0], &format!("{at}[{i}][0]"))?,
                        to_value_at(&kv[1], &format!("{at}[{i}][1]"))?,
                    )),
                    _ => Err(form_err(&format!("{at}[{i}]"), "a $dict entry must be a [key, value] pair")),
                })
                .collect::<Result<_, _>>()?,
        ),
        "$global" => match array()? {
            [Json::Str(name), args] => {
                Value::Global { name: name.clone(), args: Box::new(to_value_at(args, &format!("{at}[1]"))?) }
            }
            _ => return Err(form_err(at, "$global takes [\"module.name\", args]")),
        },
        "$pickle" => {
            let Json::Object(fields) = inner else {
                return Err(form_err(at, "$pickle takes {\"global\": ..., \"bytes\": base64}"));
            };
            let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v);
            let bytes = match get("bytes") {
                Some(Json::Str(b)) => B64
                    .decode(b)
                    .map_err(|e| form_err(at, format!("$pickle bytes are not valid base64: {e}")))?,
                _ => return Err(form_err(at, "$pickle takes its pickle as \"bytes\": base64")),
            };
            let globals = match (get("globals"), get("global")) {
                (Some(Json::Array(g)), _) => g
                    .iter()
                    .map(|x| match x {
                        Json::Str(s) => Ok(s.clone()),
                        _ => Err(form_err(at, "$pickle globals are strings")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                (None, Some(Json::Str(g))) => vec![g.clone()],
                _ => Vec::new(),
            };
            if !at.is_empty() && at != ".$pickle" {
                return Err(form_err(at, "$pickle is allowed only as a whole stored value, not inside one"));
            }
            Value::opaque(globals, bytes)
        }
        "$ndarray" => {
            if !at.is_empty() && at != ".$ndarray" {
                return Err(form_err(at, "$ndarray is allowed only as a whole stored value, not inside one"));
            }
            ndarray_from_json(inner, at)?.to_value().map_err(|e| form_err(at, e))?
        }
        "$raw" => return Err(form_err(at, "$raw is allowed only as a whole stored value, not inside one")),
        t if Value::from_python_tag(&t[1..], Value::None).is_some() => {
            let content = to_value_at(inner, at)?;
            match Value::from_python_tag(&t[1..], content) {
                Some(Ok(v)) => v,
                Some(Err(e)) => return Err(form_err(at, format!("{t}: {e}"))),
                None => unreachable!("the tag was checked"),
            }
        }
        other => {
            return Err(form_err(
                at,
                format!(
                    "unknown tag {other:?} (a dict with one key starting with '$' is written as {{\"$dict\": [[key, value]]}})"
                ),
            ));
        }
    })
}

/// The JSON form of stored bytes that are not decoded: `{"$raw": base64}`.
pub fn raw(bytes: &[u8]) -> Json {
    Json::tagged("$raw", b64(bytes))
}

/// The bytes of a `{"$raw": base64}` form, `None` for any other form.
///
/// # Errors
/// When the content of `$raw` is not a base64 string.
pub fn raw_bytes(j: &Json) -> Result<Option<Vec<u8>>, FormError> {
    match j.as_tag() {
        Some(("$raw", Json::Str(s))) => {
            B64.decode(s).map(Some).map_err(|e| form_err(".$raw", format!("$raw is not valid base64: {e}")))
        }
        Some(("$raw", _)) => Err(form_err(".$raw", "$raw takes base64 as a string")),
        _ => Ok(None),
    }
}

/// The JSON form of a key (see the module docs).
pub fn key_to_json(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !s.starts_with(KEY_ESCAPE) => s.to_owned(),
        _ => format!("{KEY_ESCAPE}{}", B64.encode(key)),
    }
}

/// The key a JSON key stands for.
///
/// # Errors
/// When an escaped key's base64 is invalid.
pub fn key_from_json(key: &str) -> Result<Vec<u8>, FormError> {
    match key.strip_prefix(KEY_ESCAPE) {
        Some(b) => B64.decode(b).map_err(|e| {
            form_err("", format!("escaped key {key:?} is not valid base64 after {KEY_ESCAPE:?}: {e}"))
        }),
        None => Ok(key.as_bytes().to_vec()),
    }
}

/// Parses one JSON value from text.
///
/// # Errors
/// serde_json's error, which names the line and column.
pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests;

/// The content of a `$ndarray` form: dtype, shape, base64 data and, for a
/// masked array, its mask in the same form.
fn ndarray_json(a: &NdArray) -> Json {
    let mut fields = vec![
        ("dtype".to_owned(), Json::Str(a.dtype.clone())),
        ("shape".to_owned(), Json::Array(a.shape.iter().map(|d| Json::UInt(*d)).collect())),
        ("data".to_owned(), b64(&a.data)),
    ];
    if let Some(m) = &a.mask {
        fields.push(("mask".to_owned(), ndarray_json(m)));
    }
    Json::Object(fields)
}

/// The array a `$ndarray` form's content stands for.
fn ndarray_from_json(inner: &Json, at: &str) -> Result<NdArray, FormError> {
    let usage = "$ndarray takes {\"dtype\": str, \"shape\": [int, ...], \"data\": base64}";
    let Json::Object(fields) = inner else { return Err(form_err(at, usage)) };
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v);
    let (Some(Json::Str(dtype)), Some(Json::Array(shape)), Some(Json::Str(data))) =
        (get("dtype"), get("shape"), get("data"))
    else {
        return Err(form_err(at, usage));
    };
    let shape = shape
        .iter()
        .map(|d| match d {
            Json::Int(n) => {
                u64::try_from(*n).map_err(|_| form_err(at, "$ndarray dimensions are not negative"))
            }
            Json::UInt(n) => Ok(*n),
            _ => Err(form_err(at, "$ndarray dimensions are integers")),
        })
        .collect::<Result<Vec<u64>, _>>()?;
    let data =
        B64.decode(data).map_err(|e| form_err(at, format!("$ndarray data is not valid base64: {e}")))?;
    let mut a = NdArray::new(dtype.clone(), shape, data.into()).map_err(|e| form_err(at, e))?;
    if let Some(m) = get("mask") {
        a.mask = Some(Box::new(ndarray_from_json(m, &format!("{at}.mask"))?));
    }
    Ok(a)
}
