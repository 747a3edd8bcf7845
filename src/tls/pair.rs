//! A certificate and its key as PEM text, and what rustls makes of them.

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{CERT_FILE, Error, KEY_FILE, provider};

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

    pub(super) fn private_key(&self) -> Result<PrivateKeyDer<'static>, Error> {
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
