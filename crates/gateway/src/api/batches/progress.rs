//! `GET /v1/payment-batches/{id}`: each item's verdict and where the
//! pipeline has its payment.

use std::collections::BTreeMap;

use paystream_contract::PaymentStatus;
use uuid::Uuid;

use super::answer::{BatchProgress, ItemProgress, Progress, status_url};
use super::verdicts::stored_refusal;
use crate::problem::Problem;
use crate::reason::ClientReason;
use crate::store;

pub(super) fn progress(
    batch_id: Uuid,
    rows: Vec<store::BatchProgressRow>,
) -> Result<BatchProgress, Problem> {
    let millis =
        |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let created_at = rows.first().map(|row| millis(row.created_at));
    let mut counts = BTreeMap::new();
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let item = match row.payment_id {
            Some(payment_id) => ItemProgress {
                status: match row.status.as_deref() {
                    // Claimed but not acked: not in the read model yet.
                    None => Progress::NotConfirmed,
                    Some(name) => PaymentStatus::from_name(name)
                        .map(Progress::from)
                        .ok_or_else(Problem::internal)?,
                },
                payment_id: Some(payment_id),
                status_url: Some(status_url(payment_id)),
                // The client's view of the code, never the pipeline's text.
                reason_code: row.reason_code.as_deref().map(|c| ClientReason::of(c).code),
                updated_at: row.updated_at.map(millis),
                ..ItemProgress::new(row.item_index, row.idempotency_key)?
            },
            None => {
                let refusal = stored_refusal(row.refusal.as_deref(), row.errors)?;
                ItemProgress {
                    status: Progress::Refused,
                    refusal: Some(refusal.reason),
                    errors: Some(refusal.errors),
                    ..ItemProgress::new(row.item_index, row.idempotency_key)?
                }
            }
        };
        *counts.entry(item.status).or_insert(0) += 1;
        items.push(item);
    }
    Ok(BatchProgress {
        batch_id,
        created_at: created_at.unwrap_or_default(),
        total: items.len(),
        counts,
        items,
    })
}

impl ItemProgress {
    fn new(index: i32, idempotency_key: Option<String>) -> Result<Self, Problem> {
        Ok(Self {
            index: usize::try_from(index).map_err(|_| Problem::internal())?,
            idempotency_key,
            status: Progress::NotConfirmed,
            payment_id: None,
            status_url: None,
            reason_code: None,
            updated_at: None,
            refusal: None,
            errors: None,
        })
    }
}
