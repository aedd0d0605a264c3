//! The sled backend of shelf (being written).
