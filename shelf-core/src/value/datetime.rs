//! Python's `datetime` values: `date`, `time`, `datetime`, `timedelta` and
//! their `tzinfo`, with the text forms Python gives them (`isoformat`) and
//! reads back.

use std::fmt;

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
pub(crate) fn bad(what: &str, text: &str) -> String {
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

    pub(crate) fn parse(s: &str) -> Result<Self, String> {
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
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
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
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
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
