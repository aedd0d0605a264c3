//! The text forms of Python's `Decimal`, `Fraction`, `UUID` and pure
//! paths, as Python writes and reads them.

use num_bigint::BigInt;

use super::PyObject;
use super::datetime::bad;

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
