//! The Kubernetes client shared by the EKSConfigMap and CRD backends and by `add`.
//!
//! Built the way upstream's `clientcmd.BuildConfigFromFlags` builds it: a kubeconfig
//! file and/or an API server URL when given (the URL overrides the kubeconfig's
//! server), the in-cluster service account otherwise.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kubeconfig file could not be read or used.
    #[error("invalid kubeconfig {path:?}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The default kubeconfig (`$KUBECONFIG`, `~/.kube/config`) could not be used.
    #[error("invalid default kubeconfig: {0}")]
    DefaultKubeconfig(String),
    /// `--master` is not a URL.
    #[error("invalid master url {url:?}: {message}")]
    MasterUrl {
        /// The URL given.
        url: String,
        /// The parser's message.
        message: String,
    },
    /// Neither flags nor the in-cluster service account give a configuration.
    #[error("no kubeconfig or master url given, and not running in a cluster: {0}")]
    InCluster(String),
    /// The client could not be built from the configuration (TLS material etc.).
    #[error("cannot build a kubernetes client: {0}")]
    Client(String),
}

/// Where the API server is and how to authenticate to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// A kubeconfig file (`--kubeconfig`).
    pub kubeconfig: Option<PathBuf>,
    /// The API server URL (`--master`, `--master-url`); overrides the kubeconfig's server.
    pub master: Option<String>,
    /// The kubeconfig context (`--kubeconfig-context`); the current context when `None`.
    pub context: Option<String>,
    /// Without a kubeconfig or master: look for the default kubeconfig (`$KUBECONFIG`,
    /// `~/.kube/config`) first and the in-cluster configuration second, as kubectl does
    /// (for commands an operator runs). Otherwise only the in-cluster configuration.
    pub prefer_default_kubeconfig: bool,
}

impl ClientOptions {
    /// Options from the server's `--kubeconfig`/`--master`.
    pub fn new(kubeconfig: Option<&Path>, master: Option<&str>) -> Self {
        Self {
            kubeconfig: kubeconfig
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf),
            master: master.filter(|m| !m.is_empty()).map(str::to_owned),
            context: None,
            prefer_default_kubeconfig: false,
        }
    }
}

/// The client configuration for `options`.
pub async fn config(options: &ClientOptions) -> Result<kube::Config, Error> {
    let master = options
        .master
        .as_deref()
        .map(|url| {
            url.parse::<http::Uri>().map_err(|e| Error::MasterUrl {
                url: url.to_owned(),
                message: e.to_string(),
            })
        })
        .transpose()?;
    let kube_options = KubeConfigOptions {
        context: options.context.clone(),
        ..Default::default()
    };
    let mut config = match (&options.kubeconfig, &master) {
        (Some(path), _) => {
            let bad = |message: String| Error::Kubeconfig {
                path: path.clone(),
                message,
            };
            let file = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &kube_options)
                .await
                .map_err(|e| bad(e.to_string()))?
        }
        // client-go with only a master URL: that server, no credentials.
        (None, Some(url)) => kube::Config::new(url.clone()),
        (None, None) if options.prefer_default_kubeconfig => {
            match kube::Config::from_kubeconfig(&kube_options).await {
                Ok(c) => c,
                Err(kubeconfig_error) => kube::Config::incluster().map_err(|e| {
                    Error::DefaultKubeconfig(format!(
                        "{kubeconfig_error}; and not running in a cluster: {e}"
                    ))
                })?,
            }
        }
        (None, None) => kube::Config::incluster().map_err(|e| Error::InCluster(e.to_string()))?,
    };
    if let Some(url) = master {
        config.cluster_url = url;
    }
    Ok(config)
}

/// A client for `options`.
// upstream: the Kubernetes backends ask for protobuf (`application/vnd.kubernetes.protobuf`);
// we speak JSON, because kube-rs only does JSON and these few small objects gain nothing
// from protobuf.
pub async fn client(options: &ClientOptions) -> Result<kube::Client, Error> {
    let config = config(options).await?;
    crate::tls::install_default_provider();
    kube::Client::try_from(config).map_err(|e| Error::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn master_overrides_kubeconfig_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: ns\ncurrent-context: x\nusers:\n- name: u\n  user:\n    token: abc\n",
        )
        .unwrap();
        let c = config(&ClientOptions::new(Some(&path), None))
            .await
            .unwrap();
        assert_eq!(c.cluster_url.to_string(), "https://10.0.0.1:6443/");
        assert_eq!(c.default_namespace, "ns");
        let c = config(&ClientOptions::new(
            Some(&path),
            Some("http://127.0.0.1:8080"),
        ))
        .await
        .unwrap();
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.1:8080/");
    }

    #[tokio::test]
    async fn errors_name_the_input() {
        let e = config(&ClientOptions::new(
            Some(Path::new("/nonexistent/kubeconfig")),
            None,
        ))
        .await
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/kubeconfig"), "{e}");
        let e = config(&ClientOptions::new(None, Some("http://[bad")))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("http://[bad"), "{e}");
        let c = config(&ClientOptions::new(None, Some("http://127.0.0.1:1")))
            .await
            .unwrap();
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.1:1/");
    }
}
