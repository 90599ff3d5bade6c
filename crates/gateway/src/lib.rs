//! The gateway: `POST /v1/payments` (validated, idempotent, answered 202
//! once `payment.submitted` is acked), `GET /v1/payments/{id}` from a read
//! model fed by the pipeline, and the card processor's signed webhook.

pub mod api;
pub mod auth;
pub mod config;
pub mod openapi;
pub mod payment_request;
pub mod problem;
pub mod rate_limit;
pub mod reason;
pub mod status;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use paystream_bus::{KafkaConfig, Producer, Readiness, ServiceError};
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, ConfigError};

pub const SERVICE: &str = "gateway";

/// Why the gateway could not start or stopped: a refused configuration, or
/// what any service on the bus can fail on.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

pub struct Server {
    listener: TcpListener,
    router: axum::Router,
    status: status::StatusFeed,
}

impl Server {
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        // Refused settings are refused before anything is connected.
        let keys = config.effective_api_keys()?;
        let producer_kafka = config.producer_kafka()?;
        Ok(Self::wire(config, keys, &producer_kafka).await?)
    }

    async fn wire(
        config: &Config,
        keys: auth::ApiKeys,
        producer_kafka: &KafkaConfig,
    ) -> Result<Self, ServiceError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(&config.database_url)
            .await?;
        let store = store::Store::new(pool);
        store.migrate().await?;
        let codec = config.registry.codec()?;
        let producer = Producer::new(producer_kafka, codec.clone(), SERVICE)?;
        let app = api::App {
            store: store.clone(),
            producer: producer.clone(),
            ack_timeout: config.accept_timeout(),
            webhook_secret: config
                .webhook_secret
                .as_ref()
                .map(|secret| Arc::from(secret.as_bytes())),
            readiness: Readiness::new(&config.kafka, &config.registry, store.pool().clone())?,
        };
        let limits = api::Limits {
            guard: auth::Guard::new(
                keys,
                config.rate_limit_per_client,
                config.unauthenticated_rate_limit,
            ),
            webhooks: rate_limit::PerIp::new(config.webhook_rate_limit),
            body: config.body_limit,
        };
        let router = api::router(app, limits);
        let listener = paystream_service_kit::bind(config.listen).await?;
        let status = status::StatusFeed {
            kafka: config.kafka.clone(),
            consumer: config.consumer.clone(),
            codec,
            dead_letters: Arc::new(producer),
            store,
        };
        Ok(Self {
            listener,
            router,
            status,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        paystream_service_kit::local_addr(&self.listener)
    }

    /// Serves until `shutdown`, with the status consumer beside the API.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        tracing::info!(addr = %self.local_addr(), "gateway listening");
        let status = tokio::spawn(self.status.run(shutdown.clone()));
        // The peer address is the client IP the unauthenticated and webhook
        // rate limits count by.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await
            .map_err(ServiceError::Serve);
        shutdown.cancel();
        let consumed = match status.await {
            Ok(result) => result.map_err(ServiceError::from),
            Err(_) => Ok(()),
        };
        Ok(served.and(consumed)?)
    }
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    Server::build(&config).await?.run(shutdown).await
}
