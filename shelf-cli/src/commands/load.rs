//! `shelf load`: a dump read back into a database, streaming.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use shelf::{DynShelf, Flag, Protocol, WhichDb};

use super::output::{Out, malformed, write_err};
use crate::db::{self, DbOpts};
use crate::error::CliError;
use crate::json_value::{self, Json};
use crate::lossless;
use crate::staged::Staged;

/// Where `load` puts the values it reads.
enum Sink<'a> {
    /// Stored one by one as they are read.
    Shelf(&'a mut DynShelf),
    /// Gathered, to be applied as one atomic batch.
    Batch { protocol: Protocol, ops: Vec<(Vec<u8>, Vec<u8>)> },
}

impl Sink<'_> {
    fn protocol(&self) -> Protocol {
        match self {
            Sink::Shelf(s) => s.protocol(),
            Sink::Batch { protocol, .. } => *protocol,
        }
    }
}

/// Streams the top-level object of a dump into a [`Sink`], entry by entry,
/// so a dump of any size is read in its own order without holding the text.
struct LoadSeed<'a, 'b> {
    sink: &'a mut Sink<'b>,
    source: &'a str,
    lossy: bool,
    /// Counts keys; `None` where the bar counts the input's bytes.
    bar: Option<&'a indicatif::ProgressBar>,
    /// The first failure that is not JSON syntax (a bad `$` form, a refused
    /// key): serde only carries strings, so it waits here.
    failure: &'a mut Option<CliError>,
}

impl<'de> DeserializeSeed<'de> for LoadSeed<'_, '_> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LoadSeed<'_, '_> {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object of {key: value}, as `shelf dump` writes")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut n = 0;
        while let Some(key) = map.next_key::<String>()? {
            let j: Json = map.next_value()?;
            let result = json_value::key_from_json(&key)
                .map_err(|e| CliError::data(format!("{}: {e}", self.source)))
                .and_then(|k| {
                    let bytes = encode_json(self.sink.protocol(), &k, &j, self.source, self.lossy)?;
                    match &mut *self.sink {
                        Sink::Shelf(s) => s.backend_mut()?.insert(&k, &bytes)?,
                        Sink::Batch { ops, .. } => ops.push((k, bytes)),
                    }
                    Ok(())
                });
            if let Err(e) = result {
                *self.failure = Some(e);
                return Err(de::Error::custom("stopped"));
            }
            n += 1;
            if let Some(bar) = self.bar {
                bar.inc(1);
            }
        }
        Ok(n)
    }
}

/// The bytes to store for one value of a dump: `$raw` as given, anything
/// else encoded with `protocol`, refused where it would not read back as
/// the same value (unless `lossy`).
fn encode_json(
    protocol: Protocol,
    key: &[u8],
    j: &Json,
    source: &str,
    lossy: bool,
) -> Result<Vec<u8>, CliError> {
    let shown = json_value::key_to_json(key);
    let bad = |e: json_value::FormError| CliError::data(format!("{source}: value of key {shown:?}: {e}"));
    if let Some(bytes) = json_value::raw_bytes(j).map_err(bad)? {
        return Ok(bytes);
    }
    let v = json_value::to_value(j).map_err(bad)?;
    if !lossless::carries_values(protocol) && !lossy {
        return Err(CliError::usage(format!("key {shown:?}: {}", lossless::not_self_describing(protocol))));
    }
    // Placeholders on for the read-back check: a `$pickle` value is stored
    // as its own bytes and reads back as the same placeholder.
    lossless::encode(protocol.with_placeholders(), &v, lossy).map_err(|r| match r {
        lossless::Refusal::Encode(e) => {
            CliError::data(format!("key {shown:?}: cannot encode with protocol '{}': {e}", protocol.name()))
        }
        lossless::Refusal::Loss(what) => CliError::data(format!(
            "key {shown:?}: {what} with protocol '{}' (pass --lossy to accept that)",
            protocol.name()
        )),
    })
}

/// Where a dump comes from: the reader, its name for messages, and its size
/// in bytes where it is a regular file (for a byte progress bar).
struct Input {
    reader: Box<dyn BufRead>,
    source: String,
    size: Option<u64>,
}

/// An input that moves a progress bar by the bytes read through it.
struct Counted<R> {
    inner: R,
    bar: indicatif::ProgressBar,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

fn open_input(input: Option<&Path>) -> Result<Input, CliError> {
    let (reader, source) = open_reader(input)?;
    // Only a regular file's length is what will be read.
    let size = input
        .filter(|p| *p != Path::new("-"))
        .and_then(|p| std::fs::metadata(p).ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len());
    Ok(Input { reader, source, size })
}

fn open_reader(input: Option<&Path>) -> Result<(Box<dyn BufRead>, String), CliError> {
    Ok(match input.filter(|p| *p != Path::new("-")) {
        Some(p) => {
            let f = File::open(p).map_err(|e| {
                let kind = if e.kind() == std::io::ErrorKind::NotFound {
                    CliError::not_found
                } else {
                    CliError::env
                };
                kind(format!("cannot open {}: {e}", p.display()))
            })?;
            (Box::new(BufReader::new(f)), p.display().to_string())
        }
        None => {
            // A dump typed at a terminal is not what anyone means: without
            // this, load would wait silently for an end of file.
            if std::io::stdin().is_terminal() {
                return Err(CliError::usage(
                    "load: stdin is a terminal; pipe a dump in (`shelf dump OTHER | shelf load PATH`) or pass --in FILE",
                ));
            }
            (Box::new(BufReader::new(std::io::stdin())), "stdin".to_owned())
        }
    })
}

/// `shelf load PATH [--in FILE] [--lossy]` (stdin by default). A new
/// database (or one replaced with `--flag n`) is built under a temporary
/// name and moved into place when complete; into an existing database the
/// keys go in one atomic batch where the backend has them, else one by one.
pub fn load(path: &Path, opts: &DbOpts, input: Option<&Path>, lossy: bool, out: Out) -> Result<(), CliError> {
    let flag = opts.flag.unwrap_or(Flag::Create);
    if flag == Flag::Read {
        return Err(CliError::usage("load writes: --flag r cannot load; use w, c (the default) or n"));
    }
    let found = shelf::whichdb(path);
    // A URL (a Redis namespace) has no sibling path to build under: it is
    // loaded in place, by the backend its scheme names.
    let location = shelf::Location::new(path);
    let url_backend = location.url_backend()?;
    let fresh = flag == Flag::New || (flag == Flag::Create && found == WhichDb::Missing);
    let old = match found {
        WhichDb::Backend(name) => Some(shelf::find_backend(name)?),
        _ => None,
    };
    if flag == Flag::New && found == WhichDb::Unknown {
        return Err(CliError::usage(format!(
            "load: {} exists and is not a database shelf recognises; refusing to replace it",
            path.display()
        )));
    }
    let backend = match (&opts.backend, old) {
        (Some(b), Some(o)) if fresh && b != o.name => {
            return Err(CliError::usage(format!(
                "load: {} is a '{}' database, not '{b}'; refusing to replace it with another backend \
                 (remove it first, or use `shelf convert`)",
                path.display(),
                o.name
            )));
        }
        (Some(b), _) => Some(shelf::find_backend(b)?),
        (None, Some(o)) => Some(o),
        (None, None) => url_backend.or_else(|| shelf::backends().first()),
    };
    let staged_backend = backend.filter(|b| fresh && b.capabilities.persistent && !location.is_url());
    let Input { reader, source, size } = open_input(input)?;
    if let Some(info) = staged_backend {
        let staged = Staged::new(path, info)?;
        let mut s = db::open_with(staged.path(), Some(info.name), opts.protocol, Flag::New)
            .map_err(|e| e.context(format!("building {}", path.display())))?;
        let n = read_dump(&mut Sink::Shelf(&mut s), reader, &source, size, lossy)
            .map_err(|e| e.context(format!("loading {} (nothing was created)", path.display())))?;
        let len = s.len()?;
        db::close(s, path)?;
        staged.commit(if flag == Flag::New { old } else { None })?;
        return writeln!(out, "loaded {n} keys into {} ({len} keys now)", path.display()).map_err(write_err);
    }
    let mut s = opts.open(path, Flag::Create)?;
    let n = if s.capabilities()?.atomic_batch {
        let mut sink = Sink::Batch { protocol: s.protocol(), ops: Vec::new() };
        let n = read_dump(&mut sink, reader, &source, size, lossy)
            .map_err(|e| e.context(format!("loading {} (nothing was stored)", path.display())))?;
        if let Sink::Batch { ops, .. } = &sink {
            let batch: Vec<shelf::BatchOp<'_>> =
                ops.iter().map(|(k, v)| shelf::BatchOp::Insert(k, v)).collect();
            s.backend_mut()?.apply_batch(&batch).map_err(|e| {
                CliError::from(e).context(format!("loading {} (nothing was stored)", path.display()))
            })?;
        }
        n
    } else {
        read_dump(&mut Sink::Shelf(&mut s), reader, &source, size, lossy).map_err(|e| {
            e.context(format!("loading {} (keys before the error were stored)", path.display()))
        })?
    };
    let len = s.len()?;
    db::close(s, path)?;
    writeln!(out, "loaded {n} keys into {} ({len} keys now)", path.display()).map_err(write_err)
}

/// Reads a dump into `sink`, with a bar over the input's `size` in bytes
/// where it is known, else a spinner counting keys.
fn read_dump(
    sink: &mut Sink<'_>,
    reader: Box<dyn BufRead + '_>,
    source: &str,
    size: Option<u64>,
    lossy: bool,
) -> Result<u64, CliError> {
    let mut failure = None;
    let (result, bar) = match size {
        Some(total) => {
            let bar = db::byte_progress(total, "load");
            let counted = Counted { inner: reader, bar: bar.clone() };
            let mut de = serde_json::Deserializer::from_reader(counted);
            let seed = LoadSeed { sink, source, lossy, bar: None, failure: &mut failure };
            (seed.deserialize(&mut de).and_then(|n| de.end().map(|()| n)), bar)
        }
        None => {
            let bar = db::progress(None, "load");
            let mut de = serde_json::Deserializer::from_reader(reader);
            let seed = LoadSeed { sink, source, lossy, bar: Some(&bar), failure: &mut failure };
            (seed.deserialize(&mut de).and_then(|n| de.end().map(|()| n)), bar)
        }
    };
    bar.finish_and_clear();
    match (result, failure) {
        (_, Some(f)) => Err(f),
        (Err(e), None) if e.is_io() => Err(CliError::env(format!("reading {source}: {e}"))),
        (Err(e), None) => Err(malformed(source, &e)),
        (Ok(n), None) => Ok(n),
    }
}

/// Reads a dump (one JSON object `{key: value}`) from `reader` and stores
/// every value in `s`, streaming; returns the number of keys read. `source`
/// names the input and `path` the shelf in messages. A value that would not
/// read back the same in the shelf's protocol is refused.
///
/// # Errors
/// Malformed JSON (naming the line and column), values that do not fit
/// the shelf's protocol, I/O errors.
pub fn load_into(
    s: &mut DynShelf,
    reader: Box<dyn BufRead + '_>,
    source: &str,
    path: &Path,
) -> Result<u64, CliError> {
    read_dump(&mut Sink::Shelf(s), reader, source, None, false)
        .map_err(|e| e.context(format!("loading {} (keys before the error were stored)", path.display())))
}
