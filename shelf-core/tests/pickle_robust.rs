//! The pickle decoder on hostile input: every truncation of valid pickles,
//! random bytes and random opcode soup decode to `Ok` or `Err`, never a
//! panic, a stack overflow or a huge allocation; and our own encoding of
//! random values decodes back to them.

use proptest::prelude::*;
use shelf_core::{Date, DateTime, PickleOptions, Protocol, PyObject, Time, TimeDelta, TzInfo, Value};

fn protocols() -> [Protocol; 2] {
    [Protocol::pickle(), Protocol::Pickle(PickleOptions::default().with_placeholder_globals())]
}

/// Pickles written by CPython 3.11, one per protocol 0 to 5, of
/// `[1, 'é', b'\x00', (2**70, 1.5), {frozenset({3}): bytearray(b'x')}, {4}, None, True]`,
/// then `datetime.date(2020, 1, 1)` in protocol 4 for the global path, then
/// the other classes shelf decodes.
const SAMPLES: &[&[u8]] = &[
    b"(lp0\nI1\naV\xe9\np1\nac_codecs\nencode\np2\n(V\\u0000\np3\nVlatin1\np4\ntp5\nRp6\na(L1180591620717411303424L\nF1.5\ntp7\na(dp8\nc__builtin__\nfrozenset\np9\n((lp10\nI3\natp11\nRp12\nc__builtin__\nbytearray\np13\n(g2\n(Vx\np14\ng4\ntp15\nRp16\ntp17\nRp18\nsac__builtin__\nset\np19\n((lp20\nI4\natp21\nRp22\naNaI01\na.",
    b"]q\x00(K\x01X\x02\x00\x00\x00\xc3\xa9q\x01c_codecs\nencode\nq\x02(X\x01\x00\x00\x00\x00q\x03X\x06\x00\x00\x00latin1q\x04tq\x05Rq\x06(L1180591620717411303424L\nG?\xf8\x00\x00\x00\x00\x00\x00tq\x07}q\x08c__builtin__\nfrozenset\nq\x09(]q\nK\x03atq\x0bRq\x0cc__builtin__\nbytearray\nq\x0d(h\x02(X\x01\x00\x00\x00xq\x0eh\x04tq\x0fRq\x10tq\x11Rq\x12sc__builtin__\nset\nq\x13(]q\x14K\x04atq\x15Rq\x16NI01\ne.",
    b"\x80\x02]q\x00(K\x01X\x02\x00\x00\x00\xc3\xa9q\x01c_codecs\nencode\nq\x02X\x01\x00\x00\x00\x00q\x03X\x06\x00\x00\x00latin1q\x04\x86q\x05Rq\x06\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@G?\xf8\x00\x00\x00\x00\x00\x00\x86q\x07}q\x08c__builtin__\nfrozenset\nq\x09]q\nK\x03a\x85q\x0bRq\x0cc__builtin__\nbytearray\nq\x0dh\x02X\x01\x00\x00\x00xq\x0eh\x04\x86q\x0fRq\x10\x85q\x11Rq\x12sc__builtin__\nset\nq\x13]q\x14K\x04a\x85q\x15Rq\x16N\x88e.",
    b"\x80\x03]q\x00(K\x01X\x02\x00\x00\x00\xc3\xa9q\x01C\x01\x00q\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@G?\xf8\x00\x00\x00\x00\x00\x00\x86q\x03}q\x04cbuiltins\nfrozenset\nq\x05]q\x06K\x03a\x85q\x07Rq\x08cbuiltins\nbytearray\nq\x09C\x01xq\n\x85q\x0bRq\x0cscbuiltins\nset\nq\x0d]q\x0eK\x04a\x85q\x0fRq\x10N\x88e.",
    b"\x80\x04\x95W\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01\x8c\x02\xc3\xa9\x94C\x01\x00\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@G?\xf8\x00\x00\x00\x00\x00\x00\x86\x94}\x94(K\x03\x91\x94\x8c\x08builtins\x94\x8c\x09bytearray\x94\x93\x94C\x01x\x94\x85\x94R\x94s\x8f\x94(K\x04\x90N\x88e.",
    b"\x80\x05\x95A\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01\x8c\x02\xc3\xa9\x94C\x01\x00\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@G?\xf8\x00\x00\x00\x00\x00\x00\x86\x94}\x94(K\x03\x91\x94\x96\x01\x00\x00\x00\x00\x00\x00\x00x\x94s\x8f\x94(K\x04\x90N\x88e.",
    b"\x80\x04\x95 \x00\x00\x00\x00\x00\x00\x00\x8c\x08datetime\x94\x8c\x04date\x94\x93\x94C\x04\x07\xe4\x01\x01\x94\x85\x94R\x94.",    // CPython 3.11's pickles of the standard library's value classes, by
    // each route (zoneinfo through getattr, UUID through copyreg, ...).
    b"\x80\x02cdatetime\x0atime\x0aq\x00c_codecs\x0aencode\x0aq\x01X\x06\x00\x00\x00\x08\x01\x02\x05FNq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05\x85q\x06Rq\x07.",
    b"\x80\x04\x95'\x00\x00\x00\x00\x00\x00\x00\x8c\x08datetime\x94\x8c\x09timedelta\x94\x93\x94J\xff\xff\xff\xffK\x05K\x07\x87\x94R\x94.",
    b"cdecimal\x0aDecimal\x0ap0\x0a(V1.10\x0ap1\x0atp2\x0aRp3\x0a.",
    b"ccopy_reg\x0a_reconstructor\x0ap0\x0a(cuuid\x0aUUID\x0ap1\x0ac__builtin__\x0aobject\x0ap2\x0aNtp3\x0aRp4\x0a(dp5\x0aVint\x0ap6\x0aL24197857161011715162171839636988778104L\x0asb.",
    b"\x80\x02ccollections\x0aOrderedDict\x0aq\x00)Rq\x01(X\x01\x00\x00\x00aq\x02K\x01X\x01\x00\x00\x00bq\x03K\x02u.",
    b"ccollections\x0adeque\x0ap0\x0a((tI5\x0atp1\x0aRp2\x0aI1\x0aaI2\x0aa.",
    b"\x80\x04\x95A\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bdefaultdict\x94\x93\x94\x8c\x08builtins\x94\x8c\x04list\x94\x93\x94\x85\x94R\x94\x8c\x01a\x94]\x94K\x01as.",
    b"\x80\x04\x95.\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x07complex\x94\x93\x94G?\xf8\x00\x00\x00\x00\x00\x00G\xc0\x00\x00\x00\x00\x00\x00\x00\x86\x94R\x94.",
    b"\x80\x02cfractions\x0aFraction\x0aq\x00K\x03K\x04\x86q\x01Rq\x02.",
    b"\x80\x05\x95\x5c\x00\x00\x00\x00\x00\x00\x00\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94C\x0a\x07\xea\x0b\x1e\x08\x00\x00\x00\x00\x00\x94h\x00\x8c\x08timezone\x94\x93\x94h\x00\x8c\x09timedelta\x94\x93\x94K\x00M\x10\x0eK\x00\x87\x94R\x94\x8c\x01X\x94\x86\x94R\x94\x86\x94R\x94.",
    b"\x80\x02cpathlib\x0aPurePosixPath\x0aq\x00X\x01\x00\x00\x00/q\x01X\x01\x00\x00\x00aq\x02X\x01\x00\x00\x00bq\x03\x87q\x04Rq\x05.",
    b"cdatetime\x0adatetime\x0ap0\x0a(c_codecs\x0aencode\x0ap1\x0a(V\x07\xea\x0b\x1e\x08\x5cu0000\x5cu0000\x5cu0000\x5cu0000\x5cu0000\x0ap2\x0aVlatin1\x0ap3\x0atp4\x0aRp5\x0ac__builtin__\x0agetattr\x0ap6\x0a(czoneinfo\x0aZoneInfo\x0ap7\x0aV_unpickle\x0ap8\x0atp9\x0aRp10\x0a(VEurope/Paris\x0ap11\x0aI1\x0atp12\x0aRp13\x0atp14\x0aRp15\x0a.",
    b"\x80\x02cdatetime\x0adatetime\x0aq\x00c_codecs\x0aencode\x0aq\x01X\x0b\x00\x00\x00\x07\xc3\xaa\x0b\x1e\x08\x00\x00\x00\x00\x00q\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05c__builtin__\x0agetattr\x0aq\x06czoneinfo\x0aZoneInfo\x0aq\x07X\x09\x00\x00\x00_unpickleq\x08\x86q\x09Rq\x0aX\x0c\x00\x00\x00Europe/Parisq\x0bK\x01\x86q\x0cRq\x0d\x86q\x0eRq\x0f.",
    b"\x80\x04\x95~\x00\x00\x00\x00\x00\x00\x00\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94C\x0a\x07\xea\x0b\x1e\x08\x00\x00\x00\x00\x00\x94\x8c\x08builtins\x94\x8c\x07getattr\x94\x93\x94\x8c\x08zoneinfo\x94\x8c\x08ZoneInfo\x94\x93\x94\x8c\x09_unpickle\x94\x86\x94R\x94\x8c\x0cEurope/Paris\x94K\x01\x86\x94R\x94\x86\x94R\x94.",
];

#[test]
fn samples_decode() {
    for (n, s) in SAMPLES.iter().enumerate() {
        let placeholders = &protocols()[1];
        assert!(placeholders.decode_value(s).is_ok(), "sample {n}: {:?}", placeholders.decode_value(s));
    }
}

#[test]
fn every_truncation_of_a_valid_pickle_is_an_error_not_a_panic() {
    for s in SAMPLES {
        for len in 0..s.len() {
            for p in protocols() {
                // A prefix ending right after STOP could decode; none of these do.
                assert!(p.decode_value(&s[..len]).is_err(), "prefix of {len} bytes decoded");
            }
        }
    }
}

#[test]
fn every_single_byte_change_decodes_or_fails() {
    for s in SAMPLES {
        for at in 0..s.len() {
            for b in [0u8, 1, 0x7f, 0x80, 0xff, b'(', b'.', b'h', b'q'] {
                let mut v = s.to_vec();
                v[at] = b;
                for p in protocols() {
                    let _ = p.decode_value(&v);
                }
            }
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for n in [1_000usize, 100_000] {
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b']', n));
        p.extend(std::iter::repeat_n(b'a', n - 1));
        p.push(b'.');
        let r = Protocol::pickle().decode_value(&p);
        if n > 1000 {
            assert!(r.unwrap_err().to_string().contains("nested deeper"));
        } else {
            assert!(r.is_ok());
        }
        // the same through marks and tuples
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b'(', n));
        p.extend(std::iter::repeat_n(b't', n));
        p.push(b'.');
        let r = Protocol::pickle().decode_value(&p);
        assert_eq!(r.is_ok(), n <= 1000, "{n}: {r:?}");
    }
}

#[test]
fn exponential_sharing_hits_the_budget() {
    // l0 = []; l(n+1) = [ln, ln]: 2**60 nodes once copied out
    let mut p = b"\x80\x02]q\x00".to_vec();
    for _ in 0..60 {
        p.extend_from_slice(b"(h\x00h\x00lq\x00");
    }
    p.push(b'.');
    let err = Protocol::pickle().decode_value(&p).unwrap_err().to_string();
    assert!(err.contains("budget"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        for p in protocols() {
            let _ = p.decode_value(&data);
        }
    }

    #[test]
    fn random_opcode_soup_never_panics(
        data in proptest::collection::vec(
            prop_oneof![
                4 => proptest::sample::select(b"()]}NKMJhqgpIFLSVXCBGRbcs.aeulotd0128\x80\x81\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\n'".to_vec()),
                1 => any::<u8>(),
            ],
            0..120,
        )
    ) {
        for p in protocols() {
            let _ = p.decode_value(&data);
        }
    }

    #[test]
    fn our_encoding_decodes_back(v in value()) {
        for version in PickleOptions::VERSIONS {
            let p = Protocol::Pickle(PickleOptions::default().with_version(version));
            let bytes = p.encode_value(&v).unwrap();
            prop_assert_eq!(p.decode_value(&bytes).unwrap(), v.clone());
        }
    }
}

/// Random values without NaN and with distinct hashable keys, so that `==`
/// is the right comparison.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<i128>()
            .prop_filter_map("beyond i64", |i| i64::try_from(i).is_err().then(|| Value::BigInt(i.into()))),
        any::<f64>().prop_filter("not NaN", |f| !f.is_nan()).prop_map(Value::Float),
        ".*".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bytes),
        proptest::collection::vec(any::<u8>(), 0..10).prop_map(Value::ByteArray),
        python_scalar().prop_map(Value::Object),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Tuple),
            proptest::collection::btree_map(".{0,3}", inner.clone(), 0..6)
                .prop_map(|m| Value::Dict(m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect())),
            proptest::collection::btree_set(any::<i32>(), 0..6)
                .prop_map(|s| Value::Set(s.into_iter().map(|i| Value::Int(i.into())).collect())),
            proptest::collection::btree_set(".{0,3}", 0..6)
                .prop_map(|s| Value::FrozenSet(s.into_iter().map(Value::Str).collect())),
            proptest::collection::btree_map(".{0,3}", inner.clone(), 0..4).prop_map(|m| Value::Object(
                PyObject::OrderedDict(m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect())
            )),
            (proptest::collection::vec(inner.clone(), 0..5), proptest::option::of(0u64..4)).prop_map(
                |(mut items, maxlen)| {
                    if let Some(m) = maxlen {
                        items.truncate(m as usize);
                    }
                    Value::Object(PyObject::Deque { items, maxlen })
                }
            ),
            (
                proptest::option::of(proptest::sample::select(shelf_core::DEFAULT_FACTORIES)),
                proptest::collection::btree_map(any::<i16>(), inner, 0..4)
            )
                .prop_map(|(f, m)| Value::Object(PyObject::DefaultDict {
                    factory: f.map(str::to_owned),
                    pairs: m.into_iter().map(|(k, v)| (Value::Int(k.into()), v)).collect(),
                })),
        ]
    })
}

/// The immutable classes: dates and times with every kind of tzinfo,
/// timedeltas, decimals, UUIDs, complex numbers, fractions and paths. The
/// fold is left out: below protocol 4 CPython itself does not pickle it.
fn python_scalar() -> impl Strategy<Value = PyObject> {
    let date = (1u16..=9999, 1u8..=12, 1u8..=28).prop_map(|(y, m, d)| Date::new(y, m, d).unwrap());
    let delta = (-999_999_999i64..=999_999_999, any::<i32>(), any::<i32>())
        .prop_filter_map("in range", |(d, s, u)| TimeDelta::new(d, s.into(), u.into()).ok());
    let tz = prop_oneof![
        Just(None),
        (-86_399i64..86_400, proptest::option::of("[a-zA-Z+]{0,5}"))
            .prop_map(|(s, name)| Some(TzInfo::Fixed { offset: TimeDelta::new(0, s, 0).unwrap(), name })),
        "[A-Z][a-z]{1,6}/[A-Z][a-z]{1,6}".prop_map(|k| Some(TzInfo::Zone(k))),
    ];
    let time = (0u8..24, 0u8..60, 0u8..60, 0u32..1_000_000, tz)
        .prop_map(|(h, m, s, us, tz)| Time { tz, ..Time::new(h, m, s, us).unwrap() });
    prop_oneof![
        date.clone().prop_map(PyObject::Date),
        time.clone().prop_map(PyObject::Time),
        (date, time).prop_map(|(date, time)| PyObject::DateTime(DateTime { date, time })),
        delta.prop_map(PyObject::TimeDelta),
        "-?[0-9]{1,20}(\\.[0-9]{1,8})?(E[+-][0-9]{1,3})?".prop_map(PyObject::Decimal),
        any::<u128>().prop_map(PyObject::Uuid),
        (any::<i32>(), any::<i32>()).prop_map(|(a, b)| PyObject::Complex { re: a.into(), im: b.into() }),
        (any::<i64>(), 1i64..1000).prop_filter_map("lowest terms", |(n, d)| {
            let g = gcd(n.unsigned_abs(), d as u64);
            (g == 1).then(|| PyObject::Fraction { numerator: n.into(), denominator: d.into() })
        }),
        ("(/|//)?([a-z]{1,3}/){0,3}[a-z]{1,3}", any::<bool>())
            .prop_map(|(path, concrete)| PyObject::Path { concrete, path }),
    ]
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}
