//! The command-line conventions of issue 16, through the real `shelf`
//! binary: short options, `-` for stdin and stdout, a terminal refused on
//! `load`'s stdin, shell completions, registry names in `--help`, `--json`
//! on the commands that report, and the hints a person needs.
//!
//! Tests that store something use the `dumb` backend (the one `a.dat` and
//! `a.dir` are about); they print `skipped: <why>` and return when it is
//! not registered.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{expect, run_at as run, run_in_at as run_in, stderr, stdout};

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// A temporary directory with a dumb database `a` holding `k: 1`, or
/// `None` (with the skip printed) when dumb is not registered.
fn dumb_db(case: &str) -> Option<tempfile::TempDir> {
    if shelf::find_backend("dumb").is_err() {
        eprintln!("skipped: {case}: backend 'dumb' is not registered");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    expect(&run(dir.path(), &["set", "-b", "dumb", "a", "k", "1"]), 0);
    Some(dir)
}

#[test]
fn short_options_select_backend_protocol_and_flag() {
    let Some(dir) = dumb_db("short options") else { return };
    let o = run(dir.path(), &["info", "-b", "dumb", "-p", "json", "-f", "r", "--json", "a"]);
    expect(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["backend"], "dumb");
    assert_eq!(doc["protocol"], "json");
    // -f is --flag: a writing flag on a reading command is a usage error.
    let o = run(dir.path(), &["get", "-f", "w", "a", "k"]);
    expect(&o, 2);
    assert!(stderr(&o).contains("--flag w"), "{}", stderr(&o));
}

#[test]
fn dump_out_dash_is_stdout_and_load_in_dash_is_stdin() {
    let Some(dir) = dumb_db("dash") else { return };
    let o = run(dir.path(), &["dump", "-o", "-", "a"]);
    expect(&o, 0);
    assert_eq!(json(&o), serde_json::json!({"k": 1}));
    assert!(!dir.path().join("-").exists(), "dump --out - created a file named -");

    let o = run_in(dir.path(), &["load", "-b", "dumb", "-i", "-", "b"], "{\"x\": [1, 2]}");
    expect(&o, 0);
    let o = run(dir.path(), &["get", "b", "x"]);
    expect(&o, 0);
    assert_eq!(stdout(&o).trim(), "[1,2]");

    // The long spellings and a real file still work.
    std::fs::write(dir.path().join("in.json"), "{\"y\": true}").expect("write dump");
    expect(&run(dir.path(), &["load", "--in", "in.json", "b"]), 0);
    expect(&run(dir.path(), &["dump", "--out", "out.json", "b"]), 0);
    let text = std::fs::read_to_string(dir.path().join("out.json")).expect("read dump");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("dump is JSON");
    assert_eq!(doc, serde_json::json!({"x": [1, 2], "y": true}));
}

/// Runs `shelf ARGS` in `dir` on a pseudo-terminal (util-linux `script`),
/// so stdin and stderr are terminals; `None` (with the reason printed)
/// where `script` is missing. Its stdout holds everything the terminal got.
fn on_a_terminal(dir: &Path, args: &str, case: &str) -> Option<Output> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: {case}: `script` (util-linux) is not installed");
        return None;
    }
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_shelf"));
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    Some(o)
}

#[test]
fn load_refuses_a_terminal_on_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(o) = on_a_terminal(dir.path(), "load db", "load at a terminal") else { return };
    let text = stdout(&o);
    assert!(text.contains("stdin is a terminal"), "{text}");
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(
        !dir.path().join("db").exists() && !dir.path().join("db.dat").exists(),
        "load created a database"
    );
}

#[test]
fn completions_print_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run(dir.path(), &["completions", "bash"]);
    expect(&o, 0);
    let script = stdout(&o);
    assert!(script.contains("_shelf") && script.contains("complete"), "{script}");
    assert!(script.contains("--backend") && script.contains("whichdb"), "{script}");
    for shell in ["zsh", "fish"] {
        let o = run(dir.path(), &["completions", shell]);
        expect(&o, 0);
        assert!(stdout(&o).contains("shelf"), "{shell}: {}", stdout(&o));
    }
    expect(&run(dir.path(), &["completions", "tcsh"]), 2);
}

#[test]
fn help_lists_registered_backends_and_protocols() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [&["--help"][..], &["info", "--help"], &["convert", "--help"], &["load", "-h"]] {
        let o = run(dir.path(), args);
        expect(&o, 0);
        let help = stdout(&o);
        for b in shelf::backends().iter().chain(shelf::url_backends()) {
            assert!(help.contains(b.name), "{args:?} does not name backend {}:\n{help}", b.name);
        }
        for p in shelf::Protocol::NAMES {
            assert!(help.contains(p), "{args:?} does not name protocol {p}:\n{help}");
        }
    }
}

#[test]
fn bench_keys_has_a_real_name_and_keeps_n() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run(dir.path(), &["bench", "--help"]);
    expect(&o, 0);
    assert!(stdout(&o).contains("-n, --keys <N>"), "{}", stdout(&o));
    // All three spellings parse (the unknown backend stops the run before
    // any work, after parsing).
    for spelling in ["-n", "--keys", "--n"] {
        let o = run(dir.path(), &["bench", spelling, "5", "--no-python", "--backends", "no-such"]);
        expect(&o, 2);
        assert!(stderr(&o).contains("unknown backend 'no-such'"), "{spelling}: {}", stderr(&o));
    }
}

#[test]
fn whichdb_json_and_did_you_mean() {
    let Some(dir) = dumb_db("whichdb") else { return };
    let o = run(dir.path(), &["whichdb", "--json", "a"]);
    expect(&o, 0);
    assert_eq!(json(&o), serde_json::json!({"path": "a", "result": "dumb", "backend": "dumb"}));
    let o = run(dir.path(), &["whichdb", "--json", "nothing"]);
    expect(&o, 1);
    assert_eq!(json(&o)["result"], "missing");
    assert!(json(&o)["backend"].is_null());

    for file in ["a.dat", "a.dir"] {
        let o = run(dir.path(), &["whichdb", file]);
        expect(&o, 3);
        assert_eq!(stdout(&o), "unknown\n");
        assert!(stderr(&o).contains("did you mean a?"), "{file}: {}", stderr(&o));
    }
    // A file that belongs to no database gets no guess.
    std::fs::write(dir.path().join("x.dat"), b"junk").expect("write junk");
    let o = run(dir.path(), &["whichdb", "x.dat"]);
    expect(&o, 3);
    assert_eq!(stderr(&o), "");
}

#[test]
fn check_and_compact_json() {
    let Some(dir) = dumb_db("check/compact --json") else { return };
    expect(&run(dir.path(), &["set", "a", "k", "\"a longer value, to leave a hole\""]), 0);
    let o = run(dir.path(), &["check", "--json", "a"]);
    expect(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["verdict"], "ok");
    assert_eq!(doc["good_entries"], 1);
    assert_eq!(doc["problems"], serde_json::json!([]));

    let o = run(dir.path(), &["compact", "--json", "a"]);
    expect(&o, 0);
    let doc = json(&o);
    let before = doc["bytes_before"].as_u64().expect("bytes_before");
    let after = doc["bytes_after"].as_u64().expect("bytes_after");
    assert_eq!(doc["reclaimed_bytes"].as_u64(), Some(before.saturating_sub(after)));
    assert_eq!(doc["path"], "a");
}

#[test]
fn set_of_a_bare_word_hints_to_quote_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run(dir.path(), &["set", "a", "k", "hello"]);
    expect(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("malformed JSON"), "{err}");
    assert!(err.contains(r#"to store a string, quote it: '"hello"'"#), "{err}");
    // Broken JSON that is not a bare word gets no quoting hint.
    let o = run(dir.path(), &["set", "a", "k", "{bad"]);
    expect(&o, 3);
    assert!(!stderr(&o).contains("quote it"), "{}", stderr(&o));
}

#[test]
fn reading_a_missing_database_suggests_no_creating_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    for cmd in ["info", "keys", "dump", "check"] {
        let o = run(dir.path(), &[cmd, "nofile"]);
        expect(&o, 1);
        let err = stderr(&o);
        assert!(err.contains("does not exist"), "{cmd}: {err}");
        assert!(!err.contains("'c'") && !err.contains("'n'"), "{cmd}: {err}");
    }
}

#[test]
fn bench_json_dash_prints_the_figures_on_stdout() {
    let Some(backend) = shelf::backends().iter().find(|b| b.capabilities.persistent && b.name == "dumb")
    else {
        eprintln!("skipped: bench --json -: backend 'dumb' is not registered");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run(dir.path(), &["bench", "-n", "20", "--backends", backend.name, "--no-python", "--json", "-"]);
    expect(&o, 0);
    let doc = json(&o);
    assert_eq!(doc["n"], 20);
    assert_eq!(doc["results"][0]["backend"], backend.name);
    assert!(doc["results"][0]["timings"].as_array().is_some_and(|t| !t.is_empty()), "{doc}");
    assert!(!dir.path().join("-").exists(), "bench --json - created a file named -");
}

#[test]
fn load_from_a_file_shows_bytes_at_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    // About 3 MiB: long enough to draw the bar at least once.
    let entries: Vec<String> = (0..20_000).map(|i| format!("\"k{i:06}\": \"{}\"", "v".repeat(140))).collect();
    std::fs::write(dir.path().join("dump.json"), format!("{{{}}}", entries.join(","))).expect("dump");
    let Some(o) = on_a_terminal(dir.path(), "load db -b redb -i dump.json", "load progress") else { return };
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("loaded 20000 keys"), "{text}");
    // The bar counts the file's bytes against its size, not keys.
    assert!(text.contains("iB/2.") || text.contains("iB/3."), "no byte progress in {text:?}");
}

#[test]
fn a_shelf_made_with_defaults_reads_in_the_cli_and_as_value() {
    #[derive(serde::Serialize)]
    struct Visit {
        page: String,
        count: u32,
        ratio: f64,
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("visits");
    let mut s = shelf::open(&path).expect("open with every default");
    s.insert("home", &Visit { page: "/".into(), count: 3, ratio: 0.5 }).expect("insert");
    // Through Value, with no Rust type: every item reads.
    for (key, value) in &s {
        let value = value.expect("a default shelf's value reads as Value");
        assert_eq!(key, "home");
        assert!(format!("{value:?}").contains("count"), "{value:?}");
    }
    s.close().expect("close");
    let o = run(dir.path(), &["get", "visits", "home"]);
    expect(&o, 0);
    assert_eq!(json(&o), serde_json::json!({"page": "/", "count": 3, "ratio": 0.5}));
    let o = run(dir.path(), &["info", "visits"]);
    assert!(stdout(&o).contains("msgpack"), "{}", stdout(&o));
}
