//! talos (being built).
