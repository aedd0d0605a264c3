//! Running the real `shelf` binary, shared by the CLI test files.

#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Command, Output, Stdio};

pub fn shelf_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shelf"))
}

/// Runs `shelf ARGS` with `stdin` as its standard input.
pub fn run_in(args: &[&str], stdin: &str) -> Output {
    feed(shelf_cmd(), args, stdin)
}

/// Runs `shelf ARGS` in the directory `dir` with `stdin` as its standard
/// input.
pub fn run_in_at(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = shelf_cmd();
    cmd.current_dir(dir);
    feed(cmd, args, stdin)
}

/// Runs `shelf ARGS` in the directory `dir`.
pub fn run_at(dir: &Path, args: &[&str]) -> Output {
    run_in_at(dir, args, "")
}

fn feed(mut cmd: Command, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shelf");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for shelf")
}

pub fn run(args: &[&str]) -> Output {
    run_in(args, "")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it is not the expected one.
#[track_caller]
pub fn expect(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "stdout: {}\nstderr: {}", stdout(o), stderr(o));
}
