//! `whichdb` names every format CPython's `dbm.whichdb` recognises, checked
//! against the real CPython: the formats shelf opens by their backend, and
//! `dbm.ndbm` (Berkeley DB's emulation on Debian), which shelf cannot open,
//! by its name, with an open error that says how to convert it.

use std::path::Path;
use std::process::Command;

use shelf::{OpenError, WhichDb};

/// Debian's Python, whose `dbm.ndbm` is Berkeley DB's; `None` (after
/// printing why) where it is missing.
fn debian_python_with_ndbm() -> Option<&'static str> {
    const PY: &str = "/usr/bin/python3";
    let ok = Command::new(PY).args(["-c", "import dbm.ndbm"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        shelf_tests::skip("whichdb_parity", "ndbm", "/usr/bin/python3 has no dbm.ndbm");
        return None;
    }
    Some(PY)
}

fn python(py: &str, dir: &Path, code: &str) -> String {
    let out = Command::new(py).arg("-c").arg(code).current_dir(dir).output().expect("run python");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn an_ndbm_database_is_named_and_its_open_error_says_how_to_convert_it() {
    let Some(py) = debian_python_with_ndbm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let made = python(
        py,
        dir.path(),
        "import dbm, dbm.ndbm\nd = dbm.ndbm.open('legacy', 'c')\nd[b'k'] = b'value'\nd.close()\nprint(dbm.whichdb('legacy'))",
    );
    assert_eq!(made, "dbm.ndbm", "CPython's own verdict");
    let path = dir.path().join("legacy");
    match shelf::whichdb(&path) {
        WhichDb::Unsupported(f) => assert_eq!(f.name, "dbm.ndbm"),
        other => panic!("whichdb said {other:?}"),
    }
    assert_eq!(shelf::whichdb(&path).as_str(), "dbm.ndbm");
    let before = std::fs::read(dir.path().join("legacy.db")).unwrap();
    let hint = match shelf::open(&path).map(|_| ()) {
        Err(OpenError::UnsupportedFormat { format, hint, .. }) => {
            assert_eq!(format, "dbm.ndbm");
            hint
        }
        other => panic!("open gave {other:?}"),
    };
    assert_eq!(std::fs::read(dir.path().join("legacy.db")).unwrap(), before, "nothing was written");
    // The hint, run as given with the Python that made the file, produces
    // a dumb database shelf opens.
    let command = hint.strip_prefix("python3 ").expect("a python3 command");
    let code = command.strip_prefix("-c \"").and_then(|c| c.strip_suffix('"')).expect("-c \"...\"");
    let code = code.replace(&path.display().to_string(), "legacy");
    python(py, dir.path(), &code);
    let converted = dir.path().join("legacy-dumb");
    assert_eq!(shelf::whichdb(&converted), WhichDb::Backend("dumb"));
    let db = shelf::OpenOptions::new().flag(shelf::Flag::Read).open(&converted).unwrap();
    assert_eq!(db.get_bytes("k").unwrap().as_deref(), Some(&b"value"[..]));
}
