//! `whichdb` on arbitrary files: the input is split into the bytes of a
//! file at the path and of `PATH.dir`/`PATH.dat` beside it; detection must
//! answer without panicking, and opening read-only must too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let (a, rest) = data.split_at(data.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    match a.first() {
        Some(x) if x % 3 == 0 => {
            std::fs::create_dir(&path).expect("dir");
            std::fs::write(path.join("conf"), b).expect("conf");
            std::fs::write(path.join("db"), c).expect("db");
        }
        Some(x) if x % 3 == 1 => {
            std::fs::write(dir.path().join("db.dir"), b).expect("dir file");
            std::fs::write(dir.path().join("db.dat"), c).expect("dat file");
        }
        _ => std::fs::write(&path, data).expect("file"),
    }
    let _ = shelf::whichdb(&path);
    let _ = shelf::OpenOptions::new().flag(shelf::Flag::Read).open(&path).map(|s| s.len());
});
