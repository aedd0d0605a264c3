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
use shelf::Value;

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
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        let text = from_value(v).to_text();
        let j = parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        to_value(&j).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn same(a: &Value, b: &Value) -> bool {
        // NaN is not equal to itself; compare floats by bits.
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            (Value::List(x), Value::List(y))
            | (Value::Tuple(x), Value::Tuple(y))
            | (Value::Set(x), Value::Set(y))
            | (Value::FrozenSet(x), Value::FrozenSet(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Dict(x), Value::Dict(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
            }
            _ => a == b,
        }
    }

    fn assert_round_trips(v: Value) {
        let back = round_trip(&v);
        assert!(same(&v, &back), "{v:?} came back as {back:?} via {}", from_value(&v).to_text());
    }

    fn py(tag: &str, content: Value) -> Value {
        Value::from_python_tag(tag, content).expect("a tag").expect("valid")
    }

    #[test]
    fn pythons_classes_have_tagged_forms_that_round_trip() {
        let st = |x: &str| Value::Str(x.into());
        let pair = |k: Value, v: Value| Value::List(vec![k, v]);
        for (v, text) in [
            (py("date", st("2026-11-30")), r#"{"$date":"2026-11-30"}"#),
            (py("datetime", st("2026-11-30T08:00:00+00:00")), r#"{"$datetime":"2026-11-30T08:00:00+00:00"}"#),
            (
                py("datetime", st("2026-11-30T08:00:00[Europe/Paris]")),
                r#"{"$datetime":"2026-11-30T08:00:00[Europe/Paris]"}"#,
            ),
            (py("time", st("08:00:00.5")), r#"{"$time":"08:00:00.500000"}"#),
            (py("decimal", st("1.10")), r#"{"$decimal":"1.10"}"#),
            (
                py("uuid", st("12345678123456781234567812345678")),
                r#"{"$uuid":"12345678-1234-5678-1234-567812345678"}"#,
            ),
            (py("fraction", st("6/8")), r#"{"$fraction":"3/4"}"#),
            (py("path", st("/a//b/")), r#"{"$path":"/a/b"}"#),
            (py("purepath", st("a")), r#"{"$purepath":"a"}"#),
            (
                py("timedelta", Value::List(vec![Value::Int(0), Value::Int(-1), Value::Int(0)])),
                r#"{"$timedelta":[-1,86399,0]}"#,
            ),
            (
                py("complex", Value::List(vec![Value::Int(1), Value::Float(-2.5)])),
                r#"{"$complex":[1.0,-2.5]}"#,
            ),
            (
                py(
                    "ordereddict",
                    Value::List(vec![pair(st("b"), Value::Int(1)), pair(Value::Int(2), Value::None)]),
                ),
                r#"{"$ordereddict":[["b",1],[2,null]]}"#,
            ),
            (py("deque", Value::List(vec![Value::Int(1)])), r#"{"$deque":[1]}"#),
            (
                py(
                    "deque",
                    Value::Dict(vec![(st("items"), Value::List(vec![])), (st("maxlen"), Value::Int(3))]),
                ),
                r#"{"$deque":{"items":[],"maxlen":3}}"#,
            ),
            (
                py(
                    "defaultdict",
                    Value::Dict(vec![(st("factory"), st("list")), (st("items"), Value::List(vec![]))]),
                ),
                r#"{"$defaultdict":{"factory":"list","items":[]}}"#,
            ),
            (
                Value::opaque(vec!["mymod.Point".into()], b"cmymod\nPoint\n)R.".to_vec()),
                r#"{"$pickle":{"global":"mymod.Point","globals":["mymod.Point"],"bytes":"Y215bW9kClBvaW50CilSLg=="}}"#,
            ),
        ] {
            assert_eq!(from_value(&v).to_text(), text);
            assert_round_trips(v);
        }
        // Nested: a list of dates inside a dict.
        assert_round_trips(Value::Dict(vec![(st("d"), Value::List(vec![py("date", st("2000-01-01"))]))]));
        for bad in [
            r#"{"$date":"2026-02-30"}"#,
            r#"{"$decimal":"1.2.3"}"#,
            r#"{"$uuid":"xyz"}"#,
            r#"{"$deque":{"items":[1,2],"maxlen":1}}"#,
            r#"{"$defaultdict":{"factory":"os.system","items":[]}}"#,
            r#"{"$timedelta":[1e9,0,0]}"#,
            r#"[{"$pickle":{"bytes":"Lg=="}}]"#,
        ] {
            let j = parse(bad).unwrap();
            assert!(to_value(&j).is_err(), "{bad} was accepted");
        }
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn every_variant_round_trips() {
        let big: BigInt = "123456789012345678901234567890".parse().unwrap();
        for v in [
            Value::None,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(0),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::BigInt(big.clone()),
            Value::BigInt(-big),
            Value::BigInt(BigInt::from(u64::MAX)),
            Value::Float(1.0),
            Value::Float(-0.0),
            Value::Float(0.1),
            Value::Float(f64::MAX),
            Value::Float(f64::MIN_POSITIVE),
            Value::Float(5e-324),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
            s(""),
            s("line\nbreak \u{0} \u{1F600}"),
            Value::Bytes(vec![]),
            Value::Bytes((0..=255).collect()),
            Value::ByteArray(vec![0, 1, 2]),
            Value::List(vec![]),
            Value::List(vec![Value::Int(1), s("a"), Value::None]),
            Value::Tuple(vec![]),
            Value::Tuple(vec![Value::Int(1), Value::Tuple(vec![s("x")])]),
            Value::Set(vec![Value::Int(1), Value::Int(2)]),
            Value::FrozenSet(vec![s("a")]),
            Value::Dict(vec![]),
            Value::Dict(vec![(s("b"), Value::Int(1)), (s("a"), Value::Int(2))]),
            Value::Dict(vec![(Value::Int(1), s("one")), (Value::Tuple(vec![]), Value::None)]),
            Value::Global {
                name: "datetime.date".into(),
                args: Box::new(Value::Tuple(vec![Value::Int(2024)])),
            },
        ] {
            assert_round_trips(v);
        }
    }

    #[test]
    fn dict_order_is_kept() {
        let v = Value::Dict(vec![(s("z"), Value::Int(1)), (s("a"), Value::Int(2)), (s("m"), Value::Int(3))]);
        assert_eq!(from_value(&v).to_text(), r#"{"z":1,"a":2,"m":3}"#);
        assert_round_trips(v);
    }

    #[test]
    fn user_dicts_that_look_like_tags_are_escaped() {
        for tag in ["$bytes", "$raw", "$int", "$dict", "$key:x", "$whatever", "$"] {
            let v = Value::Dict(vec![(s(tag), s("AAAA"))]);
            let text = from_value(&v).to_text();
            assert!(text.starts_with(r#"{"$dict":"#), "{tag}: {text}");
            assert_round_trips(v);
        }
        // Two keys are never a tag, so they stay a plain object.
        let v = Value::Dict(vec![(s("$bytes"), s("x")), (s("$set"), s("y"))]);
        assert_eq!(from_value(&v).to_text(), r#"{"$bytes":"x","$set":"y"}"#);
        assert_round_trips(v);
    }

    #[test]
    fn repeated_dict_keys_use_the_pair_form() {
        let v = Value::Dict(vec![(s("a"), Value::Int(1)), (s("a"), Value::Int(2))]);
        assert!(from_value(&v).to_text().starts_with(r#"{"$dict":"#));
        assert_round_trips(v);
    }

    #[test]
    fn ints_and_floats_stay_apart() {
        assert_eq!(from_value(&Value::Float(1.0)).to_text(), "1.0");
        assert_eq!(from_value(&Value::Int(1)).to_text(), "1");
        assert_eq!(to_value(&parse("2").unwrap()).unwrap(), Value::Int(2));
        assert_eq!(to_value(&parse("2.0").unwrap()).unwrap(), Value::Float(2.0));
        assert_eq!(to_value(&parse("1e3").unwrap()).unwrap(), Value::Float(1000.0));
        // A BigInt that fits in i64 reads back as Int, as protocols decode it.
        assert_eq!(round_trip(&Value::BigInt(BigInt::from(7))), Value::Int(7));
        assert_eq!(to_value(&parse(r#"{"$int": "-5"}"#).unwrap()).unwrap(), Value::Int(-5));
    }

    #[test]
    fn specified_forms() {
        let t = |v: Value| from_value(&v).to_text();
        assert_eq!(t(Value::Bytes(b"hi".to_vec())), r#"{"$bytes":"aGk="}"#);
        assert_eq!(t(Value::ByteArray(b"hi".to_vec())), r#"{"$bytearray":"aGk="}"#);
        assert_eq!(t(Value::Tuple(vec![Value::Int(1)])), r#"{"$tuple":[1]}"#);
        assert_eq!(t(Value::Set(vec![Value::Int(1)])), r#"{"$set":[1]}"#);
        assert_eq!(t(Value::FrozenSet(vec![])), r#"{"$frozenset":[]}"#);
        assert_eq!(t(Value::Float(f64::NAN)), r#"{"$float":"nan"}"#);
        assert_eq!(t(Value::Float(f64::NEG_INFINITY)), r#"{"$float":"-inf"}"#);
        assert_eq!(t(Value::BigInt(BigInt::from(u64::MAX))), r#"{"$int":"18446744073709551615"}"#);
        assert_eq!(t(Value::Dict(vec![(Value::Int(1), Value::None)])), r#"{"$dict":[[1,null]]}"#);
        assert_eq!(raw(b"\x00\x01").to_text(), r#"{"$raw":"AAE="}"#);
    }

    #[test]
    fn bad_forms_say_where_and_what() {
        let err = |text: &str| to_value(&parse(text).unwrap()).unwrap_err().to_string();
        assert!(err(r#"{"$nope": 1}"#).contains("unknown tag \"$nope\""));
        assert!(err(r#"[1, {"$bytes": "!!"}]"#).contains("at [1].$bytes"));
        assert!(err(r#"{"$int": "12x"}"#).contains("not a decimal integer"));
        assert!(err(r#"{"$float": "big"}"#).contains("\"big\""));
        assert!(err(r#"{"$tuple": 3}"#).contains("takes an array"));
        assert!(err(r#"{"$dict": [[1]]}"#).contains("[key, value] pair"));
        assert!(err(r#"{"a": {"$raw": "AA=="}}"#).contains("only as a whole stored value"));
    }

    #[test]
    fn raw_is_read_only_at_the_top() {
        assert_eq!(raw_bytes(&parse(r#"{"$raw": "aGk="}"#).unwrap()).unwrap(), Some(b"hi".to_vec()));
        assert_eq!(raw_bytes(&parse(r#"{"$raw": "aGk=", "x": 1}"#).unwrap()).unwrap(), None);
        assert!(raw_bytes(&parse(r#"{"$raw": 1}"#).unwrap()).is_err());
    }

    #[test]
    fn keys_round_trip() {
        for key in [
            &b"plain"[..],
            b"",
            b"with\nnewline",
            b"\xff\xfe not utf-8",
            b"$key:looks escaped",
            b"$key:",
            b"$other",
        ] {
            let j = key_to_json(key);
            assert_eq!(key_from_json(&j).unwrap(), key, "{j}");
        }
        assert_eq!(key_to_json(b"plain"), "plain");
        assert_eq!(key_to_json(b"\xff"), "$key:/w==");
        assert!(key_from_json("$key:***").is_err());
    }
}
