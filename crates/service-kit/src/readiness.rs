//! What a service's `/readyz` says: whether the three things every Paystream
//! service needs — the broker, the schema registry and its own database —
//! answer. The checks run in the background on a fixed period, never per
//! request: a probe (or anyone who can reach the port) reads the last result
//! and costs no network call. The body names each check `ok` or
//! `unavailable`; why one failed goes to the log, not to the caller.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use paystream_bus::{KafkaConfig, RegistryConfig};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the checks run.
pub const PERIOD: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Readiness {
    admin: Arc<AdminClient<DefaultClientContext>>,
    registry_url: String,
    http: reqwest::Client,
    pool: Option<PgPool>,
    last: Arc<RwLock<Report>>,
}

/// The last result: ready only if every check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub broker: bool,
    pub registry: bool,
    /// None: the service has no database.
    pub database: Option<bool>,
    /// False until the first round of checks finished.
    pub checked: bool,
}

impl Report {
    pub fn ready(&self) -> bool {
        self.checked && self.broker && self.registry && self.database.unwrap_or(true)
    }
}

impl Readiness {
    pub fn new(
        kafka: &KafkaConfig,
        registry: &RegistryConfig,
        pool: Option<PgPool>,
    ) -> Result<Self, KafkaError> {
        let http = reqwest::Client::builder()
            .timeout(CHECK_TIMEOUT)
            .build()
            .map_err(|error| KafkaError::ClientCreation(error.to_string()))?;
        Ok(Self {
            admin: Arc::new(kafka.admin().create()?),
            registry_url: registry.url.trim_end_matches('/').to_owned(),
            http,
            last: Arc::new(RwLock::new(Report {
                broker: false,
                registry: false,
                database: pool.as_ref().map(|_| false),
                checked: false,
            })),
            pool,
        })
    }

    /// The last result; no network call.
    pub fn report(&self) -> Report {
        self.last
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Checks every [`PERIOD`] until `shutdown`.
    pub async fn refresh(self, shutdown: CancellationToken) {
        loop {
            self.check_now().await;
            tokio::select! {
                () = tokio::time::sleep(PERIOD) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Runs the checks once and keeps the result.
    pub async fn check_now(&self) -> Report {
        let (broker, registry, database) =
            tokio::join!(self.broker(), self.registry(), self.database());
        for (name, result) in [
            ("broker", &broker),
            ("schema registry", &registry),
            ("database", &database.clone().unwrap_or(Ok(()))),
        ] {
            if let Err(reason) = result {
                tracing::warn!(check = name, %reason, "readiness check failed");
            }
        }
        let report = Report {
            broker: broker.is_ok(),
            registry: registry.is_ok(),
            database: database.map(|result| result.is_ok()),
            checked: true,
        };
        *self
            .last
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = report.clone();
        report
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
            .send()
            .await
            .map_err(|error| error.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("registry answered {}", response.status()))
        }
    }

    async fn database(&self) -> Option<Result<(), String>> {
        let pool = self.pool.as_ref()?;
        Some(
            tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(pool))
                .await
                .map_err(|_| format!("no answer within {CHECK_TIMEOUT:?}"))
                .and_then(|result| result.map(drop).map_err(|error| error.to_string())),
        )
    }
}

/// `/readyz`: 200 when ready, else 503; the body names each check.
impl IntoResponse for Report {
    fn into_response(self) -> Response {
        let status = if self.ready() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let show = |ok: bool| if ok { "ok" } else { "unavailable" };
        let mut checks = json!({
            "broker": show(self.broker),
            "schemaRegistry": show(self.registry),
        });
        if let Some(database) = self.database {
            checks["database"] = json!(show(database));
        }
        if !self.checked {
            checks = json!({ "status": "starting" });
        }
        (status, axum::Json(checks)).into_response()
    }
}
