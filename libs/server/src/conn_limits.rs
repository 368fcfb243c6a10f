//! Time limits on client connections, so a slow or silent client (a
//! slowloris) never holds a connection or a task for ever:
//!
//! - HTTP port: the request head (line and headers) must arrive within
//!   [`HEADER_READ_TIMEOUT`] — also the longest a keep-alive connection may
//!   sit idle between requests — and a request body within
//!   [`BODY_READ_TIMEOUT`] of its head.
//! - gRPC port: the first bytes of a connection (the HTTP/2 preface or the
//!   TLS hello) within [`HANDSHAKE_TIMEOUT`]; a peer that stops answering
//!   HTTP/2 pings ([`KEEPALIVE_INTERVAL`]) for [`KEEPALIVE_TIMEOUT`] is
//!   dropped; a `pecr.v1` request body within [`BODY_READ_TIMEOUT`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Longest wait for a request head on the HTTP port, and longest idle time
/// of a keep-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a whole request body after its head, both ports.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a gRPC connection's first bytes.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the gRPC port pings an HTTP/2 peer.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long the gRPC port waits for a ping's answer before closing.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The bytes a gRPC connection must deliver before [`HANDSHAKE_TIMEOUT`]:
/// the 24-byte HTTP/2 client preface (a TLS hello is longer).
const HANDSHAKE_BYTES: usize = 24;

fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what} not received in time"),
    )
}

/// A connection that fails its reads unless its first bytes arrive before a
/// deadline; after them it is the plain connection.
pub struct HandshakeDeadline<IO> {
    inner: IO,
    missing: usize,
    deadline: Pin<Box<Sleep>>,
}

impl<IO> HandshakeDeadline<IO> {
    pub fn new(inner: IO) -> Self {
        Self::with_timeout(inner, HANDSHAKE_TIMEOUT)
    }

    pub fn with_timeout(inner: IO, timeout: Duration) -> Self {
        Self {
            inner,
            missing: HANDSHAKE_BYTES,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.inner
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for HandshakeDeadline<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                let read = buf.filled().len().saturating_sub(before);
                this.missing = this.missing.saturating_sub(read);
                Poll::Ready(result)
            }
            Poll::Pending if this.missing > 0 && this.deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(timed_out("connection preface")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HandshakeDeadline<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected
    for HandshakeDeadline<IO>
{
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// A request body that fails once it has not ended by its deadline; the
/// error is a `DEADLINE_EXCEEDED` status (gRPC) and a refused body (REST).
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
    expired: bool,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + timeout)),
            expired: false,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|result| result.map_err(Into::into))),
            Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => {
                this.expired = true;
                let status = tonic::Status::deadline_exceeded("request body not received in time");
                Poll::Ready(Some(Err(Box::new(status))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Gives every `pecr.v1` gRPC request body [`BODY_READ_TIMEOUT`]; health
/// and reflection (a long-lived grpcurl stream) keep theirs open.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyDeadlineLayer;

impl<S> tower::Layer<S> for BodyDeadlineLayer {
    type Service = BodyDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyDeadline { inner }
    }
}

#[derive(Debug, Clone)]
pub struct BodyDeadline<S> {
    inner: S,
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for BodyDeadline<S>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if !request.uri().path().starts_with("/pecr.v1.") {
            return self.inner.call(request);
        }
        self.inner.call(
            request.map(|body| tonic::body::Body::new(DeadlineBody::new(body, BODY_READ_TIMEOUT))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::BodyExt as _;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_fails_its_reads_after_the_deadline() {
        let (client, server) = tokio::io::duplex(64);
        let mut guarded = HandshakeDeadline::with_timeout(server, Duration::from_secs(5));
        let mut buf = [0_u8; 8];
        let started = Instant::now();
        let error = guarded.read(&mut buf).await.err().map(|err| err.kind());
        assert_eq!(error, Some(io::ErrorKind::TimedOut));
        assert!(started.elapsed() >= Duration::from_secs(5));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_past_its_preface_has_no_deadline() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded = HandshakeDeadline::with_timeout(server, Duration::from_secs(5));
        tokio::io::AsyncWriteExt::write_all(&mut client, &[b'P'; HANDSHAKE_BYTES])
            .await
            .expect("write preface");
        let mut buf = [0_u8; HANDSHAKE_BYTES];
        guarded.read_exact(&mut buf).await.expect("preface");
        tokio::time::sleep(Duration::from_secs(60)).await;
        tokio::io::AsyncWriteExt::write_all(&mut client, b"x")
            .await
            .expect("write");
        assert_eq!(guarded.read(&mut buf).await.ok(), Some(1));
    }

    /// A body whose sender never sends.
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_fails_with_deadline_exceeded() {
        let timed = DeadlineBody::new(Stalled, Duration::from_secs(30));
        let Err(error) = timed.collect().await else {
            panic!("a stalled body ended");
        };
        let status = error
            .downcast_ref::<tonic::Status>()
            .map(tonic::Status::code);
        assert_eq!(status, Some(tonic::Code::DeadlineExceeded));
    }
}
