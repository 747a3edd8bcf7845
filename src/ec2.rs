//! ec2 (being built).
