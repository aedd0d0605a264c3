//! The text of a `.dir` line: writing it exactly as CPython does, and
//! reading it as `ast.literal_eval` would, without evaluating anything.
//!
//! CPython writes each entry as `"%r, %r\n" % (key.decode('latin-1'), (pos,
//! siz))` and reads it back with `ast.literal_eval(line.rstrip())`. The
//! writer here reproduces `repr()` of a Latin-1 string byte for byte; the
//! reader accepts the subset of Python literal syntax such a line can hold
//! (string literals with any quoting and escapes, a two-int tuple, optional
//! outer parentheses and trailing commas) and rejects everything else with
//! a reason, so a line of code is an error, never run.

/// Appends one `.dir` line (with its `\n`) for `key` at `(pos, siz)`.
pub fn write_line(out: &mut Vec<u8>, key: &[u8], pos: u64, siz: u64) {
    write_repr(out, key);
    out.extend_from_slice(b", (");
    write_decimal(out, pos);
    out.extend_from_slice(b", ");
    write_decimal(out, siz);
    out.extend_from_slice(b")\n");
}

/// `n` in decimal, as Python's `repr` of an int writes it. By hand, not
/// through `to_string`: a commit writes two per key, and the formatter's
/// allocation and machinery cost more than the rest of the line.
fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Python's `repr()` of `key` decoded as Latin-1, encoded back as Latin-1
/// (every output character is below 256, so one byte each).
pub fn write_repr(out: &mut Vec<u8>, key: &[u8]) {
    // The usual key needs no escape at all: copied whole, in single quotes.
    if key.iter().all(|&b| matches!(b, 0x20..=0x7e) && !matches!(b, b'\\' | b'\'')) {
        out.push(b'\'');
        out.extend_from_slice(key);
        out.push(b'\'');
        return;
    }
    // repr() picks double quotes only when that saves escaping: the text
    // has a single quote and no double quote.
    let quote = if key.contains(&b'\'') && !key.contains(&b'"') { b'"' } else { b'\'' };
    out.push(quote);
    for &b in key {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ if b == quote => {
                out.push(b'\\');
                out.push(b);
            }
            // Not printable in Latin-1 per str.isprintable(): C0 controls,
            // DEL, C1 controls, NBSP (a separator) and SOFT HYPHEN (a format
            // character).
            0x00..=0x1f | 0x7f..=0xa0 | 0xad => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            _ => out.push(b),
        }
    }
    out.push(quote);
}

/// Whitespace that Python's `str.rstrip()` removes, for Latin-1 text.
fn is_py_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ' | 0x85 | 0xa0)
}

/// Splits `.dir` text into lines the way Python's text mode does (universal
/// newlines: `\n`, `\r\n` and a lone `\r` each end a line). Yields
/// `(line_number, line)` from 1, without the line ending.
pub fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut rest = text;
    let mut number = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        number += 1;
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r').unwrap_or(rest.len());
        let line = &rest[..end];
        let mut next = end;
        if next < rest.len() {
            next += if rest[next] == b'\r' && rest.get(next + 1) == Some(&b'\n') { 2 } else { 1 };
        }
        rest = &rest[next..];
        Some((number, line))
    })
}

/// One parsed `.dir` line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// Nothing but whitespace (CPython fails on it; skipping it loses nothing).
    Blank,
    /// `key, (pos, siz)`.
    Entry {
        /// The key's bytes (the string's Latin-1 encoding).
        key: Vec<u8>,
        /// Offset of the value in `.dat`.
        pos: u64,
        /// Length of the value.
        siz: u64,
    },
}

/// The common shape, parsed without allocating: `'key', (pos, siz)` as
/// CPython writes it for a key with no escapes. `None` sends the line to
/// [`parse_line`], which handles everything else.
pub fn parse_simple(line: &[u8]) -> Option<(&[u8], u64, u64)> {
    let rest = line.strip_prefix(b"'")?;
    let close = memchr(b'\'', rest)?;
    let key = &rest[..close];
    if key.contains(&b'\\') {
        return None;
    }
    let rest = rest[close + 1..].strip_prefix(b", (")?;
    let comma = memchr(b',', rest)?;
    let pos = decimal(&rest[..comma])?;
    let rest = rest[comma + 1..].strip_prefix(b" ")?;
    let rest = rest.strip_suffix(b")")?;
    let siz = decimal(rest)?;
    Some((key, pos, siz))
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
}

/// Parses one line (without its ending) as `ast.literal_eval(line.rstrip())`
/// would, for the shapes a `.dir` line can take. The error says what is
/// wrong, for a message that adds the file and line number.
pub fn parse_line(line: &[u8]) -> Result<Line, String> {
    let end = line.iter().rposition(|&b| !is_py_space(b)).map_or(0, |i| i + 1);
    let mut p = Parser { s: &line[..end], i: 0 };
    // literal_eval strips leading spaces and tabs only.
    while p.i < p.s.len() && matches!(p.s[p.i], b' ' | b'\t') {
        p.i += 1;
    }
    if p.i == p.s.len() {
        return Ok(Line::Blank);
    }
    p.skip_ws();
    let outer = p.eat(b'(');
    p.skip_ws();
    let key = p.string()?;
    p.skip_ws();
    p.expect(b',')?;
    p.skip_ws();
    p.expect(b'(')?;
    p.skip_ws();
    let pos = p.int()?;
    p.skip_ws();
    p.expect(b',')?;
    p.skip_ws();
    let siz = p.int()?;
    p.skip_ws();
    p.eat(b',');
    p.skip_ws();
    p.expect(b')')?;
    p.skip_ws();
    p.eat(b',');
    p.skip_ws();
    if outer {
        p.expect(b')')?;
        p.skip_ws();
    }
    if p.i != p.s.len() {
        return Err(format!("unexpected text at column {}: not a `key, (pos, size)` entry", p.i + 1));
    }
    Ok(Line::Entry { key, pos, siz })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        // Python's tokenizer separates tokens with spaces, tabs and form feeds.
        while matches!(self.peek(), Some(b' ' | b'\t' | 0x0c)) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at column {}", char::from(c), self.i + 1))
        }
    }

    /// One or more adjacent string literals (Python concatenates them).
    fn string(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut any = false;
        loop {
            let start = self.i;
            let mut raw = false;
            // Prefixes literal_eval accepts for str: u, r (any case), not b or f.
            while let Some(c) = self.peek() {
                match c {
                    b'u' | b'U' => self.i += 1,
                    b'r' | b'R' => {
                        raw = true;
                        self.i += 1;
                    }
                    _ => break,
                }
                if self.i - start > 2 {
                    break;
                }
            }
            let Some(q @ (b'\'' | b'"')) = self.peek() else {
                if any {
                    self.i = start;
                    return Ok(out);
                }
                return Err(format!("expected a string literal at column {}", start + 1));
            };
            let prefix = &self.s[start..self.i];
            if prefix.len() > 1 || (prefix.len() == 1 && !matches!(prefix[0], b'u' | b'U' | b'r' | b'R')) {
                return Err(format!("unsupported string prefix at column {}", start + 1));
            }
            let triple = self.s[self.i..].starts_with(&[q, q, q]);
            self.i += if triple { 3 } else { 1 };
            self.string_body(q, triple, raw, &mut out)?;
            any = true;
            self.skip_ws();
        }
    }

    fn string_body(&mut self, q: u8, triple: bool, raw: bool, out: &mut Vec<u8>) -> Result<(), String> {
        loop {
            let Some(c) = self.peek() else {
                return Err("unterminated string literal".to_owned());
            };
            if c == q && (!triple || self.s[self.i..].starts_with(&[q, q, q])) {
                self.i += if triple { 3 } else { 1 };
                return Ok(());
            }
            self.i += 1;
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                return Err("unterminated string literal".to_owned());
            };
            self.i += 1;
            if raw {
                out.extend_from_slice(&[b'\\', e]);
                continue;
            }
            let code: u32 = match e {
                b'\\' | b'\'' | b'"' => e.into(),
                b'a' => 7,
                b'b' => 8,
                b'f' => 0x0c,
                b'n' => b'\n'.into(),
                b'r' => b'\r'.into(),
                b't' => b'\t'.into(),
                b'v' => 0x0b,
                b'0'..=b'7' => {
                    let mut v = u32::from(e - b'0');
                    for _ in 0..2 {
                        match self.peek() {
                            Some(d @ b'0'..=b'7') => {
                                v = v * 8 + u32::from(d - b'0');
                                self.i += 1;
                            }
                            _ => break,
                        }
                    }
                    v
                }
                b'x' => self.hex(2)?,
                b'u' => self.hex(4)?,
                b'U' => self.hex(8)?,
                b'N' => return Err("\\N{...} escapes are not supported in a .dir key".to_owned()),
                // Python keeps an unknown escape as it is (with a warning).
                _ => {
                    out.extend_from_slice(&[b'\\', e]);
                    continue;
                }
            };
            // CPython encodes the key as Latin-1, which fails above 255.
            let byte = u8::try_from(code)
                .map_err(|_| format!("character U+{code:04X} in a key cannot be encoded as Latin-1"))?;
            out.push(byte);
        }
    }

    fn hex(&mut self, digits: usize) -> Result<u32, String> {
        let text = self.s.get(self.i..self.i + digits).ok_or("truncated escape in a string literal")?;
        let text = std::str::from_utf8(text).map_err(|_| "bad escape in a string literal")?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("bad escape in a string literal at column {}", self.i + 1));
        }
        self.i += digits;
        u32::from_str_radix(text, 16).map_err(|e| e.to_string())
    }

    /// A non-negative integer literal: decimal, `0x`, `0o` or `0b`, with
    /// underscores, an optional `+`.
    fn int(&mut self) -> Result<u64, String> {
        let start = self.i;
        if self.eat(b'-') {
            return Err(format!("negative number at column {}", start + 1));
        }
        self.eat(b'+');
        self.skip_ws();
        let mut radix = 10;
        if self.peek() == Some(b'0') {
            match self.s.get(self.i + 1).map(u8::to_ascii_lowercase) {
                Some(b'x') => radix = 16,
                Some(b'o') => radix = 8,
                Some(b'b') => radix = 2,
                _ => {}
            }
            if radix != 10 {
                self.i += 2;
            }
        }
        let digits_start = self.i;
        let mut value: u64 = 0;
        while let Some(c) = self.peek() {
            if c == b'_' {
                self.i += 1;
                continue;
            }
            let Some(d) = char::from(c).to_digit(radix) else { break };
            value = value
                .checked_mul(u64::from(radix))
                .and_then(|v| v.checked_add(u64::from(d)))
                .ok_or_else(|| format!("number too large at column {}", start + 1))?;
            self.i += 1;
        }
        if self.i == digits_start {
            return Err(format!("expected a number at column {}", start + 1));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(key: &[u8]) -> String {
        let mut out = Vec::new();
        write_repr(&mut out, key);
        out.iter().map(|&b| char::from(b)).collect()
    }

    #[test]
    fn repr_matches_python() {
        assert_eq!(repr(b"abc"), "'abc'");
        assert_eq!(repr(b"it's"), "\"it's\"");
        assert_eq!(repr(b"'\""), "'\\'\"'");
        assert_eq!(repr(b"a\\b\tc\nd\re"), "'a\\\\b\\tc\\nd\\re'");
        assert_eq!(
            repr(&[0, 0x1f, 0x7f, 0x80, 0xa0, 0xad, 0xa1, 0xff]),
            "'\\x00\\x1f\\x7f\\x80\\xa0\\xad\u{a1}\u{ff}'"
        );
        assert_eq!(repr(b""), "''");
    }

    #[test]
    fn parse_round_trips_every_byte() {
        let key: Vec<u8> = (0..=255u8).collect();
        for k in [&key[..], b"it's", b"'\"", b""] {
            let mut line = Vec::new();
            write_line(&mut line, k, 512, 7);
            line.pop();
            assert_eq!(parse_line(&line), Ok(Line::Entry { key: k.to_vec(), pos: 512, siz: 7 }));
        }
    }

    #[test]
    fn lines_write_numbers_as_python_does() {
        for n in [0, 1, 9, 10, 511, 512, 1_000_000, u64::from(u32::MAX), u64::MAX] {
            let mut line = Vec::new();
            write_line(&mut line, b"say \"hi\"", n, n);
            assert_eq!(String::from_utf8(line).unwrap(), format!("'say \"hi\"', ({n}, {n})\n"));
        }
    }

    #[test]
    fn parse_accepts_what_literal_eval_does() {
        let ok = |s: &str, k: &[u8]| {
            let bytes: Vec<u8> = s.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect();
            assert_eq!(parse_line(&bytes), Ok(Line::Entry { key: k.to_vec(), pos: 0, siz: 5 }), "{s}");
        };
        ok("'k', (0, 5)", b"k");
        ok("  \"k\" ,(0,5,) ,  \u{a0}", b"k");
        ok("('k', (0, 5))", b"k");
        ok("u'a' 'b', (0x0, 0b101)", b"ab");
        ok("r'\\n', (0, 5)", b"\\n");
        ok("'\\101\\u00e9\\q', (0, 5)", b"A\xe9\\q");
        ok("'''k''', (0, 5)", b"k");
        assert_eq!(parse_line(b"   \t"), Ok(Line::Blank));
    }

    #[test]
    fn parse_rejects_code_and_garbage() {
        for bad in [
            &b"__import__('os').system('echo hi'), (0, 5)"[..],
            b"'k', (0, 5) + 1",
            b"'k', (-1, 5)",
            b"b'k', (0, 5)",
            b"'k', (0, 99999999999999999999999)",
            b"'\\u0100', (0, 5)",
            b"'k', (0)",
            b"'k",
            b"'\\x4', (0, 5)",
            b"f'k', (0, 5)",
        ] {
            assert!(parse_line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn simple_path_agrees() {
        for line in
            [&b"'k', (0, 5)"[..], b"'', (512, 0)", b"'a\\b', (0, 5)", b"'k', (0, 5) ", b"'k', (00, 5)"]
        {
            if let Some((k, p, z)) = parse_simple(line) {
                assert_eq!(parse_line(line), Ok(Line::Entry { key: k.to_vec(), pos: p, siz: z }));
            }
        }
        assert_eq!(parse_simple(b"'k', (0, 5)"), Some((&b"k"[..], 0, 5)));
        assert_eq!(parse_simple(b"'a\\b', (0, 5)"), None);
    }

    #[test]
    fn universal_newlines() {
        let got: Vec<_> = lines(b"a\r\nb\rc\nd").collect();
        assert_eq!(got, vec![(1, &b"a"[..]), (2, b"b"), (3, b"c"), (4, b"d")]);
    }
}
