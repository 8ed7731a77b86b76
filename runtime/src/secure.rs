//! The locked door: each node of a graph holds a certificate signed by the graph's CA,
//! every link is mutual TLS, and each node's zenoh access control obeys only the peers whose
//! certificate names the right role (`configs/zenoh/secure.json5`: only `controller` may
//! command the arm, only `policy` may publish actions and answer `policy/infer`, only
//! `client` may ask it; a certificate of the CA with another name may do nothing).
//!
//! [`make_certs`] is `loho certs`: a CA (kept to sign nodes added later) and a key and
//! certificate per node; [`Secure`] points a node's session at its own. docs/security.md
//! has the threat model.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use thiserror::Error;

/// The zenoh configuration of a secured node, before its certificate files are filled in.
pub const SECURE_ZENOH_CONFIG: &str = include_str!("../../configs/zenoh/secure.json5");

/// The identities `loho certs` makes by default: the common names the access control
/// knows (`observer` is a tool that may read everything and command nothing).
pub const NODES: &[&str] = &[
    "sim",
    "controller",
    "policy",
    "heightmap",
    "driver",
    "client",
    "observer",
];

/// Names a node's certificate is valid for when none are given: this machine.
pub const LOCAL_NAMES: &[&str] = &["localhost", "127.0.0.1"];

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";

/// Why a secured node ignores `estop` false: every node of the graph may publish on
/// `estop` (to stop the arm), and the access control cannot tell a release from a stop.
pub const RELEASE_IGNORED: &str = "under --secure an e-stop is released only by restarting \
     the controller and the arm node: any node may publish on estop, and the access control \
     cannot tell a release from a stop";

#[derive(Debug, Error)]
pub enum SecureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("{0:?} is not a node name (letters, digits, '-' and '_')")]
    Name(String),
    #[error(
        "no certificate for {identity:?} in {dir} (make one with `loho certs --out {dir} --node {identity}`)"
    )]
    Missing { dir: PathBuf, identity: String },
}

/// A node's place behind the door: the folder `loho certs` wrote and the identity (common
/// name) whose key and certificate it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secure {
    pub dir: PathBuf,
    pub identity: String,
}

impl Secure {
    /// The CA, certificate and key files of this identity, checked to exist.
    pub fn files(&self) -> Result<[PathBuf; 3], SecureError> {
        let files = [
            self.dir.join(CA_CERT),
            self.dir.join(format!("{}.pem", self.identity)),
            self.dir.join(format!("{}.key", self.identity)),
        ];
        if files.iter().any(|f| !f.is_file()) {
            return Err(SecureError::Missing {
                dir: self.dir.clone(),
                identity: self.identity.clone(),
            });
        }
        Ok(files)
    }
}

fn write(path: &Path, text: &str) -> Result<(), SecureError> {
    let io = |source| SecureError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, text).map_err(io)?;
    if path.extension().is_some_and(|e| e == "key") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, SecureError> {
    std::fs::read_to_string(path).map_err(|source| SecureError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a key and certificate for every one of `nodes` into `dir`, valid for the host
/// names or addresses `hosts`, signed by the CA in `dir` (made first if `dir` has none).
/// Returns the files written.
pub fn make_certs(
    dir: &Path,
    nodes: &[String],
    hosts: &[String],
) -> Result<Vec<PathBuf>, SecureError> {
    if let Some(bad) = nodes.iter().find(|n| {
        n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    }) {
        return Err(SecureError::Name(bad.clone()));
    }
    std::fs::create_dir_all(dir).map_err(|source| SecureError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    let (ca_cert, ca_key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    let (ca, ca_pair) = if ca_cert.is_file() && ca_key.is_file() {
        let pair = KeyPair::from_pem(&read(&ca_key)?)?;
        // The same name and key as the CA on file: what it signs, that CA verifies.
        (
            CertificateParams::from_ca_cert_pem(&read(&ca_cert)?)?.self_signed(&pair)?,
            pair,
        )
    } else {
        let pair = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "loho graph CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&pair)?;
        write(&ca_cert, &ca.pem())?;
        write(&ca_key, &pair.serialize_pem())?;
        written.extend([ca_cert, ca_key]);
        (ca, pair)
    };
    for node in nodes {
        let pair = KeyPair::generate()?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name.push(DnType::CommonName, node);
        // A node both listens (server) and connects (client).
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // `CertificateParams::new` reads an address as a DNS name; rustls checks an
        // endpoint's address against IP names.
        for san in &mut params.subject_alt_names {
            if let SanType::DnsName(name) = san {
                if let Ok(ip) = name.as_str().parse() {
                    *san = SanType::IpAddress(ip);
                }
            }
        }
        let cert = params.signed_by(&pair, &ca, &ca_pair)?;
        let (pem, key) = (
            dir.join(format!("{node}.pem")),
            dir.join(format!("{node}.key")),
        );
        write(&pem, &cert.pem())?;
        write(&key, &pair.serialize_pem())?;
        written.extend([pem, key]);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bus, BusConfig, BusError};

    #[test]
    fn bad_names_missing_certificates_and_plain_endpoints_are_named() {
        let dir = std::env::temp_dir().join(format!("loho-secure-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let local: Vec<String> = LOCAL_NAMES.iter().map(|s| s.to_string()).collect();
        let bad = make_certs(&dir, &["../policy".into()], &local).unwrap_err();
        assert!(
            matches!(bad, SecureError::Name(ref n) if n == "../policy"),
            "{bad}"
        );
        assert!(
            !dir.join("ca.pem").exists(),
            "nothing is written for a bad name"
        );

        let written = make_certs(&dir, &["policy".into()], &local).unwrap();
        assert_eq!(
            written.len(),
            4,
            "CA certificate and key, node certificate and key"
        );
        let open = |identity: &str, endpoint: &str| {
            Bus::open(&BusConfig {
                listen: vec![endpoint.into()],
                secure: Some(Secure {
                    dir: dir.clone(),
                    identity: identity.into(),
                }),
                ..Default::default()
            })
        };
        match open("controller", "tls/127.0.0.1:0") {
            Err(BusError::Secure(e @ SecureError::Missing { .. })) => {
                assert!(e.to_string().contains("loho certs --out"), "{e}")
            }
            other => panic!("expected a missing certificate, got {:?}", other.err()),
        }
        match open("policy", "tcp/127.0.0.1:0") {
            Err(BusError::Endpoint { reason, .. }) => assert!(reason.contains("tls/"), "{reason}"),
            other => panic!("expected a plain endpoint refused, got {:?}", other.err()),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
