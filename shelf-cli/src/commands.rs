//! The commands other than `bench`: each takes its parsed arguments and
//! writes its output to `out`, returning a [`CliError`](crate::error::CliError)
//! on failure. One file per family: reading, writing one key, dump, load,
//! convert, maintenance; what they share is in `output`.

mod convert;
mod dump;
mod load;
mod maintain;
mod output;
mod read;
mod write;

pub use convert::{ConvertArgs, convert};
pub use dump::dump;
pub use load::{load, load_into};
pub use maintain::{check, compact};
pub use read::{get, info, keys, whichdb};
pub use write::{del, set};
