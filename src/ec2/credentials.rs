//! The keys `DescribeInstances` is signed with: the server's credential chain
//! ([`crate::credentials::chain`]), or, with `server.ec2DescribeInstancesRoleARN`, that
//! role assumed with them (carrying the confused-deputy headers of `server.sourceARN`).

use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;

use super::Error;
use crate::config::ServerConfig;
use crate::credentials::assume_role::{AssumeRole, SourceHeaders};
use crate::credentials::chain::Chain;
use crate::credentials::sts::Sts;
use crate::https::proxy::ProxyEnv;

/// How long `ec2DescribeInstancesRoleARN` sessions last (renewed five minutes early).
const ASSUMED_ROLE_DURATION: Duration = Duration::from_secs(3600);
/// The role session name (upstream's).
const SESSION_NAME: &str = "aws-iam-authenticator";

/// The credentials provider for EC2 calls in `region`; STS calls go through `proxy`.
pub(super) fn provider(
    config: &ServerConfig,
    region: &str,
    proxy: &ProxyEnv,
) -> Result<SharedCredentialsProvider, Error> {
    let role = role_settings(
        config.ec2_describe_instances_role_arn.as_deref(),
        config.source_arn.as_deref(),
    )?;
    // upstream: the Go SDK's whole default chain; we read what a node has (environment,
    // static profile keys, web identity, containers, IMDS) without the SDK, which would
    // double the server-side binary's size.
    let base = Chain::new(region, proxy.clone());
    let Some((role_arn, source)) = role else {
        return Ok(SharedCredentialsProvider::new(base));
    };
    tracing::info!("Using assumed role for EC2 API");
    let sts = Sts::for_region(region, proxy.clone()).map_err(Error::Sts)?;
    let assume = AssumeRole::new(sts, base, role_arn)
        .session_name(SESSION_NAME.to_owned())
        .duration(ASSUMED_ROLE_DURATION)
        .source_headers(source)
        .provider_name("ec2DescribeInstancesRoleARN");
    Ok(SharedCredentialsProvider::new(assume))
}

/// The role to assume and its source headers, checked (upstream panics on a bad ARN).
fn role_settings<'a>(
    role_arn: Option<&'a str>,
    source_arn: Option<&str>,
) -> Result<Option<(&'a str, Option<SourceHeaders>)>, Error> {
    let Some(role_arn) = role_arn.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if crate::arn::parse(role_arn).is_err() {
        return Err(Error::RoleArn(role_arn.to_owned()));
    }
    let source = match source_arn.filter(|s| !s.is_empty()) {
        Some(arn) => {
            let account = crate::arn::parse(arn)
                .map_err(|_| Error::SourceArn(arn.to_owned()))?
                .account_id
                .to_owned();
            Some(SourceHeaders {
                arn: arn.to_owned(),
                account,
            })
        }
        None => None,
    };
    Ok(Some((role_arn, source)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_and_source_arns_are_checked() {
        let role = "arn:aws:iam::111122223333:role/describe";
        let source = "arn:aws:eks:us-west-2:444455556666:cluster/c";
        assert_eq!(role_settings(None, Some(source)).unwrap(), None);
        assert_eq!(role_settings(Some(""), None).unwrap(), None);
        assert_eq!(role_settings(Some(role), None).unwrap(), Some((role, None)));
        assert_eq!(
            role_settings(Some(role), Some(source)).unwrap(),
            Some((
                role,
                Some(SourceHeaders {
                    arn: source.to_owned(),
                    account: "444455556666".to_owned(),
                })
            ))
        );
        let e = role_settings(Some("nope"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "describeinstancesrole nope is not a valid arn"
        );
        let e = role_settings(Some(role), Some("nope")).unwrap_err();
        assert_eq!(e.to_string(), "sourcearn nope is not a valid arn");
    }
}
