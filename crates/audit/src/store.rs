//! Appending one partition's records to its chain, in one transaction.
//!
//! The chain's head row is locked first (`FOR UPDATE`), so appends to one
//! chain are serialised however many replicas run: a second one waits,
//! then sees the head moved and the records already there. Inside the
//! lock:
//!
//! - a record below the head's `next_offset` was seen before (redelivered
//!   after a crash or a rebalance) and is dropped;
//! - a record whose eventId is already stored for its topic (an outbox
//!   re-send at another offset) goes to `audit_duplicates`, not the chain;
//! - the rest are chained in offset order and inserted, and the head moves.

use std::collections::HashSet;

use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::hash::EntryFields;

/// Rows per INSERT: 23 columns each stays far below PostgreSQL's 65,535
/// bind parameters.
const ROWS_PER_INSERT: usize = 1_000;

/// What one partition's batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub stored: usize,
    /// Seen before at the same offset.
    pub redelivered: usize,
    /// The same eventId already stored for the topic, at another offset.
    pub republished: usize,
    /// Of the stored, those whose value did not decode.
    pub undecodable: usize,
    /// The chain's length and the offset to commit, after the batch.
    pub seq: i64,
    pub next_offset: i64,
}

/// Appends `records` (one partition's, in offset order) to its chain.
pub async fn append(
    pool: &PgPool,
    topic: &str,
    partition: i32,
    records: Vec<EntryFields>,
) -> Result<Appended, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO audit_chains (topic, \"partition\") VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(topic)
    .bind(partition)
    .execute(&mut *tx)
    .await?;
    let (mut seq, head, next_offset): (i64, Vec<u8>, i64) = sqlx::query_as(
        "SELECT seq, head, next_offset FROM audit_chains \
         WHERE topic = $1 AND \"partition\" = $2 FOR UPDATE",
    )
    .bind(topic)
    .bind(partition)
    .fetch_one(&mut *tx)
    .await?;
    let mut appended = Appended {
        seq,
        next_offset,
        ..Appended::default()
    };
    let fresh: Vec<EntryFields> = records
        .into_iter()
        .filter(|record| {
            let seen = record.offset < next_offset;
            appended.redelivered += usize::from(seen);
            !seen
        })
        .collect();
    let Some(last) = fresh.last() else {
        // Nothing new: the offset to commit is where the chain already is.
        return Ok(appended);
    };
    appended.next_offset = last.offset + 1;

    let ids: Vec<Uuid> = fresh.iter().filter_map(|r| r.event_id).collect();
    // One index probe per id (the LIMIT keeps it one): with `event_id =
    // ANY($2)` the planner may scan the whole table for a large batch.
    let mut known: HashSet<Uuid> = sqlx::query_scalar(
        "SELECT t.id FROM UNNEST($2::uuid[]) AS t (id)
         CROSS JOIN LATERAL (
             SELECT 1 FROM audit_entries WHERE topic = $1 AND event_id = t.id LIMIT 1
         ) AS known",
    )
    .bind(topic)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();

    // 32 bytes (a CHECK constraint); 32 zeros before the first entry.
    let mut prev: Vec<u8> = head;
    let mut chained: Vec<(EntryFields, Vec<u8>, [u8; 32])> = Vec::with_capacity(fresh.len());
    let mut duplicates: Vec<EntryFields> = Vec::new();
    for mut record in fresh {
        // `insert` is false for an id already stored, or earlier in this batch.
        if let Some(id) = record.event_id
            && !known.insert(id)
        {
            duplicates.push(record);
            continue;
        }
        seq += 1;
        record.seq = seq;
        let hash = record.hash(&prev);
        chained.push((record, prev, hash));
        prev = hash.to_vec();
    }
    appended.stored = chained.len();
    appended.undecodable = chained.iter().filter(|(e, _, _)| e.event.is_none()).count();
    appended.republished = duplicates.len();
    appended.seq = seq;

    for rows in chained.chunks(ROWS_PER_INSERT) {
        insert_entries(rows).build().execute(&mut *tx).await?;
    }
    if !duplicates.is_empty() {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO audit_duplicates (topic, \"partition\", \"offset\", event_id, received_at) ",
        );
        insert.push_values(&duplicates, |mut row, record| {
            row.push_bind(&record.topic)
                .push_bind(record.partition)
                .push_bind(record.offset)
                .push_bind(record.event_id)
                .push_bind(record.received_at);
        });
        insert.push(" ON CONFLICT DO NOTHING");
        insert.build().execute(&mut *tx).await?;
    }
    sqlx::query(
        "UPDATE audit_chains SET seq = $3, head = $4, next_offset = $5, updated_at = now() \
         WHERE topic = $1 AND \"partition\" = $2",
    )
    .bind(topic)
    .bind(partition)
    .bind(seq)
    .bind(&prev)
    .bind(appended.next_offset)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(appended)
}

fn insert_entries(rows: &[(EntryFields, Vec<u8>, [u8; 32])]) -> QueryBuilder<Postgres> {
    let mut insert = QueryBuilder::<Postgres>::new(
        "INSERT INTO audit_entries (topic, \"partition\", seq, \"offset\", timestamp_ms, key, \
         headers, value, schema_id, event_type, event, decode_error, event_id, payment_id, \
         correlation_id, causation_id, producer, occurred_at, trace_id, error_class, \
         error_reason, received_at, prev_hash, hash) ",
    );
    insert.push_values(rows, |mut row, (e, prev, hash)| {
        row.push_bind(&e.topic)
            .push_bind(e.partition)
            .push_bind(e.seq)
            .push_bind(e.offset)
            .push_bind(e.timestamp_ms)
            .push_bind(e.key.as_deref())
            .push_bind(&e.headers)
            .push_unseparated("::json")
            .push_bind(e.value.as_deref())
            .push_bind(e.schema_id)
            .push_bind(e.event_type.as_deref())
            .push_bind(e.event.as_deref())
            .push_unseparated("::json")
            .push_bind(e.decode_error.as_deref())
            .push_bind(e.event_id)
            .push_bind(e.payment_id.as_deref())
            .push_bind(e.correlation_id.as_deref())
            .push_bind(e.causation_id.as_deref())
            .push_bind(e.producer.as_deref())
            .push_bind(e.occurred_at)
            .push_bind(e.trace_id.as_deref())
            .push_bind(e.error_class.as_deref())
            .push_bind(e.error_reason.as_deref())
            .push_bind(e.received_at)
            .push_bind(prev.as_slice())
            .push_bind(hash.as_slice());
    });
    insert
}
