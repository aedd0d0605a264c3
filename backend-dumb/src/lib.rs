//! The dumb backend of shelf (being written).
