//! A payment's timeline: every event of its journey across the services,
//! in causal order, with the facts that matter, and its dead letters.
//!
//! The journey is every entry that carries the payment id, or the
//! correlation id of one that does (so events that know only the
//! correlation, such as a card transaction's, are in it too).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::record::Reader;

/// Entries one timeline reads at most: a journey is a handful of events;
/// this bounds what a runaway correlation id could cost.
const MAX_ENTRIES: i64 = 10_000;

#[derive(sqlx::FromRow)]
struct Row {
    topic: String,
    partition: i32,
    offset: i64,
    event_type: Option<String>,
    event: Option<String>,
    event_id: Option<Uuid>,
    payment_id: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    producer: Option<String>,
    occurred_at: Option<DateTime<Utc>>,
    trace_id: Option<String>,
    error_class: Option<String>,
    error_reason: Option<String>,
    received_at: DateTime<Utc>,
    headers: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    pub id: String,
    pub payment_ids: Vec<String>,
    pub correlation_ids: Vec<String>,
    pub events: Vec<Step>,
    pub dead_letters: Vec<DeadLetter>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub occurred_at: Option<DateTime<Utc>>,
    /// Milliseconds since the first event of the timeline (the submission).
    pub since_first_ms: Option<i64>,
    pub producer: Option<String>,
    pub topic: String,
    pub event_type: Option<String>,
    pub event_id: Option<Uuid>,
    pub causation_id: Option<String>,
    pub status: Option<String>,
    pub reason_code: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub uetr: Option<String>,
    pub trace_id: Option<String>,
    pub partition: i32,
    pub offset: i64,
    /// False for a record whose value did not decode.
    pub decoded: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub topic: String,
    pub original_topic: Option<String>,
    pub group: Option<String>,
    pub error_class: Option<String>,
    pub error_reason: Option<String>,
    pub failed_at: Option<String>,
    pub event_id: Option<Uuid>,
    pub trace_id: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// The timeline of a payment id or correlation id; `None` if the log knows
/// neither.
pub async fn timeline(
    pool: &PgPool,
    reader: &Reader,
    id: &str,
) -> Result<Option<Timeline>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "WITH journeys AS ( \
             SELECT DISTINCT correlation_id FROM audit_entries \
             WHERE (payment_id = $1 OR correlation_id = $1) AND correlation_id IS NOT NULL) \
         SELECT topic, \"partition\", \"offset\", event_type, event::text AS event, event_id, \
                payment_id, correlation_id, causation_id, producer, occurred_at, trace_id, \
                error_class, error_reason, received_at, headers::text AS headers \
         FROM audit_entries \
         WHERE payment_id = $1 OR correlation_id IN (SELECT correlation_id FROM journeys) \
         LIMIT $2",
    )
    .bind(id)
    .bind(MAX_ENTRIES)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut payment_ids: Vec<String> = rows.iter().filter_map(|r| r.payment_id.clone()).collect();
    payment_ids.sort();
    payment_ids.dedup();
    let mut correlation_ids: Vec<String> = rows
        .iter()
        .filter_map(|r| r.correlation_id.clone())
        .collect();
    correlation_ids.sort();
    correlation_ids.dedup();
    let (letters, events): (Vec<Row>, Vec<Row>) = rows
        .into_iter()
        .partition(|row| reader.local(&row.topic).ends_with(".dlq"));
    let steps = in_causal_order(events)
        .into_iter()
        .map(|row| step(reader, row))
        .collect::<Vec<_>>();
    let first = steps.first().and_then(|s| s.occurred_at);
    let events = steps
        .into_iter()
        .map(|mut step| {
            step.since_first_ms = first
                .zip(step.occurred_at)
                .map(|(first, at)| (at - first).num_milliseconds());
            step
        })
        .collect();
    let mut dead_letters: Vec<DeadLetter> = letters
        .into_iter()
        .map(|row| dead_letter(reader, row))
        .collect();
    dead_letters.sort_by_key(|letter| letter.received_at);
    Ok(Some(Timeline {
        id: id.to_owned(),
        payment_ids,
        correlation_ids,
        events,
        dead_letters,
    }))
}

/// Causes before their effects (a causationId naming another event of the
/// timeline), and otherwise by time: Kahn's topological sort with the
/// earliest ready event first. Clocks of different services may disagree;
/// the causal links do not.
fn in_causal_order(rows: Vec<Row>) -> Vec<Row> {
    let index: HashMap<String, usize> = rows
        .iter()
        .enumerate()
        .filter_map(|(n, row)| row.event_id.map(|id| (id.to_string(), n)))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
    let mut waiting = vec![false; rows.len()];
    for (n, row) in rows.iter().enumerate() {
        if let Some(&parent) = row.causation_id.as_ref().and_then(|c| index.get(c))
            && parent != n
        {
            children[parent].push(n);
            waiting[n] = true;
        }
    }
    let key = |n: usize| {
        let row = &rows[n];
        (
            row.occurred_at.unwrap_or(row.received_at),
            row.received_at,
            n,
        )
    };
    let mut ready: BinaryHeap<Reverse<_>> = (0..rows.len())
        .filter(|n| !waiting[*n])
        .map(|n| Reverse(key(n)))
        .collect();
    let mut order = Vec::with_capacity(rows.len());
    let mut done = vec![false; rows.len()];
    while let Some(Reverse((_, _, n))) = ready.pop() {
        done[n] = true;
        order.push(n);
        for &child in &children[n] {
            ready.push(Reverse(key(child)));
        }
    }
    // Only a cycle of causes (which no producer writes) leaves any: by time.
    let mut rest: Vec<usize> = (0..rows.len()).filter(|n| !done[*n]).collect();
    rest.sort_by_key(|n| key(*n));
    order.extend(rest);
    let mut slots: Vec<Option<Row>> = rows.into_iter().map(Some).collect();
    order.into_iter().filter_map(|n| slots[n].take()).collect()
}

fn step(reader: &Reader, row: Row) -> Step {
    let json: Value = row
        .event
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let text = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_owned);
    let topic = row
        .event_type
        .clone()
        .unwrap_or_else(|| reader.local(&row.topic).to_owned());
    let status = match topic.as_str() {
        "payment.submitted" => Some("SUBMITTED".to_owned()),
        "payment.validated" => Some("VALIDATED".to_owned()),
        "payment.rejected" | "rtgs.rejected" => Some("REJECTED".to_owned()),
        "aml.alert.raised" => text("severity").map(|s| format!("AML_ALERT_{s}")),
        "account.debited" => Some("DEBITED".to_owned()),
        "account.debit.reversed" => Some("REVERSED".to_owned()),
        "rtgs.submitted" => Some("SUBMITTED_TO_RAIL".to_owned()),
        "rtgs.settled" => Some("SETTLED".to_owned()),
        "card.transaction.received" => text("transactionStatus"),
        "notification.sent" => Some("NOTIFIED".to_owned()),
        _ => None,
    }
    .filter(|_| !json.is_null());
    Step {
        occurred_at: row.occurred_at,
        since_first_ms: None,
        producer: row.producer,
        event_type: paystream_contract::Topic::from_name(&topic)
            .and_then(|t| t.record_name().ok())
            .map(|name| name.rsplit('.').next().unwrap_or(&name).to_owned()),
        topic,
        event_id: row.event_id,
        causation_id: row.causation_id,
        status,
        reason_code: text("reasonCode"),
        amount_minor: json.get("amountMinor").and_then(Value::as_i64),
        currency: text("currency"),
        uetr: text("uetr"),
        trace_id: row.trace_id,
        partition: row.partition,
        offset: row.offset,
        decoded: !json.is_null(),
    }
}

fn dead_letter(reader: &Reader, row: Row) -> DeadLetter {
    let headers: Vec<Value> = serde_json::from_str(&row.headers).unwrap_or_default();
    let header = |name: &str| {
        headers
            .iter()
            .rev()
            .find(|h| h.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|h| h.get("text").and_then(Value::as_str))
            .map(str::to_owned)
    };
    DeadLetter {
        topic: reader.local(&row.topic).to_owned(),
        original_topic: row.event_type,
        group: header(paystream_bus::dead_letter::CONSUMER_GROUP),
        error_class: row.error_class,
        error_reason: row.error_reason,
        failed_at: header(paystream_bus::dead_letter::FAILED_AT),
        event_id: row.event_id,
        trace_id: row.trace_id,
        received_at: row.received_at,
    }
}
