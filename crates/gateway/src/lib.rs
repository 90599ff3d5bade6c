//! The gateway: `POST /v1/payments` (validated, idempotent, answered 202
//! once `payment.submitted` is acked), `GET /v1/payments/{id}` from a read
//! model fed by the pipeline, and the card processor's signed webhook.

pub mod api;
pub mod auth;
pub mod openapi;
pub mod payment_request;
pub mod problem;
pub mod status;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use paystream_bus::{ConsumerArgs, KafkaConfig, RegistryConfig};
use paystream_contract::AnyEvent;
use paystream_service_kit::Service;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "gateway";

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the API listens on.
    #[arg(
        long,
        env = "PAYSTREAM_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// The gateway's PostgreSQL (idempotency keys, status read model);
    /// migrated at start-up.
    #[arg(
        long,
        env = "PAYSTREAM_GATEWAY_DATABASE_URL",
        default_value = "postgres://gateway:gateway@127.0.0.1:5432/gateway"
    )]
    pub database_url: String,

    /// API clients as `CLIENT:SHA256HEX` pairs, comma-separated (the hash of
    /// the key; `gateway hash-api-key KEY` prints it). Empty: only the local
    /// development key `paystream-dev-key` (client `dev`) is accepted.
    #[arg(long, env = "PAYSTREAM_GATEWAY_API_KEYS", default_value = "")]
    pub api_keys: auth::ApiKeys,

    /// Requests per second each API client may make to /v1/payments.
    #[arg(long, env = "PAYSTREAM_GATEWAY_RATE_LIMIT", default_value_t = 1_000)]
    pub rate_limit_per_client: u32,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PAYSTREAM_GATEWAY_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,

    /// How long a request waits for the broker's ack before answering 503.
    #[arg(
        long,
        env = "PAYSTREAM_GATEWAY_ACK_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub accept_timeout_ms: u64,

    /// Shared secret of the card processor's webhook signatures. Unset: the
    /// webhook endpoint answers 503.
    #[arg(long, env = "PAYSTREAM_GATEWAY_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub registry: RegistryConfig,

    #[command(flatten)]
    pub consumer: ConsumerArgs,
}

pub use paystream_service_kit::ServiceError as StartError;

pub struct Server {
    service: Service,
}

impl Server {
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        let mut service = Service::builder(SERVICE, config.listen)
            .database(&config.database_url, &store::MIGRATOR)
            .max_connections(16)
            .kafka(&config.kafka, &config.registry, &config.consumer)
            .build()
            .await?;
        let pool = service
            .pool()
            .cloned()
            .ok_or_else(|| StartError::Config("the gateway needs its database".into()))?;
        let store = store::Store::new(pool);
        let keys = if config.api_keys.is_empty() {
            tracing::warn!("no PAYSTREAM_GATEWAY_API_KEYS: accepting only the development key");
            auth::ApiKeys::dev()
        } else {
            config.api_keys.clone()
        };
        let app = api::App {
            store: store.clone(),
            producer: service.producer().clone(),
            ack_timeout: Duration::from_millis(config.accept_timeout_ms),
            webhook_secret: config
                .webhook_secret
                .as_ref()
                .map(|secret| Arc::from(secret.as_bytes())),
        };
        service.routes(api::router(
            app,
            auth::Guard::new(keys, config.rate_limit_per_client),
            config.body_limit,
        ));
        service.consume::<AnyEvent, _>(status::GROUP, status::TOPICS, status::StatusFeed);
        Ok(Self { service })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.service.local_addr()
    }

    /// Serves the API and keeps the status read model up to date until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        self.service.run(shutdown).await
    }
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    Server::build(&config).await?.run(shutdown).await
}
