//! arn (being built).
