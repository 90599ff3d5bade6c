//! Decisions written in batches, exactly once.
//!
//! One statement per batch of payments decided together, which PostgreSQL
//! runs as one transaction: the claims of their `eventId`s
//! (`bus_processed_events`, the runtime's table), their decisions, every
//! audit row and their outbox rows, committed together or not at all, in
//! one round trip. A handler returns, and so lets its offset be committed,
//! only after the commit that holds its payment. What a transaction per
//! record guaranteed holds per payment in a batch:
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
use std::sync::{Arc, LazyLock};

use paystream_bus::headers::SharedHeaders;
use paystream_bus::pool::Warm;
use paystream_bus::{Emitter, HandlerError, Outbox, OutboxColumns};
use paystream_contract::{PaymentSubmitted, Topic};
use sqlx::Arguments as _;
use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::metrics::METRICS;
use crate::outcome::{Outcome, ScreeningRow};
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
    pub headers: SharedHeaders,
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
    /// Connections kept between batches: the look-ups' and the writes'.
    warm: Warm,
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
            warm: Warm::new(pool),
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
        let found = self.look_up_ids(&ids).await;
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

    /// The ids of `ids` this group has processed.
    async fn look_up_ids(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
        let mut connection = self.warm.take().await?;
        // One index probe per id, whatever the table's size: with `event_id
        // = ANY($2)` the planner chose a scan of the whole table for a
        // large batch while the table was small (thousands of rows), and
        // compared every row with every id. The LIMIT keeps the probe a
        // probe.
        let found = sqlx::query_scalar::<_, Uuid>(
            "SELECT t.id FROM UNNEST($2::uuid[]) AS t (id)
             CROSS JOIN LATERAL (
                 SELECT 1 FROM bus_processed_events
                 WHERE consumer_group = $1 AND event_id = t.id LIMIT 1
             ) AS processed",
        )
        .bind(&*self.group)
        .bind(ids)
        .fetch_all(&mut *connection)
        .await;
        connection.keep_if_ok(&found);
        found
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

    /// One statement for `batch`, its own transaction; what became of each,
    /// in its order.
    async fn transaction(&self, batch: &[&Decided]) -> Result<Vec<Written>, HandlerError> {
        // An event that occurs twice in the batch is written once: its first
        // occurrence is the candidate, the others are duplicates.
        let mut seen = HashSet::with_capacity(batch.len());
        let candidate: Vec<bool> = batch
            .iter()
            .map(|decided| seen.insert(decided.payment.envelope.event_id))
            .collect();
        let candidates: Vec<(i32, &Decided)> = batch
            .iter()
            .enumerate()
            .filter(|(n, _)| candidate[*n])
            .map(|(n, decided)| (owner(n), *decided))
            .collect();
        let emitters = candidates
            .iter()
            .map(|(place, decided)| (*place, self.events(decided)));
        let outbox = self.outbox.columns(emitters).await?;
        let mut connection = self.warm.take().await?;
        let written = write_batch(&mut connection, &self.group, &candidates, &outbox).await;
        connection.keep_if_ok(&written);
        let (claimed, winners) = written?;
        let claimed: HashSet<Uuid> = claimed.into_iter().collect();
        let winners: HashSet<i32> = winners.into_iter().collect();
        let written = batch
            .iter()
            .zip(&candidate)
            .enumerate()
            .map(|(n, (decided, candidate))| {
                if !*candidate || !claimed.contains(&decided.payment.envelope.event_id) {
                    Written::Duplicate
                } else if winners.contains(&owner(n)) {
                    Written::Decided
                } else {
                    Written::AlreadyDecided
                }
            })
            .collect();
        METRICS.batch_payments.observe(batch.len() as f64);
        if !winners.is_empty() {
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
}

/// A payment's place in its batch, as the statement names it.
fn owner(n: usize) -> i32 {
    // A batch holds at most MAX_BATCH payments.
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The one statement that writes a batch: the claims of its events, then
/// the decisions of the payments whose event this statement claimed (the
/// first of a payment's events in the batch, in payment order so that two
/// writers never wait on each other in a cycle), then the audit rows and
/// outbox rows of the payments whose decision went in. A payment decided
/// before keeps that decision; its event is claimed and nothing else is
/// written. Returns the event ids claimed and the places of the payments
/// decided now.
static WRITE_BATCH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH claimed AS (
             INSERT INTO bus_processed_events (consumer_group, event_id, topic)
             SELECT $1, id, $2 FROM UNNEST($3::uuid[]) AS t (id) ORDER BY id
             ON CONFLICT DO NOTHING RETURNING event_id
         ), chosen AS (
             SELECT DISTINCT ON (c.payment_id) c.*
             FROM UNNEST($4::int4[], $3::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[],
                         $9::text[])
                 AS c (n, event_id, payment_id, correlation_id, decision, reason_code, reason_text)
             WHERE c.event_id IN (SELECT event_id FROM claimed)
             ORDER BY c.payment_id, c.n
         ), decided AS (
             INSERT INTO decisions (payment_id, correlation_id, decision, reason_code, reason_text)
             SELECT payment_id, correlation_id, decision, reason_code, reason_text FROM chosen
             ORDER BY payment_id
             ON CONFLICT (payment_id) DO NOTHING RETURNING payment_id
         ), written AS (
             SELECT n FROM chosen WHERE payment_id IN (SELECT payment_id FROM decided)
         ), audited AS (
             INSERT INTO screening_results (payment_id, check_kind, party_role, party_name,
                 outcome, matched_list, matched_entry, score_permille, details,
                 provider_latency_ms, screened_at)
             SELECT c.payment_id, kind, role, name, outcome, list, entry, score, details::jsonb,
                    latency, at
             FROM UNNEST($10::int4[], $11::text[], $12::text[], $13::text[], $14::text[],
                         $15::text[], $16::text[], $17::int4[], $18::text[], $19::int4[],
                         $20::timestamptz[])
                 AS t (n, kind, role, name, outcome, list, entry, score, details, latency, at)
             JOIN chosen AS c ON c.n = t.n
             WHERE t.n IN (SELECT n FROM written)
         ), staged AS ({outbox})
         SELECT ARRAY(SELECT event_id FROM claimed), ARRAY(SELECT n FROM written)",
        outbox = OutboxColumns::insert_sql(21, "SELECT n FROM written"),
    )
});

async fn write_batch(
    connection: &mut PgConnection,
    group: &str,
    candidates: &[(i32, &Decided)],
    outbox: &OutboxColumns,
) -> Result<(Vec<Uuid>, Vec<i32>), sqlx::Error> {
    // The event ids ($3) are both the claims and a column of the candidates.
    let mut places = Vec::with_capacity(candidates.len());
    let mut events = Vec::with_capacity(candidates.len());
    let mut ids = Vec::with_capacity(candidates.len());
    let mut correlations = Vec::with_capacity(candidates.len());
    let mut decisions = Vec::with_capacity(candidates.len());
    let mut codes = Vec::with_capacity(candidates.len());
    let mut texts = Vec::with_capacity(candidates.len());
    for (place, decided) in candidates {
        let outcome = &decided.outcome;
        places.push(*place);
        events.push(decided.payment.envelope.event_id);
        ids.push(decided.payment.payment_id);
        correlations.push(decided.payment.envelope.correlation_id.as_str());
        decisions.push(outcome.decision().name());
        codes.push(outcome.reason_code());
        texts.push(outcome.rejection.as_ref().map(|(_, text)| text.as_str()));
    }
    // A screening row names its payment by place; the statement reads the
    // payment id from the decision chosen at that place.
    let rows: Vec<(i32, &ScreeningRow)> = candidates
        .iter()
        .flat_map(|(place, decided)| decided.outcome.screenings.iter().map(|row| (*place, row)))
        .collect();
    let column = |f: &dyn Fn(&ScreeningRow) -> Option<&str>| -> Vec<Option<&str>> {
        rows.iter().map(|(_, row)| f(row)).collect()
    };
    let audited_places: Vec<i32> = rows.iter().map(|(n, _)| *n).collect();
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
    // The arguments' buffer sized once: grown by doubling, it was copied
    // about ten times per batch (1% of the service's CPU).
    let mut arguments = PgArguments::default();
    let row_bytes: usize = rows
        .iter()
        .map(|(_, row)| row.details.len() + row.party_name.len() + 96)
        .sum();
    arguments.reserve(
        25,
        candidates.len() * 160 + row_bytes + outbox.encoded_len(),
    );
    let query = sqlx::query_as_with(WRITE_BATCH.as_str(), arguments)
        .bind(group)
        .bind(Topic::PaymentSubmitted.name())
        .bind(&events)
        .bind(&places)
        .bind(&ids)
        .bind(&correlations)
        .bind(&decisions)
        .bind(&codes)
        .bind(&texts)
        .bind(&audited_places)
        .bind(&kinds)
        .bind(&roles)
        .bind(&names)
        .bind(&outcomes)
        .bind(&lists)
        .bind(&entries)
        .bind(&scores)
        .bind(&details)
        .bind(&latencies)
        .bind(&times);
    outbox.bind(query).fetch_one(connection).await
}
