//! The commands that read: `whichdb`, `info`, `keys`, `get`.

use std::path::Path;

use globset::{Glob, GlobMatcher};
use shelf::WhichDb;

use super::output::{Out, missing_key, write_err};
use crate::db::{self, DbOpts};
use crate::error::CliError;
use crate::json_value;

/// The database `path` is one file of, when it is not one itself: `a` for
/// dbm.dumb's `a.dat` or `a.dir`, found by asking the registry which files
/// make up the database at the path without the suffix.
fn database_of_file(path: &Path) -> Option<(std::path::PathBuf, &'static str)> {
    path.extension()?;
    let stem = path.with_extension("");
    match shelf::whichdb(&stem) {
        WhichDb::Backend(name) => {
            let info = shelf::find_backend(name).ok()?;
            (info.files)(&stem).iter().any(|f| f == path).then_some((stem, name))
        }
        _ => None,
    }
}

/// `shelf whichdb PATH [--json]`: prints one word (or a JSON object); exit
/// 0 only for a backend name.
pub fn whichdb(path: &Path, json: bool, out: Out) -> Result<(), CliError> {
    // A URL's server is asked, and one that does not answer is an error
    // (within the URL's timeout), not a guess.
    let found = shelf::whichdb_at(path)?;
    if json {
        let backend = match found {
            WhichDb::Backend(name) => Some(name),
            _ => None,
        };
        let doc = serde_json::json!({
            "path": path.display().to_string(),
            "result": found.as_str(),
            "backend": backend,
        });
        writeln!(out, "{doc:#}").map_err(write_err)?;
    } else {
        writeln!(out, "{}", found.as_str()).map_err(write_err)?;
    }
    match found {
        WhichDb::Backend(_) => Ok(()),
        // The word on stdout is the answer; the exit code says it is not a
        // database, with no second message on stderr.
        WhichDb::Missing => Err(CliError::not_found(String::new())),
        // `a.dat` of a dumb database `a`: the answer is still `unknown`,
        // with the name the user most likely meant on stderr.
        WhichDb::Unknown => Err(CliError::data(match database_of_file(path) {
            Some((db, name)) => format!(
                "{} is a file of the {name} database {}; did you mean {}?",
                path.display(),
                db.display(),
                db.display()
            ),
            None => String::new(),
        })),
        // CPython's name on stdout; how to get the data out on stderr.
        WhichDb::Unsupported(f) => Err(CliError::data(format!(
            "{} is {}, which shelf cannot open; convert it to dbm.dumb with: {}",
            path.display(),
            f.what,
            f.conversion_hint(path)
        ))),
    }
}

/// `shelf info PATH`.
pub fn info(path: &Path, opts: &DbOpts, json: bool, out: Out) -> Result<(), CliError> {
    let s = opts.open_read("info", path)?;
    let backend = s.backend()?;
    let caps = backend.capabilities();
    let len = s.len()?;
    let stats = backend.stats()?;
    // Backends that do not report their files get the size of what is at
    // the path (and its dbm-style siblings); a server's (a URL) is unknown,
    // never a zero that would read as an empty database.
    let bytes = match stats.bytes_on_disk {
        Some(b) => Some(b),
        None if shelf::Location::new(path).is_url() => None,
        None => Some(db::size_on_disk(path)),
    };
    let commit = if caps.commit_number { Some(backend.commit_number()?) } else { None };
    let can: Vec<&str> = caps.enabled().collect();
    if json {
        let doc = serde_json::json!({
            "path": path.display().to_string(),
            "backend": backend.name(),
            "protocol": s.protocol().name(),
            "keys": len,
            "bytes_on_disk": bytes,
            "reclaimable_bytes": stats.reclaimable_bytes,
            "durability": stats.durability,
            "commit_number": commit,
            "capabilities": can,
        });
        writeln!(out, "{doc:#}").map_err(write_err)?;
    } else {
        let mut lines = vec![
            ("path", path.display().to_string()),
            ("backend", backend.name().to_owned()),
            ("protocol", s.protocol().name().to_owned()),
            ("keys", len.to_string()),
            ("bytes on disk", bytes.map_or_else(|| "unknown".to_owned(), |b| b.to_string())),
        ];
        if let Some(d) = &stats.durability {
            lines.push(("durability", d.clone()));
        }
        if let Some(r) = stats.reclaimable_bytes {
            lines.push(("reclaimable", r.to_string()));
        }
        if let Some(c) = commit {
            lines.push(("commit number", c.to_string()));
        }
        lines.push(("capabilities", can.join(", ")));
        for (k, v) in lines {
            writeln!(out, "{:<14} {v}", format!("{k}:")).map_err(write_err)?;
        }
    }
    db::close(s, path)
}

fn glob_matcher(pattern: &str) -> Result<GlobMatcher, CliError> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| CliError::usage(format!("invalid --glob pattern {pattern:?}: {e}")))
}

#[cfg(unix)]
fn glob_matches(m: &GlobMatcher, key: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    m.is_match(std::ffi::OsStr::from_bytes(key))
}

#[cfg(not(unix))]
fn glob_matches(m: &GlobMatcher, key: &[u8]) -> bool {
    m.is_match(String::from_utf8_lossy(key).as_ref())
}

/// `shelf keys PATH [--glob P] [--json]`.
pub fn keys(path: &Path, opts: &DbOpts, glob: Option<&str>, json: bool, out: Out) -> Result<(), CliError> {
    let matcher = glob.map(glob_matcher).transpose()?;
    let s = opts.open_read("keys", path)?;
    // Streamed: a million keys, or a remote store, are printed as they come.
    let mut first = true;
    if json {
        write!(out, "[").map_err(write_err)?;
    }
    for key in s.keys_raw()? {
        let k = key?;
        if !matcher.as_ref().is_none_or(|m| glob_matches(m, &k)) {
            continue;
        }
        if json {
            let sep = if first { "" } else { "," };
            let shown =
                serde_json::to_string(&json_value::key_to_json(&k)).map_err(|e| write_err(e.into()))?;
            write!(out, "{sep}{shown}").map_err(write_err)?;
        } else {
            writeln!(out, "{}", db::key_line(&k)).map_err(write_err)?;
        }
        first = false;
    }
    if json {
        writeln!(out, "]").map_err(write_err)?;
    }
    db::close(s, path)
}

/// `shelf get PATH KEY [--raw]`. A pickle of a class shelf does not decode
/// prints as its `$pickle` placeholder. Unlike `dump`, a value that does
/// not decode at all is an error (exit 3), whose message says why: a
/// damaged pickle, or (for other protocols) perhaps the wrong
/// `--protocol`; `--raw` shows the stored bytes instead.
pub fn get(path: &Path, opts: &DbOpts, key: &str, raw: bool, out: Out) -> Result<(), CliError> {
    let k = db::key_arg(key)?;
    let s = opts.open_read("get", path)?;
    let bytes = s.get_bytes(&k)?.ok_or_else(|| missing_key(&k, path))?;
    let p = s.protocol().with_placeholders();
    let j = if raw || !p.is_self_describing() {
        json_value::raw(&bytes)
    } else {
        let v = p.decode_value(&bytes).map_err(|e| {
            let hint = if p.family() == "pickle" {
                "--raw shows the stored bytes"
            } else {
                "stored with another protocol? pass --protocol; --raw shows the stored bytes"
            };
            CliError::data(format!(
                "key {:?} in {}: cannot decode with protocol '{}': {e} ({hint})",
                json_value::key_to_json(&k),
                path.display(),
                p.name()
            ))
        })?;
        json_value::from_value(&v)
    };
    writeln!(out, "{}", j.to_text()).map_err(write_err)?;
    db::close(s, path)
}
