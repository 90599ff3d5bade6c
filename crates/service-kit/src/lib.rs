//! The service runtime every Paystream service is built on ([`Service`]):
//! database pool and migrations, the HTTP server with `/healthz`, `/readyz`
//! and `/metrics`, the consumers, the outbox relay and graceful shutdown;
//! and the small pieces binaries share (signals, listeners, a token bucket,
//! group commit).

pub mod batch;
pub mod dispatch;
mod error;
pub mod http;
mod listener;
mod rate;
pub mod readiness;
pub mod runtime;
pub mod signing;

pub use error::ServiceError;
pub use listener::{BindError, bind, local_addr};
pub use paystream_bus::pool::options as pool_options;
pub use rate::TokenBucket;
pub use readiness::Readiness;
pub use runtime::{Running, Service, ServiceBuilder, migrate};

use tokio_util::sync::CancellationToken;

/// A token that is cancelled on the first SIGINT or SIGTERM. Services take it as
/// their shutdown signal, so tests can stop them by cancelling the token instead.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(signal, "shutdown requested");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT will stop this process");
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot listen for SIGINT either; only SIGKILL will stop this process");
                std::future::pending::<()>().await;
            }
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(%error, "cannot listen for ctrl-c");
        std::future::pending::<()>().await;
    }
    "ctrl-c"
}
