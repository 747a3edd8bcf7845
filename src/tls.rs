//! The webhook's key pair in the state dir (`cert.pem`, `key.pem`) and the rustls server
//! configuration built from it.
//!
//! A pair that exists and is valid is always kept byte for byte: the running
//! kube-apiserver trusts exactly that certificate (it is the CA in the webhook
//! kubeconfig), so replacing it would lock the apiserver out until it is restarted.
//! Pairs written by the upstream Go tool (RSA, PKCS#1 `RSA PRIVATE KEY`) load and serve
//! as they are; new pairs are ECDSA P-256.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::fsutil;

/// File name of the certificate in the state dir.
pub const CERT_FILE: &str = "cert.pem";
/// File name of the private key in the state dir.
pub const KEY_FILE: &str = "key.pem";
/// Mode of `cert.pem`: the certificate is public.
pub const CERT_MODE: u32 = 0o644;
/// Mode of `key.pem`: only its owner (the server's uid) may read it.
pub const KEY_MODE: u32 = 0o600;
/// Common name of generated certificates (upstream's).
pub const COMMON_NAME: &str = "aws-iam-authenticator";
/// Lifetime of generated certificates: upstream's 100 × 365 days.
pub const LIFETIME: time::Duration = time::Duration::days(100 * 365);

/// Errors of this module; each names the file or the directory concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("could not read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The files exist but are not a usable, matching certificate and key.
    #[error("invalid key pair in {dir}: {reason}")]
    Invalid {
        /// The state dir.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The pair is missing and creating one was not allowed.
    #[error("no key pair in {dir} ({CERT_FILE} and {KEY_FILE})")]
    Missing {
        /// The state dir.
        dir: PathBuf,
    },
    /// Certificate generation failed.
    #[error("could not generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The system's random source failed.
    #[error("could not get random bytes for the serial number")]
    Random,
    /// Opening, reading or writing a file in the state dir failed, or it is not what it
    /// should be (a link, not a regular file).
    #[error(transparent)]
    File(#[from] fsutil::Error),
    /// The PEM text is not a certificate and private key.
    #[error("invalid key pair: {0}")]
    Pem(String),
    /// rustls refused the pair.
    #[error("invalid key pair: {0}")]
    Tls(#[from] rustls::Error),
}

/// A certificate and its private key, both PEM text exactly as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// `cert.pem`: one or more `CERTIFICATE` blocks, the first being the server's.
    pub cert_pem: String,
    /// `key.pem`: a PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
    /// (`EC PRIVATE KEY`) key.
    pub key_pem: String,
}

impl std::fmt::Debug for KeyPair {
    // The private key never goes to a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl KeyPair {
    /// The certificates of `cert_pem`, DER-encoded, the server's first.
    pub fn cert_chain(&self) -> Result<Vec<CertificateDer<'static>>, Error> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Pem(format!("{CERT_FILE}: {e}")))?;
        if chain.is_empty() {
            return Err(Error::Pem(format!("{CERT_FILE}: no CERTIFICATE block")));
        }
        Ok(chain)
    }

    /// The server's certificate (the first of `cert_pem`), DER-encoded.
    pub fn cert_der(&self) -> Result<CertificateDer<'static>, Error> {
        self.cert_chain()?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Pem(format!("{CERT_FILE}: no CERTIFICATE block")))
    }

    /// The server's certificate as canonical PEM (64-column base64, `\n` line ends):
    /// what upstream base64-encodes into the webhook kubeconfig.
    pub fn cert_pem_canonical(&self) -> Result<String, Error> {
        Ok(pem_encode("CERTIFICATE", &self.cert_der()?))
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, Error> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| Error::Pem(format!("{KEY_FILE}: {e}")))
    }

    /// Checks that the certificate parses, the key loads, and the two belong together.
    pub fn certified_key(&self) -> Result<CertifiedKey, Error> {
        let provider = provider();
        let certified = CertifiedKey::from_der(self.cert_chain()?, self.private_key()?, &provider)?;
        // `from_der` tolerates keys that can't report their public half; we don't.
        certified.keys_match()?;
        Ok(certified)
    }
}

/// The one crypto provider this crate uses.
fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Encodes `der` as a PEM block the way Go's `pem.Encode` does.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so any 64-byte chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Loads `cert.pem` and `key.pem` from `state_dir`.
///
/// `Ok(None)` when either file is missing (as upstream: then both are regenerated);
/// `Err(Error::Invalid)` when both exist but are not a valid, matching pair.
///
/// This only reads, so it follows links as any reader does: the server with
/// `--kubeconfig-pregenerated` may read a pair it never writes from a Kubernetes Secret
/// volume, whose files are links. Whatever may write the state dir uses
/// [`load_or_create`], which follows none.
pub fn load(state_dir: &Path) -> Result<Option<KeyPair>, Error> {
    let cert_path = state_dir.join(CERT_FILE);
    let key_path = state_dir.join(KEY_FILE);
    let (Some(cert_pem), Some(key_pem)) = (read_optional(&cert_path)?, read_optional(&key_path)?)
    else {
        return Ok(None);
    };
    let pair = KeyPair { cert_pem, key_pem };
    pair.certified_key().map_err(|e| Error::Invalid {
        dir: state_dir.to_owned(),
        reason: e.to_string(),
    })?;
    tracing::info!(
        certPath = %cert_path.display(),
        keyPath = %key_path.display(),
        "loaded existing keypair"
    );
    Ok(Some(pair))
}

/// Generates a self-signed certificate and key for the webhook.
///
/// Subject alternative names as upstream: an IP SAN for `address` unless it is the
/// unspecified address; `hostname` as an IP SAN when it is an IP literal different from
/// `address`, else as a DNS SAN.
pub fn generate(hostname: &str, address: &str) -> Result<KeyPair, Error> {
    tracing::info!(address, hostname, "Creating certificate with address");
    // upstream: certs.go generates RSA-2048 (PKCS#1); we generate ECDSA P-256 because it is
    // as widely supported, far faster to create and to handshake with, and smaller.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, COMMON_NAME);
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + LIFETIME;
    params.serial_number = Some(random_serial()?);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.subject_alt_names = subject_alt_names(hostname, address)?;

    let cert = params.self_signed(&key)?;
    let pair = KeyPair {
        cert_pem: pem_encode("CERTIFICATE", cert.der()),
        key_pem: key.serialize_pem(),
    };
    tracing::info!(
        certBytes = cert.der().len(),
        keyBytes = key.serialized_der().len(),
        "generated a new private key and certificate"
    );
    Ok(pair)
}

/// Parses an IP literal, also in URL brackets (`[::1]`).
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s)
        .parse()
        .ok()
}

fn subject_alt_names(hostname: &str, address: &str) -> Result<Vec<SanType>, Error> {
    let mut sans = Vec::new();
    // upstream: certs.go adds net.ParseIP(address) even when it is not an IP literal,
    // which yields an empty IP SAN; we leave a non-IP address out.
    let addr_ip = parse_ip(address);
    if let Some(ip) = addr_ip.filter(|ip| !ip.is_unspecified()) {
        sans.push(SanType::IpAddress(ip));
    }
    match parse_ip(hostname) {
        Some(ip) if Some(ip) == addr_ip => {}
        Some(ip) => sans.push(SanType::IpAddress(ip)),
        None if hostname.is_empty() => {}
        None => sans.push(SanType::DnsName(hostname.try_into()?)),
    }
    Ok(sans)
}

/// A random, positive 128-bit serial number, as upstream.
fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Error::Random)?;
    // DER integers are signed: clear the top bit so the serial stays positive, and make
    // sure it is never zero.
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// What to correct on the files of a pair that is kept, and give the files of a new one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixFiles {
    /// The owner `key.pem` must have (left as it is when `None`).
    pub key_owner: Option<fsutil::Owner>,
}

/// Writes `pair` into `dir`, each file atomically.
///
/// `cert.pem` is the commit point: an old one goes first, the new key follows, the new
/// certificate last. So whenever `cert.pem` exists, `key.pem` holds its key, whatever
/// the moment a crash stops this; an interrupted run leaves at worst a key without a
/// certificate, which the next run replaces.
pub fn save_in(
    dir: &fsutil::Dir,
    pair: &KeyPair,
    key_owner: Option<fsutil::Owner>,
) -> Result<(), Error> {
    tracing::info!(
        certPath = %dir.join(CERT_FILE).display(),
        keyPath = %dir.join(KEY_FILE).display(),
        "saving new key and certificate"
    );
    dir.remove(CERT_FILE)?;
    dir.sync()?;
    dir.write_atomic(KEY_FILE, pair.key_pem.as_bytes(), KEY_MODE, key_owner)?;
    dir.write_atomic(CERT_FILE, pair.cert_pem.as_bytes(), CERT_MODE, None)?;
    Ok(())
}

/// Loads the pair from `state_dir`, or creates it there.
///
/// A valid pair is kept untouched (`false`: not created). A missing or invalid one is
/// replaced by a new pair when `create` is true (`true`: created); otherwise that is an
/// error. Returns the pair in use.
///
/// Unlike [`load`], this may write into `state_dir`, so it holds the directory's lock
/// and follows no link: `state_dir` itself, `cert.pem` and `key.pem` must be what they
/// claim to be (see [`load_or_create_in`]).
pub fn load_or_create(
    state_dir: &Path,
    hostname: &str,
    address: &str,
    create: bool,
) -> Result<(KeyPair, bool), Error> {
    let dir = fsutil::Dir::open(state_dir)?;
    let _lock = dir.lock()?;
    load_or_create_in(&dir, hostname, address, create, None)
}

/// [`load_or_create`] in an open `dir`, whose lock the caller holds.
///
/// `cert.pem` and `key.pem` are opened without following links and must be regular
/// files: a link or anything else there is an error naming the file, never followed,
/// replaced or changed. With `fix`, a kept pair's modes (and the key's owner) are
/// corrected on the descriptors that were read, and a new key is created with that owner.
pub fn load_or_create_in(
    dir: &fsutil::Dir,
    hostname: &str,
    address: &str,
    create: bool,
    fix: Option<FixFiles>,
) -> Result<(KeyPair, bool), Error> {
    let key = dir.read(KEY_FILE)?;
    let cert = dir.read(CERT_FILE)?;
    match (key, cert) {
        (Some((key_file, key_pem)), Some((cert_file, cert_pem))) => {
            let pair = KeyPair {
                cert_pem: String::from_utf8_lossy(&cert_pem).into_owned(),
                key_pem: String::from_utf8_lossy(&key_pem).into_owned(),
            };
            match pair.certified_key() {
                Ok(_) => {
                    tracing::info!(
                        certPath = %dir.join(CERT_FILE).display(),
                        keyPath = %dir.join(KEY_FILE).display(),
                        "loaded existing keypair"
                    );
                    if let Some(fix) = fix {
                        dir.fix(KEY_FILE, &key_file, KEY_MODE, fix.key_owner)?;
                        dir.fix(CERT_FILE, &cert_file, CERT_MODE, None)?;
                    }
                    return Ok((pair, false));
                }
                Err(e) => {
                    let e = Error::Invalid {
                        dir: dir.path().to_owned(),
                        reason: e.to_string(),
                    };
                    if !create {
                        return Err(e);
                    }
                    // upstream: certs.go fails on a corrupt pair; we replace it, because a
                    // half-written or damaged key would otherwise stop the node's webhook
                    // for good.
                    tracing::warn!(error = %e, "replacing invalid key pair");
                }
            }
        }
        _ if !create => {
            return Err(Error::Missing {
                dir: dir.path().to_owned(),
            });
        }
        _ => {}
    }
    let pair = generate(hostname, address)?;
    save_in(dir, &pair, fix.and_then(|f| f.key_owner))?;
    Ok((pair, true))
}

/// The rustls server configuration for the webhook listener: the aws-lc-rs provider,
/// TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, no client certificates.
pub fn server_config(pair: &KeyPair) -> Result<Arc<rustls::ServerConfig>, Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(pair.cert_chain()?, pair.private_key()?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A rustls client configuration that trusts exactly the certificate(s) in `ca_pem`,
/// as the kube-apiserver trusts the webhook through the kubeconfig's
/// `certificate-authority-data`.
///
/// The webhook's certificate is self-signed and marked as a CA (upstream's shape), and
/// WebPKI refuses a CA certificate as a server's own (`CaUsedAsEndEntity`), where Go's
/// verifier accepts it. So the certificate is pinned: the server must present one of
/// these certificates, byte for byte, and prove it holds the key; the handshake's
/// signatures are checked as usual. For clients of the webhook: tests, probes, tools.
pub fn pinned_client_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, Error> {
    let pinned = KeyPair {
        cert_pem: ca_pem.to_owned(),
        key_pem: String::new(),
    }
    .cert_chain()?;
    let provider = Arc::new(provider());
    let verifier = Arc::new(PinnedVerifier {
        pinned,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts exactly the pinned certificates (see [`pinned_client_config`]).
#[derive(Debug)]
struct PinnedVerifier {
    pinned: Vec<CertificateDer<'static>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn sans(pair: &KeyPair) -> (Vec<String>, Vec<IpAddr>) {
        let der = pair.cert_der().unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => dns.push((*n).to_owned()),
                GeneralName::IPAddress(b) => ips.push(match b.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()),
                    _ => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()),
                }),
                other => panic!("unexpected SAN {other:?}"),
            }
        }
        (dns, ips)
    }

    #[test]
    fn generated_certificate_has_upstreams_shape() {
        let pair = generate("localhost", "127.0.0.1").unwrap();
        assert!(pair.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        pair.certified_key().unwrap();
        let der = pair.cert_der().unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert!(cert.basic_constraints().unwrap().unwrap().value.ca);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.digital_signature() && ku.key_encipherment());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let life = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert!(life >= 36_499 * 86_400, "{life}");
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), COMMON_NAME);
        assert_eq!(cert.issuer(), cert.subject());
        assert_eq!(
            sans(&pair),
            (
                vec!["localhost".to_owned()],
                vec!["127.0.0.1".parse().unwrap()]
            )
        );
        // Serials are random and positive.
        let other = generate("localhost", "127.0.0.1").unwrap();
        let other_der = other.cert_der().unwrap();
        let (_, other_cert) = X509Certificate::from_der(&other_der).unwrap();
        assert_ne!(other_cert.raw_serial(), cert.raw_serial());
        assert!(cert.raw_serial()[0] < 0x80);
    }

    #[test]
    fn subject_alt_names_follow_upstream_rules() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Unspecified address: no address SAN.
        let p = generate("example.com", "0.0.0.0").unwrap();
        assert_eq!(sans(&p), (vec!["example.com".to_owned()], vec![]));
        // Hostname an IP equal to the address: one SAN only.
        let p = generate("10.0.0.1", "10.0.0.1").unwrap();
        assert_eq!(sans(&p), (vec![], vec![ip("10.0.0.1")]));
        // Hostname a different IP: two IP SANs.
        let p = generate("10.0.0.2", "10.0.0.1").unwrap();
        assert_eq!(sans(&p), (vec![], vec![ip("10.0.0.1"), ip("10.0.0.2")]));
        // IPv6, bracketed or not.
        let p = generate("[::1]", "::").unwrap();
        assert_eq!(sans(&p), (vec![], vec![ip("::1")]));
    }

    #[test]
    fn load_or_create_keeps_valid_and_replaces_invalid_pairs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        assert!(matches!(
            load_or_create(dir.path(), "localhost", "127.0.0.1", false),
            Err(Error::Missing { .. })
        ));
        let (first, created) = load_or_create(dir.path(), "localhost", "127.0.0.1", true).unwrap();
        assert!(created);
        let mode = |f: &str| {
            fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(mode(CERT_FILE), 0o644);
        let (again, created) = load_or_create(dir.path(), "other", "10.0.0.1", true).unwrap();
        assert!(!created);
        assert_eq!(again, first);

        // A key from another pair does not match the certificate.
        let stranger = generate("localhost", "127.0.0.1").unwrap();
        fs::write(dir.path().join(KEY_FILE), &stranger.key_pem).unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
        assert!(matches!(
            load_or_create(dir.path(), "localhost", "127.0.0.1", false),
            Err(Error::Invalid { .. })
        ));
        let (replaced, created) =
            load_or_create(dir.path(), "localhost", "127.0.0.1", true).unwrap();
        assert!(created);
        assert_ne!(replaced, first);
        assert_eq!(load(dir.path()).unwrap().unwrap(), replaced);

        // Garbage is invalid too.
        fs::write(dir.path().join(CERT_FILE), "not a certificate").unwrap();
        assert!(matches!(load(dir.path()), Err(Error::Invalid { .. })));
    }

    #[test]
    fn creating_follows_no_link_but_reading_does() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let (pair, _) = load_or_create(&real, "localhost", "127.0.0.1", true).unwrap();
        // A state dir whose files are links (a Secret volume's are): read-only loading
        // follows them, the creating path refuses them, naming the file.
        let links = dir.path().join("links");
        fs::create_dir(&links).unwrap();
        for f in [CERT_FILE, KEY_FILE] {
            std::os::unix::fs::symlink(real.join(f), links.join(f)).unwrap();
        }
        assert_eq!(load(&links).unwrap().unwrap(), pair);
        let err = load_or_create(&links, "localhost", "127.0.0.1", true).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}/key.pem is a symbolic link", links.display())),
            "{err}"
        );
        // So is a state dir that is a link.
        let dir_link = dir.path().join("dir-link");
        std::os::unix::fs::symlink(&real, &dir_link).unwrap();
        assert_eq!(load(&dir_link).unwrap().unwrap(), pair);
        let err = load_or_create(&dir_link, "localhost", "127.0.0.1", true).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{} is a symbolic link", dir_link.display())),
            "{err}"
        );
    }

    #[test]
    fn cert_pem_is_written_last_and_an_orphan_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let d = fsutil::Dir::open(dir.path()).unwrap();
        // A certificate without its key (a pair interrupted by an older version, or
        // damaged): replaced, never left beside a key it doesn't match.
        let stranger = generate("localhost", "127.0.0.1").unwrap();
        fs::write(dir.path().join(CERT_FILE), &stranger.cert_pem).unwrap();
        let (pair, created) = load_or_create_in(&d, "localhost", "127.0.0.1", true, None).unwrap();
        assert!(created);
        assert_ne!(pair.cert_pem, stranger.cert_pem);
        assert_eq!(load(dir.path()).unwrap().unwrap(), pair);
    }

    #[test]
    fn server_config_offers_h2_and_http11() {
        let pair = generate("localhost", "127.0.0.1").unwrap();
        let config = server_config(&pair).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn pem_encoding_matches_go() {
        let der: Vec<u8> = (0u8..=99).collect();
        let pem = pem_encode("CERTIFICATE", &der);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        assert!(pem.ends_with("-----\n"));
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), der.as_slice());
    }
}
