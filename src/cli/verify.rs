//! `verify`: run the server's verification of a token (including the STS call) and print
//! the identity.

use clap::Args;

use super::args::StsArgs;
use super::{GlobalArgs, UsageError};
use crate::aws::Partition;
use crate::config::Layers;
use crate::identity::Identity;
use crate::token::once;

/// Flags of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Token to verify
    #[arg(short = 't', long = "token")]
    pub token: Option<String>,
    /// Output format. Only `json` is supported currently.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// The AWS partition. Must be one of: aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc
    #[arg(long = "partition")]
    pub partition: Option<String>,
    /// How STS is reached.
    #[command(flatten)]
    pub sts: StsArgs,
}

/// upstream prints these two errors lower-case (`error: …`) followed by the usage,
/// unlike cobra's `Error: …`; we keep its exact words.
fn usage_error(message: &str) -> anyhow::Error {
    let usage = UsageError::new(&["verify"], message).usage();
    anyhow::anyhow!("error: {message}\n{}", usage.trim_end())
}

/// Runs `verify`.
pub async fn run(args: VerifyArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let file = global.config_file()?;
    let layers = Layers::new(file.as_ref());
    let token = layers
        .get(args.token, "token")?
        .ok_or_else(|| usage_error("token not specified"))?;
    let cluster_id = global
        .cluster_id(file.as_ref())?
        .ok_or_else(|| usage_error("cluster ID not specified"))?;
    let output = layers.get_or(args.output, "output", String::new())?;
    let partition_name = layers.get_or(args.partition, "partition", "aws".to_owned())?;
    // upstream: `verify` does not check the partition (an unknown one rejects every
    // token with a confusing host error); we refuse it up front, as the server does.
    let partition: Partition = partition_name.parse().map_err(|_| {
        anyhow::anyhow!(
            "error: invalid partition {partition_name:?}: must be one of {}",
            Partition::ALL.map(|p| p.name()).join(", ")
        )
    })?;

    let sts_options = args.sts.options();
    let identity = once::verify(&token, cluster_id, partition, &sts_options).await?;

    if output == "json" {
        println!("{}", to_json(&identity)?);
    } else {
        println!("{}", go_struct(&identity));
    }
    Ok(())
}

/// Go's `json.MarshalIndent(id, "", "    ")`.
fn to_json(identity: &Identity) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(identity, &mut ser)?;
    Ok(String::from_utf8(out)?)
}

/// Go's `fmt.Printf("%+v", id)` of a `*Identity`.
fn go_struct(id: &Identity) -> String {
    format!(
        "&{{ARN:{} CanonicalARN:{} AccountID:{} UserID:{} SessionName:{} AccessKeyID:{} STSEndpoint:{}}}",
        id.arn,
        id.canonical_arn,
        id.account_id,
        id.user_id,
        id.session_name,
        id.access_key_id,
        id.sts_endpoint
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            arn: "arn:aws:sts::123456789012:assumed-role/Admin/alice".into(),
            canonical_arn: "arn:aws:iam::123456789012:role/Admin".into(),
            account_id: "123456789012".into(),
            user_id: "AROAEXAMPLE".into(),
            session_name: "alice".into(),
            access_key_id: "ASIAEXAMPLE".into(),
            sts_endpoint: "sts.us-west-2.amazonaws.com".into(),
        }
    }

    #[test]
    fn outputs() {
        assert_eq!(
            go_struct(&id()),
            "&{ARN:arn:aws:sts::123456789012:assumed-role/Admin/alice CanonicalARN:arn:aws:iam::123456789012:role/Admin AccountID:123456789012 UserID:AROAEXAMPLE SessionName:alice AccessKeyID:ASIAEXAMPLE STSEndpoint:sts.us-west-2.amazonaws.com}"
        );
        assert_eq!(
            to_json(&id()).unwrap(),
            "{\n    \"ARN\": \"arn:aws:sts::123456789012:assumed-role/Admin/alice\",\n    \"CanonicalARN\": \"arn:aws:iam::123456789012:role/Admin\",\n    \"AccountID\": \"123456789012\",\n    \"UserID\": \"AROAEXAMPLE\",\n    \"SessionName\": \"alice\",\n    \"AccessKeyID\": \"ASIAEXAMPLE\",\n    \"STSEndpoint\": \"sts.us-west-2.amazonaws.com\"\n}"
        );
    }
}
