//! `{{EC2PrivateDNSName}}`: the private DNS name of the EC2 instance whose id is the
//! role session name.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::ServerConfig;

/// A boxed future, for the object-safe lookup trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Looks up an instance's private DNS name.
pub trait PrivateDnsLookup: Send + Sync + std::fmt::Debug {
    /// The private DNS name of `instance_id`, or why it is not known.
    fn private_dns_name<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// The lookup the server uses, built from the server configuration.
pub async fn from_config(
    _config: &ServerConfig,
) -> Result<Option<Arc<dyn PrivateDnsLookup>>, String> {
    Ok(None)
}
