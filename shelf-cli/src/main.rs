//! The `shelf` command: inspect, edit, dump and load, convert, check and
//! compact shelves of any registered backend, and benchmark the backends
//! against CPython's `shelve`.
//!
//! Exit codes: 0 ok, 1 not found (missing key or database), 2 usage or
//! unsupported, 3 data error (corrupt, undecodable or malformed input),
//! 4 environment (locked database, permissions, i/o). See `error.rs`.

use shelf_cli::{bench, commands, db};

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shelf::{Flag, Protocol};

use shelf_cli::db::DbOpts;
use shelf_cli::error::CliError;

const AFTER_HELP: &str = "\
Exit codes: 0 ok, 1 not found (missing key or database), 2 usage or unsupported,
3 data error (corrupt, undecodable or malformed input), 4 locked database,
permissions or other i/o failure.

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
key starting with `$`), {\"$global\": [name, args]}. A value of a protocol that
is not self-describing (bincode), or one that cannot be decoded, is
{\"$raw\": base64}: the stored bytes, loaded back untouched.";

/// The shelf command.
#[derive(Debug, Parser)]
#[command(name = "shelf", version, about = "Inspect, edit, dump/load, convert and benchmark shelves", after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the backend of the database at PATH, `missing` or `unknown` (exit 0 only for a backend).
    Whichdb {
        /// The database.
        path: PathBuf,
    },
    /// Backend, protocol, key count, bytes on disk, reclaimable bytes and commit number.
    Info {
        /// The database.
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
        path: PathBuf,
        /// Write to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write every value as {"$raw": base64} of its stored bytes, for a byte-exact copy.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Store every key and value of a dump (read from stdin by default).
    #[command(after_help = DUMP_HELP)]
    Load {
        /// The database (created if missing).
        path: PathBuf,
        /// Read from FILE instead of stdin.
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Copy every key into a new database of another backend or protocol.
    Convert {
        /// The database to read.
        src: PathBuf,
        /// The database to create.
        dst: PathBuf,
        /// DST's backend.
        #[arg(long, value_name = "NAME")]
        backend: String,
        /// DST's protocol (default: SRC's, which copies the bytes).
        #[arg(long, value_name = "P", value_parser = db::parse_protocol)]
        protocol: Option<Protocol>,
        /// c (default): refuse an existing DST; n: replace it.
        #[arg(long, value_name = "c|n", value_parser = parse_convert_flag)]
        flag: Option<Flag>,
        /// SRC's backend, instead of detecting it.
        #[arg(long, value_name = "NAME")]
        src_backend: Option<String>,
        /// SRC's protocol, instead of the recorded or default one.
        #[arg(long, value_name = "P", value_parser = db::parse_protocol)]
        src_protocol: Option<Protocol>,
    },
    /// Check the database for damage (exit 3 if damaged), where the backend can.
    Check {
        /// The database.
        path: PathBuf,
        /// Repair what can be repaired.
        #[arg(long)]
        repair: bool,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Give back space freed by deletes and overwrites, where the backend can.
    Compact {
        /// The database.
        path: PathBuf,
        #[command(flatten)]
        db: DbOpts,
    },
    /// Benchmark the backends (and CPython's shelve with dbm.dumb when python3 is present).
    Bench(bench::BenchArgs),
}

fn parse_convert_flag(s: &str) -> Result<Flag, String> {
    s.parse().map_err(|e: shelf::OpenError| e.to_string())
}

fn run(cli: Cli) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let out: &mut dyn Write = &mut lock;
    match cli.command {
        Command::Whichdb { path } => commands::whichdb(&path, out),
        Command::Info { path, json, db } => commands::info(&path, &db, json, out),
        Command::Keys { path, glob, json, db } => commands::keys(&path, &db, glob.as_deref(), json, out),
        Command::Get { path, key, raw, db } => commands::get(&path, &db, &key, raw, out),
        Command::Set { path, key, json, db } => commands::set(&path, &db, &key, &json),
        Command::Del { path, key, db } => commands::del(&path, &db, &key),
        Command::Dump { path, out: file, raw, db } => commands::dump(&path, &db, file.as_deref(), raw, out),
        Command::Load { path, input, db } => commands::load(&path, &db, input.as_deref(), out),
        Command::Convert { src, dst, backend, protocol, flag, src_backend, src_protocol } => {
            commands::convert(
                &commands::ConvertArgs {
                    src: &src,
                    dst: &dst,
                    backend: &backend,
                    protocol,
                    flag,
                    src_backend: src_backend.as_deref(),
                    src_protocol,
                },
                out,
            )
        }
        Command::Check { path, repair, db } => commands::check(&path, &db, repair, out),
        Command::Compact { path, db } => commands::compact(&path, &db, out),
        Command::Bench(args) => bench::run(&args, out),
    }
}

fn main() -> ExitCode {
    // clap exits 2 on usage errors and 0 for --help/--version by itself.
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("shelf: {e}");
            }
            ExitCode::from(e.code() as u8)
        }
    }
}
