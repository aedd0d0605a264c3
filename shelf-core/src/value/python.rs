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

use std::fmt;

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

/// `datetime.date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// 1 to 9999.
    pub year: u16,
    /// 1 to 12.
    pub month: u8,
    /// 1 to the month's last day.
    pub day: u8,
}

/// `datetime.time` (and the time of a [`DateTime`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Time {
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
    /// 0 to 59.
    pub second: u8,
    /// 0 to 999999.
    pub microsecond: u32,
    /// PEP 495's `fold` (pickled from protocol 4 on only, as CPython does).
    pub fold: bool,
    /// `tzinfo`, for an aware time.
    pub tz: Option<TzInfo>,
}

/// `datetime.datetime`: a date and a time (whose `tz` makes it aware).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// The date part.
    pub date: Date,
    /// The time part, with the fold and the time zone.
    pub time: Time,
}

/// `datetime.timedelta`, normalized as Python keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeDelta {
    /// -999999999 to 999999999.
    pub days: i32,
    /// 0 to 86399.
    pub seconds: i32,
    /// 0 to 999999.
    pub microseconds: i32,
}

/// The `tzinfo` of an aware time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TzInfo {
    /// `datetime.timezone(offset[, name])`; `timezone.utc` is offset zero
    /// without a name.
    Fixed {
        /// The UTC offset, strictly between -24 and 24 hours.
        offset: TimeDelta,
        /// The name given to the constructor, if any.
        name: Option<String>,
    },
    /// `zoneinfo.ZoneInfo(key)`: the zone by its IANA key. The offset is
    /// not known here (it would take the time zone database).
    Zone(String),
}

/// Why a text or shape is no value of a Python type.
fn bad(what: &str, text: &str) -> String {
    format!("{text:?} is not a valid {what}")
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        _ => 28,
    }
}

impl Date {
    /// A date, checked as `datetime.date(year, month, day)` checks it.
    ///
    /// # Errors
    /// A field out of range.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, String> {
        if !(1..=9999).contains(&year)
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
        {
            return Err(format!("{year:04}-{month:02}-{day:02} is not a valid date"));
        }
        Ok(Date { year, month, day })
    }

    /// From the 4 bytes of `date.__reduce__`'s state.
    pub(crate) fn from_state(b: &[u8]) -> Result<Self, String> {
        match b {
            [hi, lo, m, d] => Date::new(u16::from(*hi) * 256 + u16::from(*lo), *m, *d),
            _ => Err(format!("a date's state has 4 bytes, not {}", b.len())),
        }
    }

    pub(crate) fn state(&self, month_flag: u8) -> [u8; 4] {
        let [hi, lo] = self.year.to_be_bytes();
        [hi, lo, self.month | month_flag, self.day]
    }

    fn parse(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad("date (YYYY-MM-DD)", s));
        }
        let num = |r: std::ops::Range<usize>| {
            s.get(r).filter(|t| t.bytes().all(|c| c.is_ascii_digit())).and_then(|t| t.parse::<u16>().ok())
        };
        let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
            return Err(bad("date (YYYY-MM-DD)", s));
        };
        Date::new(y, m as u8, d as u8)
    }
}

impl fmt::Display for Date {
    /// `date.isoformat()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Time {
    /// A naive time, checked as `datetime.time(...)` checks it.
    ///
    /// # Errors
    /// A field out of range.
    pub fn new(hour: u8, minute: u8, second: u8, microsecond: u32) -> Result<Self, String> {
        if hour > 23 || minute > 59 || second > 59 || microsecond > 999_999 {
            return Err(format!("{hour}:{minute}:{second}.{microsecond} is not a valid time"));
        }
        Ok(Time { hour, minute, second, microsecond, fold: false, tz: None })
    }

    /// From the 6 bytes of `time.__reduce__`'s state; the first byte's
    /// high bit is the fold.
    pub(crate) fn from_state(b: &[u8]) -> Result<Self, String> {
        match b {
            [h, m, s, u @ ..] if u.len() == 3 => {
                let us = u32::from(u[0]) << 16 | u32::from(u[1]) << 8 | u32::from(u[2]);
                let mut t = Time::new(h & 0x7f, *m, *s, us)?;
                t.fold = h & 0x80 != 0;
                Ok(t)
            }
            _ => Err(format!("a time's state has 6 bytes, not {}", b.len())),
        }
    }

    pub(crate) fn state(&self, hour_flag: u8) -> [u8; 6] {
        let u = self.microsecond.to_be_bytes();
        [self.hour | hour_flag, self.minute, self.second, u[1], u[2], u[3]]
    }

    fn write_clock(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}:{:02}", self.hour, self.minute, self.second)?;
        if self.microsecond != 0 {
            write!(f, ".{:06}", self.microsecond)?;
        }
        Ok(())
    }

    fn write_suffix(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tz {
            None => {}
            Some(TzInfo::Fixed { offset, name }) => {
                write_offset(f, offset)?;
                if let Some(n) = name {
                    write!(f, "[tzname={}]", escape_annotation(n))?;
                }
            }
            Some(TzInfo::Zone(key)) => write!(f, "[{}]", escape_annotation(key))?,
        }
        if self.fold {
            f.write_str("[fold=1]")?;
        }
        Ok(())
    }

    /// `HH:MM[:SS[.ffffff]]` then the offset and annotations.
    fn parse(s: &str) -> Result<Self, String> {
        let err = || bad("time (HH:MM:SS[.ffffff][+HH:MM][[zone]])", s);
        let (clock, rest) = split_clock(s);
        let t = parse_clock(clock).ok_or_else(err)?;
        let (tz, fold) = parse_suffix(rest).ok_or_else(err)?;
        Ok(Time { fold, tz, ..t })
    }
}

impl fmt::Display for Time {
    /// `time.isoformat()`, then `[zone/key]`, `[tzname=NAME]` and
    /// `[fold=1]` annotations for what ISO 8601 has no room for (the
    /// bracket form of RFC 9557).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_clock(f)?;
        self.write_suffix(f)
    }
}

impl fmt::Display for DateTime {
    /// `datetime.isoformat()`, with [`Time`]'s annotations.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}T", self.date)?;
        self.time.write_clock(f)?;
        self.time.write_suffix(f)
    }
}

impl DateTime {
    fn parse(s: &str) -> Result<Self, String> {
        let (d, t) = s.split_at_checked(10).ok_or_else(|| bad("datetime", s))?;
        let t = t.strip_prefix(['T', ' ']).ok_or_else(|| bad("datetime (YYYY-MM-DDTHH:MM:SS...)", s))?;
        Ok(DateTime { date: Date::parse(d)?, time: Time::parse(t)? })
    }
}

impl TimeDelta {
    /// A timedelta normalized as `datetime.timedelta(days, seconds,
    /// microseconds)` normalizes it.
    ///
    /// # Errors
    /// More than 999999999 days either way.
    pub fn new(days: i64, seconds: i64, microseconds: i64) -> Result<Self, String> {
        let total =
            i128::from(days) * 86_400_000_000 + i128::from(seconds) * 1_000_000 + i128::from(microseconds);
        let us = total.rem_euclid(1_000_000);
        let secs = total.div_euclid(1_000_000);
        let s = secs.rem_euclid(86_400);
        let d = secs.div_euclid(86_400);
        let d = i32::try_from(d).ok().filter(|d| d.abs() <= 999_999_999);
        let d = d.ok_or_else(|| format!("days={days}; must have magnitude <= 999999999"))?;
        Ok(TimeDelta { days: d, seconds: s as i32, microseconds: us as i32 })
    }

    /// The whole span in microseconds.
    pub fn total_microseconds(&self) -> i64 {
        i64::from(self.days) * 86_400_000_000
            + i64::from(self.seconds) * 1_000_000
            + i64::from(self.microseconds)
    }
}

/// `±HH:MM[:SS[.ffffff]]`, as Python formats a UTC offset.
fn write_offset(f: &mut fmt::Formatter<'_>, offset: &TimeDelta) -> fmt::Result {
    let us = offset.total_microseconds();
    let sign = if us < 0 { '-' } else { '+' };
    let us = us.unsigned_abs();
    let (secs, frac) = (us / 1_000_000, us % 1_000_000);
    write!(f, "{sign}{:02}:{:02}", secs / 3600, secs / 60 % 60)?;
    if secs % 60 != 0 || frac != 0 {
        write!(f, ":{:02}", secs % 60)?;
    }
    if frac != 0 {
        write!(f, ".{frac:06}")?;
    }
    Ok(())
}

fn escape_annotation(s: &str) -> String {
    s.replace('%', "%25").replace(']', "%5D").replace('[', "%5B")
}

fn unescape_annotation(s: &str) -> String {
    s.replace("%5B", "[").replace("%5D", "]").replace("%25", "%")
}

/// Splits `HH:MM:SS.ffffff` from what follows it (an offset or `[`).
fn split_clock(s: &str) -> (&str, &str) {
    let end = s.find(['+', '-', '[', 'Z']).unwrap_or(s.len());
    s.split_at(end)
}

fn two(s: &str) -> Option<u8> {
    (s.len() == 2 && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

fn parse_clock(s: &str) -> Option<Time> {
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let mut parts = hms.split(':');
    let h = two(parts.next()?)?;
    let m = two(parts.next()?)?;
    let sec = match parts.next() {
        Some(p) => two(p)?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    let us = match frac {
        None => 0,
        Some(f) if (1..=6).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(6 - f.len() as u32)
        }
        Some(_) => return None,
    };
    Time::new(h, m, sec, us).ok()
}

fn parse_offset(s: &str) -> Option<TimeDelta> {
    if s == "Z" {
        return Some(TimeDelta::default());
    }
    let neg = s.starts_with('-');
    let body = s.strip_prefix(['+', '-'])?;
    let t = parse_clock(body)?;
    let us = (i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second)) * 1_000_000
        + i64::from(t.microsecond);
    TimeDelta::new(0, 0, if neg { -us } else { us }).ok()
}

/// The offset and annotations after a clock: `(tz, fold)`.
fn parse_suffix(s: &str) -> Option<(Option<TzInfo>, bool)> {
    let (offset, mut rest) = s.split_at(s.find('[').unwrap_or(s.len()));
    let offset = if offset.is_empty() { None } else { Some(parse_offset(offset)?) };
    let (mut zone, mut name, mut fold) = (None, None, false);
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        let ann = &inner[..end];
        rest = &inner[end + 1..];
        match ann.split_once('=') {
            Some(("tzname", n)) => name = Some(unescape_annotation(n)),
            Some(("fold", "1")) => fold = true,
            Some(("fold", "0")) => fold = false,
            Some(_) => return None,
            None if !ann.is_empty() && zone.is_none() => zone = Some(unescape_annotation(ann)),
            None => return None,
        }
    }
    let tz = match (offset, zone, name) {
        (None, None, None) => None,
        (None, Some(z), None) => Some(TzInfo::Zone(z)),
        (Some(offset), None, name) => Some(TzInfo::Fixed { offset, name }),
        // An offset beside a zone key says nothing more (the zone decides
        // the offset), and a name without an offset is nothing.
        (Some(_), Some(z), None) => Some(TzInfo::Zone(z)),
        _ => return None,
    };
    if let Some(TzInfo::Fixed { offset, .. }) = &tz
        && offset.total_microseconds().abs() >= 86_400_000_000
    {
        return None;
    }
    Some((tz, fold))
}

/// Whether `s` is the text of a `decimal.Decimal` (its `str()` or what
/// `Decimal(s)` accepts without surrounding space or underscores).
pub(crate) fn is_decimal_text(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return true;
    }
    for nan in ["snan", "nan"] {
        if let Some(payload) = lower.strip_prefix(nan) {
            return payload.bytes().all(|c| c.is_ascii_digit());
        }
    }
    let (mantissa, exp) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exp_ok
}

/// `Fraction(num, den)` in lowest terms, with a positive denominator.
pub(crate) fn fraction(numerator: BigInt, denominator: BigInt) -> Result<PyObject, String> {
    use num_bigint::Sign;
    if denominator.sign() == Sign::NoSign {
        return Err(format!("Fraction({numerator}, 0)"));
    }
    let g = gcd(numerator.clone(), denominator.clone());
    let (mut n, mut d) = (numerator / &g, denominator / &g);
    if d.sign() == Sign::Minus {
        n = -n;
        d = -d;
    }
    Ok(PyObject::Fraction { numerator: n, denominator: d })
}

fn gcd(mut a: BigInt, mut b: BigInt) -> BigInt {
    use num_bigint::Sign;
    while b.sign() != Sign::NoSign {
        let r = &a % &b;
        a = b;
        b = r;
    }
    if a.sign() == Sign::Minus { -a } else { a }
}

/// `Fraction(text)` for the texts `str(Fraction)` gives: `n` or `n/d`.
pub(crate) fn parse_fraction(s: &str) -> Result<PyObject, String> {
    let (n, d) = s.trim().split_once('/').unwrap_or((s.trim(), "1"));
    let n: BigInt = n.trim().parse().map_err(|_| bad("fraction (N/D)", s))?;
    let d: BigInt = d.trim().parse().map_err(|_| bad("fraction (N/D)", s))?;
    fraction(n, d)
}

/// The hyphenated form of a UUID.
pub(crate) fn uuid_text(u: u128) -> String {
    let h = format!("{u:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// `uuid.UUID(text)`: hex digits with optional hyphens, braces and `urn:uuid:`.
pub(crate) fn parse_uuid(s: &str) -> Result<u128, String> {
    let t = s.strip_prefix("urn:uuid:").unwrap_or(s);
    let t = t.trim_start_matches('{').trim_end_matches('}');
    let hex: String = t.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad("UUID", s));
    }
    u128::from_str_radix(&hex, 16).map_err(|_| bad("UUID", s))
}

/// `str(PurePosixPath(s))`: pathlib's normalization (repeated and
/// trailing slashes and `.` components dropped; exactly two leading
/// slashes kept).
pub(crate) fn normalize_posix_path(s: &str) -> String {
    let parts = posix_parts(s);
    match parts.split_first() {
        None => ".".to_owned(),
        Some((root, rest)) if root.starts_with('/') => format!("{root}{}", rest.join("/")),
        Some(_) => parts.join("/"),
    }
}

/// `PurePosixPath(s).parts`: the root (`/` or `//`) first if any, then
/// the components.
pub(crate) fn posix_parts(s: &str) -> Vec<String> {
    let root = if s.starts_with("//") && !s.starts_with("///") {
        "//"
    } else if s.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut parts: Vec<String> = Vec::new();
    if !root.is_empty() {
        parts.push(root.to_owned());
    }
    parts.extend(s.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_owned));
    parts
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
