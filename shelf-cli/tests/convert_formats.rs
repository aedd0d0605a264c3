//! `shelf convert` between the formats Python's shelve writes (gnu, sqlite,
//! dumb) and redb keeps every value, and the real CPython reads each result:
//! Debian's python3 with dbm.gnu writes the source, shelf converts it
//! gnu -> sqlite -> dumb -> redb -> gnu, CPython 3.13 reads the sqlite
//! shelf and Debian's python3 the dumb and gnu ones, every value equal and
//! of the same type.

use std::path::Path;
use std::process::{Command, Output};

fn shelf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shelf")).args(args).output().expect("run shelf")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "shelf failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `code` with the interpreter `python` (a path, or pyenv with a
/// version); `None` when it cannot be run at all.
fn run_python(python: &[&str], env: &[(&str, &str)], dir: &Path, code: &str) -> Option<Output> {
    let mut cmd = Command::new(python[0]);
    cmd.args(&python[1..]).arg("-c").arg(code).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().ok()
}

/// The values, as Python literals (evaluated by each interpreter).
const VALUES: &str = r#"{
    "int": 42, "big": 2**100, "float": 1.5, "str": "héllo", "bytes": b"\x00\xff",
    "tuple": (1, "a", (2,)), "list": [1, [2, 3]], "dict": {"k": {"n": None}},
    "set": {1, 2}, "frozenset": frozenset(["x"]), "bool": True,
    "date": __import__("datetime").date(2026, 11, 30),
    "decimal": __import__("decimal").Decimal("1.10"),
}"#;

/// Python that checks the shelf opened by `open_expr` holds exactly VALUES,
/// types included, and prints `ok`.
fn check_code(open_expr: &str) -> String {
    format!(
        "import shelve, dbm\nexpected = {VALUES}\ns = {open_expr}\n\
         got = dict(s.items())\ns.close()\n\
         assert sorted(got) == sorted(expected), (sorted(got), sorted(expected))\n\
         for k, v in expected.items():\n    \
         assert got[k] == v and type(got[k]) is type(v), (k, got[k], v)\nprint('ok')"
    )
}

#[test]
fn convert_between_python_formats_keeps_every_value() {
    let debian: &[&str] = &["/usr/bin/python3"];
    let gnu_ok =
        run_python(debian, &[], Path::new("/"), "import dbm.gnu").is_some_and(|o| o.status.success());
    if !gnu_ok {
        eprintln!(
            "skipped: convert_between_python_formats_keeps_every_value: /usr/bin/python3 has no dbm.gnu"
        );
        return;
    }
    let py313: &[&str] = &["pyenv", "exec", "python3"];
    let env313 = [("PYENV_VERSION", "3.13.0")];
    let has_313 =
        run_python(py313, &env313, Path::new("/"), "import dbm.sqlite3").is_some_and(|o| o.status.success());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = run_python(
        debian,
        &[],
        d,
        &format!("import shelve, dbm.gnu\ns = shelve.Shelf(dbm.gnu.open('src', 'c'))\ns.update({VALUES})\ns.close()"),
    )
    .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let path = |n: &str| d.join(n).to_str().unwrap().to_owned();
    assert_eq!(ok(&shelf(&["whichdb", &path("src")])).trim(), "gnu");
    for (from, to, backend) in [
        ("src", "a.sqlite", "sqlite"),
        ("a.sqlite", "b", "dumb"),
        ("b", "c.redb", "redb"),
        ("c.redb", "d", "gnu"),
    ] {
        ok(&shelf(&["convert", &path(from), &path(to), "--backend", backend]));
        assert_eq!(ok(&shelf(&["whichdb", &path(to)])).trim(), backend);
    }
    // Debian's Python reads the dumb and the gnu results.
    for open in
        ["shelve.Shelf(dbm.gnu.open('d', 'r'))", "shelve.Shelf(__import__('dbm.dumb').dumb.open('b', 'r'))"]
    {
        let code = check_code(open).replace("import shelve, dbm\n", "import shelve, dbm, dbm.gnu\n");
        let out = run_python(debian, &[], d, &code).unwrap();
        assert!(out.status.success(), "{open}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    }
    // CPython 3.13 reads the sqlite result with plain shelve.open.
    if has_313 {
        let out = run_python(py313, &env313, d, &check_code("shelve.open('a.sqlite', 'r')")).unwrap();
        assert!(out.status.success(), "3.13: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    } else {
        eprintln!("skipped: the CPython 3.13 part: pyenv has no 3.13.0 with dbm.sqlite3");
    }
}
