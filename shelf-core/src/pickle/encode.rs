//! The pickler: writes a [`Value`] as pickle protocol 2, 3, 4 or 5, byte
//! for byte as CPython 3.11's C pickler (`Modules/_pickle.c`, `save` and
//! friends; `Lib/pickle.py` is the readable twin) writes a freshly built
//! value of the same types.
//!
//! CPython memoizes by object identity. A [`Value`] tree has no identity,
//! so every container and string is its own object, except the ones
//! CPython keeps as singletons: the empty `str` and `bytes`, and `str` of
//! one Latin-1 character and `bytes` of one byte (`unicode_latin1`,
//! `characters` in CPython). Globals (`builtins.set`, `_codecs.encode`),
//! the module names protocol 4 writes for them, `timezone.utc`, a
//! `ZoneInfo` of one key (its cache makes it one object) and the
//! constants CPython's reducers use (`'latin1'`, `'int'`, `'_unpickle'`)
//! are one object each too. With those rules the output equals
//! `pickle.dumps(v, protocol)` for values built from literals or read from
//! a pickle, as long as no two equal strings share an object in Python
//! (interned identifiers do).
//!
//! Protocol 4 and 5 frame as `Lib/pickle.py`'s `_Framer` does: one frame
//! after `PROTO`, committed when it reaches 64 KiB at the start of a
//! `save`, without a header when under 4 bytes, and `str`/`bytes`
//! payloads of 64 KiB or more written between frames.

mod objects;
mod scalar;

use super::opcodes::*;
use std::collections::HashMap;

use num_bigint::BigInt;

use super::decode::MAX_DEPTH;
use crate::value::Value;

/// CPython's `BATCHSIZE` for `APPENDS` and `SETITEMS`.
const BATCHSIZE: usize = 1000;

/// `_Framer._FRAME_SIZE_TARGET`.
const FRAME_SIZE_TARGET: usize = 64 * 1024;

/// `_Framer._FRAME_SIZE_MIN`: smaller frames are written without a header.
const FRAME_SIZE_MIN: usize = 4;

/// The length of `FRAME` and its 8-byte size.
const FRAME_HEADER: usize = 9;

/// The lowest and highest pickle protocols written.
pub(crate) const PROTOCOLS: std::ops::RangeInclusive<u8> = 2..=5;

/// Encodes `value` as a pickle of `protocol` (2 to 5; anything below is
/// written as 2, anything above as 5). A [`Value::Opaque`] is its own
/// bytes, whatever the protocol.
pub(crate) fn encode(value: &Value, protocol: u8) -> Result<Vec<u8>, String> {
    // Room for a small value's pickle at once, not five doublings.
    let mut out = Vec::with_capacity(128);
    encode_into(value, protocol, &mut out)?;
    Ok(out)
}

/// [`encode`], appending to `out` (a writer's buffer kept between values:
/// no allocation per value). On error `out` may hold part of the pickle.
pub(crate) fn encode_into(value: &Value, protocol: u8, out: &mut Vec<u8>) -> Result<(), String> {
    if let Value::Opaque(o) = value {
        out.extend_from_slice(&o.bytes);
        return Ok(());
    }
    pickle_into(protocol, out, |p| p.save(value, 0))
}

/// One pickle of `protocol` (clamped to [`PROTOCOLS`]) appended to `out`:
/// `PROTO`, the frame of protocol 4+, what `save` writes, `STOP`. On error
/// `out` may hold part of the pickle.
fn pickle_into<E>(
    protocol: u8,
    out: &mut Vec<u8>,
    save: impl FnOnce(&mut Pickler) -> Result<(), E>,
) -> Result<(), E> {
    let proto = protocol.clamp(*PROTOCOLS.start(), *PROTOCOLS.end());
    let mut p = Pickler { out: std::mem::take(out), proto, next: 0, shared: HashMap::new(), frame: None };
    p.out.extend_from_slice(&[PROTO, p.proto]);
    if proto >= 4 {
        p.start_frame();
    }
    let saved = save(&mut p);
    if saved.is_ok() {
        p.out.push(STOP);
        p.end_frame();
    }
    *out = p.out;
    saved
}

/// Writes `value` as [`encode_into`] would write its [`Value`], without
/// building the `Value`, when it is a single scalar (`bytes`, `str`, an
/// int that fits `i64`, a float, a bool, `None`): the shelf's usual value
/// costs one allocation and a tree walk less. `None` when `value` is
/// anything else (a container, a struct, a newtype, which `to_value` maps
/// by name): `out` is then as it was, and the caller takes the `Value`
/// path. The pickler calls are the same ones `save` makes for the
/// `Value`, so the bytes are too (the unit tests compare both paths).
pub(crate) fn encode_scalar_into<T: serde::Serialize + ?Sized>(
    value: &T,
    protocol: u8,
    out: &mut Vec<u8>,
) -> Option<Result<(), String>> {
    let start = out.len();
    let saved = pickle_into(protocol, out, |p| {
        // As `save` does before every value.
        p.opcode_boundary();
        value.serialize(scalar::Scalar(p))
    });
    match saved {
        Ok(()) => Some(Ok(())),
        Err(scalar::NotScalar::Failed(e)) => Some(Err(e)),
        Err(scalar::NotScalar::Compound) => {
            out.truncate(start);
            None
        }
    }
}

/// An opcode and its little-endian length, in a stack buffer (no
/// allocation per value): the buffer and how much of it is used.
fn length_header(opcode: u8, len: &[u8]) -> ([u8; 9], usize) {
    let mut header = [0u8; 9];
    header[0] = opcode;
    header[1..=len.len()].copy_from_slice(len);
    (header, 1 + len.len())
}

/// Objects that CPython shares between their uses, so a second use is a
/// memo get.
#[derive(Debug, Hash, PartialEq, Eq)]
enum Shared {
    Global(&'static str, &'static str),
    /// The module name protocol 4 saves before `STACK_GLOBAL`.
    Module(&'static str),
    Str(String),
    Bytes(Vec<u8>),
    /// The `'latin1'` constant of `save_bytes`.
    Latin1,
    /// A string constant of a reducer (`'int'` of `UUID.__getstate__`).
    Const(&'static str),
    /// `datetime.timezone.utc`.
    Utc,
    /// `zoneinfo.ZoneInfo(key)`, cached by key.
    Zone(String),
}

struct Pickler {
    out: Vec<u8>,
    proto: u8,
    /// The next memo index (`len(self.memo)`).
    next: u32,
    shared: HashMap<Shared, u32>,
    /// Where the current frame's reserved header starts (protocol 4+).
    frame: Option<usize>,
}

impl Pickler {
    // ---- framing (`_Framer`) ----

    fn start_frame(&mut self) {
        self.frame = Some(self.out.len());
        self.out.extend_from_slice(&[0; FRAME_HEADER]);
    }

    /// Closes the current frame: its header written, or removed when the
    /// frame is too small to need one.
    fn close_frame(&mut self) {
        let Some(start) = self.frame.take() else { return };
        let len = self.out.len() - start - FRAME_HEADER;
        if len >= FRAME_SIZE_MIN {
            self.out[start] = FRAME;
            self.out[start + 1..start + FRAME_HEADER].copy_from_slice(&(len as u64).to_le_bytes());
        } else {
            self.out.drain(start..start + FRAME_HEADER);
        }
    }

    /// `commit_frame()`: a new frame once this one reached the target size.
    fn opcode_boundary(&mut self) {
        if let Some(start) = self.frame
            && self.out.len() - start - FRAME_HEADER >= FRAME_SIZE_TARGET
        {
            self.close_frame();
            self.start_frame();
        }
    }

    fn end_frame(&mut self) {
        self.close_frame();
    }

    /// `write_large_bytes`: a payload of 64 KiB or more goes between
    /// frames in protocol 4+, so a reader can take it without copying.
    fn write_payload(&mut self, header: &[u8], payload: &[u8]) {
        if self.frame.is_some() && payload.len() >= FRAME_SIZE_TARGET {
            self.close_frame();
            self.out.extend_from_slice(header);
            self.out.extend_from_slice(payload);
            self.start_frame();
        } else {
            self.out.extend_from_slice(header);
            self.out.extend_from_slice(payload);
        }
    }

    // ---- the memo ----

    /// `memoize`/`put`: MEMOIZE from protocol 4, else BINPUT or LONG_BINPUT.
    fn put(&mut self) -> u32 {
        let idx = self.next;
        self.next += 1;
        if self.proto >= 4 {
            self.out.push(MEMOIZE);
            return idx;
        }
        match u8::try_from(idx) {
            Ok(i) => self.out.extend_from_slice(&[BINPUT, i]),
            Err(_) => {
                self.out.push(LONG_BINPUT);
                self.out.extend_from_slice(&idx.to_le_bytes());
            }
        }
        idx
    }

    /// `get`: BINGET or LONG_BINGET.
    fn get(&mut self, idx: u32) {
        match u8::try_from(idx) {
            Ok(i) => self.out.extend_from_slice(&[BINGET, i]),
            Err(_) => {
                self.out.push(LONG_BINGET);
                self.out.extend_from_slice(&idx.to_le_bytes());
            }
        }
    }

    /// Writes a memo get if `key` was saved before; else runs `save`, whose
    /// final memo put is recorded for `key`.
    fn shared(
        &mut self,
        key: Option<Shared>,
        save: impl FnOnce(&mut Self) -> Result<u32, String>,
    ) -> Result<(), String> {
        if let Some(k) = &key
            && let Some(&idx) = self.shared.get(k)
        {
            self.get(idx);
            return Ok(());
        }
        let idx = save(self)?;
        if let Some(k) = key {
            self.shared.insert(k, idx);
        }
        Ok(())
    }

    /// `save_global`: `GLOBAL` with `fix_imports` mapping Python 3 names to
    /// Python 2's below protocol 3 (`_compat_pickle`: `builtins` is
    /// `__builtin__`, `str` `unicode`, `int` `long`),
    /// from protocol 4 the module and name as strings and `STACK_GLOBAL`.
    fn global(&mut self, module: &'static str, name: &'static str) -> Result<(), String> {
        // `REVERSE_NAME_MAPPING` first, then `REVERSE_IMPORT_MAPPING`
        let (module, name) = match (module, name) {
            ("builtins", "str") if self.proto < 3 => ("__builtin__", "unicode"),
            ("builtins", "int") if self.proto < 3 => ("__builtin__", "long"),
            ("builtins", n) if self.proto < 3 => ("__builtin__", n),
            other => other,
        };
        self.shared(Some(Shared::Global(module, name)), |p| {
            if p.proto >= 4 {
                p.shared(Some(Shared::Module(module)), |p| {
                    p.str_opcode(module)?;
                    Ok(p.put())
                })?;
                p.save_str(name)?;
                p.out.push(STACK_GLOBAL);
                return Ok(p.put());
            }
            p.out.push(GLOBAL);
            p.out.extend_from_slice(module.as_bytes());
            p.out.push(b'\n');
            p.out.extend_from_slice(name.as_bytes());
            p.out.push(b'\n');
            Ok(p.put())
        })
    }

    fn save(&mut self, v: &Value, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("value nested deeper than {MAX_DEPTH} levels"));
        }
        self.opcode_boundary();
        match v {
            Value::None => self.out.push(NONE),
            Value::Bool(b) => self.out.push(if *b { NEWTRUE } else { NEWFALSE }),
            Value::Int(i) => self.save_int(*i),
            Value::BigInt(b) => match i64::try_from(b) {
                Ok(i) => self.save_int(i),
                Err(_) => self.save_long(b),
            },
            Value::Float(f) => self.save_float(*f),
            Value::Str(s) => self.save_str(s)?,
            Value::Bytes(b) => self.save_bytes(b)?,
            Value::ByteArray(b) if self.proto >= 5 => self.save_bytearray8(b),
            Value::ByteArray(b) => {
                // `save_bytearray` below protocol 5: `(bytearray, (bytes(obj),))`
                self.global("builtins", "bytearray")?;
                if b.is_empty() {
                    self.out.push(EMPTY_TUPLE);
                } else {
                    self.save_bytes(b)?;
                    self.out.push(TUPLE1);
                    self.put();
                }
                self.out.push(REDUCE);
                self.put();
            }
            Value::List(items) => {
                self.out.push(EMPTY_LIST);
                self.put();
                self.batch_appends(items, depth)?;
            }
            Value::Tuple(items) => self.save_tuple(items, depth)?,
            Value::Dict(pairs) => {
                self.out.push(EMPTY_DICT);
                self.put();
                self.batch_setitems(pairs, depth)?;
            }
            Value::Set(items) | Value::FrozenSet(items) => self.save_set(v, items, depth)?,
            Value::Object(o) => self.save_object(o, depth)?,
            Value::Opaque(o) => return Err(nested_opaque(o)),
            Value::Global { name, .. } => {
                return Err(format!("cannot pickle the placeholder of global {name}"));
            }
        }
        Ok(())
    }

    /// `save_set` and `save_frozenset`. Out of line, as [`Self::save_object`].
    #[inline(never)]
    fn save_set(&mut self, v: &Value, items: &[Value], depth: usize) -> Result<(), String> {
        if matches!(v, Value::Set(_)) && self.proto >= 4 {
            // `save_set`: EMPTY_SET, then batches of MARK ... ADDITEMS
            self.out.push(EMPTY_SET);
            self.put();
            for batch in items.chunks(BATCHSIZE) {
                self.out.push(MARK);
                for item in batch {
                    self.save(item, depth + 1)?;
                }
                self.out.push(ADDITEMS);
            }
            return Ok(());
        }
        if self.proto >= 4 {
            self.out.push(MARK);
            for item in items {
                self.save(item, depth + 1)?;
            }
            self.out.push(FROZENSET);
            self.put();
            return Ok(());
        }
        {
            // `save_set`/`save_frozenset` below protocol 4: `(type, (list(obj),))`
            let name = if matches!(v, Value::Set(_)) { "set" } else { "frozenset" };
            self.global("builtins", name)?;
            self.out.push(EMPTY_LIST);
            self.put();
            self.batch_appends(items, depth)?;
            self.out.push(TUPLE1);
            self.put();
            self.out.push(REDUCE);
            self.put();
        }
        Ok(())
    }

    #[inline(never)]
    fn save_bytearray8(&mut self, b: &[u8]) {
        let mut header = vec![BYTEARRAY8];
        header.extend_from_slice(&(b.len() as u64).to_le_bytes());
        self.write_payload(&header, b);
        self.put();
    }

    fn save_float(&mut self, f: f64) {
        // `save_float`: BINFLOAT, big-endian as `struct.pack('>d')`
        self.out.push(BINFLOAT);
        self.out.extend_from_slice(&f.to_be_bytes());
    }

    /// `save_reduce(func, args)` for a global `func`, where `args` writes
    /// the argument tuple.
    fn reduce(
        &mut self,
        module: &'static str,
        name: &'static str,
        args: impl FnOnce(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        self.global(module, name)?;
        args(self)?;
        self.out.push(REDUCE);
        self.put();
        Ok(())
    }

    /// Closes an argument tuple of `n` items already saved (`save_tuple`).
    fn tuple_of(&mut self, n: usize) {
        let op = match n {
            0 => return self.out.push(EMPTY_TUPLE),
            1 => TUPLE1,
            2 => TUPLE2,
            _ => TUPLE3,
        };
        self.out.push(op);
        self.put();
    }

    /// The objects of [`PyObject`], each as its class's `__reduce_ex__`
    /// gives it to CPython's pickler. Out of line: `save` recurses once per
    /// nesting level, and its frame must stay small.
    #[inline(never)]
    /// `save_long` from protocol 2: the smallest of BININT1, BININT2,
    /// BININT, LONG1.
    fn save_int(&mut self, i: i64) {
        if let Ok(b) = u8::try_from(i) {
            self.out.extend_from_slice(&[BININT1, b]);
        } else if let Ok(w) = u16::try_from(i) {
            self.out.push(BININT2);
            self.out.extend_from_slice(&w.to_le_bytes());
        } else if let Ok(d) = i32::try_from(i) {
            self.out.push(BININT);
            self.out.extend_from_slice(&d.to_le_bytes());
        } else {
            self.save_long(&BigInt::from(i));
        }
    }

    /// LONG1 or LONG4 with `encode_long`'s minimal little-endian two's
    /// complement.
    fn save_long(&mut self, b: &BigInt) {
        let data = b.to_signed_bytes_le();
        match u8::try_from(data.len()) {
            Ok(n) => self.out.extend_from_slice(&[LONG1, n]),
            Err(_) => {
                self.out.push(LONG4);
                self.out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            }
        }
        self.out.extend_from_slice(&data);
    }

    /// `save_unicode`: BINUNICODE, shared when CPython shares the object.
    fn save_str(&mut self, s: &str) -> Result<(), String> {
        let mut chars = s.chars();
        let single = match (chars.next(), chars.next()) {
            (None, _) => true,
            (Some(c), None) => u32::from(c) < 256,
            _ => false,
        };
        self.shared(single.then(|| Shared::Str(s.to_owned())), |p| {
            p.str_opcode(s)?;
            Ok(p.put())
        })
    }

    /// The opcode of a `str` without its memo put: SHORT_BINUNICODE from
    /// protocol 4 for under 256 bytes, BINUNICODE, or BINUNICODE8 beyond
    /// 4 GiB.
    fn str_opcode(&mut self, s: &str) -> Result<(), String> {
        let n = s.len();
        let (header, used) = if self.proto >= 4 && n < 256 {
            length_header(SHORT_BINUNICODE, &[n as u8])
        } else if let Ok(n32) = u32::try_from(n) {
            length_header(BINUNICODE, &n32.to_le_bytes())
        } else if self.proto >= 4 {
            length_header(BINUNICODE8, &(n as u64).to_le_bytes())
        } else {
            return Err("str longer than 4 GiB needs protocol 4".to_owned());
        };
        self.write_payload(&header[..used], s.as_bytes());
        Ok(())
    }

    /// `save_bytes`: SHORT_BINBYTES/BINBYTES in protocol 3; below it
    /// `_codecs.encode(latin1_text, 'latin1')`, or `bytes()` when empty, so
    /// that Python 2 reads a `str`.
    fn save_bytes(&mut self, b: &[u8]) -> Result<(), String> {
        let key = (b.len() <= 1).then(|| Shared::Bytes(b.to_vec()));
        self.shared(key, |p| {
            if p.proto >= 3 {
                let (header, used) = match (u8::try_from(b.len()), u32::try_from(b.len())) {
                    (Ok(n), _) => length_header(SHORT_BINBYTES, &[n]),
                    (_, Ok(n)) => length_header(BINBYTES, &n.to_le_bytes()),
                    _ if p.proto >= 4 => length_header(BINBYTES8, &(b.len() as u64).to_le_bytes()),
                    _ => return Err("bytes longer than 4 GiB need protocol 4".to_owned()),
                };
                p.write_payload(&header[..used], b);
                return Ok(p.put());
            }
            if b.is_empty() {
                p.global("builtins", "bytes")?;
                p.out.push(EMPTY_TUPLE);
            } else {
                p.global("_codecs", "encode")?;
                let text: String = b.iter().map(|&c| char::from(c)).collect();
                p.save_str(&text)?;
                p.shared(Some(Shared::Latin1), |p| {
                    p.str_opcode("latin1")?;
                    Ok(p.put())
                })?;
                p.out.push(TUPLE2);
                p.put();
            }
            p.out.push(REDUCE);
            Ok(p.put())
        })
    }

    /// `save_tuple` from protocol 2: TUPLE1 to TUPLE3, else MARK ... TUPLE.
    fn save_tuple(&mut self, items: &[Value], depth: usize) -> Result<(), String> {
        if items.is_empty() {
            self.out.push(EMPTY_TUPLE);
            return Ok(());
        }
        if items.len() > 3 {
            self.out.push(MARK);
        }
        for item in items {
            self.save(item, depth + 1)?;
        }
        self.out.push(match items.len() {
            1 => TUPLE1,
            2 => TUPLE2,
            3 => TUPLE3,
            _ => TUPLE,
        });
        self.put();
        Ok(())
    }

    /// `batch_list_exact`: one APPEND for a single item, else batches of
    /// MARK ... APPENDS.
    fn batch_appends(&mut self, items: &[Value], depth: usize) -> Result<(), String> {
        if let [item] = items {
            self.save(item, depth + 1)?;
            self.out.push(APPEND);
            return Ok(());
        }
        for batch in items.chunks(BATCHSIZE) {
            self.out.push(MARK);
            for item in batch {
                self.save(item, depth + 1)?;
            }
            self.out.push(APPENDS);
        }
        Ok(())
    }

    /// `batch_dict_exact`: one SETITEM for a single pair, else batches of
    /// MARK ... SETITEMS; like CPython, a final full batch is followed by an
    /// empty one.
    fn batch_setitems(&mut self, pairs: &[(Value, Value)], depth: usize) -> Result<(), String> {
        match pairs {
            [] => return Ok(()),
            [(k, v)] => {
                self.save(k, depth + 1)?;
                self.save(v, depth + 1)?;
                self.out.push(SETITEM);
                return Ok(());
            }
            _ => {}
        }
        let mut rest = pairs;
        loop {
            let (batch, tail) = rest.split_at(rest.len().min(BATCHSIZE));
            self.out.push(MARK);
            for (k, v) in batch {
                self.save(k, depth + 1)?;
                self.save(v, depth + 1)?;
            }
            self.out.push(SETITEMS);
            rest = tail;
            if batch.len() < BATCHSIZE {
                return Ok(());
            }
        }
    }
}

#[inline(never)]
fn nested_opaque(o: &crate::value::Opaque) -> String {
    format!(
        "a pickle of class {} (kept as its bytes) can only be stored as a whole value, not inside another",
        o.class()
    )
}

impl Pickler {
    /// `batch_list` for an iterator (a deque's items): APPEND for a lone
    /// item of a batch, else MARK ... APPENDS, until a batch is short.
    fn batch_appends_iter(&mut self, items: &[Value], depth: usize) -> Result<(), String> {
        let mut rest = items;
        loop {
            let (batch, tail) = rest.split_at(rest.len().min(BATCHSIZE));
            match batch {
                [] => {}
                [item] => {
                    self.save(item, depth + 1)?;
                    self.out.push(APPEND);
                }
                _ => {
                    self.out.push(MARK);
                    for item in batch {
                        self.save(item, depth + 1)?;
                    }
                    self.out.push(APPENDS);
                }
            }
            rest = tail;
            if batch.len() < BATCHSIZE {
                return Ok(());
            }
        }
    }

    /// `batch_dict` for an iterator of items (OrderedDict, defaultdict).
    fn batch_setitems_iter(&mut self, pairs: &[(Value, Value)], depth: usize) -> Result<(), String> {
        let mut rest = pairs;
        loop {
            let (batch, tail) = rest.split_at(rest.len().min(BATCHSIZE));
            match batch {
                [] => {}
                [(k, v)] => {
                    self.save(k, depth + 1)?;
                    self.save(v, depth + 1)?;
                    self.out.push(SETITEM);
                }
                _ => {
                    self.out.push(MARK);
                    for (k, v) in batch {
                        self.save(k, depth + 1)?;
                        self.save(v, depth + 1)?;
                    }
                    self.out.push(SETITEMS);
                }
            }
            rest = tail;
            if batch.len() < BATCHSIZE {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both paths of one typed value, every protocol: the fast path must
    /// write what the `Value` path writes, after what `out` already held.
    /// Whether the fast path took it.
    fn same_both_ways<T: serde::Serialize + ?Sized>(v: &T) -> bool {
        let mut took = false;
        for proto in 2..=5 {
            let value = crate::value::to_value(v).unwrap();
            let slow = encode(&value, proto);
            let mut fast = b"kept".to_vec();
            match encode_scalar_into(v, proto, &mut fast) {
                Some(done) => {
                    assert_eq!(done.map(|()| fast[4..].to_vec()), slow, "{value:?} protocol {proto}");
                    assert_eq!(&fast[..4], b"kept");
                    took = true;
                }
                None => assert_eq!(fast, b"kept", "{value:?}: a refused value leaves out as it was"),
            }
        }
        took
    }

    #[test]
    fn scalar_fast_path_writes_what_the_value_path_writes() {
        for n in [0usize, 1, 2, 3, 100, 255, 256, 65_535, 65_536, 70_000] {
            assert!(same_both_ways(serde_bytes::Bytes::new(&vec![7u8; n])));
            assert!(same_both_ways(&"x".repeat(n)));
        }
        for s in ["", "a", "\u{e9}", "\u{20ac}", "\u{1f600}", "it's"] {
            assert!(same_both_ways(s));
        }
        for c in ['x', '\u{e9}', '\u{ff}', '\u{100}', '\u{20ac}'] {
            assert!(same_both_ways(&c));
        }
        for i in [0i64, 1, 255, 256, 65_535, 65_536, -1, -256, i64::from(i32::MAX), i64::from(i32::MAX) + 1] {
            assert!(same_both_ways(&i));
        }
        assert!(same_both_ways(&i64::MIN));
        assert!(same_both_ways(&i64::MAX));
        assert!(!same_both_ways(&u64::MAX));
        assert!(!same_both_ways(&(u64::MAX as u128 + 1)));
        assert!(same_both_ways(&-3i8));
        assert!(same_both_ways(&65_535u16));
        assert!(same_both_ways(&u32::MAX));
        for f in [0.0f64, -0.0, 1.5, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE] {
            assert!(same_both_ways(&f));
        }
        assert!(same_both_ways(&1.25f32));
        assert!(same_both_ways(&true));
        assert!(same_both_ways(&false));
        assert!(same_both_ways(&()));
        assert!(same_both_ways(&None::<u8>));
        assert!(same_both_ways(&Some(Some(5u8))));
        // Refused: compound values and newtypes go the Value way.
        assert!(!same_both_ways(&vec![1u8, 2]));
        assert!(!same_both_ways(&(1u8, "a")));
        assert!(!same_both_ways(&std::collections::BTreeMap::from([("k", 1u8)])));
        assert!(!same_both_ways(&Some(vec![1u8])));
        // A newtype, and a unit variant: `to_value` maps them by name.
        #[derive(serde::Serialize)]
        struct Meters(u8);
        #[derive(serde::Serialize)]
        enum Color {
            Red,
        }
        assert!(!same_both_ways(&Meters(3)));
        assert!(!same_both_ways(&Color::Red));
    }

    fn nested(depth: usize) -> Value {
        let mut v = Value::None;
        for _ in 0..depth {
            v = Value::List(vec![v]);
        }
        v
    }

    #[test]
    fn matches_cpython_for_simple_values() {
        // the bytes of CPython 3.11's pickle.dumps(v, 3) and (v, 2)
        let v = Value::List(vec![Value::Int(1), Value::List(vec![Value::Int(2)])]);
        assert_eq!(encode(&v, 3).unwrap(), b"\x80\x03]q\x00(K\x01]q\x01K\x02ae.");
        let v = Value::ByteArray(b"ab".to_vec());
        assert_eq!(
            encode(&v, 2).unwrap(),
            &b"\x80\x02c__builtin__\nbytearray\nq\x00c_codecs\nencode\nq\x01X\x02\x00\x00\x00abq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05\x85q\x06Rq\x07."[..]
        );
        let v = Value::BigInt(BigInt::from(1u64 << 63));
        assert_eq!(encode(&v, 3).unwrap(), b"\x80\x03\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.");
        assert_eq!(encode(&Value::Int(-(1 << 31)), 3).unwrap(), b"\x80\x03J\x00\x00\x00\x80.");
    }

    #[test]
    fn depth_is_limited_without_overflowing_the_stack() {
        assert!(encode(&nested(MAX_DEPTH), 3).is_ok());
        assert!(encode(&nested(MAX_DEPTH + 5), 3).unwrap_err().contains("nested deeper"));
    }

    #[test]
    fn placeholders_are_not_pickled() {
        let v = Value::Global { name: "datetime.date".into(), args: Box::new(Value::None) };
        assert!(encode(&v, 3).unwrap_err().contains("datetime.date"));
    }
}
