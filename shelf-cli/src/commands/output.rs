//! What the command modules share: the output stream and the errors for
//! a failed write, a missing key and malformed JSON.

use std::io::Write;
use std::path::Path;

use crate::error::CliError;
use crate::json_value;

pub(super) type Out<'a> = &'a mut dyn Write;

pub(super) fn write_err(e: std::io::Error) -> CliError {
    // A closed pipe (`shelf keys db | head`) is the reader's choice, not a
    // failure worth a message.
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return CliError::env(String::new());
    }
    CliError::env(format!("cannot write output: {e}"))
}

pub(super) fn missing_key(key: &[u8], path: &Path) -> CliError {
    CliError::not_found(format!("key {:?} not found in {}", json_value::key_to_json(key), path.display()))
}

/// Where a JSON document came from, for error messages.
pub(super) fn malformed(source: &str, e: &serde_json::Error) -> CliError {
    CliError::data(format!("malformed JSON in {source}: {e}"))
}
