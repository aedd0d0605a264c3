//! The mmappickle backend against the real mmappickle 1.0 (and numpy):
//! Python's files open here with arrays as zero-copy views, and what shelf
//! writes, deletes and compacts reads back equal in Python.

use backend_mmappickle::{MmapPickleBackend, NdArray};
use shelf::raw::{BackendOptions, OpenBackend};
use shelf::{KvBackend, Protocol, Shelf, Value};
use shelf_tests::Scratch;
use shelf_tests::python::Python;

/// Python's prelude: numpy, mmappickle and its array picklers.
const PRELUDE: &str = "
import sys, pickle, numpy
import mmappickle.picklers
from mmappickle import mmapdict
";

fn python(case: &str) -> Option<Python> {
    let py = Python::default_or_skip(case)?;
    match py.run(PRELUDE, &[]) {
        Ok(_) => Some(py),
        Err(e) => {
            shelf_tests::skip(case, "mmappickle", &format!("mmappickle 1.0 / numpy cannot be imported: {e}"));
            None
        }
    }
}

fn run(py: &Python, script: &str, args: &[&str]) -> String {
    py.run(&format!("{PRELUDE}{script}"), args).unwrap_or_else(|e| panic!("{e}"))
}

fn open(path: &std::path::Path) -> MmapPickleBackend {
    MmapPickleBackend::open(path, &BackendOptions::default()).unwrap()
}

#[test]
fn python_files_open_with_zero_copy_arrays_and_read_back_in_python() {
    let Some(py) = python("python_files_open_with_zero_copy_arrays") else { return };
    let scratch = Scratch::new();
    let path = scratch.path.to_str().unwrap();
    let commit = run(
        &py,
        "
m = mmapdict(sys.argv[1])
m['int'] = 42
m['float'] = 1.5
m['str'] = 'héllo'
m['bytes'] = b'\\x00\\xff'
m['nested'] = {'a': [1, (2, 3)], 'b': {'c': None, 'd': True}}
m['i32'] = numpy.arange(6, dtype='int32').reshape(2, 3)
m['f64'] = numpy.linspace(0, 1, 100)
m['u8_3d'] = numpy.arange(24, dtype='uint8').reshape(2, 3, 4)
m['bool'] = numpy.array([True, False, True])
m['c128'] = numpy.array([1+2j, 3-4j])
m['d5'] = numpy.zeros((1, 2, 3, 4, 5), dtype='int16')
m['masked'] = numpy.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0])
m['big'] = numpy.zeros(100 << 20, dtype='uint8')
m['gone'] = 'to be deleted'
print(m.commit_number)
",
        &[path],
    );
    let commit: u64 = commit.trim().parse().unwrap();

    let b = open(&scratch.path);
    assert_eq!(b.commit_number().unwrap(), commit);
    assert_eq!(b.len().unwrap(), 14);
    // Arrays: views of the map, whatever their size.
    let big = b.get_array(b"big").unwrap().unwrap();
    assert_eq!(
        (big.dtype.as_str(), big.shape.as_slice(), big.data.len()),
        ("uint8", &[100u64 << 20][..], 100 << 20)
    );
    assert!(big.data.is_shared(), "the array's data is shared with the map");
    let map = b.mapped_range().unwrap();
    let p = big.data.as_ptr() as usize;
    assert!(
        map.contains(&p) && map.contains(&(p + big.data.len() - 1)),
        "the data lies inside the file's map"
    );
    let i32s = b.get_array(b"i32").unwrap().unwrap();
    assert_eq!((i32s.dtype.as_str(), i32s.shape.as_slice()), ("int32", &[2u64, 3][..]));
    let want: Vec<u8> = (0i32..6).flat_map(|i| i.to_le_bytes()).collect();
    assert_eq!(&*i32s.data, &want[..]);
    assert_eq!(b.get_array(b"d5").unwrap().unwrap().shape, vec![1, 2, 3, 4, 5]);
    let masked = b.get_array(b"masked").unwrap().unwrap();
    let mask = masked.mask.as_ref().expect("a masked array has its mask");
    assert_eq!((mask.dtype.as_str(), &*mask.data), ("bool", &[0u8, 1, 0][..]));
    assert!(b.get_array(b"int").is_err(), "an int is no array");

    // Scalars, strings and containers through the pickle protocol.
    let mut s = Shelf::with_backend(b, Protocol::pickle()).unwrap();
    assert_eq!(s.get::<i64>("int").unwrap(), Some(42));
    assert_eq!(s.get::<f64>("float").unwrap(), Some(1.5));
    assert_eq!(s.get::<String>("str").unwrap().as_deref(), Some("héllo"));
    let nested = s.get::<Value>("nested").unwrap().unwrap();
    assert!(matches!(nested, Value::Dict(ref d) if d.len() == 2), "{nested:?}");

    // Writes, a delete, an overwrite, arrays (a 0-D one too), a compaction.
    s.insert("from_rust", &"written by shelf").unwrap();
    s.insert("int", &43i64).unwrap();
    s.insert("nested_rust", &Value::List(vec![Value::Int(1), Value::Str("x".into()), Value::None])).unwrap();
    assert!(s.remove("gone").unwrap());
    let b = s.backend_mut().unwrap();
    let f64s: Vec<u8> = [0.5f64, 1.5, 2.5, 3.5].iter().flat_map(|f| f.to_le_bytes()).collect();
    b.insert_array(b"rust_f64", &NdArray::new("float64", vec![2, 2], f64s.into()).unwrap()).unwrap();
    b.insert_array(b"rust_0d", &NdArray::new("int64", vec![], 7i64.to_le_bytes().to_vec().into()).unwrap())
        .unwrap();
    let before = b.commit_number().unwrap();
    assert!(before > commit, "every change bumps the commit number");
    let reclaimed = b.compact().unwrap();
    assert!(reclaimed > 0, "the deleted and overwritten entries are given back");
    s.insert("after_compact", &1i64).unwrap();
    let report = s.backend_mut().unwrap().check(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    s.close().unwrap();

    let out = run(
        &py,
        "
m = mmapdict(sys.argv[1])
expect = {
    'int': 43, 'float': 1.5, 'str': 'héllo', 'bytes': b'\\x00\\xff',
    'nested': {'a': [1, (2, 3)], 'b': {'c': None, 'd': True}},
    'from_rust': 'written by shelf', 'nested_rust': [1, 'x', None], 'after_compact': 1,
}
for k, v in expect.items():
    assert m[k] == v, (k, m[k], v)
arrays = {
    'i32': numpy.arange(6, dtype='int32').reshape(2, 3),
    'f64': numpy.linspace(0, 1, 100),
    'u8_3d': numpy.arange(24, dtype='uint8').reshape(2, 3, 4),
    'bool': numpy.array([True, False, True]),
    'c128': numpy.array([1+2j, 3-4j]),
    'd5': numpy.zeros((1, 2, 3, 4, 5), dtype='int16'),
    'rust_f64': numpy.array([[0.5, 1.5], [2.5, 3.5]]),
}
for k, v in arrays.items():
    assert numpy.array_equal(m[k], v) and m[k].dtype == v.dtype, (k, m[k])
big = m['big']
assert big.shape == (100 << 20,) and not big.any()
ma = m['masked']
assert list(ma.mask) == [False, True, False] and numpy.array_equal(ma.data, [1.0, 2.0, 3.0])
assert 'gone' not in m
assert sorted(m.keys()) == sorted(list(expect) + list(arrays) + ['big', 'masked', 'rust_0d']), sorted(m.keys())
# mmapdict cannot read a 0-D array back; pickle.load of the whole file can.
with open(sys.argv[1], 'rb') as f:
    whole = pickle.load(f)
assert whole['rust_0d'].shape == () and int(whole['rust_0d']) == 7
m['python_after'] = 5
print(m.commit_number)
",
        &[path],
    );
    let after: u64 = out.trim().parse().unwrap();
    let b = open(&scratch.path);
    assert_eq!(b.commit_number().unwrap(), after, "Python bumped the commit number shelf reads");
    assert!(b.get(b"python_after").unwrap().is_some());
}

#[test]
fn a_python_process_and_a_shelf_process_share_one_file() {
    let Some(py) = python("a_python_process_and_a_shelf_process_share_one_file") else { return };
    let scratch = Scratch::new();
    let path = scratch.path.to_str().unwrap().to_owned();
    drop(open(&scratch.path));
    let n = 60;
    let writer = {
        let py = py.clone();
        let path = path.clone();
        std::thread::spawn(move || {
            run(
                &py,
                "
m = mmapdict(sys.argv[1])
for i in range(int(sys.argv[2])):
    m['py%d' % i] = {'i': i}
    m['arr%d' % i] = numpy.full(1000, i, dtype='int32')
",
                &[&path, &n.to_string()],
            )
        })
    };
    let mut b = open(&scratch.path);
    for i in 0..n {
        b.insert(format!("rust{i}").as_bytes(), format!("value {i}").as_bytes()).unwrap();
        let _ = b.len().unwrap();
    }
    writer.join().unwrap();
    assert_eq!(b.len().unwrap(), 3 * n);
    for i in 0..n {
        let a = b.get_array(format!("arr{i}").as_bytes()).unwrap().unwrap();
        assert_eq!(&a.data[..4], &(i as i32).to_le_bytes());
        assert_eq!(b.get(format!("rust{i}").as_bytes()).unwrap().unwrap(), format!("value {i}").as_bytes());
    }
    b.close().unwrap();
    let out = run(
        &py,
        "
m = mmapdict(sys.argv[1])
n = int(sys.argv[2])
assert all(m['py%d' % i] == {'i': i} for i in range(n))
assert all(m['rust%d' % i] == ('value %d' % i).encode() for i in range(n))
with open(sys.argv[1], 'rb') as f:
    whole = pickle.load(f)
print(len(whole))
",
        &[&path, &n.to_string()],
    );
    assert_eq!(out.trim(), (3 * n).to_string());
}

#[test]
fn a_torn_append_is_cut_back_and_damage_is_reported() {
    let scratch = Scratch::new();
    let mut b = open(&scratch.path);
    b.insert(b"kept", b"synced").unwrap();
    b.flush().unwrap();
    b.close().unwrap();
    drop(b);
    let whole = std::fs::read(&scratch.path).unwrap();
    // A torn append: an entry's first half over the terminator.
    let mut torn = whole[..whole.len() - 11].to_vec();
    torn.extend_from_slice(&[0x95, 40, 0, 0, 0, 0, 0, 0, 0, 0x8c, 3, b'n', b'e']);
    std::fs::write(&scratch.path, &torn).unwrap();
    let b = open(&scratch.path);
    assert_eq!(b.get(b"kept").unwrap().as_deref(), Some(&b"synced"[..]));
    drop(b);
    assert_eq!(std::fs::read(&scratch.path).unwrap(), whole, "cut back as fsck would");
    // Damage (a flag byte that is neither valid nor deleted) is refused.
    let mut bad = whole.clone();
    let flag = bad.len() - 11 - 2;
    bad[flag] = b'x';
    std::fs::write(&scratch.path, &bad).unwrap();
    let err = MmapPickleBackend::open(&scratch.path, &BackendOptions::default()).map(|_| ()).unwrap_err();
    assert!(matches!(err, shelf::OpenError::Corrupted { .. }), "{err}");
    assert_eq!(std::fs::read(&scratch.path).unwrap(), bad, "damage is never cut away silently");
}

#[test]
fn whichdb_names_the_format_and_json_carries_arrays() {
    let Some(py) = python("whichdb_names_the_format_and_json_carries_arrays") else { return };
    let theirs = Scratch::new();
    let path = theirs.path.to_str().unwrap();
    run(
        &py,
        "
m = mmapdict(sys.argv[1])
m['a'] = numpy.arange(12, dtype='float32').reshape(3, 4)
m['m'] = numpy.ma.array([1, 2, 3], mask=[1, 0, 0], dtype='int64')
m['n'] = [1, 'two']
",
        &[path],
    );
    assert_eq!(shelf::whichdb(&theirs.path), shelf::WhichDb::Backend("mmappickle"));
    let db = shelf::OpenOptions::new()
        .protocol(Protocol::pickle().with_placeholders())
        .open(&theirs.path)
        .unwrap();
    // The dump's JSON: a tagged form with dtype, shape and base64 data.
    let mut dumped = Vec::new();
    for key in ["a", "m", "n"] {
        let v = db.get::<Value>(key).unwrap().unwrap();
        let json = shelf_cli::json_value::from_value(&v);
        let text = json.to_text();
        if key != "n" {
            assert!(text.contains("\"$ndarray\"") && text.contains("\"dtype\""), "{key}: {text}");
        }
        dumped.push((key, text));
    }
    assert!(dumped[0].1.contains("\"float32\"") && dumped[0].1.contains("[3,4]"), "{}", dumped[0].1);
    assert!(dumped[1].1.contains("\"mask\""), "{}", dumped[1].1);
    // Loaded into a new file (what convert does), Python reads equal arrays.
    let ours = Scratch::new();
    let mut out = shelf::OpenOptions::new()
        .backend("mmappickle")
        .protocol(Protocol::pickle())
        .open(&ours.path)
        .unwrap();
    for (key, text) in &dumped {
        let v = shelf_cli::json_value::to_value(&shelf_cli::json_value::parse(text).unwrap()).unwrap();
        out.insert(*key, &v).unwrap();
    }
    out.close().unwrap();
    run(
        &py,
        "
m = mmapdict(sys.argv[1])
assert numpy.array_equal(m['a'], numpy.arange(12, dtype='float32').reshape(3, 4)) and m['a'].dtype == 'float32'
assert list(m['m'].mask) == [True, False, False] and list(m['m'].data) == [1, 2, 3]
assert m['n'] == [1, 'two']
",
        &[ours.path.to_str().unwrap()],
    );
}
