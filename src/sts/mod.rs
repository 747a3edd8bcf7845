//! STS `GetCallerIdentity`: the protocol the server speaks with STS.
//!
//! * [`client`]: the pooled HTTPS client; it sends a validated token's own request,
//!   counts the answers (`sts_responses_total`, `sts_throttling_total`,
//!   `sts_connection_failures_total`) and returns the caller.
//! * [`metrics`]: those counters' handles, registered by the server's composition.
//! * [`response`]: what an answer means (pure): status codes, throttling, the JSON body.
//!
//! Which hosts a token may name is [`crate::aws::endpoints`]'s; what the caller maps to is
//! the token's and the mapper's.

pub mod client;
pub mod metrics;
pub mod response;

pub use client::{
    Client, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, Error, MAX_BODY_BYTES, instance_region,
    parse_resolve,
};
pub use metrics::StsMetrics;
pub use response::{CallError, CallerIdentity};
