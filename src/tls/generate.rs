//! A new self-signed certificate and key, in upstream's shape.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SanType, SerialNumber,
};

use super::{COMMON_NAME, Error, KeyPair, LIFETIME, pem_encode, provider};

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
