//! Python's everyday classes (datetime, Decimal, UUID, OrderedDict, deque,
//! defaultdict, complex, Fraction, pathlib) against the real CPython 2.7,
//! 3.6, 3.11 and 3.13 (through pyenv): what each writes under every
//! protocol it has decodes to the expected [`Value`]; what we write under
//! each protocol 2 to 5 the version reads loads equal and of the same
//! class; and our bytes equal CPython's own `pickle.dumps` where it is
//! deterministic. One Python process per version and direction. A version
//! that is not installed is skipped with the reason printed.

use std::io::Write;
use std::process::{Command, Stdio};

use num_bigint::BigInt;
use shelf_core::{Date, DateTime, PickleOptions, Protocol, PyObject, Time, TimeDelta, TzInfo, Value};

const VERSIONS: &[&str] = &["2.7.18", "3.6.15", "3.11.7", "3.13.0"];

/// The values, built in Python; `name` is the key both sides use. Runs on
/// Python 2.7 and 3.x alike.
const VALUES: &str = r#"
import sys, pickle, datetime, decimal, uuid, collections, fractions
PY3 = sys.version_info[0] >= 3
V = []
def add(name, v):
    V.append((name, v))
D = datetime
add('date', D.date(2026, 11, 30))
add('date_min', D.date(1, 1, 1))
add('date_max', D.date(9999, 12, 31))
add('time', D.time(8, 1, 2, 345678))
add('time_utf8', D.time(0, 0, 0, 50089))
add('time_max', D.time(23, 59, 59, 999999))
add('datetime', D.datetime(2026, 11, 30, 8, 0, 0, 5))
add('datetime_min', D.datetime(1, 1, 1))
add('timedelta', D.timedelta(days=-1, seconds=5, microseconds=7))
add('timedelta_zero', D.timedelta(0))
add('timedelta_max', D.timedelta(days=999999999, seconds=86399, microseconds=999999))
add('decimal', decimal.Decimal('1.10'))
add('decimal_negzero', decimal.Decimal('-0'))
add('decimal_nan', decimal.Decimal('NaN'))
add('decimal_exp', decimal.Decimal('1E+2'))
add('decimal_ninf', decimal.Decimal('-Infinity'))
add('uuid', uuid.UUID('12345678-1234-5678-1234-567812345678'))
add('uuid_zero', uuid.UUID(int=0))
add('uuid_max', uuid.UUID(int=2**128 - 1))
add('odict', collections.OrderedDict([('b', 1), ('a', [2])]))
add('odict_empty', collections.OrderedDict())
add('deque', collections.deque([1, 2], maxlen=5))
add('deque_empty', collections.deque())
add('deque_one', collections.deque(['x']))
add('ddict', collections.defaultdict(list, {'a': [1]}))
add('ddict_none', collections.defaultdict(None, {}))
add('ddict_int', collections.defaultdict(int, {1: 2, 3: 4}))
add('complex', complex(1.5, -2))
add('complex_zero', complex(0, 0))
add('fraction', fractions.Fraction(3, 4))
add('fraction_neg', fractions.Fraction(-7, 2))
add('nested', [D.date(2026, 11, 30), {'k': decimal.Decimal('2.5')}, (uuid.UUID(int=7),)])
add('many_dates', [D.date(2000 + i, 1, 1) for i in range(3)])
if PY3:
    import pathlib
    tz = D.timezone
    add('aware', D.datetime(2026, 11, 30, 8, 0, tzinfo=tz(D.timedelta(hours=1), 'X')))
    add('utc', D.datetime(2026, 11, 30, 8, 0, tzinfo=tz.utc))
    add('utc_twice', [D.datetime(2026, 1, 1, tzinfo=tz.utc), D.time(1, tzinfo=tz.utc)])
    add('negative_offset', D.datetime(2026, 11, 30, tzinfo=tz(-D.timedelta(hours=5, minutes=30))))
    add('time_aware', D.time(8, 0, tzinfo=tz(D.timedelta(hours=2))))
    add('ppath', pathlib.PurePosixPath('/a/b'))
    add('path', pathlib.PosixPath('rel/x'))
    add('path_dot', pathlib.PurePosixPath('.'))
    add('path_slash2', pathlib.PurePosixPath('//srv/x'))
    if sys.version_info >= (3, 6):
        add('fold', D.datetime(2026, 11, 1, 1, 30, fold=1))
        add('time_fold', D.time(1, 30, fold=1))
    if sys.version_info >= (3, 7):
        add('offset_seconds', D.datetime(2026, 1, 1, tzinfo=tz(D.timedelta(seconds=3661, microseconds=5))))
    try:
        import zoneinfo
        add('zone', D.datetime(2026, 11, 30, 8, 0, tzinfo=zoneinfo.ZoneInfo('Europe/Paris')))
    except ImportError:
        pass
"#;

/// Prints `name protocol hex` for every value and protocol.
const DUMP: &str = r#"
import binascii
for name, v in V:
    for p in range(pickle.HIGHEST_PROTOCOL + 1):
        print('%s %d %s' % (name, p, binascii.hexlify(pickle.dumps(v, p)).decode('ascii')))
"#;

/// Reads `name protocol hex` lines; prints `name protocol ok` or what differs.
const LOAD: &str = r#"
import binascii
want = dict(V)
def same(a, b):
    # Python 2 text: shelf reads a str as text and writes it back as unicode
    if not PY3 and isinstance(a, basestring) and isinstance(b, basestring):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if list(a.keys()) != list(b.keys()) or not all(same(a[k], b[k]) for k in a):
            return False
        fa, fb = getattr(a, 'default_factory', None), getattr(b, 'default_factory', None)
        # CPython 3's own protocol 2 names int `long` and str `unicode` for 2.7
        return fa is fb or (not PY3 and set([fa, fb]) in (set([int, long]), set([str, unicode])))
    if isinstance(a, collections.deque):
        return a.maxlen == b.maxlen and same(list(a), list(b))
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)
    if isinstance(a, (D.datetime, D.time)):
        return (a == b and type(a.tzinfo) is type(b.tzinfo) and getattr(a, 'fold', 0) == getattr(b, 'fold', 0)
                and (a.tzinfo is None or a.tzname() == b.tzname()))
    return a == b
for line in sys.stdin:
    name, p, h = line.split()
    got = pickle.loads(binascii.unhexlify(h))
    print('%s %s %s' % (name, p, 'ok' if same(got, want[name]) else 'DIFFERS: %r' % (got,)))
"#;

fn skip(why: &str) {
    let _ = std::io::stderr().write_all(format!("skipped: {why}\n").as_bytes());
}

/// Runs `script` in CPython `version` through pyenv with `input` on
/// stdin; `None` (with the reason printed) when it is not installed.
fn python(version: &str, script: &str, input: &str) -> Option<String> {
    let mut child = match Command::new("pyenv")
        .args(["exec", "python", "-c", script])
        .env("PYENV_VERSION", version)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            skip(&format!("CPython {version}: pyenv cannot be run ({e})"));
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not installed") || err.contains("command not found") {
            skip(&format!("CPython {version} is not installed in pyenv ({})", err.trim()));
            return None;
        }
        panic!("CPython {version} failed: {err}");
    }
    Some(String::from_utf8(out.stdout).unwrap())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn o(x: PyObject) -> Value {
    Value::Object(x)
}
fn s(x: &str) -> Value {
    Value::Str(x.into())
}
fn date(year: u16, month: u8, day: u8) -> Date {
    Date::new(year, month, day).unwrap()
}
fn time(h: u8, m: u8, sec: u8, us: u32) -> Time {
    Time::new(h, m, sec, us).unwrap()
}
fn td(d: i64, sec: i64, us: i64) -> TimeDelta {
    TimeDelta::new(d, sec, us).unwrap()
}
fn fixed(offset: TimeDelta, name: Option<&str>) -> Option<TzInfo> {
    Some(TzInfo::Fixed { offset, name: name.map(str::to_owned) })
}
fn dt(d: Date, t: Time) -> Value {
    o(PyObject::DateTime(DateTime { date: d, time: t }))
}
fn dec(x: &str) -> Value {
    o(PyObject::Decimal(x.into()))
}
fn frac(n: i64, d: i64) -> Value {
    o(PyObject::Fraction { numerator: n.into(), denominator: d.into() })
}
fn path(concrete: bool, p: &str) -> Value {
    o(PyObject::Path { concrete, path: p.into() })
}

/// The value each name of [`VALUES`] must decode to.
fn expected(name: &str) -> Value {
    let utc = fixed(TimeDelta::default(), None);
    match name {
        "date" => o(PyObject::Date(date(2026, 11, 30))),
        "date_min" => o(PyObject::Date(date(1, 1, 1))),
        "date_max" => o(PyObject::Date(date(9999, 12, 31))),
        "time" => o(PyObject::Time(time(8, 1, 2, 345678))),
        "time_utf8" => o(PyObject::Time(time(0, 0, 0, 50089))),
        "time_max" => o(PyObject::Time(time(23, 59, 59, 999999))),
        "datetime" => dt(date(2026, 11, 30), time(8, 0, 0, 5)),
        "datetime_min" => dt(date(1, 1, 1), time(0, 0, 0, 0)),
        "timedelta" => o(PyObject::TimeDelta(td(-1, 5, 7))),
        "timedelta_zero" => o(PyObject::TimeDelta(td(0, 0, 0))),
        "timedelta_max" => o(PyObject::TimeDelta(td(999999999, 86399, 999999))),
        "decimal" => dec("1.10"),
        "decimal_negzero" => dec("-0"),
        "decimal_nan" => dec("NaN"),
        "decimal_exp" => dec("1E+2"),
        "decimal_ninf" => dec("-Infinity"),
        "uuid" => o(PyObject::Uuid(0x12345678_1234_5678_1234_567812345678)),
        "uuid_zero" => o(PyObject::Uuid(0)),
        "uuid_max" => o(PyObject::Uuid(u128::MAX)),
        "odict" => o(PyObject::OrderedDict(vec![
            (s("b"), Value::Int(1)),
            (s("a"), Value::List(vec![Value::Int(2)])),
        ])),
        "odict_empty" => o(PyObject::OrderedDict(vec![])),
        "deque" => o(PyObject::Deque { items: vec![Value::Int(1), Value::Int(2)], maxlen: Some(5) }),
        "deque_empty" => o(PyObject::Deque { items: vec![], maxlen: None }),
        "deque_one" => o(PyObject::Deque { items: vec![s("x")], maxlen: None }),
        "ddict" => o(PyObject::DefaultDict {
            factory: Some("list".into()),
            pairs: vec![(s("a"), Value::List(vec![Value::Int(1)]))],
        }),
        "ddict_none" => o(PyObject::DefaultDict { factory: None, pairs: vec![] }),
        "ddict_int" => o(PyObject::DefaultDict {
            factory: Some("int".into()),
            pairs: vec![(Value::Int(1), Value::Int(2)), (Value::Int(3), Value::Int(4))],
        }),
        "complex" => o(PyObject::Complex { re: 1.5, im: -2.0 }),
        "complex_zero" => o(PyObject::Complex { re: 0.0, im: 0.0 }),
        "fraction" => frac(3, 4),
        "fraction_neg" => frac(-7, 2),
        "nested" => Value::List(vec![
            o(PyObject::Date(date(2026, 11, 30))),
            Value::Dict(vec![(s("k"), dec("2.5"))]),
            Value::Tuple(vec![o(PyObject::Uuid(7))]),
        ]),
        "many_dates" => Value::List((0..3).map(|i| o(PyObject::Date(date(2000 + i, 1, 1)))).collect()),
        "aware" => dt(date(2026, 11, 30), Time { tz: fixed(td(0, 3600, 0), Some("X")), ..time(8, 0, 0, 0) }),
        "utc" => dt(date(2026, 11, 30), Time { tz: utc, ..time(8, 0, 0, 0) }),
        "utc_twice" => Value::List(vec![
            dt(date(2026, 1, 1), Time { tz: utc.clone(), ..time(0, 0, 0, 0) }),
            o(PyObject::Time(Time { tz: utc, ..time(1, 0, 0, 0) })),
        ]),
        "negative_offset" => dt(
            date(2026, 11, 30),
            Time { tz: fixed(td(0, -(5 * 3600 + 30 * 60), 0), None), ..time(0, 0, 0, 0) },
        ),
        "time_aware" => o(PyObject::Time(Time { tz: fixed(td(0, 7200, 0), None), ..time(8, 0, 0, 0) })),
        "ppath" => path(false, "/a/b"),
        "path" => path(true, "rel/x"),
        "path_dot" => path(false, "."),
        "path_slash2" => path(false, "//srv/x"),
        "fold" => dt(date(2026, 11, 1), Time { fold: true, ..time(1, 30, 0, 0) }),
        "time_fold" => o(PyObject::Time(Time { fold: true, ..time(1, 30, 0, 0) })),
        "offset_seconds" => {
            dt(date(2026, 1, 1), Time { tz: fixed(td(0, 3661, 5), None), ..time(0, 0, 0, 0) })
        }
        "zone" => {
            dt(date(2026, 11, 30), Time { tz: Some(TzInfo::Zone("Europe/Paris".into())), ..time(8, 0, 0, 0) })
        }
        other => panic!("no expected value for {other}"),
    }
}

/// The fold exists in the pickle only from protocol 4 (CPython's
/// `_getstate(protocol)`): below it the value reads back without it.
fn expected_at(name: &str, proto: u8) -> Value {
    let v = expected(name);
    if proto >= 4 {
        return v;
    }
    match v {
        Value::Object(PyObject::DateTime(mut d)) => {
            d.time.fold = false;
            Value::Object(PyObject::DateTime(d))
        }
        Value::Object(PyObject::Time(mut t)) => {
            t.fold = false;
            Value::Object(PyObject::Time(t))
        }
        other => other,
    }
}

fn pickle(version: u8) -> Protocol {
    Protocol::Pickle(PickleOptions::default().with_version(version))
}

/// Where CPython's own bytes are not ours, by design: 3.13 names
/// `pathlib._local` (which older versions cannot read) and pickles the
/// unnormalized string; up to 3.10 a Fraction is its string; the
/// bound method `ZoneInfo._unpickle` is a fresh object whose memo entry
/// depends on CPython's allocator; Python 2's pickler writes `str`
/// (we write what Python 3 writes, which 2.7 reads).
fn bytes_may_differ(version: &str, name: &str) -> bool {
    version.starts_with("2.")
        || (name.contains("path") && version.starts_with("3.13"))
        || (name.starts_with("fraction") && version.starts_with("3.6"))
}

#[test]
fn cpython_pickles_of_every_protocol_decode_to_the_expected_values_and_ours_are_byte_identical() {
    let script = format!("{VALUES}\n{DUMP}");
    for version in VERSIONS {
        let Some(out) = python(version, &script, "") else { continue };
        let mut seen = 0;
        let mut byte_diffs = Vec::new();
        for line in out.lines() {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(proto), Some(h)) = (parts.next(), parts.next(), parts.next()) else {
                panic!("bad line {line:?}")
            };
            let proto: u8 = proto.parse().unwrap();
            let data = unhex(h);
            let want = expected_at(name, proto);
            let got = pickle(3)
                .decode_value(&data)
                .unwrap_or_else(|e| panic!("CPython {version} {name} protocol {proto}: {e}"));
            assert_eq!(got, want, "CPython {version} {name} protocol {proto}");
            // Reading it as a Value through serde keeps the class too.
            assert_eq!(pickle(3).decode::<Value>(&data).unwrap(), want, "{version} {name} {proto} via serde");
            if proto >= 2 && !bytes_may_differ(version, name) {
                let ours = pickle(proto).encode_value(&want).unwrap();
                if ours != data {
                    byte_diffs
                        .push(format!("{name} protocol {proto}:\n  ours   {}\n  cpython {h}", hex(&ours)));
                }
                // The typed route (to_value) writes the same bytes.
                assert_eq!(pickle(proto).encode(&want).unwrap(), ours, "{version} {name} {proto} typed");
            }
            seen += 1;
        }
        assert!(seen > 60, "CPython {version} dumped only {seen} pickles");
        assert!(byte_diffs.is_empty(), "CPython {version}: our bytes differ:\n{}", byte_diffs.join("\n"));
    }
}

#[test]
fn every_cpython_version_loads_our_pickles_equal_and_of_the_same_class() {
    // The names each version has, from its own list.
    let names_script = format!("{VALUES}\nfor name, v in V: print(name)");
    for version in VERSIONS {
        let Some(names) = python(version, &names_script, "") else { continue };
        let highest = if version.starts_with("2.") {
            2
        } else if version.starts_with("3.6") {
            4
        } else {
            5
        };
        let mut input = String::new();
        for name in names.lines() {
            for proto in 2..=highest {
                // CPython itself pickles the fold only from protocol 4
                if name.contains("fold") && proto < 4 {
                    continue;
                }
                let bytes = pickle(proto).encode_value(&expected(name)).unwrap();
                input.push_str(&format!("{name} {proto} {}\n", hex(&bytes)));
            }
        }
        let out = python(version, &format!("{VALUES}\n{LOAD}"), &input).expect("ran above");
        let bad: Vec<&str> = out.lines().filter(|l| !l.ends_with(" ok")).collect();
        assert_eq!(out.lines().count(), input.lines().count(), "CPython {version}: {out}");
        assert!(bad.is_empty(), "CPython {version} loads other values:\n{}", bad.join("\n"));
    }
}

#[test]
fn large_values_are_framed_as_cpython_frames_them() {
    // Over 64 KiB: several frames, and a big bytes payload between frames.
    let script = r#"
import pickle, sys, binascii, datetime
v = [[datetime.date(2000, 1, 1 + i % 28), 'x' * (i % 50), i] for i in range(5000)] + [b'y' * 70000, 'z' * 70000]
for p in (4, 5):
    print(binascii.hexlify(pickle.dumps(v, p)).decode())
"#;
    let Some(out) = python("3.11.7", script, "") else { return };
    let mut items: Vec<Value> = (0..5000i64)
        .map(|i| {
            Value::List(vec![
                o(PyObject::Date(date(2000, 1, 1 + (i % 28) as u8))),
                s(&"x".repeat((i % 50) as usize)),
                Value::Int(i),
            ])
        })
        .collect();
    items.push(Value::Bytes(vec![b'y'; 70000]));
    items.push(s(&"z".repeat(70000)));
    let v = Value::List(items);
    for (line, proto) in out.lines().zip([4u8, 5]) {
        let theirs = unhex(line);
        assert_eq!(pickle(3).decode_value(&theirs).unwrap(), v, "protocol {proto} decodes");
        let ours = pickle(proto).encode_value(&v).unwrap();
        assert!(
            ours == theirs,
            "protocol {proto}: our framing differs from CPython's ({} vs {} bytes)",
            ours.len(),
            theirs.len()
        );
    }
}

#[test]
fn typed_rust_values_read_python_objects_through_their_serde_forms() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Row {
        day: String,
        price: String,
        id: String,
        extra: std::collections::BTreeMap<String, i64>,
        window: Vec<i64>,
        z: (f64, f64),
        span: (i32, i32, i32),
    }
    let v = Value::Dict(vec![
        (s("day"), o(PyObject::Date(date(2026, 11, 30)))),
        (s("price"), dec("1.10")),
        (s("id"), o(PyObject::Uuid(0x12345678_1234_5678_1234_567812345678))),
        (s("extra"), o(PyObject::OrderedDict(vec![(s("a"), Value::Int(1))]))),
        (s("window"), o(PyObject::Deque { items: vec![Value::Int(1)], maxlen: Some(3) })),
        (s("z"), o(PyObject::Complex { re: 1.0, im: 2.0 })),
        (s("span"), o(PyObject::TimeDelta(td(-1, 5, 7)))),
    ]);
    for proto in 2..=5 {
        let bytes = pickle(proto).encode_value(&v).unwrap();
        let row: Row = pickle(3).decode(&bytes).unwrap();
        assert_eq!(
            row,
            Row {
                day: "2026-11-30".into(),
                price: "1.10".into(),
                id: "12345678-1234-5678-1234-567812345678".into(),
                extra: [("a".to_owned(), 1)].into(),
                window: vec![1],
                z: (1.0, 2.0),
                span: (-1, 5, 7),
            }
        );
    }
    // JSON sees the same serde forms.
    assert_eq!(
        serde_json::to_string(&Value::List(vec![
            o(PyObject::Date(date(2026, 11, 30))),
            dec("1.10"),
            frac(3, 4)
        ]))
        .unwrap(),
        r#"["2026-11-30","1.10","3/4"]"#
    );
}

#[test]
fn an_unknown_class_is_an_error_naming_it_or_its_exact_bytes_written_back_unchanged() {
    let script = r#"
import pickle, binascii, enum
class Point(object):
    def __init__(self, x): self.x = x
class Color(enum.Enum):
    RED = 1
for v in ([Point(1), 2], Color.RED, {'d': __import__('datetime').date(2020, 1, 1), 'p': Point(3)}):
    for p in range(pickle.HIGHEST_PROTOCOL + 1):
        print(binascii.hexlify(pickle.dumps(v, p)).decode())
"#;
    let Some(out) = python("3.11.7", script, "") else { return };
    let lenient = pickle(3).with_placeholders();
    for line in out.lines() {
        let data = unhex(line);
        let err = pickle(3).decode_value(&data).unwrap_err().to_string();
        assert!(err.contains("__main__.Point") || err.contains("__main__.Color"), "{err}");
        let typed = pickle(3).decode::<Vec<i64>>(&data).unwrap_err().to_string();
        assert!(typed.contains("__main__."), "{typed}");
        let v = lenient.decode_value(&data).unwrap();
        let Value::Opaque(op) = &v else { panic!("{v:?}") };
        assert!(op.class().starts_with("__main__."), "{op:?}");
        // Written back (any protocol, typed or not): the same bytes.
        for proto in 2..=5 {
            assert_eq!(pickle(proto).encode_value(&v).unwrap(), data);
            assert_eq!(pickle(proto).encode(&v).unwrap(), data);
        }
        // A typed read of the placeholder names the class.
        let e = lenient.decode::<Vec<i64>>(&data).unwrap_err().to_string();
        assert!(e.contains(op.class()), "{e}");
        // Read as a Value through serde it stays itself; JSON shows it.
        assert_eq!(lenient.decode::<Value>(&data).unwrap(), v);
        assert!(serde_json::to_string(&v).unwrap().contains("__main__."));
        // Nested inside another value it cannot be written.
        let nested = Value::List(vec![v.clone()]);
        assert!(pickle(3).encode_value(&nested).unwrap_err().to_string().contains(op.class()));
    }
}

#[test]
fn big_fraction_and_uuid_ints_round_trip() {
    let f = o(PyObject::Fraction { numerator: BigInt::from(10).pow(30), denominator: BigInt::from(3) });
    for proto in 2..=5 {
        assert_eq!(pickle(3).decode_value(&pickle(proto).encode_value(&f).unwrap()).unwrap(), f);
    }
}

#[test]
fn a_typed_chrono_field_reads_a_python_date_and_datetime() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Event {
        day: chrono::NaiveDate,
        at: chrono::DateTime<chrono::FixedOffset>,
        local: chrono::NaiveDateTime,
    }
    let script = r#"
import pickle, binascii, datetime as D
v = {'day': D.date(2026, 11, 30), 'at': D.datetime(2026, 11, 30, 8, 0, tzinfo=D.timezone(D.timedelta(hours=1))),
     'local': D.datetime(2026, 11, 30, 8, 0, 0, 500)}
for p in range(pickle.HIGHEST_PROTOCOL + 1):
    print(binascii.hexlify(pickle.dumps(v, p)).decode())
"#;
    let Some(out) = python("3.11.7", script, "") else { return };
    let want = Event {
        day: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        at: chrono::DateTime::parse_from_rfc3339("2026-11-30T08:00:00+01:00").unwrap(),
        local: chrono::NaiveDate::from_ymd_opt(2026, 11, 30)
            .unwrap()
            .and_hms_micro_opt(8, 0, 0, 500)
            .unwrap(),
    };
    for (proto, line) in out.lines().enumerate() {
        let e: Event = pickle(3).decode(&unhex(line)).unwrap_or_else(|e| panic!("protocol {proto}: {e}"));
        assert_eq!(e, want, "protocol {proto}");
    }
}
