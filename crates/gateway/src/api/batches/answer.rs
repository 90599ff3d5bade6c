//! What `POST /v1/payment-batches` answers for each item, and how
//! `GET /v1/payment-batches/{id}` shows each item's progress.

use std::collections::BTreeMap;

use paystream_contract::PaymentStatus;
use serde::Serialize;
use uuid::Uuid;

use super::items::{ItemError, RefusalReason};

/// What one item of `POST /v1/payment-batches` came to, by `status`.
#[derive(Debug, Clone, Serialize)]
#[serde(
    tag = "status",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum Outcome {
    /// The broker acked its `payment.submitted` event.
    Accepted {
        payment_id: Uuid,
        correlation_id: String,
        status_url: String,
    },
    Refused {
        refusal: RefusalReason,
        errors: Vec<ItemError>,
    },
    /// Certainly not written; a repeat of the batch (or of the item alone,
    /// under its key) sends the very same event.
    NotSent {
        payment_id: Uuid,
        correlation_id: String,
        detail: &'static str,
    },
    /// Perhaps written; only a repeat under the same keys settles it.
    Unknown {
        payment_id: Uuid,
        correlation_id: String,
        detail: &'static str,
    },
}

pub const NOT_SENT: &str = "not recorded: the broker did not take it. Repeat the batch with the \
     same Idempotency-Key (or send this item alone under its own key) to send it";
pub const UNKNOWN: &str = "the broker did not confirm it in time, so it may have been recorded: \
     repeat the batch with the same Idempotency-Key (never a new one), which completes it \
     without a second payment";

pub fn status_url(payment_id: Uuid) -> String {
    format!("/v1/payments/{payment_id}")
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemAnswer {
    pub index: usize,
    pub idempotency_key: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The answer to `POST /v1/payment-batches`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchAnswer {
    pub batch_id: Uuid,
    pub accepted: usize,
    pub refused: usize,
    pub not_sent: usize,
    pub unknown: usize,
    pub items: Vec<ItemAnswer>,
}

impl BatchAnswer {
    pub fn new(batch_id: Uuid, items: Vec<ItemAnswer>) -> Self {
        let count = |f: fn(&Outcome) -> bool| items.iter().filter(|i| f(&i.outcome)).count();
        Self {
            batch_id,
            accepted: count(|o| matches!(o, Outcome::Accepted { .. })),
            refused: count(|o| matches!(o, Outcome::Refused { .. })),
            not_sent: count(|o| matches!(o, Outcome::NotSent { .. })),
            unknown: count(|o| matches!(o, Outcome::Unknown { .. })),
            items,
        }
    }
}

/// Where an item stands for `GET /v1/payment-batches/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Progress {
    Refused,
    /// A payment the broker has not acked yet: repeat the batch.
    NotConfirmed,
    Submitted,
    Validated,
    Debited,
    SubmittedToRail,
    Settled,
    Rejected,
    Reversed,
}

impl From<PaymentStatus> for Progress {
    fn from(status: PaymentStatus) -> Self {
        match status {
            PaymentStatus::Submitted => Self::Submitted,
            PaymentStatus::Validated => Self::Validated,
            PaymentStatus::Debited => Self::Debited,
            PaymentStatus::SubmittedToRail => Self::SubmittedToRail,
            PaymentStatus::Settled => Self::Settled,
            PaymentStatus::Rejected => Self::Rejected,
            PaymentStatus::Reversed => Self::Reversed,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemProgress {
    pub index: usize,
    pub idempotency_key: Option<String>,
    pub status: Progress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ItemError>>,
}

/// The answer to `GET /v1/payment-batches/{id}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchProgress {
    pub batch_id: Uuid,
    pub created_at: String,
    pub total: usize,
    /// Items by where they stand; statuses no item has are left out.
    pub counts: BTreeMap<Progress, usize>,
    pub items: Vec<ItemProgress>,
}
