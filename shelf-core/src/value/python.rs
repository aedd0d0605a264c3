//! Python's everyday value types beyond the builtins ([`PyObject`], held
//! by [`Value::Object`]) and the placeholder of an object shelf does not
//! decode ([`Opaque`], held by [`Value::Opaque`]).
//!
//! Each type has one text or serde form, used three times: by serde (what
//! serde_json or bincode write for a `Value` holding it, and what a typed
//! read of it sees: a date is its ISO string, which chrono's serde reads),
//! by the private hint that rebuilds the exact variant in
//! [`to_value`](crate::to_value) and when a `Value` is read as a `Value`,
//! and by the shelf CLI's JSON mapping.

use super::datetime::bad;
use super::pytext::{is_decimal_text, normalize_posix_path, parse_fraction, parse_uuid, uuid_text};
use super::{Date, DateTime, Time, TimeDelta};

use num_bigint::BigInt;

use super::Value;

/// An object of one of the Python classes shelf decodes without running
/// code, from the modules `datetime`, `decimal`, `uuid`, `collections`,
/// `fractions` and `pathlib`, and the builtin `complex`.
///
/// Written back, each pickles as CPython pickles it, so CPython reads an
/// equal object of the same class.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PyObject {
    /// `datetime.date`.
    Date(Date),
    /// `datetime.time`, naive or aware.
    Time(Time),
    /// `datetime.datetime`, naive or aware.
    DateTime(DateTime),
    /// `datetime.timedelta`.
    TimeDelta(TimeDelta),
    /// `decimal.Decimal`, as its exact text (`str(d)`: `"1.10"`, `"-0"`,
    /// `"1E+2"`, `"NaN"`, `"-Infinity"`): the text keeps the precision and
    /// the sign of zero that a binary number would lose.
    Decimal(String),
    /// `uuid.UUID`, as its 128-bit integer (`u.int`). The `is_safe`
    /// attribute is not kept (UUIDs compare by `int` alone).
    Uuid(u128),
    /// `collections.OrderedDict`, in its order.
    OrderedDict(Vec<(Value, Value)>),
    /// `collections.deque`.
    Deque {
        /// The items, left to right.
        items: Vec<Value>,
        /// `maxlen`, if bounded.
        maxlen: Option<u64>,
    },
    /// `collections.defaultdict` whose `default_factory` is `None` or a
    /// builtin type (see [`DEFAULT_FACTORIES`]).
    DefaultDict {
        /// The factory's builtin name (`"list"`, `"int"`, ...), or `None`.
        factory: Option<String>,
        /// The items, in order.
        pairs: Vec<(Value, Value)>,
    },
    /// The builtin `complex`.
    Complex {
        /// The real part.
        re: f64,
        /// The imaginary part.
        im: f64,
    },
    /// `fractions.Fraction`, in lowest terms with a positive denominator.
    Fraction {
        /// The numerator.
        numerator: BigInt,
        /// The denominator, above zero.
        denominator: BigInt,
    },
    /// `pathlib.PurePosixPath` or, with `concrete`, `pathlib.PosixPath`.
    Path {
        /// `PosixPath` rather than `PurePosixPath`.
        concrete: bool,
        /// The path as `str(p)` gives it.
        path: String,
    },
}

/// The builtin types a `collections.defaultdict` may have as its factory
/// and stay decodable.
pub const DEFAULT_FACTORIES: &[&str] = &[
    "list",
    "dict",
    "set",
    "frozenset",
    "int",
    "float",
    "str",
    "bytes",
    "bytearray",
    "tuple",
    "bool",
    "complex",
];

/// A value whose pickle names a class or function shelf does not decode
/// (a user's class, an `enum` member, a function). It keeps the exact
/// bytes of the whole pickle it came from, so writing it back (through
/// the pickle protocol) stores the same bytes and nothing changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opaque {
    /// The globals the pickle names that shelf does not decode, as
    /// `module.name`, in the order they first appear.
    pub globals: Vec<String>,
    /// The pickle, byte for byte as stored.
    pub bytes: Vec<u8>,
}

impl Opaque {
    /// The first global not decoded, for messages (`"?"` if none).
    pub fn class(&self) -> &str {
        self.globals.first().map_or("?", String::as_str)
    }
}

impl PyObject {
    /// The class as Python names it (`"datetime.date"`, ...).
    pub fn class_name(&self) -> &'static str {
        match self {
            PyObject::Date(_) => "datetime.date",
            PyObject::Time(_) => "datetime.time",
            PyObject::DateTime(_) => "datetime.datetime",
            PyObject::TimeDelta(_) => "datetime.timedelta",
            PyObject::Decimal(_) => "decimal.Decimal",
            PyObject::Uuid(_) => "uuid.UUID",
            PyObject::OrderedDict(_) => "collections.OrderedDict",
            PyObject::Deque { .. } => "collections.deque",
            PyObject::DefaultDict { .. } => "collections.defaultdict",
            PyObject::Complex { .. } => "complex",
            PyObject::Fraction { .. } => "fractions.Fraction",
            PyObject::Path { concrete: false, .. } => "pathlib.PurePosixPath",
            PyObject::Path { concrete: true, .. } => "pathlib.PosixPath",
        }
    }

    /// The text form of the types that have one (dates and times in ISO
    /// 8601, decimals, UUIDs, fractions and paths), as serde and the CLI
    /// show them.
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            PyObject::Date(d) => d.to_string(),
            PyObject::Time(t) => t.to_string(),
            PyObject::DateTime(d) => d.to_string(),
            PyObject::Decimal(s) => s.clone(),
            PyObject::Uuid(u) => uuid_text(*u),
            PyObject::Fraction { numerator, denominator } => format!("{numerator}/{denominator}"),
            PyObject::Path { path, .. } => path.clone(),
            _ => return None,
        })
    }

    /// Parses the text form of `class` (one of the class names of
    /// [`class_name`](Self::class_name) that have a text form).
    ///
    /// # Errors
    /// A text that is no value of the class, or a class without a text form.
    pub fn from_text(class: &str, s: &str) -> Result<PyObject, String> {
        Ok(match class {
            "datetime.date" => PyObject::Date(Date::parse(s)?),
            "datetime.time" => PyObject::Time(Time::parse(s)?),
            "datetime.datetime" => PyObject::DateTime(DateTime::parse(s)?),
            "decimal.Decimal" if is_decimal_text(s) => PyObject::Decimal(s.to_owned()),
            "decimal.Decimal" => return Err(bad("decimal", s)),
            "uuid.UUID" => PyObject::Uuid(parse_uuid(s)?),
            "fractions.Fraction" => parse_fraction(s)?,
            "pathlib.PurePosixPath" | "pathlib.PosixPath" => {
                PyObject::Path { concrete: class == "pathlib.PosixPath", path: normalize_posix_path(s) }
            }
            other => return Err(format!("{other} has no text form")),
        })
    }
}

/// The tags of [`PyObject::tagged_form`], one per class.
pub const TAGS: &[&str] = &[
    "date",
    "time",
    "datetime",
    "timedelta",
    "decimal",
    "uuid",
    "ordereddict",
    "deque",
    "defaultdict",
    "complex",
    "fraction",
    "purepath",
    "path",
];

fn pairs_list(pairs: &[(Value, Value)]) -> Value {
    Value::List(pairs.iter().map(|(k, v)| Value::List(vec![k.clone(), v.clone()])).collect())
}

fn list_pairs(v: Value, what: &str) -> Result<Vec<(Value, Value)>, String> {
    let (Value::List(items) | Value::Tuple(items)) = v else {
        return Err(format!("{what} takes a list of [key, value] pairs"));
    };
    items
        .into_iter()
        .map(|p| match p {
            Value::List(mut kv) | Value::Tuple(mut kv) if kv.len() == 2 => {
                let v = kv.pop().unwrap_or(Value::None);
                let k = kv.pop().unwrap_or(Value::None);
                Ok((k, v))
            }
            _ => Err(format!("{what} takes a list of [key, value] pairs")),
        })
        .collect()
}

impl PyObject {
    /// A form made of plain values, for formats that have none of
    /// Python's classes (the shelf CLI's JSON): a tag from [`TAGS`] and
    /// content. Text classes are their text (see
    /// [`to_text`](Self::to_text)); `timedelta` is `[days, seconds,
    /// microseconds]`; `ordereddict` a list of `[key, value]` pairs;
    /// `deque` its items, or `{"items": [...], "maxlen": n}` when bounded;
    /// `defaultdict` `{"factory": "list" or None, "items": [[key, value], ...]}`;
    /// `complex` `[re, im]`.
    pub fn tagged_form(&self) -> (&'static str, Value) {
        let tag = match self {
            PyObject::Date(_) => "date",
            PyObject::Time(_) => "time",
            PyObject::DateTime(_) => "datetime",
            PyObject::TimeDelta(_) => "timedelta",
            PyObject::Decimal(_) => "decimal",
            PyObject::Uuid(_) => "uuid",
            PyObject::OrderedDict(_) => "ordereddict",
            PyObject::Deque { .. } => "deque",
            PyObject::DefaultDict { .. } => "defaultdict",
            PyObject::Complex { .. } => "complex",
            PyObject::Fraction { .. } => "fraction",
            PyObject::Path { concrete: false, .. } => "purepath",
            PyObject::Path { concrete: true, .. } => "path",
        };
        if let Some(text) = self.to_text() {
            return (tag, Value::Str(text));
        }
        let content = match self {
            PyObject::TimeDelta(t) => Value::List(vec![
                Value::Int(t.days.into()),
                Value::Int(t.seconds.into()),
                Value::Int(t.microseconds.into()),
            ]),
            PyObject::OrderedDict(pairs) => pairs_list(pairs),
            PyObject::Deque { items, maxlen: None } => Value::List(items.clone()),
            PyObject::Deque { items, maxlen: Some(m) } => Value::Dict(vec![
                (Value::Str("items".into()), Value::List(items.clone())),
                (
                    Value::Str("maxlen".into()),
                    i64::try_from(*m).map_or_else(|_| Value::BigInt((*m).into()), Value::Int),
                ),
            ]),
            PyObject::DefaultDict { factory, pairs } => Value::Dict(vec![
                (Value::Str("factory".into()), factory.clone().map_or(Value::None, Value::Str)),
                (Value::Str("items".into()), pairs_list(pairs)),
            ]),
            PyObject::Complex { re, im } => Value::List(vec![Value::Float(*re), Value::Float(*im)]),
            _ => Value::None,
        };
        (tag, content)
    }

    /// The object a [`tagged_form`](Self::tagged_form) stands for.
    ///
    /// # Errors
    /// An unknown tag, or content of the wrong shape or out of range.
    pub fn from_tagged_form(tag: &str, content: Value) -> Result<PyObject, String> {
        let class = match tag {
            "date" => "datetime.date",
            "time" => "datetime.time",
            "datetime" => "datetime.datetime",
            "decimal" => "decimal.Decimal",
            "uuid" => "uuid.UUID",
            "fraction" => "fractions.Fraction",
            "purepath" => "pathlib.PurePosixPath",
            "path" => "pathlib.PosixPath",
            _ => "",
        };
        if !class.is_empty() {
            return match content {
                Value::Str(s) => PyObject::from_text(class, &s),
                _ => Err(format!("{tag} takes a string")),
            };
        }
        let field = |pairs: &mut Vec<(Value, Value)>, name: &str| {
            pairs.iter().position(|(k, _)| matches!(k, Value::Str(s) if s == name)).map(|i| pairs.remove(i).1)
        };
        match (tag, content) {
            ("timedelta", Value::List(t) | Value::Tuple(t)) => match t.as_slice() {
                [d, s, u] => match (int_of(d), int_of(s), int_of(u)) {
                    (Some(d), Some(s), Some(u)) => TimeDelta::new(d, s, u).map(PyObject::TimeDelta),
                    _ => Err("timedelta takes [days, seconds, microseconds] as integers".into()),
                },
                _ => Err("timedelta takes [days, seconds, microseconds]".into()),
            },
            ("ordereddict", v) => Ok(PyObject::OrderedDict(list_pairs(v, "ordereddict")?)),
            ("deque", Value::List(items) | Value::Tuple(items)) => {
                Ok(PyObject::Deque { items, maxlen: None })
            }
            ("deque", Value::Dict(mut pairs)) => {
                let items = field(&mut pairs, "items");
                let maxlen = field(&mut pairs, "maxlen");
                match (
                    items,
                    maxlen.as_ref().and_then(int_of).and_then(|m| u64::try_from(m).ok()),
                    pairs.is_empty(),
                ) {
                    (Some(Value::List(items)), Some(m), true) if items.len() as u64 <= m => {
                        Ok(PyObject::Deque { items, maxlen: Some(m) })
                    }
                    _ => Err(
                        "deque takes its items, or {\"items\": [...], \"maxlen\": n} with at most n items"
                            .into(),
                    ),
                }
            }
            ("defaultdict", Value::Dict(mut pairs)) => {
                let factory = match field(&mut pairs, "factory") {
                    None | Some(Value::None) => None,
                    Some(Value::Str(f)) if DEFAULT_FACTORIES.contains(&f.as_str()) => Some(f),
                    Some(_) => {
                        return Err(format!(
                            "defaultdict's factory is null or one of {}",
                            DEFAULT_FACTORIES.join(", ")
                        ));
                    }
                };
                let items = field(&mut pairs, "items").unwrap_or(Value::List(Vec::new()));
                if !pairs.is_empty() {
                    return Err("defaultdict takes {\"factory\": ..., \"items\": [...]}".into());
                }
                Ok(PyObject::DefaultDict { factory, pairs: list_pairs(items, "defaultdict")? })
            }
            ("complex", Value::List(t) | Value::Tuple(t)) => match t.as_slice() {
                [re, im] => match (float_of(re), float_of(im)) {
                    (Some(re), Some(im)) => Ok(PyObject::Complex { re, im }),
                    _ => Err("complex takes [re, im] as numbers".into()),
                },
                _ => Err("complex takes [re, im]".into()),
            },
            (t, _) if TAGS.contains(&t) => Err(format!("malformed {t}")),
            (t, _) => Err(format!("unknown Python class tag {t:?}")),
        }
    }
}

/// The private newtype names through which [`Value::Object`] and
/// [`Value::Opaque`] cross serde (see [`super::ser::hint`]). Each names a
/// class; the content is the class's serde form:
pub(crate) mod hint {
    /// Text forms: the class name after this prefix, content the text.
    pub(crate) const TEXT: &str = "$shelf::private::text:";
    /// `datetime.timedelta`: `(days, seconds, microseconds)`.
    pub(crate) const TIMEDELTA: &str = "$shelf::private::timedelta";
    /// `collections.OrderedDict`: a map.
    pub(crate) const ORDEREDDICT: &str = "$shelf::private::OrderedDict";
    /// `collections.deque` without `maxlen`: a sequence.
    pub(crate) const DEQUE: &str = "$shelf::private::deque";
    /// `collections.deque` with `maxlen`: `(maxlen, items)`.
    pub(crate) const BOUNDED_DEQUE: &str = "$shelf::private::bounded-deque";
    /// `collections.defaultdict`: the factory after this prefix (`None`
    /// for none), content a map.
    pub(crate) const DEFAULTDICT: &str = "$shelf::private::defaultdict:";
    /// `complex`: `(re, im)`.
    pub(crate) const COMPLEX: &str = "$shelf::private::complex";
    /// An [`Opaque`](super::Opaque): `{"globals": [...], "pickle": bytes}`.
    pub(crate) const OPAQUE: &str = "$shelf::private::pickle";

    /// The `&'static` hint names of the text classes.
    pub(crate) const TEXTS: &[&str] = &[
        "$shelf::private::text:datetime.date",
        "$shelf::private::text:datetime.time",
        "$shelf::private::text:datetime.datetime",
        "$shelf::private::text:decimal.Decimal",
        "$shelf::private::text:uuid.UUID",
        "$shelf::private::text:fractions.Fraction",
        "$shelf::private::text:pathlib.PurePosixPath",
        "$shelf::private::text:pathlib.PosixPath",
    ];

    /// The `&'static` hint names of the defaultdict factories, `None` first.
    pub(crate) const DEFAULTDICTS: &[&str] = &[
        "$shelf::private::defaultdict:None",
        "$shelf::private::defaultdict:list",
        "$shelf::private::defaultdict:dict",
        "$shelf::private::defaultdict:set",
        "$shelf::private::defaultdict:frozenset",
        "$shelf::private::defaultdict:int",
        "$shelf::private::defaultdict:float",
        "$shelf::private::defaultdict:str",
        "$shelf::private::defaultdict:bytes",
        "$shelf::private::defaultdict:bytearray",
        "$shelf::private::defaultdict:tuple",
        "$shelf::private::defaultdict:bool",
        "$shelf::private::defaultdict:complex",
    ];

    pub(crate) fn text(class: &str) -> &'static str {
        TEXTS.iter().find(|h| h.strip_prefix(TEXT) == Some(class)).copied().unwrap_or(TEXT)
    }

    pub(crate) fn defaultdict(factory: Option<&str>) -> &'static str {
        let f = factory.unwrap_or("None");
        DEFAULTDICTS.iter().find(|h| h.strip_prefix(DEFAULTDICT) == Some(f)).copied().unwrap_or(DEFAULTDICT)
    }

    /// Whether `name` is one of these hints.
    pub(crate) fn is_python(name: &str) -> bool {
        name.starts_with(TEXT)
            || name.starts_with(DEFAULTDICT)
            || [TIMEDELTA, ORDEREDDICT, DEQUE, BOUNDED_DEQUE, COMPLEX, OPAQUE].contains(&name)
    }
}

/// The hint and serde content of a Python object (see [`hint`]).
pub(crate) fn to_hint(o: &PyObject) -> (&'static str, Value) {
    if let Some(text) = o.to_text() {
        return (hint::text(o.class_name()), Value::Str(text));
    }
    match o {
        PyObject::TimeDelta(t) => (
            hint::TIMEDELTA,
            Value::Tuple(vec![
                Value::Int(t.days.into()),
                Value::Int(t.seconds.into()),
                Value::Int(t.microseconds.into()),
            ]),
        ),
        PyObject::OrderedDict(pairs) => (hint::ORDEREDDICT, Value::Dict(pairs.clone())),
        PyObject::Deque { items, maxlen: None } => (hint::DEQUE, Value::List(items.clone())),
        PyObject::Deque { items, maxlen: Some(m) } => (
            hint::BOUNDED_DEQUE,
            Value::Tuple(vec![
                i64::try_from(*m).map_or_else(|_| Value::BigInt((*m).into()), Value::Int),
                Value::List(items.clone()),
            ]),
        ),
        PyObject::DefaultDict { factory, pairs } => {
            (hint::defaultdict(factory.as_deref()), Value::Dict(pairs.clone()))
        }
        PyObject::Complex { re, im } => {
            (hint::COMPLEX, Value::Tuple(vec![Value::Float(*re), Value::Float(*im)]))
        }
        // The text classes returned above.
        _ => (hint::TEXT, Value::None),
    }
}

/// The hint and serde content of an opaque pickle.
pub(crate) fn opaque_hint(o: &Opaque) -> Value {
    Value::Dict(vec![
        (Value::Str("globals".into()), Value::List(o.globals.iter().cloned().map(Value::Str).collect())),
        (Value::Str("pickle".into()), Value::Bytes(o.bytes.clone())),
    ])
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BigInt(b) => i64::try_from(b).ok(),
        _ => None,
    }
}

fn float_of(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        Value::Int(i) => Some(*i as f64),
        _ => None,
    }
}

/// Rebuilds the value a Python hint names from its content, or `None`
/// when `name` is no Python hint.
pub(crate) fn from_hint(name: &str, content: Value) -> Option<Result<Value, String>> {
    if !hint::is_python(name) {
        return None;
    }
    let malformed = || format!("malformed {}", name.trim_start_matches("$shelf::private::"));
    let obj = |o: PyObject| Ok(Value::Object(o));
    Some(match (name, content) {
        (n, Value::Str(s)) if n.starts_with(hint::TEXT) => {
            PyObject::from_text(&n[hint::TEXT.len()..], &s).map(Value::Object)
        }
        (hint::TIMEDELTA, Value::Tuple(t) | Value::List(t)) => match t.as_slice() {
            [d, s, u] => match (int_of(d), int_of(s), int_of(u)) {
                (Some(d), Some(s), Some(u)) => {
                    TimeDelta::new(d, s, u).map(|t| Value::Object(PyObject::TimeDelta(t)))
                }
                _ => Err(malformed()),
            },
            _ => Err(malformed()),
        },
        (hint::ORDEREDDICT, Value::Dict(p)) => obj(PyObject::OrderedDict(p)),
        (hint::DEQUE, Value::List(items) | Value::Tuple(items)) => {
            obj(PyObject::Deque { items, maxlen: None })
        }
        (hint::BOUNDED_DEQUE, Value::Tuple(mut t) | Value::List(mut t)) if t.len() == 2 => {
            let items = t.pop();
            let maxlen = t.pop().as_ref().and_then(int_of).and_then(|m| u64::try_from(m).ok());
            match (maxlen, items) {
                (Some(m), Some(Value::List(items) | Value::Tuple(items))) => {
                    obj(PyObject::Deque { items, maxlen: Some(m) })
                }
                _ => Err(malformed()),
            }
        }
        (n, Value::Dict(pairs)) if n.starts_with(hint::DEFAULTDICT) => {
            let f = &n[hint::DEFAULTDICT.len()..];
            if f == "None" {
                obj(PyObject::DefaultDict { factory: None, pairs })
            } else if DEFAULT_FACTORIES.contains(&f) {
                obj(PyObject::DefaultDict { factory: Some(f.to_owned()), pairs })
            } else {
                Err(malformed())
            }
        }
        (hint::COMPLEX, Value::Tuple(t) | Value::List(t)) => match t.as_slice() {
            [re, im] => match (float_of(re), float_of(im)) {
                (Some(re), Some(im)) => obj(PyObject::Complex { re, im }),
                _ => Err(malformed()),
            },
            _ => Err(malformed()),
        },
        (hint::OPAQUE, Value::Dict(pairs)) => {
            let mut globals = None;
            let mut bytes = None;
            for (k, v) in pairs {
                match (k, v) {
                    (Value::Str(k), Value::List(g)) if k == "globals" => {
                        globals = g
                            .into_iter()
                            .map(|x| match x {
                                Value::Str(s) => Some(s),
                                _ => None,
                            })
                            .collect::<Option<Vec<String>>>();
                    }
                    (Value::Str(k), Value::Bytes(b)) if k == "pickle" => bytes = Some(b),
                    _ => {}
                }
            }
            match (globals, bytes) {
                (Some(globals), Some(bytes)) => Ok(Value::Opaque(Opaque { globals, bytes })),
                _ => Err(malformed()),
            }
        }
        _ => Err(malformed()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::pytext::posix_parts;

    #[test]
    fn texts_round_trip() {
        for (class, text) in [
            ("datetime.date", "2026-11-30"),
            ("datetime.time", "08:01:02.345678"),
            ("datetime.time", "08:01:02+01:00[tzname=X%5D]"),
            ("datetime.datetime", "2026-11-30T08:00:00+00:00"),
            ("datetime.datetime", "2026-11-30T08:00:00-05:30:10.000001"),
            ("datetime.datetime", "2026-11-30T08:00:00[Europe/Paris][fold=1]"),
            ("decimal.Decimal", "-1.10E+5"),
            ("decimal.Decimal", "sNaN12"),
            ("uuid.UUID", "12345678-1234-5678-1234-567812345678"),
            ("fractions.Fraction", "-3/4"),
            ("pathlib.PosixPath", "//a/b"),
        ] {
            let o = PyObject::from_text(class, text).unwrap();
            assert_eq!(o.class_name(), class);
            assert_eq!(o.to_text().unwrap(), text);
        }
        for (class, text) in [
            ("datetime.date", "2026-02-29"),
            ("datetime.time", "24:00:00"),
            ("datetime.datetime", "2026-11-30T08:00:00+24:00"),
            ("decimal.Decimal", "1.2.3"),
            ("uuid.UUID", "123"),
            ("fractions.Fraction", "1/0"),
        ] {
            assert!(PyObject::from_text(class, text).is_err(), "{class} {text}");
        }
        assert_eq!(PyObject::from_text("fractions.Fraction", "6/-8").unwrap().to_text().unwrap(), "-3/4");
        assert_eq!(normalize_posix_path("a//./b/"), "a/b");
        assert_eq!(posix_parts("///a"), ["/", "a"]);
    }

    #[test]
    fn timedeltas_normalize_as_python() {
        assert_eq!(
            TimeDelta::new(0, -1, 0).unwrap(),
            TimeDelta { days: -1, seconds: 86399, microseconds: 0 }
        );
        assert_eq!(
            TimeDelta::new(0, 0, 1_500_000).unwrap(),
            TimeDelta { days: 0, seconds: 1, microseconds: 500_000 }
        );
        assert!(TimeDelta::new(1_000_000_000, 0, 0).is_err());
    }
}
