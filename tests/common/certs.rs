//! Reading the certificates the binary writes.

use std::net::IpAddr;

use aws_iam_authenticator::tls::KeyPair;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A certificate's subject alternative names in their order, as `DNS:<name>` and
/// `IP:<address>`.
pub fn sans(cert_pem: &str) -> Vec<String> {
    let pair = KeyPair {
        cert_pem: cert_pem.to_owned(),
        key_pem: String::new(),
    };
    let der = pair.cert_der().unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(b) => format!("IP:{}", ip(b)),
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

/// A certificate's DNS names and IP addresses, apart.
pub fn dns_and_ips(cert_pem: &str) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for san in sans(cert_pem) {
        match san.split_once(':') {
            Some(("DNS", d)) => dns.push(d.to_owned()),
            Some(("IP", a)) => ips.push(a.parse().unwrap()),
            _ => unreachable!("{san}"),
        }
    }
    (dns, ips)
}

fn ip(octets: &[u8]) -> IpAddr {
    match octets.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(octets).unwrap()),
        16 => IpAddr::from(<[u8; 16]>::try_from(octets).unwrap()),
        n => panic!("an IP SAN of {n} bytes"),
    }
}
