//! The rustls configurations of the webhook: its server's, and a client's that pins its
//! certificate.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use super::{Error, KeyPair, provider};

/// The rustls server configuration for the webhook listener: the ring provider,
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
