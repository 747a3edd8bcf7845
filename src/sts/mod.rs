//! (being built)
pub mod endpoints;
