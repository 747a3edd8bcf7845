//! AWS credentials: where `token` gets the keys it signs with, and where the server's
//! `{{EC2PrivateDNSName}}` lookup gets the keys it calls EC2 with.
//!
//! * [`resolve()`] (the `client` feature: not in the server-side build) is `token`'s whole
//!   credential story, in upstream's order: the region
//!   ([`region`]), the SDK's standard chain (environment, profiles, SSO, processes, web
//!   identity, containers, IMDS with a short budget), a profile's MFA role ([`profile`]),
//!   the `--cache` file ([`cache`]) around those base credentials, then the `--role`
//!   ([`assume_role`]), and the STS host the token is presigned for.
//! * [`chain::Chain`] is the server's chain, without the SDK: environment, static profile
//!   keys ([`shared_files`]), web identity, containers ([`container`]) and IMDSv2
//!   ([`imds`], which also gives the server its region), over [`link_local`]'s client.
//! * [`assume_role::AssumeRole`] is the one STS AssumeRole provider: `--role`, a
//!   profile's MFA role (the code is asked for on stderr) and the server's
//!   `ec2DescribeInstancesRoleARN` (with the confused-deputy source headers) all use it.
//!   It and web identity call STS through [`sts`], our own Query API client.
//! * [`refresh`] keeps credentials and renews them ahead of expiry, one fetch at a time.

pub mod assume_role;
#[cfg(feature = "client")]
pub mod cache;
pub mod chain;
pub mod container;
pub mod imds;
pub mod link_local;
#[cfg(feature = "client")]
pub mod profile;
pub mod refresh;
#[cfg(feature = "client")]
pub mod region;
#[cfg(feature = "client")]
mod resolve;
pub mod shared_files;
pub mod sts;

use aws_credential_types::provider::error::CredentialsError;

#[cfg(feature = "client")]
pub use self::resolve::{Options, ROLE_SESSION_DURATION, Resolved, RoleOptions, resolve};

/// Why no credentials could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SDK configured no credentials provider at all.
    #[error("no credentials provider configured")]
    NoProvider,
    /// The chain (or the role assumption) failed.
    #[error("could not load credentials")]
    Load(#[source] CredentialsError),
    /// `--forward-session-name`: the caller's identity could not be read.
    #[error("could not get the caller identity to forward its session name")]
    ForwardSessionName(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` is not a URL with a host.
    #[error("invalid sts endpoint url {url:?}: {message}")]
    EndpointUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
}
