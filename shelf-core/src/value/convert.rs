//! Conversions between Python's values ([`Date`], [`Time`], [`DateTime`],
//! [`TimeDelta`], [`PyObject::Decimal`], [`PyObject::Uuid`]) and the usual
//! Rust crates, each behind the cargo feature of the crate's name
//! (`chrono`, `rust_decimal`, `uuid`).
//!
//! A conversion that would change the value is an error, never a silent
//! rounding: Python keeps microseconds, so a chrono time with nanoseconds
//! that are not whole microseconds does not convert; an aware Python time
//! does not become a naive chrono one; `Decimal('NaN')` is no
//! `rust_decimal::Decimal`.

#[cfg(any(feature = "chrono", feature = "rust_decimal", feature = "uuid"))]
use super::{PyObject, ValueError};

#[cfg(feature = "chrono")]
mod chrono_impls {
    use chrono::{Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, Timelike};

    use super::ValueError;
    use crate::value::{Date, DateTime, Time, TimeDelta, TzInfo};

    fn err(msg: String) -> ValueError {
        ValueError(msg)
    }

    impl TryFrom<NaiveDate> for Date {
        type Error = ValueError;
        /// Python's dates run from year 1 to 9999.
        fn try_from(d: NaiveDate) -> Result<Self, ValueError> {
            let year =
                u16::try_from(d.year()).map_err(|_| err(format!("{d}: Python's dates end at year 9999")))?;
            Date::new(year, d.month() as u8, d.day() as u8).map_err(err)
        }
    }

    impl From<Date> for NaiveDate {
        fn from(d: Date) -> Self {
            // Every `Date` is valid (checked when made), so this never falls back.
            NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into()).unwrap_or_default()
        }
    }

    impl TryFrom<NaiveTime> for Time {
        type Error = ValueError;
        /// Refuses a leap second and sub-microsecond digits (Python keeps
        /// microseconds).
        fn try_from(t: NaiveTime) -> Result<Self, ValueError> {
            let nanos = t.nanosecond();
            if nanos >= 1_000_000_000 || !nanos.is_multiple_of(1000) {
                return Err(err(format!("{t}: Python's times hold whole microseconds and no leap second")));
            }
            Time::new(t.hour() as u8, t.minute() as u8, t.second() as u8, nanos / 1000).map_err(err)
        }
    }

    impl TryFrom<&Time> for NaiveTime {
        type Error = ValueError;
        /// Only a naive time: an aware one would lose its zone.
        fn try_from(t: &Time) -> Result<Self, ValueError> {
            if t.tz.is_some() {
                return Err(err(format!("{t} is aware: it has no naive chrono form")));
            }
            NaiveTime::from_hms_micro_opt(t.hour.into(), t.minute.into(), t.second.into(), t.microsecond)
                .ok_or_else(|| err(format!("{t} is no chrono time")))
        }
    }

    impl TryFrom<NaiveDateTime> for DateTime {
        type Error = ValueError;
        fn try_from(dt: NaiveDateTime) -> Result<Self, ValueError> {
            Ok(DateTime { date: dt.date().try_into()?, time: dt.time().try_into()? })
        }
    }

    impl TryFrom<&DateTime> for NaiveDateTime {
        type Error = ValueError;
        /// Only a naive datetime.
        fn try_from(dt: &DateTime) -> Result<Self, ValueError> {
            Ok(NaiveDateTime::new(dt.date.into(), NaiveTime::try_from(&dt.time)?))
        }
    }

    impl<Tz: chrono::TimeZone> TryFrom<chrono::DateTime<Tz>> for DateTime {
        type Error = ValueError;
        /// An aware datetime with its fixed UTC offset
        /// (`datetime.timezone(offset)`).
        fn try_from(dt: chrono::DateTime<Tz>) -> Result<Self, ValueError> {
            let offset = dt.offset().fix().local_minus_utc();
            let mut out = DateTime::try_from(dt.naive_local())?;
            let offset = TimeDelta::new(0, offset.into(), 0).map_err(err)?;
            out.time.tz = Some(TzInfo::Fixed { offset, name: None });
            Ok(out)
        }
    }

    impl TryFrom<&DateTime> for chrono::DateTime<FixedOffset> {
        type Error = ValueError;
        /// Only a datetime with a fixed offset of whole seconds (a
        /// `ZoneInfo` would need the time zone database).
        fn try_from(dt: &DateTime) -> Result<Self, ValueError> {
            let Some(TzInfo::Fixed { offset, .. }) = &dt.time.tz else {
                return Err(err(format!("{dt} has no fixed UTC offset")));
            };
            let secs = i32::try_from(offset.total_microseconds() / 1_000_000)
                .ok()
                .filter(|_| offset.microseconds == 0)
                .and_then(FixedOffset::east_opt)
                .ok_or_else(|| err(format!("{dt}: the offset is no whole number of seconds")))?;
            let naive = NaiveDateTime::new(
                dt.date.into(),
                NaiveTime::try_from(&crate::value::Time { tz: None, ..dt.time.clone() })?,
            );
            naive.and_local_timezone(secs).single().ok_or_else(|| err(format!("{dt} is no chrono datetime")))
        }
    }

    impl TryFrom<chrono::TimeDelta> for TimeDelta {
        type Error = ValueError;
        fn try_from(d: chrono::TimeDelta) -> Result<Self, ValueError> {
            let us = d.num_microseconds().ok_or_else(|| err(format!("{d} is beyond Python's timedelta")))?;
            if d.subsec_nanos() % 1000 != 0 {
                return Err(err(format!("{d}: Python's timedelta holds whole microseconds")));
            }
            TimeDelta::new(0, 0, us).map_err(err)
        }
    }

    impl From<TimeDelta> for chrono::TimeDelta {
        fn from(t: TimeDelta) -> Self {
            // Python's range (±999999999 days) is within chrono's.
            chrono::TimeDelta::microseconds(t.total_microseconds())
        }
    }
}

#[cfg(feature = "rust_decimal")]
impl From<rust_decimal::Decimal> for PyObject {
    /// Its text, which keeps the scale (`1.10` stays `1.10`).
    fn from(d: rust_decimal::Decimal) -> Self {
        PyObject::Decimal(d.to_string())
    }
}

#[cfg(feature = "rust_decimal")]
impl TryFrom<&PyObject> for rust_decimal::Decimal {
    type Error = ValueError;
    /// A finite `Decimal` within rust_decimal's 96 bits.
    fn try_from(o: &PyObject) -> Result<Self, ValueError> {
        let PyObject::Decimal(text) = o else {
            return Err(ValueError(format!("a {} is no Decimal", o.class_name())));
        };
        let parsed = if text.contains(['e', 'E']) {
            rust_decimal::Decimal::from_scientific(text)
        } else {
            text.parse::<rust_decimal::Decimal>()
        };
        parsed.map_err(|e| ValueError(format!("Decimal('{text}') is no rust_decimal::Decimal: {e}")))
    }
}

#[cfg(feature = "uuid")]
impl From<uuid::Uuid> for PyObject {
    fn from(u: uuid::Uuid) -> Self {
        PyObject::Uuid(u.as_u128())
    }
}

#[cfg(feature = "uuid")]
impl TryFrom<&PyObject> for uuid::Uuid {
    type Error = ValueError;
    fn try_from(o: &PyObject) -> Result<Self, ValueError> {
        match o {
            PyObject::Uuid(u) => Ok(uuid::Uuid::from_u128(*u)),
            other => Err(ValueError(format!("a {} is no UUID", other.class_name()))),
        }
    }
}

#[cfg(all(test, feature = "chrono", feature = "rust_decimal", feature = "uuid"))]
mod tests {
    use super::*;
    use crate::value::{Date, DateTime, Time, TimeDelta};

    #[test]
    fn conversions_round_trip_or_refuse() {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(chrono::NaiveDate::from(Date::try_from(d).unwrap()), d);
        assert!(Date::try_from(chrono::NaiveDate::from_ymd_opt(10000, 1, 1).unwrap()).is_err());
        let t = chrono::NaiveTime::from_hms_micro_opt(8, 1, 2, 345678).unwrap();
        assert_eq!(chrono::NaiveTime::try_from(&Time::try_from(t).unwrap()).unwrap(), t);
        assert!(Time::try_from(chrono::NaiveTime::from_hms_nano_opt(8, 1, 2, 1).unwrap()).is_err());
        let aware = chrono::DateTime::parse_from_rfc3339("2026-11-30T08:00:00+01:00").unwrap();
        let py = DateTime::try_from(aware).unwrap();
        assert_eq!(py.to_string(), "2026-11-30T08:00:00+01:00");
        assert_eq!(chrono::DateTime::<chrono::FixedOffset>::try_from(&py).unwrap(), aware);
        assert!(chrono::NaiveDateTime::try_from(&py).is_err(), "aware is not naive");
        let td = chrono::TimeDelta::microseconds(-86_399_999_993);
        assert_eq!(chrono::TimeDelta::from(TimeDelta::try_from(td).unwrap()), td);
        let dec: rust_decimal::Decimal = "1.10".parse().unwrap();
        let o = PyObject::from(dec);
        assert_eq!(o, PyObject::Decimal("1.10".into()));
        assert_eq!(rust_decimal::Decimal::try_from(&o).unwrap(), dec);
        assert_eq!(rust_decimal::Decimal::try_from(&PyObject::Decimal("1E+2".into())).unwrap(), 100.into());
        assert!(rust_decimal::Decimal::try_from(&PyObject::Decimal("NaN".into())).is_err());
        let u = uuid::Uuid::from_u128(0x12345678_1234_5678_1234_567812345678);
        assert_eq!(uuid::Uuid::try_from(&PyObject::from(u)).unwrap(), u);
    }
}
