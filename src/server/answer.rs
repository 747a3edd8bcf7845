//! The answer to an accepted review: the `status.user` of a mapped identity, written
//! straight from the identity and the mapping (no `extra` map of copied strings, no
//! owned [`TokenReview`](super::review::TokenReview) built only to be serialised).
//!
//! The bytes are those of [`TokenReview::allowed`](super::review::TokenReview::allowed)
//! with the same [`UserInfo`]: the tests below compare the two.

use std::sync::Arc;

use serde::Serialize;

use crate::identity::Identity;
use crate::mapper::chain::MappedUser;

use super::review::{KIND, UserInfo};

/// The `status.user.uid` of a mapped identity: `aws-iam-authenticator:<account>:<user
/// id>`, or for a scrubbed (not loggable) account `aws-iam-authenticator:administrative:<username>`.
pub fn uid(id: &Identity, username: &str, loggable: bool) -> String {
    if loggable {
        format!("aws-iam-authenticator:{}:{}", id.account_id, id.user_id)
    } else {
        format!("aws-iam-authenticator:administrative:{username}")
    }
}

/// Who an accepted token belongs to: the mapped user and, unless its account is scrubbed,
/// the identity whose details fill `extra`.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The Kubernetes user name.
    pub username: String,
    /// See [`uid`].
    pub uid: String,
    /// The Kubernetes groups.
    pub groups: Vec<String>,
    /// The identity, for `extra`; `None` for a scrubbed account (no `extra`).
    pub identity: Option<Arc<Identity>>,
}

impl Accepted {
    /// `user` as `identity` mapped; `loggable`: whether the identity's details may be
    /// shown (see `server.scrubbedAccounts`).
    pub fn new(identity: &Arc<Identity>, user: MappedUser, loggable: bool) -> Self {
        Self {
            uid: uid(identity, &user.username, loggable),
            username: user.username,
            groups: user.groups,
            identity: loggable.then(|| Arc::clone(identity)),
        }
    }

    /// The same user as an owned [`UserInfo`], with upstream's six `extra` keys.
    pub fn user_info(&self) -> UserInfo {
        let extra = self.identity.as_deref().map(Extra::of);
        UserInfo {
            username: self.username.clone(),
            uid: self.uid.clone(),
            groups: self.groups.clone(),
            extra: extra
                .map(|e| {
                    e.entries()
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), vec![v.to_owned()]))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The TokenReview answer in `api_version`, as JSON, in a buffer with room for a
    /// trailing newline.
    pub fn to_json(&self, api_version: &str) -> serde_json::Result<Vec<u8>> {
        // Sized once from the strings it carries: serde_json's own buffer would start at
        // 128 bytes and be copied as it doubles, three times for a usual answer.
        let mut out = Vec::with_capacity(self.json_capacity());
        serde_json::to_writer(
            &mut out,
            &Review {
                api_version,
                kind: KIND,
                metadata: Empty {},
                spec: Empty {},
                status: Status {
                    authenticated: true,
                    user: User {
                        username: &self.username,
                        uid: &self.uid,
                        groups: &self.groups,
                        extra: self.identity.as_deref().map(Extra::of),
                    },
                },
            },
        )?;
        Ok(out)
    }

    /// Room for the JSON answer: its fixed text (about 330 bytes), the strings, and a
    /// quarter more for escapes.
    fn json_capacity(&self) -> usize {
        let groups: usize = self.groups.iter().map(|g| g.len() + 3).sum();
        let extra = self.identity.as_deref().map_or(0, |id| {
            id.access_key_id.len()
                + id.arn.len()
                + id.canonical_arn.len()
                + 2 * id.user_id.len()
                + id.session_name.len()
        });
        let strings = self.username.len() + self.uid.len() + groups + extra;
        512 + strings + strings / 4
    }
}

/// [`TokenReview`](super::review::TokenReview), borrowed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Review<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: Empty,
    spec: Empty,
    status: Status<'a>,
}

/// `{}`.
#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Status<'a> {
    authenticated: bool,
    user: User<'a>,
}

/// [`UserInfo`], borrowed; the same fields left out when empty.
#[derive(Serialize)]
struct User<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    username: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    uid: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    extra: Option<Extra<'a>>,
}

/// Upstream's six `extra` keys, each a one-element list, in the order a sorted map
/// (Go's `json.Marshal`, our `BTreeMap`) writes them.
#[derive(Serialize)]
struct Extra<'a> {
    #[serde(rename = "accessKeyId")]
    access_key_id: [&'a str; 1],
    arn: [&'a str; 1],
    #[serde(rename = "canonicalArn")]
    canonical_arn: [&'a str; 1],
    #[serde(rename = "principalId")]
    principal_id: [&'a str; 1],
    /// Present even when empty, as upstream.
    #[serde(rename = "sessionName")]
    session_name: [&'a str; 1],
    #[serde(rename = "sigs.k8s.io/aws-iam-authenticator/principalId")]
    k8s_principal_id: [&'a str; 1],
}

impl<'a> Extra<'a> {
    fn of(id: &'a Identity) -> Self {
        Self {
            access_key_id: [&id.access_key_id],
            arn: [&id.arn],
            canonical_arn: [&id.canonical_arn],
            principal_id: [&id.user_id],
            session_name: [&id.session_name],
            k8s_principal_id: [&id.user_id],
        }
    }

    fn entries(&self) -> [(&'static str, &'a str); 6] {
        [
            ("accessKeyId", self.access_key_id[0]),
            ("arn", self.arn[0]),
            ("canonicalArn", self.canonical_arn[0]),
            ("principalId", self.principal_id[0]),
            ("sessionName", self.session_name[0]),
            (
                "sigs.k8s.io/aws-iam-authenticator/principalId",
                self.k8s_principal_id[0],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::review::{TokenReview, V1, V1BETA1};
    use super::*;

    fn identity() -> Arc<Identity> {
        Arc::new(Identity {
            arn: "arn:aws:sts::111122223333:assumed-role/Admin/alice<&>".into(),
            canonical_arn: "arn:aws:iam::111122223333:role/Admin".into(),
            account_id: "111122223333".into(),
            user_id: "AROAEXAMPLE:alice".into(),
            session_name: "alice\"quoted\"".into(),
            access_key_id: "ASIAEXAMPLE".into(),
            sts_endpoint: "sts.us-west-2.amazonaws.com".into(),
        })
    }

    #[test]
    fn same_bytes_as_the_owned_token_review() {
        let users = [
            MappedUser {
                username: "admin:alice".into(),
                groups: vec!["system:masters".into(), "ops".into()],
            },
            MappedUser {
                username: "alice".into(),
                groups: vec![],
            },
            MappedUser {
                username: String::new(),
                groups: vec![],
            },
        ];
        for user in users {
            for loggable in [true, false] {
                for version in [V1, V1BETA1] {
                    let accepted = Accepted::new(&identity(), user.clone(), loggable);
                    let owned =
                        serde_json::to_vec(&TokenReview::allowed(version, accepted.user_info()))
                            .unwrap();
                    let json = accepted.to_json(version).unwrap();
                    // Written without regrowing, with room for the newline.
                    assert_eq!(json.capacity(), accepted.json_capacity());
                    assert!(json.len() < json.capacity(), "{}", json.len());
                    assert_eq!(
                        String::from_utf8(json).unwrap(),
                        String::from_utf8(owned).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn scrubbed_accounts_get_no_extra_and_an_administrative_uid() {
        let user = MappedUser {
            username: "root".into(),
            groups: vec!["g".into()],
        };
        let a = Accepted::new(&identity(), user.clone(), false);
        assert_eq!(a.uid, "aws-iam-authenticator:administrative:root");
        assert!(a.user_info().extra.is_empty());
        let a = Accepted::new(&identity(), user, true);
        assert_eq!(
            a.uid,
            "aws-iam-authenticator:111122223333:AROAEXAMPLE:alice"
        );
        let extra = a.user_info().extra;
        assert_eq!(extra.len(), 6);
        assert_eq!(extra["sessionName"], ["alice\"quoted\""]);
        assert_eq!(
            extra["sigs.k8s.io/aws-iam-authenticator/principalId"],
            ["AROAEXAMPLE:alice"]
        );
    }
}
