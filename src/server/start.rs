//! The webhook put together from a resolved [`ServerConfig`]: the mapper chain, the key
//! pair, the STS verifier behind the identity cache, the handler and its metrics, the
//! listeners, and the webhook kubeconfig. [`bind`] returns it listening; [`Bound::run`]
//! serves until shutdown.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::key_pair::{self, Policy};
use super::{
    App, Authenticate, CacheConfig, CacheMetrics, DenyStatus, Error, IdentityCache, ListenerConfig,
    Server, TokenVerifier, WebhookMetrics,
};
use crate::config::types::BackendMode;
use crate::config::{Limits, ServerConfig, StsOptions};
use crate::kubeconfig;
use crate::mapper::chain::Chain;
use crate::mapper::file::ConfigSource;
use crate::metrics::{self, Registry};
use crate::sts::{self, StsMetrics};
use crate::tls::{self, KeyPair};
use crate::token::verify::Verifier;

/// Everything the webhook needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The resolved configuration.
    pub config: ServerConfig,
    /// The config file to follow for mapping changes, with the flags that override it.
    pub config_file: Option<ConfigSource>,
    /// The identity cache's sizing.
    pub cache: CacheConfig,
    /// Longest wait for one STS answer.
    pub sts_timeout: Duration,
    /// After shutdown begins, how long open requests may take.
    pub grace: Duration,
}

/// The webhook, listening and with its kubeconfig written, not yet serving.
#[derive(Debug)]
pub struct Bound {
    server: Server,
    grace: Duration,
}

/// Builds the webhook from `settings`, opens its listeners and writes the webhook
/// kubeconfig (unless it is pregenerated).
pub async fn bind(settings: Settings) -> Result<Bound, Error> {
    let Settings {
        config,
        config_file,
        cache,
        sts_timeout,
        grace,
    } = settings;
    // One registry for `/metrics`: the process collector at its root, every component's
    // metrics under upstream's prefix, each registered by the component that counts them.
    let mut registry = metrics::registry();
    super::process::register(&mut registry);
    let prefixed = metrics::prefixed(&mut registry);
    let chain = Chain::build(&config, config_file, prefixed).await?;
    log_mappings(&config, &chain);

    let policy = Policy::of(&config);
    let pair = tokio::task::spawn_blocking(move || key_pair::key_pair(&policy)).await??;
    let tls_config = tls::server_config(&pair).map_err(Error::Certificate)?;
    let verifier = verifier(&config, cache, sts_timeout, prefixed).await?;
    let deny = if config.deny_with_forbidden {
        DenyStatus::Forbidden
    } else {
        DenyStatus::Ok
    };
    let app = App::new(
        Authenticate::new(
            verifier,
            Arc::new(chain),
            config.scrubbed_accounts.iter().cloned(),
        )
        .with_deny_status(deny)
        .with_metrics(WebhookMetrics::register(prefixed)),
    )
    .with_registry(Arc::new(registry));

    let address = bind_address(&config.address, config.port).await?;
    let server = Server::bind(
        address,
        Some(config.health_address),
        tls_config,
        app,
        listener_config(&config.limits),
    )
    .await?;
    write_kubeconfig(&config, pair, server.local_addr().port()).await?;
    announce(&server, &config.generate_kubeconfig);
    Ok(Bound { server, grace })
}

impl Bound {
    /// The TLS listener's address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The health listener's address.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.server.health_addr()
    }

    /// Serves until `shutdown` is cancelled, then drains for the grace period. Returns
    /// whether every connection closed within it.
    pub async fn run(self, shutdown: CancellationToken) -> bool {
        let drained = self.server.run(shutdown, self.grace).await;
        tracing::info!(drained, "server stopped");
        drained
    }
}

/// STS's verifier behind the identity cache, each registering its metrics on `registry`.
async fn verifier(
    config: &ServerConfig,
    cache: CacheConfig,
    timeout: Duration,
    registry: &mut Registry,
) -> Result<Arc<dyn TokenVerifier>, Error> {
    // The server, not a client built in-process, follows the proxy variables.
    let sts_options = StsOptions {
        proxy: crate::https::proxy::ProxyEnv::from_env(),
        ..config.sts.clone()
    };
    let sts = sts::Client::with_timeouts(
        &sts_options,
        sts::DEFAULT_CONNECT_TIMEOUT.min(timeout),
        timeout,
        StsMetrics::register(registry),
    )
    .map_err(Error::Sts)?;
    let region = sts::instance_region().await;
    let verifier = Verifier::new(config.cluster_id.clone(), config.partition, region, sts);
    let cache = IdentityCache::new(Arc::new(verifier), cache)
        .with_metrics(CacheMetrics::register(registry));
    Ok(Arc::new(cache))
}

/// The listener limits the configuration sets; the rest are the listener's defaults.
fn listener_config(limits: &Limits) -> ListenerConfig {
    ListenerConfig {
        header_read_timeout: limits.read_header_timeout,
        max_connections: limits.max_connections,
        max_connections_per_peer: limits.max_connections_per_client,
        idle_timeout: limits.idle_timeout,
        request_timeout: limits.request_timeout,
        ..ListenerConfig::default()
    }
}

/// The socket address for `--address` (an IP literal, bracketed or not, or a host name)
/// and `--port`.
async fn bind_address(address: &str, port: u16) -> Result<SocketAddr, Error> {
    let host = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| Error::Resolve {
            address: address.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| Error::NoAddress(address.to_owned()))
}

/// Writes the webhook kubeconfig naming `bound_port`, unless it is pregenerated.
async fn write_kubeconfig(
    config: &ServerConfig,
    pair: KeyPair,
    bound_port: u16,
) -> Result<(), Error> {
    if config.kubeconfig_pregenerated {
        tracing::info!(
            kubeconfigPath = %config.generate_kubeconfig.display(),
            "using the pregenerated webhook kubeconfig"
        );
        return Ok(());
    }
    // upstream: server.go writes the kubeconfig before listening, with the configured
    // port even when it is 0; we write it once bound, naming the port the kernel
    // picked, so a `--port 0` server (tests, several on one host) is reachable from it.
    let port = if config.port == 0 {
        bound_port
    } else {
        config.port
    };
    let url = kubeconfig::server_url(&config.hostname, port);
    let path = config.generate_kubeconfig.clone();
    let state_dir = config.state_dir.clone();
    tokio::task::spawn_blocking(move || {
        kubeconfig::write_webhook_locked(&state_dir, &path, &pair, &url)
    })
    .await?
    .map_err(Error::Kubeconfig)?;
    Ok(())
}

/// The startup lines operators and scripts look for.
fn announce(server: &Server, kubeconfig: &Path) {
    let local = server.local_addr();
    tracing::info!(address = %local, "listening on {local}");
    if let Some(health) = server.health_addr() {
        tracing::info!(address = %health, "serving health checks on {health}");
    }
    tracing::info!(
        "reconfigure your apiserver with `--authentication-token-webhook-config-file={}` to enable (assuming default hostPath mounts)",
        kubeconfig.display()
    );
}

/// Upstream logs the MountedFile mappings at startup; we log how many there are (the
/// entries themselves can be long and are in the config file).
fn log_mappings(config: &ServerConfig, chain: &Chain) {
    let modes: Vec<&str> = chain.modes().iter().map(|m| m.name()).collect();
    tracing::info!(backendModes = ?modes, "mapper chain started");
    if config.backend_modes.contains(&BackendMode::MountedFile) {
        tracing::info!(
            mapRoles = config.role_mappings.len(),
            mapUsers = config.user_mappings.len(),
            mapAccounts = config.account_mappings.len(),
            "MountedFile mappings configured"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_address_takes_ip_literals_bracketed_or_not() {
        for (address, want) in [
            ("127.0.0.1", "127.0.0.1:8443"),
            ("::1", "[::1]:8443"),
            ("[::1]", "[::1]:8443"),
        ] {
            assert_eq!(
                bind_address(address, 8443).await.unwrap(),
                want.parse::<SocketAddr>().unwrap(),
                "{address}"
            );
        }
        assert!(
            bind_address("localhost", 1)
                .await
                .unwrap()
                .ip()
                .is_loopback()
        );
    }

    #[test]
    fn listener_config_takes_the_configured_limits() {
        let limits = Limits {
            read_header_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(4),
            request_timeout: Duration::from_secs(5),
            max_connections: 6,
            max_connections_per_client: 7,
        };
        let l = listener_config(&limits);
        assert_eq!(l.header_read_timeout, Duration::from_secs(3));
        assert_eq!(l.idle_timeout, Duration::from_secs(4));
        assert_eq!(l.request_timeout, Duration::from_secs(5));
        assert_eq!(l.max_connections, 6);
        assert_eq!(l.max_connections_per_peer, 7);
    }
}
