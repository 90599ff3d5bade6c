//! The gateway's HTTP surface.

pub mod payments;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use paystream_bus::Producer;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use serde_json::json;

use crate::auth::{self, Guard};
use crate::problem::Problem;
use crate::store::Store;

#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub producer: Producer,
    pub ack_timeout: Duration,
    pub webhook_secret: Option<Arc<[u8]>>,
    pub readiness: Readiness,
}

/// What `/readyz` checks: the broker answers metadata and the registry its API.
#[derive(Clone)]
pub struct Readiness {
    pub admin: Arc<AdminClient<DefaultClientContext>>,
    pub registry_url: String,
    pub http: reqwest::Client,
}

impl Readiness {
    async fn broker(&self) -> Result<(), String> {
        let admin = self.admin.clone();
        tokio::task::spawn_blocking(move || {
            admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(2))
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| error.to_string())?
    }

    async fn registry(&self) -> Result<(), String> {
        let response = self
            .http
            .get(format!(
                "{}/subjects",
                self.registry_url.trim_end_matches('/')
            ))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|error| error.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("registry answered {}", response.status()))
        }
    }
}

pub(crate) fn db_error(error: sqlx::Error) -> Problem {
    tracing::error!(%error, "gateway database call failed");
    Problem::unavailable("the gateway's database is unavailable", 1)
}

async fn ready(State(app): State<App>) -> Response {
    let (broker, registry, database) = tokio::join!(
        app.readiness.broker(),
        app.readiness.registry(),
        sqlx::query("SELECT 1").execute(app.store.pool()),
    );
    let check = |result: Result<(), String>| match result {
        Ok(()) => json!("ok"),
        Err(error) => json!(error),
    };
    let all_ok = broker.is_ok() && registry.is_ok() && database.is_ok();
    let body = json!({
        "broker": check(broker),
        "schemaRegistry": check(registry),
        "database": check(database.map(|_| ()).map_err(|e| e.to_string())),
    });
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        paystream_bus::metrics::render(),
    )
        .into_response()
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
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(crate::openapi::document()) }),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}
