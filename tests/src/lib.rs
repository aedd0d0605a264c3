//! suite (being written)
