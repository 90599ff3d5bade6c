//! The gateway's own PostgreSQL: idempotency records, the payment status read
//! model, and the card transactions received.

use std::sync::Arc;

use futures::future::BoxFuture;
use paystream_bus::pool::Warm;
use paystream_contract::PaymentStatus;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The gateway's tables; the runtime adds its own.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

mod batches;
mod cards;
mod claims;

pub use batches::*;
pub use cards::{CardClaim, CardClaimRequest, cards_published_many, claim_cards_many};
pub use claims::{AckMark, NewClaim, ack_many, claim_many};

use crate::group_commit::{GroupCommit, GroupError};

/// One column of a batch, to bind as an array (`unnest($1::text[], …)`).
fn column<'a, T, C>(items: &'a [T], field: impl Fn(&'a T) -> C) -> Vec<C> {
    items.iter().map(field).collect()
}

/// A group-commit writer's statement for a batch.
type WriteBatch<I, O> =
    for<'c> fn(&'c mut PgConnection, &'c [I]) -> BoxFuture<'c, Result<Vec<O>, sqlx::Error>>;

/// Starts the group-commit writer `name`, whose statements run on a
/// connection it keeps between batches (`paystream_bus::pool`): the pool
/// would otherwise ping it on the way out and on the way back, two round
/// trips around each batch.
fn writer<I, O>(name: &'static str, pool: &PgPool, write: WriteBatch<I, O>) -> GroupCommit<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    let warm = Warm::new(pool.clone());
    GroupCommit::start(
        name,
        GROUP_MAX,
        GROUP_CONCURRENCY,
        move |batch: Arc<[I]>| {
            let warm = warm.clone();
            async move {
                let mut connection = warm.take().await?;
                let written = write(&mut connection, &batch).await;
                connection.keep_if_ok(&written);
                written
            }
        },
    )
}

/// Statements of one kind in flight at once. One writer per kind, as
/// TigerBeetle has one: everything that queues while a commit waits for the
/// disk goes into the next. Measured at 50 connections (BENCHMARKS.md): 1
/// gave ~10 requests per statement and 4,988 payments/s; 2 gave ~5.7 and
/// 4,646/s; 3 gave ~4 and 3,302/s; 6 gave ~2.5 and 3,196/s: more writers
/// split the same load into smaller batches that cost PostgreSQL more each.
const GROUP_CONCURRENCY: usize = 1;
/// Connections of the pool for marks that need not wait for the disk: the
/// two mark writers at `GROUP_CONCURRENCY` each, which keep theirs between
/// batches, and one for the marks of batch submissions (`acked_all`).
const RELAXED_CONNECTIONS: u32 = 2 * GROUP_CONCURRENCY as u32 + 1;
/// Rows in one statement at most.
const GROUP_MAX: usize = 512;

#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    /// Commits that do not wait for the disk, for marks whose loss is
    /// harmless.
    relaxed: PgPool,
    claims: GroupCommit<NewClaim, bool>,
    acks: GroupCommit<AckMark, ()>,
    card_claims: GroupCommit<CardClaimRequest, CardClaim>,
    card_marks: GroupCommit<String, ()>,
}

#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub request_hash: Vec<u8>,
    pub payment_id: Uuid,
    /// The `payment.submitted` event as first built, re-sent unchanged on retry.
    pub event: Value,
    /// The broker acked the event (the payment has a status row).
    pub acked: bool,
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
    /// Starts the group-commit writers on the current runtime.
    pub fn new(pool: PgPool) -> Self {
        // Marks whose loss is harmless (see `ack_many`) commit on
        // connections that do not wait for the disk: one round trip each,
        // no transaction around a `SET LOCAL`.
        let relaxed = paystream_bus::pool::options()
            .max_connections(RELAXED_CONNECTIONS)
            .connect_lazy_with(
                pool.connect_options()
                    .as_ref()
                    .clone()
                    .options([("synchronous_commit", "off")]),
            );
        let claims = writer("claim", &pool, |connection, batch| {
            Box::pin(claim_many(connection, batch))
        });
        let acks = writer("ack", &relaxed, |connection, batch| {
            Box::pin(ack_many(connection, batch))
        });
        let card_claims = writer("card_claim", &pool, |connection, batch| {
            Box::pin(claim_cards_many(connection, batch))
        });
        let card_marks = writer("card_published", &relaxed, |connection, batch| {
            Box::pin(cards_published_many(connection, batch))
        });
        Self {
            pool,
            relaxed,
            claims,
            acks,
            card_claims,
            card_marks,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The record under a key; see [`Store::idempotency_many`].
    pub async fn idempotency(
        &self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, sqlx::Error> {
        Ok(self.idempotency_many(client_id, &[key]).await?.remove(key))
    }

    /// Records a new key, sharing the statement with the claims that
    /// arrive with it; false if another request took the key first.
    pub async fn claim_idempotency(&self, claim: NewClaim) -> Result<bool, GroupError> {
        self.claims.submit(claim).await
    }

    /// Waits for the ack marks queued so far to be written.
    async fn marks_written(&self) {
        if let Err(error) = self.acks.flush().await {
            tracing::warn!(%error, "queued ack marks not written");
        }
    }

    /// Waits for every queued mark (acks and published card transactions)
    /// to be written: a stopping gateway leaves none behind.
    pub async fn write_queued_marks(&self) {
        self.marks_written().await;
        if let Err(error) = self.card_marks.flush().await {
            tracing::warn!(%error, "queued card published marks not written");
        }
    }

    /// The records the client holds under any of `keys`, by key.
    ///
    /// A record without its ack mark may have one waiting in this gateway's
    /// queue (its 202 went out a millisecond ago): the queued marks are
    /// written and the records read again, so a retry replays the 202
    /// rather than sending the event again. A retry that reaches
    /// another gateway instance in that millisecond sends the same event
    /// again, which consumers drop.
    pub async fn idempotency_many(
        &self,
        client_id: &str,
        keys: &[&str],
    ) -> Result<std::collections::HashMap<String, IdempotencyRecord>, sqlx::Error> {
        let records = claims::idempotency_many(&self.pool, client_id, keys).await?;
        if records.values().all(|record| record.acked) {
            return Ok(records);
        }
        self.marks_written().await;
        claims::idempotency_many(&self.pool, client_id, keys).await
    }

    /// Marks many payments acked in one statement (a batch submission's).
    pub async fn acked_all(&self, marks: &[AckMark]) -> Result<(), sqlx::Error> {
        ack_many(&self.relaxed, marks).await.map(drop)
    }

    /// Queues the mark of a payment acked by the broker (its status started
    /// at SUBMITTED, which replays read as acked), to be written with the
    /// marks that arrive with it. Nobody waits for it: see [`ack_many`] for
    /// why its loss is harmless.
    pub fn mark_acked(&self, mark: AckMark) -> Result<(), GroupError> {
        self.acks.enqueue(mark)
    }

    /// The status of a payment the client submitted; None for anyone else's.
    /// The pipeline's reason text is not read: it is for compliance, not
    /// for the client.
    ///
    /// A payment with no status row yet is SUBMITTED: its 202 went out
    /// before the ack mark that starts the row was written. (A client learns
    /// a payment id only from a 202, so it asks only after the broker's ack.)
    pub async fn status(
        &self,
        client_id: &str,
        payment_id: Uuid,
    ) -> Result<Option<StatusRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT k.payment_id,
                    COALESCE(s.correlation_id, k.event->'envelope'->>'correlationId') AS correlation_id,
                    COALESCE(s.status, $3) AS status,
                    s.reason_code,
                    COALESCE(s.updated_at, k.acked_at, k.created_at) AS updated_at,
                    COALESCE(s.notified, '{}') AS notified
             FROM idempotency_keys k LEFT JOIN payment_status s ON s.payment_id = k.payment_id
             WHERE k.payment_id = $1 AND k.client_id = $2",
        )
        .bind(payment_id)
        .bind(client_id)
        .bind(PaymentStatus::Submitted.name())
        .fetch_optional(&self.pool)
        .await
    }

    /// Claims a card transaction for this delivery to publish, storing its
    /// event if it is the first delivery, with the claims that arrive with it.
    pub async fn claim_card_transaction(
        &self,
        claim: CardClaimRequest,
    ) -> Result<CardClaim, GroupError> {
        self.card_claims.submit(claim).await
    }

    /// Queues the published mark of a card transaction, to be written with
    /// the marks that arrive with it. Nobody waits for it: lost, it means a
    /// later delivery of the transaction sends the same event (same eventId)
    /// again once the lease runs out, and consumers drop the repeat.
    pub fn mark_card_transaction_published(&self, id: String) -> Result<(), GroupError> {
        self.card_marks.enqueue(id)
    }

    /// Gives up a claim whose send failed, so the processor's retry need
    /// not wait for the lease to run out.
    pub async fn release_card_transaction(&self, id: &str) -> Result<(), sqlx::Error> {
        cards::release(&self.pool, id).await
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
