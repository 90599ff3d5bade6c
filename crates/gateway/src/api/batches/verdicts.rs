//! Each item's verdict: a payment (new, or the one its key already holds)
//! or a refusal; claimed, looked up and stored for the whole batch at once.

use std::collections::HashSet;

use paystream_contract::PaymentSubmitted;
use serde_json::Value;
use uuid::Uuid;

use super::items::{ItemError, Plan, Planned, Refusal, RefusalReason};
use crate::api::{App, db_error};
use crate::auth::ClientId;
use crate::problem::Problem;
use crate::store::{self, BatchItemRow, IdempotencyRecord, NewClaim};

/// One item once the database has been asked.
pub(super) struct Item {
    pub(super) index: usize,
    pub(super) key: Option<String>,
    pub(super) verdict: Verdict,
}

pub(super) enum Verdict {
    Refused(Refusal),
    Payment(Payment),
}

pub(super) struct Payment {
    pub(super) payment_id: Uuid,
    pub(super) correlation_id: String,
    /// The event as stored, while the broker has not acked it.
    pub(super) unsent: Option<Box<PaymentSubmitted>>,
}

/// Claims every new payment's key in one statement; looks up, in one more,
/// the keys that were already taken.
pub(super) async fn claim(
    app: &App,
    client: &ClientId,
    planned: Vec<Planned>,
) -> Result<Vec<Item>, Problem> {
    let pool = app.store.pool();
    let mut claims = Vec::new();
    for item in &planned {
        if let Plan::New { key, hash, event } = &item.plan {
            claims.push(NewClaim {
                client_id: client.0.clone(),
                key: key.clone(),
                request_hash: hash.clone(),
                payment_id: event.payment_id,
                event: serde_json::to_string(event).map_err(|_| Problem::internal())?,
            });
        }
    }
    let won = store::claim_many(pool, &claims).await.map_err(db_error)?;
    let won: HashSet<Uuid> = claims
        .iter()
        .zip(won)
        .filter_map(|(claim, won)| won.then_some(claim.payment_id))
        .collect();
    let taken: Vec<&str> = planned
        .iter()
        .filter_map(|item| match &item.plan {
            Plan::New { key, event, .. } if !won.contains(&event.payment_id) => Some(key.as_str()),
            Plan::Invalid { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let records = app
        .store
        .idempotency_many(&client.0, &taken)
        .await
        .map_err(db_error)?;
    planned
        .into_iter()
        .map(|Planned { index, key, plan }| {
            let verdict = match plan {
                Plan::Refused(refusal) => Verdict::Refused(refusal),
                Plan::New { event, .. } if won.contains(&event.payment_id) => {
                    Verdict::Payment(Payment {
                        payment_id: event.payment_id,
                        correlation_id: event.envelope.correlation_id.clone(),
                        unsent: Some(event),
                    })
                }
                // Taken by an earlier request (or a concurrent one): the key
                // cannot have vanished since, records are never deleted.
                Plan::New { key, hash, .. } => {
                    let record = records.get(&key).ok_or_else(Problem::internal)?;
                    earlier(&hash, record)?
                }
                Plan::Invalid { key, hash, errors } => match records.get(&key) {
                    Some(record) => earlier(&hash, record)?,
                    None => Verdict::Refused(Refusal::invalid(errors)),
                },
            };
            Ok(Item {
                index,
                key,
                verdict,
            })
        })
        .collect()
}

/// An item whose key holds an earlier request: the same body is that
/// payment (sent again if never acked), another body is refused.
pub(super) fn earlier(hash: &[u8], record: &IdempotencyRecord) -> Result<Verdict, Problem> {
    if record.request_hash != hash {
        return Ok(Verdict::Refused(Refusal {
            reason: RefusalReason::IdempotencyKeyReused,
            errors: vec![ItemError::new(
                "idempotencyKey",
                format!(
                    "was first used for another request body (payment {})",
                    record.payment_id
                ),
            )],
        }));
    }
    let event: PaymentSubmitted =
        serde_json::from_value(record.event.clone()).map_err(|_| Problem::internal())?;
    Ok(Verdict::Payment(Payment {
        payment_id: record.payment_id,
        correlation_id: event.envelope.correlation_id.clone(),
        unsent: (!record.acked).then(|| Box::new(event)),
    }))
}

/// An item's stored verdict.
pub(super) fn row(item: &Item) -> Result<BatchItemRow, Problem> {
    let (payment_id, refusal, errors) = match &item.verdict {
        Verdict::Payment(payment) => (Some(payment.payment_id), None, None),
        Verdict::Refused(refusal) => (
            None,
            Some(refusal.reason.name().to_owned()),
            Some(serde_json::to_value(&refusal.errors).map_err(|_| Problem::internal())?),
        ),
    };
    Ok(BatchItemRow {
        item_index: i32::try_from(item.index).map_err(|_| Problem::internal())?,
        idempotency_key: item.key.clone(),
        payment_id,
        refusal,
        errors,
    })
}

pub(super) fn stored_refusal(
    reason: Option<&str>,
    errors: Option<Value>,
) -> Result<Refusal, Problem> {
    Ok(Refusal {
        reason: reason
            .and_then(RefusalReason::from_name)
            .ok_or_else(Problem::internal)?,
        errors: serde_json::from_value(errors.unwrap_or_default())
            .map_err(|_| Problem::internal())?,
    })
}
