//! The cbs-debit service: two consumer groups over the ledger and an
//! account API, on the shared service runtime.
//!
//! - `cbs-debit` reads `payment.validated`, `rtgs.settled` and
//!   `rtgs.rejected`: hold, post, void ([`payments`]).
//! - `ledger` reads `card.transaction.received`: card postings ([`cards`]).

mod api;
mod cards;
pub mod metrics;
mod payments;

use std::net::SocketAddr;

use paystream_bus::{ConsumerArgs, HandlerError, KafkaConfig, RegistryConfig};
use paystream_contract::{AnyEvent, CardTransactionReceived};
use paystream_service_kit::{Service, ServiceError};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::MIGRATOR;
use crate::ledger::{LedgerError, Refusal};

pub const SERVICE: &str = "cbs-debit";
/// The group that places, posts and voids the holds of credit transfers.
pub const PAYMENTS_GROUP: &str = "cbs-debit";
/// The group that posts card transactions, named for the ledger beside the
/// card topic's other groups (notifications, analytics).
pub const CARDS_GROUP: &str = "ledger";

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address of the account API, /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "PAYSTREAM_CBS_DEBIT_LISTEN",
        default_value = "127.0.0.1:8083"
    )]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Connections to PostgreSQL at most: one per record in flight at best.
    #[arg(
        long,
        env = "PAYSTREAM_CBS_DEBIT_MAX_CONNECTIONS",
        default_value_t = 32
    )]
    pub max_connections: u32,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub registry: RegistryConfig,

    #[command(flatten)]
    pub consumer: ConsumerArgs,
}

/// The ledger's database, shared by the service and the operator commands.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// The ledger's PostgreSQL (accounts, transfers, decisions, outbox).
    #[arg(
        id = "database_url",
        long = "database-url",
        env = "PAYSTREAM_CBS_DEBIT_DATABASE_URL",
        default_value = "postgres://cbs_debit:cbs_debit@127.0.0.1:5432/cbs_debit"
    )]
    pub url: String,
}

/// The service, wired and bound, ready to run.
pub async fn build(config: &Config) -> Result<Service, ServiceError> {
    metrics::init();
    let mut service = Service::builder(SERVICE, config.listen)
        .database(&config.database.url, &MIGRATOR)
        .max_connections(config.max_connections)
        .kafka(&config.kafka, &config.registry, &config.consumer)
        .build()
        .await?;
    let pool = service
        .pool()
        .cloned()
        .ok_or_else(|| ServiceError::Config("the ledger runs with a database".into()))?;
    service
        .consume::<AnyEvent, _>(PAYMENTS_GROUP, payments::TOPICS, payments::Payments)
        .consume::<CardTransactionReceived, _>(CARDS_GROUP, [], cards::Cards)
        .routes(api::router(pool));
    Ok(service)
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServiceError> {
    build(&config).await?.run(shutdown).await
}

/// What the runtime should do about a ledger error: retry what a retry can
/// cure (a lost connection, a concurrent duplicate that the retry will
/// find), dead-letter the rest with its reason.
fn ledger_error(error: LedgerError) -> HandlerError {
    match error {
        LedgerError::Database(error) => HandlerError::from(error),
        raced @ LedgerError::Raced { .. } => HandlerError::transient(raced),
        other => HandlerError::permanent(other),
    }
}

/// Records the ledger's answer to a payment. A concurrent delivery of the
/// same payment under another eventId that decided first makes this
/// insert fail on the key: a retry, which then finds that decision.
async fn record_decision(
    tx: &mut PgConnection,
    payment_id: Uuid,
    refusal: Option<&Refusal>,
    event_id: Uuid,
) -> Result<(), HandlerError> {
    let (decision, reason) = match refusal {
        None => ("HELD", None),
        Some(refusal) => ("REFUSED", Some(refusal.code.code())),
    };
    sqlx::query(
        "INSERT INTO debit_decisions (payment_id, decision, reason_code, event_id) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(payment_id)
    .bind(decision)
    .bind(reason)
    .bind(event_id)
    .execute(tx)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => HandlerError::transient(format!(
            "payment {payment_id} was decided concurrently by another delivery; retrying finds it"
        )),
        _ => HandlerError::from(error),
    })?;
    Ok(())
}
