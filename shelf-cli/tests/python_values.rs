//! Python's everyday classes through the `shelf` command, against the real
//! CPython: a dumb shelf of datetimes, Decimals, UUIDs, OrderedDicts and an
//! instance of a class shelf does not know, written by CPython, goes
//! through `get`, `dump`, `load` and `convert` (to redb re-encoded as
//! protocol 4, and back), and CPython reads every value equal and of the
//! same class, the unknown one byte for byte unchanged.

use std::path::Path;
use std::process::{Command, Output};

fn shelf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shelf")).args(args).output().expect("run shelf")
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn registered(name: &str) -> bool {
    shelf::backends().iter().any(|b| b.name == name)
}

/// The values, and a module with a class shelf does not know.
const VALUES: &str = r#"
import datetime as D, decimal, uuid, collections, fractions, pathlib, sys
sys.path.insert(0, DIR)
import mymod
V = {
    'date': D.date(2026, 11, 30),
    'aware': D.datetime(2026, 11, 30, 8, 0, tzinfo=D.timezone.utc),
    'price': decimal.Decimal('1.10'),
    'id': uuid.UUID('12345678-1234-5678-1234-567812345678'),
    'od': collections.OrderedDict([('b', 1), ('a', [D.timedelta(days=1)])]),
    'dq': collections.deque([1, 2], maxlen=3),
    'dd': collections.defaultdict(list, {'x': [1]}),
    'misc': [complex(1, 2), fractions.Fraction(3, 4), pathlib.PurePosixPath('/etc/x')],
    'point': mymod.Point(3, 4),
}
"#;

const MODULE: &str = "class Point(object):\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n    \
                      def __eq__(self, o):\n        return type(o) is Point and (self.x, self.y) == (o.x, o.y)\n";

fn python(dir: &Path, body: &str) -> Option<String> {
    let script = format!("DIR = {:?}\n{VALUES}\n{body}", p(dir));
    let o = Command::new("python3").args(["-c", &script]).output().ok()?;
    assert!(o.status.success(), "python3 failed: {}", String::from_utf8_lossy(&o.stderr));
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Prints `key ok` for each value of the shelf at `path` that equals the
/// original and is of the same class.
fn check_in_cpython(dir: &Path, path: &Path) -> Vec<String> {
    let body = format!(
        "import dbm.dumb, shelve\ns = shelve.Shelf(dbm.dumb.open({:?}, 'r'))\n\
         for k in sorted(V):\n    got = s[k]\n    \
         print(k, 'ok' if got == V[k] and type(got) is type(V[k]) else 'DIFFERS %r' % (got,))\n",
        p(path)
    );
    python(dir, &body).expect("python3 ran before").lines().map(str::to_owned).collect()
}

#[test]
fn a_cpython_shelf_of_everyday_classes_survives_get_dump_load_and_convert() {
    if !registered("dumb") {
        return println!("skipped: backend 'dumb' is not registered");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mymod.py"), MODULE).unwrap();
    let src = dir.path().join("py");
    let write = format!(
        "import dbm.dumb, shelve\ns = shelve.Shelf(dbm.dumb.open({:?}, 'n'), protocol=3)\n\
         s.update(V)\ns.close()\n",
        p(&src)
    );
    if python(dir.path(), &write).is_none() {
        return println!("skipped: python3 not found");
    }

    // get: each class in its tagged form; the unknown class as its placeholder.
    let get = |k: &str| ok(&shelf(&["get", p(&src), k]));
    assert_eq!(get("date"), "{\"$date\":\"2026-11-30\"}\n");
    assert_eq!(get("aware"), "{\"$datetime\":\"2026-11-30T08:00:00+00:00\"}\n");
    assert_eq!(get("price"), "{\"$decimal\":\"1.10\"}\n");
    assert_eq!(get("id"), "{\"$uuid\":\"12345678-1234-5678-1234-567812345678\"}\n");
    assert_eq!(get("od"), "{\"$ordereddict\":[[\"b\",1],[\"a\",[{\"$timedelta\":[1,0,0]}]]]}\n");
    assert_eq!(get("dq"), "{\"$deque\":{\"items\":[1,2],\"maxlen\":3}}\n");
    assert_eq!(get("dd"), "{\"$defaultdict\":{\"factory\":\"list\",\"items\":[[\"x\",[1]]]}}\n");
    assert_eq!(
        get("misc"),
        "[{\"$complex\":[1.0,2.0]},{\"$fraction\":\"3/4\"},{\"$purepath\":\"/etc/x\"}]\n"
    );
    let point = get("point");
    assert!(point.starts_with("{\"$pickle\":{\"global\":\"mymod.Point\","), "{point}");

    // dump, then load into a new dumb shelf: CPython reads it all back.
    let dump = ok(&shelf(&["dump", p(&src)]));
    assert!(dump.contains("\"$pickle\""), "{dump}");
    let dump_file = dir.path().join("dump.json");
    std::fs::write(&dump_file, &dump).unwrap();
    let loaded = dir.path().join("loaded");
    ok(&shelf(&["load", p(&loaded), "--in", p(&dump_file), "--backend", "dumb", "--protocol", "pickle"]));
    let lines = check_in_cpython(dir.path(), &loaded);
    assert_eq!(lines.len(), 9, "{lines:?}");
    assert!(lines.iter().all(|l| l.ends_with(" ok")), "after load: {lines:?}");

    if !registered("redb") {
        return println!("skipped (convert part): backend 'redb' is not registered");
    }
    // convert to redb re-encoding as protocol 4, and back to dumb.
    let mid = dir.path().join("mid.redb");
    let back = dir.path().join("back");
    ok(&shelf(&["convert", p(&src), p(&mid), "--backend", "redb", "--protocol", "pickle4"]));
    ok(&shelf(&["convert", p(&mid), p(&back), "--backend", "dumb"]));
    let lines = check_in_cpython(dir.path(), &back);
    assert!(lines.iter().all(|l| l.ends_with(" ok")), "after convert: {lines:?}");
    // The unknown class is byte for byte what CPython wrote.
    assert_eq!(
        ok(&shelf(&["get", p(&back), "point", "--raw"])),
        ok(&shelf(&["get", p(&src), "point", "--raw"]))
    );
    assert_eq!(ok(&shelf(&["get", p(&back), "point"])), point);
}
