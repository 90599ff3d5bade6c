//! The gateway's own PostgreSQL: idempotency records, the payment status read
//! model, and the card transactions received.

use std::time::Duration;

use paystream_contract::CardTransactionReceived;
use paystream_contract::PaymentStatus;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// The gateway's tables; the runtime adds its own.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub request_hash: Vec<u8>,
    pub payment_id: Uuid,
    /// The `payment.submitted` event as first built, re-sent unchanged on retry.
    pub event: Value,
    /// The 202 body, once the broker acked.
    pub response: Option<Value>,
}

/// Where a card transaction stands for a delivery that wants to publish it.
#[derive(Debug, Clone, PartialEq)]
pub enum CardClaim {
    /// This delivery sends the event, as first stored (the JSON of a
    /// `CardTransactionReceived`).
    Publish(Value),
    /// Already acknowledged by the broker: nothing to send.
    Published(Value),
    /// Another delivery is sending it now.
    Busy,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatusRow {
    pub payment_id: Uuid,
    pub correlation_id: String,
    pub status: String,
    pub reason_code: Option<String>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Templates of the notifications the customer got about it.
    pub notified: Vec<String>,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn idempotency(
        &self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, sqlx::Error> {
        let row: Option<(Vec<u8>, Uuid, Value, Option<Value>)> = sqlx::query_as(
            "SELECT request_hash, payment_id, event, response FROM idempotency_keys
             WHERE client_id = $1 AND idempotency_key = $2",
        )
        .bind(client_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(request_hash, payment_id, event, response)| IdempotencyRecord {
                request_hash,
                payment_id,
                event,
                response,
            },
        ))
    }

    /// Records a new key; false if another request took it first.
    pub async fn claim_idempotency(
        &self,
        client_id: &str,
        key: &str,
        request_hash: &[u8],
        payment_id: Uuid,
        event: &Value,
    ) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (client_id, idempotency_key, request_hash, payment_id, event)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(client_id)
        .bind(key)
        .bind(request_hash)
        .bind(payment_id)
        .bind(event)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Marks a payment acked by the broker: keeps the response for replays and
    /// starts its status at SUBMITTED, in one transaction.
    pub async fn acked(
        &self,
        client_id: &str,
        key: &str,
        payment_id: Uuid,
        correlation_id: &str,
        response: &Value,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE idempotency_keys SET response = $3, acked_at = now()
             WHERE client_id = $1 AND idempotency_key = $2",
        )
        .bind(client_id)
        .bind(key)
        .bind(response)
        .execute(&mut *tx)
        .await?;
        upsert_status(
            &mut *tx,
            payment_id,
            correlation_id,
            PaymentStatus::Submitted,
            None,
            None,
        )
        .await?;
        tx.commit().await
    }

    /// The status of a payment the client submitted; None for anyone else's.
    /// The pipeline's reason text is not read: it is for compliance, not
    /// for the client.
    pub async fn status(
        &self,
        client_id: &str,
        payment_id: Uuid,
    ) -> Result<Option<StatusRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT s.payment_id, s.correlation_id, s.status, s.reason_code, s.updated_at, s.notified
             FROM payment_status s JOIN idempotency_keys k ON k.payment_id = s.payment_id
             WHERE s.payment_id = $1 AND k.client_id = $2",
        )
        .bind(payment_id)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Claims `event`'s card transaction for this delivery to publish,
    /// storing `stored` (the event's JSON) if it is the first delivery; a
    /// claim lasts `lease` unless released.
    pub async fn claim_card_transaction(
        &self,
        event: &CardTransactionReceived,
        stored: &Value,
        lease: Duration,
    ) -> Result<CardClaim, sqlx::Error> {
        let claimed: Option<Value> = sqlx::query_scalar(
            "INSERT INTO card_transactions (card_transaction_id, event_id, webhook_id, card_id, event, lease_until)
             VALUES ($1, $2, $3, $4, $5, clock_timestamp() + make_interval(secs => $6))
             ON CONFLICT (card_transaction_id) DO UPDATE SET lease_until = EXCLUDED.lease_until
             WHERE card_transactions.published_at IS NULL
               AND (card_transactions.lease_until IS NULL OR card_transactions.lease_until < clock_timestamp())
             RETURNING event",
        )
        .bind(&event.card_transaction_id)
        .bind(event.envelope.event_id)
        .bind(&event.webhook_id)
        .bind(&event.card_id)
        .bind(stored)
        .bind(lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(event) = claimed {
            return Ok(CardClaim::Publish(event));
        }
        let row: Option<(Value, bool)> = sqlx::query_as(
            "SELECT event, published_at IS NOT NULL FROM card_transactions WHERE card_transaction_id = $1",
        )
        .bind(&event.card_transaction_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((event, true)) => CardClaim::Published(event),
            // Claimed by another delivery (or, in between, released by it).
            Some((_, false)) | None => CardClaim::Busy,
        })
    }

    pub async fn card_transaction_published(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE card_transactions SET published_at = now(), lease_until = NULL
             WHERE card_transaction_id = $1",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up a claim whose send failed, so the processor's retry need
    /// not wait for the lease to run out.
    pub async fn release_card_transaction(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE card_transactions SET lease_until = NULL
             WHERE card_transaction_id = $1 AND published_at IS NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Notes that the customer was told `template` about the payment.
pub(crate) async fn record_notified<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    payment_id: Uuid,
    template: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_status SET notified = array_append(notified, $2)
         WHERE payment_id = $1 AND NOT ($2 = ANY(notified))",
    )
    .bind(payment_id)
    .bind(template)
    .execute(executor)
    .await?;
    Ok(())
}

pub(crate) async fn upsert_status<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    payment_id: Uuid,
    correlation_id: &str,
    status: PaymentStatus,
    reason_code: Option<&str>,
    reason_text: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payment_status (payment_id, correlation_id, status, status_rank, reason_code, reason_text)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (payment_id) DO UPDATE SET
             status = EXCLUDED.status, status_rank = EXCLUDED.status_rank,
             reason_code = EXCLUDED.reason_code, reason_text = EXCLUDED.reason_text,
             updated_at = now()
         WHERE payment_status.status_rank < EXCLUDED.status_rank",
    )
    .bind(payment_id)
    .bind(correlation_id)
    .bind(status.name())
    .bind(status.rank())
    .bind(reason_code)
    .bind(reason_text)
    .execute(executor)
    .await?;
    Ok(())
}
