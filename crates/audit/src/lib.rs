//! audit: an append-only, tamper-evident log of every record on every
//! contract topic and every dead-letter topic, and a payment's timeline
//! across the services.
//!
//! - [`consumer`] reads every topic under the cluster's prefix in a
//!   consumer group of its own and commits offsets only after the records
//!   are stored; [`record`] turns a record into an entry (bytes as
//!   received, the decoded event, its ids), never failing; [`headers`]
//!   keeps every header, losslessly.
//! - [`store`] appends each partition's records to that partition's hash
//!   chain ([`hash`]) in one transaction under the chain head's row lock.
//! - [`verify`] recomputes every chain; [`checkpoint`] signs the heads
//!   (Ed25519) into a file outside the table.
//! - [`timeline`] and [`api`]: `GET /v1/payments/{id}/timeline`.
//! - [`analytics`]: a second consumer group (`analytics`) over the card
//!   and payment topics, counting volume per hour, currency, corridor,
//!   merchant country and rejection reason; `GET /v1/analytics/...`.

pub mod analytics;
pub mod api;
pub mod checkpoint;
pub mod consumer;
pub mod hash;
pub mod headers;
pub mod metrics;
pub mod record;
pub mod store;
pub mod timeline;
pub mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use paystream_bus::{ConsumerArgs, KafkaConfig, RegistryConfig};
use paystream_service_kit::{Service, ServiceError};
use tokio_util::sync::CancellationToken;

pub use verify::{Report, verify};

pub const SERVICE: &str = "audit";
pub const GROUP: &str = "audit";

/// The audit's schema, applied by the service runtime with its own.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address of the timeline API, /healthz, /readyz and /metrics.
    #[arg(long, env = "PAYSTREAM_AUDIT_LISTEN", default_value = "127.0.0.1:8085")]
    pub listen: SocketAddr,

    /// The audit's PostgreSQL (the log and its chain heads).
    #[arg(
        long,
        env = "PAYSTREAM_AUDIT_DATABASE_URL",
        default_value = "postgres://audit:audit@127.0.0.1:5432/audit"
    )]
    pub database_url: String,

    /// Connections to PostgreSQL at most.
    #[arg(long, env = "PAYSTREAM_AUDIT_MAX_CONNECTIONS", default_value_t = 16)]
    pub max_connections: u32,

    /// The consumer group: one per audit log (every replica of it).
    #[arg(long, env = "PAYSTREAM_AUDIT_GROUP", default_value = GROUP)]
    pub group: String,

    /// Records stored per round at most (each partition's share in one
    /// transaction).
    #[arg(long, env = "PAYSTREAM_AUDIT_MAX_BATCH", default_value_t = 1_000)]
    pub max_batch: usize,

    /// How often new topics are looked for (dead-letter topics appear when
    /// a consumer group starts), in milliseconds.
    #[arg(
        long,
        env = "PAYSTREAM_AUDIT_TOPIC_REFRESH_MS",
        default_value_t = 10_000
    )]
    pub topic_refresh_ms: u64,

    /// Ed25519 key (PKCS#8 DER, made by `audit keygen`) that signs
    /// checkpoints of the chain heads. Unset: no checkpoints.
    #[arg(
        long,
        env = "PAYSTREAM_AUDIT_CHECKPOINT_KEY",
        requires = "checkpoint_dir"
    )]
    pub checkpoint_key: Option<PathBuf>,

    /// Where signed checkpoints are appended (`checkpoints.jsonl`): a place
    /// the database's users cannot rewrite.
    #[arg(long, env = "PAYSTREAM_AUDIT_CHECKPOINT_DIR")]
    pub checkpoint_dir: Option<PathBuf>,

    /// How often a checkpoint is signed while the chains grow.
    #[arg(
        long,
        env = "PAYSTREAM_AUDIT_CHECKPOINT_INTERVAL_MS",
        default_value_t = 60_000
    )]
    pub checkpoint_interval_ms: u64,

    /// Run the analytics group beside the log (`false` for a log alone).
    #[arg(
        long,
        env = "PAYSTREAM_AUDIT_ANALYTICS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub analytics: bool,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub registry: RegistryConfig,

    #[command(flatten)]
    pub consumer: ConsumerArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The service, wired and bound, ready to run.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    metrics::init();
    let key = config
        .checkpoint_key
        .as_deref()
        .map(checkpoint::load_key)
        .transpose()?;
    let mut service = Service::builder(SERVICE, config.listen)
        .database(&config.database_url, &MIGRATOR)
        .max_connections(config.max_connections)
        .kafka(&config.kafka, &config.registry, &config.consumer)
        .build()
        .await?;
    let Some(pool) = service.pool().cloned() else {
        return Err(ServiceError::Config("audit runs with a database".into()).into());
    };
    let reader = record::Reader::new(
        service.producer().codec().clone(),
        &config.kafka.topic_prefix,
    );
    let checkpoints = match (key, &config.checkpoint_dir) {
        (Some(key), Some(dir)) => Some(Arc::new(checkpoint::Checkpoints::new(
            key,
            dir,
            pool.clone(),
        ))),
        _ => None,
    };
    let consumer = consumer::AuditConsumer {
        kafka: config.kafka.clone(),
        settings: consumer::Settings {
            group: config.group.clone(),
            max_batch: config.max_batch,
            topic_refresh: Duration::from_millis(config.topic_refresh_ms),
            decode_retry: config.consumer.retry_schedule.0.clone(),
        },
        reader: reader.clone(),
        pool: pool.clone(),
    };
    service
        .task(move |shutdown| consumer.run(shutdown))
        .routes(api::router(pool.clone(), reader, checkpoints.clone()));
    if config.analytics {
        service
            .consume::<paystream_contract::AnyEvent, _>(
                analytics::GROUP,
                analytics::TOPICS,
                analytics::Analytics,
            )
            .routes(analytics::api::router(pool));
    }
    if let Some(checkpoints) = checkpoints {
        let interval = Duration::from_millis(config.checkpoint_interval_ms.max(10));
        service.task(move |shutdown| async move {
            checkpoints.run(interval, shutdown).await;
            Ok(())
        });
    }
    Ok(service)
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    build(&config).await?.run(shutdown).await?;
    Ok(())
}
