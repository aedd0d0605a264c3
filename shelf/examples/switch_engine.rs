//! Choosing the storage engine by configuration: the same code on redb,
//! SQLite (CPython 3.13's `dbm.sqlite3` format) or `dbm.dumb`.
//!
//! `cargo run -p shelf --example switch_engine -- sqlite`
//! `SHELF_BACKEND=dumb cargo run -p shelf --example switch_engine`
//!
//! The backend is a name looked up in shelf's registry at run time; every
//! shelf has the same type (`shelf::DynShelf`), so nothing else changes.
//! An existing database is always opened by the backend that wrote it
//! (`shelf::open` detects it); the name only picks the engine of a new one.

use serde::{Deserialize, Serialize};
use shelf::{DynShelf, Flag, OpenOptions};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Session {
    user: String,
    visits: u32,
}

/// The application's code: knows nothing about the engine.
fn record_visit(db: &mut DynShelf, user: &str) -> Result<u32, shelf::Error> {
    let mut session = db.get::<Session>(user)?.unwrap_or(Session { user: user.to_owned(), visits: 0 });
    session.visits += 1;
    db.insert(user, &session)?;
    db.sync()?;
    Ok(session.visits)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message, then each cause: what a person needs to fix it.
            eprint!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprint!(": {cause}");
                source = cause.source();
            }
            eprintln!();
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // The first argument, else $SHELF_BACKEND, else redb.
    let backend = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SHELF_BACKEND").ok())
        .unwrap_or_else(|| "redb".to_owned());
    println!(
        "backends in this build: {}",
        shelf::backends().iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
    );

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions");
    // An unknown name is an error listing the backends there are.
    let mut db = OpenOptions::new().backend(&backend).flag(Flag::Create).open(&path)?;
    println!("backend {backend}: protocol {}", db.protocol().name());
    for user in ["ada", "grace", "ada"] {
        println!("{user}: visit {}", record_visit(&mut db, user)?);
    }
    db.close()?;

    // Reopened without naming the backend: detected from the files.
    let db = shelf::open(&path)?;
    println!("{} holds a {} database", path.display(), shelf::whichdb(&path).as_str());
    assert_eq!(db.get::<Session>("ada")?.map(|s| s.visits), Some(2));
    Ok(())
}
