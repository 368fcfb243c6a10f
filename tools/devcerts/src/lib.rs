//! Throw-away certificates for running the mesh with mTLS in development
//! and tests: a CA that lives only in memory and leaf certificates it signs.
//! Never use these in production: the CA key is not kept, every run makes a
//! new one, and anyone holding a leaf key is that service.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

/// The identities of the three services and of a read-only ledger auditor;
/// each certificate carries its name as a DNS subjectAltName, which is what
/// the allowlists match.
pub const SERVICES: [&str; 4] = [
    "pecr-ledger-writer",
    "pecr-gateway",
    "pecr-controller",
    "pecr-auditor",
];

/// Extra names on every service certificate, so `https://localhost:…` and
/// `https://127.0.0.1:…` verify without a server-name override.
pub const LOCAL_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// How long a development certificate is valid.
const VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Back-dating, so a slightly slow clock elsewhere still accepts them.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// A PEM certificate and its PEM (PKCS#8) private key.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// An in-memory certificate authority.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl DevCa {
    /// A new self-signed CA whose subject CN is `name`.
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params);
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem,
        })
    }

    /// The CA certificate (what servers and clients are told to trust).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for `identity` (its subject CN and first DNS name) plus
    /// `extra_names` (DNS names or IP addresses), valid both as a server and
    /// as a client certificate, since each service has one identity.
    pub fn issue(&self, identity: &str, extra_names: &[&str]) -> Result<Issued, rcgen::Error> {
        let names: Vec<String> = std::iter::once(identity)
            .chain(extra_names.iter().copied())
            .map(str::to_owned)
            .collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, identity);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn set_validity(params: &mut CertificateParams) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let at = |secs: u64| {
        OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    };
    params.not_before = at(now.saturating_sub(CLOCK_SKEW.as_secs()));
    params.not_after = at(now.saturating_add(VALIDITY.as_secs()));
}

/// The files [`write_mesh`] creates.
pub struct MeshFiles {
    pub ca: PathBuf,
    /// (service, certificate, key) per entry of [`SERVICES`].
    pub services: Vec<(&'static str, PathBuf, PathBuf)>,
}

/// Writes a new CA (`ca.pem`) and `<service>.pem` / `<service>.key` for
/// every service into `dir`, replacing what was there. Keys are written
/// owner-only on Unix.
pub fn write_mesh(dir: &Path) -> Result<MeshFiles, String> {
    std::fs::create_dir_all(dir).map_err(|err| format!("create {}: {err}", dir.display()))?;
    let ca = DevCa::new("PECR throw-away development CA").map_err(|err| format!("CA: {err}"))?;
    let ca_path = dir.join("ca.pem");
    write_file(&ca_path, ca.cert_pem(), false)?;
    let mut services = Vec::new();
    for service in SERVICES {
        let issued = ca
            .issue(service, &LOCAL_NAMES)
            .map_err(|err| format!("{service}: {err}"))?;
        let cert = dir.join(format!("{service}.pem"));
        let key = dir.join(format!("{service}.key"));
        write_file(&cert, &issued.cert_pem, false)?;
        write_file(&key, &issued.key_pem, true)?;
        services.push((service, cert, key));
    }
    Ok(MeshFiles {
        ca: ca_path,
        services,
    })
}

fn write_file(path: &Path, text: &str, private: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(path)
        .map_err(|err| format!("write {}: {err}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|err| format!("write {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_pem_certificates_and_keys() {
        let ca = DevCa::new("test CA").expect("CA");
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let issued = ca.issue("pecr-gateway", &LOCAL_NAMES).expect("issue");
        assert!(issued.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn writes_one_pair_per_service() {
        let dir = std::env::temp_dir().join(format!("pecr-devcerts-{}", std::process::id()));
        let files = write_mesh(&dir).expect("write");
        assert!(files.ca.exists());
        assert_eq!(files.services.len(), SERVICES.len());
        for (_, cert, key) in &files.services {
            assert!(cert.exists() && key.exists());
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
