//! rtgs-gateway: debited credit transfers go to the RTGS rail as ISO 20022
//! pacs.008, each exactly once under its payment's UETR, and the rail's
//! pacs.002 outcome comes back to the pipeline as `rtgs.settled` or
//! `rtgs.rejected`.
//!
//! - [`intake`] consumes `account.debited` and records each credit transfer
//!   (SUBMITTING) with its pacs.008, in the transaction of the processed
//!   eventId.
//! - [`sender`] sends recorded submissions and resolves those whose outcome
//!   is not known, by status query, never under a new UETR.
//! - [`api`] takes the rail's signed callbacks; [`outcome`] applies every
//!   report (callback, answer or status) once, with its events through the
//!   outbox.

pub mod api;
pub mod intake;
pub mod metrics;
pub mod outcome;
pub mod sender;
pub mod state;
pub mod store;
pub mod transfer;

use std::net::SocketAddr;
use std::time::Duration;

use paystream_bus::{ConsumerArgs, KafkaConfig, RegistryConfig};
use paystream_contract::AccountDebited;
use paystream_provider_client::{BuildError, ProviderClient, ProviderSettings};
use paystream_service_kit::{Service, ServiceError};
use tokio_util::sync::CancellationToken;

pub use state::State;

pub const SERVICE: &str = "rtgs-gateway";
pub const GROUP: &str = "rtgs-gateway";
/// The provider name of the rail in the client's metrics.
pub const RAIL: &str = "rtgs";

/// The gateway's schema, applied by the service runtime with its own.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address of the callback endpoint, the submissions API, /healthz,
    /// /readyz and /metrics.
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8084"
    )]
    pub listen: SocketAddr,

    /// The gateway's PostgreSQL (submissions, status reports, outbox).
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_DATABASE_URL",
        default_value = "postgres://rtgs_gateway:rtgs_gateway@127.0.0.1:5432/rtgs_gateway"
    )]
    pub database_url: String,

    /// Connections to PostgreSQL at most.
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_MAX_CONNECTIONS",
        default_value_t = 32
    )]
    pub max_connections: u32,

    /// Base URL of the rail (its pacs.008 and status endpoints are below it).
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_RAIL_URL",
        default_value = "http://127.0.0.1:8090/rtgs"
    )]
    pub rail_url: String,

    /// Shared secret of the rail's callback signatures (Standard Webhooks:
    /// `webhook-signature: v1,<base64 HMAC-SHA256>`).
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_RAIL_CALLBACK_SECRET",
        default_value = "dev-rail-secret",
        hide_env_values = true
    )]
    pub rail_callback_secret: String,

    /// How far a callback's timestamp may be from this clock, in seconds.
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_CALLBACK_TOLERANCE_S",
        default_value_t = 300
    )]
    pub callback_tolerance_s: u64,

    /// Calls to the rail in flight at most: submissions waiting on the rail
    /// at once.
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_RAIL_CONCURRENCY",
        default_value_t = 1024
    )]
    pub rail_concurrency: usize,

    /// Calls per second to the rail at most (its documented rate).
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_RAIL_RATE",
        default_value_t = 5_000
    )]
    pub rail_rate: u32,

    /// Timeout of one call to the rail.
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_RAIL_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub rail_timeout_ms: u64,

    /// Tries per call for timeouts, connection errors and 5xx; each try
    /// carries the same document under the same UETR.
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_RAIL_ATTEMPTS",
        default_value_t = 2
    )]
    pub rail_attempts: u32,

    /// How long an acknowledged submission waits for its callback before
    /// its status is asked for.
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_POLL_AFTER_MS",
        default_value_t = 30_000
    )]
    pub poll_after_ms: u64,

    /// Longest wait between tries while the rail is unreachable.
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_RETRY_MAX_MS",
        default_value_t = 30_000
    )]
    pub retry_max_ms: u64,

    /// How often due submissions are looked for when none is announced.
    #[arg(long, env = "PAYSTREAM_RTGS_GATEWAY_SCAN_MS", default_value_t = 1_000)]
    pub scan_ms: u64,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub registry: RegistryConfig,

    #[command(flatten)]
    pub consumer: ConsumerArgs,
}

impl Config {
    fn rail(&self) -> Result<ProviderClient, BuildError> {
        ProviderClient::new(
            RAIL,
            &self.rail_url,
            ProviderSettings {
                concurrency: self.rail_concurrency.max(1),
                rate_per_second: self.rail_rate.max(1),
                timeout: Duration::from_millis(self.rail_timeout_ms),
                attempts: self.rail_attempts.max(1),
                user_agent: concat!("paystream-rtgs-gateway/", env!("CARGO_PKG_VERSION"))
                    .to_owned(),
                ..ProviderSettings::default()
            },
        )
    }

    fn pacing(&self) -> sender::Pacing {
        let timeout = Duration::from_millis(self.rail_timeout_ms);
        sender::Pacing {
            in_flight: self.rail_concurrency.max(1),
            // Every try of a call, and a margin for the database.
            lease: timeout * self.rail_attempts.max(1) + Duration::from_secs(5),
            poll_after: Duration::from_millis(self.poll_after_ms),
            retry_first: Duration::from_millis(200),
            retry_max: Duration::from_millis(self.retry_max_ms),
            scan: Duration::from_millis(self.scan_ms.max(10)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the rail client: {0}")]
    Rail(#[from] BuildError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The service, wired and bound, ready to run.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    metrics::init();
    let rail = config.rail()?;
    let mut service = Service::builder(SERVICE, config.listen)
        .database(&config.database_url, &MIGRATOR)
        .max_connections(config.max_connections)
        .kafka(&config.kafka, &config.registry, &config.consumer)
        .build()
        .await?;
    let (Some(pool), Some(outbox)) = (service.pool().cloned(), service.outbox().cloned()) else {
        return Err(ServiceError::Config("rtgs-gateway runs with a database".into()).into());
    };
    let pacing = config.pacing();
    let outcomes = outcome::Outcomes::new(pool.clone(), outbox, pacing.poll_after);
    let sender = sender::Sender::new(pool.clone(), rail, outcomes.clone(), pacing);
    service
        .consume::<AccountDebited, _>(GROUP, [], intake::Intake)
        .task(move |shutdown| async move {
            sender.run(shutdown).await;
            Ok(())
        })
        .routes(api::router(
            pool,
            outcomes,
            &config.rail_callback_secret,
            Duration::from_secs(config.callback_tolerance_s),
        ));
    Ok(service)
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    build(&config).await?.run(shutdown).await?;
    Ok(())
}
