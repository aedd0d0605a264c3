//! Lossless or refused: before `convert` or `load` writes a value in a
//! protocol, it encodes it, decodes the bytes back and compares, so a value
//! the target protocol cannot hold (a tuple in JSON, an int beyond 64 bits)
//! stops the command with the loss said in words instead of being stored
//! changed.

use num_bigint::BigInt;
use shelf::{Protocol, Value};

/// Why a value cannot be stored in a protocol as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The protocol cannot encode it at all.
    Encode(String),
    /// It encodes, but reads back as something else: what would be lost.
    Loss(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Encode(e) => write!(f, "cannot be encoded: {e}"),
            Refusal::Loss(what) => f.write_str(what),
        }
    }
}

/// Encodes `value` with `protocol`; unless `lossy`, also decodes the bytes
/// back and refuses when they do not give the same value. A protocol that
/// is not self-describing (bincode) cannot be read back as a [`Value`] at
/// all: callers refuse it up front (see [`carries_values`]).
///
/// # Errors
/// [`Refusal::Encode`] when encoding fails, [`Refusal::Loss`] naming the
/// first difference.
pub fn encode(protocol: Protocol, value: &Value, lossy: bool) -> Result<Vec<u8>, Refusal> {
    let bytes = protocol.encode_value(value).map_err(|e| Refusal::Encode(crate::error::chain(&*e)))?;
    if lossy || !protocol.is_self_describing() {
        return Ok(bytes);
    }
    let back = protocol.decode_value(&bytes).map_err(|e| {
        let e = crate::error::chain(&*e);
        Refusal::Loss(format!("it would not read back with protocol '{}' ({e})", protocol.name()))
    })?;
    match first_loss(value, &back, &mut String::new()) {
        None => Ok(bytes),
        Some(loss) => Err(Refusal::Loss(loss)),
    }
}

/// Whether values written in `protocol` can be read back without Rust
/// types, which is what storing a dynamic value needs.
pub fn carries_values(protocol: Protocol) -> bool {
    protocol.is_self_describing()
}

/// The message for a target protocol that cannot carry dynamic values.
pub fn not_self_describing(protocol: Protocol) -> String {
    format!(
        "protocol '{}' is not self-describing: its bytes cannot be read back without the Rust types they \
         were written from, so what is stored could never be read as the value it was (pass --lossy to \
         write it anyway)",
        protocol.name()
    )
}

fn same_int(a: &Value, b: &Value) -> Option<bool> {
    let big = |v: &Value| match v {
        Value::Int(i) => Some(BigInt::from(*i)),
        Value::BigInt(b) => Some(b.clone()),
        _ => None,
    };
    Some(big(a)? == big(b)?)
}

/// The first place where `b` (read back) differs from `a` (the original),
/// described in words; `at` is the path inside the value so far.
fn first_loss(a: &Value, b: &Value, at: &mut String) -> Option<String> {
    let here = |what: String, at: &str| {
        if at.is_empty() { what } else { format!("{what} (at value{at})") }
    };
    if let Some(same) = same_int(a, b) {
        return (!same).then(|| here(format!("{} would become {}", describe(a), became(a, b)), at));
    }
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            let same = x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
            (!same).then(|| here(format!("{} would become {}", describe(a), became(a, b)), at))
        }
        (Value::None, Value::None) => None,
        (Value::Bool(x), Value::Bool(y)) if x == y => None,
        (Value::Str(x), Value::Str(y)) if x == y => None,
        (Value::Bytes(x), Value::Bytes(y)) | (Value::ByteArray(x), Value::ByteArray(y)) if x == y => None,
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => seq_loss(a, x, y, at),
        (Value::Set(x), Value::Set(y)) | (Value::FrozenSet(x), Value::FrozenSet(y)) => {
            // A set's order means nothing: compare in order first (the
            // usual case), then as a multiset.
            if x.len() == y.len() && unordered_same(x, y) { None } else { seq_loss(a, x, y, at) }
        }
        (Value::Dict(x), Value::Dict(y)) => {
            if x.len() != y.len() {
                return Some(here(
                    format!("a dict of {} items would become one of {} items", x.len(), y.len()),
                    at,
                ));
            }
            for ((ka, va), (kb, vb)) in x.iter().zip(y) {
                let len = at.len();
                if let Some(l) = first_loss(ka, kb, &mut String::new()) {
                    return Some(here(format!("the dict key {}: {l}", short(ka)), at));
                }
                at.push_str(&format!("[{}]", short(ka)));
                let loss = first_loss(va, vb, at);
                at.truncate(len);
                if loss.is_some() {
                    return loss;
                }
            }
            None
        }
        (Value::Global { name: na, args: aa }, Value::Global { name: nb, args: ab }) if na == nb => {
            first_loss(aa, ab, at)
        }
        // Python's classes (datetime, Decimal, ...) and kept pickles: equal
        // or not (their floats are never NaN in practice; a NaN complex
        // reads as a loss, never as silently the same).
        (Value::Object(_), Value::Object(_)) | (Value::Opaque(_), Value::Opaque(_)) if a == b => None,
        _ => Some(here(format!("{} would become {}", describe(a), became(a, b)), at)),
    }
}

fn unordered_same(x: &[Value], y: &[Value]) -> bool {
    let mut used = vec![false; y.len()];
    x.iter().all(|item| {
        let found = y
            .iter()
            .enumerate()
            .find(|(i, other)| !used[*i] && first_loss(item, other, &mut String::new()).is_none());
        match found {
            Some((i, _)) => {
                used[i] = true;
                true
            }
            None => false,
        }
    })
}

fn seq_loss(whole: &Value, x: &[Value], y: &[Value], at: &mut String) -> Option<String> {
    if x.len() != y.len() {
        let what = format!(
            "{} of {} items would become one of {} items",
            article(whole.type_name()),
            x.len(),
            y.len()
        );
        return Some(if at.is_empty() { what } else { format!("{what} (at value{at})") });
    }
    for (i, (p, q)) in x.iter().zip(y).enumerate() {
        let len = at.len();
        at.push_str(&format!("[{i}]"));
        let loss = first_loss(p, q, at);
        at.truncate(len);
        if loss.is_some() {
            return loss;
        }
    }
    None
}

fn article(type_name: &str) -> String {
    match type_name {
        "bytes" => "bytes".to_owned(),
        "NoneType" => "None".to_owned(),
        "int" => "an int".to_owned(),
        t => format!("a {t}"),
    }
}

/// What `a` would become, in words: `a list of integers` for bytes read
/// back as a list (JSON), else as [`describe`].
fn became(a: &Value, b: &Value) -> String {
    match (a, b) {
        (Value::Bytes(_) | Value::ByteArray(_), Value::List(_)) => "a list of integers".to_owned(),
        _ => describe(b),
    }
}

/// A value in words: `the int 2**100`, `the float nan`, `a tuple`, `bytes`.
fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => format!("the int {i}"),
        Value::BigInt(b) => format!("the int {}", show_big(b)),
        Value::Float(f) => format!("the float {}", show_float(*f)),
        Value::Str(_) => format!("the str {}", short(v)),
        Value::Bool(b) => format!("the bool {}", if *b { "True" } else { "False" }),
        other => article(other.type_name()),
    }
}

fn show_float(f: f64) -> String {
    if f.is_nan() {
        "nan".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".to_owned() } else { "-inf".to_owned() }
    } else {
        format!("{f:?}")
    }
}

/// A big int as a reader would recognise it: `2**100` for a power of two,
/// else its digits (shortened when long).
fn show_big(b: &BigInt) -> String {
    use num_bigint::Sign;
    let (sign, mag) = (b.sign(), b.magnitude());
    let bits = mag.bits();
    if bits > 64 && mag.count_ones() == 1 {
        return format!("{}2**{}", if sign == Sign::Minus { "-" } else { "" }, bits - 1);
    }
    let digits = b.to_string();
    if digits.len() > 40 {
        format!("{}... ({} digits)", &digits[..20], digits.trim_start_matches('-').len())
    } else {
        digits
    }
}

/// A short form of a value for messages (dict keys, strings).
fn short(v: &Value) -> String {
    match v {
        Value::Str(s) => {
            let cut: String = s.chars().take(40).collect();
            if cut.len() < s.len() { format!("{cut:?}...") } else { format!("{s:?}") }
        }
        Value::Int(i) => i.to_string(),
        Value::BigInt(b) => show_big(b),
        Value::Float(f) => show_float(*f),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
        Value::None => "None".to_owned(),
        other => article(other.type_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(p: Protocol, v: Value) -> String {
        match encode(p, &v, false) {
            Err(Refusal::Loss(l)) => l,
            other => panic!("expected a loss for {v:?}, got {other:?}"),
        }
    }

    #[test]
    fn json_losses_are_said_in_words() {
        let big = Value::BigInt(BigInt::from(1u8) << 100);
        assert!(loss(Protocol::Json, big).starts_with("the int 2**100 would become"));
        assert_eq!(loss(Protocol::Json, Value::Tuple(vec![Value::Int(1)])), "a tuple would become a list");
        assert_eq!(loss(Protocol::Json, Value::Bytes(vec![1, 2])), "bytes would become a list of integers");
        assert_eq!(loss(Protocol::Json, Value::Set(vec![Value::Int(1)])), "a set would become a list");
        assert_eq!(loss(Protocol::Json, Value::Float(f64::NAN)), "the float nan would become None");
        let nested = Value::List(vec![Value::Int(1), Value::Tuple(vec![])]);
        assert_eq!(loss(Protocol::Json, nested), "a tuple would become a list (at value[1])");
    }

    #[test]
    fn what_survives_is_accepted() {
        for v in [
            Value::Dict(vec![(Value::from("a"), Value::List(vec![Value::Int(1), Value::Float(1.5)]))]),
            Value::Float(-0.0),
            Value::Str("é".into()),
        ] {
            assert!(encode(Protocol::Json, &v, false).is_ok(), "{v:?}");
        }
        for v in [
            Value::Tuple(vec![Value::BigInt(BigInt::from(1u8) << 100), Value::Bytes(vec![0])]),
            Value::Float(f64::NAN),
            Value::Set(vec![Value::Int(2), Value::Int(1)]),
        ] {
            assert!(encode(Protocol::pickle(), &v, false).is_ok(), "{v:?}");
        }
        // --lossy writes what the protocol makes of it.
        assert!(encode(Protocol::Json, &Value::Tuple(vec![]), true).is_ok());
    }
}
