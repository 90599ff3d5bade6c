//! The sandbox's HTTP server: the router over hyper, HTTP/1.1 and cleartext
//! HTTP/2 on one port. Not `axum::serve`, because that keeps hyper's limit of
//! 200 streams per HTTP/2 connection, and a client multiplexing its calls
//! over one connection would then be held to 200 in flight: at the 100 ms
//! the benchmarks give a provider call, 2,000 calls/s, where production
//! providers are called by many clients over many connections.

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Streams in flight per HTTP/2 connection at most.
const MAX_STREAMS: u32 = 16_384;

/// After a failed accept (out of file descriptors, say), how long before
/// the next: the condition does not clear by retrying at once.
const ACCEPT_BACK_OFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown`, then lets the open
/// connections finish what they started.
pub async fn serve(listener: TcpListener, router: axum::Router, shutdown: CancellationToken) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(MAX_STREAMS);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; backing off");
                    tokio::time::sleep(ACCEPT_BACK_OFF).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}
