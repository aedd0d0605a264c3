//! The pickle protocol against the real CPython: pickles written by Python 3
//! (protocols 0 to 5) and Python 2.7 (0 to 2) decode to the expected
//! [`Value`]s, and ours load in both, equal and of the same types. Cases
//! print why they skip when an interpreter is missing.

use std::io::Write;
use std::process::{Command, Stdio};

use num_bigint::BigInt;
use shelf_core::{PickleOptions, Protocol, Value};

// ---------------------------------------------------------------- helpers

fn skip(why: &str) {
    let _ = std::io::stderr().write_all(format!("skipped: {why}\n").as_bytes());
}

/// Runs `program args... -c script` with `input` on stdin; `None` if the
/// interpreter cannot be started.
fn run(program: &[&str], env: &[(&str, &str)], script: &str, input: &str) -> Option<String> {
    let mut cmd = Command::new(program[0]);
    cmd.args(&program[1..]).arg("-c").arg(script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().ok()?;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn python3(script: &str, input: &str) -> Option<String> {
    let out = run(&["python3"], &[], script, input);
    if out.is_none() {
        skip("python3 not found");
    }
    out
}

/// CPython 2.7 through pyenv, if it is installed.
fn python2(script: &str, input: &str) -> Option<String> {
    let probe = Command::new("pyenv")
        .args(["exec", "python", "-c", "import sys; print(sys.version_info[0])"])
        .env("PYENV_VERSION", "2.7.18")
        .output();
    match probe {
        Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "2" => {}
        _ => {
            skip("CPython 2.7 not available (PYENV_VERSION=2.7.18 pyenv exec python)");
            return None;
        }
    }
    run(&["pyenv", "exec", "python"], &[("PYENV_VERSION", "2.7.18")], script, input)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn v3() -> Protocol {
    Protocol::pickle()
}

fn v2() -> Protocol {
    Protocol::Pickle(PickleOptions::v2())
}

/// Equality that treats NaN as equal to NaN and sets as unordered.
fn same(a: &Value, b: &Value) -> bool {
    let all = |x: &[Value], y: &[Value]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q));
    let unordered =
        |x: &[Value], y: &[Value]| x.len() == y.len() && x.iter().all(|p| y.iter().any(|q| same(p, q)));
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => (x.is_nan() && y.is_nan()) || x == y,
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => all(x, y),
        (Value::Set(x), Value::Set(y)) | (Value::FrozenSet(x), Value::FrozenSet(y)) => unordered(x, y),
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------- the table

fn s(x: &str) -> Value {
    Value::Str(x.to_owned())
}
fn i(x: i64) -> Value {
    Value::Int(x)
}
fn big(x: &str) -> Value {
    Value::BigInt(x.parse::<BigInt>().unwrap())
}
fn list(x: Vec<Value>) -> Value {
    Value::List(x)
}
fn tuple(x: Vec<Value>) -> Value {
    Value::Tuple(x)
}

/// Python 3 expressions and the values they must decode to.
fn table() -> Vec<(&'static str, Value)> {
    vec![
        ("None", Value::None),
        ("True", Value::Bool(true)),
        ("False", Value::Bool(false)),
        ("0", i(0)),
        ("-1", i(-1)),
        ("255", i(255)),
        ("256", i(256)),
        ("65535", i(65535)),
        ("65536", i(65536)),
        ("-2**31", i(-(1 << 31))),
        ("2**31", i(1 << 31)),
        ("2**63-1", i(i64::MAX)),
        ("-2**63", i(i64::MIN)),
        ("2**63", big("9223372036854775808")),
        ("-2**63-1", big("-9223372036854775809")),
        ("10**40", big("10000000000000000000000000000000000000000")),
        ("-(10**40)", big("-10000000000000000000000000000000000000000")),
        ("-128", i(-128)),
        ("-2**2000", Value::BigInt(-(BigInt::from(1) << 2000usize))),
        ("1.5", Value::Float(1.5)),
        ("-0.0", Value::Float(-0.0)),
        ("float('nan')", Value::Float(f64::NAN)),
        ("float('inf')", Value::Float(f64::INFINITY)),
        ("float('-inf')", Value::Float(f64::NEG_INFINITY)),
        ("1e300", Value::Float(1e300)),
        ("''", s("")),
        ("'é☃日本'", s("é☃日本")),
        ("'a\\nb\\\\u0041\\x00'", s("a\nb\\u0041\0")),
        ("'😀'", s("😀")),
        ("'x' * 300", s(&"x".repeat(300))),
        ("b''", Value::Bytes(vec![])),
        ("b'\\x00\\xff'", Value::Bytes(vec![0, 255])),
        ("b'a'", Value::Bytes(b"a".to_vec())),
        ("b'y' * 300", Value::Bytes(vec![b'y'; 300])),
        ("bytearray(b'ab')", Value::ByteArray(b"ab".to_vec())),
        ("bytearray()", Value::ByteArray(vec![])),
        ("bytearray(b'\\xff')", Value::ByteArray(vec![255])),
        ("[]", list(vec![])),
        ("[1,[2,[3]]]", list(vec![i(1), list(vec![i(2), list(vec![i(3)])])])),
        ("()", tuple(vec![])),
        ("(1,)", tuple(vec![i(1)])),
        ("(1,2)", tuple(vec![i(1), i(2)])),
        ("(1,2,3)", tuple(vec![i(1), i(2), i(3)])),
        ("(1,2,3,4)", tuple(vec![i(1), i(2), i(3), i(4)])),
        ("{}", Value::Dict(vec![])),
        (
            "{'a': 1, 2: 'b', (1,2): None}",
            Value::Dict(vec![(s("a"), i(1)), (i(2), s("b")), (tuple(vec![i(1), i(2)]), Value::None)]),
        ),
        ("set()", Value::Set(vec![])),
        ("{1,2}", Value::Set(vec![i(1), i(2)])),
        ("frozenset({3})", Value::FrozenSet(vec![i(3)])),
        ("frozenset()", Value::FrozenSet(vec![])),
        (
            "{'k': [(1, {'x': b'\\x01'}), {frozenset({1})}], 'e': ({}, [], ())}",
            Value::Dict(vec![
                (
                    s("k"),
                    list(vec![
                        tuple(vec![i(1), Value::Dict(vec![(s("x"), Value::Bytes(vec![1]))])]),
                        Value::Set(vec![Value::FrozenSet(vec![i(1)])]),
                    ]),
                ),
                (s("e"), tuple(vec![Value::Dict(vec![]), list(vec![]), tuple(vec![])])),
            ]),
        ),
        (
            "(lambda x: [x, x, (x,)])([1, 'two'])",
            list(vec![
                list(vec![i(1), s("two")]),
                list(vec![i(1), s("two")]),
                tuple(vec![list(vec![i(1), s("two")])]),
            ]),
        ),
        (
            "(lambda b: [b, b, bytearray(b), b'b'])(b'abc')",
            list(vec![
                Value::Bytes(b"abc".to_vec()),
                Value::Bytes(b"abc".to_vec()),
                Value::ByteArray(b"abc".to_vec()),
                Value::Bytes(b"b".to_vec()),
            ]),
        ),
        ("['a', 'a', '', '', b'', b'']", {
            let e = Value::Bytes(vec![]);
            list(vec![s("a"), s("a"), s(""), s(""), e.clone(), e])
        }),
        ("list(range(1001))", list((0..1001).map(i).collect())),
        ("{i: None for i in range(1000)}", Value::Dict((0..1000).map(|k| (i(k), Value::None)).collect())),
        ("{i: i for i in range(2500)}", Value::Dict((0..2500).map(|k| (i(k), i(k))).collect())),
        ("[str(i) for i in range(300)]", list((0..300).map(|k| s(&k.to_string())).collect())),
    ]
}

fn exprs_input(rows: &[(&str, Value)]) -> String {
    rows.iter().map(|(e, _)| hex(e.as_bytes()) + "\n").collect()
}

// ---------------------------------------------------------------- Python 3

const DUMP3: &str = r#"
import sys, pickle
for line in sys.stdin:
    v = eval(bytes.fromhex(line.strip()).decode())
    print(' '.join(pickle.dumps(v, p).hex() for p in range(6)))
"#;

#[test]
fn python3_pickles_of_every_protocol_decode_to_the_expected_value() {
    let rows = table();
    let Some(out) = python3(DUMP3, &exprs_input(&rows)) else { return };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), rows.len());
    let mut failures = Vec::new();
    for ((expr, want), line) in rows.iter().zip(lines) {
        for (proto, h) in line.split(' ').enumerate() {
            match v3().decode_value(&unhex(h)) {
                Ok(got) if same(&got, want) => {}
                other => failures.push(format!("{expr} protocol {proto}: {other:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Loads `(index, protocol, pickle)` lines and checks, with types, the
/// value against the expression; prints `index protocol loaded same-bytes`.
const LOAD3: &str = r#"
import sys, pickle, math
def eq(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(eq(k1, k2) and eq(v1, v2) for (k1, v1), (k2, v2) in zip(a.items(), b.items()))
    return a == b
exprs = []
for line in sys.stdin:
    parts = line.split()
    if parts[0] == 'e':
        exprs.append(eval(bytes.fromhex(parts[1]).decode()))
        continue
    i, p, data = int(parts[0]), int(parts[1]), bytes.fromhex(parts[2]) if len(parts) > 2 else b''
    v = exprs[i]
    print(i, p, int(eq(v, pickle.loads(data))), int(pickle.dumps(v, p) == data))
"#;

/// Expressions whose CPython pickle we do not match byte for byte, with why.
/// CPython writes a memo get for the second use of one object; a `Value`
/// tree has no identity, so we write the copy out again (Python still loads
/// an equal value).
const NOT_BYTE_IDENTICAL: &[(&str, &str)] = &[
    ("(lambda x: [x, x, (x,)])([1, 'two'])", "shared reference"),
    ("(lambda b: [b, b, bytearray(b), b'b'])(b'abc')", "shared reference"),
];

#[test]
fn our_protocol_2_and_3_pickles_load_in_python3_equal_and_byte_identical() {
    let rows = table();
    let mut input: String = rows.iter().map(|(e, _)| format!("e {}\n", hex(e.as_bytes()))).collect();
    for (n, (_, v)) in rows.iter().enumerate() {
        input += &format!("{n} 2 {}\n", hex(&v2().encode_value(v).unwrap()));
        input += &format!("{n} 3 {}\n", hex(&v3().encode_value(v).unwrap()));
    }
    let Some(out) = python3(LOAD3, &input) else { return };
    let mut failures = Vec::new();
    let mut differ = Vec::new();
    for line in out.lines() {
        let f: Vec<usize> = line.split(' ').map(|x| x.parse().unwrap()).collect();
        let expr = rows[f[0]].0;
        if f[2] != 1 {
            failures.push(format!("{expr} protocol {}: loads to another value", f[1]));
        }
        if f[3] != 1 && !NOT_BYTE_IDENTICAL.iter().any(|(e, _)| *e == expr) {
            differ.push(format!("{expr} protocol {}", f[1]));
        }
    }
    assert_eq!(out.lines().count(), rows.len() * 2);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(differ.is_empty(), "not byte-identical to pickle.dumps:\n{}", differ.join("\n"));
}

#[test]
fn every_cpython_3_version_loads_our_pickles() {
    let rows = table();
    let mut input: String = rows.iter().map(|(e, _)| format!("e {}\n", hex(e.as_bytes()))).collect();
    for (n, (_, v)) in rows.iter().enumerate() {
        input += &format!("{n} 2 {}\n", hex(&v2().encode_value(v).unwrap()));
        input += &format!("{n} 3 {}\n", hex(&v3().encode_value(v).unwrap()));
    }
    let mut tried = 0;
    for version in ["3.6.15", "3.7.16", "3.8.18", "3.9.18", "3.10.13", "3.12.1", "3.13.0"] {
        let ok = Command::new("pyenv")
            .args(["exec", "python", "-c", "pass"])
            .env("PYENV_VERSION", version)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            skip(&format!("CPython {version} not available through pyenv"));
            continue;
        }
        tried += 1;
        let out = run(&["pyenv", "exec", "python"], &[("PYENV_VERSION", version)], LOAD3, &input).unwrap();
        for line in out.lines() {
            let f: Vec<usize> = line.split(' ').map(|x| x.parse().unwrap()).collect();
            assert_eq!(
                f[2], 1,
                "CPython {version}: {} protocol {} loads to another value",
                rows[f[0]].0, f[1]
            );
        }
    }
    if tried == 0 {
        skip("no other CPython 3 version available");
    }
}

// ---------------------------------------------------------------- Python 2.7

/// Python 2 expressions, the values their pickles decode to, and whether
/// our encoding of that value loads back in 2.7 as the same type (a
/// Python 2 `str` of UTF-8 decodes to `Str`, which we write as `unicode`).
fn table2() -> Vec<(&'static str, Value, bool)> {
    vec![
        ("None", Value::None, true),
        ("True", Value::Bool(true), true),
        ("False", Value::Bool(false), true),
        ("0", i(0), true),
        ("-1", i(-1), true),
        ("255", i(255), true),
        ("256", i(256), true),
        ("65535", i(65535), true),
        ("65536", i(65536), true),
        ("-2**31", i(-(1 << 31)), true),
        ("2**31", i(1 << 31), true),
        ("2**63", big("9223372036854775808"), true),
        ("-2**63-1", big("-9223372036854775809"), true),
        ("10**40", big("10000000000000000000000000000000000000000"), true),
        ("-(10**40)", big("-10000000000000000000000000000000000000000"), true),
        ("1.5", Value::Float(1.5), true),
        ("float('nan')", Value::Float(f64::NAN), true),
        ("float('inf')", Value::Float(f64::INFINITY), true),
        ("u''", s(""), true),
        ("u'\\xe9\\u2603\\u65e5\\u672c'", s("é☃日本"), true),
        ("u'\\U0001f600 \\\\u0041'", s("😀 \\u0041"), true),
        ("'\\x00\\xff'", Value::Bytes(vec![0, 255]), true),
        ("'abc'", s("abc"), false),
        ("'it\\'s \"q\"\\n'", s("it's \"q\"\n"), false),
        ("bytearray('ab')", Value::ByteArray(b"ab".to_vec()), true),
        ("bytearray('\\xff')", Value::ByteArray(vec![255]), true),
        ("[]", list(vec![]), true),
        ("[1,[2,[3]]]", list(vec![i(1), list(vec![i(2), list(vec![i(3)])])]), true),
        ("()", tuple(vec![]), true),
        ("(1,)", tuple(vec![i(1)]), true),
        ("(1,2)", tuple(vec![i(1), i(2)]), true),
        ("(1,2,3)", tuple(vec![i(1), i(2), i(3)]), true),
        ("(1,2,3,4)", tuple(vec![i(1), i(2), i(3), i(4)]), true),
        ("{}", Value::Dict(vec![]), true),
        ("{u'a': 1}", Value::Dict(vec![(s("a"), i(1))]), true),
        ("set()", Value::Set(vec![]), true),
        ("set([1,2])", Value::Set(vec![i(1), i(2)]), true),
        ("frozenset([3])", Value::FrozenSet(vec![i(3)]), true),
        (
            "(lambda x: [x, x])([1, u'two'])",
            list(vec![list(vec![i(1), s("two")]), list(vec![i(1), s("two")])]),
            true,
        ),
    ]
}

const DUMP2: &str = r#"
import sys, pickle, binascii
for line in sys.stdin:
    v = eval(binascii.unhexlify(line.strip()))
    print(' '.join(binascii.hexlify(pickle.dumps(v, p)) for p in range(3)))
"#;

#[test]
fn python2_pickles_of_protocols_0_to_2_decode_to_the_expected_value() {
    let rows = table2();
    let input: String = rows.iter().map(|(e, _, _)| hex(e.as_bytes()) + "\n").collect();
    let Some(out) = python2(DUMP2, &input) else { return };
    let mut failures = Vec::new();
    for ((expr, want, _), line) in rows.iter().zip(out.lines()) {
        for (proto, h) in line.split(' ').enumerate() {
            match v2().decode_value(&unhex(h)) {
                Ok(got) if same(&got, want) => {}
                other => failures.push(format!("{expr} protocol {proto}: {other:?}")),
            }
        }
    }
    assert_eq!(out.lines().count(), rows.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const LOAD2: &str = r#"
import sys, pickle, math, binascii
def eq(a, b):
    num = (int, long)
    if not (type(a) is type(b) or (isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool))):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(k in b and eq(v, b[k]) for k, v in a.items())
    return a == b
for line in sys.stdin:
    expr, data = line.split()
    v = eval(binascii.unhexlify(expr))
    print(int(eq(v, pickle.loads(binascii.unhexlify(data)))))
"#;

#[test]
fn python2_loads_our_protocol_2_pickles() {
    let rows: Vec<_> = table2().into_iter().filter(|r| r.2).collect();
    let input: String = rows
        .iter()
        .map(|(e, v, _)| format!("{} {}\n", hex(e.as_bytes()), hex(&v2().encode_value(v).unwrap())))
        .collect();
    let Some(out) = python2(LOAD2, &input) else { return };
    let failures: Vec<_> =
        rows.iter().zip(out.lines()).filter(|(_, ok)| *ok != "1").map(|((e, _, _), _)| *e).collect();
    assert_eq!(out.lines().count(), rows.len());
    assert!(failures.is_empty(), "CPython 2.7 loads another value for: {failures:?}");
}

// ---------------------------------------------------------------- globals

const DUMP_DATE: &str = r#"
import pickle, datetime
print(' '.join(pickle.dumps(datetime.date(2020, 1, 1), p).hex() for p in range(6)))
"#;

#[test]
fn a_pickled_date_is_a_date_in_every_protocol() {
    let Some(out) = python3(DUMP_DATE, "") else { return };
    let date = Value::Object(shelf_core::PyObject::Date(shelf_core::Date::new(2020, 1, 1).unwrap()));
    for (proto, h) in out.split_whitespace().enumerate() {
        let data = unhex(h);
        assert_eq!(v3().decode_value(&data).unwrap(), date, "protocol {proto}");
        assert_eq!(v3().decode::<String>(&data).unwrap(), "2020-01-01", "typed, protocol {proto}");
    }
}

const DUMP_SYSTEM: &str = r#"
import pickle, os, sys
class Evil:
    def __reduce__(self):
        return (os.system, ('touch ' + sys.argv[1],))
print(' '.join(pickle.dumps(Evil(), p).hex() for p in range(6)))
"#;

#[test]
fn a_pickle_calling_os_system_is_refused_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let Some(out) =
        run(&["python3"], &[], &format!("import sys; sys.argv = ['', {:?}]\n{DUMP_SYSTEM}", marker), "")
    else {
        return skip("python3 not found");
    };
    let placeholders = Protocol::Pickle(PickleOptions::default().with_placeholder_globals());
    let hand = format!("cos\nsystem\n(S'touch {}'\ntR.", marker.display()).into_bytes();
    for (proto, data) in out.split_whitespace().map(unhex).chain([hand]).enumerate() {
        let err = v3().decode_value(&data).unwrap_err().to_string();
        assert!(err.contains("system"), "pickle {proto}: {err}");
        assert!(err.contains("os.system") || err.contains("posix.system"), "pickle {proto}: {err}");
        match placeholders.decode_value(&data).unwrap() {
            Value::Opaque(o) => {
                assert!(o.class().ends_with(".system"), "{o:?}");
                assert_eq!(o.bytes, data, "kept byte for byte");
            }
            other => panic!("pickle {proto}: {other:?}"),
        }
    }
    assert!(!marker.exists(), "os.system was called");
}
