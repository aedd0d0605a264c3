//! Named bad inputs, each with the error it must give: never a panic, and
//! nothing already synced lost.

use std::os::unix::fs::PermissionsExt;

use shelf::{Error, Flag, OpenError, OpenOptions, Protocol, Value};
use shelf_tests::Collected;
use shelf_tests::Scratch;

/// Every compiled-in backend that keeps data on disk.
fn persistent_backends() -> Vec<&'static str> {
    shelf::backends().iter().map(|b| b.name).filter(|n| *n != "memory").collect()
}

fn open(backend: &str, path: &std::path::Path, protocol: Protocol) -> shelf::DynShelf {
    OpenOptions::new()
        .backend(backend)
        .protocol(protocol)
        .open(path)
        .unwrap_or_else(|e| panic!("{backend}: {e}"))
}

#[test]
fn a_directory_where_a_file_should_be() {
    for backend in persistent_backends() {
        if backend == "dir" || backend == "sled" {
            continue; // their databases are directories
        }
        let scratch = Scratch::new();
        // dumb's files are PATH.dat and PATH.dir; the others use PATH.
        for p in [scratch.path.clone(), scratch.path.with_extension("dat")] {
            std::fs::create_dir_all(&p).unwrap();
        }
        let err = OpenOptions::new().backend(backend).open(&scratch.path).map(|_| ()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(scratch.path.to_str().unwrap()), "{backend}: the error names the path: {msg}");
    }
}

#[test]
fn an_unrecognised_file_is_never_overwritten() {
    let scratch = Scratch::new();
    std::fs::write(&scratch.path, b"precious user data, not a database").unwrap();
    for flag in [Flag::Create, Flag::Write, Flag::Read, Flag::New] {
        match OpenOptions::new().flag(flag).open(&scratch.path) {
            Err(OpenError::Undetectable { path }) => assert_eq!(path, scratch.path),
            other => panic!("flag {flag}: expected Undetectable, got {:?}", other.map(|_| ())),
        }
    }
    assert_eq!(std::fs::read(&scratch.path).unwrap(), b"precious user data, not a database");
}

#[test]
fn a_file_with_no_read_permission() {
    for backend in persistent_backends() {
        let scratch = Scratch::new();
        let mut db = open(backend, &scratch.path, Protocol::Bincode);
        db.insert("k", &1i64).unwrap();
        db.close().unwrap();
        drop(db);
        let files: Vec<_> =
            std::fs::read_dir(scratch.dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        for f in &files {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o000)).unwrap();
        }
        // Root reads anything: there the case cannot be made.
        let readable = |f: &std::path::PathBuf| {
            if f.is_dir() { std::fs::read_dir(f).is_ok() } else { std::fs::read(f).is_ok() }
        };
        if files.iter().any(readable) {
            shelf_tests::skip(
                "a_file_with_no_read_permission",
                backend,
                "running as root: permissions do not apply",
            );
            continue;
        }
        let res = OpenOptions::new().backend(backend).flag(Flag::Read).open(&scratch.path).map(|_| ());
        let err = res.expect_err("an unreadable database must not open");
        assert!(!err.to_string().is_empty(), "{backend}: {err}");
        for f in &files {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

#[test]
fn a_key_of_one_mib() {
    let key = "k".repeat(1 << 20);
    for backend in persistent_backends() {
        let scratch = Scratch::new();
        let mut db = open(backend, &scratch.path, Protocol::Bincode);
        db.insert("small", &1i64).unwrap();
        match db.insert(&key, &2i64) {
            Ok(()) => {
                db.sync().unwrap();
                assert_eq!(db.get::<i64>(&key).unwrap(), Some(2), "{backend}");
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.len() < 1 << 20, "{backend}: an error may name the key, not paste a MiB of it");
                assert!(matches!(e, Error::InvalidKey { .. } | Error::Io { .. }), "{backend}: {msg}");
            }
        }
        db.close().unwrap();
        drop(db);
        let db = open(backend, &scratch.path, Protocol::Bincode);
        assert_eq!(db.get::<i64>("small").unwrap(), Some(1), "{backend}: nothing synced is lost");
    }
}

#[test]
fn a_value_of_100_mib() {
    let value = serde_bytes::ByteBuf::from(vec![0xa5u8; 100 << 20]);
    for backend in persistent_backends() {
        let scratch = Scratch::new();
        let mut db = open(backend, &scratch.path, Protocol::Bincode);
        db.insert("big", &value).unwrap();
        db.close().unwrap();
        drop(db);
        let db = open(backend, &scratch.path, Protocol::Bincode);
        let got: serde_bytes::ByteBuf = db.get("big").unwrap().unwrap();
        assert!(got.len() == value.len() && got == value, "{backend}");
    }
}

#[test]
fn invalid_utf8_in_a_key() {
    for backend in persistent_backends() {
        let scratch = Scratch::new();
        let mut db = open(backend, &scratch.path, Protocol::Bincode);
        match db.insert(&b"bad \xff key"[..], &1i64) {
            Ok(()) => match db.keys().collected() {
                Err(Error::KeyNotUtf8 { key }) => assert!(key.starts_with("bad "), "{backend}: {key}"),
                other => panic!("{backend}: expected KeyNotUtf8, got {other:?}"),
            },
            Err(e) => assert!(matches!(e, Error::InvalidKey { .. }), "{backend}: {e}"),
        }
    }
}

#[test]
fn a_pickle_naming_an_unknown_global() {
    // pickle.dumps(mymod.Point(), 2) for a class with one attribute x = 1.
    let point: &[u8] = b"\x80\x02cmymod\nPoint\nq\x00)\x81q\x01}q\x02X\x01\x00\x00\x00xq\x03K\x01sb.";
    // pickle.dumps(datetime.date(2020, 1, 1), 2): a class shelf knows.
    let date: &[u8] = b"\x80\x02cdatetime\ndate\nq\x00c_codecs\nencode\nq\x01X\x05\x00\x00\x00\x07\xc3\xa4\x01\x01q\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05\x85q\x06Rq\x07.";
    for backend in persistent_backends() {
        let scratch = Scratch::new();
        let mut db = open(backend, &scratch.path, Protocol::pickle());
        db.backend_mut().unwrap().insert(b"p", point).unwrap();
        db.backend_mut().unwrap().insert(b"d", date).unwrap();
        // A typed read of an unknown class is an error naming it.
        let err = db.get::<String>("p").unwrap_err();
        let chain =
            format!("{err}: {}", std::error::Error::source(&err).map(|s| s.to_string()).unwrap_or_default());
        assert!(chain.contains("mymod.Point"), "{backend}: the error names the global: {chain}");
        // Read as a Value it is either refused naming the class or kept as
        // its exact bytes, never decoded into something else.
        match db.get::<Value>("p") {
            Ok(Some(Value::Opaque(o))) => assert_eq!(o.bytes, point, "{backend}: kept byte for byte"),
            Ok(other) => panic!("{backend}: an unknown class read as {other:?}"),
            Err(e) => assert!(format!("{e:?}").contains("mymod.Point"), "{backend}: {e:?}"),
        }
        // A date is no unknown class any more: it reads as one.
        assert_eq!(db.get::<String>("d").unwrap().as_deref(), Some("2020-01-01"), "{backend}");
    }
}

#[test]
fn a_protocol_mismatch() {
    for backend in persistent_backends() {
        let scratch = Scratch::new();
        let mut db = open(backend, &scratch.path, Protocol::Json);
        db.insert("k", &vec![1, 2, 3]).unwrap();
        let records = db.capabilities().unwrap().metadata;
        db.close().unwrap();
        drop(db);
        let res = OpenOptions::new().backend(backend).protocol(Protocol::Bincode).open(&scratch.path);
        if records {
            assert!(
                matches!(res, Err(OpenError::ProtocolMismatch { .. })),
                "{backend}: {:?}",
                res.map(|_| ())
            );
        } else {
            // Nothing recorded: the mismatch shows as a clear decode error.
            let db = res.unwrap();
            match db.get::<Vec<i32>>("k") {
                Err(Error::Decode { key, protocol, .. }) => {
                    assert_eq!((key.as_str(), protocol), ("k", "bincode"))
                }
                other => panic!("{backend}: expected a decode error, got {other:?}"),
            }
        }
    }
}

#[test]
fn a_truncated_dat_file() {
    let scratch = Scratch::new();
    let mut db = open("dumb", &scratch.path, Protocol::pickle());
    db.insert("first", &vec![1u8; 600]).unwrap();
    db.insert("second", &vec![2u8; 600]).unwrap();
    db.close().unwrap();
    drop(db);
    let dat = scratch.path.with_extension("dat");
    let len = std::fs::metadata(&dat).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&dat).unwrap().set_len(len - 100).unwrap();
    match OpenOptions::new().flag(Flag::Read).open(&scratch.path) {
        Err(OpenError::Corrupted { path, detail }) => {
            assert_eq!(path, scratch.path.with_extension("dir"));
            assert!(
                detail.contains("line 2") && detail.contains("second") && detail.contains("past the end"),
                "{detail}"
            );
        }
        other => panic!("expected Corrupted, got {:?}", other.map(|_| ())),
    }
    // Salvaging keeps the good entry and repairs the index.
    let mut db = OpenOptions::new().flag(Flag::Write).salvage(true).open(&scratch.path).unwrap();
    let report = db.backend_mut().unwrap().check(true).unwrap();
    assert_eq!((report.good_entries, report.problems.len(), report.repaired), (1, 1, true), "{report:?}");
    assert_eq!(db.keys().collected().unwrap(), ["first"]);
    db.close().unwrap();
    assert!(OpenOptions::new().flag(Flag::Read).open(&scratch.path).is_ok());
}
