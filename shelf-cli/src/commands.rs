//! The commands other than `bench`: each takes its parsed arguments and
//! writes its output to `out`, returning a [`CliError`] on failure.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use globset::{Glob, GlobMatcher};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use shelf::{DynShelf, Flag, Protocol, Value, WhichDb};

use crate::db::{self, DbOpts};
use crate::error::CliError;
use crate::json_value::{self, Json};
use crate::lossless;
use crate::staged::Staged;

type Out<'a> = &'a mut dyn Write;

fn write_err(e: std::io::Error) -> CliError {
    // A closed pipe (`shelf keys db | head`) is the reader's choice, not a
    // failure worth a message.
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return CliError::env(String::new());
    }
    CliError::env(format!("cannot write output: {e}"))
}

/// `shelf whichdb PATH`: prints one word; exit 0 only for a backend name.
pub fn whichdb(path: &Path, out: Out) -> Result<(), CliError> {
    let found = shelf::whichdb(path);
    writeln!(out, "{}", found.as_str()).map_err(write_err)?;
    match found {
        WhichDb::Backend(_) => Ok(()),
        // The word on stdout is the answer; the exit code says it is not a
        // database, with no second message on stderr.
        WhichDb::Missing => Err(CliError::not_found(String::new())),
        WhichDb::Unknown => Err(CliError::data(String::new())),
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
    // the path (and its dbm-style siblings).
    let bytes = stats.bytes_on_disk.unwrap_or_else(|| db::size_on_disk(path));
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
            ("bytes on disk", bytes.to_string()),
        ];
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
    let keys: Vec<Vec<u8>> =
        s.keys_raw()?.into_iter().filter(|k| matcher.as_ref().is_none_or(|m| glob_matches(m, k))).collect();
    if json {
        let arr: Vec<String> = keys.iter().map(|k| json_value::key_to_json(k)).collect();
        serde_json::to_writer(&mut *out, &arr).map_err(|e| write_err(e.into()))?;
        writeln!(out).map_err(write_err)?;
    } else {
        for k in &keys {
            writeln!(out, "{}", db::key_line(k)).map_err(write_err)?;
        }
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

fn missing_key(key: &[u8], path: &Path) -> CliError {
    CliError::not_found(format!("key {:?} not found in {}", json_value::key_to_json(key), path.display()))
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

/// Where a JSON document came from, for error messages.
fn malformed(source: &str, e: &serde_json::Error) -> CliError {
    CliError::data(format!("malformed JSON in {source}: {e}"))
}

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
    let j = json_value::parse(&text).map_err(|e| malformed(source, &e))?;
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
    bar: &'a indicatif::ProgressBar,
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
            self.bar.inc(1);
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

fn open_input(input: Option<&Path>) -> Result<(Box<dyn BufRead>, String), CliError> {
    Ok(match input {
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
        None => (Box::new(BufReader::new(std::io::stdin())), "stdin".to_owned()),
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
        (None, None) => shelf::backends().first(),
    };
    let staged_backend = backend.filter(|b| fresh && b.capabilities.persistent);
    let (reader, source) = open_input(input)?;
    if let Some(info) = staged_backend {
        let staged = Staged::new(path, info)?;
        let mut s = db::open_with(staged.path(), Some(info.name), opts.protocol, Flag::New)
            .map_err(|e| e.context(format!("building {}", path.display())))?;
        let n = load_streaming(&mut s, reader, &source, lossy)
            .map_err(|e| e.context(format!("loading {} (nothing was created)", path.display())))?;
        let len = s.len()?;
        db::close(s, path)?;
        staged.commit(if flag == Flag::New { old } else { None })?;
        return writeln!(out, "loaded {n} keys into {} ({len} keys now)", path.display()).map_err(write_err);
    }
    let mut s = opts.open(path, Flag::Create)?;
    let n = if s.capabilities()?.atomic_batch {
        let mut sink = Sink::Batch { protocol: s.protocol(), ops: Vec::new() };
        let n = read_dump(&mut sink, reader, &source, lossy)
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
        load_streaming(&mut s, reader, &source, lossy).map_err(|e| {
            e.context(format!("loading {} (keys before the error were stored)", path.display()))
        })?
    };
    let len = s.len()?;
    db::close(s, path)?;
    writeln!(out, "loaded {n} keys into {} ({len} keys now)", path.display()).map_err(write_err)
}

fn load_streaming(
    s: &mut DynShelf,
    reader: Box<dyn BufRead + '_>,
    source: &str,
    lossy: bool,
) -> Result<u64, CliError> {
    read_dump(&mut Sink::Shelf(s), reader, source, lossy)
}

fn read_dump(
    sink: &mut Sink<'_>,
    reader: Box<dyn BufRead + '_>,
    source: &str,
    lossy: bool,
) -> Result<u64, CliError> {
    let bar = db::progress(None, "load");
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let seed = LoadSeed { sink, source, lossy, bar: &bar, failure: &mut failure };
    let result = seed.deserialize(&mut de).and_then(|n| de.end().map(|()| n));
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
    load_streaming(s, reader, source, false)
        .map_err(|e| e.context(format!("loading {} (keys before the error were stored)", path.display())))
}

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
        WhichDb::Unknown => {
            return Err(CliError::usage(format!(
                "convert: {} exists and is not a database shelf recognises; refusing to replace it",
                a.dst.display()
            )));
        }
    };
    // Nothing on disk (memory) is nothing to stage.
    let staged = if info.capabilities.persistent { Some(Staged::new(a.dst, info)?) } else { None };
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
                CliError::data(format!("cannot decode with protocol '{}': {}", sp.name(), e)).context(ctx(&k))
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

/// `shelf check PATH [--repair]`: without `--repair` it opens with `r` and
/// writes nothing.
pub fn check(path: &Path, opts: &DbOpts, repair: bool, out: Out) -> Result<(), CliError> {
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
    for p in &report.problems {
        writeln!(out, "problem: {p}").map_err(write_err)?;
    }
    for k in &report.dropped_keys {
        writeln!(out, "dropped: {}", db::key_line(k)).map_err(write_err)?;
    }
    let verdict = if report.is_clean() {
        "ok"
    } else if report.repaired {
        "repaired"
    } else {
        "damaged"
    };
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

/// `shelf compact PATH`: the figures are measured on disk before opening
/// and after closing, with one function, so they add up.
pub fn compact(path: &Path, opts: &DbOpts, out: Out) -> Result<(), CliError> {
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
