//! The library behind the `shelf` command: each subcommand as a function,
//! the JSON form of values, and the benchmark. The binary (`src/main.rs`)
//! parses arguments and calls these; the fuzz targets call the loader.

pub mod bench;
pub mod commands;
pub mod db;
pub mod error;
pub mod json_value;
pub mod lossless;
pub mod plot;
pub mod report;
pub mod rng;
pub mod staged;
