//! `shelf dump`: every entry as one JSON object.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use shelf::DynShelf;

use super::output::Out;
use crate::db::{self, DbOpts};
use crate::error::CliError;
use crate::json_value::{self, Json};

/// `shelf dump PATH [--out FILE] [--raw]`.
pub fn dump(
    path: &Path,
    opts: &DbOpts,
    out_file: Option<&Path>,
    raw: bool,
    out: Out,
) -> Result<(), CliError> {
    let s = opts.open_read("dump", path)?;
    let total = s.len()? as u64;
    let mut file;
    let mut stdout_buf;
    // `-` is stdout, as everywhere in the command.
    let out_file = out_file.filter(|p| *p != Path::new("-"));
    let w: &mut dyn Write = match out_file {
        Some(p) => {
            let f =
                File::create(p).map_err(|e| CliError::env(format!("cannot create {}: {e}", p.display())))?;
            file = BufWriter::new(f);
            &mut file
        }
        None => {
            stdout_buf = BufWriter::new(out);
            &mut stdout_buf
        }
    };
    let target = out_file.map_or("stdout".to_owned(), |p| p.display().to_string());
    let werr = |e: std::io::Error| CliError::env(format!("cannot write {target}: {e}"));
    let bar = db::progress(Some(total), "dump");
    let mut warnings = Vec::new();
    w.write_all(b"{").map_err(werr)?;
    let mut n = 0u64;
    for item in s.backend()?.iter()? {
        let (k, v) = item?;
        let j = if raw { json_value::raw(&v) } else { stored_to_json(&s, &k, &v, &mut |m| warnings.push(m)) };
        let key = serde_json::to_string(&json_value::key_to_json(&k)).map_err(|e| werr(e.into()))?;
        write!(w, "{}\n  {key}: {}", if n == 0 { "" } else { "," }, j.to_text()).map_err(werr)?;
        n += 1;
        bar.inc(1);
    }
    w.write_all(if n == 0 { b"}\n" } else { b"\n}\n" }).map_err(werr)?;
    w.flush().map_err(werr)?;
    bar.finish_and_clear();
    for m in &warnings {
        eprintln!("shelf: warning: {m}");
    }
    db::close(s, path)
}

/// The JSON form of a stored value: decoded where the protocol is
/// self-describing, else (and where decoding fails, with a warning) the
/// raw bytes as `$raw`, so nothing is lost. A pickle of a class shelf does
/// not decode shows as its `$pickle` placeholder, which keeps its bytes.
fn stored_to_json(s: &DynShelf, key: &[u8], bytes: &[u8], warn: &mut dyn FnMut(String)) -> Json {
    let p = s.protocol().with_placeholders();
    if !p.is_self_describing() {
        return json_value::raw(bytes);
    }
    match p.decode_value(bytes) {
        Ok(v) => json_value::from_value(&v),
        Err(e) => {
            warn(format!(
                "key {:?}: cannot decode with protocol '{}' ({e}); written as $raw",
                json_value::key_to_json(key),
                p.name()
            ));
            json_value::raw(bytes)
        }
    }
}
