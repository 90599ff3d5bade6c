//! Idempotent consumers: each `eventId` takes effect once per consumer group,
//! however many times Kafka delivers it.
//!
//! The handler's database effects and the record of the event id commit in
//! one PostgreSQL transaction, so a crash leaves either both or neither: a
//! redelivery after a crash finds the id and is skipped, or finds nothing and
//! does the work for the first time. This holds on any broker, transactions
//! or not.

use paystream_contract::Event;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::consumer::{Handler, Record};
use crate::error::HandlerError;
use crate::metrics::METRICS;

/// The table, for services that create it in their own migrations.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bus_processed_events (
    consumer_group TEXT        NOT NULL,
    event_id       UUID        NOT NULL,
    topic          TEXT        NOT NULL,
    processed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
)";

/// Creates the processed-events table if it is missing.
pub async fn install(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(SCHEMA).execute(pool).await.map(drop)
}

/// Records that `group` processed `event_id`, inside the caller's
/// transaction. False if it already had: the caller must then do nothing.
pub async fn claim(
    connection: &mut PgConnection,
    group: &str,
    event_id: Uuid,
    topic: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO bus_processed_events (consumer_group, event_id, topic)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(group)
    .bind(event_id)
    .bind(topic)
    .execute(connection)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// A handler whose effects are database writes in the transaction it is given.
pub trait TransactionalHandler<E: Event>: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        record: &'a Record<E>,
        transaction: &'a mut PgConnection,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;
}

/// Runs a [`TransactionalHandler`] at most once per event id and group.
pub struct Idempotent<H> {
    pool: PgPool,
    handler: H,
}

impl<H> Idempotent<H> {
    /// The table must exist ([`install`] or the service's migrations).
    pub fn new(pool: PgPool, handler: H) -> Self {
        Self { pool, handler }
    }
}

impl<E: Event, H: TransactionalHandler<E>> Handler<E> for Idempotent<H> {
    async fn handle(&self, record: Record<E>) -> Result<(), HandlerError> {
        let event_id = record.event.envelope().event_id;
        let mut transaction = self.pool.begin().await?;
        if !claim(
            &mut transaction,
            &record.meta.group,
            event_id,
            &record.meta.topic,
        )
        .await?
        {
            transaction.rollback().await?;
            METRICS
                .duplicates_skipped
                .with_label_values(&[record.meta.topic.as_str(), &*record.meta.group])
                .inc();
            tracing::info!(%event_id, "already processed; skipping the duplicate");
            return Ok(());
        }
        self.handler.handle(&record, &mut transaction).await?;
        transaction.commit().await?;
        Ok(())
    }

    fn delivery(&self) -> &'static str {
        "effectively once: effects and the processed eventId commit in one PostgreSQL transaction"
    }
}
