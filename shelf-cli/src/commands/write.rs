//! The commands that write one key: `set`, `del`.

use std::io::Read;
use std::path::Path;

use shelf::{DynShelf, Flag};

use super::output::{malformed, missing_key};
use crate::db::{self, DbOpts};
use crate::error::CliError;
use crate::json_value::{self, Json};

/// Stores one value given in its JSON form: `$raw` as its bytes untouched,
/// anything else encoded with the shelf's protocol.
fn store(s: &mut DynShelf, key: &[u8], j: &Json, source: &str) -> Result<(), CliError> {
    let shown = json_value::key_to_json(key);
    let bad = |e: json_value::FormError| CliError::data(format!("{source}: value of key {shown:?}: {e}"));
    match json_value::raw_bytes(j).map_err(bad)? {
        Some(bytes) => s.backend_mut()?.insert(key, &bytes)?,
        None => {
            let v = json_value::to_value(j).map_err(bad)?;
            s.insert(key, &v)?;
        }
    }
    Ok(())
}

/// Whether text that is not JSON was most likely meant as a string (`hello`
/// rather than `"hello"`): it does not start like any JSON value.
fn looks_like_bare_string(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty()
        && !t.starts_with(['{', '[', '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
        && !["true", "false", "null"].iter().any(|w| t.starts_with(w))
}

/// `shelf set PATH KEY JSON` (`-` reads the JSON from stdin).
pub fn set(path: &Path, opts: &DbOpts, key: &str, value: &str) -> Result<(), CliError> {
    let k = db::key_arg(key)?;
    let (text, source) = if value == "-" {
        let mut t = String::new();
        std::io::stdin().read_to_string(&mut t).map_err(|e| CliError::env(format!("reading stdin: {e}")))?;
        (t, "stdin")
    } else {
        (value.to_owned(), "the JSON argument")
    };
    // Parse before opening, so a typo never creates an empty database.
    let j = json_value::parse(&text).map_err(|e| {
        let mut err = malformed(source, &e);
        if looks_like_bare_string(&text) {
            let quoted = serde_json::to_string(text.trim()).unwrap_or_default();
            err.message = format!("{} (to store a string, quote it: '{quoted}')", err.message);
        }
        err
    })?;
    let mut s = opts.open(path, Flag::Create)?;
    store(&mut s, &k, &j, source)?;
    db::close(s, path)
}

/// `shelf del PATH KEY`.
pub fn del(path: &Path, opts: &DbOpts, key: &str) -> Result<(), CliError> {
    let k = db::key_arg(key)?;
    let mut s = opts.open(path, Flag::Write)?;
    if !s.remove(&k)? {
        return Err(missing_key(&k, path));
    }
    db::close(s, path)
}
