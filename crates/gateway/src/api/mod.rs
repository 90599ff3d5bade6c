//! The gateway's HTTP surface.

pub mod payments;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use paystream_bus::{ProduceError, Producer};
use paystream_contract::Event;

use crate::auth::{self, Guard};
use crate::problem::Problem;
use crate::rate_limit::{self, PerIp};
use crate::store::Store;

#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub producer: Producer,
    /// How long a request waits for the broker's ack; the producer itself
    /// gives up sooner (see `Config::producer_kafka`).
    pub ack_timeout: Duration,
    pub webhook_secret: Option<Arc<[u8]>>,
}

/// What protects the routes: API keys and rate limits, and the body size.
pub struct Limits {
    pub guard: Guard,
    pub webhooks: PerIp,
    pub body: usize,
}

pub(crate) fn db_error(error: sqlx::Error) -> Problem {
    tracing::error!(%error, "gateway database call failed");
    Problem::unavailable("the gateway's database is unavailable", 1)
}

/// Why a send was not acknowledged, as far as the gateway can tell.
#[derive(Debug)]
pub(crate) enum NotAcked {
    /// Never written and never will be: refused before it was queued, or by
    /// the broker. The client may retry, or give up safely.
    NotSent(String),
    /// Perhaps written: librdkafka gave up while a request may have been in
    /// flight (it reports a message timeout alike whether the record was
    /// still queued or already sent, and rdkafka does not expose the
    /// persistence status). Only a retry of the same event settles it.
    Unknown(String),
}

/// Sends `event` and waits for the broker's verdict. librdkafka's own
/// message timeout ends first; the timer here only guards the encoding (a
/// registry lookup) before the record is queued.
pub(crate) async fn send_within<E: Event>(app: &App, event: E) -> Result<(), NotAcked> {
    match tokio::time::timeout(app.ack_timeout, app.producer.send(event)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(match &error {
            ProduceError::Encode(_) | ProduceError::MissingCorrelation { .. } => {
                NotAcked::NotSent(error.to_string())
            }
            // The codes the bus calls permanent are the broker's refusals
            // (too large, corrupt, not authorised): nothing was written.
            ProduceError::NotAcknowledged {
                transient: false, ..
            } => NotAcked::NotSent(error.to_string()),
            ProduceError::NotAcknowledged {
                transient: true, ..
            } => NotAcked::Unknown(error.to_string()),
        }),
        Err(_) => Err(NotAcked::Unknown(format!(
            "no verdict from the producer within {} ms",
            app.ack_timeout.as_millis()
        ))),
    }
}

pub fn router(app: App, limits: Limits) -> Router {
    let payments = Router::new()
        .route("/v1/payments", post(payments::submit))
        .route("/v1/payments/{id}", get(payments::status))
        .layer(axum::middleware::from_fn_with_state(
            limits.guard,
            auth::require_client,
        ));
    let webhooks = Router::new()
        .route(
            "/v1/webhooks/card-transactions",
            post(webhooks::card_transactions),
        )
        .layer(axum::middleware::from_fn_with_state(
            limits.webhooks,
            rate_limit::limit_per_ip,
        ));
    Router::new()
        .merge(payments)
        .merge(webhooks)
        .route(
            "/openapi.json",
            get(|| async { axum::Json(crate::openapi::document()) }),
        )
        .layer(DefaultBodyLimit::max(limits.body))
        .with_state(app)
}
