//! Mesh TLS settings, read at start-up.
//!
//! Server side, for a service's gRPC port ([`ServerTls`]): `PECR_TLS_CERT`
//! and `PECR_TLS_KEY` turn TLS on; `PECR_TLS_CLIENT_CA` then requires every
//! client to present a certificate that CA signed, and
//! `PECR_TLS_ALLOWED_CLIENTS` names the identities that may call the
//! service's own RPCs (health and reflection are open to any client the CA
//! vouches for).
//!
//! Client side, for calls to other services ([`ClientTls`]): an `https://`
//! upstream URL is called over TLS, trusting `PECR_TLS_CA` (else the system
//! roots) and presenting `PECR_TLS_CLIENT_CERT` / `PECR_TLS_CLIENT_KEY`;
//! `<UPSTREAM>_TLS_SERVER_NAME` overrides the name checked on the server's
//! certificate (default: the URL's host).
//!
//! Every file is read and checked here, so a missing or bad one stops
//! start-up with `ERR_INVALID_CONFIG` before anything is served.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pecr_config::{ConfigReader, StartupError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// The variable names, shared by every service.
pub mod env {
    /// PEM certificate chain of this service's gRPC port.
    pub const CERT: &str = "PECR_TLS_CERT";
    /// PEM private key of [`CERT`].
    pub const KEY: &str = "PECR_TLS_KEY";
    /// PEM CA bundle; set, clients must present a certificate it signed.
    pub const CLIENT_CA: &str = "PECR_TLS_CLIENT_CA";
    /// Comma-separated client identities allowed to call the service, or `*`.
    pub const ALLOWED_CLIENTS: &str = "PECR_TLS_ALLOWED_CLIENTS";
    /// PEM CA bundle trusted for `https://` upstreams (default: system roots).
    pub const CA: &str = "PECR_TLS_CA";
    /// PEM client certificate chain presented to `https://` upstreams.
    pub const CLIENT_CERT: &str = "PECR_TLS_CLIENT_CERT";
    /// PEM private key of [`CLIENT_CERT`].
    pub const CLIENT_KEY: &str = "PECR_TLS_CLIENT_KEY";
}

/// A TLS handshake that takes longer than this is dropped, so a client
/// that stalls mid-handshake does not hold a slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which client certificates may call a service's own RPCs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedClients {
    /// Any certificate the client CA signed.
    Any,
    /// Certificates naming one of these identities as a DNS subjectAltName.
    Only(Vec<String>),
}

impl AllowedClients {
    pub fn only(names: &[&str]) -> Self {
        Self::Only(names.iter().map(|name| (*name).to_owned()).collect())
    }

    /// `*`, or identities separated by commas; each must be a DNS name.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim() == "*" {
            return Ok(Self::Any);
        }
        let names: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Err("lists no identity (use * to accept any certificate the CA signed)".into());
        }
        for name in &names {
            if !matches!(
                ServerName::try_from(name.as_str()),
                Ok(ServerName::DnsName(_))
            ) {
                return Err(format!("{name:?} is not a DNS name"));
            }
        }
        Ok(Self::Only(names))
    }
}

impl std::fmt::Display for AllowedClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Only(names) => f.write_str(&names.join(",")),
        }
    }
}

/// A PEM file read at start-up; `Debug` shows only the path.
#[derive(Clone)]
struct PemFile {
    path: PathBuf,
    pem: Arc<[u8]>,
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

#[derive(Clone, Copy)]
enum PemKind {
    Certificates,
    PrivateKey,
}

/// Reads `key`'s file and checks it holds what `kind` says; a bad file is
/// recorded on `reader` and yields None.
fn read_pem(reader: &mut ConfigReader<'_>, key: &str, kind: PemKind) -> Option<PemFile> {
    let path = PathBuf::from(reader.raw(key)?);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) => {
            reader.push_error(StartupError::invalid(format!(
                "{key}: cannot read {}: {err}",
                path.display()
            )));
            return None;
        }
    };
    let problem = match kind {
        PemKind::Certificates => {
            match CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>() {
                Ok(certs) if certs.is_empty() => Some("holds no PEM certificate".to_owned()),
                Ok(_) => None,
                Err(err) => Some(format!("is not a PEM certificate file ({err})")),
            }
        }
        PemKind::PrivateKey => PrivateKeyDer::from_pem_slice(&bytes)
            .err()
            .map(|err| format!("holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {err}")),
    };
    if let Some(problem) = problem {
        reader.push_error(StartupError::invalid(format!(
            "{key}: {} {problem}",
            path.display()
        )));
        return None;
    }
    Some(PemFile {
        path,
        pem: bytes.into(),
    })
}

/// Both of a certificate/key pair or neither; one alone is an error.
fn read_pair(
    reader: &mut ConfigReader<'_>,
    cert_key: &str,
    key_key: &str,
) -> Option<(PemFile, PemFile)> {
    match (reader.raw(cert_key), reader.raw(key_key)) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            let cert = read_pem(reader, cert_key, PemKind::Certificates);
            let key = read_pem(reader, key_key, PemKind::PrivateKey);
            cert.zip(key)
        }
        _ => {
            reader.push_error(StartupError::invalid(format!(
                "{cert_key} and {key_key} must be set together"
            )));
            None
        }
    }
}

fn identity((cert, key): &(PemFile, PemFile)) -> Identity {
    Identity::from_pem(&cert.pem, &key.pem)
}

/// An error and its causes on one line (transport errors hide the useful
/// part, such as a key that does not match its certificate, in a source).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// TLS on a service's gRPC port.
#[derive(Clone)]
pub struct ServerTls {
    pair: (PemFile, PemFile),
    client_ca: Option<PemFile>,
    /// Set exactly when client certificates are required.
    clients: Option<AllowedClients>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.pair.0)
            .field("key", &"<redacted>")
            .field("client_ca", &self.client_ca)
            .field("clients", &self.clients)
            .finish()
    }
}

impl ServerTls {
    /// Reads the server-side variables; None when `PECR_TLS_CERT` and
    /// `PECR_TLS_KEY` are unset (plaintext gRPC, as without this feature).
    /// `default_clients` applies when `PECR_TLS_CLIENT_CA` is set and
    /// `PECR_TLS_ALLOWED_CLIENTS` is not.
    pub fn read(reader: &mut ConfigReader<'_>, default_clients: AllowedClients) -> Option<Self> {
        let allowed = reader.raw(env::ALLOWED_CLIENTS).and_then(|text| {
            AllowedClients::parse(&text)
                .map_err(|err| {
                    reader.push_error(StartupError::invalid(format!(
                        "{}: {err}",
                        env::ALLOWED_CLIENTS
                    )));
                })
                .ok()
        });
        let has_pair = reader.raw(env::CERT).is_some() || reader.raw(env::KEY).is_some();
        let has_client_ca = reader.raw(env::CLIENT_CA).is_some();
        if !has_pair {
            if has_client_ca || reader.raw(env::ALLOWED_CLIENTS).is_some() {
                reader.push_error(StartupError::invalid(format!(
                    "{} and {} need {} and {} (the server's own certificate)",
                    env::CLIENT_CA,
                    env::ALLOWED_CLIENTS,
                    env::CERT,
                    env::KEY
                )));
            }
            return None;
        }
        let pair = read_pair(reader, env::CERT, env::KEY);
        let client_ca = read_pem(reader, env::CLIENT_CA, PemKind::Certificates);
        if !has_client_ca && reader.raw(env::ALLOWED_CLIENTS).is_some() {
            reader.push_error(StartupError::invalid(format!(
                "{} needs {}: without a client CA no client presents a certificate",
                env::ALLOWED_CLIENTS,
                env::CLIENT_CA
            )));
        }
        let tls = Self {
            pair: pair?,
            clients: client_ca
                .as_ref()
                .map(|_| allowed.unwrap_or(default_clients)),
            client_ca,
        };
        if has_client_ca && tls.client_ca.is_none() {
            return None;
        }
        // Building the rustls configuration now catches a key that does not
        // match its certificate, or a CA bundle rustls cannot use.
        if let Err(err) = tonic::transport::Server::builder().tls_config(tls.tonic_config()) {
            reader.push_error(StartupError::invalid(format!(
                "{} / {} / {}: {}",
                env::CERT,
                env::KEY,
                env::CLIENT_CA,
                error_chain(&err)
            )));
            return None;
        }
        Some(tls)
    }

    pub(crate) fn tonic_config(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new()
            .identity(identity(&self.pair))
            .timeout(HANDSHAKE_TIMEOUT);
        match &self.client_ca {
            Some(ca) => config.client_ca_root(Certificate::from_pem(&ca.pem)),
            None => config,
        }
    }

    /// The identities allowed to call, when client certificates are required.
    pub fn allowed_clients(&self) -> Option<&AllowedClients> {
        self.clients.as_ref()
    }
}

/// TLS towards other services: one CA to trust and one client identity per
/// service, plus per-upstream server-name overrides.
#[derive(Clone, Default)]
pub struct ClientTls {
    ca: Option<PemFile>,
    pair: Option<(PemFile, PemFile)>,
    /// (URL variable, server name to verify instead of the URL's host).
    server_names: Vec<(String, String)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca)
            .field("cert", &self.pair.as_ref().map(|pair| &pair.0))
            .field("server_names", &self.server_names)
            .finish()
    }
}

impl ClientTls {
    /// Reads the client-side variables. `upstreams` pairs each upstream URL
    /// variable with its server-name override variable, e.g.
    /// `("PECR_LEDGER_URL", "PECR_LEDGER_TLS_SERVER_NAME")`.
    pub fn read(reader: &mut ConfigReader<'_>, upstreams: &[(&str, &str)]) -> Self {
        let ca = read_pem(reader, env::CA, PemKind::Certificates);
        let pair = read_pair(reader, env::CLIENT_CERT, env::CLIENT_KEY);
        let mut server_names = Vec::new();
        for (url_key, name_key) in upstreams {
            let Some(name) = reader.raw(name_key) else {
                continue;
            };
            if ServerName::try_from(name.as_str()).is_err() {
                reader.push_error(StartupError::invalid(format!(
                    "{name_key} must be a DNS name or an IP address (got {name:?})"
                )));
                continue;
            }
            server_names.push(((*url_key).to_owned(), name));
        }
        Self {
            ca,
            pair,
            server_names,
        }
    }

    /// True when any client-side TLS setting is present.
    pub fn is_configured(&self) -> bool {
        self.ca.is_some() || self.pair.is_some()
    }

    /// True when calls to `url` go over TLS presenting a client certificate.
    pub fn presents_certificate(&self, url: &str) -> bool {
        self.pair.is_some() && url.trim_start().starts_with("https://")
    }

    fn server_name(&self, key: &str) -> Option<&str> {
        self.server_names
            .iter()
            .find(|(url_key, _)| url_key == key)
            .map(|(_, name)| name.as_str())
    }

    /// The endpoint for `url` (the value of `key`): plaintext for `http://`,
    /// TLS with these settings for `https://`.
    pub fn endpoint(&self, key: &str, url: &str) -> Result<Endpoint, StartupError> {
        let endpoint = crate::endpoint(key, url)?;
        if endpoint.uri().scheme_str() != Some("https") {
            if self.server_name(key).is_some() {
                return Err(StartupError::invalid(format!(
                    "a TLS server name is set for {key}, but {key} is not an https:// URL ({url})"
                )));
            }
            return Ok(endpoint);
        }
        let mut config = match &self.ca {
            Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        if let Some(pair) = &self.pair {
            config = config.identity(identity(pair));
        }
        if let Some(name) = self.server_name(key) {
            config = config.domain_name(name);
        }
        endpoint.tls_config(config).map_err(|err| {
            StartupError::invalid(format!(
                "{key}: cannot set up TLS for {url}: {}{}",
                error_chain(&err),
                if self.ca.is_none() {
                    format!(" (set {} to the CA that signed the server)", env::CA)
                } else {
                    String::new()
                }
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pecr_config::MapSource;

    struct Files {
        dir: PathBuf,
    }

    impl Files {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("pecr-tls-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Self { dir }
        }

        fn write(&self, name: &str, text: &str) -> String {
            let path = self.dir.join(name);
            std::fs::write(&path, text).expect("write");
            path.display().to_string()
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn read_server(
        pairs: &[(&str, String)],
    ) -> Result<Option<ServerTls>, pecr_config::StartupErrors> {
        let source = MapSource::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        let mut reader = ConfigReader::new(&source);
        let tls = ServerTls::read(&mut reader, AllowedClients::only(&["pecr-gateway"]));
        reader.finish().map(|()| tls)
    }

    fn codes(result: Result<Option<ServerTls>, pecr_config::StartupErrors>) -> Vec<String> {
        result
            .err()
            .map(|errors| {
                errors
                    .0
                    .into_iter()
                    .map(|e| format!("{}: {}", e.code, e.message))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn unset_means_plaintext() {
        assert!(matches!(read_server(&[]), Ok(None)));
    }

    #[test]
    fn a_valid_pair_and_ca_require_client_certificates() {
        let files = Files::new("valid");
        let ca = pecr_devcerts::DevCa::new("test CA").expect("CA");
        let issued = ca
            .issue("pecr-ledger-writer", &["localhost"])
            .expect("issue");
        let env = [
            (env::CERT, files.write("cert.pem", &issued.cert_pem)),
            (env::KEY, files.write("key.pem", &issued.key_pem)),
            (env::CLIENT_CA, files.write("ca.pem", ca.cert_pem())),
        ];
        let tls = read_server(&env).expect("valid").expect("TLS on");
        assert_eq!(
            tls.allowed_clients(),
            Some(&AllowedClients::only(&["pecr-gateway"]))
        );
        let mut with_list = env.to_vec();
        with_list.push((env::ALLOWED_CLIENTS, "*".into()));
        let tls = read_server(&with_list).expect("valid").expect("TLS on");
        assert_eq!(tls.allowed_clients(), Some(&AllowedClients::Any));
        // Without a client CA nobody is asked for a certificate.
        let tls = read_server(&env[..2]).expect("valid").expect("TLS on");
        assert_eq!(tls.allowed_clients(), None);
    }

    #[test]
    fn bad_files_and_half_settings_are_invalid_config() {
        let files = Files::new("bad");
        let ca = pecr_devcerts::DevCa::new("test CA").expect("CA");
        let issued = ca.issue("pecr-gateway", &[]).expect("issue");
        let other = ca.issue("pecr-controller", &[]).expect("issue");
        let cert = files.write("cert.pem", &issued.cert_pem);
        let key = files.write("key.pem", &issued.key_pem);
        let cases: Vec<Vec<(&str, String)>> = vec![
            vec![(env::CERT, cert.clone())],
            vec![(env::CLIENT_CA, cert.clone())],
            vec![
                (env::CERT, cert.clone()),
                (env::KEY, "/nonexistent/key.pem".into()),
            ],
            vec![
                (env::CERT, files.write("junk.pem", "not pem")),
                (env::KEY, key.clone()),
            ],
            vec![(env::CERT, cert.clone()), (env::KEY, cert.clone())],
            vec![
                (env::CERT, cert.clone()),
                (env::KEY, files.write("other.key", &other.key_pem)),
            ],
            vec![
                (env::CERT, cert.clone()),
                (env::KEY, key.clone()),
                (env::ALLOWED_CLIENTS, "pecr-controller".into()),
            ],
            vec![
                (env::CERT, cert.clone()),
                (env::KEY, key.clone()),
                (env::CLIENT_CA, files.write("ca.pem", ca.cert_pem())),
                (env::ALLOWED_CLIENTS, "not a name!".into()),
            ],
        ];
        for case in cases {
            let errors = codes(read_server(&case));
            assert!(
                !errors.is_empty() && errors.iter().all(|e| e.starts_with("ERR_INVALID_CONFIG")),
                "{case:?}: {errors:?}"
            );
        }
    }

    #[test]
    fn allowed_clients_parse() {
        assert_eq!(AllowedClients::parse(" * "), Ok(AllowedClients::Any));
        assert_eq!(
            AllowedClients::parse("pecr-gateway, pecr-controller,"),
            Ok(AllowedClients::only(&["pecr-gateway", "pecr-controller"]))
        );
        assert!(AllowedClients::parse(",").is_err());
        assert!(AllowedClients::parse("127.0.0.1").is_err());
    }

    #[tokio::test]
    async fn https_upstreams_use_tls_and_http_stays_plaintext() {
        let files = Files::new("client");
        let ca = pecr_devcerts::DevCa::new("test CA").expect("CA");
        let issued = ca.issue("pecr-gateway", &[]).expect("issue");
        let env = [
            (env::CA, files.write("ca.pem", ca.cert_pem())),
            (env::CLIENT_CERT, files.write("cert.pem", &issued.cert_pem)),
            (env::CLIENT_KEY, files.write("key.pem", &issued.key_pem)),
            ("PECR_LEDGER_TLS_SERVER_NAME", "pecr-ledger-writer".into()),
        ];
        let source = MapSource::from_pairs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let mut reader = ConfigReader::new(&source);
        let tls = ClientTls::read(
            &mut reader,
            &[("PECR_LEDGER_URL", "PECR_LEDGER_TLS_SERVER_NAME")],
        );
        assert!(reader.finish().is_ok());
        assert!(tls.is_configured());
        assert!(
            tls.endpoint("PECR_LEDGER_URL", "https://127.0.0.1:1")
                .is_ok()
        );
        // A server name for an upstream that is not https is a mistake.
        assert!(
            tls.endpoint("PECR_LEDGER_URL", "http://127.0.0.1:1")
                .is_err()
        );
        assert!(
            tls.endpoint("PECR_GATEWAY_URL", "http://127.0.0.1:1")
                .is_ok()
        );
    }

    #[test]
    fn client_settings_need_both_halves() {
        let source = MapSource::from_pairs([(env::CLIENT_CERT, "/x.pem")]);
        let mut reader = ConfigReader::new(&source);
        let _ = ClientTls::read(&mut reader, &[]);
        assert!(reader.finish().is_err());
    }
}
