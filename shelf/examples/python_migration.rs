//! Moving a shelf Python wrote into a redb shelf, from Rust, without the CLI.
//!
//! `cargo run -p shelf --example python_migration`
//!
//! 1. `python3` writes a shelf with `shelve.open` (in a temporary folder):
//!    whichever dbm format that Python has first, `dbm.sqlite3` on 3.13,
//!    `dbm.gnu` where `_gdbm` is built, else `dbm.dumb`. Without `python3`
//!    the example writes the same shelf itself in `dbm.dumb`'s format with
//!    pickled values, which is byte for byte what CPython writes.
//! 2. Rust opens it without naming a format: `whichdb` finds the backend and
//!    the shelf finds the pickle protocol.
//! 3. Every entry is copied into a new redb shelf, with the default protocol
//!    (MessagePack), then read back as a Rust struct.
//!
//! (`shelf convert OLD NEW --backend redb --protocol msgpack` does the same
//! from a shell, and refuses values the target protocol would change.)

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use shelf::{Flag, OpenOptions, Protocol, Value};

/// What the Python program stores: `{"count": int, "tags": [str, ...]}`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Item {
    count: i64,
    tags: Vec<String>,
}

const PYTHON: &str = r#"
import shelve, sys
with shelve.open(sys.argv[1]) as db:
    db["apples"] = {"count": 3, "tags": ["red", "sweet"]}
    db["pears"] = {"count": 5, "tags": ["green"]}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let old = dir.path().join("inventory");
    write_the_python_shelf(&old)?;
    println!("Python's shelf is a {:?} database", shelf::whichdb(&old).as_str());

    // Flag 'r': the old shelf is only read. Its values are pickles; the
    // protocol is found from them.
    let source = OpenOptions::new().flag(Flag::Read).open(&old)?;
    println!("its values are {}", source.protocol().name());

    // Flag 'n': a new, empty redb shelf. Its protocol is MessagePack, the
    // default for new shelves: self-describing, so Python's `msgpack`, the
    // `shelf` command and `shelf::Value` read it. (A Python tuple or set
    // becomes a list in MessagePack; to keep Python's types exactly, add
    // `.protocol(Protocol::pickle())`.)
    let new = dir.path().join("inventory.redb");
    let mut target = OpenOptions::new().backend("redb").flag(Flag::New).open(&new)?;
    assert_eq!(target.protocol(), Protocol::msgpack());

    // `for (key, value) in &shelf`: each value is a `shelf::Value`, with its
    // own Result, so one bad entry names its key.
    let mut copied = 0;
    for (key, value) in &source {
        let value: Value = value.map_err(|e| format!("cannot read {key:?}: {e}"))?;
        target.insert(&key, &value)?;
        copied += 1;
    }
    target.close()?; // the durability point: everything is on disk now
    println!("copied {copied} entries into {}", new.display());

    // From now on the Rust program reads its own types.
    let target = OpenOptions::new().flag(Flag::Read).open(&new)?;
    let apples: Option<Item> = target.get("apples")?;
    println!("apples: {apples:?}");
    assert_eq!(apples, Some(Item { count: 3, tags: vec!["red".into(), "sweet".into()] }));
    for item in target.items::<Item>()? {
        let (key, item) = item?;
        println!("{key}: {} ({})", item.count, item.tags.join(", "));
    }
    Ok(())
}

/// Runs `python3` to write the shelf, or writes it as `dbm.dumb` would.
fn write_the_python_shelf(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    match Command::new("python3").arg("-c").arg(PYTHON).arg(path).status() {
        Ok(status) if status.success() => {
            println!("python3 wrote {}", path.display());
            Ok(())
        }
        Ok(status) => Err(format!("python3 failed ({status})").into()),
        Err(e) => {
            println!("python3 is not available ({e}): writing the shelf as CPython's dbm.dumb would");
            let mut db = OpenOptions::new().backend("dumb").protocol(Protocol::pickle()).open(path)?;
            db.insert("apples", &Item { count: 3, tags: vec!["red".into(), "sweet".into()] })?;
            db.insert("pears", &Item { count: 5, tags: vec!["green".into()] })?;
            db.close()?;
            Ok(())
        }
    }
}
