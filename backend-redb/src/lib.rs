//! The redb backend of shelf (being written).
