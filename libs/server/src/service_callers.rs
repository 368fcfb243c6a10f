//! Which service is calling, and may it call this RPC? Internal gRPC ports
//! know their callers by name: by the DNS subjectAltName of a client
//! certificate the TLS handshake already verified against the client CA, or
//! by a service token in `authorization: Bearer …` when the port has no
//! client certificates. Each caller may call only the RPCs granted to it.
//! Health and reflection stay open, so probes and grpcurl work.

use std::sync::Arc;

use pecr_contracts::secret::constant_time_eq;
use pecr_errors::{ErrorCode, PecrError};
use rustls_pki_types::{CertificateDer, ServerName};
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// The RPCs (method names of the served service) a caller may call.
#[derive(Debug, Clone, Copy)]
pub enum Methods {
    All,
    Only(&'static [&'static str]),
}

impl Methods {
    fn allow(self, method: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(methods) => methods.contains(&method),
        }
    }
}

/// A caller known by name.
#[derive(Debug, Clone)]
struct KnownService {
    name: String,
    methods: Methods,
    /// Its certificate identity, when callers present certificates.
    certificate_name: Option<ServerName<'static>>,
    /// Its service token, when callers present tokens.
    token: Option<String>,
}

/// Who may call a service, and what.
#[derive(Clone)]
pub struct ServiceCallers {
    service_name: &'static str,
    callers: Arc<Vec<KnownService>>,
}

impl std::fmt::Debug for ServiceCallers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.callers.iter().map(|c| c.name.as_str()).collect();
        f.debug_struct("ServiceCallers")
            .field("service_name", &self.service_name)
            .field("callers", &names)
            .finish()
    }
}

impl ServiceCallers {
    /// Callers known by client certificate: each name is a DNS
    /// subjectAltName the certificate must be valid for (the rule rustls
    /// applies to server certificates; the subject CN is not consulted).
    /// Names that are not DNS names are left out.
    pub fn by_certificate(service_name: &'static str, callers: &[(String, Methods)]) -> Self {
        let callers = callers
            .iter()
            .filter_map(|(name, methods)| {
                let certificate_name = ServerName::try_from(name.as_str()).ok()?.to_owned();
                Some(KnownService {
                    name: name.clone(),
                    methods: *methods,
                    certificate_name: Some(certificate_name),
                    token: None,
                })
            })
            .collect();
        Self {
            service_name,
            callers: Arc::new(callers),
        }
    }

    /// Callers known by service token (`name`, token, RPCs).
    pub fn by_token(service_name: &'static str, callers: &[(String, String, Methods)]) -> Self {
        let callers = callers
            .iter()
            .map(|(name, token, methods)| KnownService {
                name: name.clone(),
                methods: *methods,
                certificate_name: None,
                token: Some(token.clone()),
            })
            .collect();
        Self {
            service_name,
            callers: Arc::new(callers),
        }
    }

    /// The caller presenting `leaf` (a verified client certificate) or, on
    /// a port without client certificates, the bearer token in `headers`.
    fn identify(
        &self,
        leaf: Option<&CertificateDer<'_>>,
        headers: &http::HeaderMap,
    ) -> Result<&KnownService, PecrError> {
        if let Some(leaf) = leaf {
            return self
                .callers
                .iter()
                .find(|caller| {
                    caller
                        .certificate_name
                        .as_ref()
                        .is_some_and(|name| certificate_names(leaf, name))
                })
                .ok_or_else(unknown_caller);
        }
        let offered = bearer_token(headers).ok_or_else(|| {
            PecrError::new(ErrorCode::AuthRequired, "a service credential is required")
        })?;
        // Every configured token is compared, so timing reveals nothing.
        let mut found = None;
        for caller in self.callers.iter() {
            if let Some(token) = &caller.token
                && constant_time_eq(offered.as_bytes(), token.as_bytes())
            {
                found = Some(caller);
            }
        }
        found.ok_or_else(unknown_caller)
    }

    /// Admits the request's caller to its RPC, or says why not.
    pub(crate) fn check<B>(&self, request: &http::Request<B>) -> Result<(), PecrError> {
        let leaf = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs);
        let leaf = leaf.as_deref().and_then(|chain| chain.first());
        self.check_call(request.uri().path(), leaf, request.headers())
            .inspect_err(|_| {
                tracing::warn!(
                    event = "mesh.caller_refused",
                    rpc.service = self.service_name,
                    client.address = %peer_address(request),
                    "call refused"
                );
            })
    }

    /// Admits a call of `path` by the caller `leaf` or `headers` name.
    fn check_call(
        &self,
        path: &str,
        leaf: Option<&CertificateDer<'_>>,
        headers: &http::HeaderMap,
    ) -> Result<(), PecrError> {
        if crate::stack::is_open(path) {
            return Ok(());
        }
        let method = path
            .strip_prefix('/')
            .and_then(|rest| rest.strip_prefix(self.service_name))
            .and_then(|rest| rest.strip_prefix('/'));
        let caller = self.identify(leaf, headers)?;
        if method.is_some_and(|method| caller.methods.allow(method)) {
            return Ok(());
        }
        tracing::warn!(
            event = "mesh.rpc_refused",
            rpc.service = self.service_name,
            caller = %caller.name,
            "caller may not call this RPC"
        );
        Err(PecrError::new(
            ErrorCode::PolicyDenied,
            "this caller may not call this RPC",
        ))
    }
}

fn unknown_caller() -> PecrError {
    PecrError::new(
        ErrorCode::AuthInvalid,
        "the service credential is not valid",
    )
}

/// True when the leaf certificate is valid for `name`.
fn certificate_names(leaf: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
}

/// The token of the one `authorization: Bearer …` header; none when the
/// header is missing, repeated or malformed.
fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}

fn peer_address<B>(request: &http::Request<B>) -> String {
    let extensions = request.extensions();
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .map(TlsConnectInfo::get_ref)
        .or_else(|| extensions.get::<TcpConnectInfo>())
        .and_then(TcpConnectInfo::remote_addr)
        .map(|addr| addr.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "pecr.v1.LedgerService";
    const WRITES: &[&str] = &["RecordSession"];
    const READS: &[&str] = &["ListEvents"];

    fn der(pem: &str) -> CertificateDer<'static> {
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
    }

    fn path(method: &str) -> String {
        format!("/{SERVICE}/{method}")
    }

    fn headers(authorization: &[&str]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for value in authorization {
            headers.append("authorization", value.parse().expect("header value"));
        }
        headers
    }

    fn call(
        callers: &ServiceCallers,
        method: &str,
        authorization: &[&str],
    ) -> Result<(), PecrError> {
        callers.check_call(&path(method), None, &headers(authorization))
    }

    fn tokens() -> ServiceCallers {
        ServiceCallers::by_token(
            SERVICE,
            &[
                ("writer".into(), "w".repeat(40), Methods::Only(WRITES)),
                ("reader".into(), "r".repeat(40), Methods::Only(READS)),
            ],
        )
    }

    fn code(result: Result<(), PecrError>) -> Option<(ErrorCode, u16)> {
        result.err().map(|err| (err.code, err.http_status))
    }

    #[test]
    fn tokens_name_the_caller_and_grants_limit_it() {
        let callers = tokens();
        let writer = format!("Bearer {}", "w".repeat(40));
        let reader = format!("Bearer {}", "r".repeat(40));
        assert_eq!(code(call(&callers, "RecordSession", &[&writer])), None);
        assert_eq!(code(call(&callers, "ListEvents", &[&reader])), None);
        assert_eq!(
            code(call(&callers, "ListEvents", &[&writer])),
            Some((ErrorCode::PolicyDenied, 403))
        );
        assert_eq!(
            code(call(&callers, "RecordSession", &[&reader])),
            Some((ErrorCode::PolicyDenied, 403))
        );
        assert_eq!(
            code(call(&callers, "NoSuchRpc", &[&writer])),
            Some((ErrorCode::PolicyDenied, 403))
        );
        assert_eq!(
            code(call(&callers, "RecordSession", &[])),
            Some((ErrorCode::AuthRequired, 401))
        );
        for bad in [
            format!("Bearer {}", "x".repeat(40)),
            format!("Bearer {}", "w".repeat(39)),
            format!("Basic {}", "w".repeat(40)),
            "Bearer ".to_owned(),
        ] {
            assert!(
                matches!(
                    code(call(&callers, "RecordSession", &[&bad])),
                    Some((ErrorCode::AuthInvalid | ErrorCode::AuthRequired, 401))
                ),
                "{bad}"
            );
        }
        // Two credentials are no credential.
        assert_eq!(
            code(call(&callers, "RecordSession", &[&writer, &writer])),
            Some((ErrorCode::AuthRequired, 401))
        );
    }

    #[test]
    fn health_and_reflection_stay_open() {
        let callers = tokens();
        for path in [
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(
                callers.check_call(path, None, &headers(&[])).is_ok(),
                "{path}"
            );
        }
    }

    #[test]
    fn certificates_name_the_caller_by_subject_alt_name() {
        let callers = ServiceCallers::by_certificate(
            SERVICE,
            &[
                ("pecr-gateway".into(), Methods::Only(WRITES)),
                ("pecr-auditor".into(), Methods::Only(READS)),
            ],
        );
        let ca = pecr_devcerts::DevCa::new("test CA").expect("CA");
        let issue = |name: &str| der(&ca.issue(name, &["localhost"]).expect("issue").cert_pem);
        let check = |method: &str, name: &str| {
            code(callers.check_call(&path(method), Some(&issue(name)), &headers(&[])))
        };
        assert_eq!(check("RecordSession", "pecr-gateway"), None);
        assert_eq!(check("ListEvents", "pecr-auditor"), None);
        assert_eq!(
            check("ListEvents", "pecr-gateway"),
            Some((ErrorCode::PolicyDenied, 403))
        );
        assert_eq!(
            check("RecordSession", "pecr-stranger"),
            Some((ErrorCode::AuthInvalid, 401))
        );
        assert_eq!(
            check("RecordSession", "pecr-gateway.evil"),
            Some((ErrorCode::AuthInvalid, 401))
        );
    }
}
