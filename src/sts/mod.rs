//! STS: the partition/region host table ([`endpoints`]) and the pooled HTTPS client that
//! sends a validated token's `GetCallerIdentity` request.

pub mod endpoints;
