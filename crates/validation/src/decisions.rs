//! Decisions written in batches, exactly once.
//!
//! One transaction per batch of payments decided together: the claims of
//! their `eventId`s (`bus_processed_events`, the runtime's table), their
//! decisions, every audit row and their outbox rows, committed together or
//! not at all. A handler returns, and so lets its offset be committed, only
//! after the commit that holds its payment. What a transaction per record
//! guaranteed holds per payment in a batch:
//!
//! - a crash before the commit leaves nothing, and the redelivery decides
//!   afresh;
//! - an event already claimed (a redelivery after the commit) writes
//!   nothing, and is found before its providers are called
//!   ([`Decisions::processed`], batched too);
//! - a payment already decided under another `eventId` keeps its first
//!   decision: the claim is recorded, nothing else.
//!
//! A batch that fails is written again payment by payment, so data the
//! database refuses fails its own payment only.

use std::collections::HashSet;
use std::sync::Arc;

use paystream_bus::headers::HeaderList;
use paystream_bus::{Emitter, HandlerError, Outbox};
use paystream_contract::{PaymentSubmitted, Topic};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::metrics::METRICS;
use crate::outcome::Outcome;
use paystream_service_kit::batch::{Batcher, Job};

/// Payments one transaction writes at most.
const MAX_BATCH: usize = 256;
/// Batch transactions at once: one builds while another waits for its
/// commit to be flushed.
const WRITERS: usize = 4;
/// Look-ups of processed ids at once, and ids per look-up at most.
const LOOKUPS: usize = 2;
const MAX_LOOKUP: usize = 1_024;

/// A payment decided, to be written.
pub struct Decided {
    pub payment: PaymentSubmitted,
    /// The consumed record's headers: the outputs continue its trace.
    pub headers: HeaderList,
    /// The record's span, current while its events are built.
    pub span: tracing::Span,
    pub outcome: Outcome,
}

/// What writing a decided payment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Decision, audit rows and events committed.
    Decided,
    /// The payment was decided before under another `eventId`: that
    /// decision stands; only this event's claim was recorded.
    AlreadyDecided,
    /// This event was processed meanwhile (another delivery): nothing
    /// written.
    Duplicate,
}

type Reply<T> = Result<T, HandlerError>;

#[derive(Clone)]
pub struct Decisions {
    lookups: Batcher<Uuid, Reply<bool>>,
    writes: Batcher<Decided, Reply<Written>>,
}

#[derive(Clone)]
struct Store {
    pool: PgPool,
    outbox: Outbox,
    group: Arc<str>,
}

/// The same failure for every payment of a batch.
fn copy(error: &HandlerError) -> HandlerError {
    match error {
        HandlerError::Transient(reason) => HandlerError::Transient(reason.clone()),
        HandlerError::Permanent(reason) => HandlerError::Permanent(reason.clone()),
    }
}

impl Decisions {
    /// Starts the batch drivers for consumer group `group`.
    pub fn start(pool: PgPool, outbox: Outbox, group: &str) -> Self {
        let store = Store {
            pool,
            outbox,
            group: group.into(),
        };
        let lookups = {
            let store = store.clone();
            Batcher::spawn("processed-id look-up", MAX_LOOKUP, LOOKUPS, move |jobs| {
                let store = store.clone();
                async move { store.look_up(jobs).await }
            })
        };
        let writes = Batcher::spawn("decision write", MAX_BATCH, WRITERS, move |jobs| {
            let store = store.clone();
            async move { store.write(jobs).await }
        });
        Self { lookups, writes }
    }

    /// Whether this group has processed the event already.
    pub async fn processed(&self, event_id: Uuid) -> Result<bool, HandlerError> {
        self.lookups
            .submit(event_id)
            .await
            .map_err(HandlerError::transient)?
    }

    /// Writes `decided` with its claim and events; returns once committed.
    pub async fn write(&self, decided: Decided) -> Result<Written, HandlerError> {
        self.writes
            .submit(decided)
            .await
            .map_err(HandlerError::transient)?
    }
}

impl Store {
    async fn look_up(&self, jobs: Vec<Job<Uuid, Reply<bool>>>) {
        let ids: Vec<Uuid> = jobs.iter().map(|job| job.item).collect();
        let found = sqlx::query_scalar::<_, Uuid>(
            "SELECT event_id FROM bus_processed_events
             WHERE consumer_group = $1 AND event_id = ANY($2)",
        )
        .bind(&*self.group)
        .bind(&ids)
        .fetch_all(&self.pool)
        .await;
        match found {
            Ok(found) => {
                let found: HashSet<Uuid> = found.into_iter().collect();
                for job in jobs {
                    let seen = found.contains(&job.item);
                    job.reply(Ok(seen));
                }
            }
            Err(error) => {
                let error = HandlerError::from(error);
                for job in jobs {
                    job.reply(Err(copy(&error)));
                }
            }
        }
    }

    async fn write(&self, jobs: Vec<Job<Decided, Reply<Written>>>) {
        let all: Vec<&Decided> = jobs.iter().map(|job| &job.item).collect();
        match self.transaction(&all).await {
            Ok(written) => {
                for (job, written) in jobs.into_iter().zip(written) {
                    job.reply(Ok(written));
                }
            }
            Err(error) if jobs.len() == 1 => {
                for job in jobs {
                    job.reply(Err(copy(&error)));
                }
            }
            Err(error) => {
                tracing::warn!(%error, payments = jobs.len(), "a batch of decisions failed; writing them one by one");
                for job in jobs {
                    let written = self.transaction(&[&job.item]).await;
                    job.reply(written.map(|mut one| one.pop().unwrap_or(Written::Duplicate)));
                }
            }
        }
    }

    /// One transaction for `batch`; what became of each, in its order.
    async fn transaction(&self, batch: &[&Decided]) -> Result<Vec<Written>, HandlerError> {
        let mut tx = self.pool.begin().await?;
        let claimed = self.claim(&mut tx, batch).await?;
        // A payment whose event was claimed meanwhile, or that occurs twice
        // in the batch, is a duplicate: the first occurrence takes the claim.
        let mut pending: HashSet<Uuid> = claimed;
        let mut written: Vec<Written> = batch
            .iter()
            .map(|decided| {
                if pending.remove(&decided.payment.envelope.event_id) {
                    Written::Decided
                } else {
                    Written::Duplicate
                }
            })
            .collect();
        let mut new_decisions =
            insert_decisions_and_audit(&mut tx, &still_decided(batch, &written)).await?;
        for (decided, written) in batch.iter().zip(written.iter_mut()) {
            if *written == Written::Decided && !new_decisions.remove(&decided.payment.payment_id) {
                *written = Written::AlreadyDecided;
            }
        }
        let decided = still_decided(batch, &written);
        let emitters: Vec<Emitter> = decided.iter().map(|payment| self.events(payment)).collect();
        self.outbox.write_all(&mut tx, emitters).await?;
        tx.commit().await?;
        METRICS.batch_payments.observe(batch.len() as f64);
        if !decided.is_empty() {
            self.outbox.committed();
        }
        Ok(written)
    }

    /// The events `decided` causes, built in its record's span.
    fn events(&self, decided: &Decided) -> Emitter {
        let mut emitter = self
            .outbox
            .emitter(decided.payment.envelope.clone(), decided.headers.clone());
        decided
            .span
            .in_scope(|| decided.outcome.emit(&decided.payment, &mut emitter));
        emitter
    }

    /// Claims the batch's event ids; returns those this transaction claimed.
    /// In id order, so two transactions claiming overlapping ids never wait
    /// on each other in a cycle.
    async fn claim(
        &self,
        tx: &mut PgConnection,
        batch: &[&Decided],
    ) -> Result<HashSet<Uuid>, sqlx::Error> {
        let mut ids: Vec<Uuid> = batch
            .iter()
            .map(|decided| decided.payment.envelope.event_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let claimed: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO bus_processed_events (consumer_group, event_id, topic)
             SELECT $1, id, $2 FROM UNNEST($3::uuid[]) AS t (id) ORDER BY id
             ON CONFLICT DO NOTHING RETURNING event_id",
        )
        .bind(&*self.group)
        .bind(Topic::PaymentSubmitted.name())
        .bind(&ids)
        .fetch_all(tx)
        .await?;
        Ok(claimed.into_iter().collect())
    }
}

/// The payments of `batch` that are still to be written as decided.
fn still_decided<'a>(batch: &[&'a Decided], written: &[Written]) -> Vec<&'a Decided> {
    batch
        .iter()
        .zip(written)
        .filter(|(_, written)| **written == Written::Decided)
        .map(|(decided, _)| *decided)
        .collect()
}

/// The decisions of `batch` and every audit row of those decided now (not
/// before), in one statement: the audit rows' insert reads which decisions
/// went in. Returns the payments decided now.
async fn insert_decisions_and_audit(
    tx: &mut PgConnection,
    batch: &[&Decided],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    if batch.is_empty() {
        return Ok(HashSet::new());
    }
    let mut ids = Vec::with_capacity(batch.len());
    let mut correlations = Vec::with_capacity(batch.len());
    let mut decisions = Vec::with_capacity(batch.len());
    let mut codes = Vec::with_capacity(batch.len());
    let mut texts = Vec::with_capacity(batch.len());
    for decided in batch {
        let outcome = &decided.outcome;
        ids.push(decided.payment.payment_id);
        correlations.push(decided.payment.envelope.correlation_id.as_str());
        decisions.push(outcome.decision().name());
        codes.push(outcome.reason_code());
        texts.push(outcome.rejection.as_ref().map(|(_, text)| text.as_str()));
    }
    let rows: Vec<(Uuid, &crate::outcome::ScreeningRow)> = batch
        .iter()
        .flat_map(|decided| {
            let id = decided.payment.payment_id;
            decided.outcome.screenings.iter().map(move |row| (id, row))
        })
        .collect();
    let column = |f: &dyn Fn(&crate::outcome::ScreeningRow) -> Option<&str>| -> Vec<Option<&str>> {
        rows.iter().map(|(_, row)| f(row)).collect()
    };
    let audited: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let kinds = column(&|row| Some(row.kind.name()));
    let roles = column(&|row| Some(row.party_role.name()));
    let names = column(&|row| Some(row.party_name.as_str()));
    let outcomes = column(&|row| Some(row.outcome));
    let lists = column(&|row| row.matched_list.as_deref());
    let entries = column(&|row| row.matched_entry.as_deref());
    let details = column(&|row| Some(row.details.as_str()));
    let scores: Vec<Option<i32>> = rows.iter().map(|(_, row)| row.score_permille).collect();
    let latencies: Vec<i32> = rows.iter().map(|(_, row)| row.latency_ms).collect();
    let times: Vec<chrono::DateTime<chrono::Utc>> = rows.iter().map(|(_, row)| row.at).collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "WITH decided AS (
             INSERT INTO decisions (payment_id, correlation_id, decision, reason_code, reason_text)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
             ON CONFLICT (payment_id) DO NOTHING RETURNING payment_id
         ), audited AS (
             INSERT INTO screening_results (payment_id, check_kind, party_role, party_name,
                 outcome, matched_list, matched_entry, score_permille, details,
                 provider_latency_ms, screened_at)
             SELECT id, kind, role, name, outcome, list, entry, score, details::jsonb, latency, at
             FROM UNNEST($6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[],
                         $11::text[], $12::text[], $13::int4[], $14::text[], $15::int4[],
                         $16::timestamptz[])
                 AS t (id, kind, role, name, outcome, list, entry, score, details, latency, at)
             WHERE t.id IN (SELECT payment_id FROM decided)
         )
         SELECT payment_id FROM decided",
    )
    .bind(&ids)
    .bind(&correlations)
    .bind(&decisions)
    .bind(&codes)
    .bind(&texts)
    .bind(&audited)
    .bind(&kinds)
    .bind(&roles)
    .bind(&names)
    .bind(&outcomes)
    .bind(&lists)
    .bind(&entries)
    .bind(&scores)
    .bind(&details)
    .bind(&latencies)
    .bind(&times)
    .fetch_all(tx)
    .await?;
    Ok(inserted.into_iter().collect())
}
