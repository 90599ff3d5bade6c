//! The validation service: consumes `payment.submitted` with key-ordered
//! concurrency (one debtor account's payments in order, accounts in
//! parallel), checks business rules, IP intelligence and AML screening, and
//! emits `payment.validated` or `payment.rejected` (and `aml.alert.raised`)
//! through a transactional outbox.

pub mod metrics;
pub mod providers;
pub mod rules;
pub mod screening;
pub mod validator;

use std::net::SocketAddr;
use std::time::Duration;

use paystream_bus::{ConsumerArgs, KafkaConfig, RegistryConfig};
use paystream_contract::PaymentSubmitted;
use paystream_service_kit::{Service, ServiceError};
use tokio_util::sync::CancellationToken;

use paystream_provider_client::{BuildError, ProviderClient, ProviderSettings};

pub const SERVICE: &str = "validation";
pub const GROUP: &str = "validation";

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_LISTEN",
        default_value = "127.0.0.1:8082"
    )]
    pub listen: SocketAddr,

    /// The service's PostgreSQL (decisions, screening audit, outbox).
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_DATABASE_URL",
        default_value = "postgres://validation:validation@127.0.0.1:5432/validation"
    )]
    pub database_url: String,

    /// Base URL of the IP-intelligence API.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_IP_INTELLIGENCE_URL",
        default_value = "http://127.0.0.1:8090/ip-intelligence"
    )]
    pub ip_intelligence_url: String,

    /// Base URL of the AML screening API.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_AML_URL",
        default_value = "http://127.0.0.1:8090/aml"
    )]
    pub aml_url: String,

    /// Calls in flight per provider at most.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_PROVIDER_CONCURRENCY",
        default_value_t = 256
    )]
    pub provider_concurrency: usize,

    /// Calls per second per provider at most: set to the provider's
    /// documented rate so it never has to throttle us.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_PROVIDER_RATE",
        default_value_t = 5_000
    )]
    pub provider_rate: u32,

    /// Timeout of one provider call.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_PROVIDER_TIMEOUT_MS",
        default_value_t = 2_000
    )]
    pub provider_timeout_ms: u64,

    /// Tries per provider call for timeouts, connection errors and 5xx.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_PROVIDER_ATTEMPTS",
        default_value_t = 3
    )]
    pub provider_attempts: u32,

    /// How long a payment waits for an unavailable screening provider before
    /// it is rejected unscreened (AML_UNAVAILABLE): screening fails closed.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_SCREENING_BOUND_MS",
        default_value_t = 30_000
    )]
    pub screening_bound_ms: u64,

    #[command(flatten)]
    pub rules: rules::Rules,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub registry: RegistryConfig,

    #[command(flatten)]
    pub consumer: ConsumerArgs,
}

impl Config {
    fn provider_settings(&self) -> ProviderSettings {
        ProviderSettings {
            concurrency: self.provider_concurrency,
            rate_per_second: self.provider_rate,
            timeout: Duration::from_millis(self.provider_timeout_ms),
            attempts: self.provider_attempts.max(1),
            user_agent: concat!("paystream-validation/", env!("CARGO_PKG_VERSION")).to_owned(),
            ..ProviderSettings::default()
        }
    }

    /// The IP-intelligence and AML clients.
    fn provider_clients(&self) -> Result<(ProviderClient, ProviderClient), BuildError> {
        let settings = self.provider_settings();
        Ok((
            ProviderClient::new(
                "ip-intelligence",
                &self.ip_intelligence_url,
                settings.clone(),
            )?,
            ProviderClient::new("aml", &self.aml_url, settings)?,
        ))
    }
}

/// Why validation could not start or stopped: a provider it cannot call as
/// configured, or what any service can fail on.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Provider(#[from] BuildError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The service's tables (decisions, the screening audit); the runtime adds its own.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The service, wired and bound, ready to run: one consumer group over
/// `payment.submitted`, deciding each payment once through the outbox.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    // Settings that cannot work fail before anything connects.
    let (ip_intelligence, aml) = config.provider_clients()?;
    let mut service = Service::builder(SERVICE, config.listen)
        .database(&config.database_url, &MIGRATOR)
        .kafka(&config.kafka, &config.registry, &config.consumer)
        .build()
        .await?;
    let validator = validator::Validator {
        rules: config.rules.clone(),
        ip_intelligence,
        aml,
        screening_bound: Duration::from_millis(config.screening_bound_ms),
    };
    service.consume::<PaymentSubmitted, _>(GROUP, [], validator);
    Ok(service)
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    Ok(build(&config).await?.run(shutdown).await?)
}
