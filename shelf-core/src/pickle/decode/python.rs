//! The standard library's value classes, rebuilt from the arguments their
//! `__reduce__` gives (CPython's `Lib/datetime.py`, `Lib/_pydecimal.py`,
//! `Lib/uuid.py`, `Lib/collections/__init__.py`, `Lib/fractions.py`,
//! `Lib/pathlib.py`, `Lib/zoneinfo/_zoneinfo.py`), by Python 2.7 and 3.x
//! alike: nothing is imported or called.

use num_bigint::BigInt;

use super::{Builtin, Dict, Item, Obj, Step, Vm};
use crate::value::{Date, DateTime, PyObject, Time, TimeDelta, TzInfo, Value};

impl Vm<'_> {
    /// Records an unknown global for [`Value::Opaque`].
    pub(super) fn note_unknown(&mut self, name: &str) {
        if !self.unknown.iter().any(|n| n == name) {
            self.unknown.push(name.to_owned());
        }
    }

    fn object(&mut self, o: PyObject) -> Item {
        self.new_obj(Obj::Frozen(Value::Object(o)))
    }

    fn int_arg(&self, item: Item) -> Option<BigInt> {
        match (item, self.obj(item)) {
            (Item::Int(i), _) => Some(i.into()),
            (Item::Bool(b), _) => Some(i64::from(b).into()),
            (_, Some(Obj::Frozen(Value::BigInt(b)))) => Some(b.clone()),
            _ => None,
        }
    }

    fn i64_arg(&self, item: Item) -> Option<i64> {
        self.int_arg(item).and_then(|b| i64::try_from(&b).ok())
    }

    fn float_arg(&self, item: Item) -> Option<f64> {
        match item {
            Item::Float(f) => Some(f),
            Item::Int(i) => Some(i as f64),
            _ => None,
        }
    }

    /// The bytes of a datetime state: `bytes` (Python 3, or Python 3's
    /// `_codecs.encode(text, 'latin1')` in protocols 0 to 2) or a Python 2
    /// `str`, which decoding made text when it was valid UTF-8.
    fn state_bytes(&self, item: Item) -> Option<Vec<u8>> {
        match self.obj(item) {
            Some(Obj::Frozen(Value::Bytes(b))) => Some(b.clone()),
            Some(Obj::Frozen(Value::Str(s))) => Some(s.as_bytes().to_vec()),
            _ => None,
        }
    }

    fn tz_arg(&self, item: Option<&Item>) -> Step<Option<TzInfo>> {
        match item.map(|&i| (i, self.obj(i))) {
            None | Some((Item::None, _)) => Ok(None),
            Some((_, Some(Obj::Tz(tz)))) => Ok(Some(tz.clone())),
            Some((i, _)) => Err(format!("a tzinfo of type {} is not decoded", self.type_name(i))),
        }
    }

    /// `UUID.__setstate__`: `{'int': n}` (and `'is_safe'`, not kept).
    pub(super) fn uuid_state(&mut self, state: Item) -> Step<u128> {
        let Some(Obj::Dict(d)) = self.obj(state) else {
            return Err("the state of a uuid.UUID must be a dict".to_owned());
        };
        let n = d
            .pairs
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == "int"))
            .map(|(_, v)| *v)
            .ok_or("the state of a uuid.UUID has no 'int'")?;
        self.int_arg(n)
            .and_then(|b| u128::try_from(&b).ok())
            .ok_or_else(|| "the 'int' of a uuid.UUID must be an int in 0..2**128".to_owned())
    }

    /// Calls one of the value classes (REDUCE).
    pub(super) fn call_python(&mut self, builtin: Builtin, fname: &str, args: Vec<Item>) -> Step<Item> {
        let bad = || format!("{fname}() with these arguments is not decoded");
        match builtin {
            Builtin::Date => match args.as_slice() {
                [state] => {
                    let b = self.state_bytes(*state).ok_or_else(bad)?;
                    Ok(self.object(PyObject::Date(Date::from_state(&b)?)))
                }
                [y, m, d] => {
                    let (y, m, d) = (self.i64_arg(*y), self.i64_arg(*m), self.i64_arg(*d));
                    let (Some(y), Some(m), Some(d)) = (y, m, d) else { return Err(bad()) };
                    let fit = |v: i64| u8::try_from(v).map_err(|_| bad());
                    let date = Date::new(u16::try_from(y).map_err(|_| bad())?, fit(m)?, fit(d)?)?;
                    Ok(self.object(PyObject::Date(date)))
                }
                _ => Err(bad()),
            },
            Builtin::Time | Builtin::DateTime => {
                let (state, tz) = match args.as_slice() {
                    [state] => (*state, None),
                    [state, tz] => (*state, Some(tz)),
                    _ => return Err(bad()),
                };
                let b = self.state_bytes(state).ok_or_else(bad)?;
                let tz = self.tz_arg(tz)?;
                let o = if builtin == Builtin::Time {
                    PyObject::Time(Time { tz, ..Time::from_state(&b)? })
                } else {
                    // `datetime._getstate`: the month's high bit is the fold
                    let (date, time) = b
                        .split_at_checked(4)
                        .ok_or_else(|| format!("a datetime's state has 10 bytes, not {}", b.len()))?;
                    if b.len() != 10 {
                        return Err(format!("a datetime's state has 10 bytes, not {}", b.len()));
                    }
                    let fold = date[2] & 0x80 != 0;
                    let date = Date::from_state(&[date[0], date[1], date[2] & 0x7f, date[3]])?;
                    let time = Time { fold, tz, ..Time::from_state(time)? };
                    PyObject::DateTime(DateTime { date, time })
                };
                Ok(self.object(o))
            }
            Builtin::TimeDelta => {
                if args.len() > 3 {
                    return Err(bad());
                }
                let mut n = [0i64; 3];
                for (slot, &a) in n.iter_mut().zip(&args) {
                    *slot = self.i64_arg(a).ok_or_else(bad)?;
                }
                Ok(self.object(PyObject::TimeDelta(TimeDelta::new(n[0], n[1], n[2])?)))
            }
            Builtin::TimeZone => {
                let (offset, name) = match args.as_slice() {
                    [o] => (*o, None),
                    [o, n] => (*o, Some(*n)),
                    _ => return Err(bad()),
                };
                let Some(Obj::Frozen(Value::Object(PyObject::TimeDelta(offset)))) = self.obj(offset) else {
                    return Err("datetime.timezone() takes a timedelta".to_owned());
                };
                let offset = *offset;
                if offset.total_microseconds().abs() >= 86_400_000_000 {
                    return Err("a timezone's offset must be strictly between -24 and 24 hours".to_owned());
                }
                let name = match name {
                    None => None,
                    Some(n) => Some(self.str_of(n).ok_or_else(bad)?.to_owned()),
                };
                Ok(self.new_obj(Obj::Tz(TzInfo::Fixed { offset, name })))
            }
            Builtin::Getattr => match args.as_slice() {
                [cls, attr]
                    if matches!(self.obj(*cls), Some(Obj::Callable(Builtin::ZoneInfo, _)))
                        && self.str_of(*attr) == Some("_unpickle") =>
                {
                    Ok(self
                        .new_obj(Obj::Callable(Builtin::ZoneUnpickle, "zoneinfo.ZoneInfo._unpickle".into())))
                }
                _ => Err(format!("{fname}() is only decoded as getattr(zoneinfo.ZoneInfo, '_unpickle')")),
            },
            Builtin::ZoneInfo | Builtin::ZoneUnpickle => match args.as_slice() {
                [key, ..] if args.len() <= 2 => {
                    let key = self.str_of(*key).ok_or_else(bad)?.to_owned();
                    Ok(self.new_obj(Obj::Tz(TzInfo::Zone(key))))
                }
                _ => Err(bad()),
            },
            Builtin::Decimal => match args.as_slice() {
                [] => Ok(self.object(PyObject::Decimal("0".into()))),
                [a] => {
                    let text = match self.str_of(*a) {
                        Some(s) => s.trim().to_owned(),
                        None => self.int_arg(*a).ok_or_else(bad)?.to_string(),
                    };
                    if !crate::value::is_decimal_text(&text) {
                        return Err(format!("invalid literal for Decimal: {text:?}"));
                    }
                    Ok(self.object(PyObject::Decimal(text)))
                }
                _ => Err(bad()),
            },
            Builtin::Uuid => Err(format!("{fname}() is only decoded as pickled by uuid.UUID.__reduce__")),
            Builtin::OrderedDict | Builtin::DefaultDict => {
                // Python 3: `(cls, ())` or `(defaultdict, (factory,))`, the
                // items as SETITEMS; Python 2's OrderedDict: `(cls, ([[k, v], ...],))`
                let mut dict = Dict::default();
                let factory = if builtin == Builtin::DefaultDict {
                    match args.first().map(|&a| (a, self.obj(a))) {
                        None | Some((Item::None, _)) => None,
                        Some((_, Some(Obj::Callable(b, _)))) => {
                            Some(b.factory_name().ok_or_else(|| format!("defaultdict of factory {fname}"))?)
                        }
                        Some((a, _)) => {
                            return Err(format!(
                                "a defaultdict factory of type {} is not decoded",
                                self.type_name(a)
                            ));
                        }
                    }
                } else {
                    None
                };
                let pairs_arg = if builtin == Builtin::OrderedDict { args.first() } else { args.get(1) };
                if args.len() > 2 {
                    return Err(bad());
                }
                if let Some(&pairs) = pairs_arg {
                    for pair in self.iterate(pairs)? {
                        let kv = self.iterate(pair)?;
                        let [k, v] = kv.as_slice() else { return Err(bad()) };
                        let (key, hash) = self.key(*k)?;
                        dict.insert(key, hash, *v);
                    }
                }
                Ok(self.new_obj(if builtin == Builtin::OrderedDict {
                    Obj::OrderedDict(dict)
                } else {
                    Obj::DefaultDict(factory, dict)
                }))
            }
            Builtin::Deque => {
                // Python 3: `(cls, ((), maxlen))` or `(cls, ())`, the items as
                // APPENDS; Python 2: `(cls, (list, maxlen))`
                if args.len() > 2 {
                    return Err(bad());
                }
                let maxlen = match args.get(1) {
                    None | Some(Item::None) => None,
                    Some(&m) => Some(
                        self.int_arg(m)
                            .and_then(|b| u64::try_from(&b).ok())
                            .ok_or("maxlen must be a non-negative int")?,
                    ),
                };
                let items = match args.first() {
                    Some(&it) => self.iterate(it)?,
                    None => Vec::new(),
                };
                let deque = self.new_obj(Obj::Deque(Vec::new(), maxlen));
                self.extend_list(deque, &items)?;
                Ok(deque)
            }
            Builtin::Complex => {
                let mut parts = [0.0f64; 2];
                if args.len() > 2 {
                    return Err(bad());
                }
                for (slot, &a) in parts.iter_mut().zip(&args) {
                    *slot = self.float_arg(a).ok_or_else(bad)?;
                }
                Ok(self.object(PyObject::Complex { re: parts[0], im: parts[1] }))
            }
            Builtin::Fraction => {
                // 3.11+: `(num, den)`; up to 3.10 and 2.7: `(str(self),)`
                let o = match args.as_slice() {
                    [a] if self.str_of(*a).is_some() => {
                        crate::value::parse_fraction(self.str_of(*a).unwrap_or_default())?
                    }
                    [n] => crate::value::fraction(self.int_arg(*n).ok_or_else(bad)?, 1.into())?,
                    [n, d] => crate::value::fraction(
                        self.int_arg(*n).ok_or_else(bad)?,
                        self.int_arg(*d).ok_or_else(bad)?,
                    )?,
                    _ => return Err(bad()),
                };
                Ok(self.object(o))
            }
            Builtin::Path(concrete) => {
                // `(cls, parts)` up to 3.12, `(cls, (str,))` from 3.13: joined
                // as `PurePosixPath(*args)` joins them
                let mut joined = String::new();
                for &a in &args {
                    let part = self.str_of(a).ok_or_else(bad)?;
                    if part.starts_with('/') || joined.is_empty() {
                        joined = part.to_owned();
                    } else {
                        if !joined.ends_with('/') {
                            joined.push('/');
                        }
                        joined.push_str(part);
                    }
                }
                let path = crate::value::normalize_posix_path(&joined);
                Ok(self.object(PyObject::Path { concrete, path }))
            }
            _ => Err(format!("calling {fname} is not supported")),
        }
    }
}
