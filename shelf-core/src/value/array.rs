//! numpy arrays ([`NdArray`]) as mmappickle's `ArrayPickler` and
//! `MaskedArrayPickler` write them: the typed value of the mmappickle
//! backend, whose data is a view of the memory-mapped file.
//!
//! The array layout is a pickle fragment that calls
//! `numpy.core.fromnumeric.reshape(numpy.core.multiarray.fromstring(DATA,
//! DTYPE), SHAPE)`, with `DATA` as one `BINBYTES8` (the raw C-order bytes
//! `ndarray.tofile` writes), `DTYPE` as `str(dtype)` and `SHAPE` a tuple of
//! small ints. A masked array is `numpy.ma.core.MaskedArray(DATA_ARRAY,
//! MASK_ARRAY)`. mmappickle maps `DATA` in place; so does this backend.

use std::sync::Arc;

use super::{Opaque, Value};
use crate::backend::SharedBytes;
use crate::pickle::opcodes::{
    BINBYTES8, BININT, BININT1, BININT2, EMPTY_TUPLE, MARK, REDUCE, SHORT_BINUNICODE, STACK_GLOBAL, TUPLE,
    TUPLE1, TUPLE2, TUPLE3,
};

/// What array data is sliced from without copying (a backend's memory
/// map of its file).
pub type ArrayOwner = Arc<dyn AsRef<[u8]> + Send + Sync>;
type Owner = ArrayOwner;

/// The globals a plain array's pickle names, in order.
const ARRAY_GLOBALS: [&str; 2] = ["numpy.core.fromnumeric.reshape", "numpy.core.multiarray.fromstring"];
/// The global a masked array's pickle names first.
const MASKED_GLOBAL: &str = "numpy.ma.core.MaskedArray";

fn short_str(out: &mut Vec<u8>, s: &str) {
    out.push(SHORT_BINUNICODE);
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn global(out: &mut Vec<u8>, module: &str, name: &str) {
    short_str(out, module);
    short_str(out, name);
    out.push(STACK_GLOBAL);
}

/// The fixed start of an array fragment (`ArrayPickler._header`).
fn array_header() -> Vec<u8> {
    let mut h = Vec::new();
    global(&mut h, "numpy.core.fromnumeric", "reshape");
    global(&mut h, "numpy.core.multiarray", "fromstring");
    h
}

/// The fixed start of a masked array fragment (`MaskedArrayPickler._header`).
fn masked_header() -> Vec<u8> {
    let mut h = Vec::new();
    global(&mut h, "numpy.ma.core", "MaskedArray");
    h
}

/// The memory order of an array's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayOrder {
    /// Row-major, last index fastest (numpy's `'C'`): what `tofile`
    /// writes, so every array in an mmappickle file.
    C,
    /// Column-major (numpy's `'F'`). Never stored by mmappickle; kept so a
    /// caller can describe an array it will reorder before writing.
    F,
}

/// A numpy array: its dtype, shape, order and raw data, which, read from
/// an mmappickle file, is a view of the memory-mapped file (no copy).
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    /// `str(dtype)` as numpy spells it: `"float64"`, `"int32"`, `"<U5"`,
    /// `"bool"`, `"complex128"`.
    pub dtype: String,
    /// The length of each dimension; empty for a 0-D array.
    pub shape: Vec<u64>,
    /// The order of `data`.
    pub order: ArrayOrder,
    /// The elements' bytes, in `order`, in the dtype's byte order (native
    /// little-endian unless the dtype names another).
    pub data: SharedBytes,
    /// The mask of a `numpy.ma.MaskedArray` (a bool array, or a 0-D
    /// `False` for no mask), `None` for a plain array.
    pub mask: Option<Box<NdArray>>,
}

/// Bytes per element of the dtypes numpy names without a size suffix in
/// the string, and of `intN`/`uintN`/`floatN`/`complexN`; `None` when
/// unknown (then the data's length is not checked against the shape).
fn itemsize(dtype: &str) -> Option<u64> {
    let bits = |prefix: &str| dtype.strip_prefix(prefix).and_then(|n| n.parse::<u64>().ok()).map(|b| b / 8);
    match dtype {
        "bool" | "int8" | "uint8" => Some(1),
        _ if dtype.starts_with("uint") => bits("uint"),
        _ if dtype.starts_with("int") => bits("int"),
        _ if dtype.starts_with("float") => bits("float"),
        _ if dtype.starts_with("complex") => bits("complex"),
        _ => None,
    }
}

impl NdArray {
    /// A C-order array over `data`, checked: the data's length must be the
    /// product of the shape times the item size, where the dtype's item
    /// size is known.
    ///
    /// # Errors
    /// A message when the lengths disagree or the dtype's text is longer
    /// than mmappickle allows (255 bytes).
    pub fn new(dtype: impl Into<String>, shape: Vec<u64>, data: SharedBytes) -> Result<Self, String> {
        let a = NdArray { dtype: dtype.into(), shape, order: ArrayOrder::C, data, mask: None };
        a.validate()?;
        Ok(a)
    }

    /// The number of elements (1 for a 0-D array).
    pub fn len(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |acc, d| acc.checked_mul(*d))
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    fn validate(&self) -> Result<(), String> {
        if self.dtype.len() > 255 {
            return Err("a dtype's text is at most 255 bytes".into());
        }
        let n = self.len().ok_or("the shape's size overflows")?;
        if let Some(size) = itemsize(&self.dtype) {
            let want = n.checked_mul(size).ok_or("the shape's size overflows")?;
            if want != self.data.len() as u64 {
                return Err(format!(
                    "{} bytes of data for shape {:?} of {} ({want} expected)",
                    self.data.len(),
                    self.shape,
                    self.dtype
                ));
            }
        }
        Ok(())
    }

    /// The fragment mmappickle's pickler writes for this array (a plain
    /// array with `ArrayPickler`, a masked one with `MaskedArrayPickler`).
    ///
    /// # Errors
    /// For `F` order (reorder first: mmappickle stores C order only), a
    /// dimension beyond `i32`, or a dtype text over 255 bytes.
    pub fn to_fragment(&self) -> Result<Vec<u8>, String> {
        let parts = self.fragment_parts()?;
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in &parts {
            out.extend_from_slice(p);
        }
        Ok(out)
    }

    /// [`to_fragment`](Self::to_fragment) in pieces whose concatenation is
    /// the fragment: the data pieces share this array's bytes (no copy),
    /// so a backend writes a large array straight from them.
    ///
    /// # Errors
    /// As [`to_fragment`](Self::to_fragment).
    pub fn fragment_parts(&self) -> Result<Vec<SharedBytes>, String> {
        let mut parts = Parts::default();
        match &self.mask {
            None => self.plain_fragment(&mut parts)?,
            Some(mask) => {
                parts.out.extend_from_slice(&masked_header());
                self.plain_fragment(&mut parts)?;
                mask.plain_fragment(&mut parts)?;
                parts.out.extend_from_slice(&[TUPLE2, REDUCE]);
            }
        }
        Ok(parts.finish())
    }

    fn plain_fragment(&self, parts: &mut Parts) -> Result<(), String> {
        if self.order != ArrayOrder::C {
            return Err("mmappickle stores C-order arrays only".into());
        }
        self.validate()?;
        let out = &mut parts.out;
        out.extend_from_slice(&array_header());
        out.push(BINBYTES8);
        out.extend_from_slice(&(self.data.len() as u64).to_le_bytes());
        parts.data(&self.data);
        let out = &mut parts.out;
        short_str(out, &self.dtype);
        out.extend_from_slice(&[TUPLE2, REDUCE]);
        // pickle.dumps(shape, 4) without its memo: ints as BININT1/2/BININT.
        let many = self.shape.len() > 3;
        if self.shape.is_empty() {
            out.push(EMPTY_TUPLE);
        } else if many {
            out.push(MARK);
        }
        for d in &self.shape {
            match *d {
                d if d < 256 => out.extend_from_slice(&[BININT1, d as u8]),
                d if d < 65536 => {
                    out.push(BININT2);
                    out.extend_from_slice(&(d as u16).to_le_bytes());
                }
                d => {
                    let d = i32::try_from(d)
                        .map_err(|_| format!("dimension {d} is beyond mmappickle's reader"))?;
                    out.push(BININT);
                    out.extend_from_slice(&d.to_le_bytes());
                }
            }
        }
        match self.shape.len() {
            0 => {}
            1 => out.push(TUPLE1),
            2 => out.push(TUPLE2),
            3 => out.push(TUPLE3),
            _ => out.push(TUPLE),
        }
        out.extend_from_slice(&[TUPLE2, REDUCE]);
        Ok(())
    }
}

/// A fragment being built: small pieces gathered in `out`, data pieces
/// kept as shared views.
#[derive(Default)]
struct Parts {
    done: Vec<SharedBytes>,
    out: Vec<u8>,
}

impl Parts {
    fn data(&mut self, data: &SharedBytes) {
        let small = std::mem::take(&mut self.out);
        self.done.push(small.into());
        self.done.push(data.clone());
    }

    fn finish(mut self) -> Vec<SharedBytes> {
        let small = std::mem::take(&mut self.out);
        self.done.push(small.into());
        self.done
    }
}

impl NdArray {
    /// The array a stored pickle *fragment* (`owner[start..end]`, no
    /// `PROTO` or `STOP`, as mmappickle stores values) holds, its data
    /// sliced out of `owner` without copying. `None` when the fragment is
    /// no array; an error when it starts as one but is damaged.
    pub fn from_fragment_in(owner: &ArrayOwner, start: usize, end: usize) -> Option<Result<NdArray, String>> {
        parse(owner, start, end)
    }

    /// The array a whole pickle (`PROTO 4`, fragment, `STOP`) holds, its
    /// data copied; `None` when it is no mmappickle array pickle.
    pub fn from_pickle(pickle: &[u8]) -> Option<Result<NdArray, String>> {
        let body = pickle.strip_prefix(&[0x80, 4])?.strip_suffix(b".")?;
        let owner: Owner = Arc::new(body.to_vec());
        parse(&owner, 0, body.len())
    }

    /// The whole pickle of the array (`PROTO 4`, [`to_fragment`](Self::to_fragment),
    /// `STOP`): what Python's `pickle.loads` reads as the array.
    ///
    /// # Errors
    /// As [`to_fragment`](Self::to_fragment).
    pub fn to_pickle(&self) -> Result<Vec<u8>, String> {
        let mut out = vec![0x80, 4];
        out.extend_from_slice(&self.to_fragment()?);
        out.push(b'.');
        Ok(out)
    }

    /// The array a [`Value`] holds: a pickle shelf keeps as
    /// [`Value::Opaque`] (it names numpy's globals) that is an mmappickle
    /// array. `None` for any other value.
    pub fn from_value(value: &Value) -> Option<Result<NdArray, String>> {
        match value {
            Value::Opaque(o) => NdArray::from_pickle(&o.bytes),
            _ => None,
        }
    }

    /// The array as a [`Value`]: the [`Value::Opaque`] of its pickle, which
    /// every backend stores byte for byte and Python reads as the array.
    ///
    /// # Errors
    /// As [`to_fragment`](Self::to_fragment).
    pub fn to_value(&self) -> Result<Value, String> {
        let mut globals: Vec<String> = Vec::new();
        if self.mask.is_some() {
            globals.push(MASKED_GLOBAL.to_owned());
        }
        globals.extend(ARRAY_GLOBALS.iter().map(|g| (*g).to_owned()));
        Ok(Value::Opaque(Opaque { globals, bytes: self.to_pickle()? }))
    }
}

/// Reads the array a stored fragment holds, its data sliced out of
/// `owner` without copying. `frag` is `owner[start..end]`. `None` when the
/// fragment is no array; an error when it starts as one but is damaged.
fn parse(owner: &Owner, start: usize, end: usize) -> Option<Result<NdArray, String>> {
    let frag = (**owner).as_ref().get(start..end)?;
    let masked = masked_header();
    if frag.starts_with(&masked) {
        return Some((|| {
            let s = start + masked.len();
            let (data, after) = parse_plain(owner, s, end)?;
            let (mask, after) = parse_plain(owner, after, end)?;
            if (**owner).as_ref().get(after..end) != Some(&[TUPLE2, REDUCE][..]) {
                return Err("a masked array ends without TUPLE2 REDUCE".into());
            }
            Ok(NdArray { mask: Some(Box::new(mask)), ..data })
        })());
    }
    if !frag.starts_with(&array_header()) {
        return None;
    }
    Some(parse_plain(owner, start, end).and_then(|(a, after)| {
        if after == end { Ok(a) } else { Err("bytes after an array's pickle".into()) }
    }))
}

/// One plain array from `start`; returns it and where it ends.
fn parse_plain(owner: &Owner, start: usize, end: usize) -> Result<(NdArray, usize), String> {
    let bytes = (**owner).as_ref().get(..end).ok_or("the array runs past its entry")?;
    let short = || "an array's pickle is cut short".to_owned();
    let header = array_header();
    let mut p = start;
    if bytes.get(p..p + header.len()) != Some(&header[..]) {
        return Err("not an array's pickle".into());
    }
    p += header.len();
    let take = |p: &mut usize, n: usize| -> Result<&[u8], String> {
        let s = bytes.get(*p..p.checked_add(n).ok_or_else(short)?).ok_or_else(short)?;
        *p += n;
        Ok(s)
    };
    let kind = take(&mut p, 1)?[0];
    let n = match kind {
        b'C' => u64::from(take(&mut p, 1)?[0]),
        b'B' => u64::from(u32::from_le_bytes(take(&mut p, 4)?.try_into().map_err(|_| short())?)),
        0x8e => u64::from_le_bytes(take(&mut p, 8)?.try_into().map_err(|_| short())?),
        other => return Err(format!("an array's data starts with opcode 0x{other:02x}")),
    };
    let n = usize::try_from(n).map_err(|_| short())?;
    let data_start = p;
    take(&mut p, n)?;
    let data = owner_slice(owner, data_start, data_start + n)?;
    if take(&mut p, 1)?[0] != SHORT_BINUNICODE {
        return Err("an array's dtype is not a short string".into());
    }
    let dl = usize::from(take(&mut p, 1)?[0]);
    let dtype =
        std::str::from_utf8(take(&mut p, dl)?).map_err(|_| "an array's dtype is not UTF-8")?.to_owned();
    if take(&mut p, 2)? != [TUPLE2, REDUCE] {
        return Err("an array's dtype is not followed by TUPLE2 REDUCE".into());
    }
    let mut shape = Vec::new();
    loop {
        let op = take(&mut p, 1)?[0];
        match op {
            BININT1 => shape.push(u64::from(take(&mut p, 1)?[0])),
            BININT2 => {
                shape.push(u64::from(u16::from_le_bytes(take(&mut p, 2)?.try_into().map_err(|_| short())?)))
            }
            BININT => {
                let v = i32::from_le_bytes(take(&mut p, 4)?.try_into().map_err(|_| short())?);
                shape.push(u64::try_from(v).map_err(|_| format!("negative dimension {v}"))?);
            }
            MARK => {}
            TUPLE1 | TUPLE2 | TUPLE3 | TUPLE | EMPTY_TUPLE => {
                let want = match op {
                    TUPLE1 => Some(1),
                    TUPLE2 => Some(2),
                    TUPLE3 => Some(3),
                    EMPTY_TUPLE => Some(0),
                    _ => None,
                };
                if want.is_some_and(|w| w != shape.len()) {
                    return Err("an array's shape tuple does not match its items".into());
                }
                break;
            }
            other => return Err(format!("opcode 0x{other:02x} in an array's shape")),
        }
    }
    if take(&mut p, 2)? != [TUPLE2, REDUCE] {
        return Err("an array's shape is not followed by TUPLE2 REDUCE".into());
    }
    let a = NdArray { dtype, shape, order: ArrayOrder::C, data, mask: None };
    a.validate()?;
    Ok((a, p))
}

fn owner_slice(owner: &Owner, start: usize, end: usize) -> Result<SharedBytes, String> {
    SharedBytes::slice_of(owner.clone(), start, end)
        .map_err(|_| "an array's data runs past its entry".to_owned())
}

/// An element type numpy and `ndarray` share, for the conversions behind
/// the `ndarray` feature.
#[cfg(feature = "ndarray")]
pub trait Element: Copy {
    /// `str(dtype)` in numpy.
    const DTYPE: &'static str;
    /// Bytes per element.
    const SIZE: usize;
    /// The element from its little-endian bytes (`SIZE` of them).
    fn from_le(bytes: &[u8]) -> Self;
    /// Appends the element's little-endian bytes.
    fn put_le(self, out: &mut Vec<u8>);
}

#[cfg(feature = "ndarray")]
macro_rules! element {
    ($($t:ty => $name:literal),*) => {$(
        impl Element for $t {
            const DTYPE: &'static str = $name;
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(bytes: &[u8]) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(&bytes[..Self::SIZE]);
                <$t>::from_le_bytes(b)
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}

#[cfg(feature = "ndarray")]
element!(i8 => "int8", i16 => "int16", i32 => "int32", i64 => "int64", u8 => "uint8", u16 => "uint16",
    u32 => "uint32", u64 => "uint64", f32 => "float32", f64 => "float64");

#[cfg(feature = "ndarray")]
impl Element for bool {
    const DTYPE: &'static str = "bool";
    const SIZE: usize = 1;
    fn from_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
}

#[cfg(feature = "ndarray")]
impl NdArray {
    /// The array as an `ndarray::ArrayD<T>` (a copy: the mapped data need
    /// not be aligned for `T`). The mask of a masked array is not applied.
    ///
    /// # Errors
    /// When `T`'s dtype is not the array's (numpy's byte order marks `<`
    /// and `|` are accepted) or the lengths disagree.
    pub fn to_ndarray<T: Element>(&self) -> Result<ndarray::ArrayD<T>, String> {
        let dtype = self.dtype.trim_start_matches(['<', '|', '=']);
        let same = dtype == T::DTYPE || itemsize(T::DTYPE).is_some_and(|n| dtype == short_code::<T>(n));
        if !same {
            return Err(format!("the array holds {}, not {}", self.dtype, T::DTYPE));
        }
        let items: Vec<T> = self.data.chunks_exact(T::SIZE).map(T::from_le).collect();
        let shape: Vec<usize> = self.shape.iter().map(|d| *d as usize).collect();
        let a = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), items).map_err(|e| e.to_string())?;
        Ok(match self.order {
            ArrayOrder::C => a,
            ArrayOrder::F => a.reversed_axes(),
        })
    }

    /// An array of `a`'s elements in C order, as mmappickle stores it.
    pub fn from_ndarray<T: Element, D: ndarray::Dimension>(a: &ndarray::ArrayRef<T, D>) -> NdArray {
        let mut data = Vec::with_capacity(a.len() * T::SIZE);
        for x in a.iter() {
            x.put_le(&mut data);
        }
        NdArray {
            dtype: T::DTYPE.to_owned(),
            shape: a.shape().iter().map(|d| *d as u64).collect(),
            order: ArrayOrder::C,
            data: data.into(),
            mask: None,
        }
    }
}

/// numpy's one-letter code of `T` with its size (`f8`, `i4`, `u1`, `b1`).
#[cfg(feature = "ndarray")]
fn short_code<T: Element>(size: u64) -> String {
    let kind = match T::DTYPE.as_bytes()[0] {
        b'f' => 'f',
        b'u' => 'u',
        b'b' => 'b',
        _ => 'i',
    };
    format!("{kind}{size}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_round_trip_through_their_pickle_and_value() {
        let data: Vec<u8> = (0i32..6).flat_map(|i| i.to_le_bytes()).collect();
        let a = NdArray::new("int32", vec![2, 3], data.into()).unwrap();
        let v = a.to_value().unwrap();
        assert_eq!(NdArray::from_value(&v).unwrap().unwrap(), a);
        let zero_d = NdArray::new("float64", vec![], 1.5f64.to_le_bytes().to_vec().into()).unwrap();
        assert_eq!(NdArray::from_pickle(&zero_d.to_pickle().unwrap()).unwrap().unwrap(), zero_d);
        let mask = NdArray::new("bool", vec![2, 3], vec![0, 1, 0, 0, 0, 1].into()).unwrap();
        let masked = NdArray { mask: Some(Box::new(mask)), ..a.clone() };
        assert_eq!(NdArray::from_pickle(&masked.to_pickle().unwrap()).unwrap().unwrap(), masked);
        assert!(NdArray::new("int32", vec![2, 2], vec![0; 3].into()).is_err(), "lengths are checked");
        assert!(NdArray::from_pickle(b"\x80\x04K\x01.").is_none());
    }
}

#[cfg(all(test, feature = "ndarray"))]
mod ndarray_tests {
    use super::*;

    #[test]
    fn arrays_convert_to_and_from_ndarray() {
        let a = ndarray::Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f64);
        let n = NdArray::from_ndarray(&a);
        assert_eq!((n.dtype.as_str(), n.shape.as_slice()), ("float64", &[2u64, 3][..]));
        let back = n.to_ndarray::<f64>().unwrap();
        assert_eq!(back, a.into_dyn());
        assert!(n.to_ndarray::<i32>().is_err(), "a dtype mismatch is refused");
    }
}
