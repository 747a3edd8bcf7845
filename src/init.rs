//! init (being built).
