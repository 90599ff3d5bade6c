//! The transactional outbox: events a handler decides to emit are written to
//! the service's PostgreSQL in the same transaction as its effects, and a
//! relay publishes them, deleting each row only after the broker acked it.
//! A crash anywhere leaves either the decision and its events, or neither,
//! and never two different decisions; a crash after the ack and before the
//! delete sends a row again, with the same event id, which consumers dedupe.
//! This is what Debezium's outbox does through change data capture, without
//! a connector to run: brokers without transactions (nisshi) lose nothing.
//!
//! Rows hold the record exactly as it will be sent (key, Confluent-framed
//! value, headers), prepared by [`Producer::prepare`] inside the handler, so
//! the envelope is stamped from the input (correlation, causation, a stable
//! event id) and the trace continues the input's.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use paystream_contract::Event;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::{HandlerError, ProduceError};
use crate::headers::HeaderList;
use crate::metrics::METRICS;
use crate::producer::Producer;

/// The table, for services that create it in their own migrations.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bus_outbox (
    id         BIGSERIAL   PRIMARY KEY,
    topic      TEXT        NOT NULL,
    key        BYTEA,
    value      BYTEA       NOT NULL,
    headers    JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// Creates the outbox table if it is missing.
pub async fn install(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(SCHEMA).execute(pool).await.map(drop)
}

/// Stages events in a transaction and wakes the relay once it commits.
#[derive(Clone)]
pub struct Outbox {
    producer: Producer,
    wake: Arc<Notify>,
}

// Header values are bytes; base64 keeps any of them intact in JSONB.
fn headers_to_json(headers: &HeaderList) -> serde_json::Value {
    serde_json::Value::Array(
        headers
            .iter()
            .map(|(name, value)| serde_json::json!([name, BASE64.encode(value)]))
            .collect(),
    )
}

fn headers_from_json(value: &serde_json::Value) -> HeaderList {
    value
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|pair| {
                    let name = pair.get(0)?.as_str()?;
                    let value = BASE64.decode(pair.get(1)?.as_str()?).ok()?;
                    Some((name.to_owned(), value))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Outbox {
    pub fn new(producer: Producer) -> Self {
        Self {
            producer,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Writes `event` to the outbox inside `transaction`. Call inside a bus
    /// handler so the envelope is stamped from the record being handled.
    pub async fn stage<E: Event>(
        &self,
        transaction: &mut PgConnection,
        event: E,
    ) -> Result<(), HandlerError> {
        let prepared = self.producer.prepare(event).await?;
        sqlx::query("INSERT INTO bus_outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)")
            .bind(&prepared.topic)
            .bind(&prepared.key)
            .bind(&prepared.value)
            .bind(headers_to_json(&prepared.headers))
            .execute(transaction)
            .await?;
        Ok(())
    }

    /// Tells the relay that a transaction with staged events committed, so
    /// it publishes now rather than at its next poll.
    pub fn committed(&self) {
        self.wake.notify_one();
    }

    /// Publishes staged events until `shutdown`, in staging order, deleting
    /// each batch once every record in it is acked. Safe to run in several
    /// instances: each batch is locked while it is sent. Database and broker
    /// failures are retried with back-off; rows wait in the table meanwhile.
    pub async fn relay(&self, pool: PgPool, poll: Duration, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.publish_batch(&pool).await {
                Ok(sent) if sent > 0 => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "outbox relay could not publish; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                () = shutdown.cancelled() => {
                    // One last pass for what committed just before shutdown;
                    // whatever it leaves is sent by the next start.
                    let _ = self.publish_batch(&pool).await;
                    return;
                }
            }
        }
    }

    /// Sends up to one batch; returns how many rows it published.
    pub async fn publish_batch(&self, pool: &PgPool) -> Result<usize, PublishError> {
        let published = self.try_publish_batch(pool).await;
        if published.is_err() {
            METRICS.outbox_publish_failures.inc();
        }
        published
    }

    async fn try_publish_batch(&self, pool: &PgPool) -> Result<usize, PublishError> {
        let mut transaction = pool.begin().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, topic, key, value, headers,
                    EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8
             FROM bus_outbox ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED",
        )
        .fetch_all(&mut *transaction)
        .await?;
        // The first row is the oldest waiting (ids follow commit order
        // closely enough for an alarm); rows other relays hold are skipped.
        METRICS
            .outbox_oldest_pending_seconds
            .set(rows.first().map_or(0.0, |row| row.5.max(0.0)));
        if rows.is_empty() {
            return Ok(0);
        }
        let headers: Vec<HeaderList> = rows.iter().map(|row| headers_from_json(&row.4)).collect();
        // Enqueued in id order; the idempotent producer keeps that order per
        // partition, so a key's events stay in the order they were decided.
        futures::future::try_join_all(rows.iter().zip(&headers).map(
            |((_, topic, key, value, _, _), headers)| {
                self.producer
                    .send_raw(topic, key.as_deref(), value, headers)
            },
        ))
        .await?;
        let ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
        sqlx::query("DELETE FROM bus_outbox WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        for row in &rows {
            METRICS
                .outbox_published
                .with_label_values(&[row.1.as_str()])
                .inc();
        }
        Ok(rows.len())
    }
}

/// id, topic, key, value, headers, age in seconds.
type OutboxRow = (
    i64,
    String,
    Option<Vec<u8>>,
    Vec<u8>,
    serde_json::Value,
    f64,
);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("outbox database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Produce(#[from] ProduceError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_json() {
        let headers: HeaderList = vec![
            ("correlationId".into(), b"c-1".to_vec()),
            ("traceparent".into(), b"00-abc-def-01".to_vec()),
            ("correlationId".into(), b"repeated".to_vec()),
            ("binary".into(), vec![0, 159, 146, 150, 255]),
        ];
        assert_eq!(headers_from_json(&headers_to_json(&headers)), headers);
    }
}
