//! Card transactions: claims and published marks, many per statement (see
//! [`GroupCommit`](crate::group_commit::GroupCommit)).

use std::collections::HashMap;

use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

use super::column;

/// Whether the card transaction `t` is published: a row in
/// `card_transactions_published`, or `published_at`, which gateways before
/// migration 0006 set. The one definition every statement that asks uses.
macro_rules! published {
    () => {
        "(t.published_at IS NOT NULL OR EXISTS (SELECT 1 FROM card_transactions_published p \
          WHERE p.card_transaction_id = t.card_transaction_id))"
    };
}

/// A delivery's claim on its card transaction, to publish its event.
#[derive(Debug, Clone)]
pub struct CardClaimRequest {
    pub card_transaction_id: String,
    pub event_id: uuid::Uuid,
    pub webhook_id: String,
    pub card_id: String,
    /// The event as JSON text, stored if this is the first delivery.
    pub event: String,
    /// How long the claim lasts unless released or marked published.
    pub lease_seconds: f64,
}

/// Where a card transaction stands for a delivery that wants to publish it.
#[derive(Debug, Clone, PartialEq)]
pub enum CardClaim {
    /// This delivery sends the event: its own (`None`, the first delivery)
    /// or the one first stored (an earlier delivery's send failed).
    Publish(Option<Value>),
    /// Already acknowledged by the broker: nothing to send.
    Published(Value),
    /// Another delivery is sending it now.
    Busy,
}

/// Claims every transaction that nobody published or is publishing, in one
/// statement, and tells the others apart with one read. Two claims of one
/// transaction in a batch make the statement fail (a row may not be
/// updated twice in one statement); the group commit then runs them one by
/// one, as separate requests would be.
pub async fn claim_cards_many(
    connection: &mut PgConnection,
    claims: &[CardClaimRequest],
) -> Result<Vec<CardClaim>, sqlx::Error> {
    let claimed: Vec<(String, bool, Option<Value>)> = sqlx::query_as(concat!(
        "INSERT INTO card_transactions AS t (card_transaction_id, event_id, webhook_id, card_id, event, lease_until)
         SELECT id, event_id, webhook_id, card_id, event::jsonb, clock_timestamp() + make_interval(secs => lease)
         FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::float8[])
              AS c(id, event_id, webhook_id, card_id, event, lease)
         ON CONFLICT (card_transaction_id) DO UPDATE SET lease_until = EXCLUDED.lease_until
         WHERE NOT ",
        published!(),
        " AND (t.lease_until IS NULL OR t.lease_until < clock_timestamp())
         RETURNING t.card_transaction_id, t.xmax = 0 AS inserted,
                   CASE WHEN t.xmax = 0 THEN NULL ELSE t.event END",
    ))
    .bind(column(claims, |c| c.card_transaction_id.as_str()))
    .bind(column(claims, |c| c.event_id))
    .bind(column(claims, |c| c.webhook_id.as_str()))
    .bind(column(claims, |c| c.card_id.as_str()))
    .bind(column(claims, |c| c.event.as_str()))
    .bind(column(claims, |c| c.lease_seconds))
    .fetch_all(&mut *connection)
    .await?;
    let mut outcomes: HashMap<String, CardClaim> = claimed
        .into_iter()
        .map(|(id, inserted, first)| {
            let first = if inserted { None } else { first };
            (id, CardClaim::Publish(first))
        })
        .collect();
    let others: Vec<&str> = claims
        .iter()
        .map(|c| c.card_transaction_id.as_str())
        .filter(|id| !outcomes.contains_key(*id))
        .collect();
    if !others.is_empty() {
        let rows: Vec<(String, Value, bool)> = sqlx::query_as(concat!(
            "SELECT t.card_transaction_id, t.event, ",
            published!(),
            " FROM card_transactions t WHERE t.card_transaction_id = ANY($1)",
        ))
        .bind(&others)
        .fetch_all(&mut *connection)
        .await?;
        for (id, event, published) in rows {
            let claim = if published {
                CardClaim::Published(event)
            } else {
                CardClaim::Busy
            };
            outcomes.insert(id, claim);
        }
    }
    Ok(claims
        .iter()
        // Claimed by another delivery (or, in between, released by it).
        .map(|c| {
            outcomes
                .get(&c.card_transaction_id)
                .cloned()
                .unwrap_or(CardClaim::Busy)
        })
        .collect())
}

/// Gives up a claim whose send failed, unless the transaction was
/// published meanwhile.
pub(super) async fn release(executor: impl PgExecutor<'_>, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "UPDATE card_transactions t SET lease_until = NULL
         WHERE t.card_transaction_id = $1 AND NOT ",
        published!(),
    ))
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Marks card transactions published, in one statement on the store's
/// relaxed pool, whose commits do not wait for the disk: a lost mark only
/// means a later delivery sends the same event again (same eventId), which
/// downstream drops as a duplicate. The mark is a row of its own: updating
/// the transaction's row would write it again whole, stored event included.
/// (`published_at` on that row, written by gateways before migration 0006,
/// is still read as a mark.)
pub async fn cards_published_many(
    executor: impl PgExecutor<'_>,
    ids: &[String],
) -> Result<Vec<()>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO card_transactions_published (card_transaction_id)
         SELECT DISTINCT id FROM unnest($1::text[]) AS t (id)
         ON CONFLICT DO NOTHING",
    )
    .bind(ids)
    .execute(executor)
    .await?;
    Ok(vec![(); ids.len()])
}
