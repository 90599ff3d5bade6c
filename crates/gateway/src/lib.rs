//! The gateway: `POST /v1/payments` (validated, idempotent, answered 202
//! once `payment.submitted` is acked), `GET /v1/payments/{id}` from a read
//! model fed by the pipeline, and the card processor's signed webhook.

pub mod api;
pub mod auth;
pub mod config;
pub mod group_commit;
pub mod metrics;
pub mod openapi;
pub mod payment_request;
pub mod problem;
pub mod rate_limit;
pub mod reason;
pub mod status;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use paystream_contract::{AnyEvent, Topic};
use paystream_service_kit::{Running, Service, ServiceError};
use tokio_util::sync::CancellationToken;

pub use config::{Config, ConfigError};

/// Every topic the gateway writes (submitted payments, card transactions)
/// or reads (the status read model's).
pub fn topics() -> Vec<Topic> {
    let mut topics = vec![Topic::PaymentSubmitted, Topic::CardTransactionReceived];
    topics.extend(status::TOPICS);
    topics
}

pub const SERVICE: &str = "gateway";

/// Why the gateway could not start or stopped: a refused configuration, or
/// what any service can fail on.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

pub struct Server {
    service: Service,
    /// Kept to write the marks still queued when the server stops.
    store: store::Store,
}

impl Server {
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        // Refused settings are refused before anything is connected.
        let keys = config.effective_api_keys()?;
        // The producer gives up before the API answers (see
        // `Config::producer_kafka`); consumers' dead letters go through it too.
        let kafka = config.producer_kafka()?;
        let mut service = Service::builder(SERVICE, config.listen)
            .database(&config.database_url, &store::MIGRATOR)
            .max_connections(16)
            .kafka(&kafka, &config.registry, &config.consumer)
            .build()
            .await?;
        let pool = service.pool().cloned().ok_or_else(|| {
            ServiceError::Config("the gateway runs only with its database".into())
        })?;
        metrics::register();
        let store = store::Store::new(pool);
        let app = api::App::new(api::AppParts {
            store: store.clone(),
            producer: service.producer().clone(),
            ack_timeout: config.accept_timeout(),
            webhook_secret: config
                .webhook_secret
                .as_ref()
                .map(|secret| Arc::from(secret.as_bytes())),
        });
        let limits = api::Limits {
            guard: auth::Guard::new(
                keys,
                config.rate_limit_per_client,
                config.unauthenticated_rate_limit,
            ),
            webhooks: rate_limit::PerIp::new(config.webhook_rate_limit),
            body: config.body_limit,
        };
        service.routes(api::router(app, limits));
        service.consume::<AnyEvent, _>(status::GROUP, status::TOPICS, status::StatusFeed);
        Ok(Self { service, store })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.service.local_addr()
    }

    /// Runs on a task of its own (tests, embedding); see [`Running`].
    pub fn start(self) -> Running {
        self.service.start()
    }

    /// Serves the API and keeps the status read model up to date until
    /// `shutdown`; then writes the marks the last requests queued.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let served = self.service.run(shutdown).await;
        self.store.write_queued_marks().await;
        Ok(served?)
    }
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    Server::build(&config).await?.run(shutdown).await
}
