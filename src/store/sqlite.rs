//! The SQLite store (feature `sqlite`).
