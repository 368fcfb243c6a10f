//! The client allowlist of a gRPC port that requires client certificates:
//! the TLS handshake already proved the certificate chains to the client
//! CA; this layer checks that it names an identity allowed to call the
//! service. Health and reflection stay open to any such client, so probes
//! and grpcurl work with any certificate the CA signed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pecr_errors::{ErrorCode, PecrError};
use rustls_pki_types::{CertificateDer, ServerName};
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

/// Paths any client with a valid certificate may call.
const OPEN_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// The identities a service accepts, as DNS subjectAltNames.
#[derive(Debug)]
struct Allowlist {
    names: Vec<ServerName<'static>>,
    /// For messages: `pecr-gateway, pecr-controller`.
    listed: String,
}

impl Allowlist {
    /// True when the leaf certificate names one of the allowed identities
    /// (the same subjectAltName rule rustls applies to server certificates;
    /// the subject CN is not consulted).
    fn admits(&self, leaf: &CertificateDer<'_>) -> bool {
        let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
            return false;
        };
        self.names
            .iter()
            .any(|name| cert.verify_is_valid_for_subject_name(name).is_ok())
    }
}

/// Refuses calls whose client certificate names no allowed identity with
/// UNAUTHENTICATED and a PECR `ERR_AUTH_INVALID` detail.
#[derive(Debug, Clone)]
pub(crate) struct ClientIdentityLayer {
    allowlist: Arc<Allowlist>,
    service_name: &'static str,
}

impl ClientIdentityLayer {
    /// None when `names` holds no valid DNS name (callers pass names that
    /// configuration already checked).
    pub(crate) fn new(names: &[String], service_name: &'static str) -> Option<Self> {
        let names: Vec<ServerName<'static>> = names
            .iter()
            .filter_map(|name| ServerName::try_from(name.as_str()).ok())
            .map(|name| name.to_owned())
            .collect();
        if names.is_empty() {
            return None;
        }
        let listed = names
            .iter()
            .map(|name| name.to_str().into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        Some(Self {
            allowlist: Arc::new(Allowlist { names, listed }),
            service_name,
        })
    }
}

impl<S> Layer<S> for ClientIdentityLayer {
    type Service = ClientIdentity<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientIdentity {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ClientIdentity<S> {
    inner: S,
    layer: ClientIdentityLayer,
}

impl<S> ClientIdentity<S> {
    fn check<B>(&self, request: &http::Request<B>) -> Result<(), PecrError> {
        let path = request.uri().path();
        if OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
            return Ok(());
        }
        let info = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
        let certs = info.and_then(TlsConnectInfo::peer_certs);
        let admitted = certs
            .as_deref()
            .and_then(|chain| chain.first())
            .is_some_and(|leaf| self.layer.allowlist.admits(leaf));
        if admitted {
            return Ok(());
        }
        let peer = info
            .and_then(|info| info.get_ref().remote_addr())
            .map(|addr| addr.to_string())
            .unwrap_or_default();
        tracing::warn!(
            event = "mesh.client_refused",
            rpc.method = path,
            client.address = %peer,
            allowed = %self.layer.allowlist.listed,
            "client certificate names no allowed identity"
        );
        Err(PecrError::new(
            ErrorCode::AuthInvalid,
            format!(
                "the client certificate is not allowed to call {} (allowed identities: {})",
                self.layer.service_name, self.layer.allowlist.listed
            ),
        ))
    }
}

impl<S, B, ResBody> Service<http::Request<B>> for ClientIdentity<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.check(&request) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(error) => {
                let status: tonic::Status = error.into();
                Box::pin(std::future::ready(Ok(status.into_http::<ResBody>())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
    }

    #[test]
    fn admits_only_listed_subject_alt_names() {
        let layer = ClientIdentityLayer::new(
            &["pecr-gateway".to_owned(), "pecr-controller".to_owned()],
            "pecr.v1.LedgerService",
        )
        .expect("names");
        let ca = pecr_devcerts::DevCa::new("test CA").expect("CA");
        let issue = |name: &str| der(&ca.issue(name, &["localhost"]).expect("issue").cert_pem);
        assert!(layer.allowlist.admits(&issue("pecr-gateway")));
        assert!(layer.allowlist.admits(&issue("pecr-controller")));
        assert!(!layer.allowlist.admits(&issue("pecr-stranger")));
        assert!(!layer.allowlist.admits(&issue("pecr-gateway.evil")));
        assert!(!layer.allowlist.admits(&CertificateDer::from(vec![1, 2, 3])));
    }

    #[test]
    fn without_names_there_is_no_layer() {
        assert!(ClientIdentityLayer::new(&[], "x").is_none());
    }
}
