//! The answer to an accepted review: the `status.user` of a mapped identity, written
//! straight from the identity and the mapping (no `extra` map of copied strings, no
//! owned [`TokenReview`](super::review::TokenReview) built only to be serialised).
//!
//! The bytes are those of [`TokenReview::allowed`](super::review::TokenReview::allowed)
//! with the same [`UserInfo`]: the tests below compare the two.

use std::sync::Arc;

use crate::go::json::{self, Escape};
use crate::identity::Identity;
use crate::mapper::chain::MappedUser;

use super::review::{KIND, UserInfo};

/// The `status.user.uid` of a mapped identity: `aws-iam-authenticator:<account>:<user
/// id>`, or for a scrubbed (not loggable) account `aws-iam-authenticator:administrative:<username>`.
pub fn uid(id: &Identity, username: &str, loggable: bool) -> String {
    // Pushed rather than `format!`ed: one allocation of the right size, every review.
    let parts: [&str; 3] = if loggable {
        [&id.account_id, ":", &id.user_id]
    } else {
        ["administrative", ":", username]
    };
    let prefix = "aws-iam-authenticator:";
    let mut uid =
        String::with_capacity(prefix.len() + parts.iter().map(|p| p.len()).sum::<usize>());
    uid.push_str(prefix);
    for part in parts {
        uid.push_str(part);
    }
    uid
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
    ///
    /// Written by hand rather than by serde_json: the answer is a few fixed keys around
    /// strings, and escaping those a word at a time ([`json`]) took most of the answer's
    /// cost off a cached review. `same_bytes_as_the_owned_token_review` (below) holds the
    /// bytes to serde_json's for the owned [`TokenReview`](super::review::TokenReview).
    pub fn to_json(&self, api_version: &str) -> Vec<u8> {
        // Sized once from the strings it carries: no copy as it grows.
        let mut out = String::with_capacity(self.json_capacity());
        out.push_str(r#"{"apiVersion":"#);
        json::push_str(&mut out, api_version, Escape::Minimal);
        out.push_str(r#","kind":"#);
        json::push_str(&mut out, KIND, Escape::Minimal);
        out.push_str(r#","metadata":{},"spec":{},"status":{"authenticated":true,"user":{"#);
        // `UserInfo`'s fields, each left out when empty.
        let mut first = true;
        let mut key = |out: &mut String, key: &str| {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
            json::push_str(out, key, Escape::Minimal);
            out.push(':');
        };
        if !self.username.is_empty() {
            key(&mut out, "username");
            json::push_str(&mut out, &self.username, Escape::Minimal);
        }
        if !self.uid.is_empty() {
            key(&mut out, "uid");
            json::push_str(&mut out, &self.uid, Escape::Minimal);
        }
        if !self.groups.is_empty() {
            key(&mut out, "groups");
            push_list(&mut out, self.groups.iter().map(String::as_str));
        }
        if let Some(id) = self.identity.as_deref() {
            key(&mut out, "extra");
            out.push('{');
            for (i, (name, value)) in Extra::of(id).entries().into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::push_str(&mut out, name, Escape::Minimal);
                out.push(':');
                push_list(&mut out, [value]);
            }
            out.push('}');
        }
        out.push_str("}}}");
        out.into_bytes()
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

/// `["a","b"]`.
fn push_list<'a>(out: &mut String, items: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::push_str(out, item, Escape::Minimal);
    }
    out.push(']');
}

/// Upstream's six `extra` keys, each a one-element list, in the order a sorted map
/// (Go's `json.Marshal`, our `BTreeMap`) writes them.
struct Extra<'a> {
    access_key_id: &'a str,
    arn: &'a str,
    canonical_arn: &'a str,
    principal_id: &'a str,
    /// Present even when empty, as upstream.
    session_name: &'a str,
}

impl<'a> Extra<'a> {
    fn of(id: &'a Identity) -> Self {
        Self {
            access_key_id: &id.access_key_id,
            arn: &id.arn,
            canonical_arn: &id.canonical_arn,
            principal_id: &id.user_id,
            session_name: &id.session_name,
        }
    }

    fn entries(&self) -> [(&'static str, &'a str); 6] {
        [
            ("accessKeyId", self.access_key_id),
            ("arn", self.arn),
            ("canonicalArn", self.canonical_arn),
            ("principalId", self.principal_id),
            ("sessionName", self.session_name),
            (
                "sigs.k8s.io/aws-iam-authenticator/principalId",
                self.principal_id,
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
                    let json = accepted.to_json(version);
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

    proptest::proptest! {
        /// Any strings, escaped or not, make serde_json's bytes.
        #[test]
        fn any_strings_make_the_owned_bytes(
            username in ".{0,12}",
            groups in proptest::collection::vec(".{0,8}", 0..3),
            arn in ".{0,20}",
            session in "[\\x00-\\x1f\"\\\\<>&\u{2028}a-z\u{e9}]{0,12}",
            loggable: bool,
        ) {
            let id = Arc::new(Identity {
                arn: arn.clone(),
                canonical_arn: arn,
                session_name: session,
                ..Identity::clone(&identity())
            });
            let accepted = Accepted::new(&id, MappedUser { username, groups }, loggable);
            let owned = serde_json::to_vec(&TokenReview::allowed(V1, accepted.user_info())).unwrap();
            proptest::prop_assert_eq!(
                String::from_utf8(accepted.to_json(V1)).unwrap(),
                String::from_utf8(owned).unwrap()
            );
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
