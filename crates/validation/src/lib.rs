//! The validation service: consumes `payment.submitted` with key-ordered
//! concurrency (one debtor account's payments in order, accounts in
//! parallel), checks business rules, IP intelligence and AML screening, and
//! emits `payment.validated` or `payment.rejected` (and `aml.alert.raised`)
//! through a transactional outbox.

pub mod batching;
pub mod decisions;
pub mod metrics;
pub mod outcome;
pub mod providers;
pub mod rules;
pub mod screening;
#[cfg(test)]
mod test_sandbox;
pub mod validator;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use paystream_bus::{Consumer, ConsumerArgs, Effects, KafkaConfig, RegistryConfig};
use paystream_contract::PaymentSubmitted;
use paystream_service_kit::{Service, ServiceError};
use tokio_util::sync::CancellationToken;

use paystream_provider_client::{BuildError, Protocol, ProviderClient, ProviderSettings};

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

    /// Which HTTP the provider calls speak: auto (HTTP/2 where TLS
    /// negotiates it, else HTTP/1.1) or http2 (HTTP/2 only, cleartext
    /// included, for providers known to speak it).
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_PROVIDER_PROTOCOL",
        default_value_t = Protocol::Auto
    )]
    pub provider_protocol: Protocol,

    /// Calls per second per provider at most, for a provider without a rate
    /// of its own below: set to the provider's documented rate so it never
    /// has to throttle us. A provider announcing a lower rate in its
    /// RateLimit headers is kept under that instead.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_PROVIDER_RATE",
        default_value_t = 5_000
    )]
    pub provider_rate: u32,

    /// Calls sent at once at most per provider after a quiet spell, for a
    /// provider without a burst of its own below [default: one second of
    /// the provider's rate].
    #[arg(long, env = "PAYSTREAM_VALIDATION_PROVIDER_BURST")]
    pub provider_burst: Option<u32>,

    /// The IP-intelligence provider's rate [default: PROVIDER_RATE].
    #[arg(long, env = "PAYSTREAM_VALIDATION_IP_INTELLIGENCE_RATE")]
    pub ip_intelligence_rate: Option<u32>,

    /// The IP-intelligence provider's burst [default: PROVIDER_BURST].
    #[arg(long, env = "PAYSTREAM_VALIDATION_IP_INTELLIGENCE_BURST")]
    pub ip_intelligence_burst: Option<u32>,

    /// The AML screening provider's rate [default: PROVIDER_RATE].
    #[arg(long, env = "PAYSTREAM_VALIDATION_AML_RATE")]
    pub aml_rate: Option<u32>,

    /// The AML screening provider's burst [default: PROVIDER_BURST].
    #[arg(long, env = "PAYSTREAM_VALIDATION_AML_BURST")]
    pub aml_burst: Option<u32>,

    /// Checks one provider call carries at most: the checks of payments
    /// decided at the same time share a batch call (1 sends each on its own).
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_PROVIDER_BATCH_SIZE",
        default_value_t = 100
    )]
    pub provider_batch_size: usize,

    /// Batch calls in flight at once per provider; while all are, checks
    /// queue for the next call. A quiet service sends each check at once.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_PROVIDER_BATCH_CALLS",
        default_value_t = 16
    )]
    pub provider_batch_calls: usize,

    /// How long a batch call waits after its first check for more to join
    /// it (unless it fills first).
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_PROVIDER_BATCH_LINGER_MS",
        default_value_t = 5
    )]
    pub provider_batch_linger_ms: u64,

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
    /// One provider's settings: its own rate and burst if it has them, the
    /// shared ones otherwise (each provider documents its own limit).
    fn provider_settings(&self, rate: Option<u32>, burst: Option<u32>) -> ProviderSettings {
        ProviderSettings {
            concurrency: self.provider_concurrency,
            rate_per_second: rate.unwrap_or(self.provider_rate),
            burst: burst.or(self.provider_burst),
            timeout: Duration::from_millis(self.provider_timeout_ms),
            attempts: self.provider_attempts.max(1),
            user_agent: concat!("paystream-validation/", env!("CARGO_PKG_VERSION")).to_owned(),
            protocol: self.provider_protocol,
            ..ProviderSettings::default()
        }
    }

    /// The IP-intelligence and AML clients.
    fn provider_clients(&self) -> Result<(ProviderClient, ProviderClient), BuildError> {
        Ok((
            ProviderClient::new(
                "ip-intelligence",
                &self.ip_intelligence_url,
                self.provider_settings(self.ip_intelligence_rate, self.ip_intelligence_burst),
            )?,
            ProviderClient::new(
                "aml",
                &self.aml_url,
                self.provider_settings(self.aml_rate, self.aml_burst),
            )?,
        ))
    }
}

/// Why validation could not start or stopped: a provider it cannot call as
/// configured, or what any service can fail on.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Provider(#[from] BuildError),
    #[error("provider batches: {0}")]
    Batch(#[from] batching::BatchLimitsError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The service's tables (decisions, the screening audit); the runtime adds its own.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The service, wired and bound, ready to run: one consumer group over
/// `payment.submitted`, deciding each payment once through the outbox.
///
/// The decision writer, not the runtime, commits each payment's effects with
/// its processed `eventId` and outbox rows, in transactions shared by the
/// payments decided together ([`decisions`]). So the consumer runs with the
/// runtime's database-less effects, under which the runtime opens no
/// transaction of its own per record; the handler returns only after its
/// payment's commit, so offsets still move only past committed payments.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    // Settings that cannot work fail before anything connects.
    let (ip_intelligence, aml) = config.provider_clients()?;
    let batches = batching::BatchLimits::new(
        config.provider_batch_size,
        config.provider_batch_calls,
        Duration::from_millis(config.provider_batch_linger_ms),
    )?;
    let mut service = Service::builder(SERVICE, config.listen)
        .database(&config.database_url, &MIGRATOR)
        .kafka(&config.kafka, &config.registry, &config.consumer)
        .build()
        .await?;
    let (Some(pool), Some(outbox)) = (service.pool().cloned(), service.outbox().cloned()) else {
        return Err(ServiceError::Config("validation needs its database".into()).into());
    };
    let validator = validator::Validator {
        rules: config.rules.clone(),
        ip_intelligence: batching::Batcher::start(ip_intelligence, screening::IP_BATCH, batches),
        aml: batching::Batcher::start(aml, screening::AML_BATCH, batches),
        screening_bound: Duration::from_millis(config.screening_bound_ms),
        decisions: decisions::Decisions::start(pool, outbox, GROUP),
    };
    let consumer = Consumer::<PaymentSubmitted>::new(
        config.kafka.clone(),
        config.consumer.settings(GROUP),
        config.registry.codec().map_err(ServiceError::from)?,
        Arc::new(service.producer().clone()),
    );
    let effects = Effects::AtLeastOnce {
        producer: service.producer().clone(),
    };
    service.task(move |shutdown| async move {
        consumer
            .run(effects, validator, shutdown)
            .await
            .map_err(ServiceError::from)
    });
    Ok(service)
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    Ok(build(&config).await?.run(shutdown).await?)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    /// The IP-intelligence and AML clients `args` configure, or why not.
    fn clients(args: &[&str]) -> Result<[ProviderClient; 2], String> {
        let cli = Cli::try_parse_from(std::iter::once("validation").chain(args.iter().copied()))
            .map_err(|error| error.to_string())?;
        let (ip, aml) = cli
            .config
            .provider_clients()
            .map_err(|error| error.to_string())?;
        Ok([ip, aml])
    }

    fn rates(args: &[&str]) -> [(u32, Option<u32>); 2] {
        clients(args)
            .unwrap_or_else(|error| panic!("{error}"))
            .map(|client| (client.settings().rate_per_second, client.settings().burst))
    }

    #[test]
    fn each_provider_has_its_own_rate_and_burst_or_the_shared_ones() {
        assert_eq!(
            rates(&["--provider-rate", "100"]),
            [(100, None), (100, None)]
        );
        assert_eq!(
            rates(&[
                "--provider-rate",
                "100",
                "--provider-burst",
                "10",
                "--aml-rate",
                "20",
                "--aml-burst",
                "5",
            ]),
            [(100, Some(10)), (20, Some(5))]
        );
        assert_eq!(
            rates(&[
                "--ip-intelligence-rate",
                "50",
                "--ip-intelligence-burst",
                "2"
            ]),
            [(50, Some(2)), (5_000, None)]
        );
    }

    #[test]
    fn the_provider_protocol_is_auto_unless_http2_is_asked_for() {
        let protocols = |args: &[&str]| {
            clients(args).map(|clients| clients.map(|client| client.settings().protocol))
        };
        assert_eq!(protocols(&[]), Ok([Protocol::Auto; 2]));
        assert_eq!(
            protocols(&["--provider-protocol", "http2"]),
            Ok([Protocol::Http2; 2])
        );
        let refused = protocols(&["--provider-protocol", "h3"]).unwrap_err();
        assert!(refused.contains("auto or http2"), "{refused}");
    }
}
