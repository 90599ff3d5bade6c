//! What a service's `/readyz` checks: the three things every Paystream
//! service needs to do any work at all — the broker answering metadata, the
//! schema registry answering its API, and the service's own database.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::config::{KafkaConfig, RegistryConfig};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Readiness {
    admin: Arc<AdminClient<DefaultClientContext>>,
    registry_url: String,
    http: reqwest::Client,
    pool: PgPool,
}

/// The outcome: ready only if every check passed; `checks` names each one
/// with "ok" or what went wrong, for the response body.
#[derive(Debug, Clone)]
pub struct Report {
    pub ready: bool,
    pub checks: Value,
}

impl Readiness {
    pub fn new(
        kafka: &KafkaConfig,
        registry: &RegistryConfig,
        pool: PgPool,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            admin: Arc::new(kafka.admin().create()?),
            registry_url: registry.url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            pool,
        })
    }

    pub async fn check(&self) -> Report {
        let (broker, registry, database) =
            tokio::join!(self.broker(), self.registry(), self.database());
        let ready = broker.is_ok() && registry.is_ok() && database.is_ok();
        let show = |result: Result<(), String>| match result {
            Ok(()) => json!("ok"),
            Err(error) => json!(error),
        };
        Report {
            ready,
            checks: json!({
                "broker": show(broker),
                "schemaRegistry": show(registry),
                "database": show(database),
            }),
        }
    }

    async fn broker(&self) -> Result<(), String> {
        let admin = self.admin.clone();
        tokio::task::spawn_blocking(move || {
            admin
                .inner()
                .fetch_metadata(None, CHECK_TIMEOUT)
                .map(drop)
                .map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| error.to_string())?
    }

    async fn registry(&self) -> Result<(), String> {
        let response = self
            .http
            .get(format!("{}/subjects", self.registry_url))
            .timeout(CHECK_TIMEOUT)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("registry answered {}", response.status()))
        }
    }

    async fn database(&self) -> Result<(), String> {
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map_err(|_| format!("no answer within {CHECK_TIMEOUT:?}"))?
            .map(drop)
            .map_err(|error| error.to_string())
    }
}

/// `/readyz`: 200 when ready, else 503; the body names each check.
impl IntoResponse for Report {
    fn into_response(self) -> Response {
        let status = if self.ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, axum::Json(self.checks)).into_response()
    }
}
