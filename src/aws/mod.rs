//! AWS facts both sides of the protocol share (pure, a leaf: it imports nothing else of
//! the crate, nothing async and no metrics).
//!
//! * [`partition`]: the partitions, their known regions, the region grammar and which
//!   partition a region belongs to.
//! * [`endpoints`]: the STS host for a region and variant (what `token` presigns for)
//!   and the per-partition STS host allow-list (what the server accepts).
//!
//! The client and the server read the same tables, so a token minted for any region is
//! filed under the same partition by the server that checks it.

pub mod endpoints;
pub mod partition;

pub use partition::Partition;

/// The signed header that binds a token to one cluster: the client signs it, the server
/// re-supplies its own value when it forwards the token to STS.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
