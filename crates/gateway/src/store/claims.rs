//! Idempotency claims, their records and ack marks, many per statement: what
//! [`GroupCommit`](crate::group_commit::GroupCommit) runs for requests that
//! arrived together, and what a batch submission runs for its items.

use std::collections::{HashMap, HashSet};

use paystream_contract::PaymentStatus;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::{IdempotencyRecord, column};

/// A new payment's idempotency record, before its event is sent.
#[derive(Debug, Clone)]
pub struct NewClaim {
    pub client_id: String,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub payment_id: Uuid,
    /// The `payment.submitted` event as JSON text, re-sent unchanged on retry.
    pub event: String,
}

/// A payment the broker acked: its status starts at SUBMITTED. The status
/// row is the mark: a payment has one only once its `payment.submitted` is
/// on the broker (the gateway's ack, or the pipeline's first event about
/// it), so a retry of its key finds it acked and replays the 202.
#[derive(Debug, Clone)]
pub struct AckMark {
    pub payment_id: Uuid,
    pub correlation_id: String,
}

/// Inserts every claim whose (client, key) is free, in one statement and so
/// one commit; answers, per claim, whether it was this one that took the key.
/// Two claims of one key in the same batch are settled as two requests would
/// be: the first row wins, the second finds it taken.
pub async fn claim_many(
    executor: impl PgExecutor<'_>,
    claims: &[NewClaim],
) -> Result<Vec<bool>, sqlx::Error> {
    let won: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (client_id, idempotency_key, request_hash, payment_id, event)
         SELECT client_id, idempotency_key, request_hash, payment_id, event::jsonb
         FROM unnest($1::text[], $2::text[], $3::bytea[], $4::uuid[], $5::text[])
              AS claim(client_id, idempotency_key, request_hash, payment_id, event)
         ON CONFLICT DO NOTHING
         RETURNING payment_id",
    )
    .bind(column(claims, |c| c.client_id.as_str()))
    .bind(column(claims, |c| c.key.as_str()))
    .bind(column(claims, |c| c.request_hash.as_slice()))
    .bind(column(claims, |c| c.payment_id))
    .bind(column(claims, |c| c.event.as_str()))
    .fetch_all(executor)
    .await?;
    let won: HashSet<Uuid> = won.into_iter().collect();
    Ok(claims.iter().map(|c| won.contains(&c.payment_id)).collect())
}

/// Marks every payment acked by starting its status, in one statement.
///
/// The idempotency record itself is not touched: rewriting it (its stored
/// event included) to say "acked" cost PostgreSQL a row version, its WAL and
/// an index look-up per payment, and the 202 it kept is the event's own
/// `paymentId` and `correlationId`.
///
/// `executor` is on the store's relaxed pool, whose commits do not wait for the
/// disk (`synchronous_commit = off`):
/// the payment is accepted once the broker acked it, whatever happens to
/// this mark. Were the database to crash before flushing it (a fraction of a
/// second), a retry with the key would send the very same event again, which
/// every consumer drops as a duplicate, and the status would come back with
/// the pipeline's first event: nothing is lost that matters, and the 202 no
/// longer waits for a second fsync.
pub async fn ack_many(
    executor: impl PgExecutor<'_>,
    marks: &[AckMark],
) -> Result<Vec<()>, sqlx::Error> {
    // One status row per payment: ON CONFLICT DO UPDATE may not touch a row
    // twice in one statement, and two retries of one key can be acked
    // together.
    let mut seen = HashSet::new();
    let statuses: Vec<&AckMark> = marks
        .iter()
        .filter(|mark| seen.insert(mark.payment_id))
        .collect();
    sqlx::query(
        "INSERT INTO payment_status (payment_id, correlation_id, status, status_rank)
         SELECT payment_id, correlation_id, $3, $4
         FROM unnest($1::uuid[], $2::text[]) AS s(payment_id, correlation_id)
         ON CONFLICT (payment_id) DO UPDATE SET
             status = EXCLUDED.status, status_rank = EXCLUDED.status_rank,
             reason_code = NULL, reason_text = NULL, updated_at = now()
         WHERE payment_status.status_rank < EXCLUDED.status_rank",
    )
    .bind(column(&statuses, |m| m.payment_id))
    .bind(column(&statuses, |m| m.correlation_id.as_str()))
    .bind(PaymentStatus::Submitted.name())
    .bind(PaymentStatus::Submitted.rank())
    .execute(executor)
    .await?;
    Ok(vec![(); marks.len()])
}

/// The idempotency records the client holds under any of `keys`, by key.
pub(super) async fn idempotency_many(
    pool: &PgPool,
    client_id: &str,
    keys: &[&str],
) -> Result<HashMap<String, IdempotencyRecord>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<KeyedRecord> = sqlx::query_as(
        "SELECT k.idempotency_key, k.request_hash, k.payment_id, k.event,
                 EXISTS (SELECT 1 FROM payment_status s WHERE s.payment_id = k.payment_id) AS acked
         FROM idempotency_keys k WHERE k.client_id = $1 AND k.idempotency_key = ANY($2)",
    )
    .bind(client_id)
    .bind(keys)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let record = IdempotencyRecord {
                request_hash: row.request_hash,
                payment_id: row.payment_id,
                event: row.event,
                acked: row.acked,
            };
            (row.idempotency_key, record)
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct KeyedRecord {
    idempotency_key: String,
    request_hash: Vec<u8>,
    payment_id: Uuid,
    event: Value,
    acked: bool,
}
