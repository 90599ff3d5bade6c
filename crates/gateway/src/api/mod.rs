//! The gateway's HTTP surface.

pub mod batches;
pub mod payments;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use paystream_bus::{ProduceError, Producer};
use paystream_contract::Event;
use tracing::Instrument;

use crate::auth::{self, Guard};
use crate::group_commit::GroupError;
use crate::problem::Problem;
use crate::rate_limit::{self, PerIp};
use crate::store::Store;

/// What the request handlers share, behind one `Arc`: axum clones its state
/// for every request, and cloning and dropping each part's own handles (the
/// pools, the group-commit writers, the producer and its codec) was about
/// 2% of the gateway's CPU per request.
#[derive(Clone)]
pub struct App(Arc<AppParts>);

impl App {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for App {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub struct AppParts {
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

/// Runs a request's work to its end on a task of its own, inside `span`,
/// and records the answer's status on the span.
///
/// A client hanging up must not cancel the work half way: sqlx 0.9.0 loses
/// track of a `BEGIN` dropped on the wire and lends the connection on inside
/// a transaction nobody ends (transact-rs/sqlx#4393), where the next
/// request's idempotency claim "succeeds", its event is published, and the
/// claim vanishes — a retry then makes a second payment. The chaos run found
/// exactly that. A request that reached us runs to its end; its client
/// retries with the same key.
pub(crate) async fn run_to_end<F>(span: tracing::Span, work: F) -> Response
where
    F: Future<Output = Result<Response, Problem>> + Send + 'static,
{
    let response = match tokio::spawn(work.instrument(span.clone())).await {
        Ok(answer) => answer.unwrap_or_else(IntoResponse::into_response),
        Err(error) => {
            tracing::error!(parent: &span, %error, "a request's task failed");
            Problem::internal().into_response()
        }
    };
    span.record("http.response.status_code", response.status().as_u16());
    response
}

pub(crate) fn group_error(error: GroupError) -> Problem {
    tracing::error!(%error, "gateway database batch failed");
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
        // A batch's body is up to 1,000 payments: a limit of its own.
        .route(
            "/v1/payment-batches",
            post(batches::submit)
                .layer(DefaultBodyLimit::max(limits.body.max(batches::BODY_LIMIT))),
        )
        .route("/v1/payment-batches/{id}", get(batches::status))
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
