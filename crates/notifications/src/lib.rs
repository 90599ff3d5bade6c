//! notifications: tells customers what happened to their payments and card
//! transactions — rejected, debited, settled, returned, card payments — by
//! SMS or e-mail through a provider, never twice.
//!
//! - [`intake`] consumes the events and records one notification per
//!   channel the customer has, its id deterministic (payment, kind,
//!   channel, recipient), in the transaction of the processed eventId.
//! - [`deliver`] sends them under that id as `Idempotency-Key` and marks
//!   them sent with `notification.sent`, in one transaction.

pub mod api;
pub mod deliver;
pub mod intake;
pub mod message;
pub mod metrics;
pub mod store;

use std::net::SocketAddr;
use std::time::Duration;

use paystream_bus::{ConsumerArgs, KafkaConfig, RegistryConfig};
use paystream_contract::AnyEvent;
use paystream_provider_client::{BuildError, ProviderClient, ProviderSettings};
use paystream_service_kit::{Service, ServiceError};
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "notifications";
pub const GROUP: &str = "notifications";
/// The provider name in the client's metrics.
pub const PROVIDER: &str = "notify";

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The service's database, shared by the service and `contacts load`.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// The service's PostgreSQL (contacts, notifications, outbox).
    #[arg(
        id = "database_url",
        long = "database-url",
        env = "PAYSTREAM_NOTIFICATIONS_DATABASE_URL",
        default_value = "postgres://notifications:notifications@127.0.0.1:5432/notifications"
    )]
    pub url: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address of the notifications API, /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "PAYSTREAM_NOTIFICATIONS_LISTEN",
        default_value = "127.0.0.1:8086"
    )]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Connections to PostgreSQL at most.
    #[arg(
        long,
        env = "PAYSTREAM_NOTIFICATIONS_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub max_connections: u32,

    /// Base URL of the notification provider.
    #[arg(
        long,
        env = "PAYSTREAM_NOTIFICATIONS_PROVIDER_URL",
        default_value = "http://127.0.0.1:8090/notify"
    )]
    pub provider_url: String,

    /// Calls to the provider in flight at most.
    #[arg(
        long,
        env = "PAYSTREAM_NOTIFICATIONS_PROVIDER_CONCURRENCY",
        default_value_t = 256
    )]
    pub provider_concurrency: usize,

    /// Calls per second at most: the provider's documented rate.
    #[arg(
        long,
        env = "PAYSTREAM_NOTIFICATIONS_PROVIDER_RATE",
        default_value_t = 1_000
    )]
    pub provider_rate: u32,

    /// Timeout of one call to the provider.
    #[arg(
        long,
        env = "PAYSTREAM_NOTIFICATIONS_PROVIDER_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub provider_timeout_ms: u64,

    /// How long the provider remembers an Idempotency-Key (its documented
    /// window). A notification unconfirmed for longer is asked about, not
    /// sent again.
    #[arg(
        long,
        env = "PAYSTREAM_NOTIFICATIONS_PROVIDER_IDEMPOTENCY_WINDOW_S",
        default_value_t = 86_400
    )]
    pub provider_idempotency_window_s: u64,

    /// Longest wait between tries while the provider is unreachable.
    #[arg(
        long,
        env = "PAYSTREAM_NOTIFICATIONS_RETRY_MAX_MS",
        default_value_t = 30_000
    )]
    pub retry_max_ms: u64,

    /// How often due notifications are looked for when none is announced.
    #[arg(long, env = "PAYSTREAM_NOTIFICATIONS_SCAN_MS", default_value_t = 1_000)]
    pub scan_ms: u64,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub registry: RegistryConfig,

    #[command(flatten)]
    pub consumer: ConsumerArgs,
}

impl Config {
    fn provider(&self) -> Result<ProviderClient, BuildError> {
        ProviderClient::new(
            PROVIDER,
            &self.provider_url,
            ProviderSettings {
                concurrency: self.provider_concurrency.max(1),
                rate_per_second: self.provider_rate.max(1),
                timeout: Duration::from_millis(self.provider_timeout_ms),
                // One try per claim: the deliverer retries, under its lease.
                attempts: 1,
                user_agent: concat!("paystream-notifications/", env!("CARGO_PKG_VERSION"))
                    .to_owned(),
                ..ProviderSettings::default()
            },
        )
    }

    fn pacing(&self) -> deliver::Pacing {
        deliver::Pacing {
            in_flight: self.provider_concurrency.max(1),
            lease: Duration::from_millis(self.provider_timeout_ms) + Duration::from_secs(5),
            retry_first: Duration::from_millis(200),
            retry_max: Duration::from_millis(self.retry_max_ms),
            scan: Duration::from_millis(self.scan_ms.max(10)),
            idempotency_window: Duration::from_secs(self.provider_idempotency_window_s),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the provider client: {0}")]
    Provider(#[from] BuildError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The service, wired and bound, ready to run.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    metrics::init();
    let provider = config.provider()?;
    let mut service = Service::builder(SERVICE, config.listen)
        .database(&config.database.url, &MIGRATOR)
        .max_connections(config.max_connections)
        .kafka(&config.kafka, &config.registry, &config.consumer)
        .build()
        .await?;
    let (Some(pool), Some(outbox)) = (service.pool().cloned(), service.outbox().cloned()) else {
        return Err(ServiceError::Config("notifications runs with a database".into()).into());
    };
    let deliverer = deliver::Deliverer::new(pool.clone(), outbox, provider, config.pacing());
    service
        .consume::<AnyEvent, _>(GROUP, intake::TOPICS, intake::Intake)
        .task(move |shutdown| async move {
            deliverer.run(shutdown).await;
            Ok(())
        })
        .routes(api::router(pool));
    Ok(service)
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    build(&config).await?.run(shutdown).await?;
    Ok(())
}

/// Connects to the service's database and applies its schema, for the
/// operator commands.
pub async fn connect(database: &DatabaseArgs) -> Result<sqlx::PgPool, ServiceError> {
    let pool = sqlx::PgPool::connect(&database.url)
        .await
        .map_err(|error| ServiceError::Config(format!("database: {error}")))?;
    paystream_service_kit::migrate(&pool, &MIGRATOR).await?;
    Ok(pool)
}
