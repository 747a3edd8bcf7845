//! The production verifier and mapper behind the handler's traits: the STS
//! [`crate::token::verify::Verifier`] and the mapper [`Chain`].

use crate::identity::Identity;
use crate::mapper::chain::Chain;
use crate::token::verify::Verifier;
use crate::token::{Token, VerifyError};

use super::authenticate::{BoxFuture, IdentityMapper, MappedUser, TokenVerifier, Verified};

impl TokenVerifier for Verifier {
    fn verify<'a>(&'a self, token: &'a Token) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        Box::pin(async move {
            // The pure checks first: a malformed token never reaches STS, and their
            // result says how long an answer may be cached.
            let validated = self.validate(token.expose())?;
            let identity = self.verify_validated(&validated).await?;
            Ok(Verified {
                identity: identity.into(),
                expires_at: validated.expires_at,
            })
        })
    }
}

impl IdentityMapper for Chain {
    fn map<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, Result<MappedUser, String>> {
        Box::pin(async move {
            Chain::map(self, identity)
                .await
                .map_err(|denied| denied.reason)
        })
    }

    fn is_ready(&self) -> bool {
        Chain::is_ready(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::BackendMode;
    use crate::mapper::{IdentityMapping, MapError, Mapper};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    #[derive(Debug)]
    struct One;

    impl Mapper for One {
        fn mode(&self) -> BackendMode {
            BackendMode::MountedFile
        }
        fn map(&self, identity: &Identity) -> Result<IdentityMapping, MapError> {
            if identity.canonical_arn == "arn:aws:iam::123456789012:role/Admin" {
                Ok(IdentityMapping {
                    key: identity.canonical_arn.clone(),
                    username: "admin:{{SessionName}}".into(),
                    groups: vec!["system:masters".into()],
                })
            } else {
                Err(MapError::NotMapped)
            }
        }
        fn is_account_allowed(&self, _account: &str) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn chain_behind_the_trait() {
        let chain = Chain::from_mappers(vec![Arc::new(One)], BTreeMap::new(), None);
        let mapper: Arc<dyn IdentityMapper> = Arc::new(chain);
        assert!(mapper.is_ready());
        let mut id = Identity {
            canonical_arn: "arn:aws:iam::123456789012:role/Admin".into(),
            account_id: "123456789012".into(),
            session_name: "alice".into(),
            ..Identity::default()
        };
        let user = mapper.map(&id).await.unwrap();
        assert_eq!(user.username, "admin:alice");
        assert_eq!(user.groups, ["system:masters"]);
        id.canonical_arn = "arn:aws:iam::123456789012:role/Other".into();
        assert_eq!(mapper.map(&id).await.unwrap_err(), "identity is not mapped");
    }
}
