//! The unpickler: a small pickle virtual machine over a byte slice that
//! builds [`Value`]s directly.
//!
//! It mirrors CPython's `Lib/pickle.py` `_Unpickler`: one `load_*` method per
//! opcode, a `stack` with a `metastack` for marks and a `memo`. Objects live
//! in an arena (`heap`) and the stack holds references to them, so mutating
//! opcodes (`APPEND`, `SETITEM`, `ADDITEMS`, `BUILD`) act on the shared object
//! as CPython's do, and memo references cost nothing until the end. The
//! result is then copied out of the arena into a [`Value`] tree: shared
//! references become copies (within a budget), and a structure that contains
//! itself is an error because a tree cannot hold it.
//!
//! Nothing is ever imported or called: `GLOBAL` and `STACK_GLOBAL` resolve a
//! short list of builtins and of the standard library's value classes by
//! name ([`Builtin`]), each rebuilt here as its `__reduce__` describes it
//! (`datetime` from its compact byte state, `Decimal` from its text,
//! `UUID` from its `int`, ...). Any other global is an error that names it
//! or, when asked for, makes the whole pickle a [`Value::Opaque`] that
//! keeps its exact bytes.
//!
//! Python 2 `str` (`STRING`, `BINSTRING`, `SHORT_BINSTRING`) decodes to
//! [`Value::Str`] when it is valid UTF-8 and to [`Value::Bytes`] otherwise.
//! CPython 3 reads these with `encoding='ASCII'` by default and fails on any
//! other byte; shelve users pass `'latin1'` or `'bytes'`. UTF-8-or-bytes
//! keeps the text of a Python 2 shelf as text without ever guessing a
//! Latin-1 reading of binary data.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use num_bigint::BigInt;

use super::opcodes::*;
use crate::value::{DEFAULT_FACTORIES, Opaque, PyObject, TzInfo, Value};

mod python;

/// The deepest nesting decoded (and encoded). CPython cannot pickle deeper
/// values either: its pickler recurses and stops at the recursion limit,
/// 1000 by default.
pub(crate) const MAX_DEPTH: usize = 1000;

/// The highest pickle protocol this decoder reads (CPython's
/// `pickle.HIGHEST_PROTOCOL`).
const HIGHEST_PROTOCOL: u8 = 5;

/// CPython 3.11's limit on the digits of a decimal integer parsed from text
/// (`sys.int_info.str_digits_check_threshold`): parsing is quadratic.
const MAX_DECIMAL_DIGITS: usize = 4300;

/// Why a pickle could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DecodeError {
    /// A global that is not one of the safe builtins, with
    /// `placeholder_globals` off.
    Global {
        /// `module.name` as the pickle spells it.
        name: String,
        /// Offset of the opcode.
        pos: usize,
    },
    /// Anything else.
    Invalid {
        /// What is wrong.
        msg: String,
        /// Offset of the opcode.
        pos: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Global { name, pos } => write!(
                f,
                "the pickle holds an object of class {name} (global at byte {pos}), which shelf does not \
                 decode (it never runs code); read it as a Value with PickleOptions::placeholder_globals \
                 to keep it as its exact pickle bytes"
            ),
            DecodeError::Invalid { msg, pos } => write!(f, "invalid pickle at byte {pos}: {msg}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decoding options, from [`PickleOptions`](crate::PickleOptions).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DecodeOptions {
    /// Decode a pickle naming unknown globals to [`Value::Opaque`]
    /// instead of failing.
    pub placeholder_globals: bool,
}

/// Decodes one pickle. Bytes after `STOP` are ignored, as `pickle.loads` does.
pub(crate) fn decode(input: &[u8], options: DecodeOptions) -> Result<Value, DecodeError> {
    if let Some(value) = single_scalar(input) {
        return Ok(value);
    }
    decode_in_vm(input, options)
}

/// [`decode`] through the VM alone.
fn decode_in_vm(input: &[u8], options: DecodeOptions) -> Result<Value, DecodeError> {
    let mut vm = Vm::new(input, options);
    let item = vm.run().map_err(|msg| vm.error_at(msg))?;
    // A pickle naming a class shelf does not know is kept whole, byte for
    // byte (trailing bytes too: they are what is stored), so writing it
    // back changes nothing.
    let opaque = |vm: &mut Vm<'_>| {
        Value::Opaque(Opaque { globals: std::mem::take(&mut vm.unknown), bytes: input.to_vec() })
    };
    if !vm.unknown.is_empty() {
        return Ok(opaque(&mut vm));
    }
    let value = vm.materialize(item, 0).map_err(|msg| vm.error_at(msg))?;
    if !vm.unknown.is_empty() {
        return Ok(opaque(&mut vm));
    }
    Ok(value)
}

/// The value of a pickle that is one scalar (bytes, str, a small int, a
/// float, None, a bool), read straight from the input: what a shelf of
/// plain values holds in every entry, so the VM and its stacks are set up
/// only for pickles that need them. `None` for anything else (then the VM
/// decodes it, errors included), so the result is always the VM's.
///
/// The shape: `PROTO v` (v <= 5), an optional `FRAME`, the one value
/// opcode, an optional memo store (`MEMOIZE`, `BINPUT`, `LONG_BINPUT`),
/// `STOP`; bytes after `STOP` ignored as the VM ignores them.
fn single_scalar(input: &[u8]) -> Option<Value> {
    let mut pos = 0usize;
    let pos = &mut pos;
    let take = |pos: &mut usize, n: usize| -> Option<&[u8]> {
        let got = input.get(*pos..pos.checked_add(n)?)?;
        *pos += n;
        Some(got)
    };
    let len_u32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if take(pos, 1)? != [PROTO] || take(pos, 1)?[0] > HIGHEST_PROTOCOL {
        return None;
    }
    let mut op = take(pos, 1)?[0];
    if op == FRAME {
        // Only a hint, but its length must fit what follows, as the VM
        // checks: a bad one goes to the VM, which says so.
        let n = u64::from_le_bytes(take(pos, 8)?.try_into().ok()?);
        if n > (input.len() - *pos) as u64 {
            return None;
        }
        op = take(pos, 1)?[0];
    }
    let value = match op {
        SHORT_BINBYTES => {
            let n = take(pos, 1)?[0] as usize;
            Value::Bytes(take(pos, n)?.to_vec())
        }
        BINBYTES => {
            let n = len_u32(take(pos, 4)?);
            Value::Bytes(take(pos, n)?.to_vec())
        }
        SHORT_BINUNICODE => {
            let n = take(pos, 1)?[0] as usize;
            Value::Str(std::str::from_utf8(take(pos, n)?).ok()?.to_owned())
        }
        BINUNICODE => {
            let n = len_u32(take(pos, 4)?);
            Value::Str(std::str::from_utf8(take(pos, n)?).ok()?.to_owned())
        }
        BININT1 => Value::Int(take(pos, 1)?[0].into()),
        BININT2 => Value::Int(u16::from_le_bytes(take(pos, 2)?.try_into().ok()?).into()),
        BININT => Value::Int(i32::from_le_bytes(take(pos, 4)?.try_into().ok()?).into()),
        BINFLOAT => Value::Float(f64::from_be_bytes(take(pos, 8)?.try_into().ok()?)),
        NONE => Value::None,
        NEWTRUE => Value::Bool(true),
        NEWFALSE => Value::Bool(false),
        _ => return None,
    };
    let mut op = take(pos, 1)?[0];
    let memo_arg = match op {
        MEMOIZE => Some(0),
        BINPUT => Some(1),
        LONG_BINPUT => Some(4),
        _ => None,
    };
    if let Some(n) = memo_arg {
        take(pos, n)?;
        op = take(pos, 1)?[0];
    }
    (op == STOP).then_some(value)
}

/// A value on the stack: small scalars inline, everything else in the heap.
#[derive(Debug, Clone, Copy)]
enum Item {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Obj(usize),
}

/// The builtins a pickle may name; they are matched by name, never looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builtin {
    Set,
    FrozenSet,
    ByteArray,
    Bytes,
    List,
    Tuple,
    Dict,
    Int,
    Float,
    Str,
    Bool,
    Object,
    /// `_codecs.encode`, which CPython 3 uses to pickle `bytes` in protocols
    /// 0 to 2 (`Pickler.save_bytes`).
    CodecsEncode,
    /// `copyreg._reconstructor`, which protocols 0 and 1 use for instances of
    /// subclasses of builtins (`copyreg._reduce_ex`).
    Reconstructor,
    /// `builtins.complex`.
    Complex,
    /// `builtins.getattr`, only as `getattr(ZoneInfo, '_unpickle')`.
    Getattr,
    Date,
    Time,
    DateTime,
    TimeDelta,
    /// `datetime.timezone`.
    TimeZone,
    /// `zoneinfo.ZoneInfo`.
    ZoneInfo,
    /// `ZoneInfo._unpickle(key, from_cache)`.
    ZoneUnpickle,
    Decimal,
    Uuid,
    OrderedDict,
    Deque,
    DefaultDict,
    Fraction,
    /// `PurePosixPath` or, with `true`, `PosixPath`.
    Path(bool),
}

impl Builtin {
    /// The builtin type's name, for a `defaultdict`'s factory.
    fn factory_name(self) -> Option<&'static str> {
        let name = match self {
            Builtin::List => "list",
            Builtin::Dict => "dict",
            Builtin::Set => "set",
            Builtin::FrozenSet => "frozenset",
            Builtin::Int => "int",
            Builtin::Float => "float",
            Builtin::Str => "str",
            Builtin::Bytes => "bytes",
            Builtin::ByteArray => "bytearray",
            Builtin::Tuple => "tuple",
            Builtin::Bool => "bool",
            Builtin::Complex => "complex",
            _ => return None,
        };
        DEFAULT_FACTORIES.contains(&name).then_some(name)
    }
}

/// A set or frozenset: materialized elements, deduplicated with Python's
/// equality.
#[derive(Debug, Default)]
struct KeySet {
    items: Vec<Value>,
    index: HashSet<HashKey>,
}

impl KeySet {
    fn insert(&mut self, value: Value, key: HashKey) {
        if self.index.insert(key) {
            self.items.push(value);
        }
    }
}

/// A dict: materialized keys (they are immutable), values by reference.
#[derive(Debug, Default)]
struct Dict {
    pairs: Vec<(Value, Item)>,
    index: HashMap<HashKey, usize>,
}

impl Dict {
    /// `d[key] = value`: an equal key keeps its place and its first object.
    fn insert(&mut self, key: Value, hash: HashKey, value: Item) {
        match self.index.get(&hash) {
            Some(&i) => self.pairs[i].1 = value,
            None => {
                self.index.insert(hash, self.pairs.len());
                self.pairs.push((key, value));
            }
        }
    }
}

/// An object in the arena.
#[derive(Debug)]
enum Obj {
    /// An immutable value already in its final form (`str`, `bytes`, big
    /// `int`, or a copy made for a set element).
    Frozen(Value),
    ByteArray(Vec<u8>),
    List(Vec<Item>),
    Tuple(Vec<Item>),
    Dict(Dict),
    Set(KeySet),
    FrozenSet(KeySet),
    /// A safe builtin, named as the pickle named it.
    Callable(Builtin, String),
    /// A global that was not resolved, or an object made by calling one.
    Global {
        name: String,
        args: Option<Item>,
    },
    /// A `tzinfo` (`datetime.timezone`, `ZoneInfo`).
    Tz(TzInfo),
    OrderedDict(Dict),
    DefaultDict(Option<&'static str>, Dict),
    Deque(Vec<Item>, Option<u64>),
    /// `UUID.__new__(UUID)`, waiting for its state (BUILD).
    BlankUuid,
}

impl Obj {
    fn type_name(&self) -> &'static str {
        match self {
            Obj::Frozen(v) => v.type_name(),
            Obj::ByteArray(_) => "bytearray",
            Obj::List(_) => "list",
            Obj::Tuple(_) => "tuple",
            Obj::Dict(_) => "dict",
            Obj::Set(_) => "set",
            Obj::FrozenSet(_) => "frozenset",
            Obj::Callable(..) => "type",
            Obj::Global { .. } => "object",
            Obj::Tz(_) => "tzinfo",
            Obj::OrderedDict(_) => "collections.OrderedDict",
            Obj::DefaultDict(..) => "collections.defaultdict",
            Obj::Deque(..) => "collections.deque",
            Obj::BlankUuid => "uuid.UUID",
        }
    }
}

/// A dict key or set element in a form that is `Eq + Hash` with Python's
/// equality: `1 == 1.0 == True`, `-0.0 == 0.0`, `frozenset` ignores order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum HashKey {
    None,
    Int(i64),
    BigInt(BigInt),
    Float(u64),
    /// NaN and placeholder objects equal nothing but themselves.
    Unique(usize),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<HashKey>),
    FrozenSet(BTreeSet<HashKey>),
    /// An immutable object of [`PyObject`], by its class and debug form
    /// (a `Decimal('1')` does not equal the int 1 here, as it does in Python).
    Object(String),
}

type Step<T> = Result<T, String>;

struct Vm<'a> {
    input: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run, for error messages.
    op_pos: usize,
    stack: Vec<Item>,
    metastack: Vec<Vec<Item>>,
    memo: HashMap<u64, Item>,
    heap: Vec<Obj>,
    options: DecodeOptions,
    /// Units of output (one per value, one per 8 bytes of text) that may
    /// still be produced: shared references are copied out, and without a
    /// bound a few hundred bytes of pickle could ask for exabytes.
    budget: usize,
    /// Objects being copied out, to catch a structure that contains itself.
    active: HashSet<usize>,
    unique: usize,
    /// The unknown globals named so far, with `placeholder_globals`.
    unknown: Vec<String>,
}

fn truncated() -> String {
    "pickle data was truncated".to_owned()
}

impl<'a> Vm<'a> {
    fn new(input: &'a [u8], options: DecodeOptions) -> Self {
        Vm {
            input,
            pos: 0,
            op_pos: 0,
            stack: Vec::new(),
            metastack: Vec::new(),
            memo: HashMap::new(),
            heap: Vec::new(),
            options,
            budget: input.len().saturating_mul(8).saturating_add(1 << 22),
            active: HashSet::new(),
            unique: 0,
            unknown: Vec::new(),
        }
    }

    // ---- reading (`_Unpickler.read`, `readline`) ----

    fn read(&mut self, n: usize) -> Step<&'a [u8]> {
        // Checked against the input before anything is allocated.
        if n > self.input.len() - self.pos {
            return Err(truncated());
        }
        let s = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn read_array<const N: usize>(&mut self) -> Step<[u8; N]> {
        let s = self.read(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn read_u8(&mut self) -> Step<u8> {
        Ok(self.read(1)?[0])
    }

    fn read_u32(&mut self) -> Step<u32> {
        Ok(u32::from_le_bytes(self.read_array()?))
    }

    fn read_i32(&mut self) -> Step<i32> {
        Ok(i32::from_le_bytes(self.read_array()?))
    }

    fn read_len8(&mut self) -> Step<usize> {
        let n = u64::from_le_bytes(self.read_array()?);
        usize::try_from(n).map_err(|_| format!("length {n} is larger than the address space"))
    }

    /// A line without its `\n`; the line must end in one.
    fn readline(&mut self) -> Step<&'a [u8]> {
        let rest = &self.input[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(truncated)?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    // ---- the stack (`_Unpickler.pop_mark`) ----

    fn push(&mut self, item: Item) {
        self.stack.push(item);
    }

    fn push_obj(&mut self, obj: Obj) -> Item {
        self.heap.push(obj);
        let item = Item::Obj(self.heap.len() - 1);
        self.push(item);
        item
    }

    fn new_obj(&mut self, obj: Obj) -> Item {
        self.heap.push(obj);
        Item::Obj(self.heap.len() - 1)
    }

    fn pop(&mut self) -> Step<Item> {
        self.stack.pop().ok_or_else(|| "stack underflow".to_owned())
    }

    fn top(&self) -> Step<Item> {
        self.stack.last().copied().ok_or_else(|| "stack underflow".to_owned())
    }

    fn pop_mark(&mut self) -> Step<Vec<Item>> {
        let outer = self.metastack.pop().ok_or_else(|| "could not find MARK".to_owned())?;
        Ok(std::mem::replace(&mut self.stack, outer))
    }

    fn obj(&self, item: Item) -> Option<&Obj> {
        match item {
            Item::Obj(i) => Some(&self.heap[i]),
            _ => None,
        }
    }

    fn type_name(&self, item: Item) -> &'static str {
        match item {
            Item::None => "NoneType",
            Item::Bool(_) => "bool",
            Item::Int(_) => "int",
            Item::Float(_) => "float",
            Item::Obj(i) => self.heap[i].type_name(),
        }
    }

    fn str_of(&self, item: Item) -> Option<&str> {
        match self.obj(item) {
            Some(Obj::Frozen(Value::Str(s))) => Some(s),
            _ => None,
        }
    }

    // ---- the loop (`_Unpickler.load`) ----

    fn run(&mut self) -> Step<Item> {
        loop {
            self.op_pos = self.pos;
            let op = self.read(1).map_err(|_| "pickle data was truncated (no STOP opcode)".to_owned())?[0];
            match op {
                MARK => {
                    let stack = std::mem::take(&mut self.stack);
                    self.metastack.push(stack);
                }
                STOP => return self.pop(),
                POP => {
                    // an empty stack pops a mark instead (`load_pop`)
                    if self.stack.pop().is_none() {
                        self.pop_mark()?;
                    }
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                DUP => {
                    let top = self.top()?;
                    self.push(top);
                }
                FLOAT => {
                    let line = self.readline()?;
                    let f = parse_float(line).ok_or_else(|| "could not convert FLOAT argument".to_owned())?;
                    self.push(Item::Float(f));
                }
                INT => {
                    // `I01\n` and `I00\n` are protocol 0's True and False (`load_int`)
                    let line = self.readline()?;
                    match line {
                        b"00" => self.push(Item::Bool(false)),
                        b"01" => self.push(Item::Bool(true)),
                        _ => {
                            let v = parse_int(line)?;
                            self.push_int(v);
                        }
                    }
                }
                BININT => {
                    let v = self.read_i32()?;
                    self.push(Item::Int(v.into()));
                }
                BININT1 => {
                    let v = self.read_u8()?;
                    self.push(Item::Int(v.into()));
                }
                BININT2 => {
                    let v = u16::from_le_bytes(self.read_array()?);
                    self.push(Item::Int(v.into()));
                }
                LONG => {
                    // `L123L\n`, the trailing L optional (`load_long`)
                    let mut line = self.readline()?;
                    if let Some(rest) = line.strip_suffix(b"L") {
                        line = rest;
                    }
                    let v = parse_int(line)?;
                    self.push_int(v);
                }
                LONG1 => {
                    let n = self.read_u8()?;
                    let data = self.read(n.into())?;
                    self.push_int(BigInt::from_signed_bytes_le(data));
                }
                LONG4 => {
                    let n = self.read_i32()?;
                    let n =
                        usize::try_from(n).map_err(|_| "LONG pickle has negative byte count".to_owned())?;
                    let data = self.read(n)?;
                    self.push_int(BigInt::from_signed_bytes_le(data));
                }
                NONE => self.push(Item::None),
                NEWTRUE => self.push(Item::Bool(true)),
                NEWFALSE => self.push(Item::Bool(false)),
                BINFLOAT => {
                    let f = f64::from_be_bytes(self.read_array()?);
                    self.push(Item::Float(f));
                }
                PERSID | BINPERSID => return Err("persistent IDs are not supported".to_owned()),
                STRING => {
                    // a quoted Python 2 repr (`load_string`)
                    let line = self.readline()?;
                    let inner = match line {
                        [q, inner @ .., q2] if q == q2 && (*q == b'"' || *q == b'\'') => inner,
                        _ => return Err("the STRING opcode argument must be quoted".to_owned()),
                    };
                    let data = escape_decode(inner)?;
                    self.push_py2_str(data);
                }
                BINSTRING => {
                    let n = self.read_i32()?;
                    let n = usize::try_from(n)
                        .map_err(|_| "BINSTRING pickle has negative byte count".to_owned())?;
                    let data = self.read(n)?.to_vec();
                    self.push_py2_str(data);
                }
                SHORT_BINSTRING => {
                    let n = self.read_u8()?;
                    let data = self.read(n.into())?.to_vec();
                    self.push_py2_str(data);
                }
                UNICODE => {
                    let line = self.readline()?;
                    let s = raw_unicode_escape_decode(line)?;
                    self.push_obj(Obj::Frozen(Value::Str(s)));
                }
                BINUNICODE => {
                    let n = self.read_u32()? as usize;
                    self.load_utf8(n)?;
                }
                SHORT_BINUNICODE => {
                    let n = self.read_u8()?;
                    self.load_utf8(n.into())?;
                }
                BINUNICODE8 => {
                    let n = self.read_len8()?;
                    self.load_utf8(n)?;
                }
                BINBYTES => {
                    let n = self.read_u32()? as usize;
                    let data = self.read(n)?.to_vec();
                    self.push_obj(Obj::Frozen(Value::Bytes(data)));
                }
                SHORT_BINBYTES => {
                    let n = self.read_u8()?;
                    let data = self.read(n.into())?.to_vec();
                    self.push_obj(Obj::Frozen(Value::Bytes(data)));
                }
                BINBYTES8 => {
                    let n = self.read_len8()?;
                    let data = self.read(n)?.to_vec();
                    self.push_obj(Obj::Frozen(Value::Bytes(data)));
                }
                BYTEARRAY8 => {
                    let n = self.read_len8()?;
                    let data = self.read(n)?.to_vec();
                    self.push_obj(Obj::ByteArray(data));
                }
                NEXT_BUFFER | READONLY_BUFFER => {
                    return Err("out-of-band buffers (NEXT_BUFFER, READONLY_BUFFER) are not supported".into());
                }
                EMPTY_TUPLE => {
                    self.push_obj(Obj::Tuple(Vec::new()));
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push_obj(Obj::Tuple(items));
                }
                TUPLE1..=TUPLE3 => {
                    let n = usize::from(op - TUPLE1 + 1);
                    if self.stack.len() < n {
                        return Err("stack underflow".to_owned());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_obj(Obj::Tuple(items));
                }
                EMPTY_LIST => {
                    self.push_obj(Obj::List(Vec::new()));
                }
                LIST => {
                    let items = self.pop_mark()?;
                    self.push_obj(Obj::List(items));
                }
                EMPTY_DICT => {
                    self.push_obj(Obj::Dict(Dict::default()));
                }
                DICT => {
                    let items = self.pop_mark()?;
                    let mut dict = Dict::default();
                    self.fill_dict(&mut dict, &items)?;
                    self.push_obj(Obj::Dict(dict));
                }
                EMPTY_SET => {
                    self.push_obj(Obj::Set(KeySet::default()));
                }
                FROZENSET => {
                    let items = self.pop_mark()?;
                    let set = self.key_set(&items)?;
                    self.push_obj(Obj::FrozenSet(set));
                }
                APPEND => {
                    let value = self.pop()?;
                    let list = self.top()?;
                    self.extend_list(list, &[value])?;
                }
                APPENDS => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.extend_list(list, &items)?;
                }
                SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.set_items(dict, &[key, value])?;
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    self.set_items(dict, &items)?;
                }
                ADDITEMS => {
                    let items = self.pop_mark()?;
                    let set = self.top()?;
                    self.add_items(set, &items)?;
                }
                GET => {
                    let line = self.readline()?;
                    let id = parse_memo_id(line)?;
                    self.get(id)?;
                }
                BINGET => {
                    let id = self.read_u8()?;
                    self.get(id.into())?;
                }
                LONG_BINGET => {
                    let id = self.read_u32()?;
                    self.get(id.into())?;
                }
                PUT => {
                    let line = self.readline()?;
                    let id = parse_memo_id(line)?;
                    self.put(id)?;
                }
                BINPUT => {
                    let id = self.read_u8()?;
                    self.put(id.into())?;
                }
                LONG_BINPUT => {
                    let id = self.read_u32()?;
                    self.put(id.into())?;
                }
                MEMOIZE => {
                    let id = self.memo.len() as u64;
                    self.put(id)?;
                }
                GLOBAL => {
                    let module = utf8_line(self.readline()?)?;
                    let name = utf8_line(self.readline()?)?;
                    let global = self.find_class(module, name)?;
                    self.push(global);
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(module), Some(name)) = (self.str_of(module), self.str_of(name)) else {
                        return Err("STACK_GLOBAL requires str".to_owned());
                    };
                    let (module, name) = (module.to_owned(), name.to_owned());
                    let global = self.find_class(&module, &name)?;
                    self.push(global);
                }
                EXT1 | EXT2 | EXT4 => {
                    return Err("extension codes (EXT1, EXT2, EXT4) are not supported".to_owned());
                }
                REDUCE => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let args = self.arg_items(args)?;
                    let result = self.call(func, args, false)?;
                    self.push(result);
                }
                NEWOBJ => {
                    // cls.__new__(cls, *args)
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let args = self.arg_items(args)?;
                    let result = self.call(cls, args, true)?;
                    self.push(result);
                }
                NEWOBJ_EX => {
                    // a placeholder keeps `(args, kwargs)`; the
                    // builtins take no keyword arguments that matter here
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let result = if matches!(self.obj(cls), Some(Obj::Global { .. })) {
                        self.call(cls, vec![args, kwargs], true)?
                    } else {
                        let args = self.arg_items(args)?;
                        self.call(cls, args, true)?
                    };
                    self.push(result);
                }
                INST => {
                    // `_Unpickler._instantiate`
                    let module = utf8_line(self.readline()?)?;
                    let name = utf8_line(self.readline()?)?;
                    let cls = self.find_class(module, name)?;
                    let args = self.pop_mark()?;
                    let result = self.instantiate(cls, args)?;
                    self.push(result);
                }
                OBJ => {
                    let mut args = self.pop_mark()?;
                    if args.is_empty() {
                        return Err("stack underflow".to_owned());
                    }
                    let cls = args.remove(0);
                    let result = self.instantiate(cls, args)?;
                    self.push(result);
                }
                BUILD => {
                    let state = self.pop()?;
                    let inst = self.top()?;
                    self.build(inst, state)?;
                }
                PROTO => {
                    let proto = self.read_u8()?;
                    if proto > HIGHEST_PROTOCOL {
                        return Err(format!("unsupported pickle protocol: {proto}"));
                    }
                }
                FRAME => {
                    // only a hint for buffering; its length must fit
                    let n = self.read_len8()?;
                    if n > self.input.len() - self.pos {
                        return Err("pickle exhausted before end of frame".to_owned());
                    }
                }
                _ => return Err(format!("invalid load key, {:?}", char::from(op))),
            }
        }
    }

    fn push_int(&mut self, v: BigInt) {
        match i64::try_from(&v) {
            Ok(i) => self.push(Item::Int(i)),
            Err(_) => {
                self.push_obj(Obj::Frozen(Value::BigInt(v)));
            }
        }
    }

    fn push_py2_str(&mut self, data: Vec<u8>) {
        let value = match String::from_utf8(data) {
            Ok(s) => Value::Str(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        };
        self.push_obj(Obj::Frozen(value));
    }

    fn load_utf8(&mut self, n: usize) -> Step<()> {
        let data = self.read(n)?;
        // CPython writes lone surrogates with 'surrogatepass'; a Rust
        // string cannot hold them.
        let s = std::str::from_utf8(data).map_err(|_| "string is not valid UTF-8".to_owned())?;
        self.push_obj(Obj::Frozen(Value::Str(s.to_owned())));
        Ok(())
    }

    fn get(&mut self, id: u64) -> Step<()> {
        let item = *self.memo.get(&id).ok_or_else(|| format!("memo value not found at index {id}"))?;
        self.push(item);
        Ok(())
    }

    fn put(&mut self, id: u64) -> Step<()> {
        let top = self.top()?;
        self.memo.insert(id, top);
        Ok(())
    }

    // ---- globals (`_Unpickler.find_class`) ----

    fn find_class(&mut self, module: &str, name: &str) -> Step<Item> {
        // `_compat_pickle.IMPORT_MAPPING` for the Python 2 names
        let canonical = match module {
            "__builtin__" => "builtins",
            "copy_reg" => "copyreg",
            m => m,
        };
        let builtin = match (canonical, name) {
            ("builtins", "set") => Some(Builtin::Set),
            ("builtins", "frozenset") => Some(Builtin::FrozenSet),
            ("builtins", "bytearray") => Some(Builtin::ByteArray),
            ("builtins", "bytes") => Some(Builtin::Bytes),
            ("builtins", "list") => Some(Builtin::List),
            ("builtins", "tuple") => Some(Builtin::Tuple),
            ("builtins", "dict") => Some(Builtin::Dict),
            ("builtins", "int" | "long") => Some(Builtin::Int),
            ("builtins", "float") => Some(Builtin::Float),
            ("builtins", "str" | "unicode") => Some(Builtin::Str),
            ("builtins", "bool") => Some(Builtin::Bool),
            ("builtins", "object") => Some(Builtin::Object),
            ("_codecs", "encode") => Some(Builtin::CodecsEncode),
            ("copyreg", "_reconstructor") => Some(Builtin::Reconstructor),
            ("builtins", "complex") => Some(Builtin::Complex),
            ("builtins", "getattr") => Some(Builtin::Getattr),
            ("datetime", "date") => Some(Builtin::Date),
            ("datetime", "time") => Some(Builtin::Time),
            ("datetime", "datetime") => Some(Builtin::DateTime),
            ("datetime", "timedelta") => Some(Builtin::TimeDelta),
            ("datetime", "timezone") => Some(Builtin::TimeZone),
            ("zoneinfo", "ZoneInfo") => Some(Builtin::ZoneInfo),
            ("decimal" | "_decimal" | "_pydecimal", "Decimal") => Some(Builtin::Decimal),
            ("uuid", "UUID") => Some(Builtin::Uuid),
            ("collections", "OrderedDict") => Some(Builtin::OrderedDict),
            ("collections", "deque") => Some(Builtin::Deque),
            ("collections", "defaultdict") => Some(Builtin::DefaultDict),
            ("fractions", "Fraction") => Some(Builtin::Fraction),
            // 3.13 moved the classes to `pathlib._local`
            ("pathlib" | "pathlib._local", "PurePosixPath") => Some(Builtin::Path(false)),
            ("pathlib" | "pathlib._local", "PosixPath") => Some(Builtin::Path(true)),
            _ => None,
        };
        let full = format!("{module}.{name}");
        match builtin {
            Some(b) => Ok(self.new_obj(Obj::Callable(b, full))),
            None if self.options.placeholder_globals => {
                self.note_unknown(&full);
                Ok(self.new_obj(Obj::Global { name: full, args: None }))
            }
            None => Err(GLOBAL_MARKER.to_owned() + &full),
        }
    }

    /// The elements of an argument tuple (any iterable of `REDUCE`'s
    /// `func(*args)`).
    fn arg_items(&mut self, args: Item) -> Step<Vec<Item>> {
        self.iterate(args)
            .map_err(|_| format!("call arguments must be a tuple, not {}", self.type_name(args)))
    }

    /// `iter(item)` for the containers builtins are called with.
    fn iterate(&mut self, item: Item) -> Step<Vec<Item>> {
        let Some(Obj::List(v) | Obj::Tuple(v)) = self.obj(item) else {
            let values: Vec<Value> = match self.obj(item) {
                Some(Obj::Set(s) | Obj::FrozenSet(s)) => s.items.clone(),
                Some(Obj::Dict(d)) => d.pairs.iter().map(|(k, _)| k.clone()).collect(),
                Some(Obj::Frozen(Value::Str(s))) => s.chars().map(|c| Value::Str(c.into())).collect(),
                Some(Obj::Frozen(Value::Bytes(b))) | Some(Obj::ByteArray(b)) => {
                    b.iter().map(|&x| Value::Int(x.into())).collect()
                }
                _ => return Err(format!("'{}' object is not iterable", self.type_name(item))),
            };
            for v in &values {
                self.charge_value(v, 0)?;
            }
            return Ok(values.into_iter().map(|v| self.frozen(v)).collect());
        };
        Ok(v.clone())
    }

    fn frozen(&mut self, v: Value) -> Item {
        match v {
            Value::None => Item::None,
            Value::Bool(b) => Item::Bool(b),
            Value::Int(i) => Item::Int(i),
            Value::Float(f) => Item::Float(f),
            v => self.new_obj(Obj::Frozen(v)),
        }
    }

    /// `func(*args)` (`load_reduce`) or, with `new`, `cls.__new__(cls, *args)`
    /// (`load_newobj`), for the safe builtins and placeholders only.
    fn call(&mut self, func: Item, args: Vec<Item>, new: bool) -> Step<Item> {
        let (builtin, fname) = match self.obj(func) {
            Some(Obj::Callable(b, name)) => (*b, name.clone()),
            Some(Obj::Global { name, .. }) => {
                let name = name.clone();
                let args = self.new_obj(Obj::Tuple(args));
                return Ok(self.new_obj(Obj::Global { name, args: Some(args) }));
            }
            _ => return Err(format!("'{}' object is not callable", self.type_name(func))),
        };
        let arity = |n: usize| -> Step<()> {
            if args.len() > n {
                Err(format!("{fname}() takes at most {n} arguments ({} given)", args.len()))
            } else {
                Ok(())
            }
        };
        // `__new__` of the mutable containers ignores its arguments; the
        // contents follow as APPENDS, SETITEMS or BUILD.
        if new && matches!(builtin, Builtin::List | Builtin::Dict | Builtin::Set | Builtin::ByteArray) {
            return Ok(self.new_obj(match builtin {
                Builtin::List => Obj::List(Vec::new()),
                Builtin::Dict => Obj::Dict(Dict::default()),
                Builtin::Set => Obj::Set(KeySet::default()),
                _ => Obj::ByteArray(Vec::new()),
            }));
        }
        if new && builtin == Builtin::Uuid {
            // `copyreg.__newobj__`: the state follows as BUILD
            return Ok(self.new_obj(Obj::BlankUuid));
        }
        match builtin {
            Builtin::Set | Builtin::FrozenSet => {
                arity(1)?;
                let items = match args.first() {
                    Some(&it) => self.iterate(it)?,
                    None => Vec::new(),
                };
                let set = self.key_set(&items)?;
                Ok(self.new_obj(if builtin == Builtin::Set { Obj::Set(set) } else { Obj::FrozenSet(set) }))
            }
            Builtin::List | Builtin::Tuple => {
                arity(1)?;
                let items = match args.first() {
                    Some(&it) => self.iterate(it)?,
                    None => Vec::new(),
                };
                Ok(self.new_obj(if builtin == Builtin::List { Obj::List(items) } else { Obj::Tuple(items) }))
            }
            Builtin::Dict => {
                arity(1)?;
                let mut dict = Dict::default();
                match args.first().map(|&a| (a, self.obj(a))) {
                    None => {}
                    Some((_, Some(Obj::Dict(d)))) => {
                        for (k, v) in d.pairs.clone() {
                            let h = self.hash_key(&k)?;
                            dict.insert(k, h, v);
                        }
                    }
                    Some((a, _)) => {
                        return Err(format!("dict() of a {} is not supported", self.type_name(a)));
                    }
                }
                Ok(self.new_obj(Obj::Dict(dict)))
            }
            Builtin::ByteArray | Builtin::Bytes => {
                arity(2)?;
                let data = match args.as_slice() {
                    [] => Vec::new(),
                    [a] => match self.obj(*a) {
                        Some(Obj::Frozen(Value::Bytes(b)) | Obj::ByteArray(b)) => b.clone(),
                        _ => return Err(format!("{fname}() of a {} is not supported", self.type_name(*a))),
                    },
                    [s, enc] => self.encode_str(*s, *enc)?,
                    _ => unreachable!("arity checked"),
                };
                Ok(if builtin == Builtin::Bytes {
                    self.new_obj(Obj::Frozen(Value::Bytes(data)))
                } else {
                    self.new_obj(Obj::ByteArray(data))
                })
            }
            Builtin::CodecsEncode => {
                // `_codecs.encode(obj, encoding='utf-8')`
                arity(2)?;
                let data = match args.as_slice() {
                    [s] => self.encode_text(*s, "utf-8")?,
                    [s, enc] => self.encode_str(*s, *enc)?,
                    _ => return Err(format!("{fname}() missing its argument")),
                };
                Ok(self.new_obj(Obj::Frozen(Value::Bytes(data))))
            }
            Builtin::Int | Builtin::Float | Builtin::Str | Builtin::Bool => {
                arity(1)?;
                match args.first() {
                    None => Ok(match builtin {
                        Builtin::Int => Item::Int(0),
                        Builtin::Float => Item::Float(0.0),
                        Builtin::Bool => Item::Bool(false),
                        _ => self.new_obj(Obj::Frozen(Value::Str(String::new()))),
                    }),
                    Some(&a) => {
                        let same = matches!(
                            (builtin, a, self.obj(a)),
                            (Builtin::Int, Item::Int(_), _)
                                | (Builtin::Int, _, Some(Obj::Frozen(Value::BigInt(_))))
                                | (Builtin::Float, Item::Float(_), _)
                                | (Builtin::Bool, Item::Bool(_), _)
                                | (Builtin::Str, _, Some(Obj::Frozen(Value::Str(_))))
                        );
                        if same {
                            Ok(a)
                        } else {
                            Err(format!("{fname}() of a {} is not supported", self.type_name(a)))
                        }
                    }
                }
            }
            Builtin::Reconstructor => {
                // `copyreg._reconstructor(cls, base, state)`: `base.__new__(cls, state)`
                let [cls, base, state] = args.as_slice() else {
                    return Err(format!("{fname}() takes 3 arguments ({} given)", args.len()));
                };
                if let Some(Obj::Global { .. }) = self.obj(*cls) {
                    return self.call(*cls, vec![*state], false);
                }
                let same = match (self.obj(*cls), self.obj(*base)) {
                    // `UUID` is a plain class: `object.__new__(UUID)`
                    (Some(Obj::Callable(Builtin::Uuid, _)), Some(Obj::Callable(Builtin::Object, _))) => {
                        return Ok(self.new_obj(Obj::BlankUuid));
                    }
                    (Some(Obj::Callable(c, _)), Some(Obj::Callable(b, _))) => c == b,
                    _ => false,
                };
                if !same {
                    return Err(format!("{fname}() of a subclass is not supported"));
                }
                let args = if matches!(state, Item::None) { Vec::new() } else { vec![*state] };
                self.call(*cls, args, false)
            }
            Builtin::Object => Err(format!("calling {fname} is not supported")),
            _ => self.call_python(builtin, &fname, args),
        }
    }

    /// `_Unpickler._instantiate` for INST and OBJ.
    fn instantiate(&mut self, cls: Item, args: Vec<Item>) -> Step<Item> {
        self.call(cls, args, false)
    }

    /// `load_build`: only placeholders take a state; a falsy state is a no-op
    /// on anything, as in CPython.
    fn build(&mut self, inst: Item, state: Item) -> Step<()> {
        if let (Item::Obj(i), Some(Obj::BlankUuid)) = (inst, self.obj(inst)) {
            let u = self.uuid_state(state)?;
            self.heap[i] = Obj::Frozen(Value::Object(PyObject::Uuid(u)));
            return Ok(());
        }
        if let Some(Obj::Global { .. }) = self.obj(inst) {
            let Item::Obj(i) = inst else { unreachable!("obj() returned Some") };
            let old = match &self.heap[i] {
                Obj::Global { args, .. } => *args,
                _ => unreachable!("matched above"),
            };
            let new = match old {
                None => state,
                Some(a) => self.new_obj(Obj::Tuple(vec![a, state])),
            };
            if let Obj::Global { args, .. } = &mut self.heap[i] {
                *args = Some(new);
            }
            return Ok(());
        }
        let falsy = match (state, self.obj(state)) {
            (Item::None, _) => true,
            (_, Some(Obj::Dict(d))) => d.pairs.is_empty(),
            (_, Some(Obj::Tuple(t))) => t.is_empty(),
            _ => false,
        };
        if falsy {
            Ok(())
        } else {
            Err(format!("cannot set the state (BUILD) of a {}", self.type_name(inst)))
        }
    }

    fn encode_str(&mut self, s: Item, enc: Item) -> Step<Vec<u8>> {
        let enc = self.str_of(enc).ok_or("encoding must be a str")?.to_owned();
        self.encode_text(s, &enc)
    }

    /// `str.encode(encoding)` for the encodings CPython's picklers use.
    fn encode_text(&self, s: Item, encoding: &str) -> Step<Vec<u8>> {
        let text = self.str_of(s).ok_or_else(|| format!("cannot encode a {}", self.type_name(s)))?;
        let norm = encoding.to_ascii_lowercase().replace('_', "-");
        let limit = match norm.as_str() {
            "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1" | "l1" => 0xff,
            "ascii" | "us-ascii" => 0x7f,
            "utf-8" | "utf8" => return Ok(text.as_bytes().to_vec()),
            _ => return Err(format!("unsupported encoding {encoding:?}")),
        };
        text.chars()
            .map(|c| u8::try_from(u32::from(c)).ok().filter(|&b| u32::from(b) <= limit))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| format!("'{encoding}' codec can't encode the text"))
    }

    // ---- mutation ----

    fn extend_list(&mut self, list: Item, items: &[Item]) -> Step<()> {
        match list {
            Item::Obj(i) => match &mut self.heap[i] {
                Obj::List(v) => {
                    v.extend_from_slice(items);
                    Ok(())
                }
                Obj::Deque(v, maxlen) => {
                    v.extend_from_slice(items);
                    // a bounded deque drops from the left as it is extended
                    if let Some(m) = maxlen.and_then(|m| usize::try_from(m).ok())
                        && v.len() > m
                    {
                        v.drain(..v.len() - m);
                    }
                    Ok(())
                }
                // an unknown object's contents stay in the kept bytes
                Obj::Global { .. } => Ok(()),
                other => Err(format!("cannot append to a {}", other.type_name())),
            },
            other => Err(format!("cannot append to a {}", self.type_name(other))),
        }
    }

    fn set_items(&mut self, dict: Item, items: &[Item]) -> Step<()> {
        let Item::Obj(i) = dict else {
            return Err(format!("cannot set items of a {}", self.type_name(dict)));
        };
        let d = match &mut self.heap[i] {
            Obj::Dict(d) | Obj::OrderedDict(d) | Obj::DefaultDict(_, d) => d,
            Obj::Global { .. } => return Ok(()),
            other => return Err(format!("cannot set items of a {}", other.type_name())),
        };
        let mut d = std::mem::take(d);
        let result = self.fill_dict(&mut d, items);
        if let Obj::Dict(slot) | Obj::OrderedDict(slot) | Obj::DefaultDict(_, slot) = &mut self.heap[i] {
            *slot = d;
        }
        result
    }

    fn fill_dict(&mut self, dict: &mut Dict, items: &[Item]) -> Step<()> {
        if !items.len().is_multiple_of(2) {
            return Err("odd number of items for a dict".to_owned());
        }
        for pair in items.chunks_exact(2) {
            let (key, hash) = self.key(pair[0])?;
            dict.insert(key, hash, pair[1]);
        }
        Ok(())
    }

    fn add_items(&mut self, set: Item, items: &[Item]) -> Step<()> {
        let Item::Obj(i) = set else {
            return Err(format!("cannot add items to a {}", self.type_name(set)));
        };
        let s = match &mut self.heap[i] {
            Obj::Set(s) => s,
            Obj::Global { .. } => return Ok(()),
            other => return Err(format!("cannot add items to a {}", other.type_name())),
        };
        let mut s = std::mem::take(s);
        let result = items.iter().try_for_each(|&it| {
            let (v, h) = self.key(it)?;
            s.insert(v, h);
            Ok(())
        });
        self.heap[i] = Obj::Set(s);
        result
    }

    fn key_set(&mut self, items: &[Item]) -> Step<KeySet> {
        let mut set = KeySet::default();
        for &it in items {
            let (v, h) = self.key(it)?;
            set.insert(v, h);
        }
        Ok(set)
    }

    /// A dict key or set element: copied out now (it is immutable) and
    /// hashed with Python's equality.
    fn key(&mut self, item: Item) -> Step<(Value, HashKey)> {
        let value = self.materialize(item, 0)?;
        let hash = self.hash_key(&value)?;
        Ok((value, hash))
    }

    /// The hash key of a copied-out key. Plain loops keep the native frames
    /// few per level: keys may be nested up to [`MAX_DEPTH`].
    fn hash_key(&mut self, v: &Value) -> Step<HashKey> {
        Ok(match v {
            Value::None => HashKey::None,
            Value::Bool(b) => HashKey::Int((*b).into()),
            Value::Int(i) => HashKey::Int(*i),
            Value::BigInt(b) => HashKey::BigInt(b.clone()),
            Value::Float(f) => match float_key(*f) {
                Some(k) => k,
                None => self.unique_key(),
            },
            Value::Str(s) => HashKey::Str(s.clone()),
            Value::Bytes(b) => HashKey::Bytes(b.clone()),
            Value::Tuple(items) => {
                let mut keys = Vec::with_capacity(items.len());
                for i in items {
                    keys.push(self.hash_key(i)?);
                }
                HashKey::Tuple(keys)
            }
            Value::FrozenSet(items) => {
                let mut keys = BTreeSet::new();
                for i in items {
                    keys.insert(self.hash_key(i)?);
                }
                HashKey::FrozenSet(keys)
            }
            Value::Global { .. } | Value::Opaque(_) => self.unique_key(),
            Value::Object(
                o @ (PyObject::Date(_)
                | PyObject::Time(_)
                | PyObject::DateTime(_)
                | PyObject::TimeDelta(_)
                | PyObject::Decimal(_)
                | PyObject::Uuid(_)
                | PyObject::Complex { .. }
                | PyObject::Fraction { .. }
                | PyObject::Path { .. }),
            ) => HashKey::Object(format!("{o:?}")),
            other => return Err(format!("unhashable type: '{}'", other.type_name())),
        })
    }

    fn unique_key(&mut self) -> HashKey {
        self.unique += 1;
        HashKey::Unique(self.unique)
    }

    // ---- copying out ----

    fn charge(&mut self, units: usize) -> Step<()> {
        self.budget = self.budget.checked_sub(units).ok_or_else(|| {
            "shared references expand to more data than the decoding budget allows".to_owned()
        })?;
        Ok(())
    }

    /// Charges a copy of an already built value; `depth` is where it goes.
    fn charge_value(&mut self, v: &Value, depth: usize) -> Step<()> {
        let mut todo = vec![(v, depth)];
        while let Some((v, depth)) = todo.pop() {
            if depth > MAX_DEPTH {
                return Err(format!("values nested deeper than {MAX_DEPTH} levels"));
            }
            self.charge(1)?;
            match v {
                Value::Str(s) => self.charge(s.len() / 8)?,
                Value::Bytes(b) | Value::ByteArray(b) => self.charge(b.len() / 8)?,
                Value::BigInt(b) => self.charge((b.bits() / 64) as usize)?,
                Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
                    todo.extend(items.iter().map(|i| (i, depth + 1)));
                }
                Value::Dict(pairs) => {
                    todo.extend(pairs.iter().flat_map(|(k, v)| [(k, depth + 1), (v, depth + 1)]));
                }
                Value::Global { args, .. } => todo.push((args, depth + 1)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Copies an item out of the arena into a [`Value`] tree, with an
    /// explicit stack rather than recursion: a deep pickle must not
    /// overflow the native stack of a debug build.
    fn materialize(&mut self, item: Item, depth: usize) -> Step<Value> {
        let mut frames: Vec<Frame> = Vec::new();
        let mut pending = Some(item);
        let mut result: Option<Value> = None;
        loop {
            if let Some(it) = pending.take() {
                match self.open(it, depth + frames.len()) {
                    Ok(Opened::Done(v)) => result = Some(v),
                    Ok(Opened::Frame(f)) => frames.push(f),
                    Err(e) => {
                        for f in &frames {
                            self.active.remove(&f.obj);
                        }
                        return Err(e);
                    }
                }
            }
            let Some(top) = frames.last_mut() else {
                return Ok(result.expect("an item was opened"));
            };
            if let Some(v) = result.take() {
                top.done.push(v);
            }
            if let Some(&next) = top.items.get(top.done.len()) {
                pending = Some(next);
            } else {
                let f = frames.pop().expect("just looked at it");
                self.active.remove(&f.obj);
                result = Some(f.finish());
            }
        }
    }

    /// Starts copying one item: scalars and immutable values are done at
    /// once, containers become a frame whose children are copied next.
    fn open(&mut self, item: Item, depth: usize) -> Step<Opened> {
        let i = match item {
            Item::None => return Ok(Opened::Done(Value::None)),
            Item::Bool(b) => return Ok(Opened::Done(Value::Bool(b))),
            Item::Int(n) => return Ok(Opened::Done(Value::Int(n))),
            Item::Float(f) => return Ok(Opened::Done(Value::Float(f))),
            Item::Obj(i) => i,
        };
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH} levels"));
        }
        self.charge(1)?;
        let frame = |kind, items: Vec<Item>| Opened::Frame(Frame { obj: i, kind, done: Vec::new(), items });
        let opened = match &self.heap[i] {
            Obj::Frozen(v) => {
                let v = v.clone();
                self.charge_value(&v, depth)?;
                return Ok(Opened::Done(v));
            }
            Obj::ByteArray(b) => {
                let b = b.clone();
                self.charge(b.len() / 8)?;
                return Ok(Opened::Done(Value::ByteArray(b)));
            }
            Obj::Set(s) | Obj::FrozenSet(s) => {
                let set = matches!(self.heap[i], Obj::Set(_));
                let items = s.items.clone();
                items.iter().try_for_each(|v| self.charge_value(v, depth + 1))?;
                return Ok(Opened::Done(if set { Value::Set(items) } else { Value::FrozenSet(items) }));
            }
            Obj::Callable(_, name) => {
                if !self.options.placeholder_globals {
                    return Err(format!("the type {name} itself is not a value"));
                }
                let name = name.clone();
                self.note_unknown(&name);
                return Ok(Opened::Done(Value::None));
            }
            Obj::Tz(_) => {
                // a time zone alone is no value of the model: only inside a time
                if !self.options.placeholder_globals {
                    return Err("a tzinfo alone (not inside a time or datetime) is not decoded".to_owned());
                }
                self.note_unknown("datetime.tzinfo");
                return Ok(Opened::Done(Value::None));
            }
            Obj::BlankUuid => return Err("a uuid.UUID without its state".to_owned()),
            Obj::OrderedDict(d) | Obj::DefaultDict(_, d) => {
                let factory = match &self.heap[i] {
                    Obj::DefaultDict(f, _) => Some(*f),
                    _ => None,
                };
                let (keys, values): (Vec<Value>, Vec<Item>) = d.pairs.iter().cloned().unzip();
                keys.iter().try_for_each(|k| self.charge_value(k, depth + 1))?;
                match factory {
                    None => frame(Kind::OrderedDict(keys), values),
                    Some(f) => frame(Kind::DefaultDict(f, keys), values),
                }
            }
            Obj::Deque(v, maxlen) => frame(Kind::Deque(*maxlen), v.clone()),
            Obj::List(v) => frame(Kind::List, v.clone()),
            Obj::Tuple(v) => frame(Kind::Tuple, v.clone()),
            Obj::Dict(d) => {
                let (keys, values): (Vec<Value>, Vec<Item>) = d.pairs.iter().cloned().unzip();
                keys.iter().try_for_each(|k| self.charge_value(k, depth + 1))?;
                frame(Kind::Dict(keys), values)
            }
            Obj::Global { name, args } => frame(Kind::Global(name.clone()), args.iter().copied().collect()),
        };
        if !self.active.insert(i) {
            return Err(format!(
                "recursive structure: a {} contains itself, which a Value cannot hold",
                self.heap[i].type_name()
            ));
        }
        Ok(opened)
    }
}

/// What [`Vm::open`] made of an item.
enum Opened {
    Done(Value),
    Frame(Frame),
}

/// A container being copied out: its children, and those copied so far.
struct Frame {
    obj: usize,
    kind: Kind,
    items: Vec<Item>,
    done: Vec<Value>,
}

enum Kind {
    List,
    Tuple,
    /// The keys, already values; `items` are the values.
    Dict(Vec<Value>),
    /// The name; `items` holds the arguments, if any.
    Global(String),
    OrderedDict(Vec<Value>),
    DefaultDict(Option<&'static str>, Vec<Value>),
    Deque(Option<u64>),
}

impl Frame {
    fn finish(self) -> Value {
        match self.kind {
            Kind::List => Value::List(self.done),
            Kind::Tuple => Value::Tuple(self.done),
            Kind::Dict(keys) => Value::Dict(keys.into_iter().zip(self.done).collect()),
            Kind::Global(name) => {
                let args = self.done.into_iter().next().unwrap_or(Value::None);
                Value::Global { name, args: Box::new(args) }
            }
            Kind::OrderedDict(keys) => {
                Value::Object(PyObject::OrderedDict(keys.into_iter().zip(self.done).collect()))
            }
            Kind::DefaultDict(factory, keys) => Value::Object(PyObject::DefaultDict {
                factory: factory.map(str::to_owned),
                pairs: keys.into_iter().zip(self.done).collect(),
            }),
            Kind::Deque(maxlen) => Value::Object(PyObject::Deque { items: self.done, maxlen }),
        }
    }
}

/// The marker by which `find_class` tells `decode` that a global was refused.
const GLOBAL_MARKER: &str = "\0global:";

impl DecodeError {
    /// Converts the VM's string errors, recognising a refused global.
    fn from_msg(msg: String, pos: usize) -> Self {
        match msg.strip_prefix(GLOBAL_MARKER) {
            Some(name) => DecodeError::Global { name: name.to_owned(), pos },
            None => DecodeError::Invalid { msg, pos },
        }
    }
}

impl Vm<'_> {
    fn error_at(&self, msg: String) -> DecodeError {
        DecodeError::from_msg(msg, self.op_pos)
    }
}

/// The hash key of a float: integral floats equal the int, NaN nothing.
fn float_key(f: f64) -> Option<HashKey> {
    if f.is_nan() {
        return None;
    }
    if f.is_finite() && f.fract() == 0.0 {
        if f.abs() < 9.2e18 {
            return Some(HashKey::Int(f as i64));
        }
        // An integral float beyond i64: mantissa * 2^exp, exactly.
        let bits = f.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i64 - 1075;
        let mantissa = BigInt::from((bits & ((1 << 52) - 1)) | (1 << 52));
        let mut n = if exp >= 0 { mantissa << (exp as usize) } else { mantissa >> ((-exp) as usize) };
        if f < 0.0 {
            n = -n;
        }
        return Some(match i64::try_from(&n) {
            Ok(i) => HashKey::Int(i),
            Err(_) => HashKey::BigInt(n),
        });
    }
    Some(HashKey::Float(f.to_bits()))
}

fn utf8_line(line: &[u8]) -> Step<&str> {
    std::str::from_utf8(line).map_err(|_| "global name is not valid UTF-8".to_owned())
}

/// The decimal argument of GET and PUT (`int(line)` in `load_get`).
fn parse_memo_id(line: &[u8]) -> Step<u64> {
    let text = String::from_utf8_lossy(line);
    text.trim().parse().map_err(|_| format!("invalid memo index {text:?}"))
}

/// `int(text, 0)`: optional sign, `0x`/`0o`/`0b` prefixes, underscores
/// between digits, surrounding whitespace.
fn parse_int(line: &[u8]) -> Step<BigInt> {
    let bad = || format!("invalid literal for int() with base 0: {:?}", String::from_utf8_lossy(line));
    let text = std::str::from_utf8(line).map_err(|_| bad())?.trim();
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = match lower.get(..2) {
        Some("0x") => (16, &lower[2..]),
        Some("0o") => (8, &lower[2..]),
        Some("0b") => (2, &lower[2..]),
        _ => (10, lower.as_str()),
    };
    let body = body.strip_prefix('_').filter(|_| radix != 10).unwrap_or(body);
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return Err(bad());
    }
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    // Base 0 refuses leading zeros in a non-zero decimal.
    if radix == 10 && clean.len() > 1 && clean.starts_with('0') && clean.bytes().any(|b| b != b'0') {
        return Err(bad());
    }
    if radix == 10 && clean.len() > MAX_DECIMAL_DIGITS {
        return Err(format!("integer string of more than {MAX_DECIMAL_DIGITS} digits"));
    }
    let v = BigInt::parse_bytes(clean.as_bytes(), radix).ok_or_else(bad)?;
    Ok(if neg { -v } else { v })
}

/// `float(text)`.
fn parse_float(line: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(line).ok()?.trim();
    if text.contains('_') {
        return None;
    }
    text.parse().ok()
}

/// `codecs.escape_decode`: the escapes of a Python 2 `str` repr.
fn escape_decode(s: &[u8]) -> Step<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = s.get(i) else {
            return Err("trailing \\ in string".to_owned());
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match s.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let hex = s.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                let v = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or("invalid \\x escape")?;
                out.push(v);
                i += 2;
            }
            _ => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// `raw-unicode-escape` decoding (CPython's
/// `_PyUnicode_DecodeRawUnicodeEscapeStateful`): bytes are Latin-1 except
/// `\uXXXX` and `\UXXXXXXXX`. Surrogate pairs, which Python 2 narrow builds
/// wrote, are joined; a lone surrogate is an error (a Rust string cannot
/// hold one).
fn raw_unicode_escape_decode(s: &[u8]) -> Step<String> {
    let mut units: Vec<u32> = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' || i >= s.len() {
            units.push(c.into());
            continue;
        }
        let e = s[i];
        i += 1;
        let count = match e {
            b'u' => 4,
            b'U' => 8,
            _ => {
                units.push(c.into());
                units.push(e.into());
                continue;
            }
        };
        let hex = s.get(i..i + count).and_then(|h| std::str::from_utf8(h).ok());
        let v = hex
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or("truncated \\uXXXX escape")?;
        if v > 0x10ffff {
            return Err("\\Uxxxxxxxx out of range".to_owned());
        }
        units.push(v);
        i += count;
    }
    let mut out = String::with_capacity(units.len());
    let mut k = 0;
    while k < units.len() {
        let u = units[k];
        k += 1;
        let ch =
            if (0xd800..0xdc00).contains(&u) && units.get(k).is_some_and(|l| (0xdc00..0xe000).contains(l)) {
                let lo = units[k];
                k += 1;
                0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00)
            } else {
                u
            };
        out.push(char::from_u32(ch).ok_or("lone surrogate in a UNICODE string")?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(p: &[u8]) -> Result<Value, DecodeError> {
        decode(p, DecodeOptions::default())
    }

    fn load_placeholders(p: &[u8]) -> Result<Value, DecodeError> {
        decode(p, DecodeOptions { placeholder_globals: true })
    }

    fn err(p: &[u8]) -> String {
        load(p).unwrap_err().to_string()
    }

    #[test]
    fn protocol_0_int_01_is_true_and_00_false() {
        assert_eq!(load(b"I01\n.").unwrap(), Value::Bool(true));
        assert_eq!(load(b"I00\n.").unwrap(), Value::Bool(false));
        assert_eq!(load(b"I1\n.").unwrap(), Value::Int(1));
        assert_eq!(load(b"I-7\n.").unwrap(), Value::Int(-7));
        assert_eq!(load(b"I0x10\n.").unwrap(), Value::Int(16));
        assert_eq!(load(b"I9223372036854775808\n.").unwrap(), Value::BigInt(BigInt::from(1u64 << 63)));
        assert!(err(b"I012\n.").contains("invalid literal"));
    }

    #[test]
    fn protocol_0_long_takes_an_optional_trailing_l() {
        assert_eq!(load(b"L123L\n.").unwrap(), Value::Int(123));
        assert_eq!(load(b"L-5\n.").unwrap(), Value::Int(-5));
        let digits = "9".repeat(MAX_DECIMAL_DIGITS + 1);
        assert!(err(format!("L{digits}\n.").as_bytes()).contains("digits"));
    }

    #[test]
    fn protocol_0_float_parses_python_reprs() {
        assert_eq!(load(b"F1.5\n.").unwrap(), Value::Float(1.5));
        assert_eq!(load(b"Finf\n.").unwrap(), Value::Float(f64::INFINITY));
        assert!(matches!(load(b"Fnan\n.").unwrap(), Value::Float(f) if f.is_nan()));
    }

    #[test]
    fn string_is_a_quoted_repr_decoded_as_utf8_or_bytes() {
        assert_eq!(load(b"S'a\\x00b'\n.").unwrap(), Value::Str("a\0b".into()));
        assert_eq!(load(b"S\"it's\"\n.").unwrap(), Value::Str("it's".into()));
        assert_eq!(load(b"S'\\xff\\n\\101'\n.").unwrap(), Value::Bytes(vec![0xff, b'\n', b'A']));
        assert_eq!(load(b"S'\\xc3\\xa9'\n.").unwrap(), Value::Str("é".into()));
        assert!(err(b"Sabc\n.").contains("must be quoted"));
        assert!(err(b"S'\\x4'\n.").contains("\\x escape"));
        assert_eq!(load(b"U\x02\xc3\xa9.").unwrap(), Value::Str("é".into()));
        assert_eq!(load(b"T\x01\x00\x00\x00\xff.").unwrap(), Value::Bytes(vec![0xff]));
        assert!(err(b"T\xff\xff\xff\xff.").contains("negative"));
    }

    #[test]
    fn unicode_is_raw_unicode_escape() {
        assert_eq!(load(b"V\xe9\\u2603\\U0001f600\n.").unwrap(), Value::Str("é☃😀".into()));
        // an even number of backslashes does not escape
        assert_eq!(load(b"V\\\\u0041\n.").unwrap(), Value::Str("\\\\u0041".into()));
        // surrogate pairs of narrow Python 2 builds are joined
        assert_eq!(load(b"V\\ud83d\\ude00\n.").unwrap(), Value::Str("😀".into()));
        assert!(err(b"V\\ud83d\n.").contains("surrogate"));
        assert!(err(b"V\\u12\n.").contains("truncated"));
    }

    #[test]
    fn memo_gets_of_missing_ids_are_errors() {
        assert!(err(b"\x80\x02h\x05.").contains("memo value not found at index 5"));
        assert!(err(b"\x80\x02j\x00\x01\x00\x00.").contains("memo"));
        assert!(err(b"g3\n.").contains("memo"));
        assert!(err(b"Np-1\n.").contains("memo index"));
    }

    #[test]
    fn memoize_and_shared_references_copy() {
        let v = load(b"\x80\x04]\x94K\x01a(h\x00h\x00l.").unwrap();
        let inner = Value::List(vec![Value::Int(1)]);
        assert_eq!(v, Value::List(vec![inner.clone(), inner]));
    }

    #[test]
    fn recursive_structures_are_errors() {
        assert!(err(b"\x80\x02]q\x00h\x00a.").contains("recursive structure: a list contains itself"));
        assert!(err(b"\x80\x02}q\x00K\x01h\x00s.").contains("recursive"));
        assert!(err(b"\x80\x02]q\x00h\x00\x85a.").contains("recursive"));
        // a list containing itself as a dict key is unhashable first
        assert!(err(b"\x80\x02]q\x00}h\x00K\x01sa.").contains("unhashable type: 'list'"));
    }

    #[test]
    fn keys_follow_python_equality() {
        // {1: 'a', 1.0: 'b', True: 'c'} is {1: 'c'}
        let p = b"\x80\x02}(K\x01X\x01\x00\x00\x00aG?\xf0\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00b\x88X\x01\x00\x00\x00cu.";
        assert_eq!(load(p).unwrap(), Value::Dict(vec![(Value::Int(1), Value::Str("c".into()))]));
        // frozenset({(1, 2), (1, 2)}) has one element; NaN never equals
        let p = b"\x80\x04(K\x01K\x02\x86K\x01K\x02\x86G\x7f\xf8\x00\x00\x00\x00\x00\x00G\x7f\xf8\x00\x00\x00\x00\x00\x00\x91.";
        let Value::FrozenSet(items) = load(p).unwrap() else { panic!() };
        assert_eq!(items.len(), 3);
        assert!(err(b"\x80\x04\x8f(]\x90.").contains("unhashable type: 'list'"));
    }

    #[test]
    fn huge_declared_lengths_fail_before_allocating() {
        for p in [
            &b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f."[..],
            b"\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x40.",
            b"\x80\x05\x96\xff\xff\xff\xff\xff\xff\xff\xff.",
            b"\x80\x03X\xff\xff\xff\xff.",
            b"\x80\x03B\xff\xff\xff\xff.",
            b"\x80\x02\x8b\xff\xff\xff\x7f.",
            b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xff.",
        ] {
            let e = err(p);
            assert!(e.contains("truncated") || e.contains("frame") || e.contains("address space"), "{e}");
        }
    }

    #[test]
    fn unsupported_opcodes_say_what_they_are() {
        assert!(err(b"P1\n.").contains("persistent"));
        assert!(err(b"\x80\x02N\x82\x01.").contains("extension"));
        assert!(err(b"\x80\x05\x97.").contains("out-of-band"));
        assert!(err(b"\x80\x06N.").contains("unsupported pickle protocol: 6"));
        assert!(err(b"\x80\x04K\x01K\x02\x93.").contains("STACK_GLOBAL requires str"));
        assert!(err(b"\xff.").contains("invalid load key"));
        assert!(err(b"N").contains("no STOP"));
        assert!(err(b".").contains("stack underflow"));
        assert!(err(b"t.").contains("MARK"));
    }

    #[test]
    fn pop_on_an_empty_stack_pops_a_mark_and_bytes_after_stop_are_ignored() {
        assert_eq!(load(b"N(0.").unwrap(), Value::None);
        assert_eq!(load(b"K\x01.garbage").unwrap(), Value::Int(1));
        assert_eq!(load(b"(K\x01K\x021N.").unwrap(), Value::None);
        assert_eq!(load(b"K\x012\x86.").unwrap(), Value::Tuple(vec![Value::Int(1), Value::Int(1)]));
    }

    fn opaque(p: &[u8], globals: &[&str]) {
        assert_eq!(
            load_placeholders(p).unwrap(),
            Value::Opaque(Opaque {
                globals: globals.iter().map(|g| g.to_string()).collect(),
                bytes: p.to_vec()
            }),
            "{p:?}"
        );
    }

    #[test]
    fn unknown_globals_are_refused_by_name_or_kept_whole_as_their_bytes() {
        let p = b"cmymod\nPoint\n(S'\\x07\\xe4\\x01\\x01'\ntR.";
        assert_eq!(load(p).unwrap_err(), DecodeError::Global { name: "mymod.Point".into(), pos: 0 });
        opaque(p, &["mymod.Point"]);
        // INST then BUILD
        let p = b"(i__main__\nFoo\n(dS'a'\nI1\nsb.";
        assert!(err(p).contains("__main__.Foo"));
        opaque(p, &["__main__.Foo"]);
        // NEWOBJ then BUILD, protocol 2; NEWOBJ_EX
        opaque(b"\x80\x02c__main__\nFoo\n)\x81}(X\x01\x00\x00\x00aK\x01ub.", &["__main__.Foo"]);
        opaque(b"\x80\x04c__main__\nFoo\nK\x01\x85}X\x01\x00\x00\x00kK\x02s\x92.", &["__main__.Foo"]);
        // a bare class, and a known class itself (not an instance)
        opaque(b"cos\nsystem\n.", &["os.system"]);
        opaque(b"cbuiltins\nset\n.", &["builtins.set"]);
        assert!(err(b"cbuiltins\nset\n.").contains("builtins.set itself"));
        assert!(err(b"cbuiltins\nlist\n(K\x01tb.").contains("BUILD"));
        // a dict subclass filled by SETITEMS, inside a list, beside a known
        // date: the whole pickle is kept, trailing bytes too
        let p = b"\x80\x02]q\x00(cmy\nD\n)\x81K\x01K\x02scdatetime\ndate\nC\x04\x07\xea\x0b\x1e\x85Re.xx";
        opaque(p, &["my.D"]);
    }

    #[test]
    fn known_classes_decode_from_each_route() {
        let date = Value::Object(PyObject::Date(crate::value::Date { year: 2026, month: 11, day: 30 }));
        for p in [
            // Python 2 `str` state, protocols 0 and 2
            &b"cdatetime\ndate\np0\n(S'\\x07\\xea\\x0b\\x1e'\np1\ntp2\nRp3\n."[..],
            b"\x80\x02cdatetime\ndate\nq\x00U\x04\x07\xea\x0b\x1eq\x01\x85q\x02Rq\x03.",
            // Python 3 protocol 0 (`_codecs.encode(text, 'latin1')`) and 4
            b"cdatetime\ndate\np0\n(c_codecs\nencode\np1\n(V\x07\xea\x0b\x1e\np2\nVlatin1\np3\ntp4\nRp5\ntp6\nRp7\n.",
            b"\x80\x04\x95 \x00\x00\x00\x00\x00\x00\x00\x8c\x08datetime\x94\x8c\x04date\x94\x93\x94C\x04\x07\xea\x0b\x1e\x94\x85\x94R\x94.",
        ] {
            assert_eq!(load(p).unwrap(), date, "{p:?}");
        }
        assert!(err(b"cdatetime\ndate\n(S'\\x07\\xea\\x0d\\x1e'\ntR.").contains("not a valid date"));
        assert!(err(b"cdatetime\ndate\n(S'abc'\ntR.").contains("4 bytes"));
        // copy_reg._reconstructor(UUID, object, None) then BUILD, Python 2
        let p = b"ccopy_reg\n_reconstructor\np0\n(cuuid\nUUID\np1\nc__builtin__\nobject\np2\nNtp3\nRp4\n(dp5\nS'int'\np6\nL5L\nsb.";
        assert_eq!(load(p).unwrap(), Value::Object(PyObject::Uuid(5)));
        assert!(err(b"\x80\x02cuuid\nUUID\n)\x81.").contains("without its state"));
        // Python 2's OrderedDict and deque
        let p = b"\x80\x02ccollections\nOrderedDict\nq\x00]q\x01(]q\x02(U\x01aq\x03K\x01e]q\x04(U\x01bq\x05K\x02ee\x85q\x06Rq\x07.";
        let s = |x: &str| Value::Str(x.into());
        assert_eq!(
            load(p).unwrap(),
            Value::Object(PyObject::OrderedDict(vec![(s("a"), Value::Int(1)), (s("b"), Value::Int(2))]))
        );
        let p = b"\x80\x02ccollections\ndeque\nq\x00]q\x01(K\x01K\x02K\x03eK\x02\x86q\x02Rq\x03.";
        assert_eq!(
            load(p).unwrap(),
            Value::Object(PyObject::Deque { items: vec![Value::Int(2), Value::Int(3)], maxlen: Some(2) })
        );
        // getattr is only ZoneInfo._unpickle
        assert!(
            err(b"\x80\x02c__builtin__\ngetattr\ncos\nsystem\nX\x01\x00\x00\x00a\x86R.")
                .contains("os.system")
        );
        assert!(
            err(b"\x80\x02c__builtin__\ngetattr\nc__builtin__\nlist\nX\x01\x00\x00\x00a\x86R.")
                .contains("getattr")
        );
    }

    #[test]
    fn safe_builtins_are_called_by_name() {
        assert_eq!(load(b"c__builtin__\nset\n((K\x01K\x01ltR.").unwrap(), Value::Set(vec![Value::Int(1)]));
        assert_eq!(load(b"\x80\x02c__builtin__\nbytes\n)R.").unwrap(), Value::Bytes(vec![]));
        assert_eq!(load(b"c_codecs\nencode\n(V\xff\nS'latin1'\ntR.").unwrap(), Value::Bytes(vec![0xff]));
        assert!(err(b"c_codecs\nencode\n(V\\u2603\nS'latin1'\ntR.").contains("can't encode"));
        assert!(err(b"c_codecs\nencode\n(Va\nS'rot13'\ntR.").contains("unsupported encoding"));
        assert_eq!(
            load(b"ccopy_reg\n_reconstructor\n(c__builtin__\nlist\nc__builtin__\nlist\n(K\x01ltR.").unwrap(),
            Value::List(vec![Value::Int(1)])
        );
        assert_eq!(
            load(b"\x80\x02c__builtin__\nlist\n)\x81K\x01a.").unwrap(),
            Value::List(vec![Value::Int(1)])
        );
        assert!(err(b"\x80\x02K\x01)R.").contains("not callable"));
    }

    #[test]
    fn deep_keys_stay_within_the_depth_limit() {
        for (n, ok) in [(998, true), (1200, false)] {
            let mut p = b"\x80\x04(N".to_vec();
            p.extend(std::iter::repeat_n(0x85, n));
            p.push(0x91);
            p.push(b'.');
            assert_eq!(load(&p).is_ok(), ok, "{n}");
        }
    }
}

#[cfg(test)]
mod single_scalar_tests {
    use super::*;
    use crate::pickle::encode;

    /// Pickles of single scalars as our encoder and CPython write them,
    /// with and without FRAME and memo stores.
    fn samples() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for v in [
            Value::Bytes(vec![7; 100]),
            Value::Bytes(vec![1; 300]),
            Value::Bytes(Vec::new()),
            Value::Str("é☃".into()),
            Value::Str("x".repeat(300)),
            Value::Int(5),
            Value::Int(-5),
            Value::Int(70_000),
            Value::Int(1 << 40),
            Value::Float(1.5),
            Value::None,
            Value::Bool(true),
            Value::List(vec![Value::Int(1)]),
        ] {
            for proto in 2..=5 {
                out.push(encode::encode(&v, proto).unwrap());
            }
        }
        // CPython 3.11's pickle.dumps(b"abc", 4) and dumps("abc", 3).
        out.push(b"\x80\x04\x95\x07\x00\x00\x00\x00\x00\x00\x00C\x03abc\x94.".to_vec());
        out.push(b"\x80\x03X\x03\x00\x00\x00abcq\x00.".to_vec());
        out.push(b"\x80\x03X\x03\x00\x00\x00abcr\x00\x00\x00\x00.trailing".to_vec());
        out
    }

    #[test]
    fn the_fast_path_answers_only_what_the_vm_answers_alike() {
        let options = DecodeOptions::default();
        let mut taken = 0;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for sample in samples() {
            let mut variants = vec![sample.clone()];
            for cut in 0..sample.len() {
                variants.push(sample[..cut].to_vec());
            }
            for _ in 0..200 {
                let mut v = sample.clone();
                let at = (next() as usize) % v.len();
                v[at] = next() as u8;
                variants.push(v);
            }
            for v in variants {
                if let Some(fast) = single_scalar(&v) {
                    taken += 1;
                    let slow =
                        decode_in_vm(&v, options).unwrap_or_else(|e| panic!("{v:?}: the VM refuses: {e}"));
                    assert_eq!(fast, slow, "{v:?}");
                }
            }
        }
        assert!(taken > 100, "the fast path took only {taken} pickles");
        // What it must leave to the VM: a list, a bad protocol, a FRAME
        // longer than what follows, two values.
        assert!(single_scalar(&encode::encode(&Value::List(vec![]), 3).unwrap()).is_none());
        assert!(single_scalar(b"\x80\x09N.").is_none());
        assert!(single_scalar(b"\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00N.").is_none());
        assert!(single_scalar(b"\x80\x03NN.").is_none());
    }
}
