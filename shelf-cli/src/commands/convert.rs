//! `shelf convert`: a copy of a database into another backend or protocol.

use std::path::Path;

use shelf::{Flag, Protocol, Value, WhichDb};

use super::output::{Out, write_err};
use crate::db;
use crate::error::{CliError, chain};
use crate::json_value;
use crate::lossless;
use crate::staged::Staged;

/// The options of `convert`.
pub struct ConvertArgs<'a> {
    /// The database to read.
    pub src: &'a Path,
    /// The database to write.
    pub dst: &'a Path,
    /// DST's backend.
    pub backend: &'a str,
    /// DST's protocol (default: SRC's).
    pub protocol: Option<Protocol>,
    /// `n` replaces an existing DST; `c` (the default) refuses to.
    pub flag: Option<Flag>,
    /// SRC's backend, instead of detecting it.
    pub src_backend: Option<&'a str>,
    /// SRC's protocol, instead of the recorded or default one.
    pub src_protocol: Option<Protocol>,
    /// Write values the target protocol changes, instead of refusing.
    pub lossy: bool,
}

/// `shelf convert SRC DST --backend NAME [--protocol P] [--flag n] [--lossy]`:
/// builds DST under a temporary name beside it and moves it into place when
/// complete (see [`crate::staged`]).
pub fn convert(a: &ConvertArgs<'_>, out: Out) -> Result<(), CliError> {
    let flag = a.flag.unwrap_or(Flag::Create);
    if !matches!(flag, Flag::Create | Flag::New) {
        return Err(CliError::usage(format!(
            "convert: --flag {flag} makes no sense for a new database: use c (refuse an existing DST) or n (replace it)"
        )));
    }
    let info = shelf::find_backend(a.backend)?;
    if same_file(a.src, a.dst) {
        return Err(CliError::usage(format!("convert: SRC and DST are the same path ({})", a.dst.display())));
    }
    let src = db::open_with(a.src, a.src_backend, a.src_protocol, Flag::Read)?;
    let sp = src.protocol();
    let dp = a.protocol.unwrap_or(sp);
    let same = sp == dp;
    if !same && !sp.is_self_describing() {
        return Err(CliError::usage(format!(
            "convert: {} is stored with protocol '{}', which is not self-describing: its values cannot be \
             read without their Rust types, so they cannot be re-encoded as '{}' (convert to another backend \
             with the same protocol, which copies the bytes)",
            a.src.display(),
            sp.name(),
            dp.name()
        )));
    }
    if !same && !lossless::carries_values(dp) && !a.lossy {
        return Err(CliError::usage(format!("convert: {}", lossless::not_self_describing(dp))));
    }
    let found = shelf::whichdb(a.dst);
    let old = match found {
        WhichDb::Missing => None,
        _ if flag != Flag::New => {
            return Err(CliError::usage(format!(
                "convert: {} already exists; refusing to overwrite it (pass --flag n to replace it)",
                a.dst.display()
            )));
        }
        WhichDb::Backend(name) => Some(shelf::find_backend(name)?),
        WhichDb::Unknown | WhichDb::Unsupported(_) => {
            return Err(CliError::usage(format!(
                "convert: {} exists and is not a database shelf opens; refusing to replace it",
                a.dst.display()
            )));
        }
    };
    // Nothing on disk (memory) is nothing to stage; nor is a URL's
    // database (redis), which has no files to move into place: it is
    // written where it is, and `--flag n` emptied it first.
    let staged = if info.capabilities.persistent && info.schemes.is_empty() {
        Some(Staged::new(a.dst, info)?)
    } else {
        None
    };
    let build_path = staged.as_ref().map_or(a.dst, |s| s.path());
    let mut dst = db::open_with(build_path, Some(info.name), Some(dp), Flag::New)
        .map_err(|e| e.context(format!("convert: building {}", a.dst.display())))?;
    let total = src.len()?;
    let bar = db::progress(Some(total as u64), "convert");
    let ctx = |k: &[u8]| {
        format!("convert: key {:?} (nothing was written to {})", json_value::key_to_json(k), a.dst.display())
    };
    let mut copied = 0usize;
    for item in src.backend()?.iter()? {
        let (k, v) = item.map_err(|e| {
            CliError::from(e).context(format!("convert: reading {} (nothing was written)", a.src.display()))
        })?;
        let bytes = if same {
            v
        } else {
            // Placeholders: a pickle of an unknown class is copied as its bytes.
            let value: Value = sp.with_placeholders().decode_value(&v).map_err(|e| {
                CliError::data(format!("cannot decode with protocol '{}': {}", sp.name(), chain(&*e)))
                    .context(ctx(&k))
            })?;
            lossless::encode(dp.with_placeholders(), &value, a.lossy).map_err(|r| match r {
                lossless::Refusal::Encode(e) => {
                    CliError::data(format!("cannot encode with protocol '{}': {e}", dp.name()))
                        .context(ctx(&k))
                }
                lossless::Refusal::Loss(what) => CliError::data(format!(
                    "{what} with protocol '{}' (pass --lossy to accept that)",
                    dp.name()
                ))
                .context(ctx(&k)),
            })?
        };
        dst.backend_mut()?.insert(&k, &bytes).map_err(|e| CliError::from(e).context(ctx(&k)))?;
        copied += 1;
        bar.inc(1);
    }
    dst.sync().map_err(|e| CliError::from(e).context(format!("syncing {}", a.dst.display())))?;
    bar.finish_and_clear();
    let in_dst = dst.len()?;
    if copied != total || in_dst != total {
        return Err(CliError::data(format!(
            "convert: {} has {total} keys but {copied} were read and the copy holds {in_dst} \
             (nothing was written to {})",
            a.src.display(),
            a.dst.display()
        )));
    }
    let records = dst.capabilities()?.metadata;
    let dst_backend = dst.backend()?.name();
    db::close(src, a.src)?;
    db::close(dst, a.dst)?;
    if let Some(staged) = staged {
        staged.commit(old)?;
    }
    writeln!(
        out,
        "converted {total} keys: {} ({}, {}) -> {} ({dst_backend}, {}){}",
        a.src.display(),
        shelf::whichdb(a.src).as_str(),
        sp.name(),
        a.dst.display(),
        dp.name(),
        if same { ", bytes copied" } else { ", values re-encoded" }
    )
    .map_err(write_err)?;
    if !records && dp != Protocol::pickle() {
        eprintln!(
            "shelf: note: backend '{dst_backend}' does not record the protocol; open {} with --protocol {}",
            a.dst.display(),
            dp.name()
        );
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
