//! The maintenance commands: `check`, `compact`.

use std::path::Path;

use shelf::{DynShelf, Flag};

use super::output::{Out, write_err};
use crate::db::{self, DbOpts};
use crate::error::CliError;
use crate::json_value;

fn unsupported(s: &DynShelf, path: &Path, what: &str) -> Result<CliError, CliError> {
    Ok(CliError::usage(format!(
        "backend '{}' does not support {what} ({})",
        s.backend()?.name(),
        path.display()
    )))
}

/// A check through a read-only handle, for engines whose own check needs a
/// writable one (redb's may repair as it checks): every entry is read back,
/// so a value that fails its checksum or cannot be read is a problem.
fn read_back_check(s: &DynShelf) -> Result<shelf::CheckReport, CliError> {
    let mut good = 0;
    let mut problems = Vec::new();
    for item in s.backend()?.iter()? {
        match item {
            Ok(_) => good += 1,
            Err(e) => {
                // An iterator that failed once may fail forever: stop.
                problems.push(crate::error::chain(&e));
                break;
            }
        }
    }
    Ok(shelf::CheckReport::new(good, problems, false))
}

/// `shelf check PATH [--repair] [--json]`: without `--repair` it opens with
/// `r` and writes nothing.
pub fn check(path: &Path, opts: &DbOpts, repair: bool, json: bool, out: Out) -> Result<(), CliError> {
    if !repair {
        opts.refuse_writing_flag("check (without --repair)")?;
    }
    let mut s = opts.open_salvaging(path, if repair { Flag::Write } else { Flag::Read })?;
    if !s.capabilities()?.check {
        return Err(unsupported(&s, path, "check")?);
    }
    let mut note = "";
    let report = match s.backend_mut()?.check(repair) {
        // Some engines (redb) check only through a writable handle, and may
        // repair while they check: read every entry back instead.
        Err(shelf::Error::ReadOnly { .. }) if !repair => {
            note =
                " (every entry read back; the engine's own check needs --repair, which may change the file)";
            read_back_check(&s)?
        }
        other => other?,
    };
    let verdict = if report.is_clean() {
        "ok"
    } else if report.repaired {
        "repaired"
    } else {
        "damaged"
    };
    if json {
        let dropped: Vec<String> = report.dropped_keys.iter().map(|k| json_value::key_to_json(k)).collect();
        let doc = serde_json::json!({
            "path": path.display().to_string(),
            "verdict": verdict,
            "good_entries": report.good_entries,
            "problems": report.problems,
            "dropped_keys": dropped,
            "repaired": report.repaired,
            // The note without its parentheses; null when there is none.
            "note": (!note.is_empty()).then(|| note.trim().trim_start_matches('(').trim_end_matches(')')),
        });
        writeln!(out, "{doc:#}").map_err(write_err)?;
    } else {
        write_check_lines(path, &report, verdict, note, repair, &s, out)?;
    }
    db::close(s, path)?;
    if report.is_clean() || report.repaired {
        Ok(())
    } else {
        Err(CliError::data(format!(
            "{} has {} problems (run `shelf check --repair` to repair what can be)",
            path.display(),
            report.problems.len()
        )))
    }
}

/// The lines `check` prints without `--json`.
fn write_check_lines(
    path: &Path,
    report: &shelf::CheckReport,
    verdict: &str,
    note: &str,
    repair: bool,
    s: &DynShelf,
    out: Out,
) -> Result<(), CliError> {
    for p in &report.problems {
        writeln!(out, "problem: {p}").map_err(write_err)?;
    }
    for k in &report.dropped_keys {
        writeln!(out, "dropped: {}", db::key_line(k)).map_err(write_err)?;
    }
    writeln!(
        out,
        "{}: {verdict}, {} good entries, {} problems{note}",
        path.display(),
        report.good_entries,
        report.problems.len()
    )
    .map_err(write_err)?;
    if repair {
        let n = report.dropped_keys.len();
        if n > 0 {
            writeln!(out, "dropped {n} {}", if n == 1 { "key" } else { "keys" }).map_err(write_err)?;
        } else if report.repaired {
            writeln!(out, "dropped no keys that backend '{}' could name", s.backend()?.name())
                .map_err(write_err)?;
        }
    }
    Ok(())
}

/// `shelf compact PATH [--json]`: the figures are measured on disk before opening
/// and after closing, with one function, so they add up.
pub fn compact(path: &Path, opts: &DbOpts, json: bool, out: Out) -> Result<(), CliError> {
    let before = db::database_size(path);
    let mut s = opts.open(path, Flag::Write)?;
    if !s.capabilities()?.compact {
        return Err(unsupported(&s, path, "compact")?);
    }
    let bar = db::progress(None, "compact");
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let compacted = s.backend_mut()?.compact();
    bar.finish_and_clear();
    compacted?;
    db::close(s, path)?;
    let after = db::database_size(path);
    if json {
        let doc = serde_json::json!({
            "path": path.display().to_string(),
            "bytes_before": before,
            "bytes_after": after,
            "reclaimed_bytes": before.saturating_sub(after),
        });
        return writeln!(out, "{doc:#}").map_err(write_err);
    }
    if after <= before {
        writeln!(
            out,
            "{}: reclaimed {} bytes ({before} -> {after} bytes on disk)",
            path.display(),
            before - after
        )
    } else {
        writeln!(
            out,
            "{}: reclaimed nothing; the files grew by {} bytes ({before} -> {after} bytes on disk)",
            path.display(),
            after - before
        )
    }
    .map_err(write_err)
}
