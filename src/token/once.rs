//! One token checked as the server checks it (format, then STS), outside the server:
//! `verify` and `explain --token`.

use std::time::SystemTime;

use super::VerifyError;
use super::verify::{Verifier, validate};
use crate::aws::Partition;
use crate::aws::endpoints::HostError;
use crate::config::StsOptions;
use crate::identity::Identity;
use crate::sts;

/// Why the token's identity is not known.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The STS client could not be built (e.g. an unreadable `--sts-ca-file`).
    #[error(transparent)]
    Client(#[from] sts::Error),
    /// The token was refused, or STS gave no answer.
    #[error("could not verify token")]
    Verify(#[source] VerifyError),
}

/// Whether checking `token` needs the instance's region: only when its host is not in the
/// endpoint table, where the region is the allow-list's fallback.
fn needs_instance_region(token: &str, partition: Partition, now: SystemTime) -> bool {
    matches!(
        validate(token, partition, None, now),
        Err(VerifyError::Host(HostError::UnexpectedHostname(_)))
    )
}

/// Verifies `token` for `cluster_id` in `partition` with a client built from
/// `sts_options` (its metrics counted nowhere).
pub async fn verify(
    token: &str,
    cluster_id: String,
    partition: Partition,
    sts_options: &StsOptions,
) -> Result<Identity, Error> {
    let client = sts::Client::new(sts_options, sts::StsMetrics::default())?;
    // upstream: always asks IMDS first (seconds off EC2); the instance region only
    // matters when the token's host is not in the endpoint table, so we look it up only
    // then.
    let region = if needs_instance_region(token, partition, SystemTime::now()) {
        sts::instance_region().await
    } else {
        None
    };
    Verifier::new(cluster_id, partition, region, client)
        .verify(token)
        .await
        .map_err(Error::Verify)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_region_is_asked_only_for_hosts_off_the_table() {
        // Not a token at all: refused before any host is looked at.
        assert!(!needs_instance_region(
            "junk",
            Partition::Aws,
            SystemTime::now()
        ));
    }
}
