//! The `shelf` command: inspect, edit, dump and load, convert, check and
//! compact shelves of any registered backend, and benchmark the backends
//! against CPython's `shelve`.
//!
//! Exit codes: 0 ok, 1 not found (missing key or database), 2 usage or
//! unsupported, 3 data error (corrupt, undecodable or malformed input),
//! 4 environment (locked database, permissions, i/o), 5 internal error (a
//! bug: a panic, reported in one line). See `error.rs`.

use shelf_cli::{bench, commands, db};

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::{CommandFactory, Parser, Subcommand};
use shelf::{Flag, Protocol};

use shelf_cli::db::DbOpts;
use shelf_cli::error::CliError;

const AFTER_HELP: &str = "\
Exit codes: 0 ok, 1 not found (missing key or database), 2 usage or unsupported,
3 data error (corrupt, undecodable or malformed input, a value a protocol would
change), 4 locked database, permissions or other i/o failure, 5 internal error
(a bug in shelf; please report it).

whichdb, info, keys, get, dump and check (without --repair) only read: they open
with flag r and refuse --flag w, c or n.

Keys on the command line and in output are text; a key that is not UTF-8 (or
that starts with `$key:`) is written `$key:<base64>`, and `get`/`del` accept
that form back. Values are JSON; see `shelf dump --help` for the forms of
Python types JSON lacks.";

const DUMP_HELP: &str = "\
The dump is one JSON object {key: value}. Values JSON lacks are one-key objects
naming their type: {\"$bytes\": base64}, {\"$bytearray\": base64},
{\"$tuple\": [...]}, {\"$set\": [...]}, {\"$frozenset\": [...]},
{\"$int\": \"decimal\"} (outside i64), {\"$float\": \"nan\"|\"inf\"|\"-inf\"},
{\"$dict\": [[k, v], ...]} (a dict with non-string or repeated keys, or a single
key starting with `$`), {\"$global\": [name, args]}. Python's classes:
{\"$date\": \"2026-11-30\"}, {\"$time\": \"08:00:00\"},
{\"$datetime\": \"2026-11-30T08:00:00+00:00\"} (ISO 8601, a ZoneInfo as
[Europe/Paris]), {\"$timedelta\": [days, seconds, microseconds]},
{\"$decimal\": \"1.10\"}, {\"$uuid\": \"...\"}, {\"$fraction\": \"3/4\"},
{\"$complex\": [re, im]}, {\"$ordereddict\": [[k, v], ...]},
{\"$deque\": [...] | {\"items\": [...], \"maxlen\": n}},
{\"$defaultdict\": {\"factory\": \"list\"|null, \"items\": [[k, v], ...]}},
{\"$path\": \"/a/b\"} (PosixPath), {\"$purepath\": \"/a/b\"}. A pickle naming a
class shelf does not decode (a user's class, an enum member) is
{\"$pickle\": {\"global\": \"module.Class\", \"bytes\": base64, ...}}: its exact
bytes, written back unchanged. A value of a protocol that is not
self-describing (bincode), or one that cannot be decoded, is
{\"$raw\": base64}: the stored bytes, loaded back untouched.";

const LOAD_HELP: &str = "\
A new database (missing, or replaced with --flag n) is built under a temporary
name beside PATH (.NAME.shelf-convert-PID) and moved into place only when
complete: a failure or kill leaves no database (or the old one), never part of
one. Into an existing database the keys go in as one atomic batch where the
backend has them (redb, sled); on backends without (dumb, dir) they are stored
one by one, and a failure or kill part-way leaves the keys before it stored.

Each value is encoded with the shelf's protocol and decoded back; a value that
would read back as something else (a tuple in JSON) stops the load naming the
key and the loss, unless --lossy. A bincode shelf takes only {\"$raw\": ...}
values (its bytes cannot be read back without Rust types), unless --lossy.

The dump is one JSON object {key: value}; see `shelf dump --help` for its forms.";

const CONVERT_HELP: &str = "\
DST is built under a temporary name beside it (.NAME.shelf-convert-PID) and
moved into place only when complete; with --flag n an existing DST is moved
aside, the new one moved in, then the old one removed. A kill at any moment
leaves no DST (or the old one) or the complete new one; leftovers of a killed
run are removed by the next convert or load to the same DST.

With another protocol, each value is re-encoded and decoded back: one that
would change (2**100 as a string, a tuple as a list, bytes as a list of
integers) stops the conversion naming the key and the loss, unless --lossy.
bincode cannot be a target protocol for re-encoded values (they could not be
read back without Rust types) unless --lossy.";

/// The top-level help's closing text: the backends and protocols come from
/// the registry at run time, so they are never out of date.
fn after_help() -> String {
    format!("Backends: {}\nProtocols: {}\n\n{AFTER_HELP}", db::backend_names(), Protocol::NAMES.join(", "))
}

/// The shelf command.
#[derive(Debug, Parser)]
#[command(name = "shelf", version, about = "Inspect, edit, dump/load, convert and benchmark shelves", after_help = after_help())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the backend of the database at PATH, `missing` or `unknown` (exit 0 only for a backend).
    Whichdb {
        /// The database.
        #[arg(value_parser = db::parse_location)]
        path: PathBuf,
        /// Print a JSON object {path, result, backend} instead of one word.
        #[arg(long)]
        json: bool,
    },
    /// Backend, protocol, key count, bytes on disk, reclaimable bytes and commit number.
    Info {
        /// The database.
        #[arg(value_parser = db::parse_location)]
        path: PathBuf,
        /// Print a JSON object instead of lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbOpts,
    },
    /// List the keys, one per line (or a JSON array).
    Keys {
        /// The database.
        #[arg(value_parser = db::parse_location)]
        path: PathBuf,
        /// Only keys matching this glob (`*`, `?`, `[abc]`, `{a,b}`).
        #[arg(long, value_name = "PATTERN")]
        glob: Option<String>,
        /// Print a JSON array of keys (keys may hold line breaks).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Print the value of KEY as JSON (exit 1 if missing).
    Get {
        /// The database.
        #[arg(value_parser = db::parse_location)]
        path: PathBuf,
        /// The key.
        key: String,
        /// Print {"$raw": base64} of the stored bytes instead of decoding them.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Store a JSON value under KEY (`-` reads it from stdin).
    #[command(after_help = DUMP_HELP)]
    Set {
        /// The database (created if missing, unless --flag w).
        #[arg(value_parser = db::parse_location)]
        path: PathBuf,
        /// The key.
        key: String,
        /// The value, in the JSON form `dump` writes (a negative number too).
        #[arg(allow_hyphen_values = true)]
        json: String,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Delete KEY (exit 1 if missing).
    Del {
        /// The database.
        #[arg(value_parser = db::parse_location)]
        path: PathBuf,
        /// The key.
        key: String,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Write every key and value as one JSON object.
    #[command(after_help = DUMP_HELP)]
    Dump {
        /// The database.
        #[arg(value_parser = db::parse_location)]
        path: PathBuf,
        /// Write to FILE instead of stdout (`-`: stdout).
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write every value as {"$raw": base64} of its stored bytes, for a byte-exact copy.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Store every key and value of a dump (read from stdin by default).
    #[command(after_help = LOAD_HELP)]
    Load {
        /// The database (created if missing).
        #[arg(value_parser = db::parse_location)]
        path: PathBuf,
        /// Read from FILE instead of stdin (`-`: stdin).
        #[arg(short, long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
        /// Store values the protocol would change (a tuple as a JSON list),
        /// instead of refusing them.
        #[arg(long)]
        lossy: bool,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Copy every key into a new database of another backend or protocol.
    #[command(after_help = CONVERT_HELP)]
    Convert {
        /// The database to read.
        #[arg(value_parser = db::parse_location)]
        src: PathBuf,
        /// The database to create.
        #[arg(value_parser = db::parse_location)]
        dst: PathBuf,
        /// DST's backend.
        #[arg(short, long, value_name = "NAME", help = format!("DST's backend: {}", db::backend_names()))]
        backend: String,
        /// DST's protocol (default: SRC's, which copies the bytes).
        #[arg(short, long, value_name = "P", value_parser = db::parse_protocol,
              help = format!("DST's protocol (default: SRC's, which copies the bytes): {}", Protocol::NAMES.join(", ")))]
        protocol: Option<Protocol>,
        /// c (default): refuse an existing DST; n: replace it.
        #[arg(short, long, value_name = "c|n", value_parser = parse_convert_flag)]
        flag: Option<Flag>,
        /// SRC's backend, instead of detecting it.
        #[arg(long, value_name = "NAME")]
        src_backend: Option<String>,
        /// SRC's protocol, instead of the recorded or default one.
        #[arg(long, value_name = "P", value_parser = db::parse_protocol)]
        src_protocol: Option<Protocol>,
        /// Write values DST's protocol would change (a tuple as a JSON list,
        /// a big int as a string), or any value into bincode, instead of
        /// refusing.
        #[arg(long)]
        lossy: bool,
    },
    /// Check the database for damage (exit 3 if damaged), where the backend can.
    Check {
        /// The database.
        #[arg(value_parser = db::parse_location)]
        path: PathBuf,
        /// Repair what can be repaired.
        #[arg(long)]
        repair: bool,
        /// Print a JSON object instead of lines (the exit code is the same).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Give back space freed by deletes and overwrites, where the backend can.
    Compact {
        /// The database.
        #[arg(value_parser = db::parse_location)]
        path: PathBuf,
        /// Print a JSON object {path, bytes_before, bytes_after, reclaimed_bytes} instead of a line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Benchmark the backends beside their raw engines, CPython's shelve (dbm.dumb, dbm.gnu, dbm.sqlite3) and redis.
    Bench(bench::BenchArgs),
    /// Print a shell completion script (`shelf completions bash > /etc/bash_completion.d/shelf`).
    Completions {
        /// The shell: bash, zsh, fish (also elvish, powershell).
        shell: clap_complete::Shell,
    },
}

fn parse_convert_flag(s: &str) -> Result<Flag, String> {
    s.parse().map_err(|e: shelf::OpenError| e.to_string())
}

fn run(cli: Cli) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let out: &mut dyn Write = &mut lock;
    match cli.command {
        Command::Whichdb { path, json } => commands::whichdb(&path, json, out),
        Command::Info { path, json, db } => commands::info(&path, &db, json, out),
        Command::Keys { path, glob, json, db } => commands::keys(&path, &db, glob.as_deref(), json, out),
        Command::Get { path, key, raw, db } => commands::get(&path, &db, &key, raw, out),
        Command::Set { path, key, json, db } => commands::set(&path, &db, &key, &json),
        Command::Del { path, key, db } => commands::del(&path, &db, &key),
        Command::Dump { path, out: file, raw, db } => commands::dump(&path, &db, file.as_deref(), raw, out),
        Command::Load { path, input, lossy, db } => commands::load(&path, &db, input.as_deref(), lossy, out),
        Command::Convert { src, dst, backend, protocol, flag, src_backend, src_protocol, lossy } => {
            commands::convert(
                &commands::ConvertArgs {
                    src: &src,
                    dst: &dst,
                    backend: &backend,
                    protocol,
                    flag,
                    src_backend: src_backend.as_deref(),
                    src_protocol,
                    lossy,
                },
                out,
            )
        }
        Command::Check { path, repair, json, db } => commands::check(&path, &db, repair, json, out),
        Command::Compact { path, json, db } => commands::compact(&path, &db, json, out),
        Command::Bench(args) => bench::run(&args, out),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            // Into memory first: `generate` panics on a write error, and a
            // closed pipe (`shelf completions bash | head`) is no bug.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "shelf", &mut script);
            match out.write_all(&script).and_then(|()| out.flush()) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::env(String::new())),
                Err(e) => Err(CliError::env(format!("cannot write output: {e}"))),
            }
        }
    }
}

/// The message of the last panic, kept by the hook for [`main`] to print.
static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// Replaces the default panic hook (which prints `panicked at` and a
/// backtrace hint) with one that only keeps the message. Engines' panics
/// that a backend catches and turns into an error then print nothing; one
/// that escapes is reported by [`main`] in one line.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        if let Ok(mut slot) = PANIC_MESSAGE.lock() {
            *slot = Some(msg);
        }
    }));
}

fn main() -> ExitCode {
    quiet_panics();
    let outcome = std::panic::catch_unwind(|| {
        // clap exits 2 on usage errors and 0 for --help/--version by itself.
        let cli = Cli::parse();
        run(cli)
    });
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            if !e.message.is_empty() {
                eprintln!("shelf: {e}");
            }
            ExitCode::from(e.code() as u8)
        }
        Err(payload) => {
            let kept = PANIC_MESSAGE.lock().ok().and_then(|mut m| m.take());
            let msg = kept
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            // One line: the message may hold line breaks of its own.
            let msg = msg.replace(['\n', '\r'], " ");
            eprintln!("shelf: internal error: {msg} (a bug; please report it)");
            ExitCode::from(INTERNAL_ERROR)
        }
    }
}

/// The exit code of a panic that reached `main`: a bug, not the user's
/// input or environment.
const INTERNAL_ERROR: u8 = 5;
