//! `aws-iam-authenticator`: log in to Kubernetes with an AWS IAM identity.
//!
//! One binary plays every part. The client side (`token`) presigns an STS
//! `GetCallerIdentity` request and hands it to kubectl as an ExecCredential. The
//! server side (`server`) is the kube-apiserver's TokenReview webhook: it checks the
//! presigned URL, lets STS say who signed it, maps the IAM ARN to a Kubernetes user
//! and answers. `init` and `talos-init` prepare the webhook's key pair and
//! kubeconfig once per node (the latter is the Talos system extension's entrypoint).
//!
//! # Module map
//!
//! | module        | concern                                                                 |
//! |---------------|-------------------------------------------------------------------------|
//! | [`cli`]       | one file per subcommand: flags → calls into the library (`token` is the `client` feature's) |
//! | [`config`]    | the upstream config file (case-insensitive keys) and its typed mappings |
//! | [`config::layer`] | one setting: flag > environment > config file > default (pure)   |
//! | [`credentials`]| AWS credentials: the server's chain (env, profile keys, web identity, container, IMDSv2), our STS AssumeRole; `token`'s SDK chain, MFA, `--cache` (`client`) |
//! | [`token`]     | the `k8s-aws-v1.` token: generate, validate (pure), verify via STS      |
//! | [`aws`]       | partitions, regions, STS hosts and the host allow-list (pure, a leaf)   |
//! | [`sts`]       | GetCallerIdentity: pooled HTTPS client, answers, STS metrics            |
//! | [`arn`]       | ARN parsing, canonicalisation and `ArnLike` matching (pure)             |
//! | [`go`]        | Go's `net/url`, `time.Parse`, durations, base64 and `%q` as upstream uses them |
//! | [`identity`]  | the verified caller: ARN, account, user id, session name                |
//! | [`explain`]   | `explain`: the chain's traced decision for one identity, as text or JSON |
//! | [`validate`]  | `validate`: findings on a config file, DynamicFile or aws-auth, by the server's parsers |
//! | [`mapper`]    | the `Mapper` trait, the backend chain and its backends                  |
//! | [`mapper::table`] | the lookup table every backend answers from (pure; keys per ARN kind)|
//! | [`mapper::trace`] | what the chain tried for one identity (`explain`; off for the server) |
//! | [`mapper::watch`] | following a file (config file, DynamicFile, backend-mode file)     |
//! | [`mapper::kube_watch`] | the list-and-watch loop of the Kubernetes backends (pure reducers) |
//! | [`mapper::published`] | the snapshot a following backend answers from, swapped whole |
//! | [`mapper::configmap`] | aws-auth: parse and edit (pure), follow it and add to it through the API |
//! | [`mapper::crd`] | IAMIdentityMapping: the resource, its reducer (pure), its status writer |
//! | [`server`]    | TLS and health listeners, `/authenticate`, `/healthz`, `/metrics`       |
//! | [`server::start`] | the webhook from a resolved config: chain, key pair, STS, listeners |
//! | [`metrics`]   | the `/metrics` registry; each component registers its own handles       |
//! | [`tls`]       | the webhook key pair in the state dir; rustls configs                   |
//! | [`kubeconfig`]| the webhook kubeconfig the apiserver reads                              |
//! | [`init`]      | idempotent, atomic creation of cert, key, kubeconfig and config         |
//! | [`talos`]     | the Talos extension entrypoint: environment → `init` arguments → exec   |
//! | [`k8s`]       | the Kubernetes client (one per chain for ConfigMap and CRD; `add`)      |
//! | [`ec2`]       | `{{EC2PrivateDNSName}}`: cached, batched, rate-limited DescribeInstances|
//! | [`https`]     | the pooled HTTPS client of outbound calls: roots, CA file, timeouts     |
//! | [`https::proxy`] | the proxy variables, and CONNECT tunnels through the proxy they name |
//! | [`https::form`] | AWS Query API form POSTs (SigV4-signed or not) and their bounded exchange |
//! | [`fsutil`]    | safe file writes: atomic, exclusive temp files, no links followed       |
//! | [`error`]     | an error and its causes on one line                                     |
//! | [`shutdown`]  | SIGTERM/SIGINT: drain once, exit at the second signal                   |
//! | [`logging`]   | `tracing` to stderr, text or JSON; the server's lines written in batches |
//!
//! # Request flow (`POST /authenticate`)
//!
//! ```text
//! TokenReview JSON ─▶ parse (bounded body) ─▶ token::validate (pure: size, prefix, base64,
//!   https, STS host allow-list, path, parameter allow-list, duplicates, signed headers, expiry)
//!   ─▶ identity cache (hash of the token; coalesced) ─▶ sts::Client GET of the token's own URL
//!   with x-k8s-aws-id = our cluster ID ─▶ arn::canonicalize ─▶ mapper::Chain (in backend-mode
//!   order) ─▶ templates, reserved prefixes ─▶ TokenReview status: allowed, or denied with a reason
//! ```
//!
//! Nothing a client sends can produce a 500: a refused token is a 200 review with
//! `authenticated: false`, a malformed request a 400/405/408/413; only STS itself failing
//! gives the 429/500/504 answers kube-apiserver retries (see [`server::outcome`]).

pub mod arn;
pub mod aws;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod ec2;
pub mod error;
pub mod explain;
pub mod fsutil;
pub mod go;
pub mod https;
pub mod identity;
pub mod init;
pub mod k8s;
pub mod kubeconfig;
pub mod logging;
pub mod mapper;
pub mod metrics;
pub mod server;
pub mod shutdown;
pub mod sts;
pub mod talos;
pub mod tls;
pub mod token;
pub mod validate;

/// The version stamped into the binary: Cargo.toml's, the one source of truth.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the binary was built from (`AWS_IAM_AUTHENTICATOR_COMMIT` at build time), or
/// empty when unknown: unset and set-but-empty alike, as upstream's never-stamped
/// `CommitID` is empty.
pub const COMMIT: &str = match option_env!("AWS_IAM_AUTHENTICATOR_COMMIT") {
    Some(c) => c,
    None => "",
};
