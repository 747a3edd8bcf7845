//! ARN parsing, canonicalisation and `ArnLike` matching (pure).
//!
//! Mappings are matched against the *canonical* ARN of a caller: an STS assumed-role
//! ARN (`arn:aws:sts::123456789012:assumed-role/Admin/alice`) becomes the IAM role ARN
//! (`arn:aws:iam::123456789012:role/Admin`). Error texts are upstream's, because
//! operators grep logs for them.

use std::fmt;

use crate::aws::Partition;

/// What kind of IAM principal an ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalType {
    /// `arn:<p>:iam::<acct>:user/<path/>name`.
    User,
    /// `arn:<p>:sts::<acct>:assumed-role/<role>/<session>`.
    AssumedRole,
    /// `arn:<p>:iam::<acct>:role/<path/>name`.
    Role,
    /// `arn:<p>:sts::<acct>:federated-user/<name>`.
    FederatedUser,
    /// `arn:<p>:iam::<acct>:root`.
    Root,
}

/// An ARN that is malformed or does not name an identity. `Display` is upstream's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArnError(String);

impl ArnError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// The six `:`-separated sections of an ARN, as the AWS SDK's `arn.Parse` splits them
/// (the resource keeps any further `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    /// e.g. `aws`.
    pub partition: &'a str,
    /// e.g. `iam`.
    pub service: &'a str,
    /// Usually empty for IAM/STS.
    pub region: &'a str,
    /// The 12-digit account id.
    pub account_id: &'a str,
    /// Everything after the fifth `:`, e.g. `role/Admin`.
    pub resource: &'a str,
}

impl fmt::Display for Arn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account_id, self.resource
        )
    }
}

/// Splits `s` into the six ARN sections. The error texts are the SDK's without its
/// `arn: ` prefix (`invalid prefix`, `not enough sections`).
fn sections(s: &str) -> Result<[&str; 6], &'static str> {
    if !s.starts_with("arn:") {
        return Err("invalid prefix");
    }
    let mut it = s.splitn(6, ':');
    let mut out = [""; 6];
    for slot in &mut out {
        *slot = it.next().ok_or("not enough sections")?;
    }
    Ok(out)
}

/// Parses an ARN as the AWS SDK does (prefix `arn:` and six sections). The error text
/// is the SDK's, e.g. `arn: invalid prefix`.
pub fn parse(arn: &str) -> Result<Arn<'_>, String> {
    let [_, partition, service, region, account_id, resource] =
        sections(arn).map_err(|e| format!("arn: {e}"))?;
    Ok(Arn {
        partition,
        service,
        region,
        account_id,
        resource,
    })
}

fn parse_checked(arn: &str) -> Result<Arn<'_>, ArnError> {
    let parsed = parse(arn).map_err(|e| ArnError::new(format!("arn '{arn}' is invalid: '{e}'")))?;
    if parsed.partition.parse::<Partition>().is_err() {
        return Err(ArnError::new(format!(
            "arn '{arn}' does not have a recognized partition"
        )));
    }
    Ok(parsed)
}

/// Validates that `arn` names an identity the authenticator supports and returns its
/// principal type and canonical form: assumed-role ARNs become the IAM role ARN (the
/// session is dropped; STS never includes the role's path), everything else is
/// returned unchanged.
pub fn canonicalize(arn: &str) -> Result<(PrincipalType, String), ArnError> {
    let parsed = parse_checked(arn)?;
    let parts: Vec<&str> = parsed.resource.split('/').collect();
    let kind = parts.first().copied().unwrap_or("");
    match parsed.service {
        "sts" => match kind {
            "federated-user" => Ok((PrincipalType::FederatedUser, arn.to_owned())),
            "assumed-role" => {
                if parts.len() < 3 {
                    return Err(ArnError::new(format!(
                        "assumed-role arn '{arn}' does not have a role"
                    )));
                }
                let role = parts[1..parts.len() - 1].join("/");
                Ok((
                    PrincipalType::AssumedRole,
                    format!(
                        "arn:{}:iam::{}:role/{role}",
                        parsed.partition, parsed.account_id
                    ),
                ))
            }
            _ => Err(ArnError::new(format!(
                "unrecognized resource {} for service sts",
                parsed.resource
            ))),
        },
        "iam" => match kind {
            "role" => Ok((PrincipalType::Role, arn.to_owned())),
            "user" => Ok((PrincipalType::User, arn.to_owned())),
            "root" => Ok((PrincipalType::Root, arn.to_owned())),
            _ => Err(ArnError::new(format!(
                "unrecognized resource {} for service iam",
                parsed.resource
            ))),
        },
        svc => Err(ArnError::new(format!(
            "service {svc} in arn {arn} is not a valid service for identities"
        ))),
    }
}

/// Removes the path from a role ARN (`role/org/team/Admin` → `role/Admin`), which is how
/// STS reports a role in an assumed-role ARN. Other ARNs are returned unchanged.
pub fn strip_path(arn: &str) -> Result<String, ArnError> {
    let parsed = parse_checked(arn)?;
    let parts: Vec<&str> = parsed.resource.split('/').collect();
    if parts.first() != Some(&"role") || parts.len() <= 2 {
        return Ok(arn.to_owned());
    }
    let last = parts[parts.len() - 1];
    let resource = format!("role/{last}");
    Ok(Arn {
        resource: &resource,
        ..parsed
    }
    .to_string())
}

/// IAM's `ArnLike` condition operator with upstream's semantics: both strings are split
/// into the six ARN sections and each section of `pattern` must match the whole of the
/// corresponding section of `arn`, where `*` matches any run of characters and `?`
/// matches zero or one character (upstream's regex `.?`; IAM's is exactly one). As
/// upstream's regex `.`, neither wildcard matches a newline. Matching is case-sensitive.
pub fn arn_like(arn: &str, pattern: &str) -> Result<bool, ArnError> {
    let arn_sections =
        sections(arn).map_err(|e| ArnError::new(format!("could not parse input arn: {e}")))?;
    let pattern_sections = sections(pattern)
        .map_err(|e| ArnError::new(format!("could not parse ArnLike string: {e}")))?;
    Ok(arn_sections
        .iter()
        .zip(pattern_sections.iter())
        .all(|(a, p)| glob_match(a, p)))
}

/// Anchored match of `text` against `pattern` with `*` (any run) and `?` (zero or one),
/// neither matching `\n`. Dynamic programming over the pattern: no backtracking blow-up.
fn glob_match(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    // reachable[i]: the pattern prefix consumed so far can end at text position i.
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for p in pattern.chars() {
        let mut next = vec![false; text.len() + 1];
        match p {
            '*' => {
                for i in 0..=text.len() {
                    if reachable[i] || (i > 0 && next[i - 1] && text[i - 1] != '\n') {
                        next[i] = true;
                    }
                }
            }
            '?' => {
                for i in 0..=text.len() {
                    if reachable[i] || (i > 0 && reachable[i - 1] && text[i - 1] != '\n') {
                        next[i] = true;
                    }
                }
            }
            c => {
                for i in 1..=text.len() {
                    next[i] = reachable[i - 1] && text[i - 1] == c;
                }
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalize_vectors() {
        let unchanged = [
            ("arn:aws:iam::123456789012:user/Alice", PrincipalType::User),
            ("arn:aws:iam::123456789012:role/Users", PrincipalType::Role),
            (
                "arn:aws:sts::123456789012:federated-user/Bob",
                PrincipalType::FederatedUser,
            ),
            ("arn:aws:iam::123456789012:root", PrincipalType::Root),
            (
                "arn:aws-iso:iam::123456789012:user/Chris",
                PrincipalType::User,
            ),
            (
                "arn:aws-iso-b:iam::123456789012:user/Chris",
                PrincipalType::User,
            ),
            (
                "arn:aws:iam::123456789012:user/path/to/Alice",
                PrincipalType::User,
            ),
        ];
        for (arn, kind) in unchanged {
            assert_eq!(canonicalize(arn).unwrap(), (kind, arn.to_owned()), "{arn}");
        }
        assert_eq!(
            canonicalize("arn:aws:sts::123456789012:assumed-role/Admin/Session").unwrap(),
            (
                PrincipalType::AssumedRole,
                "arn:aws:iam::123456789012:role/Admin".to_owned()
            )
        );
        assert_eq!(
            canonicalize("arn:aws:sts::123456789012:assumed-role/Org/Team/Admin/Session")
                .unwrap()
                .1,
            "arn:aws:iam::123456789012:role/Org/Team/Admin"
        );
        assert_eq!(
            canonicalize("arn:aws-cn:sts::123456789012:assumed-role/Admin/s")
                .unwrap()
                .1,
            "arn:aws-cn:iam::123456789012:role/Admin"
        );
    }

    #[test]
    fn canonicalize_errors() {
        let cases = [
            (
                "NOT AN ARN",
                "arn 'NOT AN ARN' is invalid: 'arn: invalid prefix'",
            ),
            ("arn", "arn 'arn' is invalid: 'arn: invalid prefix'"),
            (
                "arn:aws:iam::123",
                "arn 'arn:aws:iam::123' is invalid: 'arn: not enough sections'",
            ),
            (
                "arn:aws-nk:iam::123456789012:user/A",
                "arn 'arn:aws-nk:iam::123456789012:user/A' does not have a recognized partition",
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/Admin",
                "assumed-role arn 'arn:aws:sts::123456789012:assumed-role/Admin' does not have a role",
            ),
            (
                "arn:aws:sts::123456789012:thing/x",
                "unrecognized resource thing/x for service sts",
            ),
            (
                "arn:aws:iam::123456789012:group/x",
                "unrecognized resource group/x for service iam",
            ),
            (
                "arn:aws:s3:::bucket",
                "service s3 in arn arn:aws:s3:::bucket is not a valid service for identities",
            ),
        ];
        for (arn, want) in cases {
            assert_eq!(canonicalize(arn).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn strip_path_vectors() {
        assert_eq!(
            strip_path("arn:aws:iam::123456789012:role/Org/Team/Admin").unwrap(),
            "arn:aws:iam::123456789012:role/Admin"
        );
        for arn in [
            "arn:aws:iam::123456789012:role/Admin",
            "arn:aws:iam::123456789012:user/Alice",
            "arn:aws:iam::123456789012:user/path/Alice",
            "arn:aws:sts::123456789012:federated-user/Bob",
        ] {
            assert_eq!(strip_path(arn).unwrap(), arn);
        }
        assert!(strip_path("NOT AN ARN").is_err());
    }

    #[test]
    fn arn_like_vectors() {
        let arn = "arn:aws:iam::000000000000:role/some-role";
        for pattern in [
            "arn:aws:iam::000000000000:role/some-role",
            "arn:aws:iam::000000000000:*",
            "arn:*:*:*:*:*",
            "arn:aws:iam::000000000000:**",
            "arn:aws:iam::000000000000:*role*",
            "arn:aws:iam::000000000000:ro*",
            "arn:aws:iam::000000000000:??????????????",
        ] {
            assert!(arn_like(arn, pattern).unwrap(), "{pattern}");
        }
        let wacky = "arn:aws:iam::000000000000:wacky-new-[resource]+^$.()|{}";
        assert!(arn_like(wacky, wacky).unwrap());
        assert!(arn_like(wacky, "arn:aws:iam::000000000000:wacky-new-[reso*").unwrap());

        assert!(!arn_like(arn, "arn:aws:iam::000000000001:role/some-role").unwrap());
        assert!(
            !arn_like(
                "arn:aws:testservice::000000000000:some/wacky:resource:with:colon:delims",
                "arn:aws:testservice::**:delims"
            )
            .unwrap()
        );
        // `?` is zero-or-one (upstream), so 13 characters also match 14 `?`.
        assert!(arn_like(arn, "arn:aws:iam::000000000000:?????????????????").unwrap());
        assert!(!arn_like(arn, "arn:aws:iam::000000000000:?????????????").unwrap());
        // Case-sensitive, as upstream's regex.
        assert!(!arn_like(arn, "arn:aws:iam::000000000000:ROLE/some-role").unwrap());
    }

    #[test]
    fn arn_like_errors() {
        let e = arn_like("arn:aws:iam::000000000000:role/x", "arn:*").unwrap_err();
        assert_eq!(
            e.to_string().to_lowercase(),
            "could not parse arnlike string: not enough sections"
        );
        let e = arn_like("nar:aws:iam::000000000000:role/x", "arn:*:*:*:*:*").unwrap_err();
        assert_eq!(
            e.to_string().to_lowercase(),
            "could not parse input arn: invalid prefix"
        );
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob_match("", ""));
        assert!(glob_match("", "*"));
        assert!(glob_match("", "?"));
        assert!(!glob_match("a", ""));
        assert!(glob_match("abc", "a*c"));
        assert!(!glob_match("abd", "a*c"));
        assert!(!glob_match("a\nc", "a*c"));
        assert!(glob_match("aXbYc", "a*b*c"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".*", p in ".*") {
            let _ = canonicalize(&s);
            let _ = strip_path(&s);
            let _ = arn_like(&s, &p);
            let _ = canonicalize(&format!("arn:aws:sts::1:{s}"));
            let _ = canonicalize(&format!("arn:aws:iam::1:{s}"));
        }
    }
}
