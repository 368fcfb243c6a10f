//! Serving the HTTP port: an accept loop over hyper's connection builder
//! (`axum::serve` cannot bound reading a request head), with the limits of
//! [`crate::conn_limits`] and the same graceful shutdown: stop accepting,
//! let each connection finish its request, then return.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::conn_limits::{BODY_READ_TIMEOUT, DeadlineBody, HEADER_READ_TIMEOUT};

/// Serves `router` on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of descriptors and the like: back off, keep serving.
                tracing::warn!(error = %err, "http accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(|request: http::Request<Incoming>| {
                request
                    .map(|body| axum::body::Body::new(DeadlineBody::new(body, BODY_READ_TIMEOUT)))
            });
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            // HTTP/1 only: the head timeout does not cover HTTP/2.
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "http connection ended");
                    }
                    return;
                }
                _ = stop.wait_for(|stopped| *stopped) => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}
