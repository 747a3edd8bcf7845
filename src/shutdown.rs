//! shutdown (being built).
