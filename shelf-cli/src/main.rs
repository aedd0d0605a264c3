//! The `shelf` command (being written).
fn main() {}
