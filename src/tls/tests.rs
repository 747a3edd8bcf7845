use super::*;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::fs;
use std::net::IpAddr;
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
    let (replaced, created) = load_or_create(dir.path(), "localhost", "127.0.0.1", true).unwrap();
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
