//! The gateway's HTTP surface.

pub mod payments;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use paystream_bus::Producer;

use crate::auth::{self, Guard};
use crate::problem::Problem;
use crate::store::Store;

#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub producer: Producer,
    pub ack_timeout: Duration,
    pub webhook_secret: Option<Arc<[u8]>>,
}

pub(crate) fn db_error(error: sqlx::Error) -> Problem {
    tracing::error!(%error, "gateway database call failed");
    Problem::unavailable("the gateway's database is unavailable", 1)
}

pub fn router(app: App, guard: Guard, body_limit: usize) -> Router {
    let payments = Router::new()
        .route("/v1/payments", post(payments::submit))
        .route("/v1/payments/{id}", get(payments::status))
        .layer(axum::middleware::from_fn_with_state(
            guard,
            auth::require_client,
        ));
    Router::new()
        .merge(payments)
        .route(
            "/v1/webhooks/card-transactions",
            post(webhooks::card_transactions),
        )
        .route(
            "/openapi.json",
            get(|| async { axum::Json(crate::openapi::document()) }),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}
