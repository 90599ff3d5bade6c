//! Payment batches: the batch under its key and each item's verdict. Every
//! call is one statement (or one transaction) for the whole batch, never one
//! per item.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::column;

/// A batch as first received under its key.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub batch_id: Uuid,
    pub request_hash: Vec<u8>,
}

/// A new batch, stored with its items' verdicts before anything is sent.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub batch_id: Uuid,
    pub client_id: String,
    pub key: String,
    pub request_hash: Vec<u8>,
}

/// One item's verdict: a payment, or a refusal with its errors as JSON text.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BatchItemRow {
    pub item_index: i32,
    pub idempotency_key: Option<String>,
    pub payment_id: Option<Uuid>,
    pub refusal: Option<String>,
    pub errors: Option<Value>,
}

/// One item as `GET /v1/payment-batches/{id}` shows it: its verdict and,
/// for a payment, where the pipeline has it (nothing yet if never acked).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BatchProgressRow {
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub item_index: i32,
    pub idempotency_key: Option<String>,
    pub payment_id: Option<Uuid>,
    pub refusal: Option<String>,
    pub errors: Option<Value>,
    pub status: Option<String>,
    pub reason_code: Option<String>,
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The client's batch under `key`, if it sent one.
pub async fn find_batch(
    pool: &PgPool,
    client_id: &str,
    key: &str,
) -> Result<Option<BatchRecord>, sqlx::Error> {
    let row: Option<(Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT batch_id, request_hash FROM payment_batches
         WHERE client_id = $1 AND batch_key = $2",
    )
    .bind(client_id)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(batch_id, request_hash)| BatchRecord {
        batch_id,
        request_hash,
    }))
}

/// Stores the batch and its items' verdicts in one transaction; false (and
/// nothing written) if another request stored a batch under the key first.
/// A concurrent insert of the same key waits for the first to commit, so the
/// loser always finds a complete batch to answer from.
pub async fn insert_batch(
    pool: &PgPool,
    batch: &NewBatch,
    items: &[BatchItemRow],
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO payment_batches (batch_id, client_id, batch_key, request_hash, item_count)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (client_id, batch_key) DO NOTHING",
    )
    .bind(batch.batch_id)
    .bind(&batch.client_id)
    .bind(&batch.key)
    .bind(&batch.request_hash)
    .bind(i32::try_from(items.len()).unwrap_or(i32::MAX))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO payment_batch_items
             (batch_id, item_index, idempotency_key, payment_id, refusal, errors)
         SELECT $1, item_index, idempotency_key, payment_id, refusal, errors
         FROM unnest($2::int[], $3::text[], $4::uuid[], $5::text[], $6::jsonb[])
              AS item(item_index, idempotency_key, payment_id, refusal, errors)",
    )
    .bind(batch.batch_id)
    .bind(column(items, |i| i.item_index))
    .bind(column(items, |i| i.idempotency_key.as_deref()))
    .bind(column(items, |i| i.payment_id))
    .bind(column(items, |i| i.refusal.as_deref()))
    .bind(column(items, |i| i.errors.clone()))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// A stored batch's items, in order.
pub async fn batch_items(pool: &PgPool, batch_id: Uuid) -> Result<Vec<BatchItemRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT item_index, idempotency_key, payment_id, refusal, errors
         FROM payment_batch_items WHERE batch_id = $1 ORDER BY item_index",
    )
    .bind(batch_id)
    .fetch_all(pool)
    .await
}

/// The items of the client's batch with each payment's current status, in
/// order; empty if the batch is not the client's (or does not exist: every
/// batch has at least one item).
pub async fn batch_progress(
    pool: &PgPool,
    client_id: &str,
    batch_id: Uuid,
) -> Result<Vec<BatchProgressRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT b.created_at, i.item_index, i.idempotency_key, i.payment_id, i.refusal, i.errors,
                s.status, s.reason_code, s.updated_at
         FROM payment_batches b
         JOIN payment_batch_items i ON i.batch_id = b.batch_id
         LEFT JOIN payment_status s ON s.payment_id = i.payment_id
         WHERE b.batch_id = $1 AND b.client_id = $2
         ORDER BY i.item_index",
    )
    .bind(batch_id)
    .bind(client_id)
    .fetch_all(pool)
    .await
}
