//! Opening shelves from command-line options, and the helpers every command
//! shares: progress bars, key arguments, sizes on disk.

use std::io::IsTerminal;
use std::path::Path;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use shelf::{DynShelf, Flag, OpenOptions, Protocol};

use crate::error::CliError;
use crate::json_value;

/// The options every command that opens a database takes.
#[derive(Debug, Clone, Args)]
pub struct DbOpts {
    /// The backend, by registry name, instead of detecting it (see `shelf
    /// whichdb`); for a new database, instead of the preferred one. The
    /// help lists the registered names ([`backend_help`]).
    #[arg(short, long, value_name = "NAME", help = backend_help())]
    pub backend: Option<String>,
    /// The protocol values are stored with: pickle (pickle protocol 3),
    /// pickle2 (readable by CPython 2.7), pickle3, pickle4, pickle5 (CPython
    /// 3.14's default), bincode, json, or
    /// bincode-varint for bincode shelves of dumb or dir written before
    /// bincode moved to fixed-width integers (default: the one the shelf
    /// records, else pickle for Python formats and for databases this
    /// command creates, else bincode).
    #[arg(short, long, value_name = "P", value_parser = parse_protocol, help = protocol_help())]
    pub protocol: Option<Protocol>,
    /// The dbm flag: r (read-only), w (read-write), c (create if missing),
    /// n (always new, empty). Each command has its own default.
    #[arg(short, long, value_name = "r|w|c|n", value_parser = parse_flag)]
    pub flag: Option<Flag>,
}

/// The registered backend names, as the help of `--backend` lists them:
/// built from the registry at run time, so a backend added there shows up
/// without editing the help.
pub fn backend_names() -> String {
    let mut names: Vec<&str> = shelf::backends().iter().map(|b| b.name).collect();
    for b in shelf::url_backends() {
        if !names.contains(&b.name) {
            names.push(b.name);
        }
    }
    names.join(", ")
}

/// The help of `--backend`, naming the registered backends.
pub fn backend_help() -> String {
    format!(
        "The backend, by registry name, instead of detecting it (see `shelf whichdb`); for a new \
         database, instead of the preferred one. Backends: {}",
        backend_names()
    )
}

/// The help of `--protocol`, naming every protocol the library knows.
pub fn protocol_help() -> String {
    format!(
        "The protocol values are stored with (default: the one the shelf records, else pickle for \
         Python formats and for databases this command creates, else bincode). Protocols: {} \
         (pickle is pickle protocol 3, pickle2 is readable by CPython 2.7; bincode-varint reads \
         bincode shelves of dumb or dir written before fixed-width integers)",
        Protocol::NAMES.join(", ")
    )
}

/// Parses a protocol name for clap, so a bad one is a usage error (exit 2).
pub fn parse_protocol(s: &str) -> Result<Protocol, String> {
    s.parse().map_err(|e: shelf::OpenError| e.to_string())
}

/// Parses a database argument: a path, or a URL whose scheme a backend
/// serves (`redis://host/0?namespace=app`). A URL's credentials are taken
/// out here (see [`shelf::hide_credentials`]), so every message and every
/// `info` line that shows the argument shows `***@` instead.
pub fn parse_location(s: &str) -> Result<std::path::PathBuf, String> {
    Ok(shelf::hide_credentials(s).into())
}

fn parse_flag(s: &str) -> Result<Flag, String> {
    s.parse().map_err(|e: shelf::OpenError| e.to_string())
}

impl DbOpts {
    /// Opens the shelf at `path` with these options, `default_flag` where
    /// no `--flag` was given.
    pub fn open(&self, path: &Path, default_flag: Flag) -> Result<DynShelf, CliError> {
        open_with(path, self.backend.as_deref(), self.protocol, self.flag.unwrap_or(default_flag))
    }

    /// Opens the shelf at `path` with flag `r` for a command that only
    /// reads, refusing a `--flag` that would write.
    ///
    /// # Errors
    /// A usage error naming `cmd` for `--flag w`, `c` or `n`; open errors.
    pub fn open_read(&self, cmd: &str, path: &Path) -> Result<DynShelf, CliError> {
        self.refuse_writing_flag(cmd)?;
        self.open(path, Flag::Read)
    }

    /// A usage error for a `--flag` that writes, given to `cmd`, which only
    /// reads: `info --flag n` once emptied what it was pointed at.
    ///
    /// # Errors
    /// For `--flag w`, `c` or `n`.
    pub fn refuse_writing_flag(&self, cmd: &str) -> Result<(), CliError> {
        let what = match self.flag {
            None | Some(Flag::Read) => return Ok(()),
            Some(Flag::Write) => "open the database for writing",
            Some(Flag::Create) => "create a database where there is none",
            Some(Flag::New) => "replace what is at the path with a new, empty database",
        };
        let flag = self.flag.map_or('r', Flag::as_char);
        Err(CliError::usage(format!("{cmd} only reads: --flag {flag} would {what}; use r or leave it out")))
    }

    /// Like [`open`](Self::open), but a damaged database opens anyway (its
    /// bad entries skipped) so that `check` can report and repair them.
    pub fn open_salvaging(&self, path: &Path, default_flag: Flag) -> Result<DynShelf, CliError> {
        let flag = self.flag.unwrap_or(default_flag);
        let mut o = self.options(path, flag);
        o.salvage(true);
        finish_open(&o, path, flag)
    }

    fn options(&self, path: &Path, flag: Flag) -> OpenOptions {
        options(path, self.backend.as_deref(), self.protocol, flag)
    }
}

fn options(path: &Path, backend: Option<&str>, protocol: Option<Protocol>, flag: Flag) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.flag(flag);
    if let Some(b) = backend {
        o.backend(b);
    }
    match protocol {
        Some(p) => {
            o.protocol(p);
        }
        // A database the command creates gets pickle, not the library's
        // bincode default: the command handles values it has no Rust type
        // for, which needs a self-describing protocol (and pickle is the
        // one Python reads too).
        None if flag == Flag::New || (flag.creates() && shelf::whichdb(path) == shelf::WhichDb::Missing) => {
            o.protocol(Protocol::pickle());
        }
        None => {}
    }
    o
}

/// Opens a shelf, turning every failure into a message that names `path`.
pub fn open_with(
    path: &Path,
    backend: Option<&str>,
    protocol: Option<Protocol>,
    flag: Flag,
) -> Result<DynShelf, CliError> {
    finish_open(&options(path, backend, protocol, flag), path, flag)
}

fn finish_open(o: &OpenOptions, path: &Path, flag: Flag) -> Result<DynShelf, CliError> {
    o.open(path).map_err(|e| {
        // The library's message suggests flags c or n; for a command that
        // only reads (info, keys, get, dump, check) creating a database
        // makes no sense, so it only says that there is none.
        if let (shelf::OpenError::NotFound { path: p, .. }, Flag::Read) = (&e, flag) {
            return CliError::not_found(format!("{}: the database does not exist", p.display()));
        }
        let err = CliError::from(e);
        // Most open errors already name the path; engine errors may not.
        if err.message.contains(&path.display().to_string()) {
            err
        } else {
            err.context(format!("cannot open {}", path.display()))
        }
    })
}

/// Closes a shelf, reporting a failure to flush with its path.
pub fn close(mut shelf: DynShelf, path: &Path) -> Result<(), CliError> {
    shelf.close().map_err(|e| CliError::from(e).context(format!("closing {}", path.display())))
}

/// A key given on the command line: the text as its UTF-8 bytes, or
/// `$key:<base64>` for any bytes (the form `keys` and `dump` print for keys
/// that are not plain text).
pub fn key_arg(arg: &str) -> Result<Vec<u8>, CliError> {
    json_value::key_from_json(arg).map_err(|e| CliError::usage(format!("key argument {arg:?}: {e}")))
}

/// How `keys` prints a key on its own line: as `dump` writes it, and also
/// escaped when it holds a line break, so each line is one key that `get`
/// accepts back.
pub fn key_line(key: &[u8]) -> String {
    let k = json_value::key_to_json(key);
    if k.contains(['\n', '\r']) { format!("{}{}", json_value::KEY_ESCAPE, base64_of(key)) } else { k }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether progress bars are drawn: only when stderr is a terminal, so
/// piped and scripted runs print nothing extra.
pub fn show_progress() -> bool {
    std::io::stderr().is_terminal()
}

/// How long a bar runs before it shows an ETA: indicatif's estimate from
/// the first few items is wild (a 2-second convert once showed "eta 10h").
const ETA_AFTER: std::time::Duration = std::time::Duration::from_secs(3);

/// The ` eta ...` of a bar, written only once the bar has run [`ETA_AFTER`]
/// and moved, so the estimate rests on a rate actually measured.
fn eta_when_known(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    if state.elapsed() >= ETA_AFTER && state.pos() > 0 {
        // A write into the bar's line cannot fail in a way worth reporting.
        let _ = write!(w, " eta {}", indicatif::HumanDuration(state.eta()));
    }
}

/// A progress bar over `len` items (a spinner counting items when the
/// length is unknown), hidden unless stderr is a terminal.
pub fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    if !show_progress() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg:>12} [{bar:30}] {human_pos}/{human_len}{eta_when_known}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key("eta_when_known", eta_when_known)
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg:>12} {spinner} {human_pos} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what.to_owned());
    bar
}

/// A progress bar over the `total` bytes of an input file (a dump being
/// loaded), hidden unless stderr is a terminal: a file's size is known up
/// front where its number of keys is not, so this bar can show how far it
/// is and, once measured, an ETA.
pub fn byte_progress(total: u64, what: &str) -> ProgressBar {
    if !show_progress() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {binary_bytes}/{binary_total_bytes}{eta_when_known}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("eta_when_known", eta_when_known)
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// The bytes of the database's own files at `path` (the registry's
/// [`files`](shelf::BackendInfo::files) of the backend found there: dumb's
/// `.dat` and `.dir`, not its `.bak` or lock file), so figures before and
/// after a compact add up to what the backend reclaimed; everything
/// [`size_on_disk`] counts where no backend is found.
pub fn database_size(path: &Path) -> u64 {
    match shelf::whichdb(path) {
        shelf::WhichDb::Backend(name) => match shelf::find_backend(name) {
            Ok(info) => (info.files)(path).iter().map(|f| tree_size(f)).sum(),
            Err(_) => size_on_disk(path),
        },
        _ => size_on_disk(path),
    }
}

/// The bytes of a file, or of every file below a directory (symlinks not
/// followed).
fn tree_size(p: &Path) -> u64 {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::read_dir(p)
            .map(|rd| rd.filter_map(Result::ok).map(|e| tree_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// The bytes under `path`: a file's length, or the total of the files in a
/// directory tree, plus sibling files that share its name as a prefix
/// (dbm.dumb's `path.dat`, `path.dir`, `path.bak`).
pub fn size_on_disk(path: &Path) -> u64 {
    let mut total = tree_size(path);
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        let prefix = format!("{}.", name.to_string_lossy());
        if let Ok(rd) = std::fs::read_dir(parent) {
            for e in rd.filter_map(Result::ok) {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    total += tree_size(&e.path());
                }
            }
        }
    }
    total
}
