//! Unit tests of the JSON form: round trips, tags, escaping, keys.

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
        (py("complex", Value::List(vec![Value::Int(1), Value::Float(-2.5)])), r#"{"$complex":[1.0,-2.5]}"#),
        (
            py(
                "ordereddict",
                Value::List(vec![pair(st("b"), Value::Int(1)), pair(Value::Int(2), Value::None)]),
            ),
            r#"{"$ordereddict":[["b",1],[2,null]]}"#,
        ),
        (py("deque", Value::List(vec![Value::Int(1)])), r#"{"$deque":[1]}"#),
        (
            py("deque", Value::Dict(vec![(st("items"), Value::List(vec![])), (st("maxlen"), Value::Int(3))])),
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
        Value::Global { name: "datetime.date".into(), args: Box::new(Value::Tuple(vec![Value::Int(2024)])) },
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
