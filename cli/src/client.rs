//! The connection to the controller: channel, identity metadata, the
//! deadline of each call, and the sorting of every way a call can fail
//! into "could not reach it" (exit 3) and "it said no" (exit 1).

use std::error::Error as _;
use std::future::Future;
use std::time::Duration;

use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::v1::controller_service_client::ControllerServiceClient;
use pecr_proto::v1::{RunRequest, RunResponse, RunStreamRequest, run_stream_response::Event};
use tokio::time::Instant;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

use crate::args::Global;

pub type Client = ControllerServiceClient<Channel>;

/// Why a command did not produce its output.
#[derive(Debug)]
pub enum Failure {
    /// No connection to the controller, or the service a command names (exit 3).
    Unreachable {
        service: Service,
        url: String,
        cause: String,
    },
    /// The call failed: the controller's PECR error, or our deadline (exit 1).
    Call(PecrError),
    /// A flag value that cannot be sent (exit 2).
    Usage(String),
    /// The response could not be printed (exit 1).
    Output(String),
}

/// What a URL points at, named in the message when it cannot be reached.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// `controller`, `gateway`.
    pub name: &'static str,
    /// The flag that sets its URL, and the variable behind the flag.
    pub flag: &'static str,
    pub env: &'static str,
}

pub const CONTROLLER: Service = Service {
    name: "controller",
    flag: "--controller",
    env: "PECR_CONTROLLER_URL",
};

#[derive(Clone)]
pub struct Controller {
    client: Client,
    metadata: MetadataMap,
    url: String,
    timeout: Duration,
    deadline: Instant,
}

impl Controller {
    /// Connects eagerly, so a dead endpoint is reported as such instead of
    /// as an UNAVAILABLE status from the first call.
    pub async fn connect(global: &Global) -> Result<Self, Failure> {
        let timeout = Duration::from_millis(global.timeout_ms);
        let deadline = Instant::now() + timeout;
        let url = global.controller.clone();
        let (channel, metadata) = connect_channel(global, CONTROLLER, &url, deadline).await?;
        Ok(Self {
            client: ControllerServiceClient::new(channel),
            metadata,
            url,
            timeout,
            deadline,
        })
    }

    /// This connection with a deadline of its own, so each call of a
    /// command that makes many gets the whole timeout.
    pub fn renewed(&self) -> Self {
        Self {
            deadline: Instant::now() + self.timeout,
            ..self.clone()
        }
    }

    /// This connection acting as `principal`, with a deadline of its own.
    pub fn as_principal(&self, principal: &str) -> Result<Self, Failure> {
        let value = AsciiMetadataValue::try_from(principal).map_err(|_| {
            Failure::Usage(format!("principal {principal:?} must be printable ASCII"))
        })?;
        let mut renewed = self.renewed();
        renewed.metadata.insert("x-pecr-principal-id", value);
        Ok(renewed)
    }

    /// Runs one RPC with the identity metadata and what is left of the
    /// deadline (sent as `grpc-timeout` too, so the server stops in time).
    ///
    /// `rpc` gets its own client handle: `|mut c, r| async move { c.run(r).await }`.
    pub async fn call<Req, Res, F, Fut>(&self, message: Req, rpc: F) -> Result<Res, Failure>
    where
        F: FnOnce(Client, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
    {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout_at(self.deadline, rpc(self.client.clone(), request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(self.failure(&status)),
            Err(_) => Err(Failure::Call(self.timed_out())),
        }
    }

    /// `RunStream`: hands each progress event to `on_event` as it arrives
    /// and returns the run's response, all within the deadline.
    pub async fn run_streamed(
        &self,
        message: RunRequest,
        mut on_event: impl FnMut(&Event),
    ) -> Result<RunResponse, Failure> {
        let message = RunStreamRequest {
            query: message.query,
            budget: message.budget,
        };
        let mut events = self
            .call(message, |mut c, r| async move { c.run_stream(r).await })
            .await?;
        let read = async {
            while let Some(event) = events.message().await.map_err(|s| self.failure(&s))? {
                match event.event {
                    Some(Event::Result(response)) => return Ok(response),
                    Some(event) => on_event(&event),
                    None => {}
                }
            }
            Err(Failure::Call(PecrError::new(
                ErrorCode::SourceUnavailable,
                format!("{} ended the run stream without a result", self.url),
            )))
        };
        tokio::time::timeout_at(self.deadline, read)
            .await
            .unwrap_or_else(|_| Err(Failure::Call(self.timed_out())))
    }

    fn failure(&self, status: &Status) -> Failure {
        if let Some(error) = PecrError::from_status(status) {
            return Failure::Call(error);
        }
        // A status with a local source was made by our transport, never
        // received from the server: the connection broke, or the peer does
        // not speak gRPC (UNKNOWN "transport error", e.g. the REST port).
        if matches!(status.code(), Code::Unavailable | Code::Unknown)
            && let Some(source) = status.source()
        {
            return Failure::Unreachable {
                service: CONTROLLER,
                url: self.url.clone(),
                cause: chain(source),
            };
        }
        Failure::Call(match status.code() {
            // Our `grpc-timeout` ran out on the server first (tonic
            // servers answer CANCELLED "Timeout expired" for that).
            Code::DeadlineExceeded | Code::Cancelled => self.timed_out(),
            // The contract's rule for a status without a PECR detail.
            code => PecrError::new(
                ErrorCode::SourceUnavailable,
                format!(
                    "{} answered {code:?} without a PECR error: {}",
                    self.url,
                    status.message()
                ),
            )
            .with_http(502),
        })
    }

    fn timed_out(&self) -> PecrError {
        PecrError::new(
            ErrorCode::SourceTimeout,
            format!(
                "no answer from {} within {} ms (raise --timeout-ms)",
                self.url,
                self.timeout.as_millis()
            ),
        )
    }
}

/// A channel to `url` with the global flags' TLS settings, and the identity
/// metadata every call carries; connected eagerly, within `deadline`.
pub async fn connect_channel(
    global: &Global,
    service: Service,
    url: &str,
    deadline: Instant,
) -> Result<(Channel, MetadataMap), Failure> {
    let metadata = metadata(global).map_err(Failure::Usage)?;
    let timeout = Duration::from_millis(global.timeout_ms);
    let unreachable = |cause: String| Failure::Unreachable {
        service,
        url: url.to_owned(),
        cause,
    };
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|err| unreachable(chain(&err)))?;
    let https = endpoint.uri().scheme_str() == Some("https");
    let endpoint = match tls_config(global, service, url, https).map_err(Failure::Usage)? {
        Some(tls) => endpoint.tls_config(tls).map_err(|err| {
            Failure::Usage(format!("cannot set up TLS for {url}: {}", chain(&err)))
        })?,
        None => endpoint,
    }
    .connect_timeout(timeout)
    .tcp_nodelay(true);
    let channel = tokio::time::timeout_at(deadline, endpoint.connect())
        .await
        .map_err(|_| unreachable(format!("no connection within {} ms", timeout.as_millis())))?
        .map_err(|err| unreachable(chain(&err)))?;
    Ok((channel, metadata))
}

/// TLS for an https:// service: the CA to trust (else the system roots),
/// the client certificate if any, and the name to check. TLS options with
/// an http:// URL are refused rather than ignored.
fn tls_config(
    global: &Global,
    service: Service,
    url: &str,
    https: bool,
) -> Result<Option<ClientTlsConfig>, String> {
    if !https {
        let given = global.tls_ca.is_some()
            || global.tls_cert.is_some()
            || global.tls_server_name.is_some();
        return if given {
            Err(format!(
                "the TLS options need an https:// {} URL (got {url}); set {} or {}",
                service.name, service.flag, service.env
            ))
        } else {
            Ok(None)
        };
    }
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|err| format!("{flag} {}: {err}", path.display()))
    };
    let mut tls = match &global.tls_ca {
        Some(path) => {
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("--tls-ca", path)?))
        }
        None => ClientTlsConfig::new().with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&global.tls_cert, &global.tls_key) {
        tls = tls.identity(Identity::from_pem(
            read("--tls-cert", cert)?,
            read("--tls-key", key)?,
        ));
    }
    if let Some(name) = &global.tls_server_name {
        tls = tls.domain_name(name.clone());
    }
    Ok(Some(tls))
}

/// The identity and correlation metadata sent with every call. Empty
/// values count as unset, so `PECR_LOCAL_AUTH_SHARED_SECRET=` disables it.
fn metadata(global: &Global) -> Result<MetadataMap, String> {
    let mut metadata = MetadataMap::new();
    let token = global
        .token
        .as_deref()
        .filter(|token| !token.is_empty())
        .map(|token| format!("Bearer {token}"));
    let entries = [
        (
            "x-pecr-principal-id",
            global.principal.as_deref(),
            "--principal",
        ),
        (
            "x-pecr-local-auth-secret",
            global.secret.as_deref(),
            "--secret",
        ),
        ("authorization", token.as_deref(), "--token"),
        (
            "x-pecr-request-id",
            global.request_id.as_deref(),
            "--request-id",
        ),
        ("x-pecr-trace-id", global.trace_id.as_deref(), "--trace-id"),
    ];
    for (key, value, flag) in entries {
        let Some(value) = value.filter(|value| !value.is_empty()) else {
            continue;
        };
        let value = AsciiMetadataValue::try_from(value)
            .map_err(|_| format!("{flag} must be printable ASCII"))?;
        metadata.insert(key, value);
    }
    Ok(metadata)
}

/// An error and its causes on one line; transport errors put the useful
/// part ("Connection refused") several sources deep.
fn chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::Parser;

    fn global(argv: &[&str]) -> Global {
        let mut full = vec!["pecr"];
        full.extend_from_slice(argv);
        full.push("scorecards");
        Cli::try_parse_from(full).expect("parses").global
    }

    #[test]
    fn metadata_carries_identity_and_skips_empty_values() {
        let metadata = metadata(&global(&[
            "--principal",
            "dev",
            "--secret",
            "",
            "--token",
            "tok",
            "--trace-id",
            "abc",
        ]))
        .expect("metadata");
        let get = |key| metadata.get(key).and_then(|value| value.to_str().ok());
        assert_eq!(get("x-pecr-principal-id"), Some("dev"));
        assert_eq!(get("x-pecr-local-auth-secret"), None);
        assert_eq!(get("authorization"), Some("Bearer tok"));
        assert_eq!(get("x-pecr-trace-id"), Some("abc"));
        assert_eq!(get("x-pecr-request-id"), None);
    }

    #[test]
    fn an_empty_token_sends_no_authorization() {
        let metadata = metadata(&global(&["--token", ""])).expect("metadata");
        assert!(metadata.get("authorization").is_none());
    }
}
