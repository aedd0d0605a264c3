//! Changing values in place with writeback, as Python's
//! `shelve.open(path, writeback=True)`.
//!
//! `cargo run -p shelf --example writeback`
//!
//! A value read from a shelf is a copy: changing it changes nothing stored.
//! In Python, `db["xs"].append(4)` is lost without writeback. Here the same
//! mistake cannot be made silently: `get` returns an owned copy, and
//! `get_mut`, which hands out a value to change in place, needs writeback.

use serde::{Deserialize, Serialize};
use shelf::{Error, OpenOptions};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    hits: u64,
    last_page: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("stats");

    // Without writeback: copy, change, insert back (what Python needs too).
    let mut db = shelf::open(&path)?;
    db.insert("xs", &vec![1, 2, 3])?;
    let mut xs: Vec<i32> = db.get("xs")?.unwrap_or_default();
    xs.push(4); // a copy: the shelf still holds [1, 2, 3]
    assert_eq!(db.get::<Vec<i32>>("xs")?, Some(vec![1, 2, 3]));
    db.insert("xs", &xs)?;
    // get_mut would silently lose the change, so it is an error instead.
    assert!(matches!(db.get_mut::<Vec<i32>>("xs"), Err(Error::WritebackDisabled { .. })));
    db.close()?;

    // With writeback: get_mut hands out a cached value; sync() and close()
    // write every value handed out.
    let mut db = OpenOptions::new().writeback(true).open(&path)?;
    db.insert("home", &Counter::default())?;
    for page in ["/", "/about", "/"] {
        if let Some(counter) = db.get_mut::<Counter>("home")? {
            counter.hits += 1;
            counter.last_page = page.to_owned();
        }
    }
    if let Some(xs) = db.get_mut::<Vec<i32>>("xs")? {
        xs.push(5);
    }
    println!("{} values wait in the writeback cache", db.cached_len());
    db.sync()?; // written, and durable
    // uncache_all() writes back and frees the cache early, for long runs.
    db.uncache_all()?;
    db.close()?;

    let db = shelf::open(&path)?;
    let home: Counter = db.get("home")?.unwrap_or_default();
    println!("home: {home:?}");
    println!("xs: {:?}", db.get::<Vec<i32>>("xs")?);
    assert_eq!(home.hits, 3);
    assert_eq!(db.get::<Vec<i32>>("xs")?, Some(vec![1, 2, 3, 4, 5]));
    Ok(())
}
