//! Values as mmappickle stores them: pickle *fragments* (no `PROTO`,
//! `FRAME` or `STOP`, memo indices renumbered so the whole file stays one
//! valid pickle), and the exact bytes shelf was given.
//!
//! A value shelf stores is one of three forms, told apart by its first
//! opcode so that reading gives back exactly the bytes written:
//! - *native*: the value is `PROTO 4`, a body, `STOP`, where the body is
//!   what mmappickle itself writes (no frames, no `MEMOIZE`); the body is
//!   stored as is. Python's pickles of mmappickle's values and its arrays
//!   are in this form, so they round-trip byte for byte.
//! - *carried*: any other well-formed pickle. Stored as `BINBYTES8 <the
//!   original bytes> POP` followed by the fragment mmappickle's
//!   `_pickle_dump_fix` would make of it: Python pushes and drops the
//!   original, then reads the object; shelf reads back the original.
//! - *raw*: bytes that are no pickle, stored as `BINBYTES8 <bytes>`:
//!   Python reads them as a `bytes` object.

use std::collections::HashMap;

use shelf_core::raw::opcodes::{
    BINBYTES8, BINGET, BINPUT, FRAME, LONG_BINGET, LONG_BINPUT, MEMOIZE, POP, PROTO, STOP,
};

/// How an opcode's argument is laid out.
#[derive(Clone, Copy)]
enum Arg {
    None,
    Fixed(usize),
    /// A little-endian length of this many bytes, then that many bytes.
    Counted(usize),
    /// One newline-terminated line.
    Line,
    /// Two lines (`GLOBAL`, `INST`).
    TwoLines,
}

/// What an opcode does to the unpickler's stack.
#[derive(Clone, Copy)]
enum Effect {
    /// Pops `n` items (never marks), then pushes `m`.
    Items(usize, usize),
    /// Pushes a mark.
    Mark,
    /// Pops to the mark and pushes one item.
    MarkToOne,
    /// Pops to the mark and adds to the item below it.
    MarkInto,
    /// Pops to the mark, pushes nothing.
    PopMark,
    /// `POP`: the top item, or the mark when nothing is above it.
    Pop,
    /// Needs one item, changes nothing (`PUT`s).
    Peek,
    /// Nothing.
    Nothing,
    /// Not allowed inside a value (out-of-band buffers).
    Refused,
}

fn opcode(code: u8) -> Option<(Arg, Effect)> {
    use Arg::*;
    use Effect::*;
    Some(match code {
        b'(' => (None, Mark),
        b'.' => (None, Nothing),
        0x95 => (Fixed(8), Nothing),
        0x80 => (Fixed(1), Nothing),
        b'0' => (None, Pop),
        b'1' => (None, PopMark),
        b'2' => (None, Items(1, 2)),
        b'F' | b'I' | b'L' | b'S' | b'V' => (Line, Items(0, 1)),
        b'P' => (Line, Items(0, 1)),
        b'g' => (Line, Items(0, 1)),
        b'p' => (Line, Peek),
        b'J' => (Fixed(4), Items(0, 1)),
        b'K' => (Fixed(1), Items(0, 1)),
        b'M' => (Fixed(2), Items(0, 1)),
        b'G' => (Fixed(8), Items(0, 1)),
        b'N' | 0x88 | 0x89 | b'}' | b']' | b')' | 0x8f => (None, Items(0, 1)),
        b'Q' => (None, Items(1, 1)),
        b'R' | 0x81 | 0x93 => (None, Items(2, 1)),
        0x92 => (None, Items(3, 1)),
        b'T' | b'X' | b'B' => (Counted(4), Items(0, 1)),
        b'U' | b'C' | 0x8c | 0x8a => (Counted(1), Items(0, 1)),
        0x8b => (Counted(4), Items(0, 1)),
        0x8d | 0x8e | 0x96 => (Counted(8), Items(0, 1)),
        b'a' => (None, Items(2, 1)),
        b'b' => (None, Items(2, 1)),
        b's' => (None, Items(3, 1)),
        b'c' => (TwoLines, Items(0, 1)),
        b'i' => (TwoLines, MarkToOne),
        b'd' | b'l' | b't' | 0x91 | b'o' => (None, MarkToOne),
        b'e' | b'u' | 0x90 => (None, MarkInto),
        b'h' => (Fixed(1), Items(0, 1)),
        b'j' => (Fixed(4), Items(0, 1)),
        b'q' => (Fixed(1), Peek),
        b'r' => (Fixed(4), Peek),
        0x94 => (None, Peek),
        0x82 => (Fixed(1), Items(0, 1)),
        0x83 => (Fixed(2), Items(0, 1)),
        0x84 => (Fixed(4), Items(0, 1)),
        0x85 => (None, Items(1, 1)),
        0x86 => (None, Items(2, 1)),
        0x87 => (None, Items(3, 1)),
        0x97 | 0x98 => (None, Refused),
        _ => return Option::None,
    })
}

/// One opcode of a pickle: its code, where it starts and where its
/// argument starts and ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Op {
    pub(crate) code: u8,
    pub(crate) start: usize,
    pub(crate) arg: (usize, usize),
}

impl Op {
    fn end(&self) -> usize {
        self.arg.1
    }
}

fn le(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Splits `body` into opcodes, checking that each is known and whole and
/// that the stack effect is that of one value: never below its start,
/// every mark closed, one item left. `STOP` may only come last.
pub(crate) fn walk(body: &[u8]) -> Result<Vec<Op>, String> {
    let mut ops = Vec::new();
    // true: a mark; false: an item.
    let mut stack: Vec<bool> = Vec::new();
    let mut pos = 0usize;
    let short = || "a pickle opcode is cut short".to_owned();
    while pos < body.len() {
        let code = body[pos];
        let (arg, effect) =
            opcode(code).ok_or_else(|| format!("unknown pickle opcode 0x{code:02x} at {pos}"))?;
        let a = pos + 1;
        let (s, e) = match arg {
            Arg::None => (a, a),
            Arg::Fixed(n) => (a, a.checked_add(n).ok_or_else(short)?),
            Arg::Counted(n) => {
                let lenb = body.get(a..a + n).ok_or_else(short)?;
                let len = usize::try_from(le(lenb)).map_err(|_| short())?;
                (a + n, (a + n).checked_add(len).ok_or_else(short)?)
            }
            Arg::Line | Arg::TwoLines => {
                let lines = if matches!(arg, Arg::Line) { 1 } else { 2 };
                let mut e = a;
                for _ in 0..lines {
                    let nl =
                        body.get(e..).and_then(|r| r.iter().position(|b| *b == b'\n')).ok_or_else(short)?;
                    e += nl + 1;
                }
                (a, e)
            }
        };
        if e > body.len() {
            return Err(short());
        }
        let top_items = stack.iter().rev().take_while(|m| !**m).count();
        let under = || format!("pickle opcode 0x{code:02x} at {pos} reaches below its value");
        match effect {
            Effect::Items(n, m) => {
                if top_items < n {
                    return Err(under());
                }
                stack.truncate(stack.len() - n);
                stack.extend(std::iter::repeat_n(false, m));
            }
            Effect::Mark => stack.push(true),
            Effect::MarkToOne | Effect::MarkInto | Effect::PopMark => {
                if top_items == stack.len() {
                    return Err(under());
                }
                stack.truncate(stack.len() - top_items - 1);
                match effect {
                    Effect::MarkToOne => stack.push(false),
                    Effect::MarkInto if stack.last() != Some(&false) => return Err(under()),
                    _ => {}
                }
            }
            Effect::Pop => {
                if stack.pop().is_none() {
                    return Err(under());
                }
            }
            Effect::Peek => {
                if top_items == 0 {
                    return Err(under());
                }
            }
            Effect::Nothing => {}
            Effect::Refused => return Err(format!("out-of-band buffer opcode at {pos}")),
        }
        if code == STOP && e != body.len() {
            return Err(format!("STOP at {pos} before the end"));
        }
        ops.push(Op { code, start: pos, arg: (s, e) });
        pos = e;
    }
    if stack != [false] {
        return Err("a pickle must leave exactly one value".to_owned());
    }
    Ok(ops)
}

/// Whether `value` is `PROTO 4`, a body mmappickle could have written,
/// `STOP`; returns the body.
fn native_body(value: &[u8]) -> Option<&[u8]> {
    let body = value.strip_prefix(&[PROTO, 4])?.strip_suffix(&[STOP])?;
    if body.first() == Some(&BINBYTES8) {
        return None;
    }
    let ops = walk(body).ok()?;
    ops.iter().all(|op| !matches!(op.code, FRAME | PROTO | STOP | MEMOIZE)).then_some(body)
}

/// The fragment mmappickle's `_pickle_dump_fix` makes of a whole pickle:
/// `PROTO`, `FRAME` and `STOP` dropped, `MEMOIZE` made a `PUT`, `PUT`s no
/// `GET` uses dropped, memo indices renumbered from `memo_start`. Returns
/// the fragment and the next free memo index; `None` when `value` is no
/// well-formed pickle.
pub(crate) fn dump_fix(value: &[u8], memo_start: u32) -> Option<(Vec<u8>, u32)> {
    if value.first() != Some(&PROTO) || value.len() < 3 || !(2..=5).contains(&value[1]) {
        return None;
    }
    let ops = walk(&value[2..]).ok()?;
    if ops.last().map(|o| o.code) != Some(STOP) {
        return None;
    }
    let body = &value[2..];
    let memo_arg = |op: &Op| -> Option<u64> {
        let a = &body[op.arg.0..op.arg.1];
        match op.code {
            b'p' | b'g' => std::str::from_utf8(a).ok()?.trim_end().parse().ok(),
            _ => Some(le(a)),
        }
    };
    // First pass: which memo slots a GET reads.
    let mut used = std::collections::HashSet::new();
    for op in ops.iter().filter(|op| matches!(op.code, b'g' | BINGET | LONG_BINGET)) {
        used.insert(memo_arg(op)?);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut renamed: HashMap<u64, u32> = HashMap::new();
    let mut next = memo_start;
    let mut memoized = 0u64;
    for op in &ops {
        match op.code {
            FRAME | STOP | PROTO => {}
            b'p' | BINPUT | LONG_BINPUT | MEMOIZE => {
                let old = if op.code == MEMOIZE {
                    memoized += 1;
                    memoized - 1
                } else {
                    let a = memo_arg(op)?;
                    memoized = memoized.max(a + 1);
                    a
                };
                if used.contains(&old) {
                    renamed.insert(old, next);
                    put_op(&mut out, next, true);
                    next = next.checked_add(1)?;
                }
            }
            b'g' | BINGET | LONG_BINGET => put_op(&mut out, *renamed.get(&memo_arg(op)?)?, false),
            _ => out.extend_from_slice(&body[op.start..op.end()]),
        }
    }
    Some((out, next))
}

fn put_op(out: &mut Vec<u8>, idx: u32, put: bool) {
    match (u8::try_from(idx), put) {
        (Ok(i), true) => out.extend_from_slice(&[BINPUT, i]),
        (Ok(i), false) => out.extend_from_slice(&[BINGET, i]),
        (Err(_), true) => {
            out.push(LONG_BINPUT);
            out.extend_from_slice(&idx.to_le_bytes());
        }
        (Err(_), false) => {
            out.push(LONG_BINGET);
            out.extend_from_slice(&idx.to_le_bytes());
        }
    }
}

fn bytes8(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(BINBYTES8);
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The stored fragment of a value shelf writes, and the memo index after
/// it (mmappickle records it in the entry).
pub(crate) fn encode(value: &[u8], memo_start: u32) -> (Vec<u8>, u32) {
    if let Some(body) = native_body(value) {
        return (body.to_vec(), memo_start);
    }
    if let Some((fixed, next)) = dump_fix(value, memo_start) {
        let mut out = Vec::with_capacity(value.len() + fixed.len() + 10);
        bytes8(&mut out, value);
        out.push(POP);
        out.extend_from_slice(&fixed);
        return (out, next);
    }
    let mut out = Vec::with_capacity(value.len() + 9);
    bytes8(&mut out, value);
    (out, memo_start)
}

/// Where the exact bytes of a value lie inside its stored fragment, when
/// they lie there whole (the carried and raw forms).
pub(crate) fn escaped_range(fragment: &[u8]) -> Option<(usize, usize)> {
    if fragment.first() != Some(&BINBYTES8) || fragment.len() < 9 {
        return None;
    }
    let n = usize::try_from(le(&fragment[1..9])).ok()?;
    let end = 9usize.checked_add(n)?;
    if end == fragment.len() || (end < fragment.len() && fragment[end] == POP) {
        Some((9, end))
    } else {
        None
    }
}

/// The value shelf reads from a stored fragment: the exact bytes of an
/// escaped form, else `PROTO 4` + fragment + `STOP`.
pub(crate) fn decode(fragment: &[u8]) -> Vec<u8> {
    if let Some((s, e)) = escaped_range(fragment) {
        return fragment[s..e].to_vec();
    }
    let mut out = Vec::with_capacity(fragment.len() + 3);
    out.extend_from_slice(&[PROTO, 4]);
    out.extend_from_slice(fragment);
    out.push(STOP);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: &[u8]) {
        let (f, _) = encode(v, 1);
        assert_eq!(decode(&f), v, "{v:?} -> {f:?}");
    }

    #[test]
    fn every_form_reads_back_exactly() {
        roundtrip(b"");
        roundtrip(b"v");
        roundtrip(&[7u8; 5000]);
        roundtrip(b"\x80\x04K\x01.");
        roundtrip(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.");
        roundtrip(b"\x80\x02cmymod\nPoint\nq\x00)\x81q\x01}q\x02X\x01\x00\x00\x00xq\x03K\x01sb.");
        roundtrip(b"\x80\x04\x8e\x01\x00\x00\x00\x00\x00\x00\x00a.");
        roundtrip(b"\x80\x04(.");
    }

    #[test]
    fn dump_fix_drops_unused_memo_and_renumbers_used() {
        // pickle.dumps(["a", "a"], 4) with a shared string.
        let p = b"\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x01a\x94h\x01e.";
        let (f, next) = dump_fix(p, 5).unwrap();
        assert_eq!(f, b"](\x8c\x01aq\x05h\x05e");
        assert_eq!(next, 6);
    }

    #[test]
    fn bodies_that_break_the_stack_are_refused() {
        assert!(walk(b"0").is_err());
        assert!(walk(b"(K\x01").is_err());
        assert!(walk(b"K\x01K\x02").is_err());
        assert!(walk(b"K\x01").is_ok());
    }
}
