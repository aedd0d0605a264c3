//! Writing Python's library classes (`datetime`, `decimal`, `uuid`,
//! `collections`, `fractions`, `pathlib`, `complex`) as CPython pickles
//! them.

use num_bigint::BigInt;

use super::super::opcodes::*;
use super::{Pickler, Shared};
use crate::value::{PyObject, TimeDelta, TzInfo, Value};

impl Pickler {
    pub(super) fn save_object(&mut self, o: &PyObject, depth: usize) -> Result<(), String> {
        match o {
            PyObject::Date(d) => {
                let state = d.state(0);
                self.reduce("datetime", "date", |p| {
                    p.save_bytes(&state)?;
                    p.tuple_of(1);
                    Ok(())
                })
            }
            PyObject::Time(t) => {
                // `time._getstate(protocol)`: the fold only from protocol 4
                let state = t.state(if t.fold && self.proto > 3 { 0x80 } else { 0 });
                self.reduce("datetime", "time", |p| {
                    p.save_bytes(&state)?;
                    p.save_tz_args(t.tz.as_ref())
                })
            }
            PyObject::DateTime(dt) => {
                let mut state = dt.date.state(if dt.time.fold && self.proto > 3 { 0x80 } else { 0 }).to_vec();
                state.extend_from_slice(&dt.time.state(0));
                self.reduce("datetime", "datetime", |p| {
                    p.save_bytes(&state)?;
                    p.save_tz_args(dt.time.tz.as_ref())
                })
            }
            PyObject::TimeDelta(t) => self.save_timedelta(t),
            PyObject::Decimal(text) => self.reduce("decimal", "Decimal", |p| {
                p.save_str(text)?;
                p.tuple_of(1);
                Ok(())
            }),
            PyObject::Uuid(u) => {
                // `copyreg.__reduce_ex__` from protocol 2: `cls.__new__(cls)`
                // (NEWOBJ), then the state `{'int': int}` (BUILD)
                self.global("uuid", "UUID")?;
                self.out.extend_from_slice(&[EMPTY_TUPLE, NEWOBJ]);
                self.put();
                self.out.push(EMPTY_DICT);
                self.put();
                self.shared(Some(Shared::Const("int")), |p| {
                    p.str_opcode("int")?;
                    Ok(p.put())
                })?;
                self.save(&Value::BigInt(BigInt::from(*u)), depth + 1)?;
                self.out.extend_from_slice(&[SETITEM, BUILD]);
                Ok(())
            }
            PyObject::OrderedDict(pairs) => {
                // `OrderedDict.__reduce__`: `(cls, (), None, None, iter(items))`
                self.reduce("collections", "OrderedDict", |p| {
                    p.tuple_of(0);
                    Ok(())
                })?;
                self.batch_setitems_iter(pairs, depth)
            }
            PyObject::DefaultDict { factory, pairs } => {
                self.reduce("collections", "defaultdict", |p| match factory.as_deref() {
                    None => {
                        p.tuple_of(0);
                        Ok(())
                    }
                    Some(f) => {
                        let f = crate::value::DEFAULT_FACTORIES
                            .iter()
                            .find(|x| **x == f)
                            .ok_or_else(|| format!("defaultdict factory {f:?} is no builtin type"))?;
                        p.global("builtins", f)?;
                        p.tuple_of(1);
                        Ok(())
                    }
                })?;
                self.batch_setitems_iter(pairs, depth)
            }
            PyObject::Deque { items, maxlen } => {
                // `deque.__reduce__`: `(cls, ((), maxlen) or (), None, iter(self))`
                self.reduce("collections", "deque", |p| {
                    match maxlen {
                        None => p.tuple_of(0),
                        Some(m) => {
                            p.tuple_of(0);
                            p.save(&Value::BigInt(BigInt::from(*m)), depth + 1)?;
                            p.tuple_of(2);
                        }
                    }
                    Ok(())
                })?;
                self.batch_appends_iter(items, depth)
            }
            PyObject::Complex { re, im } => self.reduce("builtins", "complex", |p| {
                p.save_float(*re);
                p.save_float(*im);
                p.tuple_of(2);
                Ok(())
            }),
            PyObject::Fraction { numerator, denominator } => self.reduce("fractions", "Fraction", |p| {
                // CPython 3.11's `Fraction.__reduce__`: `(cls, (num, den))`
                p.save(&Value::BigInt(numerator.clone()), depth + 1)?;
                p.save(&Value::BigInt(denominator.clone()), depth + 1)?;
                p.tuple_of(2);
                Ok(())
            }),
            PyObject::Path { concrete, path } => {
                // `PurePath.__reduce__` up to 3.12: `(cls, self.parts)`, in
                // module `pathlib` (3.13 names `pathlib._local`, which
                // older versions lack; every version reads this)
                let name = if *concrete { "PosixPath" } else { "PurePosixPath" };
                let parts: Vec<Value> = crate::value::posix_parts(path).into_iter().map(Value::Str).collect();
                self.reduce("pathlib", name, |p| p.save_tuple(&parts, depth + 1))
            }
        }
    }

    /// The argument tuple `(state, tz)` or `(state,)` of a time or datetime.
    fn save_tz_args(&mut self, tz: Option<&TzInfo>) -> Result<(), String> {
        match tz {
            None => self.tuple_of(1),
            Some(tz) => {
                self.save_tz(tz)?;
                self.tuple_of(2);
            }
        }
        Ok(())
    }

    fn save_tz(&mut self, tz: &TzInfo) -> Result<(), String> {
        match tz {
            TzInfo::Fixed { offset, name } => {
                // `timezone.__getinitargs__`: `(offset,)` or `(offset, name)`;
                // an unnamed zero offset is the `timezone.utc` singleton
                let utc = name.is_none() && offset.total_microseconds() == 0;
                self.shared(utc.then_some(Shared::Utc), |p| {
                    p.reduce("datetime", "timezone", |p| {
                        p.save_timedelta(offset)?;
                        match name {
                            None => p.tuple_of(1),
                            Some(n) => {
                                p.save_str(n)?;
                                p.tuple_of(2);
                            }
                        }
                        Ok(())
                    })?;
                    Ok(p.next - 1)
                })
            }
            TzInfo::Zone(key) => self.shared(Some(Shared::Zone(key.clone())), |p| {
                // `ZoneInfo.__reduce__`: `(ZoneInfo._unpickle, (key, True))`,
                // the bound method itself `(getattr, (ZoneInfo, '_unpickle'))`
                p.global("builtins", "getattr")?;
                p.global("zoneinfo", "ZoneInfo")?;
                p.shared(Some(Shared::Const("_unpickle")), |p| {
                    p.str_opcode("_unpickle")?;
                    Ok(p.put())
                })?;
                p.tuple_of(2);
                p.out.push(REDUCE);
                p.put();
                p.save_str(key)?;
                // `_from_cache`: the int 1 in CPython's C zoneinfo, not True
                p.save_int(1);
                p.tuple_of(2);
                p.out.push(REDUCE);
                Ok(p.put())
            }),
        }
    }

    fn save_timedelta(&mut self, t: &TimeDelta) -> Result<(), String> {
        self.reduce("datetime", "timedelta", |p| {
            p.save_int(t.days.into());
            p.save_int(t.seconds.into());
            p.save_int(t.microseconds.into());
            p.tuple_of(3);
            Ok(())
        })
    }
}
